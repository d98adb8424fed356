//! Property tests over the pure state machine: drive random histories
//! through the real [`step`] (node results, failures retried by the node's
//! policy, give-ups, crashes followed by a replay and `Input::Resume`) and
//! check that replaying the journal rebuilds exactly the live state, that
//! no node visit completes twice, and that an execution with no give-up
//! completes with every node done.

use jamjet::actors::machine::{Effect, ExecutionState, Input, NodeResult, Phase, Step, resume, step};
use jamjet::journal::{ErrorClass, Event, Json, Record};
use jamjet::nodes::{NodeError, NodeOutput};
use jamjet::{ExecutionId, Workflow, compile_str};
use proptest::prelude::*;

/// `n` function nodes in a chain, each retried on a timeout (jittered)
/// up to 1000 attempts: a `Retry` fate never exhausts it.
fn chain(n: usize) -> Workflow {
    let mut yaml = String::from("id: p\nstate_schema: { v: int }\nnodes:\n");
    for k in 0..n {
        yaml.push_str(&format!("  n{k}:\n    type: function\n    function: f\n"));
        yaml.push_str(
            "    retry: { max_attempts: 1000, backoff: exponential, delay_ms: 5, max_delay_ms: 50, jitter: true }\n",
        );
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

/// A tiny shell: step inputs through the machine, keep the records it
/// makes as the journal would, hand back the effects.
struct Shell<'a> {
    wf: &'a Workflow,
    st: ExecutionState,
    history: Vec<Record>,
    now: u64,
}

impl Shell<'_> {
    fn drive(&mut self, input: Input) -> Vec<Effect> {
        self.now += 1;
        let first = self.st.last_seq + 1;
        let made = step(self.wf, &mut self.st, input, self.now);
        for (i, event) in made.events.into_iter().enumerate() {
            self.history.push(Record { seq: first + i as u64, at_ms: self.now, event });
        }
        made.effects
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
        let mut effects = shell.drive(Input::Start(started));
        let mut fates = fates.into_iter();
        let mut gave_up = false;
        while let Some(effect) = effects.pop() {
            let (node, visit, attempt) = match effect {
                Effect::Run { node, visit, attempt } => (node, visit, attempt),
                // The retry's deadline comes: the tick starts it.
                Effect::RetryAt { at_ms, .. } => {
                    shell.now = shell.now.max(at_ms - 1);
                    effects.extend(shell.drive(Input::Tick));
                    continue;
                }
                Effect::Finished => continue,
                other => panic!("unexpected effect {other:?}"),
            };
            let fate = fates.next().unwrap_or(Fate::Complete(1));
            let result = match fate {
                Fate::Complete(v) => {
                    let patch = serde_json::Map::from_iter([("v".to_string(), serde_json::json!(v))]);
                    Ok(NodeOutput { patch, ..Default::default() })
                }
                Fate::Retry => Err(NodeError::new(ErrorClass::Timeout, "slow")),
                Fate::GiveUp => {
                    gave_up = true;
                    Err(NodeError::new(ErrorClass::ClientError, "no"))
                }
                Fate::Crash => {
                    // Rehydrate from the journal alone and go on as resume says.
                    let rebuilt = ExecutionState::replay(id, &wf, &shell.history);
                    prop_assert_eq!(&rebuilt, &shell.st);
                    let mut fresh = rebuilt;
                    let before = fresh.last_seq;
                    let cmds = resume(&fresh);
                    effects = shell.drive(Input::Resume);
                    // The live state went on exactly as the rebuilt one does.
                    let again = step(&wf, &mut fresh, Input::Resume, shell.now);
                    prop_assert_eq!(fresh.last_seq, before + again.events.len() as u64);
                    prop_assert_eq!(&again.effects, &effects, "resume said {:?}", cmds);
                    continue;
                }
            };
            let input = Input::Node { node, visit, attempt, result: NodeResult::Ran(result), duration_us: 1 };
            effects.extend(shell.drive(input));
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
        let mut ended = shell.st.clone();
        prop_assert_eq!(step(&wf, &mut ended, Input::Resume, shell.now), Step::default());
        prop_assert_eq!(&ended, &shell.st, "an ended execution takes no input");
    }
}
