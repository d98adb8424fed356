//! Property tests over the pure state machine: drive random histories the
//! way the actor shell does (node results, failures with retries, give-ups,
//! crashes followed by `resume`) and check that replaying the journal
//! rebuilds exactly the live state, that no node visit completes twice,
//! and that an execution with no give-up completes with every node done.

use jamjet::actors::machine::{Command, ExecutionState, Phase, apply, resume};
use jamjet::journal::{ErrorClass, Event, Json, Record, RetryDecision, Usage};
use jamjet::{ExecutionId, Workflow, compile_str};
use proptest::prelude::*;

fn chain(n: usize) -> Workflow {
    let mut yaml = String::from("id: p\nstate_schema: { v: int }\nnodes:\n");
    for k in 0..n {
        yaml.push_str(&format!("  n{k}:\n    type: function\n    function: f\n"));
        if k + 1 < n {
            yaml.push_str(&format!("    next: n{}\n", k + 1));
        }
    }
    compile_str(&yaml, "p.yaml").unwrap()
}

/// What happens to one attempt of a node.
#[derive(Debug, Clone)]
enum Fate {
    Complete(i64),
    Retry,
    GiveUp,
    /// The process dies before the result is journaled.
    Crash,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        6 => any::<i64>().prop_map(Fate::Complete),
        2 => Just(Fate::Retry),
        1 => Just(Fate::Crash),
        1 => Just(Fate::GiveUp),
    ]
}

/// A tiny shell: turn commands into events like the ExecutionActor does.
struct Shell<'a> {
    wf: &'a Workflow,
    st: ExecutionState,
    history: Vec<Record>,
    now: u64,
}

impl Shell<'_> {
    /// Apply `first`, then every event the machine asks for; return the Run
    /// and RetryAt effects.
    fn drive(&mut self, first: Vec<Event>, commands: Vec<Command>) -> Vec<Command> {
        let mut queue: std::collections::VecDeque<Event> = first.into();
        let mut effects = Vec::new();
        let mut handle = |c: Command, q: &mut std::collections::VecDeque<Event>, st: &ExecutionState| match c {
            Command::Schedule { node, visit } => q.push_back(Event::NodeScheduled { node, visit }),
            Command::Start { node, visit, attempt } => q.push_back(Event::NodeStarted { node, visit, attempt }),
            Command::Complete => q.push_back(Event::ExecutionCompleted { state: Json::from_map(&st.state) }),
            Command::Fail { node, error } => q.push_back(Event::ExecutionFailed { node, error }),
            Command::Finished => {}
            effect => effects.push(effect),
        };
        for c in commands {
            handle(c, &mut queue, &self.st);
        }
        while let Some(event) = queue.pop_front() {
            self.now += 1;
            let rec = Record { seq: self.st.last_seq + 1, at_ms: self.now, event };
            for c in apply(self.wf, &mut self.st, &rec) {
                handle(c, &mut queue, &self.st);
            }
            self.history.push(rec);
        }
        effects
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replay_rebuilds_the_live_state_and_no_visit_completes_twice(
        n in 1usize..8,
        fates in proptest::collection::vec(fate(), 1..60),
    ) {
        let wf = chain(n);
        let id = ExecutionId::new(0);
        let mut shell = Shell { wf: &wf, st: ExecutionState::new(id), history: Vec::new(), now: 0 };
        let started = Event::ExecutionStarted {
            workflow_id: "p".into(),
            workflow_version: "0.1.0".into(),
            workflow_hash: "h".into(),
            input: Json("{\"v\":0}".into()),
            key: None,
        };
        let mut effects = shell.drive(vec![started], Vec::new());
        let mut fates = fates.into_iter();
        let mut gave_up = false;
        while let Some(effect) = effects.pop() {
            let (node, visit, attempt) = match effect {
                Command::Run { node, visit, attempt } => (node, visit, attempt),
                Command::RetryAt { node, visit, attempt, .. } => {
                    effects.extend(shell.drive(vec![Event::NodeStarted { node, visit, attempt }], Vec::new()));
                    continue;
                }
                other => panic!("unexpected effect {other:?}"),
            };
            let fate = fates.next().unwrap_or(Fate::Complete(1));
            let event = match fate {
                Fate::Complete(v) => Event::NodeCompleted {
                    next: wf.node(&node).unwrap().next.clone(),
                    patch: Json(format!("{{\"v\":{v}}}")),
                    node, visit, attempt, duration_us: 1, usage: Usage::default(),
                },
                Fate::Retry => Event::NodeFailed {
                    node, visit, attempt, class: ErrorClass::Timeout, message: "slow".into(),
                    retry: RetryDecision::Retry { attempt: attempt + 1, at_ms: shell.now + 5 },
                },
                Fate::GiveUp => {
                    gave_up = true;
                    Event::NodeFailed {
                        node, visit, attempt, class: ErrorClass::ClientError, message: "no".into(),
                        retry: RetryDecision::GiveUp,
                    }
                }
                Fate::Crash => {
                    // Rehydrate from the journal alone and go on as resume says.
                    let rebuilt = ExecutionState::replay(id, &wf, &shell.history);
                    prop_assert_eq!(&rebuilt, &shell.st);
                    let cmds = resume(&shell.st);
                    effects = shell.drive(Vec::new(), cmds);
                    continue;
                }
            };
            effects.extend(shell.drive(vec![event], Vec::new()));
        }

        // Replaying the whole journal rebuilds exactly the live state.
        let replayed = ExecutionState::replay(id, &wf, &shell.history);
        prop_assert_eq!(&replayed, &shell.st);
        // Sequence numbers are dense from 1.
        for (i, r) in shell.history.iter().enumerate() {
            prop_assert_eq!(r.seq, i as u64 + 1);
        }
        // No node visit completes twice.
        let mut done = std::collections::BTreeSet::new();
        for r in &shell.history {
            if let Event::NodeCompleted { node, visit, .. } = &r.event {
                prop_assert!(done.insert((node.clone(), *visit)), "{} visit {} completed twice", node, visit);
            }
        }
        // Attempts of a visit strictly increase, crashes included: a node
        // interrupted by a crash runs again as the next attempt.
        let mut last_attempt = std::collections::BTreeMap::new();
        for r in &shell.history {
            if let Event::NodeStarted { node, visit, attempt } = &r.event {
                let prev = last_attempt.insert((node.clone(), *visit), *attempt).unwrap_or(0);
                prop_assert_eq!(*attempt, prev + 1, "{} visit {}", node, visit);
            }
        }
        if gave_up {
            prop_assert_eq!(shell.st.phase, Phase::Failed);
        } else {
            prop_assert_eq!(shell.st.phase, Phase::Completed);
            prop_assert_eq!(done.len(), n);
        }
        prop_assert!(resume(&shell.st).is_empty(), "a finished execution has nothing to resume");
    }
}
