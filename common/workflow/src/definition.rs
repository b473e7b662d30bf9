//! The definition model as users write it. Field names follow the documented file format
//! (`maxParallel` in `execution`, snake_case in steps), and unknown fields are errors so typos
//! do not pass silently.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{DefinitionError, Duration, MAX_DEFINITION_BYTES};

/// A workflow definition: identity, execution limits and steps.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDefinition {
    pub owner: String,
    pub name: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Execution::is_empty")]
    pub execution: Execution,
    pub steps: Vec<StepDefinition>,
}

/// Run-wide limits.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// The whole run's deadline, from when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl Execution {
    fn is_empty(&self) -> bool {
        self.concurrency.is_none() && self.timeout.is_none()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Most steps of one run dispatched at once.
    #[serde(
        rename = "maxParallel",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_parallel: Option<u32>,
}

/// One step of the DAG.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Kind-specific input; strings in it are templates.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub input: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Longest one attempt may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// An expression; the step is skipped when it is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// When true, this step's failure neither fails the run nor skips its dependents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
}

/// Retries with exponential backoff: attempt `n` (from 2) waits `initial * multiplier^(n-2)`,
/// capped at `max`, then spread by up to `jitter` of itself either way.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    #[serde(default = "RetryPolicy::default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "RetryPolicy::default_initial")]
    pub initial: Duration,
    #[serde(default = "RetryPolicy::default_max")]
    pub max: Duration,
    #[serde(default = "RetryPolicy::default_multiplier")]
    pub multiplier: f64,
    /// A fraction from 0 to 1.
    #[serde(default = "RetryPolicy::default_jitter")]
    pub jitter: f64,
}

impl RetryPolicy {
    fn default_max_attempts() -> u32 {
        3
    }
    fn default_initial() -> Duration {
        Duration::from_millis(1_000)
    }
    fn default_max() -> Duration {
        Duration::from_millis(60_000)
    }
    fn default_multiplier() -> f64 {
        2.0
    }
    fn default_jitter() -> f64 {
        0.1
    }

    /// The delay before `next_attempt` (2 for the first retry), with `unit_random` in `[0, 1)`
    /// choosing where in the jitter band it falls.
    pub fn backoff(&self, next_attempt: u32, unit_random: f64) -> std::time::Duration {
        let exponent = next_attempt.saturating_sub(2).min(64) as i32;
        let base = self.initial.0.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = base.min(self.max.0.as_secs_f64());
        let spread = capped * self.jitter * (unit_random * 2.0 - 1.0);
        std::time::Duration::from_secs_f64((capped + spread).max(0.0))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: Self::default_max_attempts(),
            initial: Self::default_initial(),
            max: Self::default_max(),
            multiplier: Self::default_multiplier(),
            jitter: Self::default_jitter(),
        }
    }
}

/// How a definition's text is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefinitionFormat {
    /// JSON when the text starts with `{`, else YAML.
    Auto,
    Yaml,
    Json,
}

/// Parses definition text. Only parsing happens here; [`crate::compile`] validates.
pub fn parse_definition(
    text: &str,
    format: DefinitionFormat,
) -> Result<WorkflowDefinition, DefinitionError> {
    if text.len() > MAX_DEFINITION_BYTES {
        return Err(DefinitionError::TooLarge {
            size: text.len(),
            limit: MAX_DEFINITION_BYTES,
        });
    }
    let format = match format {
        DefinitionFormat::Auto if text.trim_start().starts_with('{') => DefinitionFormat::Json,
        DefinitionFormat::Auto => DefinitionFormat::Yaml,
        other => other,
    };
    match format {
        DefinitionFormat::Json => {
            serde_json::from_str(text).map_err(|e| DefinitionError::Parse(e.to_string()))
        }
        _ => serde_yaml_ng::from_str(text).map_err(|e| DefinitionError::Parse(e.to_string())),
    }
}

/// `owner/name@version`, or `owner/name` for the latest version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkflowRef {
    pub owner: String,
    pub name: String,
    pub version: Option<u32>,
}

impl FromStr for WorkflowRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a workflow reference; write `owner/name@version`");
        let (path, version) = match s.split_once('@') {
            Some((path, v)) => (path, Some(v.parse::<u32>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let (owner, name) = path.split_once('/').ok_or_else(bad)?;
        if owner.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
            version,
        })
    }
}

impl fmt::Display for WorkflowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}/{}@{v}", self.owner, self.name),
            None => write!(f, "{}/{}", self.owner, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1_000),
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(2, 0.5).as_millis(), 100);
        assert_eq!(p.backoff(3, 0.5).as_millis(), 200);
        assert_eq!(p.backoff(10, 0.5).as_millis(), 1_000);
    }

    #[test]
    fn jitter_stays_in_band() {
        let p = RetryPolicy {
            initial: Duration::from_millis(1_000),
            jitter: 0.2,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(2, 0.0).as_millis(), 800);
        assert_eq!(p.backoff(2, 0.999_999).as_millis(), 1_199);
    }

    #[test]
    fn workflow_refs_parse() {
        let r: WorkflowRef = "examples/hello@2".parse().unwrap();
        assert_eq!(
            (r.owner.as_str(), r.name.as_str(), r.version),
            ("examples", "hello", Some(2))
        );
        assert_eq!("a/b".parse::<WorkflowRef>().unwrap().version, None);
        assert!("nope".parse::<WorkflowRef>().is_err());
        assert!("a/b@x".parse::<WorkflowRef>().is_err());
    }

    const STEPS: &str = "steps:\n  - {id: a, kind: noop}\n";

    fn yaml(head: &str) -> WorkflowDefinition {
        parse_definition(
            &format!("owner: t\nname: w\nversion: 1\n{head}{STEPS}"),
            DefinitionFormat::Yaml,
        )
        .unwrap()
    }

    #[test]
    fn execution_limits_are_stored_only_when_set() {
        let none = serde_json::to_value(yaml("")).unwrap();
        assert!(none.get("execution").is_none(), "{none}");
        for (head, expected) in [
            (
                "execution: {timeout: 1m}\n",
                serde_json::json!({"timeout": "1m"}),
            ),
            (
                "execution: {concurrency: {maxParallel: 3}}\n",
                serde_json::json!({"concurrency": {"maxParallel": 3}}),
            ),
        ] {
            let definition = yaml(head);
            let stored = serde_json::to_value(&definition).unwrap();
            assert_eq!(stored["execution"], expected, "{head}");
            let back: WorkflowDefinition = serde_json::from_value(stored).unwrap();
            assert_eq!(back, definition);
        }
    }

    #[test]
    fn an_empty_retry_block_takes_the_documented_defaults() {
        let definition = parse_definition(
            "owner: t\nname: w\nversion: 1\nsteps:\n  - {id: a, kind: noop, retry: {}}\n",
            DefinitionFormat::Yaml,
        )
        .unwrap();
        let expected = RetryPolicy {
            max_attempts: 3,
            initial: Duration::from_millis(1_000),
            max: Duration::from_millis(60_000),
            multiplier: 2.0,
            jitter: 0.1,
        };
        assert_eq!(definition.steps[0].retry.as_ref(), Some(&expected));
        assert_eq!(RetryPolicy::default(), expected);
    }

    #[test]
    fn a_definition_of_exactly_the_size_limit_is_accepted() {
        let head = format!("owner: t\nname: w\nversion: 1\n{STEPS}# ");
        let at_limit = format!("{head}{}", "x".repeat(MAX_DEFINITION_BYTES - head.len()));
        assert_eq!(at_limit.len(), MAX_DEFINITION_BYTES);
        parse_definition(&at_limit, DefinitionFormat::Yaml).unwrap();
        assert_eq!(
            parse_definition(&format!("{at_limit}x"), DefinitionFormat::Yaml),
            Err(DefinitionError::TooLarge {
                size: MAX_DEFINITION_BYTES + 1,
                limit: MAX_DEFINITION_BYTES
            })
        );
    }

    #[test]
    fn json_definitions_are_read_as_json() {
        let json = r#"  {"owner": "t", "name": "w", "version": 1, "steps": [{"id": "a", "kind": "noop"}]}"#;
        for format in [DefinitionFormat::Json, DefinitionFormat::Auto] {
            assert_eq!(
                parse_definition(json, format).unwrap(),
                yaml(""),
                "{format:?}"
            );
        }
        // A YAML flow mapping also starts with `{`; as JSON it is an error, not a guess.
        let flow = "{owner: t, name: w, version: 1, steps: [{id: a, kind: noop}]}";
        parse_definition(flow, DefinitionFormat::Yaml).unwrap();
        for format in [DefinitionFormat::Json, DefinitionFormat::Auto] {
            let err = parse_definition(flow, format).unwrap_err();
            assert!(
                matches!(&err, DefinitionError::Parse(m) if m.contains("key must be a string")),
                "{format:?}: {err}"
            );
        }
        let text = format!("owner: t\nname: w\nversion: 1\n{STEPS}");
        assert!(matches!(
            parse_definition(&text, DefinitionFormat::Json),
            Err(DefinitionError::Parse(_))
        ));
    }

    #[test]
    fn a_workflow_ref_needs_an_owner_and_one_name() {
        for bad in ["/w", "t/", "t/w/x", "t/w@", "t/w@-1", "@1"] {
            assert!(bad.parse::<WorkflowRef>().is_err(), "`{bad}` parsed");
        }
    }

    #[test]
    fn a_workflow_ref_prints_as_it_is_written() {
        for text in ["examples/hello@2", "examples/hello"] {
            assert_eq!(text.parse::<WorkflowRef>().unwrap().to_string(), text);
        }
    }
}
