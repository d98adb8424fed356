//! `jamjet eval run --baseline previous.json`: a run compared, row by row
//! (by row id), with an earlier run's `--json` report.
//!
//! A row **regressed** when it passed before and fails now, when one of its
//! scorers passed before and fails now, or when a scorer's score dropped;
//! it **improved** in the reverse case (a row with changes both ways counts
//! as regressed). Scores compared are those where more is better: every
//! type but `latency` and `cost`, whose measured milliseconds and dollars
//! move on every run (their pass or fail against the budget still counts).
//! A row only in this run is **new**, one only in the baseline **missing**.
//! Pure: reading the file and printing are the command's.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::RowResult;

/// The parts of an earlier `--json` report a comparison reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    /// The earlier run's id.
    pub run: String,
    /// Present in every report; required so that another JSON file with
    /// `rows` is not taken for one.
    #[allow(dead_code)]
    summary: IgnoredAny,
    pub rows: Vec<BaselineRow>,
}

/// One row of the earlier report.
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineRow {
    pub id: String,
    pub passed: bool,
    pub scores: Vec<BaselineScore>,
}

/// One scorer's verdict in the earlier report.
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineScore {
    pub scorer: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: bool,
    pub score: f64,
}

/// How this run's rows stand against the baseline's (the `baseline`
/// object of `--json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    /// The baseline file, as given.
    pub file: String,
    /// The baseline's run id.
    pub run: String,
    pub regressed: Vec<RowChange>,
    pub improved: Vec<RowChange>,
    /// Row ids in both runs with nothing changed.
    pub unchanged: Vec<String>,
    /// Row ids only in this run.
    pub new: Vec<String>,
    /// Row ids only in the baseline.
    pub missing: Vec<String>,
}

/// A row that regressed or improved, and what changed, one line each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowChange {
    pub id: String,
    pub changes: Vec<String>,
}

/// Read an earlier report; the error says what is wrong with it.
pub fn parse_baseline(text: &str) -> Result<Baseline, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("is not a report of `jamjet eval run --json`: {e}"))
}

/// Compare this run's rows with the baseline's.
pub fn compare(baseline: &Baseline, file: &str, rows: &[RowResult]) -> Comparison {
    let mut out = Comparison { file: file.to_string(), run: baseline.run.clone(), ..Default::default() };
    for row in rows {
        let Some(before) = baseline.rows.iter().find(|b| b.id == row.id) else {
            out.new.push(row.id.clone());
            continue;
        };
        let (worse, better) = changes(before, row);
        match (worse.is_empty(), better.is_empty()) {
            (true, true) => out.unchanged.push(row.id.clone()),
            (true, false) => out.improved.push(RowChange { id: row.id.clone(), changes: better }),
            (false, _) => out.regressed.push(RowChange { id: row.id.clone(), changes: [worse, better].concat() }),
        }
    }
    for before in &baseline.rows {
        if !rows.iter().any(|r| r.id == before.id) && !out.missing.contains(&before.id) {
            out.missing.push(before.id.clone());
        }
    }
    out
}

/// What got worse and what got better from `before` to `now`.
fn changes(before: &BaselineRow, now: &RowResult) -> (Vec<String>, Vec<String>) {
    let (mut worse, mut better) = (Vec::new(), Vec::new());
    match (before.passed, now.passed) {
        (true, false) => worse.push("passed before, fails now".to_string()),
        (false, true) => better.push("failed before, passes now".to_string()),
        _ => {}
    }
    for s in &now.scores {
        let Some(b) = before.scores.iter().find(|b| b.scorer == s.scorer) else { continue };
        let scored = more_is_better(&s.kind) && b.kind == s.kind;
        let (from, to) = (number(b.score), number(s.score));
        match (b.passed, s.passed) {
            (true, false) => worse.push(format!("{}: passed before, fails now: {}", s.scorer, s.reason)),
            (false, true) => better.push(format!("{}: failed before, passes now", s.scorer)),
            _ if scored && s.score < b.score - EPSILON => worse.push(format!("{}: score {from} → {to}", s.scorer)),
            _ if scored && s.score > b.score + EPSILON => better.push(format!("{}: score {from} → {to}", s.scorer)),
            _ => {}
        }
    }
    (worse, better)
}

/// Score changes smaller than this are rounding, not change.
const EPSILON: f64 = 1e-9;

/// Whether a higher score of this scorer type is a better result.
fn more_is_better(kind: &str) -> bool {
    !matches!(kind, "latency" | "cost")
}

/// A score as people write it: `1`, `0.5`, `0.667`.
fn number(f: f64) -> String {
    let text = format!("{f:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::ScoreResult;
    use crate::journal::Usage;

    fn now(id: &str, passed: bool, scores: &[(&str, &str, bool, f64)]) -> RowResult {
        RowResult {
            id: id.into(),
            line: 1,
            execution_id: String::new(),
            status: "completed".into(),
            passed,
            scores: scores
                .iter()
                .map(|(scorer, kind, passed, score)| ScoreResult {
                    scorer: scorer.to_string(),
                    kind: kind.to_string(),
                    passed: *passed,
                    score: *score,
                    reason: "why".into(),
                })
                .collect(),
            error: None,
            latency_ms: 0,
            usage: Usage::default(),
        }
    }

    fn earlier(rows: &[RowResult]) -> Baseline {
        let report = serde_json::json!({"run": "R1", "summary": {}, "rows": rows});
        parse_baseline(&report.to_string()).unwrap()
    }

    #[test]
    fn rows_are_regressed_improved_unchanged_new_or_missing() {
        let before = earlier(&[
            now("same", true, &[("t", "trajectory", true, 1.0), ("l", "latency", true, 10.0)]),
            now("worse", true, &[("t", "trajectory", true, 1.0)]),
            now("lower", false, &[("t", "trajectory", false, 1.0)]),
            now("better", false, &[("t", "trajectory", false, 0.5)]),
            now("gone", true, &[]),
        ]);
        let rows = [
            now("same", true, &[("t", "trajectory", true, 1.0), ("l", "latency", true, 30.0)]),
            now("worse", false, &[("t", "trajectory", false, 0.5)]),
            now("lower", false, &[("t", "trajectory", false, 0.5)]),
            now("better", false, &[("t", "trajectory", false, 0.75)]),
            now("fresh", true, &[]),
        ];
        let c = compare(&before, "prev.json", &rows);
        assert_eq!((c.file.as_str(), c.run.as_str()), ("prev.json", "R1"));
        assert_eq!(
            c.regressed,
            [
                RowChange {
                    id: "worse".into(),
                    changes: vec!["passed before, fails now".into(), "t: passed before, fails now: why".into()]
                },
                RowChange { id: "lower".into(), changes: vec!["t: score 1 → 0.5".into()] },
            ]
        );
        assert_eq!(c.improved, [RowChange { id: "better".into(), changes: vec!["t: score 0.5 → 0.75".into()] }]);
        assert_eq!((c.unchanged, c.new, c.missing), (vec!["same".into()], vec!["fresh".into()], vec!["gone".into()]));
    }

    #[test]
    fn a_file_that_is_not_a_report_says_so() {
        assert!(parse_baseline("nope").unwrap_err().starts_with("is not JSON: expected ident"));
        let e = parse_baseline("{\"run\": \"x\", \"rows\": []}").unwrap_err();
        assert_eq!(e, "is not a report of `jamjet eval run --json`: missing field `summary`");
        let e = parse_baseline("{\"run\": \"x\", \"summary\": {}, \"rows\": [{\"id\": \"a\"}]}").unwrap_err();
        assert!(e.contains("missing field `passed`"), "{e}");
        assert_eq!(number(2.0 / 3.0), "0.667");
    }
}
