//! The IR of model calls: a `type: model` node ([`ModelNode`]), the
//! configuration a model name resolves to at compile time ([`ModelConfig`],
//! [`Provider`], [`resolve_model`]) and prices ([`Price`]). Plain data,
//! stored in the workflow and covered by its hash; the client that sends
//! the calls is `crate::model`, which reads these and is never read here.

mod config;
mod prices;
mod spec;

use serde_json::Value;

pub use config::{ModelConfig, Provider, UnknownModel, resolve_model};
pub use prices::{Price, built_in_price};
pub use spec::{DEFAULT_MAX_TOOL_ROUNDS, MessageTemplate, ModelNode, ModelTools};

/// Compile a JSON Schema, as the compiler does for `output_schema` (and the
/// nodes for what they check, once per schema).
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}
