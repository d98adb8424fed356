//! Interrupted work, with the real binary: a `kill -9` leaves an execution
//! running with no process, `executions` and `inspect` say so, and the
//! next plain `jamjet run` (of another workflow) resumes it and carries it
//! to its end, each step recorded once; Ctrl-C (SIGINT) on `run` stops it
//! cleanly with exit 130 and the command that goes on, which `jamjet
//! resume` then does; a wait on a timer is said with its deadline, for
//! `run` and for a `signal` that leads to it; and read-only commands on a
//! data dir that is not there fail naming the path, creating nothing.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{jamjet, jamjet_json, run_bounded, workflow_file};

const LIMIT: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `jamjet --data-dir DIR ARGS`, run to its end within [`LIMIT`].
fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = jamjet();
    c.arg("--data-dir").arg(dir).args(args);
    run_bounded(c, LIMIT, &format!("jamjet {args:?}")).output
}

/// A workflow that calls `127.0.0.1:port` (the test's listener) after a
/// `set`, then sets `after`.
fn calling(dir: &Path, port: u16) -> String {
    workflow_file(
        dir,
        "call.yaml",
        &format!(
            "id: call\nstate_schema: {{ out: str, after: bool }}\nnodes:\n  first:\n    type: set\n    values: {{ after: false }}\n    next: call\n  call:\n    type: http\n    url: http://127.0.0.1:{port}/\n    output_key: out\n    next: last\n  last: {{ type: set, values: {{ after: true }} }}\n"
        ),
    )
}

/// Accept one connection on `listener` within [`LIMIT`] (the run's call).
fn accept(listener: &TcpListener) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let began = Instant::now();
    loop {
        match listener.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).unwrap();
                return c;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(began.elapsed() < LIMIT, "the run never called out");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Answer the next call on `listener` with 200 `ok`, on a thread.
fn answer_next(listener: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = accept(&listener);
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).unwrap();
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
    })
}

/// `jamjet run FILE` on `dir`, stdout and stderr piped.
fn spawn_run(dir: &Path, file: &str, extra: &[&str]) -> Child {
    let mut c: Command = jamjet();
    c.arg("--data-dir").arg(dir).args(["run", file]).args(extra);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Wait for `child` within [`LIMIT`], killing it past that.
fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let began = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if began.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("jamjet did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn completions(dir: &Path, id: &str) -> Vec<String> {
    let json = jamjet_json(dir, &["inspect", id, "--json"]);
    json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "NodeCompleted")
        .map(|e| e["event"]["NodeCompleted"]["node"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_crash_shows_as_interrupted_and_the_next_run_of_another_workflow_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let wf = calling(dir.path(), listener.local_addr().unwrap().port());
    let mut crashed = spawn_run(&data, &wf, &[]);
    // The call is in flight: `set` is durable, `call` started. kill -9.
    let conn = accept(&listener);
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    drop(conn);
    let id = jamjet_json(&data, &["executions", "--json"])[0]["id"].as_str().unwrap().to_string();

    // Read-only commands say it was left behind, and change nothing.
    let listed = jamjet_json(&data, &["executions", "--json"]);
    assert_eq!(
        (&listed[0]["status"], &listed[0]["unattended"]),
        (&"running".into(), &"interrupted".into()),
        "{listed}"
    );
    let table = text(&cli(&data, &["executions"]).stdout);
    assert!(table.contains("running (interrupted)") && table.contains("jamjet resume"), "{table}");
    let shown = text(&cli(&data, &["inspect", &id]).stdout);
    assert!(shown.contains("status     running (interrupted; it resumes on the next `jamjet run`"), "{shown}");
    assert_eq!(completions(&data, &id), ["first"], "nothing moved");

    // A plain run of another workflow resumes it, says so, and leaves it done.
    let server = answer_next(listener);
    let other = workflow_file(
        dir.path(),
        "other.yaml",
        "id: other\nstate_schema: { x: int }\nnodes:\n  s: { type: set, values: { x: 1 } }\n",
    );
    let out = cli(&data, &["run", &other, "--json"]);
    server.join().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("resumed 1 interrupted execution: {id} (jamjet inspect ID)")), "{err}");
    let own: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(
        (own["status"].as_str(), &own["state"]["x"]),
        (Some("completed"), &Value::from(1)),
        "its own output: {own}"
    );
    assert_ne!(own["id"], id.as_str());

    let done = jamjet_json(&data, &["inspect", &id, "--json"]);
    assert_eq!(done["execution"]["status"], "completed", "{done}");
    assert_eq!(done["unattended"], Value::Null);
    assert_eq!(completions(&data, &id), ["first", "call", "last"], "each step recorded once");
    let again = cli(&data, &["run", &other]);
    assert!(!text(&again.stderr).contains("resumed"), "nothing left to resume: {}", text(&again.stderr));
}

#[test]
fn ctrl_c_stops_a_run_cleanly_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let wf = calling(dir.path(), listener.local_addr().unwrap().port());
    let mut run = spawn_run(&data, &wf, &[]);
    let conn = accept(&listener);
    // SAFETY: a signal to our own child, by its pid.
    assert_eq!(unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGINT) }, 0);
    let status = wait_bounded(&mut run);
    drop(conn);
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    let id = jamjet_json(&data, &["executions", "--json"])[0]["id"].as_str().unwrap().to_string();
    let line = err.lines().find(|l| l.starts_with("interrupted:")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(&format!("execution {id} at node `call`")), "{line}");
    assert!(line.contains("not failed, not cancelled") && line.ends_with(" resume"), "{line}");
    assert!(line.contains(&format!("to go on: jamjet --data-dir {} resume", data.display())), "{line}");
    let row = &jamjet_json(&data, &["executions", "--json"])[0];
    assert_eq!(row["status"], "running", "kept, not failed: {row}");

    let server = answer_next(listener);
    let out = cli(&data, &["resume", "--follow"]);
    server.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("resuming 1 execution: {id}")), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    // Each event as it became durable (from the start), then the outcome, as `run --follow`.
    let (steps, outcome) =
        printed.split_once(&format!("execution {id} completed at")).unwrap_or_else(|| panic!("{printed}"));
    assert!(steps.contains("  first  completed in") && steps.contains("  last  completed in"), "{printed}");
    assert!(outcome.contains(r#""after": true"#), "{printed}");
    assert_eq!(completions(&data, &id), ["first", "call", "last"]);
}

#[test]
fn ctrl_c_on_a_keyed_run_names_the_run_that_goes_on_and_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let wf = calling(dir.path(), listener.local_addr().unwrap().port());
    let mut run = spawn_run(&data, &wf, &["--key", "order-7"]);
    let conn = accept(&listener);
    assert_eq!(unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGINT) }, 0);
    let status = wait_bounded(&mut run);
    drop(conn);
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    let goes_on = format!("to go on: jamjet --data-dir {} run {wf} --key order-7", data.display());
    assert!(err.contains(&goes_on), "{err}");

    let server = answer_next(listener);
    let out = cli(&data, &["run", &wf, "--key", "order-7", "--json"]);
    server.join().unwrap();
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert_eq!((outcome["status"].as_str(), &outcome["state"]["after"]), (Some("completed"), &Value::Bool(true)));
}

#[test]
fn a_timer_wait_says_what_it_waits_for_and_until_when() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nap = workflow_file(
        dir.path(),
        "nap.yaml",
        "id: nap\nstate_schema: { done: bool }\nnodes:\n  cooldown: { type: wait, duration_ms: 1500, next: up }\n  up: { type: set, values: { done: true } }\n",
    );
    let out = cli(&data, &["run", &nap]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let said: Vec<&str> =
        err.lines().filter(|l| l.starts_with("waiting at node `cooldown` for a timer until 20")).collect();
    assert_eq!(said.len(), 1, "said once: {err}");
    assert!(said[0].contains(" s); Ctrl-C stops, jamjet --data-dir") && said[0].ends_with("resume goes on"), "{err}");

    // A signal that leads to a timer says so too, rather than sitting silent.
    let paid = workflow_file(
        dir.path(),
        "paid.yaml",
        "id: paid\nstate_schema: { paid: any, done: bool }\nnodes:\n  pay: { type: wait, event: paid, output_key: paid, next: cooldown }\n  cooldown: { type: wait, duration_ms: 1500, next: up }\n  up: { type: set, values: { done: true } }\n",
    );
    let parked = jamjet_json(&data, &["run", &paid, "--json"]);
    assert_eq!(parked["status"], "waiting", "{parked}");
    let id = parked["id"].as_str().unwrap();
    let out = cli(&data, &["signal", id, "paid", "--payload", "true"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.lines().any(|l| l.starts_with("waiting at node `cooldown` for a timer until 20")), "{err}");
    assert!(text(&out.stdout).contains(&format!("execution {id} completed")), "{}", text(&out.stdout));
}

#[test]
fn read_only_commands_on_a_missing_data_dir_name_it_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    for args in [&["executions"][..], &["inspect", "exec_01JM4X8NKWP2ZZ3Q6T1B2C3D4E"], &["executions", "--waiting"]] {
        let out = cli(&missing, args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains(&format!("no data dir at {}", missing.display())), "{args:?}: {err}");
        assert!(err.contains("--data-dir") && err.contains("JAMJET_DATA_DIR"), "{err}");
        assert!(!missing.exists(), "{args:?} created the data dir");
    }
    // Relative to where it runs: the message names the absolute path.
    let mut c = jamjet();
    c.current_dir(dir.path()).arg("executions");
    let out = run_bounded(c, LIMIT, "executions in a folder with no .jamjet").output;
    let want = dir.path().canonicalize().unwrap().join(".jamjet");
    let err = text(&out.stderr);
    assert!(
        err.contains(&want.display().to_string()) || err.contains(&dir.path().join(".jamjet").display().to_string()),
        "{err}"
    );
    assert!(!dir.path().join(".jamjet").exists());
    let resume = cli(&missing, &["resume"]);
    assert!(
        resume.status.success() && text(&resume.stderr).contains("nothing to resume: no data dir at"),
        "{}",
        text(&resume.stderr)
    );
    assert!(!missing.exists(), "resume created the data dir");

    // A data dir with nothing in it says where it looked. An input the
    // schema refuses is refused before any data dir is opened.
    let refused = workflow_file(
        dir.path(),
        "typed.yaml",
        "id: typed\nstate_schema: { n: int }\nnodes:\n  s: { type: set, values: { n: 1 } }\n",
    );
    let out = cli(&missing, &["run", &refused, "--input", r#"{"n": "one"}"#]);
    assert!(!out.status.success());
    assert!(!missing.exists(), "an input refused by its schema created the data dir");
    // Refused by the runtime, once the data dir is open: it is there, and empty.
    let out = cli(&missing, &["run", &refused, "--input", r#"{"n": 1}"#, "--limit", "max_state_bytes=4"]);
    assert!(!out.status.success() && text(&out.stderr).contains("max_state_bytes"), "{}", text(&out.stderr));
    let listed = text(&cli(&missing, &["executions"]).stdout);
    assert_eq!(listed.trim(), format!("no executions in {}", missing.display()));
}
