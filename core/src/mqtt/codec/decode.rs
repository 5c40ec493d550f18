//! Reading packets from the receive buffer (§3.1–§3.14).
//!
//! A complete packet is split off the buffer once; its strings and payloads are
//! slices of that split ([`Bytes`] and [`Utf8Bytes`]), never copied.

use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};
use core::num::NonZeroU16;

use super::fixed_header::{
    FixedHeader, PUBLISH_DUP, PUBLISH_QOS_SHIFT, PUBLISH_RETAIN, PacketType,
};
use super::{CONNACK_SESSION_PRESENT, DecodeError, Limits, connect_flags};
use crate::mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe, Will,
};
use crate::mqtt::topic_rules::{TopicName, validate_topic_filter};
use crate::utf8::Utf8Bytes;

/// Reads the fixed header at the front of `buf` and returns the length of the whole
/// packet (fixed header included), bytes, once the header is complete, whether or not
/// the body has arrived (the idea of rumqttc's `check`).
///
/// `Ok(None)`: the fixed header is incomplete. Errors: the fixed-header rules of
/// §2.2 ([`DecodeError::InvalidPacketType`], [`DecodeError::ReservedFlags`],
/// [`DecodeError::InvalidQoS`], [`DecodeError::DupAtQoS0`],
/// [`DecodeError::MalformedRemainingLength`]), a Remaining Length above
/// `limits` ([`DecodeError::TooLarge`]), and a Remaining Length that a fixed-size
/// packet cannot have ([`DecodeError::Truncated`], [`DecodeError::TrailingBytes`]).
/// All are reported as soon as the bytes present prove them.
pub fn check(buf: &[u8], limits: &Limits) -> Result<Option<usize>, DecodeError> {
    Ok(FixedHeader::parse(buf, limits)?.map(|header| header.packet_len()))
}

/// Decodes one packet from the front of `buf` and removes its bytes.
///
/// `Ok(None)`: more bytes are needed; nothing was consumed (room for the rest of the
/// packet may have been reserved, once its size passed `limits`). The fixed header is
/// checked as in [`check`] before the body is waited for. Strings and payloads of
/// the packet returned share `buf`'s memory.
///
/// Errors: the rule the bytes break; the caller closes the connection
/// [MQTT-4.8.0-1]. `buf`'s contents after an error are unspecified.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = FixedHeader::parse(buf, limits)? else {
        return Ok(None);
    };
    let packet_len = header.packet_len();
    if buf.len() < packet_len {
        buf.reserve(packet_len - buf.len());
        return Ok(None);
    }
    let mut body = buf.split_to(packet_len).freeze();
    body.advance(header.header_len);
    let mut reader = Reader(body);
    let packet = decode_body(header, &mut reader, limits)?;
    reader.end()?;
    Ok(Some(packet))
}

fn decode_body(
    header: FixedHeader,
    r: &mut Reader,
    limits: &Limits,
) -> Result<Packet, DecodeError> {
    Ok(match header.packet_type {
        PacketType::Connect => Packet::Connect(decode_connect(r)?),
        PacketType::ConnAck => Packet::ConnAck(decode_connack(r)?),
        PacketType::Publish => Packet::Publish(decode_publish(header.flags, r)?),
        PacketType::PubAck => Packet::PubAck(r.packet_id()?),
        PacketType::PubRec => Packet::PubRec(r.packet_id()?),
        PacketType::PubRel => Packet::PubRel(r.packet_id()?),
        PacketType::PubComp => Packet::PubComp(r.packet_id()?),
        PacketType::Subscribe => Packet::Subscribe(decode_subscribe(r, limits)?),
        PacketType::SubAck => Packet::SubAck(decode_suback(r, limits)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(r, limits)?),
        PacketType::UnsubAck => Packet::UnsubAck(r.packet_id()?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect,
    })
}

/// CONNECT (§3.1). Protocol name and level are returned as sent: answering a wrong
/// name [MQTT-3.1.2-1] or level [MQTT-3.1.2-2] is the session's decision.
fn decode_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    use connect_flags::*;

    let protocol_name = r.string()?;
    let protocol_level = r.u8()?;
    let flags = r.u8()?;
    let keep_alive = r.u16()?;

    if flags & RESERVED != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let will_qos_bits = (flags & WILL_QOS_MASK) >> WILL_QOS_SHIFT;
    let will_retain = flags & WILL_RETAIN != 0;
    let will_qos = if flags & WILL != 0 {
        Some(QoS::from_bits(will_qos_bits).ok_or(DecodeError::InvalidWillQoS)?)
    } else if will_qos_bits != 0 || will_retain {
        return Err(DecodeError::WillFlagsWithoutWill);
    } else {
        None
    };
    let has_username = flags & USERNAME != 0;
    let has_password = flags & PASSWORD != 0;
    if has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }

    // The fields so far are laid out alike in MQTT 3.1, 3.1.1 and 5; the payload is
    // not (MQTT 5 puts properties first). A payload that does not parse at another
    // level is reported as that level, which the server refuses with CONNACK 0x01.
    let payload = (|| -> Result<_, DecodeError> {
        let client_id = r.string()?;
        let will = match will_qos {
            Some(qos) => Some(Will {
                topic: r.topic_name()?,
                payload: r.binary()?,
                qos,
                retain: will_retain,
            }),
            None => None,
        };
        let username = has_username.then(|| r.string()).transpose()?;
        let password = has_password.then(|| r.binary()).transpose()?;
        r.end()?;
        Ok((client_id, will, username, password))
    })();
    let (client_id, will, username, password) = payload.map_err(|e| {
        if protocol_level == Connect::PROTOCOL_LEVEL {
            e
        } else {
            DecodeError::UnsupportedProtocolLevel { level: protocol_level }
        }
    })?;

    Ok(Connect {
        protocol_name,
        protocol_level,
        clean_session: flags & CLEAN_SESSION != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

/// CONNACK (§3.2).
fn decode_connack(r: &mut Reader) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    let code = r.u8()?;
    if flags & !CONNACK_SESSION_PRESENT != 0 {
        return Err(DecodeError::ConnAckReservedFlags { flags });
    }
    let code =
        ConnectReturnCode::from_u8(code).ok_or(DecodeError::InvalidConnectReturnCode { code })?;
    let session_present = flags & CONNACK_SESSION_PRESENT != 0;
    if session_present && code != ConnectReturnCode::Accepted {
        return Err(DecodeError::SessionPresentWithRefusal);
    }
    Ok(ConnAck { session_present, code })
}

/// PUBLISH (§3.3). The fixed header has already refused QoS 3 and DUP at QoS 0.
fn decode_publish(flags: u8, r: &mut Reader) -> Result<Publish, DecodeError> {
    let qos = QoS::from_bits((flags >> PUBLISH_QOS_SHIFT) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let topic = r.topic_name()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce | QoS::ExactlyOnce => Some(r.packet_id()?),
    };
    Ok(Publish {
        dup: flags & PUBLISH_DUP != 0,
        qos,
        retain: flags & PUBLISH_RETAIN != 0,
        topic,
        packet_id,
        payload: r.rest(),
    })
}

/// SUBSCRIBE (§3.8).
fn decode_subscribe(r: &mut Reader, limits: &Limits) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while r.has_remaining() {
        if filters.len() == limits.max_topic_filters {
            return Err(DecodeError::TooManyTopicFilters { max: limits.max_topic_filters });
        }
        let filter = r.topic_filter()?;
        let byte = r.u8()?;
        // Bits 7–2 are reserved; QoS::from_bits refuses them along with QoS 3.
        let qos = QoS::from_bits(byte).ok_or(DecodeError::InvalidRequestedQoS { byte })?;
        filters.push((filter, qos));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscriptions);
    }
    Ok(Subscribe { packet_id, filters })
}

/// SUBACK (§3.9).
fn decode_suback(r: &mut Reader, limits: &Limits) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let codes = r.rest();
    if codes.len() > limits.max_topic_filters {
        return Err(DecodeError::TooManyTopicFilters { max: limits.max_topic_filters });
    }
    let return_codes = codes
        .iter()
        .map(|&code| {
            SubscribeReturnCode::from_u8(code).ok_or(DecodeError::InvalidSubAckReturnCode { code })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if return_codes.is_empty() {
        return Err(DecodeError::NoReturnCodes);
    }
    Ok(SubAck { packet_id, return_codes })
}

/// UNSUBSCRIBE (§3.10).
fn decode_unsubscribe(r: &mut Reader, limits: &Limits) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while r.has_remaining() {
        if filters.len() == limits.max_topic_filters {
            return Err(DecodeError::TooManyTopicFilters { max: limits.max_topic_filters });
        }
        filters.push(r.topic_filter()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscriptions);
    }
    Ok(Unsubscribe { packet_id, filters })
}

/// The body of one packet, read front to back. Every read checks the length first:
/// running past the end is [`DecodeError::Truncated`], never a panic.
struct Reader(Bytes);

impl Reader {
    fn has_remaining(&self) -> bool {
        !self.0.is_empty()
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.0.is_empty() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.get_u8())
    }

    /// Two-byte big-endian integer (§1.5.2).
    fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.0.len() < 2 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.get_u16())
    }

    /// Non-zero [MQTT-2.3.1-1].
    fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        NonZeroU16::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// Length-prefixed binary data (§1.5.3, §3.1.3.5).
    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        if self.0.len() < len {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.split_to(len))
    }

    /// Length-prefixed UTF-8 [MQTT-1.5.3-1]; callers add the null-character rule.
    fn utf8(&mut self) -> Result<Utf8Bytes, DecodeError> {
        Utf8Bytes::try_from_bytes(self.binary()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// A UTF-8 encoded string: well-formed [MQTT-1.5.3-1], no U+0000 [MQTT-1.5.3-2].
    fn string(&mut self) -> Result<Utf8Bytes, DecodeError> {
        let s = self.utf8()?;
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s)
    }

    /// A Topic Name (§4.7); its null check is part of the topic rules.
    fn topic_name(&mut self) -> Result<TopicName, DecodeError> {
        Ok(TopicName::new(self.utf8()?)?)
    }

    /// A Topic Filter (§4.7); its null check is part of the topic rules.
    fn topic_filter(&mut self) -> Result<Utf8Bytes, DecodeError> {
        let s = self.utf8()?;
        validate_topic_filter(&s)?;
        Ok(s)
    }

    /// Everything not read yet: a PUBLISH payload, SUBACK return codes.
    fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.0)
    }

    /// Every byte of the Remaining Length was used.
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() { Ok(()) } else { Err(DecodeError::TrailingBytes) }
    }
}
