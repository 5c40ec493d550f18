//! The runtime's clock: the one place time is read (DESIGN.md, "Time").
//!
//! The wall clock is read once, the first time anyone asks; after that time advances
//! by the monotonic clock only, so a [`Timestamp`] never runs backwards when the
//! system clock is set, and every machine in the process (devices and hub alike)
//! sees the same time.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hubwire_core::Timestamp;
use hubwire_core::time::Duration;

/// The wall-clock time and the monotonic instant it was read at.
static ORIGIN: OnceLock<(Timestamp, Instant)> = OnceLock::new();

fn origin() -> (Timestamp, Instant) {
    *ORIGIN.get_or_init(|| {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let wall = Timestamp::EPOCH.saturating_add(since_epoch);
        (wall, Instant::now())
    })
}

/// The current time, in milliseconds since the Unix epoch (rounded down).
pub fn now() -> Timestamp {
    let (wall, start) = origin();
    wall.saturating_add(start.elapsed())
}

/// The monotonic instant at which [`now`] reaches `t`; `t` in the past gives an
/// instant in the past. Waiting until this instant and then reading [`now`] yields
/// at least `t`, so a timer never fires a millisecond early and is never re-armed.
pub fn instant_of(t: Timestamp) -> Instant {
    let (wall, start) = origin();
    start + t.saturating_duration_since(wall)
}

/// How long from now until `t`, zero when `t` has passed.
pub fn until(t: Timestamp) -> Duration {
    instant_of(t).saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_never_runs_backwards_and_follows_the_wall_clock() {
        let a = now();
        let b = now();
        assert!(b >= a);
        let wall =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        // Within a second of the system clock (it was read moments ago).
        assert!(a.as_millis().abs_diff(wall) < 1000, "{a} vs {wall}");
    }

    #[test]
    fn waiting_until_the_instant_of_a_deadline_reaches_it() {
        let deadline = now() + Duration::from_millis(3);
        std::thread::sleep(until(deadline));
        assert!(now() >= deadline);
        assert_eq!(until(Timestamp::EPOCH), Duration::ZERO);
    }
}
