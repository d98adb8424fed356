//! The real `jamjet dev` binary as a test server: [`DevServer::start`]
//! runs it on `--bind 127.0.0.1:0` with a data dir, reads the first stdout
//! line (`jamjet dev listening on http://ADDR`) for its URL, and stops it
//! with SIGTERM ([`DevServer::stop`]) or `kill -9` ([`DevServer::kill9`]);
//! dropping it kills it. [`Api`] sends JSON requests with reqwest.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take to end it.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct DevServer {
    pub url: String,
    pub child: Child,
    /// What it wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl DevServer {
    /// Start `jamjet --data-dir DIR dev --bind 127.0.0.1:0 EXTRA...`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> DevServer {
        Self::start_env(data_dir, extra, &[])
    }

    /// Like [`start`](Self::start), with environment variables.
    pub fn start_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> DevServer {
        let mut cmd = super::jamjet();
        cmd.env_remove("JAMJET_API_KEYS").env_remove("JAMJET_SERVER");
        cmd.arg("--data-dir").arg(data_dir).args(["dev", "--bind", "127.0.0.1:0"]).args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting jamjet dev");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines.by_ref() {}
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("jamjet dev printed no address ({other:?}); stderr:\n{}", stderr.lock().unwrap());
            }
        };
        let url = line
            .strip_prefix("jamjet dev listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from jamjet dev: {line}"))
            .to_string();
        DevServer { url, child, stderr }
    }

    /// SIGTERM, then wait for the exit (bounded).
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.wait_exit(STOP_TIMEOUT)
    }

    /// `kill -9`, then reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for the process to end by itself, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for jamjet dev") {
                return status;
            }
            if began.elapsed() > limit {
                let _ = self.child.kill();
                panic!("jamjet dev did not exit within {limit:?}; stderr:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// JSON over HTTP to one server, optionally with a bearer key.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub client: reqwest::Client,
    pub key: Option<String>,
}

impl Api {
    pub fn new(url: &str) -> Api {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Api { url: url.trim_end_matches('/').to_string(), client, key: None }
    }

    pub fn with_key(mut self, key: &str) -> Api {
        self.key = Some(key.to_string());
        self
    }

    /// A request to `path` with the key, if any.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.url));
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        r
    }

    /// Send and read `(status, JSON body or Null)`.
    pub async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let res = r.send().await.expect("request to jamjet dev");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("response body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap());
        self.send(r).await
    }

    /// `POST /workflows` with YAML.
    pub async fn register_yaml(&self, yaml: &str) -> (u16, Value) {
        let r = self
            .request(reqwest::Method::POST, "/workflows")
            .header("content-type", "application/yaml")
            .body(yaml.to_string());
        self.send(r).await
    }

    /// `GET /executions/{id}` until `done(body)` holds, at most `limit`.
    pub async fn poll_until(&self, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let began = Instant::now();
        loop {
            let (status, body) = self.get(&format!("/executions/{id}")).await;
            assert_eq!(status, 200, "{body}");
            if done(&body) {
                return body;
            }
            assert!(began.elapsed() < limit, "execution {id} did not get there within {limit:?}: {body}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// One Server-Sent Event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Read an SSE response until it closes or `max` events came (bounded by
/// the client's timeout), skipping keep-alive comments.
pub async fn read_sse(mut res: reqwest::Response, max: usize) -> Vec<SseEvent> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < max {
        let Some(chunk) = res.chunk().await.expect("reading the event stream") else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut ev = SseEvent { id: None, event: "message".into(), data: String::new() };
            let mut any = false;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    ev.id = Some(v.trim().to_string());
                    any = true;
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().to_string();
                    any = true;
                } else if let Some(v) = line.strip_prefix("data:") {
                    ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    any = true;
                }
            }
            if any {
                out.push(ev);
            }
        }
    }
    out
}
