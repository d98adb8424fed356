//! Datasets for `jamjet eval run`: JSONL, one row per line, each
//! `{id?, input, expected?, expected_trajectory?}`. Reading checks every
//! line (an `expected_trajectory` is read as the `trajectory` scorer will
//! read it) and reports every bad one with file and line before anything
//! runs.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

/// One dataset row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `id` as written (a number becomes its text), else `line-<n>`.
    pub id: String,
    /// 1-based line of the file.
    pub line: usize,
    pub input: Map<String, Value>,
    pub expected: Option<Value>,
    /// The tool calls the row's execution is expected to make, checked to
    /// read as an expected trajectory ([`crate::ir::parse_trajectory`]).
    pub expected_trajectory: Option<Value>,
}

/// Every bad line of a dataset, each as `file:line[:column]: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct DatasetError {
    pub problems: Vec<String>,
}

const ROW_KEYS: &[&str] = &["id", "input", "expected", "expected_trajectory"];

/// Read and check a JSONL dataset file.
pub fn read_dataset(path: &Path) -> Result<Vec<Row>, DatasetError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| DatasetError { problems: vec![format!("{file}: cannot read the dataset: {e}")] })?;
    parse_dataset(&text, &file)
}

/// Parse JSONL text; `file` names it in messages. Blank lines are skipped;
/// a dataset with no rows is an error.
pub fn parse_dataset(text: &str, file: &str) -> Result<Vec<Row>, DatasetError> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut bad = |message: String| problems.push(format!("{file}:{line}: {message}"));
        let value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                let text = e.to_string();
                let what = text.rsplit_once(" at line ").map_or(text.as_str(), |(what, _)| what);
                problems.push(format!("{file}:{line}:{}: not valid JSON: {what}", e.column()));
                continue;
            }
        };
        let Value::Object(mut obj) = value else {
            bad(format!("a row must be a JSON object {{\"id\"?, \"input\", \"expected\"?}}, found {}", kind(&value)));
            continue;
        };
        if let Some(k) = obj.keys().find(|k| !ROW_KEYS.contains(&k.as_str())) {
            bad(format!("unknown key `{k}` (expected: id, input, expected, expected_trajectory)"));
            continue;
        }
        let id = match obj.remove("id") {
            None => format!("line-{line}"),
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                bad(format!("`id` must be a non-empty string or a number, found {}", kind(&other)));
                continue;
            }
        };
        let input = match obj.remove("input") {
            Some(Value::Object(m)) => m,
            Some(other) => {
                bad(format!("`input` must be a JSON object (the execution's input state), found {}", kind(&other)));
                continue;
            }
            None => {
                bad("the row has no `input`".to_string());
                continue;
            }
        };
        let expected_trajectory = obj.remove("expected_trajectory").filter(|v| !v.is_null());
        if let Some(Err(e)) = expected_trajectory.as_ref().map(crate::ir::parse_trajectory) {
            bad(format!("`expected_trajectory`: {e}"));
            continue;
        }
        if let Some(first) = ids.insert(id.clone(), line) {
            bad(format!("duplicate id `{id}` (first at line {first})"));
            continue;
        }
        rows.push(Row { id, line, input, expected: obj.remove("expected"), expected_trajectory });
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push(format!("{file}: the dataset has no rows"));
    }
    match problems.is_empty() {
        true => Ok(rows),
        false => Err(DatasetError { problems }),
    }
}

fn kind(v: &Value) -> &'static str {
    crate::ir::json_kind(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_every_bad_line() {
        let rows =
            parse_dataset("{\"id\": 7, \"input\": {\"q\": 1}, \"expected\": \"x\"}\n\n{\"input\": {}}\n", "d.jsonl")
                .unwrap();
        assert_eq!((rows[0].id.as_str(), rows[0].expected.clone()), ("7", Some(Value::from("x"))));
        assert_eq!((rows[1].id.as_str(), rows[1].line), ("line-3", 3));
        let err = parse_dataset("{\"input\": {}}\n{\"input\": 3}\nnope\n{\"inputs\": {}}\n", "d.jsonl").unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(err.problems[0].starts_with("d.jsonl:2: `input` must be a JSON object"), "{err}");
        assert!(err.problems[1].starts_with("d.jsonl:3:2: not valid JSON: expected ident"), "{err}");
        assert!(err.problems[2].contains("unknown key `inputs`"), "{err}");
        assert!(parse_dataset("\n", "e.jsonl").unwrap_err().to_string().contains("no rows"));
    }

    #[test]
    fn an_expected_trajectory_is_checked_when_the_row_is_read() {
        let good =
            "{\"input\": {}, \"expected_trajectory\": [{\"tool\": \"add\", \"args\": {\"a\": {\"any\": true}}}]}\n";
        let rows = parse_dataset(good, "t.jsonl").unwrap();
        assert_eq!(rows[0].expected_trajectory.as_ref().unwrap()[0]["tool"], "add");
        let text = "{\"input\": {}}\n{\"input\": {}, \"expected_trajectory\": [{\"tool\": \"add\", \"args\": {\"a\": {\"regex\": \"(\"}}}]}\n{\"input\": {}, \"expected_trajectory\": \"add\"}\n";
        let err = parse_dataset(text, "t.jsonl").unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(
            err.problems[0]
                .starts_with("t.jsonl:2: `expected_trajectory`: call 1: `args.a`: `regex` is not a valid regex"),
            "{err}"
        );
        assert!(
            err.problems[1].starts_with("t.jsonl:3: `expected_trajectory`: an expected trajectory is a list"),
            "{err}"
        );
        assert_eq!(parse_dataset("{\"input\": {}}\n", "t.jsonl").unwrap()[0].expected_trajectory, None);
    }
}
