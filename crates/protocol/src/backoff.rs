//! The one retry policy both sides use: exponential backoff with full jitter, capped, and the
//! peer's `Retry-After` taking precedence. The hub retries its calls to Botpress with it; the app
//! retries its outbox and its stream with it. Each caller picks its own floor and ceiling.
//! Randomness is passed in (`jitter` in `0.0..=1.0`), so the policy is tested without it.

use std::time::Duration;

/// The longest wait a `Retry-After` is believed for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The shortest wait, and the first retry's ceiling.
    pub min: Duration,
    /// No wait is longer (unless the peer asks for longer).
    pub max: Duration,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    /// How long to wait before retry number `attempt` (1 for the first): a point `jitter` of the
    /// way between `min` and `min · 2^(attempt-1)` (capped at `max`), or what the peer asked for.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(MAX_RETRY_AFTER);
        }
        let ceiling = self
            .min
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max)
            .max(self.min);
        let spread = (ceiling - self.min).as_secs_f64() * jitter.clamp(0.0, 1.0);
        self.min + Duration::from_secs_f64(spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

    #[test]
    fn waits_grow_by_doubling_to_the_cap_with_the_jitter_spreading_them() {
        assert_eq!(POLICY.delay(1, None, 1.0), Duration::from_secs(1));
        assert_eq!(POLICY.delay(3, None, 1.0), Duration::from_secs(4));
        assert_eq!(POLICY.delay(3, None, 0.0), Duration::from_secs(1));
        assert_eq!(POLICY.delay(3, None, 0.5), Duration::from_millis(2500));
        assert_eq!(POLICY.delay(40, None, 1.0), Duration::from_secs(60));
        assert_eq!(
            POLICY.delay(0, None, 7.0),
            Duration::from_secs(1),
            "jitter is clamped"
        );
    }

    #[test]
    fn the_peers_retry_after_wins_up_to_a_day() {
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(7)), 0.3),
            Duration::from_secs(7)
        );
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(10_000_000)), 0.3),
            Duration::from_secs(86_400)
        );
    }
}
