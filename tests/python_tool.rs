//! docs/migrating-from-openai.md, as tests: Python functions exposed as MCP
//! tools by `examples/python/tools_server.py` (the official `mcp` package,
//! from the virtualenv `.ci/run` makes) called by `examples/python-tool.yaml`
//! and by a model through `jamjet run`, the real binary; and
//! `examples/python/drive_server.py` driving a real `jamjet dev` over REST
//! and SSE with the standard library only.
//!
//! The workflow starts `python3` from `PATH`, as the guide says (the
//! virtualenv's `bin` first), and names the server's file by a path from
//! its own directory (`./python/tools_server.py`): the commands run in a
//! temp dir, not the repository.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::dev::DevServer;
use support::model_server::{ModelServer, Reply, Rule};

/// The guide's workflow, by its full path (the commands run elsewhere).
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python-tool.yaml");

/// How long one command may run.
const LIMIT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `jamjet --data-dir DIR ARGS...` in DIR's parent folder, with the python
/// that has `mcp` first on `PATH`.
fn jamjet_with_python(py_bin: &Path, data_dir: &Path, args: &[&str]) -> Command {
    let path = format!("{}:{}", py_bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = support::jamjet();
    cmd.current_dir(data_dir.parent().expect("a data dir in a folder"))
        .env("PATH", path)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn python_functions_are_the_tools_of_a_workflow() {
    let Some(py_bin) = support::py_mcp::bin_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = r#"{"order_id": "A-17", "reason": "arrived broken"}"#;
    let cmd = jamjet_with_python(&py_bin, &data, &["run", EXAMPLE, "--input", input, "--json"]);
    let done = support::run_bounded(cmd, LIMIT, "jamjet run examples/python-tool.yaml");
    let (out, err) = (text(&done.output.stdout), text(&done.output.stderr));
    assert!(done.output.status.success(), "exit {}\nstdout:\n{out}\nstderr:\n{err}", done.output.status);
    let outcome: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}"));
    assert_eq!(outcome["status"], "completed", "{outcome:#}");
    let state = &outcome["state"];
    assert_eq!(
        state["order"],
        json!({"order_id": "A-17", "status": "shipped", "items": 2, "total": 59.9, "email": "ada@example.com"})
    );
    assert_eq!(state["refund"], json!({"amount": 59.9, "share": 1.0}), "{state:#}");

    // `inspect -v` shows what the Python function received and returned.
    let id = outcome["id"].as_str().unwrap();
    let cmd = jamjet_with_python(&py_bin, &data, &["inspect", id, "-v"]);
    let shown = support::run_bounded(cmd, LIMIT, "jamjet inspect -v");
    let shown = text(&shown.output.stdout);
    for want in ["lookup_order", "refund_quote", "arrived broken", "shipped"] {
        assert!(shown.contains(want), "inspect -v shows no `{want}`:\n{shown}");
    }
}

#[test]
fn a_python_exception_fails_the_node_with_its_message() {
    let Some(py_bin) = support::py_mcp::bin_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = r#"{"order_id": "Z-9", "reason": "late"}"#;
    let cmd = jamjet_with_python(&py_bin, &data, &["run", EXAMPLE, "--input", input]);
    let done = support::run_bounded(cmd, LIMIT, "jamjet run examples/python-tool.yaml (unknown order)");
    let all = format!("{}{}", text(&done.output.stdout), text(&done.output.stderr));
    assert!(!done.output.status.success(), "an unknown order succeeded:\n{all}");
    assert!(
        all.contains("no order 'Z-9'") && all.contains("lookup"),
        "the error names neither the message nor the node:\n{all}"
    );
}

#[test]
fn a_model_calls_the_python_tools() {
    let Some(py_bin) = support::py_mcp::bin_dir() else { return };
    let model = ModelServer::start_blocking();
    model.script(Rule::always(Reply::tool_call("lookup_order", json!({"order_id": "B-42"}))).times(1));
    let dir = tempfile::tempdir().unwrap();
    let server = repo().join("examples/python/tools_server.py");
    let wf = support::workflow_file(
        dir.path(),
        "support-agent.yaml",
        &format!(
            r#"
id: support-agent
version: 0.1.0
state_schema: {{ question: str, answer: str }}
models:
  local: {{ provider: openai, model: test-model, base_url: "{base}" }}
mcp:
  servers:
    shop: {{ command: python3, args: ["{server}"] }}
nodes:
  answer:
    type: model
    model: local
    system: "You answer questions about orders. Use the tools."
    prompt: "{{{{ state.question }}}}"
    tools: [shop]
    max_tool_rounds: 4
    output_key: answer
    retry: {{ max_attempts: 3, retry_on: [rate_limited, server_error, timeout, connection] }}
"#,
            base = model.openai_base(),
            server = server.display()
        ),
    );
    let data = dir.path().join("data");
    let input = r#"{"question": "Where is my order B-42?"}"#;
    let cmd = jamjet_with_python(&py_bin, &data, &["run", &wf, "--input", input, "--json"]);
    let done = support::run_bounded(cmd, LIMIT, "jamjet run support-agent.yaml");
    let (out, err) = (text(&done.output.stdout), text(&done.output.stderr));
    assert!(done.output.status.success(), "exit {}\nstdout:\n{out}\nstderr:\n{err}", done.output.status);
    let outcome: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}"));
    let answer = outcome["state"]["answer"].as_str().unwrap_or_default();
    assert!(answer.starts_with("tool said:") && answer.contains("delayed"), "{outcome:#}");

    let requests = model.requests();
    assert_eq!(requests.len(), 2, "one call that asks for the tool, one with its result");
    let offered: Vec<&str> =
        requests[0].body["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert!(offered.contains(&"lookup_order") && offered.contains(&"refund_quote"), "offered {offered:?}");
}

#[test]
fn python_drives_the_server_over_rest_and_sse() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = DevServer::start(dir.path(), &[]);
    let mut cmd = Command::new("python3");
    cmd.current_dir(repo()).arg("examples/python/drive_server.py").arg(&dev.url).env_remove("JAMJET_API_KEY");
    let done = support::run_bounded(cmd, LIMIT, "python3 examples/python/drive_server.py");
    let (out, err) = (text(&done.output.stdout), text(&done.output.stderr));
    assert!(done.output.status.success(), "exit {}\nstdout:\n{out}\nstderr:\n{err}", done.output.status);
    for want in ["registered refund-desk 0.1.0", "Waiting", "signalled refund:A-17", "SignalReceived", "end: completed"]
    {
        assert!(out.contains(want), "no `{want}` in:\n{out}");
    }
    assert!(
        out.trim_end().ends_with(
            r#"{"decision": {"amount": 59.9, "by": "ada"}, "note": "refund 59.9 for A-17", "order_id": "A-17"}"#
        ),
        "{out}"
    );

    // Again: the same idempotency key attaches to the same, finished, execution.
    let mut cmd = Command::new("python3");
    cmd.current_dir(repo()).arg("examples/python/drive_server.py").arg(&dev.url);
    let again = support::run_bounded(cmd, LIMIT, "python3 examples/python/drive_server.py (again)");
    let again_out = text(&again.output.stdout);
    assert!(again.output.status.success(), "{again_out}\n{}", text(&again.output.stderr));
    assert!(!again_out.contains("signalled"), "signalled a finished execution:\n{again_out}");
    let first_id = out.lines().find(|l| l.starts_with("execution ")).map(|l| l.split(' ').nth(1));
    let second_id = again_out.lines().find(|l| l.starts_with("execution ")).map(|l| l.split(' ').nth(1));
    assert_eq!(first_id, second_id);
    dev.stop();
}
