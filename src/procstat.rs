//! What this process has used: CPU time and resident memory, for
//! `jamjet bench` and `GET /metrics` (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, the peak beside it).
//!
//! CPU time and peak resident memory come from `getrusage(RUSAGE_SELF)`;
//! current resident memory from `/proc/self/statm` (Linux; 0 elsewhere).

/// CPU time and memory of this process, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
    /// Resident memory now, bytes (0 where `/proc` is not there).
    pub rss_bytes: u64,
    /// The most resident memory this process has had, bytes.
    pub peak_rss_bytes: u64,
}

/// This process's usage now.
pub fn usage() -> Usage {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF
    // is always a valid `who`.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return Usage { rss_bytes: rss_now(), ..Usage::default() };
        }
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage {
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
        rss_bytes: rss_now(),
        // Linux reports kilobytes; macOS bytes.
        peak_rss_bytes: if cfg!(target_os = "macos") { ru.ru_maxrss as u64 } else { ru.ru_maxrss as u64 * 1024 },
    }
}

/// Resident memory now, bytes: the second field of `/proc/self/statm`, in pages.
fn rss_now() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_memory_is_read() {
        let before = usage();
        // Burn a little CPU (bounded): the figure must move.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = usage();
        assert!(after.cpu_seconds > before.cpu_seconds, "{before:?} -> {after:?}");
        if cfg!(target_os = "linux") {
            assert!(after.rss_bytes > 0 && after.peak_rss_bytes >= after.rss_bytes / 2, "{after:?}");
        }
    }
}
