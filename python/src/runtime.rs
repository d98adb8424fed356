//! The runtime handle and the compiled workflow.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jamjet::journal::{Event, Status};
use jamjet::nodes::ToolSchema;
use jamjet::{Decision, ExecutionId};
use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::fail::{Fail, invalid};

/// Await `fut`: blocking this thread with the GIL released, or, with a
/// `callback`, in the background, calling `callback(ok, value)` when done
/// (from a caller thread, holding the GIL only for the call).
pub fn drive<F, T>(
    py: Python<'_>,
    fut: F,
    callback: Option<Py<PyAny>>,
    to_py: fn(Python<'_>, T) -> PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>>
where
    F: Future<Output = Result<T, Fail>> + Send + 'static,
    T: Send + 'static,
{
    let tokio = crate::tokio().map_err(|f| f.to_py(py))?;
    match callback {
        None => match py.detach(|| tokio.block_on(fut)) {
            Ok(t) => to_py(py, t),
            Err(f) => Err(f.to_py(py)),
        },
        Some(callback) => {
            tokio.spawn(async move {
                let result = fut.await;
                let _ = crate::callers::call(Box::new(move |py| {
                    let (ok, value) = match result.map_err(|f| f.to_py(py)).and_then(|t| to_py(py, t)) {
                        Ok(v) => (true, v),
                        Err(e) => (false, e.into_value(py).into_any()),
                    };
                    if let Err(e) = callback.call1(py, (ok, value)) {
                        e.write_unraisable(py, None);
                    }
                }));
            });
            Ok(py.None())
        }
    }
}

/// A compiled workflow: the IR of a YAML document (written by hand, or by
/// the Python layer for a `Workflow` built in Python).
#[pyclass(frozen, module = "jamjet._native")]
pub struct Workflow {
    pub(crate) ir: Arc<jamjet::Workflow>,
    #[pyo3(get)]
    source: String,
}

#[pymethods]
impl Workflow {
    #[getter]
    fn id(&self) -> &str {
        &self.ir.id
    }

    #[getter]
    fn version(&self) -> &str {
        &self.ir.version
    }

    /// The content hash executions record (equal IR, equal hash).
    fn content_hash(&self) -> String {
        self.ir.content_hash()
    }

    /// The IR as JSON text.
    fn ir_json(&self) -> PyResult<String> {
        serde_json::to_string_pretty(&*self.ir)
            .map_err(|e| Fail::new("JamjetError", format!("the IR does not serialize: {e}")).into())
    }

    /// The node ids, in the IR's order.
    fn nodes(&self) -> Vec<String> {
        self.ir.nodes.keys().cloned().collect()
    }

    fn __repr__(&self) -> String {
        format!("<jamjet._native.Workflow {} {}>", self.ir.id, self.ir.version)
    }
}

/// Compile a YAML (or JSON) document; `file` names it in the findings.
#[pyfunction]
pub fn compile(source: String, file: &str) -> PyResult<Workflow> {
    match jamjet::compile_str(&source, file) {
        Ok(ir) => Ok(Workflow { ir: Arc::new(ir), source }),
        Err(d) => Err(invalid(&format!("workflow `{file}`"), &d).into()),
    }
}

/// Compile a workflow file.
#[pyfunction]
pub fn compile_file(path: PathBuf) -> PyResult<Workflow> {
    let source = std::fs::read_to_string(&path)
        .map_err(|e| Fail::new("ValidationError", format!("cannot read {}: {e}", path.display())))?;
    match jamjet::compile_file(&path) {
        Ok(ir) => Ok(Workflow { ir: Arc::new(ir), source }),
        Err(d) => Err(invalid(&format!("workflow file {}", path.display()), &d).into()),
    }
}

/// A runtime: the in-memory journal, or sled in a data dir (one process
/// holds a data dir at a time).
#[pyclass(frozen, module = "jamjet._native")]
pub struct Runtime {
    inner: Mutex<Option<jamjet::Runtime>>,
    #[pyo3(get)]
    data_dir: Option<String>,
    /// The server [`Runtime::serve`] runs, while it runs.
    serving: Mutex<Option<Serving>>,
}

/// The server of a runtime: its URL, what stops it, and its task.
struct Serving {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Runtime {
    fn get(&self) -> Result<jamjet::Runtime, Fail> {
        self.inner
            .lock()
            .expect("runtime lock")
            .clone()
            .ok_or_else(|| Fail::new("JamjetError", "this runtime is closed"))
    }
}

fn execution(id: &str) -> Result<ExecutionId, Fail> {
    id.parse().map_err(|_| Fail::new("UnknownExecution", format!("`{id}` is not an execution id (exec_...)")))
}

fn json_arg(what: &str, text: &str) -> Result<Value, Fail> {
    serde_json::from_str(text).map_err(|e| Fail::new("ValidationError", format!("{what} is not JSON: {e}")))
}

fn string(py: Python<'_>, s: String) -> PyResult<Py<PyAny>> {
    Ok(s.into_pyobject(py)?.into_any().unbind())
}

#[pymethods]
impl Runtime {
    /// Open a runtime: on sled in `data_dir`, on the PostgreSQL store many
    /// processes share when it is a `postgres://` URL, or in memory
    /// without one. Nothing resumes by itself: a keyed run attaches to (and
    /// resumes) its execution, `resume_all` resumes the rest (in a shared
    /// store: claims, from then on, what no live process runs).
    #[new]
    #[pyo3(signature = (data_dir = None))]
    fn new(py: Python<'_>, data_dir: Option<PathBuf>) -> PyResult<Runtime> {
        let tokio = crate::tokio().map_err(|f| f.to_py(py))?;
        let url = data_dir
            .as_ref()
            .and_then(|d| d.to_str())
            .filter(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
            .map(str::to_string);
        let shown = match &url {
            Some(url) => Some(jamjet::journal::redact_url(url)),
            None => data_dir.as_ref().map(|d| d.display().to_string()),
        };
        let opened = py.detach(|| {
            tokio.block_on(async {
                let b = jamjet::Runtime::builder().resume_on_open(false);
                let b = match (&url, &data_dir) {
                    (Some(url), _) => {
                        let options = jamjet::journal::PgOptions { command: "python".into(), ..Default::default() };
                        let journal = jamjet::journal::PgJournal::open_with(url, options)
                            .await
                            .map_err(|e| Fail::from(jamjet::runtime::Error::from(e)))?;
                        b.journal(Arc::new(journal))
                    }
                    (None, Some(d)) => b.data_dir(d),
                    (None, None) => b.in_memory(),
                };
                b.open().await.map_err(Fail::from)
            })
        });
        match opened {
            Ok(rt) => Ok(Runtime { inner: Mutex::new(Some(rt)), data_dir: shown, serving: Mutex::new(None) }),
            Err(f) => Err(f.to_py(py)),
        }
    }

    /// Register `handler(call, reply)` as the host function `name` (what a
    /// `type: function` node names). With `description` and `parameters`
    /// (a JSON Schema, as JSON text) it is also a tool agents can call.
    /// With `inbox`, its calls go into that inbox (an async handler's,
    /// which the step loop drains) instead of to a caller thread.
    #[pyo3(signature = (name, handler, description = None, parameters = None, inbox = None))]
    fn add_function(
        &self,
        name: String,
        handler: Py<PyAny>,
        description: Option<String>,
        parameters: Option<&str>,
        inbox: Option<Py<crate::call::Inbox>>,
    ) -> PyResult<()> {
        let rt = self.get()?;
        let functions = rt.functions();
        let f = crate::call::function(Arc::new(handler), inbox.map(Arc::new));
        match (description, parameters) {
            (None, None) => functions.register(name, f),
            (description, parameters) => {
                let parameters = match parameters {
                    Some(p) => json_arg("the tool's parameters", p)?,
                    None => json!({"type": "object", "properties": {}}),
                };
                let schema = ToolSchema { description: description.unwrap_or_default(), parameters };
                functions.register_tool(name, schema, f)
            }
        }
        Ok(())
    }

    /// Register `workflow` under its id and version, durably (what a server
    /// offers by id).
    #[pyo3(signature = (workflow, replace = false, callback = None))]
    fn register(
        &self,
        py: Python<'_>,
        workflow: &Workflow,
        replace: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let ir = workflow.ir.clone();
        let fut = async move { rt.register(&ir, replace).await.map(|r| r.hash).map_err(Fail::from) };
        drive(py, fut, callback, string)
    }

    /// Start an execution of `workflow` with `input` (JSON text), or, with
    /// a `key` already used, find that one (resuming it here when it is
    /// not finished). Then wait until it ends or parks on the outside (an
    /// event, an approval). Returns JSON: `{id, started, status, state,
    /// error, usage, steps, node, waiting}`.
    #[pyo3(signature = (workflow, input, key = None, wait = true, callback = None))]
    fn run(
        &self,
        py: Python<'_>,
        workflow: &Workflow,
        input: &str,
        key: Option<String>,
        wait: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let ir = workflow.ir.clone();
        let input = json_arg("the input", input)?;
        let fut = async move {
            let (id, started) = rt.submit_once(&ir, input, key.as_deref()).await?;
            if !wait {
                return Ok(json!({"id": id.to_string(), "started": started, "status": "running"}).to_string());
            }
            let outcome = rt.settle(id).await?;
            report(&rt, id, started, outcome)
        };
        drive(py, fut, callback, string)
    }

    /// `run`, following the execution as it goes: `on_item(i, kind, json)`
    /// gets each piece of a streamed model reply (`"token"`) and each
    /// record (`"event"`), numbered from 0 in the order they happened (the
    /// calls may overlap: the caller orders them by `i`), and last `"end"`
    /// with the same JSON as `run` returns.
    #[pyo3(signature = (workflow, input, on_item, key = None, callback = None))]
    fn stream(
        &self,
        py: Python<'_>,
        workflow: &Workflow,
        input: &str,
        on_item: Py<PyAny>,
        key: Option<String>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let ir = workflow.ir.clone();
        let input = json_arg("the input", input)?;
        let on_item = Arc::new(on_item);
        let fut = async move {
            let mut n = 0u64;
            let mut emit = |kind: &'static str, text: String| {
                let (f, i) = (on_item.clone(), n);
                n += 1;
                crate::callers::call(Box::new(move |py| {
                    if let Err(e) = f.call1(py, (i, kind, text)) {
                        e.write_unraisable(py, None);
                    }
                }));
            };
            // Subscribed before the id is known: its first tokens may come at once.
            let mut tokens = jamjet::nodes::stream::TokenRx::All(rt.all_tokens());
            let (id, started) = rt.submit_once(&ir, input, key.as_deref()).await?;
            let mut feed = rt.subscribe(id);
            let settle = rt.settle(id);
            tokio::pin!(settle);
            let (mut last, mut appended, mut streaming, mut live) = (0u64, true, true, true);
            let outcome = loop {
                if std::mem::take(&mut appended) {
                    for r in rt.events_after(id, last)? {
                        last = r.seq;
                        emit("event", serde_json::to_string(&r).expect("records serialize"));
                    }
                }
                tokio::select! {
                    biased;
                    t = tokens.next(id), if streaming => match t {
                        Some(t) => emit("token", serde_json::to_string(&t).expect("tokens serialize")),
                        None => streaming = false,
                    },
                    outcome = &mut settle => break outcome?,
                    changed = feed.changed(), if live => {
                        live = changed.is_ok();
                        appended = true;
                    }
                }
            };
            for r in rt.events_after(id, last)? {
                emit("event", serde_json::to_string(&r).expect("records serialize"));
            }
            let report = report(&rt, id, started, outcome)?;
            emit("end", report.clone());
            Ok(report)
        };
        drive(py, fut, callback, string)
    }

    /// Wait for execution `id` to end or park; the same JSON as `run`.
    #[pyo3(signature = (id, callback = None))]
    fn settle(&self, py: Python<'_>, id: &str, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let id = execution(id)?;
        let fut = async move {
            let outcome = rt.settle(id).await?;
            report(&rt, id, false, outcome)
        };
        drive(py, fut, callback, string)
    }

    /// Where execution `id` stands now, without waiting; the same JSON.
    fn outcome(&self, id: &str) -> PyResult<String> {
        let rt = self.get()?;
        let id = execution(id)?;
        let outcome = rt.outcome(id).map_err(Fail::from)?;
        Ok(report(&rt, id, false, outcome)?)
    }

    /// Deliver the event `key` (a wait's correlation key) with `payload`
    /// (JSON text) to execution `id`.
    #[pyo3(signature = (id, key, payload, callback = None))]
    fn signal(
        &self,
        py: Python<'_>,
        id: &str,
        key: String,
        payload: &str,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let id = execution(id)?;
        let payload = json_arg("the payload", payload)?;
        let fut = async move { rt.signal(id, &key, payload).await.map_err(|e| Fail::from(e).execution(id)) };
        drive(py, fut, callback, |py, ()| Ok(py.None()))
    }

    /// Decide the approval execution `id` waits on (`node`, or the tool
    /// call `call`). Returns the node (or call) decided.
    #[pyo3(signature = (id, approved, node = None, call = None, by = None, comment = None, callback = None))]
    #[allow(clippy::too_many_arguments)]
    fn approve(
        &self,
        py: Python<'_>,
        id: &str,
        approved: bool,
        node: Option<String>,
        call: Option<String>,
        by: Option<String>,
        comment: Option<String>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let id = execution(id)?;
        let decision = Decision { node, call, approved, by: by.unwrap_or_else(|| "python".into()), comment };
        let fut = async move { rt.approve(id, decision).await.map_err(|e| Fail::from(e).execution(id)) };
        drive(py, fut, callback, string)
    }

    /// Cancel execution `id`.
    #[pyo3(signature = (id, reason = "cancelled from Python".to_string(), callback = None))]
    fn cancel(&self, py: Python<'_>, id: &str, reason: String, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let id = execution(id)?;
        let fut = async move { rt.cancel(id, &reason).await.map_err(|e| Fail::from(e).execution(id)) };
        drive(py, fut, callback, |py, ()| Ok(py.None()))
    }

    /// Execution `id`'s history: JSON, a list of `{seq, at_ms, event}`.
    fn events(&self, id: &str) -> PyResult<String> {
        let rt = self.get()?;
        let id = execution(id)?;
        let records = rt.events(id).map_err(Fail::from)?;
        Ok(serde_json::to_string(&records).map_err(|e| Fail::new("JamjetError", e.to_string()))?)
    }

    /// The executions in this store: JSON, a list of their index rows.
    #[pyo3(signature = (status = None))]
    fn list(&self, status: Option<&str>) -> PyResult<String> {
        let rt = self.get()?;
        let status: Option<Status> = match status {
            Some(s) => Some(
                serde_json::from_value(Value::String(s.into()))
                    .map_err(|_| Fail::new("ValidationError", format!("`{s}` is not a status")))?,
            ),
            None => None,
        };
        let list = rt.list(status).map_err(Fail::from)?;
        Ok(serde_json::to_string(&list).map_err(|e| Fail::new("JamjetError", e.to_string()))?)
    }

    /// Resume every execution of this store that was running when its
    /// process stopped. Returns the ids resumed.
    #[pyo3(signature = (callback = None))]
    fn resume_all(&self, py: Python<'_>, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let rt = self.get()?;
        let fut = async move {
            let ids = rt.resume_all().await.map_err(Fail::from)?;
            Ok(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>())
        };
        drive(py, fut, callback, |py, ids| Ok(ids.into_pyobject(py)?.into_any().unbind()))
    }

    /// Serve this runtime over HTTP, in this process: the REST API and
    /// every registered workflow as an A2A agent (with `a2a`; otherwise
    /// only those marked `a2a:`), as `jamjet dev` serves them, on `addr`
    /// (loopback only: no API keys are asked; port 0 picks a free one).
    /// The steps of workflows registered here run in this process; the
    /// local agents of those registered before are served too, at
    /// `/a2a/{workflow}.{agent}`. Returns the base URL, `http://127.0.0.1:PORT`.
    #[pyo3(signature = (addr = "127.0.0.1:0", a2a = true))]
    fn serve(&self, py: Python<'_>, addr: &str, a2a: bool) -> PyResult<String> {
        let rt = self.get()?;
        let mut serving = self.serving.lock().expect("server lock");
        if let Some(s) = &*serving {
            return Err(Fail::new("JamjetError", format!("this runtime is served already, at {}", s.url)).into());
        }
        let addr: std::net::SocketAddr = addr.parse().map_err(|e| {
            Fail::new("ValidationError", format!("`{addr}` is not an address to listen on, like 127.0.0.1:0 ({e})"))
        })?;
        if !addr.ip().is_loopback() {
            let message = format!(
                "refusing to serve on {addr}: a runtime serves on loopback only (127.0.0.1); run `jamjet dev` with \
                 API keys to serve on a network"
            );
            return Err(Fail::new("ValidationError", message).into());
        }
        let tokio = crate::tokio().map_err(|f| f.to_py(py))?;
        let bound = py.detach(|| {
            tokio.block_on(async {
                // The local agents of the workflows registered so far, as
                // `jamjet dev` serves them at start (`/a2a/{workflow}.{agent}`).
                jamjet::server::a2a::agents::serve_registered(&rt).await.map_err(Fail::from)?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| Fail::new("JamjetError", format!("cannot listen on {addr}: {e}")))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Fail::new("JamjetError", format!("cannot read the bound address: {e}")))?;
                Ok::<_, Fail>((listener, bound))
            })
        });
        let (listener, bound) = bound.map_err(|f| f.to_py(py))?;
        let mut config = jamjet::server::Config::new(bound);
        config.a2a_all = a2a;
        let state = jamjet::server::AppState { rt, config: std::sync::Arc::new(config) };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio.spawn(jamjet::server::serve(state, listener, async move {
            let _ = stopped.await;
        }));
        let url = format!("http://{bound}");
        *serving = Some(Serving { url: url.clone(), stop, task });
        Ok(url)
    }

    /// The URL this runtime is served at (`None`: not served).
    #[getter]
    fn url(&self) -> Option<String> {
        self.serving.lock().expect("server lock").as_ref().map(|s| s.url.clone())
    }

    /// Stop serving: no new connections; requests under way finish first.
    fn stop_serving(&self, py: Python<'_>) -> PyResult<()> {
        let serving = self.serving.lock().expect("server lock").take();
        if let Some(s) = serving {
            let tokio = crate::tokio().map_err(|f| f.to_py(py))?;
            let _ = s.stop.send(());
            let served = py.detach(|| tokio.block_on(s.task));
            if let Ok(Err(e)) = served {
                return Err(Fail::new("JamjetError", format!("the server at {} stopped: {e}", s.url)).into());
            }
        }
        Ok(())
    }

    /// Stop the runtime (and its server): its executions stop where they
    /// are (a durable one resumes from there), and the journal is flushed
    /// and released.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop_serving(py)?;
        let rt = self.inner.lock().expect("runtime lock").take();
        if let Some(rt) = rt {
            let tokio = crate::tokio().map_err(|f| f.to_py(py))?;
            py.detach(|| tokio.block_on(rt.shutdown()));
        }
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().expect("runtime lock").is_none()
    }
}

/// The JSON a run reports: the outcome, how many steps completed, the
/// node it failed at, and what it waits for.
fn report(rt: &jamjet::Runtime, id: ExecutionId, started: bool, outcome: jamjet::Outcome) -> Result<String, Fail> {
    let records = rt.events(id)?;
    let steps = records.iter().filter(|r| matches!(r.event, Event::NodeCompleted { .. })).count();
    let node = if outcome.status.is_terminal() && outcome.status != Status::Completed {
        records.iter().rev().find_map(|r| match &r.event {
            Event::ExecutionFailed { node: Some(n), .. } => Some(n.clone()),
            Event::NodeFailed { node, .. } => Some(node.clone()),
            _ => None,
        })
    } else {
        None
    };
    let waiting = if outcome.status == Status::Waiting { rt.waiting_in_family(id)? } else { Vec::new() };
    Ok(json!({
        "id": id.to_string(),
        "started": started,
        "status": outcome.status,
        "state": outcome.state,
        "error": outcome.error,
        "usage": outcome.usage,
        "steps": steps,
        "node": node,
        "waiting": waiting,
    })
    .to_string())
}
