//! A latency histogram kept in atomics (three relaxed `fetch_add`s per
//! observation: its bucket, the sum, the count), cheap enough for the
//! journal's sync thread and every node completion. The
//! server's `/metrics` reads [`Latency::snapshot`].
//!
//! [`JOURNAL_SYNC`] is process-wide: every disk sync of the write-ahead
//! log (`wal.rs`) is recorded there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, microseconds (100 µs to 10 s).
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Every disk sync of the journal's write-ahead log.
pub static JOURNAL_SYNC: Latency = Latency::new();

/// Counts per bucket (not cumulative; the last one is `+Inf`), sum, count.
#[derive(Debug)]
pub struct Latency {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// What [`Latency::snapshot`] reads, in Prometheus' terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sum_seconds: f64,
    pub count: u64,
    /// (upper bound in seconds, count in that bucket alone), the last
    /// bound `f64::MAX` for `+Inf` (as prometheus-client's encoder wants).
    pub buckets: Vec<(f64, u64)>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub const fn new() -> Self {
        Latency {
            buckets: [const { AtomicU64::new(0) }; BOUNDS_US.len() + 1],
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn record(&self, took: Duration) {
        self.record_us(took.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn record_us(&self, us: u64) {
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let buckets = BOUNDS_US
            .iter()
            .map(|b| *b as f64 / 1e6)
            .chain(std::iter::once(f64::MAX))
            .zip(&self.buckets)
            .map(|(b, n)| (b, n.load(Ordering::Relaxed)))
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        Snapshot { sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6, count, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_last_bucket_is_inf() {
        let l = Latency::new();
        for us in [50, 100, 101, 2_000_000, 20_000_000] {
            l.record_us(us);
        }
        let s = l.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], (0.0001, 2), "50 and 100 µs fall in le=0.0001");
        assert_eq!(s.buckets.len(), BOUNDS_US.len() + 1);
        assert_eq!(s.buckets[1], (0.00025, 1));
        assert_eq!(s.buckets[13], (2.5, 1), "2 s falls in le=2.5");
        assert_eq!(*s.buckets.last().unwrap(), (f64::MAX, 1), "20 s is only in +Inf");
        assert!((s.sum_seconds - 22.000251).abs() < 1e-9);
    }
}
