//! `jamjet dev`: the runtime as a server. Opens the data dir, rehydrates
//! every unfinished execution, registers the workflows of `--workflows`
//! (and, for every registered workflow, those serving its local agents),
//! and serves the REST API and A2A agents until SIGINT or SIGTERM; then it
//! stops accepting, lets in-flight requests finish, and stops the runtime
//! (what was running resumes at the next start).
//!
//! The first line on stdout is `jamjet dev listening on http://ADDR`
//! (`https://` with `--tls-cert`; with `--bind 127.0.0.1:0`, the port the
//! OS picked).
//!
//! It also serves the API on the data dir's socket (`<data-dir>/jamjet.sock`,
//! owner-only), so `jamjet run`, `inspect`, `signal`… on the same data dir
//! in another terminal go through it without `--server`.
//!
//! `--tls-cert FILE --tls-key FILE` serve HTTPS instead (the first line
//! then says `https://`); `--client-ca FILE` also asks every client for a
//! certificate that CA signed (mTLS), whose names the keys file maps to
//! what it may do ([`crate::server::auth`]). The files are checked before
//! anything opens.
//!
//! Secrets never go on the command line (where `ps` shows them): API keys
//! come from `JAMJET_API_KEYS` or `--api-keys-file`. What posted workflows
//! may do is the operator's call: `--allow-commands` / `--allow-command`
//! (stdio MCP servers), `--workflows DIR` (the only place their
//! sub-workflow files may come from).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::{CliResult, Failure};
use crate::runtime::Runtime;
use crate::server::auth::Keys;
use crate::server::policy::{Commands, Env, Policy};
use crate::server::socket::{Holder, Linger};
use crate::server::{self, AppState, Config};

/// Where API keys may be given in clear (never a flag: `ps` would show it).
const KEYS_ENV: &str = "JAMJET_API_KEYS";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on. Anything but loopback needs API keys.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub bind: SocketAddr,
    /// Register every workflow (*.yaml, *.yml) in this folder at start; posted
    /// workflows may include sub-workflow files from it (and nowhere else).
    #[arg(long)]
    pub workflows: Option<PathBuf>,
    /// Let posted workflows declare stdio MCP servers running any command.
    #[arg(long)]
    pub allow_commands: bool,
    /// Let posted workflows declare stdio MCP servers whose `command:` is exactly CMD (repeatable).
    #[arg(long = "allow-command", value_name = "CMD")]
    pub allow_command: Vec<String>,
    /// Let posted workflows read (and send) the environment variable NAME (repeatable; `*` for any).
    /// Without it they may only send a model provider's default key to that provider.
    #[arg(long = "allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,
    /// Serve every registered workflow as an A2A agent, not only those marked `a2a:`.
    #[arg(long)]
    pub a2a: bool,
    /// The largest request body accepted, bytes.
    #[arg(long, default_value_t = server::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// The URL peers reach this server at (agent cards); default http://BIND.
    #[arg(long, env = "JAMJET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A file of accepted keys' SHA-256 hex digests, one per line (`#` comments).
    /// Keys may also come from JAMJET_API_KEYS=key1,key2 (never from a flag).
    #[arg(long)]
    pub api_keys_file: Option<PathBuf>,
    /// Allow cross-origin browser requests from ORIGIN, e.g. https://app.example (repeatable);
    /// CORS is off without it and requests from other web pages are refused.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Print a new random API key and its digest line for --api-keys-file, then exit.
    #[arg(long)]
    pub new_key: bool,
    /// How long a session (an A2A contextId, `run --session`) may stay idle
    /// before it expires: 500ms, 30s, 10m, 24h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_span)]
    pub session_idle: std::time::Duration,
    /// How long a message of a session waits for the session's previous task to end.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_span)]
    pub session_wait: std::time::Duration,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate signed by this CA (PEM) from every client (mTLS);
    /// `cert:NAME read|all` lines in --api-keys-file say what each may do. Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Retention: prune ended executions that ended this long ago (30d, 12h), at the start and
    /// every --retention-every, in batches while serving (never running or waiting ones).
    #[arg(long, value_name = "SPAN", value_parser = parse_span)]
    pub retention: Option<std::time::Duration>,
    /// With --retention: only these ended statuses, comma-separated (default: all three).
    #[arg(long, value_delimiter = ',', value_name = "STATUS,...", requires = "retention")]
    pub retention_status: Vec<String>,
    /// With --retention: keep the newest N ended executions of each workflow, however old.
    #[arg(long, value_name = "N", requires = "retention")]
    pub retention_keep_last: Option<usize>,
    /// How often --retention prunes.
    #[arg(long, value_name = "SPAN", default_value = "1h", value_parser = parse_span)]
    pub retention_every: std::time::Duration,
}

/// The policy of `--retention` and its companions, checked before anything starts.
fn retention(a: &Args) -> Result<Option<crate::runtime::Retention>, Failure> {
    let Some(age) = a.retention else { return Ok(None) };
    let statuses = crate::runtime::Retention::statuses(&a.retention_status)
        .map_err(|e| Failure::usage(format!("--retention-status: {e}")))?;
    let ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    crate::runtime::Retention::new(ms, statuses, a.retention_keep_last)
        .map(Some)
        .map_err(|e| Failure::usage(format!("--retention-status: {e}")))
}

/// Prune by `policy` now and every `every`, until the server stops;
/// each prune that removed something is logged with what it freed.
async fn keep_pruning(rt: Runtime, policy: crate::runtime::Retention, every: std::time::Duration) {
    loop {
        match rt.prune(&policy, false, |_, _| {}).await {
            Ok(r) if r.freed.executions > 0 => tracing::info!(
                executions = r.freed.executions,
                events = r.freed.events,
                bytes = r.freed.bytes,
                batches = r.batches,
                "retention pruned ended executions"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention could not prune; trying again at the next round"),
        }
        tokio::time::sleep(every).await;
    }
}

/// `500ms`, `30s`, `10m`, `24h`, `7d`: a positive span of time.
pub(crate) fn parse_span(s: &str) -> Result<std::time::Duration, String> {
    let span = crate::clock::parse_span(s, None)?;
    if span.is_zero() {
        Err(format!("`{s}`: must be more than zero"))
    } else if span > std::time::Duration::from_secs(10 * 365 * 86_400) {
        Err(format!("`{s}`: at most 3650d"))
    } else {
        Ok(span)
    }
}

/// The keys of `JAMJET_API_KEYS` and `--api-keys-file`.
fn load_keys(a: &Args) -> Result<Keys, Failure> {
    let listed = match std::env::var(KEYS_ENV) {
        Ok(list) => Keys::from_list(&list).map_err(|e| Failure::new(e.to_string()))?,
        Err(std::env::VarError::NotPresent) => Keys::default(),
        Err(std::env::VarError::NotUnicode(_)) => return Err(Failure::new(format!("{KEYS_ENV} is not UTF-8 text"))),
    };
    let filed = match &a.api_keys_file {
        Some(path) => Keys::from_file(path).map_err(|e| Failure::new(e.to_string()))?,
        None => Keys::default(),
    };
    Ok(listed.merge(filed))
}

fn print_new_key() -> CliResult {
    let (key, line) = crate::server::auth::new_key().map_err(|e| Failure::new(e.to_string()))?;
    println!("key:  {key}");
    println!("line: {line}");
    eprintln!("Give the key to the client (Authorization: Bearer <key>); put the line in --api-keys-file.");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    if a.new_key {
        return print_new_key();
    }
    let keys = load_keys(&a)?;
    let policy = policy(&a)?;
    check_urls(&a)?;
    let tls = tls_config(&a, &keys)?;
    let retention = retention(&a)?;
    if keys.is_empty() && !a.bind.ip().is_loopback() {
        return Err(Failure::new(format!(
            "refusing to listen on {} without API keys: anything but loopback needs them. \
             Set JAMJET_API_KEYS=key1,key2 or --api-keys-file FILE (make one with `jamjet dev --new-key`), \
             or bind to 127.0.0.1",
            a.bind
        )));
    }
    let limits = super::limits();
    let rt = super::builder_for(data_dir, "dev")
        .await?
        .session_idle(a.session_idle)
        .session_wait(a.session_wait)
        .open()
        .await?;
    if let Some(dir) = &a.workflows {
        register_folder(&rt, dir).await?;
    }
    serve_local_agents(&rt).await?;
    let listener = tokio::net::TcpListener::bind(a.bind)
        .await
        .map_err(|e| Failure::new(format!("cannot listen on {}: {e}", a.bind)))?;
    let bound = listener.local_addr().map_err(|e| Failure::new(format!("cannot read the bound address: {e}")))?;
    let mut config = Config::new(bound);
    config.body_limit = a.body_limit;
    config.a2a_all = a.a2a;
    config.public_url = a.public_url;
    config.api_keys = keys;
    config.cors_origins = a.cors_origins;
    config.policy = policy;
    config.limits = limits;
    config.https = tls.is_some();
    // The same API on the data dir's socket, for the commands run on it.
    let socket_state = AppState { rt: rt.clone(), config: Arc::new(config.clone().for_socket()) };
    let socket = match super::shared_store() {
        // A shared store has no holder: commands open it themselves.
        Some(_) => None,
        None => match server::socket::serve(socket_state, data_dir, Holder::this("dev", true)).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "warning: cannot serve the API on {}: {e}; commands on this data dir need --server http://{bound}",
                    server::socket::path(data_dir).display()
                );
                None
            }
        },
    };
    println!("jamjet dev listening on {}://{bound}", config.scheme());
    let _ = std::io::stdout().flush();
    let state = AppState { rt: rt.clone(), config: Arc::new(config) };
    let pruning = retention.map(|policy| tokio::spawn(keep_pruning(rt.clone(), policy, a.retention_every)));
    let served = match tls {
        Some(tls) => server::serve_tls(state, listener, tls, stop_signal()).await,
        None => server::serve(state, listener, stop_signal()).await,
    };
    if let Some(pruning) = pruning {
        pruning.abort();
        let _ = pruning.await;
    }
    if let Some(socket) = socket {
        socket.close(Linger::No).await;
    }
    rt.shutdown().await;
    served.map_err(|e| Failure::new(format!("the server stopped: {e}")))?;
    eprintln!("jamjet dev stopped; unfinished executions resume at the next start");
    Ok(ExitCode::SUCCESS)
}

/// The HTTPS configuration of `--tls-cert`/`--tls-key`/`--client-ca`,
/// every file read and checked now. With `--client-ca`, someone must be
/// able to get in: a `cert:` line or an API key.
fn tls_config(a: &Args, keys: &Keys) -> Result<Option<Arc<rustls::ServerConfig>>, Failure> {
    if a.client_ca.is_none() && keys.cert_names() > 0 {
        return Err(Failure::usage(
            "the keys file names client certificates (`cert:` lines), but no --client-ca asks clients for one: \
             add --client-ca FILE (with --tls-cert and --tls-key), or remove those lines",
        ));
    }
    let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) else { return Ok(None) };
    let files = crate::tls::ServerFiles { cert: cert.clone(), key: key.clone(), client_ca: a.client_ca.clone() };
    let config = files.config().map_err(|e| Failure::new(format!("{e}; the server did not start")))?;
    if a.client_ca.is_some() && keys.is_empty() {
        return Err(Failure::new(
            "--client-ca admits client certificates, but nothing says what they may do: add lines \
             `cert:NAME all` or `cert:NAME read` (NAME: a certificate's CN or DNS/URI SAN) to --api-keys-file, \
             or give API keys; the server did not start",
        ));
    }
    Ok(Some(config))
}

/// What posted workflows may do, from the flags. The `--workflows` DIR is
/// resolved (symlinks, `..`) once, here.
fn policy(a: &Args) -> Result<Policy, Failure> {
    let commands = match (a.allow_commands, a.allow_command.is_empty()) {
        (true, _) => Commands::Any,
        (false, true) => Commands::None,
        (false, false) => Commands::Only(a.allow_command.iter().cloned().collect()),
    };
    let workflows_dir = match &a.workflows {
        None => None,
        Some(dir) => Some(
            std::fs::canonicalize(dir)
                .map_err(|e| Failure::usage(format!("cannot use --workflows {}: {e}", dir.display())))?,
        ),
    };
    let env = if a.allow_env.iter().any(|n| n == "*") {
        Env::Any
    } else if a.allow_env.is_empty() {
        Env::Defaults
    } else {
        Env::Also(a.allow_env.iter().cloned().collect())
    };
    Ok(Policy { commands, env, workflows_dir })
}

/// `--public-url` and each `--cors-origin` must be what a browser sends.
fn check_urls(a: &Args) -> Result<(), Failure> {
    if let Some(url) = &a.public_url {
        server::origin::check_public_url(url).map_err(|e| Failure::usage(format!("--public-url: {e}")))?;
    }
    for origin in &a.cors_origins {
        server::origin::check_origin(origin).map_err(|e| Failure::usage(format!("--cors-origin: {e}")))?;
    }
    Ok(())
}

/// Compile and register every workflow file in `dir` (sorted by name). A
/// file that does not compile stops the start, with its findings; so do
/// two files declaring one id and version with different content (naming
/// both), before anything is registered. Files with the same content are
/// one workflow, registered once.
async fn register_folder(rt: &Runtime, dir: &Path) -> Result<(), Failure> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Failure::new(format!("cannot read --workflows {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut compiled: Vec<(PathBuf, crate::ir::Workflow, String)> = Vec::with_capacity(files.len());
    for file in files {
        let wf = crate::ir::compile_file_with(&file, &super::compile_options())
            .map_err(|d| Failure::new(format!("{} does not compile:\n{d}", file.display())))?;
        let hash = rt.vet(&wf)?;
        compiled.push((file, wf, hash));
    }
    let mut seen: HashMap<(&str, &str), (&Path, &str)> = HashMap::new();
    let mut clashes = Vec::new();
    for (file, wf, hash) in &compiled {
        match seen.get(&(wf.id.as_str(), wf.version.as_str())) {
            Some((first, first_hash)) if first_hash != hash => clashes.push(format!(
                "{} and {} both declare workflow `{}` version `{}`, with different content",
                first.display(),
                file.display(),
                wf.id,
                wf.version
            )),
            Some(_) => {}
            None => {
                seen.insert((&wf.id, &wf.version), (file, hash));
            }
        }
    }
    if !clashes.is_empty() {
        return Err(Failure::new(format!(
            "--workflows {}: {}; give one of each pair another `id:` or `version:` (nothing was registered)",
            dir.display(),
            clashes.join("; ")
        )));
    }
    let mut registered: HashMap<&str, &Path> = HashMap::new();
    for (file, wf, hash) in &compiled {
        if let Some(first) = registered.get(hash.as_str()) {
            eprintln!("{} is {} again: the same workflow", file.display(), first.display());
            continue;
        }
        let r = rt.register_vetted(wf, hash.clone(), true).await?;
        registered.insert(hash, file);
        eprintln!("registered {} {} from {}", r.workflow_id, r.version, file.display());
    }
    Ok(())
}

/// Register the workflows serving the local agents of every registered
/// workflow over A2A (`/a2a/{workflow}.{agent}`); one that cannot be is
/// named on stderr and left out.
async fn serve_local_agents(rt: &Runtime) -> Result<(), Failure> {
    let serving = server::a2a::agents::serve_registered(rt).await?;
    if !serving.served.is_empty() {
        eprintln!("local agents served over A2A at /a2a/ID: {}", serving.served.join(", "));
    }
    for why in serving.skipped {
        eprintln!("warning: {why}");
    }
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
