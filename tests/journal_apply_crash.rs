//! Acknowledged but not yet in sled, then `kill -9`: a real `jamjet`
//! process runs with its sled apply held (`JAMJET_APPLY_PAUSED=1`), so
//! every batch it acknowledges lives only in its write-ahead log and its
//! in-memory overlay; it is killed right after the append of
//! `ExecutionCompleted` was acknowledged. sled's own files hold none of
//! it; the next open replays the log and every acknowledged record is read.

mod support;

use std::time::Duration;

use jamjet::journal::{Event, Journal, SledJournal, Status};

const WF: &str = "id: three\nversion: 1.0.0\nstate_schema: { a: int, b: int, c: int }\nnodes:\n  a: { type: set, values: { a: 1 }, next: b }\n  b: { type: set, values: { b: 2 }, next: c }\n  c: { type: set, values: { c: 3 } }\n";

#[test]
fn batches_acknowledged_before_sled_applied_them_survive_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let wf = support::workflow_file(tmp.path(), "three.yaml", WF);
    let data = tmp.path().join("data");
    let mut cmd = support::jamjet();
    cmd.arg("--data-dir").arg(&data).args(["run", &wf, "--input", "{}"]).env("JAMJET_APPLY_PAUSED", "1");
    support::kill_when_paused(cmd, "ExecutionCompleted", Duration::from_secs(60), "jamjet run (apply held)");

    assert!(std::fs::metadata(data.join("journal.log")).unwrap().len() > 0, "the log was never truncated");
    {
        // sled's own files: nothing of the run reached them.
        let db = sled::open(data.join("journal")).unwrap();
        assert_eq!(db.scan_prefix(b"x").count(), 0, "no index row in sled");
        assert_eq!(db.scan_prefix(b"e").count(), 0, "no record in sled");
    }
    let j = SledJournal::open(&data).unwrap();
    assert!(j.recovered().is_empty(), "nothing dropped: {:?}", j.recovered());
    let list = j.list().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].status, Status::Completed);
    let records = j.read(list[0].id).unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=records.len() as u64).collect::<Vec<_>>());
    assert!(matches!(records[0].event, Event::ExecutionStarted { .. }), "{records:?}");
    assert!(matches!(records.last().unwrap().event, Event::ExecutionCompleted { .. }), "{records:?}");
    let completed = records.iter().filter(|r| matches!(r.event, Event::NodeCompleted { .. })).count();
    assert_eq!(completed, 3, "every node's completion was acknowledged before the kill");
    drop(j);
    // And the replay made it sled's: the log is empty after that open.
    assert_eq!(std::fs::metadata(data.join("journal.log")).unwrap().len(), 0);
}
