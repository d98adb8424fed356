//! `type: model` end to end: the loopback model server (both wire formats),
//! model nodes through the library on sled and through the `jamjet` binary,
//! usage and cost, error classes and retries, keys kept out of the journal,
//! and a `kill -9` during a model call.

mod support;

use std::path::Path;
use std::time::Duration;

use jamjet::journal::{ErrorClass, Event, Status, Usage};
use jamjet::model::{KeySource, Provider};
use jamjet::{ExecutionId, Outcome, Runtime, ir};
use serde_json::{Value, json};
use support::mcp_http::McpHttpServer;
use support::model_server::{ModelServer, Reply, Rule, Wire};
use support::{OutputBounded, files, jamjet, jamjet_out};

#[tokio::test]
async fn model_server_speaks_both_wires_and_follows_its_script() -> anyhow::Result<()> {
    let server = ModelServer::start().await;
    server.script(Rule::contains("limit", Reply::rate_limited("2")).times(1));
    server.script(Rule::contains("tools", Reply::tool_call("add", json!({"a": 1}))));
    let http = reqwest::Client::new();
    let openai = |body: Value| {
        http.post(format!("{}/chat/completions", server.openai_base()))
            .header("authorization", "Bearer k1")
            .header("idempotency-key", "e/n/1")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let reply: Value = openai(json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hello there"}]}))
        .await?
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b))??;
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: hello there");
    assert_eq!(reply["usage"]["prompt_tokens"], 2);
    assert_eq!(reply["usage"]["completion_tokens"], 3);

    let limited = openai(json!({"model": "m", "messages": [{"role": "user", "content": "limit me"}]})).await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let again = openai(json!({"model": "m", "messages": [{"role": "user", "content": "limit me"}]})).await?;
    assert_eq!(again.status(), 200, "the rule applies once");

    let tools: Value = openai(json!({"model": "m", "messages": [{"role": "user", "content": "use tools"}]}))
        .await?
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b))??;
    assert_eq!(tools["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(tools["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");

    let anthropic = |body: Value, version: bool| {
        let mut r = http.post(format!("{}/v1/messages", server.anthropic_base())).header("x-api-key", "k2");
        if version {
            r = r.header("anthropic-version", "2023-06-01");
        }
        r.header("content-type", "application/json").body(body.to_string()).send()
    };
    let body = json!({"model": "claude-x", "max_tokens": 10, "system": "be brief",
                      "messages": [{"role": "user", "content": "hi"}]});
    let reply: Value = serde_json::from_slice(&anthropic(body.clone(), true).await?.bytes().await?)?;
    assert_eq!(reply["content"][0], json!({"type": "text", "text": "echo: hi"}));
    assert_eq!(reply["stop_reason"], "end_turn");
    assert_eq!(reply["usage"], json!({"input_tokens": 3, "output_tokens": 2}));
    assert_eq!(anthropic(body, false).await?.status(), 400, "anthropic-version is required");

    let seen = server.requests();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0].wire, Wire::OpenAi);
    assert_eq!(seen[0].header("Authorization"), Some("Bearer k1"));
    assert_eq!(seen[0].idempotency_key(), Some("e/n/1"));
    assert_eq!(seen[4].header("x-api-key"), Some("k2"));
    assert!(server.wait_for_requests(6, Duration::from_millis(10)).await);
    Ok(())
}

// ------------------------------------------------------------ through the library, on sled

const LIMIT: Duration = Duration::from_secs(30);
const KEY_VAR: &str = "JJ_TEST_MODEL_KEY";
const SECRET: &str = "sk-test-5ecret-do-not-journal";

fn compile(src: &str) -> ir::Workflow {
    ir::compile_str(src, "model.yaml").unwrap_or_else(|d| panic!("{d}"))
}

/// A runtime on a fresh sled dir whose model keys come from `keys`.
async fn open(dir: &Path, keys: &[(&'static str, &'static str)]) -> Runtime {
    let keys: Vec<(&str, &str)> = keys.to_vec();
    let source = KeySource::from_fn(move |var| keys.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string()));
    Runtime::builder().data_dir(dir).model_keys(source).open().await.unwrap()
}

async fn run(rt: &Runtime, wf: &ir::Workflow, input: Value) -> Outcome {
    tokio::time::timeout(LIMIT, rt.run(wf, input)).await.expect("the execution did not end in time").unwrap()
}

fn events(rt: &Runtime, id: ExecutionId) -> Vec<Event> {
    rt.events(id).unwrap().into_iter().map(|r| r.event).collect()
}

fn exchanges(evs: &[Event]) -> Vec<(Value, Value, Usage)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Exchange { request, response, usage, .. } => {
                Some((serde_json::from_str(&request.0).unwrap(), serde_json::from_str(&response.0).unwrap(), *usage))
            }
            _ => None,
        })
        .collect()
}

fn completed_usage(evs: &[Event], node: &str) -> Vec<Usage> {
    evs.iter()
        .filter_map(|e| match e {
            Event::NodeCompleted { node: n, usage, .. } if n == node => Some(*usage),
            _ => None,
        })
        .collect()
}

fn failures(evs: &[Event]) -> Vec<(ErrorClass, String)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::NodeFailed { class, message, .. } => Some((*class, message.clone())),
            _ => None,
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn openai_flow(server: &ModelServer, extra: &str) -> String {
    format!(
        r#"
id: ask-openai
state_schema: {{ question: str, answer: str }}
models:
  local:
    provider: openai
    model: test-gpt
    base_url: {base}
    api_key_env: {KEY_VAR}
    price: {{ input_per_mtok: 2.0, output_per_mtok: 8.0 }}
nodes:
  ask:
    type: model
    model: local
    prompt: "Q: {{{{ state.question }}}}"
    output_key: answer
{extra}"#,
        base = server.openai_base()
    )
}

#[tokio::test]
async fn openai_node_answers_with_usage_and_cost_on_sled() {
    let server = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let wf = compile(&openai_flow(&server, "    temperature: 0.2\n    max_tokens: 50\n"));
    let out = run(&rt, &wf, json!({"question": "why is the sky blue"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["answer"], "echo: Q: why is the sky blue");

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert!(seen[0].idempotency_key().unwrap().starts_with(&format!("{}/ask/", out.id)));
    assert_eq!(seen[0].body["model"], "test-gpt");
    assert_eq!(seen[0].body["temperature"], 0.2);
    assert_eq!(seen[0].body["max_tokens"], 50);

    // 6 words in, 7 words out, at $2 and $8 per million.
    let cost = (6.0 * 2.0 + 7.0 * 8.0) / 1e6;
    let evs = events(&rt, out.id);
    let usage = completed_usage(&evs, "ask");
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].input_tokens, usage[0].output_tokens), (6, 7));
    assert!(close(usage[0].cost_usd, cost), "{usage:?}");
    let ex = exchanges(&evs);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].0, seen[0].body, "the exchange holds the exact body sent");
    assert_eq!(ex[0].1["choices"][0]["message"]["content"], "echo: Q: why is the sky blue");
    let total = rt.usage(out.id).unwrap();
    assert_eq!((total.input_tokens, total.output_tokens), (6, 7));
    assert!(close(total.cost_usd, cost));
    rt.shutdown().await;
}

#[tokio::test]
async fn anthropic_and_openai_nodes_sum_their_usage_per_execution() {
    let server = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[("JJ_ANTHROPIC", "ak-1"), (KEY_VAR, SECRET)]).await;
    let src = format!(
        r#"
id: two-providers
state_schema: {{ topic: str, draft: str, final: str }}
prices:
  test-gpt: {{ input_per_mtok: 1.0, output_per_mtok: 1.0 }}
models:
  claude:
    provider: anthropic
    model: claude-haiku-4-5
    base_url: {anthropic}
    api_key_env: JJ_ANTHROPIC
  gpt:
    provider: openai
    model: test-gpt
    base_url: {openai}
    api_key_env: {KEY_VAR}
nodes:
  draft:
    type: model
    model: claude
    system: "You write one line."
    prompt: "about {{{{ state.topic }}}}"
    output_key: draft
    next: polish
  polish:
    type: model
    model: gpt
    messages:
      - {{ role: system, content: "You polish." }}
      - {{ role: user, content: "polish: {{{{ state.draft }}}}" }}
    output_key: final
"#,
        anthropic = server.anthropic_base(),
        openai = server.openai_base()
    );
    let wf = compile(&src);
    let out = run(&rt, &wf, json!({"topic": "rust"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["draft"], "echo: about rust");
    assert_eq!(out.state["final"], "echo: polish: echo: about rust");

    let seen = server.requests();
    assert_eq!((seen[0].wire, seen[1].wire), (Wire::Anthropic, Wire::OpenAi));
    assert_eq!(seen[0].header("x-api-key"), Some("ak-1"));
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].body["system"], "You write one line.");
    assert_eq!(seen[0].body["max_tokens"], 4096, "anthropic requires max_tokens: a default is sent");
    assert_eq!(seen[1].body["messages"][0], json!({"role": "system", "content": "You polish."}));

    // Tokens as the server counts them (words): draft 4 + 2 in, 3 out; polish 2 + 4 in, 5 out.
    let evs = events(&rt, out.id);
    let draft = completed_usage(&evs, "draft")[0];
    let polish = completed_usage(&evs, "polish")[0];
    assert_eq!((draft.input_tokens, draft.output_tokens), (6, 3));
    assert!(close(draft.cost_usd, (6.0 * 1.0 + 3.0 * 5.0) / 1e6), "the built-in claude-haiku-4-5 price");
    assert_eq!((polish.input_tokens, polish.output_tokens), (6, 5));
    assert!(close(polish.cost_usd, 11.0 / 1e6), "the prices: section");
    let total = rt.usage(out.id).unwrap();
    assert_eq!((total.input_tokens, total.output_tokens), (12, 8));
    assert!(close(total.cost_usd, draft.cost_usd + polish.cost_usd));
    rt.shutdown().await;
}

const RETRY: &str = "    retry: { max_attempts: 3, backoff: constant, delay_ms: 10, retry_on: [rate_limited, server_error, invalid_output] }\n";

#[tokio::test]
async fn rate_limit_honours_retry_after_and_server_errors_are_retried() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("limited", Reply::rate_limited("1")).times(1));
    server.script(Rule::contains("broken", Reply::status(500)).times(1));
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let wf = compile(&openai_flow(&server, RETRY));

    let out = run(&rt, &wf, json!({"question": "limited"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    let records = rt.events(out.id).unwrap();
    let failed_at = records.iter().find(|r| matches!(r.event, Event::NodeFailed { .. })).unwrap().at_ms;
    let second = records.iter().filter(|r| matches!(r.event, Event::NodeStarted { .. })).nth(1).unwrap().at_ms;
    assert!(second - failed_at >= 950, "Retry-After: 1 was honoured over delay_ms: 10 ({} ms)", second - failed_at);
    let evs = events(&rt, out.id);
    assert_eq!(failures(&evs)[0].0, ErrorClass::RateLimited);
    assert!(failures(&evs)[0].1.contains("node `ask`"), "{:?}", failures(&evs));

    let out = run(&rt, &wf, json!({"question": "broken"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    let evs = events(&rt, out.id);
    assert_eq!(failures(&evs).iter().map(|f| f.0).collect::<Vec<_>>(), [ErrorClass::ServerError]);
    // Both attempts are exchanges; the failed one holds the server's error body.
    let ex = exchanges(&evs);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].1["error"], "scripted 500");
    // Every attempt of a visit carries the same key.
    let keys: Vec<_> = server
        .requests()
        .iter()
        .filter(|r| r.last_user.contains("broken"))
        .map(|r| r.idempotency_key().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    rt.shutdown().await;
}

#[tokio::test]
async fn malformed_json_is_invalid_output_naming_the_node() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::Malformed));
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let wf = compile(&openai_flow(&server, ""));
    let out = run(&rt, &wf, json!({"question": "hi"})).await;
    assert_eq!(out.status, Status::Failed);
    let evs = events(&rt, out.id);
    let f = failures(&evs);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, ErrorClass::InvalidOutput);
    assert!(f[0].1.contains("node `ask`") && f[0].1.contains("malformed JSON"), "{}", f[0].1);
    let ex = exchanges(&evs);
    assert_eq!(ex.len(), 1, "the reply that arrived is journaled");
    assert!(ex[0].1.as_str().unwrap().contains("this is not json"), "the raw text: {:?}", ex[0].1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_reply_that_violates_the_output_schema_is_retried_then_passes() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("grade", Reply::text("{\"score\": \"high\"}")).times(1));
    server.script(Rule::contains("grade", Reply::text("```json\n{\"score\": 4, \"why\": \"clear\"}\n```")));
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let src = openai_flow(&server, RETRY).replace("answer: str", "answer: str, verdict: dict").replace(
        "    output_key: answer\n",
        "    output_key: verdict\n    output_schema:\n      type: object\n      required: [score]\n      properties:\n        score: { type: integer, minimum: 1, maximum: 5 }\n",
    );
    let wf = compile(&src);
    let out = run(&rt, &wf, json!({"question": "grade this"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["verdict"], json!({"score": 4, "why": "clear"}));
    let evs = events(&rt, out.id);
    let f = failures(&evs);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, ErrorClass::InvalidOutput);
    assert!(f[0].1.contains("/score") && f[0].1.contains("output_schema"), "{}", f[0].1);
    // The failed attempt's tokens count too.
    let ex = exchanges(&evs);
    assert_eq!(ex.len(), 2);
    let total = rt.usage(out.id).unwrap();
    assert_eq!(total.output_tokens, ex[0].2.output_tokens + ex[1].2.output_tokens);
    assert!(ex[0].2.output_tokens > 0);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_missing_api_key_is_a_client_error_naming_node_and_variable() {
    let server = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[]).await;
    let wf = compile(&openai_flow(&server, RETRY));
    let out = run(&rt, &wf, json!({"question": "hi"})).await;
    assert_eq!(out.status, Status::Failed);
    let evs = events(&rt, out.id);
    let f = failures(&evs);
    assert_eq!(f.len(), 1, "not retried: {f:?}");
    assert_eq!(f[0].0, ErrorClass::ClientError);
    assert!(f[0].1.contains("node `ask`") && f[0].1.contains(KEY_VAR), "{}", f[0].1);
    assert!(server.requests().is_empty(), "nothing was sent");
    assert!(exchanges(&evs).is_empty());
    rt.shutdown().await;
}

#[tokio::test]
async fn a_local_server_needs_no_key_and_a_slow_reply_times_out() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("slow", Reply::delay(3_000, Reply::text("late"))));
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[]).await;
    let src = format!(
        r#"
id: local
state_schema: {{ q: str, a: str }}
models:
  ollama: {{ provider: openai, model: llama3.2, base_url: {base} }}
nodes:
  ask: {{ type: model, model: ollama, prompt: "{{{{ state.q }}}}", output_key: a, timeout_ms: 300 }}
"#,
        base = server.openai_base()
    );
    let wf = compile(&src);
    let out = run(&rt, &wf, json!({"q": "fast"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(server.requests()[0].header("authorization"), None);
    let out = run(&rt, &wf, json!({"q": "slow"})).await;
    assert_eq!(out.status, Status::Failed);
    let f = failures(&events(&rt, out.id));
    assert_eq!(f[0].0, ErrorClass::Timeout, "{f:?}");
    rt.shutdown().await;
}

// ------------------------------------------------------------ compile-time checks

fn findings(src: &str) -> String {
    match ir::compile_str(src, "bad.yaml") {
        Ok(_) => panic!("compiled:\n{src}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn bad_model_nodes_are_findings_with_line_column_and_node() {
    let head = "id: bad\nstate_schema: { q: str, a: str, n: int }\nmodels:\n  local: { provider: openai, model: m, base_url: \"http://127.0.0.1:1/v1\" }\nnodes:\n";
    let cases: &[(&str, &str)] = &[
        ("  ask: { type: model, model: llama3, prompt: hi, output_key: a }\n", "bad.yaml:6:30"),
        (
            "  ask: { type: model, model: local, prompt: hi, messages: [{role: user, content: x}], output_key: a }\n",
            "not both",
        ),
        ("  ask: { type: model, model: local, output_key: a }\n", "needs `prompt`"),
        ("  ask: { type: model, model: local, prompt: hi, output_key: a, temperature: 3 }\n", "between 0 and 2"),
        ("  ask: { type: model, model: local, prompt: hi, output_schema: { type: 12 } }\n", "not a valid JSON Schema"),
        ("  ask: { type: model, model: local, prompt: hi, output_key: n }\n", "type mismatch"),
        (
            "  ask: { type: model, model: local, messages: [{role: bot, content: x}], output_key: a }\n",
            "unknown role `bot`",
        ),
        ("  ask: { type: model, model: local, prompt: \"{{ state.qq }}\", output_key: a }\n", "qq"),
        ("  ask: { type: model, model: local, prompt: hi }\n", "needs `output_key`"),
        (
            "  ask: { type: model, model: claude-haiku-4-5, prompt: hi, output_key: a, temperature: 1.5 }\n",
            "between 0 and 1 for anthropic",
        ),
    ];
    for (node, want) in cases {
        let text = findings(&format!("{head}{node}"));
        assert!(text.contains(want), "{node}\nwanted `{want}` in:\n{text}");
        assert!(text.contains("ask"), "names the node: {text}");
    }
    let text = findings(&format!("{head}  ask: {{ type: model, model: llama3, prompt: hi, output_key: a }}\n"));
    assert!(text.contains("unknown model `llama3`") && text.contains("`local`"), "lists configured names: {text}");

    let text = findings(
        "id: bad\nstate_schema: { a: str }\nmodels:\n  x: { provider: openia, model: m }\n  y: { model: mistral }\nnodes:\n  n: { type: model, model: gpt-4o, prompt: hi, output_key: a }\n",
    );
    assert!(text.contains("bad.yaml:4:") && text.contains("unknown provider `openia`"), "{text}");
    assert!(text.contains("bad.yaml:5:") && text.contains("needs a `provider`"), "{text}");
}

#[test]
fn bare_model_names_use_provider_defaults() {
    let wf = compile(
        "id: ok\nstate_schema: { a: str }\nnodes:\n  n: { type: model, model: claude-haiku-4-5, prompt: hi, output_key: a, next: m }\n  m: { type: model, model: gpt-4o-mini, prompt: hi, output_key: a }\n",
    );
    let ir::NodeKind::Model(n) = &wf.nodes["n"].kind else { panic!() };
    assert_eq!(n.config.provider, Provider::Anthropic);
    assert_eq!(n.config.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
    let ir::NodeKind::Model(m) = &wf.nodes["m"].kind else { panic!() };
    assert_eq!(m.config.base_url, "https://api.openai.com/v1");
    assert_eq!(m.config.price.unwrap().input_per_mtok, 0.15);
}

#[test]
fn the_model_example_validates() {
    let out = jamjet().args(["validate", "examples/model.yaml"]).output_bounded();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// ------------------------------------------------------------ through the `jamjet` binary

fn write_flow(dir: &Path, server: &ModelServer, extra: &str) -> std::path::PathBuf {
    let file = dir.join("ask.yaml");
    std::fs::write(&file, openai_flow(server, extra)).unwrap();
    file
}

/// The events of every execution in a data dir the CLI has let go of.
async fn journal_of(data: &Path) -> Vec<(ExecutionId, Vec<jamjet::journal::Record>)> {
    let rt = Runtime::builder().data_dir(data).resume_on_open(false).timers(false).open().await.unwrap();
    let out = rt.list(None).unwrap().into_iter().map(|m| (m.id, rt.events(m.id).unwrap())).collect();
    rt.shutdown().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamjet_run_sends_the_key_and_never_journals_it() {
    let server = ModelServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write_flow(dir.path(), &server, "");
    let (f, d) = (file.clone(), data.clone());
    let out = tokio::task::spawn_blocking(move || {
        jamjet()
            .env(KEY_VAR, SECRET)
            .arg("--data-dir")
            .arg(&d)
            .args(["run", f.to_str().unwrap(), "--input", r#"{"question": "hello"}"#, "--json"])
            .output_bounded()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"]["answer"], "echo: Q: hello");
    assert_eq!(v["usage"]["input_tokens"], 2);
    assert_eq!(v["usage"]["output_tokens"], 3);
    let stdout_and_err = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!stdout_and_err.contains(SECRET), "the key reached the output");
    assert_eq!(server.requests()[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()));

    // Not in any byte of the data dir, nor in any record.
    for path in files(&data) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the key is in {}", path.display());
    }
    let journal = journal_of(&data).await;
    assert_eq!(journal.len(), 1);
    for r in &journal[0].1 {
        assert!(!format!("{:?}", r.event).contains(SECRET), "the key is in {r:?}");
    }
    assert!(journal[0].1.iter().any(|r| matches!(r.event, Event::Exchange { .. })));

    // `inspect` shows tokens and cost per node and in total; `-v` shows
    // the request as sent and the reply, and never the key.
    let id = v["id"].as_str().unwrap().to_string();
    let (d, i) = (data.clone(), id.clone());
    let (plain, verbose, json) = tokio::task::spawn_blocking(move || {
        let text = |args: &[&str]| {
            let out = jamjet_out(&d, args);
            assert!(out.status.success(), "inspect {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        (text(&["inspect", &i]), text(&["inspect", &i, "-v"]), text(&["inspect", &i, "--json"]))
    })
    .await
    .unwrap();
    // 2 tokens in at $2/M and 3 out at $8/M.
    assert!(plain.contains("usage      2 tokens in, 3 out, $0.000028"), "{plain}");
    assert!(plain.contains("TOKENS IN/OUT") && plain.contains("2/3"), "{plain}");
    assert!(!plain.contains("echo: Q: hello\n"), "the reply is for -v: {plain}");
    assert!(verbose.contains("request at "), "{verbose}");
    assert!(verbose.contains(r#""content": "Q: hello""#), "the prompt as sent: {verbose}");
    assert!(verbose.contains("echo: Q: hello"), "the reply: {verbose}");
    assert!(!verbose.contains(SECRET) && !json.contains(SECRET), "the key reached inspect");
    let j: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["usage"]["output_tokens"], 3);
    assert_eq!(j["nodes"][0]["exchanges"][0]["usage"]["input_tokens"], 2);
    assert_eq!(j["nodes"][0]["exchanges"][0]["response"]["choices"][0]["message"]["content"], "echo: Q: hello");
}

/// `kill -9` while the model call is in flight (the server holds the
/// reply), then `jamjet resume`: the call is made again with the same
/// Idempotency-Key and the visit completes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_model_call_repeats_it_with_the_same_key() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::Hold).times(1));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = write_flow(dir.path(), &server, "    next: done\n  done: { type: end }\n");
    let mut child =
        support::run_to_kill(&data, &file, r#"{"question": "hold on"}"#).env(KEY_VAR, SECRET).spawn().unwrap();
    let arrived = server.wait_for_requests(1, LIMIT).await;
    let _ = child.kill(); // SIGKILL, mid-call
    let _ = child.wait();
    assert!(arrived, "the model call never reached the server");

    let (d, f) = (data.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        jamjet().env(KEY_VAR, SECRET).arg("--data-dir").arg(&d).args(["resume", "--json"]).output_bounded()
    })
    .await
    .unwrap();
    drop(f);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");

    let seen = server.requests();
    assert_eq!(seen.len(), 2, "the call was made again after the crash");
    assert_eq!(seen[0].idempotency_key(), seen[1].idempotency_key());
    assert_eq!(seen[0].body, seen[1].body);
    let journal = journal_of(&data).await;
    let (id, records) = &journal[0];
    assert!(seen[0].idempotency_key().unwrap().starts_with(&format!("{id}/ask/")));
    let completions =
        records.iter().filter(|r| matches!(&r.event, Event::NodeCompleted { node, .. } if node == "ask")).count();
    assert_eq!(completions, 1);
    assert!(matches!(records.last().unwrap().event, Event::ExecutionCompleted { .. }));
}

// ------------------------------------------------------------ tools: MCP tools offered to the model

fn tools_flow(server: &ModelServer, mcp: &McpHttpServer, extra: &str) -> String {
    format!(
        r#"
id: with-tools
state_schema: {{ question: str, a1: str, a2: str }}
mcp:
  servers:
    calc: {{ url: "{mcp}" }}
models:
  gpt: {{ provider: openai, model: test-gpt, base_url: "{openai}", api_key_env: {KEY_VAR} }}
  claude: {{ provider: anthropic, model: claude-haiku-4-5, base_url: "{anthropic}", api_key_env: {KEY_VAR} }}
nodes:
  ask_gpt:
    type: model
    model: gpt
    prompt: "{{{{ state.question }}}}"
    tools: [calc]
    output_key: a1
    next: ask_claude
  ask_claude:
    type: model
    model: claude
    prompt: "{{{{ state.question }}}}"
    tools: [{{ server: calc, tools: [add] }}]
    output_key: a2
{extra}"#,
        mcp = mcp.url,
        openai = server.openai_base(),
        anthropic = server.anthropic_base()
    )
}

#[tokio::test]
async fn model_nodes_call_mcp_tools_and_journal_the_whole_conversation() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("add please", Reply::tool_call("add", json!({"a": 2, "b": 3}))));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let wf = compile(&tools_flow(&server, &mcp, ""));
    let out = run(&rt, &wf, json!({"question": "add please"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.state["a1"], "tool said: 5");
    assert_eq!(out.state["a2"], "tool said: 5");

    let seen = server.requests();
    assert_eq!(seen.len(), 4, "two rounds per node");
    let key = seen[0].idempotency_key().unwrap().to_string();
    assert!(key.starts_with(&format!("{}/ask_gpt/", out.id)));
    // Call 1 is the model's, call 2 the tool's, call 3 the model's again.
    assert_eq!(seen[1].idempotency_key(), Some(format!("{key}/call/3").as_str()));
    // OpenAI: function tools, then the assistant's tool_calls and a tool message.
    let offered: Vec<&str> =
        seen[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["add", "fail"]);
    assert_eq!(seen[0].body["tools"][0]["function"]["parameters"]["required"], json!(["a", "b"]));
    let msgs = seen[1].body["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["tool_calls"][0]["function"]["name"], "add");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], msgs[1]["tool_calls"][0]["id"]);
    assert_eq!(msgs[2]["content"], "5");
    // Anthropic: only the listed tool, then tool_use and tool_result blocks.
    assert_eq!(
        seen[2].body["tools"],
        json!([{"name": "add", "description": "Add two numbers.", "input_schema": {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}])
    );
    let msgs = seen[3].body["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], msgs[1]["content"][0]["id"]);

    // The MCP server saw each call with its own idempotency key in _meta.
    let calls = mcp.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].arguments, json!({"a": 2, "b": 3}));
    assert_eq!(calls[0].meta["jamjet/idempotency_key"], format!("{key}/call/2"));
    let claude_key = seen[2].idempotency_key().unwrap();
    assert_eq!(calls[1].meta["jamjet/idempotency_key"], format!("{claude_key}/call/2"));

    // The model's tool call and the tool's result were journaled as they
    // completed: the first call with the whole body, the tool's with its
    // arguments and result.
    let evs = events(&rt, out.id);
    let gpt_calls: Vec<&jamjet::journal::CallRecord> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Call { node, call, .. } if node == "ask_gpt" => Some(call),
            _ => None,
        })
        .collect();
    let shape: Vec<(u32, &str, &str)> = gpt_calls.iter().map(|c| (c.n, c.kind.as_str(), c.name.as_str())).collect();
    assert_eq!(shape, [(1, "model", "gpt"), (2, "tool", "add")]);
    assert_eq!(gpt_calls[0].request.value().unwrap(), seen[0].body);
    assert_eq!(gpt_calls[1].request.value().unwrap()["arguments"], json!({"a": 2, "b": 3}));
    assert_eq!(gpt_calls[1].response.value().unwrap(), json!("5"));
    assert_eq!((gpt_calls[0].usage.input_tokens, gpt_calls[0].usage.output_tokens), (2, 1));
    // One exchange per node: the last body sent (the whole conversation)
    // and the final reply, with the final reply's usage (the rest is the calls').
    let ex = exchanges(&evs);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].0, seen[1].body);
    assert_eq!(ex[0].1["choices"][0]["message"]["content"], "tool said: 5");
    assert_eq!((ex[0].2.input_tokens, ex[0].2.output_tokens), (3, 3));
    let gpt = completed_usage(&evs, "ask_gpt")[0];
    // Round one: 2 words in, 1 tool call out; round two: 2 + 1 words in, 3 out.
    assert_eq!((gpt.input_tokens, gpt.output_tokens), (2 + 3, 1 + 3));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_is_stopped_at_max_tool_rounds() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("fail", json!({}))));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let src =
        tools_flow(&server, &mcp, "").replace("    tools: [calc]\n", "    tools: [calc]\n    max_tool_rounds: 2\n");
    let wf = compile(&src);
    let out = run(&rt, &wf, json!({"question": "loop"})).await;
    assert_eq!(out.status, Status::Failed);
    let evs = events(&rt, out.id);
    let f = failures(&evs);
    assert_eq!(f[0].0, ErrorClass::InvalidOutput);
    assert!(f[0].1.contains("node `ask_gpt`") && f[0].1.contains("max_tool_rounds"), "{}", f[0].1);
    assert_eq!(server.requests().len(), 3, "the first call and two rounds");
    assert_eq!(mcp.calls().len(), 2);
    // The error results went back to the model as text.
    let last = &server.requests()[2].body["messages"];
    assert_eq!(last.as_array().unwrap().last().unwrap()["content"], "error: boom");
    assert_eq!(exchanges(&evs).len(), 1, "the failed attempt's conversation is journaled");
    rt.shutdown().await;
}

#[test]
fn tools_must_name_declared_mcp_servers() {
    let text = findings(
        "id: bad\nstate_schema: { a: str }\nnodes:\n  n: { type: model, model: gpt-4o, prompt: hi, output_key: a, tools: [calc] }\n",
    );
    assert!(text.contains("MCP server `calc` is not declared") && text.contains("(node `n`)"), "{text}");
    let text = findings(
        "id: bad\nstate_schema: { a: str }\nnodes:\n  n: { type: model, model: gpt-4o, prompt: hi, output_key: a, max_tool_rounds: 3 }\n",
    );
    assert!(text.contains("`max_tool_rounds` needs `tools`"), "{text}");
}

// ------------------------------------------------------------ durable at every call: kill -9 inside a tool loop

/// A model node whose model asks for the example MCP server's `count`
/// tool once (held `hold_ms` on its first call with a key), then answers.
fn counting_flow(dir: &Path, server: &ModelServer, mcp_url: &str) -> std::path::PathBuf {
    let src = format!(
        r#"
id: durable-calls
state_schema: {{ question: str, answer: str }}
mcp:
  servers:
    ex: {{ url: "{mcp_url}" }}
models:
  local: {{ provider: openai, model: test-gpt, base_url: "{base}", api_key_env: {KEY_VAR} }}
nodes:
  ask:
    type: model
    model: local
    prompt: "Q: {{{{ state.question }}}}"
    tools: [{{ server: ex, tools: [count] }}]
    output_key: answer
"#,
        base = server.openai_base()
    );
    let file = dir.join("calls.yaml");
    std::fs::write(&file, src).unwrap();
    file
}

/// `jamjet resume --json` on `data`: every execution's outcome.
async fn resume(data: &Path) -> Value {
    let d = data.to_path_buf();
    tokio::task::spawn_blocking(move || support::jamjet_json_with(&d, &[(KEY_VAR, SECRET)], &["resume", "--json"]))
        .await
        .unwrap()
}

/// How often the model server and the tool saw each key, and the visit's
/// journaled calls, after a crash and a resume.
struct AfterResume {
    model_keys: Vec<String>,
    tool_keys: Vec<String>,
    calls: Vec<(u32, String)>,
    completions: usize,
}

async fn after_resume(server: &ModelServer, count_file: &Path, data: &Path) -> AfterResume {
    let journal = journal_of(data).await;
    let (_, records) = &journal[0];
    AfterResume {
        model_keys: server.requests().iter().map(|r| r.idempotency_key().unwrap().to_string()).collect(),
        tool_keys: support::mcp::recorded(count_file).into_iter().map(|(k, _)| k).collect(),
        calls: records
            .iter()
            .filter_map(|r| match &r.event {
                Event::Call { call, .. } => Some((call.n, call.kind.clone())),
                _ => None,
            })
            .collect(),
        completions: records.iter().filter(|r| matches!(r.event, Event::NodeCompleted { .. })).count(),
    }
}

/// `kill -9` while the tool call is in flight (the tool holds its first
/// call), then `jamjet resume`: the model's first call is not sent again,
/// the tool call is repeated with its own key, and the answer is the one
/// an uninterrupted run gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_tool_call_resumes_at_that_call_with_its_key() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("count", json!({"hold_first_ms": 60_000}))).times(1));
    server.script(Rule::always(Reply::text("counted")));
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count.txt");
    let mcp = support::mcp::HttpServer::start(&count_file);
    let data = dir.path().join("data");
    let file = counting_flow(dir.path(), &server, &mcp.url);
    let mut child =
        support::run_to_kill(&data, &file, r#"{"question": "count"}"#).env(KEY_VAR, SECRET).spawn().unwrap();
    // The tool call has arrived (the tool recorded its key) and is held.
    let deadline = std::time::Instant::now() + LIMIT;
    while support::mcp::recorded(&count_file).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill(); // SIGKILL, mid tool call
    let _ = child.wait();
    assert_eq!(support::mcp::recorded(&count_file).len(), 1, "the tool call never arrived");

    let resumed = resume(&data).await;
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    assert_eq!(resumed[0]["state"]["answer"], "counted", "{resumed}");
    let a = after_resume(&server, &count_file, &data).await;
    let key = a.model_keys[0].clone();
    assert_eq!(a.model_keys, [key.clone(), format!("{key}/call/3")], "the first model call was not sent again");
    let tool_key = format!("{key}/call/2");
    assert_eq!(a.tool_keys, [tool_key.clone(), tool_key], "the interrupted tool call repeats with its own key");
    assert_eq!(a.calls, [(1, "model".to_string()), (2, "tool".to_string())]);
    assert_eq!(a.completions, 1);
}

/// `kill -9` right after the tool's result is durable, before the next
/// model call: after `jamjet resume` neither the first model call nor the
/// tool call is made again; only the model's next call is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_two_model_calls_makes_no_completed_call_again() {
    let server = ModelServer::start().await;
    server.script(Rule::always(Reply::tool_call("count", json!({}))).times(1));
    server.script(Rule::always(Reply::text("counted")));
    let dir = tempfile::tempdir().unwrap();
    let count_file = dir.path().join("count.txt");
    let mcp = support::mcp::HttpServer::start(&count_file);
    let data = dir.path().join("data");
    let file = counting_flow(dir.path(), &server, &mcp.url);
    let cmd = support::run_to_kill(&data, &file, r#"{"question": "count"}"#);
    let mut cmd = cmd;
    cmd.env(KEY_VAR, SECRET);
    tokio::task::spawn_blocking(move || support::kill_when_paused(cmd, "Call:2", LIMIT, "jamjet run")).await.unwrap();
    assert_eq!(server.requests().len(), 1, "killed before the second model call");

    let resumed = resume(&data).await;
    assert_eq!(resumed[0]["status"], "completed", "{resumed}");
    assert_eq!(resumed[0]["state"]["answer"], "counted", "{resumed}");
    let a = after_resume(&server, &count_file, &data).await;
    let key = a.model_keys[0].clone();
    assert_eq!(a.model_keys, [key.clone(), format!("{key}/call/3")]);
    assert_eq!(a.tool_keys, [format!("{key}/call/2")], "the tool call was made once");
    assert_eq!(a.calls, [(1, "model".to_string()), (2, "tool".to_string())]);
    assert_eq!(a.completions, 1);

    // `inspect` shows the calls under their node, `-v` in full.
    let id = resumed[0]["id"].as_str().unwrap().to_string();
    let shown = jamjet_out(&data, &["inspect", &id]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("call 1   model `local`  calls count({})"), "{text}");
    assert!(text.contains("call 2   tool `count`  {} -> "), "{text}");
    let verbose = String::from_utf8_lossy(&jamjet_out(&data, &["inspect", &id, "-v"]).stdout).into_owned();
    assert!(verbose.contains("sent (attempt 1)") && verbose.contains("\"Q: count\""), "{verbose}");
}

/// A tool the policy blocks by its bare name (which the compiler cannot
/// tie to a whole-server `tools:` entry) is not offered, and a call of it
/// the model makes anyway is refused before it reaches the server.
#[tokio::test]
async fn a_blocked_tool_of_a_whole_server_is_not_offered_and_a_call_of_it_is_refused() {
    let server = ModelServer::start().await;
    server.script(Rule::contains("block please", Reply::tool_call("fail", json!({"message": "boom"}))).times(1));
    let mcp = McpHttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rt = open(dir.path(), &[(KEY_VAR, SECRET)]).await;
    let wf = compile(&tools_flow(&server, &mcp, "policy: { blocked_tools: [fail] }\n"));
    let out = run(&rt, &wf, json!({"question": "block please"})).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    let seen = server.requests();
    let offered: Vec<&str> =
        seen[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["add"]);
    assert!(mcp.calls().is_empty(), "the blocked tool never reached the server");
    assert!(
        out.state["a1"].as_str().unwrap().contains("the tool `fail` is blocked by the workflow's policy (`fail`)"),
        "{}",
        out.state["a1"]
    );
    rt.shutdown().await;
}
