//! Trivial host functions for benchmarks and first tries: every runtime the
//! `jamjet` CLI opens (`run`, `dev`, `bench`, `eval run`, ...) has them, so a
//! YAML workflow can hold `type: function` nodes (each its own durable
//! step, with its own NodeActor) without an embedding host.
//!
//! - `bench.step`: `{i: n}` → `{i: n + 1}` (a missing or non-integer `i`
//!   counts as 0). With the default input (the whole state) and no
//!   `output_key`, the result merges into the state: a chain of ten of
//!   them turns `i: 0` into `i: 10`.
//! - `bench.echo`: returns its input unchanged.
//!
//! A host registers them on its own runtime with
//! [`crate::runtime::Builder::bench_functions`].

use serde_json::{Value, json};

use super::{FunctionCall, FunctionError, FunctionRegistry};

/// `bench.step`'s name.
pub const STEP: &str = "bench.step";
/// `bench.echo`'s name.
pub const ECHO: &str = "bench.echo";

pub(crate) fn register(registry: &FunctionRegistry) {
    registry.register(STEP, |call: FunctionCall| std::future::ready(step(&call.input)));
    registry.register(ECHO, |call: FunctionCall| std::future::ready(Ok::<_, FunctionError>(call.input)));
}

fn step(input: &Value) -> Result<Value, FunctionError> {
    let i = input.get("i").and_then(Value::as_i64).unwrap_or(0);
    Ok(json!({ "i": i + 1 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_increments_and_echo_returns_its_input() {
        let reg = FunctionRegistry::default();
        register(&reg);
        assert_eq!(step(&json!({"i": 4, "x": 1})).unwrap(), json!({"i": 5}));
        assert_eq!(step(&json!({})).unwrap(), json!({"i": 1}));
        assert_eq!(reg.names(), vec![ECHO.to_string(), STEP.to_string()]);
    }
}
