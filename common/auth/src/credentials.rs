//! Where the CLI finds its token when no flag or variable gives one: a small JSON file of tokens
//! by server address, readable by its owner alone. `baton dev` writes its local admin key here.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The file's content: `{"servers": {"http://127.0.0.1:8002": {"token": "bk_..."}}}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    pub servers: BTreeMap<String, ServerCredentials>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ServerCredentials {
    pub token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant: String,
}

impl std::fmt::Debug for ServerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("token", &"***")
            .field("tenant", &self.tenant)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the credentials file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the credentials file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot write the credentials file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `BATON_CREDENTIALS`, else `$XDG_CONFIG_HOME/baton/credentials.json`, else
/// `$HOME/.config/baton/credentials.json`; `None` when none of those is set.
pub fn default_path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(path) = var("BATON_CREDENTIALS") {
        return Some(PathBuf::from(path));
    }
    let config = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("baton").join("credentials.json"))
}

/// The form addresses are stored under: `http://host:port`, without a trailing slash.
pub fn server_key(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

impl Credentials {
    /// The file at `path`; empty when it does not exist.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CredentialsError::Invalid {
                path: shown,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(CredentialsError::Read {
                path: shown,
                source,
            }),
        }
    }

    /// The token for the server at `addr`, if the file has one.
    pub fn token_for(&self, addr: &str) -> Option<&ServerCredentials> {
        self.servers.get(&server_key(addr))
    }

    /// Sets the token for `addr`.
    pub fn set(&mut self, addr: &str, credentials: ServerCredentials) {
        self.servers.insert(server_key(addr), credentials);
    }

    /// Writes the file (creating its directory), readable and writable by its owner only,
    /// replacing it atomically.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let shown = path.display().to_string();
        let write = |source| CredentialsError::Write {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let text =
            serde_json::to_string_pretty(self).map_err(|e| write(std::io::Error::other(e)))?;
        let temporary = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        {
            use std::io::Write;
            let mut file = options.open(&temporary).map_err(write)?;
            file.write_all(text.as_bytes()).map_err(write)?;
            file.write_all(b"\n").map_err(write)?;
            file.sync_all().map_err(write)?;
        }
        std::fs::rename(&temporary, path).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_by_address_and_the_file_is_private() {
        let dir = std::env::temp_dir().join(format!("baton-credentials-{}", std::process::id()));
        let path = dir.join("nested").join("credentials.json");
        let mut credentials = Credentials::load(&path).unwrap();
        assert!(credentials.token_for("127.0.0.1:8002").is_none());
        credentials.set(
            "127.0.0.1:8002",
            ServerCredentials {
                token: "bk_x".into(),
                tenant: "default".into(),
            },
        );
        credentials.save(&path).unwrap();
        let loaded = Credentials::load(&path).unwrap();
        assert_eq!(
            loaded.token_for("http://127.0.0.1:8002/").unwrap().token,
            "bk_x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not json").unwrap();
        let error = Credentials::load(&path).unwrap_err().to_string();
        assert!(error.contains("credentials.json"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
