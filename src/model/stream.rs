//! A streamed reply (`"stream": true`), read as Server-Sent Events and put
//! back together as the reply the provider would have sent whole: the
//! journal, the parsers and `inspect` see the same JSON either way.
//!
//! - OpenAI-compatible: `data: {chunk}` lines, each with
//!   `choices[0].delta` (`content`, and `tool_calls` pieces by `index`),
//!   a `finish_reason`, and, with `stream_options.include_usage`, a last
//!   chunk with `usage`; then `data: [DONE]`.
//! - Anthropic: `message_start` (id, model, input tokens),
//!   `content_block_start`/`_delta`/`_stop` (text, or a `tool_use` whose
//!   input comes as JSON pieces), `message_delta` (stop reason, output
//!   tokens), `message_stop`; an `error` event is a failure.

use serde_json::{Map, Value, json};

use crate::ir::Provider;

/// What a stream said so far.
pub(super) struct Assembler {
    provider: Provider,
    /// Bytes of the line being read.
    partial: Vec<u8>,
    id: Value,
    model: Value,
    text: String,
    /// OpenAI: tool calls by index (id, name, argument text).
    calls: Vec<(String, String, String)>,
    /// Anthropic: content blocks by index (a text, or a tool use with its input's JSON text).
    blocks: Vec<Block>,
    finish: Value,
    usage: Map<String, Value>,
    ended: bool,
}

enum Block {
    Text(String),
    Tool { id: String, name: String, input: String },
}

impl Assembler {
    pub(super) fn new(provider: Provider) -> Self {
        Assembler {
            provider,
            partial: Vec::new(),
            id: Value::Null,
            model: Value::Null,
            text: String::new(),
            calls: Vec::new(),
            blocks: Vec::new(),
            finish: Value::Null,
            usage: Map::new(),
            ended: false,
        }
    }

    /// Read `bytes` of the stream; `delta` gets each piece of text.
    pub(super) fn feed(&mut self, bytes: &[u8], delta: &mut dyn FnMut(&str)) -> Result<(), String> {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                if let Some(data) = line.strip_prefix("data:") {
                    self.data(data.trim_start(), delta)?;
                }
            } else {
                self.partial.push(b);
            }
        }
        Ok(())
    }

    fn data(&mut self, data: &str, delta: &mut dyn FnMut(&str)) -> Result<(), String> {
        if data == "[DONE]" {
            self.ended = true;
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("a streamed event is not JSON ({e}): {data:?}"))?;
        match self.provider {
            Provider::Openai => self.openai(&v, delta),
            Provider::Anthropic => self.anthropic(&v, delta),
        }
    }

    fn openai(&mut self, v: &Value, delta: &mut dyn FnMut(&str)) -> Result<(), String> {
        if let Some(e) = v.get("error") {
            return Err(format!("the stream reported an error: {e}"));
        }
        if self.id.is_null() {
            self.id = v["id"].clone();
            self.model = v["model"].clone();
        }
        if let Some(u) = v.get("usage").and_then(Value::as_object) {
            self.usage = u.clone();
        }
        let Some(choice) = v.pointer("/choices/0") else { return Ok(()) };
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.text.push_str(text);
            delta(text);
        }
        for piece in choice.pointer("/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let i = piece["index"].as_u64().unwrap_or(0) as usize;
            if i > 1024 {
                return Err(format!("a streamed tool call has index {i}"));
            }
            while self.calls.len() <= i {
                self.calls.push(Default::default());
            }
            let call = &mut self.calls[i];
            if let Some(id) = piece["id"].as_str() {
                call.0.push_str(id);
            }
            if let Some(name) = piece.pointer("/function/name").and_then(Value::as_str) {
                call.1.push_str(name);
            }
            if let Some(args) = piece.pointer("/function/arguments").and_then(Value::as_str) {
                call.2.push_str(args);
            }
        }
        if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
            self.finish = f.clone();
        }
        Ok(())
    }

    fn anthropic(&mut self, v: &Value, delta: &mut dyn FnMut(&str)) -> Result<(), String> {
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                self.id = v.pointer("/message/id").cloned().unwrap_or(Value::Null);
                self.model = v.pointer("/message/model").cloned().unwrap_or(Value::Null);
                if let Some(u) = v.pointer("/message/usage").and_then(Value::as_object) {
                    self.usage.extend(u.clone());
                }
            }
            "content_block_start" => {
                let i = v["index"].as_u64().unwrap_or(0) as usize;
                if i > 1024 {
                    return Err(format!("a streamed content block has index {i}"));
                }
                let b = &v["content_block"];
                let block = match b["type"].as_str() {
                    Some("tool_use") => Block::Tool {
                        id: b["id"].as_str().unwrap_or_default().to_string(),
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                        input: String::new(),
                    },
                    _ => Block::Text(b["text"].as_str().unwrap_or_default().to_string()),
                };
                while self.blocks.len() < i {
                    self.blocks.push(Block::Text(String::new()));
                }
                if self.blocks.len() == i {
                    self.blocks.push(block);
                } else {
                    self.blocks[i] = block;
                }
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap_or(0) as usize;
                match (self.blocks.get_mut(i), v.pointer("/delta/type").and_then(Value::as_str)) {
                    (Some(Block::Text(t)), Some("text_delta")) => {
                        let text = v.pointer("/delta/text").and_then(Value::as_str).unwrap_or_default();
                        t.push_str(text);
                        self.text.push_str(text);
                        delta(text);
                    }
                    (Some(Block::Tool { input, .. }), Some("input_json_delta")) => {
                        input.push_str(v.pointer("/delta/partial_json").and_then(Value::as_str).unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").filter(|r| !r.is_null()) {
                    self.finish = r.clone();
                }
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    self.usage.extend(u.clone());
                }
            }
            "message_stop" => self.ended = true,
            "error" => return Err(format!("the stream reported an error: {}", v["error"])),
            _ => {}
        }
        Ok(())
    }

    /// The reply as the provider sends it whole, once the stream ended.
    pub(super) fn finish(self) -> Result<Value, String> {
        if !self.ended {
            return Err("the stream ended before the reply did".to_string());
        }
        Ok(match self.provider {
            Provider::Openai => {
                let tool_calls: Vec<Value> = self
                    .calls
                    .into_iter()
                    .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                    .collect();
                let mut message = json!({"role": "assistant", "content": if tool_calls.is_empty() || !self.text.is_empty() { json!(self.text) } else { Value::Null }});
                if !tool_calls.is_empty() {
                    message["tool_calls"] = Value::Array(tool_calls);
                }
                json!({
                    "id": self.id,
                    "object": "chat.completion",
                    "model": self.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": self.finish}],
                    "usage": Value::Object(self.usage),
                })
            }
            Provider::Anthropic => {
                let mut content = Vec::with_capacity(self.blocks.len());
                for b in self.blocks {
                    content.push(match b {
                        Block::Text(text) => json!({"type": "text", "text": text}),
                        Block::Tool { id, name, input } => {
                            let input: Value = if input.trim().is_empty() {
                                json!({})
                            } else {
                                serde_json::from_str(&input).map_err(|e| {
                                    format!("the input of tool use `{name}` is not JSON ({e}): {input:?}")
                                })?
                            };
                            json!({"type": "tool_use", "id": id, "name": name, "input": input})
                        }
                    });
                }
                json!({
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": content,
                    "stop_reason": self.finish,
                    "usage": Value::Object(self.usage),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(provider: Provider, stream: &str, split: usize) -> (Result<Value, String>, Vec<String>) {
        let mut a = Assembler::new(provider);
        let mut pieces = Vec::new();
        for chunk in stream.as_bytes().chunks(split) {
            a.feed(chunk, &mut |t| pieces.push(t.to_string())).unwrap();
        }
        (a.finish(), pieces)
    }

    #[test]
    fn an_openai_stream_becomes_the_whole_reply_whatever_the_chunking() {
        let stream = concat!(
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo é\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        for split in [1, 7, 4096] {
            let (whole, pieces) = run(Provider::Openai, stream, split);
            let whole = whole.unwrap();
            assert_eq!(pieces, ["Hel", "lo é"]);
            let parsed = super::super::openai::parse(&whole).unwrap();
            assert_eq!((parsed.text.as_str(), parsed.input_tokens, parsed.output_tokens), ("Hello é", 3, 2));
            assert_eq!(whole["choices"][0]["finish_reason"], "stop");
        }
    }

    #[test]
    fn streamed_tool_calls_are_put_back_together() {
        let stream = concat!(
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"function\":{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n",
            "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n",
            "data: [DONE]\n"
        );
        let parsed = super::super::openai::parse(&run(Provider::Openai, stream, 5).0.unwrap()).unwrap();
        assert_eq!(parsed.tool_calls.len(), 1);
        assert_eq!((parsed.tool_calls[0].name.as_str(), &parsed.tool_calls[0].arguments), ("add", &json!({"a": 1})));

        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me add\"}}\n\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu\",\"name\":\"add\",\"input\":{}}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"b\\\": 2}\"}}\n\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n"
        );
        let (whole, pieces) = run(Provider::Anthropic, stream, 3);
        let parsed = super::super::anthropic::parse(&whole.unwrap()).unwrap();
        assert_eq!(pieces, ["Let me add"]);
        assert_eq!((parsed.text.as_str(), parsed.input_tokens, parsed.output_tokens), ("Let me add", 4, 9));
        assert_eq!(parsed.tool_calls[0].arguments, json!({"b": 2}));
    }

    #[test]
    fn a_stream_cut_short_or_reporting_an_error_is_a_failure() {
        let cut = "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n";
        assert!(run(Provider::Openai, cut, 64).0.unwrap_err().contains("ended before"));
        let mut a = Assembler::new(Provider::Anthropic);
        let err = a.feed(b"data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n", &mut |_| {});
        assert!(err.unwrap_err().contains("overloaded_error"));
    }
}
