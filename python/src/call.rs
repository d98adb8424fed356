//! A step's call into Python: what the step is called with ([`StepCall`]),
//! how Python answers ([`Reply`]), and the durable pieces and agents a
//! step runs through its call.

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
        let answer = serde_json::from_str::<Value>(json).map_err(|e| {
            FunctionError::with_class(ErrorClass::ClientError, format!("its result is not JSON ({e})"))
        });
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
/// `handler(call, reply)` on a thread of the blocking pool, and the step
/// awaits the reply (without holding a runtime thread or the GIL).
pub fn function(handler: Arc<Py<PyAny>>) -> impl Fn(FunctionCall) -> futures_lite::Boxed + Send + Sync + 'static {
    move |call: FunctionCall| {
        let handler = handler.clone();
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
            let node = call.node_id;
            let called = tokio::task::spawn_blocking(move || {
                Python::attach(|py| -> PyResult<()> {
                    let reply = Py::new(py, Reply { tx: Mutex::new(Some(tx)) })?;
                    let step = Py::new(py, step)?;
                    if let Err(e) = handler.call1(py, (step, reply.clone_ref(py))) {
                        // The handler itself broke (not the user's function,
                        // whose errors it answers with): say what it raised.
                        reply.get().fail(format!("the Python handler raised: {e}"), "internal");
                    }
                    Ok(())
                })
            })
            .await;
            if let Err(e) = called {
                return Err(FunctionError::with_class(ErrorClass::Internal, format!("step `{node}`: {e}")));
            }
            match rx.await {
                Ok(answer) => answer,
                Err(_) => Err(FunctionError::with_class(
                    ErrorClass::Internal,
                    format!("step `{node}`: Python dropped the step without answering it"),
                )),
            }
        })
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

/// The boxed future a registered function returns.
pub mod futures_lite {
    pub type Boxed =
        std::pin::Pin<Box<dyn std::future::Future<Output = super::Answer> + Send + 'static>>;
}
