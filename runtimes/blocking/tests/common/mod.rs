//! What the runtime's tests share.

#![allow(dead_code)] // each test file uses its own part

use hubwire_core::hub::DeviceRecord;

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
pub(crate) const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `device_id` registered with [`KEY`].
pub(crate) fn record(device_id: &str) -> DeviceRecord {
    DeviceRecord {
        device_id: device_id.into(),
        primary_key: KEY.into(),
        secondary_key: String::new(),
        enabled: true,
    }
}
