//! Compiling `type: workflow` nodes: the child workflow is found (by
//! `file`, relative to the parent's directory, or by `workflow` id and
//! `version` among the `.yaml`/`.yml` files there), compiled with the
//! parent, and embedded. A workflow that includes itself, directly or not,
//! is a finding, not a stack overflow.
//!
//! Which files may be read is the [`Includes`] policy of the compile
//! options: anywhere (a local file of your own), only under one directory
//! (a workflow posted to a server: its `--workflows` DIR; a posted
//! workflow, compiled from a string, looks its children up there), or
//! nowhere. Under a policy other than `Anywhere`, a path that is not a
//! file under the directory (after `..` and symlinks are resolved) gets
//! one message whether or not it exists, and a child that does not
//! compile is reported by position only: no text of a file the poster did
//! not send is ever quoted back. Every workflow file is read by
//! [`read_workflow_file`]: a regular file, at most `max_workflow_bytes`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::yaml::{self, Scalar, Value, Yaml};
use super::{Ctx, Fields, Includes, Options, optional};
use crate::ir::{Limit, Limits, NodeKind, Span, SubWorkflowNode, Type, Workflow};

pub(super) const SUB_WORKFLOW: &[&str] = &["file", "workflow", "version", "input", "output_key"];

/// A file beside the parent that declares a workflow.
pub(super) struct Candidate {
    path: PathBuf,
    id: String,
    version: String,
}

impl Ctx {
    pub(super) fn sub_workflow(&mut self, f: &Fields, at: Span) -> Option<NodeKind> {
        let input = f.get("input").map(|y| self.json(y));
        let child = match (f.entry("file"), f.entry("workflow")) {
            (Some(_), Some(e)) => {
                let message = "a workflow node names its child by `file` or by `workflow` (an id), not both";
                self.add(e.key_span, message);
                None
            }
            (None, None) => {
                let message = "a workflow node needs `file` (a path from this file's directory) or `workflow` (an id)";
                self.add(at, message);
                None
            }
            (Some(file), None) => {
                if let Some(e) = f.entry("version") {
                    self.add(e.key_span, "`version` goes with `workflow: <id>`: a `file` names one workflow");
                }
                self.child_by_file(&file.value)
            }
            (None, Some(e)) => self.child_by_id(&e.value, f.get("version")),
        };
        let output_key = optional(
            f.get("output_key").map(|y| self.output_key_for(y, &Type::Dict, "the child's final state, an object")),
        );
        if let (Some(child), Some(y)) = (&child, f.get("input")) {
            self.child_input(child, y);
        }
        Some(NodeKind::Workflow(SubWorkflowNode { workflow: Box::new(child?), input, output_key: output_key? }))
    }

    /// Where children are looked up: the directory of the file being
    /// compiled; for a string, the policy's directory (or the current one).
    pub(super) fn lookup_dir(&self) -> Option<PathBuf> {
        match (&self.dir, &self.options.includes) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Includes::Under(dir)) => Some(dir.clone()),
            (None, _) => None,
        }
    }

    /// The finding for any file read when the policy is `Nowhere`.
    fn no_files_here(&mut self, at: Span, what: &str) {
        let message = format!(
            "{what}: this workflow may not read files (a workflow posted to a server that was started without \
             --workflows DIR): embed the child workflow in the IR, or have the operator put it in --workflows DIR"
        );
        self.add(at, message);
    }

    fn child_by_file(&mut self, y: &Yaml) -> Option<Workflow> {
        let file = self.string(y, "file")?;
        if self.options.includes == Includes::Nowhere {
            self.no_files_here(y.span, &format!("sub-workflow `{file}`"));
            return None;
        }
        let path = self.lookup_dir().unwrap_or_default().join(file);
        self.include(&path, y.span)
    }

    fn child_by_id(&mut self, y: &Yaml, version: Option<&Yaml>) -> Option<Workflow> {
        let id = self.string(y, "workflow")?;
        // Written like the workflow's own `version` (`1.10` is text, not a float).
        let version = match version.map(|y| (y, &y.value)) {
            None => None,
            Some((_, Value::Scalar(text, Scalar::Str | Scalar::Int(_) | Scalar::Float(_)))) => Some(text.clone()),
            Some((y, _)) => {
                self.string(y, "version");
                return None;
            }
        };
        if self.options.includes == Includes::Nowhere {
            self.no_files_here(y.span, &format!("`workflow: {id}` looks among workflow files"));
            return None;
        }
        let Some(dir) = self.lookup_dir() else {
            let message = format!(
                "`workflow: {id}` is looked up among the files beside this workflow's file, and this workflow was \
                 not compiled from a file: name the child by `file`"
            );
            self.add(y.span, message);
            return None;
        };
        // One scan of a directory per compilation, however many nodes look in it.
        let candidates = match self.scanned.get(&dir) {
            Some(known) => known.clone(),
            None => {
                let found = std::rc::Rc::new(candidates(&dir, &self.options));
                self.scanned.insert(dir.clone(), found.clone());
                found
            }
        };
        let fits = |c: &&Candidate| c.id == id && version.as_ref().is_none_or(|v| *v == c.version);
        let matches: Vec<&Candidate> = candidates.iter().filter(fits).collect();
        let shown_dir = if dir.as_os_str().is_empty() { ".".to_string() } else { dir.display().to_string() };
        let message = match matches.as_slice() {
            [one] => return self.include(&one.path, y.span),
            [] => {
                let versions: Vec<&str> =
                    candidates.iter().filter(|c| c.id == id).map(|c| c.version.as_str()).collect();
                match &version {
                    Some(v) if !versions.is_empty() => {
                        format!("no version `{v}` of workflow `{id}` in `{shown_dir}` (found: {})", versions.join(", "))
                    }
                    _ => {
                        let hint = super::did_you_mean(&id, candidates.iter().map(|c| c.id.as_str()));
                        format!("no workflow `{id}` among the `.yaml`/`.yml` files in `{shown_dir}`{hint}")
                    }
                }
            }
            many => {
                let found: Vec<String> = many.iter().map(|c| format!("{} ({})", c.path.display(), c.version)).collect();
                let fix = if version.is_some() { "keep one of them" } else { "add `version` to pick one" };
                format!("several files declare workflow `{id}`: {}; {fix}", found.join(", "))
            }
        };
        self.add(y.span, message);
        None
    }

    /// Compile the child at `path` (the finding, if any, goes at `at`).
    fn include(&mut self, path: &Path, at: Span) -> Option<Workflow> {
        let shown = path.display().to_string();
        let canonical = match (std::fs::canonicalize(path), &self.options.includes) {
            (Ok(canonical), Includes::Anywhere) => canonical,
            (Err(err), Includes::Anywhere) => {
                self.add(at, format!("cannot read sub-workflow `{shown}`: {err}"));
                return None;
            }
            (found, Includes::Under(dir)) => match found {
                Ok(canonical) if under(&canonical, dir) => canonical,
                // One message whether it is missing or elsewhere: no probing.
                _ => {
                    let message = format!(
                        "sub-workflow `{shown}` is not a workflow file under the --workflows directory of this \
                         server, the only place a posted workflow may include files from"
                    );
                    self.add(at, message);
                    return None;
                }
            },
            (_, Includes::Nowhere) => {
                self.no_files_here(at, &format!("sub-workflow `{shown}`"));
                return None;
            }
        };
        if let Some(i) = self.including.iter().position(|f| f.canonical == canonical) {
            let cycle: Vec<&str> =
                self.including[i..].iter().map(|f| f.shown.as_str()).chain([shown.as_str()]).collect();
            self.add(at, format!("sub-workflow `{shown}` includes itself: {}", cycle.join(" → ")));
            return None;
        }
        match super::compile_path(path, &self.including, &self.options) {
            Ok(workflow) => Some(workflow),
            Err(findings) if self.options.includes != Includes::Anywhere => {
                // Where, not what: the file is not the poster's to read.
                let count = crate::plural::count(findings.len(), "finding", "findings");
                let first = findings
                    .iter()
                    .next()
                    .map(|f| format!("; the first at {}:{}:{}", f.file, f.line, f.column))
                    .unwrap_or_default();
                self.add(at, format!("sub-workflow `{shown}` does not compile ({count}{first})"));
                None
            }
            Err(findings) => {
                let more = match findings.len() {
                    0 | 1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                let first = findings.iter().next().map(ToString::to_string).unwrap_or_default();
                self.add(at, format!("sub-workflow `{shown}` does not compile: {first}{more}"));
                None
            }
        }
    }

    /// The keys of an `input` mapping are the child's state keys.
    fn child_input(&mut self, child: &Workflow, y: &Yaml) {
        match &y.value {
            Value::Map(entries) => {
                for entry in entries {
                    if child.state_schema.get(&entry.key).is_none() {
                        let hint =
                            super::did_you_mean(&entry.key, child.state_schema.fields.keys().map(String::as_str));
                        let message = format!(
                            "`input` key `{}` is not in the `state_schema` of sub-workflow `{}`{hint}",
                            entry.key, child.id
                        );
                        self.add(entry.key_span, message);
                    }
                }
            }
            Value::Scalar(_, Scalar::Str) => {}
            _ => {
                let message =
                    format!("`input` must be a mapping of the child's state keys (or a template), found {}", y.kind());
                self.add(y.span, message);
            }
        }
    }
}

/// Whether `path` (canonical) lies under `dir` (made canonical here; a
/// directory that cannot be resolved holds nothing).
fn under(path: &Path, dir: &Path) -> bool {
    std::fs::canonicalize(dir).is_ok_and(|dir| path.starts_with(dir))
}

/// The workflows declared by the `.yaml`/`.yml` files of `dir`, by file
/// name. Files that cannot be read or parsed, or that the include policy
/// does not allow, are not candidates.
fn candidates(dir: &Path, options: &Options) -> Vec<Candidate> {
    let listed = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    // An unreadable directory, or entry, holds no candidates.
    let mut paths: Vec<PathBuf> = std::fs::read_dir(listed)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| dir.join(entry.file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && p.is_file())
        .filter(|p| match &options.includes {
            Includes::Anywhere => true,
            Includes::Under(root) => std::fs::canonicalize(p).is_ok_and(|p| under(&p, root)),
            Includes::Nowhere => false,
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let source = read_workflow_file(&path, &options.limits).ok()?;
            let (root, _) = yaml::parse(&source).ok()?;
            let (id, version) = declared(&root)?;
            Some(Candidate { path, id, version })
        })
        .collect()
}

/// Read a workflow file: only a regular file (a device, a FIFO, a socket
/// or a directory is refused without being read, and a FIFO without
/// waiting for a writer), of at most `max_workflow_bytes` (read with a
/// bound, so a file that grows or lies about its size cannot make it read
/// more), holding UTF-8 text. The error is a finding's message; it never
/// quotes the file.
pub(super) fn read_workflow_file(path: &Path, limits: &Limits) -> Result<String, String> {
    let cannot = |what: String| format!("cannot read the workflow file: {what}");
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading would block until a writer opened it.
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path).map_err(|e| cannot(e.to_string()))?;
    let meta = file.metadata().map_err(|e| cannot(e.to_string()))?;
    if !meta.is_file() {
        return Err(cannot(format!("it is {}, not a regular file", file_kind(&meta))));
    }
    let max = limits.get(Limit::MaxWorkflowBytes);
    let too_big = |size: String| limits.exceeded(Limit::MaxWorkflowBytes, format!("the workflow file is {size}"));
    if meta.len() > max {
        return Err(too_big(crate::ir::show_bytes(meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| cannot(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(too_big(format!("larger than {}", crate::ir::show_bytes(max))));
    }
    String::from_utf8(bytes)
        .map_err(|e| cannot(format!("it is not UTF-8 text (at byte {})", e.utf8_error().valid_up_to())))
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "something else"
}

/// The `id` and `version` a workflow file declares (in either form).
fn declared(root: &Yaml) -> Option<(String, String)> {
    let Value::Map(top) = &root.value else {
        return None;
    };
    let header = match top.iter().find(|e| e.key == "workflow").map(|e| &e.value.value) {
        Some(Value::Map(block)) => block,
        Some(_) => return None,
        None => top,
    };
    let field = |key: &str| header.iter().find(|e| e.key == key).map(|e| &e.value);
    let id = field("id")?.as_str()?.to_string();
    let version = field("version").and_then(Yaml::scalar_text).unwrap_or("0.1.0").to_string();
    Some((id, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::compile_str_with;

    const CHILD: &str = "id: child\nstate_schema: { a: int }\nnodes:\n  s: { type: set, values: { a: 1 } }\n";
    const LEAKY: &str = "LEAKY-KEY-31: do-not-echo\n";

    fn parent(file: &str) -> String {
        format!(
            "id: p\nstate_schema: {{ out: dict }}\nnodes:\n  call: {{ type: workflow, file: \"{file}\", output_key: out }}\n"
        )
    }

    fn messages(src: &str, includes: Includes) -> Vec<String> {
        let options = Options { includes, ..Options::default() };
        match compile_str_with(src, "posted.yaml", &options) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|f| format!("{}:{}: {}", f.line, f.column, f.message)).collect(),
        }
    }

    #[test]
    fn under_a_directory_only_its_files_are_read_and_nothing_is_quoted() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wf");
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("child.yaml"), CHILD).unwrap();
        std::fs::write(root.join("lib/bad.yaml"), LEAKY).unwrap();
        std::fs::write(tmp.path().join("outside.yaml"), LEAKY).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside.yaml"), root.join("lib/link.yaml")).unwrap();
        let under = || Includes::Under(root.clone());

        assert!(messages(&parent("child.yaml"), under()).is_empty(), "a file under it, relative to it");
        let escapes = ["../outside.yaml", "lib/link.yaml", "/dev/zero", "missing.yaml"];
        let found: Vec<String> = escapes.iter().map(|f| messages(&parent(f), under()).join("\n")).collect();
        for (f, m) in escapes.iter().zip(&found) {
            assert!(m.starts_with("4:33: sub-workflow `") && m.contains("is not a workflow file under"), "{f}: {m}");
            assert!(!m.contains("LEAKY") && !m.contains("do-not-echo"), "{f}: {m}");
        }
        let bad = messages(&parent("lib/bad.yaml"), under()).join("\n");
        assert!(
            bad.contains("does not compile (") && bad.contains("; the first at ") && !bad.contains("LEAKY"),
            "{bad}"
        );
        // Anywhere (a local file of your own) keeps the detailed message.
        let local = messages(&parent(tmp.path().join("outside.yaml").to_str().unwrap()), Includes::Anywhere);
        assert!(local.join("\n").contains("LEAKY-KEY-31"), "{local:?}");
        // Nowhere reads nothing, by file or by id.
        let by_id = "id: p\nstate_schema: { out: dict }\nnodes:\n  call: { type: workflow, workflow: child, output_key: out }\n";
        for src in [parent("child.yaml"), by_id.to_string()] {
            let m = messages(&src, Includes::Nowhere).join("\n");
            assert!(m.contains("may not read files"), "{m}");
        }
        assert!(messages(by_id, under()).is_empty(), "by id among the directory's files");
    }

    #[test]
    fn only_regular_files_within_the_size_limit_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let mut limits = Limits::default();
        limits.set(Limit::MaxWorkflowBytes, 64);
        let small = tmp.path().join("small.yaml");
        std::fs::write(&small, "id: x\n").unwrap();
        assert_eq!(read_workflow_file(&small, &limits).unwrap(), "id: x\n");
        let big = tmp.path().join("big.yaml");
        std::fs::write(&big, "#".repeat(65)).unwrap();
        let e = read_workflow_file(&big, &limits).unwrap_err();
        assert!(e.starts_with("the workflow file is 65 bytes: over the limit max_workflow_bytes = 64 bytes"), "{e}");
        let e = read_workflow_file(tmp.path(), &limits).unwrap_err();
        assert_eq!(e, "cannot read the workflow file: it is a directory, not a regular file");
        let e = read_workflow_file(Path::new("/dev/zero"), &limits).unwrap_err();
        assert_eq!(e, "cannot read the workflow file: it is a device, not a regular file");
        let text = tmp.path().join("latin1.yaml");
        std::fs::write(&text, b"id: \xe9\n").unwrap();
        let e = read_workflow_file(&text, &limits).unwrap_err();
        assert_eq!(e, "cannot read the workflow file: it is not UTF-8 text (at byte 4)");
    }
}
