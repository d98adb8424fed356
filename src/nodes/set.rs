//! `type: set`: assign state keys from templates. A value that is exactly
//! one `{{ expr }}` keeps the expression's type.

use futures::future::BoxFuture;
use serde_json::Map;

use super::{NodeCtx, NodeError, NodeExecutor, NodeOutput};
use crate::ir::NodeKind;

pub struct Set;

impl NodeExecutor for Set {
    fn is_pure(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(std::future::ready(run(&ctx)))
    }
}

fn run(ctx: &NodeCtx<'_>) -> Result<NodeOutput, NodeError> {
    let NodeKind::Set(set) = &ctx.node.kind else { unreachable!("set executor on another kind") };
    let tpl = ctx.template_context();
    let mut patch = Map::new();
    for (key, value) in &set.values {
        patch.insert(key.clone(), ctx.services.templates.render_value(value, &tpl)?);
    }
    Ok(NodeOutput { patch, ..Default::default() })
}
