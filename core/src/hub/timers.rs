//! The hub's deadlines, earliest first, so that `poll_timeout` costs the same with
//! ten thousand idle connections as with one.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::sansio::ConnectionId;
use crate::time::Timestamp;

/// What a deadline belongs to: a connection (connect timeout, keep-alive, token
/// expiry), a device's C2D queue (message expiry, lock timeout), or a direct
/// method waiting for its device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Connection(ConnectionId),
    Queue(String),
    Method(super::MethodInvocation),
}

/// At most one deadline per key.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_time: BTreeSet<(Timestamp, TimerKey)>,
    by_key: BTreeMap<TimerKey, Timestamp>,
}

impl Timers {
    /// Sets `key`'s deadline, or clears it with `None`.
    pub(crate) fn set(&mut self, key: TimerKey, at: Option<Timestamp>) {
        if self.by_key.get(&key).copied() == at {
            return;
        }
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key.clone()));
        }
        if let Some(at) = at {
            self.by_time.insert((at, key.clone()));
            self.by_key.insert(key, at);
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The keys whose deadline is at or before `now`, earliest first.
    pub(crate) fn due(&self, now: Timestamp) -> Vec<TimerKey> {
        self.by_time.iter().take_while(|(at, _)| *at <= now).map(|(_, key)| key.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_deadline_per_key_earliest_first() {
        let at = Timestamp::from_millis;
        let mut t = Timers::default();
        t.set(TimerKey::Connection(ConnectionId(1)), Some(at(30)));
        t.set(TimerKey::Queue("dev1".into()), Some(at(20)));
        t.set(TimerKey::Connection(ConnectionId(1)), Some(at(10)));
        assert_eq!(t.next(), Some(at(10)));
        assert_eq!(
            t.due(at(25)),
            [TimerKey::Connection(ConnectionId(1)), TimerKey::Queue("dev1".into())]
        );
        t.set(TimerKey::Connection(ConnectionId(1)), None);
        assert_eq!(t.next(), Some(at(20)));
        assert!(t.due(at(19)).is_empty());
    }
}
