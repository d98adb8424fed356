//! Persisting a step: run it through the machine (with the pure and
//! control nodes it reaches, inline), append what it made in one durable
//! batch with the index row, timer and wait index changes it implies, and
//! tell the timer wheel and the mailbox. Also the index row a machine
//! implies, and making a rehydrated execution's row agree with its history.
//! Carrying out the effects afterwards is `effects.rs`'s.

use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef};
use tracing::warn;

use super::effects::carry_out;
use super::inline::{run_inline, runs_inline};
use super::{ExecutionArgs, State};
use crate::actors::Error;
use crate::actors::machine::{self, Effect, ExecutionState, Input, Phase, Step};
use crate::actors::messages::ExecutionMsg;
use crate::id::ExecutionId;
use crate::ir::Workflow;
use crate::journal::{Append, ExecutionMeta, Record, Status, TimerChange};

/// Step `input` (if any) through the machine, append what it made durably
/// in one batch, then carry out the effects.
pub(super) async fn drive(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    input: Option<Input>,
    effects: Vec<Effect>,
) -> Result<(), ActorProcessingErr> {
    let effects = persist(st, input, effects).await?;
    carry_out(myself, st, effects).await
}

/// Step `input` through the machine, run the pure and control nodes it
/// asks for inline (stepping their results into the same batch), and
/// append the events in one durable batch, with the index row and timer
/// index changes they imply. `pending`: effects already asked for (a pure
/// node that did not fit in the previous batch). Returns the effects to
/// carry out now that the events are durable.
pub(super) async fn persist(
    st: &mut State,
    input: Option<Input>,
    pending: Vec<Effect>,
) -> Result<Vec<Effect>, ActorProcessingErr> {
    let now = st.services.clock.now_ms();
    let first_seq = st.machine.last_seq + 1;
    let phase_before = st.machine.phase;
    let mut step = Step { events: Vec::new(), effects: pending };
    if let Some(input) = input {
        step.extend(machine::step(&st.wf, &mut st.machine, input, now));
    }
    // Pure nodes (no IO: set, branch, end) run right here, inside this
    // step, and control nodes (wait, approval, parallel, workflow)
    // journal what they wait for or start; their events join this
    // batch, so a chain of them costs one sync. Anything with side
    // effects waits for the batch to be durable.
    let mut inline_left = INLINE_STEPS_PER_BATCH;
    while inline_left > 0
        && let Some((node, visit, attempt)) = take_inline(st, &mut step.effects)
    {
        inline_left -= 1;
        let (result, duration_us) = run_inline(st, &node, visit, attempt, now);
        let input = Input::Node { node, visit, attempt, result, duration_us };
        step.extend(machine::step(&st.wf, &mut st.machine, input, now));
    }
    let Step { events: written, effects } = step;
    let status = status_of(&st.machine);
    let meta = (st.status != Some(status)).then(|| ExecutionMeta {
        id: st.id,
        workflow_id: st.wf.id.clone(),
        workflow_version: st.wf.version.clone(),
        workflow_hash: st.hash.clone(),
        status,
        created_ms: st.machine.started_ms,
        updated_ms: now,
        key: st.machine.key.clone(),
    });
    let workflow = (phase_before == Phase::NotStarted).then_some((st.hash.as_str(), &*st.wf));
    let deadlines = st.machine.deadlines(&st.wf);
    let mut timers: Vec<TimerChange> = st
        .deadlines
        .difference(&deadlines)
        .map(|&at| TimerChange::Clear(at))
        .chain(deadlines.difference(&st.deadlines).map(|&at| TimerChange::Set(at)))
        .collect();
    // Children to cancel get a due entry in the same batch: should the
    // process die before they are told, the timer wheel wakes them at the
    // next start, and a child whose parent has ended cancels itself.
    for effect in &effects {
        if let Effect::CancelChildren(ids) = effect {
            timers.extend(ids.iter().map(|&child| TimerChange::SetFor(child, now)));
        }
    }
    // The event keys it waits for, in the wait index, in the same batch.
    let waits = crate::actors::wait::keys(&st.machine);
    let mut wait_changes = crate::actors::wait::changes(&st.waits, &waits);
    wait_changes.append(&mut st.taking);
    // Nothing to write (a rehydrated execution that only goes on waiting):
    // no append, so no sync to wait for.
    if written.is_empty() && meta.is_none() && timers.is_empty() && wait_changes.is_empty() {
        return Ok(effects);
    }
    // Counted as the batch goes to the journal, not after: whoever learns
    // of the batch from the journal (a settle, a follower, `/metrics` read
    // after an end) must find its completions counted. A failed append
    // stops the execution, so a completion counted here and lost is run,
    // and counted, again.
    st.services.latency.completed(&st.wf, &written);
    // A task of a session: the session names it in its first batch.
    let session = st.session.take();
    st.services
        .journal
        .append(Append {
            execution: st.id,
            first_seq,
            at_ms: now,
            events: &written,
            meta: meta.as_ref(),
            workflow,
            timers: &timers,
            waits: &wait_changes,
            session: session.as_ref(),
        })
        .await?;
    st.status = Some(status);
    st.services.mailbox.waiting(st.id, waits.difference(&st.waits).cloned().collect());
    st.waits = waits;
    for &at in deadlines.difference(&st.deadlines) {
        st.services.timers.schedule(at, st.id);
    }
    st.deadlines = deadlines;
    if phase_before == Phase::NotStarted {
        st.vars = Arc::new(st.machine.vars.clone());
    }
    Ok(effects)
}

/// Take the first `Run` of a node that runs inline out of `effects`.
fn take_inline(st: &State, effects: &mut Vec<Effect>) -> Option<(String, u32, u32)> {
    let i = effects.iter().position(|e| runs_inline(st, e))?;
    match effects.remove(i) {
        Effect::Run { node, visit, attempt } => Some((node, visit, attempt)),
        other => {
            effects.insert(i, other);
            None
        }
    }
}

/// How many pure nodes one step may run inline before it appends and
/// goes on in a new message.
const INLINE_STEPS_PER_BATCH: u32 = 64;

/// The index row of a rehydrated execution, made to agree with its
/// history: an execution whose history ended is never resumed, whatever its
/// row says. When they disagree on an ended one, the row is rewritten now
/// (one append with the row only), so the next start does not pick it
/// again; a live one's row is rewritten by its next append. Returns the
/// status the index holds.
pub(super) async fn agree_with_history(
    args: &ExecutionArgs,
    machine: &ExecutionState,
    records: &[Record],
) -> Result<Option<Status>, Error> {
    let stored = args.services.journal.meta(args.id)?.map(|m| m.status);
    let status = status_of(machine);
    if !machine.phase.is_terminal() || stored == Some(status) {
        return Ok(stored);
    }
    let updated_ms = records.last().map_or(machine.started_ms, |r| r.at_ms);
    let row = index_row(args.id, &args.workflow, &args.hash, machine, updated_ms);
    warn!(
        execution_id = %args.id,
        row = stored.map_or("missing", Status::as_str),
        history = %status,
        "the index row disagrees with the history, which has ended; rewriting the row"
    );
    let append = Append {
        execution: args.id,
        first_seq: machine.last_seq + 1,
        at_ms: updated_ms,
        events: &[],
        meta: Some(&row),
        workflow: None,
        timers: &[],
        waits: &[],
        session: None,
    };
    args.services.journal.append(append).await?;
    Ok(Some(status))
}

/// The index row an execution's machine implies, last changed at `updated_ms`.
pub(crate) fn index_row(
    id: ExecutionId,
    wf: &Workflow,
    hash: &str,
    machine: &ExecutionState,
    updated_ms: u64,
) -> ExecutionMeta {
    ExecutionMeta {
        id,
        workflow_id: wf.id.clone(),
        workflow_version: wf.version.clone(),
        workflow_hash: hash.to_string(),
        status: status_of(machine),
        created_ms: machine.started_ms,
        updated_ms,
        key: machine.key.clone(),
    }
}

/// The index status of an execution's machine.
pub(crate) fn status_of(m: &ExecutionState) -> Status {
    match m.phase {
        Phase::Completed => Status::Completed,
        Phase::Failed => Status::Failed,
        Phase::Cancelled => Status::Cancelled,
        _ if m.parked() => Status::Waiting,
        Phase::NotStarted | Phase::Running => Status::Running,
    }
}
