//! Device connection strings (spec file §2.2). STUB: signatures only.

use alloc::string::String;
use core::fmt;

use crate::iothub::Identity;

/// A parsed device connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionString {
    /// `HostName`: the hub's name, possibly with `:port`.
    pub host_name: String,
    /// `DeviceId`.
    pub device_id: String,
    /// `ModuleId`.
    pub module_id: Option<String>,
    /// How the device proves who it is.
    pub authentication: Authentication,
    /// `SharedAccessKeyName`: the key is a policy key.
    pub shared_access_key_name: Option<String>,
    /// `GatewayHostName`: where to open the socket instead of `HostName`.
    pub gateway_host_name: Option<String>,
}

/// The credential in a connection string.
#[derive(Clone, PartialEq, Eq)]
pub enum Authentication {
    /// `SharedAccessKey`: a base64 symmetric key; tokens are signed with it.
    SharedAccessKey(String),
    /// `SharedAccessSignature`: a ready token, used as it is.
    SharedAccessSignature(String),
    /// `x509=true`: a TLS client certificate.
    X509,
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authentication::SharedAccessKey(_) => f.write_str("SharedAccessKey(..)"),
            Authentication::SharedAccessSignature(_) => f.write_str("SharedAccessSignature(..)"),
            Authentication::X509 => f.write_str("X509"),
        }
    }
}

/// Why a connection string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// A required key is absent.
    #[error("connection string has no {0}")]
    Missing(&'static str),
}

impl ConnectionString {
    /// Parses `HostName=..;DeviceId=..;SharedAccessKey=..`.
    pub fn parse(_s: &str) -> Result<Self, ConnectionStringError> {
        Err(ConnectionStringError::Missing("HostName"))
    }

    /// The identity the string names.
    pub fn identity(&self) -> Identity {
        Identity {
            device_id: self.device_id.clone(),
            module_id: self.module_id.clone(),
        }
    }
}
