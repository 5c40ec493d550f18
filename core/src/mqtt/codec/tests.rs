//! Byte-level tests: the spec file's test vectors (TV-10, TV-14), one test per
//! decode rule named after its statement, Remaining Length boundaries, partial input.

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::fixed_header::{put_remaining_length, read_remaining_length, remaining_length_len};
use super::*;
use crate::mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe, Will,
};
use crate::mqtt::topic_rules::{TopicError, TopicName};
use crate::utf8::Utf8Bytes;

fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are non-zero")
}

/// Decodes `bytes` with the default limits.
fn decode_bytes(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    decode(&mut BytesMut::from(bytes), &Limits::default())
}

/// Decodes exactly one packet that uses every byte.
fn decode_exactly(bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet =
        decode(&mut buf, &Limits::default()).expect("valid packet").expect("complete packet");
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    packet
}

fn encode_to_vec(packet: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.encode(&mut out).expect("encodable packet");
    assert_eq!(packet.encoded_len(), Ok(out.len()));
    out.to_vec()
}

/// Encodes and expects `error`, with nothing written.
fn assert_encode_error(packet: Packet, error: EncodeError) {
    let mut out = BytesMut::new();
    assert_eq!(packet.encode(&mut out), Err(error.clone()));
    assert!(out.is_empty());
    assert_eq!(packet.encoded_len(), Err(error));
}

fn publish(qos: QoS, packet_id: Option<u16>, topic: &str) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: TopicName::new(topic).unwrap(),
        packet_id: packet_id.map(pid),
        payload: Bytes::new(),
    }
}

// ---------------------------------------------------------------------------------
// Test vectors

/// TV-10: the CONNECT a device sends with a SAS token.
fn tv10_connect_bytes() -> Vec<u8> {
    [
        &[0x10][..],   // CONNECT, flags 0000
        &[0x73],       // Remaining Length 115
        &[0x00, 0x04], // Protocol Name length 4
        b"MQTT",       //   "MQTT"
        &[0x04],       // Protocol Level 4
        &[0xC0],       // flags: User Name, Password; no Will; Clean Session 0
        &[0x00, 0x3C], // Keep Alive 60 s
        &[0x00, 0x07], // Client Identifier length 7
        b"device1",    //   "device1"
        &[0x00, 0x37], // User Name length 55
        b"myhub.azure-devices.net/device1/?api-version=2021-04-12",
        &[0x00, 0x25], // Password length 37
        b"SharedAccessSignature sr=x&sig=y&se=1",
    ]
    .concat()
}

fn tv10_connect() -> Connect {
    Connect {
        protocol_name: Utf8Bytes::from_static("MQTT"),
        protocol_level: 4,
        clean_session: false,
        keep_alive: 60,
        client_id: Utf8Bytes::from_static("device1"),
        will: None,
        username: Some(Utf8Bytes::from_static(
            "myhub.azure-devices.net/device1/?api-version=2021-04-12",
        )),
        password: Some(Bytes::from_static(b"SharedAccessSignature sr=x&sig=y&se=1")),
    }
}

#[test]
fn tv10_connect_encodes_to_the_117_bytes() {
    let bytes = encode_to_vec(&Packet::Connect(tv10_connect()));
    assert_eq!(bytes.len(), 117);
    assert_eq!(bytes, tv10_connect_bytes());
}

#[test]
fn tv10_connect_decodes_to_its_fields() {
    let Packet::Connect(connect) = decode_exactly(&tv10_connect_bytes()) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol_name, Connect::PROTOCOL_NAME);
    assert_eq!(connect.protocol_level, Connect::PROTOCOL_LEVEL);
    assert!(!connect.clean_session);
    assert_eq!(connect.keep_alive, 60);
    assert_eq!(connect.client_id, "device1");
    assert_eq!(connect.will, None);
    assert_eq!(
        connect.username.as_deref(),
        Some("myhub.azure-devices.net/device1/?api-version=2021-04-12")
    );
    assert_eq!(connect.password.as_deref(), Some(&b"SharedAccessSignature sr=x&sig=y&se=1"[..]));
    assert_eq!(connect, tv10_connect());
}

/// TV-10's three CONNACKs: accepted, accepted with a session, not authorized.
const TV10_CONNACKS: [([u8; 4], bool, ConnectReturnCode); 3] = [
    // CONNACK, length 2, no flags, 0x00 Accepted
    ([0x20, 0x02, 0x00, 0x00], false, ConnectReturnCode::Accepted),
    // CONNACK, length 2, Session Present, 0x00 Accepted
    ([0x20, 0x02, 0x01, 0x00], true, ConnectReturnCode::Accepted),
    // CONNACK, length 2, no flags, 0x05 Not authorized
    ([0x20, 0x02, 0x00, 0x05], false, ConnectReturnCode::NotAuthorized),
];

#[test]
fn tv10_connack_forms_round_trip() {
    for (bytes, session_present, code) in TV10_CONNACKS {
        let packet = Packet::ConnAck(ConnAck { session_present, code });
        assert_eq!(decode_exactly(&bytes), packet);
        assert_eq!(encode_to_vec(&packet), bytes);
    }
}

/// TV-14: the C2D SUBSCRIBE.
fn tv14_subscribe_bytes() -> Vec<u8> {
    [
        &[0x82][..],   // SUBSCRIBE, flags 0010
        &[0x2B],       // Remaining Length 43
        &[0x00, 0x01], // Packet Identifier 1
        &[0x00, 0x26], // Topic Filter length 38
        b"devices/device1/messages/devicebound/#",
        &[0x01], // Requested QoS 1
    ]
    .concat()
}

#[test]
fn tv14_subscribe_round_trips() {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        filters: alloc::vec![(
            Utf8Bytes::from_static("devices/device1/messages/devicebound/#"),
            QoS::AtLeastOnce,
        )],
    });
    assert_eq!(decode_exactly(&tv14_subscribe_bytes()), packet);
    assert_eq!(encode_to_vec(&packet), tv14_subscribe_bytes());
}

/// TV-14's SUBACKs: granted QoS 1, and failure.
const TV14_SUBACKS: [([u8; 5], SubscribeReturnCode); 2] = [
    // SUBACK, length 3, Packet Identifier 1, Success - Maximum QoS 1
    ([0x90, 0x03, 0x00, 0x01, 0x01], SubscribeReturnCode::Success(QoS::AtLeastOnce)),
    // SUBACK, length 3, Packet Identifier 1, Failure
    ([0x90, 0x03, 0x00, 0x01, 0x80], SubscribeReturnCode::Failure),
];

#[test]
fn tv14_suback_forms_round_trip() {
    for (bytes, code) in TV14_SUBACKS {
        let packet = Packet::SubAck(SubAck { packet_id: pid(1), return_codes: alloc::vec![code] });
        assert_eq!(decode_exactly(&bytes), packet);
        assert_eq!(encode_to_vec(&packet), bytes);
    }
}

/// TV-14: D2C telemetry at QoS 1.
fn tv14_publish_bytes() -> Vec<u8> {
    [
        &[0x32][..],   // PUBLISH, DUP 0, QoS 1, RETAIN 0
        &[0x35],       // Remaining Length 53
        &[0x00, 0x2A], // Topic Name length 42
        b"devices/device1/messages/events/%24.mid=m1",
        &[0x00, 0x02], // Packet Identifier 2
        br#"{"t":1}"#, // payload, 7 bytes
    ]
    .concat()
}

fn tv14_publish() -> Packet {
    Packet::Publish(Publish {
        payload: Bytes::from_static(br#"{"t":1}"#),
        ..publish(QoS::AtLeastOnce, Some(2), "devices/device1/messages/events/%24.mid=m1")
    })
}

/// TV-14: PUBACK, length 2, Packet Identifier 2.
const TV14_PUBACK: [u8; 4] = [0x40, 0x02, 0x00, 0x02];

#[test]
fn tv14_publish_and_puback_round_trip() {
    assert_eq!(decode_exactly(&tv14_publish_bytes()), tv14_publish());
    assert_eq!(encode_to_vec(&tv14_publish()), tv14_publish_bytes());
    assert_eq!(decode_exactly(&TV14_PUBACK), Packet::PubAck(pid(2)));
    assert_eq!(encode_to_vec(&Packet::PubAck(pid(2))), TV14_PUBACK);
}

#[test]
fn decoded_strings_and_payload_share_the_receive_buffer() {
    let bytes = tv14_publish_bytes();
    let mut buf = BytesMut::from(&bytes[..]);
    let start = buf.as_ptr() as usize;
    let Some(Packet::Publish(publish)) = decode(&mut buf, &Limits::default()).unwrap() else {
        panic!("not a PUBLISH");
    };
    // Topic at offset 4 (after fixed header and length prefix), payload after the id.
    assert_eq!(publish.topic.as_ptr() as usize - start, 4);
    assert_eq!(publish.payload.as_ptr() as usize - start, bytes.len() - 7);
}

// ---------------------------------------------------------------------------------
// The other packets' layouts

#[test]
fn packets_without_payload_have_their_table_2_2_bytes() {
    let cases: [(Packet, &[u8]); 8] = [
        (Packet::PubRec(pid(7)), &[0x50, 0x02, 0x00, 0x07]),
        // PUBREL carries flags 0010 [MQTT-3.6.1-1].
        (Packet::PubRel(pid(7)), &[0x62, 0x02, 0x00, 0x07]),
        (Packet::PubComp(pid(7)), &[0x70, 0x02, 0x00, 0x07]),
        (Packet::UnsubAck(pid(0x0102)), &[0xB0, 0x02, 0x01, 0x02]),
        (Packet::PingReq, &[0xC0, 0x00]),
        (Packet::PingResp, &[0xD0, 0x00]),
        (Packet::Disconnect, &[0xE0, 0x00]),
        (Packet::PubAck(pid(0xFFFF)), &[0x40, 0x02, 0xFF, 0xFF]),
    ];
    for (packet, bytes) in cases {
        assert_eq!(encode_to_vec(&packet), bytes, "{packet:?}");
        assert_eq!(decode_exactly(bytes), packet);
    }
}

fn unsubscribe_bytes() -> Vec<u8> {
    [
        &[0xA2][..],   // UNSUBSCRIBE, flags 0010
        &[0x0C],       // Remaining Length 12
        &[0x00, 0x03], // Packet Identifier 3
        &[0x00, 0x03], // Topic Filter length 3
        b"a/#",
        &[0x00, 0x03], // Topic Filter length 3
        b"+/b",
    ]
    .concat()
}

#[test]
fn unsubscribe_with_two_filters_round_trips() {
    let packet = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(3),
        filters: alloc::vec![Utf8Bytes::from("a/#"), Utf8Bytes::from("+/b")],
    });
    assert_eq!(decode_exactly(&unsubscribe_bytes()), packet);
    assert_eq!(encode_to_vec(&packet), unsubscribe_bytes());
}

fn connect_with_will_bytes() -> Vec<u8> {
    [
        &[0x10][..],   // CONNECT
        &[0x18],       // Remaining Length 24
        &[0x00, 0x04], // Protocol Name length 4
        b"MQTT",
        &[0x04],       // Protocol Level 4
        &[0x36],       // flags: Will Retain, Will QoS 2, Will Flag, Clean Session
        &[0x00, 0x00], // Keep Alive 0: off
        &[0x00, 0x00], // Client Identifier: empty
        &[0x00, 0x05], // Will Topic length 5
        b"w/t/x",
        &[0x00, 0x03], // Will Message length 3
        &[0x00, 0xFF, 0x01],
    ]
    .concat()
}

#[test]
fn connect_with_will_and_no_credentials_round_trips() {
    let packet = Packet::Connect(Connect {
        protocol_name: Utf8Bytes::from_static("MQTT"),
        protocol_level: 4,
        clean_session: true,
        keep_alive: 0,
        client_id: Utf8Bytes::default(),
        will: Some(Will {
            topic: TopicName::new("w/t/x").unwrap(),
            payload: Bytes::from_static(&[0x00, 0xFF, 0x01]),
            qos: QoS::ExactlyOnce,
            retain: true,
        }),
        username: None,
        password: None,
    });
    assert_eq!(decode_exactly(&connect_with_will_bytes()), packet);
    assert_eq!(encode_to_vec(&packet), connect_with_will_bytes());
}

// ---------------------------------------------------------------------------------
// Remaining Length (§2.2.3)

/// Table 2.4's boundaries and their encodings.
const REMAINING_LENGTHS: [(usize, &[u8]); 8] = [
    (0, &[0x00]),
    (127, &[0x7F]),
    (128, &[0x80, 0x01]),
    (16_383, &[0xFF, 0x7F]),
    (16_384, &[0x80, 0x80, 0x01]),
    (2_097_151, &[0xFF, 0xFF, 0x7F]),
    (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
];

#[test]
fn remaining_length_boundaries_encode_and_decode() {
    for (len, field) in REMAINING_LENGTHS {
        let mut out = BytesMut::new();
        put_remaining_length(&mut out, len);
        assert_eq!(&out[..], field, "encoding {len}");
        assert_eq!(remaining_length_len(len), field.len());
        assert_eq!(
            read_remaining_length(field, usize::MAX),
            Ok(Some((len, field.len()))),
            "decoding {len}"
        );
        // The whole fixed header, with a limit that just admits the length.
        let header = [&[0x30][..], field].concat();
        let limits = Limits { max_remaining_length: len, ..Limits::default() };
        assert_eq!(check(&header, &limits), Ok(Some(1 + field.len() + len)));
        if len > 0 {
            let below = Limits { max_remaining_length: len - 1, ..Limits::default() };
            assert!(matches!(check(&header, &below), Err(DecodeError::TooLarge { .. })));
        }
    }
}

#[test]
fn publish_at_each_remaining_length_boundary_round_trips() {
    // A QoS 0 PUBLISH to topic "t" has 3 bytes before its payload; PINGREQ covers 0.
    for (len, field) in REMAINING_LENGTHS.into_iter().skip(1).take(6) {
        let packet = Packet::Publish(Publish {
            payload: Bytes::from(alloc::vec![0xA5; len - 3]),
            ..publish(QoS::AtMostOnce, None, "t")
        });
        let bytes = encode_to_vec(&packet);
        assert_eq!(&bytes[1..1 + field.len()], field);
        let mut buf = BytesMut::from(&bytes[..]);
        let limits = Limits { max_remaining_length: len, ..Limits::default() };
        assert_eq!(decode(&mut buf, &limits), Ok(Some(packet)));
        assert!(buf.is_empty());
    }
}

#[test]
fn non_minimal_remaining_length_is_accepted() {
    // PINGREQ with its length 0 written in two bytes: allowed by 3.1.1.
    assert_eq!(decode_bytes(&[0xC0, 0x80, 0x00]), Ok(Some(Packet::PingReq)));
}

// ---------------------------------------------------------------------------------
// Partial input and limits

fn all_test_packets() -> Vec<Vec<u8>> {
    let mut packets = alloc::vec![
        tv10_connect_bytes(),
        tv14_subscribe_bytes(),
        tv14_publish_bytes(),
        TV14_PUBACK.to_vec(),
        unsubscribe_bytes(),
        connect_with_will_bytes(),
        alloc::vec![0xC0, 0x00],
    ];
    packets.extend(TV10_CONNACKS.iter().map(|(bytes, ..)| bytes.to_vec()));
    packets.extend(TV14_SUBACKS.iter().map(|(bytes, _)| bytes.to_vec()));
    packets
}

#[test]
fn every_proper_prefix_needs_more_and_consumes_nothing() {
    for bytes in all_test_packets() {
        for end in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..end]);
            assert_eq!(decode(&mut buf, &Limits::default()), Ok(None), "prefix of {end}");
            assert_eq!(&buf[..], &bytes[..end]);
        }
    }
}

#[test]
fn waiting_for_a_body_reserves_room_for_it() {
    let bytes = tv10_connect_bytes();
    let mut buf = BytesMut::from(&bytes[..2]);
    assert_eq!(decode(&mut buf, &Limits::default()), Ok(None));
    assert!(buf.capacity() >= bytes.len());
}

#[test]
fn packets_back_to_back_decode_in_order() {
    let mut buf = BytesMut::from(&[tv14_publish_bytes(), TV14_PUBACK.to_vec()].concat()[..]);
    let limits = Limits::default();
    assert_eq!(decode(&mut buf, &limits), Ok(Some(tv14_publish())));
    assert_eq!(decode(&mut buf, &limits), Ok(Some(Packet::PubAck(pid(2)))));
    assert_eq!(decode(&mut buf, &limits), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn header_announcing_200_mb_fails_at_once() {
    let size = 200 * 1024 * 1024;
    let mut header = BytesMut::from(&[0x30][..]); // PUBLISH QoS 0
    put_remaining_length(&mut header, size);
    assert_eq!(header.len(), 5);
    let max = DEFAULT_MAX_REMAINING_LENGTH;
    assert_eq!(decode(&mut header, &Limits::default()), Err(DecodeError::TooLarge { size, max }));
}

#[test]
fn header_over_the_limit_fails_with_two_bytes() {
    let limits = Limits { max_remaining_length: 100, ..Limits::default() };
    // PUBLISH, Remaining Length 101.
    assert_eq!(
        decode(&mut BytesMut::from(&[0x30, 0x65][..]), &limits),
        Err(DecodeError::TooLarge { size: 101, max: 100 })
    );
}

#[test]
fn incomplete_length_field_already_over_the_limit_fails() {
    // Three continuation bytes: at least 2 097 151 whatever follows.
    assert_eq!(
        decode_bytes(&[0x30, 0xFF, 0xFF, 0xFF]),
        Err(DecodeError::TooLarge { size: 2_097_151, max: DEFAULT_MAX_REMAINING_LENGTH })
    );
}

// ---------------------------------------------------------------------------------
// One test per decode rule, named after its statement

#[test]
fn mqtt_2_2_3_remaining_length_of_five_bytes_is_malformed() {
    // PUBLISH, then five length bytes (value 0 so far, under any limit).
    assert_eq!(
        decode_bytes(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]),
        Err(DecodeError::MalformedRemainingLength)
    );
    // Known as soon as the fourth byte still says "more follows".
    assert_eq!(
        decode_bytes(&[0x30, 0x80, 0x80, 0x80, 0x80]),
        Err(DecodeError::MalformedRemainingLength)
    );
}

#[test]
fn mqtt_2_2_1_packet_types_0_and_15_are_reserved() {
    assert_eq!(decode_bytes(&[0x00]), Err(DecodeError::InvalidPacketType { packet_type: 0 }));
    assert_eq!(
        decode_bytes(&[0xF0, 0x00]),
        Err(DecodeError::InvalidPacketType { packet_type: 15 })
    );
}

#[test]
fn mqtt_2_2_2_2_flags_outside_table_2_2_are_malformed() {
    let required = |packet_type: u8| {
        if matches!(packet_type, 6 | 8 | 10) { 2 } else { 0 }
    };
    for packet_type in (1..=14).filter(|&t| t != 3) {
        for flags in (0..16).filter(|&f| f != required(packet_type)) {
            assert_eq!(
                decode_bytes(&[packet_type << 4 | flags]),
                Err(DecodeError::ReservedFlags { packet_type, flags }),
                "type {packet_type} flags {flags}"
            );
        }
    }
}

#[test]
fn mqtt_3_6_1_1_pubrel_flags_must_be_0010() {
    // PUBREL with flags 0000.
    assert_eq!(
        decode_bytes(&[0x60, 0x02, 0x00, 0x01]),
        Err(DecodeError::ReservedFlags { packet_type: 6, flags: 0 })
    );
}

#[test]
fn mqtt_3_8_1_1_subscribe_flags_must_be_0010() {
    let mut bytes = tv14_subscribe_bytes();
    bytes[0] = 0x80; // SUBSCRIBE, flags 0000
    assert_eq!(decode_bytes(&bytes), Err(DecodeError::ReservedFlags { packet_type: 8, flags: 0 }));
}

#[test]
fn mqtt_3_10_1_1_unsubscribe_flags_must_be_0010() {
    let mut bytes = unsubscribe_bytes();
    bytes[0] = 0xA3; // UNSUBSCRIBE, flags 0011
    assert_eq!(decode_bytes(&bytes), Err(DecodeError::ReservedFlags { packet_type: 10, flags: 3 }));
}

#[test]
fn mqtt_3_14_1_1_disconnect_reserved_bits_must_be_zero() {
    assert_eq!(
        decode_bytes(&[0xE1, 0x00]),
        Err(DecodeError::ReservedFlags { packet_type: 14, flags: 1 })
    );
}

#[test]
fn mqtt_3_3_1_4_publish_qos_3_is_malformed() {
    // PUBLISH with both QoS bits, refused from the first byte.
    assert_eq!(decode_bytes(&[0x36]), Err(DecodeError::InvalidQoS));
}

#[test]
fn mqtt_3_3_1_2_dup_at_qos_0_is_malformed() {
    // PUBLISH DUP 1, QoS 0.
    assert_eq!(decode_bytes(&[0x38]), Err(DecodeError::DupAtQoS0));
}

#[test]
fn field_running_past_the_remaining_length_is_truncated() {
    let bytes = [
        0x30, 0x03, // PUBLISH QoS 0, Remaining Length 3
        0x00, 0x05, // Topic Name length 5: more than is left
        b'a',
    ];
    assert_eq!(decode_bytes(&bytes), Err(DecodeError::Truncated));
    let bytes = [
        0x32, 0x04, // PUBLISH QoS 1, Remaining Length 4
        0x00, 0x01, b'a', // Topic Name "a"
        0x00, // half a Packet Identifier
    ];
    assert_eq!(decode_bytes(&bytes), Err(DecodeError::Truncated));
}

#[test]
fn fixed_size_packet_with_a_wrong_length_fails_at_the_header() {
    // PUBACK announcing 1 and 3 bytes; PINGREQ announcing 1. No body needed to tell.
    assert_eq!(decode_bytes(&[0x40, 0x01]), Err(DecodeError::Truncated));
    assert_eq!(decode_bytes(&[0x40, 0x03]), Err(DecodeError::TrailingBytes));
    assert_eq!(decode_bytes(&[0xC0, 0x01]), Err(DecodeError::TrailingBytes));
}

#[test]
fn connect_with_bytes_after_its_last_field_is_malformed() {
    let mut bytes = tv10_connect_bytes();
    bytes[1] += 1; // Remaining Length 116
    bytes.push(0x00);
    assert_eq!(decode_bytes(&bytes), Err(DecodeError::TrailingBytes));
}

/// A CONNECT (level 4, no flags, keep-alive 0) with this Client Identifier field.
fn connect_with_client_id(id: &[u8]) -> Vec<u8> {
    let mut bytes = [
        &[0x10, 0x0C + id.len() as u8][..], // CONNECT, Remaining Length
        &[0x00, 0x04],                      // Protocol Name length 4
        b"MQTT",
        &[0x04],       // Protocol Level 4
        &[0x02],       // flags: Clean Session
        &[0x00, 0x00], // Keep Alive 0
        &[0x00, id.len() as u8],
    ]
    .concat();
    bytes.extend_from_slice(id);
    bytes
}

#[test]
fn mqtt_1_5_3_1_ill_formed_utf8_is_malformed() {
    assert_eq!(decode_bytes(&connect_with_client_id(&[b'a', 0xFF])), Err(DecodeError::InvalidUtf8));
    // U+D800 encoded as if it were a character: a surrogate.
    assert_eq!(
        decode_bytes(&connect_with_client_id(&[0xED, 0xA0, 0x80])),
        Err(DecodeError::InvalidUtf8)
    );
    // The reference CONNECT decodes, so the bytes above fail for their UTF-8 alone.
    assert!(decode_bytes(&connect_with_client_id(b"ok")).is_ok());
}

#[test]
fn mqtt_1_5_3_2_null_character_in_a_string_is_malformed() {
    assert_eq!(decode_bytes(&connect_with_client_id(b"a\0b")), Err(DecodeError::NullCharacter));
}

#[test]
fn mqtt_2_3_1_1_zero_packet_id_is_malformed() {
    let publish = [
        0x32, 0x05, // PUBLISH QoS 1, Remaining Length 5
        0x00, 0x01, b'a', // Topic Name "a"
        0x00, 0x00, // Packet Identifier 0
    ];
    let subscribe = [
        0x82, 0x06, // SUBSCRIBE, Remaining Length 6
        0x00, 0x00, // Packet Identifier 0
        0x00, 0x01, b'a', 0x00, // filter "a", QoS 0
    ];
    let unsubscribe = [
        0xA2, 0x05, // UNSUBSCRIBE, Remaining Length 5
        0x00, 0x00, // Packet Identifier 0
        0x00, 0x01, b'a', // filter "a"
    ];
    let puback = [0x40, 0x02, 0x00, 0x00];
    for bytes in [&publish[..], &subscribe, &unsubscribe, &puback] {
        assert_eq!(decode_bytes(bytes), Err(DecodeError::ZeroPacketId));
    }
}

/// A QoS 0 PUBLISH to `topic` with an empty payload.
fn publish_to(topic: &[u8]) -> Vec<u8> {
    let mut bytes = alloc::vec![0x30, 2 + topic.len() as u8, 0x00, topic.len() as u8];
    bytes.extend_from_slice(topic);
    bytes
}

/// A SUBSCRIBE (id 1) to `filter` at QoS 0.
fn subscribe_to(filter: &[u8]) -> Vec<u8> {
    let mut bytes = alloc::vec![0x82, 5 + filter.len() as u8, 0x00, 0x01, 0x00];
    bytes.push(filter.len() as u8);
    bytes.extend_from_slice(filter);
    bytes.push(0x00);
    bytes
}

#[test]
fn mqtt_4_7_3_1_empty_topic_name_and_filter_are_malformed() {
    let empty = Err(DecodeError::Topic(TopicError::Empty));
    assert_eq!(decode_bytes(&publish_to(b"")), empty);
    assert_eq!(decode_bytes(&subscribe_to(b"")), empty);
}

#[test]
fn mqtt_4_7_3_2_null_character_in_topic_is_malformed() {
    let null = Err(DecodeError::Topic(TopicError::NullCharacter));
    assert_eq!(decode_bytes(&publish_to(b"a/\0")), null);
    assert_eq!(decode_bytes(&subscribe_to(b"a/\0")), null);
}

#[test]
fn mqtt_3_3_2_2_wildcard_in_topic_name_is_malformed() {
    let wildcard = Err(DecodeError::Topic(TopicError::WildcardInName));
    assert_eq!(decode_bytes(&publish_to(b"a/+/b")), wildcard);
    assert_eq!(decode_bytes(&publish_to(b"a/#")), wildcard);
    // A Will Topic is a Topic Name too.
    let mut bytes = connect_with_will_bytes();
    let topic_at = bytes.len() - 5 - 5; // "w/t/x", then the 5-byte Will Message field
    bytes[topic_at + 2] = b'#';
    assert_eq!(decode_bytes(&bytes), wildcard);
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_not_last_is_malformed() {
    assert_eq!(
        decode_bytes(&subscribe_to(b"a/#/b")),
        Err(DecodeError::Topic(TopicError::MultiLevelWildcardMisplaced))
    );
}

#[test]
fn mqtt_4_7_1_3_single_level_wildcard_sharing_a_level_is_malformed() {
    let mut unsubscribe = unsubscribe_bytes();
    let len = unsubscribe.len();
    unsubscribe[len - 1] = b'+'; // second filter "+/+" is fine ...
    assert!(decode_bytes(&unsubscribe).is_ok());
    unsubscribe[len - 2] = b'x'; // ... "+x+" is not
    assert_eq!(
        decode_bytes(&unsubscribe),
        Err(DecodeError::Topic(TopicError::SingleLevelWildcardMisplaced))
    );
}

/// TV-10's CONNECT with other Connect Flags.
fn tv10_with_flags(flags: u8) -> Vec<u8> {
    let mut bytes = tv10_connect_bytes();
    bytes[9] = flags;
    bytes
}

#[test]
fn mqtt_3_1_2_3_connect_reserved_flag_is_malformed() {
    assert_eq!(decode_bytes(&tv10_with_flags(0xC1)), Err(DecodeError::ConnectReservedFlag));
}

#[test]
fn mqtt_3_1_2_11_will_qos_or_retain_without_will_is_malformed() {
    // Will QoS 1 [MQTT-3.1.2-13], Will QoS 2, Will Retain [MQTT-3.1.2-15]; no Will Flag.
    for flags in [0xC8, 0xD0, 0xE0] {
        assert_eq!(
            decode_bytes(&tv10_with_flags(flags)),
            Err(DecodeError::WillFlagsWithoutWill),
            "{flags:#x}"
        );
    }
}

#[test]
fn mqtt_3_1_2_14_will_qos_3_is_malformed() {
    let mut bytes = connect_with_will_bytes();
    bytes[9] = 0x3E; // Will Retain, Will QoS 3, Will Flag, Clean Session
    assert_eq!(decode_bytes(&bytes), Err(DecodeError::InvalidWillQoS));
}

#[test]
fn mqtt_3_1_2_22_password_without_username_is_malformed() {
    assert_eq!(decode_bytes(&tv10_with_flags(0x40)), Err(DecodeError::PasswordWithoutUsername));
}

#[test]
fn mqtt_3_1_2_1_protocol_name_and_level_are_decoded_as_sent() {
    // An MQTT 3.1 CONNECT: same layout, other name and level; the session answers it.
    let bytes = [
        &[0x10, 0x0F][..], // CONNECT, Remaining Length 15
        &[0x00, 0x06],     // Protocol Name length 6
        b"MQIsdp",
        &[0x03],       // Protocol Level 3
        &[0x02],       // flags: Clean Session
        &[0x00, 0x0A], // Keep Alive 10 s
        &[0x00, 0x01], // Client Identifier length 1
        b"c",
    ]
    .concat();
    let Packet::Connect(connect) = decode_exactly(&bytes) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol_name, "MQIsdp");
    assert_eq!(connect.protocol_level, 3);
    assert_eq!(connect.client_id, "c");
}

#[test]
fn mqtt_3_1_2_2_other_level_with_another_layout_is_unsupported_level() {
    let mqtt5 = [
        &[0x10, 0x0E][..], // CONNECT, Remaining Length 14
        &[0x00, 0x04],     // Protocol Name length 4
        b"MQTT",
        &[0x05],       // Protocol Level 5
        &[0x02],       // flags: Clean Start
        &[0x00, 0x3C], // Keep Alive 60 s
        &[0x00],       // MQTT 5 Properties: none
        &[0x00, 0x01], // Client Identifier length 1
        b"c",
    ]
    .concat();
    assert_eq!(decode_bytes(&mqtt5), Err(DecodeError::UnsupportedProtocolLevel { level: 5 }));
    // The same bytes at level 4 are plainly malformed.
    let mut level4 = mqtt5;
    level4[8] = 4;
    assert_eq!(decode_bytes(&level4), Err(DecodeError::TrailingBytes));
}

#[test]
fn connack_reserved_acknowledge_flags_are_malformed() {
    // §3.2.2.1: bits 7–1 reserved; here bit 1.
    assert_eq!(
        decode_bytes(&[0x20, 0x02, 0x02, 0x00]),
        Err(DecodeError::ConnAckReservedFlags { flags: 2 })
    );
}

#[test]
fn connack_reserved_return_code_is_malformed() {
    // §3.2.2.3: 6–255 reserved.
    for code in [6, 0x80, 0xFF] {
        assert_eq!(
            decode_bytes(&[0x20, 0x02, 0x00, code]),
            Err(DecodeError::InvalidConnectReturnCode { code })
        );
    }
}

#[test]
fn mqtt_3_2_2_4_session_present_with_refusal_is_malformed() {
    // Session Present with 0x05 Not authorized.
    assert_eq!(
        decode_bytes(&[0x20, 0x02, 0x01, 0x05]),
        Err(DecodeError::SessionPresentWithRefusal)
    );
}

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters_is_malformed() {
    // SUBSCRIBE, Remaining Length 2, Packet Identifier 1, no payload.
    assert_eq!(decode_bytes(&[0x82, 0x02, 0x00, 0x01]), Err(DecodeError::NoSubscriptions));
}

#[test]
fn mqtt_3_8_3_4_requested_qos_3_or_reserved_bits_are_malformed() {
    for byte in [0x03, 0x04, 0x81] {
        let mut bytes = subscribe_to(b"a");
        *bytes.last_mut().unwrap() = byte;
        assert_eq!(decode_bytes(&bytes), Err(DecodeError::InvalidRequestedQoS { byte }));
    }
}

#[test]
fn mqtt_3_8_4_5_suback_without_return_codes_is_malformed() {
    // SUBACK, Remaining Length 2, Packet Identifier 1, no return codes.
    assert_eq!(decode_bytes(&[0x90, 0x02, 0x00, 0x01]), Err(DecodeError::NoReturnCodes));
}

#[test]
fn mqtt_3_9_3_2_reserved_suback_return_code_is_malformed() {
    for code in [0x03, 0x7F, 0x81] {
        assert_eq!(
            decode_bytes(&[0x90, 0x03, 0x00, 0x01, code]),
            Err(DecodeError::InvalidSubAckReturnCode { code })
        );
    }
}

#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters_is_malformed() {
    // UNSUBSCRIBE, Remaining Length 2, Packet Identifier 1, no payload.
    assert_eq!(decode_bytes(&[0xA2, 0x02, 0x00, 0x01]), Err(DecodeError::NoUnsubscriptions));
}

// ---------------------------------------------------------------------------------
// Encoding refuses what the standard forbids

#[test]
fn encode_refuses_fields_longer_than_65535_bytes() {
    let mut connect = tv10_connect();
    connect.client_id = Utf8Bytes::from("x".repeat(65_536));
    assert_encode_error(
        Packet::Connect(connect.clone()),
        EncodeError::FieldTooLong { len: 65_536 },
    );
    connect.client_id = Utf8Bytes::from("x".repeat(65_535));
    assert!(Packet::Connect(connect).encoded_len().is_ok());
}

#[test]
fn encode_refuses_remaining_length_over_268435455() {
    // Topic "a" takes 3 bytes; the zeroed payload is allocated but never touched.
    let at_most = |payload_len: usize| {
        Packet::Publish(Publish {
            payload: Bytes::from(alloc::vec![0; payload_len]),
            ..publish(QoS::AtMostOnce, None, "a")
        })
    };
    assert_eq!(at_most(MAX_REMAINING_LENGTH - 3).encoded_len(), Ok(1 + 4 + MAX_REMAINING_LENGTH));
    assert_encode_error(
        at_most(MAX_REMAINING_LENGTH - 2),
        EncodeError::PacketTooLarge { len: MAX_REMAINING_LENGTH + 1 },
    );
}

#[test]
fn mqtt_1_5_3_2_encode_refuses_null_character() {
    let mut connect = tv10_connect();
    connect.username = Some(Utf8Bytes::from("a\0"));
    assert_encode_error(Packet::Connect(connect), EncodeError::NullCharacter);
}

#[test]
fn mqtt_3_3_2_2_no_topic_name_to_encode_holds_a_wildcard() {
    // The check is made once, when the name is made; encoding trusts it.
    assert_eq!(TopicName::new("a/+"), Err(TopicError::WildcardInName));
    assert_eq!(TopicName::new("a/#"), Err(TopicError::WildcardInName));
    assert_eq!(TopicName::new(""), Err(TopicError::Empty));
}

#[test]
fn mqtt_4_7_1_2_encode_refuses_invalid_topic_filter() {
    assert_encode_error(
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(1),
            filters: alloc::vec![Utf8Bytes::from("#/a")],
        }),
        EncodeError::Topic(TopicError::MultiLevelWildcardMisplaced),
    );
}

#[test]
fn mqtt_2_3_1_5_encode_refuses_packet_id_at_qos_0() {
    assert_encode_error(
        Packet::Publish(publish(QoS::AtMostOnce, Some(1), "a")),
        EncodeError::PacketIdAtQoS0,
    );
}

#[test]
fn mqtt_2_3_1_1_encode_refuses_qos_1_without_packet_id() {
    assert_encode_error(
        Packet::Publish(publish(QoS::AtLeastOnce, None, "a")),
        EncodeError::MissingPacketId,
    );
}

#[test]
fn mqtt_3_3_1_2_encode_refuses_dup_at_qos_0() {
    let publish = Publish { dup: true, ..publish(QoS::AtMostOnce, None, "a") };
    assert_encode_error(Packet::Publish(publish), EncodeError::DupAtQoS0);
}

#[test]
fn mqtt_3_1_2_22_encode_refuses_password_without_username() {
    let mut connect = tv10_connect();
    connect.username = None;
    assert_encode_error(Packet::Connect(connect), EncodeError::PasswordWithoutUsername);
}

#[test]
fn mqtt_3_2_2_4_encode_refuses_session_present_with_refusal() {
    assert_encode_error(
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: ConnectReturnCode::ServerUnavailable,
        }),
        EncodeError::SessionPresentWithRefusal,
    );
}

#[test]
fn encode_refuses_empty_subscribe_unsubscribe_and_suback() {
    assert_encode_error(
        Packet::Subscribe(Subscribe { packet_id: pid(1), filters: Vec::new() }),
        EncodeError::NoSubscriptions,
    );
    assert_encode_error(
        Packet::Unsubscribe(Unsubscribe { packet_id: pid(1), filters: Vec::new() }),
        EncodeError::NoUnsubscriptions,
    );
    assert_encode_error(
        Packet::SubAck(SubAck { packet_id: pid(1), return_codes: Vec::new() }),
        EncodeError::NoReturnCodes,
    );
}

#[test]
fn encode_appends_after_existing_bytes() {
    let mut out = BytesMut::from(&TV14_PUBACK[..]);
    tv14_publish().encode(&mut out).unwrap();
    assert_eq!(&out[..4], TV14_PUBACK);
    assert_eq!(&out[4..], &tv14_publish_bytes()[..]);
}

#[test]
fn more_topic_filters_than_the_limit_are_refused_before_they_are_collected() {
    let limits = Limits { max_topic_filters: 2, ..Limits::default() };
    // SUBSCRIBE pid 1 with three one-byte filters "a", "b", "c" at QoS 0.
    let bytes = [
        0x82, 0x0e, // SUBSCRIBE, remaining length 14
        0x00, 0x01, // packet id 1
        0x00, 0x01, b'a', 0x00, // "a" QoS 0
        0x00, 0x01, b'b', 0x00, // "b" QoS 0
        0x00, 0x01, b'c', 0x00, // "c" QoS 0
    ];
    assert_eq!(
        decode(&mut BytesMut::from(&bytes[..]), &limits),
        Err(DecodeError::TooManyTopicFilters { max: 2 })
    );
    // UNSUBSCRIBE pid 1 with the same three filters.
    let bytes = [0xa2, 0x0b, 0x00, 0x01, 0x00, 0x01, b'a', 0x00, 0x01, b'b', 0x00, 0x01, b'c'];
    assert_eq!(
        decode(&mut BytesMut::from(&bytes[..]), &limits),
        Err(DecodeError::TooManyTopicFilters { max: 2 })
    );
    // SUBACK pid 1 with three return codes.
    let bytes = [0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00];
    assert_eq!(
        decode(&mut BytesMut::from(&bytes[..]), &limits),
        Err(DecodeError::TooManyTopicFilters { max: 2 })
    );
}

#[test]
fn mqtt_1_5_3_3_zero_width_no_break_space_is_kept() {
    let bytes = [
        0x30, 0x06, // PUBLISH, QoS 0, Remaining Length 6
        0x00, 0x04, // Topic Name length 4
        0xEF, 0xBB, 0xBF, // U+FEFF, which looks like a byte order mark
        b'a', // the rest of the topic
    ];
    let Packet::Publish(publish) = decode_exactly(&bytes) else { panic!("not a PUBLISH") };
    assert_eq!(publish.topic, "\u{FEFF}a");
    assert!(publish.payload.is_empty());
}

/// A CONNECT with the Will Flag and no credentials whose Will Topic is `topic`.
fn connect_with_will_topic(topic: &[u8]) -> Vec<u8> {
    let mut bytes = [
        &[0x10, 0x11 + topic.len() as u8][..], // CONNECT, Remaining Length
        &[0x00, 0x04],                         // Protocol Name length 4
        b"MQTT",
        &[0x04],       // Protocol Level 4
        &[0x06],       // flags: Will Flag, Clean Session
        &[0x00, 0x00], // Keep Alive 0
        &[0x00, 0x01], // Client Identifier length 1
        b"c",
        &[0x00, topic.len() as u8], // Will Topic length
    ]
    .concat();
    bytes.extend_from_slice(topic);
    bytes.extend_from_slice(&[0x00, 0x00]); // Will Message, empty
    bytes
}

#[test]
fn mqtt_3_1_3_10_will_topic_must_be_utf8() {
    assert_eq!(
        decode_bytes(&connect_with_will_topic(&[0xC3, 0x28])),
        Err(DecodeError::InvalidUtf8)
    );
    let Ok(Some(Packet::Connect(connect))) = decode_bytes(&connect_with_will_topic(b"ab")) else {
        panic!("the reference CONNECT does not decode");
    };
    assert_eq!(connect.will.map(|w| w.topic), Some(TopicName::new("ab").unwrap()));
}

/// A CONNECT with a User Name and no password.
fn connect_with_user_name(name: &[u8]) -> Vec<u8> {
    let mut bytes = [
        &[0x10, 0x0F + name.len() as u8][..], // CONNECT, Remaining Length
        &[0x00, 0x04],                        // Protocol Name length 4
        b"MQTT",
        &[0x04],       // Protocol Level 4
        &[0x82],       // flags: User Name Flag, Clean Session
        &[0x00, 0x00], // Keep Alive 0
        &[0x00, 0x01], // Client Identifier length 1
        b"c",
        &[0x00, name.len() as u8], // User Name length
    ]
    .concat();
    bytes.extend_from_slice(name);
    bytes
}

#[test]
fn mqtt_3_1_3_11_user_name_must_be_utf8() {
    assert_eq!(decode_bytes(&connect_with_user_name(&[0xC3, 0x28])), Err(DecodeError::InvalidUtf8));
    let Ok(Some(Packet::Connect(connect))) = decode_bytes(&connect_with_user_name(b"u")) else {
        panic!("the reference CONNECT does not decode");
    };
    assert_eq!(connect.username, Some(Utf8Bytes::from_static("u")));
}

#[test]
fn mqtt_3_8_3_1_subscribe_filter_must_be_utf8() {
    let subscribe = |filter: &[u8]| {
        let mut bytes = alloc::vec![
            0x82,                      // SUBSCRIBE, flags 0010
            0x05 + filter.len() as u8, // Remaining Length
            0x00,
            0x01, // Packet Identifier 1
            0x00,
            filter.len() as u8, // Topic Filter length
        ];
        bytes.extend_from_slice(filter);
        bytes.push(0x01); // Requested QoS 1
        bytes
    };
    assert_eq!(decode_bytes(&subscribe(&[0xC3, 0x28])), Err(DecodeError::InvalidUtf8));
    assert!(matches!(decode_bytes(&subscribe(b"a/#")), Ok(Some(Packet::Subscribe(_)))));
}

#[test]
fn mqtt_3_10_3_1_unsubscribe_filter_must_be_utf8() {
    let unsubscribe = |filter: &[u8]| {
        let mut bytes = alloc::vec![
            0xA2,                      // UNSUBSCRIBE, flags 0010
            0x04 + filter.len() as u8, // Remaining Length
            0x00,
            0x01, // Packet Identifier 1
            0x00,
            filter.len() as u8, // Topic Filter length
        ];
        bytes.extend_from_slice(filter);
        bytes
    };
    assert_eq!(decode_bytes(&unsubscribe(&[0xC3, 0x28])), Err(DecodeError::InvalidUtf8));
    assert!(matches!(decode_bytes(&unsubscribe(b"a/+")), Ok(Some(Packet::Unsubscribe(_)))));
}
