//! Configuration through the `jamjet` binary: `${VAR}` in a model entry's
//! `base_url` and model id and in an http node's URL and headers, read at
//! run time from the process environment and never journaled (not in any
//! byte of the data dir, not in `inspect -v`, the stored workflow keeps the
//! reference); an unset variable fails the execution naming it and where;
//! a `models:` entry with findings is reported as itself. Real processes,
//! real loopback servers.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;
use support::model_server::ModelServer;
use support::{files, jamjet, run_bounded};

const LIMIT: Duration = Duration::from_secs(60);

/// No file of the data dir holds `needle`.
fn nowhere_in(data: &Path, needle: &str) {
    for path in files(data) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "`{needle}` is in {}", path.display());
    }
}

/// `jamjet --data-dir DATA ARGS` with `env`, bounded in time.
fn jj(data: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = jamjet();
    for var in ["MODEL_URL", "MODEL_ID", "API_BASE", "HOOK_TOKEN", "PEER_URL", "PEER_KEY"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("--data-dir").arg(data).args(args);
    run_bounded(cmd, LIMIT, &format!("jamjet {}", args.join(" "))).output
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const MODEL_FLOW: &str = r#"id: ask-env
state_schema: { question: str, answer: str }
models:
  local:
    provider: openai
    model: "${MODEL_ID:-fallback-model}"
    base_url: "${MODEL_URL}"
nodes:
  ask:
    type: model
    model: local
    prompt: "Q: {{ state.question }}"
    output_key: answer
"#;

#[test]
fn a_model_base_url_from_the_environment_reaches_the_server_and_is_never_journaled() {
    let server = ModelServer::start_blocking();
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = (dir.path().join("data"), dir.path().join("ask.yaml"));
    std::fs::write(&file, MODEL_FLOW).unwrap();
    let file = file.to_str().unwrap();
    let base = server.openai_base();
    let model_id = "model-from-env-7f3a";
    let out = jj(
        &data,
        &[("MODEL_URL", &base), ("MODEL_ID", model_id)],
        &["run", file, "--input", r#"{"question": "hello"}"#, "--json"],
    );
    let v = json_of(&out);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["state"]["answer"], "echo: Q: hello");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["model"], model_id, "the resolved model id goes on the wire");

    // The resolved URL is in no byte of the data dir nor in inspect; the
    // request journaled names the model as written (the reply is journaled
    // as received, and a provider's reply names its model).
    let port = base.trim_start_matches("http://").trim_end_matches("/v1").to_string();
    nowhere_in(&data, &port);
    let id = v["id"].as_str().unwrap();
    let verbose = jj(&data, &[], &["inspect", id, "-v"]);
    let verbose = String::from_utf8_lossy(&verbose.stdout).into_owned();
    assert!(verbose.contains("echo: Q: hello"), "the exchange is shown: {verbose}");
    assert!(verbose.contains("${MODEL_ID:-fallback-model}"), "the request keeps the reference: {verbose}");
    assert!(!verbose.contains(&port), "{verbose}");
    let json = jj(&data, &[], &["inspect", id, "--json"]);
    let j: Value = serde_json::from_slice(&json.stdout).unwrap();
    let exchange = &j["nodes"][0]["exchanges"][0];
    assert_eq!(exchange["request"]["model"], "${MODEL_ID:-fallback-model}", "{exchange}");
    assert!(!j.to_string().contains(&port), "{j}");

    // The default applies when the variable is unset.
    let out = jj(&data, &[("MODEL_URL", &base)], &["run", file, "--input", r#"{"question": "again"}"#, "--json"]);
    assert_eq!(json_of(&out)["status"], "completed");
    assert_eq!(server.requests()[1].body["model"], "fallback-model");
}

#[test]
fn an_unset_variable_fails_the_execution_naming_it_and_where_without_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = (dir.path().join("data"), dir.path().join("ask.yaml"));
    let flow = MODEL_FLOW
        .replace("    output_key: answer\n", "    output_key: answer\n    retry: { max_attempts: 5, delay_ms: 10 }\n");
    std::fs::write(&file, flow).unwrap();
    let file = file.to_str().unwrap();
    let out = jj(&data, &[], &["run", file, "--input", r#"{"question": "hello"}"#, "--json"]);
    let v = json_of(&out);
    assert_eq!(v["status"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("`MODEL_URL` is not set"), "{error}");
    assert!(error.contains("node `ask`") && error.contains("base_url"), "{error}");
    assert!(error.contains(&format!("{file}:9:3")), "the node's place: {error}");
    // One attempt: the environment does not change while the process runs.
    let id = v["id"].as_str().unwrap();
    assert!(error.contains("`base_url` of model `local`"), "the models entry: {error}");
    let j = json_of(&jj(&data, &[], &["inspect", id, "--json"]));
    let node = &j["nodes"][0];
    assert_eq!(node["attempts"], 1, "not retried: {node}");
    assert_eq!(node["failures"][0]["class"], "ClientError", "{node}");
}

#[test]
fn validate_reports_malformed_references_and_a_bad_models_entry_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = |name: &str, from: &str, to: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, MODEL_FLOW.replace(from, to)).unwrap();
        let out = jj(&data, &[], &["validate", path.to_str().unwrap()]);
        assert!(!out.status.success(), "{name} passed validate");
        (
            path.display().to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (path, text) = bad("unclosed.yaml", "\"${MODEL_URL}\"", "\"${MODEL_URL\"");
    assert!(text.contains(&format!("{path}:7:15")) && text.contains("is not closed"), "{text}");
    assert!(!text.contains("unknown model"), "the entry is reported as itself: {text}");
    let (_, text) = bad("name.yaml", "\"${MODEL_URL}\"", "\"${MODEL-URL}\"");
    assert!(text.contains("`${MODEL-URL}` is not a variable reference"), "{text}");
    let (_, text) = bad("url.yaml", "\"${MODEL_URL}\"", "ftp://models.example");
    assert!(text.contains("`base_url` of model `local` must start with http://"), "{text}");
    assert!(!text.contains("unknown model"), "{text}");
    // An escaped `$${` is no reference and needs no variable.
    let ok = dir.path().join("escaped.yaml");
    std::fs::write(&ok, MODEL_FLOW.replace("\"${MODEL_ID:-fallback-model}\"", "\"m$${not-a-ref}\"")).unwrap();
    let out = jj(&data, &[], &["validate", ok.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// What the hook server received: each request's path and headers.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A loopback server that records each request's headers and path and answers `{"ok": true}`.
fn hook_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let keep = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = Router::new().route(
                "/{*path}",
                post(move |uri: axum::http::Uri, headers: HeaderMap| async move {
                    keep.lock().unwrap().push((uri.path().to_string(), headers));
                    axum::Json(serde_json::json!({ "ok": true }))
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
            axum::serve(listener, app).await.unwrap();
        })
    });
    (rx.recv_timeout(Duration::from_secs(10)).expect("the hook server did not start"), seen)
}

#[test]
fn an_http_nodes_url_base_and_header_come_from_the_environment() {
    let (url, seen) = hook_server();
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = (dir.path().join("data"), dir.path().join("hook.yaml"));
    let flow = r#"id: hook
state_schema: { order: str, reply: any }
nodes:
  notify:
    type: http
    method: POST
    url: "${API_BASE}/orders/{{ state.order }}"
    headers:
      Authorization: "Bearer ${HOOK_TOKEN}"
      X-Literal: "$${not-a-ref} and {{ state.order }}"
    body: { order: "{{ state.order }}" }
    output_key: reply
"#;
    std::fs::write(&file, flow).unwrap();
    let token = "tok-{{ state.order }}-5e1d";
    let out = jj(
        &data,
        &[("API_BASE", &url), ("HOOK_TOKEN", token)],
        &["run", file.to_str().unwrap(), "--input", r#"{"order": "o-17"}"#, "--json"],
    );
    let v = json_of(&out);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["state"]["reply"]["ok"], true);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/orders/o-17", "the base from the environment, the rest rendered");
    let header = |name: &str| seen[0].1.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    // A value is never read as a template, and a template is rendered around it.
    assert_eq!(header("authorization").as_deref(), Some("Bearer tok-{{ state.order }}-5e1d"));
    assert_eq!(header("x-literal").as_deref(), Some("${not-a-ref} and o-17"));
    nowhere_in(&data, "5e1d");
    nowhere_in(&data, url.trim_start_matches("http://"));

    // Unset: the execution fails naming the variable, the field and the node.
    let out =
        jj(&data, &[("API_BASE", &url)], &["run", file.to_str().unwrap(), "--input", r#"{"order": "o-18"}"#, "--json"]);
    let v = json_of(&out);
    assert_eq!(v["status"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("`HOOK_TOKEN` is not set") && error.contains("header `Authorization` of node `notify`"),
        "{error}"
    );
    assert_eq!(seen.len(), 1, "nothing was sent");
}

/// A workflow posted to `jamjet dev` reads no environment variable the
/// operator did not allow through any of the places `${VAR}` works, and
/// nothing is sent; a relative MCP command resolves from `--workflows DIR`
/// and is refused without one.
#[tokio::test]
async fn posted_workflows_read_no_variable_through_any_new_place_unless_allowed() {
    use support::dev::DevServer;
    let dir = tempfile::tempdir().unwrap();
    let thief = ModelServer::start().await;
    let base = thief.openai_base();
    let secret = "JAMJET_TEST_SECRET";
    let places = [
        (
            "model base_url",
            format!(
                "models:\n  m: {{ provider: openai, model: m, base_url: \"${{{secret}}}\" }}\nnodes:\n  a: {{ type: model, model: m, prompt: hi, output_key: x }}\n"
            ),
        ),
        (
            "model id",
            format!(
                "models:\n  m: {{ provider: openai, model: \"${{{secret}}}\", base_url: \"{base}\" }}\nnodes:\n  a: {{ type: model, model: m, prompt: hi, output_key: x }}\n"
            ),
        ),
        ("http url", format!("nodes:\n  a: {{ type: http, url: \"{base}/?k=${{{secret}}}\", output_key: x }}\n")),
        (
            "http header",
            format!(
                "nodes:\n  a: {{ type: http, url: \"{base}\", headers: {{ X-K: \"${{{secret}}}\" }}, output_key: x }}\n"
            ),
        ),
        (
            "agent url",
            format!("nodes:\n  a: {{ type: agent, agent: \"${{{secret}:-{base}}}\", message: hi, output_key: x }}\n"),
        ),
    ];
    let env = [(secret, "s3cret-value")];
    let server = DevServer::start_env(&dir.path().join("data"), &[], &env);
    let api = server.api();
    for (place, body) in &places {
        let yaml = format!("id: reach\nstate_schema: {{ x: any }}\n{body}");
        let (s, b) = api.register_yaml(&yaml).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("not_allowed")), "{place}: {b}");
        let m = b["error"]["message"].as_str().unwrap();
        assert!(m.contains(&format!("--allow-env {secret}")), "{place}: {m}");
        assert!(!b.to_string().contains("s3cret-value"), "{place}: {b}");
    }
    assert!(thief.requests().is_empty(), "nothing reached the would-be receiver");
    drop(server);

    // Relative paths of a posted workflow: from --workflows DIR, or refused.
    let relative = "id: rel\nstate_schema: { x: any }\nmcp:\n  servers:\n    s: { command: ./bin/server }\nnodes:\n  a: { type: tool, server: s, tool: t, output_key: x }\n";
    let server = DevServer::start(&dir.path().join("data2"), &["--allow-commands"]);
    let (s, b) = server.api().register_yaml(relative).await;
    assert_ne!(s, 201, "{b}");
    assert!(b.to_string().contains("`./bin/server` is a relative path"), "{b}");
    drop(server);
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let server =
        DevServer::start(&dir.path().join("data3"), &["--allow-commands", "--workflows", flows.to_str().unwrap()]);
    let (s, b) = server.api().register_yaml(relative).await;
    assert_eq!(s, 201, "{b}");
}

/// The directory a stdio server's relative paths resolve from is recorded
/// only when a value is, or may become, a relative path: a workflow with
/// `npx` and a package name hashes the same wherever its file is.
#[test]
fn only_servers_with_relative_paths_record_the_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let write = |sub: &str, server: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("wf.yaml");
        let yaml = format!(
            "id: p\nstate_schema: {{ x: any }}\nmcp:\n  servers:\n    s: {server}\nnodes:\n  a: {{ type: tool, server: s, tool: t, output_key: x }}\n"
        );
        std::fs::write(&path, yaml).unwrap();
        jamjet::ir::compile_file(&path).unwrap_or_else(|d| panic!("{d}"))
    };
    let stdio_dir = |wf: &jamjet::ir::Workflow| match &wf.mcp_servers["s"] {
        jamjet::ir::McpServer::Stdio { dir, .. } => dir.clone(),
        other => panic!("{other:?}"),
    };
    let bare = "{ command: npx, args: [-y, \"@scope/server\", --flag] }";
    assert_eq!(stdio_dir(&write("a", bare)), None);
    assert_eq!(write("a", bare).mcp_servers, write("b", bare).mcp_servers);
    for server in [
        "{ command: ./srv }",
        "{ command: python3, args: [../tools/srv.py] }",
        "{ command: srv, cwd: data }",
        "{ command: \"${TOOL}\" }",
    ] {
        let recorded = stdio_dir(&write("c", server)).unwrap_or_else(|| panic!("{server}"));
        assert_eq!(Path::new(&recorded), std::fs::canonicalize(dir.path().join("c")).unwrap(), "{server}");
    }
}

/// An agent node's URL and header from the environment, against a real
/// A2A peer (`jamjet dev --a2a`): the call completes, and the caller's data
/// dir never holds the peer's address (the exchange names the endpoint
/// under the URL as written).
#[test]
fn an_agent_url_and_header_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let greeter = "id: greeter\nversion: 0.1.0\nstate_schema: { name: str, greeting: str }\na2a:\n  skill: greet\n  description: Greets\n  input_key: name\nnodes:\n  greet: { type: set, values: { greeting: \"Hello, {{ state.name }}!\" } }\n";
    std::fs::write(flows.join("greeter.yaml"), greeter).unwrap();
    let peer =
        support::dev::DevServer::start(&dir.path().join("peer"), &["--a2a", "--workflows", flows.to_str().unwrap()]);
    let caller = dir.path().join("caller.yaml");
    std::fs::write(
        &caller,
        r#"id: caller
state_schema: { name: str, result: any }
nodes:
  call:
    type: agent
    agent: "${PEER_URL}/a2a/greeter/"
    headers: { X-Peer-Key: "${PEER_KEY:-none}" }
    message: "{{ state.name }}"
    output_key: result
    timeout_ms: 30000
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["run", caller.to_str().unwrap(), "--input", r#"{"name": "Ada"}"#, "--json"];
    let v = json_of(&jj(&data, &[("PEER_URL", &peer.url)], &args));
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["state"]["result"]["greeting"], "Hello, Ada!", "{v}");
    nowhere_in(&data, peer.url.trim_start_matches("http://"));
    let id = v["id"].as_str().unwrap();
    let j = json_of(&jj(&data, &[], &["inspect", id, "--json"]));
    let request = &j["nodes"][0]["exchanges"][0]["request"];
    assert_eq!(request["agent"], "${PEER_URL}/a2a/greeter/", "{request}");
    assert!(request["endpoint"].as_str().unwrap_or_default().starts_with("${PEER_URL}"), "{request}");

    // Unset: failed at once, the variable and the node named.
    let v = json_of(&jj(&data, &[], &args));
    assert_eq!(v["status"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("`PEER_URL` is not set") && error.contains("`agent` of node `call`"), "{error}");
}
