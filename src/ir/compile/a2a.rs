//! Compiling the top-level `a2a:` section: the workflow served as an A2A
//! agent (`skill`, `description`, optional `name`, `tags`, `examples`,
//! `input_key`, `output_key`). `input_key` must be a `str` key of the state
//! schema; without it, the schema must have exactly one `str` key (a message's
//! text goes there), unless messages will only carry data parts: then the
//! finding is left to the server, which names the workflow when a text comes.

use super::Ctx;
use super::yaml::{Value, Yaml};
use crate::ir::{A2aAgent, Type};

const A2A: &[&str] = &["skill", "description", "name", "tags", "examples", "input_key", "output_key"];

impl Ctx {
    /// The `a2a:` section; `None` when it has findings.
    pub(super) fn a2a(&mut self, y: &Yaml) -> Option<A2aAgent> {
        let f = self.fields(y, "the `a2a` section", A2A)?;
        let skill = self.required(&f, "skill", "the `a2a` section", y.span).and_then(|y| self.a2a_word(y, "skill"));
        let description =
            self.required(&f, "description", "the `a2a` section", y.span).and_then(|y| self.a2a_word(y, "description"));
        let name = super::optional(f.get("name").map(|y| self.a2a_word(y, "name")));
        let tags = super::optional(f.get("tags").map(|y| self.a2a_strings(y, "tags")));
        let examples = super::optional(f.get("examples").map(|y| self.a2a_strings(y, "examples")));
        let input_key = super::optional(f.get("input_key").map(|y| self.a2a_input_key(y)));
        let output_key = super::optional(f.get("output_key").map(|y| self.output_key(y)));
        Some(A2aAgent {
            skill: skill?,
            description: description?,
            name: name?,
            tags: tags?.unwrap_or_default(),
            examples: examples?.unwrap_or_default(),
            input_key: input_key?,
            output_key: output_key?,
            serves: None,
        })
    }

    /// A non-empty string.
    fn a2a_word(&mut self, y: &Yaml, field: &str) -> Option<String> {
        let text = self.string(y, field)?;
        if text.trim().is_empty() {
            self.add(y.span, format!("`a2a.{field}` must not be empty"));
            return None;
        }
        Some(text)
    }

    fn a2a_strings(&mut self, y: &Yaml, field: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`a2a.{field}` must be a list of strings, found {}", y.kind()));
            return None;
        };
        items.iter().map(|i| self.string(i, field)).collect::<Vec<_>>().into_iter().collect()
    }

    /// `input_key`: a declared state key of type `str`.
    fn a2a_input_key(&mut self, y: &Yaml) -> Option<String> {
        let key = self.string(y, "input_key")?;
        match self.schema.get(&key) {
            None => {
                let hint = super::did_you_mean(&key, self.schema.fields.keys().map(String::as_str));
                self.add(y.span, format!("`a2a.input_key` `{key}` is not in `state_schema`{hint}"));
                None
            }
            Some(t) if !matches!(t, Type::Str) && !matches!(t, Type::Optional(inner) if **inner == Type::Str) => {
                self.add(
                    y.span,
                    format!(
                        "`a2a.input_key` `{key}` must be a `str` state key (a message's text goes there), but it is {t}"
                    ),
                );
                None
            }
            Some(_) => Some(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::compile_str;

    const HEAD: &str = "id: a\nstate_schema: { q: str, n: int }\n";
    const NODES: &str = "nodes:\n  one:\n    type: set\n    values: { n: 1 }\n";

    #[test]
    fn a2a_section_compiles_into_the_ir() {
        let src =
            format!("{HEAD}a2a:\n  skill: s\n  description: d\n  tags: [x]\n  input_key: q\n  output_key: n\n{NODES}");
        let wf = compile_str(&src, "a.yaml").unwrap();
        let a = wf.a2a.unwrap();
        assert_eq!((a.skill.as_str(), a.description.as_str()), ("s", "d"));
        assert_eq!(a.tags, ["x"]);
        assert_eq!(a.input_key.as_deref(), Some("q"));
        assert_eq!(a.output_key.as_deref(), Some("n"));
    }

    #[test]
    fn a_workflow_without_a2a_keeps_its_hash() {
        let wf = compile_str(&format!("{HEAD}{NODES}"), "a.yaml").unwrap();
        assert!(wf.a2a.is_none());
        assert!(!serde_json::to_string(&wf).unwrap().contains("a2a"), "no key in the IR JSON, so hashes are unchanged");
    }

    #[test]
    fn findings_name_the_line_and_column() {
        let cases = [
            ("a2a:\n  description: d\n", 4, 3, "missing the required field `skill`"),
            ("a2a:\n  skill: s\n  description: d\n  input_key: n\n", 6, 14, "must be a `str` state key"),
            ("a2a:\n  skill: s\n  description: d\n  input_key: qq\n", 6, 14, "did you mean `q`"),
            ("a2a:\n  skill: s\n  description: d\n  skil: x\n", 6, 3, "unknown field `skil`"),
            ("a2a:\n  skill: \"\"\n  description: d\n", 4, 10, "must not be empty"),
            ("a2a:\n  skill: s\n  description: d\n  tags: x\n", 6, 9, "must be a list of strings"),
        ];
        for (section, line, column, message) in cases {
            let src = format!("{HEAD}{section}{NODES}");
            let err = compile_str(&src, "a.yaml").unwrap_err();
            let found = err.0.iter().find(|d| d.message.contains(message));
            let d = found.unwrap_or_else(|| panic!("no finding `{message}` for {section:?}: {err}"));
            assert_eq!((d.line, d.column), (line, column), "{section:?}: {d:?}");
        }
    }
}
