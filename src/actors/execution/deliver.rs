//! What reaches a live execution from outside, and parking: signals,
//! events, decisions, cancels and due deadlines (each journaled before its
//! reply), clearing a timer index entry, the orphan check of a rehydrated
//! child, and asking the supervisor to hibernate a parked execution.

use ractor::{ActorProcessingErr, ActorRef};

use super::State;
use super::effects::carry_out;
use super::persist::{drive, persist, status_of};
use crate::actors::machine::{self, Input};
use crate::actors::messages::{Delivery, ExecutionMsg};
use crate::actors::{Error, Shared};
use crate::id::ExecutionId;
use crate::journal::inbox::Answer;
use crate::journal::{Append, Json, TimerChange, WaitChange};

/// Handle what came from outside. Replies go out once the events are durable.
pub(super) async fn deliver(
    myself: &ActorRef<ExecutionMsg>,
    st: &mut State,
    delivery: Delivery,
) -> Result<(), ActorProcessingErr> {
    let id = st.id;
    // A due entry that is none of this execution's deadlines (a parent's
    // wake-up, or left by a crash) has done its job: remove it.
    if let Delivery::Tick { at_ms } = delivery
        && !st.deadlines.contains(&at_ms)
    {
        clear_timer(&st.services, id, at_ms).await?;
    }
    if st.machine.phase.is_terminal() {
        let status = status_of(&st.machine);
        delivery.refuse(|| Error::Finished { id, status });
        return Ok(());
    }
    match delivery {
        Delivery::Tick { .. } => drive(myself, st, Some(Input::Tick), Vec::new()).await?,
        Delivery::Signal { key, payload, inbox, reply } => {
            st.taking.extend(inbox.map(|row| WaitChange::Answered(row.get(), Answer::Done { node: None })));
            let input = Input::Signal { key, payload: Json::from_value(&payload) };
            let effects = persist(st, Some(input), Vec::new()).await?;
            let _ = reply.send(Ok(()));
            carry_out(myself, st, effects).await?;
        }
        Delivery::Event { key, payload, take, inbox, reply } => {
            if !crate::actors::wait::waits_for(&st.machine, &key) {
                let _ = reply.send(Ok(false));
                return Ok(());
            }
            st.taking.extend(take.map(WaitChange::Take));
            st.taking.extend(inbox.map(|row| WaitChange::Answered(row.get(), Answer::Done { node: None })));
            let effects = persist(st, Some(Input::Signal { key, payload }), Vec::new()).await?;
            let _ = reply.send(Ok(true));
            carry_out(myself, st, effects).await?;
        }
        Delivery::Approve { node, call, approved, by, comment, inbox, reply } => {
            let found = match &call {
                Some(call) => machine::pending_call(&st.machine, call).and_then(|(found, visit)| match &node {
                    Some(n) if *n != found => {
                        Err(format!("has no tool call `{call}` at node `{n}` (it is node `{found}`'s)"))
                    }
                    _ => Ok((found, visit)),
                }),
                None => machine::pending_approval(&st.machine, node.as_deref()),
            };
            let (found, visit) = match found {
                Ok(found) => found,
                Err(message) => {
                    let _ = reply.send(Err(Error::NotWaiting { id, message }));
                    return Ok(());
                }
            };
            st.taking
                .extend(inbox.map(|row| WaitChange::Answered(row.get(), Answer::Done { node: Some(found.clone()) })));
            let input = match call {
                Some(call) => Input::CallDecision { node: found.clone(), visit, call, approved, by, comment },
                None => Input::Decision { node: found.clone(), visit, approved, by, comment },
            };
            let effects = persist(st, Some(input), Vec::new()).await?;
            let _ = reply.send(Ok(found));
            carry_out(myself, st, effects).await?;
        }
        Delivery::Cancel { reason, inbox, reply } => {
            st.taking.extend(inbox.map(|row| WaitChange::Answered(row.get(), Answer::Done { node: None })));
            let effects = persist(st, Some(Input::Cancel { reason }), Vec::new()).await?;
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            carry_out(myself, st, effects).await?;
        }
    }
    Ok(())
}

/// Remove one entry of the timer index for `id` (nothing else changes).
pub(crate) async fn clear_timer(services: &Shared, id: ExecutionId, at_ms: u64) -> Result<(), crate::journal::Error> {
    let append = Append {
        execution: id,
        first_seq: 0,
        at_ms,
        events: &[],
        meta: None,
        workflow: None,
        timers: &[TimerChange::Clear(at_ms)],
        waits: &[],
        session: None,
    };
    services.journal.append(append).await
}

/// Why a rehydrated child should not go on: its parent has ended.
pub(super) fn orphaned(st: &State) -> Result<Option<String>, ActorProcessingErr> {
    let Some(parent) = &st.machine.parent else { return Ok(None) };
    Ok(match st.services.journal.meta(parent.id)? {
        None => Some(format!("its parent execution {} is not in the journal", parent.id)),
        Some(m) if m.status.is_terminal() => Some(format!("its parent execution {} is {}", parent.id, m.status)),
        Some(_) => None,
    })
}

/// Ask the supervisor to hibernate a parked execution with nothing running.
pub(super) fn maybe_hibernate(myself: &ActorRef<ExecutionMsg>, st: &mut State) {
    if st.hibernating || !st.machine.parked() || !st.nodes.is_empty() || st.parallel.is_some() {
        return;
    }
    st.hibernating = true;
    // The request goes first: whoever the park wakes and then asks the
    // supervisor anything is answered after the eviction.
    st.supervisor.hibernate(st.id, myself.get_id(), st.delivered, st.machine.parent.is_some());
}
