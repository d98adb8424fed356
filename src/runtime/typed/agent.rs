//! Agents, models and Rust tools of a typed workflow.
//!
//! [`Agent`] and [`Model`] write what the YAML `agents:` and `models:`
//! entries write, field for field, and the workflow compiles them with
//! the YAML compiler: the same rules hold (a tool the policy blocks, a
//! strategy's parameters, agents calling each other in a cycle, ...).
//! A [`Tool`] is a Rust function with typed arguments: the JSON Schema of
//! its argument type is what the model is offered, and a call whose
//! arguments do not fit it is an error the model is told about.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::ir::Strategy;
use crate::nodes::{FunctionCall, FunctionError, ToolSchema};

/// A local agent of a typed workflow (an entry of `agents:`).
#[derive(Clone)]
pub struct Agent {
    pub(super) name: String,
    /// Its fields as the YAML entry writes them.
    pub(super) fields: Map<String, Value>,
    pub(super) tools: Vec<Tool>,
}

impl Agent {
    pub fn new(name: impl Into<String>) -> Agent {
        Agent { name: name.into(), fields: Map::new(), tools: Vec::new() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model: an entry of the workflow's models ([`super::Builder::model`]).
    pub fn model(self, model: impl Into<String>) -> Agent {
        self.field("model", json!(model.into()))
    }

    /// The system prompt (a template over `state`).
    pub fn instructions(self, text: impl Into<String>) -> Agent {
        self.field("instructions", json!(text.into()))
    }

    /// A tool: a name as YAML writes it (`server.tool` for an MCP tool, a
    /// host function, another agent), or a Rust [`Tool`], which the
    /// runtime learns when the workflow is registered.
    pub fn tool(mut self, tool: impl Into<AgentTool>) -> Agent {
        let name = match tool.into() {
            AgentTool::Named(name) => name,
            AgentTool::Rust(tool) => {
                let name = tool.name.clone();
                self.tools.push(tool);
                name
            }
        };
        let tools = self.fields.entry("tools").or_insert_with(|| json!([]));
        if let Value::Array(list) = tools {
            list.push(json!(name));
        }
        self
    }

    pub fn strategy(self, strategy: Strategy) -> Agent {
        self.field("strategy", json!(strategy.as_str()))
    }

    pub fn max_iterations(self, n: u32) -> Agent {
        self.field("max_iterations", json!(n))
    }

    pub fn max_cost_usd(self, usd: f64) -> Agent {
        self.field("max_cost_usd", json!(usd))
    }

    pub fn max_tokens(self, tokens: u64) -> Agent {
        self.field("max_tokens", json!(tokens))
    }

    pub fn temperature(self, t: f64) -> Agent {
        self.field("temperature", json!(t))
    }

    /// The JSON Schema the final answer must fit.
    pub fn output_schema(self, schema: Value) -> Agent {
        self.field("output_schema", schema)
    }

    /// The final answer must fit `T`'s JSON Schema.
    pub fn output_type<T: JsonSchema>(self) -> Agent {
        self.output_schema(schema_of::<T>())
    }

    pub fn description(self, text: impl Into<String>) -> Agent {
        self.field("description", json!(text.into()))
    }

    /// Any other field of a YAML agent entry (`min_score`, `samples`,
    /// `models`, `debaters`, `rounds`, `judge`, `approval`), as YAML
    /// writes it; the compiler checks it as it checks the file.
    pub fn field(mut self, key: &str, value: Value) -> Agent {
        self.fields.insert(key.to_string(), value);
        self
    }
}

impl AsRef<str> for Agent {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// A tool of an agent: see [`Agent::tool`].
pub enum AgentTool {
    Named(String),
    Rust(Tool),
}

impl From<&str> for AgentTool {
    fn from(name: &str) -> Self {
        AgentTool::Named(name.to_string())
    }
}

impl From<String> for AgentTool {
    fn from(name: String) -> Self {
        AgentTool::Named(name)
    }
}

impl From<Tool> for AgentTool {
    fn from(tool: Tool) -> Self {
        AgentTool::Rust(tool)
    }
}

impl From<&Tool> for AgentTool {
    fn from(tool: &Tool) -> Self {
        AgentTool::Rust(tool.clone())
    }
}

/// An entry of the workflow's `models:`.
#[derive(Debug, Clone)]
pub struct Model {
    pub(super) fields: Map<String, Value>,
}

impl Model {
    /// `provider` (`openai`, `anthropic`, ...) and its model id.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Model {
        let mut fields = Map::new();
        fields.insert("provider".into(), json!(provider.into()));
        fields.insert("model".into(), json!(model.into()));
        Model { fields }
    }

    pub fn base_url(self, url: impl Into<String>) -> Model {
        self.field("base_url", json!(url.into()))
    }

    /// The environment variable the API key is read from.
    pub fn api_key_env(self, var: impl Into<String>) -> Model {
        self.field("api_key_env", json!(var.into()))
    }

    pub fn temperature(self, t: f64) -> Model {
        self.field("temperature", json!(t))
    }

    pub fn max_tokens(self, tokens: u64) -> Model {
        self.field("max_tokens", json!(tokens))
    }

    /// USD per million input and output tokens.
    pub fn price(self, input_per_mtok: f64, output_per_mtok: f64) -> Model {
        self.field("price", json!({ "input_per_mtok": input_per_mtok, "output_per_mtok": output_per_mtok }))
    }

    fn field(mut self, key: &str, value: Value) -> Model {
        self.fields.insert(key.to_string(), value);
        self
    }
}

type ToolFn = Arc<dyn Fn(FunctionCall) -> BoxFuture<'static, Result<Value, FunctionError>> + Send + Sync>;

/// A tool written in Rust: a function of typed arguments.
///
/// ```
/// # use jamjet::typed::Tool;
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// /// What to fetch.
/// struct FetchArgs { url: String }
///
/// let fetch = Tool::new("fetch_page", |args: FetchArgs| async move {
///     Ok::<_, String>(format!("the page at {}", args.url))
/// });
/// assert_eq!(fetch.schema().parameters["required"][0], "url");
/// ```
#[derive(Clone)]
pub struct Tool {
    pub(super) name: String,
    pub(super) schema: ToolSchema,
    pub(super) f: ToolFn,
}

impl Tool {
    /// The tool `name`, which calls `f` with its arguments read as `A`.
    /// Its parameters are `A`'s JSON Schema, its description the doc
    /// comment of `A` (or [`Tool::description`]). Arguments that do not
    /// read as `A`, and an error `f` returns, are told to the model.
    pub fn new<A, T, E, F, Fut>(name: impl Into<String>, f: F) -> Tool
    where
        A: DeserializeOwned + JsonSchema,
        T: Serialize,
        E: Display,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let name = name.into();
        let mut parameters = schema_of::<A>();
        let description = parameters
            .as_object_mut()
            .and_then(|m| m.remove("description"))
            .and_then(|d| d.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("The Rust tool `{name}`."));
        let f = Arc::new(f);
        let tool_name = name.clone();
        let call = move |call: FunctionCall| -> BoxFuture<'static, Result<Value, FunctionError>> {
            let args = match serde_json::from_value::<A>(call.input) {
                Ok(args) => args,
                Err(e) => {
                    let message = format!("the arguments of `{tool_name}` do not fit its parameters: {e}");
                    return futures::future::ready(Err(FunctionError::new(message))).boxed();
                }
            };
            let fut = f(args);
            let tool_name = tool_name.clone();
            async move {
                let value = fut.await.map_err(|e| FunctionError::new(e.to_string()))?;
                serde_json::to_value(value).map_err(|e| {
                    FunctionError::new(format!("the result of `{tool_name}` does not serialize to JSON ({e})"))
                })
            }
            .boxed()
        };
        Tool { name, schema: ToolSchema { description, parameters }, f: Arc::new(call) }
    }

    /// What the model is told the tool does.
    pub fn description(mut self, text: impl Into<String>) -> Tool {
        self.schema.description = text.into();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the model is offered: the description and the parameters' JSON Schema.
    pub fn schema(&self) -> &ToolSchema {
        &self.schema
    }
}

/// `T`'s JSON Schema as a model or a validator reads it (no `$schema`
/// and `title` noise).
pub(super) fn schema_of<T: JsonSchema>() -> Value {
    let mut schema = schemars::schema_for!(T).to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}
