//! Compiling the top-level `session_state:`: the state keys a session
//! carries from one task to the next (a list of `state_schema` keys). An
//! unknown key, a repeated one or a value that is not a list of names is a
//! finding at its line and column.

use super::Ctx;
use super::yaml::{Value, Yaml};

impl Ctx {
    /// `session_state: [key, ...]`; `None` when it has findings.
    pub(super) fn session_state(&mut self, y: &Yaml) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`session_state` must be a list of state keys, found {}", y.kind()));
            return None;
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            let Some(key) = self.string(item, "session_state") else {
                ok = false;
                continue;
            };
            if !self.schema.fields.contains_key(&key) {
                let hint = super::did_you_mean(&key, self.schema.fields.keys().map(String::as_str));
                self.add(item.span, format!("`session_state` names `{key}`, which is not in `state_schema`{hint}"));
                ok = false;
            } else if out.contains(&key) {
                self.add(item.span, format!("`session_state` names `{key}` twice"));
                ok = false;
            } else {
                out.push(key);
            }
        }
        ok.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::compile_str;

    const HEAD: &str = "id: s\nstate_schema: { notes: str, count: int, q: str }\n";
    const NODES: &str = "nodes:\n  one:\n    type: set\n    values: { count: 1 }\n";

    #[test]
    fn session_state_names_state_keys() {
        let wf = compile_str(&format!("{HEAD}session_state: [notes, count]\n{NODES}"), "s.yaml").unwrap();
        assert_eq!(wf.session_state, ["notes", "count"]);
        let none = compile_str(&format!("{HEAD}{NODES}"), "s.yaml").unwrap();
        assert!(none.session_state.is_empty());
    }

    #[test]
    fn unknown_repeated_or_malformed_keys_are_findings_at_their_place() {
        let err = compile_str(&format!("{HEAD}session_state: [notes, cuont, notes]\n{NODES}"), "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml:3:24") && err.contains("`cuont`") && err.contains("did you mean `count`"),
            "{err}"
        );
        assert!(err.contains("s.yaml:3:31") && err.contains("`notes` twice"), "{err}");
        let err = compile_str(&format!("{HEAD}session_state: notes\n{NODES}"), "s.yaml").unwrap_err().to_string();
        assert!(err.contains("s.yaml:3:16") && err.contains("must be a list"), "{err}");
    }
}
