//! The runtime's limits, crossed through the real binary: each fails the
//! execution with class `limit_exceeded`, journaled, with a message naming
//! the limit and how to raise it, and nothing else is affected. Responses
//! are read as streams and stopped at the limit (the process's peak memory
//! is measured with `wait4`); a `for_each` over 10,000 items with a 20 KB
//! state stays within a memory and disk budget; idempotency keys and ids
//! mean what they say.

mod support;

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path as UrlPath;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{any, get};
use serde_json::{Value, json};
use support::{jamjet, jamjet_json, jamjet_out, workflow_file};

const MIB: u64 = 1024 * 1024;

/// What one `jamjet` process did, with its peak resident memory.
struct Measured {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    max_rss_bytes: u64,
    took: Duration,
}

/// Run `jamjet ARGS` on `dir` to its end (within two minutes), measured.
fn measured(dir: &Path, args: &[&str]) -> Measured {
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir).args(args);
    let f = support::run_bounded(cmd, Duration::from_secs(120), &format!("jamjet {}", args.join(" ")));
    Measured {
        status: f.output.status,
        stdout: String::from_utf8_lossy(&f.output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&f.output.stderr).into_owned(),
        max_rss_bytes: f.max_rss_bytes,
        took: f.took,
    }
}

/// A loopback server of oversized answers, generated as they are sent
/// (it never holds them):
/// - `/big/{mib}`: that many MiB of a JSON string, chunked (no length);
/// - `/declared/{mib}`: the same with its Content-Length;
/// - `/v1/chat/completions`: 200 MiB of a chat completion, chunked;
/// - `/.well-known/agent-card.json`: 200 MiB of an agent card, chunked.
async fn big_server() -> String {
    fn json_string(mib: u64) -> Body {
        let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
        let chunks = mib * 16;
        let head = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{\"x\": \""))]);
        let body = futures::stream::iter((0..chunks).map(move |_| Ok(chunk.clone())));
        let tail = futures::stream::iter([Ok(Bytes::from_static(b"\"}"))]);
        use futures::StreamExt;
        Body::from_stream(head.chain(body).chain(tail))
    }
    fn json(body: Body) -> Response {
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
    let app = Router::new()
        .route("/big/{mib}", any(|UrlPath(mib): UrlPath<u64>| async move { json(json_string(mib)) }))
        .route(
            "/declared/{mib}",
            any(|UrlPath(mib): UrlPath<u64>| async move {
                let mut r = json(json_string(mib));
                let len = 7 + mib * MIB + 2;
                r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_str(&len.to_string()).unwrap());
                r
            }),
        )
        .route("/v1/chat/completions", any(|| async { json(json_string(200)) }))
        .route("/.well-known/agent-card.json", get(|| async { json(json_string(200)) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The server on a runtime of its own, for tests that run the binary.
fn start_big_server() -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let url = rt.block_on(big_server());
    (url, rt)
}

/// The failed execution's JSON outcome (`run --json` exits 1 on failure).
fn failed(m: &Measured) -> Value {
    assert!(!m.status.success(), "expected a failed execution: {}\n{}", m.stdout, m.stderr);
    serde_json::from_str(&m.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {}\n{}", m.stdout, m.stderr))
}

/// The `NodeFailed` event of an execution, from `inspect --json`.
fn node_failed(dir: &Path, id: &str) -> Value {
    let x = jamjet_json(dir, &["inspect", id, "--json"]);
    let found = x["events"].as_array().unwrap().iter().find(|e| e["type"] == "NodeFailed");
    found.map(|e| e["event"]["NodeFailed"].clone()).unwrap_or_else(|| panic!("no NodeFailed in {x:#}"))
}

#[test]
fn an_http_response_over_the_limit_is_stopped_while_it_streams() {
    let (url, _server) = start_big_server();
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "fetch.yaml",
        &format!(
            "id: fetch\nstate_schema: {{ page: any }}\nnodes:\n  get:\n    type: http\n    url: \"{url}/big/200\"\n    output_key: page\n"
        ),
    );
    // 200 MiB chunked against the default 10 MiB: stopped at the limit, never held.
    let m = measured(dir.path(), &["run", &wf, "--json"]);
    let out = failed(&m);
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("limit_exceeded"), "{error}");
    assert!(error.contains("max_response_bytes = 10 MiB") && error.contains("--limit max_response_bytes="), "{error}");
    assert!(m.max_rss_bytes < 150 * MIB, "peak memory {} MiB for a stopped 200 MiB response", m.max_rss_bytes / MIB);
    let ev = node_failed(dir.path(), out["id"].as_str().unwrap());
    assert_eq!(ev["class"], "LimitExceeded", "{ev}");
    assert_eq!(ev["retry"], "GiveUp", "a crossed limit is never retried: {ev}");

    // A declared Content-Length over the limit is refused before reading;
    // a raised limit lets a 2 MiB one through.
    let wf2 = workflow_file(
        dir.path(),
        "declared.yaml",
        &format!(
            "id: declared\nstate_schema: {{ page: any }}\nnodes:\n  get:\n    type: http\n    url: \"{url}/declared/2\"\n    output_key: page\n"
        ),
    );
    let m = measured(dir.path(), &["--limit", "max_response_bytes=1MiB", "run", &wf2, "--json"]);
    let error = failed(&m)["error"].as_str().unwrap().to_string();
    assert!(error.contains("is 2.0 MiB") && error.contains("max_response_bytes = 1 MiB"), "{error}");
    let m = measured(dir.path(), &["--limit", "max_response_bytes=3MiB", "run", &wf2, "--json"]);
    assert!(m.status.success(), "{}\n{}", m.stdout, m.stderr);
}

#[test]
fn model_and_agent_replies_over_the_limit_fail_their_node() {
    let (url, _server) = start_big_server();
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "ask.yaml",
        &format!(
            r#"id: ask
state_schema: {{ q: str, answer: any, peer: any }}
models:
  local: {{ provider: openai, model: m, base_url: "{url}/v1" }}
nodes:
  ask: {{ type: model, model: local, prompt: "{{{{ state.q }}}}", output_key: answer }}
"#
        ),
    );
    let m = measured(dir.path(), &["run", &wf, "--input", r#"{"q": "hi"}"#, "--json"]);
    let error = failed(&m)["error"].as_str().unwrap().to_string();
    assert!(error.contains("the reply of model `m`") && error.contains("max_response_bytes"), "{error}");
    assert!(m.max_rss_bytes < 150 * MIB, "peak memory {} MiB", m.max_rss_bytes / MIB);

    let wf = workflow_file(
        dir.path(),
        "peer.yaml",
        &format!(
            "id: peer\nstate_schema: {{ q: str, peer: any }}\nnodes:\n  call: {{ type: agent, agent: \"{url}/\", message: \"{{{{ state.q }}}}\", output_key: peer }}\n"
        ),
    );
    let m = measured(dir.path(), &["run", &wf, "--input", r#"{"q": "hi"}"#, "--json"]);
    let error = failed(&m)["error"].as_str().unwrap().to_string();
    assert!(error.contains("agent card") && error.contains("max_response_bytes"), "{error}");
    assert!(m.max_rss_bytes < 150 * MIB, "peak memory {} MiB", m.max_rss_bytes / MIB);
}

#[test]
fn a_tool_result_over_the_limit_fails_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::mcp::example_server().display().to_string();
    let wf = workflow_file(
        dir.path(),
        "echo.yaml",
        &format!(
            r#"id: echo
state_schema: {{ text: str, said: any }}
mcp:
  servers:
    ex: {{ command: "{server}" }}
nodes:
  echo: {{ type: tool, server: ex, tool: echo, arguments: {{ text: "{{{{ state.text }}}}" }}, output_key: said }}
"#
        ),
    );
    let input = json!({ "text": "y".repeat(8 * 1024) }).to_string();
    let ok = jamjet_json(dir.path(), &["run", &wf, "--input", &input, "--json"]);
    assert_eq!(ok["status"], "completed");
    let m = measured(dir.path(), &["--limit", "max_response_bytes=4KiB", "run", &wf, "--input", &input, "--json"]);
    let error = failed(&m)["error"].as_str().unwrap().to_string();
    assert!(error.contains("the result of tool `echo`") && error.contains("max_response_bytes = 4 KiB"), "{error}");
}

#[test]
fn a_state_that_doubles_each_step_fails_at_the_state_limit() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "double.yaml",
        r#"id: double
state_schema: { s: str }
nodes:
  grow: { type: set, values: { s: "{{ state.s ~ state.s }}" }, next: again }
  again:
    type: branch
    conditions: [{ when: "state.s | length > 0", next: grow }]
    default: done
  done: { type: end }
"#,
    );
    let m = measured(
        dir.path(),
        &["--limit", "max_state_bytes=1MiB", "run", &wf, "--input", r#"{"s": "0123456789abcdef"}"#, "--json"],
    );
    let out = failed(&m);
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("node `grow`") && error.contains("max_state_bytes = 1 MiB"), "{error}");
    assert_eq!(node_failed(dir.path(), out["id"].as_str().unwrap())["class"], "LimitExceeded");
    // The journal holds the states that fitted, not the one that did not.
    let all = jamjet_json(dir.path(), &["inspect", out["id"].as_str().unwrap(), "--json"]);
    let largest = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "NodeCompleted")
        .map(|e| e["event"]["NodeCompleted"]["patch"].to_string().len())
        .max()
        .unwrap();
    assert!(largest <= MIB as usize, "a patch of {largest} bytes was journaled");

    // An input over the limit is refused before anything is journaled.
    let before = jamjet_json(dir.path(), &["executions", "--json"]).as_array().unwrap().len();
    let big = json!({ "s": "z".repeat(100 * 1024) }).to_string();
    let refused = jamjet_out(dir.path(), &["--limit", "max_state_bytes=64KiB", "run", &wf, "--input", &big]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("max_state_bytes") && err.contains("nothing was started"),
        "{err}"
    );
    assert_eq!(jamjet_json(dir.path(), &["executions", "--json"]).as_array().unwrap().len(), before);
}

#[test]
fn a_loop_with_no_way_out_stops_at_max_steps() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "spin.yaml",
        r#"id: spin
state_schema: { n: int }
nodes:
  tick: { type: set, values: { n: "{{ state.n + 1 }}" }, next: check }
  check:
    type: branch
    conditions: [{ when: "state.n >= 0", next: tick }]
    default: done
  done: { type: end }
"#,
    );
    let m = measured(dir.path(), &["--limit", "max_steps=1000", "run", &wf, "--input", r#"{"n": 0}"#, "--json"]);
    let out = failed(&m);
    let error = out["error"].as_str().unwrap();
    assert!(error.starts_with("limit_exceeded:") && error.contains("1,000 steps"), "{error}");
    assert!(error.contains("max_steps = 1,000") && error.contains("--limit max_steps="), "{error}");
    assert_eq!(out["state"]["n"], 500, "tick and check alternate: 500 ticks in 1,000 steps");
    let x = jamjet_json(dir.path(), &["inspect", out["id"].as_str().unwrap(), "--json"]);
    let scheduled = x["events"].as_array().unwrap().iter().filter(|e| e["type"] == "NodeScheduled").count();
    assert_eq!(scheduled, 1000);
}

#[test]
fn a_for_each_over_too_many_items_fails_before_starting_any() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "many.yaml",
        r#"id: many
state_schema: { items: list, results: list, x: any }
nodes:
  fan:
    type: parallel
    for_each: "{{ state.items }}"
    branches: [work]
    join: done
    output_key: results
  work: { type: set, values: { x: "{{ item }}" }, next: done }
  done: { type: end }
"#,
    );
    let items = json!({ "items": (0..11).collect::<Vec<_>>() }).to_string();
    let m = measured(dir.path(), &["--limit", "max_for_each_items=10", "run", &wf, "--input", &items, "--json"]);
    let out = failed(&m);
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("gave 11 items") && error.contains("max_for_each_items = 10"), "{error}");
    let all = jamjet_json(dir.path(), &["executions", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "no child was started: {all:#}");
}

#[test]
fn a_wait_past_the_longest_duration_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "later.yaml",
        "id: later\nstate_schema: { at: str }\nnodes:\n  sleep: { type: wait, until: \"{{ state.at }}\" }\n",
    );
    let m = measured(dir.path(), &["run", &wf, "--input", r#"{"at": "2999-01-01T00:00:00Z"}"#, "--json"]);
    let error = failed(&m)["error"].as_str().unwrap().to_string();
    assert!(error.contains("would wait until 2999-01-01") && error.contains("max_duration_ms = 366 days"), "{error}");
}

/// The issue's budget: a `for_each` over 10,000 items with a 20 KB input
/// runs in well under 1 GiB of memory and 300 MiB of disk. (Before
/// branches named their parent's state, every child's first event copied
/// it: 2.1 GB of memory and 638 MB of disk for this run.)
#[test]
fn a_for_each_over_10000_items_costs_what_it_fans_out() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow_file(
        dir.path(),
        "fan.yaml",
        r#"id: fan10k
state_schema: { blob: str, results: list, x: any }
nodes:
  fan:
    type: parallel
    for_each: "{{ range(10000) }}"
    branches: [work]
    join: done
    output_key: results
  work: { type: set, values: { x: "{{ item }}" }, next: done }
  done: { type: end }
"#,
    );
    let data = dir.path().join("data");
    let input = json!({ "blob": "b".repeat(20_000) }).to_string();
    let m = measured(&data, &["run", &wf, "--input", &input, "--json"]);
    assert!(m.status.success(), "{}\n{}", m.stdout.chars().take(2000).collect::<String>(), m.stderr);
    let out: Value = serde_json::from_str(&m.stdout).unwrap();
    let results = out["state"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 10_000);
    assert_eq!(results[9_999], json!({ "x": 9_999 }));
    let disk = dir_size(&data);
    eprintln!(
        "for_each 10,000 x 20 KB: {:.1} s, peak memory {} MiB, data dir {} MiB",
        m.took.as_secs_f64(),
        m.max_rss_bytes / MIB,
        disk / MIB
    );
    assert!(m.max_rss_bytes < 640 * MIB, "peak memory {} MiB", m.max_rss_bytes / MIB);
    assert!(disk < 300 * MIB, "data dir {} MiB", disk / MIB);
    // Each branch's journal names the parent's state; none copies it.
    let child = jamjet_json(&data, &["executions", "--all", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] != out["id"])
        .map(|e| e["id"].as_str().unwrap().to_string())
        .unwrap();
    let x = jamjet_json(&data, &["inspect", &child, "--json"]);
    assert_eq!(x["events"][0]["type"], "BranchStarted", "{:#}", x["events"][0]);
    let events = x["events"].to_string();
    assert!(!events.contains(&"b".repeat(1000)), "the branch's journal holds no copy of the blob");
    assert_eq!(x["state"]["blob"].as_str().map(str::len), Some(20_000), "its state is its parent's: {:#}", x["state"]);
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() { dir_size(&e.path()) } else { meta.len() }
        })
        .sum()
}

#[test]
fn an_idempotency_key_names_one_submission() {
    let dir = tempfile::tempdir().unwrap();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.yaml");
    let first = jamjet_json(dir.path(), &["run", hello, "--input", r#"{"name": "Ada"}"#, "--key", "k1", "--json"]);
    let again = jamjet_json(dir.path(), &["run", hello, "--input", r#"{"name": "Ada"}"#, "--key", "k1", "--json"]);
    assert_eq!(first["id"], again["id"], "the same submission attaches to its execution");

    let other_input = jamjet_out(dir.path(), &["run", hello, "--input", r#"{"name": "Bob"}"#, "--key", "k1"]);
    let err = String::from_utf8_lossy(&other_input.stderr);
    assert!(!other_input.status.success(), "{err}");
    assert!(
        err.contains("`k1`") && err.contains(first["id"].as_str().unwrap()) && err.contains("another input"),
        "{err}"
    );

    let edited =
        workflow_file(dir.path(), "hello2.yaml", &std::fs::read_to_string(hello).unwrap().replace("Hello, ", "Hi, "));
    let other_wf = jamjet_out(dir.path(), &["run", &edited, "--input", r#"{"name": "Ada"}"#, "--key", "k1"]);
    let err = String::from_utf8_lossy(&other_wf.stderr);
    assert!(!other_wf.status.success() && err.contains("another workflow"), "{err}");

    for bad in ["", "   "] {
        let empty = jamjet_out(dir.path(), &["run", hello, "--input", r#"{"name": "Ada"}"#, "--key", bad]);
        let err = String::from_utf8_lossy(&empty.stderr);
        assert!(!empty.status.success() && err.contains("the key is empty"), "{err}");
    }
    assert_eq!(jamjet_json(dir.path(), &["executions", "--json"]).as_array().unwrap().len(), 1, "nothing else started");
}

#[test]
fn execution_ids_have_one_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.yaml");
    let out = jamjet_json(dir.path(), &["run", hello, "--input", r#"{"name": "Ada"}"#, "--json"]);
    let id = out["id"].as_str().unwrap();
    let body = &id[5..];
    // 26 base-32 digits hold 130 bits: a first digit past 7 once wrapped onto a real id.
    for alias in
        [format!("exec_{}", body.to_lowercase()), format!("exec_8{}", &body[1..]), format!("exec_G{}", &body[1..])]
    {
        let o = jamjet_out(dir.path(), &["inspect", &alias]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("is not an execution id"), "{alias}: {err}");
    }
}
