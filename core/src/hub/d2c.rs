//! The D2C log (STUB).

use alloc::vec::Vec;

use crate::iothub::{Identity, Message};
use crate::time::Timestamp;

/// One stored D2C message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct D2cRecord {
    /// Who sent it.
    pub identity: Identity,
    /// Per-device arrival number, from 1.
    pub sequence_number: u64,
    /// Arrival time.
    pub enqueued_time: Timestamp,
    /// The message.
    pub message: Message,
}

/// D2C messages in arrival order.
#[derive(Clone, Debug, Default)]
pub struct D2cLog {
    records: Vec<D2cRecord>,
}

impl D2cLog {
    /// Appends a record.
    pub fn append(&mut self, record: D2cRecord) {
        self.records.push(record);
    }
}
