//! The data dir's socket (`<data-dir>/jamjet.sock`): while one process
//! holds the data dir (`jamjet run` on a call that hangs until the test
//! answers it, or `jamjet dev`), other commands on the same data dir go
//! through it and print exactly what they print once it let go; the
//! socket is owner-only, removed at a clean exit, and a stale one (the
//! holder killed with -9) blocks nothing. `eval run --workflow` takes a
//! registered workflow's id, locally, through a server and through the
//! socket, and an unknown one is an error naming where it looked.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::dev::DevServer;
use support::{TWO_STEPS, jamjet, run_bounded, workflow_file};

/// How long any one command may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Two waits in a row: a signal for the first parks it on the second.
const TWO_WAITS: &str = r#"id: two-waits
version: "1"
state_schema: { order_id: str, a: any, b: any }
nodes:
  first: { type: wait, event: "a:{{ state.order_id }}", output_key: a, next: second }
  second: { type: wait, event: "b:{{ state.order_id }}", output_key: b, next: done }
  done: { type: end }
"#;

/// `jamjet --data-dir DIR ARGS...`, bounded, no server in the environment.
fn cli(data: &Path, args: &[&str]) -> Output {
    let mut c = jamjet();
    c.env_remove("JAMJET_SERVER").arg("--data-dir").arg(data).args(args);
    run_bounded(c, LIMIT, &format!("jamjet {args:?}")).output
}

fn ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}", out.status, stderr(out));
    stdout
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output, what: &str) -> Value {
    let text = ok(out, what);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: no JSON ({e}):\n{text}"))
}

/// The id an execution got, from `run --json`.
fn run_id(data: &Path, file: &str, input: &str) -> String {
    let out = json(&cli(data, &["run", file, "--input", input, "--json"]), "run");
    out["id"].as_str().unwrap().to_string()
}

/// `text` with execution ids, times and durations replaced by placeholders.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("exec_") {
            let n = after.chars().take_while(|c| c.is_ascii_alphanumeric()).count();
            out.push_str("exec_ID");
            rest = &after[n..];
            continue;
        }
        // 2026-12-02T09:07:54.123Z
        let b = rest.as_bytes();
        if b.len() >= 24 && b[4] == b'-' && b[10] == b'T' && b[23] == b'Z' && b[..4].iter().all(u8::is_ascii_digit) {
            out.push_str("TIME");
            rest = &rest[24..];
            continue;
        }
        if let Some(after) = rest.strip_prefix('(')
            && let Some(n) = after.find(" ms)")
            && after[..n].chars().all(|c| c.is_ascii_digit())
        {
            out.push_str("(N ms)");
            rest = &after[n + 4..];
            continue;
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `jamjet run` holding the data dir: its workflow calls a loopback
/// listener this test owns, and hangs until [`Holder::release`] answers.
struct Holder {
    child: Child,
    conn: Option<TcpStream>,
}

impl Holder {
    fn start(data: &Path, dir: &Path) -> Holder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let yaml = format!(
            "id: hold\nversion: \"1\"\nstate_schema: {{ out: any }}\nnodes:\n  call:\n    type: http\n    url: \"http://127.0.0.1:{port}/\"\n    output_key: out\n"
        );
        let file = workflow_file(dir, &format!("hold-{port}.yaml"), &yaml);
        let child = jamjet()
            .env_remove("JAMJET_SERVER")
            .arg("--data-dir")
            .arg(data)
            .args(["run", &file])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut holder = Holder { child, conn: None };
        // It holds the store once it calls out; its socket follows.
        listener.set_nonblocking(true).unwrap();
        let began = Instant::now();
        let conn = loop {
            if let Ok((c, _)) = listener.accept() {
                break c;
            }
            assert!(holder.child.try_wait().unwrap().is_none(), "the holder exited before it called out");
            assert!(began.elapsed() < LIMIT, "the holder never called out");
            std::thread::sleep(Duration::from_millis(5));
        };
        holder.conn = Some(conn);
        let sock = socket(data);
        while !sock.exists() {
            assert!(began.elapsed() < LIMIT, "no socket at {}", sock.display());
            std::thread::sleep(Duration::from_millis(5));
        }
        holder
    }

    fn still_holds(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Answer the call with 404 (its execution fails: no retry) and wait
    /// for the holder to exit.
    fn release(mut self) {
        let mut conn = self.conn.take().unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = conn.read(&mut [0u8; 4096]);
        conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        drop(conn);
        let began = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(began.elapsed() < LIMIT, "the holder did not exit once answered");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket(data: &Path) -> PathBuf {
    data.join("jamjet.sock")
}

#[test]
fn inspect_executions_and_signal_go_through_the_holder_and_print_what_they_print_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let two = workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let waits = workflow_file(dir.path(), "two-waits.yaml", TWO_WAITS);
    let done = run_id(&data, &two, "{}");
    let parked = run_id(&data, &waits, r#"{"order_id":"7"}"#);
    let twin = run_id(&data, &waits, r#"{"order_id":"7"}"#);

    let looks: Vec<Vec<&str>> = vec![
        vec!["inspect", &done],
        vec!["inspect", &done, "--json"],
        vec!["inspect", &done, "-v"],
        vec!["executions", "--status", "completed"],
        vec!["executions", "--status", "completed", "--json"],
        vec!["executions", "--status", "waiting", "--json"],
        vec!["executions", "--waiting"],
    ];
    let mut holder = Holder::start(&data, dir.path());
    // The signal first: what the others show is then what they show after.
    let payload = r#"{"paid":true}"#;
    let moved_held = cli(&data, &["signal", &parked, "a:7", "--payload", payload]);
    let moved_held_text = ok(&moved_held, "signal (held)");
    let held: Vec<String> = looks.iter().map(|args| ok(&cli(&data, args), &format!("{args:?} (held)"))).collect();
    let inspect_parked_held = ok(&cli(&data, &["inspect", &parked]), "inspect the parked one (held)");
    assert!(holder.still_holds(), "every command ran while the holder held the data dir: through its socket");
    holder.release();
    assert!(!socket(&data).exists(), "a clean exit removes the socket");

    for (args, through) in looks.iter().zip(&held) {
        let after = ok(&cli(&data, args), &format!("{args:?} (after)"));
        assert_eq!(&after, through, "`jamjet {}` prints the same through the holder", args.join(" "));
    }
    assert_eq!(ok(&cli(&data, &["inspect", &parked]), "inspect the parked one (after)"), inspect_parked_held);

    // The same signal to an identical execution, on the data dir itself:
    // the same output but for the execution id and the times.
    let moved_after = cli(&data, &["signal", &twin, "a:7", "--payload", payload]);
    let moved_after_text = ok(&moved_after, "signal (after)");
    assert_eq!(normalized(&moved_after_text), normalized(&moved_held_text));
    assert_eq!(normalized(&stderr(&moved_after)), normalized(&stderr(&moved_held)));
    assert!(moved_held_text.contains("waits at node `second` for event `b:7`"), "{moved_held_text}");
    let next = format!("to go on: jamjet --data-dir {} signal {parked} b:7", data.display());
    assert!(moved_held_text.contains(&next), "the local command to go on, no --server:\n{moved_held_text}");
}

#[test]
fn with_jamjet_dev_holding_the_data_dir_run_works_without_server_and_prints_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let two = workflow_file(dir.path(), "two.yaml", TWO_STEPS);
    let waits = workflow_file(dir.path(), "two-waits.yaml", TWO_WAITS);
    // What a run prints with nobody holding the data dir (another one).
    let alone = dir.path().join("alone");
    let plain = ok(&cli(&alone, &["run", &two]), "run alone");

    let mut server = DevServer::start(&data, &[]);
    let sock = std::fs::symlink_metadata(socket(&data)).expect("jamjet dev serves the socket");
    assert!(sock.file_type().is_socket());
    let out = cli(&data, &["run", &two]);
    assert_eq!(normalized(&ok(&out, "run through jamjet dev")), normalized(&plain));
    assert!(stderr(&out).starts_with("execution exec_") && !stderr(&out).contains("http"), "{}", stderr(&out));

    let parked = cli(&data, &["run", &waits, "--input", r#"{"order_id":"9"}"#]);
    let text = ok(&parked, "run to a wait through jamjet dev");
    assert!(!text.contains("--server"), "{text}");
    assert!(text.contains(&format!("to go on: jamjet --data-dir {} signal exec_", data.display())), "{text}");
    let id = text.split_whitespace().nth(1).unwrap().to_string();
    let moved = ok(&cli(&data, &["signal", &id, "a:9", "--payload", "1"]), "signal through jamjet dev");
    assert!(moved.contains("waits at node `second` for event `b:9`"), "{moved}");
    // The execution lives in the server: its API sees it.
    let rows = json(&cli(&data, &["executions", "--json", "--server", &server.url]), "executions --server");
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(server.stop().success());
    assert!(!socket(&data).exists(), "jamjet dev removes its socket when it stops");
}

#[test]
fn the_socket_is_owner_only_and_a_stale_one_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let holder = Holder::start(&data, dir.path());
    let meta = std::fs::symlink_metadata(socket(&data)).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner-only");
    holder.kill9();
    assert!(socket(&data).exists(), "kill -9 leaves the socket file behind");

    // The next holder replaces it, and a command goes through the new one.
    let mut again = Holder::start(&data, dir.path());
    let rows = json(&cli(&data, &["executions", "--json"]), "executions through the new holder");
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(again.still_holds());
    again.kill9();
    // A command that opens the store itself replaces the stale file too,
    // and removes it at its exit.
    let out = cli(&data, &["executions", "--status", "running"]);
    assert!(ok(&out, "executions after a kill -9").contains("hold@1"));
    assert!(!socket(&data).exists());
}

#[test]
fn eval_run_takes_a_registered_workflow_by_id_locally_through_a_server_and_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let folder = dir.path().join("wf");
    std::fs::create_dir(&folder).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(example.join("eval.yaml"), folder.join("eval.yaml")).unwrap();
    let ds = example.join("eval-dataset.jsonl");
    let ds = ds.to_str().unwrap();
    let passed = |report: &Value| (report["summary"]["passed"].as_u64(), report["summary"]["rows"].as_u64());

    let mut server = DevServer::start(&data, &["--workflows", folder.to_str().unwrap()]);
    let by_server = cli(&data, &["eval", "run", ds, "--workflow", "capitals", "--json", "--server", &server.url]);
    let report = json(&by_server, "eval run by id --server");
    assert_eq!(passed(&report), (Some(3), Some(4)), "{report}");
    assert_eq!(report["workflow"], "capitals@0.1.0");
    let by_socket = cli(&data, &["eval", "run", ds, "--workflow", "capitals@0.1.0", "--json"]);
    let report = json(&by_socket, "eval run by id@version through the socket");
    assert_eq!(passed(&report), (Some(3), Some(4)), "{report}");
    let unknown = cli(&data, &["eval", "run", ds, "--workflow", "nosuch", "--server", &server.url]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    let why = stderr(&unknown);
    assert!(why.contains("`nosuch` is neither a workflow file") && why.contains(&server.url), "{why}");
    assert!(why.contains("registered there: capitals"), "{why}");
    assert!(server.stop().success());

    // The registration is in the data dir: by id with nobody holding it.
    let local = cli(&data, &["eval", "run", ds, "--workflow", "capitals", "--fail-under", "0.7"]);
    let text = ok(&local, "eval run by id, locally");
    assert!(text.contains("through capitals@0.1.0: 3/4 rows passed (75.0%)"), "{text}");
    let unknown = cli(&data, &["eval", "run", ds, "--workflow", "capitals@9.9"]);
    assert_eq!(unknown.status.code(), Some(2));
    let why = stderr(&unknown);
    let place = format!("registered in the data dir {}", data.display());
    assert!(why.contains("`capitals@9.9` is neither a workflow file") && why.contains(&place), "{why}");
}

#[test]
fn resume_goes_through_a_server_and_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let waits = workflow_file(dir.path(), "two-waits.yaml", TWO_WAITS);
    let parked = run_id(&data, &waits, r#"{"order_id":"3"}"#);
    let mut server = DevServer::start(&data, &[]);
    // jamjet dev resumed everything at start: nothing is left to resume.
    let by_socket = cli(&data, &["resume"]);
    assert_eq!(ok(&by_socket, "resume through the socket"), "");
    assert!(stderr(&by_socket).contains("resuming 0 executions"), "{}", stderr(&by_socket));
    let by_server = json(&cli(&data, &["resume", "--json", "--server", &server.url]), "resume --server");
    assert_eq!(by_server, serde_json::json!([]));
    // And the parked one is where it was, signalled through the socket.
    let moved = ok(&cli(&data, &["signal", &parked, "a:3", "--payload", "1"]), "signal through jamjet dev");
    assert!(moved.contains("waits at node `second` for event `b:3`"), "{moved}");
    assert!(server.stop().success());
}
