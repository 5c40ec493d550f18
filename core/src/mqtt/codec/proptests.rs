//! Property tests: every valid packet of the 14 types survives encode → decode, whole
//! and in random chunks; no input makes the decoder panic; whatever it accepts, the
//! encoder accepts too.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::*;
use crate::mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe, Will,
};
use crate::mqtt::topic_rules::TopicName;
use crate::utf8::Utf8Bytes;

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|n| PacketId::new(n).expect("range excludes 0"))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

/// Any string an MQTT string may hold: no U+0000 [MQTT-1.5.3-2].
fn string() -> impl Strategy<Value = Utf8Bytes> {
    "[^\\x00]{0,12}".prop_map(Utf8Bytes::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..32).prop_map(Bytes::from)
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    "[^\\x00+#]{1,24}"
        .prop_map(|name: String| TopicName::new(name).expect("the pattern makes valid names"))
}

/// Levels that are `+` or wildcard-free text, maybe ending in `#`.
fn topic_filter() -> impl Strategy<Value = Utf8Bytes> {
    let level = prop_oneof![Just(String::from("+")), "[^\\x00+#/]{0,6}"];
    (vec(level, 0..5), any::<bool>())
        .prop_map(|(mut levels, multi_level)| {
            if multi_level {
                levels.push(String::from("#"));
            }
            levels.join("/")
        })
        .prop_filter("a filter has at least one character", |f| !f.is_empty())
        .prop_map(Utf8Bytes::from)
}

fn will() -> impl Strategy<Value = Will> {
    (topic_name(), binary(), qos(), any::<bool>()).prop_map(|(topic, payload, qos, retain)| Will {
        topic,
        payload,
        qos,
        retain,
    })
}

fn connect() -> impl Strategy<Value = Connect> {
    (
        string(),
        any::<u8>(),
        any::<bool>(),
        any::<u16>(),
        string(),
        option::of(will()),
        // A password only with a user name [MQTT-3.1.2-22].
        option::of((string(), option::of(binary()))),
    )
        .prop_map(
            |(protocol_name, protocol_level, clean_session, keep_alive, client_id, will, login)| {
                let (username, password) = match login {
                    Some((username, password)) => (Some(username), password),
                    None => (None, None),
                };
                Connect {
                    protocol_name,
                    protocol_level,
                    clean_session,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                }
            },
        )
}

fn connack() -> impl Strategy<Value = ConnAck> {
    (any::<bool>(), 0..=5u8).prop_map(|(session_present, code)| {
        let code = ConnectReturnCode::from_u8(code).expect("0-5 are defined");
        ConnAck {
            // Only with an acceptance [MQTT-3.2.2-4].
            session_present: session_present && code == ConnectReturnCode::Accepted,
            code,
        }
    })
}

fn publish() -> impl Strategy<Value = Publish> {
    (qos(), any::<bool>(), any::<bool>(), topic_name(), packet_id(), vec(any::<u8>(), 0..300))
        .prop_map(|(qos, dup, retain, topic, packet_id, payload)| {
            let acknowledged = qos != QoS::AtMostOnce;
            Publish {
                dup: dup && acknowledged,
                qos,
                retain,
                topic,
                packet_id: acknowledged.then_some(packet_id),
                payload: Bytes::from(payload),
            }
        })
}

fn subscribe() -> impl Strategy<Value = Subscribe> {
    (packet_id(), vec((topic_filter(), qos()), 1..=DEFAULT_MAX_TOPIC_FILTERS))
        .prop_map(|(packet_id, filters)| Subscribe { packet_id, filters })
}

fn suback() -> impl Strategy<Value = SubAck> {
    let code = prop_oneof![
        qos().prop_map(SubscribeReturnCode::Success),
        Just(SubscribeReturnCode::Failure)
    ];
    (packet_id(), vec(code, 1..=DEFAULT_MAX_TOPIC_FILTERS))
        .prop_map(|(packet_id, return_codes)| SubAck { packet_id, return_codes })
}

fn unsubscribe() -> impl Strategy<Value = Unsubscribe> {
    (packet_id(), vec(topic_filter(), 1..=DEFAULT_MAX_TOPIC_FILTERS))
        .prop_map(|(packet_id, filters)| Unsubscribe { packet_id, filters })
}

/// A valid packet of any of the 14 types.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect().prop_map(Packet::Connect),
        connack().prop_map(Packet::ConnAck),
        publish().prop_map(Packet::Publish),
        packet_id().prop_map(Packet::PubAck),
        packet_id().prop_map(Packet::PubRec),
        packet_id().prop_map(Packet::PubRel),
        packet_id().prop_map(Packet::PubComp),
        subscribe().prop_map(Packet::Subscribe),
        suback().prop_map(Packet::SubAck),
        unsubscribe().prop_map(Packet::Unsubscribe),
        packet_id().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect),
    ]
}

fn encode_all(packets: &[Packet]) -> BytesMut {
    let mut out = BytesMut::new();
    for packet in packets {
        packet.encode(&mut out).expect("strategies make valid packets");
    }
    out
}

/// Decodes into `packets` until the decoder asks for more or fails; checks that
/// asking for more consumed nothing.
fn drain(
    buf: &mut BytesMut,
    limits: &Limits,
    packets: &mut Vec<Packet>,
) -> Result<(), DecodeError> {
    loop {
        let before = buf.clone();
        match decode(buf, limits)? {
            Some(packet) => packets.push(packet),
            None => {
                assert_eq!(*buf, before, "Ok(None) consumed bytes");
                return Ok(());
            }
        }
    }
}

proptest! {
    #[test]
    fn every_packet_round_trips(packet in packet()) {
        let mut buf = encode_all(core::slice::from_ref(&packet));
        prop_assert_eq!(packet.encoded_len(), Ok(buf.len()));
        prop_assert_eq!(check(&buf, &Limits::default()), Ok(Some(buf.len())));
        prop_assert_eq!(decode(&mut buf, &Limits::default()), Ok(Some(packet)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn packets_round_trip_in_random_chunks(
        packets in vec(packet(), 1..5),
        chunk_lens in vec(1..40usize, 1..16),
    ) {
        let bytes = encode_all(&packets);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut chunks = chunk_lens.iter().cycle();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + chunks.next().copied().unwrap_or(1)).min(bytes.len());
            buf.extend_from_slice(&bytes[at..end]);
            at = end;
            drain(&mut buf, &Limits::default(), &mut decoded).expect("valid stream");
        }
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..512),
        max_remaining_length in prop_oneof![Just(DEFAULT_MAX_REMAINING_LENGTH), 0..64usize],
    ) {
        let limits = Limits { max_remaining_length, ..Limits::default() };
        let _ = drain(&mut BytesMut::from(&bytes[..]), &limits, &mut Vec::new());
    }

    /// Valid packets with a few bytes changed reach deep into every decoder; whatever
    /// still decodes must satisfy every rule the encoder checks.
    #[test]
    fn mutated_packets_never_panic_and_what_decodes_encodes(
        packets in vec(packet(), 1..3),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode_all(&packets);
        for (index, value) in mutations {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        let mut decoded = Vec::new();
        // An error is a fine outcome; the packets before it are checked.
        let _ = drain(&mut bytes, &Limits::default(), &mut decoded);
        for packet in decoded {
            prop_assert!(packet.encoded_len().is_ok(), "{:?}", packet);
        }
    }
}
