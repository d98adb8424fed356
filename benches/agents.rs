//! `cargo bench --bench agents`: what an agent turn costs the runtime.
//!
//! A turn is one model call and one tool call: a local `react` agent
//! whose scripted loopback model (an OpenAI-compatible axum server in this
//! process) asks for the host function `tick` until the conversation holds
//! N tool results, then answers. Per turn (criterion's throughput is in
//! turns):
//!
//! - `agent_turn/loopback_model_call`: one bare POST of a first-turn body
//!   to the scripted server, no runtime: the round trip a turn pays anyway;
//!   `loopback_model_call_at_turn_100`: the same with the body of turn 100,
//!   the average round trip of a 200-turn loop (the chat API resends the
//!   whole conversation every turn, so the round trip grows with it);
//! - `react10_memory`, `react200_memory`: the runtime's own cost per turn
//!   on the in-memory journal (minus the round trip above);
//! - `react10_sled`, `react200_sled`: durable, every call journaled on sled
//!   as it completes, with journal syncs per turn printed beside them. A
//!   200-turn loop must cost no more per turn than 1.2 times a 10-turn one:
//!   the journal of a long loop is never read back per turn.
//!
//! Under `CI=true` the loops shrink (CI only compiles benches).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use axum::{Json, Router, routing::post};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jamjet::nodes::{FunctionCall, FunctionError};
use jamjet::{Runtime, Workflow, compile_str};
use serde_json::{Value, json};
use tokio::runtime::Runtime as Tokio;

fn tokio() -> Tokio {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The scripted model: a `tick` tool call until the conversation holds as
/// many tool results as the first message asks for (`turns: N`), then an
/// answer.
fn reply(body: &Value) -> Value {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let wanted: usize = messages
        .iter()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .and_then(|t| t.strip_prefix("turns: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1);
    let done = messages.iter().filter(|m| m["role"] == "tool").count();
    let message = if done + 1 < wanted {
        let call = json!({"id": format!("call_{done}"), "type": "function",
                          "function": {"name": "tick", "arguments": "{}"}});
        json!({"role": "assistant", "content": null, "tool_calls": [call]})
    } else {
        json!({"role": "assistant", "content": format!("done after {done} ticks")})
    };
    json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2}
    })
}

/// Start the scripted model on a loopback port: its base URL.
fn model_server(rt: &Tokio) -> String {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let app =
            Router::new().route("/v1/chat/completions", post(|Json(b): Json<Value>| async move { Json(reply(&b)) }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    })
}

fn workflow(base_url: &str) -> Workflow {
    let yaml = format!(
        r#"
id: react-bench
state_schema: {{ turns: int, answer: str }}
models:
  local: {{ provider: openai, model: bench, base_url: "{base_url}" }}
agents:
  ticker: {{ model: local, instructions: "Tick.", tools: [tick], max_iterations: 1000 }}
nodes:
  run: {{ type: agent, agent: ticker, message: "turns: {{{{ state.turns }}}}", output_key: answer }}
"#
    );
    compile_str(&yaml, "react-bench.yaml").expect("the bench workflow compiles")
}

async fn tick(_call: FunctionCall) -> Result<Value, FunctionError> {
    Ok(json!("ok"))
}

/// Run `iters` agent executions of `turns` turns one after the other.
fn sequential(rt: &Tokio, r: &Runtime, wf: &Workflow, turns: u64, iters: u64) -> Duration {
    let (r, wf) = (r.clone(), wf.clone());
    rt.block_on(async move {
        tokio::spawn(async move {
            let began = Instant::now();
            for _ in 0..iters {
                let out = r.run(&wf, json!({"turns": turns})).await.unwrap();
                assert_eq!(out.status, jamjet::journal::Status::Completed, "{:?}", out.error);
            }
            began.elapsed()
        })
        .await
        .unwrap()
    })
}

fn agent_turn(c: &mut Criterion) {
    let rt = tokio();
    let base = model_server(&rt);
    let wf = workflow(&base);
    let mut g = c.benchmark_group("agent_turn");
    g.throughput(Throughput::Elements(1));
    let client = reqwest::Client::new();
    let first = json!({"model": "bench", "messages": [{"role": "system", "content": "Tick."},
                                                      {"role": "user", "content": "turns: 2"}]});
    g.bench_function("loopback_model_call", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = client.post(format!("{base}/chat/completions")).json(&first).send().await.unwrap();
                r.bytes().await.unwrap()
            })
        })
    });
    let (short, long) = if std::env::var_os("CI").is_some() { (2, 4) } else { (10, 200) };
    // The round trip a long loop pays on average: the body halfway through
    // it (`long / 2` tool rounds), which the chat API resends every turn.
    let mut halfway = first.clone();
    let messages = halfway["messages"].as_array_mut().unwrap();
    for k in 0..long / 2 {
        let call =
            json!({"id": format!("call_{k}"), "type": "function", "function": {"name": "tick", "arguments": "{}"}});
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("call_{k}"), "content": "ok"}));
    }
    messages[1]["content"] = json!(format!("turns: {}", long + 1));
    g.bench_function(format!("loopback_model_call_at_turn_{}", long / 2), |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = client.post(format!("{base}/chat/completions")).json(&halfway).send().await.unwrap();
                r.bytes().await.unwrap()
            })
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let mem = rt.block_on(Runtime::builder().in_memory().function("tick", tick).open()).unwrap();
    let sled = rt.block_on(Runtime::builder().data_dir(dir.path()).function("tick", tick).open()).unwrap();
    for turns in [short, long] {
        g.throughput(Throughput::Elements(turns));
        g.sample_size(10);
        g.bench_function(format!("react{turns}_memory"), |b| {
            b.iter_custom(|iters| sequential(&rt, &mem, &wf, turns, iters))
        });
        let before = sled.journal_stats();
        let mut runs = 0u64;
        g.bench_function(format!("react{turns}_sled"), |b| {
            b.iter_custom(|iters| {
                runs += iters;
                sequential(&rt, &sled, &wf, turns, iters)
            })
        });
        let syncs = sled.journal_stats().syncs - before.syncs;
        println!(
            "react{turns}_sled: {syncs} syncs for {runs} executions x {turns} turns = {:.2} syncs per turn",
            syncs as f64 / (runs * turns) as f64
        );
    }
    g.finish();
}

criterion_group!(benches, agent_turn);
criterion_main!(benches);
