//! Fuzzing, bounded for CI: property tests that throw random and mutated
//! input at the three parsers that read what a user or a disk hands us —
//! the YAML compiler, the IR JSON loader with `ir::check`, and the journal
//! decoder — and require that none of them panics (a panic fails the case)
//! or aborts (an abort kills this binary, which fails the run). Each runs
//! 2,000 cases unless `PROPTEST_CASES` says otherwise (run it longer
//! locally: `PROPTEST_CASES=100000 cargo test --release --test fuzz`).

use std::path::Path;

use jamjet::ir::{self, Limits, Workflow};
use jamjet::journal::{self, ErrorClass, Event, Json, Usage};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000);
    let persistence = FileFailurePersistence::WithSource("proptest-regressions");
    ProptestConfig { cases, failure_persistence: Some(Box::new(persistence)), ..ProptestConfig::default() }
}

/// The example workflows: real YAML to mutate.
fn examples() -> &'static [(String, String)] {
    // Read once, not per case.
    static EXAMPLES: std::sync::LazyLock<Vec<(String, String)>> = std::sync::LazyLock::new(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        out.sort();
        out
    });
    &EXAMPLES
}

/// Text that stresses the compiler: deep nesting, long chains, odd
/// scalars, block scalars with newlines and escapes, huge numbers.
fn hostile_fragment() -> impl Strategy<Value = String> {
    let depth = 1usize..300;
    prop_oneof![
        depth.clone().prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        depth.clone().prop_map(|n| format!("{}1{}", "{a: ".repeat(n), "}".repeat(n))),
        depth.clone().prop_map(|n| (0..n).map(|i| format!("\n{}- x", " ".repeat(i + 2))).collect()),
        (1usize..3000).prop_map(|n| format!("\"{{{{ state.a{} }}}}\"", " + state.a".repeat(n))),
        (1usize..3000).prop_map(|n| format!("\"state.a{}\"", "|lower".repeat(n))),
        (1usize..3000).prop_map(|n| format!("'{{{{ a{} }}}}'", ".b".repeat(n))),
        (1usize..600).prop_map(|n| format!("\"{{% if a %}}{}{{% endif %}}\"", "{% elif a %}".repeat(n))),
        Just("|\n  line one\n  other.yaml:99:1: error: forged\n  \u{1b}[2J\r\n".to_string()),
        Just(">-\n  folded\n\n  text\n".to_string()),
        Just("9223372036854775807".to_string()),
        Just("99999999999999999999999999999999".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("0x7FFFFFFFFFFFFFFFFFFF".to_string()),
        Just("1e999".to_string()),
        Just(".nan".to_string()),
        Just("~".to_string()),
        Just("&a [*a, *a]".to_string()),
        Just("!!binary aGk=".to_string()),
        Just("\"\\u0000\\uD800\"".to_string()),
        Just("? [a, b]\n: c".to_string()),
        Just("---\n---\n...".to_string()),
        "[\\PC]{0,40}",
        "[-:\\[\\]{}&*!|>'\"%@#?,\n\t a-z0-9é]{1,40}",
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    /// Insert the fragment at a char position.
    Insert(usize, String),
    /// Replace what follows `: ` on a line with the fragment.
    Value(usize, String),
    /// Delete a line.
    DeleteLine(usize),
    /// Cut the text at a char position (a truncated file).
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), hostile_fragment()).prop_map(|(i, f)| Edit::Insert(i, f)),
        (any::<usize>(), hostile_fragment()).prop_map(|(i, f)| Edit::Value(i, f)),
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let lines: Vec<&str> = text.lines().collect();
    match edit {
        Edit::Insert(i, f) => {
            let at = i % (chars.len() + 1);
            chars[..at].iter().chain(f.chars().collect::<Vec<_>>().iter()).chain(&chars[at..]).collect()
        }
        Edit::Value(i, f) => {
            let n = i % lines.len().max(1);
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if let Some(line) = out.get_mut(n)
                && let Some(colon) = line.find(": ")
            {
                line.replace_range(colon + 2.., f);
            }
            out.join("\n")
        }
        Edit::DeleteLine(i) => {
            let n = i % lines.len().max(1);
            lines.iter().enumerate().filter(|(k, _)| *k != n).map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
        }
        Edit::Truncate(i) => chars[..i % (chars.len() + 1)].iter().collect(),
    }
}

/// A finding is one line and points inside the file.
fn check_findings(text: &str, findings: &ir::Diagnostics) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.lines().collect();
    prop_assert!(!findings.is_empty());
    for f in findings.iter() {
        prop_assert!(!f.to_string().contains(['\n', '\r', '\u{1b}']), "a finding spans lines: {:?}", f);
        if f.file == "wf.yaml" {
            prop_assert!(f.line >= 1 && f.line as usize <= lines.len().max(1), "line past the end: {}", f);
            let len = lines.get(f.line as usize - 1).map_or(0, |l| l.chars().count());
            prop_assert!(f.column >= 1 && f.column as usize <= len + 1, "column past the line: {}", f);
        }
    }
    Ok(())
}

/// Valid IR to mutate: every example that compiles, as JSON.
fn ir_seeds() -> &'static [Value] {
    // Compiled once, not per case.
    static SEEDS: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        examples()
            .iter()
            .filter_map(|(path, _)| ir::compile_file(&dir.join(Path::new(path).file_name().unwrap())).ok())
            .map(|wf| serde_json::to_value(&wf).unwrap())
            .collect()
    });
    &SEEDS
}

/// Replace the `pick`-th leaf (in walk order) of `v` with `with`.
fn replace_leaf(v: &mut Value, pick: usize, with: Value) {
    let mut leaves: Vec<String> = Vec::new();
    let mut todo = vec![(String::new(), &*v)];
    while let Some((at, node)) = todo.pop() {
        match node {
            Value::Array(items) => todo.extend(items.iter().enumerate().map(|(i, item)| (format!("{at}/{i}"), item))),
            Value::Object(map) => todo.extend(
                map.iter().map(|(k, item)| (format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), item)),
            ),
            _ => leaves.push(at),
        }
    }
    if let Some(slot) = leaves.get(pick % leaves.len().max(1)).cloned().and_then(|at| v.pointer_mut(&at)) {
        *slot = with;
    }
}

fn hostile_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        hostile_fragment().prop_map(Value::String),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e308)),
        Just(json!(null)),
        Just(json!([])),
        Just(json!({})),
        (1usize..100).prop_map(|n| serde_json::from_str(&format!("{}1{}", "[".repeat(n), "]".repeat(n))).unwrap()),
    ]
}

/// A few real events of every shape that carries text or JSON.
fn events() -> Vec<Event> {
    vec![
        Event::ExecutionStarted {
            workflow_id: "wf".into(),
            workflow_version: "0.1.0".into(),
            workflow_hash: "ab".repeat(32),
            input: Json::from_value(&json!({"q": "héllo", "n": [1, 2, {"deep": null}]})),
            key: Some("k-1".into()),
        },
        Event::NodeScheduled { node: "a".into(), visit: 1 },
        Event::NodeStarted { node: "a".into(), visit: 1, attempt: 2 },
        Event::NodeCompleted {
            node: "a".into(),
            visit: 1,
            attempt: 1,
            patch: Json::from_value(&json!({"x": 1.5})),
            next: Some("b".into()),
            duration_us: 1234,
            usage: Usage { input_tokens: 10, output_tokens: 20, cost_usd: 0.01 },
        },
    ]
}

#[test]
fn the_seeds_are_real() {
    assert!(examples().len() >= 10);
    assert!(ir_seeds().len() >= 10, "the examples compile to IR");
    let frame = journal::encode_frame(7, &events());
    assert_eq!(journal::decode_frame(1, &frame).unwrap().len(), events().len());
    let _ = ErrorClass::LimitExceeded;
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_compiler_never_panics_on_mutated_workflows(seed in any::<usize>(), edits in prop::collection::vec(edit(), 1..4)) {
        let examples = examples();
        let (_, text) = &examples[seed % examples.len()];
        let text = edits.iter().fold(text.clone(), |t, e| apply(&t, e));
        if let Err(findings) = ir::compile_str(&text, "wf.yaml") {
            check_findings(&text, &findings)?;
        }
    }

    #[test]
    fn the_compiler_never_panics_on_random_text(text in "[\\PC\n]{0,200}", fragment in hostile_fragment()) {
        for text in [text.as_str(), fragment.as_str(), &format!("id: x\nstate_schema: {{a: any}}\nnodes:\n  a: {{type: set, values: {{a: {fragment}}}}}\n")] {
            if let Err(findings) = ir::compile_str(text, "wf.yaml") {
                check_findings(text, &findings)?;
            }
        }
    }

    #[test]
    fn the_ir_loader_and_check_never_panic(seed in any::<usize>(), pick in any::<usize>(), with in hostile_json(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
        let seeds = ir_seeds();
        let mut ir = seeds[seed % seeds.len()].clone();
        replace_leaf(&mut ir, pick, with);
        let mut text = serde_json::to_vec(&ir).unwrap();
        for (at, byte) in flips {
            let n = text.len();
            text[at % n] = byte;
        }
        if let Ok(wf) = serde_json::from_slice::<Workflow>(&text) {
            for finding in ir::check(&wf, &Limits::default()) {
                prop_assert!(!finding.path.is_empty());
            }
        }
    }

    #[test]
    fn the_journal_decoder_never_panics(pick in any::<usize>(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>(), random in prop::collection::vec(any::<u8>(), 0..200)) {
        let events = events();
        let mut frame = journal::encode_frame(42, &events[pick % events.len()..]);
        for (at, byte) in flips {
            let n = frame.len();
            frame[at % n] = byte;
        }
        let cut = cut % (frame.len() + 1);
        let _ = journal::decode_frame(1, &frame[..cut]);
        let _ = journal::decode_frame(1, &frame);
        // Sequence numbers are real ones: a frame at `u64::MAX` would
        // overflow `first_seq + n` (reported to the journal's owner).
        let _ = journal::decode_frame(1 << 40, &frame);
        let _ = journal::decode(1, &random);
        let _ = journal::decode_frame(1, &random);
        let mut versioned = vec![journal::FORMAT_VERSION];
        versioned.extend_from_slice(&random);
        if let Ok(record) = journal::decode(1, &versioned) {
            let _ = record.event.name();
        }
    }
}
