//! Compiling model calls: the top-level `models:` and `prices:` sections,
//! and `type: model` nodes. A node's `model` is resolved here (an entry of
//! `models:` or a bare model id with provider defaults) and its
//! `output_schema` compiled with `jsonschema`, so a typo or a bad schema is
//! a finding with line and column, not a failed execution.
//!
//! An entry's `base_url` and `model` may hold `${VAR}` references
//! ([`crate::ir::expand_env`]): their syntax is checked here, their values
//! are read when the model is called. An entry with findings is reported
//! as itself; a node naming it is not also told its model is unknown.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::yaml::{Scalar, Value, Yaml};
use super::{Ctx, Fields, optional};
use crate::ir::{MessageTemplate, ModelConfig, ModelNode, ModelTools, Price, Provider, compile_schema, resolve_model};
use crate::ir::{NodeKind, Span, Type, env_refs};

pub(super) const MODEL: &[&str] = &[
    "model",
    "system",
    "prompt",
    "messages",
    "temperature",
    "max_tokens",
    "output_schema",
    "output_key",
    "tools",
    "max_tool_rounds",
    "stream",
];
const ENTRY: &[&str] =
    &["provider", "model", "base_url", "api_key_env", "temperature", "max_tokens", "price", "description"];
const PRICE: &[&str] = &["input_per_mtok", "output_per_mtok"];
const ROLES: &[&str] = &["user", "assistant", "system"];

impl Ctx {
    /// `models: {name: {provider, model, base_url, api_key_env, ...}}`.
    pub(super) fn models_section(&mut self, y: &Yaml) {
        let Some(entries) = self.entries(y, "`models`", "model name") else { return };
        for entry in entries {
            let owner = format!("model `{}`", entry.key);
            let Some(f) = self.fields(&entry.value, &owner, ENTRY) else {
                self.models_failed.push(entry.key.clone());
                continue;
            };
            match self.model_entry(&entry.key, &f, entry.key_span) {
                Some(config) => {
                    self.models.insert(entry.key.clone(), config);
                }
                None => self.models_failed.push(entry.key.clone()),
            }
        }
    }

    fn model_entry(&mut self, name: &str, f: &Fields, at: Span) -> Option<ModelConfig> {
        let model = f.get("model").map_or(Some(name.to_string()), |y| self.env_text(y, "model", name));
        let provider = match f.get("provider") {
            Some(y) => {
                let word = self.string(y, "provider")?;
                let found = Provider::parse(&word);
                if found.is_none() {
                    let message = format!(
                        "unknown provider `{word}` for model `{name}` (expected one of: {})",
                        Provider::NAMES.join(", ")
                    );
                    self.add(y.span, message);
                }
                found
            }
            None => {
                let inferred = model.as_deref().and_then(Provider::for_model_id);
                if inferred.is_none() && model.is_some() {
                    let message = format!(
                        "model `{name}` needs a `provider` ({}): `{}` is not a model id a provider is known for",
                        Provider::NAMES.join(" or "),
                        model.as_deref().unwrap_or_default()
                    );
                    self.add(at, message);
                }
                inferred
            }
        };
        let base_url = optional(f.get("base_url").map(|y| {
            let url = self.env_text(y, "base_url", name)?;
            if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("${")) {
                let message = format!(
                    "`base_url` of model `{name}` must start with http:// or https:// (or be a `${{VAR}}` that \
                     holds such a URL), found `{url}`"
                );
                self.add(y.span, message);
                return None;
            }
            Some(url)
        }));
        let api_key_env = optional(f.get("api_key_env").map(|y| {
            let var = self.string(y, "api_key_env")?;
            if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let message =
                    format!("`api_key_env` must name an environment variable (letters, digits, `_`), found `{var}`");
                self.add(y.span, message);
                return None;
            }
            Some(var)
        }));
        let temperature = optional(f.get("temperature").map(|y| self.temperature(y, provider)));
        let max_tokens = optional(f.get("max_tokens").map(|y| self.max_tokens(y)));
        let price = optional(f.get("price").map(|y| self.price(y)));
        if let Some(y) = f.get("description") {
            self.string(y, "description");
        }
        let (provider, base_url) = (provider?, base_url?);
        // A key is read from the provider's default variable unless the
        // entry points elsewhere (a local server needs none) or names one.
        let api_key_env = match (api_key_env?, &base_url) {
            (Some(var), _) => Some(var),
            (None, Some(_)) => None,
            (None, None) => Some(provider.default_key_env().to_string()),
        };
        Some(ModelConfig {
            provider,
            model: model?,
            base_url: base_url.unwrap_or_else(|| provider.default_base_url().to_string()),
            api_key_env,
            temperature: temperature?,
            max_tokens: max_tokens?,
            price: price?,
        })
    }

    /// A string whose `${VAR}` references are well formed.
    fn env_text(&mut self, y: &Yaml, field: &str, name: &str) -> Option<String> {
        let text = self.string(y, field)?;
        if let Err(e) = env_refs(&text) {
            self.add(y.span, format!("`{field}` of model `{name}`: {e}"));
            return None;
        }
        Some(text)
    }

    /// `prices: {model-id: {input_per_mtok, output_per_mtok}}`.
    pub(super) fn prices_section(&mut self, y: &Yaml) {
        let Some(entries) = self.entries(y, "`prices`", "model id") else { return };
        for entry in entries {
            if let Some(price) = self.price(&entry.value) {
                self.prices.insert(entry.key.clone(), price);
            }
        }
    }

    fn price(&mut self, y: &Yaml) -> Option<Price> {
        let f = self.fields(y, "a price", PRICE)?;
        let input = self.required(&f, "input_per_mtok", "a price", y.span).and_then(|y| self.usd(y, "input_per_mtok"));
        let output =
            self.required(&f, "output_per_mtok", "a price", y.span).and_then(|y| self.usd(y, "output_per_mtok"));
        Some(Price { input_per_mtok: input?, output_per_mtok: output? })
    }

    fn usd(&mut self, y: &Yaml, field: &str) -> Option<f64> {
        let n = self.number(y, field)?;
        if !(n >= 0.0 && n.is_finite()) {
            self.add(y.span, format!("`{field}` must be a price in USD per million tokens, 0 or more, found {n}"));
            return None;
        }
        Some(n)
    }

    pub(super) fn number(&mut self, y: &Yaml, field: &str) -> Option<f64> {
        match &y.value {
            Value::Scalar(_, Scalar::Int(n)) => Some(*n as f64),
            Value::Scalar(_, Scalar::Float(f)) => Some(*f),
            _ => {
                self.add(y.span, format!("`{field}` must be a number, found {}", y.kind()));
                None
            }
        }
    }

    /// 0 to 2 (OpenAI's range), 0 to 1 for Anthropic.
    pub(super) fn temperature(&mut self, y: &Yaml, provider: Option<Provider>) -> Option<f64> {
        let t = self.number(y, "temperature")?;
        let max = if provider == Some(Provider::Anthropic) { 1.0 } else { 2.0 };
        if !(0.0..=max).contains(&t) {
            let who = provider.map_or("a model", Provider::name);
            self.add(y.span, format!("`temperature` must be between 0 and {max} for {who}, found {t}"));
            return None;
        }
        Some(t)
    }

    fn max_tokens(&mut self, y: &Yaml) -> Option<u32> {
        let n = self.int(y, "max_tokens", 1)?;
        let n = u32::try_from(n).ok();
        if n.is_none() {
            self.add(y.span, "`max_tokens` is too large");
        }
        n
    }

    /// A model named by `field` (`model`, `judge`): an entry of `models:`
    /// or a bare model id, resolved, and held to `policy.model_allowlist`.
    /// `context` starts the message of an unknown one (`rubric judge: `).
    pub(super) fn model_named(&mut self, y: &Yaml, field: &str, context: &str) -> Option<(String, ModelConfig)> {
        let name = self.string(y, field)?;
        match resolve_model(&name, &self.models, &self.prices) {
            Ok(config) => {
                self.model_allowed(y.span, &name, &config);
                Some((name, config))
            }
            // Its entry's findings say what is wrong: not "unknown".
            Err(_) if self.models_failed.contains(&name) => None,
            Err(e) => {
                self.add(y.span, format!("{context}{e}"));
                None
            }
        }
    }

    pub(super) fn model_node(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let config = self.required(f, "model", "a model node", at).and_then(|y| self.model_named(y, "model", ""));
        let provider = config.as_ref().map(|(_, c)| c.provider);
        let system = optional(f.get("system").map(|y| self.template_string(y, "system")));
        let prompt = optional(f.get("prompt").map(|y| self.template_string(y, "prompt")));
        let messages = f.get("messages").map(|y| self.messages(y));
        match (f.entry("prompt"), f.entry("messages")) {
            (Some(_), Some(m)) => {
                self.add(m.key_span, "a model node takes `prompt` or `messages`, not both");
            }
            (None, None) => self.add(at, "a model node needs `prompt` (one user message) or `messages` (a list)"),
            _ => {}
        }
        let temperature = optional(f.get("temperature").map(|y| self.temperature(y, provider)));
        let max_tokens = optional(f.get("max_tokens").map(|y| self.max_tokens(y)));
        let output_schema = optional(f.get("output_schema").map(|y| self.output_schema(y)));
        let output_key = match (f.get("output_key"), f.get("output_schema")) {
            (Some(y), Some(_)) => self.output_key(y).map(Some),
            (Some(y), None) => self.output_key_for(y, &Type::Str, "the model's reply text, a string").map(Some),
            (None, Some(_)) => Some(None),
            (None, None) => {
                let message = "a model node needs `output_key` (where its reply goes) unless `output_schema` makes \
                               the reply an object to merge into the state";
                self.add(at, message);
                None
            }
        };
        let tools = f.get("tools").map_or(Some(Vec::new()), |y| self.model_tools(y));
        let max_tool_rounds = optional(f.get("max_tool_rounds").map(|y| {
            let n = self.int(y, "max_tool_rounds", 1)?;
            u32::try_from(n).ok()
        }));
        if let (Some(e), None) = (f.entry("max_tool_rounds"), f.entry("tools")) {
            self.add(e.key_span, "`max_tool_rounds` needs `tools`: without tools the model makes no tool calls");
        }
        let stream = optional(f.get("stream").map(|y| self.bool(y, "stream")));
        let (model, config) = config?;
        Some(NodeKind::Model(Box::new(ModelNode {
            stream: stream?.unwrap_or(false),
            model,
            config,
            system: system?,
            prompt: prompt?,
            messages: messages.unwrap_or(Some(Vec::new()))?,
            temperature: temperature?,
            max_tokens: max_tokens?,
            output_schema: output_schema?,
            output_key: output_key?,
            tools: tools?,
            max_tool_rounds: max_tool_rounds?,
        })))
    }

    /// `tools: [server, {server, tools: [name, ...]}]`: declared MCP servers.
    fn model_tools(&mut self, y: &Yaml) -> Option<Vec<ModelTools>> {
        let Value::Seq(items) = &y.value else {
            let message = format!(
                "`tools` must be a list of MCP server names or {{server, tools: [...]}} mappings, found {}",
                y.kind()
            );
            self.add(y.span, message);
            return None;
        };
        let parsed: Vec<Option<ModelTools>> = items
            .iter()
            .map(|item| {
                let (server_y, tools) = match &item.value {
                    Value::Map(_) => {
                        let f = self.fields(item, "a `tools` entry", &["server", "tools"])?;
                        let server = self.required(&f, "server", "a `tools` entry", item.span)?;
                        let tools = optional(f.get("tools").map(|y| self.names(y, "tools")));
                        (server, tools)
                    }
                    _ => (item, Some(None)),
                };
                let server = self.string(server_y, "server")?;
                let listed = match &item.value {
                    Value::Map(entries) => entries.iter().find(|e| e.key == "tools").map(|e| &e.value),
                    _ => None,
                };
                self.offered_tools_allowed(&server, server_y.span, listed);
                if !self.mcp_declared.contains(&server) {
                    let declared = if self.mcp_declared.is_empty() {
                        "none are declared: add it under `mcp: servers:`".to_string()
                    } else {
                        format!("declared: {}", self.mcp_declared.join(", "))
                    };
                    let hint = super::did_you_mean(&server, self.mcp_declared.iter().map(String::as_str));
                    self.add(server_y.span, format!("MCP server `{server}` is not declared{hint} ({declared})"));
                    return None;
                }
                Some(ModelTools { server, tools: tools? })
            })
            .collect();
        parsed.into_iter().collect()
    }

    /// A non-empty list of strings.
    fn names(&mut self, y: &Yaml, field: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`{field}` must be a list of names, found {}", y.kind()));
            return None;
        };
        if items.is_empty() {
            self.add(y.span, format!("`{field}` must name at least one"));
            return None;
        }
        items.iter().map(|i| self.string(i, field)).collect::<Vec<_>>().into_iter().collect()
    }

    fn messages(&mut self, y: &Yaml) -> Option<Vec<MessageTemplate>> {
        let Value::Seq(items) = &y.value else {
            self.add(y.span, format!("`messages` must be a list of {{role, content}} mappings, found {}", y.kind()));
            return None;
        };
        if items.is_empty() {
            self.add(y.span, "`messages` must hold at least one message");
        }
        let parsed: Vec<Option<MessageTemplate>> = items
            .iter()
            .map(|item| {
                let f = self.fields(item, "a message", &["role", "content"])?;
                let role = self
                    .required(&f, "role", "a message", item.span)
                    .and_then(|y| self.keyword(y, "role", ROLES))
                    .map(str::to_string);
                let content = self
                    .required(&f, "content", "a message", item.span)
                    .and_then(|y| self.template_string(y, "content"));
                Some(MessageTemplate { role: role?, content: content? })
            })
            .collect();
        parsed.into_iter().collect()
    }

    /// A JSON Schema written in YAML, compiled now.
    pub(super) fn output_schema(&mut self, y: &Yaml) -> Option<Json> {
        let schema = self.literal_json(y)?;
        if !schema.is_object() {
            self.add(y.span, format!("`output_schema` must be a JSON Schema mapping, found {}", y.kind()));
            return None;
        }
        if let Err(e) = compile_schema(&schema) {
            self.add(y.span, format!("`output_schema` is not a valid JSON Schema: {e}"));
            return None;
        }
        Some(schema)
    }
}

/// The configured model names, for the workflow.
pub(super) type Models = BTreeMap<String, ModelConfig>;
