//! Trivial host functions for benchmarks and first tries: every runtime the
//! `jamjet` CLI opens (`run`, `dev`, `bench`, ...) has them, so a YAML
//! workflow can hold `type: function` nodes (each its own durable step,
//! with its own NodeActor) without an embedding host. They are the CLI's,
//! not the library's: an embedding host registers its own functions.
//!
//! - `bench.step`: `{i: n}` → `{i: n + 1}` (a missing or non-integer `i`
//!   counts as 0). With the default input (the whole state) and no
//!   `output_key`, the result merges into the state: a chain of ten of
//!   them turns `i: 0` into `i: 10`.
//! - `bench.echo`: returns its input unchanged.
//! - `bench.sleep`: `{ms: n}` → `{}` after n milliseconds (at most a
//!   minute): a step that is still running when its process is killed
//!   (`jamjet bench takeover`).
//!
//! The CLI registers them with [`registered`] on every runtime builder it
//! opens a data dir with.

use serde_json::{Value, json};

use crate::nodes::{FunctionCall, FunctionError};
use crate::runtime::Builder;

/// `bench.step`'s name.
pub const STEP: &str = "bench.step";
/// `bench.echo`'s name.
pub const ECHO: &str = "bench.echo";

/// `bench.sleep`'s name.
pub const SLEEP: &str = "bench.sleep";

/// `builder` with `bench.step`, `bench.echo` and `bench.sleep` registered.
pub(crate) fn registered(builder: Builder) -> Builder {
    builder
        .function(STEP, |call: FunctionCall| std::future::ready(step(&call.input)))
        .function(ECHO, |call: FunctionCall| std::future::ready(Ok::<_, FunctionError>(call.input)))
        .function(SLEEP, |call: FunctionCall| sleep(call.input))
}

async fn sleep(input: Value) -> Result<Value, FunctionError> {
    let ms = input.get("ms").and_then(Value::as_u64).unwrap_or(0).min(60_000);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Ok(json!({}))
}

fn step(input: &Value) -> Result<Value, FunctionError> {
    let i = input.get("i").and_then(Value::as_i64).unwrap_or(0);
    Ok(json!({ "i": i + 1 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Runtime;

    #[tokio::test]
    async fn step_increments_and_echo_returns_its_input() {
        assert_eq!(step(&json!({"i": 4, "x": 1})).unwrap(), json!({"i": 5}));
        assert_eq!(step(&json!({})).unwrap(), json!({"i": 1}));
        let began = std::time::Instant::now();
        assert_eq!(sleep(json!({"ms": 20})).await.unwrap(), json!({}));
        assert!(began.elapsed() >= std::time::Duration::from_millis(20), "bench.sleep slept {:?}", began.elapsed());
        // Both are registered by name on a runtime the CLI builds.
        let wf = crate::ir::compile_str(
            "id: t\nstate_schema: { i: int, x: int }\nnodes:\n  a: { type: function, function: bench.step, next: b }\n  b: { type: function, function: bench.echo }\n",
            "t.yaml",
        )
        .unwrap();
        let rt = registered(Runtime::builder().in_memory()).open().await.unwrap();
        let out = rt.run(&wf, json!({"i": 4, "x": 1})).await.unwrap();
        rt.shutdown().await;
        assert_eq!(out.status, crate::journal::Status::Completed, "{:?}", out.error);
        assert_eq!(out.state, json!({"i": 5, "x": 1}));
    }
}
