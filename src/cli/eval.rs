//! `jamjet eval run dataset.jsonl --workflow wf.yaml`: run every row of a
//! JSONL dataset through a workflow as a real, durable execution (so
//! `jamjet inspect` works on each), score each row with the workflow's
//! eval nodes and the command line's scorers, and print a summary and a
//! per-row report. With `--baseline`, each row is compared with an earlier
//! run's `--json` report. Exit 1 when the pass rate is below `--fail-under`
//! or a row regressed against the baseline, 2 on bad usage or input
//! (nothing runs then), 0 otherwise.
//!
//! Each row's idempotency key is `eval/<run id>/<dataset file>/<row id>`,
//! so `jamjet executions` shows which row an execution ran, and a rerun
//! starts fresh executions under a new run id.
//!
//! `--workflow` is a file, or the id of a workflow registered in the data
//! dir or on the server (`ID` for the one registered last, `ID@VERSION`).
//! With `--server URL`, or when another process holds the data dir, the
//! rows run there (a file's workflow is submitted inline, as `run` does
//! through a holder) and are followed over the API; scoring (assertions,
//! the rubric judge) runs in this process either way.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{Map, Value};

use super::remote::{Remote, ServerArg, outcome_of, settle};
use super::session::{Opened, Session};
use super::table::print as print_table;
use super::{CliResult, Failure, print_json};
use crate::eval::rubric::judge;
use crate::eval::{
    Baseline, Report, Row, RowResult, ScoreResult, Subject, Summary, compare, parse_baseline, read_dataset, score,
};
use crate::id::ExecutionId;
use crate::ir::{Scorer, ScorerKind, TrajectoryMatch, Workflow, compile_file_with, referenced_variables};
use crate::journal::{Event, Record, Status, Usage};
use crate::model::resolve_model;
use crate::nodes::Env;
use crate::runtime::{Outcome, Runtime};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(clap::Subcommand, Debug)]
pub enum Which {
    /// Run a JSONL dataset (`{id?, input, expected?, expected_trajectory?}` per line) through a workflow and score it.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The dataset: one JSON object per line, `{"id"?, "input": {...}, "expected"?, "expected_trajectory"?}`.
    pub dataset: PathBuf,
    /// The workflow each row runs through: a file, or the id of a workflow
    /// registered in the data dir or on the server (ID, or ID@VERSION).
    #[arg(long, value_name = "FILE|ID[@VERSION]")]
    pub workflow: String,
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
    /// Score each row's tool calls against its `expected_trajectory`:
    /// `in_order` (other calls may come between), `subsequence` (the
    /// same), `exact` (no other call) or `set` (any order).
    #[arg(long, value_name = "MODE", value_parser = trajectory_mode)]
    pub trajectory: Option<TrajectoryMatch>,
    /// An earlier run's `--json` report: say which rows regressed or
    /// improved against it, and exit 1 when one regressed.
    #[arg(long, value_name = "REPORT.json")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArg,
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        Ok(f) => Err(format!("must be between 0 and 1 (a share of rows, e.g. 0.9), found {f}")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

fn trajectory_mode(text: &str) -> Result<TrajectoryMatch, String> {
    TrajectoryMatch::parse(text).ok_or_else(|| format!("expected one of: {}", TrajectoryMatch::NAMES.join(", ")))
}

fn usage(message: impl Into<String>) -> Failure {
    Failure::usage(message)
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    match a.which {
        Which::Run(a) => eval_run(data_dir, a).await,
    }
}

/// Where the rows run, and how each is submitted there.
enum Runner<'a> {
    /// On the store opened here.
    Local(&'a Runtime),
    /// Through a server or the data dir's holder; `scoring` is a runtime
    /// of this process (in memory) for the scorers and the judge.
    Remote { remote: &'a Remote, how: Submit, scoring: &'a Runtime },
}

/// How a row's execution is submitted through the API.
enum Submit {
    /// The workflow compiled here, inline (not registered there).
    Inline,
    /// The one registered under this id and version.
    Registered { id: String, version: String },
}

/// `--workflow`: a file's path, or `ID[@VERSION]` when no such file exists.
enum Named {
    File(PathBuf),
    Id { id: String, version: Option<String> },
}

fn named(text: &str) -> Named {
    let path = PathBuf::from(text);
    if path.exists() {
        return Named::File(path);
    }
    match text.rsplit_once('@') {
        Some((id, v)) if !id.is_empty() && !v.is_empty() => Named::Id { id: id.into(), version: Some(v.into()) },
        _ => Named::Id { id: text.into(), version: None },
    }
}

async fn eval_run(data_dir: &Path, a: RunArgs) -> CliResult {
    // The baseline is read before anything runs: a bad one wastes no run.
    let baseline = a.baseline.as_deref().map(read_baseline).transpose()?;
    let baseline = baseline.as_ref();
    let named = named(&a.workflow);
    // A file is compiled, and the rows checked, before anything opens.
    let compiled = match &named {
        Named::File(path) => {
            let wf = compile_file_with(path, &super::compile_options())
                .map_err(|d| usage(format!("the workflow does not compile:\n{d}")))?;
            let prepared = prepare(&wf, &a)?;
            Some((wf, prepared))
        }
        Named::Id { .. } => None,
    };
    if let Some(url) = &a.server.server {
        return eval_remote(&Remote::server(url, &a.server)?, &named, compiled, &a, baseline).await;
    }
    let s = match Session::open(data_dir, "eval").await? {
        Opened::Held(remote) => return eval_remote(&remote, &named, compiled, &a, baseline).await,
        Opened::Local(s) => s,
    };
    let result = async {
        let (wf, prepared, shown) = match (compiled, &named) {
            (Some((wf, p)), _) => (wf, Some(p), a.workflow.clone()),
            (None, Named::Id { id, version }) => match s.rt.registered(id, version.as_deref()) {
                Ok((r, wf)) => ((*wf).clone(), None, format!("{}@{}", r.workflow_id, r.version)),
                Err(crate::runtime::Error::UnknownWorkflow { .. }) => {
                    let known = s.rt.workflows()?.into_iter().map(|r| r.workflow_id).collect();
                    return Err(unknown_workflow(&a.workflow, &format!("the data dir {}", data_dir.display()), known));
                }
                Err(e) => return Err(e.into()),
            },
            (None, Named::File(_)) => unreachable!("a file is compiled above"),
        };
        eval_with(Runner::Local(&s.rt), &wf, prepared, shown, &a, Some(&s), baseline).await
    }
    .await;
    match result {
        Ok(Some(code)) => s.finish(Ok(code)).await,
        Ok(None) => {
            let goes_on = s.inv.command("resume");
            s.interrupted(&[], &goes_on).await
        }
        Err(e) => s.finish(Err(e)).await,
    }
}

/// `eval run` through a server or the data dir's holder.
async fn eval_remote(
    remote: &Remote,
    named: &Named,
    compiled: Option<(Workflow, Prepared)>,
    a: &RunArgs,
    baseline: Option<&Baseline>,
) -> CliResult {
    let (wf, prepared, shown, how) = match (compiled, named) {
        (Some((wf, p)), _) => (wf, Some(p), a.workflow.clone(), Submit::Inline),
        (None, Named::Id { id, version }) => match remote.client.workflow(id, version.as_deref()).await {
            Ok((r, wf)) => {
                let shown = format!("{}@{}", r.workflow_id, r.version);
                (wf, None, shown, Submit::Registered { id: r.workflow_id, version: r.version })
            }
            Err(e) if e.code() == Some("unknown_workflow") => {
                let known = remote.client.workflows().await?.into_iter().map(|r| r.workflow_id).collect();
                return Err(unknown_workflow(&a.workflow, &remote.place(), known));
            }
            Err(e) => return Err(e.into()),
        },
        (None, Named::File(_)) => unreachable!("a file is compiled first"),
    };
    let scoring =
        Runtime::builder().in_memory().limits(super::limits()).resume_on_open(false).timers(false).open().await?;
    // A Ctrl-C ends this process; what was submitted goes on there.
    let runner = Runner::Remote { remote, how, scoring: &scoring };
    let result = eval_with(runner, &wf, prepared, shown, a, None, baseline).await;
    scoring.shutdown().await;
    Ok(result?.unwrap_or(ExitCode::from(super::session::INTERRUPTED)))
}

/// `--workflow` names neither a file nor a registered workflow.
fn unknown_workflow(text: &str, place: &str, mut known: Vec<String>) -> Failure {
    known.sort();
    known.dedup();
    let listed = if known.is_empty() {
        "none is registered there".to_string()
    } else {
        format!("registered there: {}", known.join(", "))
    };
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into());
    usage(format!(
        "--workflow `{text}` is neither a workflow file (there is no {text} in {cwd}) nor the id of a workflow \
         registered in {place} ({listed}); give a file's path, or ID or ID@VERSION of a registered workflow"
    ))
}

/// What runs: the command line's scorers, the rows and their inputs,
/// every one checked against the workflow before anything runs.
struct Prepared {
    scorers: Vec<Scorer>,
    rows: Vec<Row>,
    inputs: Vec<Map<String, Value>>,
}

fn prepare(wf: &Workflow, a: &RunArgs) -> Result<Prepared, Failure> {
    let scorers = cli_scorers(a, wf)?;
    let rows = read_dataset(&a.dataset).map_err(|e| usage(format!("the dataset has bad rows, nothing ran:\n{e}")))?;
    check_trajectories(wf, a.trajectory.is_some(), &rows, &a.dataset.display().to_string())?;
    let inputs = row_inputs(wf, &rows, &a.dataset.display().to_string())?;
    Ok(Prepared { scorers, rows, inputs })
}

/// Check the rows (unless done), run them through `wf` and print the
/// report (compared with the baseline, if any); the exit code, or `None`
/// when `session` saw a Ctrl-C first.
async fn eval_with(
    runner: Runner<'_>,
    wf: &Workflow,
    prepared: Option<Prepared>,
    shown: String,
    a: &RunArgs,
    session: Option<&Session>,
    baseline: Option<&Baseline>,
) -> Result<Option<ExitCode>, Failure> {
    let Prepared { scorers, rows, inputs } = match prepared {
        Some(p) => p,
        None => prepare(wf, a)?,
    };
    let dataset_name = a.dataset.file_name().map_or("dataset".into(), |n| n.to_string_lossy().into_owned());

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
        let (runner, scorers, bar) = (&runner, &scorers, &bar);
        async move {
            let result = run_row(runner, wf, row, input, &key, scorers).await;
            bar.inc(1);
            result
        }
    });
    let all = futures::stream::iter(jobs).buffer_unordered(a.concurrency as usize).collect::<Vec<RowResult>>();
    let results = match session {
        Some(s) => s.until_interrupted(all).await,
        None => Some(all.await),
    };
    let Some(mut results) = results else {
        bar.finish_and_clear();
        return Ok(None);
    };
    bar.finish_and_clear();
    let wall_ms = began.elapsed().as_millis() as u64;
    results.sort_by_key(|r| r.line);

    let summary = Summary::of(&results, a.fail_under, wall_ms);
    let file = a.baseline.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let baseline = baseline.map(|b| compare(b, &file, &results));
    let report = Report {
        dataset: a.dataset.display().to_string(),
        workflow: shown,
        run: run_id,
        summary,
        rows: results,
        baseline,
    };
    if a.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(Some(exit_code(&report)))
}

/// 1 when the pass rate is below `--fail-under` or a row regressed against
/// the baseline (each said on stderr), else 0.
fn exit_code(report: &Report) -> ExitCode {
    let mut failed = false;
    if let (false, Some(min)) = (report.summary.ok, report.summary.fail_under) {
        eprintln!(
            "error: pass rate {:.1}% is below --fail-under {:.1}%",
            report.summary.pass_rate * 100.0,
            min * 100.0
        );
        failed = true;
    }
    if let Some(b) = report.baseline.as_ref().filter(|b| !b.regressed.is_empty()) {
        let ids: Vec<&str> = b.regressed.iter().map(|r| r.id.as_str()).collect();
        let rows = crate::plural::count(ids.len(), "row", "rows");
        eprintln!("error: {rows} regressed against the baseline {}: {}", b.file, ids.join(", "));
        failed = true;
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// `--baseline FILE`: an earlier `--json` report, or a usage error naming the file.
fn read_baseline(path: &Path) -> Result<Baseline, Failure> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--baseline {file}: cannot read it: {e}")))?;
    parse_baseline(&text).map_err(|e| usage(format!("--baseline {file} {e}")))
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
    if let Some(mode) = a.trajectory {
        let kind = ScorerKind::Trajectory { expected: None, mode };
        out.push(Scorer { name: "cli.trajectory".into(), kind });
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

/// Every row has an `expected_trajectory` when `--trajectory` scores it,
/// and one that has it is scored: by `--trajectory`, or by the workflow's
/// `trajectory` scorers through a declared `expected_trajectory` state key.
fn check_trajectories(wf: &Workflow, flag: bool, rows: &[Row], file: &str) -> Result<(), Failure> {
    let declared = wf.state_schema.get("expected_trajectory").is_some();
    let problems: Vec<String> = rows
        .iter()
        .filter_map(|row| match (row.expected_trajectory.is_some(), flag, declared) {
            (false, true, _) => Some(format!(
                "{file}:{}: row `{}` has no `expected_trajectory` for --trajectory to score",
                row.line, row.id
            )),
            (true, false, false) => Some(format!(
                "{file}:{}: row `{}` has an `expected_trajectory`, but nothing scores it: add --trajectory MODE, or \
                 declare `expected_trajectory` in the workflow's `state_schema` for its `trajectory` scorers",
                row.line, row.id
            )),
            _ => None,
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(usage(format!("the dataset has bad rows, nothing ran:\n{}", problems.join("\n")))),
    }
}

/// Each row's input, checked against the state schema and the keys the
/// workflow requires, with its defaults applied (all rows, before anything
/// runs). A row's `expected` (and `expected_trajectory`) joins its input
/// when the schema declares that key, so eval nodes can read it as
/// `state.expected` (`state.expected_trajectory`).
fn row_inputs(wf: &Workflow, rows: &[Row], file: &str) -> Result<Vec<Map<String, Value>>, Failure> {
    let mut problems = Vec::new();
    let mut inputs = Vec::with_capacity(rows.len());
    let required = crate::ir::required_inputs(wf);
    for row in rows {
        let mut input = row.input.clone();
        for (key, value) in [("expected", &row.expected), ("expected_trajectory", &row.expected_trajectory)] {
            if let Some(value) = value
                && wf.state_schema.get(key).is_some()
                && !input.contains_key(key)
            {
                input.insert(key.into(), value.clone());
            }
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

/// Run one row's execution to where it settles: its id, how it stands
/// (or why it could not be followed), its history.
async fn execute(
    runner: &Runner<'_>,
    wf: &Workflow,
    input: Value,
    key: &str,
) -> Result<(ExecutionId, Result<Outcome, String>, Vec<Record>), String> {
    match runner {
        Runner::Local(rt) => {
            let id = rt.submit_keyed(wf, input, Some(key)).await.map_err(|e| e.to_string())?;
            let outcome = rt.settle(id).await.map_err(|e| e.to_string());
            Ok((id, outcome, rt.events(id).unwrap_or_default()))
        }
        Runner::Remote { remote, how, .. } => {
            let client = &remote.client;
            let submitted = match how {
                Submit::Inline => client.submit_inline(wf, &input, Some(key), None).await,
                Submit::Registered { id, version } => client.submit(id, Some(version), &input, Some(key), None).await,
            };
            let id = submitted.map_err(|e| e.to_string())?.id;
            let outcome = settle(client, id, None).await.map(|x| outcome_of(&x)).map_err(|f| f.message);
            Ok((id, outcome, client.events(id, 0).await.unwrap_or_default()))
        }
    }
}

/// Run one row to its end and score it.
async fn run_row(
    runner: &Runner<'_>,
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
    let (id, outcome, records) = match execute(runner, wf, Value::Object(input), key).await {
        Ok(done) => done,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    result.execution_id = id.to_string();
    result.latency_ms = began.elapsed().as_millis() as u64;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    result.status = outcome.status.to_string();
    result.error = outcome.error.clone();
    if outcome.status == Status::Waiting {
        result.error = Some("the execution is waiting for an event or an approval".into());
    }
    // The last scores of each eval node, and the usage of every exchange.
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
    let tool_calls = crate::actors::tool_calls(&records);
    let subject = Subject {
        state,
        output: &outcome.state,
        expected,
        elapsed_ms,
        cost_usd: result.usage.cost_usd,
        tool_calls: &tool_calls,
        expected_trajectory: row.expected_trajectory.as_ref().unwrap_or(&Value::Null),
    };
    let services: &Env = match runner {
        Runner::Local(rt) => &rt.services().env,
        Runner::Remote { scoring, .. } => &scoring.services().env,
    };
    for s in scorers {
        let ScorerKind::Rubric { config, rubric, min_score, .. } = &s.kind else {
            result.scores.extend(score(s, &subject, &services.templates, &services.compiled));
            continue;
        };
        // The judge runs outside the execution: its usage joins the row's.
        let judge_key = format!("{key}/judge");
        match judge(services, config, &s.name, rubric, *min_score, &subject, &judge_key).await {
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
        "eval run {}: {} through {}: {}/{} {} passed ({})",
        r.run,
        r.dataset,
        r.workflow,
        s.passed,
        s.rows,
        crate::plural::noun(s.rows, "row", "rows"),
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
    if let Some(b) = &r.baseline {
        print_baseline(b);
    }
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

/// The comparison with the baseline: a summary line, then each row that
/// changed with what changed, and the rows new or missing.
fn print_baseline(b: &crate::eval::Comparison) {
    println!();
    println!(
        "baseline {} (run {}): {} regressed, {} improved, {} unchanged, {} new, {} missing",
        b.file,
        b.run,
        b.regressed.len(),
        b.improved.len(),
        b.unchanged.len(),
        b.new.len(),
        b.missing.len()
    );
    for (word, rows) in [("regressed", &b.regressed), ("improved", &b.improved)] {
        for row in rows {
            println!("  {word} {}: {}", row.id, row.changes.join("; ").replace('\n', " "));
        }
    }
    for (word, ids) in [("new", &b.new), ("missing", &b.missing)] {
        if !ids.is_empty() {
            println!("  {word}: {}", ids.join(", "));
        }
    }
}
