//! Time as the runtime hands it in.
//!
//! Core never reads a clock. A [`Timestamp`] is milliseconds since the Unix epoch as
//! the runtime sees them: read once from the wall clock at start and advanced by the
//! monotonic clock after that, so one value serves timers, SAS expiry (seconds since
//! the epoch) and message time to live, and never runs backwards.

use alloc::string::String;
use chrono::{DateTime, SecondsFormat};
use core::fmt;
use core::ops::Add;
pub use core::time::Duration;

/// A point in time: milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// `s` seconds after the Unix epoch (the unit of a SAS token's `se`).
    pub const fn from_unix_secs(s: u64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down.
    pub const fn as_unix_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + d`, saturating at the largest timestamp.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// The latest time [`to_rfc3339`](Self::to_rfc3339) writes as itself,
    /// 9999-12-31T23:59:59.999Z: RFC 3339 years have four digits. Later times (a
    /// saturated `Timestamp`, "never") are written as this one.
    pub const LAST_RFC3339: Timestamp = Timestamp(253_402_300_799_999);

    /// RFC 3339 UTC with millisecond precision, `2024-01-02T03:04:05.000Z`:
    /// JavaScript's `toISOString`, which the SDKs send for expiry times (MQTT `$.exp`,
    /// HTTP `iothub-expiry`; spec file §3).
    pub fn to_rfc3339(self) -> String {
        let ms = self.min(Timestamp::LAST_RFC3339).0;
        // In range by the clamp; the fallback only keeps this total.
        let ms = i64::try_from(ms).unwrap_or_default();
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Reads an RFC 3339 date-time with any offset and precision (.NET writes seven
    /// fractional digits, TV-15). Digits below a millisecond are dropped; a time
    /// before 1970 becomes the epoch. `None` when `s` is not RFC 3339.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t = DateTime::parse_from_rfc3339(s).ok()?;
        Some(Timestamp(u64::try_from(t.timestamp_millis()).unwrap_or(0)))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The earliest of two optional deadlines: how a machine built from parts reports
/// one `poll_timeout`.
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(u64::MAX - 1);
        assert_eq!(t + Duration::from_secs(1), Timestamp::from_millis(u64::MAX));
        assert_eq!(
            Timestamp::from_millis(5).saturating_sub(Duration::from_secs(1)),
            Timestamp::EPOCH
        );
        assert_eq!(
            Timestamp::from_millis(5).saturating_duration_since(Timestamp::from_millis(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn unix_seconds_round_down() {
        assert_eq!(Timestamp::from_millis(1_700_000_000_999).as_unix_secs(), 1_700_000_000);
        assert_eq!(Timestamp::from_unix_secs(2).as_millis(), 2000);
    }

    #[test]
    fn rfc3339_round_trips_at_millisecond_precision() {
        let t = Timestamp::from_millis(1_704_164_645_123);
        assert_eq!(t.to_rfc3339(), "2024-01-02T03:04:05.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        // TV-15: .NET's seven fractional digits.
        assert_eq!(
            Timestamp::parse_rfc3339("2024-01-02T03:04:05.0000000Z"),
            Some(Timestamp::from_millis(1_704_164_645_000))
        );
        assert_eq!(Timestamp::from_millis(u64::MAX).to_rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z"), Some(Timestamp::EPOCH));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn earliest_ignores_missing() {
        let a = Some(Timestamp::from_millis(3));
        let b = Some(Timestamp::from_millis(2));
        assert_eq!(earliest(a, b), b);
        assert_eq!(earliest(a, None), a);
        assert_eq!(earliest(None, None), None);
    }
}
