//! The fixed header (§2.2): packet type, flags and Remaining Length.
//!
//! Everything a receiver can check before the body arrives is checked here, so a peer
//! announcing a packet that is too large, of a reserved type, or with invalid flags is
//! refused after at most five bytes.

use bytes::{BufMut, BytesMut};

use super::{DecodeError, Limits};

/// The largest Remaining Length four bytes can encode, bytes (§2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// A Remaining Length byte carries 7 bits of value; the 8th says "more follows".
const CONTINUATION: u8 = 0x80;
/// At most four bytes (§2.2.3).
const MAX_LENGTH_BYTES: usize = 4;

/// PUBLISH fixed-header flags (§3.3.1): DUP, QoS (two bits), RETAIN.
pub(super) const PUBLISH_DUP: u8 = 0b1000;
pub(super) const PUBLISH_QOS_SHIFT: u8 = 1;
pub(super) const PUBLISH_RETAIN: u8 = 0b0001;

/// MQTT Control Packet types (§2.2.1, table 2.1); 0 and 15 are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<Self> {
        use PacketType::*;
        Some(match v {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            _ => return None,
        })
    }

    /// The flags table 2.2 prescribes; `None` for PUBLISH, whose flags carry DUP, QoS
    /// and RETAIN.
    pub(super) const fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// The Remaining Length of packets whose size the standard fixes (§3.2.1, §3.4.1,
    /// …, §3.14.1), bytes.
    const fn fixed_remaining_length(self) -> Option<usize> {
        use PacketType::*;
        match self {
            ConnAck | PubAck | PubRec | PubRel | PubComp | UnsubAck => Some(2),
            PingReq | PingResp | Disconnect => Some(0),
            Connect | Publish | Subscribe | SubAck | Unsubscribe => None,
        }
    }

    /// The first byte of a packet of this type with `flags` in its low bits.
    pub(super) const fn first_byte(self, flags: u8) -> u8 {
        (self as u8) << 4 | flags
    }
}

/// A complete, checked fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FixedHeader {
    pub(super) packet_type: PacketType,
    /// The four low bits of the first byte, valid for `packet_type`.
    pub(super) flags: u8,
    /// 2 to 5 bytes.
    pub(super) header_len: usize,
    /// Bytes after the fixed header, within the limit.
    pub(super) remaining_length: usize,
}

impl FixedHeader {
    /// Reads and checks the fixed header at the front of `buf`.
    ///
    /// `Ok(None)`: the header is not complete yet. Errors are reported as soon as the
    /// bytes present prove them, even before the header is complete.
    pub(super) fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Self>, DecodeError> {
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(None);
        };
        let (packet_type, flags) = check_first_byte(first)?;
        let Some((remaining_length, length_bytes)) =
            read_remaining_length(rest, limits.max_remaining_length)?
        else {
            return Ok(None);
        };
        if let Some(expected) = packet_type.fixed_remaining_length() {
            if remaining_length > expected {
                return Err(DecodeError::TrailingBytes);
            }
            if remaining_length < expected {
                return Err(DecodeError::Truncated);
            }
        }
        Ok(Some(FixedHeader { packet_type, flags, header_len: 1 + length_bytes, remaining_length }))
    }

    /// Fixed header plus body, bytes.
    pub(super) fn packet_len(&self) -> usize {
        self.header_len + self.remaining_length
    }
}

/// Splits the first byte into a known type and flags valid for it (§2.2.1, §2.2.2).
fn check_first_byte(byte: u8) -> Result<(PacketType, u8), DecodeError> {
    let raw_type = byte >> 4;
    let flags = byte & 0x0F;
    let packet_type = PacketType::from_u8(raw_type)
        .ok_or(DecodeError::InvalidPacketType { packet_type: raw_type })?;
    match packet_type.required_flags() {
        Some(required) if flags != required => {
            Err(DecodeError::ReservedFlags { packet_type: raw_type, flags })
        }
        Some(_) => Ok((packet_type, flags)),
        None => {
            let qos = (flags >> PUBLISH_QOS_SHIFT) & 0b11;
            if qos == 0b11 {
                return Err(DecodeError::InvalidQoS);
            }
            if qos == 0 && flags & PUBLISH_DUP != 0 {
                return Err(DecodeError::DupAtQoS0);
            }
            Ok((packet_type, flags))
        }
    }
}

/// Reads a Remaining Length (§2.2.3) from the front of `bytes`: `(value, bytes used)`.
///
/// `Ok(None)` while the field is incomplete. Fails with `TooLarge` as soon as the
/// value read so far (which later bytes can only increase) exceeds `max`. Non-minimal
/// encodings (`80 00` for 0) are accepted: 3.1.1, unlike MQTT 5, does not forbid them.
pub(super) fn read_remaining_length(
    bytes: &[u8],
    max: usize,
) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0;
    for (i, &byte) in bytes.iter().take(MAX_LENGTH_BYTES).enumerate() {
        value |= usize::from(byte & !CONTINUATION) << (7 * i);
        if value > max {
            return Err(DecodeError::TooLarge { size: value, max });
        }
        if byte & CONTINUATION == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= MAX_LENGTH_BYTES {
        Err(DecodeError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// Bytes the Remaining Length field takes for `len` (§2.2.3, table 2.4).
pub(super) const fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `len` as a Remaining Length, in the fewest bytes. `len` must be at most
/// [`MAX_REMAINING_LENGTH`] (the encoder checks it first).
pub(super) fn put_remaining_length(out: &mut BytesMut, len: usize) {
    debug_assert!(len <= MAX_REMAINING_LENGTH);
    let mut field = [0u8; MAX_LENGTH_BYTES];
    let used = remaining_length_len(len);
    let mut rest = len;
    for (i, byte) in field.iter_mut().take(used).enumerate() {
        // Truncation is the point: the low 7 bits.
        *byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if i + 1 < used {
            *byte |= CONTINUATION;
        }
    }
    out.put_slice(&field[..used]);
}
