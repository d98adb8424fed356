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
}

/// One message of a node's `messages:` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTemplate {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Template.
    pub content: String,
}
