//! Leases of the PostgreSQL journal: two `PgJournal`s on one schema stand
//! for two processes sharing a store (see `support/pg.rs` for the schema
//! each test gets). What is checked: who owns an execution, claims and
//! their filters, takeover after a lease expires, fencing of the old
//! owner's appends (nothing of them stored), hand-back and close.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use jamjet::ExecutionId;
use jamjet::journal::{
    Append, Error, Event, ExecutionMeta, Journal, Json, Leases, PgJournal, PgOptions, Status, TimerChange,
};
use support::pg::PgSchema;

/// Open a journal (a worker) on `schema` whose leases last `lease_ms`.
async fn worker(schema: &PgSchema, lease_ms: u64) -> Arc<PgJournal> {
    let options = PgOptions { command: "test".into(), lease_time: Duration::from_millis(lease_ms) };
    let j = PgJournal::open_with(&schema.url(), options).await;
    Arc::new(j.unwrap_or_else(|e| panic!("open {}: {e}", schema.name)))
}

fn meta(id: ExecutionId, hash: &str, status: Status) -> ExecutionMeta {
    ExecutionMeta {
        id,
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: hash.into(),
        status,
        created_ms: 1,
        updated_ms: 1,
        key: None,
    }
}

fn started(hash: &str) -> Event {
    Event::ExecutionStarted {
        workflow_id: "j".into(),
        workflow_version: "0.1.0".into(),
        workflow_hash: hash.into(),
        input: Json("{}".into()),
        key: None,
    }
}

fn step(n: u32) -> Event {
    Event::NodeScheduled { node: format!("n{n}"), visit: 1 }
}

/// The first append of a new execution (its lease is taken with it).
async fn start(j: &PgJournal, id: ExecutionId, hash: &str, status: Status, timers: &[TimerChange]) {
    let m = meta(id, hash, status);
    j.append(Append {
        execution: id,
        first_seq: 1,
        at_ms: 1,
        events: &[started(hash)],
        meta: Some(&m),
        workflow: None,
        timers,
        waits: &[],
        session: None,
    })
    .await
    .unwrap_or_else(|e| panic!("starting {id}: {e}"));
}

/// An append of one event at `seq`, with no new index row.
fn next<'a>(id: ExecutionId, seq: u64, events: &'a [Event]) -> Append<'a> {
    Append {
        execution: id,
        first_seq: seq,
        at_ms: 2,
        events,
        meta: None,
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    }
}

/// Make `j`'s worker look dead to the others (its heartbeat an hour old).
async fn age(schema: &PgSchema, j: &PgJournal) {
    let id = j.worker_id().to_string();
    schema
        .execute(&format!("UPDATE workers SET heartbeat_at = heartbeat_at - interval '1 hour' WHERE id = '{id}'"))
        .await;
}

async fn epoch(schema: &PgSchema, id: ExecutionId) -> String {
    let hex: String = id.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    schema
        .text(&format!(
            "SELECT coalesce((SELECT epoch::text || ' ' || coalesce(worker, '-') FROM leases \
             WHERE execution = '\\x{hex}'::bytea), 'none')"
        ))
        .await
}

fn ids(from: u64, n: u64) -> Vec<ExecutionId> {
    (0..n).map(|i| ExecutionId::new(from + i)).collect()
}

fn sorted(metas: Vec<ExecutionMeta>) -> Vec<ExecutionId> {
    let mut out: Vec<ExecutionId> = metas.into_iter().map(|m| m.id).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_execution_is_its_starters_and_the_other_cannot_claim_it_while_it_renews() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    assert!(one.leases().is_some(), "a shared store has leases");
    assert_ne!(one.worker_id(), two.worker_id());
    let id = ExecutionId::new(1_000);
    start(&one, id, "h1", Status::Running, &[]).await;
    assert!(one.owns(id) && !two.owns(id));
    assert_eq!(one.owner(id).unwrap().as_deref(), Some(one.worker_id()));
    assert_eq!(two.owner(id).unwrap().as_deref(), Some(one.worker_id()), "seen by the other process");
    assert_eq!(epoch(&schema, id).await, format!("1 {}", one.worker_id()));
    assert_eq!(one.renew().await.unwrap(), Vec::<ExecutionId>::new());
    assert!(two.claim(&["h1".into()], u64::MAX, 10).await.unwrap().is_empty());
    assert!(!two.claim_one(id).await.unwrap(), "a live process owns it");
    assert_eq!(one.renew().await.unwrap(), Vec::<ExecutionId>::new());
    one.append(next(id, 2, &[step(2)])).await.unwrap();
    assert_eq!(one.read(id).unwrap().len(), 2);
    // A renewal puts back a worker row that was taken for dead and deleted.
    schema.execute(&format!("DELETE FROM workers WHERE id = '{}'", one.worker_id())).await;
    assert_eq!(one.renew().await.unwrap(), Vec::<ExecutionId>::new());
    let workers: Vec<String> = two.workers().unwrap().into_iter().map(|w| w.id).collect();
    assert!(workers.contains(&one.worker_id().to_string()), "{workers:?}");
    let c = one.lease_counters();
    assert_eq!((c.renewals, c.fenced), (3, 0));
}

/// With a lease of 300 ms and no renewal, the other process takes the
/// executions over (epoch 2); the first one's next append is refused and
/// stores nothing, and its renewal reports the other execution lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lease_expires_and_the_old_owner_is_fenced() {
    let Some(schema) = PgSchema::fresh().await else { return };
    // Before the first process opens: its last renewal (the lease's start) is after this.
    let begun = Instant::now();
    let (one, two) = (worker(&schema, 300).await, worker(&schema, 300).await);
    let (a, b) = (ExecutionId::new(1_000), ExecutionId::new(2_000));
    start(&one, a, "h1", Status::Running, &[]).await;
    start(&one, b, "h1", Status::Running, &[]).await;
    let mut taken = Vec::new();
    // The other claims until the leases expire (by the server's clock): bounded.
    while taken.is_empty() && begun.elapsed() < Duration::from_secs(5) {
        taken = sorted(two.claim(&["h1".into()], 0, 10).await.unwrap());
        if taken.is_empty() {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    assert!(
        begun.elapsed() >= Duration::from_millis(290),
        "taken after {:?}, before the lease ran out",
        begun.elapsed()
    );
    assert_eq!(taken, vec![a, b]);
    assert_eq!(epoch(&schema, a).await, format!("2 {}", two.worker_id()));
    assert!(two.owns(a) && one.owns(a), "the first does not know yet");
    assert_eq!(one.owner(a).unwrap().as_deref(), Some(two.worker_id()));

    let err = one.append(next(a, 2, &[step(2)])).await.unwrap_err();
    match &err {
        Error::Fenced { execution, why } => {
            assert_eq!(*execution, a);
            assert!(why.contains(two.worker_id()) && why.contains("epoch 2"), "{why}");
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(one.read(a).unwrap().len(), 1, "nothing of the fenced append is stored");
    assert!(!one.owns(a), "a fenced execution is dropped");
    assert_eq!(one.renew().await.unwrap(), vec![b], "the renewal reports the other one lost");
    assert!(!one.owns(b));
    // The new owner carries on from what is stored.
    two.append(next(a, 2, &[step(3)])).await.unwrap();
    assert_eq!(two.read(a).unwrap().last().map(|r| r.event.clone()), Some(step(3)));
    assert_eq!(one.lease_counters().fenced, 1);
    assert_eq!((two.lease_counters().claimed, two.lease_counters().claims), (2, two.lease_counters().claims));
}

/// Many appends in shared rounds, one of them for an execution taken over:
/// only that one is refused; the rest commit, still several per round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_shared_round_only_the_fenced_append_is_refused() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    let all = ids(1_000, 64);
    let starts = all.iter().map(|&id| start(&one, id, "h1", Status::Running, &[]));
    futures::future::join_all(starts).await;
    let commits = one.stats().syncs;
    assert!(commits <= 8, "64 starts issued together took {commits} commits");
    let lost = all[20];
    age(&schema, &one).await;
    assert!(two.claim_one(lost).await.unwrap(), "the first looks dead: taken over");
    let events = [step(2)];
    let appends = all.iter().map(|&id| one.append(next(id, 2, &events)));
    let outcomes = futures::future::join_all(appends).await;
    let refused: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
    assert_eq!(refused, vec![20], "{outcomes:?}");
    assert!(matches!(&outcomes[20], Err(Error::Fenced { execution, .. }) if *execution == lost));
    for &id in &all {
        assert_eq!(one.read(id).unwrap().len(), if id == lost { 1 } else { 2 }, "{id}");
    }
    // Appends of owned executions still share rounds.
    let before = one.stats().syncs;
    let events = [step(3)];
    let appends = all.iter().filter(|&&id| id != lost).map(|&id| one.append(next(id, 3, &events)));
    for outcome in futures::future::join_all(appends).await {
        outcome.unwrap();
    }
    let commits = one.stats().syncs - before;
    assert!(commits <= 8, "63 owned appends issued together took {commits} commits");
}

/// An append of an execution this process never claimed is refused at
/// once (the future is ready: no round trip), an index-only first append
/// of someone else's execution is refused by the store, and neither writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_of_an_execution_never_claimed_is_refused() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    let id = ExecutionId::new(1_000);
    start(&one, id, "h1", Status::Running, &[]).await;
    let events = [step(2)];
    let refused = two.append(next(id, 2, &events)).now_or_never().expect("refused without waiting for the server");
    match refused {
        Err(Error::Fenced { execution, why }) => {
            assert_eq!(execution, id);
            assert!(why.contains("has not claimed it"), "{why}");
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(two.stats().syncs, 0, "nothing was committed");
    // At sequence 1 (what starts an execution) it goes to the store, which
    // finds the other's lease: refused, the wait index untouched.
    let waits = [jamjet::journal::WaitChange::Wait("k".into())];
    let err = two.append(Append { waits: &waits, ..next(id, 1, &[]) }).await.unwrap_err();
    match err {
        Error::Fenced { why, .. } => assert!(why.contains(one.worker_id()), "{why}"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(two.waiting_for("k").unwrap().is_empty());
    assert_eq!(one.read(id).unwrap().len(), 1);
    assert_eq!(two.lease_counters().fenced, 2);
    assert!(!two.owns(id));
}

/// A hand-back ends the lease (the row stays, so the epoch grows on the
/// next claim); the other process claims it; the first can no longer write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_execution_is_claimed_by_the_other() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    let (a, b) = (ExecutionId::new(1_000), ExecutionId::new(2_000));
    start(&one, a, "h1", Status::Running, &[]).await;
    start(&one, b, "h1", Status::Running, &[]).await;
    // Queued together: the append goes first, the hand-back after it.
    let events = [step(2)];
    let handed = [a];
    let (appended, released) = tokio::join!(one.append(next(a, 2, &events)), one.release(&handed));
    appended.unwrap();
    released.unwrap();
    assert!(!one.owns(a) && one.owns(b));
    assert_eq!(epoch(&schema, a).await, "1 -");
    assert_eq!(one.owner(a).unwrap(), None);
    let refused = one.append(next(a, 3, &events)).now_or_never().expect("refused at once");
    assert!(matches!(refused, Err(Error::Fenced { .. })), "{refused:?}");
    assert_eq!(sorted(two.claim(&["h1".into()], 0, 10).await.unwrap()), vec![a]);
    assert_eq!(epoch(&schema, a).await, format!("2 {}", two.worker_id()));
    two.append(next(a, 3, &events)).await.unwrap();
    assert_eq!(two.read(a).unwrap().len(), 3);
    assert_eq!(one.renew().await.unwrap(), Vec::<ExecutionId>::new(), "a handed-back lease is not lost");
}

/// Closing a journal hands back every lease and deletes its worker row:
/// the other process takes everything over at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_journal_releases_everything() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 60_000).await, worker(&schema, 60_000).await);
    let all = ids(1_000, 3);
    for &id in &all {
        start(&one, id, "h1", Status::Running, &[]).await;
    }
    let workers = two.workers().unwrap();
    assert_eq!(workers.len(), 2);
    let first = workers.iter().find(|w| w.id == one.worker_id()).expect("listed");
    assert_eq!((first.owns, first.command.as_str(), first.draining), (3, "test", false));
    assert!(first.heartbeat_ms >= first.started_ms && first.started_ms > 0);
    let gone = one.worker_id().to_string();
    drop(one);
    let workers: Vec<String> = two.workers().unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(workers, vec![two.worker_id().to_string()], "the closed worker's row is gone");
    assert_eq!(sorted(two.claim(&["h1".into()], 0, 10).await.unwrap()), all, "taken at once, 60 s leases or not");
    assert_eq!(epoch(&schema, all[0]).await, format!("2 {}", two.worker_id()));
    assert!(!epoch(&schema, all[1]).await.contains(&gone));
}

/// Claims take running executions and waiting ones with a timer due, of
/// the workflows asked for, up to the limit; never ended ones, never while
/// draining. An execution that ends loses its lease row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_filters_by_workflow_hash_status_and_due_timer() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    let [run1, run2, due, later, untimed, done] = [1u64, 2, 3, 4, 5, 6].map(|n| ExecutionId::new(n * 1_000));
    start(&one, run1, "h1", Status::Running, &[]).await;
    start(&one, run2, "h2", Status::Running, &[]).await;
    start(&one, due, "h1", Status::Waiting, &[TimerChange::Set(100)]).await;
    start(&one, later, "h1", Status::Waiting, &[TimerChange::Set(1_000)]).await;
    start(&one, untimed, "h1", Status::Waiting, &[]).await;
    start(&one, done, "h1", Status::Running, &[]).await;
    let end = meta(done, "h1", Status::Completed);
    let ended = [Event::ExecutionCompleted { state: Json("{}".into()) }];
    one.append(Append { meta: Some(&end), ..next(done, 2, &ended) }).await.unwrap();
    assert!(!one.owns(done));
    assert_eq!(epoch(&schema, done).await, "none", "an ended execution has no lease");
    drop(one);

    two.set_draining(true).await.unwrap();
    assert!(two.claim(&["h1".into(), "h2".into()], u64::MAX, 10).await.unwrap().is_empty(), "draining");
    assert!(two.workers().unwrap()[0].draining);
    two.set_draining(false).await.unwrap();
    assert!(two.claim(&["h3".into()], u64::MAX, 10).await.unwrap().is_empty());
    assert!(two.claim(&[], u64::MAX, 10).await.unwrap().is_empty());
    let first = two.claim(&["h1".into()], 500, 1).await.unwrap();
    assert_eq!(first.len(), 1, "the limit");
    assert_eq!(first[0], meta(run1, "h1", Status::Running), "the index row as stored");
    assert_eq!(sorted(two.claim(&["h1".into()], 500, 10).await.unwrap()), vec![due]);
    assert_eq!(sorted(two.claim(&["h1".into(), "h2".into()], 2_000, 10).await.unwrap()), vec![run2, later]);
    assert!(two.claim(&["h1".into(), "h2".into()], u64::MAX, 10).await.unwrap().is_empty());
    for id in [run1, run2, due, later] {
        assert!(two.owns(id), "{id}");
    }
    assert!(!two.owns(untimed) && !two.owns(done));
    let c = two.lease_counters();
    assert_eq!(c.claimed, 4);
}

/// Two processes claiming at once from 200 free executions take disjoint
/// sets that together are all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claimers_at_once_take_disjoint_sets() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let starter = worker(&schema, 5_000).await;
    let all = ids(1_000, 200);
    futures::future::join_all(all.iter().map(|&id| start(&starter, id, "h1", Status::Running, &[]))).await;
    drop(starter);
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    // Both start together and pause between rounds, so their claims
    // interleave even on a loaded machine (one alone could take all 200
    // before the other's first round, and prove nothing).
    async fn claim_all(j: Arc<PgJournal>, go: Arc<tokio::sync::Barrier>) -> Vec<ExecutionId> {
        go.wait().await;
        let mut mine = Vec::new();
        // A claim may come back empty while executions are left: its
        // snapshot saw free leases the other had just taken (the upsert's
        // guard refuses them). Stop after three empty rounds in a row.
        let mut empty = 0;
        for _ in 0..200 {
            let got = j.claim(&["h1".into()], 0, 7).await.unwrap();
            empty = if got.is_empty() { empty + 1 } else { 0 };
            if empty == 3 {
                break;
            }
            mine.extend(got.into_iter().map(|m| m.id));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        mine
    }
    let go = Arc::new(tokio::sync::Barrier::new(2));
    let (a, b) =
        tokio::join!(tokio::spawn(claim_all(one.clone(), go.clone())), tokio::spawn(claim_all(two.clone(), go)));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(!a.is_empty() && !b.is_empty(), "both claimed some: {} and {}", a.len(), b.len());
    let mut union: Vec<ExecutionId> = a.iter().chain(&b).copied().collect();
    union.sort();
    let n = union.len();
    union.dedup();
    assert_eq!(union.len(), n, "no execution taken twice");
    assert_eq!(union, all, "every one taken");
    assert!(a.iter().all(|id| one.owns(*id) && !two.owns(*id)));
    assert_eq!(schema.text("SELECT count(*)::text FROM leases WHERE epoch = 2").await, "200");
}

/// `claim_one`: already mine, a live other's, a dead other's, a free one,
/// an ended one and one not in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_one_takes_what_no_live_process_owns() {
    let Some(schema) = PgSchema::fresh().await else { return };
    let (one, two) = (worker(&schema, 5_000).await, worker(&schema, 5_000).await);
    let [mine, theirs, freed, ended] = [1u64, 2, 3, 4].map(|n| ExecutionId::new(n * 1_000));
    start(&one, mine, "h1", Status::Running, &[]).await;
    start(&two, theirs, "h1", Status::Waiting, &[]).await;
    start(&two, freed, "h1", Status::Waiting, &[]).await;
    two.release(&[freed]).await.unwrap();
    start(&two, ended, "h1", Status::Completed, &[]).await;

    assert!(one.claim_one(mine).await.unwrap(), "already mine");
    assert_eq!(epoch(&schema, mine).await, format!("1 {}", one.worker_id()), "the epoch stays");
    assert!(!one.claim_one(theirs).await.unwrap(), "a live process owns it");
    assert!(one.claim_one(freed).await.unwrap(), "handed back: free, whatever its status");
    assert_eq!(epoch(&schema, freed).await, format!("2 {}", one.worker_id()));
    one.append(next(freed, 2, &[step(2)])).await.unwrap();
    assert!(one.claim_one(ended).await.unwrap(), "ended: nothing to run, nothing to fence");
    assert_eq!(epoch(&schema, ended).await, "none");
    assert!(one.claim_one(ExecutionId::new(9_000)).await.unwrap(), "not in the store");
    assert_eq!(epoch(&schema, ExecutionId::new(9_000)).await, "none");
    age(&schema, &two).await;
    assert!(one.claim_one(theirs).await.unwrap(), "its owner looks dead");
    assert_eq!(epoch(&schema, theirs).await, format!("2 {}", one.worker_id()));
    let refused = two.append(next(theirs, 2, &[step(2)])).await;
    assert!(matches!(refused, Err(Error::Fenced { .. })), "{refused:?}");
    assert_eq!(two.renew().await.unwrap(), Vec::<ExecutionId>::new(), "already dropped by the refusal");
}

/// The runtime on a shared store: an execution that parks and hibernates
/// hands its lease back; another process's runtime, signalling it, claims
/// it itself (the supervisor's `claim_one` before it rehydrates) and
/// carries it to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_execution_claimed_by_another_process_goes_on_there() {
    use jamjet::Runtime;
    use serde_json::json;
    let Some(schema) = PgSchema::fresh().await else { return };
    let wf = jamjet::ir::compile_str(
        "id: pw\nstate_schema: { paid: any }\nnodes:\n  pay: { type: wait, event: paid, output_key: paid }\n",
        "pw.yaml",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let one = worker(&schema, 5_000).await;
    let rt = Runtime::builder().journal(one.clone() as Arc<dyn Journal>).open().await.unwrap();
    let id = rt.submit(&wf, json!({})).await.unwrap();
    let parked = tokio::time::timeout(Duration::from_secs(10), rt.settle(id)).await.expect("parks in 10 s").unwrap();
    assert_eq!(parked.status, Status::Waiting);
    tokio::time::timeout(Duration::from_secs(10), rt.unloaded(id)).await.expect("hibernates in 10 s").unwrap();
    assert!(!one.owns(id), "parked and hibernated: handed back");
    assert_eq!(epoch(&schema, id).await, "1 -", "the row stays (epochs only grow), with no worker");
    let two = worker(&schema, 5_000).await;
    let rt2 = Runtime::builder().journal(two.clone() as Arc<dyn Journal>).open().await.unwrap();
    rt2.signal(id, "paid", json!(true)).await.unwrap();
    let rt = {
        rt.shutdown().await;
        rt2
    };
    let out = tokio::time::timeout(Duration::from_secs(10), rt.wait(id)).await.unwrap().unwrap();
    assert_eq!(out.status, Status::Completed);
    assert!(!two.owns(id), "an ended execution is no one's");
    assert_eq!(epoch(&schema, id).await, "none");
    rt.shutdown().await;
}

/// A workflow whose first step holds until the test lets it go (so its
/// execution is running, owned by the process that started it), then
/// waits for the event `paid`.
fn held_then_paid() -> jamjet::ir::Workflow {
    jamjet::ir::compile_str(
        "id: held\nstate_schema: { paid: any }\nnodes:\n  \
         hold: { type: function, function: hold, next: pay }\n  \
         pay: { type: wait, event: paid, output_key: paid }\n",
        "held.yaml",
    )
    .unwrap_or_else(|d| panic!("{d}"))
}

/// A runtime on `j` whose `hold` function waits for a permit of `gate`.
async fn holding(j: &Arc<PgJournal>, gate: &Arc<tokio::sync::Semaphore>) -> jamjet::Runtime {
    let gate = gate.clone();
    jamjet::Runtime::builder()
        .journal(j.clone() as Arc<dyn Journal>)
        .function("hold", move |_| {
            let gate = gate.clone();
            async move {
                let _permit = gate.acquire().await;
                Ok(serde_json::json!({}))
            }
        })
        .open()
        .await
        .unwrap()
}

/// The events of `id` that `pick` names, as `rt` reads them.
fn named(rt: &jamjet::Runtime, id: ExecutionId, pick: fn(&Event) -> bool) -> usize {
    rt.events(id).unwrap().iter().filter(|r| pick(&r.event)).count()
}

/// Until `id`'s `hold` step has started (bounded).
async fn until_holding(rt: &jamjet::Runtime, id: ExecutionId) {
    let started = |e: &Event| matches!(e, Event::NodeStarted { node, .. } if node == "hold");
    for _ in 0..200 {
        if named(rt, id, started) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} did not start its `hold` step in 5 s");
}

/// Signals, decisions and cancels for an execution another live process
/// runs go through its inbox: that process journals each once, in order,
/// and the sender gets the answer it would get for its own (a refusal
/// too). Nothing is left in the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_sent_to_a_running_execution_of_another_process_goes_through_its_inbox() {
    use jamjet::runtime::{Decision, Error as RtError};
    let Some(schema) = PgSchema::fresh().await else { return };
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let one = worker(&schema, 5_000).await;
    let rt = holding(&one, &gate).await;
    let (paid, cancelled) = (rt.submit(&held_then_paid(), serde_json::json!({})).await.unwrap(), {
        rt.submit(&held_then_paid(), serde_json::json!({})).await.unwrap()
    });
    until_holding(&rt, paid).await;
    until_holding(&rt, cancelled).await;
    let two = worker(&schema, 5_000).await;
    let rt2 = jamjet::Runtime::builder().journal(two.clone() as Arc<dyn Journal>).open().await.unwrap();
    assert!(one.owns(paid) && !two.owns(paid));

    // A signal before the wait is reached: kept, and consumed there.
    tokio::time::timeout(Duration::from_secs(10), rt2.signal(paid, "paid", serde_json::json!(7)))
        .await
        .expect("answered in 10 s")
        .unwrap();
    assert!(!two.owns(paid), "the sender did not take it over");
    let signalled = |e: &Event| matches!(e, Event::SignalReceived { key, .. } if key == "paid");
    assert_eq!(named(&rt, paid, signalled), 1, "journaled by its owner before the sender was answered");
    // A decision it does not wait for: refused as its owner refuses it.
    let decision = Decision { node: None, call: None, approved: true, by: "ana".into(), comment: None };
    let refused = tokio::time::timeout(Duration::from_secs(10), rt2.approve(paid, decision)).await.expect("10 s");
    assert!(matches!(&refused, Err(RtError::NotWaiting { id, .. }) if *id == paid), "{refused:?}");
    // A cancel: journaled there, and the execution ends there.
    tokio::time::timeout(Duration::from_secs(10), rt2.cancel(cancelled, "not needed")).await.expect("10 s").unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), rt.wait(cancelled)).await.expect("10 s").unwrap();
    assert_eq!(ended.status, Status::Cancelled);
    assert_eq!(schema.text("SELECT count(*)::text FROM inbox").await, "0", "every answer was read and removed");

    // The other process follows it to its end (it runs where it is).
    let followed = tokio::spawn({
        let rt2 = rt2.clone();
        async move { rt2.wait(paid).await }
    });
    gate.add_permits(2);
    let out = tokio::time::timeout(Duration::from_secs(10), rt.wait(paid)).await.expect("10 s").unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), followed).await.expect("followed in 10 s").unwrap();
    assert_eq!(seen.unwrap().state, out.state, "the same end, read from the store");
    assert!(!two.owns(paid));
    assert_eq!(out.status, Status::Completed);
    assert_eq!(out.state["paid"], serde_json::json!(7));
    assert_eq!(named(&rt, paid, signalled), 1, "once");
    rt2.shutdown().await;
    rt.shutdown().await;
}

/// An event published by key through one process reaches an execution
/// waiting for it that another live process runs (a branch of a fan-out
/// whose other branch is still running there): through its inbox, journaled
/// there once, and the publisher is told it was received (not kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_in_one_process_reaches_its_waiter_in_another() {
    use jamjet::journal::Journal as _;
    let Some(schema) = PgSchema::fresh().await else { return };
    let wf = jamjet::ir::compile_str(
        "id: both\nstate_schema: { paid: any }\nnodes:\n  \
         split: { type: parallel, branches: [hold, pay], join: done, merge: keys }\n  \
         hold: { type: function, function: hold, next: done }\n  \
         pay: { type: wait, event: paid, output_key: paid, next: done }\n  \
         done: { type: end }\n",
        "both.yaml",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let one = worker(&schema, 5_000).await;
    let rt = holding(&one, &gate).await;
    let id = rt.submit(&wf, serde_json::json!({})).await.unwrap();
    // Until its `pay` branch waits (bounded).
    let began = Instant::now();
    let waiter = loop {
        if let Some(&branch) = one.waiting_for("paid").unwrap().first() {
            break branch;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "no branch waited for `paid` in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(one.owns(waiter), "the branch is its parent's process's");
    let two = worker(&schema, 5_000).await;
    let rt2 = jamjet::Runtime::builder().journal(two.clone() as Arc<dyn Journal>).open().await.unwrap();
    let published = tokio::time::timeout(Duration::from_secs(10), rt2.publish("paid", serde_json::json!(7), None))
        .await
        .expect("answered in 10 s")
        .unwrap();
    assert_eq!(published.delivered, vec![waiter], "received there, not kept: {published:?}");
    assert_eq!(published.kept_until_ms, None);
    assert!(!two.owns(waiter), "the publisher did not take it over");
    assert_eq!(schema.text("SELECT count(*)::text FROM inbox").await, "0", "answered and removed");
    assert_eq!(schema.text("SELECT count(*)::text FROM kept_events").await, "0", "nothing kept");

    gate.add_permits(1);
    let out = tokio::time::timeout(Duration::from_secs(10), rt.wait(id)).await.expect("10 s").unwrap();
    assert_eq!((out.status, &out.state["paid"]), (Status::Completed, &serde_json::json!(7)));
    let received = |e: &Event| matches!(e, Event::SignalReceived { key, .. } if key == "paid");
    assert_eq!(named(&rt, waiter, received), 1, "journaled once, by its owner");
    rt2.shutdown().await;
    rt.shutdown().await;
}

/// A message the owner does not take in time is withdrawn (nothing is
/// journaled later), and one whose execution loses its owner while the
/// sender waits is withdrawn and delivered by the sender itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_nobody_takes_is_withdrawn_and_one_whose_owner_lets_go_is_delivered_by_its_sender() {
    use jamjet::runtime::Error as RtError;
    let Some(schema) = PgSchema::fresh().await else { return };
    let wf = jamjet::ir::compile_str(
        "id: pw\nstate_schema: { paid: any }\nnodes:\n  pay: { type: wait, event: paid, output_key: paid }\n",
        "pw.yaml",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let one = worker(&schema, 5_000).await;
    let rt = jamjet::Runtime::builder().journal(one.clone() as Arc<dyn Journal>).open().await.unwrap();
    let id = rt.submit(&wf, serde_json::json!({})).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rt.unloaded(id)).await.expect("parks in 10 s").unwrap();
    // A process that owns it and never reads its inbox (stalled).
    let stalled = worker(&schema, 5_000).await;
    assert!(stalled.claim_one(id).await.unwrap());
    let two = worker(&schema, 5_000).await;
    let rt2 = jamjet::Runtime::builder()
        .journal(two.clone() as Arc<dyn Journal>)
        .answer_within(Duration::from_secs(2))
        .open()
        .await
        .unwrap();
    let sent = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(10), rt2.signal(id, "paid", serde_json::json!(1))).await;
    let refused = refused.expect("answered in 10 s");
    assert!(sent.elapsed() >= Duration::from_secs(2), "waited its time");
    match &refused {
        Err(RtError::NotTaken { owner, .. }) => assert_eq!(owner, stalled.worker_id()),
        other => panic!("{other:?}"),
    }
    assert!(refused.unwrap_err().to_string().contains("withdrawn: nothing was delivered"));
    assert_eq!(schema.text("SELECT count(*)::text FROM inbox").await, "0", "withdrawn");
    let signalled = |e: &Event| matches!(e, Event::SignalReceived { .. });
    assert_eq!(named(&rt2, id, signalled), 0, "nothing journaled");

    // Sent again; its owner hands it back while the sender waits.
    let sending = tokio::spawn({
        let rt2 = rt2.clone();
        async move { rt2.signal(id, "paid", serde_json::json!(2)).await }
    });
    // Until the message is in the inbox (bounded), so the sender is the one that must let it follow.
    let sent = Instant::now();
    while schema.text("SELECT count(*)::text FROM inbox").await != "1" {
        assert!(sent.elapsed() < Duration::from_secs(10), "the message did not reach the inbox in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stalled.release(&[id]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), sending).await.expect("answered in 10 s").unwrap().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), rt2.wait(id)).await.expect("10 s").unwrap();
    assert_eq!((out.status, &out.state["paid"]), (Status::Completed, &serde_json::json!(2)));
    assert_eq!(named(&rt2, id, signalled), 1);
    assert_eq!(schema.text("SELECT count(*)::text FROM inbox").await, "0");
    rt2.shutdown().await;
    rt.shutdown().await;
}
