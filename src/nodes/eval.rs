//! `type: eval`: run the node's scorers over the state (and, for a
//! `trajectory` scorer, the execution's tool calls so far, which its
//! shell hands it, with `state.expected_trajectory`) and act on the
//! verdict (`on_fail`). The scores are journaled (a `Scored` event) with
//! the attempt whatever the verdict; a judge's model calls, if any, are the
//! attempt's exchange.
//!
//! The verdict `{passed, visit, scores, feedback}` goes into `output_key`.
//! A failing eval with `on_fail: fail` (or out of `retry_from` visits) is a
//! node error of class `invalid_output`: not retried unless the node's
//! `retry_on` asks for it.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Exchange, NodeCtx, NodeError, NodeExecutor, NodeOutput, Scores};
use crate::eval::rubric::judge;
use crate::eval::{ScoreResult, Subject, feedback, score};
use crate::ir::{EvalOnFail, NodeKind, ScorerKind};
use crate::journal::ErrorClass;

pub struct Eval;

impl NodeExecutor for Eval {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let NodeKind::Eval(spec) = &ctx.node.kind else { unreachable!("eval executor on another kind") };
            // The whole state is copied only when it is what is scored.
            let whole;
            let output = match &spec.target {
                Some(key) => ctx.state.get(key).unwrap_or(&Value::Null),
                None => {
                    whole = Value::Object(ctx.state.clone());
                    &whole
                }
            };
            let elapsed_ms = ctx.services.clock.now_ms().saturating_sub(ctx.started_ms);
            let subject = Subject {
                state: ctx.state,
                output,
                expected: ctx.state.get("expected").unwrap_or(&Value::Null),
                elapsed_ms,
                cost_usd: ctx.usage.cost_usd,
                tool_calls: ctx.tool_calls,
                expected_trajectory: ctx.state.get("expected_trajectory").unwrap_or(&Value::Null),
            };
            let mut results: Vec<ScoreResult> = Vec::with_capacity(spec.scorers.len());
            let mut calls: Vec<Exchange> = Vec::new();
            for scorer in &spec.scorers {
                let ScorerKind::Rubric { config, rubric, min_score, .. } = &scorer.kind else {
                    results.extend(score(scorer, &subject, &ctx.services.templates, &ctx.services.compiled));
                    continue;
                };
                let rubric = ctx.services.templates.render(rubric, &subject.context())?;
                let key = format!("{}/judge/{}", ctx.idempotency_key, scorer.name);
                let judged = judge(ctx.services, config, &scorer.name, &rubric, *min_score, &subject, &key).await;
                match judged {
                    Ok((result, exchange)) => {
                        results.push(result);
                        calls.push(exchange);
                    }
                    Err(e) => {
                        calls.extend(e.exchange.as_deref().cloned());
                        let message = format!("eval node `{}`: {}", ctx.node.id, e.message);
                        let exchange = merge(calls).map(Box::new);
                        return Err(NodeError { message, exchange, ..e });
                    }
                }
            }
            let exchange = merge(calls).map(Box::new);
            let passed = results.iter().all(|r| r.passed);
            let feedback = feedback(&results);
            let scores_json = serde_json::to_value(&results).expect("scores serialize");
            let verdict = json!({ "passed": passed, "visit": ctx.visit, "scores": scores_json, "feedback": feedback });
            let scores = Some(Box::new(Scores { scores: scores_json, passed }));
            let patch = spec.output_key.iter().map(|k| (k.clone(), verdict.clone())).collect();
            let fail = |why: String| {
                let message = format!("eval node `{}` failed{why}:\n{feedback}", ctx.node.id);
                Err(NodeError {
                    scores: scores.clone(),
                    exchange: exchange.clone(),
                    ..NodeError::new(ErrorClass::InvalidOutput, message)
                })
            };
            match (&spec.on_fail, passed) {
                (_, true) | (EvalOnFail::Continue, false) => {
                    Ok(NodeOutput { patch, scores, exchange, ..Default::default() })
                }
                (EvalOnFail::Fail, false) => fail(String::new()),
                (EvalOnFail::RetryFrom { node, max_retries }, false) if ctx.visit <= *max_retries => Ok(NodeOutput {
                    patch,
                    next: Some(node.clone()),
                    scores,
                    exchange,
                    park: None,
                    pending: Vec::new(),
                }),
                (EvalOnFail::RetryFrom { max_retries, .. }, false) => {
                    fail(format!(" after {max_retries} retr{}", if *max_retries == 1 { "y" } else { "ies" }))
                }
            }
        })
    }
}

/// The judge calls of one attempt as one exchange: a single call as it is,
/// several as lists of requests and replies with their usage summed.
fn merge(mut calls: Vec<Exchange>) -> Option<Exchange> {
    match calls.len() {
        0 => None,
        1 => calls.pop(),
        _ => {
            let mut usage = crate::journal::Usage::default();
            calls.iter().for_each(|c| usage.add(&c.usage));
            let request = Value::Array(calls.iter().map(|c| c.request.clone()).collect());
            let response = Value::Array(calls.into_iter().map(|c| c.response).collect());
            Some(Exchange { request, response, usage })
        }
    }
}
