//! How large a step's rendered input and its output may be, and what one template may do. A step
//! over a limit fails with a message that names the limit and the variable that raises it, so
//! one run's poison costs only its own step, never a batch or a runner.

use baton_runtime::env::{ConfigError, Env};
use baton_workflow::{TEMPLATE_FUEL_VAR, TEMPLATE_OUTPUT_BYTES_VAR, TemplateLimits};
use serde_json::Value as Json;

/// Raises [`Limits::max_step_input_bytes`].
pub const MAX_STEP_INPUT_BYTES_VAR: &str = "BATON_MAX_STEP_INPUT_BYTES";
/// Raises [`Limits::max_step_output_bytes`]; workers read the same variable
/// (`baton_worker::MAX_STEP_OUTPUT_BYTES_VAR`) and refuse a larger output before it travels.
pub const MAX_STEP_OUTPUT_BYTES_VAR: &str = "BATON_MAX_STEP_OUTPUT_BYTES";

/// The engine's limits; see [`Limits::from_env`] for the variables and their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of a step's rendered input, as the JSON text its job carries.
    pub max_step_input_bytes: usize,
    /// Most bytes of a step's output, as the JSON text its result carries. An error longer than
    /// this is cut to it.
    pub max_step_output_bytes: usize,
    /// What one template (an input string or a `when`) may produce and run.
    pub template: TemplateLimits,
}

impl Limits {
    /// 1 MiB: the size of the largest run inputs StartRun accepts by default, and far above what
    /// an API call or a prompt needs, while a batch of 512 such steps still fits in memory.
    pub const DEFAULT_MAX_STEP_INPUT_BYTES: usize = 1 << 20;
    /// 1 MiB: outputs are stored with the step, sent to watchers in its event and fed to the
    /// steps after it, so each copy stays small; larger data belongs in a blob store.
    pub const DEFAULT_MAX_STEP_OUTPUT_BYTES: usize = 1 << 20;

    /// Reads the limits; each is at least 1.
    ///
    /// | variable | default | |
    /// | --- | --- | --- |
    /// | `BATON_MAX_STEP_INPUT_BYTES` | 1048576 (1 MiB) | a step whose rendered input is larger fails without running |
    /// | `BATON_MAX_STEP_OUTPUT_BYTES` | 1048576 (1 MiB) | an attempt whose output is larger fails for good |
    /// | `BATON_MAX_TEMPLATE_OUTPUT_BYTES` | 1048576 (1 MiB) | most bytes one template may produce |
    /// | `BATON_TEMPLATE_FUEL` | 100000 | most instructions one template or condition may run |
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            max_step_input_bytes: at_least_one(
                env,
                MAX_STEP_INPUT_BYTES_VAR,
                Self::DEFAULT_MAX_STEP_INPUT_BYTES,
            )?,
            max_step_output_bytes: at_least_one(
                env,
                MAX_STEP_OUTPUT_BYTES_VAR,
                Self::DEFAULT_MAX_STEP_OUTPUT_BYTES,
            )?,
            template: TemplateLimits {
                max_output_bytes: at_least_one(
                    env,
                    TEMPLATE_OUTPUT_BYTES_VAR,
                    TemplateLimits::DEFAULT_MAX_OUTPUT_BYTES,
                )?,
                fuel: at_least_one(env, TEMPLATE_FUEL_VAR, TemplateLimits::DEFAULT_FUEL)?,
            },
        })
    }

    /// Why a step's rendered input may not be sent, if it is over the limit. Measured as the JSON
    /// text the job carries (none for `null`), stopping once it is over.
    pub(crate) fn check_input(&self, input: &Json) -> Result<(), String> {
        let max = self.max_step_input_bytes;
        if input.is_null() || baton_workflow::json_size_within(input, max) {
            return Ok(());
        }
        Err(format!(
            "step input exceeds {max} bytes ({MAX_STEP_INPUT_BYTES_VAR})"
        ))
    }

    /// Why a result's output may not be stored, if its JSON text is over the limit.
    pub(crate) fn check_output(&self, output_json: &str) -> Result<(), String> {
        let max = self.max_step_output_bytes;
        if output_json.len() <= max {
            return Ok(());
        }
        Err(format!(
            "step output exceeds {max} bytes ({MAX_STEP_OUTPUT_BYTES_VAR}): it is {} bytes",
            output_json.len()
        ))
    }

    /// `error` cut to the output limit at a character boundary, saying so, when it is longer.
    pub(crate) fn bound_error<'a>(&self, error: &'a str) -> std::borrow::Cow<'a, str> {
        let max = self.max_step_output_bytes;
        if error.len() <= max {
            return error.into();
        }
        let cut = (0..=max)
            .rev()
            .find(|&i| error.is_char_boundary(i))
            .unwrap_or(0);
        format!(
            "{}… (cut from {} bytes to {max}, {MAX_STEP_OUTPUT_BYTES_VAR})",
            &error[..cut],
            error.len()
        )
        .into()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_step_input_bytes: Self::DEFAULT_MAX_STEP_INPUT_BYTES,
            max_step_output_bytes: Self::DEFAULT_MAX_STEP_OUTPUT_BYTES,
            template: TemplateLimits::default(),
        }
    }
}

/// A limit of 0 would fail every step.
fn at_least_one<T>(env: &Env, name: &str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialEq + From<u8>,
    T::Err: std::fmt::Display,
{
    let value = env.parse_or(name, default)?;
    if value == T::from(0) {
        return Err(ConfigError {
            name: name.to_owned(),
            value: env.var(name).unwrap_or_default(),
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_without_variables() {
        let limits = Limits::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(limits, Limits::default());
        assert_eq!(limits.max_step_input_bytes, 1_048_576);
        assert_eq!(limits.max_step_output_bytes, 1_048_576);
        assert_eq!(limits.template, TemplateLimits::default());
    }

    #[test]
    fn every_variable_is_read() {
        let env = Env::from_pairs([
            ("BATON_MAX_STEP_INPUT_BYTES", "100"),
            ("BATON_MAX_STEP_OUTPUT_BYTES", " 200 "),
            ("BATON_MAX_TEMPLATE_OUTPUT_BYTES", "300"),
            ("BATON_TEMPLATE_FUEL", "400"),
        ]);
        assert_eq!(
            Limits::from_env(&env).unwrap(),
            Limits {
                max_step_input_bytes: 100,
                max_step_output_bytes: 200,
                template: TemplateLimits {
                    max_output_bytes: 300,
                    fuel: 400,
                },
            }
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("BATON_MAX_STEP_INPUT_BYTES", "1MiB"),
            ("BATON_MAX_STEP_INPUT_BYTES", "0"),
            ("BATON_MAX_STEP_OUTPUT_BYTES", "-1"),
            ("BATON_MAX_TEMPLATE_OUTPUT_BYTES", "0"),
            ("BATON_TEMPLATE_FUEL", "lots"),
            ("BATON_TEMPLATE_FUEL", "0"),
        ] {
            let err = Limits::from_env(&Env::from_pairs([(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{value}: {err}");
        }
    }

    fn limits(input: usize, output: usize) -> Limits {
        Limits {
            max_step_input_bytes: input,
            max_step_output_bytes: output,
            ..Limits::default()
        }
    }

    #[test]
    fn an_input_is_measured_as_the_json_its_job_carries() {
        let input = json!({"text": "hello"});
        let len = input.to_string().len();
        assert_eq!(limits(len, 1).check_input(&input), Ok(()));
        assert_eq!(
            limits(len - 1, 1).check_input(&input),
            Err(format!(
                "step input exceeds {} bytes (BATON_MAX_STEP_INPUT_BYTES)",
                len - 1
            ))
        );
        // A job without input carries no text.
        assert_eq!(limits(1, 1).check_input(&Json::Null), Ok(()));
    }

    #[test]
    fn an_output_is_measured_as_the_json_its_result_carries() {
        assert_eq!(limits(1, 7).check_output(r#"{"a":1}"#), Ok(()));
        assert_eq!(
            limits(1, 6).check_output(r#"{"a":1}"#),
            Err("step output exceeds 6 bytes (BATON_MAX_STEP_OUTPUT_BYTES): it is 7 bytes".into())
        );
    }

    #[test]
    fn a_long_error_is_cut_at_a_character_boundary() {
        let limits = limits(1, 4);
        assert_eq!(limits.bound_error("abcd"), "abcd");
        // `é` is two bytes: the cut falls before it rather than inside it.
        assert_eq!(
            limits.bound_error("abcéfg"),
            "abc… (cut from 7 bytes to 4, BATON_MAX_STEP_OUTPUT_BYTES)"
        );
    }
}
