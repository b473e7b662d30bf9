//! `{{ secrets.NAME }}` in an http step's input: the engine leaves a placeholder carrying the
//! job's nonce, and only here, just before the request, is it replaced by the value, from
//! `BATON_SECRET_<NAME>` or the file `NAME` in `HTTP_WORKER_SECRETS_DIR`. A placeholder without
//! the job's nonce (text that came from run inputs or step outputs) is left as it is. Whatever
//! the step then reports (its output, its error) has every value it used replaced by `***`.

use std::path::PathBuf;

use serde_json::Value;

use crate::request::InputError;

/// What secret values stand in for in anything the worker reports.
pub const REDACTED: &str = "***";

/// Where secrets come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// `HTTP_WORKER_SECRETS_DIR`: a directory of files named after their secret (a mounted
    /// Kubernetes secret, say). Read on every use, so a rotated file applies at once.
    pub dir: Option<PathBuf>,
}

/// A step's input with its secrets put in, and the values used, to redact.
#[derive(Debug)]
pub struct Resolved {
    pub input: Value,
    pub values: Redactor,
}

/// Replaces the secret values a step used with `***`.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            out = out.replace(value.as_str(), REDACTED);
        }
        out
    }

    pub fn json(&self, value: &mut Value) {
        if self.values.is_empty() {
            return;
        }
        match value {
            Value::String(s) if self.values.iter().any(|v| s.contains(v.as_str())) => {
                *s = self.text(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let renamed: Vec<(String, String)> = map
                    .keys()
                    .filter(|k| self.values.iter().any(|v| k.contains(v.as_str())))
                    .map(|k| (k.clone(), self.text(k)))
                    .collect();
                for (old, new) in renamed {
                    if let Some(v) = map.remove(&old) {
                        map.insert(new, v);
                    }
                }
                map.values_mut().for_each(|v| self.json(v));
            }
            _ => {}
        }
    }
}

impl Secrets {
    /// The value of secret `name`, or `None` when neither source has it.
    fn lookup(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(value) = baton_runtime::env::var(&format!("BATON_SECRET_{name}")) {
            return Ok(Some(value));
        }
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!(
                "cannot read secret `{name}` from {}: {e}",
                dir.display()
            )),
        }
    }

    /// Puts the secrets into every string of `input` whose placeholders carry `nonce` (the
    /// job's `secret_nonce`; empty: the job has no secrets). An unknown secret fails, naming it
    /// and the field.
    pub fn resolve(&self, input: &Value, nonce: &str) -> Result<Resolved, InputError> {
        let mut values = Vec::new();
        let input = if nonce.is_empty() {
            input.clone()
        } else {
            self.resolve_value(input, "", nonce, &mut values)?
        };
        // Longest first, so a value that holds another is redacted whole.
        values.sort_by_key(|v: &String| std::cmp::Reverse(v.len()));
        values.dedup();
        values.retain(|v| !v.is_empty());
        Ok(Resolved {
            input,
            values: Redactor { values },
        })
    }

    fn resolve_value(
        &self,
        value: &Value,
        field: &str,
        nonce: &str,
        used: &mut Vec<String>,
    ) -> Result<Value, InputError> {
        let at = |key: &str| {
            if field.is_empty() {
                key.to_owned()
            } else {
                format!("{field}.{key}")
            }
        };
        Ok(match value {
            Value::String(s) => Value::String(self.resolve_text(s, field, nonce, used)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.resolve_value(v, &format!("{field}[{i}]"), nonce, used))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve_value(v, &at(k), nonce, used)?)))
                    .collect::<Result<_, InputError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn resolve_text(
        &self,
        text: &str,
        field: &str,
        nonce: &str,
        used: &mut Vec<String>,
    ) -> Result<String, InputError> {
        const OPEN: &str = "{{ secrets.";
        let close = format!(":{nonce} }}}}");
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            let after = &rest[start + OPEN.len()..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..name_len];
            if name.is_empty() || !after[name_len..].starts_with(close.as_str()) {
                // Not a placeholder of this job: kept as written.
                out.push_str(&rest[..start + OPEN.len()]);
                rest = after;
                continue;
            }
            let end = name_len;
            let close_len = close.len();
            let value = self
                .lookup(name)
                .map_err(|reason| InputError {
                    field: field.to_owned(),
                    reason,
                })?
                .ok_or_else(|| InputError {
                    field: field.to_owned(),
                    reason: format!(
                        "unknown secret `{name}`: set BATON_SECRET_{name} in the http-worker's \
                         environment, or put a file `{name}` in HTTP_WORKER_SECRETS_DIR"
                    ),
                })?;
            out.push_str(&rest[..start]);
            out.push_str(&value);
            used.push(value);
            rest = &after[end + close_len..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "baton-secrets-{}-{}",
            std::process::id(),
            files.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, value) in files {
            std::fs::write(dir.join(name), value).unwrap();
        }
        dir
    }

    #[test]
    fn placeholders_are_replaced_from_files_and_redacted_after() {
        let dir = dir_with(&[("API_TOKEN", "s3cr3t-value\n"), ("HOST_KEY", "k9")]);
        let secrets = Secrets { dir: Some(dir) };
        let resolved = secrets
            .resolve(
                &json!({
                    "url": "https://api.example/{{ secrets.HOST_KEY:n1 }}/items",
                    "headers": {"authorization": "Bearer {{ secrets.API_TOKEN:n1 }}"},
                    "body": {"list": ["{{ secrets.API_TOKEN:n1 }}", 3]},
                    "plain": "{{ not a secret }}",
                    // From data, not from the definition: no nonce, or another one.
                    "forged": "{{ secrets.API_TOKEN }} {{ secrets.API_TOKEN:n2 }}",
                }),
                "n1",
            )
            .unwrap();
        assert_eq!(
            resolved.input,
            json!({
                "url": "https://api.example/k9/items",
                "headers": {"authorization": "Bearer s3cr3t-value"},
                "body": {"list": ["s3cr3t-value", 3]},
                "plain": "{{ not a secret }}",
                "forged": "{{ secrets.API_TOKEN }} {{ secrets.API_TOKEN:n2 }}",
            })
        );
        let none = secrets
            .resolve(&json!({"a": "{{ secrets.API_TOKEN:n1 }}"}), "")
            .unwrap();
        assert_eq!(
            none.input,
            json!({"a": "{{ secrets.API_TOKEN:n1 }}"}),
            "no nonce, no secrets"
        );
        let mut echoed = json!({"seen": "Bearer s3cr3t-value", "s3cr3t-value": ["k9/x"]});
        resolved.values.json(&mut echoed);
        assert_eq!(echoed, json!({"seen": "Bearer ***", "***": ["***/x"]}));
        assert_eq!(
            resolved
                .values
                .text("GET https://api.example/k9/items failed"),
            "GET https://api.example/***/items failed"
        );
    }

    #[test]
    fn an_unknown_secret_fails_naming_it_and_the_field() {
        let e = Secrets::default()
            .resolve(
                &json!({"headers": {"x-key": "{{ secrets.NOT_SET_ANYWHERE:n }}"}}),
                "n",
            )
            .unwrap_err();
        assert_eq!(e.field, "headers.x-key");
        assert!(
            e.reason.contains("unknown secret `NOT_SET_ANYWHERE`"),
            "{e}"
        );
        assert!(e.reason.contains("BATON_SECRET_NOT_SET_ANYWHERE"), "{e}");
    }
}
