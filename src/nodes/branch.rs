//! `type: branch`: the first condition that holds picks the next node,
//! else `default`; with neither, the node fails naming its conditions.

use futures::future::BoxFuture;

use super::{NodeCtx, NodeError, NodeExecutor, NodeOutput};
use crate::ir::NodeKind;
use crate::journal::ErrorClass;

pub struct Branch;

impl NodeExecutor for Branch {
    fn is_pure(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(std::future::ready(run(&ctx)))
    }
}

fn run(ctx: &NodeCtx<'_>) -> Result<NodeOutput, NodeError> {
    let NodeKind::Branch(branch) = &ctx.node.kind else { unreachable!("branch executor on another kind") };
    let tpl = ctx.template_context();
    for c in &branch.conditions {
        if ctx.services.templates.condition(&c.when, &tpl)? {
            return Ok(NodeOutput { next: Some(c.next.clone()), ..Default::default() });
        }
    }
    match &branch.default {
        Some(d) => Ok(NodeOutput { next: Some(d.clone()), ..Default::default() }),
        None => Err(NodeError::new(
            ErrorClass::InvalidOutput,
            format!(
                "no condition holds and there is no default (conditions: {})",
                branch.conditions.iter().map(|c| c.when.as_str()).collect::<Vec<_>>().join("; ")
            ),
        )),
    }
}
