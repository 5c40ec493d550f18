//! MQTT 3.1.1 wire format (OASIS MQTT 3.1.1, chapters 1–3). STUB: signatures only.

use bytes::BytesMut;

use super::packet::Packet;

/// Size limits checked before anything is buffered or allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest Remaining Length accepted, bytes.
    pub max_remaining_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_remaining_length: DEFAULT_MAX_REMAINING_LENGTH,
        }
    }
}

/// A 256 KiB message (IoT Hub's D2C limit, spec file §8) plus 16 KiB of topic.
pub const DEFAULT_MAX_REMAINING_LENGTH: usize = 256 * 1024 + 16 * 1024;

/// Why bytes are not a valid packet. Every kind closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet is longer than the configured limit.
    #[error("packet of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Remaining Length announced.
        size: usize,
        /// Limit.
        max: usize,
    },
}

/// Why a packet value cannot be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65 535 bytes.
    #[error("field longer than 65535 bytes")]
    FieldTooLong,
}

/// Decodes one packet from the front of `buf`, removing its bytes.
///
/// `Ok(None)`: more bytes are needed; nothing was consumed.
pub fn decode(_buf: &mut BytesMut, _limits: &Limits) -> Result<Option<Packet>, DecodeError> {
    Ok(None)
}

impl Packet {
    /// Appends the packet's bytes to `out`.
    pub fn encode(&self, _out: &mut BytesMut) -> Result<(), EncodeError> {
        Ok(())
    }

    /// Encoded size.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(0)
    }
}
