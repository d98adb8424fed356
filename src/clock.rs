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

/// A span of time with its unit: `1500ms`, `10s`, `2m`, `12h`, `30d`,
/// `2w`. A bare number is refused (seconds or days?); `bare`, when given,
/// is the unit it means instead.
pub fn parse_span(s: &str, bare: Option<&str>) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => match bare {
            Some(unit) => (s, unit),
            None => return Err(format!("`{s}` needs a unit: ms, s, m, h, d or w (`{s}d` is {s} days)")),
        },
    };
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (try 10s, 1500ms, 2m, 12h, 30d)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        "w" => n * 604_800.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (ms, s, m, h, d or w)")),
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}` is not a duration this can hold: {e}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_span;

    #[test]
    fn spans_need_a_unit_unless_told_what_a_bare_number_means() {
        assert_eq!(parse_span("30d", None).unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_span("12h", None).unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_span("1500ms", None).unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_span("2w", None).unwrap(), Duration::from_secs(14 * 86_400));
        assert!(parse_span("30", None).unwrap_err().contains("needs a unit"));
        assert_eq!(parse_span("3", Some("s")).unwrap(), Duration::from_secs(3));
        assert!(parse_span("ten", None).unwrap_err().contains("not a duration"));
        assert!(parse_span("5y", None).unwrap_err().contains("unknown unit `y`"));
        assert!(parse_span("-1d", None).is_err());
    }
}
