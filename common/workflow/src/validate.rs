//! Validation turns a parsed definition into a [`CompiledWorkflow`]: ids unique, dependencies
//! known and acyclic, kinds known, templates compiling and referring only to `inputs` and to steps
//! the step depends on. Everything a run relies on is checked here, once, at registration.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use crate::{
    DefinitionError, StepDefinition, WorkflowDefinition,
    template::{expression_references, template_references},
};

/// Largest definition text accepted.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;
/// Most steps one definition may have.
pub const MAX_STEPS: usize = 1_000;
/// Kinds the workflow-runner executes itself.
pub const BUILTIN_KINDS: &[&str] = &["noop", "echo", "sleep", "fail"];
/// Most attempts a retry policy may ask for.
const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// A validated definition with its DAG indexed for planning.
#[derive(Debug, Clone)]
pub struct CompiledWorkflow {
    pub definition: WorkflowDefinition,
    /// For each step, the indexes of the steps it needs.
    pub needs: Vec<Vec<usize>>,
    /// For each step, the indexes of the steps that need it.
    pub dependents: Vec<Vec<usize>>,
    index: HashMap<String, usize>,
}

impl CompiledWorkflow {
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn steps(&self) -> &[StepDefinition] {
        &self.definition.steps
    }

    /// `owner/name@version`.
    pub fn workflow_ref(&self) -> String {
        let d = &self.definition;
        format!("{}/{}@{}", d.owner, d.name, d.version)
    }

    /// The normalised definition as canonical JSON (keys sorted), the basis of the digest.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&self.definition).unwrap_or_default()
    }

    /// SHA-256 of [`Self::canonical_json`], hex.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(self.canonical_json().as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Validates a definition. `extra_kinds` are the kinds served by workers outside the runner.
pub fn compile(
    definition: WorkflowDefinition,
    extra_kinds: &[String],
) -> Result<CompiledWorkflow, DefinitionError> {
    compile_with(definition, Some(extra_kinds))
}

/// Compiles a definition that was validated when it was registered. Kinds are not checked again:
/// the service that registered it knew them.
pub fn compile_registered(
    definition: WorkflowDefinition,
) -> Result<CompiledWorkflow, DefinitionError> {
    compile_with(definition, None)
}

fn compile_with(
    definition: WorkflowDefinition,
    extra_kinds: Option<&[String]>,
) -> Result<CompiledWorkflow, DefinitionError> {
    check_identity(&definition)?;
    let steps = &definition.steps;
    if steps.is_empty() {
        return Err(DefinitionError::Field {
            field: "steps".into(),
            message: "a workflow needs at least one step".into(),
        });
    }
    if steps.len() > MAX_STEPS {
        return Err(DefinitionError::TooManySteps {
            count: steps.len(),
            limit: MAX_STEPS,
        });
    }
    if let Some(c) = &definition.execution.concurrency
        && c.max_parallel == Some(0)
    {
        return Err(DefinitionError::Field {
            field: "execution.concurrency.maxParallel".into(),
            message: "must be at least 1".into(),
        });
    }

    let mut index = HashMap::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        check_step_id(&step.id)?;
        if index.insert(step.id.clone(), i).is_some() {
            return Err(DefinitionError::DuplicateStep(step.id.clone()));
        }
    }

    let mut needs = Vec::with_capacity(steps.len());
    for step in steps {
        let mut seen = HashSet::new();
        let mut step_needs = Vec::with_capacity(step.needs.len());
        for need in &step.needs {
            let &j = index
                .get(need)
                .ok_or_else(|| DefinitionError::UnknownNeed {
                    step: step.id.clone(),
                    need: need.clone(),
                })?;
            if seen.insert(j) {
                step_needs.push(j);
            }
        }
        needs.push(step_needs);
    }
    if let Some(cycle) = find_cycle(&needs) {
        return Err(DefinitionError::Cycle(
            cycle.into_iter().map(|i| steps[i].id.clone()).collect(),
        ));
    }
    let mut dependents = vec![Vec::new(); steps.len()];
    for (i, step_needs) in needs.iter().enumerate() {
        for &j in step_needs {
            dependents[j].push(i);
        }
    }

    let ancestors = ancestors(&needs);
    for (i, step) in steps.iter().enumerate() {
        if let Some(extra_kinds) = extra_kinds {
            check_kind(step, extra_kinds)?;
        }
        check_retry_and_timeout(step)?;
        check_builtin_input(step)?;
        let allowed: HashSet<&str> = ancestors[i].iter().map(|&j| steps[j].id.as_str()).collect();
        check_templates(step, &allowed)?;
    }

    Ok(CompiledWorkflow {
        definition,
        needs,
        dependents,
        index,
    })
}

fn check_identity(d: &WorkflowDefinition) -> Result<(), DefinitionError> {
    for (field, value) in [("owner", &d.owner), ("name", &d.name)] {
        let ok = !value.is_empty()
            && value.len() <= 100
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(DefinitionError::Field {
                field: field.into(),
                message: format!("`{value}` must be 1 to 100 letters, digits, `-`, `_` or `.`"),
            });
        }
    }
    if d.version == 0 {
        return Err(DefinitionError::Field {
            field: "version".into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

fn check_step_id(id: &str) -> Result<(), DefinitionError> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DefinitionError::step(
            id,
            "id",
            "must start with a letter or `_` and hold only letters, digits, `_` or `-` (at most 100)",
        ))
    }
}

fn check_kind(step: &StepDefinition, extra_kinds: &[String]) -> Result<(), DefinitionError> {
    if BUILTIN_KINDS.contains(&step.kind.as_str()) || extra_kinds.contains(&step.kind) {
        return Ok(());
    }
    let known: Vec<&str> = BUILTIN_KINDS
        .iter()
        .copied()
        .chain(extra_kinds.iter().map(String::as_str))
        .collect();
    Err(DefinitionError::UnknownKind {
        step: step.id.clone(),
        kind: step.kind.clone(),
        known: known.join(", "),
    })
}

fn check_retry_and_timeout(step: &StepDefinition) -> Result<(), DefinitionError> {
    if let Some(retry) = &step.retry {
        if retry.max_attempts == 0 || retry.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(DefinitionError::step(
                &step.id,
                "retry.max_attempts",
                format!("must be from 1 to {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        if retry.initial > retry.max {
            return Err(DefinitionError::step(
                &step.id,
                "retry.initial",
                "must not exceed retry.max",
            ));
        }
        if !(retry.multiplier >= 1.0 && retry.multiplier <= 100.0) {
            return Err(DefinitionError::step(
                &step.id,
                "retry.multiplier",
                "must be from 1 to 100",
            ));
        }
        if !(0.0..=1.0).contains(&retry.jitter) {
            return Err(DefinitionError::step(
                &step.id,
                "retry.jitter",
                "must be from 0 to 1",
            ));
        }
    }
    if step.timeout.is_some_and(|t| t.0.is_zero()) {
        return Err(DefinitionError::step(
            &step.id,
            "timeout",
            "must be more than zero",
        ));
    }
    Ok(())
}

/// Kinds Baton knows check what they can before a run: a literal value must have the right type
/// (`http`: [`crate::http::check_http_input`]).
fn check_builtin_input(step: &StepDefinition) -> Result<(), DefinitionError> {
    let input = &step.input;
    if !(input.is_null() || input.is_object()) {
        return Err(DefinitionError::step(
            &step.id,
            "input",
            "must be a mapping",
        ));
    }
    let literal = |key: &str| {
        input
            .get(key)
            .filter(|v| !v.as_str().is_some_and(|s| s.contains("{{")))
    };
    match step.kind.as_str() {
        "sleep" => match input.get("duration") {
            None => {
                return Err(DefinitionError::step(
                    &step.id,
                    "input.duration",
                    "is required for `sleep`",
                ));
            }
            Some(_) => {
                if let Some(v) = literal("duration") {
                    let text = v.as_str().ok_or_else(|| {
                        DefinitionError::step(
                            &step.id,
                            "input.duration",
                            "must be a duration such as `200ms`",
                        )
                    })?;
                    text.parse::<crate::Duration>()
                        .map_err(|m| DefinitionError::step(&step.id, "input.duration", m))?;
                }
            }
        },
        "http" => {
            crate::http::check_http_input(input)
                .map_err(|(field, reason)| DefinitionError::step(&step.id, &field, reason))?;
        }
        "fail" => {
            if let Some(v) = literal("times")
                && !v.is_u64()
            {
                return Err(DefinitionError::step(
                    &step.id,
                    "input.times",
                    "must be a whole number",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_templates(
    step: &StepDefinition,
    allowed_steps: &HashSet<&str>,
) -> Result<(), DefinitionError> {
    if let Some(when) = &step.when {
        let refs =
            expression_references(when).map_err(|m| DefinitionError::step(&step.id, "when", m))?;
        check_references(step, "when", &refs, allowed_steps)?;
    }
    let mut strings = Vec::new();
    collect_strings(&step.input, "input".to_owned(), &mut strings);
    for (field, text) in strings {
        let refs =
            template_references(text).map_err(|m| DefinitionError::step(&step.id, &field, m))?;
        check_references(step, &field, &refs, allowed_steps)?;
    }
    Ok(())
}

fn collect_strings<'a>(value: &'a Json, field: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Json::String(s) => out.push((field, s)),
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(item, format!("{field}[{i}]"), out);
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                collect_strings(v, format!("{field}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn check_references(
    step: &StepDefinition,
    field: &str,
    refs: &HashSet<String>,
    allowed_steps: &HashSet<&str>,
) -> Result<(), DefinitionError> {
    let mut refs: Vec<&String> = refs.iter().collect();
    refs.sort();
    for reference in refs {
        let mut parts = reference.split('.');
        match parts.next() {
            Some("inputs") => {}
            Some("steps") => match parts.next() {
                Some(id) if allowed_steps.contains(id) => {}
                Some(id) => {
                    return Err(DefinitionError::step(
                        &step.id,
                        field,
                        format!(
                            "refers to `steps.{id}`, which is not a step this one needs (directly or through its needs)"
                        ),
                    ));
                }
                None => {}
            },
            Some("secrets") => check_secret(step, field, parts.next())?,
            Some(other) => {
                return Err(DefinitionError::step(
                    &step.id,
                    field,
                    format!("unknown variable `{other}`; templates can use `inputs` and `steps`"),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// `secrets.NAME` is for the inputs of the kinds whose workers resolve it; the engine never
/// sees a secret's value, only the placeholder it leaves in the rendered input.
fn check_secret(
    step: &StepDefinition,
    field: &str,
    name: Option<&str>,
) -> Result<(), DefinitionError> {
    let refuse = |message: String| Err(DefinitionError::step(&step.id, field, message));
    if field == "when" {
        return refuse(
            "`secrets` cannot be used in a condition, only in an http step's input".into(),
        );
    }
    match name {
        Some(name) if crate::template::is_secret_name(name) => {}
        Some(name) => {
            return refuse(format!(
                "`secrets.{name}`: a secret's name is letters, digits and `_`"
            ));
        }
        None => return refuse("name the secret: `{{ secrets.NAME }}`".into()),
    }
    if !crate::template::SECRET_KINDS.contains(&step.kind.as_str()) {
        return refuse(format!(
            "`secrets` can be used only in the input of {} steps, whose worker resolves them",
            crate::template::SECRET_KINDS.join(", ")
        ));
    }
    Ok(())
}

/// A cycle as step indexes, first step repeated at the end, or `None` for a DAG.
fn find_cycle(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; needs.len()];
    for start in 0..needs.len() {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS: a stack of (node, next edge to follow).
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Active;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = needs[node].get(*edge) {
                *edge += 1;
                match mark[next] {
                    Mark::New => {
                        mark[next] = Mark::Active;
                        stack.push((next, 0));
                    }
                    Mark::Active => {
                        let pos = stack.iter().position(|&(n, _)| n == next).unwrap_or(0);
                        // The stack runs from a step to what it needs; a cycle reads best in
                        // dependency order, so reverse it.
                        let mut cycle: Vec<usize> = stack[pos..].iter().map(|&(n, _)| n).collect();
                        cycle.reverse();
                        // Start at the step written first, so the message is stable.
                        let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                        cycle.rotate_left(first);
                        cycle.push(cycle[0]);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// For each step, every step it depends on directly or transitively. Needs a DAG.
fn ancestors(needs: &[Vec<usize>]) -> Vec<HashSet<usize>> {
    let order = topological_order(needs);
    let mut result: Vec<HashSet<usize>> = vec![HashSet::new(); needs.len()];
    for i in order {
        let mut set = HashSet::new();
        for &j in &needs[i] {
            set.insert(j);
            set.extend(result[j].iter().copied());
        }
        result[i] = set;
    }
    result
}

fn topological_order(needs: &[Vec<usize>]) -> Vec<usize> {
    let mut remaining: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); needs.len()];
    for (i, n) in needs.iter().enumerate() {
        for &j in n {
            dependents[j].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..needs.len()).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(needs.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                ready.push(d);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DefinitionFormat, parse_definition};

    fn compile_yaml(text: &str) -> Result<CompiledWorkflow, DefinitionError> {
        compile(parse_definition(text, DefinitionFormat::Yaml)?, &[])
    }

    const HEAD: &str = "owner: t\nname: w\nversion: 1\nsteps:\n";

    #[test]
    fn hello_example_compiles() {
        let text = include_str!("../../../examples/hello.yaml");
        let wf = compile(parse_definition(text, DefinitionFormat::Auto).unwrap(), &[]).unwrap();
        assert_eq!(wf.workflow_ref(), "examples/hello@1");
        assert_eq!(wf.dependents[wf.step_index("greet").unwrap()].len(), 2);
        assert_eq!(wf.digest().len(), 64);
    }

    #[test]
    fn cycle_is_named() {
        let err = compile_yaml(&format!(
            "{HEAD}  - {{id: a, kind: noop, needs: [c]}}\n  - {{id: b, kind: noop, needs: [a]}}\n  - {{id: c, kind: noop, needs: [b]}}\n"
        ))
        .unwrap_err();
        let DefinitionError::Cycle(cycle) = &err else {
            panic!("{err}")
        };
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        assert!(err.to_string().contains("->"), "{err}");
    }

    #[test]
    fn self_need_is_a_cycle() {
        let err =
            compile_yaml(&format!("{HEAD}  - {{id: a, kind: noop, needs: [a]}}\n")).unwrap_err();
        assert_eq!(err, DefinitionError::Cycle(vec!["a".into(), "a".into()]));
    }

    #[test]
    fn each_error_names_its_step() {
        let cases = [
            (
                "  - {id: a, kind: noop, needs: [zz]}\n",
                "step `a`: needs: unknown step `zz`",
            ),
            (
                "  - {id: a, kind: noop}\n  - {id: a, kind: noop}\n",
                "duplicate step id `a`",
            ),
            (
                "  - {id: a, kind: teleport}\n",
                "step `a`: kind: unknown kind `teleport`",
            ),
            (
                "  - {id: a, kind: echo, input: {m: '{{ oops( }}'}}\n",
                "step `a`: input.m:",
            ),
            (
                "  - {id: a, kind: noop, when: 'inputs.x >'}\n",
                "step `a`: when:",
            ),
            (
                "  - {id: a, kind: noop}\n  - {id: b, kind: echo, input: {m: '{{ steps.a.output }}'}}\n",
                "step `b`: input.m: refers to `steps.a`",
            ),
            (
                "  - {id: a, kind: echo, input: {m: '{{ secrets.key }}'}}\n",
                "step `a`: input.m: `secrets` can be used only in the input of http steps",
            ),
            (
                "  - {id: a, kind: noop, when: 'secrets.key'}\n",
                "step `a`: when: `secrets` cannot be used in a condition",
            ),
            (
                "  - {id: a, kind: echo, input: {url: '{{ secrets }}'}}\n",
                "step `a`: input.url: name the secret",
            ),
            (
                "  - {id: a, kind: sleep}\n",
                "step `a`: input.duration: is required",
            ),
            (
                "  - {id: a, kind: sleep, input: {duration: soon}}\n",
                "step `a`: input.duration:",
            ),
            (
                "  - {id: a, kind: noop, retry: {max_attempts: 0}}\n",
                "step `a`: retry.max_attempts",
            ),
            ("  - {id: 'bad id', kind: noop}\n", "step `bad id`: id:"),
        ];
        for (steps, expected) in cases {
            let err = compile_yaml(&format!("{HEAD}{steps}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "expected `{expected}` in `{err}`");
        }
    }

    #[test]
    fn transitive_references_are_allowed() {
        compile_yaml(&format!(
            "{HEAD}  - {{id: a, kind: echo, input: {{x: 1}}}}\n  - {{id: b, kind: noop, needs: [a]}}\n  - {{id: c, kind: echo, needs: [b], input: {{x: '{{{{ steps.a.output.x }}}}'}}}}\n"
        ))
        .unwrap();
    }

    #[test]
    fn limits_are_enforced() {
        let mut text = String::from(HEAD);
        for i in 0..=MAX_STEPS {
            text.push_str(&format!("  - {{id: s{i}, kind: noop}}\n"));
        }
        assert!(matches!(
            compile_yaml(&text),
            Err(DefinitionError::TooManySteps { .. })
        ));
        let huge = format!("{HEAD}# {}\n", "x".repeat(MAX_DEFINITION_BYTES));
        assert!(matches!(
            parse_definition(&huge, DefinitionFormat::Yaml),
            Err(DefinitionError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            compile_yaml(&format!("{HEAD}  - {{id: a, kind: noop, neds: [b]}}\n")).unwrap_err();
        assert!(err.to_string().contains("neds"), "{err}");
    }

    #[test]
    fn an_http_step_may_use_secrets_in_its_input() {
        let text = format!(
            "{HEAD}  - {{id: a, kind: http, input: {{url: 'https://api.example/{{{{ secrets.PATH_KEY }}}}', headers: {{authorization: 'Bearer {{{{ secrets.API_TOKEN }}}}'}}}}}}\n"
        );
        let wf = compile(
            parse_definition(&text, DefinitionFormat::Yaml).unwrap(),
            &["http".to_owned()],
        );
        assert!(wf.is_ok(), "{wf:?}");
    }

    fn compile_err(text: &str) -> String {
        match compile_yaml(text) {
            Ok(_) => panic!("compiled:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn steps_are_indexed_by_id_in_definition_order() {
        let wf = compile_yaml(&format!(
            "{HEAD}  - {{id: a, kind: noop}}\n  - {{id: b, kind: noop, needs: [a]}}\n"
        ))
        .unwrap();
        let ids: Vec<&str> = wf.steps().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(wf.step_index("a"), Some(0));
        assert_eq!(wf.step_index("b"), Some(1));
        assert_eq!(wf.step_index("c"), None);
    }

    #[test]
    fn the_digest_follows_the_content_not_the_format() {
        let yaml = compile_yaml(&format!("{HEAD}  - {{id: a, kind: noop}}\n")).unwrap();
        let json = compile(
            parse_definition(
                r#"{"version": 1, "name": "w", "owner": "t", "steps": [{"kind": "noop", "id": "a"}]}"#,
                DefinitionFormat::Json,
            )
            .unwrap(),
            &[],
        )
        .unwrap();
        assert_eq!(yaml.digest(), json.digest());
        let back: WorkflowDefinition = serde_json::from_str(&yaml.canonical_json()).unwrap();
        assert_eq!(back, yaml.definition);

        let described = compile_yaml(&format!(
            "description: other\n{HEAD}  - {{id: a, kind: noop}}\n"
        ))
        .unwrap();
        assert_ne!(described.digest(), yaml.digest());
    }

    #[test]
    fn a_definition_of_exactly_max_steps_compiles() {
        let mut text = String::from(HEAD);
        for i in 0..MAX_STEPS {
            text.push_str(&format!("  - {{id: s{i}, kind: noop}}\n"));
        }
        assert_eq!(compile_yaml(&text).unwrap().steps().len(), MAX_STEPS);
    }

    #[test]
    fn owner_name_and_version_are_checked() {
        let long = "a".repeat(100);
        let too_long = "a".repeat(101);
        for (owner, name) in [
            ("t", "w"),
            ("a-b_c.9", "W.1"),
            (long.as_str(), long.as_str()),
        ] {
            compile_yaml(&format!(
                "owner: '{owner}'\nname: '{name}'\nversion: 1\nsteps:\n  - {{id: a, kind: noop}}\n"
            ))
            .unwrap();
        }
        for (owner, name, field) in [
            ("", "w", "owner"),
            (too_long.as_str(), "w", "owner"),
            ("t/x", "w", "owner"),
            ("t", "", "name"),
            ("t", too_long.as_str(), "name"),
            ("t", "a b", "name"),
        ] {
            let err = compile_err(&format!(
                "owner: '{owner}'\nname: '{name}'\nversion: 1\nsteps:\n  - {{id: a, kind: noop}}\n"
            ));
            assert!(
                err.starts_with(&format!("{field}: ")),
                "`{owner}`/`{name}`: {err}"
            );
        }
        let err = compile_err("owner: t\nname: w\nversion: 0\nsteps:\n  - {id: a, kind: noop}\n");
        assert_eq!(err, "version: must be at least 1");
    }

    #[test]
    fn step_ids_start_with_a_letter_or_underscore() {
        compile_yaml(&format!(
            "{HEAD}  - {{id: _setup, kind: noop}}\n  - {{id: fetch-2_B, kind: noop}}\n"
        ))
        .unwrap();
        for bad in ["1a", "-a", "a.b", "a b"] {
            let err = compile_err(&format!("{HEAD}  - {{id: '{bad}', kind: noop}}\n"));
            assert!(err.starts_with(&format!("step `{bad}`: id:")), "{err}");
        }
    }

    #[test]
    fn retry_and_timeout_bounds_include_their_ends() {
        for retry in [
            "max_attempts: 1",
            "max_attempts: 100",
            "initial: 2s, max: 2s",
            "multiplier: 1",
            "multiplier: 100",
            "jitter: 0",
            "jitter: 1",
        ] {
            compile_yaml(&format!(
                "{HEAD}  - {{id: a, kind: noop, retry: {{{retry}}}, timeout: 1ms}}\n"
            ))
            .unwrap_or_else(|e| panic!("{retry}: {e}"));
        }
        for (retry, field) in [
            ("max_attempts: 0", "retry.max_attempts"),
            ("max_attempts: 101", "retry.max_attempts"),
            ("initial: 3s, max: 2s", "retry.initial"),
            ("multiplier: 0.5", "retry.multiplier"),
            ("multiplier: 101", "retry.multiplier"),
            ("jitter: -0.1", "retry.jitter"),
            ("jitter: 1.5", "retry.jitter"),
        ] {
            let err = compile_err(&format!(
                "{HEAD}  - {{id: a, kind: noop, retry: {{{retry}}}}}\n"
            ));
            assert!(
                err.starts_with(&format!("step `a`: {field}:")),
                "{retry}: {err}"
            );
        }
        let err = compile_err(&format!("{HEAD}  - {{id: a, kind: noop, timeout: 0s}}\n"));
        assert!(err.starts_with("step `a`: timeout:"), "{err}");
    }

    #[test]
    fn a_fail_step_fails_a_whole_number_of_times() {
        for times in ["2", "'{{ inputs.n }}'"] {
            compile_yaml(&format!(
                "{HEAD}  - {{id: a, kind: fail, input: {{times: {times}}}}}\n"
            ))
            .unwrap();
        }
        for times in ["often", "1.5", "-1"] {
            let err = compile_err(&format!(
                "{HEAD}  - {{id: a, kind: fail, input: {{times: {times}}}}}\n"
            ));
            assert!(err.starts_with("step `a`: input.times:"), "{times}: {err}");
        }
    }

    #[test]
    fn templates_inside_lists_are_checked() {
        let err = compile_err(&format!(
            "{HEAD}  - {{id: a, kind: echo, input: {{list: [plain, '{{{{ secrets.key }}}}']}}}}\n"
        ));
        assert!(
            err.starts_with("step `a`: input.list[1]: `secrets` can be used only"),
            "{err}"
        );
    }

    #[test]
    fn a_step_may_refer_to_any_step_up_its_chain_of_needs() {
        let wf = compile_yaml(&format!(
            "{HEAD}  - {{id: a, kind: echo, input: {{x: 1}}}}\n  - {{id: b, kind: noop, needs: [a]}}\n  - {{id: c, kind: noop, needs: [b]}}\n  - {{id: d, kind: echo, needs: [c], input: {{x: '{{{{ steps.a.output.x }}}}'}}}}\n"
        ))
        .unwrap();
        assert_eq!(wf.needs[3], [2]);
        assert_eq!(ancestors(&wf.needs)[3], HashSet::from([0, 1, 2]));
    }
}
