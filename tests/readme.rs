//! The README's commands, in order, as a test: its source is the README
//! itself, so the two cannot drift. Every fenced block right after a line
//! `<!-- test: readme -->` is run, line by line (a line ending in `\`
//! goes on on the next), with `bash -c` in the repository's folder, on one
//! data dir in a temp dir (`JAMJET_DATA_DIR`), with the built `jamjet`
//! first on `PATH`. Each line must exit 0; a few are checked for what they
//! print (see [`expect`]).
//!
//! What a line says is what runs, except:
//! - `cargo run --example quickstart` runs the example's binary (built for
//!   this test's profile, a no-op under `cargo test`), and `cargo run -- `
//!   is the built `jamjet`; `cargo build --example X` builds it the same way;
//! - `./test.sh` is the suite this test is part of (`cargo test`, then
//!   the Python package's pytest): skipped;
//! - `jamjet dev ...` starts in the background (the README's "one
//!   terminal") on `--bind 127.0.0.1:0`, and `7700` in the lines after it is
//!   the port it printed;
//! - `exec_01K...` is the execution id the last command that printed one
//!   printed last;
//! - `curl -N` (an event stream that stays open while the execution runs)
//!   is cut after a few seconds: curl's exit 28 is its success.
//!
//! Every line is run even after one fails, and the failures are listed
//! together.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;
use support::dev::DevServer;

/// The mark before a block this test runs.
const MARK: &str = "<!-- test: readme -->";
/// How long one line may run.
const LINE_LIMIT: Duration = Duration::from_secs(120);
/// How long an open event stream is read.
const STREAM_SECONDS: u32 = 5;

/// One command of the README: its first line's number and its text.
struct Line {
    number: usize,
    text: String,
}

/// The marked blocks' commands, in order.
fn marked_lines(readme: &str) -> Vec<Line> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != MARK {
            i += 1;
            continue;
        }
        let fence = i + 1;
        assert!(
            lines.get(fence).is_some_and(|l| l.starts_with("```")),
            "README.md:{}: `{MARK}` must be followed by a fenced block",
            i + 1
        );
        i = fence + 1;
        let mut pending: Option<Line> = None;
        while i < lines.len() && !lines[i].starts_with("```") {
            let raw = lines[i];
            let number = i + 1;
            i += 1;
            let line = match pending.take() {
                Some(mut p) => {
                    p.text.push(' ');
                    p.text.push_str(raw.trim());
                    p
                }
                None if raw.trim().is_empty() || raw.trim_start().starts_with('#') => continue,
                None => Line { number, text: raw.trim().to_string() },
            };
            if let Some(head) = line.text.strip_suffix('\\') {
                pending = Some(Line { number: line.number, text: head.trim_end().to_string() });
            } else {
                out.push(line);
            }
        }
        assert!(pending.is_none(), "README.md:{}: a block ends in a `\\` continuation", i);
        i += 1;
    }
    out
}

/// The command without its trailing `# comment` (a `#` after whitespace,
/// outside quotes).
fn without_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_space) = (false, false, true);
    for (at, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return line[..at].trim_end(),
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line.trim_end()
}

/// What a line must print besides exiting 0 (`None`: the exit code says it).
fn expect(command: &str) -> Option<&'static str> {
    let table: [(&str, &str); 7] = [
        ("--example quickstart", "completed"),
        ("run examples/hello.yaml --input '{\"name\": \"Ada\"}'", "a short name"),
        ("run examples/hello.yaml --input '{\"name\": \"Grace\"}'", "a short name"),
        ("run examples/tool.yaml", "the sum is 42"),
        ("/health", "\"ok\""),
        ("/events/stream", "event: ExecutionStarted"),
        ("inspect ", "completed"),
    ];
    table.iter().find(|(k, _)| command.contains(k)).map(|(_, v)| *v)
}

/// The test's context: where it runs, what it learned so far.
struct Session {
    repo: PathBuf,
    data_dir: PathBuf,
    path: String,
    last_id: Option<String>,
    dev: Option<DevServer>,
    port: Option<u16>,
    failures: Vec<String>,
}

impl Session {
    fn fail(&mut self, line: &Line, why: String) {
        self.failures.push(format!("README.md:{}: `{}`: {why}", line.number, line.text));
    }

    fn remember_ids(&mut self, out: &str) {
        let id = Regex::new(r"exec_[0-7][0-9A-HJKMNP-TV-Z]{25}").unwrap();
        if let Some(last) = id.find_iter(out).last() {
            self.last_id = Some(last.as_str().to_string());
        }
    }

    /// The command as it runs here: placeholders filled in, or `None` when
    /// a placeholder has no value yet (a failure, recorded).
    fn substitute(&mut self, line: &Line) -> Option<String> {
        let mut cmd = without_comment(&line.text).to_string();
        if let Some(rest) = cmd.strip_prefix("cargo run -- ") {
            cmd = format!("jamjet {rest}");
        }
        if cmd.contains("exec_01K...") {
            let Some(id) = self.last_id.clone() else {
                self.fail(line, "no execution id was printed before it".into());
                return None;
            };
            cmd = cmd.replace("exec_01K...", &id);
        }
        if cmd.contains("7700") {
            let Some(port) = self.port else {
                self.fail(line, "names port 7700 before `jamjet dev` started".into());
                return None;
            };
            cmd = cmd.replace("7700", &port.to_string());
        }
        if cmd.starts_with("curl -N ") {
            cmd = format!("curl --max-time {STREAM_SECONDS} {}", &cmd["curl ".len()..]);
        }
        Some(cmd)
    }

    fn run_line(&mut self, line: &Line) {
        let text = without_comment(&line.text);
        if text == "./test.sh" {
            return; // the suite this test is part of (cargo test, then pytest)
        }
        if let Some(name) = text.strip_prefix("cargo build --example ") {
            support::mcp::example_binary(name.trim());
            return;
        }
        if let Some(args) = text.strip_prefix("jamjet dev") {
            let args: Vec<&str> = args.split_whitespace().collect();
            let dev = DevServer::start(&self.data_dir, &args);
            let port = dev.url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok());
            assert!(port.is_some(), "jamjet dev printed {}, no port", dev.url);
            self.port = port;
            self.dev = Some(dev);
            return;
        }
        let mut cmd = if let Some(args) = text.strip_prefix("cargo run --example quickstart") {
            let mut c = Command::new(support::mcp::example_binary("quickstart"));
            c.args(args.split_whitespace());
            c
        } else {
            let Some(cmd) = self.substitute(line) else { return };
            let mut c = Command::new("bash");
            c.args(["-c", &cmd]);
            c
        };
        cmd.current_dir(&self.repo)
            .env("PATH", &self.path)
            .env("JAMJET_DATA_DIR", &self.data_dir)
            .env("JAMJET_LOG", "error")
            .env_remove("JAMJET_SERVER")
            .env_remove("JAMJET_API_KEY")
            .env_remove("JAMJET_API_KEYS");
        let done = support::run_bounded(cmd, LINE_LIMIT, &format!("README.md:{}", line.number));
        let out = String::from_utf8_lossy(&done.output.stdout).into_owned();
        let err = String::from_utf8_lossy(&done.output.stderr).into_owned();
        let code = done.output.status.code();
        let streamed = text.starts_with("curl -N ") && code == Some(28);
        if !done.output.status.success() && !streamed {
            self.fail(line, format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", code, tail(&out), tail(&err)));
        } else if text.starts_with("curl -s ") && is_error_body(&out) {
            self.fail(line, format!("answered an error:\n{}", tail(&out)));
        } else if let Some(want) = expect(text)
            && !out.contains(want)
        {
            self.fail(line, format!("printed no `{want}`\nstdout:\n{}\nstderr:\n{}", tail(&out), tail(&err)));
        }
        self.remember_ids(&out);
    }
}

/// A JSON body `{"error": ...}`, as the server answers a refusal.
fn is_error_body(out: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(out.trim()).is_ok_and(|v| v.get("error").is_some())
}

/// The last 40 lines of a command's output.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn the_readme_commands_run_in_order() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("reading README.md");
    let lines = marked_lines(&readme);
    let texts: Vec<&str> = lines.iter().map(|l| without_comment(&l.text)).collect();
    for want in ["cargo run --example quickstart", "./test.sh", "jamjet dev --workflows examples/"] {
        assert!(texts.contains(&want), "README.md has no marked `{want}`; marked: {texts:#?}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_jamjet")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut session = Session {
        repo,
        data_dir: tmp.path().join(".jamjet"),
        path,
        last_id: None,
        dev: None,
        port: None,
        failures: Vec::new(),
    };
    for line in &lines {
        session.run_line(line);
    }
    if let Some(mut dev) = session.dev.take() {
        dev.stop();
    }
    assert!(
        session.failures.is_empty(),
        "{} of {} README commands failed:\n\n{}",
        session.failures.len(),
        lines.len(),
        session.failures.join("\n\n")
    );
}

#[test]
fn marked_blocks_parse_into_commands() {
    let text = "x\n<!-- test: readme -->\n```sh\n# a comment\na one  # says one\n\nb two \\\n  three\n```\n";
    let lines = marked_lines(text);
    let got: Vec<(usize, &str)> = lines.iter().map(|l| (l.number, l.text.as_str())).collect();
    assert_eq!(got, [(5, "a one  # says one"), (7, "b two three")]);
    assert_eq!(without_comment("curl -s 'a#b' -d '{\"k\": \"#\"}'  # why"), "curl -s 'a#b' -d '{\"k\": \"#\"}'");
    assert_eq!(without_comment("jamjet run x#y"), "jamjet run x#y");
}
