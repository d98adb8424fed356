//! What the machine remembers of a `type: agent` node's conversation with
//! its remote A2A task, folded from the journal like everything else: the
//! last exchange (which names the remote task), and the answer a signal
//! gave to the remote's question, which the node's next attempt sends on
//! the same remote task. Pure data and pure folds; the machine calls these
//! and the node reads [`AgentRound`] through its `NodeCtx`.

use serde_json::Value;

use crate::journal::Json;

/// One visit of an agent node, as far as the journal tells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRound {
    pub visit: u32,
    /// The response of the visit's last journaled exchange: it holds the
    /// remote task (`{"task": {...}}`) the node was talking to.
    pub last: Option<Value>,
    /// Exchanges journaled for this visit (numbers fresh message ids).
    pub exchanges: u32,
    /// A signal's answer to the remote's question, not yet delivered.
    pub reply: Option<Value>,
    /// Answers received so far for this visit (numbers follow-up message ids).
    pub replies: u32,
}

impl AgentRound {
    fn for_visit(&mut self, visit: u32) -> &mut Self {
        if self.visit != visit {
            *self = AgentRound { visit, ..Default::default() };
        }
        self
    }

    /// An exchange of this visit was journaled: the peer accepted what the
    /// attempt sent (the node journals none when a send did not get
    /// through), so a pending answer has been delivered.
    pub fn exchanged(&mut self, visit: u32, response: &Json) {
        let r = self.for_visit(visit);
        r.last = response.value().ok();
        r.exchanges += 1;
        r.reply = None;
    }

    /// A signal answered the remote's question.
    pub fn answered(&mut self, visit: u32, payload: Value) {
        let r = self.for_visit(visit);
        r.reply = Some(payload);
        r.replies += 1;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_exchange_delivers_the_answer_and_a_new_visit_starts_afresh() {
        let mut r = AgentRound::default();
        r.exchanged(1, &Json::from_value(&json!({"task": {"id": "t1"}})));
        r.answered(1, json!("Ada"));
        assert_eq!((r.exchanges, r.replies, r.reply.clone()), (1, 1, Some(json!("Ada"))));
        r.exchanged(1, &Json::from_value(&json!({"task": {"id": "t1"}})));
        assert_eq!((r.exchanges, r.replies, r.reply.clone()), (2, 1, None));
        r.answered(2, json!("Bob"));
        assert_eq!((r.visit, r.exchanges, r.replies, r.last.clone()), (2, 0, 1, None));
    }
}
