//! The CONNECT User Name IoT Hub expects (spec file §4.1.1, TV-9). STUB.

use alloc::string::String;

use crate::iothub::Identity;

/// A parsed IoT Hub MQTT user name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    /// Host name, as the device wrote it.
    pub host_name: String,
    /// Device (and module) identity.
    pub identity: Identity,
    /// `api-version`, if given.
    pub api_version: Option<String>,
    /// `DeviceClientType`, decoded.
    pub client_type: Option<String>,
    /// `model-id`, decoded.
    pub model_id: Option<String>,
}

/// Why a user name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameError {
    /// Not `host/device[/module]/[?]query`.
    #[error("malformed IoT Hub user name")]
    Malformed,
}

impl Username {
    /// Parses a user name.
    pub fn parse(_s: &str) -> Result<Username, UsernameError> {
        Err(UsernameError::Malformed)
    }

    /// Formats `host/identity/?api-version=..&DeviceClientType=..`.
    pub fn format(_host_name: &str, _identity: &Identity, _client_type: &str) -> String {
        String::new()
    }
}
