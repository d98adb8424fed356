//! A poison execution cannot take a runtime down. A workflow whose
//! templates would overflow the stack (100,000 terms) that reaches the
//! runtime without the compiler (IR built by hand, or journaled by an
//! earlier version that did not check it) is refused at submission; one
//! already in the journal fails its execution, journaled with the reason,
//! and the process starts again on the same data dir and serves the others.

mod support;

use jamjet::journal::{Append, Event, ExecutionMeta, Journal, Json, SledJournal, Status};
use jamjet::{ExecutionId, Runtime, Workflow};
use serde_json::{Value, json};
use support::dev::DevServer;
use support::{jamjet_json, jamjet_out};

/// A compiled workflow whose `set` value is then swapped for a template of
/// `terms` terms: what an IR posted as JSON, or stored long ago, may hold.
fn poison(terms: usize) -> Workflow {
    let yaml = "id: poison\nstate_schema: { n: int }\nnodes:\n  add: { type: set, values: { n: \"{{ 1 }}\" } }\n";
    let mut v: Value = serde_json::to_value(jamjet::compile_str(yaml, "poison.yaml").unwrap()).unwrap();
    let deep = format!("{{{{ {} }}}}", vec!["1"; terms].join(" + "));
    v["nodes"]["add"]["kind"]["values"]["n"] = json!(deep);
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn a_workflow_that_skipped_the_compiler_is_refused_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder().data_dir(dir.path()).open().await.unwrap();
    for terms in [10_000, 100_000] {
        let err = rt.submit(&poison(terms), json!({})).await.unwrap_err().to_string();
        assert!(err.contains("does not pass the checks"), "{err}");
        assert!(err.contains("max_expression_terms") || err.contains("max_template_bytes"), "{err}");
    }
    assert!(rt.list(None).unwrap().is_empty(), "nothing was journaled");
    rt.shutdown().await;
}

/// Write, as an earlier version would have, an execution of `wf` that has
/// started its first node, straight into the journal of `dir`.
async fn journal_started(dir: &std::path::Path, wf: &Workflow) -> ExecutionId {
    let journal = SledJournal::open(dir).unwrap();
    let hash = wf.content_hash();
    let id = ExecutionId::new(1_700_000_000_000);
    let events = [
        Event::ExecutionStarted {
            workflow_id: wf.id.clone(),
            workflow_version: wf.version.clone(),
            workflow_hash: hash.clone(),
            input: Json("{}".into()),
            key: None,
        },
        Event::NodeScheduled { node: "add".into(), visit: 1 },
        Event::NodeStarted { node: "add".into(), visit: 1, attempt: 1 },
    ];
    let meta = ExecutionMeta {
        id,
        workflow_id: wf.id.clone(),
        workflow_version: wf.version.clone(),
        workflow_hash: hash.clone(),
        status: Status::Running,
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_000,
        key: None,
    };
    let append = Append {
        execution: id,
        first_seq: 1,
        at_ms: 1_700_000_000_000,
        events: &events,
        meta: Some(&meta),
        workflow: Some((&hash, wf)),
        timers: &[],
        waits: &[],
        session: None,
    };
    journal.append(append).await.unwrap();
    drop(journal);
    id
}

#[test]
fn a_poison_execution_in_the_journal_fails_and_the_process_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let poisoned = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(journal_started(dir.path(), &poison(100_000)))
    };
    // A healthy execution beside it, run by the binary, which resumes the
    // poison one first (it was left running): it fails, journaled, and the
    // run says so on stderr without a crash, its own output unchanged.
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.yaml");
    let run = jamjet_out(dir.path(), &["run", hello, "--input", r#"{"name": "Ada"}"#, "--json"]);
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{said}");
    let ok: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(ok["status"], "completed");
    assert!(said.contains(&format!("resumed 1 interrupted execution: {poisoned}")), "{said}");
    assert!(said.contains(&format!("{poisoned} failed")), "{said}");
    let x = jamjet_json(dir.path(), &["inspect", &poisoned.to_string(), "--json"]);
    assert_eq!(x["execution"]["status"], "failed", "{x:#}");
    let error = x["error"].as_str().unwrap_or_default();
    assert!(error.contains("does not pass the checks") && error.contains("max_template_bytes"), "{error}");
    assert!(x["events"].as_array().unwrap().iter().any(|e| e["type"] == "ExecutionFailed"));

    // Again (nothing is left to resume), and under `jamjet dev`: it starts,
    // serves, and the others are there.
    let resumed = jamjet_out(dir.path(), &["resume"]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let mut server = DevServer::start(dir.path(), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = server.api();
        let (status, body) = api.get("/health").await;
        assert_eq!(status, 200, "{body}");
        let (_, list) = api.get("/executions").await;
        let ids: Vec<&str> = list["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&ok["id"].as_str().unwrap()) && ids.contains(&poisoned.to_string().as_str()), "{list:#}");
    });
    assert!(server.stop().success());
}
