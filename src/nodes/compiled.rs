//! The JSON Schemas and regexes nodes check against on every run (a model
//! node's `output_schema`, an eval's `json_schema` and `regex` scorers),
//! compiled once per runtime and kept. The compiler has already proved
//! that each one compiles; at run time they cost a lookup, not a compile.
//! What the loaded workflows declare is a bounded set; patterns that come
//! from the state or a dataset (a trajectory scorer's `regex` matchers) are
//! not, so each cache keeps at most [`MAX_KEPT`] entries and compiles any
//! more at each use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::ir::compile_schema;

/// Compiled schemas by their JSON text, regexes by their pattern.
#[derive(Default)]
pub struct Compiled {
    schemas: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
    regexes: Mutex<HashMap<String, Arc<regex::Regex>>>,
}

impl Compiled {
    /// The validator of a JSON Schema, compiled on first use.
    pub fn schema(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        cached(&self.schemas, schema.to_string(), || compile_schema(schema))
    }

    /// A regex, compiled on first use.
    pub fn regex(&self, pattern: &str) -> Result<Arc<regex::Regex>, String> {
        cached(&self.regexes, pattern.to_string(), || regex::Regex::new(pattern).map_err(|e| e.to_string()))
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schemas = self.schemas.lock().map_or(0, |m| m.len());
        let regexes = self.regexes.lock().map_or(0, |m| m.len());
        write!(f, "Compiled {{ schemas: {schemas}, regexes: {regexes} }}")
    }
}

/// The most schemas (and, apart, regexes) kept compiled.
pub const MAX_KEPT: usize = 4096;

fn cached<T>(
    map: &Mutex<HashMap<String, Arc<T>>>,
    key: String,
    compile: impl FnOnce() -> Result<T, String>,
) -> Result<Arc<T>, String> {
    if let Some(done) = map.lock().expect("compiled cache lock").get(&key) {
        return Ok(done.clone());
    }
    // Compiled outside the lock; two first uses at once both compile, and
    // either result serves.
    let done = Arc::new(compile()?);
    let mut kept = map.lock().expect("compiled cache lock");
    if kept.len() < MAX_KEPT {
        kept.entry(key).or_insert(done.clone());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_is_compiled_once_and_errors_are_not_kept() {
        let c = Compiled::default();
        let schema = serde_json::json!({"type": "integer"});
        let a = c.schema(&schema).unwrap();
        assert!(Arc::ptr_eq(&a, &c.schema(&schema).unwrap()));
        assert!(a.is_valid(&serde_json::json!(3)) && !a.is_valid(&serde_json::json!("x")));
        let r = c.regex("^a+$").unwrap();
        assert!(Arc::ptr_eq(&r, &c.regex("^a+$").unwrap()));
        assert!(c.regex("(").is_err() && c.regex("(").is_err());
        assert_eq!(format!("{c:?}"), "Compiled { schemas: 1, regexes: 1 }");
        // Past the bound, patterns still compile but are no longer kept.
        for i in 0..MAX_KEPT + 10 {
            c.regex(&format!("^x{i}$")).unwrap();
        }
        assert_eq!(format!("{c:?}"), format!("Compiled {{ schemas: 1, regexes: {MAX_KEPT} }}"));
    }
}
