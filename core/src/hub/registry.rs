//! The device registry and device authentication (spec file §2.3). STUB.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::iothub::{ErrorCode, Identity};
use crate::time::{Duration, Timestamp};

/// One registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device id.
    pub device_id: String,
    /// Primary symmetric key, base64.
    pub primary_key: String,
    /// Secondary symmetric key, base64.
    pub secondary_key: String,
    /// A disabled device cannot connect.
    pub enabled: bool,
}

/// Registry changes that cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// 409001 DeviceAlreadyExists.
    #[error("device {0} already exists")]
    AlreadyExists(String),
}

/// Why a device could not authenticate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No such device.
    #[error("device not registered")]
    UnknownDevice,
}

impl AuthError {
    /// The IoT Hub error code logged for this refusal.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::IOT_HUB_UNAUTHORIZED
    }
}

/// All devices the hub knows.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    devices: BTreeMap<String, DeviceRecord>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a device.
    pub fn add(&mut self, record: DeviceRecord) -> Result<(), RegistryError> {
        self.devices.insert(record.device_id.clone(), record);
        Ok(())
    }

    /// Looks a device up.
    pub fn get(&self, device_id: &str) -> Option<&DeviceRecord> {
        self.devices.get(device_id)
    }

    /// Checks `token` for `identity`.
    pub fn authenticate(
        &self,
        _identity: &Identity,
        _token: &str,
        _host_names: &[String],
        _now: Timestamp,
        _skew: Duration,
    ) -> Result<(), AuthError> {
        Err(AuthError::UnknownDevice)
    }
}
