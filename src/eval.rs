//! Evaluation: scoring a state against scorers, and running a dataset of
//! inputs through a workflow (`jamjet eval run`).
//!
//! [`scorers`] owns what each scorer type checks and how its result reads
//! (`{scorer, type, passed, score, reason}`); the `type: eval` node
//! ([`crate::nodes`]) and the command line both go through it. [`dataset`]
//! reads JSONL rows; [`rubric`] asks a model judge; [`trajectory`] matches
//! the tool calls an execution made against the expected ones; [`report`]
//! folds row results into the summary; [`baseline`] compares a run with an
//! earlier run's report. The IR of a scorer is
//! [`crate::ir::Scorer`]; nothing here touches the journal (the shells
//! put the tool calls they read from it in the [`Subject`]).

pub mod baseline;
pub mod dataset;
pub mod report;
pub mod rubric;
pub mod scorers;
pub mod trajectory;

pub use baseline::{Baseline, Comparison, RowChange, compare, parse_baseline};
pub use dataset::{DatasetError, Row, read_dataset};
pub use report::{Report, RowResult, ScorerSummary, Summary};
pub use scorers::{ScoreResult, Subject, feedback, score};
pub use trajectory::{ToolUse, Verdict, match_trajectory, score_trajectory};
