//! The one conversion of the runtime's errors into `jamjet.errors`'
//! exceptions. A [`Fail`] is made without the GIL (in a future) and
//! becomes a Python exception when it crosses.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// An error on its way to Python: the name of its class in
/// `jamjet.errors`, its message, and what it is about.
#[derive(Debug, Clone)]
pub struct Fail {
    pub class: &'static str,
    pub message: String,
    pub execution_id: Option<String>,
    pub node: Option<String>,
    /// The compiler's findings, as JSON (a `ValidationError`'s).
    pub findings: Option<serde_json::Value>,
}

impl Fail {
    pub fn new(class: &'static str, message: impl Into<String>) -> Fail {
        Fail { class, message: message.into(), execution_id: None, node: None, findings: None }
    }

    pub fn execution(mut self, id: impl ToString) -> Fail {
        self.execution_id = Some(id.to_string());
        self
    }

    /// The exception, made under the GIL.
    pub fn to_py(&self, py: Python<'_>) -> PyErr {
        let made = (|| -> PyResult<PyErr> {
            let errors = py.import("jamjet.errors")?;
            let class = errors.getattr(self.class)?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("execution_id", self.execution_id.as_deref())?;
            kwargs.set_item("node", self.node.as_deref())?;
            if let Some(findings) = &self.findings {
                let json = py.import("json")?;
                kwargs.set_item("findings", json.call_method1("loads", (findings.to_string(),))?)?;
            }
            let value = class.call((self.message.as_str(),), Some(&kwargs))?;
            Ok(PyErr::from_value(value))
        })();
        made.unwrap_or_else(|e| e)
    }
}

impl From<Fail> for PyErr {
    fn from(f: Fail) -> PyErr {
        Python::attach(|py| f.to_py(py))
    }
}

impl From<jamjet::runtime::Error> for Fail {
    fn from(e: jamjet::runtime::Error) -> Fail {
        use jamjet::journal::Error as J;
        use jamjet::runtime::Error as E;
        let message = e.to_string();
        match e {
            E::InvalidInput(_) => Fail::new("ValidationError", message),
            E::UnknownExecution(id) => Fail::new("UnknownExecution", message).execution(id),
            E::StartFailed { id, .. } | E::Stopped { id } => Fail::new("JamjetError", message).execution(id),
            E::Finished { id, .. } | E::NotWaiting { id, .. } => Fail::new("NotWaiting", message).execution(id),
            E::KeyConflict { id, .. } => Fail::new("KeyConflict", message).execution(id),
            E::InvalidKey(_) | E::InvalidEvent(_) | E::InvalidSession(_) | E::LimitExceeded(_) => {
                Fail::new("ValidationError", message)
            }
            E::InvalidWorkflow { .. } => Fail::new("ValidationError", message),
            E::Journal(J::Locked { .. }) => Fail::new("StoreLocked", message),
            _ => Fail::new("JamjetError", message),
        }
    }
}

impl From<jamjet::journal::Error> for Fail {
    fn from(e: jamjet::journal::Error) -> Fail {
        Fail::from(jamjet::runtime::Error::from(e))
    }
}

/// The compiler's findings as a `ValidationError` naming each file,
/// line, column and node.
pub fn invalid(what: &str, d: &jamjet::ir::Diagnostics) -> Fail {
    let findings: Vec<serde_json::Value> =
        d.0.iter()
            .map(|d| {
                serde_json::json!({
                    "file": d.file, "line": d.line, "column": d.column,
                    "node": d.node, "message": d.message,
                })
            })
            .collect();
    let mut f = Fail::new("ValidationError", format!("{what} does not compile:\n{d}"));
    f.findings = Some(serde_json::Value::Array(findings));
    f
}
