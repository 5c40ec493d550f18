//! Property bags: `k1=v1&k2=v2` at the end of telemetry and C2D topics (spec file
//! §4.2). STUB: signatures only.

use alloc::string::String;

use crate::iothub::Message;

/// Why a property bag was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PropertyBagError {
    /// A percent-escape is broken or decodes to invalid UTF-8.
    #[error("invalid percent-encoding in property bag")]
    InvalidEncoding,
}

/// Appends `message`'s system and application properties to `out` as a property bag.
pub fn encode(_message: &Message, _out: &mut String) {}

/// Reads a property bag into `message`'s properties.
pub fn decode(_bag: &str, _message: &mut Message) -> Result<(), PropertyBagError> {
    Ok(())
}
