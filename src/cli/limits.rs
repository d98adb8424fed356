//! `jamjet limits [--json]`: the limits in force (defaults, changed by
//! `--limit NAME=VALUE` and `JAMJET_LIMITS`), what each bounds, and when
//! it is checked.

use std::process::ExitCode;

use super::{CliResult, print_json, table};
use crate::ir::Limit;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the limits as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(a: Args) -> CliResult {
    let limits = super::limits();
    if a.json {
        let rows: Vec<serde_json::Value> = Limit::ALL
            .iter()
            .map(|&l| {
                serde_json::json!({ "name": l.name(), "value": limits.get(l), "shown": limits.show(l),
                                    "checked": l.checked(), "about": l.about() })
            })
            .collect();
        print_json(&serde_json::json!({ "limits": rows }));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = Limit::ALL
        .iter()
        .map(|&l| vec![l.name().into(), limits.show(l), l.checked().into(), l.about().into()])
        .collect();
    table::print(&["LIMIT", "VALUE", "CHECKED", "BOUNDS"], &rows);
    println!();
    println!("Change one with `--limit NAME=VALUE` (repeatable) or JAMJET_LIMITS=NAME=VALUE,...;");
    println!("sizes take KiB, MiB or GiB. Crossing a run-time limit fails the execution (limit_exceeded).");
    Ok(ExitCode::SUCCESS)
}
