//! A model conversation with tools, durable at every call: what a model
//! node with `tools:` and a local agent's `react` loop both run.
//!
//! Each round sends the conversation to the model; a reply that asks for
//! tools is journaled ([`Calls`]), each tool is called and its result
//! journaled, the results are appended, and the next round goes on, until
//! the model answers without tools (the final reply, which the node
//! journals with its completion) or the rounds allowed are spent. A
//! retried or resumed visit reads its journaled calls back in order and
//! makes only the calls after them.
//!
//! Budgets are checked after every model call, a read-back one included,
//! against what was spent up to that call, so a resumed visit stops at the
//! same call an uninterrupted one did: crossing one is `budget_exceeded`,
//! which is never retried. A tool call the model makes up, or one the
//! workflow's policy blocks, is refused before anything runs and the model
//! is told so; an error result goes back to the model as text it can act
//! on; a failed call (connection, timeout) fails the attempt. A remote
//! A2A agent as a tool is one such call ([`super::agent::remote_tool`]).
//!
//! Tool calls that need a person's decision ([`Toolset::approval`]) are
//! asked for before any call of their turn runs ([`super::approvals`]): a
//! turn with one still undecided ends the attempt (the conversation stops
//! with [`Calls::parking`] and the node parks); a refused call is not made,
//! and the model is told a human refused it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::approvals::{CallDecision, prompt, refusal};
use super::calls::{Asked, CallRecord, Calls, Next};
use super::{FunctionCall, NodeCtx, NodeError};
use crate::ir::ModelConfig;
use crate::journal::{ErrorClass, Usage};
use crate::model::{ChatReply, ToolCall, ToolSpec, journaled_reply, push_tool_round, send};

/// How one conversation runs.
pub struct Conversation<'a> {
    pub config: &'a ModelConfig,
    /// The kind its model calls are journaled as: `model`, or a
    /// strategy's step (`plan`, `critique`, `judge`, ...).
    pub kind: &'a str,
    /// The name its model calls are journaled under: the model as
    /// written (a model node), or the agent's name.
    pub name: &'a str,
    pub timeout: Duration,
    /// Model replies that may ask for tools; one more that does fails.
    pub max_tool_rounds: u32,
    /// What that limit is called in the error (`` `max_tool_rounds` ``).
    pub rounds_field: String,
    /// What the conversation may spend.
    pub budgets: Vec<Budget>,
    /// Journal the final reply as a call too: an agent called as a tool,
    /// whose answer the calling conversation goes on from. (A node's own
    /// final reply is journaled with its completion.)
    pub journal_final: bool,
    /// Stream the model's replies to the execution's followers.
    pub stream: bool,
}

/// A spending limit, and what it had spent before the conversation.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Whose it is, for the error (`agent \`researcher\``, `the workflow`).
    pub owner: String,
    pub max_cost_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    /// Spent before this conversation's first call.
    pub before: Usage,
}

/// The tools offered in a conversation, and how each is carried out.
#[derive(Default)]
pub struct Toolset {
    pub offered: Vec<ToolSpec>,
    pub how: HashMap<String, How>,
    /// The tools (as the model names them) whose calls wait for a
    /// person's decision first.
    pub approval: HashSet<String>,
}

/// How a tool the model may call is carried out.
#[derive(Debug, Clone)]
pub enum How {
    /// A tool of an MCP server of the workflow's `mcp:`.
    Mcp { server: String },
    /// A function the host registered.
    Function,
    /// A local agent of the workflow's `agents:`, given a message.
    Agent { name: String },
    /// A remote A2A agent at `url` (as written), given a message.
    Remote { url: String },
}

/// How a conversation ended: the final reply, the whole conversation as
/// last sent, and what the attempt spent beyond its journaled calls.
pub struct Ended {
    pub reply: ChatReply,
    pub body: Value,
    pub unjournaled: Usage,
}

/// Run the conversation from `body` (the first request) to its final reply.
pub fn converse<'c, 'a: 'c>(
    ctx: &'c NodeCtx<'a>,
    calls: &'c mut Calls<'a>,
    conv: &'c Conversation<'c>,
    body: Value,
    tools: &'c Toolset,
) -> BoxFuture<'c, Result<Ended, NodeError>> {
    Box::pin(run(ctx, calls, conv, body, tools))
}

async fn run<'a>(
    ctx: &NodeCtx<'a>,
    calls: &mut Calls<'a>,
    conv: &Conversation<'_>,
    mut body: Value,
    tools: &Toolset,
) -> Result<Ended, NodeError> {
    let config = conv.config;
    let start = calls.spent();
    let mut unjournaled = Usage::default();
    // Messages in the body when the previous model call was journaled.
    let mut sent = 0usize;
    let mut round = 0u32;
    loop {
        let (mut reply, fresh) = match calls.next(conv.kind, conv.name)? {
            Next::Journaled(rec) => (read_back(config, rec, body)?, false),
            Next::Fresh { key } => {
                let to = conv.stream.then(|| crate::nodes::stream::StreamTo {
                    tokens: &ctx.services.tokens,
                    execution: ctx.execution_id,
                    node: &ctx.node.id,
                    visit: ctx.visit,
                    attempt: ctx.attempt,
                    restarted: ctx.attempt > 1 || ctx.resumed,
                    root: ctx.inside.as_ref(),
                });
                (send(ctx.services, config, body, &key, conv.timeout, to.as_ref()).await?, true)
            }
        };
        // The body comes back with the reply: the conversation goes on from it.
        body = std::mem::take(&mut reply.request);
        let final_reply = reply.tool_calls.is_empty();
        let journaled = !final_reply || conv.journal_final;
        if fresh {
            if journaled {
                calls.record(conv.kind, conv.name, &added_since(&body, sent), &reply.raw, reply.usage).await?;
            }
            if !journaled || !calls.journals() {
                calls.spend(reply.usage);
                unjournaled.add(&reply.usage);
            }
        }
        sent = message_count(&body);
        check_budgets(&conv.budgets, &minus(calls.spent(), start))?;
        if final_reply {
            return Ok(Ended { reply, body, unjournaled });
        }
        if round >= conv.max_tool_rounds {
            let message = format!(
                "the model still called tools after {} ({}): {}",
                crate::plural::count(conv.max_tool_rounds, "round", "rounds"),
                conv.rounds_field,
                reply.tool_calls.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            );
            let exchange = super::Exchange { request: body, response: reply.raw, usage: unjournaled };
            return Err(NodeError::new(ErrorClass::InvalidOutput, message).with_exchange(exchange));
        }
        // Every call of the turn that needs a decision is asked for before
        // any call of the turn runs.
        let mut decided: Vec<Option<&CallDecision>> = Vec::with_capacity(reply.tool_calls.len());
        for call in &reply.tool_calls {
            decided.push(match tools.approval.contains(&call.name) {
                true => {
                    let asked = prompt(conv.name, &ctx.node.id, &call.name, &call.arguments);
                    match calls.ask(&call.name, &call.arguments, asked)? {
                        Asked::Decided(d) => Some(d),
                        Asked::Pending => None,
                    }
                }
                false => None,
            });
        }
        if calls.parked() {
            return Err(calls.parking());
        }
        let mut results = Vec::with_capacity(reply.tool_calls.len());
        for (call, decision) in reply.tool_calls.iter().zip(decided) {
            let so_far = || super::Exchange { request: body.clone(), response: reply.raw.clone(), usage: unjournaled };
            let result = match (decision, tools.how.get(&call.name)) {
                // Refused by a person: not made, and the model is told so.
                (Some(d), _) if !d.approved => refusal(&call.name, d),
                // An agent's calls are journaled one by one, its answer with them.
                (_, Some(How::Agent { name })) if blocked(ctx, &call.name, None).is_none() => {
                    let message = match &call.arguments["message"] {
                        Value::String(s) => s.clone(),
                        Value::Null => call.arguments.to_string(),
                        other => other.to_string(),
                    };
                    let answer = match super::agent::local::run_agent(ctx, calls, name, message).await {
                        Ok(Value::String(s)) => s,
                        Ok(other) => other.to_string(),
                        Err(e) => return Err(e.with_exchange(so_far())),
                    };
                    // The call of the agent as a tool is journaled after its
                    // own calls, as any tool call is: the trajectory (and
                    // `inspect`) show that the caller called it, and with what.
                    match calls.next("tool", &call.name)? {
                        Next::Journaled(rec) => tool_result_of(rec)?,
                        Next::Fresh { .. } => {
                            let request = json!({"id": call.id, "arguments": call.arguments});
                            let response = Value::String(answer.clone());
                            calls.record("tool", &call.name, &request, &response, Usage::default()).await?;
                            answer
                        }
                    }
                }
                _ => match calls.next("tool", &call.name)? {
                    Next::Journaled(rec) => tool_result_of(rec)?,
                    Next::Fresh { key } => {
                        let result = call_tool(ctx, tools, call, &key, conv.timeout)
                            .await
                            .map_err(|e| e.with_exchange(so_far()))?;
                        let request = json!({"id": call.id, "arguments": call.arguments});
                        let response = Value::String(result.clone());
                        calls.record("tool", &call.name, &request, &response, Usage::default()).await?;
                        result
                    }
                },
            };
            results.push((call.clone(), result));
        }
        push_tool_round(config, &mut body, &reply, &results);
        round += 1;
    }
}

/// Fail with `budget_exceeded` when a budget is crossed by what the
/// conversation has spent (`spent`) on top of what it had spent before.
fn check_budgets(budgets: &[Budget], spent: &Usage) -> Result<(), NodeError> {
    for b in budgets {
        let mut total = b.before;
        total.add(spent);
        let tokens = total.input_tokens + total.output_tokens;
        let crossed = match (b.max_cost_usd, b.max_tokens) {
            (Some(max), _) if total.cost_usd > max => {
                Some(format!("spent ${:.4} of its ${max} `max_cost_usd`", total.cost_usd))
            }
            (_, Some(max)) if tokens > max => Some(format!("used {tokens} tokens of its {max} `max_tokens`")),
            _ => None,
        };
        if let Some(what) = crossed {
            let message = format!(
                "{} {what} ({} tokens in, {} out, ${:.4})",
                b.owner, total.input_tokens, total.output_tokens, total.cost_usd
            );
            return Err(NodeError::new(ErrorClass::BudgetExceeded, message));
        }
    }
    Ok(())
}

/// The workflow's `budget:`, over the execution's total, for a
/// conversation about to start.
pub(crate) fn workflow_budget(ctx: &NodeCtx<'_>, calls: &Calls<'_>) -> Option<Budget> {
    let b = ctx.workflow.budget.as_ref()?;
    // The execution's usage holds every call this visit journaled; what
    // this attempt has read back or made so far is counted from here on.
    let mut before = minus(ctx.usage, calls.journaled_usage());
    before.add(&calls.spent());
    Some(Budget {
        owner: "the workflow's `budget:`".into(),
        max_cost_usd: b.max_cost_usd,
        max_tokens: b.max_tokens,
        before,
    })
}

/// `a - b`, field by field, never below zero.
pub(crate) fn minus(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens),
        cost_usd: (a.cost_usd - b.cost_usd).max(0.0),
    }
}

/// Carry out one tool call; what goes back to the model.
async fn call_tool(
    ctx: &NodeCtx<'_>,
    tools: &Toolset,
    call: &ToolCall,
    key: &str,
    timeout: Duration,
) -> Result<String, NodeError> {
    let Some(how) = tools.how.get(&call.name) else {
        let known: Vec<&str> = tools.offered.iter().map(|t| t.name.as_str()).collect();
        return Ok(format!("error: there is no tool `{}` (tools: {})", call.name, known.join(", ")));
    };
    let server = match how {
        How::Mcp { server } => Some(server.as_str()),
        How::Function | How::Agent { .. } | How::Remote { .. } => None,
    };
    let remote = match how {
        How::Remote { url } => blocked_as(ctx, url, &call.name, None),
        _ => None,
    };
    if let Some(rule) = remote.or_else(|| blocked(ctx, &call.name, server)) {
        return Ok(format!("error: the tool `{}` is blocked by the workflow's policy (`{rule}`)", call.name));
    }
    match how {
        How::Mcp { server } => {
            let mcp = &ctx.services.mcp;
            let result = mcp.call(ctx.workflow, server, &call.name, call.arguments.clone(), key, timeout).await?;
            let text = match super::tool::result_value(&result) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            Ok(if result.get("isError").and_then(Value::as_bool) == Some(true) {
                format!("error: {text}")
            } else {
                text
            })
        }
        How::Function => {
            let Some(f) = ctx.services.functions.get(&call.name) else {
                let message = format!(
                    "node `{}` offers the function `{}` as a tool, but the host registered no such function \
                     (registered: {})",
                    ctx.node.id,
                    call.name,
                    ctx.services.functions.names().join(", ")
                );
                return Err(NodeError::new(ErrorClass::ClientError, message));
            };
            let input = FunctionCall {
                input: call.arguments.clone(),
                execution_id: ctx.execution_id,
                node_id: ctx.node.id.clone(),
                attempt: ctx.attempt,
                idempotency_key: key.to_string(),
                // A tool call is one journaled call: its pieces are not.
                steps: super::Steps::detached(),
            };
            match f(input).await {
                Ok(Value::String(s)) => Ok(s),
                Ok(other) => Ok(other.to_string()),
                // The function's own failure is the model's to act on.
                Err(e) if e.class == ErrorClass::Function => Ok(format!("error: {}", e.message)),
                Err(e) => Err(NodeError::new(e.class, format!("function `{}`: {}", call.name, e.message))),
            }
        }
        How::Remote { url } => super::agent::remote_tool::call(ctx, url, &call.arguments, key, timeout).await,
        How::Agent { name } => {
            // Carried out by the conversation, which journals its calls.
            Err(NodeError::new(ErrorClass::Internal, format!("agent `{name}` is not a tool to call directly")))
        }
    }
}

/// The policy entry that blocks `tool` (of MCP server `server`, if it is
/// one), as the compiler matches them: the tool bare, as `server.tool`,
/// or its server.
pub(super) fn blocked(ctx: &NodeCtx<'_>, tool: &str, server: Option<&str>) -> Option<String> {
    let written = server.map_or_else(|| tool.to_string(), |s| format!("{s}.{tool}"));
    blocked_as(ctx, &written, tool, server)
}

/// The policy entry that blocks a tool written as `written` in `tools:`
/// (a remote agent's URL), named `tool`, of MCP server `server`.
fn blocked_as(ctx: &NodeCtx<'_>, written: &str, tool: &str, server: Option<&str>) -> Option<String> {
    let policy = ctx.workflow.policy.as_ref()?;
    crate::ir::Policy::matching(&policy.blocked_tools, written, tool, server).map(str::to_string)
}

/// A model call the visit journaled, read back as the reply it was.
fn read_back(config: &ModelConfig, rec: &CallRecord, body: Value) -> Result<ChatReply, NodeError> {
    let corrupt = |e: String| {
        let message = format!("journaled call {} (a reply of model `{}`) does not read back: {e}", rec.n, rec.name);
        NodeError::new(ErrorClass::Internal, message)
    };
    let raw = rec.response.value().map_err(|e| corrupt(e.to_string()))?;
    journaled_reply(config, raw, body, rec.usage).map_err(corrupt)
}

/// A tool call the visit journaled: its result, as the model was given it.
fn tool_result_of(rec: &CallRecord) -> Result<String, NodeError> {
    match rec.response.value() {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(e) => Err(NodeError::new(
            ErrorClass::Internal,
            format!("journaled call {} (tool `{}`) does not read back: {e}", rec.n, rec.name),
        )),
    }
}

/// The messages of a request body.
fn message_count(body: &Value) -> usize {
    body["messages"].as_array().map_or(0, Vec::len)
}

/// What a model call sends that the visit's previous one did not: the
/// whole body for the first, then the messages added since (`{"messages":
/// [...]}`), so the journal of a long loop grows with its turns.
fn added_since(body: &Value, sent: usize) -> Value {
    if sent == 0 {
        return body.clone();
    }
    let added = body["messages"].as_array().map(|m| m.get(sent..).unwrap_or_default().to_vec()).unwrap_or_default();
    json!({ "messages": added })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(cost: Option<f64>, tokens: Option<u64>) -> Budget {
        Budget {
            owner: "agent `a`".into(),
            max_cost_usd: cost,
            max_tokens: tokens,
            before: Usage { input_tokens: 10, output_tokens: 0, cost_usd: 0.25 },
        }
    }

    #[test]
    fn a_budget_is_crossed_by_what_was_spent_before_and_since_and_says_the_figures() {
        let spent = Usage { input_tokens: 5, output_tokens: 5, cost_usd: 0.25 };
        assert!(check_budgets(&[budget(Some(0.5), Some(20))], &spent).is_ok(), "at the limit is not over it");
        let e = check_budgets(&[budget(Some(0.4), None)], &spent).unwrap_err();
        assert_eq!(e.class, ErrorClass::BudgetExceeded);
        assert!(e.message.contains("agent `a` spent $0.5000 of its $0.4 `max_cost_usd`"), "{}", e.message);
        let e = check_budgets(&[budget(None, Some(19))], &spent).unwrap_err();
        assert!(e.message.contains("used 20 tokens of its 19 `max_tokens`"), "{}", e.message);
        let spent = Usage { input_tokens: 1, output_tokens: 1, cost_usd: 0.5 };
        assert_eq!(minus(spent, Usage { input_tokens: 2, output_tokens: 0, cost_usd: 0.25 }).input_tokens, 0);
    }
}
