//! The web UI at `/ui`, in a real headless Chromium: the real `jamjet dev`
//! binary on 127.0.0.1:0, Debian's `chromium` driven by `chromedriver`
//! over the W3C WebDriver HTTP protocol (reqwest, no client library).
//! Each scenario saves a screenshot under `target/ui-screenshots/`.
//!
//! Outside CI a missing `chromium` or `chromedriver` is SKIPPED with the
//! command that installs them; under `CI=true` it fails. Every wait is
//! bounded in tries and in time.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::dev::{Api, DevServer};

const LIMIT: Duration = Duration::from_secs(30);
/// How long, and how many looks, a wait for the page may take.
const WAIT_LIMIT: Duration = Duration::from_secs(20);
const WAIT_TRIES: usize = 200;
const POLL: Duration = Duration::from_millis(100);
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const INSTALL: &str = "install with: apt-get install -y chromium chromium-driver";

/// Sets two keys and ends.
const DONE: &str = r#"
id: done
version: 1.0.0
state_schema: { name: str, greeting: str, shout: str }
nodes:
  greet: { type: set, values: { greeting: "hello {{ state.name }}" }, next: shout }
  shout: { type: set, values: { shout: "HELLO {{ state.name }}" } }
"#;

/// Fails: nothing listens on port 1 of loopback; two attempts, 200 ms apart.
const FAILS: &str = r#"
id: fails
version: 1.0.0
state_schema: { out: any }
nodes:
  call:
    type: http
    url: "http://127.0.0.1:1/"
    output_key: out
    retry: { max_attempts: 2, backoff: constant, delay_ms: 200 }
"#;

/// Two branches, one of two steps, joined.
const FAN: &str = r#"
id: fan
version: 1.0.0
state_schema: { a: int, b: int, c: int, done: bool }
nodes:
  split:
    type: parallel
    branches: [left, right]
    join: joined
    merge: keys
  left: { type: set, values: { a: 1 }, next: left2 }
  left2: { type: set, values: { c: "{{ state.a + 1 }}" }, next: joined }
  right: { type: set, values: { b: 2 }, next: joined }
  joined: { type: set, values: { done: true } }
"#;

/// Parks on an approval.
const REFUND: &str = r#"
id: refund
version: 1.0.0
state_schema: { amount: int, decision: dict, status: str }
nodes:
  ask:
    type: approval
    prompt: "Refund {{ state.amount }} dollars?"
    on_reject: refuse
    output_key: decision
    next: pay
  pay: { type: set, values: { status: "refunded by {{ state.decision.by }}" } }
  refuse: { type: set, values: { status: refused } }
"#;

/// Parks until `parcel:<n>` arrives.
const PARCEL: &str = r#"
id: parcel
version: 1.0.0
state_schema: { n: int, parcel: any }
nodes:
  arrive: { type: wait, event: "parcel:{{ state.n }}", output_key: parcel }
"#;

// ---- The browser ---------------------------------------------------------

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    port: u16,
    http: reqwest::Client,
    session: String,
}

/// Where chromium and chromedriver are, or `None` (SKIPPED) outside CI.
fn installed() -> Option<(String, String)> {
    let which = |name: &str| {
        let out = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !path.is_empty()).then_some(path)
    };
    match (which("chromium"), which("chromedriver")) {
        (Some(c), Some(d)) => Some((c, d)),
        (c, d) => {
            let missing = [("chromium", c.is_none()), ("chromedriver", d.is_none())]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" and ");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{missing} not found under CI=true; {INSTALL}");
            }
            eprintln!("SKIPPED: {missing} not found; {INSTALL}");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    async fn start() -> Option<Browser> {
        let (chromium, chromedriver) = installed()?;
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let http = reqwest::Client::builder().timeout(LIMIT).build().unwrap();
        let mut b = Browser { driver, port, http, session: String::new() };
        let began = Instant::now();
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(res) = b.http.get(b.url("/status")).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            if began.elapsed() > LIMIT {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-first-run", "--no-default-browser-check"],
            },
        } } });
        let v = b.call(reqwest::Method::POST, "/session", Some(caps)).await;
        b.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        Some(b)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One WebDriver command; its `value`, or the error's `value` (with `error`).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, self.url(path));
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_string());
        }
        let res = r.send().await.unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        let v: Value = res.json().await.unwrap_or(Value::Null);
        v.get("value").cloned().unwrap_or(v)
    }

    async fn session(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body).await
    }

    async fn goto(&self, url: &str) {
        let v = self.session(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
        assert!(v.get("error").is_none(), "navigating to {url}: {v}");
    }

    /// The element ids matching `css` (none when the page does not have it yet).
    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .session(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css })))
            .await;
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// The text of an element; `None` when it went stale.
    async fn text_of(&self, element: &str) -> Option<String> {
        let v = self.session(reqwest::Method::GET, &format!("/element/{element}/text"), None).await;
        v.as_str().map(str::to_string)
    }

    /// Wait (bounded) until the first element matching `css` has a text `ok` accepts; that text.
    async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let began = Instant::now();
        let mut last = None;
        for _ in 0..WAIT_TRIES {
            if let Some(e) = self.find_all(css).await.first()
                && let Some(t) = self.text_of(e).await
            {
                if ok(&t) {
                    return t;
                }
                last = Some(t);
            }
            if began.elapsed() > WAIT_LIMIT {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.screenshot("failed-wait").await;
        panic!("`{css}` never showed what was expected within {WAIT_LIMIT:?}; last text: {last:?}");
    }

    /// Wait (bounded) until `css` matches `n` elements (`n` = 0: none).
    async fn wait_count(&self, css: &str, ok: impl Fn(usize) -> bool) -> usize {
        let began = Instant::now();
        let mut n = 0;
        for _ in 0..WAIT_TRIES {
            n = self.find_all(css).await.len();
            if ok(n) {
                return n;
            }
            if began.elapsed() > WAIT_LIMIT {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.screenshot("failed-wait").await;
        panic!("`{css}` matched {n} elements, never what was expected, within {WAIT_LIMIT:?}");
    }

    async fn click(&self, css: &str) {
        self.wait_count(css, |n| n > 0).await;
        let e = self.find_all(css).await.remove(0);
        let v = self.session(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({}))).await;
        assert!(v.get("error").is_none(), "clicking {css}: {v}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.wait_count(css, |n| n > 0).await;
        let e = self.find_all(css).await.remove(0);
        self.session(reqwest::Method::POST, &format!("/element/{e}/clear"), Some(json!({}))).await;
        let v =
            self.session(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({ "text": text }))).await;
        assert!(v.get("error").is_none(), "typing into {css}: {v}");
    }

    /// Save the viewport as `target/ui-screenshots/NAME.png`.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.session(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(v.as_str().unwrap_or_else(|| panic!("no screenshot: {v}")));
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    /// End the session (Chromium with it), then chromedriver. Plain TCP:
    /// a drop cannot await.
    fn drop(&mut self) {
        if !self.session.is_empty()
            && let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

// ---- The server ----------------------------------------------------------

/// A server with the workflows registered.
async fn server(dir: &std::path::Path, env: &[(&str, &str)], key: Option<&str>) -> (DevServer, Api) {
    let server = DevServer::start_env(dir, &[], env);
    let mut api = server.api();
    if let Some(k) = key {
        api = api.with_key(k);
    }
    for yaml in [DONE, FAILS, REFUND, FAN, PARCEL] {
        let (s, b) = api.register_yaml(yaml).await;
        assert_eq!(s, 201, "{b}");
    }
    (server, api)
}

async fn start(api: &Api, workflow: &str, input: Value, key: Option<&str>) -> String {
    let mut body = json!({ "workflow_id": workflow, "input": input });
    if let Some(k) = key {
        body["idempotency_key"] = json!(k);
    }
    let (s, b) = api.post("/executions", &body).await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// One execution of each kind, each settled: (completed, failed, waiting).
async fn three(api: &Api) -> (String, String, String) {
    let done = start(api, "done", json!({ "name": "ada" }), Some("order-42")).await;
    let fails = start(api, "fails", json!({}), None).await;
    let waits = start(api, "refund", json!({ "amount": 30 }), None).await;
    api.poll_until(&done, LIMIT, |b| b["status"] == "completed").await;
    api.poll_until(&fails, LIMIT, |b| b["status"] == "failed").await;
    api.poll_until(&waits, LIMIT, |b| b["status"] == "waiting").await;
    (done, fails, waits)
}

fn row(id: &str) -> String {
    format!("#executions tr[data-id=\"{id}\"]")
}

// ---- Scenarios -----------------------------------------------------------

#[tokio::test]
async fn the_ui_is_served_by_the_binary_with_a_strict_policy_and_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_env(dir.path(), &[], &[("JAMJET_API_KEYS", "ui-secret")]);
    let http = reqwest::Client::builder().timeout(LIMIT).build().unwrap();
    for (path, kind) in [("/ui", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")] {
        let res = http.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path} needs no key: it holds no data");
        let h = res.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with(kind), "{path}: {:?}", h["content-type"]);
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
    }
    // The data behind it still asks for the key.
    let res = http.get(format!("{}/executions?order=desc", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = http.get(format!("{}/ui/nope.js", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 404, "nothing else is under /ui");
}

#[tokio::test]
async fn the_list_shows_executions_filters_them_and_finds_one_by_key() {
    let Some(browser) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = server(dir.path(), &[], None).await;
    let (done, fails, waits) = three(&api).await;

    browser.goto(&format!("{}/ui", server.url)).await;
    for (id, status) in [(&done, "completed"), (&fails, "failed"), (&waits, "waiting")] {
        let text = browser.wait_text(&row(id), |t| t.contains(status)).await;
        assert!(text.contains(id.as_str()), "{text}");
    }
    let newest = [&done, &fails, &waits].into_iter().max().unwrap();
    let first = browser.wait_text("#executions tr", |_| true).await;
    assert!(first.contains(newest.as_str()), "newest first: {first}");
    let done_row = browser.wait_text(&row(&done), |t| t.contains("done")).await;
    assert!(done_row.contains("1.0.0") && done_row.contains("ms"), "workflow, version and duration: {done_row}");
    browser.screenshot("list").await;

    // A filter by status.
    browser.goto(&format!("{}/ui#/?status=failed", server.url)).await;
    browser.wait_count(&row(&done), |n| n == 0).await;
    browser.wait_text(&row(&fails), |t| t.contains("failed")).await;
    assert_eq!(browser.find_all("#executions tr[data-id]").await.len(), 1);
    // A filter by workflow, through the form.
    browser.goto(&format!("{}/ui#/", server.url)).await;
    browser.wait_count(&row(&done), |n| n == 1).await;
    browser.type_into("#f-workflow", "refund").await;
    browser.click(".filters button[type=submit]").await;
    browser.wait_count(&row(&done), |n| n == 0).await;
    browser.wait_text(&row(&waits), |t| t.contains("waiting")).await;
    // A search by idempotency key, and by id.
    browser.goto(&format!("{}/ui#/?q=order-42", server.url)).await;
    browser.wait_count("#executions tr[data-id]", |n| n == 1).await;
    browser.wait_text(&row(&done), |t| t.contains("completed")).await;
    browser.goto(&format!("{}/ui#/?q={fails}", server.url)).await;
    browser.wait_count(&row(&done), |n| n == 0).await;
    browser.wait_text(&row(&fails), |t| t.contains("failed")).await;

    // Live: a new execution appears without a reload.
    browser.goto(&format!("{}/ui#/", server.url)).await;
    browser.wait_count(&row(&done), |n| n == 1).await;
    let late = start(&api, "done", json!({ "name": "bo" }), None).await;
    browser.wait_text(&row(&late), |t| t.contains("completed")).await;
}

#[tokio::test]
async fn a_timeline_renders_for_a_completed_a_failed_and_a_waiting_execution() {
    let Some(browser) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = server(dir.path(), &[], None).await;
    let (done, fails, waits) = three(&api).await;
    let page = |id: &str| format!("{}/ui#/executions/{id}", server.url);

    // Completed: a bar per node visit, and a step's state before and after.
    browser.goto(&page(&done)).await;
    browser.wait_count("#timeline .tl-row[data-node=greet][data-status=completed]", |n| n == 1).await;
    browser.wait_count("#timeline .tl-row[data-node=shout][data-status=completed] .bar", |n| n == 1).await;
    browser.click("#timeline .tl-row[data-node=shout]").await;
    let details = browser.wait_text("#details", |t| t.contains("State before")).await;
    assert!(details.contains("hello ada") && details.contains("HELLO ada"), "{details}");
    browser.wait_text("#details .diff .d-added", |t| t.contains("shout")).await;
    browser.screenshot("timeline-completed").await;

    // Failed: both attempts and the backoff between them, the error's class.
    browser.goto(&page(&fails)).await;
    browser.wait_count("#timeline .tl-row[data-node=call][data-status=failed]", |n| n == 1).await;
    assert_eq!(browser.find_all("#timeline .tl-row[data-node=call] .mark.fail").await.len(), 2);
    assert_eq!(browser.find_all("#timeline .tl-row[data-node=call] .mark.backoff").await.len(), 1);
    browser.wait_text("#timeline .tl-row[data-node=call] .retries", |t| t.contains("×2")).await;
    browser.click("#timeline .tl-row[data-node=call]").await;
    let errors = browser.wait_text("#details .errors", |t| t.contains("attempt 2")).await;
    assert!(errors.to_lowercase().contains("connection"), "the class of the error: {errors}");
    browser.wait_text(".exec-head .error-text", |t| !t.is_empty()).await;
    browser.screenshot("timeline-failed").await;

    // Waiting: the approval's wait on the time axis, and its prompt.
    browser.goto(&page(&waits)).await;
    browser.wait_count("#timeline .tl-row[data-node=ask][data-status=waiting] .mark.wait", |n| n == 1).await;
    browser.wait_text("#actions .approval .prompt", |t| t == "Refund 30 dollars?").await;
    browser.screenshot("timeline-waiting").await;

    // A fan-out: its branches open as lanes under it.
    let fan = start(&api, "fan", json!({}), None).await;
    api.poll_until(&fan, LIMIT, |b| b["status"] == "completed").await;
    browser.goto(&page(&fan)).await;
    browser.wait_text("#timeline .tl-row[data-node=split] button.expand", |t| t.contains("2 branches")).await;
    browser.click("#timeline .tl-row[data-node=split] button.expand").await;
    browser.wait_count("#timeline .tl-row.tl-lane[data-node=left2][data-status=completed]", |n| n == 1).await;
    browser.wait_count("#timeline .tl-row.tl-lane[data-node=right][data-status=completed]", |n| n == 1).await;
    let lane = browser.wait_text("#timeline .tl-row.tl-lane[data-node=left2]", |t| t.contains("branch")).await;
    assert!(lane.contains("left2"), "{lane}");
    browser.click("#timeline .tl-row.tl-lane[data-node=left2]").await;
    browser.wait_text("#details", |t| t.contains("In branch execution")).await;
    browser.screenshot("timeline-lanes").await;
    // Fork from the lane's step: only that branch goes on, from there, with the patch.
    browser.type_into("#details textarea[name=set]", r#"{"a": 10}"#).await;
    browser.click("#details button.fork").await;
    let head = browser.wait_text(".exec-head", |t| t.contains("Forked from")).await;
    assert!(head.contains(&fan), "{head}");
    // The page is the fork's now.
    let at = browser.session(reqwest::Method::GET, "/url", None).await;
    let forked = at.as_str().and_then(|u| u.rsplit_once("#/executions/")).map(|(_, id)| id.to_string());
    let forked = forked.unwrap_or_else(|| panic!("the fork's page: {at}"));
    assert_ne!(forked, fan);
    let body = api.poll_until(&forked, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!((body["state"]["c"].clone(), body["state"]["b"].clone()), (json!(11), json!(2)), "{body}");
    browser.screenshot("fork-in-branch").await;

    // Pruned: said plainly.
    let (s, b) = api.post("/prune", &json!({ "older_than": "1ms", "status": ["completed"] })).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(api.get(&format!("/executions/{done}")).await.0, 410);
    browser.goto(&page(&done)).await;
    let pruned = browser.wait_text("#pruned", |t| t.contains("pruned")).await;
    assert!(pruned.contains("completed"), "{pruned}");
    browser.screenshot("timeline-pruned").await;
}

#[tokio::test]
async fn an_approval_given_in_the_ui_resumes_the_execution() {
    let Some(browser) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = server(dir.path(), &[], None).await;
    let id = start(&api, "refund", json!({ "amount": 12 }), None).await;
    api.poll_until(&id, LIMIT, |b| b["status"] == "waiting").await;

    browser.goto(&format!("{}/ui#/executions/{id}", server.url)).await;
    browser.wait_text("#actions .approval .prompt", |t| t == "Refund 12 dollars?").await;
    browser.type_into("#actions .approval input[name=by]", "ada").await;
    browser.type_into("#actions .approval input[name=comment]", "looks right").await;
    browser.screenshot("approval-before").await;
    browser.click("#actions .approval button.approve").await;

    // The REST API says it went on and completed, with the UI's decision.
    let body = api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(body["state"]["status"], "refunded by ada", "{body}");
    assert_eq!(body["state"]["decision"]["decision"], "approved", "{body}");
    assert_eq!(body["state"]["decision"]["comment"], "looks right", "{body}");
    // And the page follows.
    browser.wait_text(".exec-head h1", |t| t.contains("completed")).await;
    browser.wait_count("#timeline .tl-row[data-node=pay][data-status=completed]", |n| n == 1).await;
    browser.screenshot("approval-after").await;

    // Fork from the step after the approval, with a patch: a new execution that says where it came from.
    browser.click("#timeline .tl-row[data-node=pay]").await;
    browser.type_into("#details textarea[name=set]", r#"{"amount": 99}"#).await;
    browser.click("#details button.fork").await;
    let head = browser.wait_text(".exec-head", |t| t.contains("Forked from")).await;
    assert!(head.contains(&id), "{head}");
    let (_, page) = api.get("/executions?workflow=refund").await;
    let rows = page["executions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{page}");
    let fork = rows.iter().find(|r| r["id"] != id.as_str()).unwrap()["id"].as_str().unwrap().to_string();
    let body = api.poll_until(&fork, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(body["state"]["amount"], 99, "{body}");
    browser.screenshot("fork").await;
}

#[tokio::test]
async fn with_api_keys_the_ui_asks_for_one_and_sends_it() {
    let Some(browser) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = server(dir.path(), &[("JAMJET_API_KEYS", "ui-secret")], Some("ui-secret")).await;
    let id = start(&api, "done", json!({ "name": "cy" }), None).await;
    api.poll_until(&id, LIMIT, |b| b["status"] == "completed").await;

    browser.goto(&format!("{}/ui", server.url)).await;
    browser.wait_text("#notice", |t| t.contains("needs an API key")).await;
    assert!(browser.find_all(&row(&id)).await.is_empty(), "nothing shows without the key");
    browser.type_into("#apikey", "wrong").await;
    browser.click("#keyform button[type=submit]").await;
    browser.wait_text("#notice", |t| t.contains("did not accept")).await;
    browser.type_into("#apikey", "ui-secret").await;
    browser.click("#keyform button[type=submit]").await;
    browser.wait_text(&row(&id), |t| t.contains("completed")).await;
    browser.screenshot("list-with-key").await;
}

#[tokio::test]
async fn a_signal_and_a_cancel_given_in_the_ui_move_the_execution_on() {
    let Some(browser) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = server(dir.path(), &[], None).await;
    let first = start(&api, "parcel", json!({ "n": 7 }), None).await;
    let second = start(&api, "parcel", json!({ "n": 8 }), None).await;
    for id in [&first, &second] {
        api.poll_until(id, LIMIT, |b| b["status"] == "waiting").await;
    }

    // The signal form names the event the execution waits for; a payload goes with it.
    browser.goto(&format!("{}/ui#/executions/{first}", server.url)).await;
    let form = browser.wait_text("#actions .signal h3", |t| t.contains("parcel:7")).await;
    assert!(form.contains("Waiting for event"), "{form}");
    browser.type_into("#actions .signal textarea[name=payload]", r#"{"at": "the door"}"#).await;
    browser.click("#actions .signal button.send").await;
    let body = api.poll_until(&first, LIMIT, |b| b["status"] == "completed").await;
    assert_eq!(body["state"]["parcel"], json!({ "at": "the door" }), "{body}");
    browser.wait_text(".exec-head h1", |t| t.contains("completed")).await;
    browser.screenshot("signal").await;

    // Cancel asks first, then cancels with the reason given.
    browser.goto(&format!("{}/ui#/executions/{second}", server.url)).await;
    browser.type_into("#actions .cancel input[name=reason]", "sent elsewhere").await;
    browser.click("#actions .cancel button.danger").await;
    let v = browser.session(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
    assert!(v.get("error").is_none(), "the confirmation: {v}");
    let body = api.poll_until(&second, LIMIT, |b| b["status"] == "cancelled").await;
    assert!(
        body["error"].to_string().contains("sent elsewhere") || body.to_string().contains("sent elsewhere"),
        "{body}"
    );
    browser.wait_text(".exec-head h1", |t| t.contains("cancelled")).await;
    browser.screenshot("cancel").await;
}

#[tokio::test]
async fn a_read_only_key_sees_executions_and_its_actions_are_refused() {
    let Some(browser) = Browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let digest = |k: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(k.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("{}  all\n{}  read  # dashboard\n", digest("ui-all"), digest("ui-read"))).unwrap();
    let server = DevServer::start(&dir.path().join("data"), &["--api-keys-file", keys.to_str().unwrap()]);
    let api = server.api().with_key("ui-all");
    let (s, b) = api.register_yaml(REFUND).await;
    assert_eq!(s, 201, "{b}");
    let id = start(&api, "refund", json!({ "amount": 5 }), None).await;
    api.poll_until(&id, LIMIT, |b| b["status"] == "waiting").await;

    browser.goto(&format!("{}/ui", server.url)).await;
    browser.wait_text("#notice", |t| t.contains("needs an API key")).await;
    browser.type_into("#apikey", "ui-read").await;
    browser.click("#keyform button[type=submit]").await;
    browser.wait_text(&row(&id), |t| t.contains("waiting")).await;
    browser.goto(&format!("{}/ui#/executions/{id}", server.url)).await;
    browser.wait_text("#actions .approval .prompt", |t| t == "Refund 5 dollars?").await;
    browser.click("#actions .approval button.approve").await;
    let said = browser.wait_text("#notice", |t| t.contains("Not allowed")).await;
    assert!(said.to_lowercase().contains("read"), "the refusal says why: {said}");
    browser.screenshot("read-only-refused").await;
    let (_, body) = api.get(&format!("/executions/{id}")).await;
    assert_eq!(body["status"], "waiting", "nothing changed: {body}");
}

#[tokio::test]
async fn a_streamed_reply_shows_as_it_is_written() {
    use support::model_server::{ModelServer, Reply, Rule};
    let Some(browser) = Browser::start().await else { return };
    let model = ModelServer::start().await;
    // Two words, then the stream holds: the reply is half written while the page looks.
    model.script(Rule::always(Reply::stream("alpha beta gamma", 20, Some(2))));
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_env(
        &dir.path().join("data"),
        &["--allow-env", "JJ_UI_MODEL_KEY"],
        &[("JJ_UI_MODEL_KEY", "k")],
    );
    let api = server.api();
    let yaml = format!(
        r#"id: talk
state_schema: {{ answer: str }}
models:
  m: {{ provider: openai, model: test-model, base_url: "{}", api_key_env: JJ_UI_MODEL_KEY }}
start: go
nodes:
  go: {{ type: wait, event: go, next: ask }}
  ask: {{ type: model, model: m, prompt: "say it", output_key: answer, stream: true }}
"#,
        model.openai_base()
    );
    let (s, b) = api.register_yaml(&yaml).await;
    assert_eq!(s, 201, "{b}");
    let id = start(&api, "talk", json!({}), None).await;
    api.poll_until(&id, LIMIT, |b| b["status"] == "waiting").await;
    // The page follows the execution's event stream; then the model is asked.
    browser.goto(&format!("{}/ui#/executions/{id}", server.url)).await;
    browser.wait_count("#live[data-following=true]", |n| n == 1).await;
    let (s, b) = api.post(&format!("/executions/{id}/signal"), &json!({ "key": "go" })).await;
    assert!(s < 300, "{b}");
    let text = browser.wait_text("#live .stream[data-node=ask] pre", |t| t.contains("alpha beta")).await;
    assert!(!text.contains("gamma"), "only what was written so far: {text}");
    browser.wait_text("#live .stream h4", |t| t == "ask").await;
    let (_, body) = api.get(&format!("/executions/{id}")).await;
    assert_eq!(body["status"], "running", "still being written: {body}");
    browser.screenshot("streaming").await;
}
