//! What a store hands a starting hub, and putting it into the hub.

use std::collections::BTreeMap;

use hubwire_core::hub::{DeviceRecord, Hub, QueuedC2d};
use hubwire_core::iothub::Twin;
use hubwire_core::time::Timestamp;

use crate::StoreError;

/// A device's next sequence numbers: what a restarted hub continues from, so no
/// number a consumer saw is used again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequences {
    /// The number the device's next D2C message gets (its numbering starts at 1).
    pub d2c_next: u64,
    /// The number the device's next C2D message gets (its queue starts at 1).
    pub c2d_next: u64,
}

impl Default for Sequences {
    fn default() -> Self {
        Sequences { d2c_next: 1, c2d_next: 1 }
    }
}

/// Everything a store kept but the D2C records themselves ([`crate::Store::d2c`]
/// reads those).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The registry, ordered by device id.
    pub devices: Vec<DeviceRecord>,
    /// Twins by device id.
    pub twins: BTreeMap<String, Twin>,
    /// Next sequence numbers by device id, for every device that sent or was sent a
    /// message.
    pub sequences: BTreeMap<String, Sequences>,
    /// Queued C2D messages by device id, each queue in sequence-number order.
    pub c2d: BTreeMap<String, Vec<QueuedC2d>>,
}

/// Puts `snapshot` into `hub`, a new hub that has not accepted connections yet: the
/// registry (a stored record replaces one the hub has), then each registered
/// device's twin, sequence numbers and C2D queue. State kept for a device no longer
/// registered is left out (its D2C records stay in the store). Restored C2D messages
/// are enqueued, not locked: a lock held before the restart is gone with its
/// connection, and the delivery count is the one kept.
///
/// Errors: [`StoreError::Device`] when the registry refuses a stored record (an
/// invalid id or a key that is not base64).
pub fn restore(hub: &mut Hub, now: Timestamp, snapshot: Snapshot) -> Result<(), StoreError> {
    let Snapshot { devices, twins, sequences, c2d } = snapshot;
    for record in devices {
        hub.registry_mut().remove(&record.device_id);
        hub.registry_mut().add(record)?;
    }
    // Errors below are DeviceNotFound only: the state of an unregistered device is
    // left out, as documented.
    for (device_id, twin) in twins {
        let _ = hub.restore_twin(&device_id, twin);
    }
    for (device_id, next) in sequences {
        let _ = hub.restore_sequences(&device_id, next.d2c_next, next.c2d_next);
    }
    for (device_id, queue) in c2d {
        for queued in queue {
            let _ = hub.restore_c2d(now, &device_id, queued);
        }
    }
    Ok(())
}
