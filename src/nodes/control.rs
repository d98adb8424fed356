//! The node kinds an execution carries out itself rather than as a step:
//! `wait` and `approval` park it, `parallel` and `workflow` start child
//! executions. What is computed here (a correlation key, a deadline, the
//! children's inputs) depends only on the state, and is journaled by the
//! execution before anything acts on it.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{NodeCtx, NodeError};
use crate::ir::{NodeKind, Workflow};
use crate::journal::ErrorClass;

/// What a parked node waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Park {
    pub event: Option<String>,
    pub deadline_ms: Option<u64>,
    pub prompt: Option<String>,
}

/// Render what a `wait` or `approval` node waits for, at `now_ms`.
pub(crate) fn park(ctx: &NodeCtx<'_>, now_ms: u64) -> Result<Park, NodeError> {
    let park = park_unbounded(ctx, now_ms)?;
    // A deadline is bounded like every duration (the compiler checks the
    // written ones; `until` is known only now, and a stored workflow may
    // predate the check).
    let limits = &ctx.services.limits;
    if let Some(d) = park.deadline_ms.filter(|d| d.saturating_sub(now_ms) > limits.max_duration_ms) {
        let days_text = crate::plural::count((d - now_ms) / (24 * 60 * 60 * 1000), "day", "days");
        let what =
            format!("node `{}` would wait until {} ({} from now)", ctx.node.id, crate::clock::format_ms(d), days_text);
        return Err(NodeError::new(ErrorClass::LimitExceeded, limits.exceeded(crate::ir::Limit::MaxDurationMs, what)));
    }
    Ok(park)
}

fn park_unbounded(ctx: &NodeCtx<'_>, now_ms: u64) -> Result<Park, NodeError> {
    let templates = &ctx.services.templates;
    let tpl = ctx.template_context();
    let after = |ms: u64| now_ms.saturating_add(ms);
    match &ctx.node.kind {
        NodeKind::Wait(w) => {
            if let Some(event) = &w.event {
                let key = templates.render(event, &tpl)?;
                if key.is_empty() {
                    return Err(NodeError::new(
                        ErrorClass::Template,
                        format!("the event key `{event}` rendered empty"),
                    ));
                }
                return Ok(Park { event: Some(key), deadline_ms: ctx.node.timeout_ms.map(after), prompt: None });
            }
            if let Some(ms) = w.duration_ms {
                return Ok(Park { event: None, deadline_ms: Some(after(ms)), prompt: None });
            }
            let Some(until) = &w.until else {
                return Err(NodeError::new(ErrorClass::Internal, "a wait node with neither event nor timer"));
            };
            let text = templates.render(until, &tpl)?;
            let at: jiff::Timestamp = text.trim().parse().map_err(|e| {
                NodeError::new(
                    ErrorClass::Template,
                    format!("`until` rendered `{text}`, which is not an RFC 3339 time: {e}"),
                )
            })?;
            let ms = u64::try_from(at.as_millisecond()).unwrap_or(0);
            Ok(Park { event: None, deadline_ms: Some(ms), prompt: None })
        }
        NodeKind::Approval(a) => {
            let prompt = templates.render(&a.prompt, &tpl)?;
            Ok(Park { event: None, deadline_ms: ctx.node.timeout_ms.map(after), prompt: Some(prompt) })
        }
        other => Err(NodeError::new(ErrorClass::Internal, format!("a {} node does not wait", other.type_name()))),
    }
}

/// One child execution a fan-out starts.
#[derive(Debug, Clone)]
pub(crate) struct ChildSpec {
    pub workflow: Arc<Workflow>,
    pub start: String,
    pub until: Option<String>,
    /// A branch's is its parent's state itself (shared, never copied); a
    /// sub-workflow's is its own input.
    pub input: Arc<Map<String, Value>>,
    pub vars: Map<String, Value>,
}

/// The children of a `parallel` or `workflow` node, in branch order.
/// `workflow` is the running execution's own workflow (branches run it).
/// `state` is the execution's state (`ctx.state`, shared).
pub(crate) fn children(
    ctx: &NodeCtx<'_>,
    workflow: &Arc<Workflow>,
    state: &Arc<Map<String, Value>>,
) -> Result<Vec<ChildSpec>, NodeError> {
    match &ctx.node.kind {
        NodeKind::Parallel(p) => {
            let branch = |start: &str, vars: Map<String, Value>| ChildSpec {
                workflow: workflow.clone(),
                start: start.to_string(),
                until: Some(p.join.clone()),
                input: state.clone(),
                vars,
            };
            let Some(for_each) = &p.for_each else {
                return Ok(p.branches.iter().map(|start| branch(start, ctx.vars.clone())).collect());
            };
            let items =
                ctx.services.templates.render_value(&Value::String(for_each.clone()), &ctx.template_context())?;
            let Value::Array(items) = items else {
                return Err(NodeError::new(
                    ErrorClass::Template,
                    format!("`for_each` must give a list; `{for_each}` gave {}", crate::ir::json_kind(&items)),
                ));
            };
            let limits = &ctx.services.limits;
            if items.len() as u64 > limits.max_for_each_items {
                let what = format!(
                    "`for_each` of node `{}` gave {}",
                    ctx.node.id,
                    crate::plural::count(items.len(), "item", "items")
                );
                return Err(NodeError::new(
                    ErrorClass::LimitExceeded,
                    limits.exceeded(crate::ir::Limit::MaxForEachItems, what),
                ));
            }
            let start = p.branches.first().ok_or_else(|| NodeError::new(ErrorClass::Internal, "no branch"))?;
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    let mut vars = ctx.vars.clone();
                    vars.insert("item".into(), item);
                    vars.insert("index".into(), json!(index));
                    branch(start, vars)
                })
                .collect())
        }
        NodeKind::Workflow(w) => {
            let child = Arc::new((*w.workflow).clone());
            let input = match &w.input {
                Some(v) => ctx.services.templates.render_value(v, &ctx.template_context())?,
                None => Value::Object(
                    ctx.state
                        .iter()
                        .filter(|(k, _)| child.state_schema.fields.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
            };
            // Checked, and completed with the child's defaults, as any input is.
            let required = crate::ir::required_inputs(&child);
            let input = crate::ir::prepare_input(&child, &required, input).map_err(|errors| {
                let text = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                NodeError::new(
                    ErrorClass::InvalidInput,
                    format!("the input for workflow `{}` is refused, the child was not started: {text}", child.id),
                )
            })?;
            let input = Arc::new(input);
            Ok(vec![ChildSpec { start: child.start.clone(), workflow: child, until: None, input, vars: Map::new() }])
        }
        other => Err(NodeError::new(ErrorClass::Internal, format!("a {} node has no children", other.type_name()))),
    }
}
