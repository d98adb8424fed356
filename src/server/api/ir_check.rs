//! Checks on a workflow posted as IR JSON (`POST /workflows` with
//! `application/json`). YAML goes through the compiler, which checks much
//! more (schemas, types, reachability); an IR skips it, so it gets
//! [`crate::ir::check`] before it is registered: the graph (ids, `start`,
//! every target), every template's syntax, length and terms, durations,
//! `max_steps` and the node count. A finding names the JSON path of the
//! field (`nodes.search.next`) and what is wrong.

use crate::ir::{Limits, Workflow};

/// Every problem of `wf` under the server's limits (empty when it passes),
/// with the path of the field it is about.
pub fn check_with(wf: &Workflow, limits: &Limits) -> Vec<(String, String)> {
    crate::ir::check(wf, limits).into_iter().map(|f| (f.path, f.message)).collect()
}
