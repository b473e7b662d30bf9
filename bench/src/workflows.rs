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
    let needs: Vec<String> = (0..width).map(|i| format!("p{i}")).collect();
    let _ = writeln!(
        yaml,
        "  - {{id: end, kind: noop, needs: [{}]}}",
        needs.join(", ")
    );
    Definition {
        yaml,
        steps: width + 2,
    }
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
}
