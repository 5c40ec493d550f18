//! When to try again: reconnect backoff and which refusals are final.
//!
//! Randomness comes from the caller's seed, like time, so a test replays a session
//! byte for byte (DESIGN.md, "Randomness enters like time").

use rand_core::RngCore;

use crate::time::Duration;

/// Capped exponential backoff with jitter.
///
/// Attempt `n` (from 0) waits a random duration in `[d/2, d]` where
/// `d = min(max, initial × 2ⁿ)`: the exponential part spreads a fleet's reconnects
/// after a hub restart, the random half keeps them from arriving in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry, before jitter.
    pub initial: Duration,
    /// The longest wait, before jitter.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 s doubling up to 60 s.
    fn default() -> Self {
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32, rng: &mut impl RngCore) -> Duration {
        let ceiling = self
            .initial
            .checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max));
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let half = ceiling_ms / 2;
        let jitter = match (ceiling_ms - half).checked_add(1) {
            Some(span) => rng.next_u64() % span,
            None => rng.next_u64(),
        };
        Duration::from_millis(half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn delays_double_until_the_cap_and_stay_within_half_to_full() {
        let b = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(8) };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for (attempt, ceiling) in
            [(0, 1000), (1, 2000), (2, 4000), (3, 8000), (4, 8000), (40, 8000)]
        {
            for _ in 0..100 {
                let d = b.delay(attempt, &mut rng).as_millis() as u64;
                assert!((ceiling / 2..=ceiling).contains(&d), "attempt {attempt}: {d} ms");
            }
        }
    }

    #[test]
    fn same_seed_same_delays() {
        let b = Backoff::default();
        let mut r1 = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut r2 = Xoshiro256PlusPlus::seed_from_u64(1);
        for a in 0..10 {
            assert_eq!(b.delay(a, &mut r1), b.delay(a, &mut r2));
        }
    }
}
