//! Tool calls that wait for a person's decision, as a node sees them.
//!
//! An agent's `approval:` (with the workflow's `policy.require_approval_for`
//! merged in) and, for a model node with `tools:`, the policy alone say
//! which tools' calls need a decision first. When a conversation reaches a
//! turn whose tool calls include such calls, it asks for each one
//! ([`Calls::ask`](super::Calls::ask)): a call decided before (this visit's
//! decisions, which the machine folds from `CallsPending` and
//! `CallDecided` and hands to every attempt as [`NodeCtx::approvals`](super::NodeCtx))
//! goes on as decided; a call never asked for becomes pending, and the
//! attempt ends before any call of that turn runs, carrying the pending
//! calls ([`NodeOutput::pending`](super::NodeOutput)). The execution
//! journals them and parks; when every one is decided the node runs again
//! as a continuation of the same visit, reads its journaled calls back (the
//! model call that asked for the tools is not sent again), and finds the
//! decisions at the same place.
//!
//! Ids: the k-th tool call of a visit that needed a decision is
//! `{node}.{k}`, counted in the order the conversation reaches them, which
//! a replay of the visit reaches in the same order: stable across restarts
//! and short to type (`jamjet approve <exec> --call research.2`). The
//! model's own tool call id plays no part (it is the provider's, and may
//! differ between providers or be missing).

use serde_json::Value;

use crate::journal::Json;

/// A tool call that asks for a person's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCall {
    /// `{node}.{k}` (see the module docs).
    pub id: String,
    /// The tool, as the model named it.
    pub tool: String,
    /// The model's arguments, a JSON object.
    pub arguments: Json,
    /// What the person is asked: the tool and its arguments.
    pub prompt: String,
}

/// A person's decision on a pending tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDecision {
    pub approved: bool,
    pub by: String,
    pub comment: Option<String>,
    /// When it was journaled (unix ms).
    pub at_ms: u64,
}

/// One tool call of a visit that needed a decision, and the decision once
/// made: what the machine folds and hands to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallApproval {
    pub call: PendingCall,
    pub decision: Option<CallDecision>,
}

/// The longest the arguments are shown in a prompt (the whole arguments
/// are kept beside it).
const PROMPT_ARGUMENTS: usize = 1_000;

/// The prompt of a pending call: who asks to call which tool with what.
pub fn prompt(asker: &str, node: &str, tool: &str, arguments: &Value) -> String {
    let mut shown = arguments.to_string();
    if shown.len() > PROMPT_ARGUMENTS {
        let cut = (0..=PROMPT_ARGUMENTS).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    format!("allow `{asker}` (node `{node}`) to call `{tool}` with {shown}?")
}

/// What the model is told in place of a refused call's result.
pub fn refusal(tool: &str, decision: &CallDecision) -> String {
    match decision.comment.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(c) => format!("error: a human refused this call of `{tool}`; they said: {c}"),
        None => format!("error: a human refused this call of `{tool}`"),
    }
}

/// The id of the `k`-th call of `node`'s visit that needed a decision.
pub fn call_id(node: &str, k: u32) -> String {
    format!("{node}.{k}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_prompt_shows_the_tool_and_its_arguments_clipped_and_a_refusal_the_comment() {
        let p = prompt("researcher", "research", "send_email", &json!({"to": "ada@example.com"}));
        assert_eq!(p, r#"allow `researcher` (node `research`) to call `send_email` with {"to":"ada@example.com"}?"#);
        let long = prompt("a", "n", "t", &json!({"text": "é".repeat(2_000)}));
        assert!(long.len() < 1_100 && long.contains('…'), "{long}");
        let d = CallDecision { approved: false, by: "ada".into(), comment: Some("not to customers".into()), at_ms: 0 };
        assert_eq!(
            refusal("send_email", &d),
            "error: a human refused this call of `send_email`; they said: not to customers"
        );
        let d = CallDecision { comment: None, ..d };
        assert_eq!(refusal("send_email", &d), "error: a human refused this call of `send_email`");
        assert_eq!(call_id("research", 2), "research.2");
    }
}
