//! The `rubric` scorer: an LLM judge, asked through [`crate::model`] to
//! score an output 1–5 against a rubric and say why. It replies with JSON
//! `{"score": n, "reasons": "..."}` (a ```json fence is tolerated); a reply
//! that is not that is an `invalid_output` error carrying the exchange, not
//! a low score.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::scorers::text_of;
use super::{ScoreResult, Subject};
use crate::journal::ErrorClass;
use crate::model::{ChatMessage, ChatRequest, ModelConfig, compile_schema, complete_with, parse_output};
use crate::nodes::Env;
use crate::nodes::{Exchange, NodeError};

const SYSTEM: &str = "You are a strict evaluator. Score the OUTPUT against the RUBRIC on a scale from 1 (fails it) to \
                      5 (fully meets it). Reply with JSON only: {\"score\": <1-5>, \"reasons\": \"<one or two \
                      sentences>\"}";

/// The question put to the judge.
pub fn judge_request(rubric: &str, output: &Value, expected: &Value) -> ChatRequest {
    let mut prompt = format!("RUBRIC:\n{rubric}\n\nOUTPUT:\n{}", text_of(output));
    if !expected.is_null() {
        prompt.push_str(&format!("\n\nEXPECTED (a reference answer):\n{}", text_of(expected)));
    }
    ChatRequest { system: Some(SYSTEM.into()), messages: vec![ChatMessage::user(prompt)], ..Default::default() }
}

/// What a judge must answer: a score from 1 to 5, and its reasons.
static VERDICT: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema = json!({
        "type": "object",
        "required": ["score"],
        "properties": {"score": {"type": "number", "minimum": 1, "maximum": 5}, "reasons": {"type": "string"}}
    });
    compile_schema(&schema).expect("the verdict schema compiles")
});

/// The judge's score (1–5) and reasons, from its reply text.
pub fn read_verdict(text: &str) -> Result<(f64, String), String> {
    let v = parse_output(text, &VERDICT).map_err(|e| format!("the judge did not answer with a score: {e}"))?;
    let score = v["score"].as_f64().unwrap_or_default();
    Ok((score, v["reasons"].as_str().unwrap_or_default().to_string()))
}

/// Ask the judge; the result and the call's exchange (request, reply, usage).
pub async fn judge(
    env: &Env,
    config: &ModelConfig,
    name: &str,
    rubric: &str,
    min_score: f64,
    subject: &Subject<'_>,
    idempotency_key: &str,
) -> Result<(ScoreResult, Exchange), NodeError> {
    let request = judge_request(rubric, subject.output, subject.expected);
    let reply = complete_with(env, config, &request, idempotency_key)
        .await
        .map_err(|e| NodeError { message: format!("rubric scorer `{name}`: {}", e.message), ..e })?;
    let exchange = reply.exchange();
    let (score, reasons) = read_verdict(&reply.text).map_err(|e| {
        NodeError::new(ErrorClass::InvalidOutput, format!("rubric scorer `{name}`: {e}"))
            .with_exchange(exchange.clone())
    })?;
    let passed = score >= min_score;
    let reason = format!("scored {score} of 5 (min {min_score}): {reasons}");
    Ok((ScoreResult { scorer: name.into(), kind: "rubric".into(), passed, score, reason }, exchange))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_or_refused() {
        assert_eq!(read_verdict("{\"score\": 4, \"reasons\": \"ok\"}").unwrap(), (4.0, "ok".into()));
        assert_eq!(read_verdict("```json\n{\"score\": 2}\n```").unwrap().0, 2.0);
        assert!(read_verdict("{\"score\": 9}").is_err());
        assert!(read_verdict("echo: hi").unwrap_err().contains("did not answer with a score"));
    }
}
