//! `type: function`: a Rust async function the embedding host registered
//! under a name. Its input is the rendered `input` (or the whole state);
//! its result goes under `output_key` (or is merged when it is an object).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::{NodeCtx, NodeError, NodeExecutor, NodeOutput, output_patch};
use crate::id::ExecutionId;
use crate::ir::NodeKind;
use crate::journal::ErrorClass;

/// What a registered function is called with.
#[derive(Debug, Clone)]
pub struct FunctionCall {
    pub input: Value,
    pub execution_id: ExecutionId,
    pub node_id: String,
    pub attempt: u32,
    /// Stable across retries and crashes: pass it to anything you call.
    pub idempotency_key: String,
    /// Durable pieces of the step: `call.steps.run("name", work)` journals
    /// `work`'s result, which a retried or resumed step reads back, and
    /// `call.steps.agent("name").run(message)` runs a local agent with
    /// every call journaled the same way.
    pub steps: super::Steps,
}

/// A function's failure. Retried when the node's `retry_on` includes
/// `function`, or when `class` says so.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    pub message: String,
    pub class: ErrorClass,
}

impl FunctionError {
    pub fn new(message: impl Into<String>) -> Self {
        FunctionError { message: message.into(), class: ErrorClass::Function }
    }
    /// A failure of the given class (e.g. `ErrorClass::Timeout` to be
    /// retried by the default policy).
    pub fn with_class(class: ErrorClass, message: impl Into<String>) -> Self {
        FunctionError { message: message.into(), class }
    }
}

type Boxed = Arc<dyn Fn(FunctionCall) -> BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync>;

/// What a model is told of a function it is offered as a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSchema {
    pub description: String,
    /// The JSON Schema of its arguments (an object).
    pub parameters: Value,
}

#[derive(Clone)]
struct Registered {
    f: Boxed,
    tool: Option<Arc<ToolSchema>>,
}

/// Functions by name, shared by every execution of a runtime.
#[derive(Default, Clone)]
pub struct FunctionRegistry {
    inner: Arc<RwLock<HashMap<String, Registered>>>,
}

impl FunctionRegistry {
    pub fn register<F, Fut>(&self, name: impl Into<String>, f: F)
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.insert(name.into(), Arc::new(move |call| f(call).boxed()), None);
    }

    /// Register a function that agents call as a tool, with what the model
    /// is told of it: its description and the JSON Schema of its arguments.
    pub fn register_tool<F, Fut>(&self, name: impl Into<String>, schema: ToolSchema, f: F)
    where
        F: Fn(FunctionCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        self.insert(name.into(), Arc::new(move |call| f(call).boxed()), Some(Arc::new(schema)));
    }

    fn insert(&self, name: String, f: Boxed, tool: Option<Arc<ToolSchema>>) {
        self.inner.write().expect("function registry lock").insert(name, Registered { f, tool });
    }

    pub fn get(&self, name: &str) -> Option<Boxed> {
        self.inner.read().expect("function registry lock").get(name).map(|r| r.f.clone())
    }

    /// What the model is told of function `name` as a tool, when it was
    /// registered with [`FunctionRegistry::register_tool`].
    pub fn tool_schema(&self, name: &str) -> Option<Arc<ToolSchema>> {
        self.inner.read().expect("function registry lock").get(name).and_then(|r| r.tool.clone())
    }

    /// The host functions `workflow`'s `function` nodes call that are not
    /// registered here, sorted: an execution of it cannot go on in this
    /// process (it goes on in the host that registers them).
    pub fn missing(&self, workflow: &crate::ir::Workflow) -> Vec<String> {
        let inner = self.inner.read().expect("function registry lock");
        let mut missing: Vec<String> = workflow
            .nodes
            .values()
            .filter_map(|n| match &n.kind {
                NodeKind::Function(f) if !inner.contains_key(&f.function) => Some(f.function.clone()),
                _ => None,
            })
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.inner.read().expect("function registry lock").keys().cloned().collect();
        names.sort();
        names
    }
}

pub struct Function;

impl NodeExecutor for Function {
    fn run<'a>(&'a self, ctx: NodeCtx<'a>) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let NodeKind::Function(spec) = &ctx.node.kind else { unreachable!("function executor on another kind") };
            let f = ctx.services.functions.get(&spec.function).ok_or_else(|| {
                NodeError::new(
                    ErrorClass::Function,
                    format!(
                        "no function `{}` is registered with this runtime (registered: {})",
                        spec.function,
                        ctx.services.functions.names().join(", ")
                    ),
                )
            })?;
            let input = match &spec.input {
                Some(v) => ctx.services.templates.render_value(v, &ctx.template_context())?,
                None => Value::Object(ctx.state.clone()),
            };
            let call = FunctionCall {
                input,
                execution_id: ctx.execution_id,
                node_id: ctx.node.id.clone(),
                attempt: ctx.attempt,
                idempotency_key: ctx.idempotency_key.clone(),
                steps: super::Steps::of(&ctx),
            };
            let value = f(call).await.map_err(|e| NodeError::new(e.class, e.message))?;
            Ok(NodeOutput { patch: output_patch(spec.output_key.as_deref(), value)?, ..Default::default() })
        })
    }
}
