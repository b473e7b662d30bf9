//! Which token the CLI sends to `--addr`, and where it came from: `--token`, else `BATON_TOKEN`,
//! else what the credentials file holds for the address. Messages name the source and the key's
//! public id, never the token itself.

use std::path::PathBuf;

use anyhow::Context as _;
use baton_auth::{
    Bearer, KeyToken,
    credentials::{self, Credentials},
};

/// Where the token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File(PathBuf),
    /// Read from standard input (`baton auth login`).
    Stdin,
    /// None was given and the credentials file (when there is one) holds none for the address.
    Missing {
        file: Option<PathBuf>,
    },
}

/// The token for one address. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct Token {
    value: Option<String>,
    pub source: Source,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("source", &self.source)
            .field("key", &self.key_id())
            .finish()
    }
}

/// The credentials file: `BATON_CREDENTIALS`, else under `$XDG_CONFIG_HOME` or `$HOME`.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    credentials::default_path()
        .context("no place for the credentials file: set BATON_CREDENTIALS (or HOME) to choose one")
}

impl Token {
    /// `given` is the value of `--token`/`BATON_TOKEN` and `from_env` whether the variable gave
    /// it; without one, the credentials file's token for `addr`.
    pub fn resolve(given: Option<&str>, from_env: bool, addr: &str) -> anyhow::Result<Self> {
        if let Some(token) = given.map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(Self {
                value: Some(token.to_owned()),
                source: if from_env { Source::Env } else { Source::Flag },
            });
        }
        let Some(path) = credentials::default_path() else {
            return Ok(Self::missing(None));
        };
        let saved = Credentials::load(&path)?
            .token_for(addr)
            .map(|c| c.token.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(match saved {
            Some(token) => Self {
                value: Some(token),
                source: Source::File(path),
            },
            None => Self::missing(Some(path)),
        })
    }

    /// A token read from standard input.
    pub fn from_stdin(token: &str) -> Self {
        Self {
            value: Some(token.trim().to_owned()).filter(|t| !t.is_empty()),
            source: Source::Stdin,
        }
    }

    fn missing(file: Option<PathBuf>) -> Self {
        Self {
            value: None,
            source: Source::Missing { file },
        }
    }

    /// The token itself, for the few commands whose job is to hand it over.
    pub fn expose(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The API key's public id, when the token is an API key.
    pub fn key_id(&self) -> Option<String> {
        KeyToken::parse(self.value.as_deref()?).map(|k| k.id)
    }

    /// The interceptor that sends it.
    pub fn bearer(&self) -> anyhow::Result<Bearer> {
        match &self.value {
            Some(token) => Bearer::new(token).with_context(|| self.describe()),
            None => Ok(Bearer::none()),
        }
    }

    /// `the token from BATON_TOKEN (key 0123456789abcdef)`, `no token`, ...
    pub fn describe(&self) -> String {
        let key = match self.key_id() {
            Some(id) => format!(" (key {id})"),
            None if self.value.is_some() => " (not an API key: a JWT?)".to_owned(),
            None => String::new(),
        };
        match &self.source {
            Source::Flag => format!("the token from --token{key}"),
            Source::Env => format!("the token from BATON_TOKEN{key}"),
            Source::File(path) => format!("the token saved in {}{key}", path.display()),
            Source::Stdin => format!("the token from standard input{key}"),
            Source::Missing { .. } => "no token".to_owned(),
        }
    }

    /// Why no token was sent, when none was.
    pub fn why_missing(&self, addr: &str) -> Option<String> {
        match &self.source {
            Source::Missing { file: Some(path) } => Some(format!(
                "no token was sent: none was given, and {} holds none for {addr}",
                path.display()
            )),
            Source::Missing { file: None } => Some(
                "no token was sent: none was given, and there is no credentials file (set \
                 BATON_CREDENTIALS or HOME)"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_token_wins_and_is_never_shown() {
        let token = KeyToken::generate().unwrap().expose();
        let flag = Token::resolve(Some(&token), false, "http://h:1").unwrap();
        assert_eq!(flag.source, Source::Flag);
        assert_eq!(flag.expose(), Some(token.as_str()));
        let env = Token::resolve(Some(&format!(" {token}\n")), true, "http://h:1").unwrap();
        assert_eq!(env.source, Source::Env);
        assert_eq!(env.expose(), Some(token.as_str()));
        let id = KeyToken::parse(&token).unwrap().id;
        assert_eq!(
            env.describe(),
            format!("the token from BATON_TOKEN (key {id})")
        );
        assert!(!format!("{env:?}").contains(&token[20..]));
        assert!(!env.describe().contains(&token[20..]));
        assert!(env.bearer().unwrap().is_set());
        let jwt = Token::resolve(Some("eyJ.x.y"), false, "http://h:1").unwrap();
        assert!(jwt.describe().contains("not an API key"));
    }
}
