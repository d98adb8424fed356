//! The typed Rust workflow builder, for hosts that embed the runtime.
//!
//! ```no_run
//! # use jamjet::typed::{Agent, Model, StepCtx, Workflow};
//! # use serde::{Deserialize, Serialize};
//! #[derive(Serialize, Deserialize, schemars::JsonSchema, Default)]
//! struct Research { topic: String, research: Option<String> }
//!
//! # async fn run(rt: jamjet::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! let researcher = Agent::new("researcher").model("fast").instructions("Find accurate information.");
//! let wf = Workflow::builder("research").version("0.1.0").state::<Research>()
//!     .model("fast", Model::new("openai", "gpt-4o-mini"))
//!     .agent(researcher)
//!     .step("research", |s: Research, ctx: StepCtx| async move {
//!         let r = ctx.agent("researcher").run(format!("Research: {}", s.topic)).await?;
//!         Ok(Research { research: Some(r.output), ..s })
//!     })
//!     .build()?;
//! let result = rt.run_typed(&wf, Research { topic: "durable execution".into(), ..Default::default() }).await?;
//! println!("{:?} in {} steps", result.state.research, result.steps_executed);
//! # Ok(()) }
//! ```
//!
//! What [`Builder::build`] makes is the IR a YAML file compiles to: the
//! builder writes the equivalent YAML document ([`Workflow::source`]) and
//! compiles it with the YAML compiler, so every rule of the file holds
//! (and an error names the step or agent), and `jamjet inspect`, the
//! server and A2A work on it as on any workflow. The state schema is the
//! state type's (`schemars`, see [`state`]). Steps are `function` nodes
//! whose host functions are the closures, named `{workflow id}/{step}`;
//! the runtime learns them (and the Rust tools of the agents) in its one
//! function registry when the workflow is registered ([`Runtime::register_typed`],
//! [`crate::runtime::Builder::workflow`], or [`Runtime::run_typed`], which
//! registers it first). Register it before [`Runtime::resume_all`] so
//! that executions of it resume after a restart.
//!
//! A step gets the state (read from the execution's state as the type)
//! and a [`StepCtx`], and returns the new state: every key it serializes
//! replaces the state's (an `Option` that is `None` sets the key to
//! null). Steps run in the order they are declared unless `.next(..)`
//! names another, a branch ([`Branch`]) chooses among them, and
//! `.end()` stops after one. Inside a step, `ctx.run(name, work)` is a
//! durable piece of work and `ctx.agent(name).run(message)` runs an
//! agent of the workflow, every call journaled
//! ([`crate::nodes::Steps`]).

mod agent;
mod state;

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub use self::agent::{Agent, AgentTool, Model, Tool};
use super::{Error, Runtime};
use crate::id::ExecutionId;
use crate::ir;
pub use crate::ir::Strategy;
pub use crate::nodes::AgentRun;
use crate::nodes::{FunctionCall, FunctionError, StepAgent};

/// A workflow built in Rust: its IR, and the host functions of its steps
/// and tools.
pub struct Workflow<S> {
    ir: Arc<ir::Workflow>,
    source: String,
    steps: Vec<(String, StepFn)>,
    tools: Vec<Tool>,
    _state: PhantomData<fn() -> S>,
}

type StepFn = Arc<dyn Fn(FunctionCall) -> BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync>;

impl<S> Clone for Workflow<S> {
    fn clone(&self) -> Self {
        Workflow {
            ir: self.ir.clone(),
            source: self.source.clone(),
            steps: self.steps.clone(),
            tools: self.tools.clone(),
            _state: PhantomData,
        }
    }
}

impl Workflow<()> {
    /// A workflow with this id; give it a state type with [`Builder::state`].
    pub fn builder(id: impl Into<String>) -> Builder<()> {
        Builder {
            id: id.into(),
            version: "0.1.0".into(),
            fields: Ok(Vec::new()),
            type_name: "()",
            models: Vec::new(),
            agents: Vec::new(),
            nodes: Vec::new(),
            budget: None,
            _state: PhantomData,
        }
    }
}

impl<S> Workflow<S> {
    /// The IR, as the YAML compiler made it.
    pub fn ir(&self) -> &Arc<ir::Workflow> {
        &self.ir
    }

    /// The YAML document (in its JSON form) the builder wrote and compiled.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The host function of step `step` (`{workflow id}/{step}`).
    pub fn function_name(&self, step: &str) -> String {
        format!("{}/{step}", self.ir.id)
    }
}

/// Builds a [`Workflow`]: see the module docs.
pub struct Builder<S> {
    id: String,
    version: String,
    /// The state keys, or why the state type has none.
    fields: Result<Vec<(String, ir::Type)>, String>,
    type_name: &'static str,
    models: Vec<(String, Model)>,
    agents: Vec<Agent>,
    nodes: Vec<Decl>,
    budget: Option<Value>,
    _state: PhantomData<fn() -> S>,
}

struct Decl {
    id: String,
    kind: DeclKind,
    /// `Some(None)`: the execution ends after it.
    next: Option<Option<String>>,
    retry: Option<Value>,
}

enum DeclKind {
    Step(StepFn),
    Branch(Branch),
}

impl<S> Builder<S> {
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The state type: its JSON Schema (`schemars`) is the state schema.
    /// Declare it before the steps, which take and return it.
    pub fn state<T: JsonSchema + Serialize + DeserializeOwned>(self) -> Builder<T> {
        let schema = schemars::schema_for!(T);
        Builder {
            id: self.id,
            version: self.version,
            fields: state::state_fields(schema.as_value()),
            type_name: std::any::type_name::<T>(),
            models: self.models,
            agents: self.agents,
            nodes: self.nodes,
            budget: self.budget,
            _state: PhantomData,
        }
    }

    /// An entry of `models:`, which agents name.
    pub fn model(mut self, name: impl Into<String>, model: Model) -> Self {
        self.models.push((name.into(), model));
        self
    }

    /// A local agent (an entry of `agents:`).
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// The workflow's `budget:` over one execution.
    pub fn budget(mut self, max_cost_usd: Option<f64>, max_tokens: Option<u64>) -> Self {
        let mut b = Map::new();
        if let Some(usd) = max_cost_usd {
            b.insert("max_cost_usd".into(), json!(usd));
        }
        if let Some(t) = max_tokens {
            b.insert("max_tokens".into(), json!(t));
        }
        self.budget = Some(Value::Object(b));
        self
    }

    /// A branch: the first condition that holds chooses the next step.
    pub fn branch(mut self, id: impl Into<String>, branch: Branch) -> Self {
        self.nodes.push(Decl { id: id.into(), kind: DeclKind::Branch(branch), next: None, retry: None });
        self
    }

    /// The step declared last goes on to `step` (not the one declared after it).
    pub fn next(mut self, step: impl Into<String>) -> Self {
        if let Some(last) = self.nodes.last_mut() {
            last.next = Some(Some(step.into()));
        }
        self
    }

    /// The execution ends after the step declared last.
    pub fn end(mut self) -> Self {
        if let Some(last) = self.nodes.last_mut() {
            last.next = Some(None);
        }
        self
    }

    /// The step declared last is tried up to `max_attempts` times, `delay_ms`
    /// apart, when it fails with a class worth retrying (its own
    /// [`FunctionError`] included).
    pub fn retry(mut self, max_attempts: u32, delay_ms: u64) -> Self {
        if let Some(last) = self.nodes.last_mut() {
            last.retry = Some(json!({
                "max_attempts": max_attempts,
                "delay_ms": delay_ms,
                "backoff": "constant",
                "retry_on": ["timeout", "rate_limited", "server_error", "connection", "function", "panic"],
            }));
        }
        self
    }
}

impl<S> Builder<S>
where
    S: Serialize + DeserializeOwned + Send + 'static,
{
    /// A step: `f` gets the state and the step's context, and returns the
    /// new state.
    pub fn step<F, Fut>(self, id: impl Into<String>, f: F) -> Self
    where
        F: Fn(S, StepCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, FunctionError>> + Send + 'static,
    {
        self.push_step(id.into(), f)
    }

    /// A step that returns a patch rather than the whole state: `f`'s
    /// result serializes to an object of some of the state's keys (a
    /// `serde_json::Map`, `json!({..})`, or a struct of its own), each of
    /// which replaces the state's; the other keys stay as they are. A key
    /// the state does not have, or a value of another type, fails the step
    /// as the state's schema says.
    pub fn patch_step<F, Fut, P>(self, id: impl Into<String>, f: F) -> Self
    where
        F: Fn(S, StepCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P, FunctionError>> + Send + 'static,
        P: Serialize,
    {
        self.push_step(id.into(), f)
    }

    /// A step whose result (the new state, or a patch) is `O`.
    fn push_step<F, Fut, O>(mut self, id: String, f: F) -> Self
    where
        F: Fn(S, StepCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, FunctionError>> + Send + 'static,
        O: Serialize,
    {
        let type_name = self.type_name;
        let step = id.clone();
        let run: StepFn = Arc::new(move |call: FunctionCall| {
            let state = match serde_json::from_value::<S>(call.input.clone()) {
                Ok(s) => s,
                Err(e) => {
                    let message = format!("step `{step}`: the execution's state does not read as `{type_name}`: {e}");
                    return futures::future::ready(Err(FunctionError::with_class(
                        crate::journal::ErrorClass::ClientError,
                        message,
                    )))
                    .boxed();
                }
            };
            let fut = f(state, StepCtx { call });
            let step = step.clone();
            async move {
                let next = fut.await?;
                match serde_json::to_value(next) {
                    Ok(v @ Value::Object(_)) => Ok(v),
                    Ok(other) => Err(FunctionError::with_class(
                        crate::journal::ErrorClass::ClientError,
                        format!("step `{step}`: what it returned serializes to {other}, not to an object"),
                    )),
                    Err(e) => Err(FunctionError::with_class(
                        crate::journal::ErrorClass::ClientError,
                        format!("step `{step}`: what it returned does not serialize to JSON ({e})"),
                    )),
                }
            }
            .boxed()
        });
        self.nodes.push(Decl { id, kind: DeclKind::Step(run), next: None, retry: None });
        self
    }

    /// The workflow: its YAML document written and compiled (the
    /// compiler's findings, each naming its step or agent, are the error).
    pub fn build(self) -> Result<Workflow<S>, BuildError> {
        let workflow = self.id.clone();
        let fields = self.fields.map_err(|message| BuildError::State { type_name: self.type_name, message })?;
        if self.nodes.is_empty() {
            return Err(BuildError::Invalid { workflow, findings: vec!["it has no steps".into()] });
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &self.nodes {
            if !seen.insert(n.id.as_str()) {
                return Err(BuildError::Invalid { workflow, findings: vec![format!("two steps are both `{}`", n.id)] });
            }
        }
        let (source, labels) =
            document(&self.id, &self.version, &fields, &self.models, &self.agents, &self.nodes, &self.budget);
        let file = format!("{} (built in Rust)", self.id);
        let ir = ir::compile_str(&source, &file).map_err(|d| BuildError::Invalid {
            workflow: workflow.clone(),
            findings: d.iter().map(|d| finding(d, &labels)).collect(),
        })?;
        let mut steps = Vec::new();
        for n in self.nodes {
            if let DeclKind::Step(f) = n.kind {
                steps.push((format!("{}/{}", self.id, n.id), f));
            }
        }
        let mut tools: Vec<Tool> = Vec::new();
        for t in self.agents.into_iter().flat_map(|a| a.tools) {
            if let Some(other) = tools.iter().find(|o| o.name == t.name)
                && !Arc::ptr_eq(&other.f, &t.f)
            {
                let findings = vec![format!("two different Rust tools are both called `{}`", t.name)];
                return Err(BuildError::Invalid { workflow, findings });
            }
            tools.push(t);
        }
        Ok(Workflow { ir: Arc::new(ir), source, steps, tools, _state: PhantomData })
    }
}

/// A branch's conditions, each a condition over `state` (as `when:`
/// writes it) and the step it chooses.
#[derive(Debug, Clone, Default)]
pub struct Branch {
    conditions: Vec<(String, String)>,
    default: Option<String>,
}

impl Branch {
    pub fn new() -> Branch {
        Branch::default()
    }

    /// When `condition` holds (`state.score < 0.3`), go on to `step`.
    pub fn when(mut self, condition: impl Into<String>, step: impl Into<String>) -> Branch {
        self.conditions.push((condition.into(), step.into()));
        self
    }

    /// Where to go when no condition holds.
    pub fn otherwise(mut self, step: impl Into<String>) -> Branch {
        self.default = Some(step.into());
        self
    }
}

/// A step's context: durable pieces and agents (see the module docs).
pub struct StepCtx {
    call: FunctionCall,
}

impl StepCtx {
    /// Run an agent of the workflow inside the step; every call journaled.
    pub fn agent(&self, agent: impl AsRef<str>) -> StepAgent<'_> {
        self.call.steps.agent(agent.as_ref())
    }

    /// Run the durable piece `name`: its result is journaled, and read
    /// back when the step runs again ([`crate::nodes::Steps::run`]).
    pub async fn run<T, E, F>(&self, name: &str, work: F) -> Result<T, FunctionError>
    where
        T: Serialize + DeserializeOwned,
        E: std::fmt::Display,
        F: Future<Output = Result<T, E>>,
    {
        self.call.steps.run(name, work).await
    }

    pub fn execution_id(&self) -> ExecutionId {
        self.call.execution_id
    }

    /// The step's node id.
    pub fn step(&self) -> &str {
        &self.call.node_id
    }

    /// The attempt of the step, from 1.
    pub fn attempt(&self) -> u32 {
        self.call.attempt
    }

    /// Stable across retries and crashes: pass it to anything you call.
    pub fn idempotency_key(&self) -> &str {
        &self.call.idempotency_key
    }
}

/// A typed execution's end.
#[derive(Debug, Clone)]
pub struct RunResult<S> {
    pub state: S,
    pub execution_id: ExecutionId,
    /// Node visits that completed.
    pub steps_executed: u64,
    pub total_duration: Duration,
    /// Tokens and cost over every model call.
    pub usage: crate::journal::Usage,
}

/// Why a typed workflow does not build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("state type `{type_name}`: {message}")]
    State { type_name: &'static str, message: String },
    #[error("workflow `{workflow}` (built in Rust) does not compile:\n  {}", findings.join("\n  "))]
    Invalid { workflow: String, findings: Vec<String> },
}

/// Why a typed run did not give a state.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the initial state ({type_name}): {message}")]
    Input { type_name: &'static str, message: String },
    #[error(transparent)]
    Runtime(#[from] Error),
    #[error("execution {id} {status} at node `{node}`: {message}")]
    Failed { id: ExecutionId, status: crate::journal::Status, node: String, message: String },
    #[error("execution {id}: its final state does not read back as `{type_name}`: {message}")]
    State { id: ExecutionId, type_name: &'static str, message: String },
}

impl Runtime {
    /// Teach the runtime a typed workflow's step functions and Rust tools
    /// (in its one function registry), so that it runs and resumes it.
    pub fn register_typed<S>(&self, wf: &Workflow<S>) {
        register(&self.services().env.functions, wf);
    }

    /// Run a typed workflow from `state` to its end (registering it
    /// first). A failed or cancelled execution is an error naming it and
    /// the node.
    pub async fn run_typed<S>(&self, wf: &Workflow<S>, state: S) -> Result<RunResult<S>, RunError>
    where
        S: Serialize + DeserializeOwned,
    {
        let type_name = std::any::type_name::<S>();
        let input = serde_json::to_value(&state)
            .map_err(|e| RunError::Input { type_name, message: format!("it does not serialize to JSON ({e})") })?;
        if !input.is_object() {
            return Err(RunError::Input { type_name, message: format!("it serializes to {input}, not an object") });
        }
        self.register_typed(wf);
        let began = std::time::Instant::now();
        let outcome = self.run(&wf.ir, input).await?;
        let total_duration = began.elapsed();
        let events = self.events(outcome.id)?;
        let steps_executed =
            events.iter().filter(|r| matches!(r.event, crate::journal::Event::NodeCompleted { .. })).count() as u64;
        if outcome.status != crate::journal::Status::Completed {
            let node = events.iter().rev().find_map(|r| match &r.event {
                crate::journal::Event::ExecutionFailed { node: Some(n), .. } => Some(n.clone()),
                crate::journal::Event::NodeFailed { node, .. } => Some(node.clone()),
                _ => None,
            });
            return Err(RunError::Failed {
                id: outcome.id,
                status: outcome.status,
                node: node.unwrap_or_else(|| "-".into()),
                message: outcome.error.unwrap_or_default(),
            });
        }
        let state = serde_json::from_value(outcome.state).map_err(|e| RunError::State {
            id: outcome.id,
            type_name,
            message: e.to_string(),
        })?;
        Ok(RunResult { state, execution_id: outcome.id, steps_executed, total_duration, usage: outcome.usage })
    }
}

impl super::Builder {
    /// Teach the runtime a typed workflow's step functions and Rust tools.
    pub fn workflow<S>(self, wf: &Workflow<S>) -> Self {
        register(&self.functions, wf);
        self
    }
}

fn register<S>(functions: &crate::nodes::FunctionRegistry, wf: &Workflow<S>) {
    for (name, f) in &wf.steps {
        let f = f.clone();
        functions.register(name.clone(), move |call| f(call));
    }
    for tool in &wf.tools {
        let f = tool.f.clone();
        functions.register_tool(tool.name.clone(), tool.schema.clone(), move |call| f(call));
    }
}

/// The YAML document (as pretty JSON, which is YAML) of the workflow, and
/// which step or agent each line belongs to.
fn document(
    id: &str,
    version: &str,
    fields: &[(String, ir::Type)],
    models: &[(String, Model)],
    agents: &[Agent],
    nodes: &[Decl],
    budget: &Option<Value>,
) -> (String, Vec<(usize, String)>) {
    let schema: Map<String, Value> = fields.iter().map(|(k, t)| (k.clone(), state::yaml(t))).collect();
    let head = json!({ "id": id, "version": version, "state_schema": schema, "start": nodes[0].id });
    let mut sections: Vec<(&str, Vec<Entry>)> = Vec::new();
    if !models.is_empty() {
        let entries = models.iter().map(|(n, m)| Entry {
            key: n.clone(),
            value: Value::Object(m.fields.clone()),
            label: format!("model `{n}`"),
        });
        sections.push(("models", entries.collect()));
    }
    if !agents.is_empty() {
        let entries = agents.iter().map(|a| Entry {
            key: a.name.clone(),
            value: Value::Object(a.fields.clone()),
            label: format!("agent `{}`", a.name),
        });
        sections.push(("agents", entries.collect()));
    }
    let mut entries = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut node = Map::new();
        match &n.kind {
            DeclKind::Step(_) => {
                node.insert("type".into(), json!("function"));
                node.insert("function".into(), json!(format!("{id}/{}", n.id)));
            }
            DeclKind::Branch(b) => {
                node.insert("type".into(), json!("branch"));
                let conditions: Vec<Value> =
                    b.conditions.iter().map(|(when, next)| json!({ "when": when, "next": next })).collect();
                node.insert("conditions".into(), Value::Array(conditions));
                let default = b.default.clone().or_else(|| nodes.get(i + 1).map(|n| n.id.clone()));
                if let Some(d) = default {
                    node.insert("default".into(), json!(d));
                }
            }
        }
        if matches!(n.kind, DeclKind::Step(_)) {
            let next = match &n.next {
                Some(chosen) => chosen.clone(),
                None => nodes.get(i + 1).map(|n| n.id.clone()),
            };
            if let Some(next) = next {
                node.insert("next".into(), json!(next));
            }
        } else if let Some(Some(next)) = &n.next {
            // The compiler says what it thinks of a branch's `next`.
            node.insert("next".into(), json!(next));
        }
        if let Some(retry) = &n.retry {
            node.insert("retry".into(), retry.clone());
        }
        entries.push(Entry { key: n.id.clone(), value: Value::Object(node), label: format!("step `{}`", n.id) });
    }
    sections.push(("nodes", entries));

    // Written by hand around serde_json's pretty text, so each entry keeps
    // its place and the lines of each are known.
    let mut out = String::from("{\n");
    let mut labels = Vec::new();
    let indent = |text: String, by: &str| text.replace('\n', &format!("\n{by}"));
    out.push_str(&format!("  \"workflow\": {}", indent(pretty(&head), "  ")));
    if let Some(b) = budget {
        out.push_str(&format!(",\n  \"budget\": {}", indent(pretty(b), "  ")));
    }
    for (name, entries) in sections {
        out.push_str(&format!(",\n  {}: {{", json!(name)));
        for (i, Entry { key, value, label }) in entries.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            labels.push((out.lines().count() + 1, label.clone()));
            out.push_str(&format!("    {}: {}", json!(key), indent(pretty(value), "    ")));
        }
        out.push_str("\n  }");
    }
    out.push_str("\n}\n");
    (out, labels)
}

/// One entry of a section of the document, and what a finding on its
/// lines is said of.
struct Entry {
    key: String,
    value: Value,
    label: String,
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A compiler finding, said of the step or agent whose lines it is on.
fn finding(d: &ir::Diagnostic, labels: &[(usize, String)]) -> String {
    let line = d.line as usize;
    let owner = match &d.node {
        Some(node) => Some(format!("step `{node}`")),
        None => labels.iter().rev().find(|(from, _)| *from <= line).map(|(_, l)| l.clone()),
    };
    match owner {
        Some(owner) => format!("{owner}: {}", d.message),
        None => d.message.clone(),
    }
}
