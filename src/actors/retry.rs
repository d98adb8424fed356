//! The retry decision after a node fails: pure, from the node's policy,
//! the error class, the attempt and the clock reading the caller passes in.

use crate::ir::{Backoff, RetryPolicy};
use crate::journal::{ErrorClass, RetryDecision};

/// How many panics of one node visit (or restarts of one execution actor)
/// are tolerated within a window before the execution fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    pub max_restarts: u32,
    pub window_ms: u64,
}

impl Default for RestartBudget {
    fn default() -> Self {
        RestartBudget { max_restarts: 5, window_ms: 60_000 }
    }
}

impl RestartBudget {
    /// Whether one more restart is allowed, given the times of earlier ones.
    pub fn allows(&self, earlier_ms: &[u64], now_ms: u64) -> bool {
        let recent = earlier_ms.iter().filter(|&&t| now_ms.saturating_sub(t) < self.window_ms).count();
        (recent as u32) < self.max_restarts
    }
}

/// The delay before attempt `attempt + 1`, without jitter.
pub fn delay_ms(policy: &RetryPolicy, attempt: u32) -> u64 {
    let n = attempt.max(1) as u64;
    let raw = match policy.backoff {
        Backoff::Constant => policy.delay_ms,
        Backoff::Linear => policy.delay_ms.saturating_mul(n),
        Backoff::Exponential => policy.delay_ms.saturating_mul(1u64 << (n - 1).min(32)),
    };
    raw.min(policy.max_delay_ms.max(policy.delay_ms))
}

/// Decide after attempt `attempt` failed with `class`. `jitter_seed` is a
/// caller-supplied number (the runtime derives it from the idempotency
/// key) so the decision stays a pure function.
pub fn decide(
    policy: &RetryPolicy,
    class: ErrorClass,
    attempt: u32,
    now_ms: u64,
    retry_after_ms: Option<u64>,
    jitter_seed: u64,
) -> RetryDecision {
    // A crossed limit or budget would only be crossed again, and a
    // nondeterministic node would diverge again.
    let retryable =
        !matches!(class, ErrorClass::LimitExceeded | ErrorClass::BudgetExceeded | ErrorClass::Nondeterminism)
            && match &policy.retry_on {
                Some(list) => list.iter().any(|c| c == class.as_str()),
                None => class.retryable_by_default(),
            };
    if !retryable || attempt >= policy.max_attempts {
        return RetryDecision::GiveUp;
    }
    let mut delay = delay_ms(policy, attempt);
    if policy.jitter && delay > 0 {
        delay = delay / 2 + jitter_seed % (delay / 2 + 1);
    }
    // A server's `Retry-After` is honoured up to the policy's longest
    // delay: a hostile or broken one cannot park a node for a year.
    if let Some(ra) = retry_after_ms {
        delay = delay.max(ra.min(policy.max_delay_ms.max(policy.delay_ms)));
    }
    RetryDecision::Retry { attempt: attempt + 1, at_ms: now_ms.saturating_add(delay) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy { max_attempts: 4, backoff, delay_ms: 100, max_delay_ms: 250, ..Default::default() }
    }

    #[test]
    fn backoff_shapes_and_cap() {
        let e = policy(Backoff::Exponential);
        assert_eq!([1, 2, 3].map(|a| delay_ms(&e, a)), [100, 200, 250]);
        let l = policy(Backoff::Linear);
        assert_eq!([1, 2, 3].map(|a| delay_ms(&l, a)), [100, 200, 250]);
        let c = policy(Backoff::Constant);
        assert_eq!([1, 2, 3].map(|a| delay_ms(&c, a)), [100, 100, 100]);
    }

    #[test]
    fn decides_by_class_attempts_and_retry_after() {
        let p = policy(Backoff::Constant);
        assert_eq!(
            decide(&p, ErrorClass::ServerError, 1, 1000, None, 0),
            RetryDecision::Retry { attempt: 2, at_ms: 1100 }
        );
        assert_eq!(decide(&p, ErrorClass::ClientError, 1, 1000, None, 0), RetryDecision::GiveUp);
        assert_eq!(decide(&p, ErrorClass::ServerError, 4, 1000, None, 0), RetryDecision::GiveUp);
        let patient = RetryPolicy { max_delay_ms: 5000, ..p.clone() };
        assert_eq!(
            decide(&patient, ErrorClass::RateLimited, 1, 1000, Some(3000), 0),
            RetryDecision::Retry { attempt: 2, at_ms: 4000 }
        );
        // Honoured up to the policy's longest delay (250 ms here), no further.
        assert_eq!(
            decide(&p, ErrorClass::RateLimited, 1, 1000, Some(3_000_000_000), 0),
            RetryDecision::Retry { attempt: 2, at_ms: 1250 }
        );
        assert_eq!(decide(&patient, ErrorClass::LimitExceeded, 1, 0, None, 0), RetryDecision::GiveUp);
        let all = RetryPolicy { retry_on: Some(vec!["limit_exceeded".into()]), ..patient };
        assert_eq!(decide(&all, ErrorClass::LimitExceeded, 1, 0, None, 0), RetryDecision::GiveUp, "never retried");
        let only_fn = RetryPolicy { retry_on: Some(vec!["function".into()]), ..p };
        assert!(matches!(decide(&only_fn, ErrorClass::Function, 1, 0, None, 0), RetryDecision::Retry { .. }));
        assert_eq!(decide(&only_fn, ErrorClass::Timeout, 1, 0, None, 0), RetryDecision::GiveUp);
    }

    #[test]
    fn restart_budget_counts_only_the_window() {
        let b = RestartBudget { max_restarts: 2, window_ms: 1000 };
        assert!(b.allows(&[100], 500));
        assert!(!b.allows(&[100, 200], 500));
        assert!(b.allows(&[100, 200], 1150));
    }
}
