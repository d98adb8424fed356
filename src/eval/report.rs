//! The result of `jamjet eval run`: one [`RowResult`] per dataset row and
//! the [`Summary`] over them (per-scorer pass rate and mean score, overall
//! pass rate, p50/p95 row latency, tokens and cost), and with `--baseline`
//! the comparison with an earlier run. Pure folding; printing is the
//! command's.

use serde::Serialize;

use super::ScoreResult;
use crate::journal::Usage;

/// How one row went.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    pub id: String,
    pub line: usize,
    pub execution_id: String,
    /// The execution's status (`completed`, `failed`, ...).
    pub status: String,
    /// Completed, and every scorer passed.
    pub passed: bool,
    /// Eval nodes' last scores (named `<node>.<scorer>`), then the command line's (`cli.<scorer>`).
    pub scores: Vec<ScoreResult>,
    /// Why the execution failed, if it did.
    pub error: Option<String>,
    pub latency_ms: u64,
    pub usage: Usage,
}

/// One scorer over every row that ran it.
#[derive(Debug, Clone, Serialize)]
pub struct ScorerSummary {
    pub scorer: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub rows: usize,
    pub passed: usize,
    pub pass_rate: f64,
    pub mean_score: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rows: usize,
    pub passed: usize,
    pub pass_rate: f64,
    pub fail_under: Option<f64>,
    /// Whether the pass rate reached `fail_under` (true without one).
    pub ok: bool,
    pub latency_p50_ms: u64,
    pub latency_p95_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    pub wall_ms: u64,
    pub scorers: Vec<ScorerSummary>,
}

/// Everything `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dataset: String,
    pub workflow: String,
    /// The run's id; every row's idempotency key is `eval/<run>/<dataset>/<row id>`.
    pub run: String,
    pub summary: Summary,
    pub rows: Vec<RowResult>,
    /// With `--baseline`: how the rows stand against the earlier run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<super::Comparison>,
}

impl Summary {
    /// Fold rows (in any order) into the summary.
    pub fn of(rows: &[RowResult], fail_under: Option<f64>, wall_ms: u64) -> Summary {
        let passed = rows.iter().filter(|r| r.passed).count();
        let pass_rate = if rows.is_empty() { 0.0 } else { passed as f64 / rows.len() as f64 };
        let mut latencies: Vec<u64> = rows.iter().map(|r| r.latency_ms).collect();
        latencies.sort_unstable();
        let mut usage = Usage::default();
        rows.iter().for_each(|r| usage.add(&r.usage));
        let mut scorers: Vec<ScorerSummary> = Vec::new();
        let mut sums: Vec<f64> = Vec::new();
        for s in rows.iter().flat_map(|r| &r.scores) {
            let i = match scorers.iter().position(|x| x.scorer == s.scorer) {
                Some(i) => i,
                None => {
                    let kind = s.kind.clone();
                    scorers.push(ScorerSummary {
                        scorer: s.scorer.clone(),
                        kind,
                        rows: 0,
                        passed: 0,
                        pass_rate: 0.0,
                        mean_score: 0.0,
                    });
                    sums.push(0.0);
                    scorers.len() - 1
                }
            };
            scorers[i].rows += 1;
            scorers[i].passed += usize::from(s.passed);
            sums[i] += s.score;
        }
        for (s, sum) in scorers.iter_mut().zip(sums) {
            s.pass_rate = s.passed as f64 / s.rows as f64;
            s.mean_score = sum / s.rows as f64;
        }
        Summary {
            rows: rows.len(),
            passed,
            pass_rate,
            fail_under,
            ok: fail_under.is_none_or(|min| pass_rate >= min),
            latency_p50_ms: percentile(&latencies, 50),
            latency_p95_ms: percentile(&latencies, 95),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.input_tokens + usage.output_tokens,
            cost_usd: usage.cost_usd,
            wall_ms,
            scorers,
        }
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
pub fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(passed: bool, latency_ms: u64, score: f64) -> RowResult {
        let s = ScoreResult { scorer: "e.a".into(), kind: "assertion".into(), passed, score, reason: String::new() };
        let usage = Usage { input_tokens: 10, output_tokens: 5, cost_usd: 0.25 };
        RowResult {
            id: "r".into(),
            line: 1,
            execution_id: "x".into(),
            status: "completed".into(),
            passed,
            scores: vec![s],
            error: None,
            latency_ms,
            usage,
        }
    }

    #[test]
    fn summary_folds_rows() {
        let rows: Vec<_> = (1..=20).map(|i| row(i % 4 != 0, i * 10, if i % 4 != 0 { 1.0 } else { 0.0 })).collect();
        let s = Summary::of(&rows, Some(0.9), 5);
        assert_eq!((s.rows, s.passed, s.ok), (20, 15, false));
        assert_eq!((s.latency_p50_ms, s.latency_p95_ms), (100, 190));
        assert_eq!((s.total_tokens, s.cost_usd), (300, 5.0));
        assert_eq!((s.scorers[0].pass_rate, s.scorers[0].mean_score), (0.75, 0.75));
        assert!(Summary::of(&rows, Some(0.75), 5).ok);
        assert_eq!(percentile(&[], 95), 0);
        assert_eq!(percentile(&[7], 50), 7);
    }
}
