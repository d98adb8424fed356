//! A model reply against a node's `output_schema`: the reply text is parsed
//! as JSON (a ```json fence around it is tolerated) and validated with the
//! `jsonschema` crate. Either failure is `invalid_output`, which a node's
//! `retry_on` may retry.

use serde_json::Value;

/// The JSON inside a reply: the whole text, or the body of a ``` fence.
fn unfenced(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else { return t };
    // Skip the info string (`json`) up to the end of the fence's line.
    let body = rest.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// Where `value` breaks the schema: up to `max` problems, each with its
/// path in the value.
pub fn schema_problems(validator: &jsonschema::Validator, value: &Value, max: usize) -> Vec<String> {
    validator
        .iter_errors(value)
        .take(max)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() { e.to_string() } else { format!("at {at}: {e}") }
        })
        .collect()
}

/// Parse `text` as JSON and validate it against a compiled schema. The
/// error says what is wrong, and where in the reply.
pub fn parse_output(text: &str, validator: &jsonschema::Validator) -> Result<Value, String> {
    let value: Value = serde_json::from_str(unfenced(text)).map_err(|e| {
        let shown: String = text.chars().take(200).collect();
        format!("the reply is not JSON ({e}): {shown:?}")
    })?;
    let problems = schema_problems(validator, &value, 5);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(format!("the reply does not match the output_schema: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::compile_schema;
    use serde_json::json;

    #[test]
    fn fenced_and_bare_json_parse_and_mismatches_say_where() {
        let schema = json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
        let schema = compile_schema(&schema).unwrap();
        assert_eq!(parse_output("{\"n\": 1}", &schema).unwrap(), json!({"n": 1}));
        assert_eq!(parse_output("```json\n{\"n\": 2}\n```", &schema).unwrap(), json!({"n": 2}));
        assert_eq!(parse_output("```\n{\"n\": 3}\n```\n", &schema).unwrap(), json!({"n": 3}));
        let e = parse_output("{\"n\": \"x\"}", &schema).unwrap_err();
        assert!(e.contains("/n") && e.contains("integer"), "{e}");
        let e = parse_output("sure! here it is", &schema).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }
}
