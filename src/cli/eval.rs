//! `jamjet eval run dataset.jsonl --workflow wf.yaml`: run every row of a
//! JSONL dataset through a workflow as a real, durable execution (so
//! `jamjet inspect` works on each), score each row with the workflow's
//! eval nodes and the command line's scorers, and print a summary and a
//! per-row report. Exit 1 when the pass rate is below `--fail-under`, 2 on
//! bad usage or input (nothing runs then), 0 otherwise.
//!
//! Each row's idempotency key is `eval/<run id>/<dataset file>/<row id>`,
//! so `jamjet executions` shows which row an execution ran, and a rerun
//! starts fresh executions under a new run id.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Map, Value};

use super::table::print as print_table;
use super::{CliResult, Failure, open_quiet, print_json};
use crate::eval::rubric::judge;
use crate::eval::{Report, Row, RowResult, ScoreResult, Subject, Summary, read_dataset, score};
use crate::id::ExecutionId;
use crate::ir::{Scorer, ScorerKind, Workflow, compile_file_with, referenced_variables};
use crate::journal::{Event, Status, Usage};
use crate::model::resolve_model;
use crate::runtime::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(clap::Subcommand, Debug)]
pub enum Which {
    /// Run a JSONL dataset (`{id?, input, expected?}` per line) through a workflow and score it.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The dataset: one JSON object per line, `{"id"?, "input": {...}, "expected"?}`.
    pub dataset: PathBuf,
    /// The workflow file each row runs through.
    #[arg(long)]
    pub workflow: PathBuf,
    /// Exit 1 when the share of passing rows is below this (0 to 1).
    #[arg(long, alias = "fail-below", value_parser = fraction)]
    pub fail_under: Option<f64>,
    /// How many executions run at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Print one JSON document (summary and rows) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// An assertion on each row's final state: a minijinja expression over
    /// `state`, `output` (the final state) and `expected` (the row's). Repeatable.
    #[arg(long = "assert", value_name = "EXPR")]
    pub asserts: Vec<String>,
    /// A rubric an LLM judge scores each row's final state against (1–5).
    #[arg(long, requires = "rubric_model")]
    pub rubric: Option<String>,
    /// The judge's model (a `models:` entry of the workflow, or a model name).
    #[arg(long, requires = "rubric")]
    pub rubric_model: Option<String>,
    /// Each row's execution must take at most this long.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Each row's execution must cost at most this much.
    #[arg(long)]
    pub cost_usd: Option<f64>,
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        Ok(f) => Err(format!("must be between 0 and 1 (a share of rows, e.g. 0.9), found {f}")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    match a.which {
        Which::Run(a) => eval_run(data_dir, a).await,
    }
}

async fn eval_run(data_dir: &Path, a: RunArgs) -> CliResult {
    let wf = compile_file_with(&a.workflow, &super::compile_options())
        .map_err(|d| usage(format!("the workflow does not compile:\n{d}")))?;
    let scorers = cli_scorers(&a, &wf)?;
    let dataset_name = a.dataset.file_name().map_or("dataset".into(), |n| n.to_string_lossy().into_owned());
    let rows = read_dataset(&a.dataset).map_err(|e| usage(format!("the dataset has bad rows, nothing ran:\n{e}")))?;
    let inputs = row_inputs(&wf, &rows, &a.dataset.display().to_string())?;

    let rt = open_quiet(data_dir).await?;
    let run_id = ExecutionId::new(crate::clock::Clock::now_ms(&crate::clock::SystemClock)).to_string();
    let run_id = run_id.trim_start_matches("exec_").to_string();
    let bar = if a.json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        super::bench::progress(rows.len(), "eval")
    };
    let began = Instant::now();
    let jobs = rows.iter().zip(inputs).map(|(row, input)| {
        let key = format!("eval/{run_id}/{dataset_name}/{}", row.id);
        let (rt, wf, scorers, bar) = (&rt, &wf, &scorers, &bar);
        async move {
            let result = run_row(rt, wf, row, input, &key, scorers).await;
            bar.inc(1);
            result
        }
    });
    let mut results: Vec<RowResult> =
        futures::stream::iter(jobs).buffer_unordered(a.concurrency as usize).collect().await;
    bar.finish_and_clear();
    let wall_ms = began.elapsed().as_millis() as u64;
    rt.shutdown().await;
    results.sort_by_key(|r| r.line);

    let summary = Summary::of(&results, a.fail_under, wall_ms);
    let report = Report {
        dataset: a.dataset.display().to_string(),
        workflow: a.workflow.display().to_string(),
        run: run_id,
        summary,
        rows: results,
    };
    if a.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    match (report.summary.ok, report.summary.fail_under) {
        (false, Some(min)) => {
            eprintln!(
                "error: pass rate {:.1}% is below --fail-under {:.1}%",
                report.summary.pass_rate * 100.0,
                min * 100.0
            );
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The command line's scorers, checked before anything runs.
fn cli_scorers(a: &RunArgs, wf: &Workflow) -> Result<Vec<Scorer>, Failure> {
    let mut out = Vec::new();
    for (i, expr) in a.asserts.iter().enumerate() {
        check_assertion(expr, wf).map_err(|m| usage(format!("--assert `{expr}`: {m}")))?;
        let name = if a.asserts.len() > 1 { format!("cli.assert#{}", i + 1) } else { "cli.assert".into() };
        out.push(Scorer { name, kind: ScorerKind::Assertion { expr: expr.clone() } });
    }
    if let Some(max_ms) = a.latency_ms {
        out.push(Scorer { name: "cli.latency".into(), kind: ScorerKind::Latency { max_ms } });
    }
    if let Some(max_usd) = a.cost_usd {
        if !(max_usd >= 0.0 && max_usd.is_finite()) {
            return Err(usage(format!("--cost-usd must be a non-negative number, found {max_usd}")));
        }
        out.push(Scorer { name: "cli.cost".into(), kind: ScorerKind::Cost { max_usd } });
    }
    if let (Some(rubric), Some(model)) = (&a.rubric, &a.rubric_model) {
        let config = resolve_model(model, &wf.models, &wf.prices).map_err(|e| usage(format!("--rubric-model: {e}")))?;
        let kind = ScorerKind::Rubric {
            model: model.clone(),
            config: Box::new(config),
            rubric: rubric.clone(),
            min_score: 3.0,
        };
        out.push(Scorer { name: "cli.rubric".into(), kind });
    }
    Ok(out)
}

/// An assertion compiles and reads only `state.<declared key>`, `output` and `expected`.
fn check_assertion(expr: &str, wf: &Workflow) -> Result<(), String> {
    let vars = referenced_variables(expr, true).map_err(|e| format!("does not compile: {}", e.message))?;
    for var in vars {
        let mut parts = var.split('.');
        match (parts.next(), parts.next()) {
            (Some("state"), Some(key)) if wf.state_schema.get(key).is_none() => {
                return Err(format!("reads `state.{key}`, which is not in the workflow's `state_schema`"));
            }
            (Some("state" | "output" | "expected"), _) => {}
            (head, _) => {
                let head = head.unwrap_or_default();
                return Err(format!("reads `{head}`, which is not defined: only `state`, `output` and `expected` are"));
            }
        }
    }
    Ok(())
}

/// Each row's input, checked against the state schema and the keys the
/// workflow requires, with its defaults applied (all rows, before anything
/// runs). A row's `expected` joins its input when the schema
/// declares an `expected` key, so eval nodes can read it as `state.expected`.
fn row_inputs(wf: &Workflow, rows: &[Row], file: &str) -> Result<Vec<Map<String, Value>>, Failure> {
    let mut problems = Vec::new();
    let mut inputs = Vec::with_capacity(rows.len());
    let required = crate::ir::required_inputs(wf);
    for row in rows {
        let mut input = row.input.clone();
        if let Some(expected) = &row.expected
            && wf.state_schema.get("expected").is_some()
            && !input.contains_key("expected")
        {
            input.insert("expected".into(), expected.clone());
        }
        match crate::ir::prepare_input(wf, &required, Value::Object(input)) {
            Ok(input) => inputs.push(input),
            Err(errors) => {
                let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
                problems.push(format!("{file}:{}: row `{}`: input refused: {}", row.line, row.id, why.join("; ")));
                inputs.push(Map::new());
            }
        }
    }
    match problems.is_empty() {
        true => Ok(inputs),
        false => Err(usage(format!("the dataset has bad rows, nothing ran:\n{}", problems.join("\n")))),
    }
}

/// Run one row to its end and score it.
async fn run_row(
    rt: &Runtime,
    wf: &Workflow,
    row: &Row,
    input: Map<String, Value>,
    key: &str,
    scorers: &[Scorer],
) -> RowResult {
    let began = Instant::now();
    let mut result = RowResult {
        id: row.id.clone(),
        line: row.line,
        execution_id: String::new(),
        status: "not_started".into(),
        passed: false,
        scores: Vec::new(),
        error: None,
        latency_ms: 0,
        usage: Usage::default(),
    };
    let id = match rt.submit_keyed(wf, Value::Object(input), Some(key)).await {
        Ok(id) => id,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    result.execution_id = id.to_string();
    let outcome = rt.settle(id).await;
    result.latency_ms = began.elapsed().as_millis() as u64;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    result.status = outcome.status.to_string();
    result.error = outcome.error.clone();
    if outcome.status == Status::Waiting {
        result.error = Some("the execution is waiting for an event or an approval".into());
    }
    // The last scores of each eval node, and the usage of every exchange.
    let records = rt.events(id).unwrap_or_default();
    let mut last: BTreeMap<String, (u64, Vec<ScoreResult>)> = BTreeMap::new();
    for r in &records {
        match &r.event {
            Event::Exchange { usage, .. } => result.usage.add(usage),
            Event::Scored { node, scores, .. } => {
                let parsed: Vec<ScoreResult> =
                    scores.value().ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
                last.insert(node.clone(), (r.seq, parsed));
            }
            _ => {}
        }
    }
    let mut by_order: Vec<(String, (u64, Vec<ScoreResult>))> = last.into_iter().collect();
    by_order.sort_by_key(|(_, (seq, _))| *seq);
    for (node, (_, scores)) in by_order {
        result.scores.extend(scores.into_iter().map(|s| ScoreResult { scorer: format!("{node}.{}", s.scorer), ..s }));
    }
    let elapsed_ms = match (records.first(), records.last()) {
        (Some(a), Some(b)) => b.at_ms.saturating_sub(a.at_ms),
        _ => result.latency_ms,
    };
    let no_state = Map::new();
    let state = outcome.state.as_object().unwrap_or(&no_state);
    let expected = row.expected.as_ref().unwrap_or(&Value::Null);
    let subject = Subject { state, output: &outcome.state, expected, elapsed_ms, cost_usd: result.usage.cost_usd };
    for s in scorers {
        let ScorerKind::Rubric { config, rubric, min_score, .. } = &s.kind else {
            let services = rt.services();
            result.scores.extend(score(s, &subject, &services.templates, &services.compiled));
            continue;
        };
        // The judge runs outside the execution: its usage joins the row's.
        let judge_key = format!("{key}/judge");
        match judge(rt.services(), config, &s.name, rubric, *min_score, &subject, &judge_key).await {
            Ok((verdict, exchange)) => {
                result.usage.add(&exchange.usage);
                result.scores.push(verdict);
            }
            Err(e) => {
                if let Some(x) = &e.exchange {
                    result.usage.add(&x.usage);
                }
                let reason = format!("the judge failed: {e}");
                result.scores.push(ScoreResult {
                    scorer: s.name.clone(),
                    kind: "rubric".into(),
                    passed: false,
                    score: 0.0,
                    reason,
                });
            }
        }
    }
    result.passed = outcome.status == Status::Completed && result.scores.iter().all(|s| s.passed);
    result
}

fn percent(f: f64) -> String {
    format!("{:.1}%", f * 100.0)
}

fn print_report(r: &Report) {
    let s = &r.summary;
    println!(
        "eval run {}: {} through {}: {}/{} rows passed ({})",
        r.run,
        r.dataset,
        r.workflow,
        s.passed,
        s.rows,
        percent(s.pass_rate)
    );
    println!();
    if s.scorers.is_empty() {
        println!("no scorers: a row passes when its execution completes");
    } else {
        let rows: Vec<Vec<String>> = s
            .scorers
            .iter()
            .map(|x| {
                vec![
                    x.scorer.clone(),
                    x.kind.clone(),
                    format!("{}/{}", x.passed, x.rows),
                    percent(x.pass_rate),
                    format!("{:.3}", x.mean_score),
                ]
            })
            .collect();
        print_table(&["SCORER", "TYPE", "PASSED", "PASS RATE", "MEAN SCORE"], &rows);
    }
    println!();
    println!(
        "latency p50 {} ms, p95 {} ms; tokens {} (in {}, out {}); cost ${:.6}; wall {:.2} s",
        s.latency_p50_ms,
        s.latency_p95_ms,
        s.total_tokens,
        s.input_tokens,
        s.output_tokens,
        s.cost_usd,
        s.wall_ms as f64 / 1e3
    );
    println!();
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            let mut failing: Vec<String> =
                row.scores.iter().filter(|x| !x.passed).map(|x| format!("{}: {}", x.scorer, x.reason)).collect();
            if let Some(e) = &row.error {
                failing.insert(0, format!("{}: {}", row.status, e.lines().next().unwrap_or_default()));
            }
            vec![
                row.id.clone(),
                if row.passed { "pass".into() } else { "FAIL".into() },
                row.execution_id.clone(),
                failing.join("; ").replace('\n', " "),
            ]
        })
        .collect();
    print_table(&["ROW", "RESULT", "EXECUTION", "FAILING"], &rows);
    if let Some(min) = s.fail_under {
        println!();
        println!(
            "pass rate {} (--fail-under {}): {}",
            percent(s.pass_rate),
            percent(min),
            if s.ok { "ok" } else { "FAIL" }
        );
    }
}
