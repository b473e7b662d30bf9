//! The names of Baton's streams, built in one place: dead letters, stats and every backend's keys
//! or tables use them, so `jobs:<kind>` is spelled once.

use std::fmt;

/// A stream of work: the runner inbox, a kind's job stream, or the dead letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamName {
    /// The runner inbox: run starts, cancels, job reports, wake-ups.
    Runner,
    /// The job stream of a step kind.
    Jobs(String),
    /// Messages that could not be processed.
    Dead,
}

impl StreamName {
    pub fn jobs(kind: impl Into<String>) -> Self {
        Self::Jobs(kind.into())
    }

    /// Parses the form [`fmt::Display`] writes: `runner`, `jobs:<kind>`, `dead`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "runner" => Some(Self::Runner),
            "dead" => Some(Self::Dead),
            other => other
                .strip_prefix("jobs:")
                .filter(|kind| !kind.is_empty())
                .map(Self::jobs),
        }
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Runner => f.write_str("runner"),
            Self::Jobs(kind) => write!(f, "jobs:{kind}"),
            Self::Dead => f.write_str("dead"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            StreamName::Runner,
            StreamName::jobs("http"),
            StreamName::Dead,
        ] {
            assert_eq!(StreamName::parse(&name.to_string()), Some(name));
        }
        assert_eq!(StreamName::parse("jobs:"), None);
        assert_eq!(StreamName::parse("events"), None);
    }
}
