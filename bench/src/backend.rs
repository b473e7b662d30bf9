//! The two backends Baton runs on, as the bench names and treats them: production (separate
//! services on PostgreSQL and Redis), measured against Baton's targets, and embedded (`baton dev`
//! on one SQLite file), measured for reference beside it.

use std::fmt;

/// A backend the bench can start the platform on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `baton-orchestrator` and `baton-workflow-runner` (and `baton-http-worker` for `http`
    /// steps) on PostgreSQL and Redis.
    Production,
    /// `baton dev`: every part in one process on one SQLite file.
    Embedded,
}

impl Backend {
    /// The name in the report, the JSON and the flags.
    pub fn name(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Embedded => "embedded",
        }
    }

    /// Whether Baton's targets apply to this backend's figures (the embedded backend has none
    /// yet: its figures are for reference).
    pub fn has_targets(self) -> bool {
        matches!(self, Self::Production)
    }

    /// The release binaries this backend runs, by file name; `http`: also what runs `http` steps
    /// (on embedded, `baton dev` itself).
    pub fn binaries(self, http: bool) -> &'static [&'static str] {
        match self {
            Self::Production if http => &[
                "baton-orchestrator",
                "baton-workflow-runner",
                "baton-http-worker",
            ],
            Self::Production => &["baton-orchestrator", "baton-workflow-runner"],
            Self::Embedded => &["baton"],
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_production_has_targets() {
        assert!(Backend::Production.has_targets());
        assert!(!Backend::Embedded.has_targets());
        assert_eq!(Backend::Embedded.to_string(), "embedded");
        assert_eq!(Backend::Embedded.binaries(true), ["baton"]);
        assert_eq!(Backend::Production.binaries(false).len(), 2);
        assert_eq!(
            Backend::Production.binaries(true).last(),
            Some(&"baton-http-worker")
        );
    }
}
