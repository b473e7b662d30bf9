//! The benchmark's workflow definitions, written as YAML text exactly as a user would register
//! them, so the bench exercises the same parsing and validation path as real clients.

use std::fmt::Write as _;

/// Owner of every benchmark workflow.
pub const OWNER: &str = "bench";

/// A definition to register, with the number of steps one run of it executes.
#[derive(Clone, Debug)]
pub struct Definition {
    pub yaml: String,
    pub steps: usize,
}

/// A chain of `len` noop steps `s0 → s1 → …`, each needing the previous one, one at a time.
pub fn chain(name: &str, len: usize) -> Definition {
    let mut yaml = header(name, 1);
    for i in 0..len {
        if i == 0 {
            yaml.push_str("  - {id: s0, kind: noop}\n");
        } else {
            let _ = writeln!(yaml, "  - {{id: s{i}, kind: noop, needs: [s{}]}}", i - 1);
        }
    }
    Definition { yaml, steps: len }
}

/// `start` → `width` parallel noop steps → `end` needing all of them, all branches at once.
pub fn fanout(name: &str, width: usize) -> Definition {
    let mut yaml = header(name, width.max(1));
    yaml.push_str("  - {id: start, kind: noop}\n");
    for i in 0..width {
        let _ = writeln!(yaml, "  - {{id: p{i}, kind: noop, needs: [start]}}");
    }
    end_needing(&mut yaml, "p", width);
    Definition {
        yaml,
        steps: width + 2,
    }
}

/// `start` → `width` parallel `http` GET steps → `end` needing all of them, all branches at once;
/// branch `i` gets `<base_url>/item/<i>`.
pub fn http_fanout(name: &str, width: usize, base_url: &str) -> Definition {
    let mut yaml = header(name, width.max(1));
    yaml.push_str("  - {id: start, kind: noop}\n");
    for i in 0..width {
        let _ = writeln!(
            yaml,
            "  - {{id: get{i}, kind: http, needs: [start], \
             input: {{method: GET, url: \"{base_url}/item/{i}\"}}}}"
        );
    }
    end_needing(&mut yaml, "get", width);
    Definition {
        yaml,
        steps: width + 2,
    }
}

/// The noop `end` step needing `<prefix>0` … `<prefix><width - 1>`.
fn end_needing(yaml: &mut String, prefix: &str, width: usize) {
    let needs: Vec<String> = (0..width).map(|i| format!("{prefix}{i}")).collect();
    let _ = writeln!(
        yaml,
        "  - {{id: end, kind: noop, needs: [{}]}}",
        needs.join(", ")
    );
}

fn header(name: &str, max_parallel: usize) -> String {
    format!(
        "owner: {OWNER}\nname: {name}\nversion: 1\n\
         execution: {{concurrency: {{maxParallel: {max_parallel}}}}}\nsteps:\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_yaml() {
        let d = chain("chain3", 3);
        assert_eq!(d.steps, 3);
        assert_eq!(
            d.yaml,
            "owner: bench\nname: chain3\nversion: 1\n\
             execution: {concurrency: {maxParallel: 1}}\nsteps:\n\
             \x20 - {id: s0, kind: noop}\n\
             \x20 - {id: s1, kind: noop, needs: [s0]}\n\
             \x20 - {id: s2, kind: noop, needs: [s1]}\n"
        );
    }

    #[test]
    fn fanout_yaml() {
        let d = fanout("fan2", 2);
        assert_eq!(d.steps, 4);
        assert!(d.yaml.contains("maxParallel: 2}"));
        assert!(
            d.yaml
                .contains("  - {id: p1, kind: noop, needs: [start]}\n")
        );
        assert!(
            d.yaml
                .ends_with("  - {id: end, kind: noop, needs: [p0, p1]}\n")
        );
    }

    #[test]
    fn http_fanout_yaml() {
        let d = http_fanout("http2", 2, "http://127.0.0.1:4000");
        assert_eq!(d.steps, 4);
        assert_eq!(
            d.yaml,
            "owner: bench\nname: http2\nversion: 1\n\
             execution: {concurrency: {maxParallel: 2}}\nsteps:\n\
             \x20 - {id: start, kind: noop}\n\
             \x20 - {id: get0, kind: http, needs: [start], \
             input: {method: GET, url: \"http://127.0.0.1:4000/item/0\"}}\n\
             \x20 - {id: get1, kind: http, needs: [start], \
             input: {method: GET, url: \"http://127.0.0.1:4000/item/1\"}}\n\
             \x20 - {id: end, kind: noop, needs: [get0, get1]}\n"
        );
    }

    /// Every definition passes the validation registration runs, the http steps' input included.
    #[test]
    fn definitions_validate() {
        use baton_workflow::{DefinitionFormat, compile, parse_definition};

        let http = vec!["http".to_owned()];
        for d in [
            chain("chain10", 10),
            fanout("fanout100", 100),
            http_fanout("http20", 20, "http://127.0.0.1:4000"),
        ] {
            let parsed = parse_definition(&d.yaml, DefinitionFormat::Yaml)
                .unwrap_or_else(|e| panic!("{e}\n{}", d.yaml));
            let compiled = compile(parsed, &http).unwrap_or_else(|e| panic!("{e}\n{}", d.yaml));
            assert_eq!(compiled.definition.steps.len(), d.steps, "{}", d.yaml);
        }
    }
}
