//! MQTT 3.1.1 wire format (OASIS MQTT 3.1.1, chapters 1–3): [`decode`] and [`check`]
//! read packets from a receive buffer, [`Packet::encode`](super::Packet::encode) writes them.
//!
//! - `fixed_header`: packet type, flags and the Remaining Length (§2.2), checked
//!   against [`Limits`] before the body is waited for.
//! - `decode`: the variable headers and payloads, as zero-copy slices of the buffer.
//! - `encode`: the reverse, sized once and written once.
//! - [`DecodeError`] (the peer broke a rule; close the connection) and [`EncodeError`]
//!   (the caller asked for a packet the standard forbids).

mod decode;
mod encode;
mod error;
mod fixed_header;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decode::{check, decode};
pub use error::{DecodeError, EncodeError};
pub use fixed_header::MAX_REMAINING_LENGTH;

/// Size limits checked before anything is buffered or allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest Remaining Length accepted, bytes. Values above
    /// [`MAX_REMAINING_LENGTH`] have no effect: the wire cannot say more.
    pub max_remaining_length: usize,
    /// Most Topic Filters (or SUBACK return codes) one SUBSCRIBE, UNSUBSCRIBE or
    /// SUBACK may carry: the list is refused before it grows past this.
    pub max_topic_filters: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_remaining_length: DEFAULT_MAX_REMAINING_LENGTH,
            max_topic_filters: DEFAULT_MAX_TOPIC_FILTERS,
        }
    }
}

/// IoT Hub serves at most 5 subscriptions per connection (spec file §8), so one
/// packet naming more is refused whole.
pub const DEFAULT_MAX_TOPIC_FILTERS: usize = 5;

/// A 256 KiB message (IoT Hub's D2C limit, spec file §8) plus 16 KiB of topic, bytes.
pub const DEFAULT_MAX_REMAINING_LENGTH: usize = 256 * 1024 + 16 * 1024;

/// CONNECT flag bits (§3.1.2.3, figure 3.4).
mod connect_flags {
    pub(super) const USERNAME: u8 = 0x80;
    pub(super) const PASSWORD: u8 = 0x40;
    pub(super) const WILL_RETAIN: u8 = 0x20;
    pub(super) const WILL_QOS_MASK: u8 = 0x18;
    pub(super) const WILL_QOS_SHIFT: u8 = 3;
    pub(super) const WILL: u8 = 0x04;
    pub(super) const CLEAN_SESSION: u8 = 0x02;
    /// Must be 0 [MQTT-3.1.2-3].
    pub(super) const RESERVED: u8 = 0x01;
}

/// The only defined bit of the CONNACK Acknowledge Flags (§3.2.2.1); bits 7–1 are
/// reserved.
const CONNACK_SESSION_PRESENT: u8 = 0x01;
