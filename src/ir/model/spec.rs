//! The IR of a `type: model` node: what the compiler resolved (the model's
//! configuration, price included) and the templates the executor renders.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ModelConfig;

/// `type: model`: one chat call (a few, with tools) to a model provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelNode {
    /// The name as written: an entry of `models:` or a bare model id.
    pub model: String,
    /// What `model` resolved to when the workflow compiled.
    pub config: ModelConfig,
    /// Template.
    pub system: Option<String>,
    /// Template: the one user message. Exactly one of `prompt` and `messages`.
    pub prompt: Option<String>,
    /// The conversation, each `content` a template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageTemplate>,
    /// Overrides the model entry's.
    pub temperature: Option<f64>,
    /// Overrides the model entry's.
    pub max_tokens: Option<u32>,
    /// A JSON Schema the reply (parsed as JSON) must match.
    pub output_schema: Option<Value>,
    /// Where the reply goes: its text, or the parsed JSON with `output_schema`.
    pub output_key: Option<String>,
    /// MCP tools offered to the model for this call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ModelTools>,
    /// How many rounds of tool calls the model may make before it must
    /// answer ([`DEFAULT_MAX_TOOL_ROUNDS`] when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_rounds: Option<u32>,
    /// Stream the reply to the execution's followers as it is written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// How many rounds of tool calls a model node allows by default.
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 8;

/// One entry of a model node's `tools:`: a declared MCP server, and the
/// names of the tools of it to offer (every one it lists when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTools {
    pub server: String,
    pub tools: Option<Vec<String>>,
}

/// One message of a node's `messages:` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTemplate {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Template.
    pub content: String,
}
