//! Workflow definitions: parsing YAML or JSON, validating them into a [`CompiledWorkflow`], and
//! rendering step inputs and `when` conditions with templates within [`TemplateLimits`]. Pure code: no I/O, so the
//! orchestrator, the runner and the CLI agree on what a definition means.

mod definition;
mod duration;
mod error;
pub mod http;
mod limits;
mod template;
mod validate;

pub use definition::{
    Concurrency, DefinitionFormat, Execution, RetryPolicy, StepDefinition, WorkflowDefinition,
    WorkflowRef, parse_definition,
};
pub use duration::Duration;
pub use error::{DefinitionError, TemplateError};
pub use limits::{TEMPLATE_FUEL_VAR, TEMPLATE_OUTPUT_BYTES_VAR, TemplateLimits, json_size_within};
pub use template::{
    SECRET_KINDS, TemplateContext, eval_condition, is_secret_name, render_input,
    render_input_with_secrets, secret_placeholder,
};
pub use validate::{
    BUILTIN_KINDS, CompiledWorkflow, MAX_DEFINITION_BYTES, MAX_STEPS, compile, compile_registered,
};
