//! The built-in workloads of `jamjet bench --workload`, so a newcomer can
//! drive the runtime with no files, and the loopback model server that
//! `model-loopback` calls.
//!
//! Every step that stands for "user code" is a `type: function` node
//! calling [`super::functions`] (`bench.step`): each is its
//! own NodeActor and its own durable step (started, then completed), the
//! same unit of work as a node of a LangGraph graph with a checkpoint per
//! step. (Chains of pure `set` nodes are cheaper: they are folded into one
//! durable step; drive one from a YAML file to see it.)

use std::net::SocketAddr;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

/// A built-in workload.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Ten `bench.step` function nodes in a line: `i` goes 0 → 10.
    Linear10,
    /// A parallel node of 100 branches (child executions, each one `bench.step` node), joined.
    Fanout100,
    /// Park on an event, take the signal, one `bench.step` node.
    WaitSignal,
    /// One `type: model` node against an OpenAI-compatible server on loopback, in this process.
    ModelLoopback,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Linear10 => "linear10",
            Workload::Fanout100 => "fanout100",
            Workload::WaitSignal => "wait-signal",
            Workload::ModelLoopback => "model-loopback",
        }
    }

    /// The workflow's YAML (`model_base`: the loopback model server's base URL).
    pub fn yaml(self, model_base: Option<&str>) -> String {
        match self {
            Workload::Linear10 => linear(10),
            Workload::Fanout100 => FANOUT100.to_string(),
            Workload::WaitSignal => WAIT_SIGNAL.to_string(),
            Workload::ModelLoopback => {
                MODEL.replace("BASE_URL", model_base.expect("model-loopback needs its loopback server"))
            }
        }
    }

    /// Each execution's input.
    pub fn input(self) -> Value {
        match self {
            Workload::Linear10 | Workload::WaitSignal => json!({ "i": 0 }),
            Workload::Fanout100 => json!({}),
            Workload::ModelLoopback => json!({ "q": "what is durable execution?" }),
        }
    }

    /// What a completed execution's final state must hold; `Err` says what is wrong.
    pub fn check(self, state: &Value) -> Result<(), String> {
        let ok = match self {
            Workload::Linear10 => state["i"] == 10,
            Workload::Fanout100 => state["out"].as_array().is_some_and(|a| a.len() == 100),
            Workload::WaitSignal => state["i"] == 1 && state["got"] == json!({ "go": true }),
            Workload::ModelLoopback => state["a"] == "echo: Q: what is durable execution?",
        };
        if ok { Ok(()) } else { Err(format!("the final state is not what {} makes: {state}", self.name())) }
    }
}

/// `n` `bench.step` nodes in a line.
pub fn linear(n: usize) -> String {
    let mut yaml = format!("id: bench-linear{n}\nversion: \"1\"\nstate_schema: {{ i: int }}\nnodes:\n");
    for k in 0..n {
        yaml.push_str(&format!("  s{k}: {{ type: function, function: bench.step"));
        if k + 1 < n {
            yaml.push_str(&format!(", next: s{}", k + 1));
        }
        yaml.push_str(" }\n");
    }
    yaml
}

const FANOUT100: &str = r#"id: bench-fanout100
version: "1"
state_schema: { out: list, i: int }
nodes:
  fan:
    type: parallel
    for_each: "{{ range(100) | list }}"
    branches: [one]
    join: done
    output_key: out
  one: { type: function, function: bench.step, input: { i: "{{ item }}" }, next: done }
  done: { type: end }
"#;

const WAIT_SIGNAL: &str = r#"id: bench-wait-signal
version: "1"
state_schema: { i: int, got: any }
nodes:
  park: { type: wait, event: go, output_key: got, next: step }
  step: { type: function, function: bench.step }
"#;

const MODEL: &str = r#"id: bench-model-loopback
version: "1"
state_schema: { q: str, a: str }
models:
  loopback: { provider: openai, model: echo, base_url: "BASE_URL" }
nodes:
  ask: { type: model, model: loopback, prompt: "Q: {{ state.q }}", output_key: a, max_tokens: 64 }
"#;

/// The signal payload the harness sends to an execution parked on an event.
pub fn default_payload() -> Value {
    json!({ "go": true })
}

/// An OpenAI-compatible chat-completions server on 127.0.0.1:0 that
/// answers `echo: <last user message>`, with usage counted in words.
pub struct LoopbackModel {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LoopbackModel {
    pub async fn start() -> Result<LoopbackModel, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:0 for the loopback model: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;
        let app = axum::Router::new().route("/v1/chat/completions", post(complete));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(LoopbackModel { base: format!("http://{addr}/v1"), stop: Some(stop) })
    }
}

impl Drop for LoopbackModel {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn complete(Json(body): Json<Value>) -> Json<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).unwrap_or("");
    let words = |s: &str| s.split_whitespace().count() as u64;
    let input: u64 = messages.iter().filter_map(|m| m["content"].as_str()).map(words).sum();
    let text = format!("echo: {last}");
    let output = words(&text);
    Json(json!({
        "id": "chatcmpl-loopback",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::compile_str;

    #[test]
    fn every_workload_compiles() {
        for w in [Workload::Linear10, Workload::Fanout100, Workload::WaitSignal, Workload::ModelLoopback] {
            let yaml = w.yaml(Some("http://127.0.0.1:9/v1"));
            compile_str(&yaml, "bench.yaml").unwrap_or_else(|d| panic!("{}: {d}", w.name()));
        }
        assert_eq!(compile_str(&linear(10), "l.yaml").unwrap().nodes.len(), 10);
    }
}
