//! The in-memory store: what `hubwire demo` keeps, gone when the process ends.

use std::collections::BTreeMap;

use hubwire_core::hub::{D2cLog, D2cRecord, DeviceRecord, Outcome, QueuedC2d, Settled};
use hubwire_core::iothub::Twin;
use hubwire_core::time::Duration;

use crate::{Sequences, Snapshot, Store, StoreError};

/// A [`Store`] in memory: the D2C log as a [`D2cLog`] (indexed by device), the rest
/// as a [`Snapshot`] kept up to date. Never fails. The log keeps the latest
/// [`MemoryStore::D2C_LIMIT`] messages, none older than [`crate::D2C_RETENTION`],
/// as IoT Hub's built-in endpoint keeps messages for a retention time only: a hub
/// in memory must not grow without bound.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    log: D2cLog,
    kept: Kept,
}

/// The snapshot's parts, keyed for updates.
#[derive(Clone, Debug, Default)]
struct Kept {
    devices: BTreeMap<String, DeviceRecord>,
    twins: BTreeMap<String, Twin>,
    sequences: BTreeMap<String, Sequences>,
    c2d: BTreeMap<String, BTreeMap<u64, QueuedC2d>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_d2c_limit(MemoryStore::D2C_LIMIT)
    }
}

impl MemoryStore {
    /// D2C messages kept by [`MemoryStore::new`]: the latest 100,000 (a few tens of
    /// MiB at IoT Hub's typical message sizes).
    pub const D2C_LIMIT: usize = 100_000;

    /// An empty store keeping the latest [`MemoryStore::D2C_LIMIT`] D2C messages
    /// of the last [`crate::D2C_RETENTION`].
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store keeping the latest `limit` D2C messages (at least one) of the
    /// last [`crate::D2C_RETENTION`].
    pub fn with_d2c_limit(limit: usize) -> Self {
        let log = D2cLog::with_limit(limit).with_retention(crate::D2C_RETENTION);
        MemoryStore { log, kept: Kept::default() }
    }

    /// Keeps from now on only the D2C messages enqueued within `retention` of the
    /// latest one stored.
    pub fn with_d2c_retention(mut self, retention: Duration) -> Self {
        self.log = self.log.with_retention(retention);
        self
    }

    /// The D2C log, to read by device or sequence number without copying it.
    pub fn log(&self) -> &D2cLog {
        &self.log
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let kept = &self.kept;
        Ok(Snapshot {
            devices: kept.devices.values().cloned().collect(),
            twins: kept.twins.clone(),
            sequences: kept.sequences.clone(),
            c2d: kept
                .c2d
                .iter()
                .filter(|(_, queue)| !queue.is_empty())
                .map(|(id, queue)| (id.clone(), queue.values().cloned().collect()))
                .collect(),
        })
    }

    fn append_d2c(&mut self, records: &[D2cRecord]) -> Result<(), StoreError> {
        for record in records {
            let next = self.kept.sequences.entry(record.identity.device_id.clone()).or_default();
            next.d2c_next = next.d2c_next.max(record.sequence_number.saturating_add(1));
            self.log.append(record.clone());
        }
        Ok(())
    }

    fn d2c(&self) -> Result<Vec<D2cRecord>, StoreError> {
        Ok(self.log.iter().cloned().collect())
    }

    fn put_devices(&mut self, records: &[DeviceRecord]) -> Result<(), StoreError> {
        for record in records {
            self.kept.devices.insert(record.device_id.clone(), record.clone());
        }
        Ok(())
    }

    fn remove_device(&mut self, device_id: &str) -> Result<(), StoreError> {
        self.kept.devices.remove(device_id);
        self.kept.twins.remove(device_id);
        self.kept.c2d.remove(device_id);
        Ok(())
    }

    fn put_twin(&mut self, device_id: &str, twin: &Twin) -> Result<(), StoreError> {
        self.kept.twins.insert(device_id.to_owned(), twin.clone());
        Ok(())
    }

    fn put_c2d(&mut self, device_id: &str, queued: &QueuedC2d) -> Result<(), StoreError> {
        let next = self.kept.sequences.entry(device_id.to_owned()).or_default();
        next.c2d_next = next.c2d_next.max(queued.sequence_number.saturating_add(1));
        let queue = self.kept.c2d.entry(device_id.to_owned()).or_default();
        queue.insert(queued.sequence_number, queued.clone());
        Ok(())
    }

    fn settle_c2d(&mut self, settled: &Settled) -> Result<(), StoreError> {
        let Some(queue) = self.kept.c2d.get_mut(&settled.device_id) else {
            return Ok(());
        };
        match settled.outcome {
            Outcome::Abandoned { delivery_count } => {
                if let Some(queued) = queue.get_mut(&settled.sequence_number) {
                    queued.delivery_count = delivery_count;
                }
            }
            Outcome::Completed
            | Outcome::Rejected
            | Outcome::Expired
            | Outcome::DeliveryCountExceeded
            | Outcome::Purged => {
                queue.remove(&settled.sequence_number);
            }
        }
        Ok(())
    }
}
