//! One conformance suite, run against every journal backend (PostgreSQL
//! in a fresh schema per test: see `support/pg.rs`).

mod support;

use std::sync::Arc;

use jamjet::ExecutionId;
use jamjet::ir;
use jamjet::journal::{
    Append, Event, ExecutionMeta, Journal, Json, MemoryJournal, PgJournal, RowFilter, SessionRecord, SledJournal,
    Status,
};
use support::pg::PgSchema;

fn workflow() -> ir::Workflow {
    ir::compile_str("id: j\nstate_schema: { n: int }\nnodes:\n  a: { type: end }\n", "j.yaml").unwrap()
}

fn meta(id: ExecutionId, status: Status, key: Option<&str>) -> ExecutionMeta {
    ExecutionMeta {
        id,
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: "h1".into(),
        status,
        created_ms: 10,
        updated_ms: 20,
        key: key.map(Into::into),
    }
}

async fn conformance(j: Arc<dyn Journal>) {
    let wf = workflow();
    let a = ExecutionId::new(1_000);
    let b = ExecutionId::new(2_000);
    let started = Event::ExecutionStarted {
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: "h1".into(),
        input: Json("{}".into()),
        key: Some("k-a".into()),
    };
    let m = meta(a, Status::Running, Some("k-a"));
    j.append(Append {
        execution: a,
        first_seq: 1,
        at_ms: 5,
        events: &[started.clone(), Event::NodeScheduled { node: "a".into(), visit: 1 }],
        meta: Some(&m),
        workflow: Some(("h1", &wf)),
        timers: &[],
        waits: &[],
        session: None,
    })
    .await
    .unwrap();
    j.append(Append {
        execution: b,
        first_seq: 1,
        at_ms: 6,
        events: std::slice::from_ref(&started),
        meta: Some(&meta(b, Status::Running, None)),
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    })
    .await
    .unwrap();
    let done = meta(a, Status::Completed, Some("k-a"));
    j.append(Append {
        execution: a,
        first_seq: 3,
        at_ms: 7,
        events: &[Event::ExecutionCompleted { state: Json("{}".into()) }],
        meta: Some(&done),
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    })
    .await
    .unwrap();

    // An execution's history is its own, in order, with positions and times.
    let ra = j.read(a).unwrap();
    assert_eq!(ra.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(ra[0].event, started);
    assert_eq!(ra[2].at_ms, 7);
    assert_eq!(j.read(b).unwrap().len(), 1);
    assert!(j.read(ExecutionId::new(3_000)).unwrap().is_empty());

    // read_after: what a follower has not seen, from inside a frame too
    // (records 1 and 2 were one append, 3 another).
    let seqs = |after| j.read_after(a, after).unwrap().iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(0), vec![1, 2, 3]);
    assert_eq!(seqs(1), vec![2, 3]);
    assert_eq!(seqs(2), vec![3]);
    assert_eq!(seqs(3), Vec::<u64>::new());
    assert_eq!(seqs(99), Vec::<u64>::new());
    assert_eq!(j.read_after(a, 1).unwrap()[1], ra[2]);
    assert!(j.read_after(ExecutionId::new(3_000), 0).unwrap().is_empty());
    // first: the first record alone (what says where a child came from)
    assert_eq!(j.first(a).unwrap().as_ref(), ra.first());
    assert_eq!(j.first(ExecutionId::new(3_000)).unwrap(), None);

    // Registrations: durable, by id then version; the same id and version again replaces.
    let reg = |v: &str, hash: &str, at| jamjet::journal::Registration {
        workflow_id: "j".into(),
        version: v.into(),
        hash: hash.into(),
        registered_ms: at,
    };
    j.register(&reg("0.2.0", "h1", 30), &wf).await.unwrap();
    j.register(&reg("0.1.0", "h1", 31), &wf).await.unwrap();
    j.register(&reg("0.1.0", "h1b", 32), &wf).await.unwrap();
    assert_eq!(j.registrations().unwrap(), vec![reg("0.1.0", "h1b", 32), reg("0.2.0", "h1", 30)]);
    assert_eq!(j.workflow("h1b").unwrap(), Some(wf.clone()));

    // The index follows the last meta written; list is oldest first.
    assert_eq!(j.meta(a).unwrap(), Some(done));
    let list = j.list().unwrap();
    assert_eq!(list.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(j.find_key("k-a").unwrap(), Some(a));
    assert_eq!(j.find_key("nope").unwrap(), None);
    assert_eq!(j.workflow("h1").unwrap(), Some(wf));
    assert_eq!(j.workflow("h2").unwrap(), None);
    let stats = j.stats();
    assert_eq!((stats.appends, stats.events), (3, 4));
}

#[tokio::test]
async fn memory_journal_conforms() {
    conformance(Arc::new(MemoryJournal::new())).await;
}

/// Seven executions, completed and failed in turn, oldest first.
async fn fill_pages(j: &dyn Journal) -> Vec<ExecutionId> {
    let ids: Vec<ExecutionId> = (1..=7).map(|i| ExecutionId::new(i * 1_000)).collect();
    let started = Event::ExecutionStarted {
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: "h1".into(),
        input: Json("{}".into()),
        key: None,
    };
    for (n, id) in ids.iter().enumerate() {
        let status = if n % 2 == 0 { Status::Completed } else { Status::Failed };
        let m = meta(*id, status, None);
        let events = [started.clone()];
        j.append(Append {
            execution: *id,
            first_seq: 1,
            at_ms: 5,
            events: &events,
            meta: Some(&m),
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        })
        .await
        .unwrap();
    }
    ids
}

/// Pages of the index both ways, from cursors, filtered: the same on every backend.
fn check_pages(j: &dyn Journal, ids: &[ExecutionId]) {
    let all = RowFilter::default();
    let failed = RowFilter { status: Some(Status::Failed), workflow: None };
    let page = |after: Option<ExecutionId>, newest: bool, limit: usize, filter: &RowFilter| {
        let p = j.page(after, newest, limit, filter).unwrap();
        (p.rows.iter().map(|m| m.id).collect::<Vec<_>>(), p.more)
    };
    assert_eq!(page(None, true, 3, &all), (vec![ids[6], ids[5], ids[4]], true));
    assert_eq!(page(Some(ids[4]), true, 3, &all), (vec![ids[3], ids[2], ids[1]], true));
    assert_eq!(page(Some(ids[1]), true, 3, &all), (vec![ids[0]], false));
    assert_eq!(page(None, true, 7, &all), (ids.iter().rev().copied().collect(), false), "exactly a page: no more");
    assert_eq!(page(None, true, 2, &failed), (vec![ids[5], ids[3]], true));
    assert_eq!(page(Some(ids[3]), true, 2, &failed), (vec![ids[1]], false));
    assert_eq!(page(Some(ids[2]), false, 2, &all), (vec![ids[3], ids[4]], true));
    assert_eq!(page(None, false, 10, &failed), (vec![ids[1], ids[3], ids[5]], false));
    let of = |w: &str| RowFilter { status: None, workflow: Some(w.into()) };
    assert_eq!(page(None, true, 2, &of("j")), (vec![ids[6], ids[5]], true));
    assert_eq!(page(Some(ids[5]), false, 10, &of("j")), (vec![ids[6]], false));
    assert_eq!(page(None, true, 10, &of("other")), (vec![], false), "a workflow that has no rows");
    assert_eq!(page(None, true, 10, &of("j\u{0}")), (vec![], false), "nor one whose id starts like it");
    let both = RowFilter { status: Some(Status::Completed), workflow: Some("j".into()) };
    assert_eq!(page(None, false, 10, &both), (vec![ids[0], ids[2], ids[4], ids[6]], false));
    let running = RowFilter { status: Some(Status::Running), workflow: None };
    assert_eq!(page(None, true, 10, &running), (vec![], false), "no row is running");
}

/// The filters follow a row's status as it changes, and a pruned row.
async fn check_filters_follow_changes(j: &dyn Journal, ids: &[ExecutionId]) {
    let only = |status| RowFilter { status: Some(status), workflow: None };
    let page =
        |filter: &RowFilter| j.page(None, true, 10, filter).unwrap().rows.iter().map(|m| m.id).collect::<Vec<_>>();
    // A new execution runs, waits, then completes.
    let z = ExecutionId::new(8_000);
    for (seq, status) in [(1, Status::Running), (2, Status::Waiting), (3, Status::Completed)] {
        j.append(Append {
            execution: z,
            first_seq: seq,
            at_ms: 6,
            events: &[Event::NodeScheduled { node: "a".into(), visit: seq as u32 }],
            meta: Some(&meta(z, status, None)),
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        })
        .await
        .unwrap();
        assert_eq!(page(&only(status)).first(), Some(&z), "{status:?}");
        for other in [Status::Running, Status::Waiting].into_iter().filter(|s| *s != status) {
            assert!(!page(&only(other)).contains(&z), "it left the {other:?} rows");
        }
    }
    j.prune(&[ids[1], ids[2]], 99).await.unwrap();
    assert_eq!(page(&only(Status::Failed)), vec![ids[5], ids[3]]);
    assert_eq!(page(&only(Status::Completed)), vec![z, ids[6], ids[4], ids[0]]);
    assert_eq!(page(&RowFilter { status: None, workflow: Some("j".into()) }).len(), 6);
}

#[tokio::test]
async fn memory_journal_pages_the_index_both_ways() {
    let j = MemoryJournal::new();
    let ids = fill_pages(&j).await;
    check_pages(&j, &ids);
    check_filters_follow_changes(&j, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_journal_pages_the_index_both_ways_in_sql() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    let ids = fill_pages(&*j).await;
    check_pages(&*j, &ids);
    check_filters_follow_changes(&*j, &ids).await;
}

#[tokio::test]
async fn sled_journal_pages_the_index_both_ways_before_and_after_sled_applies_the_writes() {
    let dir = tempfile::tempdir().unwrap();
    let j = SledJournal::open(dir.path()).unwrap();
    j.pause_apply(true);
    let ids = fill_pages(&j).await;
    check_pages(&j, &ids);
    j.pause_apply(false);
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    check_pages(&j, &ids);
    // A store written before the index of rows by status: opening it
    // builds it from the rows.
    j.forget_row_index().await.unwrap();
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    check_pages(&j, &ids);
    j.pause_apply(true);
    check_filters_follow_changes(&j, &ids).await;
    j.pause_apply(false);
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    let failed = RowFilter { status: Some(Status::Failed), workflow: None };
    assert_eq!(j.page(None, true, 10, &failed).unwrap().rows.len(), 2, "across a reopen");
}

#[tokio::test]
async fn sled_journal_conforms_and_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    conformance(j.clone()).await;
    assert!(j.stats().syncs >= 1, "appends are synced");
    let before = j.list().unwrap();
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    assert_eq!(j.list().unwrap(), before);
    assert_eq!(j.read(before[0].id).unwrap().len(), 3);
}

#[tokio::test]
async fn a_snapshot_left_unfinished_by_a_kill_does_not_stop_the_journal_opening() {
    // sled 0.34.7 picks a leftover `snap.*.generating` file at open and
    // reports corruption; the crash test hit this after a kill -9.
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    conformance(j.clone()).await;
    let before = j.list().unwrap();
    drop(j);
    std::fs::write(dir.path().join("journal").join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
    let j = SledJournal::open(dir.path()).unwrap();
    assert_eq!(j.list().unwrap(), before);
    assert_eq!(j.read(before[0].id).unwrap().len(), 3);
}

/// Pruning: ended executions go (history, index row, idempotency key), a
/// tombstone stays; running ones and unknown ids are left as they are.
/// Returns the pruned ids (a, c) and the running one (b).
async fn prune(j: Arc<dyn Journal>) -> (ExecutionId, ExecutionId, ExecutionId) {
    let (a, b, c) = (ExecutionId::new(11_000), ExecutionId::new(12_000), ExecutionId::new(13_000));
    let wf = workflow();
    for (id, status, key, events) in
        [(a, Status::Completed, Some("k-p"), 3u64), (b, Status::Running, Some("k-b"), 2), (c, Status::Failed, None, 1)]
    {
        for seq in 1..=events {
            let first = seq == 1;
            let last = seq == events;
            let row = meta(id, if last { status } else { Status::Running }, key);
            j.append(Append {
                execution: id,
                first_seq: seq,
                at_ms: seq,
                events: &[if first {
                    started_event()
                } else {
                    Event::NodeScheduled { node: "a".into(), visit: seq as u32 }
                }],
                meta: (first || last).then_some(&row),
                workflow: first.then_some(("h1", &wf)),
                timers: &[],
                waits: &[],
                session: None,
            })
            .await
            .unwrap();
        }
    }
    let unknown = ExecutionId::new(14_000);
    let freed = j.prune(&[a, b, c, unknown], 99).await.unwrap();
    assert_eq!((freed.executions, freed.events), (2, 4), "{freed:?}");
    assert!(freed.bytes > 0 || j.stats().syncs == 0, "{freed:?}");
    for (id, status, events) in [(a, Status::Completed, 3), (c, Status::Failed, 1)] {
        assert_eq!(j.meta(id).unwrap(), None);
        assert!(j.read(id).unwrap().is_empty());
        let t = j.tombstone(id).unwrap().expect("a tombstone");
        assert_eq!((t.meta.id, t.meta.status, t.pruned_ms, t.events), (id, status, 99, events));
    }
    assert_eq!(j.find_key("k-p").unwrap(), None, "the key is free again");
    // The running one is untouched, and has no tombstone.
    assert_eq!(j.meta(b).unwrap().unwrap().status, Status::Running);
    assert_eq!(j.read(b).unwrap().len(), 2);
    assert_eq!(j.find_key("k-b").unwrap(), Some(b));
    assert_eq!(j.tombstone(b).unwrap(), None);
    assert_eq!(j.tombstone(unknown).unwrap(), None);
    assert!(j.list().unwrap().iter().all(|m| m.id != a && m.id != c));
    // Again: nothing left to remove.
    assert_eq!(j.prune(&[a, b, c], 100).await.unwrap(), jamjet::journal::Freed::default());
    assert_eq!(j.tombstone(a).unwrap().unwrap().pruned_ms, 99);
    (a, c, b)
}

#[tokio::test]
async fn memory_journal_prunes_ended_executions_only() {
    prune(Arc::new(MemoryJournal::new())).await;
}

#[tokio::test]
async fn sled_journal_prunes_ended_executions_only_and_the_tombstones_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    let (a, c, b) = prune(j.clone()).await;
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    assert!(j.tombstone(a).unwrap().is_some() && j.tombstone(c).unwrap().is_some());
    assert_eq!((j.meta(a).unwrap(), j.read(b).unwrap().len()), (None, 2));
}

#[tokio::test]
async fn postgres_journal_prunes_ended_executions_only_and_the_tombstones_survive_a_reopen() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (a, c, b) = prune(pg(&schema).await).await;
    let j = pg(&schema).await;
    assert!(j.tombstone(a).unwrap().is_some() && j.tombstone(c).unwrap().is_some());
    assert_eq!((j.meta(a).unwrap(), j.read(b).unwrap().len()), (None, 2));
    assert_eq!(schema.text("SELECT count(*)::text FROM events WHERE execution IN (SELECT id FROM pruned)").await, "0");
}

/// The external-event mailbox: the wait index moves with the batch that
/// sets or clears it, kept events are read by key oldest first and by
/// expiry, a `Take` in an append removes one, and `forget` drops them.
async fn mailbox(j: Arc<dyn Journal>) {
    use jamjet::journal::{KeptEvent, KeptRef, WaitChange};
    let (a, b, c) = (ExecutionId::new(5_000), ExecutionId::new(6_000), ExecutionId::new(7_000));
    let signal = |key: &str| Event::SignalReceived { key: key.into(), payload: Json("1".into()) };
    fn append<'a>(execution: ExecutionId, first_seq: u64, events: &'a [Event], waits: &'a [WaitChange]) -> Append<'a> {
        Append {
            execution,
            first_seq,
            at_ms: 50,
            events,
            meta: None,
            workflow: None,
            timers: &[],
            waits,
            session: None,
        }
    }
    let wait = |k: &str| WaitChange::Wait(k.into());
    j.append(append(a, 1, &[], &[wait("payment:42"), wait("payment:420")])).await.unwrap();
    j.append(append(b, 1, &[], &[wait("payment:42")])).await.unwrap();
    j.append(append(c, 1, &[], &[wait("payment:4")])).await.unwrap();
    // A key's entries only: `payment:4` is no prefix of `payment:42`'s.
    assert_eq!(j.waiting_for("payment:42").unwrap(), vec![a, b]);
    assert_eq!(j.waiting_for("payment:4").unwrap(), vec![c]);
    assert_eq!(j.waiting_for("payment").unwrap(), Vec::<ExecutionId>::new());
    // Cleared in the batch of the event that ends the wait.
    j.append(append(a, 1, &[signal("payment:42")], &[WaitChange::Unwait("payment:42".into())])).await.unwrap();
    assert_eq!(j.waiting_for("payment:42").unwrap(), vec![b]);
    assert_eq!(
        j.wait_index().unwrap(),
        vec![("payment:4".into(), c), ("payment:42".into(), b), ("payment:420".into(), a)]
    );

    let kept = |key: &str, n: u8, until_ms| KeptEvent {
        at: KeptRef { key: key.into(), id: [n; 16], until_ms },
        published_ms: 40,
        payload: Json(format!("{{\"n\":{n}}}")),
    };
    let (e1, e2, e3) = (kept("order:7", 1, 1_000), kept("order:7", 2, 500), kept("order:70", 3, 2_000));
    for e in [&e1, &e2, &e3] {
        j.keep(e).await.unwrap();
    }
    // By key, oldest (lowest id) first; expired ones are not handed out.
    assert_eq!(j.kept("order:7", 100, 10).unwrap(), vec![e1.clone(), e2.clone()]);
    assert_eq!(j.kept("order:7", 100, 1).unwrap(), vec![e1.clone()]);
    assert_eq!(j.kept("order:7", 600, 10).unwrap(), vec![e1.clone()]);
    assert_eq!(j.kept("order", 0, 10).unwrap(), Vec::<KeptEvent>::new());
    // By expiry, earliest first.
    assert_eq!(j.expiring(999, 10).unwrap(), vec![e2.at.clone()]);
    assert_eq!(j.expiring(u64::MAX, 10).unwrap(), vec![e2.at.clone(), e1.at.clone(), e3.at.clone()]);
    assert_eq!(j.expiring(u64::MAX, 1).unwrap(), vec![e2.at.clone()]);
    // Taken in the batch of the signal it becomes.
    j.append(append(b, 1, &[signal("order:7")], &[WaitChange::Take(e1.at.clone())])).await.unwrap();
    assert_eq!(j.kept("order:7", 100, 10).unwrap(), vec![e2.clone()]);
    assert_eq!(j.expiring(u64::MAX, 10).unwrap(), vec![e2.at.clone(), e3.at.clone()]);
    j.forget(std::slice::from_ref(&e2.at)).await.unwrap();
    assert_eq!(j.kept("order:7", 0, 10).unwrap(), Vec::<KeptEvent>::new());
    assert_eq!(j.expiring(u64::MAX, 10).unwrap(), vec![e3.at.clone()]);
}

/// Sessions: a record is stored by the append that carries it (with the
/// events, atomically), replaced by the next one, listed by id, forgotten.
async fn sessions(j: Arc<dyn Journal>) {
    let (a, b) = (ExecutionId::new(3_000), ExecutionId::new(4_000));
    let record = |executions: Vec<ExecutionId>| SessionRecord {
        id: "ctx-1".into(),
        workflow_id: "j".into(),
        created_ms: 5,
        last_active_ms: 5 + executions.len() as u64,
        executions,
    };
    let started = Event::ExecutionStarted {
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: "h1".into(),
        input: Json("{}".into()),
        key: None,
    };
    for (id, r) in [(a, record(vec![a])), (b, record(vec![a, b]))] {
        j.append(Append {
            execution: id,
            first_seq: 1,
            at_ms: 5,
            events: std::slice::from_ref(&started),
            meta: Some(&meta(id, Status::Running, None)),
            workflow: None,
            timers: &[],
            waits: &[],
            session: Some(&r),
        })
        .await
        .unwrap();
        assert_eq!(j.session("ctx-1").unwrap(), Some(r), "stored with the append");
    }
    let other = SessionRecord { id: "ctx-0 é".into(), ..record(vec![b]) };
    j.append(Append {
        execution: b,
        first_seq: 2,
        at_ms: 6,
        events: &[],
        meta: None,
        workflow: None,
        timers: &[],
        waits: &[],
        session: Some(&other),
    })
    .await
    .unwrap();
    let ids: Vec<String> = j.sessions().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["ctx-0 é", "ctx-1"], "by id");
    assert_eq!(j.session("ctx-").unwrap(), None, "a prefix is not a session");
    j.forget_sessions(&["ctx-0 é".to_string(), "never".to_string()]).await.unwrap();
    assert_eq!(j.session("ctx-0 é").unwrap(), None);
    assert_eq!(j.sessions().unwrap().len(), 1);
    assert_eq!(j.read(a).unwrap().len(), 1, "executions stay");
}

#[tokio::test]
async fn memory_journal_sessions_conform() {
    sessions(Arc::new(MemoryJournal::new())).await;
}

#[tokio::test]
async fn sled_journal_sessions_conform_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    sessions(j.clone()).await;
    let kept = j.sessions().unwrap();
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    assert_eq!(j.sessions().unwrap(), kept);
    assert_eq!(j.session("ctx-1").unwrap().unwrap().executions.len(), 2);
}

#[tokio::test]
async fn memory_journal_mailbox_conforms() {
    mailbox(Arc::new(MemoryJournal::new())).await;
}

#[tokio::test]
async fn sled_journal_mailbox_conforms_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    mailbox(j.clone()).await;
    let (index, expiring) = (j.wait_index().unwrap(), j.expiring(u64::MAX, 10).unwrap());
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    assert_eq!(j.wait_index().unwrap(), index);
    assert_eq!(j.expiring(u64::MAX, 10).unwrap(), expiring);
    assert_eq!(j.kept("order:70", 0, 10).unwrap().len(), 1);
}

/// The mailbox again with sled's apply held: the wait index, kept events
/// and expiries are read from the log's overlay of acknowledged batches
/// (a `Take` and a `forget` are removals over puts there), and are the
/// same once sled has applied them.
#[tokio::test]
async fn sled_mailbox_reads_see_acknowledged_batches_before_sled_applies_them() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    j.pause_apply(true);
    mailbox(j.clone()).await;
    assert!(j.unapplied() > 0, "the mailbox's batches are not in sled yet");
    let held = (j.wait_index().unwrap(), j.expiring(u64::MAX, 10).unwrap(), j.kept("order:70", 0, 10).unwrap());
    j.pause_apply(false);
    j.settle();
    assert_eq!(j.unapplied(), 0);
    let applied = (j.wait_index().unwrap(), j.expiring(u64::MAX, 10).unwrap(), j.kept("order:70", 0, 10).unwrap());
    assert_eq!(applied, held, "sled applied: the same reads");
}

/// Everything a reader can ask of the store, as text, to compare.
fn every_read(j: &SledJournal, ids: &[ExecutionId]) -> String {
    let mut out = format!("{:?}\n", j.listing().unwrap());
    for &id in ids {
        out += &format!(
            "{id}: {:?} {:?} {:?} {:?} {:?}\n",
            j.meta(id).unwrap(),
            j.read(id).unwrap(),
            j.read_after(id, 1).unwrap(),
            j.first(id).unwrap(),
            j.last_record(id)
        );
    }
    out += &format!(
        "{:?} {:?} {:?} {:?} {:?}\n",
        j.find_key("k-a").unwrap(),
        j.workflow("h1").unwrap().map(|w| w.id),
        j.registrations().unwrap(),
        j.due_timers(u64::MAX, 100).unwrap(),
        j.next_timer_after(150).unwrap()
    );
    out + &format!("{:?}", j.audit())
}

/// The suite again with sled's apply held: every read is served from the
/// log's overlay of acknowledged batches (puts and removals), then the
/// same reads once sled has applied them, and after a reopen.
#[tokio::test]
async fn sled_reads_see_an_acknowledged_append_before_and_after_sled_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    j.pause_apply(true);
    conformance(j.clone()).await;
    assert_eq!(j.unapplied(), 6, "3 appends and 3 registrations acknowledged, none in sled yet");
    // Timers: set two, then clear one (a removal in the overlay over a
    // put in the overlay) and set a third.
    let a = ExecutionId::new(1_000);
    let timers = |first_seq, timers| Append {
        execution: a,
        first_seq,
        at_ms: 8,
        events: &[],
        meta: None,
        workflow: None,
        timers,
        waits: &[],
        session: None,
    };
    use jamjet::journal::TimerChange::{Clear, Set};
    j.append(timers(4, &[Set(100), Set(200)])).await.unwrap();
    let before_clear = j.due_timers(u64::MAX, 10).unwrap();
    assert_eq!(before_clear.iter().map(|t| t.at_ms).collect::<Vec<_>>(), vec![100, 200]);
    j.append(timers(4, &[Clear(100), Set(300)])).await.unwrap();
    let due: Vec<u64> = j.due_timers(u64::MAX, 10).unwrap().iter().map(|t| t.at_ms).collect();
    assert_eq!(due, vec![200, 300], "a cleared timer is gone before sled applies the clearing");
    assert_eq!(j.next_timer_after(150).unwrap().map(|t| t.at_ms), Some(200));
    assert_eq!(j.unapplied(), 8);

    let ids = [a, ExecutionId::new(2_000)];
    let unapplied = every_read(&j, &ids);
    let audit = j.audit();
    assert_eq!((audit.rows.len(), audit.histories.len(), audit.timers.len()), (2, 2, 2), "{audit:?}");
    j.pause_apply(false);
    j.settle();
    assert_eq!(j.unapplied(), 0);
    assert_eq!(every_read(&j, &ids), unapplied, "sled applied: the same reads");
    drop(j);
    let j = SledJournal::open(dir.path()).unwrap();
    assert_eq!(every_read(&j, &ids), unapplied, "reopened: the same reads");
}

/// With the apply held, a batch the log has acknowledged is read back at
/// once by a reader on another task, for many appends in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_right_after_each_acknowledged_append_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = Arc::new(SledJournal::open(dir.path()).unwrap());
    for round in 0..2u64 {
        // Round 0: the apply runs behind as it will; round 1: held (after
        // round 0 reached sled, so what is unapplied is round 1's alone).
        if round == 1 {
            j.settle();
        }
        j.pause_apply(round == 1);
        let ids = (0..50u64).map(|n| ExecutionId::new(10_000 + round * 1_000 + n));
        each_append_read_back_at_once(&j, ids, &format!("round {round}")).await;
    }
    assert_eq!(j.unapplied(), 50, "the held round is not in sled");
    j.pause_apply(false);
    j.settle();
    assert_eq!(j.list().unwrap().len(), 100);
}

// PostgreSQL: the same suites, each in a schema of its own.

/// Open the journal in `schema`.
async fn pg(schema: &PgSchema) -> Arc<PgJournal> {
    Arc::new(PgJournal::open(&schema.url()).await.unwrap_or_else(|e| panic!("open {}: {e}", schema.name)))
}

#[tokio::test]
async fn postgres_journal_conforms_and_keeps_everything_across_a_reopen() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    conformance(j.clone()).await;
    assert!(j.stats().syncs >= 1, "appends are committed");
    let before = j.list().unwrap();
    let history = j.read(before[0].id).unwrap();
    drop(j);
    let j = pg(&schema).await;
    assert_eq!(j.list().unwrap(), before);
    assert_eq!(j.read(before[0].id).unwrap(), history);
    assert_eq!(history.len(), 3);
    assert_eq!(j.find_key("k-a").unwrap(), Some(before[0].id));
    assert_eq!(j.registrations().unwrap().len(), 2);
    // The readable columns follow the index row.
    let status = schema.text("SELECT status || ' ' || key FROM executions WHERE key IS NOT NULL").await;
    assert_eq!(status, "completed k-a");
}

#[tokio::test]
async fn postgres_journal_sessions_conform_and_survive_a_reopen() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    sessions(j.clone()).await;
    let kept = j.sessions().unwrap();
    drop(j);
    let j = pg(&schema).await;
    assert_eq!(j.sessions().unwrap(), kept);
    assert_eq!(j.session("ctx-1").unwrap().unwrap().executions.len(), 2);
}

#[tokio::test]
async fn postgres_journal_mailbox_conforms_and_survives_a_reopen() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    mailbox(j.clone()).await;
    let (index, expiring) = (j.wait_index().unwrap(), j.expiring(u64::MAX, 10).unwrap());
    drop(j);
    let j = pg(&schema).await;
    assert_eq!(j.wait_index().unwrap(), index);
    assert_eq!(j.expiring(u64::MAX, 10).unwrap(), expiring);
    assert_eq!(j.kept("order:70", 0, 10).unwrap().len(), 1);
}

fn started_event() -> Event {
    Event::ExecutionStarted {
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: "h1".into(),
        input: Json("{}".into()),
        key: None,
    }
}

/// Append an `ExecutionStarted` to each of `ids` in turn, each read back
/// (its history and its index row) by a reader on another task as soon as
/// the append is acknowledged.
async fn each_append_read_back_at_once<J: Journal>(j: &Arc<J>, ids: impl IntoIterator<Item = ExecutionId>, what: &str) {
    let started = started_event();
    for (n, id) in ids.into_iter().enumerate() {
        j.append(Append {
            execution: id,
            first_seq: 1,
            at_ms: 1,
            events: std::slice::from_ref(&started),
            meta: Some(&meta(id, Status::Running, None)),
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        })
        .await
        .unwrap();
        let reader = j.clone();
        let seen = tokio::spawn(async move { (reader.read(id).unwrap().len(), reader.meta(id).unwrap()) });
        let (records, row) = seen.await.unwrap();
        assert_eq!(records, 1, "{what}, append {n}");
        assert_eq!(row.map(|m| m.id), Some(id));
    }
}

/// Timers set and cleared (in one append and across appends) read back in
/// deadline order, as the sled suite checks them.
#[tokio::test]
async fn postgres_timers_follow_their_sets_and_clears() {
    use jamjet::journal::TimerChange::{Clear, Set, SetFor};
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    let (a, b) = (ExecutionId::new(1_000), ExecutionId::new(2_000));
    let timers = |first_seq, timers| Append {
        execution: a,
        first_seq,
        at_ms: 8,
        events: &[],
        meta: None,
        workflow: None,
        timers,
        waits: &[],
        session: None,
    };
    let (first, second) = ([Set(100), Set(200), SetFor(b, 150)], [Clear(100), Set(300), Set(400), Clear(400)]);
    j.append(timers(1, &first)).await.unwrap();
    j.append(timers(1, &second)).await.unwrap();
    let due = |up_to| j.due_timers(up_to, 10).unwrap().iter().map(|t| (t.at_ms, t.execution)).collect::<Vec<_>>();
    assert_eq!(due(u64::MAX), vec![(150, b), (200, a), (300, a)]);
    assert_eq!(due(199), vec![(150, b)]);
    assert_eq!(j.due_timers(u64::MAX, 1).unwrap().len(), 1);
    assert_eq!(j.next_timer_after(150).unwrap().map(|t| t.at_ms), Some(200));
    assert_eq!(j.next_timer_after(300).unwrap(), None);
}

/// An append at a position already stored is refused with a message that
/// says so, and the stored history stays; in a round shared with other
/// appends, only the duplicate fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_duplicate_append_is_refused_and_the_history_kept() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    let a = ExecutionId::new(1_000);
    let started = started_event();
    let append = |execution, first_seq, events| Append {
        execution,
        first_seq,
        at_ms: 1,
        events,
        meta: None,
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    };
    j.append(append(a, 1, std::slice::from_ref(&started))).await.unwrap();
    let other = [Event::NodeScheduled { node: "x".into(), visit: 1 }];
    let err = j.append(append(a, 1, &other)).await.unwrap_err().to_string();
    assert!(err.contains("already stored") && err.contains(&a.to_string()), "{err}");
    assert_eq!(j.read(a).unwrap().iter().map(|r| &r.event).collect::<Vec<_>>(), vec![&started]);
    assert_eq!(j.stats().appends, 1, "a refused append is not counted");

    // Many appends at once, one of them a duplicate: they share rounds.
    let ids: Vec<ExecutionId> = (0..40u64).map(|n| ExecutionId::new(10_000 + n)).collect();
    let mut appends: Vec<_> = ids.iter().map(|&id| j.append(append(id, 1, std::slice::from_ref(&started)))).collect();
    appends.insert(20, j.append(append(a, 1, &other)));
    let outcomes = futures::future::join_all(appends).await;
    let failed: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
    assert_eq!(failed, vec![20], "only the duplicate fails: {outcomes:?}");
    for id in &ids {
        assert_eq!(j.read(*id).unwrap().len(), 1);
    }
    assert_eq!(j.read(a).unwrap().len(), 1);
}

/// Appends issued together are committed in shared rounds (group commit),
/// each read back at once by a reader on another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_appends_at_once_share_commits_and_read_back_at_once() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    let started = started_event();
    let ids: Vec<ExecutionId> = (0..64u64).map(|n| ExecutionId::new(10_000 + n)).collect();
    let metas: Vec<ExecutionMeta> = ids.iter().map(|&id| meta(id, Status::Running, None)).collect();
    let appends = ids.iter().zip(&metas).map(|(&id, m)| {
        j.append(Append {
            execution: id,
            first_seq: 1,
            at_ms: 1,
            events: std::slice::from_ref(&started),
            meta: Some(m),
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        })
    });
    for outcome in futures::future::join_all(appends).await {
        outcome.unwrap();
    }
    let stats = j.stats();
    assert_eq!((stats.appends, stats.events), (64, 64));
    assert!(stats.syncs <= 8, "64 appends issued together took {} commits", stats.syncs);
    assert_eq!(j.list().unwrap().len(), 64);
    each_append_read_back_at_once(&j, (0..20u64).map(|n| ExecutionId::new(20_000 + n)), "one by one").await;
}

/// A store migrated by a newer jamjet is refused with both versions named,
/// and left as it was.
#[tokio::test]
async fn postgres_a_schema_newer_than_this_build_is_refused() {
    let Some(schema) = PgSchema::fresh().await else { return };
    drop(pg(&schema).await);
    assert_eq!(schema.text("SELECT version::text FROM jamjet_schema").await, PgJournal::SCHEMA_VERSION.to_string());
    let newer = PgJournal::SCHEMA_VERSION + 1;
    schema.execute(&format!("UPDATE jamjet_schema SET version = {newer}")).await;
    let err = PgJournal::open(&schema.url()).await.err().expect("a newer schema is refused").to_string();
    let want = format!(
        "the store's schema is version {newer}; this jamjet knows up to {}: upgrade jamjet",
        PgJournal::SCHEMA_VERSION
    );
    assert_eq!(err, want);
    assert_eq!(schema.text("SELECT version::text FROM jamjet_schema").await, newer.to_string(), "nothing changed");
}

/// Two processes opening one fresh schema at once: the advisory lock makes
/// one migrate and the other find it done; both work on the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_journals_opening_a_fresh_schema_at_once_both_succeed() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = schema.url();
    let (one, two) = tokio::join!(PgJournal::open(&url), PgJournal::open(&url));
    let (one, two) = (one.expect("the first open"), two.expect("the second open"));
    assert_eq!(schema.text("SELECT count(*)::text FROM jamjet_schema").await, "1");
    let id = ExecutionId::new(1_000);
    one.append(Append {
        execution: id,
        first_seq: 1,
        at_ms: 1,
        events: &[started_event()],
        meta: Some(&meta(id, Status::Running, None)),
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    })
    .await
    .unwrap();
    assert_eq!(two.read(id).unwrap().len(), 1, "one store, seen by both");
    assert_eq!(two.list().unwrap().len(), 1);
}

/// No server: the error names where it looked and how to start one, and
/// never the password.
#[tokio::test]
async fn postgres_an_unreachable_server_is_a_clear_error_without_the_password() {
    let err = PgJournal::open("postgres://jj:s3cret@127.0.0.1:1/test").await.err().expect("refused").to_string();
    assert!(err.contains("cannot reach PostgreSQL at 127.0.0.1:1"), "{err}");
    assert!(err.contains("pg_ctlcluster") && err.contains("user jj"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

/// Connections ended under the journal (as a server restart ends them):
/// the next appends and reads go through on new ones, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_ended_under_the_journal_are_replaced() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let url = format!("{}&application_name={}", schema.url(), schema.name);
    let j = Arc::new(PgJournal::open(&url).await.unwrap());
    let append = |id: ExecutionId, first_seq| Append {
        execution: id,
        first_seq,
        at_ms: 1,
        events: &[],
        meta: None,
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    };
    let started = [started_event()];
    let ids: Vec<ExecutionId> = (0..8u64).map(|n| ExecutionId::new(1_000 + n)).collect();
    for round in 0..3u64 {
        // Several connections in use: appends and reads at once.
        let appends = ids.iter().map(|&id| j.append(Append { events: &started, ..append(id, round + 1) }));
        let reads = ids.iter().map(|&id| {
            let j = j.clone();
            tokio::task::spawn_blocking(move || j.read(id).map(|r| r.len()))
        });
        let (appended, read) = tokio::join!(futures::future::join_all(appends), futures::future::join_all(reads));
        for outcome in appended {
            outcome.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        for outcome in read {
            outcome.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let ended = schema
            .text(&format!(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::text FROM pg_stat_activity \
                 WHERE application_name = '{}'",
                schema.name
            ))
            .await;
        assert!(ended.parse::<u32>().unwrap() >= 1, "round {round}: ended {ended} connections");
    }
    for id in &ids {
        assert_eq!(j.read(*id).unwrap().len(), 3, "every acknowledged append is there");
    }
}

/// A stored value that does not decode makes its one execution damaged,
/// named by record or index row, as on sled (the decoding is shared);
/// the other execution reads whole.
#[tokio::test]
async fn postgres_damage_is_named_and_contained_per_execution() {
    use jamjet::journal::{Error, Part};
    let Some(schema) = PgSchema::fresh().await else { return };
    let j = pg(&schema).await;
    conformance(j.clone()).await;
    // `a` has the key and three records in two frames, `b` one record.
    let (a, b) = (j.find_key("k-a").unwrap().unwrap(), j.list().unwrap()[1].id);
    // Record 3 of `a` (its second frame), garbled: a record of 5 bytes that is no event.
    schema.execute(r"UPDATE events SET frame = '\x0500000001ffffffff'::bytea WHERE first_seq = 3").await;
    match j.read(a) {
        Err(Error::Damaged(d)) => assert_eq!((d.execution, d.part), (a, Part::Record { seq: 3 })),
        other => panic!("expected a damaged record, got {other:?}"),
    }
    let err = j.read_after(a, 2).unwrap_err().to_string();
    assert!(err.contains("record 3") && err.contains(&a.to_string()), "{err}");
    assert_eq!(j.read(b).unwrap().len(), 1, "the other execution reads whole");
    // The index row of `b` (the one with no key), garbled.
    schema.execute(r"UPDATE executions SET record = '\x01ffff'::bytea WHERE key IS NULL").await;
    let listing = j.listing().unwrap();
    assert_eq!(listing.rows.iter().map(|m| m.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!((listing.damaged.len(), listing.damaged[0].execution), (1, b));
    assert_eq!(listing.damaged[0].part, Part::IndexRow);
    let err = j.meta(b).unwrap_err().to_string();
    assert!(err.contains(&b.to_string()) && err.contains("index row"), "{err}");
    // A missing frame is damage too, named by the first record missing.
    schema.execute("DELETE FROM events WHERE first_seq = 1 AND last_seq = 2").await;
    match j.read(a) {
        Err(Error::Damaged(d)) => assert_eq!(d.part, Part::Record { seq: 1 }),
        other => panic!("expected a missing record, got {other:?}"),
    }
}

/// Bad places to open: a schema that does not exist, a user the server
/// does not know, a database it does not have. Each is a clear error
/// saying what to do, and nothing is created.
#[tokio::test]
async fn postgres_a_missing_schema_user_or_database_is_a_clear_error() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let missing = schema.url().replace(&schema.name, &format!("{}_missing", schema.name));
    let err = PgJournal::open(&missing).await.err().expect("no such schema").to_string();
    assert!(err.contains("no schema on the connection's search_path exists") && err.contains("CREATE SCHEMA"), "{err}");
    let opts: sqlx::postgres::PgConnectOptions = schema.url().parse().unwrap();
    let (host, port) = (opts.get_host(), opts.get_port());
    let err = PgJournal::open(&format!("postgres://jj_nobody@{host}:{port}/test")).await.err().expect("no such user");
    let err = err.to_string();
    assert!(err.contains("refused the connection") && err.contains("user jj_nobody"), "{err}");
    let user = opts.get_username();
    let err = PgJournal::open(&format!("postgres://{user}@{host}:{port}/jj_no_such_database")).await.err();
    let err = err.expect("no such database").to_string();
    assert!(err.contains("refused the connection") && err.contains("createdb"), "{err}");
    assert_eq!(schema.text("SELECT count(*)::text FROM pg_tables WHERE schemaname = current_schema()").await, "0");
}

const FLOW: &str = r#"
id: pgflow
state_schema: { n: int, paid: any, a: any, b: any }
nodes:
  double: { type: function, function: double, input: { n: "{{ state.n }}" }, output_key: n, next: nap }
  nap: { type: wait, duration_ms: 50, next: fan }
  fan: { type: parallel, branches: [wa, wb], join: pay, merge: keys }
  wa: { type: set, values: { a: 1 }, next: pay }
  wb: { type: set, values: { b: 2 }, next: pay }
  pay: { type: wait, event: paid, output_key: paid }
"#;

/// The runtime on the PostgreSQL journal: a function step, a timer, a
/// fan-out of child executions and a wait for a signal; the execution
/// parks, the runtime stops, a new one on a new journal resumes it, the
/// signal ends it, and each node completed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_runtime_runs_a_workflow_and_resumes_it_after_a_reopen() {
    use jamjet::Runtime;
    use jamjet::nodes::{FunctionCall, FunctionError};
    use serde_json::{Value, json};
    let Some(schema) = PgSchema::fresh().await else { return };
    let wf = ir::compile_str(FLOW, "pgflow.yaml").unwrap_or_else(|d| panic!("{d}"));
    async fn double(call: FunctionCall) -> Result<Value, FunctionError> {
        Ok(json!(call.input["n"].as_i64().unwrap_or_default() * 2))
    }
    let open = || async {
        let journal: Arc<dyn Journal> = pg(&schema).await;
        Runtime::builder().journal(journal).function("double", double).open().await.unwrap()
    };
    let rt = open().await;
    let id = rt.submit(&wf, json!({"n": 21})).await.unwrap();
    let parked = tokio::time::timeout(std::time::Duration::from_secs(10), rt.settle(id)).await;
    let parked = parked.expect("the execution parks on its wait within 10 s").unwrap();
    assert_eq!(parked.status, Status::Waiting, "{parked:?}");
    rt.shutdown().await;

    let rt = open().await;
    rt.signal(id, "paid", json!(true)).await.unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), rt.wait(id)).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed);
    assert_eq!((out.state["n"].clone(), out.state["paid"].clone()), (json!(42), json!(true)));
    assert_eq!((out.state["a"].clone(), out.state["b"].clone()), (json!(1), json!(2)));
    let completed: Vec<String> = rt
        .events(id)
        .unwrap()
        .iter()
        .filter_map(|r| match &r.event {
            Event::NodeCompleted { node, .. } => Some(node.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(completed, ["double", "nap", "fan", "pay"], "each node completed once");
    assert!(rt.list(None).unwrap().len() >= 3, "the execution and its two branches");
    rt.shutdown().await;
}
