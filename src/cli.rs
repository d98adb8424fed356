//! The `jamjet` command line: clap definitions and dispatch. Each command
//! lives in a file of its own under `cli/`. Output for people reads well
//! in a terminal; every command that prints data has `--json`.

mod approve;
mod bench;
mod cancel;
mod dev;
mod eval;
mod executions;
mod follow;
mod fork;
mod held;
mod inspect;
mod limits;
mod prune;
mod remote;
mod repair;
mod replay;
mod report;
mod resume;
mod run;
mod session;
mod sessions;
mod signal;
mod store;
mod table;
mod validate;
mod worker;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::runtime::{self, Error as RuntimeError, Runtime};

#[derive(Parser, Debug)]
#[command(name = "jamjet", version, about = "A durable runtime for AI agents", propagate_version = true)]
pub struct Cli {
    /// Where the journal lives.
    #[arg(long, global = true, env = "JAMJET_DATA_DIR", default_value = ".jamjet")]
    pub data_dir: PathBuf,
    /// A store many processes share instead of the data dir's embedded one: a PostgreSQL URL
    /// (postgres://user:password@host:port/database; ?sslmode=verify-full for TLS).
    #[arg(long, global = true, env = "JAMJET_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Change a limit: NAME=VALUE (repeatable; also JAMJET_LIMITS=NAME=VALUE,...). `jamjet limits` lists them.
    #[arg(long = "limit", global = true, value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// Export every execution as an OpenTelemetry trace over OTLP/HTTP to this collector: its base
    /// URL (http://127.0.0.1:4318; spans go to URL/v1/traces). OTEL_SERVICE_NAME names the service
    /// (default jamjet), OTEL_BSP_SCHEDULE_DELAY how long a span may wait to be sent (ms, default 1000).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a workflow until it ends or waits for an event or an approval.
    Run(run::Args),
    /// Deliver an event to an execution and carry it on.
    Signal(signal::Args),
    /// Approve or reject the approval an execution waits on, and carry it on.
    Approve(approve::Args),
    /// Cancel a running or waiting execution.
    Cancel(cancel::Args),
    /// Serve the runtime over HTTP: REST API, live event streams, A2A agents.
    Dev(dev::Args),
    /// Compile a workflow and print every finding.
    Validate(validate::Args),
    /// Show an execution's timeline.
    Inspect(inspect::Args),
    /// List executions, or (--waiting) what each waiting one waits for.
    Executions(executions::Args),
    /// List sessions (conversations of several tasks), or show one.
    Sessions(sessions::Args),
    /// Rehydrate every running execution and carry each on until it settles.
    Resume(resume::Args),
    /// Remove ended executions older than a span (never running or waiting ones).
    Prune(prune::Args),
    /// Start a new execution from a node visit of another, its state optionally changed.
    Fork(fork::Args),
    /// Fold executions' journals again through this build's state machine; report divergences.
    Replay(replay::Args),
    /// Quarantine what cannot be read and rebuild the index from the histories (data dir not in use).
    Repair(repair::Args),
    /// Run executions from a shared store (--store postgres://...) until stopped: claim, carry on, hand back.
    Worker(worker::Args),
    /// Check or migrate a shared store's schema (--store postgres://...).
    Store(store::Args),
    /// List the live processes of a shared store: what each owns, when it last renewed its leases.
    Workers(workers::Args),
    /// Load runs that measure the runtime (figures for the README).
    Bench(bench::Args),
    /// Run a dataset through a workflow and score every row.
    Eval(eval::Args),
    /// List the limits in force: response and state sizes, steps, fan-out, templates, durations.
    Limits(limits::Args),
}

/// An error the CLI prints (already formatted) before exiting non-zero.
pub(crate) struct Failure {
    pub message: String,
    pub code: u8,
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure { message: e.to_string(), code: 1 }
    }
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure { message: message.into(), code: 1 }
    }
    /// Bad usage (a flag, a file): exit code 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure { message: message.into(), code: 2 }
    }
}

pub(crate) type CliResult = Result<ExitCode, Failure>;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    run_cli(Cli::parse())
}

/// The command line run with `args` (the first the program's name) rather
/// than the process's own arguments: the Python package's `jamjet`
/// command, which runs inside an interpreter whose `argv` is its own.
/// Returns the exit code.
pub fn main_with(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    // An ExitCode has no public value: the codes this command line uses.
    let code = run_cli(cli);
    if code == ExitCode::SUCCESS { 0 } else { exit_code_value(code) }
}

/// The number an `ExitCode` stands for (it has no public accessor; it
/// compares equal to the one made from its number).
fn exit_code_value(code: ExitCode) -> i32 {
    (0..=255u8).find(|n| ExitCode::from(*n) == code).map(i32::from).unwrap_or(1)
}

fn run_cli(cli: Cli) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("JAMJET_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // Panics inside nodes are caught and journaled; keep the default hook
    // quiet about them unless asked (JAMJET_LOG=debug).
    quiet_on_broken_pipe();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The limits this process runs with: the defaults, then `JAMJET_LIMITS`,
/// then each `--limit` (set once, before any command runs).
static LIMITS: std::sync::OnceLock<crate::ir::Limits> = std::sync::OnceLock::new();

/// The limits in force (see [`LIMITS`]).
pub(crate) fn limits() -> crate::ir::Limits {
    LIMITS.get().copied().unwrap_or_default()
}

/// What the compiler may do for a command of this process: these limits,
/// and sub-workflow files from anywhere (your own files).
pub(crate) fn compile_options() -> crate::ir::Options {
    crate::ir::Options { limits: limits(), ..Default::default() }
}

fn read_limits(flags: &[String]) -> Result<crate::ir::Limits, Failure> {
    let mut limits = crate::ir::Limits::default();
    if let Ok(list) = std::env::var("JAMJET_LIMITS") {
        limits.apply_list(&list).map_err(|e| Failure::usage(format!("JAMJET_LIMITS: {e}")))?;
    }
    for flag in flags {
        limits.apply(flag).map_err(|e| Failure::usage(format!("--limit {flag}: {e}")))?;
    }
    Ok(limits)
}

/// The shared store of this process's commands (`--store`, `JAMJET_STORE`), set once.
static STORE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

static OTLP: std::sync::OnceLock<Option<runtime::OtlpConfig>> = std::sync::OnceLock::new();

/// Where traces go (`--otlp-endpoint`), checked.
fn read_otlp(endpoint: Option<String>) -> Result<Option<runtime::OtlpConfig>, Failure> {
    let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) else { return Ok(None) };
    let mut config = runtime::OtlpConfig::new(endpoint);
    config
        .traces_url()
        .map_err(|e| Failure::usage(format!("--otlp-endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT): {e}")))?;
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        config.service_name = name;
    }
    if let Ok(ms) = std::env::var("OTEL_BSP_SCHEDULE_DELAY") {
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| Failure::usage(format!("OTEL_BSP_SCHEDULE_DELAY `{ms}` is not a number of milliseconds")))?;
        config.flush_every = std::time::Duration::from_millis(ms.max(1));
    }
    Ok(Some(config))
}

/// `b`, exporting traces when `--otlp-endpoint` asks for it.
pub(crate) fn traced(b: runtime::Builder) -> runtime::Builder {
    match OTLP.get().and_then(|c| c.clone()) {
        Some(config) => b.otlp(config),
        None => b,
    }
}

/// The shared store's URL, when a command runs on one instead of the data dir.
pub(crate) fn shared_store() -> Option<&'static str> {
    STORE.get().and_then(|s| s.as_deref())
}

/// The shared store of a command that works only on one: its URL, or a
/// usage error that says what the command does (`what`) and how to give it.
pub(crate) fn shared_store_for(what: &str) -> Result<&'static str, Failure> {
    shared_store().ok_or_else(|| {
        Failure::usage(format!("{what}: give it one with --store postgres://user@host:port/database or JAMJET_STORE"))
    })
}

fn read_store(flag: Option<String>) -> Result<Option<String>, Failure> {
    let Some(url) = flag.filter(|u| !u.trim().is_empty()) else { return Ok(None) };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Some(url));
    }
    Err(Failure::usage(format!(
        "--store {}: a shared store is a PostgreSQL URL (postgres://user@host:port/database); \
         the embedded store is chosen with --data-dir DIR",
        crate::journal::redact_url(&url)
    )))
}

/// The journal of the shared store for `command`, opened (connected, its
/// schema brought up to date).
pub(crate) async fn open_shared(url: &str, command: &str) -> Result<Arc<dyn crate::journal::Journal>, Failure> {
    open_shared_with(url, command, crate::journal::PgOptions::default().lease_time).await
}

/// [`open_shared`] with leases of `lease_time`.
pub(crate) async fn open_shared_with(
    url: &str,
    command: &str,
    lease_time: std::time::Duration,
) -> Result<Arc<dyn crate::journal::Journal>, Failure> {
    let options = crate::journal::PgOptions { command: command.to_string(), lease_time };
    let journal = crate::journal::PgJournal::open_with(url, options).await.map_err(|e| Failure::new(e.to_string()))?;
    Ok(Arc::new(journal))
}

/// A builder on the store this process's commands use: the shared one
/// (`--store`) or the data dir, with the CLI's functions and limits.
pub(crate) async fn builder_for(data_dir: &std::path::Path, command: &str) -> Result<runtime::Builder, Failure> {
    let b = traced(bench::functions::registered(Runtime::builder()).limits(limits()));
    Ok(match shared_store() {
        Some(url) => b.journal(open_shared(url, command).await?),
        None => b.data_dir(data_dir),
    })
}

async fn dispatch(cli: Cli) -> CliResult {
    let _ = LIMITS.set(read_limits(&cli.limits)?);
    let _ = STORE.set(read_store(cli.store)?);
    let _ = OTLP.set(read_otlp(cli.otlp_endpoint)?);
    match cli.command {
        Command::Run(a) => run::run(&cli.data_dir, a).await,
        Command::Signal(a) => signal::run(&cli.data_dir, a).await,
        Command::Approve(a) => approve::run(&cli.data_dir, a).await,
        Command::Cancel(a) => cancel::run(&cli.data_dir, a).await,
        Command::Dev(a) => dev::run(&cli.data_dir, a).await,
        Command::Validate(a) => validate::run(a),
        Command::Inspect(a) => inspect::run(&cli.data_dir, a).await,
        Command::Executions(a) => executions::run(&cli.data_dir, a).await,
        Command::Sessions(a) => sessions::run(&cli.data_dir, a).await,
        Command::Resume(a) => resume::run(&cli.data_dir, a).await,
        Command::Prune(a) => prune::run(&cli.data_dir, a).await,
        Command::Fork(a) => fork::run(&cli.data_dir, a).await,
        Command::Replay(a) => replay::run(&cli.data_dir, a).await,
        Command::Repair(a) => repair::run(&cli.data_dir, a).await,
        Command::Worker(a) => worker::run(a).await,
        Command::Workers(a) => workers::run(a).await,
        Command::Store(a) => store::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Eval(a) => eval::run(&cli.data_dir, a).await,
        Command::Limits(a) => limits::run(a),
    }
}

/// Open the data dir's embedded store with nothing resumed and the timers
/// not started yet (a lock error stays as it is: the caller may wait for it).
pub(crate) async fn open_data_dir(data_dir: &std::path::Path) -> Result<Runtime, RuntimeError> {
    traced(bench::functions::registered(Runtime::builder()))
        .data_dir(data_dir)
        .limits(limits())
        .resume_on_open(false)
        .timers(false)
        .open()
        .await
}

/// Open the store (the data dir, or the shared one) with nothing resumed
/// and the timers not started yet.
pub(crate) async fn open_without_timers(data_dir: &std::path::Path, command: &str) -> Result<Runtime, Failure> {
    Ok(builder_for(data_dir, command).await?.resume_on_open(false).timers(false).open().await?)
}

/// `data_dir` as a path from the root, for messages.
pub(crate) fn absolute(data_dir: &std::path::Path) -> PathBuf {
    std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf())
}

/// A data dir a command only reads must exist and hold a journal.
fn existing(data_dir: &std::path::Path) -> Result<(), Failure> {
    if shared_store().is_some() {
        return Ok(());
    }
    let path = absolute(data_dir);
    let elsewhere = "point to another with --data-dir DIR or JAMJET_DATA_DIR=DIR";
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() && path.join("journal").exists() => Ok(()),
        Ok(m) if m.is_dir() => {
            Err(Failure::new(format!("{} is not a jamjet data dir (it holds no journal); {elsewhere}", path.display())))
        }
        Ok(_) => Err(Failure::new(format!("{} is not a directory; {elsewhere}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Failure::new(format!("no data dir at {} (nothing has run here yet); {elsewhere}", path.display())))
        }
        Err(e) => Err(Failure::new(format!("cannot read the data dir {}: {e}; {elsewhere}", path.display()))),
    }
}

pub(crate) fn parse_id(text: &str) -> Result<crate::ExecutionId, Failure> {
    text.parse().map_err(|e: crate::id::BadExecutionId| Failure::new(e.to_string()))
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON output serializes"));
}

/// `jamjet inspect ... | head` closes stdout early: end quietly with the
/// status a SIGPIPE gives (141), as Unix tools do, instead of a panic and
/// a backtrace. What was journaled is durable already (the log syncs
/// before anything is acknowledged), so exiting here loses nothing.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command says what it does, and every flag and argument of
    /// every command has help text: `jamjet CMD --help` leaves nothing
    /// unexplained.
    #[test]
    fn every_command_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
                missing.push(format!("`{path}` (the command itself)"));
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let help = arg.get_help().or(arg.get_long_help()).map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    let name = arg.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| arg.get_id().to_string());
                    missing.push(format!("`{path}` {name}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        walk(&cli, "jamjet", &mut missing);
        assert!(missing.is_empty(), "no help text for:\n{}", missing.join("\n"));
    }
}
