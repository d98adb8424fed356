//! One execution's appends straight to a journal, for benchmarks that time
//! the journal alone (`benches/core.rs`, `benches/model.rs`): each append is
//! one `NodeScheduled`, the first one carrying the execution's index row.

use jamjet::ExecutionId;
use jamjet::journal::{Append, Event, ExecutionMeta, Journal, Stats, Status};

pub struct Writer {
    id: ExecutionId,
    meta: ExecutionMeta,
    seq: u64,
}

impl Writer {
    /// The writer of the `n`-th execution.
    pub fn new(n: u64) -> Writer {
        let id = ExecutionId::new(1_700_000_000_000 + n);
        let meta = ExecutionMeta {
            id,
            workflow_id: "journal".into(),
            workflow_version: "0".into(),
            workflow_hash: "h".into(),
            status: Status::Running,
            created_ms: 0,
            updated_ms: 0,
            key: None,
        };
        Writer { id, meta, seq: 0 }
    }

    /// Append the next event and await it durable.
    pub async fn append(&mut self, journal: &dyn Journal) {
        self.seq += 1;
        let events = [Event::NodeScheduled { node: "a".into(), visit: self.seq as u32 }];
        let append = Append {
            execution: self.id,
            first_seq: self.seq,
            at_ms: self.seq,
            events: &events,
            meta: (self.seq == 1).then_some(&self.meta),
            workflow: None,
            timers: &[],
            waits: &[],
            session: None,
        };
        journal.append(append).await.unwrap();
    }
}

/// "N appends, M syncs (x appends per sync, y µs per sync)" between two readings.
#[allow(dead_code)] // not every bench that includes this module prints it
pub fn syncs_between(before: Stats, after: Stats) -> String {
    let (appends, syncs) = (after.appends - before.appends, after.syncs - before.syncs);
    format!(
        "{appends} appends, {syncs} syncs ({:.1} appends per sync, {:.0} µs per sync)",
        appends as f64 / syncs.max(1) as f64,
        (after.sync_us - before.sync_us) as f64 / syncs.max(1) as f64
    )
}
