//! The fourteen MQTT 3.1.1 control packets (OASIS MQTT 3.1.1, chapter 3) as values.
//!
//! Decoding and encoding live in [`super::codec`]. Strings are [`Utf8Bytes`] and
//! payloads [`Bytes`]: slices of the receive buffer, never copied.

use alloc::vec::Vec;
use bytes::Bytes;
use core::num::NonZeroU16;

use super::topic_rules::TopicName;
use crate::utf8::Utf8Bytes;

/// A packet identifier: never zero [MQTT-2.3.1-1].
pub type PacketId = NonZeroU16;

/// Quality of service of a PUBLISH or a subscription (§4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// At most once: no acknowledgement.
    AtMostOnce = 0,
    /// At least once: PUBACK.
    AtLeastOnce = 1,
    /// Exactly once: PUBREC, PUBREL, PUBCOMP. IoT Hub does not support it.
    ExactlyOnce = 2,
}

impl QoS {
    /// The two-bit wire value, if valid; 3 is malformed [MQTT-3.3.1-4].
    pub const fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Any MQTT 3.1.1 control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// 1, client → server: open a session (§3.1).
    Connect(Connect),
    /// 2, server → client: the answer to CONNECT (§3.2).
    ConnAck(ConnAck),
    /// 3, both: an application message (§3.3).
    Publish(Publish),
    /// 4, both: QoS 1 acknowledgement (§3.4).
    PubAck(PacketId),
    /// 5, both: QoS 2 step 1 (§3.5).
    PubRec(PacketId),
    /// 6, both: QoS 2 step 2 (§3.6).
    PubRel(PacketId),
    /// 7, both: QoS 2 step 3 (§3.7).
    PubComp(PacketId),
    /// 8, client → server (§3.8).
    Subscribe(Subscribe),
    /// 9, server → client (§3.9).
    SubAck(SubAck),
    /// 10, client → server (§3.10).
    Unsubscribe(Unsubscribe),
    /// 11, server → client (§3.11).
    UnsubAck(PacketId),
    /// 12, client → server (§3.12).
    PingReq,
    /// 13, server → client (§3.13).
    PingResp,
    /// 14, client → server: clean close (§3.14).
    Disconnect,
}

impl Packet {
    /// The packet type's name as the standard writes it, for logs and errors.
    pub const fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}

/// CONNECT (§3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name; `MQTT` for 3.1.1 [MQTT-3.1.2-1]. Decoded as sent so the
    /// server can choose its reaction.
    pub protocol_name: Utf8Bytes,
    /// Protocol level; 4 for 3.1.1 [MQTT-3.1.2-2].
    pub protocol_level: u8,
    /// Clean Session flag (§3.1.2.4).
    pub clean_session: bool,
    /// Keep Alive, seconds; 0 turns the mechanism off (§3.1.2.10).
    pub keep_alive: u16,
    /// Client Identifier (§3.1.3.1).
    pub client_id: Utf8Bytes,
    /// Will message (§3.1.2.5).
    pub will: Option<Will>,
    /// User Name (§3.1.3.4).
    pub username: Option<Utf8Bytes>,
    /// Password: binary data (§3.1.3.5). Present only with a username [MQTT-3.1.2-22].
    pub password: Option<Bytes>,
}

impl Connect {
    /// The Protocol Name of MQTT 3.1.1 [MQTT-3.1.2-1].
    pub const PROTOCOL_NAME: &'static str = "MQTT";
    /// The Protocol Level of MQTT 3.1.1 (§3.1.2.2).
    pub const PROTOCOL_LEVEL: u8 = 4;
}

/// The Will message of a CONNECT (§3.1.2.5–3.1.2.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    /// Will Topic.
    pub topic: TopicName,
    /// Will Message: binary.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
}

/// CONNACK (§3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present (§3.2.2.2); always false with a refusal [MQTT-3.2.2-4].
    pub session_present: bool,
    /// Connect Return code (§3.2.2.3).
    pub code: ConnectReturnCode,
}

/// Connect Return codes (§3.2.2.3, table 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// 0x00 Connection Accepted.
    Accepted = 0,
    /// 0x01 the server does not support the protocol level requested.
    UnacceptableProtocolVersion = 1,
    /// 0x02 the client identifier is correct UTF-8 but not allowed.
    IdentifierRejected = 2,
    /// 0x03 the network connection is made but the service is unavailable.
    ServerUnavailable = 3,
    /// 0x04 the user name or password is malformed.
    BadUsernameOrPassword = 4,
    /// 0x05 the client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// The wire value, if defined; 6–255 are reserved.
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUsernameOrPassword,
            5 => Self::NotAuthorized,
            _ => return None,
        })
    }
}

/// PUBLISH (§3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag: this may be a re-delivery [MQTT-3.3.1-1]; always false at QoS 0
    /// [MQTT-3.3.1-2].
    pub dup: bool,
    /// QoS level.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic Name: no wildcards [MQTT-3.3.2-2], at least one character
    /// [MQTT-4.7.3-1]; checked when the [`TopicName`] was made.
    pub topic: TopicName,
    /// Present exactly when `qos` is 1 or 2 [MQTT-2.3.1-5].
    pub packet_id: Option<PacketId>,
    /// Application message.
    pub payload: Bytes,
}

/// SUBSCRIBE (§3.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// Topic filters and requested QoS; at least one [MQTT-3.8.3-3].
    pub filters: Vec<(Utf8Bytes, QoS)>,
}

/// A SUBACK return code (§3.9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscribeReturnCode {
    /// Success with this maximum QoS.
    Success(QoS),
    /// 0x80 Failure.
    Failure,
}

impl SubscribeReturnCode {
    /// 0x80, the Failure return code.
    const FAILURE: u8 = 0x80;

    /// The wire value, if defined: 0x00–0x02 or 0x80; the others are reserved
    /// [MQTT-3.9.3-2].
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            Self::FAILURE => Some(Self::Failure),
            _ => match QoS::from_bits(v) {
                Some(qos) => Some(Self::Success(qos)),
                None => None,
            },
        }
    }

    /// The wire value.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Success(qos) => qos as u8,
            Self::Failure => Self::FAILURE,
        }
    }
}

/// SUBACK (§3.9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE's Packet Identifier [MQTT-3.8.4-2].
    pub packet_id: PacketId,
    /// One per filter, in order [MQTT-3.9.3-1].
    pub return_codes: Vec<SubscribeReturnCode>,
}

/// UNSUBSCRIBE (§3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier.
    pub packet_id: PacketId,
    /// Topic filters; at least one [MQTT-3.10.3-2].
    pub filters: Vec<Utf8Bytes>,
}
