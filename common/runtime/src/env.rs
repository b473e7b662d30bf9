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

    /// The variable's value, or `None` when unset or empty.
    pub fn var(&self, name: &str) -> Option<String> {
        let value = match &self.overrides {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
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
}
