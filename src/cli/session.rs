//! A command that opens the data dir to change it (`run`, `signal`,
//! `approve`, `cancel`, `eval run`, `resume`) holds it as a [`Session`]:
//!
//! - **At open** it resumes what a crash (or a Ctrl-C) left behind: every
//!   execution that was running with no process to carry it, or whose
//!   deadline passed while none was up ([`Unattended::Interrupted`]), as
//!   `jamjet dev` does at start, and says so in one line on stderr. They
//!   go on concurrently with the command's own work.
//! - **At the end** ([`Session::finish`]) the command waits for those to
//!   settle (end, or park on an event or an approval; a timer is waited
//!   out), exactly as `jamjet resume` would, then stops the runtime: the
//!   journal is synced and the data dir released. So a command never
//!   leaves behind more than it found, and what it resumed is done or
//!   parked when it exits. A step is recorded once either way: a node cut
//!   short by the exit runs again as its next attempt at the next open.
//! - **Ctrl-C** (SIGINT) stops the command cleanly
//!   ([`Session::until_interrupted`]): its running nodes stop, every
//!   execution stays as the journal has it (not failed, not cancelled),
//!   one line says where and which command goes on, and the exit code is
//!   130. A second Ctrl-C exits at once (what was acknowledged is durable
//!   already).
//! - **Waits on the clock** (a timer, a retry delay) of the executions the
//!   command waits for are said once each on stderr, with their node and
//!   deadline ([`Runtime::delays`]), when they last a second or more.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::held::{self, Mode, Store};
use super::remote::Remote;
use super::report::{Invocation, root_of};
use super::{CliResult, Failure};
use crate::clock::format_ms;
use crate::id::ExecutionId;
use crate::nodes::stream::Token;
use crate::plural::noun;
use crate::runtime::{Delay, DelayKind, Runtime, Unattended, WaitKind};
use crate::server::socket::{Linger, Served};

/// The exit code of a command stopped by SIGINT (128 + 2), as shells use.
pub(crate) const INTERRUPTED: u8 = 130;

/// Waits on the clock shorter than this go unsaid.
const SAY_DELAYS_FROM: Duration = Duration::from_secs(1);

/// How long the resumed executions may take to settle at the end before
/// the command says it waits for them.
const QUIET_FINISH: Duration = Duration::from_secs(1);

/// At most this many execution ids in one line; the rest are counted.
const IDS_IN_A_LINE: usize = 5;

/// Where a command that changes the data dir works: the process holding
/// it (through its socket: that process resumes and carries on), or a
/// session of its own.
pub(crate) enum Opened {
    Held(Remote),
    Local(Session),
}

/// The data dir, opened by a command that changes it (see the module doc).
pub(crate) struct Session {
    pub rt: Runtime,
    pub inv: Invocation,
    /// The API on the data dir's socket, for other commands meanwhile.
    served: Option<Served>,
    /// The executions resumed at open (left behind by another process).
    carried: Vec<ExecutionId>,
    /// Their families, by first execution, less the command's own: what
    /// [`finish`](Self::finish) waits for.
    families: Vec<ExecutionId>,
    /// Executions left behind that could not be resumed, and why.
    skipped: Vec<(ExecutionId, String)>,
    /// Taken out while awaited; gone after the first Ctrl-C.
    sigint: Mutex<Option<Signal>>,
    announcer: Arc<Mutex<Announcer>>,
    delays: Option<JoinHandle<()>>,
    /// The streamed tokens of the executions resumed at open, subscribed
    /// before they resumed (see [`Self::early_tokens`]).
    early_tokens: Mutex<HashMap<ExecutionId, broadcast::Receiver<Token>>>,
}

/// Which waits on the clock were said, and for which families.
struct Announcer {
    /// Families whose delays are said; the first is the command's own.
    watched: Vec<ExecutionId>,
    /// Delays of families not watched (yet), with their family.
    pending: Vec<(ExecutionId, Delay)>,
    said: HashSet<(ExecutionId, String, u64)>,
    /// The command that goes on after a Ctrl-C.
    goes_on: String,
}

impl Session {
    /// Open the data dir and resume what was interrupted, saying so in
    /// one line (see the module doc).
    /// When another process holds it, that process's socket instead.
    pub(crate) async fn open(data_dir: &Path, command: &str) -> Result<Opened, Failure> {
        let s = match Session::start(data_dir, command, false, false).await? {
            Opened::Local(s) => s,
            held => return Ok(held),
        };
        if !s.carried.is_empty() {
            let n = s.carried.len();
            eprintln!(
                "resumed {n} interrupted {}: {} (jamjet inspect ID)",
                noun(n, "execution", "executions"),
                id_list(&s.carried)
            );
        }
        for (id, why) in &s.skipped {
            eprintln!("warning: execution {id} was left behind and cannot be resumed: {why}");
        }
        Ok(Opened::Local(s))
    }

    /// Open the data dir for `jamjet resume`: resume what was interrupted
    /// and what waits on the clock (a timer, a retry delay), and say
    /// nothing; [`families`](Self::families) and
    /// [`skipped`](Self::skipped) tell what.
    /// With `follow`, the streamed tokens of what it resumes are kept
    /// from before it resumes (see [`early_tokens`](Self::early_tokens)).
    pub(crate) async fn open_resuming_all(data_dir: &Path, follow: bool) -> Result<Opened, Failure> {
        Session::start(data_dir, "resume", true, follow).await
    }

    async fn start(data_dir: &Path, command: &str, on_the_clock_too: bool, follow: bool) -> Result<Opened, Failure> {
        // Listen first: a Ctrl-C while opening is seen at the first await on it.
        let sigint = signal(SignalKind::interrupt()).ok();
        // Timers start once everything to resume is listed, so a deadline
        // that passed while down cannot move an execution on unlisted.
        let (rt, served) = match held::open(data_dir, command, Mode::WithoutTimers).await? {
            Store::Held(remote) => return Ok(Opened::Held(remote)),
            Store::Local(local) => local.into_parts(),
        };
        let inv = Invocation::new(data_dir);
        // In a shared store, what other processes left behind is theirs, or
        // the workers' once their leases end: a command carries its own work.
        let shared = rt.shares_store();
        let mut early = HashMap::new();
        let listed = async {
            if shared {
                return Ok((Vec::new(), crate::runtime::Resumed::default()));
            }
            let left = rt.unattended_all().await?;
            // Their streamed tokens may come as soon as they resume.
            if follow {
                for (id, _) in &left {
                    early.insert(*id, rt.tokens(*id));
                }
            }
            let report = rt.resume_all_reporting().await?;
            Ok::<_, crate::runtime::Error>((left, report))
        };
        let (left, report) = match listed.await {
            Ok(r) => r,
            Err(e) => {
                if let Some(served) = served {
                    served.close(Linger::No).await;
                }
                rt.shutdown().await;
                return Err(e.into());
            }
        };
        let not_resumed: HashSet<ExecutionId> = report.skipped.iter().map(|(id, _)| *id).collect();
        let carried: Vec<ExecutionId> = left
            .into_iter()
            .filter(|(id, why)| !not_resumed.contains(id) && (on_the_clock_too || *why == Unattended::Interrupted))
            .map(|(id, _)| id)
            .collect();
        let mut families = Vec::new();
        for &id in &carried {
            let root = root_of(&rt, id).unwrap_or(id);
            if !families.contains(&root) {
                families.push(root);
            }
        }
        let announcer = Arc::new(Mutex::new(Announcer {
            watched: Vec::new(),
            pending: Vec::new(),
            said: HashSet::new(),
            goes_on: inv.command("resume"),
        }));
        let delays = tokio::spawn(say_delays(rt.clone(), rt.delays(), announcer.clone()));
        rt.start_timers();
        Ok(Opened::Local(Session {
            rt,
            inv,
            served,
            carried,
            families,
            skipped: report.skipped,
            sigint: Mutex::new(sigint),
            announcer,
            delays: Some(delays),
            early_tokens: Mutex::new(early),
        }))
    }

    /// The families resumed at open, by first execution (what `finish`
    /// waits for); for `resume`, everything it carries on.
    pub(crate) fn families(&self) -> &[ExecutionId] {
        &self.families
    }

    /// The streamed tokens of `id`, an execution resumed at open, from
    /// before it resumed (once; `None` after, or for another).
    pub(crate) fn early_tokens(&self, id: ExecutionId) -> Option<broadcast::Receiver<Token>> {
        self.early_tokens.lock().expect("early tokens lock").remove(&id)
    }

    /// Executions that could not be resumed, and why.
    pub(crate) fn skipped(&self) -> &[(ExecutionId, String)] {
        &self.skipped
    }

    /// `id` is the command's own work: say its waits on the clock (and its
    /// children's), and do not wait for it again at the end.
    pub(crate) fn own(&mut self, id: ExecutionId) {
        let root = root_of(&self.rt, id).unwrap_or(id);
        self.families.retain(|f| *f != root);
        self.watch(root);
    }

    /// Say the waits on the clock of `root`'s family from now on, and
    /// those it is in already.
    pub(crate) fn watch(&self, root: ExecutionId) {
        let now = self.rt.services().clock.now_ms();
        let current: Vec<Delay> = self
            .rt
            .waiting_in_family(root)
            .unwrap_or_default()
            .into_iter()
            .filter(|w| w.kind == WaitKind::Timer)
            .filter_map(|w| {
                let until_ms = w.deadline_ms?;
                Some(Delay { execution: w.id, node: w.node, kind: DelayKind::Timer, until_ms })
            })
            .collect();
        let mut a = self.announcer.lock().expect("announcer lock");
        if !a.watched.contains(&root) {
            a.watched.push(root);
        }
        let (mine, others) = std::mem::take(&mut a.pending).into_iter().partition(|(r, _)| *r == root);
        a.pending = others;
        let mine: Vec<Delay> = mine.into_iter().map(|(_, d)| d).chain(current).collect();
        for d in mine {
            a.say(root, &d, now);
        }
    }

    /// Run `work` unless Ctrl-C comes first (`None`): then the work is
    /// dropped, and a second Ctrl-C from now on exits at once.
    pub(crate) async fn until_interrupted<F: Future>(&self, work: F) -> Option<F::Output> {
        let taken = self.sigint.lock().expect("sigint lock").take();
        let Some(mut sigint) = taken else { return Some(work.await) };
        tokio::select! {
            // A Ctrl-C that came before (while opening, say) wins.
            biased;
            _ = sigint.recv() => {
                tokio::spawn(async move {
                    sigint.recv().await;
                    eprintln!("stopped at once");
                    std::process::exit(INTERRUPTED.into());
                });
                None
            }
            out = work => {
                *self.sigint.lock().expect("sigint lock") = Some(sigint);
                Some(out)
            }
        }
    }

    /// Where `ids` stand, for the line a Ctrl-C prints: `execution X at
    /// node `n``, one after the other.
    pub(crate) fn where_they_are(&self, ids: &[ExecutionId]) -> String {
        let each: Vec<String> = ids
            .iter()
            .map(|&id| {
                let nodes = self.rt.active_nodes(id).unwrap_or_default();
                let at = match nodes.len() {
                    0 => String::new(),
                    1 => format!(" at node `{}`", nodes[0]),
                    _ => format!(" at nodes {}", nodes.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
                };
                let timer = self
                    .rt
                    .waiting_on(id)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|w| w.kind == WaitKind::Timer)
                    .and_then(|w| w.deadline_ms)
                    .map(|d| format!(" (waiting for a timer until {})", format_ms(d)))
                    .unwrap_or_default();
                format!("execution {id}{at}{timer}")
            })
            .collect();
        each.join(", ")
    }

    /// After a Ctrl-C: say which executions stopped where and `goes_on`,
    /// the command that carries them on; stop the runtime; exit 130.
    pub(crate) async fn interrupted(self, ids: &[ExecutionId], goes_on: &str) -> CliResult {
        let mut all: Vec<ExecutionId> = ids.to_vec();
        all.extend(self.families.iter().filter(|f| !ids.contains(f)));
        let text = if all.is_empty() {
            format!(
                "interrupted: what ran is kept as the journal has it (not failed, not cancelled); to go on: {goes_on}"
            )
        } else {
            let kept = if all.len() == 1 { "it is kept as it was" } else { "they are kept as they were" };
            format!(
                "interrupted: {}; {kept} (not failed, not cancelled); to go on: {goes_on}",
                self.where_they_are(&all)
            )
        };
        eprintln!("{text}");
        self.close_now().await;
        Ok(ExitCode::from(INTERRUPTED))
    }

    /// The command's own work is done (`result`): wait for what was
    /// resumed at open to settle, say how it stands, and stop the runtime
    /// (see the module doc). A Ctrl-C meanwhile stops them, exit 130.
    pub(crate) async fn finish(mut self, result: CliResult) -> CliResult {
        let families = std::mem::take(&mut self.families);
        if families.is_empty() {
            self.close().await;
            return result;
        }
        for &root in &families {
            self.watch(root);
        }
        let settled = {
            let all = futures::future::join_all(families.iter().map(|&id| self.rt.settle(id)));
            tokio::pin!(all);
            match self.until_interrupted(tokio::time::timeout(QUIET_FINISH, &mut all)).await {
                None => None,
                Some(Ok(done)) => Some(done),
                Some(Err(_)) => {
                    let n = families.len();
                    eprintln!(
                        "carrying on {n} resumed {} until {}: {} (Ctrl-C stops; {} goes on)",
                        noun(n, "execution", "executions"),
                        if n == 1 { "it settles" } else { "they settle" },
                        id_list(&families),
                        self.inv.command("resume"),
                    );
                    self.until_interrupted(&mut all).await
                }
            }
        };
        let Some(settled) = settled else {
            self.families = families;
            let goes_on = self.inv.command("resume");
            return self.interrupted(&[], &goes_on).await;
        };
        let each: Vec<String> = families
            .iter()
            .zip(settled)
            .map(|(id, r)| match r {
                Ok(o) => format!("{id} {}", o.status),
                Err(e) => format!("{id} not settled ({e})"),
            })
            .collect();
        let shown = each.iter().take(IDS_IN_A_LINE).cloned().collect::<Vec<_>>().join(", ");
        let more = match each.len().saturating_sub(IDS_IN_A_LINE) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        eprintln!("resumed {} now: {shown}{more}", noun(each.len(), "execution", "executions"));
        self.close().await;
        result
    }

    /// Stop serving the socket once the commands connected through it
    /// are done, then stop the runtime: the journal synced, the data dir
    /// released.
    pub(crate) async fn close(self) {
        self.stop(Linger::WhilePeers).await
    }

    /// [`close`](Self::close) without waiting for the commands connected
    /// through the socket (after a Ctrl-C).
    async fn close_now(self) {
        self.stop(Linger::No).await
    }

    async fn stop(mut self, linger: Linger) {
        if let Some(task) = self.delays.take() {
            task.abort();
            let _ = task.await;
        }
        if let Some(served) = self.served.take() {
            served.close(linger).await;
        }
        self.rt.shutdown().await;
    }
}

/// Say each delay of a watched family once; keep the others until their
/// family is watched.
async fn say_delays(rt: Runtime, mut delays: tokio::sync::broadcast::Receiver<Delay>, a: Arc<Mutex<Announcer>>) {
    loop {
        let d = match delays.recv().await {
            Ok(d) => d,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let root = root_of(&rt, d.execution).unwrap_or(d.execution);
        let now = rt.services().clock.now_ms();
        let mut a = a.lock().expect("announcer lock");
        if a.watched.contains(&root) {
            a.say(root, &d, now);
        } else {
            a.pending.push((root, d));
        }
    }
}

impl Announcer {
    /// One line on stderr for `d` of `root`'s family, once, if it lasts.
    fn say(&mut self, root: ExecutionId, d: &Delay, now_ms: u64) {
        let left = d.until_ms.saturating_sub(now_ms);
        if left < SAY_DELAYS_FROM.as_millis() as u64 || !self.said.insert((d.execution, d.node.clone(), d.until_ms)) {
            return;
        }
        let whose = if d.execution != root {
            format!(" (in child execution {} of {root})", d.execution)
        } else if self.watched.first() != Some(&root) {
            format!(" of execution {root}")
        } else {
            String::new()
        };
        let what = match d.kind {
            DelayKind::Timer => "for a timer".to_string(),
            DelayKind::Retry { attempt } => format!("to retry it (attempt {attempt})"),
        };
        eprintln!(
            "waiting at node `{}`{whose} {what} until {} ({}); Ctrl-C stops, {} goes on",
            d.node,
            format_ms(d.until_ms),
            span(left),
            self.goes_on
        );
    }
}

/// A duration for people: `3 s`, `2 min 5 s`, `1 h 3 min` (rounded up to the second).
pub(crate) fn span(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ if s % 3600 / 60 == 0 => format!("{} h", s / 3600),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Up to [`IDS_IN_A_LINE`] ids, and how many more.
fn id_list(ids: &[ExecutionId]) -> String {
    let shown = ids.iter().take(IDS_IN_A_LINE).map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match ids.len().saturating_sub(IDS_IN_A_LINE) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(2_400), "3 s");
        assert_eq!(span(60_000), "1 min");
        assert_eq!(span(125_000), "2 min 5 s");
        assert_eq!(span(3_600_000), "1 h");
        assert_eq!(span(3_780_000), "1 h 3 min");
    }
}
