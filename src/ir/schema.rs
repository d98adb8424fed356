//! The typed state schema: `str`, `int`, `float`, `bool`, `list[T]`,
//! `dict`, a dict with declared fields, `optional[T]` (or `T?`), and `any`;
//! and each key's default.
//!
//! Input is checked against it before an execution starts (and completed
//! with the defaults, see [`crate::ir::prepare_input`]), and every state
//! patch before it is journaled. Keys not in the schema are refused.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of one state key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    Str,
    Int,
    Float,
    Bool,
    List(Box<Type>),
    Dict,
    Optional(Box<Type>),
    Any,
    /// A dict with declared fields (the long form `{ type: dict, fields:
    /// {...} }`): every field is checked, a field not declared is refused,
    /// and a field whose type is not optional must be there.
    Record(BTreeMap<String, Type>),
}

impl Type {
    /// Parse a type written in YAML: `str`, `list[int]`, `optional[str]`, `int?`.
    pub fn parse(text: &str) -> Result<Type, String> {
        let t = text.trim();
        if let Some(inner) = t.strip_suffix('?') {
            return Ok(Type::Optional(Box::new(Type::parse(inner)?)));
        }
        if let Some(rest) = t.strip_suffix(']') {
            let (head, inner) = rest.split_once('[').ok_or_else(|| format!("unknown type `{t}`"))?;
            let inner = Type::parse(inner)?;
            return match head.trim() {
                "list" => Ok(Type::List(Box::new(inner))),
                "optional" => Ok(Type::Optional(Box::new(inner))),
                "dict" => Ok(Type::Dict),
                other => {
                    Err(format!("unknown type constructor `{other}` in `{t}` (expected list[..] or optional[..])"))
                }
            };
        }
        match t {
            "str" | "string" => Ok(Type::Str),
            "int" | "integer" => Ok(Type::Int),
            "float" | "number" => Ok(Type::Float),
            "bool" | "boolean" => Ok(Type::Bool),
            "list" => Ok(Type::List(Box::new(Type::Any))),
            "dict" | "object" => Ok(Type::Dict),
            "any" => Ok(Type::Any),
            _ => Err(format!("unknown type `{t}` (expected str, int, float, bool, list[T], dict, optional[T] or any)")),
        }
    }

    /// Whether `value` has this type. `null` is accepted only by
    /// `optional[T]` and `any`; an int is a valid float.
    pub fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (Type::Any, _) => true,
            (Type::Optional(_), Value::Null) => true,
            (Type::Optional(inner), v) => inner.accepts(v),
            (Type::Str, Value::String(_)) => true,
            (Type::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Type::Float, Value::Number(_)) => true,
            (Type::Bool, Value::Bool(_)) => true,
            (Type::List(inner), Value::Array(items)) => items.iter().all(|v| inner.accepts(v)),
            (Type::Dict, Value::Object(_)) => true,
            (Type::Record(fields), Value::Object(map)) => {
                map.keys().all(|k| fields.contains_key(k))
                    && fields.iter().all(|(k, t)| match map.get(k) {
                        Some(v) => t.accepts(v),
                        None => matches!(t, Type::Optional(_) | Type::Any),
                    })
            }
            _ => false,
        }
    }

    /// The shape of the values at `.field` of a value of this type: `None`
    /// when the type says nothing (`dict`, `any`), `Err` with the declared
    /// fields when it has none such.
    pub fn field(&self, name: &str) -> Option<Result<&Type, Vec<&str>>> {
        match self {
            Type::Optional(inner) => inner.field(name),
            Type::Record(fields) => Some(fields.get(name).ok_or_else(|| fields.keys().map(String::as_str).collect())),
            _ => None,
        }
    }

    /// Whether every value of `other` is a value of `self` (used for type
    /// mismatches the compiler can see).
    pub fn is_assignable_from(&self, other: &Type) -> bool {
        match (self, other) {
            (Type::Any, _) | (_, Type::Any) => true,
            (Type::Optional(a), Type::Optional(b)) => a.is_assignable_from(b),
            (Type::Optional(a), b) => a.is_assignable_from(b),
            (Type::Float, Type::Int) => true,
            (Type::List(a), Type::List(b)) => a.is_assignable_from(b),
            // What a dict holds is known only when it is there: checked then.
            (Type::Record(_), Type::Dict) | (Type::Dict, Type::Record(_)) => true,
            (a, b) => a == b,
        }
    }

    /// The type of a JSON literal, as precisely as it can be known.
    pub fn of_literal(value: &Value) -> Type {
        match value {
            Value::Null => Type::Optional(Box::new(Type::Any)),
            Value::Bool(_) => Type::Bool,
            Value::Number(n) if n.is_f64() => Type::Float,
            Value::Number(_) => Type::Int,
            Value::String(_) => Type::Str,
            Value::Array(_) => Type::List(Box::new(Type::Any)),
            Value::Object(_) => Type::Dict,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Str => f.write_str("str"),
            Type::Int => f.write_str("int"),
            Type::Float => f.write_str("float"),
            Type::Bool => f.write_str("bool"),
            Type::List(t) => write!(f, "list[{t}]"),
            Type::Dict => f.write_str("dict"),
            Type::Optional(t) => write!(f, "optional[{t}]"),
            Type::Any => f.write_str("any"),
            Type::Record(fields) => {
                f.write_str("dict{")?;
                for (i, (k, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {t}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// State keys and their types, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSchema {
    pub fields: BTreeMap<String, Type>,
    /// The value a key takes when the input leaves it out (the long form
    /// `{ type: int, default: 0 }`); applied before the execution starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, Value>,
}

/// Why a value does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("state key `{key}` is not in the workflow's state_schema (known keys: {known})")]
    UnknownKey { key: String, known: String },
    #[error("state key `{key}` must be {expected}, got {got}")]
    WrongType { key: String, expected: Type, got: String },
    #[error("input must be a JSON object, got {got}")]
    NotAnObject { got: String },
    /// A key some node reads before any node writes it, with no default.
    #[error(
        "input is missing required key `{key}` (read by {reader}; give it in the input, or a default in state_schema)"
    )]
    MissingKey {
        key: String,
        /// `node `search` at wf.yaml:12:5`.
        reader: String,
    },
}

impl StateSchema {
    pub fn get(&self, key: &str) -> Option<&Type> {
        self.fields.get(key)
    }

    /// Check a state object (input or patch) key by key; every problem is
    /// reported.
    pub fn check_object(&self, value: &Value) -> Result<(), Vec<SchemaError>> {
        let Value::Object(map) = value else {
            return Err(vec![SchemaError::NotAnObject { got: json_kind(value).into() }]);
        };
        let errors = self.check_map(map);
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    pub fn check_map(&self, map: &serde_json::Map<String, Value>) -> Vec<SchemaError> {
        let mut errors = Vec::new();
        for (key, v) in map {
            match self.fields.get(key) {
                None => errors.push(SchemaError::UnknownKey {
                    key: key.clone(),
                    known: self.fields.keys().cloned().collect::<Vec<_>>().join(", "),
                }),
                Some(t) if !t.accepts(v) => {
                    errors.push(SchemaError::WrongType { key: key.clone(), expected: t.clone(), got: describe(v) })
                }
                Some(_) => {}
            }
        }
        errors
    }
}

/// The JSON kind of a value, for error messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an int",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe(v: &Value) -> String {
    let mut text = v.to_string();
    if text.len() > 40 {
        text.truncate(37);
        text.push_str("...");
    }
    format!("{} ({text})", json_kind(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_types() {
        assert_eq!(Type::parse("list[str]").unwrap(), Type::List(Box::new(Type::Str)));
        assert_eq!(Type::parse("int?").unwrap(), Type::Optional(Box::new(Type::Int)));
        assert_eq!(
            Type::parse("optional[list[float]]").unwrap(),
            Type::Optional(Box::new(Type::List(Box::new(Type::Float))))
        );
        assert!(Type::parse("strng").unwrap_err().contains("strng"));
    }

    #[test]
    fn checks_values() {
        let mut schema = StateSchema::default();
        schema.fields.insert("n".into(), Type::Int);
        schema.fields.insert("tags".into(), Type::List(Box::new(Type::Str)));
        assert!(schema.check_object(&json!({"n": 3, "tags": ["a"]})).is_ok());
        let errs = schema.check_object(&json!({"n": "3", "x": 1})).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(Type::Float.accepts(&json!(1)));
        assert!(!Type::Int.accepts(&json!(1.5)));
    }
}
