//! A step's call into Python: what the step is called with ([`StepCall`]),
//! how Python answers ([`Reply`]), and the durable pieces and agents a
//! step runs through its call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jamjet::journal::ErrorClass;
use jamjet::nodes::{FunctionCall, FunctionError, Steps};
use pyo3::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::fail::Fail;

type Answer = Result<Value, FunctionError>;

/// What one step (a `function` node, or a tool an agent calls) is called
/// with. `input` is the state (or the tool's arguments) as JSON text.
#[pyclass(frozen, module = "jamjet._native")]
pub struct StepCall {
    #[pyo3(get)]
    execution_id: String,
    #[pyo3(get)]
    node_id: String,
    #[pyo3(get)]
    attempt: u32,
    #[pyo3(get)]
    idempotency_key: String,
    #[pyo3(get)]
    input: String,
    steps: Steps,
}

/// How Python answers a step: once, with `ok(json)` or `fail(message,
/// class)`. A reply dropped unanswered fails the step.
#[pyclass(frozen, module = "jamjet._native")]
pub struct Reply {
    tx: Mutex<Option<oneshot::Sender<Answer>>>,
}

impl Reply {
    fn send(&self, answer: Answer) -> bool {
        match self.tx.lock().expect("reply lock").take() {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }
}

#[pymethods]
impl Reply {
    /// The step's result, as JSON text (an object: the new state, a patch,
    /// or a tool's answer). Returns whether the step was still waiting.
    fn ok(&self, json: &str) -> bool {
        let answer = serde_json::from_str::<Value>(json)
            .map_err(|e| FunctionError::with_class(ErrorClass::ClientError, format!("its result is not JSON ({e})")));
        self.send(answer)
    }

    /// The step failed: `class` is an error class of the journal, as
    /// `retry_on` names it (`function`, the default, is retried per the
    /// node's policy; `client_error` is not). An unknown class is `function`.
    #[pyo3(signature = (message, class = "function"))]
    fn fail(&self, message: String, class: &str) -> bool {
        let class = ErrorClass::parse(class).unwrap_or(ErrorClass::Function);
        self.send(Err(FunctionError::with_class(class, message)))
    }
}

/// The adapter a Python handler is registered through: each call goes to
/// `handler(call, reply)` on a caller thread ([`crate::callers`]), or, with an
/// `inbox` (an async handler's), into it for the step loop to start; the
/// step awaits the reply (without holding a runtime thread or the GIL).
pub fn function(
    handler: Arc<Py<PyAny>>,
    inbox: Option<Arc<Py<Inbox>>>,
) -> impl Fn(FunctionCall) -> StepFuture + Send + Sync + 'static {
    move |call: FunctionCall| {
        let handler = handler.clone();
        let inbox = inbox.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let input = serde_json::to_string(&call.input).unwrap_or_else(|_| "{}".into());
            let step = StepCall {
                execution_id: call.execution_id.to_string(),
                node_id: call.node_id.clone(),
                attempt: call.attempt,
                idempotency_key: call.idempotency_key.clone(),
                input,
                steps: call.steps.clone(),
            };
            let reply = Reply { tx: Mutex::new(Some(tx)) };
            let node = call.node_id;
            // Whether a thread that is awake takes the call at once: then
            // the answer may come soon enough to look for it.
            let soon = match inbox {
                Some(inbox) => inbox.get().push(Queued { handler, step, reply }),
                None => crate::callers::call(Box::new(move |py| {
                    // Unanswered (this fails): the step fails as dropped.
                    let Ok(reply) = Py::new(py, reply) else { return };
                    let answer = reply.clone_ref(py);
                    let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> PyResult<()> {
                        handler.call1(py, (Py::new(py, step)?, reply))?;
                        Ok(())
                    }));
                    // The handler itself broke (not the user's function, whose
                    // errors it answers with): say what it raised.
                    let broke = match called {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => format!("the Python handler raised: {e}"),
                        Err(panic) => format!("the Python handler panicked: {}", panic_message(panic.as_ref())),
                    };
                    answer.get().fail(broke, "internal");
                })),
            };
            match answered(rx, soon).await {
                Some(answer) => answer,
                None => Err(FunctionError::with_class(
                    ErrorClass::Internal,
                    format!("step `{node}`: Python dropped the step without answering it"),
                )),
            }
        })
    }
}

/// What a panic said.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?")
}

/// How long a step whose call an awake thread took looks for the answer
/// before it sleeps on it: a trivial step answers within this, and a
/// worker that sleeps has to be woken by another CPU (tens of µs on a VM
/// whose idle CPUs halt).
const LOOK_FOR: std::time::Duration = std::time::Duration::from_micros(50);

/// Whether a step is looking for its answer now: one at a time.
static LOOKING: AtomicBool = AtomicBool::new(false);

/// Python's answer (`None`: the reply was dropped unanswered). With
/// `soon` (an awake thread took the call), and no other step looking,
/// looks for it for up to [`LOOK_FOR`] first, holding this worker and
/// yielding only the CPU (yielding to the worker's other tasks would have
/// the runtime wake its other workers to share them, each time).
async fn answered(mut rx: oneshot::Receiver<Answer>, soon: bool) -> Option<Answer> {
    struct Looking;
    impl Drop for Looking {
        fn drop(&mut self) {
            LOOKING.store(false, Ordering::Release);
        }
    }
    if soon && !LOOKING.swap(true, Ordering::AcqRel) {
        let _looking = Looking;
        let until = std::time::Instant::now() + LOOK_FOR;
        loop {
            match rx.try_recv() {
                Ok(answer) => return Some(answer),
                Err(oneshot::error::TryRecvError::Closed) => return None,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if std::time::Instant::now() >= until {
                break;
            }
            // Let the thread that answers run, should it share this CPU.
            std::thread::yield_now();
        }
    }
    rx.await.ok()
}

/// A step call waiting in an [`Inbox`].
struct Queued {
    handler: Arc<Py<PyAny>>,
    step: StepCall,
    reply: Reply,
}

/// Where async handlers' calls wait for the step loop, handed over
/// without the GIL: a call is queued and, when the queue was empty, one
/// byte rings the loop's reader on `fileno()`, which `drain`s the queue
/// (`loop.add_reader(inbox.fileno(), ...)`). Unix only (a socket pair);
/// elsewhere `Inbox()` raises `NotImplementedError` and async handlers are
/// called on a caller thread like the others (and hand the call to the
/// loop themselves).
#[pyclass(frozen, module = "jamjet._native")]
pub struct Inbox {
    queue: Mutex<Vec<Queued>>,
    /// How many calls wait in `queue` (read without its lock by `wait`).
    queued: std::sync::atomic::AtomicUsize,
    /// Whether the loop polls `pending()` now (no ring needed).
    looking: AtomicBool,
    #[cfg(unix)]
    bell: std::os::unix::net::UnixStream,
    #[cfg(unix)]
    ear: std::os::unix::net::UnixStream,
}

impl Inbox {
    /// Queue `call`; returns whether the loop is looking (takes it at once).
    fn push(&self, call: Queued) -> bool {
        let was_empty = {
            let mut queue = self.queue.lock().expect("inbox lock");
            queue.push(call);
            self.queued.store(queue.len(), Ordering::SeqCst);
            queue.len() == 1
        };
        // A loop that looks (and checks `pending()` once more when it
        // stops looking) needs no ring.
        let looking = self.looking.load(Ordering::SeqCst);
        #[cfg(unix)]
        if was_empty && !looking {
            use std::io::Write;
            // Full (would block): the loop has a ring to read already.
            let _ = (&self.bell).write(&[1]);
        }
        #[cfg(not(unix))]
        let _ = was_empty;
        looking
    }
}

#[pymethods]
impl Inbox {
    #[new]
    fn new() -> PyResult<Inbox> {
        #[cfg(unix)]
        {
            let (bell, ear) = std::os::unix::net::UnixStream::pair()?;
            bell.set_nonblocking(true)?;
            ear.set_nonblocking(true)?;
            Ok(Inbox {
                queue: Mutex::new(Vec::new()),
                queued: std::sync::atomic::AtomicUsize::new(0),
                looking: AtomicBool::new(false),
                bell,
                ear,
            })
        }
        #[cfg(not(unix))]
        Err(pyo3::exceptions::PyNotImplementedError::new_err("an inbox needs a Unix socket pair"))
    }

    /// The file descriptor that is readable when calls wait.
    fn fileno(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            i64::from(self.ear.as_raw_fd())
        }
        #[cfg(not(unix))]
        -1
    }

    /// Whether calls wait.
    fn pending(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }

    /// Look for a call for up to `seconds` (at most 1 ms), with the GIL
    /// released, yielding the CPU between looks; returns whether calls
    /// wait. What the step loop does between calls when it has nothing
    /// else to run: a look here sees a call within a microsecond or two,
    /// where a turn of the event loop takes several.
    fn wait(&self, py: Python<'_>, seconds: f64) -> bool {
        let seconds = if seconds.is_finite() { seconds.clamp(0.0, 1e-3) } else { 0.0 };
        let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
        py.detach(|| {
            loop {
                if self.queued.load(Ordering::SeqCst) > 0 {
                    return true;
                }
                if std::time::Instant::now() >= until {
                    return false;
                }
                std::thread::yield_now();
            }
        })
    }

    /// Say whether the loop polls `pending()` (calls then ring no bell);
    /// after `look(False)`, it checks `pending()` once more.
    fn look(&self, looking: bool) {
        self.looking.store(looking, Ordering::SeqCst);
    }

    /// The waiting calls, oldest first: `(handler, call, reply)` each.
    #[allow(clippy::type_complexity)]
    fn drain(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<StepCall>, Py<Reply>)>> {
        // The rings first, then the queue: a call queued after this read
        // either is taken below or rings again.
        #[cfg(unix)]
        {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while matches!((&self.ear).read(&mut buf), Ok(n) if n > 0) {}
        }
        let calls = {
            let mut queue = self.queue.lock().expect("inbox lock");
            self.queued.store(0, Ordering::SeqCst);
            std::mem::take(&mut *queue)
        };
        calls.into_iter().map(|q| Ok((q.handler.clone_ref(py), Py::new(py, q.step)?, Py::new(py, q.reply)?))).collect()
    }
}

/// A durable piece that has to run: run it, then `finish` with its result.
#[pyclass(frozen, module = "jamjet._native")]
pub struct Ticket {
    value: Mutex<Option<oneshot::Sender<Result<Value, String>>>>,
    done: Mutex<Option<oneshot::Receiver<Result<Value, FunctionError>>>>,
}

#[pymethods]
impl StepCall {
    /// Begin the durable piece `name` of this step: `("done", json)` when
    /// an earlier attempt journaled it (its result, read back), or
    /// `("run", ticket)` when it has to run now.
    #[pyo3(signature = (name, callback = None))]
    fn piece(&self, py: Python<'_>, name: String, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let steps = self.steps.clone();
        let fut = async move {
            let (need_tx, need_rx) = oneshot::channel::<()>();
            let (value_tx, value_rx) = oneshot::channel::<Result<Value, String>>();
            let (done_tx, mut done_rx) = oneshot::channel();
            crate::tokio()?.spawn(async move {
                let work = async move {
                    let _ = need_tx.send(());
                    value_rx.await.unwrap_or_else(|_| Err("the piece was abandoned".into()))
                };
                let _ = done_tx.send(steps.run::<Value, String, _>(&name, work).await);
            });
            tokio::select! {
                biased;
                done = &mut done_rx => match done {
                    Ok(Ok(v)) => Ok(Begun::Done(v)),
                    Ok(Err(e)) => Err(Fail::new("StepFailed", e.message)),
                    Err(_) => Err(Fail::new("JamjetError", "the runtime stopped")),
                },
                Ok(()) = need_rx => Ok(Begun::Run(Ticket {
                    value: Mutex::new(Some(value_tx)),
                    done: Mutex::new(Some(done_rx)),
                })),
            }
        };
        crate::runtime::drive(py, fut, callback, |py, begun| match begun {
            Begun::Done(v) => Ok(("done", v.to_string()).into_pyobject(py)?.into_any().unbind()),
            Begun::Run(t) => Ok(("run", Py::new(py, t)?).into_pyobject(py)?.into_any().unbind()),
        })
    }

    /// Run the workflow's agent `name` on `message` inside this step, every
    /// model and tool call journaled in the step's sequence (read back on a
    /// retry or after a crash). Returns JSON `{output, value, usage, calls}`
    /// (`calls`: the run's journaled calls, `{n, kind, name, request,
    /// response, usage}` each, in order).
    #[pyo3(signature = (name, message, callback = None))]
    fn agent(&self, py: Python<'_>, name: String, message: String, callback: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let steps = self.steps.clone();
        let fut = async move {
            match steps.agent(name).run(message).await {
                Ok(run) => {
                    let calls: Vec<Value> = run
                        .calls
                        .iter()
                        .map(|c| {
                            serde_json::json!({
                                "n": c.n,
                                "kind": c.kind,
                                "name": c.name,
                                "request": c.request.value().unwrap_or(Value::Null),
                                "response": c.response.value().unwrap_or(Value::Null),
                                "usage": c.usage,
                            })
                        })
                        .collect();
                    Ok(serde_json::json!({
                        "output": run.output,
                        "value": run.value,
                        "usage": run.usage,
                        "calls": calls,
                    })
                    .to_string())
                }
                Err(e) => {
                    let mut f = Fail::new("AgentFailed", e.message);
                    f.node = Some(e.class.as_str().to_string());
                    Err(f)
                }
            }
        };
        crate::runtime::drive(py, fut, callback, |py, s| Ok(s.into_pyobject(py)?.into_any().unbind()))
    }

    /// Ask a model inside this step: `config` is the model as JSON (a
    /// `models:` entry: provider, model, base_url, api_key_env, ...),
    /// `name` what the step calls it. The call is journaled in the step's
    /// sequence (read back, not sent again, when the step runs again).
    /// Returns JSON `{text, usage, raw}`.
    #[pyo3(signature = (name, config, prompt, system = None, temperature = None, max_tokens = None, callback = None))]
    #[allow(clippy::too_many_arguments)]
    fn model(
        &self,
        py: Python<'_>,
        name: String,
        config: &str,
        prompt: String,
        system: Option<String>,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let mut config: jamjet::model::ModelConfig = serde_json::from_str(config).map_err(|e| {
            Fail::new("ValidationError", format!("model `{name}`: its configuration does not read ({e})"))
        })?;
        if config.price.is_none() {
            config.price = jamjet::model::built_in_price(&config.model);
        }
        let request = jamjet::model::ChatRequest {
            system,
            messages: vec![jamjet::model::ChatMessage::user(prompt)],
            temperature,
            max_tokens,
            ..Default::default()
        };
        let steps = self.steps.clone();
        let fut = async move {
            match steps.model(&name, &config, request).await {
                Ok(reply) => {
                    Ok(serde_json::json!({"text": reply.text, "usage": reply.usage, "raw": reply.raw}).to_string())
                }
                Err(e) => Err(Fail::new("StepFailed", e.message)),
            }
        };
        crate::runtime::drive(py, fut, callback, |py, s| Ok(s.into_pyobject(py)?.into_any().unbind()))
    }
}

enum Begun {
    Done(Value),
    Run(Ticket),
}

#[pymethods]
impl Ticket {
    /// The piece's result as JSON text (`error` instead: it failed, and
    /// nothing is journaled). Returns once the result is durable.
    #[pyo3(signature = (json = None, error = None, callback = None))]
    fn finish(
        &self,
        py: Python<'_>,
        json: Option<&str>,
        error: Option<String>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let value = match (json, error) {
            (_, Some(e)) => Err(e),
            (Some(j), None) => serde_json::from_str::<Value>(j).map_err(|e| format!("its result is not JSON ({e})")),
            (None, None) => Ok(Value::Null),
        };
        let tx = self.value.lock().expect("ticket lock").take();
        let rx = self.done.lock().expect("ticket lock").take();
        let (Some(tx), Some(rx)) = (tx, rx) else {
            return Err(Fail::new("JamjetError", "this piece was finished already").to_py(py));
        };
        let _ = tx.send(value);
        let fut = async move {
            match rx.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(Fail::new("StepFailed", e.message)),
                Err(_) => Err(Fail::new("JamjetError", "the runtime stopped")),
            }
        };
        crate::runtime::drive(py, fut, callback, |py, ()| Ok(py.None()))
    }
}

/// The future a registered function returns.
pub type StepFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send + 'static>>;
