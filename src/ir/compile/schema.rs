//! `state_schema:`: each key's type, short (`tries: int`) or long
//! (`tries: { type: int, default: 0 }`). The long form also declares the
//! fields of a dict (`extra: { type: dict, fields: { question: str } }`)
//! and the items of a list (`hits: { type: list, items: { type: dict,
//! fields: {...} } }`), whose paths the compiler then checks
//! (`state.extra.qestion` is a finding), and a top-level key's default,
//! applied to the input before an execution starts.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Ctx;
use super::yaml::{Scalar, Value, Yaml};
use crate::ir::{StateSchema, Type};

/// The fields of a long-form entry.
const LONG: &[&str] = &["type", "default", "fields", "items", "description"];

impl Ctx {
    pub(super) fn state_schema(&mut self, y: &Yaml) -> Option<StateSchema> {
        let mut schema = StateSchema::default();
        let mut ok = true;
        for entry in self.entries(y, "`state_schema`", "state key")? {
            let key = &entry.key;
            match self.schema_type(&entry.value, &format!("state key `{key}`"), true) {
                Some((t, default)) => {
                    if let Some(value) = default {
                        schema.defaults.insert(key.clone(), value);
                    }
                    schema.fields.insert(key.clone(), t);
                }
                None => ok = false,
            }
        }
        ok.then_some(schema)
    }

    /// One type, short or long; with `top`, its default too. `what` names
    /// it in messages (``state key `extra` ``, ``field `q` of state key `extra` ``).
    fn schema_type(&mut self, y: &Yaml, what: &str, top: bool) -> Option<(Type, Option<Json>)> {
        if let Some(text) = y.as_str() {
            return match Type::parse(text) {
                Ok(t) => Some((t, None)),
                Err(e) => {
                    self.add(y.span, format!("{what}: {e}"));
                    None
                }
            };
        }
        if !matches!(y.value, Value::Map(_)) {
            let message = format!(
                "the type of {what} must be a string such as `str`, or a mapping such as `{{ type: int, default: 0 }}`, found {}",
                y.kind()
            );
            self.add(y.span, message);
            return None;
        }
        let f = self.fields(y, &format!("the type of {what}"), LONG)?;
        let type_y = self.required(&f, "type", &format!("the type of {what}"), y.span)?;
        let text = self.string(type_y, "type")?;
        let mut t = match Type::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                self.add(type_y.span, format!("{what}: {e}"));
                return None;
            }
        };
        if let Some(d) = f.get("description") {
            self.string(d, "description")?;
        }
        let mut ok = true;
        if let Some(fields_y) = f.get("fields") {
            match base_mut(&mut t) {
                base @ Type::Dict => {
                    let mut fields = BTreeMap::new();
                    for e in self.entries(fields_y, &format!("the `fields` of {what}"), "field").unwrap_or_default() {
                        let inner = format!("field `{}` of {what}", e.key);
                        match self.schema_type(&e.value, &inner, false) {
                            Some((ft, _)) => {
                                fields.insert(e.key.clone(), ft);
                            }
                            None => ok = false,
                        }
                    }
                    *base = Type::Record(fields);
                }
                _ => {
                    self.add(fields_y.span, format!("{what}: `fields` is for a dict, and the type is `{text}`"));
                    ok = false;
                }
            }
        }
        if let Some(items_y) = f.get("items") {
            match base_mut(&mut t) {
                Type::List(inner) if **inner == Type::Any => {
                    match self.schema_type(items_y, &format!("the items of {what}"), false) {
                        Some((it, _)) => **inner = it,
                        None => ok = false,
                    }
                }
                _ => {
                    let message = format!(
                        "{what}: `items` is for `type: list` (with no item type of its own), and the type is `{text}`"
                    );
                    self.add(items_y.span, message);
                    ok = false;
                }
            }
        }
        let default = match f.get("default") {
            None => None,
            Some(d) if !top => {
                self.add(d.span, format!("{what}: `default` is for a top-level state key only"));
                ok = false;
                None
            }
            Some(d) => {
                let value = plain_json(d);
                if !t.accepts(&value) {
                    let message = format!("{what}: the default {} is not of its type {t}", short(&value));
                    self.add(d.span, message);
                    ok = false;
                }
                Some(value)
            }
        };
        ok.then_some((t, default))
    }
}

/// The type under `optional[...]`.
fn base_mut(t: &mut Type) -> &mut Type {
    match t {
        Type::Optional(inner) => base_mut(inner),
        other => other,
    }
}

/// A YAML value as JSON, strings as they are (a default is data, not a template).
fn plain_json(y: &Yaml) -> Json {
    match &y.value {
        Value::Scalar(_, Scalar::Null) => Json::Null,
        Value::Scalar(_, Scalar::Bool(b)) => Json::Bool(*b),
        Value::Scalar(_, Scalar::Int(n)) => Json::from(*n),
        Value::Scalar(_, Scalar::Float(f)) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Scalar(text, Scalar::Str) => Json::String(text.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(plain_json).collect()),
        Value::Map(entries) => {
            let mut map = serde_json::Map::new();
            for e in entries {
                map.entry(e.key.clone()).or_insert_with(|| plain_json(&e.value));
            }
            Json::Object(map)
        }
    }
}

/// A value for a message, cut short.
fn short(v: &Json) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}
