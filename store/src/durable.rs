//! The durable store: one redb database file, every change one transaction that
//! redb commits with an fsync before it returns (its default durability).
//!
//! Records are postcard encodings of the core types' serde derives; twins are kept
//! as their JSON document (TV-13), because postcard cannot read JSON values back.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use hubwire_core::hub::{D2cRecord, DeviceRecord, Outcome, QueuedC2d, Settled};
use hubwire_core::iothub::Twin;
use hubwire_core::time::Duration;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Sequences, Snapshot, Store, StoreError};

/// The layout this build writes and reads, kept under [`FORMAT_KEY`] in [`META`]. A
/// change of table layout or of a record's fields gets a new number.
const FORMAT: u64 = 1;
const FORMAT_KEY: &str = "format";

/// Facts about the file itself: its format.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// D2C records by arrival number, from 0.
const D2C: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("d2c");
/// Device records by device id.
const DEVICES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("devices");
/// Twin documents (JSON) by device id.
const TWINS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("twins");
/// Queued C2D messages by device id and sequence number.
const C2D: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("c2d");
/// Next (D2C, C2D) sequence numbers by device id.
const SEQUENCES: TableDefinition<'_, &str, (u64, u64)> = TableDefinition::new("sequences");

/// A [`Store`] in a redb database file (`hubwire hub --data-dir`). Each call that
/// changes it is one durable transaction: on `Ok` the change survives a SIGKILL or a
/// power cut. A batch given to [`Store::append_d2c`] shares one fsync. The D2C log
/// keeps the latest [`RedbStore::D2C_LIMIT`] messages (or the limit given with
/// [`RedbStore::with_d2c_limit`]), none older than [`crate::D2C_RETENTION`] (or
/// the retention given with [`RedbStore::with_d2c_retention`]), as IoT Hub's
/// built-in endpoint keeps messages for a retention time: one busy device must not
/// fill the disk.
pub struct RedbStore {
    db: Database,
    d2c_limit: u64,
    d2c_retention: Duration,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating it (and its tables) when it does not
    /// exist. A file left by a process that was killed is repaired by redb on open.
    ///
    /// Errors: [`StoreError::Database`] when the file cannot be opened or is not a
    /// redb database (another process holding it open included);
    /// [`StoreError::Damaged`] when it is empty or cut short;
    /// [`StoreError::Format`] when it was written in another layout.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let damaged =
            |reason: String| StoreError::Damaged { path: path.display().to_string(), reason };
        // An empty file is what a crash while the store was first made leaves;
        // redb would take it for a new store and the hub would start with none of
        // what it kept.
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(damaged(String::from("the file is empty")));
        }
        // redb asserts, rather than reports, that a file is as long as its header
        // says (redb 2.6): a truncated file must become an error, not a panic.
        let opened = std::panic::catch_unwind(|| Database::create(path));
        let db = match opened {
            Ok(db) => db?,
            Err(_) => {
                return Err(damaged(String::from("the file is shorter than its header says")));
            }
        };
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(FORMAT_KEY)?.map(|f| f.value());
            match found {
                None => {
                    meta.insert(FORMAT_KEY, FORMAT)?;
                }
                Some(FORMAT) => {}
                Some(found) => return Err(StoreError::Format { found, expected: FORMAT }),
            }
            // Made here, so every later read finds every table.
            txn.open_table(D2C)?;
            txn.open_table(DEVICES)?;
            txn.open_table(TWINS)?;
            txn.open_table(C2D)?;
            txn.open_table(SEQUENCES)?;
        }
        txn.commit()?;
        Ok(RedbStore { db, d2c_limit: RedbStore::D2C_LIMIT, d2c_retention: crate::D2C_RETENTION })
    }

    /// D2C messages kept by default: the latest million (a few hundred MiB at IoT
    /// Hub's typical message sizes).
    pub const D2C_LIMIT: u64 = 1_000_000;

    /// Keeps the latest `limit` D2C messages (at least one) from now on; older ones
    /// go as new ones are appended.
    pub fn with_d2c_limit(mut self, limit: u64) -> Self {
        self.d2c_limit = limit.max(1);
        self
    }

    /// Keeps from now on only the D2C messages enqueued within `retention` of the
    /// latest one stored; older ones go as new ones are appended.
    pub fn with_d2c_retention(mut self, retention: Duration) -> Self {
        self.d2c_retention = retention;
        self
    }

    /// Runs `f` in one write transaction and commits it durably.
    fn write(
        &mut self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        f(&txn)?;
        txn.commit()?;
        Ok(())
    }
}

/// A record's stored bytes.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(postcard::to_allocvec(value)?)
}

/// A record from its stored bytes.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(postcard::from_bytes(bytes)?)
}

/// Raises `device_id`'s next sequence numbers to at least `d2c_next` and `c2d_next`.
fn raise_sequences(
    table: &mut redb::Table<'_, &str, (u64, u64)>,
    device_id: &str,
    d2c_next: u64,
    c2d_next: u64,
) -> Result<(), StoreError> {
    let (d2c, c2d) = table.get(device_id)?.map_or((1, 1), |guard| guard.value());
    let raised = (d2c.max(d2c_next), c2d.max(c2d_next));
    if raised != (d2c, c2d) {
        table.insert(device_id, raised)?;
    }
    Ok(())
}

impl Store for RedbStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        let mut snapshot = Snapshot::default();
        let devices = txn.open_table(DEVICES)?;
        for entry in devices.iter()? {
            let (_, record) = entry?;
            snapshot.devices.push(decode(record.value())?);
        }
        let twins = txn.open_table(TWINS)?;
        for entry in twins.iter()? {
            let (device_id, json) = entry?;
            snapshot.twins.insert(device_id.value().to_owned(), Twin::from_json(json.value())?);
        }
        let sequences = txn.open_table(SEQUENCES)?;
        for entry in sequences.iter()? {
            let (device_id, next) = entry?;
            let (d2c_next, c2d_next) = next.value();
            snapshot
                .sequences
                .insert(device_id.value().to_owned(), Sequences { d2c_next, c2d_next });
        }
        let c2d = txn.open_table(C2D)?;
        for entry in c2d.iter()? {
            let (key, queued) = entry?;
            let (device_id, _) = key.value();
            // Keys sort by device, then sequence number: each queue comes in order.
            let queue = snapshot.c2d.entry(device_id.to_owned()).or_default();
            queue.push(decode(queued.value())?);
        }
        Ok(snapshot)
    }

    fn append_d2c(&mut self, records: &[D2cRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let limit = self.d2c_limit;
        let keep_since = records
            .iter()
            .map(|r| r.enqueued_time)
            .max()
            .map(|latest| latest.saturating_sub(self.d2c_retention));
        self.write(|txn| {
            let mut d2c = txn.open_table(D2C)?;
            let last = d2c.last()?.map(|(k, _)| k.value());
            let mut arrival = last.map_or(0, |n| n.saturating_add(1));
            // A batch is mostly one device's or a few: one raise each.
            let mut next = BTreeMap::new();
            for record in records {
                d2c.insert(arrival, encode(record)?.as_slice())?;
                arrival = arrival.saturating_add(1);
                let device_next = next.entry(record.identity.device_id.as_str()).or_insert(1);
                *device_next = record.sequence_number.saturating_add(1).max(*device_next);
            }
            // The oldest beyond the limit go in the same transaction; the sequence
            // numbers stay, so none is reused.
            let keep_from = arrival.saturating_sub(limit);
            if keep_from > 0 {
                d2c.retain_in(..keep_from, |_, _| false)?;
            }
            // Arrival order is enqueued order: the expired are a prefix, and
            // usually none, one decode telling.
            while let Some(keep_since) = keep_since {
                let Some(oldest) = d2c.first()? else { break };
                let (arrival, record) = (oldest.0.value(), decode::<D2cRecord>(oldest.1.value())?);
                if record.enqueued_time >= keep_since {
                    break;
                }
                drop(oldest);
                d2c.remove(arrival)?;
            }
            let mut sequences = txn.open_table(SEQUENCES)?;
            for (device_id, d2c_next) in next {
                raise_sequences(&mut sequences, device_id, d2c_next, 1)?;
            }
            Ok(())
        })
    }

    fn d2c(&self) -> Result<Vec<D2cRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let d2c = txn.open_table(D2C)?;
        let len = usize::try_from(d2c.len()?).unwrap_or(0);
        let mut records = Vec::with_capacity(len);
        for entry in d2c.iter()? {
            let (_, record) = entry?;
            records.push(decode(record.value())?);
        }
        Ok(records)
    }

    fn put_devices(&mut self, records: &[DeviceRecord]) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut devices = txn.open_table(DEVICES)?;
            for record in records {
                let bytes = encode(record)?;
                devices.insert(record.device_id.as_str(), bytes.as_slice())?;
            }
            Ok(())
        })
    }

    fn remove_device(&mut self, device_id: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut devices = txn.open_table(DEVICES)?;
            devices.remove(device_id)?;
            let mut twins = txn.open_table(TWINS)?;
            twins.remove(device_id)?;
            let mut c2d = txn.open_table(C2D)?;
            let queue = (device_id, 0)..=(device_id, u64::MAX);
            c2d.retain_in(queue, |_, _| false)?;
            Ok(())
        })
    }

    fn put_twin(&mut self, device_id: &str, twin: &Twin) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut twins = txn.open_table(TWINS)?;
            twins.insert(device_id, twin.to_json().as_slice())?;
            Ok(())
        })
    }

    fn put_c2d(&mut self, device_id: &str, queued: &QueuedC2d) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut c2d = txn.open_table(C2D)?;
            let bytes = encode(queued)?;
            c2d.insert((device_id, queued.sequence_number), bytes.as_slice())?;
            let mut sequences = txn.open_table(SEQUENCES)?;
            let next = queued.sequence_number.saturating_add(1);
            raise_sequences(&mut sequences, device_id, 1, next)
        })
    }

    fn settle_c2d(&mut self, settled: &Settled) -> Result<(), StoreError> {
        let key = (settled.device_id.as_str(), settled.sequence_number);
        self.write(|txn| {
            let mut c2d = txn.open_table(C2D)?;
            match settled.outcome {
                Outcome::Abandoned { delivery_count } => {
                    let kept = c2d.get(key)?.map(|bytes| decode::<QueuedC2d>(bytes.value()));
                    let Some(queued) = kept else { return Ok(()) };
                    let queued = QueuedC2d { delivery_count, ..queued? };
                    c2d.insert(key, encode(&queued)?.as_slice())?;
                }
                Outcome::Completed
                | Outcome::Rejected
                | Outcome::Expired
                | Outcome::DeliveryCountExceeded
                | Outcome::Purged => {
                    c2d.remove(key)?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubwire_core::iothub::{Ack, Identity, Message};
    use hubwire_core::time::Timestamp;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(".{0,12}")
    }

    fn timestamp() -> impl Strategy<Value = Option<Timestamp>> {
        proptest::option::of(any::<u64>().prop_map(Timestamp::from_millis))
    }

    fn message() -> impl Strategy<Value = Message> {
        let ack = proptest::option::of(prop_oneof![
            Just(Ack::None),
            Just(Ack::Positive),
            Just(Ack::Negative),
            Just(Ack::Full),
        ]);
        let properties = proptest::collection::vec((".{0,8}", text()), 0..4);
        (
            proptest::collection::vec(any::<u8>(), 0..64),
            (text(), text(), text(), text(), text(), text()),
            (timestamp(), timestamp(), ack),
            properties,
        )
            .prop_map(|(body, ids, (expiry, enqueued_time, ack), properties)| {
                let mut m = Message::new(body);
                let (message_id, correlation_id, user_id, to, content_type, content_encoding) = ids;
                m.message_id = message_id;
                m.correlation_id = correlation_id;
                m.user_id = user_id;
                m.to = to;
                m.content_type = content_type;
                m.content_encoding = content_encoding;
                m.expiry = expiry;
                m.enqueued_time = enqueued_time;
                m.ack = ack;
                for (name, value) in properties {
                    m.properties.insert(name, value);
                }
                m
            })
    }

    fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
        let bytes = encode(value).expect("encodes");
        decode(&bytes).expect("decodes")
    }

    proptest! {
        #[test]
        fn d2c_records_decode_to_what_was_encoded(
            device_id in "[a-z0-9-]{1,16}",
            module_id in proptest::option::of("[a-z0-9-]{1,16}"),
            sequence_number in any::<u64>(),
            enqueued in any::<u64>(),
            message in message(),
        ) {
            let record = D2cRecord {
                identity: Identity { device_id, module_id },
                sequence_number,
                enqueued_time: Timestamp::from_millis(enqueued),
                message,
            };
            prop_assert_eq!(round_trip(&record), record);
        }

        #[test]
        fn queued_c2d_messages_decode_to_what_was_encoded(
            sequence_number in any::<u64>(),
            delivery_count in any::<u32>(),
            message in message(),
        ) {
            let queued = QueuedC2d { sequence_number, delivery_count, message };
            prop_assert_eq!(round_trip(&queued), queued);
        }

        #[test]
        fn device_records_decode_to_what_was_encoded(
            device_id in ".{0,16}",
            primary_key in ".{0,16}",
            secondary_key in ".{0,16}",
            enabled in any::<bool>(),
        ) {
            let record = DeviceRecord { device_id, primary_key, secondary_key, enabled };
            prop_assert_eq!(round_trip(&record), record);
        }

        /// Bytes that are not a record are an error, never a panic.
        #[test]
        fn arbitrary_bytes_do_not_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<D2cRecord>(&bytes);
            let _ = decode::<QueuedC2d>(&bytes);
        }
    }

    #[test]
    fn a_truncated_record_is_an_encoding_error() {
        let record = D2cRecord {
            identity: Identity::device("d"),
            sequence_number: 1,
            enqueued_time: Timestamp::EPOCH,
            message: Message::new("body"),
        };
        let bytes = encode(&record).unwrap();
        let short = &bytes[..bytes.len() - 1];
        assert!(matches!(decode::<D2cRecord>(short), Err(StoreError::Encoding(_))));
    }
}
