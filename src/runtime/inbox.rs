//! Inboxes, in a store many processes share (the model: `journal/inbox.rs`).
//!
//! Sending: a signal, a decision or a cancel for an execution that another
//! live process runs goes to the execution's inbox, and the sender waits
//! for the owner's answer (woken by the store's notices, and looking by
//! itself every [`LOOK`]); so [`Runtime::signal`] and the others answer
//! as they do for an execution run here. Should the owner not take it
//! within [`ANSWER_WITHIN`] (or [`Builder::answer_within`](super::Builder::answer_within)), it is withdrawn and the caller told: nothing
//! is delivered later. Should the execution lose its owner meanwhile (it
//! parked and handed its lease back, or its owner died), the sender
//! withdraws the message and delivers it here, claiming the execution.
//!
//! Taking: one task per runtime reads the open messages of the executions
//! this process owns, oldest first, when a notice says one was sent, after
//! each claim, and every [`LOOK_EVERY`] (a lost notice is caught by that);
//! it hands each execution's messages to it one by one, in order. The
//! append that journals a message answers it in the same transaction, so
//! a message is journaled once; a refusal (the execution has finished)
//! journals nothing and is written alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Error, Inner, Runtime};
use crate::id::ExecutionId;
use crate::journal::inbox::{Answer, InboxNotice, Letter, Message, Refusal};

/// How long a sender waits for the owner to take its message.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// How often a sender looks for its answer by itself (a lost notice delays it this long at most).
const LOOK: Duration = Duration::from_millis(250);

/// How many times a message follows an execution whose owner let it go
/// while it waited in the inbox, before the sender is told.
const MAX_HOPS: u32 = 3;

/// How often the taker looks for messages by itself.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// At most this many messages read per look.
const LETTERS: usize = 256;

/// A message that fails this many times for a reason other than a refusal
/// (the execution keeps failing to start) is refused with that reason.
const ATTEMPTS: u32 = 3;

impl Runtime {
    /// Send `message` to `id`'s inbox (`owner` runs it) and wait for the
    /// answer: the node an approval decided.
    async fn via_inbox(
        &self,
        id: ExecutionId,
        owner: String,
        message: Message,
        hops: u32,
    ) -> Result<Option<String>, Error> {
        let Some(leases) = self.services().journal.leases() else {
            return Err(Error::Elsewhere { id, owner });
        };
        // Listen before sending, so no answer's notice is missed.
        let mut appends = leases.notices();
        let mut answers = leases.inbox_notices();
        let row = leases.send(id, &message).await?;
        tracing::debug!(execution_id = %id, row, owner = %owner, what = %message.describe(), "sent to the inbox");
        let within = self.inner.answer_within;
        let deadline = Instant::now() + within;
        let mut owner_checked = Instant::now();
        loop {
            if let Some(answer) = leases.collect(row).await? {
                return answered(id, answer);
            }
            let now = Instant::now();
            // Nobody runs it any more (it parked, or its owner died):
            // take the message back and deliver it here.
            let orphaned = now.duration_since(owner_checked) >= LOOK_EVERY && {
                owner_checked = now;
                leases.owner(id)?.is_none()
            };
            if now >= deadline || orphaned {
                if leases.withdraw(row).await? {
                    if orphaned {
                        tracing::debug!(execution_id = %id, row, "its owner let it go: delivering here");
                        return Box::pin(self.deliver(id, message, hops + 1)).await;
                    }
                    return Err(Error::NotTaken { id, owner, what: message.describe(), secs: within.as_secs() });
                }
                // Answered as it was withdrawn: read the answer.
                continue;
            }
            let wait = LOOK.min(deadline - now);
            tokio::select! {
                _ = heard_append(&mut appends, id) => {}
                _ = heard_answer(&mut answers, row) => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Deliver `message` to `id` through this process's supervisor (which
    /// claims it in a shared store), or, when another live process runs
    /// it, through its inbox.
    pub(super) async fn deliver_here(&self, id: ExecutionId, message: Message) -> Result<Option<String>, Error> {
        self.deliver(id, message, 0).await
    }

    /// [`deliver_here`](Self::deliver_here), the `hops`-th time for this
    /// message (its owner let it go while it waited in the inbox).
    async fn deliver(&self, id: ExecutionId, message: Message, hops: u32) -> Result<Option<String>, Error> {
        let supervisor = &self.inner.supervisor;
        let result = match &message {
            Message::Signal { key, payload } => supervisor.signal(id, key, payload).await.map(|()| None),
            Message::Approve { node, call, approved, by, comment } => supervisor
                .approve(id, node.as_deref(), call.as_deref(), *approved, by, comment.as_deref())
                .await
                .map(Some),
            Message::Cancel { reason } => supervisor.cancel(id, reason).await.map(|()| None),
            Message::Event { key, payload } => {
                let payload = crate::journal::Json::from_value(payload);
                supervisor
                    .event(id, key, &payload, None)
                    .await
                    .and_then(|taken| crate::actors::event_taken(id, key, taken))
            }
        };
        match result {
            // Ownership that moves on every look is not chased for ever.
            Err(Error::Elsewhere { id, owner }) if hops < MAX_HOPS => {
                Box::pin(self.via_inbox(id, owner, message, hops)).await
            }
            other => other,
        }
    }
}

/// The caller's result for an answer.
fn answered(id: ExecutionId, answer: Answer) -> Result<Option<String>, Error> {
    match answer {
        Answer::Done { node } => Ok(node),
        Answer::Refused(Refusal::Unknown) => Err(Error::UnknownExecution(id)),
        Answer::Refused(Refusal::Finished { status }) => Err(Error::Finished { id, status }),
        Answer::Refused(Refusal::NotWaiting { message }) => Err(Error::NotWaiting { id, message }),
        Answer::Refused(Refusal::Other { message }) => Err(Error::Actor(format!("execution {id}: {message}"))),
    }
}

/// Resolves at a notice of an append to `id` (or when notices were lost).
async fn heard_append(notices: &mut tokio::sync::broadcast::Receiver<(ExecutionId, u64)>, id: ExecutionId) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notices.recv().await {
            Ok((of, _)) if of == id => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Resolves at a notice that `row` was answered (or when notices were lost).
async fn heard_answer(notices: &mut tokio::sync::broadcast::Receiver<InboxNotice>, row: u64) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notices.recv().await {
            Ok(InboxNotice::Answered(r)) if r == row => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// What the taker shares with the tasks delivering each execution's messages.
#[derive(Default)]
pub(super) struct Taking {
    /// Executions whose messages are being delivered now (their later
    /// messages wait for the next look, so each execution's go in order).
    busy: Mutex<HashSet<ExecutionId>>,
    /// Failures of each message that were not refusals.
    failures: Mutex<HashMap<u64, u32>>,
    /// Look now (a claim took executions; a delivery task finished).
    pub(super) wake: Notify,
}

/// The taker: until the runtime goes.
pub(super) async fn take(inner: Weak<Inner>, taking: Arc<Taking>) {
    let mut sent = match inner.upgrade().and_then(|i| i.services.journal.leases().map(|l| l.inbox_notices())) {
        Some(notices) => notices,
        None => return,
    };
    loop {
        {
            let Some(strong) = inner.upgrade() else { return };
            let rt = Runtime { inner: strong };
            if !rt.inner.supervisor.is_running() {
                return;
            }
            if let Err(e) = look(&rt, &taking).await {
                tracing::warn!(error = %e, "cannot read this process's inboxes; looking again");
            }
        }
        let wake = taking.wake.notified();
        tokio::select! {
            _ = heard_sent(&mut sent) => {}
            _ = wake => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
    }
}

/// Resolves at a notice that a message was sent to any inbox (the owner's
/// look reads only its own).
async fn heard_sent(notices: &mut tokio::sync::broadcast::Receiver<InboxNotice>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notices.recv().await {
            Ok(InboxNotice::Sent(_)) | Err(RecvError::Lagged(_)) => return,
            Ok(InboxNotice::Answered(_)) => {}
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Read the open messages of what this process owns and start delivering
/// each execution's (one task per execution not busy already).
async fn look(rt: &Runtime, taking: &Arc<Taking>) -> Result<(), Error> {
    let Some(leases) = rt.services().journal.leases() else { return Ok(()) };
    let letters = leases.letters(LETTERS).await?;
    let mut by_execution: BTreeMap<ExecutionId, Vec<Letter>> = BTreeMap::new();
    for letter in letters {
        by_execution.entry(letter.execution).or_default().push(letter);
    }
    for (id, letters) in by_execution {
        if !taking.busy.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            continue;
        }
        let (rt, taking) = (rt.clone(), taking.clone());
        tokio::spawn(async move {
            for letter in letters {
                if !deliver(&rt, &taking, &letter).await {
                    break;
                }
            }
            taking.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            taking.wake.notify_one();
        });
    }
    Ok(())
}

/// Deliver one message; false when the execution's later messages must
/// wait (this one was not answered).
async fn deliver(rt: &Runtime, taking: &Taking, letter: &Letter) -> bool {
    let Some(leases) = rt.services().journal.leases() else { return false };
    let (id, row) = (letter.execution, letter.row);
    let refusal = match rt.inner.supervisor.letter(letter).await {
        // Journaled, with its answer.
        Ok(_) => {
            tracing::debug!(execution_id = %id, row, sender = %letter.sender, "took an inbox message");
            taking.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&row);
            return true;
        }
        Err(Error::UnknownExecution(_)) => Refusal::Unknown,
        Err(Error::Finished { status, .. }) => Refusal::Finished { status },
        Err(Error::NotWaiting { message, .. }) => Refusal::NotWaiting { message },
        // No longer this process's: its new owner takes it.
        Err(Error::Elsewhere { .. }) => return false,
        Err(Error::InvalidEvent(why)) => Refusal::Other { message: why },
        Err(e) => {
            let mut failures = taking.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(row).or_default();
            *n += 1;
            if *n < ATTEMPTS {
                tracing::debug!(execution_id = %id, row, error = %e, "an inbox message was not taken; trying again");
                return false;
            }
            failures.remove(&row);
            Refusal::Other { message: e.to_string() }
        }
    };
    match leases.refuse(row, &refusal).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(execution_id = %id, row, error = %e, "cannot answer an inbox message; trying again");
            false
        }
    }
}
