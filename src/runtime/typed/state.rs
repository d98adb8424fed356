//! A typed workflow's state schema, from the JSON Schema `schemars`
//! derives for its state type.
//!
//! Each property of the type becomes a state key of the type that holds
//! exactly its values: `String` is `str`, integers `int`, `f32`/`f64`
//! `float`, `bool` `bool`, `Option<T>` `optional[T]`, `Vec<T>` `list[T]`,
//! a map `dict`, a nested struct a dict with declared fields,
//! `serde_json::Value` `any`, and an enum of unit variants `str`. A field
//! the type may leave out (`#[serde(default)]` inside a nested struct) is
//! optional there. Anything else (an enum with data, a type that is not a
//! struct with named fields, a recursive type) has no state type: the
//! error names the field and what its schema says.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::ir::Type;

/// How deep `$ref`s may nest before a type counts as recursive.
const MAX_DEPTH: usize = 32;

/// The state keys of the type whose JSON Schema is `root`, in its order.
pub(super) fn state_fields(root: &Value) -> Result<Vec<(String, Type)>, String> {
    let top = resolve(root, root, "the state type")?;
    let properties = match (top.get("type"), top.get("properties")) {
        (Some(Value::String(t)), Some(Value::Object(props))) if t == "object" => props,
        _ => {
            return Err(format!(
                "the state type must be a struct with named fields (its JSON Schema is {})",
                short(top)
            ));
        }
    };
    properties.iter().map(|(key, schema)| Ok((key.clone(), of(root, schema, &format!("field `{key}`"), 0)?))).collect()
}

/// The state type of `schema` (a part of `root`); `what` names it in errors.
fn of(root: &Value, schema: &Value, what: &str, depth: usize) -> Result<Type, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{what}: the type is recursive, which a state type cannot be"));
    }
    let schema = resolve(root, schema, what)?;
    let map = match schema {
        Value::Bool(true) => return Ok(Type::Any),
        Value::Object(map) => map,
        other => return Err(format!("{what}: its JSON Schema `{}` admits no value", short(other))),
    };
    if let Some(r) = map.get("$ref") {
        let target = lookup(root, r, what)?;
        return of(root, target, what, depth + 1);
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(Value::Array(variants)) = map.get(keyword) {
            return variants_type(root, variants, what, depth);
        }
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        if values.iter().all(Value::is_string) {
            return Ok(Type::Str);
        }
        return Err(format!("{what}: an enum of values other than strings ({}) has no state type", short(schema)));
    }
    if let Some(c) = map.get("const") {
        return match c {
            Value::String(_) => Ok(Type::Str),
            other => Ok(Type::of_literal(other)),
        };
    }
    match map.get("type") {
        None if map.len() <= usize::from(map.contains_key("description")) => Ok(Type::Any),
        None => Err(format!("{what}: its JSON Schema {} has no state type", short(schema))),
        Some(Value::String(t)) => named(root, map, t, what, depth),
        Some(Value::Array(types)) => {
            let nullable = types.iter().any(|t| t == "null");
            let others: Vec<&str> = types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
            let inner = match others.as_slice() {
                [one] => named(root, map, one, what, depth)?,
                [] => return Err(format!("{what}: a value that is always null has no state type")),
                _ => Type::Any,
            };
            Ok(if nullable { optional(inner) } else { inner })
        }
        Some(other) => Err(format!("{what}: `type` {other} is not a JSON Schema type")),
    }
}

/// The type `t` (a JSON Schema type name) of `map`.
fn named(root: &Value, map: &Map<String, Value>, t: &str, what: &str, depth: usize) -> Result<Type, String> {
    match t {
        "string" => Ok(Type::Str),
        "integer" => Ok(Type::Int),
        "number" => Ok(Type::Float),
        "boolean" => Ok(Type::Bool),
        "null" => Err(format!("{what}: a value that is always null has no state type")),
        "array" => match map.get("items") {
            // A tuple (`prefixItems`) holds values of several types.
            None => Ok(Type::List(Box::new(Type::Any))),
            Some(items) => Ok(Type::List(Box::new(of(root, items, &format!("the items of {what}"), depth + 1)?))),
        },
        "object" => match map.get("properties") {
            Some(Value::Object(props)) if !props.is_empty() => {
                let required: Vec<&str> = match map.get("required") {
                    Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let mut fields = BTreeMap::new();
                for (key, schema) in props {
                    let t = of(root, schema, &format!("field `{key}` of {what}"), depth + 1)?;
                    let t = if required.contains(&key.as_str()) { t } else { optional(t) };
                    fields.insert(key.clone(), t);
                }
                Ok(Type::Record(fields))
            }
            _ => Ok(Type::Dict),
        },
        other => Err(format!("{what}: `type: {other}` is not a JSON Schema type")),
    }
}

/// `anyOf` / `oneOf`: `T` or null is `optional[T]`; unit variants are strings.
fn variants_type(root: &Value, variants: &[Value], what: &str, depth: usize) -> Result<Type, String> {
    let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
    let others: Vec<&Value> = variants.iter().filter(|v| !is_null(v)).collect();
    let nullable = others.len() < variants.len();
    let inner = match others.as_slice() {
        [one] => of(root, one, what, depth + 1)?,
        many => {
            let types = many.iter().map(|v| of(root, v, what, depth + 1)).collect::<Result<Vec<_>, _>>()?;
            if types.iter().all(|t| *t == Type::Str) {
                Type::Str
            } else {
                let message = format!(
                    "{what}: a value of one of several shapes (an enum with data) has no state type; hold it as \
                     `serde_json::Value` (state type `any`) or as a struct"
                );
                return Err(message);
            }
        }
    };
    Ok(if nullable { optional(inner) } else { inner })
}

fn optional(t: Type) -> Type {
    match t {
        Type::Optional(_) | Type::Any => t,
        other => Type::Optional(Box::new(other)),
    }
}

/// `schema`, or what its `$ref` points to when that is all it says.
fn resolve<'r>(root: &'r Value, schema: &'r Value, what: &str) -> Result<&'r Value, String> {
    match schema.get("$ref") {
        Some(r) if schema.as_object().is_some_and(|m| m.len() == 1) => lookup(root, r, what),
        _ => Ok(schema),
    }
}

/// The schema a `$ref` (`#/$defs/Name`) names in `root`.
fn lookup<'r>(root: &'r Value, r: &Value, what: &str) -> Result<&'r Value, String> {
    let pointer = r.as_str().and_then(|r| r.strip_prefix('#'));
    pointer
        .and_then(|p| root.pointer(p))
        .ok_or_else(|| format!("{what}: its JSON Schema refers to {r}, which it does not define"))
}

/// A JSON value, cut short for a message.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() <= 120 {
        return text;
    }
    let cut = (0..=117).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}...", &text[..cut])
}

/// A state type as the YAML `state_schema` writes it: `str`, or the long
/// form when a record is inside (`{ type: dict, fields: {...} }`).
pub(super) fn yaml(t: &Type) -> Value {
    if !has_record(t) {
        return Value::String(t.to_string());
    }
    match t {
        Type::Record(fields) => {
            let fields: Map<String, Value> = fields.iter().map(|(k, t)| (k.clone(), yaml(t))).collect();
            serde_json::json!({ "type": "dict", "fields": fields })
        }
        Type::Optional(inner) => {
            let mut y = yaml(inner);
            let base = y["type"].as_str().unwrap_or("dict").to_string();
            y["type"] = Value::String(format!("optional[{base}]"));
            y
        }
        Type::List(inner) => serde_json::json!({ "type": "list", "items": yaml(inner) }),
        other => Value::String(other.to_string()),
    }
}

fn has_record(t: &Type) -> bool {
    match t {
        Type::Record(_) => true,
        Type::Optional(inner) | Type::List(inner) => has_record(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Source {
        url: String,
        #[serde(default)]
        score: f64,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    enum Tone {
        Plain,
        Formal,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct State {
        topic: String,
        draft: Option<String>,
        count: u32,
        tags: Vec<String>,
        sources: Vec<Source>,
        best: Option<Source>,
        extra: serde_json::Value,
        tone: Tone,
        scores: std::collections::HashMap<String, f64>,
    }

    fn fields<T: JsonSchema>() -> Result<BTreeMap<String, String>, String> {
        let schema = schemars::schema_for!(T);
        Ok(state_fields(schema.as_value())?.into_iter().map(|(k, t)| (k, t.to_string())).collect())
    }

    #[test]
    fn each_field_has_the_state_type_of_its_values() {
        let f = fields::<State>().unwrap();
        assert_eq!(f["topic"], "str");
        assert_eq!(f["draft"], "optional[str]");
        assert_eq!(f["count"], "int");
        assert_eq!(f["tags"], "list[str]");
        assert_eq!(f["sources"], "list[dict{score: optional[float], url: str}]");
        assert_eq!(f["best"], "optional[dict{score: optional[float], url: str}]");
        assert_eq!(f["extra"], "any");
        assert_eq!(f["tone"], "str");
        assert_eq!(f["scores"], "dict");
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    enum Shape {
        Circle { r: f64 },
        Square(f64),
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct WithShape {
        shape: Shape,
    }

    #[derive(Serialize, Deserialize, JsonSchema)]
    struct Tree {
        children: Vec<Tree>,
    }

    #[test]
    fn a_type_without_a_state_type_is_an_error_naming_the_field() {
        let e = fields::<WithShape>().unwrap_err();
        assert!(e.contains("field `shape`") && e.contains("enum with data"), "{e}");
        let e = fields::<String>().unwrap_err();
        assert!(e.contains("must be a struct with named fields"), "{e}");
        let e = fields::<Tree>().unwrap_err();
        assert!(e.contains("recursive"), "{e}");
    }

    #[test]
    fn records_are_written_in_the_long_form() {
        let t = Type::Optional(Box::new(Type::List(Box::new(Type::Record(BTreeMap::from([(
            "a".to_string(),
            Type::Int,
        )]))))));
        let y = yaml(&t);
        assert_eq!(y, serde_json::json!({"type": "optional[list]", "items": {"type": "dict", "fields": {"a": "int"}}}));
        assert_eq!(yaml(&Type::List(Box::new(Type::Str))), "list[str]");
    }
}
