//! Step inputs and `when` conditions are minijinja templates and expressions over `inputs.*` and
//! `steps.<id>.output.*`. A string that is exactly one `{{ expr }}` keeps the expression's JSON type,
//! so lists and numbers pass between steps intact; any other string renders to text.

use std::{collections::HashSet, sync::LazyLock};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use serde_json::Value as Json;

use crate::TemplateError;

/// Bounds the work one template may do, so a hostile definition cannot spin a runner.
const TEMPLATE_FUEL: u64 = 100_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env
});

/// What templates can see: the run's inputs and the finished steps.
#[derive(Debug, Default, Serialize)]
pub struct TemplateContext {
    pub inputs: Json,
    /// `{ "<step id>": { "output": …, "status": "completed" } }`.
    pub steps: serde_json::Map<String, Json>,
}

impl TemplateContext {
    fn to_value(&self) -> Value {
        Value::from_serialize(self)
    }
}

/// The inner expression when `text` is exactly one `{{ … }}`.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Renders every string in a step's input. `field` names the input for errors (`input`).
pub fn render_input(
    input: &Json,
    ctx: &TemplateContext,
    field: &str,
) -> Result<Json, TemplateError> {
    if !contains_template(input) {
        return Ok(input.clone());
    }
    let value = ctx.to_value();
    render_json(input, &value, field)
}

fn contains_template(input: &Json) -> bool {
    match input {
        Json::String(s) => is_template(s),
        Json::Array(items) => items.iter().any(contains_template),
        Json::Object(map) => map.values().any(contains_template),
        _ => false,
    }
}

fn render_json(input: &Json, ctx: &Value, field: &str) -> Result<Json, TemplateError> {
    Ok(match input {
        Json::String(s) if is_template(s) => {
            render_string(s, ctx).map_err(|message| TemplateError {
                field: field.to_owned(),
                message,
            })?
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_json(item, ctx, &format!("{field}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, ctx, &format!("{field}.{k}"))?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

fn render_string(text: &str, ctx: &Value) -> Result<Json, String> {
    if let Some(expr) = single_expression(text) {
        let compiled = ENV.compile_expression(expr).map_err(describe)?;
        let value = compiled.eval(ctx).map_err(describe)?;
        return serde_json::to_value(&value).map_err(|e| e.to_string());
    }
    ENV.render_str(text, ctx)
        .map(Json::String)
        .map_err(describe)
}

/// Evaluates a `when` condition with Jinja truthiness.
pub fn eval_condition(expr: &str, ctx: &TemplateContext) -> Result<bool, TemplateError> {
    let err = |message| TemplateError {
        field: "when".to_owned(),
        message,
    };
    let compiled = ENV.compile_expression(expr).map_err(|e| err(describe(e)))?;
    let value = compiled
        .eval(ctx.to_value())
        .map_err(|e| err(describe(e)))?;
    Ok(value.is_true())
}

fn describe(e: minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.to_string(),
    }
}

/// The variable paths a template string refers to (`inputs.name`, `steps.greet.output`), or why it
/// does not compile. Plain strings refer to nothing.
pub(crate) fn template_references(text: &str) -> Result<HashSet<String>, String> {
    if !is_template(text) {
        return Ok(HashSet::new());
    }
    if let Some(expr) = single_expression(text) {
        return expression_references(expr);
    }
    let template = ENV.template_from_str(text).map_err(describe)?;
    Ok(template.undeclared_variables(true))
}

/// The variable paths an expression refers to, or why it does not compile.
pub(crate) fn expression_references(expr: &str) -> Result<HashSet<String>, String> {
    let compiled = ENV.compile_expression(expr).map_err(describe)?;
    Ok(compiled.undeclared_variables(true))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> TemplateContext {
        let mut steps = serde_json::Map::new();
        steps.insert(
            "greet".into(),
            json!({"output": {"message": "Hello, Ada", "count": 3, "tags": ["a", "b"]}, "status": "completed"}),
        );
        TemplateContext {
            inputs: json!({"name": "Ada", "count": 3}),
            steps,
        }
    }

    #[test]
    fn single_expression_keeps_json_type() {
        let input = json!({"n": "{{ inputs.count }}", "tags": "{{ steps.greet.output.tags }}"});
        let out = render_input(&input, &ctx(), "input").unwrap();
        assert_eq!(out, json!({"n": 3, "tags": ["a", "b"]}));
    }

    #[test]
    fn mixed_text_renders_to_string() {
        let input = json!({"m": "{{ steps.greet.output.message }}!", "plain": "as is"});
        let out = render_input(&input, &ctx(), "input").unwrap();
        assert_eq!(out, json!({"m": "Hello, Ada!", "plain": "as is"}));
    }

    #[test]
    fn undefined_is_an_error_naming_the_field() {
        let input = json!({"m": ["x", "{{ inputs.missing.deeper }}"]});
        let err = render_input(&input, &ctx(), "input").unwrap_err();
        assert_eq!(err.field, "input.m[1]");
    }

    #[test]
    fn conditions_use_truthiness() {
        assert!(eval_condition("inputs.count > 1", &ctx()).unwrap());
        assert!(!eval_condition("inputs.count > 5", &ctx()).unwrap());
        assert!(eval_condition("inputs.count >", &ctx()).is_err());
    }

    #[test]
    fn references_are_found() {
        let refs =
            template_references("{{ steps.greet.output.message }} {{ inputs.name }}").unwrap();
        assert!(refs.iter().any(|r| r.starts_with("steps.greet")));
        assert!(refs.iter().any(|r| r.starts_with("inputs")));
        assert!(template_references("{{ oops(").is_err());
    }

    #[test]
    fn only_a_string_that_is_one_tag_keeps_its_json_type() {
        // The closing delimiter inside the literal makes this more than one tag to the check, so
        // it renders to text rather than being evaluated as an expression.
        let input =
            json!({"x": "{{ ['a', '}}'] }}", "y": "{{ inputs.name }} and {{ inputs.count }}"});
        let out = render_input(&input, &ctx(), "input").unwrap();
        assert!(out["x"].is_string(), "{out}");
        assert_eq!(out["y"], json!("Ada and 3"));
    }

    #[test]
    fn text_without_a_tag_is_left_as_written() {
        let input = json!({"m": "{{ inputs.name }}", "note": ["50% off {# not a comment"]});
        let out = render_input(&input, &ctx(), "input").unwrap();
        assert_eq!(
            out,
            json!({"m": "Ada", "note": ["50% off {# not a comment"]})
        );
        assert!(
            template_references("50% off {# not a comment")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn template_errors_say_what_went_wrong() {
        let err = render_input(
            &json!({"m": "{{ inputs.missing.deeper }}"}),
            &ctx(),
            "input",
        )
        .unwrap_err();
        assert!(err.message.contains("undefined"), "{err}");
        let err = eval_condition("inputs.count >", &ctx()).unwrap_err();
        assert_eq!(err.field, "when");
        assert!(err.message.contains("syntax error"), "{err}");
        let err = template_references("{{ oops( }}").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }
}
