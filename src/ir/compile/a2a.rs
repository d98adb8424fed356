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
