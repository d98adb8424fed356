//! `jamjet executions [--status S]`: list executions, oldest first; an
//! index row that cannot be read is listed as `damaged`, with why.
//! Child executions (parallel branches, sub-workflows) are counted under
//! the execution that started them, not listed: a fan-out of 10,000 items
//! is one row that says so. `--all` lists them too, each indented under
//! its parent. `--waiting`: what each parked execution waits for (an
//! event, an approval, a timer), since when and until when. `--damaged`:
//! read every record of every execution and list only those that cannot
//! be read in full, and what fails (an index row, a record, a workflow IR).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::collections::{HashMap, HashSet};

use super::held::{self, Mode, Store};
use super::remote::{Remote, ServerArg, waits_of};
use super::{CliResult, Failure, absolute, print_json, table};
use crate::ExecutionId;
use crate::client::Client;
use crate::clock::format_ms;
use crate::journal::{Damage, ExecutionMeta, Listing, Status};
use crate::plural::count;
use crate::runtime::{Unattended, WaitKind, Waiting};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only executions with this status (running, waiting, completed, failed, cancelled).
    #[arg(long, conflicts_with = "waiting")]
    pub status: Option<String>,
    /// List child executions (parallel branches, sub-workflows) too, each under its parent.
    #[arg(long, conflicts_with_all = ["waiting", "damaged"])]
    pub all: bool,
    /// What each waiting execution waits for, one row per waiting node.
    #[arg(long, conflicts_with = "damaged")]
    pub waiting: bool,
    /// In a shared store (--store): the executions that need a process and that no live one runs, and why.
    #[arg(long, conflicts_with_all = ["waiting", "damaged", "status", "all"])]
    pub unclaimed: bool,
    /// Only the executions that cannot be read in full, and what fails (reads every record).
    #[arg(long, conflicts_with = "status")]
    pub damaged: bool,
    /// Print the rows as JSON (each with its `parent` and how many `children` it has under it).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub(crate) async fn run(data_dir: &Path, a: Args) -> CliResult {
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            Failure::new(format!("--status `{s}` is not a status (running, waiting, completed, failed, cancelled)"))
        })?),
    };
    if let Some(url) = &a.server.server {
        if a.damaged {
            return Err(Failure::usage(
                "--damaged reads the data dir itself; run it without --server, on the server's data dir",
            ));
        }
        return list_through(&Remote::server(url, &a.server)?, data_dir, status, &a).await;
    }
    let local = match held::open(data_dir, "executions", Mode::ReadOnly).await? {
        Store::Held(_) if a.damaged => {
            return Err(Failure::new(format!(
                "--damaged reads every record of the data dir itself, and {} is in use by another jamjet process; \
                 run it again once that one ends",
                data_dir.display()
            )));
        }
        Store::Held(remote) => return list_through(&remote, data_dir, status, &a).await,
        Store::Local(local) => local,
    };
    let rt = &local.rt;
    let result = if a.unclaimed {
        if !rt.shares_store() {
            local.close().await;
            return Err(Failure::usage(
                "--unclaimed lists what no process of a shared store runs (--store postgres://...); in a data dir, \
                 `jamjet executions` marks what was left behind",
            ));
        }
        rt.unclaimed(UNCLAIMED_SHOWN).map(|u| print_unclaimed(&u, a.json))
    } else if a.waiting {
        // In a shared store, text adds what waits for a process (`--unclaimed --json` has it for programs).
        let unclaimed = match rt.shares_store() && !a.json {
            true => rt.unclaimed(UNCLAIMED_SHOWN),
            false => Ok(Vec::new()),
        };
        rt.waiting().and_then(|w| {
            let unclaimed = unclaimed?;
            print_waiting(&w, a.json);
            if !unclaimed.is_empty() {
                println!("\nwaiting for a process (no live process runs them):");
                print_unclaimed(&unclaimed, false);
            }
            Ok(())
        })
    } else if a.damaged {
        rt.check().map(|checked| {
            if checked.damaged.is_empty() && checked.cut_short.is_none() && !a.json {
                let read = count(checked.rows.len(), "execution", "executions");
                println!("nothing is damaged: {read} read whole");
            } else {
                let family = Family::of(Listing { rows: Vec::new(), ..checked }, HashMap::new());
                print_list(&family, &HashMap::new(), &absolute(data_dir), true, a.json)
            }
        })
    } else {
        match (rt.listing(None), rt.unattended_all().await) {
            (Ok(listing), Ok(left)) => {
                // Every row's parent, before filtering: a child counts under
                // the nearest ancestor listed, through ancestors that are not.
                let parents =
                    listing.rows.iter().filter_map(|m| Some((m.id, rt.parent_link(m.id).ok().flatten()?.id))).collect();
                // This process opened the data dir and carries nothing: no one else does.
                let left: HashMap<ExecutionId, Unattended> = left.into_iter().collect();
                let family = Family::of(filtered(listing, status), parents);
                print_list(&family, &left, &absolute(data_dir), a.all, a.json);
                Ok(())
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    };
    local.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `executions` through a server or the data dir's holder.
async fn list_through(remote: &Remote, data_dir: &Path, status: Option<Status>, a: &Args) -> CliResult {
    if a.waiting {
        print_waiting(&waiting_remote(&remote.client).await?, a.json);
    } else {
        let (rows, parents) = list_remote(&remote.client).await?;
        let listing = Listing { rows, ..Listing::default() };
        let family = Family::of(filtered(listing, status), parents);
        // Where an empty list was read: the server, or the data dir its holder serves.
        let from = match &remote.url {
            Some(url) => PathBuf::from(url),
            None => absolute(data_dir),
        };
        print_list(&family, &HashMap::new(), &from, a.all, a.json);
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows with `status` (a damaged row has no status to filter on: it
/// is listed only when nothing is filtered).
fn filtered(mut listing: Listing, status: Option<Status>) -> Listing {
    if let Some(s) = status {
        listing.rows.retain(|m| m.status == s);
        listing.damaged.clear();
    }
    listing
}

/// Every execution on a server, as the index rows the local list prints,
/// and the parent of each child. The list rows carry no workflow hash: it
/// is the one registered under the execution's workflow id and version
/// (empty if none is).
async fn list_remote(client: &Client) -> Result<(Vec<ExecutionMeta>, HashMap<ExecutionId, ExecutionId>), Failure> {
    let rows = client.list_all(None).await?;
    let registered: HashMap<(String, String), String> = match rows.iter().all(|r| r.workflow_hash.is_some()) {
        true => HashMap::new(),
        false => client.workflows().await?.into_iter().map(|r| ((r.workflow_id, r.version), r.hash)).collect(),
    };
    let parents = rows.iter().filter_map(|r| Some((r.id, r.parent?))).collect();
    let rows = rows
        .into_iter()
        .map(|r| {
            let hash = r.workflow_hash.clone().unwrap_or_else(|| {
                registered.get(&(r.workflow_id.clone(), r.version.clone())).cloned().unwrap_or_default()
            });
            ExecutionMeta {
                id: r.id,
                workflow_id: r.workflow_id,
                workflow_version: r.version,
                workflow_hash: hash,
                status: r.status,
                created_ms: r.created_ms,
                updated_ms: r.updated_ms,
                key: r.key,
            }
        })
        .collect();
    Ok((rows, parents))
}

/// The rows to list, and who started whom.
struct Family {
    listing: Listing,
    /// The parent of each child execution (listed or not).
    parents: HashMap<ExecutionId, ExecutionId>,
    /// Each listed child's nearest listed ancestor.
    under: HashMap<ExecutionId, ExecutionId>,
    /// How many listed executions each listed one has under it, at any depth.
    children: HashMap<ExecutionId, usize>,
}

impl Family {
    fn of(listing: Listing, parents: HashMap<ExecutionId, ExecutionId>) -> Family {
        let listed: HashSet<ExecutionId> = listing.rows.iter().map(|m| m.id).collect();
        let mut under = HashMap::new();
        let mut children: HashMap<ExecutionId, usize> = HashMap::new();
        for m in &listing.rows {
            // Up the parent links, bounded (a cycle would be a damaged journal).
            let mut at = m.id;
            let mut nearest = None;
            for _ in 0..=parents.len() {
                let Some(&p) = parents.get(&at) else { break };
                if listed.contains(&p) {
                    nearest.get_or_insert(p);
                    *children.entry(p).or_default() += 1;
                }
                at = p;
            }
            if let Some(p) = nearest {
                under.insert(m.id, p);
            }
        }
        Family { listing, parents, under, children }
    }

    /// Child executions hidden without `--all`: every listed one with a parent.
    fn hidden(&self) -> usize {
        self.listing.rows.iter().filter(|m| self.parents.contains_key(&m.id)).count()
    }

    /// The listed rows in the order `--all` prints them: each top row
    /// (oldest first), then what is under it, depth first, siblings
    /// oldest first; with each row's depth.
    fn tree(&self) -> Vec<(&ExecutionMeta, usize)> {
        let mut kids: HashMap<ExecutionId, Vec<&ExecutionMeta>> = HashMap::new();
        let mut tops = Vec::new();
        for m in &self.listing.rows {
            match self.under.get(&m.id) {
                Some(p) => kids.entry(*p).or_default().push(m),
                None => tops.push(m),
            }
        }
        for list in kids.values_mut() {
            list.sort_by_key(|m| (m.created_ms, m.id));
        }
        let mut out = Vec::with_capacity(self.listing.rows.len());
        let mut stack: Vec<(&ExecutionMeta, usize)> = tops.into_iter().rev().map(|m| (m, 0)).collect();
        while let Some((m, depth)) = stack.pop() {
            out.push((m, depth));
            if let Some(list) = kids.get(&m.id) {
                stack.extend(list.iter().rev().map(|c| (*c, depth + 1)));
            }
        }
        out
    }
}

/// What each waiting execution on a server waits for.
async fn waiting_remote(client: &Client) -> Result<Vec<Waiting>, Failure> {
    let mut out = Vec::new();
    for row in client.list_all(Some(Status::Waiting)).await? {
        match client.execution(row.id).await {
            Ok(x) => out.extend(waits_of(&x).into_iter().filter(|w| w.id == row.id)),
            // It ended between the list and the look: it waits no more.
            Err(e) if e.code() == Some("unknown_execution") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A damaged execution as a list row: its id, status `damaged`, and why.
fn damaged_row(d: &Damage) -> serde_json::Value {
    let mut row = serde_json::to_value(d).expect("a damage serializes");
    let map = row.as_object_mut().expect("a damage is an object");
    map.remove("execution");
    map.insert("id".into(), serde_json::json!(d.execution));
    map.insert("status".into(), serde_json::json!("damaged"));
    map.insert("reason".into(), serde_json::json!(format!("{} cannot be read: {}", d.part, d.detail)));
    row
}

/// The list, as a table or (`json`) JSON. Without `all`, child
/// executions are left out and counted under their top execution. The
/// executions left behind (`left`: no process carries them) are marked;
/// `from` is where the list was read, named when it is empty.
fn print_list(family: &Family, left: &HashMap<ExecutionId, Unattended>, from: &Path, all: bool, json: bool) {
    let listing = &family.listing;
    if let Some(why) = &listing.cut_short {
        eprintln!("warning: {why}; the rows there are not listed (`jamjet repair` rebuilds the store)");
    }
    let shown = |m: &&ExecutionMeta| all || !family.parents.contains_key(&m.id);
    let children = |id: &ExecutionId| family.children.get(id).copied().unwrap_or(0);
    if json {
        let mut rows: Vec<(ExecutionId, serde_json::Value)> = listing
            .rows
            .iter()
            .filter(shown)
            .map(|m| {
                let mut row = serde_json::to_value(m).expect("a row serializes");
                row["parent"] = serde_json::json!(family.parents.get(&m.id));
                row["children"] = serde_json::json!(children(&m.id));
                if let Some(u) = left.get(&m.id) {
                    row["unattended"] = serde_json::json!(u);
                }
                (m.id, row)
            })
            .chain(listing.damaged.iter().map(|d| (d.execution, damaged_row(d))))
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        print_json(&rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
        return;
    }
    let hidden = if all { 0 } else { family.hidden() };
    let note = || {
        let children = count(hidden, "child execution", "child executions");
        println!("(+{children} not listed: --all lists them under their parents)");
    };
    if listing.rows.len() == hidden && listing.damaged.is_empty() {
        match hidden {
            0 => println!("no executions in {}", from.display()),
            _ => {
                println!("no executions started on their own in {}", from.display());
                note();
            }
        }
        return;
    }
    let with_children = !all && listing.rows.iter().any(|m| children(&m.id) > 0);
    let cells = |m: &ExecutionMeta, depth: usize| {
        let mut cells = vec![
            format!("{}{}", "  ".repeat(depth), m.id),
            format!("{}@{}", m.workflow_id, m.workflow_version),
            match left.get(&m.id) {
                Some(Unattended::Interrupted) => format!("{} (interrupted)", m.status),
                Some(Unattended::OnTheClock) => format!("{} (timer, no process)", m.status),
                None => m.status.to_string(),
            },
            format_ms(m.created_ms),
            format_ms(m.updated_ms),
        ];
        if with_children {
            cells.push(match children(&m.id) {
                0 => "-".to_string(),
                n => n.to_string(),
            });
        }
        cells
    };
    let damaged = |d: &Damage| {
        let mut cells = vec![d.execution.to_string(), "-".into(), "damaged".into(), "-".into(), "-".into()];
        if with_children {
            cells.push("-".into());
        }
        cells
    };
    let rows: Vec<Vec<String>> = if all {
        // The tree, then the damaged rows (they have no parent to go under).
        let mut rows: Vec<Vec<String>> = family.tree().into_iter().map(|(m, depth)| cells(m, depth)).collect();
        rows.extend(listing.damaged.iter().map(damaged));
        rows
    } else {
        let mut rows: Vec<(ExecutionId, Vec<String>)> = listing
            .rows
            .iter()
            .filter(shown)
            .map(|m| (m.id, cells(m, 0)))
            .chain(listing.damaged.iter().map(|d| (d.execution, damaged(d))))
            .collect();
        rows.sort_by_key(|(id, _)| *id);
        rows.into_iter().map(|(_, cells)| cells).collect()
    };
    let mut header = vec!["EXECUTION", "WORKFLOW", "STATUS", "CREATED", "UPDATED"];
    if with_children {
        header.push("CHILDREN");
    }
    table::print(&header, &rows);
    if hidden > 0 {
        note();
    }
    if left.values().any(|u| *u == Unattended::Interrupted) {
        println!();
        println!("(interrupted: no process carries them; the next `jamjet run` or `jamjet resume` resumes them)");
    }
    if !listing.damaged.is_empty() {
        println!();
        for d in &listing.damaged {
            println!("{} damaged: {} cannot be read: {}", d.execution, d.part, d.detail);
        }
        println!("(`jamjet repair`, run with the data dir not in use, quarantines what cannot be read)");
    }
}

/// The longest prompt shown in a table cell.
const PROMPT_CELL: usize = 60;

/// At most this many rows of `--unclaimed`.
const UNCLAIMED_SHOWN: usize = 1000;

fn print_unclaimed(rows: &[crate::runtime::Unclaimed], json: bool) {
    if json {
        print_json(&rows);
        return;
    }
    if rows.is_empty() {
        println!("every execution that needs a process has one");
        return;
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|u| vec![u.id.to_string(), u.workflow_id.clone(), u.status.to_string(), u.reason.clone()])
        .collect();
    table::print(&["EXECUTION", "WORKFLOW", "STATUS", "WHY NO PROCESS RUNS IT"], &table);
}

fn print_waiting(waits: &[Waiting], json: bool) {
    if json {
        print_json(&waits);
        return;
    }
    if waits.is_empty() {
        println!("nothing waits");
        return;
    }
    let rows: Vec<Vec<String>> = waits
        .iter()
        .map(|w| {
            let kind = match w.kind {
                WaitKind::Event => "event",
                WaitKind::Approval if w.call.is_some() => "tool call",
                WaitKind::Approval => "approval",
                WaitKind::Timer => "timer",
            };
            let what = match w.kind {
                WaitKind::Event => w.event.clone().unwrap_or_default(),
                WaitKind::Approval => match &w.call {
                    Some(call) => clip(&format!("{call}: {}", w.prompt.as_deref().unwrap_or_default()), PROMPT_CELL),
                    None => clip(w.prompt.as_deref().unwrap_or_default(), PROMPT_CELL),
                },
                WaitKind::Timer => "-".into(),
            };
            vec![
                w.id.to_string(),
                w.workflow_id.clone(),
                w.node.clone(),
                kind.into(),
                what,
                format_ms(w.since_ms),
                w.deadline_ms.map(format_ms).unwrap_or_else(|| "-".into()),
                w.parent.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::print(&["EXECUTION", "WORKFLOW", "NODE", "KIND", "WAITS FOR", "SINCE", "DEADLINE", "PARENT"], &rows);
}

/// `text` on one line, cut to `max` characters.
fn clip(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}
