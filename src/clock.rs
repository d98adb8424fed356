//! Time, injected: the runtime reads the wall clock only through [`Clock`],
//! so tests can drive it. A [`ManualClock`] moves only when told to, and
//! tells the timer wheel when it does, so a test reaches a deadline by
//! advancing the clock, never by sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of wall-clock time in unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    /// For a clock that jumps (a [`ManualClock`]): a receiver that changes
    /// whenever it is moved, so whoever sleeps until a time (the timer
    /// wheel) looks again. `None` for a clock that moves by itself.
    fn moved(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
    moved: tokio::sync::watch::Sender<u64>,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Arc<Self> {
        Arc::new(ManualClock { now: AtomicU64::new(start_ms), moved: tokio::sync::watch::Sender::new(start_ms) })
    }

    /// Move the clock `ms` forward, and wake whoever sleeps until a time.
    pub fn advance(&self, ms: u64) {
        let now = self.now.fetch_add(ms, Ordering::SeqCst) + ms;
        self.moved.send_replace(now);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock { now: AtomicU64::new(0), moved: tokio::sync::watch::Sender::new(0) }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn moved(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.moved.subscribe())
    }
}

/// Format unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn format_ms(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).map(|t| format!("{t:.3}")).unwrap_or_else(|_| ms.to_string())
}
