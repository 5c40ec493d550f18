//! What can be wrong with bytes read ([`DecodeError`]) and with packets written
//! ([`EncodeError`]).

use crate::mqtt::topic_rules::TopicError;

/// Why bytes from the peer are not a valid MQTT 3.1.1 packet.
///
/// Every kind is a protocol violation: the receiver closes the network connection
/// [MQTT-4.8.0-1]. [`DecodeError::UnsupportedProtocolLevel`] alone lets a server first
/// answer CONNACK 0x01 [MQTT-3.1.2-2]. One variant per rule, each naming the statement
/// (or section, where the standard gives the rule no number).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The Remaining Length field has a fifth byte: at most four are allowed, so the
    /// largest length is 268 435 455 (§2.2.3).
    #[error("the remaining length field is longer than four bytes (§2.2.3)")]
    MalformedRemainingLength,
    /// The Remaining Length announced exceeds [`super::Limits::max_remaining_length`].
    /// Reported as soon as the fixed header shows it, before the body is buffered.
    #[error("a remaining length of at least {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Remaining Length announced (or, for a header still arriving, the least it
        /// can be), bytes.
        size: usize,
        /// The configured limit, bytes.
        max: usize,
    },
    /// The packet type is 0 or 15, both reserved (§2.2.1, table 2.1).
    #[error("packet type {packet_type} is reserved (§2.2.1)")]
    InvalidPacketType {
        /// The four high bits of the first byte.
        packet_type: u8,
    },
    /// The fixed-header flags differ from table 2.2 [MQTT-2.2.2-1], [MQTT-2.2.2-2]:
    /// 0010 for PUBREL [MQTT-3.6.1-1], SUBSCRIBE [MQTT-3.8.1-1] and UNSUBSCRIBE
    /// [MQTT-3.10.1-1], 0000 for the others but PUBLISH (DISCONNECT: [MQTT-3.14.1-1]).
    #[error("flags {flags:#06b} are invalid for packet type {packet_type} [MQTT-2.2.2-2]")]
    ReservedFlags {
        /// The four high bits of the first byte.
        packet_type: u8,
        /// The four low bits.
        flags: u8,
    },
    /// A PUBLISH has both QoS bits set [MQTT-3.3.1-4].
    #[error("PUBLISH with QoS 3 [MQTT-3.3.1-4]")]
    InvalidQoS,
    /// A QoS 0 PUBLISH has the DUP flag set [MQTT-3.3.1-2].
    #[error("PUBLISH with DUP set at QoS 0 [MQTT-3.3.1-2]")]
    DupAtQoS0,
    /// A field runs past the end given by the Remaining Length (§2.2.3), or a
    /// fixed-size packet announces fewer bytes than its layout needs (§3.2–§3.14).
    #[error("a field runs past the remaining length (§2.2.3)")]
    Truncated,
    /// Bytes remain after the last field of a packet whose layout is fixed, e.g. a
    /// PUBACK whose Remaining Length is not 2 (§3.4.1) or a CONNECT with bytes after
    /// its last payload field (§3.1.3).
    #[error("bytes left after the last field of the packet (§2.2.3)")]
    TrailingBytes,
    /// A string is not well-formed UTF-8, or encodes a surrogate [MQTT-1.5.3-1].
    #[error("string is not well-formed UTF-8 [MQTT-1.5.3-1]")]
    InvalidUtf8,
    /// A string contains U+0000 [MQTT-1.5.3-2].
    #[error("string contains the null character U+0000 [MQTT-1.5.3-2]")]
    NullCharacter,
    /// A Packet Identifier is zero [MQTT-2.3.1-1].
    #[error("packet identifier 0 [MQTT-2.3.1-1]")]
    ZeroPacketId,
    /// A Topic Name or Topic Filter breaks a rule of §4.7.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The reserved bit 0 of the CONNECT flags is set [MQTT-3.1.2-3].
    #[error("CONNECT reserved flag is set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    /// CONNECT has Will QoS or Will Retain set without the Will Flag [MQTT-3.1.2-11],
    /// [MQTT-3.1.2-13], [MQTT-3.1.2-15].
    #[error("Will QoS or Will Retain set without the Will Flag [MQTT-3.1.2-11]")]
    WillFlagsWithoutWill,
    /// CONNECT has Will QoS 3 [MQTT-3.1.2-14].
    #[error("Will QoS 3 [MQTT-3.1.2-14]")]
    InvalidWillQoS,
    /// CONNECT has the Password Flag without the User Name Flag [MQTT-3.1.2-22].
    #[error("password without a user name [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    /// A CONNECT at a protocol level other than 4 has a payload that breaks the 3.1.1
    /// layout or its rules (an MQTT 5 CONNECT, whose properties come first, say). The
    /// server answers CONNACK 0x01 and closes [MQTT-3.1.2-2]. At level 4 the payload's
    /// own error is reported instead.
    #[error("CONNECT at unsupported protocol level {level} [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel {
        /// The Protocol Level byte as sent.
        level: u8,
    },
    /// Bits 7–1 of the CONNACK Acknowledge Flags are not 0 (§3.2.2.1).
    #[error("CONNACK acknowledge flags {flags:#010b} set reserved bits (§3.2.2.1)")]
    ConnAckReservedFlags {
        /// The Acknowledge Flags byte.
        flags: u8,
    },
    /// The CONNACK return code is one of the reserved values 6–255 (§3.2.2.3).
    #[error("CONNACK return code {code} is reserved (§3.2.2.3)")]
    InvalidConnectReturnCode {
        /// The return code byte.
        code: u8,
    },
    /// A CONNACK refuses the connection yet sets Session Present [MQTT-3.2.2-4].
    #[error("CONNACK sets Session Present with a non-zero return code [MQTT-3.2.2-4]")]
    SessionPresentWithRefusal,
    /// A SUBSCRIBE, UNSUBSCRIBE or SUBACK lists more entries than
    /// [`Limits::max_topic_filters`](super::Limits::max_topic_filters).
    #[error("more than {max} topic filters in one packet")]
    TooManyTopicFilters {
        /// The limit.
        max: usize,
    },
    /// A SUBSCRIBE has no Topic Filter [MQTT-3.8.3-3].
    #[error("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")]
    NoSubscriptions,
    /// A SUBSCRIBE's Requested QoS byte sets reserved bits 7–2 or asks for QoS 3
    /// [MQTT-3-8.3-4] (the standard's spelling).
    #[error("requested QoS byte {byte:#04x} is invalid [MQTT-3-8.3-4]")]
    InvalidRequestedQoS {
        /// The Requested QoS byte.
        byte: u8,
    },
    /// A SUBACK has no return code, yet needs one per filter of a SUBSCRIBE, which has
    /// at least one [MQTT-3.8.4-5].
    #[error("SUBACK without return codes [MQTT-3.8.4-5]")]
    NoReturnCodes,
    /// A SUBACK return code is not 0x00, 0x01, 0x02 or 0x80 [MQTT-3.9.3-2].
    #[error("SUBACK return code {code:#04x} is reserved [MQTT-3.9.3-2]")]
    InvalidSubAckReturnCode {
        /// The return code byte.
        code: u8,
    },
    /// An UNSUBSCRIBE has no Topic Filter [MQTT-3.10.3-2].
    #[error("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")]
    NoUnsubscriptions,
}

/// Why a [`Packet`](crate::mqtt::Packet) value cannot be written: the caller asked for
/// a packet the standard forbids. Nothing is written when encoding fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than its two-byte length prefix can say,
    /// 65 535 bytes (§1.5.3, §3.1.3.5).
    #[error("field of {len} bytes is longer than 65535 bytes (§1.5.3)")]
    FieldTooLong {
        /// The field's length, bytes.
        len: usize,
    },
    /// The Remaining Length would exceed 268 435 455 bytes (§2.2.3).
    #[error("remaining length of {len} bytes exceeds 268435455 (§2.2.3)")]
    PacketTooLarge {
        /// The Remaining Length the packet needs, bytes (saturated at `usize::MAX`).
        len: usize,
    },
    /// A string contains U+0000 [MQTT-1.5.3-2].
    #[error("string contains the null character U+0000 [MQTT-1.5.3-2]")]
    NullCharacter,
    /// A Topic Name or Topic Filter breaks a rule of §4.7.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// A QoS 0 PUBLISH carries a Packet Identifier [MQTT-2.3.1-5].
    #[error("QoS 0 PUBLISH with a packet identifier [MQTT-2.3.1-5]")]
    PacketIdAtQoS0,
    /// A QoS 1 or 2 PUBLISH has no Packet Identifier [MQTT-2.3.1-1].
    #[error("QoS 1 or 2 PUBLISH without a packet identifier [MQTT-2.3.1-1]")]
    MissingPacketId,
    /// A QoS 0 PUBLISH has DUP set [MQTT-3.3.1-2].
    #[error("QoS 0 PUBLISH with DUP set [MQTT-3.3.1-2]")]
    DupAtQoS0,
    /// A CONNECT has a password but no user name [MQTT-3.1.2-22].
    #[error("password without a user name [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    /// A CONNACK refuses the connection yet sets Session Present [MQTT-3.2.2-4].
    #[error("Session Present with a non-zero return code [MQTT-3.2.2-4]")]
    SessionPresentWithRefusal,
    /// A SUBSCRIBE has no filter [MQTT-3.8.3-3].
    #[error("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")]
    NoSubscriptions,
    /// An UNSUBSCRIBE has no filter [MQTT-3.10.3-2].
    #[error("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")]
    NoUnsubscriptions,
    /// A SUBACK has no return code [MQTT-3.8.4-5].
    #[error("SUBACK without return codes [MQTT-3.8.4-5]")]
    NoReturnCodes,
}
