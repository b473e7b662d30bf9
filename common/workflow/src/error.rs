//! Errors a definition can have. Each message names the step and field at fault, because a user
//! fixing a 200-step file needs to know where to look.

/// Why a definition was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DefinitionError {
    #[error("definition is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("definition has {count} steps; the limit is {limit}")]
    TooManySteps { count: usize, limit: usize },
    #[error("cannot parse definition: {0}")]
    Parse(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("step `{step}`: {field}: {message}")]
    Step {
        step: String,
        field: String,
        message: String,
    },
    #[error("duplicate step id `{0}`")]
    DuplicateStep(String),
    #[error("step `{step}`: needs: unknown step `{need}`")]
    UnknownNeed { step: String, need: String },
    #[error("step `{step}`: kind: unknown kind `{kind}` (known kinds: {known})")]
    UnknownKind {
        step: String,
        kind: String,
        known: String,
    },
    #[error("steps form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

impl DefinitionError {
    pub(crate) fn step(step: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Step {
            step: step.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A template or condition failed to render at run time.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct TemplateError {
    pub field: String,
    pub message: String,
}
