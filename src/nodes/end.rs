//! `type: end`: ends the execution explicitly; changes nothing.

use futures::future::BoxFuture;

use super::{NodeCtx, NodeError, NodeExecutor, NodeOutput};

pub struct End;

impl NodeExecutor for End {
    fn is_pure(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, _ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(std::future::ready(Ok(NodeOutput::default())))
    }
}
