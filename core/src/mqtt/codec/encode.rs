//! Writing packets (§3.1–§3.14): every rule is checked and the exact length computed
//! first, then the output is reserved once and written once.

use bytes::{BufMut, BytesMut};

use super::fixed_header::{
    MAX_REMAINING_LENGTH, PUBLISH_DUP, PUBLISH_QOS_SHIFT, PUBLISH_RETAIN, PacketType,
    put_remaining_length, remaining_length_len,
};
use super::{CONNACK_SESSION_PRESENT, EncodeError, connect_flags};
use crate::mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, Publish, QoS, SubAck, Subscribe, Unsubscribe,
};
use crate::mqtt::topic_rules::{TopicName, validate_topic_filter};
use crate::utf8::Utf8Bytes;

impl Packet {
    /// Appends the packet's bytes to `out`, reserving the exact space once.
    ///
    /// Errors (nothing is written): a rule of the standard the value breaks, see
    /// [`EncodeError`]. Whatever encodes without error, [`super::decode`] reads back
    /// equal.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let remaining_length = self.remaining_length()?;
        out.reserve(1 + remaining_length_len(remaining_length) + remaining_length);
        out.put_u8(self.first_byte());
        put_remaining_length(out, remaining_length);
        match self {
            Packet::Connect(connect) => put_connect(out, connect),
            Packet::ConnAck(connack) => {
                out.put_u8(if connack.session_present { CONNACK_SESSION_PRESENT } else { 0 });
                out.put_u8(connack.code as u8);
            }
            Packet::Publish(publish) => {
                put_binary(out, publish.topic.as_bytes());
                if let Some(packet_id) = publish.packet_id {
                    out.put_u16(packet_id.get());
                }
                out.put_slice(&publish.payload);
            }
            Packet::PubAck(packet_id)
            | Packet::PubRec(packet_id)
            | Packet::PubRel(packet_id)
            | Packet::PubComp(packet_id)
            | Packet::UnsubAck(packet_id) => out.put_u16(packet_id.get()),
            Packet::Subscribe(subscribe) => {
                out.put_u16(subscribe.packet_id.get());
                for (filter, qos) in &subscribe.filters {
                    put_binary(out, filter.as_bytes());
                    out.put_u8(*qos as u8);
                }
            }
            Packet::SubAck(suback) => {
                out.put_u16(suback.packet_id.get());
                for code in &suback.return_codes {
                    out.put_u8(code.to_u8());
                }
            }
            Packet::Unsubscribe(unsubscribe) => {
                out.put_u16(unsubscribe.packet_id.get());
                for filter in &unsubscribe.filters {
                    put_binary(out, filter.as_bytes());
                }
            }
            Packet::PingReq | Packet::PingResp | Packet::Disconnect => {}
        }
        Ok(())
    }

    /// The number of bytes [`Packet::encode`] writes, fixed header included.
    ///
    /// Errors: as [`Packet::encode`].
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let remaining_length = self.remaining_length()?;
        Ok(1 + remaining_length_len(remaining_length) + remaining_length)
    }

    /// Checks every rule and returns the Remaining Length, bytes.
    fn remaining_length(&self) -> Result<usize, EncodeError> {
        let len = match self {
            Packet::Connect(connect) => connect_len(connect)?,
            Packet::ConnAck(connack) => connack_len(connack)?,
            Packet::Publish(publish) => publish_len(publish)?,
            Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
            | Packet::UnsubAck(_) => PACKET_ID_LEN,
            Packet::Subscribe(subscribe) => subscribe_len(subscribe)?,
            Packet::SubAck(suback) => suback_len(suback)?,
            Packet::Unsubscribe(unsubscribe) => unsubscribe_len(unsubscribe)?,
            Packet::PingReq | Packet::PingResp | Packet::Disconnect => 0,
        };
        if len > MAX_REMAINING_LENGTH {
            return Err(EncodeError::PacketTooLarge { len });
        }
        Ok(len)
    }

    fn first_byte(&self) -> u8 {
        let packet_type = match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(publish) => {
                return PacketType::Publish.first_byte(publish_flags(publish));
            }
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect => PacketType::Disconnect,
        };
        packet_type.first_byte(packet_type.required_flags().unwrap_or(0))
    }
}

/// A Packet Identifier takes two bytes (§2.3.1).
const PACKET_ID_LEN: usize = 2;

fn connect_len(connect: &Connect) -> Result<usize, EncodeError> {
    if connect.password.is_some() && connect.username.is_none() {
        return Err(EncodeError::PasswordWithoutUsername);
    }
    // Protocol Name, Level (1), Connect Flags (1), Keep Alive (2), Client Identifier.
    let mut len = string_len(&connect.protocol_name)? + 4 + string_len(&connect.client_id)?;
    if let Some(will) = &connect.will {
        len += topic_name_len(&will.topic)? + binary_len(&will.payload)?;
    }
    if let Some(username) = &connect.username {
        len += string_len(username)?;
    }
    if let Some(password) = &connect.password {
        len += binary_len(password)?;
    }
    Ok(len)
}

fn connack_len(connack: &ConnAck) -> Result<usize, EncodeError> {
    if connack.session_present && connack.code != ConnectReturnCode::Accepted {
        return Err(EncodeError::SessionPresentWithRefusal);
    }
    // Acknowledge Flags, Return Code.
    Ok(2)
}

fn publish_len(publish: &Publish) -> Result<usize, EncodeError> {
    match (publish.qos, publish.packet_id) {
        (QoS::AtMostOnce, Some(_)) => return Err(EncodeError::PacketIdAtQoS0),
        (QoS::AtLeastOnce | QoS::ExactlyOnce, None) => return Err(EncodeError::MissingPacketId),
        _ => {}
    }
    if publish.dup && publish.qos == QoS::AtMostOnce {
        return Err(EncodeError::DupAtQoS0);
    }
    let packet_id_len = if publish.packet_id.is_some() { PACKET_ID_LEN } else { 0 };
    Ok((topic_name_len(&publish.topic)? + packet_id_len).saturating_add(publish.payload.len()))
}

fn subscribe_len(subscribe: &Subscribe) -> Result<usize, EncodeError> {
    if subscribe.filters.is_empty() {
        return Err(EncodeError::NoSubscriptions);
    }
    subscribe
        .filters
        .iter()
        // Each filter is followed by its Requested QoS byte.
        .try_fold(PACKET_ID_LEN, |len, (filter, _)| {
            Ok(len.saturating_add(topic_filter_len(filter)? + 1))
        })
}

fn suback_len(suback: &SubAck) -> Result<usize, EncodeError> {
    if suback.return_codes.is_empty() {
        return Err(EncodeError::NoReturnCodes);
    }
    Ok(PACKET_ID_LEN.saturating_add(suback.return_codes.len()))
}

fn unsubscribe_len(unsubscribe: &Unsubscribe) -> Result<usize, EncodeError> {
    if unsubscribe.filters.is_empty() {
        return Err(EncodeError::NoUnsubscriptions);
    }
    unsubscribe
        .filters
        .iter()
        .try_fold(PACKET_ID_LEN, |len, filter| Ok(len.saturating_add(topic_filter_len(filter)?)))
}

fn publish_flags(publish: &Publish) -> u8 {
    let mut flags = (publish.qos as u8) << PUBLISH_QOS_SHIFT;
    if publish.dup {
        flags |= PUBLISH_DUP;
    }
    if publish.retain {
        flags |= PUBLISH_RETAIN;
    }
    flags
}

fn put_connect(out: &mut BytesMut, connect: &Connect) {
    use connect_flags::*;

    let mut flags = 0;
    if connect.clean_session {
        flags |= CLEAN_SESSION;
    }
    if let Some(will) = &connect.will {
        flags |= WILL | (will.qos as u8) << WILL_QOS_SHIFT;
        if will.retain {
            flags |= WILL_RETAIN;
        }
    }
    if connect.username.is_some() {
        flags |= USERNAME;
    }
    if connect.password.is_some() {
        flags |= PASSWORD;
    }

    put_binary(out, connect.protocol_name.as_bytes());
    out.put_u8(connect.protocol_level);
    out.put_u8(flags);
    out.put_u16(connect.keep_alive);
    put_binary(out, connect.client_id.as_bytes());
    if let Some(will) = &connect.will {
        put_binary(out, will.topic.as_bytes());
        put_binary(out, &will.payload);
    }
    if let Some(username) = &connect.username {
        put_binary(out, username.as_bytes());
    }
    if let Some(password) = &connect.password {
        put_binary(out, password);
    }
}

/// Length-prefixed bytes (§1.5.3, §3.1.3.5): 2 + their length, at most 65 535.
fn binary_len(bytes: &[u8]) -> Result<usize, EncodeError> {
    if bytes.len() > usize::from(u16::MAX) {
        return Err(EncodeError::FieldTooLong { len: bytes.len() });
    }
    Ok(2 + bytes.len())
}

/// A UTF-8 encoded string without U+0000 [MQTT-1.5.3-2] (well-formed by type).
fn string_len(s: &Utf8Bytes) -> Result<usize, EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::NullCharacter);
    }
    binary_len(s.as_bytes())
}

/// A Topic Name was checked when made: only its length is left.
fn topic_name_len(topic: &TopicName) -> Result<usize, EncodeError> {
    binary_len(topic.as_bytes())
}

fn topic_filter_len(filter: &Utf8Bytes) -> Result<usize, EncodeError> {
    validate_topic_filter(filter)?;
    binary_len(filter.as_bytes())
}

/// Writes a field whose length `binary_len` has accepted.
fn put_binary(out: &mut BytesMut, bytes: &[u8]) {
    // At most 65 535: checked by `binary_len` before anything is written.
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}
