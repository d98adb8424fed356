//! Hostile workflows against the real binary and the real server: deep
//! templates and conditions (10,000 and 100,000 terms: sums, filter chains,
//! attribute chains) in `when:` and in `set` values, a 10,000-node cycle
//! and a 40,000-node workflow, YAML nested 100,000 levels deep, durations
//! of `i64::MAX`, a block scalar that tries to forge a finding line, a
//! truncated file. Each is a finding naming what is wrong and where, never
//! a crash: `jamjet validate` exits 1 (not by a signal), and `jamjet dev`
//! answers 422 for the same workflows as YAML and as IR JSON, then still
//! answers `/health`.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::dev::DevServer;
use support::{jamjet_out, workflow_file};

/// `a+1+1...`, `a|lower|lower...`, `a.b.b...` with `terms` operators.
fn chains(terms: usize) -> [(&'static str, String); 3] {
    [
        ("sum", format!("state.n{}", "+1".repeat(terms))),
        ("filters", format!("state.s{}", "|lower".repeat(terms))),
        ("attributes", format!("state.d{}", ".b".repeat(terms))),
    ]
}

/// A workflow with every chain as a branch condition and as a `set` value.
fn deep_workflow(terms: usize) -> String {
    let mut yaml = String::from("id: deep\nstate_schema: {n: int, s: str, d: any}\nnodes:\n");
    for (name, chain) in chains(terms) {
        yaml.push_str(&format!(
            "  when_{name}:\n    type: branch\n    conditions:\n      - when: \"{chain}\"\n        next: set_{name}\n    default: set_{name}\n"
        ));
        yaml.push_str(&format!("  set_{name}:\n    type: set\n    values: {{s: \"{{{{ {chain} }}}}\"}}\n"));
    }
    yaml.push_str("  done: {type: end}\n");
    // Chain the nodes: each `set` goes on to the next branch.
    yaml.replace("set_sum:\n    type: set", "set_sum:\n    type: set\n    next: when_filters")
        .replace("set_filters:\n    type: set", "set_filters:\n    type: set\n    next: when_attributes")
        .replace("set_attributes:\n    type: set", "set_attributes:\n    type: set\n    next: done")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `jamjet validate FILE`: it must fail with exit code 1, not by a signal,
/// within a minute (a compiler gone quadratic fails here, not hangs CI).
fn refused(dir: &std::path::Path, file: &str) -> String {
    let mut cmd = support::jamjet();
    cmd.arg("--data-dir").arg(dir).args(["validate", file]);
    let out = support::run_bounded(cmd, std::time::Duration::from_secs(60), &format!("jamjet validate {file}")).output;
    assert_eq!(out.status.code(), Some(1), "validate must exit 1, not crash: {:?}\n{}", out.status, stderr(&out));
    stderr(&out)
}

#[test]
fn deep_templates_and_conditions_are_findings_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    for terms in [10_000, 100_000] {
        let file = workflow_file(dir.path(), "deep.yaml", &deep_workflow(terms));
        let text = refused(dir.path(), &file);
        let findings: Vec<&str> = text.lines().filter(|l| l.contains(": error: ")).collect();
        assert_eq!(findings.len(), 6, "one finding per chain and place:\n{text}");
        for line in findings {
            assert!(line.starts_with(&format!("{file}:")), "{line}");
            // 100,000 filters are also over 256 KiB.
            let limit = line.contains("max_expression_terms = 500") || line.contains("max_template_bytes = 256 KiB");
            assert!(limit && line.contains("--limit"), "{line}");
            assert!(line.chars().count() < 1000, "the finding quotes little of the chain: {}", line.len());
        }
    }
}

#[test]
fn huge_graphs_and_deep_yaml_are_findings() {
    let dir = tempfile::tempdir().unwrap();
    let cycle = |n: usize| {
        let mut yaml = String::from("id: cycle\nstate_schema: {x: int}\nnodes:\n");
        for i in 0..n {
            yaml.push_str(&format!("  n{i}: {{type: set, values: {{x: {i}}}, next: n{}}}\n", (i + 1) % n));
        }
        yaml
    };
    let file = workflow_file(dir.path(), "cycle.yaml", &cycle(10_000));
    let text = refused(dir.path(), &file);
    assert!(
        text.contains("nodes `n0`, `n1`, `n2`, `n3`, `n4`, `n5`, `n6`, `n7`, `n8`, `n9` and 9990 more form a cycle"),
        "{text}"
    );
    assert!(text.contains(&format!("{file}:4:3: error:")), "reported at the first member: {text}");

    let file = workflow_file(dir.path(), "big.yaml", &cycle(40_000));
    let text = refused(dir.path(), &file);
    assert!(text.contains("`nodes` holds 40000 nodes: over the limit max_nodes = 10,000"), "{text}");

    for (name, deep) in [
        ("seq", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        ("map", format!("{}1{}", "{a: ".repeat(100_000), "}".repeat(100_000))),
    ] {
        let yaml = format!("id: deep\nstate_schema: {{x: any}}\nnodes:\n  a: {{type: set, values: {{x: {deep}}}}}\n");
        let file = workflow_file(dir.path(), &format!("{name}.yaml"), &yaml);
        let text = refused(dir.path(), &file);
        assert!(text.contains(": error: "), "{name}: {text}");
    }
    // 3,000 block sequences nested one in another (9 MiB, under the file limit).
    let block: String = (0..3_000).map(|i| format!("{}- \n", " ".repeat(2 * i + 6))).collect();
    let yaml =
        format!("id: deep\nstate_schema: {{x: any}}\nnodes:\n  a:\n    type: set\n    values:\n      x:\n{block}");
    let text = refused(dir.path(), &workflow_file(dir.path(), "block.yaml", &yaml));
    assert!(text.contains("nested deeper") || text.contains("recursion"), "block: {text}");
    // saphyr-parser's own recursion limit or ours (64 levels), whichever comes first.
    let nested = format!(
        "id: deep\nstate_schema: {{x: any}}\nnodes:\n  a:\n    type: set\n    values:\n      x:\n{}",
        (0..100).map(|i| format!("{}- \n", "  ".repeat(i + 4))).collect::<String>()
    );
    let text = refused(dir.path(), &workflow_file(dir.path(), "nested.yaml", &nested));
    assert!(text.contains("values nested deeper than 64 levels are not supported"), "{text}");
}

#[test]
fn durations_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let max = i64::MAX;
    let yaml = format!(
        "id: slow\ntimeout_ms: {max}\nmax_steps: 0\nstate_schema: {{e: any}}\nnodes:\n  \
         sleep: {{type: wait, duration_ms: {max}, next: ask}}\n  \
         ask: {{type: wait, event: go, timeout_ms: {max}, on_timeout: done, output_key: e, next: done, retry: {{delay_ms: {max}, max_delay_ms: {max}}}}}\n  \
         done: {{type: end}}\n"
    );
    let file = workflow_file(dir.path(), "slow.yaml", &yaml);
    let text = refused(dir.path(), &file);
    for field in ["timeout_ms", "duration_ms", "delay_ms", "max_delay_ms"] {
        let needle = format!("`{field}` of {max} ms: over the limit max_duration_ms = 366 days");
        assert!(text.contains(&needle), "{field}: {text}");
    }
    assert!(text.contains(&format!("{file}:2:13: error: `timeout_ms` of")), "{text}");
    assert!(text.contains("`max_steps` must be at least 1"), "{text}");
}

#[test]
fn findings_cannot_be_forged_and_stay_inside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "id: forge\nstate_schema: {x: int}\nnodes:\n  a:\n    type: |\n      set\n      other.yaml:99:1: error: forged finding\n    \x1b[2Jvalues: {x: 1}\n";
    let file = workflow_file(dir.path(), "forge.yaml", yaml);
    let text = refused(dir.path(), &file);
    for line in text.lines() {
        // Each line a finding of this file, or the count of them.
        let count =
            line.split_once(' ').is_some_and(|(n, w)| n.parse::<u32>().is_ok() && matches!(w, "finding" | "findings"));
        assert!(line.starts_with(&file) || count, "forged: {line}");
        assert!(!line.contains('\x1b'), "an escape sequence reached the terminal: {line:?}");
    }
    assert!(text.contains(r"set\nother.yaml:99:1: error: forged finding"), "{text}");

    // Truncated in the middle of a mapping, no newline at the end.
    let truncated = "id: cut\nstate_schema: {x: int}\nnodes:\n  a: {type: set, values: {x: 1}";
    let file = workflow_file(dir.path(), "cut.yaml", truncated);
    let out = jamjet_out(dir.path(), &["validate", &file, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<&str> = truncated.lines().collect();
    for f in report["findings"].as_array().unwrap() {
        let (line, column) = (f["line"].as_u64().unwrap() as usize, f["column"].as_u64().unwrap() as usize);
        assert!((1..=lines.len()).contains(&line), "line {line} is past the end: {f}");
        assert!(column <= lines[line - 1].chars().count() + 1, "column {column} is past the line: {f}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_refuses_deep_workflows_as_yaml_and_ir_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(dir.path(), &[]);
    let api = server.api();
    let (status, body) = api.register_yaml(&deep_workflow(10_000)).await;
    assert_eq!(status, 422, "{body}");
    let findings = body["error"]["details"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 6, "{body}");
    assert!(findings.iter().all(|f| f["line"].as_u64().unwrap() > 0), "{body}");
    // 100,000 terms, one chain at a time (the server takes 1 MiB bodies).
    for (name, chain) in chains(100_000) {
        let yaml = format!(
            "id: deep\nstate_schema: {{n: int, s: str, d: any}}\nnodes:\n  b:\n    type: branch\n    conditions:\n      - when: \"{chain}\"\n        next: done\n    default: done\n  done: {{type: end}}\n"
        );
        let (status, body) = api.register_yaml(&yaml).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["error"]["details"]["findings"][0]["line"], 7, "{name}: {body}");
    }

    // The same chains in IR JSON, where no compiler looked at them.
    let good = "id: ir\nstate_schema: {n: int, s: str, d: any}\nnodes:\n  b: {type: branch, conditions: [{when: 'state.n > 1', next: s}], default: s}\n  s: {type: set, values: {s: 'x'}, next: w}\n  w: {type: wait, duration_ms: 5, next: done}\n  done: {type: end}\n";
    let wf = jamjet::ir::compile_str(good, "ir.yaml").unwrap();
    for (name, chain) in chains(10_000) {
        let mut ir = serde_json::to_value(&wf).unwrap();
        ir["nodes"]["b"]["kind"]["conditions"][0]["when"] = json!(chain);
        ir["nodes"]["s"]["kind"]["values"]["s"] = json!(format!("{{{{ {chain} }}}}"));
        ir["nodes"]["w"]["kind"]["duration_ms"] = json!(u64::MAX);
        let (status, body) = api.post("/workflows", &ir).await;
        assert_eq!(status, 422, "{name}: {body}");
        let paths: Vec<&str> = body["error"]["details"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["nodes.b.conditions[0].when", "nodes.s.values.s", "nodes.w.duration_ms"], "{name}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("max_expression_terms"), "{body}");
    }
    let (status, body) = api.get("/health").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.get("/workflows").await;
    assert_eq!((status, body["workflows"].as_array().map(Vec::len)), (200, Some(0)), "nothing was registered");
}
