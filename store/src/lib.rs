//! The local hub's stores: what the hub keeps across a restart (DESIGN.md, "Storage
//! is I/O").
//!
//! The hub engine asks for persistence through its events and acknowledges a device
//! only after the runtime reports the write done; the runtime owns a [`Store`] and
//! drives it:
//!
//! | when | call |
//! | --- | --- |
//! | the hub starts | [`Store::load`], then [`restore`] into a new [`Hub`] |
//! | a drain's [`HubEvent::StoreTelemetry`] events | one [`Store::append_d2c`] for all of them, then [`Hub::telemetry_stored`] for each |
//! | [`Hub::send_c2d`] returned a sequence number | [`Store::put_c2d`] with [`Hub::queued_c2d`], before the service hears `Ok` |
//! | [`HubEvent::C2dSettled`] | [`Store::settle_c2d`] |
//! | the registry changed | [`Store::put_devices`] or [`Store::remove_device`] |
//! | [`HubEvent::ReportedUpdated`], [`Hub::update_desired`] | [`Store::put_twin`] with [`Hub::twin`] |
//!
//! [`MemoryStore`] keeps everything in memory (`hubwire demo`); [`RedbStore`] keeps it
//! in a redb database file, every call one durable transaction: a hub killed with
//! SIGKILL and restarted loses no acknowledged D2C message and no queued C2D message.
//!
//! [`Hub`]: hubwire_core::hub::Hub
//! [`HubEvent::StoreTelemetry`]: hubwire_core::hub::HubEvent::StoreTelemetry
//! [`HubEvent::C2dSettled`]: hubwire_core::hub::HubEvent::C2dSettled
//! [`HubEvent::ReportedUpdated`]: hubwire_core::hub::HubEvent::ReportedUpdated
//! [`Hub::telemetry_stored`]: hubwire_core::hub::Hub::telemetry_stored
//! [`Hub::send_c2d`]: hubwire_core::hub::Hub::send_c2d
//! [`Hub::queued_c2d`]: hubwire_core::hub::Hub::queued_c2d
//! [`Hub::update_desired`]: hubwire_core::hub::Hub::update_desired
//! [`Hub::twin`]: hubwire_core::hub::Hub::twin

mod durable;
mod memory;
mod snapshot;

pub use durable::RedbStore;

/// How long either store keeps a D2C message by default: one day, IoT Hub's
/// default retention for its built-in endpoint, which may be raised to seven (IoT
/// Hub developer guide, "Read device-to-cloud messages from the built-in
/// endpoint"). Age is judged by the hub's `enqueued_time` stamps, against the
/// latest message stored: old messages go as new ones are stored.
pub const D2C_RETENTION: hubwire_core::time::Duration =
    hubwire_core::time::Duration::from_secs(24 * 60 * 60);
pub use memory::MemoryStore;
pub use snapshot::{Sequences, Snapshot, restore};

use hubwire_core::hub::{D2cRecord, DeviceRecord, QueuedC2d, RegistryError, Settled};
use hubwire_core::iothub::{Twin, TwinError};

/// What a hub keeps across restarts, driven by its runtime (see the crate
/// documentation for when each call is made). Every method that changes the store
/// is done when it returns `Ok`: for a durable store the change survives a crash.
pub trait Store: Send + std::fmt::Debug {
    /// What was kept, read once when the hub starts, for [`restore`].
    ///
    /// Errors: [`StoreError`] when the store cannot be read or holds a record that
    /// does not decode.
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Appends these D2C records, in order, in one durable transaction: on `Ok`
    /// every one survives a SIGKILL, so their devices may be acknowledged. Each
    /// device's next D2C sequence number is kept with them.
    fn append_d2c(&mut self, records: &[D2cRecord]) -> Result<(), StoreError>;

    /// Every stored D2C record in arrival order.
    fn d2c(&self) -> Result<Vec<D2cRecord>, StoreError>;

    /// Adds devices to the registry or replaces their records, in one transaction
    /// (a hub starting with ten thousand devices writes once).
    fn put_devices(&mut self, records: &[DeviceRecord]) -> Result<(), StoreError>;

    /// Removes a device with its twin and C2D queue; its D2C records stay, and so
    /// do its sequence numbers, so a device registered again under the id does not
    /// reuse them. Removing a device the store does not hold is no error.
    fn remove_device(&mut self, device_id: &str) -> Result<(), StoreError>;

    /// Keeps `device_id`'s twin as it is now, replacing the one kept before.
    fn put_twin(&mut self, device_id: &str, twin: &Twin) -> Result<(), StoreError>;

    /// Keeps a C2D message [`Hub::send_c2d`] just queued for `device_id` (read back
    /// with [`Hub::queued_c2d`]), before the service caller hears `Ok`. The
    /// device's next C2D sequence number is kept with it.
    ///
    /// [`Hub::send_c2d`]: hubwire_core::hub::Hub::send_c2d
    /// [`Hub::queued_c2d`]: hubwire_core::hub::Hub::queued_c2d
    fn put_c2d(&mut self, device_id: &str, queued: &QueuedC2d) -> Result<(), StoreError>;

    /// Applies a [`HubEvent::C2dSettled`]: an abandoned message keeps its place
    /// with its new delivery count; any other outcome removes it. A message the
    /// store does not hold is no error.
    ///
    /// [`HubEvent::C2dSettled`]: hubwire_core::hub::HubEvent::C2dSettled
    fn settle_c2d(&mut self, settled: &Settled) -> Result<(), StoreError>;
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written (boxed: redb's error is
    /// large, and every call's `Result` carries it).
    #[error("store database: {0}")]
    Database(Box<redb::Error>),
    /// A record does not encode, or a stored one does not decode.
    #[error("store record: {0}")]
    Encoding(#[from] postcard::Error),
    /// A stored twin is not a twin document.
    #[error("stored twin: {0}")]
    Twin(#[from] TwinError),
    /// The database was written in another format than this build reads.
    #[error("the store is in format {found}; this hubwire reads format {expected}")]
    Format {
        /// The format the file holds.
        found: u64,
        /// The format this build writes and reads.
        expected: u64,
    },
    /// The file exists but is not a whole database: empty, cut short, or damaged
    /// in a way the database library cannot repair. Nothing is overwritten; move
    /// the file away to start with an empty store.
    #[error("{path} is damaged ({reason}); move it away to start with an empty store")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// The registry refused a stored device record ([`restore`]).
    #[error("stored device record: {0}")]
    Device(#[from] RegistryError),
}

/// redb reports each step's failure with a type of its own; all are
/// [`StoreError::Database`].
macro_rules! database_error {
    ($($step:ty),*) => {$(
        impl From<$step> for StoreError {
            fn from(e: $step) -> Self {
                StoreError::Database(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}

database_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
