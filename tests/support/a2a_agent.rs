//! A real Python A2A agent (`tests/a2a_agent/agent.py`, on the A2A
//! project's `a2a-sdk`) on 127.0.0.1 with an OS-picked port, killed when
//! dropped. What it received is collected from its `RECV` lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

pub struct PyAgent {
    child: Child,
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
}

impl PyAgent {
    /// Start it; `None` (with a SKIPPED note) when the SDK is not installed outside CI.
    pub fn start() -> Option<PyAgent> {
        let python = super::a2a_py::python()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a2a_agent/agent.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the Python A2A agent");
        let stdout = child.stdout.take().expect("piped stdout");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = received.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("PORT ") {
                    let _ = tx.send(port.trim().parse::<u16>().expect("a port number"));
                } else if let Some(json) = line.strip_prefix("RECV ") {
                    sink.lock().unwrap().push(serde_json::from_str(json).expect("RECV is JSON"));
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                panic!("the Python A2A agent printed no port within 60 s: {e}");
            }
        };
        Some(PyAgent { child, port, received })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The messages it received so far, as the SDK read them.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for PyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
