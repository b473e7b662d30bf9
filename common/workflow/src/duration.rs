//! Durations written the way people write them (`200ms`, `5s`, `10m`), kept as text in stored
//! definitions so a round trip changes nothing.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration parsed from human-readable text such as `200ms`, `5s` or `1h 30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    pub fn as_millis(&self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(Duration)
            .map_err(|e| {
                format!("`{s}` is not a duration ({e}); write it like `200ms`, `5s` or `10m`")
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!("200ms".parse::<Duration>().unwrap().as_millis(), 200);
        assert_eq!("5s".parse::<Duration>().unwrap().as_millis(), 5_000);
        assert_eq!("10m".parse::<Duration>().unwrap().as_millis(), 600_000);
        assert!("soon".parse::<Duration>().is_err());
    }

    #[test]
    fn display_round_trips() {
        let d: Duration = "1m 30s".parse().unwrap();
        assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
    }
}
