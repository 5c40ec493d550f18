//! SAS tokens (spec file §2.3). STUB: signatures only.

use alloc::string::String;

use crate::time::{Duration, Timestamp};

/// A parsed SAS token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SasToken {
    /// `sr` exactly as it appears in the token (URL-encoded).
    pub resource: String,
    /// `sig`, URL-decoded (base64 text).
    pub signature: String,
    /// `se`: expiry, seconds since the Unix epoch.
    pub expiry: u64,
    /// `skn`: the policy name, when a policy key signed it.
    pub key_name: Option<String>,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasError {
    /// Not of the `SharedAccessSignature sr=..&sig=..&se=..` form.
    #[error("malformed SAS token: {0}")]
    Malformed(&'static str),
    /// `se` (plus the allowed clock skew) lies in the past.
    #[error("SAS token expired")]
    Expired,
    /// The signature matches none of the keys.
    #[error("SAS token signature does not match")]
    SignatureMismatch,
    /// The key is not base64.
    #[error("shared access key is not base64")]
    InvalidKey,
}

impl SasToken {
    /// Signs `resource_uri` (unencoded, e.g. `myhub.azure-devices.net/devices/device1`)
    /// with the base64 `key`, valid until `expiry`.
    pub fn sign(
        _resource_uri: &str,
        _key: &str,
        _expiry: Timestamp,
        _key_name: Option<&str>,
    ) -> Result<SasToken, SasError> {
        Err(SasError::InvalidKey)
    }

    /// Parses a token string.
    pub fn parse(_s: &str) -> Result<SasToken, SasError> {
        Err(SasError::Malformed("stub"))
    }

    /// The URL-decoded `sr`: what the token grants access to.
    pub fn audience(&self) -> String {
        self.resource.clone()
    }

    /// The expiry as a timestamp.
    pub fn expiry_time(&self) -> Timestamp {
        Timestamp::from_unix_secs(self.expiry)
    }

    /// Checks the signature against each base64 key and the expiry against `now`
    /// with `skew` of tolerance.
    pub fn verify(&self, _keys: &[&str], _now: Timestamp, _skew: Duration) -> Result<(), SasError> {
        Err(SasError::SignatureMismatch)
    }
}

impl core::fmt::Display for SasToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SharedAccessSignature sr={}&se={}",
            self.resource, self.expiry
        )
    }
}
