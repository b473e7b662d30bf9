//! Typed reads of configuration variables, so a bad value fails start-up with the variable's name
//! instead of misbehaving later. Reads go through [`Env`], so tests can pass variables without
//! touching the process environment.

use std::{collections::HashMap, str::FromStr, time::Duration};

/// A variable set to a value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Where configuration comes from: the process environment, or a map in tests.
#[derive(Clone, Debug, Default)]
pub struct Env {
    overrides: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn os() -> Self {
        Self { overrides: None }
    }

    /// Only these variables, as if the process had no others.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            overrides: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
        }
    }

    /// The variable's value, or `None` when unset or empty. A value that is not Unicode is read
    /// lossily rather than as unset, so a typed read of it fails naming the variable instead of
    /// quietly taking the default.
    pub fn var(&self, name: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var_os(name).map(|raw| raw.to_string_lossy().into_owned()),
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// Parses a variable when it is set.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.var(name)
            .map(|value| {
                value.trim().parse::<T>().map_err(|e| ConfigError {
                    name: name.to_owned(),
                    value: value.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Parses a variable, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.parse(name).map(|v| v.unwrap_or(default))
    }

    /// The variable's text, or `default`.
    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.var(name).unwrap_or_else(|| default.to_owned())
    }

    /// Reads a duration written like `500ms`, `30s` or `5m`.
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(value) => humantime::parse_duration(value.trim()).map_err(|e| ConfigError {
                name: name.to_owned(),
                value,
                reason: e.to_string(),
            }),
        }
    }

    /// Reads `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError {
                    name: name.to_owned(),
                    value,
                    reason: "expected true or false".into(),
                }),
            },
        }
    }
}

/// The process environment's value of `name`, or `None` when unset or empty.
pub fn var(name: &str) -> Option<String> {
    Env::os().var(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_name_the_variable() {
        let env = Env::from_pairs([("N", "12"), ("D", "250ms"), ("B", "yes"), ("BAD", "x")]);
        assert_eq!(env.parse_or("N", 1u32).unwrap(), 12);
        assert_eq!(env.parse_or("MISSING", 7u32).unwrap(), 7);
        assert_eq!(
            env.duration_or("D", Duration::ZERO).unwrap(),
            Duration::from_millis(250)
        );
        assert!(env.bool_or("B", false).unwrap());
        let err = env.parse_or("BAD", 1u32).unwrap_err();
        assert!(err.to_string().contains("BAD"), "{err}");
    }

    /// Set only in the child process that [`process_environment_is_read_and_not_unicode_fails`]
    /// starts; setting variables in this process would need `unsafe`.
    const CHILD: &str = "BATON_RUNTIME_ENV_CHILD";
    const PORT: &str = "BATON_RUNTIME_ENV_TEST_PORT";
    const NOT_UNICODE: &str = "BATON_RUNTIME_ENV_TEST_NOT_UNICODE";

    #[test]
    fn process_environment_is_read_and_not_unicode_fails() {
        use std::os::unix::ffi::OsStrExt as _;

        if std::env::var_os(CHILD).is_some() {
            let env = Env::os();
            assert_eq!(env.parse_or(PORT, 1u16).unwrap(), 7000);
            let err = env.parse_or(NOT_UNICODE, 1u16).unwrap_err();
            assert_eq!(err.name, NOT_UNICODE);
            assert!(err.to_string().contains(NOT_UNICODE), "{err}");
            assert!(env.bool_or(NOT_UNICODE, true).is_err());
            return;
        }
        let name = "env::tests::process_environment_is_read_and_not_unicode_fails";
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(PORT, " 7000 ")
            .env(NOT_UNICODE, std::ffi::OsStr::from_bytes(b"70\xff0"))
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("1 passed"), "child ran the test: {stdout}");
    }
}
