//! `cargo run --example embed`
//!
//! Embedding JamJet in a host program: register a Rust function, submit a
//! workflow, poll and await the result, list executions and read the
//! event timeline. Uses a temporary data dir.

use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Runtime, ir, journal::Status};
use serde_json::json;

const WORKFLOW: &str = r#"
id: enrich
version: 1.0.0
state_schema: { user: str, profile: dict, tier: str }
nodes:
  lookup:
    type: function
    function: load_profile
    input: { user: "{{ state.user }}" }
    output_key: profile
    next: classify
  classify:
    type: branch
    conditions:
      - when: "state.profile.orders >= 10"
        next: gold
    default: standard
  gold:     { type: set, values: { tier: gold } }
  standard: { type: set, values: { tier: standard } }
"#;

async fn load_profile(call: FunctionCall) -> Result<serde_json::Value, FunctionError> {
    let user = call.input["user"].as_str().ok_or_else(|| FunctionError::new("input.user must be a string"))?;
    // A real host would query its database here, passing call.idempotency_key along.
    Ok(json!({ "name": user, "orders": user.len() * 2 }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rt = Runtime::builder().data_dir(dir.path()).function("load_profile", load_profile).open().await?;
    let wf = ir::compile_str(WORKFLOW, "enrich.yaml").map_err(|d| anyhow::anyhow!("{d}"))?;

    let id = rt.submit(&wf, json!({ "user": "margaret" })).await?;
    println!("submitted {id}; status now {}", rt.status(id)?.status);
    let outcome = rt.wait(id).await?;
    println!("{id} {} -> tier {}", outcome.status, outcome.state["tier"]);

    for meta in rt.list(Some(Status::Completed))? {
        println!("completed: {} ({}@{})", meta.id, meta.workflow_id, meta.workflow_version);
    }
    for rec in rt.events(id)? {
        println!("  #{:<2} {:<18} {}", rec.seq, rec.event.name(), rec.event.node().unwrap_or(""));
    }
    rt.shutdown().await;
    Ok(())
}
