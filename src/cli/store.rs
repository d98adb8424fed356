//! `jamjet store check|migrate --store postgres://...`: the shared store's
//! schema. `check` reads its version and changes nothing (exit 0 when this
//! jamjet can use it as it is, 1 when it needs `migrate`, 1 when it is
//! newer than this jamjet); `migrate` brings it up to this jamjet's
//! version (every process does at open; this is for operators who migrate
//! before they roll workers out).

use std::process::ExitCode;

use super::{CliResult, Failure, print_json};
use crate::journal::PgJournal;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand, Debug)]
enum Which {
    /// Read the schema version and say whether this jamjet can use the store as it is (nothing changed).
    Check {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create or upgrade the store's tables to this jamjet's schema version.
    Migrate {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(a: Args) -> CliResult {
    let url = super::shared_store_for(
        "`jamjet store` works on a PostgreSQL store (the embedded store of a data dir needs no migration)",
    )?;
    match a.which {
        Which::Check { json } => {
            let s = PgJournal::schema_state(url).await.map_err(|e| Failure::new(e.to_string()))?;
            let verdict = match s.version {
                v if v == s.known => "up to date",
                0 => "empty: `jamjet store migrate` (or any jamjet process opening it) creates the tables",
                v if v < s.known => "older than this jamjet: `jamjet store migrate` upgrades it",
                _ => "newer than this jamjet: upgrade jamjet before running it on this store",
            };
            if json {
                print_json(&serde_json::json!({
                    "place": s.place, "schema": s.schema, "version": s.version, "known": s.known,
                    "up_to_date": s.version == s.known,
                }));
            } else {
                println!("store:   {} (schema {})", s.place, s.schema);
                println!("version: {} (this jamjet knows up to {}): {verdict}", s.version, s.known);
            }
            Ok(if s.version == s.known { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Which::Migrate { json } => {
            let from = PgJournal::migrate(url).await.map_err(|e| Failure::new(e.to_string()))?;
            let to = PgJournal::SCHEMA_VERSION;
            if json {
                print_json(&serde_json::json!({ "from": from, "to": to }));
            } else if from == to {
                println!("the store is at version {to} already: nothing to do");
            } else {
                println!("migrated the store from version {from} to {to}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
