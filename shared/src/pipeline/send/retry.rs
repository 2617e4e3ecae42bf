//! When a send is tried again, and how long one invocation may keep trying.
//!
//! Only an answer that proves the provider took nothing ([`Retry::NotAccepted`]) is tried
//! again: exponential back-off with full jitter (a random wait between zero and the exponential
//! ceiling, so the messages a provider throttled at once do not all come back at once), never
//! sooner than the provider asked, at most [`RetryPolicy::max_attempts`] times, and never past
//! the invocation's [`Deadline`].

use crate::config::RetryPolicy;
use crate::providers::{Retry, SendError};
use std::time::Duration;
use tokio::time::Instant;

/// A provider's wait longer than this is not waited out inside one invocation: the message
/// comes back `throttled` and retryable instead.
pub const MAX_HONOURED_WAIT: Duration = Duration::from_secs(5);

/// The least time worth starting a provider call with: less, and the call could only end cut
/// off, its outcome unknown.
pub const MIN_CALL_TIME: Duration = Duration::from_millis(100);

/// The instant by which one invocation must have answered, less the margin it keeps to record
/// its last results and answer.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    /// The last instant a provider call may still be running.
    calls_end: Instant,
}

impl Deadline {
    /// The invocation must answer by `at` (the Lambda deadline) and keeps `margin` for itself.
    pub fn at(at: Instant, margin: Duration) -> Self {
        Deadline {
            calls_end: at.checked_sub(margin).unwrap_or(at),
        }
    }

    /// The invocation may take `budget` from now (no Lambda deadline: the local budget).
    pub fn after(budget: Duration, margin: Duration) -> Self {
        Deadline::at(Instant::now() + budget, margin)
    }

    /// How long a provider call started now may run; `None` when too little time is left to
    /// start one.
    pub fn time_for_call(&self) -> Option<Duration> {
        let left = self.calls_end.saturating_duration_since(Instant::now());
        (left >= MIN_CALL_TIME).then_some(left)
    }

    /// The last instant a provider call may start.
    pub fn latest_start(&self) -> Instant {
        self.calls_end
            .checked_sub(MIN_CALL_TIME)
            .unwrap_or(self.calls_end)
    }

    /// Whether waiting `wait` still leaves time for a call.
    pub fn allows_wait(&self, wait: Duration) -> bool {
        Instant::now() + wait + MIN_CALL_TIME <= self.calls_end
    }
}

/// The wait before attempt `attempt + 1`: a random duration up to `first_delay × 2^(attempt-1)`
/// (capped at [`MAX_HONOURED_WAIT`]), and never less than the provider asked for.
pub fn backoff(
    policy: &RetryPolicy,
    attempt: u32,
    asked: Option<Duration>,
    rng: &mut fastrand::Rng,
) -> Duration {
    let doubling = 2u32.saturating_pow(attempt.saturating_sub(1));
    let ceiling = policy
        .first_delay
        .saturating_mul(doubling)
        .min(MAX_HONOURED_WAIT);
    let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let jittered = Duration::from_nanos(rng.u64(0..=ceiling_ns));
    jittered.max(asked.unwrap_or_default())
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The failure is the answer.
    Stop,
    /// Wait this long, then send again.
    RetryAfter(Duration),
}

/// Decides, after attempt number `attempt` failed with `err`, whether to send again.
pub fn after_failure(
    policy: &RetryPolicy,
    attempt: u32,
    err: &SendError,
    deadline: &Deadline,
    rng: &mut fastrand::Rng,
) -> Next {
    if err.retry != Retry::NotAccepted || attempt >= policy.max_attempts {
        return Next::Stop;
    }
    if err
        .retry_after
        .is_some_and(|asked| asked > MAX_HONOURED_WAIT)
    {
        return Next::Stop;
    }
    let wait = backoff(policy, attempt, err.retry_after, rng);
    if deadline.allows_wait(wait) {
        Next::RetryAfter(wait)
    } else {
        Next::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SendErrorCode;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            first_delay: Duration::from_millis(200),
        }
    }

    fn not_accepted(asked: Option<Duration>) -> SendError {
        SendError::new(SendErrorCode::Throttled, "slow down", Retry::NotAccepted)
            .with_retry_after(asked)
    }

    fn far() -> Deadline {
        Deadline::after(Duration::from_secs(600), Duration::from_secs(1))
    }

    #[test]
    fn full_jitter_stays_under_the_doubling_ceiling_and_spreads() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (attempt, ceiling_ms) in [(1, 200), (2, 400), (3, 800), (4, 1600), (10, 5000)] {
            let waits: Vec<Duration> = (0..500)
                .map(|_| backoff(&policy(), attempt, None, &mut rng))
                .collect();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempt}");
            // Full jitter: the waits cover the range, not one point near the ceiling.
            let low = waits.iter().filter(|w| **w < ceiling / 4).count();
            let high = waits.iter().filter(|w| **w > ceiling * 3 / 4).count();
            assert!(
                low > 50 && high > 50,
                "attempt {attempt}: {low} low, {high} high"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let waits = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (1..=3)
                .map(|a| backoff(&policy(), a, None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(42), waits(42));
        assert_ne!(waits(42), waits(43));
    }

    #[test]
    fn never_sooner_than_the_provider_asked() {
        let mut rng = fastrand::Rng::with_seed(1);
        let asked = Some(Duration::from_secs(2));
        for _ in 0..200 {
            assert!(backoff(&policy(), 1, asked, &mut rng) >= Duration::from_secs(2));
        }
    }

    #[test]
    fn only_what_was_not_accepted_is_retried_and_only_so_often() {
        let mut rng = fastrand::Rng::with_seed(3);
        let deadline = far();
        let mut decide =
            |attempt, err: &SendError| after_failure(&policy(), attempt, err, &deadline, &mut rng);
        assert!(matches!(
            decide(1, &not_accepted(None)),
            Next::RetryAfter(_)
        ));
        assert!(matches!(
            decide(3, &not_accepted(None)),
            Next::RetryAfter(_)
        ));
        assert_eq!(decide(4, &not_accepted(None)), Next::Stop);
        let unknown = SendError::new(
            SendErrorCode::OutcomeUnknown,
            "timeout",
            Retry::OutcomeUnknown,
        );
        assert_eq!(decide(1, &unknown), Next::Stop);
        let never = SendError::new(SendErrorCode::InvalidNumber, "bad", Retry::Never);
        assert_eq!(decide(1, &never), Next::Stop);
        // A wait longer than an invocation should hold a message is left to the caller.
        assert_eq!(
            decide(1, &not_accepted(Some(Duration::from_secs(6)))),
            Next::Stop
        );
        assert_eq!(
            decide(1, &not_accepted(Some(MAX_HONOURED_WAIT))),
            Next::RetryAfter(MAX_HONOURED_WAIT)
        );
    }

    #[test]
    fn no_retry_whose_wait_runs_past_the_deadline() {
        let mut rng = fastrand::Rng::with_seed(5);
        let near = Deadline::after(Duration::from_millis(1500), Duration::from_millis(500));
        // 1 s until calls must end: a 2 s wait cannot be afforded, a zero wait can.
        let asked = not_accepted(Some(Duration::from_secs(2)));
        assert_eq!(
            after_failure(&policy(), 1, &asked, &near, &mut rng),
            Next::Stop
        );
        let zero = RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::ZERO,
        };
        assert_eq!(
            after_failure(&zero, 1, &not_accepted(None), &near, &mut rng),
            Next::RetryAfter(Duration::ZERO)
        );
    }

    #[test]
    fn a_deadline_leaves_its_margin_and_refuses_calls_too_short_to_finish() {
        let deadline = Deadline::after(Duration::from_secs(10), Duration::from_secs(1));
        let time = deadline.time_for_call().unwrap();
        assert!(time <= Duration::from_secs(9) && time > Duration::from_secs(8));
        let spent = Deadline::after(Duration::from_millis(1050), Duration::from_secs(1));
        assert_eq!(spent.time_for_call(), None);
        let past = Deadline::at(Instant::now(), Duration::from_secs(1));
        assert_eq!(past.time_for_call(), None);
        assert!(!past.allows_wait(Duration::ZERO));
    }
}
