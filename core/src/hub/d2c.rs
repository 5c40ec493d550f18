//! The D2C log: every device-to-cloud message the hub accepted, in arrival order.
//!
//! This is the data structure only. Storing is I/O (DESIGN.md, "Storage is I/O"):
//! the runtime's in-memory store wraps a [`D2cLog`], and the hub acknowledges a device
//! only after the store reports the write done.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;

use crate::iothub::{Identity, Message};
use crate::time::{Duration, Timestamp};

/// One stored D2C message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct D2cRecord {
    /// Who sent it: the device, or a module of it.
    pub identity: Identity,
    /// Per-device arrival number, from 1 (a device's modules share its numbering).
    pub sequence_number: u64,
    /// Arrival time (hub-stamped `iothub-enqueuedtime`, spec file §3).
    pub enqueued_time: Timestamp,
    /// The message.
    pub message: Message,
}

/// D2C records in arrival order, indexed by device, optionally the latest ones
/// only, by count or by age: IoT Hub's built-in endpoint keeps messages for its
/// retention time, one day unless set longer, at most seven (IoT Hub developer
/// guide, "Read device-to-cloud messages from the built-in endpoint"), and a log
/// in memory must not grow without bound.
#[derive(Clone, Debug, Default)]
pub struct D2cLog {
    records: VecDeque<D2cRecord>,
    /// The position (counted from the first record ever appended) of `records[0]`.
    first: usize,
    /// At most this many records are kept; the oldest go first.
    limit: Option<usize>,
    /// Records enqueued longer than this before the latest one go.
    retention: Option<Duration>,
    devices: BTreeMap<String, DeviceIndex>,
}

/// Where one device's records are, by position (see [`D2cLog::first`]).
#[derive(Clone, Debug, Default)]
struct DeviceIndex {
    /// Positions in arrival order.
    arrivals: VecDeque<usize>,
    /// Position by sequence number.
    by_sequence_number: BTreeMap<u64, usize>,
}

impl D2cLog {
    /// An empty log that keeps every record.
    pub fn new() -> Self {
        D2cLog::default()
    }

    /// An empty log that keeps the latest `limit` records (at least one): appending
    /// beyond it drops the oldest.
    pub fn with_limit(limit: usize) -> Self {
        D2cLog { limit: Some(limit.max(1)), ..D2cLog::default() }
    }

    /// The same log, keeping from now on only the records enqueued at most
    /// `retention` before the latest one appended. Age is judged by the hub's
    /// `enqueued_time` stamps, the only clock a log has: old records go as new ones
    /// arrive.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Appends a record as it is. A sequence number the record's device used before
    /// stays in the log; [`get`](Self::get) then finds the later record. Records
    /// past the limit or the retention go, oldest first.
    pub fn append(&mut self, record: D2cRecord) {
        let position = self.first + self.records.len();
        let index = self.devices.entry(record.identity.device_id.clone()).or_default();
        index.arrivals.push_back(position);
        index.by_sequence_number.insert(record.sequence_number, position);
        let enqueued = record.enqueued_time;
        self.records.push_back(record);
        if self.limit.is_some_and(|limit| self.records.len() > limit) {
            self.drop_oldest();
        }
        if let Some(retention) = self.retention {
            let keep_from = enqueued.saturating_sub(retention);
            while self.records.front().is_some_and(|oldest| oldest.enqueued_time < keep_from) {
                self.drop_oldest();
            }
        }
    }

    /// Forgets the oldest record and its index entries.
    fn drop_oldest(&mut self) {
        let Some(oldest) = self.records.pop_front() else {
            return;
        };
        let position = self.first;
        self.first += 1;
        let device_id = &oldest.identity.device_id;
        let Some(index) = self.devices.get_mut(device_id) else {
            return;
        };
        if index.arrivals.front() == Some(&position) {
            index.arrivals.pop_front();
        }
        if index.by_sequence_number.get(&oldest.sequence_number) == Some(&position) {
            index.by_sequence_number.remove(&oldest.sequence_number);
        }
        if index.arrivals.is_empty() {
            self.devices.remove(device_id);
        }
    }

    /// The record at an absolute position, if still kept.
    fn at(&self, position: usize) -> Option<&D2cRecord> {
        self.records.get(position.checked_sub(self.first)?)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &D2cRecord> {
        self.records.iter()
    }

    /// The records of one device (its modules' included), in arrival order, without
    /// scanning the other devices' records.
    pub fn device(&self, device_id: &str) -> impl Iterator<Item = &D2cRecord> {
        self.devices
            .get(device_id)
            .into_iter()
            .flat_map(|index| index.arrivals.iter())
            .filter_map(|&position| self.at(position))
    }

    /// The record of `device_id` with this sequence number.
    pub fn get(&self, device_id: &str, sequence_number: u64) -> Option<&D2cRecord> {
        let index = self.devices.get(device_id)?;
        let position = index.by_sequence_number.get(&sequence_number)?;
        self.at(*position)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use proptest::prelude::*;

    fn record(device: &str, module: Option<&str>, seq: u64, body: &'static str) -> D2cRecord {
        D2cRecord {
            identity: Identity { device_id: device.into(), module_id: module.map(Into::into) },
            sequence_number: seq,
            enqueued_time: Timestamp::from_millis(seq * 10),
            message: Message::new(body.as_bytes()),
        }
    }

    fn bodies<'a>(records: impl Iterator<Item = &'a D2cRecord>) -> Vec<&'a [u8]> {
        records.map(|r| &r.message.body[..]).collect()
    }

    #[test]
    fn empty_log() {
        let log = D2cLog::new();
        assert!(log.is_empty());
        assert_eq!(log.len(), 0);
        assert_eq!(log.iter().count(), 0);
        assert_eq!(log.device("d").count(), 0);
        assert_eq!(log.get("d", 1), None);
    }

    #[test]
    fn iter_is_arrival_order_across_devices() {
        let mut log = D2cLog::new();
        log.append(record("b", None, 1, "b1"));
        log.append(record("a", None, 1, "a1"));
        log.append(record("b", None, 2, "b2"));
        assert_eq!(log.len(), 3);
        assert_eq!(bodies(log.iter()), [&b"b1"[..], b"a1", b"b2"]);
    }

    #[test]
    fn device_yields_one_device_in_arrival_order_with_its_modules() {
        let mut log = D2cLog::new();
        log.append(record("a", None, 1, "a1"));
        log.append(record("b", None, 1, "b1"));
        log.append(record("a", Some("m"), 2, "a2"));
        log.append(record("ab", None, 1, "ab1"));
        log.append(record("a", None, 3, "a3"));
        assert_eq!(bodies(log.device("a")), [&b"a1"[..], b"a2", b"a3"]);
        assert_eq!(bodies(log.device("b")), [&b"b1"[..]]);
        // Ids are case-sensitive and not prefixes.
        assert_eq!(log.device("A").count(), 0);
        assert_eq!(bodies(log.device("ab")), [&b"ab1"[..]]);
    }

    #[test]
    fn get_finds_by_device_and_sequence_number() {
        let mut log = D2cLog::new();
        log.append(record("a", None, 1, "a1"));
        log.append(record("b", None, 1, "b1"));
        log.append(record("a", None, 2, "a2"));
        assert_eq!(log.get("a", 2).map(|r| &r.message.body[..]), Some(&b"a2"[..]));
        assert_eq!(log.get("b", 1).map(|r| &r.message.body[..]), Some(&b"b1"[..]));
        assert_eq!(log.get("b", 2), None);
        assert_eq!(log.get("c", 1), None);
    }

    #[test]
    fn reused_sequence_number_keeps_both_and_gets_the_later() {
        let mut log = D2cLog::new();
        log.append(record("a", None, 1, "first"));
        log.append(record("a", None, 1, "second"));
        assert_eq!(log.device("a").count(), 2);
        assert_eq!(log.get("a", 1).map(|r| &r.message.body[..]), Some(&b"second"[..]));
    }

    #[test]
    fn a_limited_log_keeps_the_latest_records_and_forgets_the_oldest_everywhere() {
        let mut log = D2cLog::with_limit(3);
        log.append(record("a", None, 1, "a1"));
        log.append(record("b", None, 1, "b1"));
        log.append(record("a", None, 2, "a2"));
        log.append(record("a", None, 3, "a3"));
        log.append(record("c", None, 1, "c1"));
        assert_eq!(log.len(), 3);
        assert_eq!(bodies(log.iter()), [&b"a2"[..], b"a3", b"c1"]);
        assert_eq!(bodies(log.device("a")), [&b"a2"[..], b"a3"]);
        assert_eq!(log.device("b").count(), 0);
        assert_eq!(log.get("a", 1), None);
        assert_eq!(log.get("a", 3).map(|r| &r.message.body[..]), Some(&b"a3"[..]));
    }

    #[test]
    fn a_log_with_a_retention_forgets_what_is_older_than_it_as_new_records_arrive() {
        // `record` stamps sequence number n at 10·n ms.
        let mut log = D2cLog::new().with_retention(Duration::from_millis(20));
        for n in 1..=3 {
            log.append(record("a", None, n, "a"));
        }
        // At 30 ms the retention reaches back to 10 ms: all three stay.
        assert_eq!(log.len(), 3);
        log.append(record("b", None, 5, "b5"));
        // At 50 ms, 30 ms: a1 (10 ms) and a2 (20 ms) go, from the index too.
        assert_eq!(bodies(log.iter()), [&b"a"[..], b"b5"]);
        assert_eq!(log.get("a", 1), None);
        assert_eq!(log.device("a").map(|r| r.sequence_number).collect::<Vec<_>>(), [3]);
        log.append(record("b", None, 100, "b100"));
        assert_eq!(bodies(log.iter()), [&b"b100"[..]]);
        assert_eq!(log.device("a").count(), 0);
    }

    proptest! {
        /// A log with a retention holds exactly the records of an unlimited one
        /// enqueued within it of the latest.
        #[test]
        fn a_retained_log_is_the_recent_part_of_the_whole(
            gaps in proptest::collection::vec(0u64..5, 1..60),
            retention in 0u64..20,
        ) {
            let retention = Duration::from_millis(retention);
            let (mut whole, mut recent) = (D2cLog::new(), D2cLog::new().with_retention(retention));
            let mut seq = 0;
            for gap in gaps {
                seq += gap;
                let r = record("d", None, seq, "x");
                whole.append(r.clone());
                recent.append(r);
            }
            let latest = Timestamp::from_millis(seq * 10);
            let expected: Vec<&D2cRecord> = whole
                .iter()
                .filter(|r| r.enqueued_time >= latest.saturating_sub(retention))
                .collect();
            prop_assert_eq!(recent.iter().collect::<Vec<_>>(), expected);
        }

        /// A limited log holds exactly the latest records of an unlimited one, and
        /// its index agrees with a scan.
        #[test]
        fn a_limited_log_is_the_tail_of_the_whole(
            devices in proptest::collection::vec(0u8..4, 0..60),
            limit in 1usize..10,
        ) {
            let (mut whole, mut tail) = (D2cLog::new(), D2cLog::with_limit(limit));
            let mut next = [0u64; 4];
            for d in &devices {
                let slot = &mut next[usize::from(*d)];
                *slot += 1;
                let r = record(&alloc::format!("d{d}"), None, *slot, "x");
                whole.append(r.clone());
                tail.append(r);
            }
            let expected: Vec<&D2cRecord> =
                whole.iter().skip(whole.len().saturating_sub(limit)).collect();
            prop_assert_eq!(tail.iter().collect::<Vec<_>>(), expected);
            for d in 0..4u8 {
                let id = alloc::format!("d{d}");
                let scanned: Vec<&D2cRecord> =
                    tail.iter().filter(|r| r.identity.device_id == id).collect();
                prop_assert_eq!(&scanned, &tail.device(&id).collect::<Vec<_>>());
                for r in scanned {
                    prop_assert_eq!(tail.get(&id, r.sequence_number), Some(r));
                }
            }
        }

        /// The index agrees with a full scan for any interleaving of devices.
        #[test]
        fn device_index_matches_a_scan(devices in proptest::collection::vec(0u8..4, 0..40)) {
            let mut log = D2cLog::new();
            let mut next = [0u64; 4];
            for d in &devices {
                let slot = &mut next[usize::from(*d)];
                *slot += 1;
                log.append(record(&alloc::format!("d{d}"), None, *slot, "x"));
            }
            for d in 0..4u8 {
                let id = alloc::format!("d{d}");
                let scanned: Vec<&D2cRecord> =
                    log.iter().filter(|r| r.identity.device_id == id).collect();
                let indexed: Vec<&D2cRecord> = log.device(&id).collect();
                prop_assert_eq!(&scanned, &indexed);
                for r in scanned {
                    prop_assert_eq!(log.get(&id, r.sequence_number), Some(r));
                }
            }
        }
    }
}
