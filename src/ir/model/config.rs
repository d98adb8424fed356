//! Model configuration: the top-level `models:` entries, the provider
//! defaults a bare model name resolves with, and where the API key comes
//! from. Plain data, stored in the workflow IR; the key itself is never
//! stored, only the name of the environment variable that holds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::prices::{Price, built_in_price};

/// A provider's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, llama.cpp).
    Openai,
    /// Anthropic messages.
    Anthropic,
}

impl Provider {
    pub const NAMES: &[&str] = &["openai", "anthropic"];

    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "openai" => Some(Provider::Openai),
            "anthropic" => Some(Provider::Anthropic),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Openai => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com",
        }
    }

    pub fn default_key_env(self) -> &'static str {
        match self {
            Provider::Openai => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
        }
    }

    /// The provider a bare model id belongs to: `claude-*` is Anthropic's;
    /// `gpt-*`, `o1*`, `o3*`, `o4*` are OpenAI's.
    pub fn for_model_id(model: &str) -> Option<Provider> {
        if model.starts_with("claude-") {
            Some(Provider::Anthropic)
        } else if model.starts_with("gpt-") || ["o1", "o3", "o4"].iter().any(|p| model.starts_with(p)) {
            Some(Provider::Openai)
        } else {
            None
        }
    }
}

/// One model as a call needs it: where to send, what to ask for, what it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub provider: Provider,
    /// The provider's model id (`gpt-4o-mini`, `claude-haiku-4-5`, `llama3.2`).
    pub model: String,
    pub base_url: String,
    /// The environment variable that holds the API key, read at call time;
    /// `None` for a server that needs no key (a local Ollama).
    pub api_key_env: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// USD per million tokens; `None` when unknown (the cost is then 0).
    pub price: Option<Price>,
}

impl ModelConfig {
    /// A bare model id with its provider's defaults, if the id names one.
    pub fn from_model_id(model: &str) -> Option<ModelConfig> {
        let provider = Provider::for_model_id(model)?;
        Some(ModelConfig {
            provider,
            model: model.to_string(),
            base_url: provider.default_base_url().to_string(),
            api_key_env: Some(provider.default_key_env().to_string()),
            temperature: None,
            max_tokens: None,
            price: None,
        })
    }
}

/// Why a model name did not resolve.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "unknown model `{name}`: it is not in `models:` (configured: {configured}) and is not a model id a provider is known for (`claude-*`, `gpt-*`, `o1*`, `o3*`, `o4*`)"
)]
pub struct UnknownModel {
    pub name: String,
    /// The configured names, comma-separated, or `none`.
    pub configured: String,
}

/// Resolve what a node or a judge names: an entry of `models:`, or a bare
/// model id with provider defaults. The price comes from the entry, then
/// `prices:` (by model id), then the built-in table.
pub fn resolve_model(
    name: &str,
    models: &BTreeMap<String, ModelConfig>,
    prices: &BTreeMap<String, Price>,
) -> Result<ModelConfig, UnknownModel> {
    let mut config = match models.get(name) {
        Some(c) => c.clone(),
        None => ModelConfig::from_model_id(name).ok_or_else(|| UnknownModel {
            name: name.to_string(),
            configured: if models.is_empty() {
                "none".to_string()
            } else {
                models.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            },
        })?,
    };
    if config.price.is_none() {
        config.price = prices.get(&config.model).copied().or_else(|| built_in_price(&config.model));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_resolve_with_provider_defaults() {
        let (none, no_prices) = (BTreeMap::new(), BTreeMap::new());
        let c = resolve_model("claude-haiku-4-5", &none, &no_prices).unwrap();
        assert_eq!((c.provider, c.base_url.as_str()), (Provider::Anthropic, "https://api.anthropic.com"));
        assert_eq!(c.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        assert_eq!(c.price.unwrap().output_per_mtok, 5.0);
        let c = resolve_model("o4-mini", &none, &no_prices).unwrap();
        assert_eq!((c.provider, c.api_key_env.as_deref()), (Provider::Openai, Some("OPENAI_API_KEY")));
        let e = resolve_model("llama3.2", &none, &no_prices).unwrap_err();
        assert!(e.to_string().contains("configured: none"), "{e}");
    }

    #[test]
    fn prices_section_overrides_the_built_in_table() {
        let prices = BTreeMap::from([("gpt-4o".to_string(), Price { input_per_mtok: 9.0, output_per_mtok: 9.0 })]);
        let c = resolve_model("gpt-4o", &BTreeMap::new(), &prices).unwrap();
        assert_eq!(c.price.unwrap().input_per_mtok, 9.0);
    }
}
