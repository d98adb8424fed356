//! Evaluation: scoring a state against scorers, and running a dataset of
//! inputs through a workflow (`jamjet eval run`).
//!
//! [`scorers`] owns what each scorer type checks and how its result reads
//! (`{scorer, type, passed, score, reason}`); the `type: eval` node
//! ([`crate::nodes`]) and the command line both go through it. [`dataset`]
//! reads JSONL rows; [`rubric`] asks a model judge; [`report`] folds row results into the summary. The
//! IR of a scorer is [`crate::ir::Scorer`]; nothing here touches the journal.

pub mod dataset;
pub mod report;
pub mod rubric;
pub mod scorers;

pub use dataset::{DatasetError, Row, read_dataset};
pub use report::{Report, RowResult, ScorerSummary, Summary};
pub use scorers::{ScoreResult, Subject, feedback, score};
