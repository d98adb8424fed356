//! What is stored is forever: this decodes `tests/data/journal-v1.bin`, a
//! file of records written by journal format version 1, and checks every
//! field. If this test fails, a change broke the stored format: add a new
//! variant or a new format version instead.
//!
//! File layout: the stored frames of a few appends, each preceded by its
//! first sequence number (u64 LE) and its length (u32 LE). A frame is what
//! the journal stores per append: records (version byte + postcard), each
//! preceded by its length (u32 LE). A variant added to `Event` gets one
//! record at the end of `appended_since`, and the file is rewritten with
//! `JAMJET_WRITE_FIXTURE=1 cargo test --test journal_format`: it grows by
//! that record's append, and its first bytes, as first checked in, stay
//! (the test checks their hash). Rewrite it otherwise only for a NEW
//! format version.

use jamjet::journal::{
    CallRecord, ErrorClass, Event, FORMAT_VERSION, Json, PendingCall, Record, RetryDecision, Usage, decode,
    decode_frame, encode, encode_frame,
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/journal-v1.bin");

/// One record of every event variant, as version 1 wrote them.
fn expected() -> Vec<Record> {
    let events = vec![
        Event::ExecutionStarted {
            workflow_id: "research-agent".into(),
            workflow_version: "0.1.0".into(),
            workflow_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            input: Json(r#"{"question":"why is the sky blue?"}"#.into()),
            key: Some("order-17".into()),
        },
        Event::NodeScheduled { node: "search".into(), visit: 1 },
        Event::NodeStarted { node: "search".into(), visit: 1, attempt: 1 },
        Event::NodeFailed {
            node: "search".into(),
            visit: 1,
            attempt: 1,
            class: ErrorClass::RateLimited,
            message: "429 Too Many Requests".into(),
            retry: RetryDecision::Retry { attempt: 2, at_ms: 1_700_000_002_000 },
        },
        Event::NodeStarted { node: "search".into(), visit: 1, attempt: 2 },
        Event::NodeCompleted {
            node: "search".into(),
            visit: 1,
            attempt: 2,
            patch: Json(r#"{"search_results":"Rayleigh scattering"}"#.into()),
            next: Some("synthesize".into()),
            duration_us: 1234,
            usage: Usage { input_tokens: 10, output_tokens: 20, cost_usd: 0.00125 },
        },
        Event::NodeFailed {
            node: "synthesize".into(),
            visit: 1,
            attempt: 1,
            class: ErrorClass::Panic,
            message: "boom".into(),
            retry: RetryDecision::GiveUp,
        },
        Event::ExecutionCompleted { state: Json(r#"{"answer":"42"}"#.into()) },
        Event::ExecutionFailed { node: Some("synthesize".into()), error: "node failed".into() },
        Event::ExecutionCancelled { reason: "operator asked".into() },
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record { seq: i as u64 + 1, at_ms: 1_700_000_000_000 + (i as u64 / 3) * 10, event })
        .collect()
}

/// One record of each variant appended to `Event` since (the fixture's
/// later appends: records 11 on, one append each). Variants added later
/// go at the end of this list, and the fixture grows by their bytes only.
fn appended_since() -> Vec<Record> {
    let events = vec![
        Event::ChildStarted {
            workflow_id: "review".into(),
            workflow_version: "1".into(),
            workflow_hash: "ab".repeat(32),
            input: Json(r#"{"doc":"d"}"#.into()),
            vars: Json(r#"{"item":3,"index":0}"#.into()),
            parent: "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E".into(),
            parent_node: "fan".into(),
            parent_visit: 1,
            branch: 0,
            start: "read".into(),
            until: Some("join".into()),
        },
        Event::Waiting {
            node: "pay".into(),
            visit: 2,
            event: Some("payment:42".into()),
            deadline_ms: Some(1_700_000_060_000),
            prompt: None,
        },
        Event::SignalReceived { key: "payment:42".into(), payload: Json(r#"{"paid":true}"#.into()) },
        Event::WaitTimedOut { node: "pay".into(), visit: 2 },
        Event::ApprovalDecided {
            node: "ship".into(),
            visit: 1,
            approved: true,
            by: "ada".into(),
            comment: Some("fine".into()),
        },
        Event::FanOut { node: "fan".into(), visit: 1, attempt: 1, branches: 3 },
        Event::BranchFinished {
            node: "fan".into(),
            visit: 1,
            branch: 2,
            outcome: jamjet::journal::BranchOutcome::Failed { error: "boom".into() },
        },
        Event::Exchange {
            node: "call".into(),
            visit: 1,
            attempt: 2,
            request: Json(r#"{"method":"GET","url":"http://example.test/"}"#.into()),
            response: Json(r#"{"status":200}"#.into()),
            usage: Usage { input_tokens: 1, output_tokens: 2, cost_usd: 0.5 },
        },
        Event::Scored {
            node: "judge".into(),
            visit: 1,
            attempt: 1,
            scores: Json(r#"[{"scorer":"contains","passed":true,"score":1.0,"reason":null}]"#.into()),
            passed: true,
        },
        Event::BranchStarted {
            workflow_id: "review".into(),
            workflow_version: "1".into(),
            workflow_hash: "cd".repeat(32),
            vars: Json(r#"{"item":"x","index":1}"#.into()),
            parent: "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E".into(),
            parent_node: "fan".into(),
            parent_visit: 1,
            branch: 1,
            start: "read".into(),
            until: None,
            state_at: 7,
        },
        Event::TimerFired { node: "nap".into(), visit: 1 },
        Event::Call {
            node: "research".into(),
            visit: 1,
            attempt: 2,
            call: CallRecord {
                n: 3,
                kind: "tool".into(),
                name: "web_search".into(),
                request: Json(r#"{"id":"call_1","arguments":{"q":"sky"}}"#.into()),
                response: Json(r#""Rayleigh scattering""#.into()),
                usage: Usage { input_tokens: 0, output_tokens: 0, cost_usd: 0.0 },
            },
        },
        Event::NodeFailed {
            node: "research".into(),
            visit: 1,
            attempt: 2,
            class: ErrorClass::BudgetExceeded,
            message: "agent `researcher` spent $0.6 of its $0.5 `max_cost_usd`".into(),
            retry: RetryDecision::GiveUp,
        },
        Event::NodeFailed {
            node: "research".into(),
            visit: 2,
            attempt: 1,
            class: ErrorClass::Nondeterminism,
            message: "step `research` asked for piece `b` where the journal has `a`".into(),
            retry: RetryDecision::GiveUp,
        },
        Event::CallsPending {
            node: "handle".into(),
            visit: 1,
            attempt: 1,
            calls: vec![PendingCall {
                id: "handle.1".into(),
                tool: "refund".into(),
                arguments: Json(r#"{"amount":10}"#.into()),
                prompt: "allow `clerk` (node `handle`) to call `refund` with {\"amount\":10}?".into(),
            }],
        },
        Event::CallDecided {
            node: "handle".into(),
            visit: 1,
            call: "handle.1".into(),
            approved: false,
            by: "ada".into(),
            comment: Some("too much".into()),
        },
        Event::SessionJoined {
            session: "ctx-42".into(),
            turn: 2,
            after: Some("exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E".into()),
            message: "and in winter?".into(),
            history: Json(r#"[{"user":"why is the sky blue?","answer":"Rayleigh scattering"}]"#.into()),
            carried: Json(r#"{"city":"Paris"}"#.into()),
        },
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record { seq: i as u64 + 11, at_ms: 1_700_000_100_000 + i as u64, event })
        .collect()
}

/// The appends the fixture holds: records 1-3, 4-6, 7-9, 10 (one time
/// each), as version 1 first wrote it; then one append per record of
/// [`appended_since`].
fn appends() -> Vec<Vec<Record>> {
    let mut out: Vec<Vec<Record>> = expected().chunks(3).map(<[Record]>::to_vec).collect();
    out.extend(appended_since().into_iter().map(|r| vec![r]));
    out
}

/// The bytes of the fixture as first checked in: appending to it must
/// never change them.
const FIRST_FIXTURE_BYTES: usize = 515;

#[test]
fn decodes_records_written_by_format_version_1() {
    if std::env::var_os("JAMJET_WRITE_FIXTURE").is_some() {
        std::fs::write(FIXTURE, written_now()).unwrap();
    }
    let bytes = std::fs::read(FIXTURE).expect("the v1 fixture is checked in");
    let mut rest = &bytes[..];
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        let first = u64::from_le_bytes(rest[..8].try_into().unwrap());
        let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let frame = &rest[12..12 + len];
        assert_eq!(frame[4], 1, "the frame's first record starts with format version 1");
        decoded.extend(decode_frame(first, frame).unwrap());
        rest = &rest[12 + len..];
    }
    let mut all = expected();
    all.extend(appended_since());
    assert_eq!(decoded, all);
    // The current build still writes what version 1 wrote, byte for byte.
    assert_eq!(FORMAT_VERSION, 1);
    assert_eq!(written_now(), bytes, "encoding the same appends today gives other bytes than version 1 did");
    // What was first checked in is still the fixture's beginning (its
    // sha256, as committed with the first records).
    use sha2::Digest;
    let first: String =
        sha2::Sha256::digest(&bytes[..FIRST_FIXTURE_BYTES]).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first, FIRST_FIXTURE_SHA256, "the fixture's first {FIRST_FIXTURE_BYTES} bytes changed");
}

/// sha256 of the fixture's first [`FIRST_FIXTURE_BYTES`] bytes.
const FIRST_FIXTURE_SHA256: &str = "95411bd158de23e59ca10c1518d74fec0feae717cda524a2ce91902229a9b18a";

/// The fixture's appends as this build encodes them.
fn written_now() -> Vec<u8> {
    let mut out = Vec::new();
    for group in appends() {
        let events: Vec<Event> = group.iter().map(|r| r.event.clone()).collect();
        let frame = encode_frame(group[0].at_ms, &events);
        out.extend_from_slice(&group[0].seq.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn unknown_versions_and_garbage_are_clear_errors() {
    let mut body = encode(5, &Event::NodeScheduled { node: "a".into(), visit: 1 });
    body[0] = 9;
    let err = decode(3, &body).unwrap_err().to_string();
    assert!(err.contains("record 3") && err.contains("version 9"), "{err}");
    let err = decode(4, &[1, 0xff, 0xff, 0xff]).unwrap_err().to_string();
    assert!(err.contains("record 4") && err.contains("does not decode"), "{err}");
    assert!(decode(5, &[]).unwrap_err().to_string().contains("empty"));
    let frame = encode_frame(1, &[Event::NodeScheduled { node: "a".into(), visit: 1 }]);
    let err = decode_frame(7, &frame[..frame.len() - 1]).unwrap_err().to_string();
    assert!(err.contains("record 7 is cut short"), "{err}");
}
