//! A connection's optional send rate (`sendRatePerSecond`): the provider requests of one
//! invocation start at least `1 / rate` seconds apart, retries included.
//!
//! Written here rather than with a rate-limiting crate (`governor`): a slot must be refused,
//! not waited for, when it would start after the invocation's deadline, and that is the
//! whole of what is needed: one instant behind a lock.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Hands out start times `interval` apart, in the order they are asked for.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    /// At most `per_second` requests per second (validation keeps it within 0.01 to 10,000).
    pub fn per_second(per_second: f64) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the next free start time, unless it falls after `latest` (then nothing is
    /// reserved, so later messages are not pushed back by one that will not be sent).
    pub fn reserve(&self, latest: Instant) -> Option<Instant> {
        // A poisoned lock still holds a valid instant: a panic elsewhere cannot break pacing.
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (*next).max(Instant::now());
        if slot > latest {
            return None;
        }
        *next = slot + self.interval;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_one_interval_apart_in_the_order_asked() {
        let pacer = Pacer::per_second(4.0);
        let far = Instant::now() + Duration::from_secs(60);
        let slots: Vec<Instant> = (0..5).map(|_| pacer.reserve(far).unwrap()).collect();
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(250));
        }
    }

    #[test]
    fn a_slot_past_the_latest_start_is_refused_and_not_taken() {
        let pacer = Pacer::per_second(1.0);
        let latest = Instant::now() + Duration::from_millis(1500);
        let first = pacer.reserve(latest).unwrap();
        let second = pacer.reserve(latest).unwrap();
        assert_eq!(second - first, Duration::from_secs(1));
        assert_eq!(pacer.reserve(latest), None);
        // The refused slot was not consumed: a later deadline gets the very next one.
        let third = pacer.reserve(latest + Duration::from_secs(5)).unwrap();
        assert_eq!(third - second, Duration::from_secs(1));
    }
}
