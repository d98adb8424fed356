//! How a local agent works towards its answer: its `strategy:`.
//!
//! Each strategy is a sequence of conversations of the agent
//! ([`Agent::turn`]), every model and tool call of which is journaled as it
//! completes, so the intermediate results (a plan, critiques, samples, a
//! debate's turns) are in the journal and in `jamjet inspect`, each under
//! its own kind, and a resumed visit reads them back instead of asking
//! again. Only the last reply of a top-level run waits for the node's
//! completion to be journaled. The prompts are the constants below; the
//! README quotes them.

use serde_json::{Value, json};

use super::local::{Agent, Turn, run_agent};
use crate::ir::Strategy;
use crate::journal::ErrorClass;
use crate::model::{ChatMessage, parse_output};
use crate::nodes::calls::Calls;
use crate::nodes::converse::Ended;
use crate::nodes::{NodeCtx, NodeError};

/// `reflection`: asked after the first answer.
pub const REFLECT: &str = "Reflect on your answer above: list its errors, gaps and unsupported claims, and how to fix \
                           each one. Do not rewrite the answer yet.";
/// `reflection`: asked after the reflection (`{reflection}`).
pub const REVISE_AFTER_REFLECTION: &str =
    "Here is a reflection on your answer:\n\n{reflection}\n\nWrite your final answer, with every point fixed.";
/// `critic`: the critique of a draft (`{task}`, `{answer}`).
pub const CRITIQUE: &str = "You are reviewing an answer to a task.\n\nTask:\n{task}\n\nAnswer:\n{answer}\n\nScore the \
                            answer from 1 (poor) to 5 (excellent). Reply with JSON only: {\"score\": <1-5>, \
                            \"reasons\": [\"<what is wrong or missing>\", ...]}";
/// `critic`: asked to revise a draft the critic scored too low.
pub const REVISE_AFTER_CRITIQUE: &str = "A critic scored your answer {score}/5, for these reasons:\n{reasons}\n\nRevise your answer to address every reason.";
/// `plan-and-execute`: the plan (`{task}`, `{max}`).
pub const PLAN: &str = "Task:\n{task}\n\nMake a plan to carry out the task. Reply with JSON only: an array of 1 to \
                        {max} steps, each a short instruction, in order: [\"<step>\", ...]";
/// `plan-and-execute`: one step (`{task}`, `{plan}`, `{done}`, `{n}`, `{step}`).
pub const STEP: &str = "Task:\n{task}\n\nPlan:\n{plan}\n\nResults of the steps so far:\n{done}\n\nNow carry out step {n}: \
                        {step}\nReply with the step's result.";
/// `plan-and-execute`: the final answer (`{task}`, `{done}`).
pub const SYNTHESIZE: &str =
    "Task:\n{task}\n\nResults of the plan's steps:\n{done}\n\nWrite the final answer to the task from these results.";
/// `consensus`: the judge (`{task}`, `{answers}`).
pub const JUDGE_CONSENSUS: &str = "Task:\n{task}\n\nIndependent answers:\n{answers}\n\nPick the best answer, or merge \
                                   them into a better one. Reply with the final answer only.";
/// `debate`: one debater's turn (`{topic}`, `{transcript}`, `{round}`).
pub const DEBATE_TURN: &str = "Debate topic:\n{topic}\n\nThe debate so far:\n{transcript}\n\nGive your argument for \
                               round {round}, answering the other side's points.";
/// `debate`: the judge (`{topic}`, `{transcript}`).
pub const JUDGE_DEBATE: &str = "Debate topic:\n{topic}\n\nThe debate:\n{transcript}\n\nDecide the question: reply with \
                                the final answer and the reasons for it.";

/// Run `agent` on `message` by its strategy; how its last conversation ended.
pub(super) async fn run<'a>(
    ctx: &NodeCtx<'a>,
    calls: &mut Calls<'a>,
    agent: &Agent<'_>,
    message: String,
    journal_final: bool,
) -> Result<Ended, NodeError> {
    let def = agent.def;
    match def.strategy {
        Strategy::React => agent.turn(ctx, calls, turn("model", vec![user(message)], true, journal_final)).await,
        Strategy::Reflection => {
            let first = agent.turn(ctx, calls, turn("model", vec![user(message.clone())], true, true)).await?;
            let answer = first.reply.text;
            let asked = vec![user(message.clone()), assistant(answer.clone()), user(REFLECT.into())];
            let reflection = agent.turn(ctx, calls, turn("reflect", asked, false, true)).await?.reply.text;
            let revise = REVISE_AFTER_REFLECTION.replace("{reflection}", &reflection);
            let asked = vec![user(message), assistant(answer), user(revise)];
            agent.turn(ctx, calls, turn("model", asked, true, journal_final)).await
        }
        Strategy::Critic => {
            let min = u64::from(def.min_score.unwrap_or(4));
            let mut draft = agent.turn(ctx, calls, turn("model", vec![user(message.clone())], true, true)).await?;
            for round in 1..=def.max_iterations {
                let asked = CRITIQUE.replace("{task}", &message).replace("{answer}", &draft.reply.text);
                let critique = json_turn(ctx, calls, agent, "critique", asked, &critique_schema()).await?;
                let score = critique["score"].as_u64().unwrap_or(0);
                if score >= min || round == def.max_iterations {
                    break;
                }
                let reasons: Vec<String> = critique["reasons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("- {}", r.as_str().unwrap_or_default()))
                    .collect();
                let revise = REVISE_AFTER_CRITIQUE
                    .replace("{score}", &score.to_string())
                    .replace("{reasons}", &reasons.join("\n"));
                let asked = vec![user(message.clone()), assistant(draft.reply.text.clone()), user(revise)];
                draft = agent.turn(ctx, calls, turn("model", asked, true, true)).await?;
            }
            Ok(draft)
        }
        Strategy::PlanAndExecute => {
            let max = def.max_iterations.max(1);
            let asked = PLAN.replace("{task}", &message).replace("{max}", &max.to_string());
            let schema = json!({"type": "array", "minItems": 1, "maxItems": max, "items": {"type": "string"}});
            let plan = json_turn(ctx, calls, agent, "plan", asked, &schema).await?;
            let steps: Vec<String> =
                plan.as_array().into_iter().flatten().map(|s| s.as_str().unwrap_or_default().to_string()).collect();
            let listed = numbered(&steps);
            let mut done: Vec<String> = Vec::with_capacity(steps.len());
            for (i, step) in steps.iter().enumerate() {
                let so_far = if done.is_empty() { "(none yet)".to_string() } else { numbered(&done) };
                let asked = STEP
                    .replace("{task}", &message)
                    .replace("{plan}", &listed)
                    .replace("{done}", &so_far)
                    .replace("{n}", &(i + 1).to_string())
                    .replace("{step}", step);
                done.push(agent.turn(ctx, calls, turn("model", vec![user(asked)], true, true)).await?.reply.text);
            }
            let asked = SYNTHESIZE.replace("{task}", &message).replace("{done}", &numbered(&done));
            agent.turn(ctx, calls, turn("synthesize", vec![user(asked)], false, journal_final)).await
        }
        Strategy::Consensus => {
            let samples = def.samples.unwrap_or(3);
            let model_of = |i: usize| (!def.models.is_empty()).then(|| &def.models[i % def.models.len()].1);
            let sample =
                |i: usize| Turn { model: model_of(i), ..turn("sample", vec![user(message.clone())], true, true) };
            let mut answers = Vec::with_capacity(samples as usize);
            if side_by_side(calls, agent, samples) {
                // Each sample in a lane of its own, all at once.
                let mut lanes = calls.lanes(samples);
                let runs = lanes.iter_mut().enumerate().map(|(i, lane)| agent.turn(ctx, lane, sample(i)));
                let ended = futures::future::join_all(runs).await;
                calls.end_lanes(&lanes);
                for e in ended {
                    answers.push(e?.reply.text);
                }
            } else {
                for i in 0..samples as usize {
                    answers.push(agent.turn(ctx, calls, sample(i)).await?.reply.text);
                }
            }
            let asked = JUDGE_CONSENSUS.replace("{task}", &message).replace("{answers}", &numbered(&answers));
            let judge = Turn {
                model: def.judge.as_ref().map(|(_, c)| c),
                ..turn("judge", vec![user(asked)], false, journal_final)
            };
            agent.turn(ctx, calls, judge).await
        }
        Strategy::Debate => {
            let mut transcript = String::new();
            for round in 1..=def.rounds.unwrap_or(2) {
                for debater in &def.debaters {
                    let so_far = if transcript.is_empty() { "(nothing yet)" } else { transcript.as_str() };
                    let asked = DEBATE_TURN
                        .replace("{topic}", &message)
                        .replace("{transcript}", so_far)
                        .replace("{round}", &round.to_string());
                    let said = match run_agent(ctx, calls, debater, asked).await? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    transcript.push_str(&format!("{debater} (round {round}): {said}\n\n"));
                }
            }
            let asked = JUDGE_DEBATE.replace("{topic}", &message).replace("{transcript}", transcript.trim_end());
            let judge = Turn {
                model: def.judge.as_ref().map(|(_, c)| c),
                ..turn("judge", vec![user(asked)], false, journal_final)
            };
            agent.turn(ctx, calls, judge).await
        }
    }
}

/// Whether a consensus takes its samples side by side, each in a lane of
/// the visit's calls: when there are several, no tool call of the agent
/// waits for a person's decision (whose ids follow the order the calls
/// are reached in, which lanes side by side do not keep), and it is not
/// itself in a lane (an agent a sample called as a tool: lanes do not nest).
fn side_by_side(calls: &Calls<'_>, agent: &Agent<'_>, samples: u32) -> bool {
    samples > 1 && !agent.needs_approval() && !calls.in_lane()
}

/// What a `critic`'s critique must be.
fn critique_schema() -> Value {
    json!({
        "type": "object",
        "required": ["score", "reasons"],
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reasons": {"type": "array", "items": {"type": "string"}}
        }
    })
}

/// How often a strategy's JSON reply (a plan, a critique) is asked for
/// again when it does not match its schema.
const JSON_REPAIRS: usize = 2;

/// One reply without tools that must be JSON matching `schema`,
/// journaled as `kind`. A reply that does not match is answered with what
/// is wrong and asked for again (journaled too, so a resumed visit reads
/// the same exchange back), up to [`JSON_REPAIRS`] times; then the run
/// fails as `invalid_output`.
async fn json_turn<'a>(
    ctx: &NodeCtx<'a>,
    calls: &mut Calls<'a>,
    agent: &Agent<'_>,
    kind: &str,
    asked: String,
    schema: &Value,
) -> Result<Value, NodeError> {
    let validator = ctx.services.compiled.schema(schema).map_err(|e| NodeError::new(ErrorClass::Internal, e))?;
    let mut messages = vec![user(asked)];
    let mut tries = 0;
    loop {
        let ended = agent.turn(ctx, calls, turn(kind, messages.clone(), false, true)).await?;
        match parse_output(&ended.reply.text, &validator) {
            Ok(value) => return Ok(value),
            Err(e) if tries < JSON_REPAIRS => {
                tries += 1;
                messages.push(assistant(ended.reply.text));
                messages.push(user(format!("That reply is not valid: {e}. Reply with JSON only, as asked.")));
            }
            Err(e) => {
                let message = format!(
                    "agent `{}`: the {kind} reply {} (asked {} times)",
                    agent.name,
                    e.trim_start_matches("the reply "),
                    tries + 1
                );
                return Err(NodeError::new(ErrorClass::InvalidOutput, message));
            }
        }
    }
}

fn turn(kind: &str, messages: Vec<ChatMessage>, tools: bool, journal_final: bool) -> Turn<'_> {
    Turn { kind, model: None, messages, tools, journal_final }
}

fn user(text: String) -> ChatMessage {
    ChatMessage::user(text)
}

fn assistant(text: String) -> ChatMessage {
    ChatMessage { role: "assistant".into(), content: text }
}

/// `1. a\n2. b`.
fn numbered(items: &[String]) -> String {
    items.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect::<Vec<_>>().join("\n")
}
