//! Damage is contained and named, through the real `jamjet` binary: a few
//! executions are written with `jamjet run`, the process stops, the data
//! dir is damaged (sled written directly while no jamjet process holds it,
//! a byte of sled's files flipped, the journal log's last frame garbled
//! after a `kill -9`), and jamjet starts again. In each case the other
//! executions stay readable (`executions`, `inspect`), the process starts
//! (`jamjet dev` reaches "listening", `jamjet resume` exits), the damaged
//! one is named, and `jamjet repair` brings the dir back to a state where
//! everything readable is listed correctly.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use jamjet::ExecutionId;
use jamjet::journal::{ExecutionMeta, Status};
use serde_json::Value;
use support::dev::DevServer;
use support::jamjet;

/// How long one `jamjet` command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Three function nodes in a line: one stored frame per step.
const STEPS: &str = "id: steps
state_schema: { i: int }
nodes:
  s0: { type: function, function: bench.step, next: s1 }
  s1: { type: function, function: bench.step, next: s2 }
  s2: { type: function, function: bench.step }
";

/// A step, then a wait for the event `go`.
const PARK: &str = "id: park
state_schema: { i: int, got: any }
nodes:
  s0: { type: function, function: bench.step, next: w }
  w: { type: wait, event: go, output_key: got, next: s1 }
  s1: { type: function, function: bench.step }
";

/// Like STEPS, under another id (so its IR is stored apart).
const OTHER: &str = "id: other
state_schema: { i: int }
nodes:
  s0: { type: function, function: bench.step, next: s1 }
  s1: { type: function, function: bench.step }
";

// ---------------------------------------------------------------- driving the binary

/// Run `jamjet --data-dir DIR ARGS` to its end, within COMMAND_LIMIT.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = support::run_bounded(cmd, COMMAND_LIMIT, &format!("jamjet {args:?}")).output;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "jamjet {args:?} panicked:\n{stderr}");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `jamjet ARGS --json` that must succeed: its parsed stdout.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args, &[]);
    assert!(out.status.success(), "jamjet {args:?} failed: {}\n{}", out.status, text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("jamjet {args:?}: no JSON ({e}): {}", text(&out.stdout)))
}

/// Every execution, children included (`--all`): id -> the row.
fn listed(dir: &Path) -> Vec<Value> {
    json(dir, &["executions", "--all", "--json"]).as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} is not listed: {rows:?}"))
}

/// Run a workflow file to where it settles; its execution id.
fn run_workflow(dir: &Path, file: &Path) -> String {
    let out = json(dir, &["run", file.to_str().unwrap(), "--input", r#"{"i": 0}"#, "--json"]);
    out["id"].as_str().unwrap_or_else(|| panic!("no id in {out}")).to_string()
}

/// Run `jamjet run FILE` and `kill -9` it right after `pause`: the log then
/// holds frames not yet checkpointed.
fn kill_after(dir: &Path, file: &Path, pause: &str) {
    let mut cmd = jamjet();
    cmd.arg("--data-dir").arg(dir).args(["run", file.to_str().unwrap(), "--input", r#"{"i": 0}"#]);
    support::kill_when_paused(cmd, pause, COMMAND_LIMIT, "jamjet run");
}

/// `jamjet dev` starts on the data dir (reaches "listening"), answers
/// `GET /executions`, and stops on SIGTERM.
fn dev_starts(dir: &Path) -> Value {
    let mut server = DevServer::start(dir, &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (code, body) = rt.block_on(server.api().get("/executions"));
    assert_eq!(code, 200, "{body}");
    let status = server.stop();
    assert!(status.success(), "jamjet dev exited {status}");
    body
}

// ---------------------------------------------------------------- damaging the data dir

/// A data dir with executions of STEPS (two, completed), PARK (waiting)
/// and OTHER (completed), the process stopped.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    files: PathBuf,
    steps: [String; 2],
    parked: String,
    other: String,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::Builder::new().prefix("jamjet-damage-").tempdir().unwrap();
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        for (name, yaml) in [("steps.yaml", STEPS), ("park.yaml", PARK), ("other.yaml", OTHER)] {
            std::fs::write(files.join(name), yaml).unwrap();
        }
        let dir = tmp.path().join("data");
        let steps = [run_workflow(&dir, &files.join("steps.yaml")), run_workflow(&dir, &files.join("steps.yaml"))];
        let parked = run_workflow(&dir, &files.join("park.yaml"));
        let other = run_workflow(&dir, &files.join("other.yaml"));
        Fixture { dir, files, steps, parked, other, _tmp: tmp }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.join(name)
    }

    /// Open sled directly (no jamjet process holds the dir, and a clean
    /// stop checkpointed the log into it), change it, flush.
    fn sled(&self, change: impl FnOnce(&sled::Db)) {
        let db = sled::Config::new().path(self.dir.join("journal")).open().expect("opening sled directly");
        change(&db);
        db.flush().unwrap();
    }

    fn ids(&self) -> Vec<&str> {
        vec![&self.steps[0], &self.steps[1], &self.parked, &self.other]
    }
}

fn id_bytes(id: &str) -> [u8; 16] {
    id.parse::<ExecutionId>().unwrap().to_bytes()
}

fn row_key(id: &str) -> Vec<u8> {
    let mut k = vec![b'x'];
    k.extend_from_slice(&id_bytes(id));
    k
}

fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = vec![b'e'];
    k.extend_from_slice(&id_bytes(id));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A stored frame that holds one record of five bytes that is no event.
const GARBLED_FRAME: &[u8] = &[5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];

/// Every execution but `except` reads as before: listed with the same row,
/// and `inspect` shows it.
fn others_unharmed(dir: &Path, before: &[Value], except: &[&str]) {
    let now = listed(dir);
    for r in before.iter().filter(|r| !except.contains(&r["id"].as_str().unwrap())) {
        assert_eq!(row(&now, r["id"].as_str().unwrap()), r, "an undamaged execution's row changed");
        let inspected = json(dir, &["inspect", r["id"].as_str().unwrap(), "--json"]);
        assert!(!inspected["events"].as_array().unwrap().is_empty());
    }
}

/// `jamjet repair` exits 0 and says so; a second run finds nothing to do.
fn repair_heals(dir: &Path) -> String {
    let out = run(dir, &["repair"], &[]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "repair failed ({}):\n{said}\n{}", out.status, text(&out.stderr));
    assert!(said.contains("the data dir is healthy"), "{said}");
    let again = run(dir, &["repair"], &[]);
    assert!(again.status.success() && text(&again.stdout).contains("nothing to repair"), "{}", text(&again.stdout));
    said
}

// ---------------------------------------------------------------- the cases

#[test]
fn a_corrupt_index_row_makes_that_execution_damaged_and_repair_rebuilds_it_from_its_history() {
    let f = Fixture::new();
    let before = listed(&f.dir);
    let victim = f.steps[1].as_str();
    f.sled(|db| {
        db.insert(row_key(victim), &[1, 0xff, 0xff][..]).unwrap();
    });

    let rows = listed(&f.dir);
    assert_eq!(rows.len(), 4, "every execution is listed: {rows:?}");
    let damaged = row(&rows, victim);
    assert_eq!((damaged["status"].as_str(), damaged["part"].as_str()), (Some("damaged"), Some("index_row")));
    assert!(damaged["reason"].as_str().unwrap().contains("index row"), "{damaged}");
    others_unharmed(&f.dir, &before, &[victim]);
    let text_list = text(&run(&f.dir, &["executions"], &[]).stdout);
    assert!(text_list.contains(&format!("{victim} damaged: its index row cannot be read")), "{text_list}");
    let only = json(&f.dir, &["executions", "--damaged", "--json"]);
    assert_eq!(only.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), [victim]);

    let inspect = run(&f.dir, &["inspect", victim], &[]);
    let err = text(&inspect.stderr);
    assert!(!inspect.status.success() && err.contains(victim) && err.contains("index row"), "{err}");

    // The process starts: resume names it and exits; dev serves the rest.
    let resume = run(&f.dir, &["resume"], &[]);
    assert!(text(&resume.stdout).contains(&format!("{victim} not resumed")), "{}", text(&resume.stdout));
    let page = dev_starts(&f.dir);
    assert_eq!(page["executions"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(page["damaged"][0]["execution"], victim, "{page}");

    let said = repair_heals(&f.dir);
    assert!(said.contains(&format!("rewrote the index row of {victim}: damaged -> completed")), "{said}");
    assert_eq!(listed(&f.dir), before, "the row is rebuilt from the history, as it was");
    let manifest = quarantine_manifest(&f.dir);
    assert!(manifest.iter().any(|e| e["key"] == format!("x/{victim}") && e["file"].is_string()), "{manifest:?}");
}

/// The entries of every quarantine manifest in the data dir.
fn quarantine_manifest(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("quarantine")).unwrap() {
        let path = entry.unwrap().path().join("manifest.json");
        if let Ok(bytes) = std::fs::read(&path) {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            out.extend(v.as_array().unwrap().iter().cloned());
        }
    }
    out
}

#[test]
fn a_corrupt_record_names_its_execution_and_sequence_number_and_repair_fails_that_execution_only() {
    let f = Fixture::new();
    let before = listed(&f.dir);
    let (done, parked) = (f.steps[0].as_str(), f.parked.as_str());
    // Record 4 is the second stored frame of each (the first holds ExecutionStarted, scheduled, started).
    f.sled(|db| {
        for id in [done, parked] {
            assert!(db.contains_key(event_key(id, 4)).unwrap(), "{id} has a frame at record 4");
            db.insert(event_key(id, 4), GARBLED_FRAME).unwrap();
        }
    });

    // The index still reads: both are listed as they were, and the deep check names them.
    assert_eq!(listed(&f.dir), before);
    let found = json(&f.dir, &["executions", "--damaged", "--json"]);
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    for id in [done, parked] {
        let r = row(found, id);
        assert_eq!(
            (r["status"].as_str(), r["part"].as_str(), r["seq"].as_u64()),
            (Some("damaged"), Some("record"), Some(4))
        );
    }
    others_unharmed(&f.dir, &before, &[done, parked]);
    let inspect = run(&f.dir, &["inspect", done], &[]);
    let err = text(&inspect.stderr);
    assert!(!inspect.status.success() && err.contains(done) && err.contains("record 4"), "{err}");
    let waits = json(&f.dir, &["executions", "--waiting", "--json"]);
    assert_eq!(waits, serde_json::json!([]), "the damaged parked one is left out, the listing still works");
    let signal = run(&f.dir, &["signal", parked, "go", "--payload", "1"], &[]);
    let err = text(&signal.stderr);
    assert!(!signal.status.success() && err.contains(parked) && err.contains("record 4"), "{err}");

    let resume = run(&f.dir, &["resume"], &[]);
    assert!(resume.status.code().is_some(), "resume exits");
    dev_starts(&f.dir);

    let said = repair_heals(&f.dir);
    assert!(said.contains(&format!("quarantined e/{done}/4")), "{said}");
    let rows = listed(&f.dir);
    for id in [done, parked] {
        assert_eq!(row(&rows, id)["status"], "failed", "a cut history that had not ended... {rows:?}");
        let i = json(&f.dir, &["inspect", id, "--json"]);
        let last = i["events"].as_array().unwrap().last().unwrap().clone();
        let error = last["event"]["ExecutionFailed"]["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains("damaged at record 4") && error.contains("quarantine"), "{last}");
        // What the cut-off rest had come to is said, when it reads.
        assert_eq!(error.contains("it had ended: ExecutionCompleted at record"), id == done, "{error}");
    }
    others_unharmed(&f.dir, &before, &[done, parked]);
}

#[test]
fn a_corrupt_workflow_ir_makes_its_executions_unavailable_and_a_running_one_is_skipped_at_start() {
    let f = Fixture::new();
    // A running execution of OTHER's IR: killed after its first step.
    kill_after(&f.dir, &f.file("other.yaml"), "NodeCompleted");
    let before = listed(&f.dir);
    let running = before.iter().find(|r| r["status"] == "running").expect("a running execution")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = row(&before, &f.other)["workflow_hash"].as_str().unwrap().to_string();
    f.sled(|db| {
        let mut k = vec![b'w'];
        k.extend_from_slice(hash.as_bytes());
        assert!(db.contains_key(&k).unwrap());
        db.insert(k, &[1, b'{', b'x'][..]).unwrap();
    });

    let found = json(&f.dir, &["executions", "--damaged", "--json"]);
    let found = found.as_array().unwrap();
    for id in [f.other.as_str(), running.as_str()] {
        let r = row(found, id);
        assert_eq!((r["part"].as_str(), r["hash"].as_str()), (Some("workflow"), Some(hash.as_str())), "{r}");
    }
    let inspect = run(&f.dir, &["inspect", &f.other], &[]);
    let err = text(&inspect.stderr);
    assert!(!inspect.status.success() && err.contains(&f.other) && err.contains(&hash), "{err}");
    others_unharmed(&f.dir, &before, &[&f.other, &running]);

    // The process starts and names the one it cannot resume.
    let resume = run(&f.dir, &["resume", "--json"], &[]);
    let out: Value = serde_json::from_slice(&resume.stdout).unwrap();
    let skipped = out.as_array().unwrap().iter().find(|r| r["id"] == running.as_str()).expect("named");
    assert_eq!(skipped["status"], "not_resumed", "{out}");
    assert!(skipped["error"].as_str().unwrap().contains(&hash), "{skipped}");
    assert!(!resume.status.success(), "resume says not everything resumed");
    dev_starts(&f.dir);

    // Without its IR a history cannot be replayed: repair quarantines both whole.
    let said = repair_heals(&f.dir);
    assert!(said.contains(&format!("quarantined {running} whole")), "{said}");
    let rows = listed(&f.dir);
    assert_eq!(rows.len(), before.len() - 2, "{rows:?}");
    others_unharmed(&f.dir, &before, &[&f.other, &running]);
    let manifest = quarantine_manifest(&f.dir);
    assert!(manifest.iter().any(|e| e["key"] == format!("w/{hash}")), "{manifest:?}");
}

#[test]
fn an_index_row_that_says_running_for_a_history_that_ended_is_corrected_and_never_resumed() {
    let f = Fixture::new();
    let victim = f.steps[0].as_str();
    f.sled(|db| {
        let stored = db.get(row_key(victim)).unwrap().unwrap();
        let mut meta: ExecutionMeta = postcard::from_bytes(&stored[1..]).unwrap();
        assert_eq!(meta.status, Status::Completed);
        meta.status = Status::Running;
        let mut value = vec![1];
        value.extend(postcard::to_stdvec(&meta).unwrap());
        db.insert(row_key(victim), value).unwrap();
    });
    assert_eq!(row(&listed(&f.dir), victim)["status"], "running", "the row says running");
    let resume = json(&f.dir, &["resume", "--json"]);
    assert!(resume.as_array().unwrap().iter().all(|r| r["id"] != victim), "not resumed: {resume}");
    assert_eq!(row(&listed(&f.dir), victim)["status"], "completed", "the row now agrees with the history");
    let again = run(&f.dir, &["resume"], &[]);
    assert!(text(&again.stderr).contains("resuming 0 executions"), "{}", text(&again.stderr));
    let i = json(&f.dir, &["inspect", victim, "--json"]);
    assert_eq!(i["events"].as_array().unwrap().iter().filter(|e| e["type"] == "ExecutionCompleted").count(), 1);
}

/// The bytes of sled's files up to the last one in use, and the length of
/// the used part.
fn used(path: &Path) -> (Vec<u8>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    (bytes, used)
}

#[test]
fn a_flipped_byte_in_sleds_files_is_refused_by_name_or_contained_and_repair_restores_everything() {
    let f = Fixture::new();
    let clean = tempfile::Builder::new().prefix("jamjet-damage-clean-").tempdir().unwrap();
    let before = listed(&f.dir);
    copy_dir(&f.dir, clean.path());
    let store = f.dir.join("journal");
    let snapshot = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("snap."));
    let mut targets: Vec<(String, usize)> = Vec::new();
    let (_, db_used) = used(&store.join("db"));
    targets.extend((1..=8).map(|k| ("db".to_string(), db_used * k / 9)));
    targets.extend([0, 20, 40].map(|o| ("conf".to_string(), o)));
    if let Some(snap) = &snapshot {
        let (_, n) = used(&store.join(snap));
        targets.extend([0, n / 2, n - 1].map(|o| (snap.clone(), o)));
    }
    let mut refused = 0;
    for (i, (file, offset)) in targets.iter().enumerate() {
        let work = tempfile::Builder::new().prefix("jamjet-damage-flip-").tempdir().unwrap();
        copy_dir(clean.path(), work.path());
        let path = work.path().join("journal").join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[*offset] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        let what = format!("journal/{file} byte {offset} flipped");

        // What the design guarantees: no crash; either the open is refused
        // naming the file and `jamjet repair`, or what is listed is right.
        let out = run(work.path(), &["executions", "--json"], &[]);
        let err = text(&out.stderr);
        if out.status.success() {
            let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            for r in rows.iter().filter(|r| r["status"] != "damaged") {
                assert_eq!(row(&before, r["id"].as_str().unwrap()), r, "{what}: a row read wrong");
            }
        } else {
            assert!(
                err.contains("cannot be opened")
                    && err.contains(&format!("journal/{file}"))
                    && err.contains("jamjet repair"),
                "{what}: {err}"
            );
            refused += 1;
        }
        // And repair brings everything back, from the journal archive.
        let said = repair_heals(work.path());
        assert_eq!(listed(work.path()), before, "{what}: after repair\n{said}");
        for id in f.ids() {
            json(work.path(), &["inspect", id, "--json"]);
        }
        if i == 0 {
            // A repaired dir serves.
            dev_starts(work.path());
        }
    }
    assert!(refused > 0, "some flips must be refused at open: {targets:?}");
}

#[test]
fn without_an_archive_a_damaged_conf_or_snapshot_is_set_aside_and_sled_recovers_from_its_log() {
    // A data dir from before the archive: none to rebuild from.
    let f = Fixture::new();
    let before = listed(&f.dir);
    std::fs::remove_dir_all(f.dir.join("journal.archive")).unwrap();
    let snapshot = std::fs::read_dir(f.dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("snap."))
        .expect("sled wrote a snapshot");
    let clean = tempfile::Builder::new().prefix("jamjet-damage-clean-").tempdir().unwrap();
    copy_dir(&f.dir, clean.path());
    for file in ["conf".to_string(), snapshot] {
        let work = tempfile::Builder::new().prefix("jamjet-damage-noarchive-").tempdir().unwrap();
        copy_dir(clean.path(), work.path());
        let path = work.path().join("journal").join(&file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        let out = run(work.path(), &["executions"], &[]);
        assert!(
            !out.status.success() && text(&out.stderr).contains(&format!("journal/{file}")),
            "{}",
            text(&out.stderr)
        );
        let said = repair_heals(work.path());
        assert!(said.contains("set aside") && said.contains(&file), "{said}");
        assert_eq!(listed(work.path()), before, "{file}: after repair");
        assert!(work.path().join("journal.archive").is_dir(), "an archive is seeded once the store opens");
    }
}

#[test]
fn repair_recomputes_exactly_the_index_a_healthy_dir_has_with_fan_outs_timers_and_keys() {
    let f = Fixture::new();
    // A fan-out whose three children wait, a wait with a deadline (a timer
    // entry), an idempotency key.
    let gather = f.file("gather.yaml");
    std::fs::write(&gather, support::GATHER).unwrap();
    json(&f.dir, &["run", gather.to_str().unwrap(), "--json"]);
    let timed = f.file("timed.yaml");
    std::fs::write(&timed, "id: timed\nstate_schema: { got: any }\nnodes:\n  w: { type: wait, event: go, timeout_ms: 3600000, output_key: got }\n").unwrap();
    json(&f.dir, &["run", timed.to_str().unwrap(), "--key", "order-17", "--json"]);
    let before = listed(&f.dir);
    assert_eq!(before.len(), 4 + 1 + 3 + 1, "{before:?}");
    let out = run(&f.dir, &["repair", "--json"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    assert_eq!(report["healthy"], true);
    for field in ["quarantined", "rows", "failed", "removed"] {
        assert_eq!(report[field], serde_json::json!([]), "{field}: {report}");
    }
    for field in ["keys_set", "keys_removed", "timers_set", "timers_cleared"] {
        assert_eq!(report[field], 0, "{field}: {report}");
    }
    // The wait index of a healthy dir is what repair computes, too.
    for field in ["waits_set", "waits_cleared"] {
        assert_eq!(report[field], 0, "{field}: {report}");
    }
    // The rows of the fan-out's parent and of the timed wait, garbled, come back as they were.
    let gathers: Vec<&str> =
        before.iter().filter(|r| r["workflow_id"] == "gather").map(|r| r["id"].as_str().unwrap()).collect();
    let parent = gathers
        .iter()
        .find(|g| {
            let id: ExecutionId = g.parse().unwrap();
            (0..3).all(|b| gathers.contains(&ExecutionId::child(id, "ask", 1, 1, b).to_string().as_str()))
        })
        .expect("the fan-out's parent")
        .to_string();
    let timer = before.iter().find(|r| r["workflow_id"] == "timed").unwrap()["id"].as_str().unwrap().to_string();
    f.sled(|db| {
        for id in [&parent, &timer] {
            db.insert(row_key(id), &[1, 0xff][..]).unwrap();
        }
        // And the key and the timer entry of `timed` are lost.
        db.remove([b"k".as_slice(), b"order-17"].concat()).unwrap();
        let timers: Vec<_> = db.scan_prefix(b"t").keys().map(|k| k.unwrap()).collect();
        for k in timers.iter().filter(|k| k[9..] == id_bytes(&timer)) {
            db.remove(k).unwrap();
        }
        // Its wait index entry (event `go`) is lost, and a stale one names a finished execution.
        let wait_key = |key: &str, id: &str| [b"v".as_slice(), key.as_bytes(), &[0], &id_bytes(id)].concat();
        assert!(db.remove(wait_key("go", &timer)).unwrap().is_some(), "the wait index holds `timed`'s wait");
        db.insert(wait_key("stale", &f.other), &[1][..]).unwrap();
    });
    let said = repair_heals(&f.dir);
    assert!(said.contains("set 1 idempotency keys") && said.contains("set 1 timer entries"), "{said}");
    assert!(said.contains("set 1 wait index entries, cleared 1"), "{said}");
    assert_eq!(listed(&f.dir), before);
    // Found by its key again.
    let published = json(&f.dir, &["signal", "--event", "go", "--payload", "1", "--json"]);
    let delivered = published["delivered"].as_array().unwrap();
    assert!(delivered.contains(&serde_json::json!(timer.as_str())), "{published}");
    // The key still names its execution: a second run with it attaches.
    let again = json(&f.dir, &["run", timed.to_str().unwrap(), "--key", "order-17", "--json"]);
    assert_eq!(again["id"], timer.as_str());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            // Not the socket a killed holder left behind: it is no data.
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Where each frame of a journal log starts, and the log's length.
fn frames(log: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut off = 0;
    while off + 8 <= log.len() {
        starts.push(off);
        off += 8 + u32::from_le_bytes(log[off..off + 4].try_into().unwrap()) as usize;
    }
    starts
}

#[test]
fn a_damaged_last_log_frame_is_named_with_its_offset_and_the_execution_still_ends_once() {
    let f = Fixture::new();
    kill_after(&f.dir, &f.file("steps.yaml"), "ExecutionCompleted");
    let log = f.dir.join("journal.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let starts = frames(&bytes);
    assert!(starts.len() >= 3, "the log holds the killed run's frames: {starts:?}");
    let last = *starts.last().unwrap();
    let n = bytes.len() - last;
    let end = bytes.len();
    bytes[end - 2] ^= 0x10;
    std::fs::write(&log, &bytes).unwrap();

    let out = run(&f.dir, &["executions", "--json"], &[("JAMJET_LOG", "warn")]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("journal.log: dropped {n} bytes at offset {last}")) && err.contains("fails its checksum"),
        "{err}"
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let killed: Vec<&Value> = rows.iter().filter(|r| !f.ids().contains(&r["id"].as_str().unwrap())).collect();
    assert_eq!(killed.len(), 1, "{rows:?}");
    let id = killed[0]["id"].as_str().unwrap().to_string();
    // Whether sled had applied the lost frame or not, resume carries it to one end.
    let resume = run(&f.dir, &["resume"], &[]);
    assert!(resume.status.success(), "{}", text(&resume.stdout));
    assert_eq!(row(&listed(&f.dir), &id)["status"], "completed");
    let i = json(&f.dir, &["inspect", &id, "--json"]);
    let events = i["events"].as_array().unwrap();
    assert_eq!(events.iter().filter(|e| e["type"] == "ExecutionCompleted").count(), 1);
    assert_eq!(events.last().unwrap()["type"], "ExecutionCompleted");
    repair_heals(&f.dir);
    dev_starts(&f.dir);
}

#[test]
fn a_torn_log_tail_is_called_unacknowledged_and_damage_in_the_middle_is_called_a_loss() {
    let f = Fixture::new();
    kill_after(&f.dir, &f.file("steps.yaml"), "ExecutionCompleted");
    let log = f.dir.join("journal.log");
    let bytes = std::fs::read(&log).unwrap();
    let starts = frames(&bytes);
    assert!(starts.len() >= 3, "{starts:?}");
    let both = tempfile::Builder::new().prefix("jamjet-damage-log-").tempdir().unwrap();

    // Torn: the last frame cut short.
    let torn = both.path().join("torn");
    copy_dir(&f.dir, &torn);
    let last = *starts.last().unwrap();
    std::fs::write(torn.join("journal.log"), &bytes[..bytes.len() - 5]).unwrap();
    let out = run(&torn, &["executions"], &[("JAMJET_LOG", "warn")]);
    let err = text(&out.stderr);
    let want = format!("dropped {} bytes at offset {last}: an incomplete last frame", bytes.len() - 5 - last);
    assert!(out.status.success() && err.contains(&want) && err.contains("never acknowledged"), "{err}");

    // Damaged in the middle: a byte of the second frame; the frames after it are replayed.
    let middle = both.path().join("middle");
    copy_dir(&f.dir, &middle);
    let mut garbled = bytes.clone();
    garbled[starts[1] + 12] ^= 0x20;
    std::fs::write(middle.join("journal.log"), &garbled).unwrap();
    let out = run(&middle, &["executions"], &[("JAMJET_LOG", "warn")]);
    let err = text(&out.stderr);
    let want = format!(
        "dropped {} bytes at offset {}: damaged frames with valid frames after them",
        starts[2] - starts[1],
        starts[1]
    );
    assert!(out.status.success() && err.contains(&want), "{err}");
    for dir in [&torn, &middle] {
        let resume = run(dir, &["resume"], &[]);
        assert!(resume.status.code().is_some());
        let rows = listed(dir);
        assert_eq!(rows.len(), 5, "{rows:?}");
        repair_heals(dir);
    }
}
