//! Step inputs and `when` conditions are minijinja templates and expressions over `inputs.*` and
//! `steps.<id>.output.*`. A string that is exactly one `{{ expr }}` keeps the expression's JSON type,
//! so lists and numbers pass between steps intact; any other string renders to text. Every render
//! and condition runs within [`TemplateLimits`].

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock, Mutex},
};

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value, value::ValueKind};
use serde::Serialize;
use serde_json::Value as Json;

use crate::{
    TemplateError,
    limits::{
        Capped, TEMPLATE_FUEL_VAR, TEMPLATE_OUTPUT_BYTES_VAR, TemplateLimits, json_size_within,
    },
};

/// Templates as registration compiles them: no fuel, as compiling runs nothing.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| environment_with(None));

/// An environment that runs templates on this much fuel.
type Fuelled = (u64, Arc<Environment<'static>>);

/// One environment per fuel a process uses (minijinja keeps the fuel on the environment); a
/// process configures one, tests a few.
static FUELLED: LazyLock<Mutex<Vec<Fuelled>>> = LazyLock::new(Mutex::default);

fn environment_with(fuel: Option<u64>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(fuel);
    env
}

fn environment(fuel: u64) -> Arc<Environment<'static>> {
    let mut envs = FUELLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, env)) = envs.iter().find(|(f, _)| *f == fuel) {
        return env.clone();
    }
    let env = Arc::new(environment_with(Some(fuel)));
    envs.push((fuel, env.clone()));
    env
}

/// An environment and the limits it renders under.
struct Renderer<'a> {
    env: Arc<Environment<'static>>,
    limits: &'a TemplateLimits,
}

impl<'a> Renderer<'a> {
    fn new(limits: &'a TemplateLimits) -> Self {
        Self {
            env: environment(limits.fuel),
            limits,
        }
    }

    fn too_large(&self) -> String {
        format!(
            "template output exceeds {} bytes ({TEMPLATE_OUTPUT_BYTES_VAR})",
            self.limits.max_output_bytes
        )
    }

    /// Says what went wrong, naming the limit when one was hit.
    fn describe(&self, e: minijinja::Error) -> String {
        if e.kind() == ErrorKind::OutOfFuel {
            return format!(
                "template evaluation exceeded its fuel of {} ({TEMPLATE_FUEL_VAR})",
                self.limits.fuel
            );
        }
        describe(e)
    }
}

/// What templates can see: the run's inputs and the finished steps, and `secrets.NAME`, which
/// renders to itself (see [`secret_placeholder`]).
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

    /// With `secrets.NAME` rendering to placeholders that carry `nonce`.
    fn to_value_with_secrets(&self, nonce: &str) -> Value {
        minijinja::context! {
            inputs => Value::from_serialize(&self.inputs),
            steps => Value::from_serialize(&self.steps),
            secrets => Value::from_object(SecretPlaceholders { nonce: nonce.to_owned() }),
        }
    }
}

/// The step kinds whose workers resolve `{{ secrets.NAME }}` in their input.
pub const SECRET_KINDS: &[&str] = &["http"];

/// Whether `name` can name a secret: ASCII letters, digits and `_`.
pub fn is_secret_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What `{{ secrets.NAME }}` renders to for a dispatch whose job carries `nonce`: a
/// placeholder only the worker that sends the request fills in, so the engine never holds the
/// value. Text from run inputs or step outputs cannot forge one, as the nonce is new with each
/// dispatch.
pub fn secret_placeholder(name: &str, nonce: &str) -> String {
    format!("{{{{ secrets.{name}:{nonce} }}}}")
}

/// `secrets`: every attribute is its placeholder.
#[derive(Debug)]
struct SecretPlaceholders {
    nonce: String,
}

impl minijinja::value::Object for SecretPlaceholders {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        is_secret_name(name).then(|| Value::from(secret_placeholder(name, &self.nonce)))
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

/// Renders every string in a step's input, each within `limits`. `field` names the input for
/// errors (`input`).
pub fn render_input(
    input: &Json,
    ctx: &TemplateContext,
    field: &str,
    limits: &TemplateLimits,
) -> Result<Json, TemplateError> {
    if !contains_template(input) {
        return Ok(input.clone());
    }
    let value = ctx.to_value();
    render_json(input, &value, field, &Renderer::new(limits))
}

/// [`render_input`] for a step whose worker resolves secrets: `{{ secrets.NAME }}` renders to
/// [`secret_placeholder`] with `nonce`.
pub fn render_input_with_secrets(
    input: &Json,
    ctx: &TemplateContext,
    field: &str,
    limits: &TemplateLimits,
    nonce: &str,
) -> Result<Json, TemplateError> {
    if !contains_template(input) {
        return Ok(input.clone());
    }
    let value = ctx.to_value_with_secrets(nonce);
    render_json(input, &value, field, &Renderer::new(limits))
}

fn contains_template(input: &Json) -> bool {
    match input {
        Json::String(s) => is_template(s),
        Json::Array(items) => items.iter().any(contains_template),
        Json::Object(map) => map.values().any(contains_template),
        _ => false,
    }
}

fn render_json(
    input: &Json,
    ctx: &Value,
    field: &str,
    renderer: &Renderer<'_>,
) -> Result<Json, TemplateError> {
    Ok(match input {
        Json::String(s) if is_template(s) => {
            render_string(s, ctx, renderer).map_err(|message| TemplateError {
                field: field.to_owned(),
                message,
            })?
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| render_json(item, ctx, &format!("{field}[{i}]"), renderer))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let rendered = render_json(v, ctx, &format!("{field}.{k}"), renderer)?;
                    Ok((k.clone(), rendered))
                })
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// One template string. A single expression's value is measured as JSON before it is converted;
/// text is written through a [`Capped`] writer, so the render stops at the limit.
fn render_string(text: &str, ctx: &Value, renderer: &Renderer<'_>) -> Result<Json, String> {
    let env = &renderer.env;
    if let Some(expr) = single_expression(text) {
        let compiled = env.compile_expression(expr).map_err(describe)?;
        let value = compiled.eval(ctx).map_err(|e| renderer.describe(e))?;
        let max = renderer.limits.max_output_bytes;
        if surely_longer_than(&value, max) || !json_size_within(&value, max) {
            return Err(renderer.too_large());
        }
        return serde_json::to_value(&value).map_err(|e| e.to_string());
    }
    let template = env.template_from_str(text).map_err(describe)?;
    let mut out = Capped::keeping(renderer.limits.max_output_bytes);
    match template.render_captured_to(ctx, &mut out) {
        Ok(_) => {}
        Err(_) if out.over => return Err(renderer.too_large()),
        Err(e) => return Err(renderer.describe(e)),
    }
    // minijinja writes only whole `str`s, so the text is UTF-8.
    String::from_utf8(out.text)
        .map(Json::String)
        .map_err(|e| e.to_string())
}

/// True when `value`'s JSON text is certainly longer than `max` bytes, found from the lengths of
/// its strings and sequences without reading their text: JSON-writing a huge string scans all of
/// it for escapes first, which a 100 MB string makes slow.
fn surely_longer_than(value: &Value, max: usize) -> bool {
    let mut budget = max;
    !fits_lower_bound(value, &mut budget)
}

/// Takes a lower bound of `value`'s JSON length from `budget`; false once the budget runs out.
fn fits_lower_bound(value: &Value, budget: &mut usize) -> bool {
    let mut take = |n: usize| match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    };
    match value.kind() {
        ValueKind::String => take(value.as_str().map_or(0, str::len) + 2),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
            // Brackets and commas, before looking at any item.
            let items = value.len().unwrap_or(0);
            if !take(items.saturating_add(1)) {
                return false;
            }
            let Ok(iter) = value.try_iter() else {
                return true;
            };
            let is_map = value.kind() == ValueKind::Map;
            iter.into_iter().all(|item| {
                // A map iterates its keys.
                let member = is_map.then(|| value.get_item(&item).unwrap_or_default());
                fits_lower_bound(&item, budget)
                    && member.is_none_or(|member| fits_lower_bound(&member, budget))
            })
        }
        _ => take(1),
    }
}

/// Evaluates a `when` condition with Jinja truthiness, within `limits`' fuel.
pub fn eval_condition(
    expr: &str,
    ctx: &TemplateContext,
    limits: &TemplateLimits,
) -> Result<bool, TemplateError> {
    let err = |message| TemplateError {
        field: "when".to_owned(),
        message,
    };
    let renderer = Renderer::new(limits);
    let compiled = renderer
        .env
        .compile_expression(expr)
        .map_err(|e| err(describe(e)))?;
    let value = compiled
        .eval(ctx.to_value())
        .map_err(|e| err(renderer.describe(e)))?;
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

    fn limits() -> TemplateLimits {
        TemplateLimits::default()
    }

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
        let out = render_input(&input, &ctx(), "input", &limits()).unwrap();
        assert_eq!(out, json!({"n": 3, "tags": ["a", "b"]}));
    }

    #[test]
    fn mixed_text_renders_to_string() {
        let input = json!({"m": "{{ steps.greet.output.message }}!", "plain": "as is"});
        let out = render_input(&input, &ctx(), "input", &limits()).unwrap();
        assert_eq!(out, json!({"m": "Hello, Ada!", "plain": "as is"}));
    }

    #[test]
    fn undefined_is_an_error_naming_the_field() {
        let input = json!({"m": ["x", "{{ inputs.missing.deeper }}"]});
        let err = render_input(&input, &ctx(), "input", &limits()).unwrap_err();
        assert_eq!(err.field, "input.m[1]");
    }

    #[test]
    fn secrets_render_to_their_placeholders() {
        let input = json!({
            "auth": "Bearer {{ secrets.API_TOKEN }}",
            "alone": "{{ secrets.KEY }}",
            "n": "{{ inputs.count }}",
        });
        let out = render_input_with_secrets(&input, &ctx(), "input", &limits(), "n0nce").unwrap();
        assert_eq!(
            out,
            json!({
                "auth": "Bearer {{ secrets.API_TOKEN:n0nce }}",
                "alone": "{{ secrets.KEY:n0nce }}",
                "n": 3,
            })
        );
        // Without a nonce there are no secrets to render.
        assert!(render_input(&input, &ctx(), "input", &limits()).is_err());
    }

    #[test]
    fn conditions_use_truthiness() {
        assert!(eval_condition("inputs.count > 1", &ctx(), &limits()).unwrap());
        assert!(!eval_condition("inputs.count > 5", &ctx(), &limits()).unwrap());
        assert!(eval_condition("inputs.count >", &ctx(), &limits()).is_err());
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
        let out = render_input(&input, &ctx(), "input", &limits()).unwrap();
        assert!(out["x"].is_string(), "{out}");
        assert_eq!(out["y"], json!("Ada and 3"));
    }

    #[test]
    fn text_without_a_tag_is_left_as_written() {
        let input = json!({"m": "{{ inputs.name }}", "note": ["50% off {# not a comment"]});
        let out = render_input(&input, &ctx(), "input", &limits()).unwrap();
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
            &limits(),
        )
        .unwrap_err();
        assert!(err.message.contains("undefined"), "{err}");
        let err = eval_condition("inputs.count >", &ctx(), &limits()).unwrap_err();
        assert_eq!(err.field, "when");
        assert!(err.message.contains("syntax error"), "{err}");
        let err = template_references("{{ oops( }}").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }

    fn small(max_output_bytes: usize, fuel: u64) -> TemplateLimits {
        TemplateLimits {
            max_output_bytes,
            fuel,
        }
    }

    const TOO_LARGE: &str =
        "template output exceeds 1048576 bytes (BATON_MAX_TEMPLATE_OUTPUT_BYTES)";

    #[test]
    fn a_huge_string_fails_naming_the_output_limit() {
        // minijinja builds the repeated string (it refuses only past 100 MB); the value is
        // measured before it is converted or copied.
        for template in ["{{ 'x' * 100000000 }}", "a{{ 'x' * 100000000 }}"] {
            let started = std::time::Instant::now();
            let err =
                render_input(&json!({"m": template}), &ctx(), "input", &limits()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("input.m: {TOO_LARGE}"),
                "{template}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
    }

    #[test]
    fn the_output_limit_is_the_bytes_of_the_text_or_the_json() {
        let input = json!({"text": "{{ 'ab' * 5 }}!", "list": "{{ [1, 2, 3] }}"});
        let out = render_input(&input, &ctx(), "input", &small(11, 1_000)).unwrap();
        assert_eq!(out, json!({"text": "ababababab!", "list": [1, 2, 3]}));
        let err = render_input(&input, &ctx(), "input", &small(10, 1_000)).unwrap_err();
        assert_eq!(err.field, "input.text");
        assert_eq!(
            err.message,
            "template output exceeds 10 bytes (BATON_MAX_TEMPLATE_OUTPUT_BYTES)"
        );
        // `[1,2,3]` is 7 bytes of JSON.
        let list = json!({"list": "{{ [1, 2, 3] }}"});
        assert!(render_input(&list, &ctx(), "input", &small(7, 1_000)).is_ok());
        let err = render_input(&list, &ctx(), "input", &small(6, 1_000)).unwrap_err();
        assert_eq!(err.field, "input.list");
    }

    #[test]
    fn a_loop_stops_at_the_output_limit_before_its_fuel_runs_out() {
        let input = json!({"m": "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}"});
        let err = render_input(&input, &ctx(), "input", &small(10_000, 1_000_000)).unwrap_err();
        assert!(err.message.contains("exceeds 10000 bytes"), "{err}");
    }

    #[test]
    fn a_long_evaluation_fails_naming_the_fuel() {
        let started = std::time::Instant::now();
        let input = json!({
            "m": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        });
        let err = render_input(&input, &ctx(), "input", &limits()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "input.m: template evaluation exceeded its fuel of 100000 (BATON_TEMPLATE_FUEL)"
        );
        let err = render_input(
            &json!({"n": "{% for i in range(100) %}{{ i }}{% endfor %}"}),
            &ctx(),
            "input",
            &small(1_000, 50),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "template evaluation exceeded its fuel of 50 (BATON_TEMPLATE_FUEL)"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn conditions_run_on_the_fuel_they_are_given() {
        let when = "range(1000) | select('odd') | list | length > 1";
        assert!(eval_condition(when, &ctx(), &small(10, 100_000)).unwrap());
        let sum = "inputs.count + inputs.count + inputs.count + inputs.count > 1";
        assert!(eval_condition(sum, &ctx(), &small(10, 100)).unwrap());
        let err = eval_condition(sum, &ctx(), &small(10, 5)).unwrap_err();
        assert_eq!(err.field, "when");
        assert_eq!(
            err.message,
            "template evaluation exceeded its fuel of 5 (BATON_TEMPLATE_FUEL)"
        );
    }

    #[test]
    fn a_value_is_judged_by_its_json_length() {
        for (value, len) in [
            (json!("abc"), 5),
            (json!([1, 2, 3]), 7),
            (json!([]), 2),
            (json!({"ab": [1, "c"], "d": null}), 23),
            (json!([[["x"]]]), 9),
        ] {
            let minijinja = Value::from_serialize(&value);
            assert!(!surely_longer_than(&minijinja, len), "{value}");
            assert_eq!(value.to_string().len(), len, "{value}");
        }
        let huge = Value::from("x".repeat(100));
        assert!(surely_longer_than(&huge, 101));
        assert!(!surely_longer_than(&huge, 102));
        let many = Value::from_serialize(vec![0; 1_000]);
        assert!(surely_longer_than(&many, 1_000));
    }

    #[test]
    fn templates_within_the_limits_render_as_before() {
        let input = json!({"m": "{% for t in steps.greet.output.tags %}{{ t }}{% endfor %}"});
        let out = render_input(&input, &ctx(), "input", &small(2, 1_000)).unwrap();
        assert_eq!(out, json!({"m": "ab"}));
    }
}
