//! Unit tests: sections as byte literals, each rule of §3.2 enforced, spec file
//! §3/§5.5 mapping and TV-18.

use alloc::vec;
use bytes::{Bytes, BytesMut};

use super::*;
use crate::amqp::types::{Limits, Symbol, Value};
use crate::iothub::{self, LockToken};
use crate::utf8::Utf8Bytes;

fn decode(bytes: &'static [u8]) -> Result<Message, MessageError> {
    Message::decode(&Bytes::from_static(bytes), &Limits::default())
}

/// TV-18's GUID, RFC 4122 order.
const GUID: [u8; 16] = [
    0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f,
];

#[test]
fn s3_2_header_properties_and_data_decode() {
    let m = decode(&[
        0x00, 0x53, 0x70, // header
        0xc0, 0x04, 0x02, // list8, size 4, count 2
        0x41, // durable true
        0x50, 0x07, // priority ubyte 7
        0x00, 0x53, 0x73, // properties
        0xc0, 0x05, 0x01, // list8, size 5, count 1
        0xa1, 0x02, b'm', b'1', // message-id str8 "m1"
        0x00, 0x53, 0x75, // data
        0xa0, 0x02, b'h', b'i', // vbin8 "hi"
    ])
    .unwrap();
    assert_eq!(m.header, Some(Header { durable: true, priority: 7, ..Header::default() }));
    let id = m.properties.unwrap().message_id;
    assert_eq!(id, Some(MessageId::String(Utf8Bytes::from("m1"))));
    assert_eq!(m.body, Body::Data(vec![Bytes::from_static(b"hi")]));
}

#[test]
fn s3_2_1_header_null_priority_defaults_to_4() {
    let m = decode(&[0x00, 0x53, 0x70, 0x45]).unwrap(); // header, list0
    assert_eq!(m.header.unwrap().priority, 4);
}

#[test]
fn s3_2_sections_out_of_order_are_refused() {
    let e = decode(&[
        0x00, 0x53, 0x73, 0x45, // properties, list0
        0x00, 0x53, 0x70, 0x45, // header, list0
    ]);
    assert_eq!(e, Err(MessageError::OutOfOrder { section: "header", after: "properties" }));
}

#[test]
fn s3_2_duplicate_section_is_refused() {
    let e = decode(&[0x00, 0x53, 0x70, 0x45, 0x00, 0x53, 0x70, 0x45]);
    assert_eq!(e, Err(MessageError::Duplicate { section: "header" }));
}

#[test]
fn s3_2_unknown_section_is_refused() {
    let e = decode(&[0x00, 0x53, 0x79, 0x45]);
    assert!(matches!(e, Err(MessageError::UnknownSection { .. })));
}

#[test]
fn s3_2_a_section_is_a_described_value() {
    assert_eq!(decode(&[0x45]), Err(MessageError::NotASection { found: "list" }));
}

#[test]
fn s3_2_data_then_amqp_value_is_a_mixed_body() {
    let e = decode(&[
        0x00, 0x53, 0x75, 0xa0, 0x00, // data, empty
        0x00, 0x53, 0x77, 0x40, // amqp-value null
    ]);
    assert_eq!(e, Err(MessageError::MixedBody { section: "amqp-value", body: "data" }));
}

#[test]
fn s3_2_two_amqp_values_are_refused() {
    let e = decode(&[0x00, 0x53, 0x77, 0x40, 0x00, 0x53, 0x77, 0x40]);
    assert_eq!(e, Err(MessageError::MixedBody { section: "amqp-value", body: "amqp-value" }));
}

#[test]
fn s3_2_6_data_sections_are_slices_of_the_payload() {
    let payload = Bytes::from_static(&[
        0x00, 0x53, 0x75, 0xa0, 0x01, b'x', 0x00, 0x53, 0x75, 0xa0, 0x01, b'y',
    ]);
    let m = Message::decode(&payload, &Limits::default()).unwrap();
    let Body::Data(data) = m.body else { panic!("not data") };
    assert_eq!(data.len(), 2);
    let inside = payload.as_ptr_range();
    assert!(inside.contains(&data[0].as_ptr()) && inside.contains(&data[1].as_ptr()));
}

#[test]
fn s3_2_10_annotation_keys_are_symbols_or_ulongs() {
    let e = decode(&[0x00, 0x53, 0x72, 0xc1, 0x03, 0x02, 0x41, 0x40]); // key true
    assert_eq!(e, Err(MessageError::AnnotationKey { found: "boolean" }));
    let ok = decode(&[0x00, 0x53, 0x72, 0xc1, 0x04, 0x02, 0x53, 0x01, 0x40]); // key ulong 1
    assert!(ok.is_ok());
}

/// §3.2.10: an `x-opt-` annotation not understood is ignored: the message
/// decodes and maps with its body.
#[test]
fn s3_2_10_an_x_opt_annotation_not_understood_is_ignored() {
    let m = decode(&[
        0x00, 0x53, 0x72, 0xc1, 0x0b, 0x02, // message-annotations, map8 size 11 count 2
        0xa3, 0x07, b'x', b'-', b'o', b'p', b't', b'-', b'z', // key: sym8 "x-opt-z"
        0x40, // value: null
        0x00, 0x53, 0x75, 0xa0, 0x02, b'h', b'i', // data: vbin8 "hi"
    ])
    .expect("decodes");
    let (mapped, _) = to_iothub(&m).expect("maps");
    assert_eq!(&mapped.body[..], b"hi");
}

/// §3.2.4: content-type is set only when the application named one: an
/// opaque body without it goes out with no content-type (nor content-encoding).
#[test]
fn s3_2_4_content_type_is_not_set_unless_the_application_set_it() {
    let m = iothub::Message::new(Bytes::from_static(&[0xde, 0xad]));
    let amqp = from_iothub(&m, &HubStamps::default()).unwrap();
    if let Some(p) = &amqp.properties {
        assert_eq!((&p.content_type, &p.content_encoding), (&None, &None));
    }
    let mut out = BytesMut::new();
    amqp.encode(&mut out).unwrap();
    let again = Message::decode(&out.freeze(), &Limits::default()).unwrap();
    assert!(again.properties.is_none_or(|p| p.content_type.is_none()));
}

#[test]
fn s3_2_5_application_property_keys_are_strings() {
    let e = decode(&[0x00, 0x53, 0x74, 0xc1, 0x05, 0x02, 0xa3, 0x01, b'k', 0x40]); // sym key
    assert_eq!(e, Err(MessageError::ApplicationPropertyKey { found: "symbol" }));
}

#[test]
fn s3_2_5_application_property_values_are_simple() {
    let e = decode(&[0x00, 0x53, 0x74, 0xc1, 0x05, 0x02, 0xa1, 0x01, b'k', 0x45]); // list0 value
    assert!(matches!(e, Err(MessageError::ApplicationPropertyValue { found: "list", .. })));
}

#[test]
fn s1_6_23_duplicate_application_property_is_refused() {
    let e = decode(&[
        0x00, 0x53, 0x74, 0xc1, 0x09, 0x04, // app props, map8 size 9 count 4
        0xa1, 0x01, b'k', 0x40, 0xa1, 0x01, b'k', 0x40,
    ]);
    assert_eq!(e, Err(MessageError::DuplicateKey { section: "application-properties" }));
}

#[test]
fn s3_2_4_message_id_of_another_type_is_refused() {
    let e = decode(&[0x00, 0x53, 0x73, 0xc0, 0x02, 0x01, 0x41]); // message-id true
    assert!(matches!(e, Err(MessageError::Field(FieldError { field: "message-id", .. }))));
}

#[test]
fn batch_inner_messages_may_put_properties_first() {
    // The C SDK's order (spec file §5.4): properties, application-properties, data.
    let inner: &[u8] = &[
        0x00, 0x53, 0x73, 0x45, 0x00, 0x53, 0x74, 0xc1, 0x01, 0x00, 0x00, 0x53, 0x75, 0xa0, 0x01,
        b'a',
    ];
    let mut outer = BytesMut::new();
    outer.extend_from_slice(&[0x00, 0x53, 0x75, 0xa0, inner.len() as u8]);
    outer.extend_from_slice(inner);
    let batch = decode_batch(&outer.freeze(), &Limits::default()).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].body, Body::Data(vec![Bytes::from_static(b"a")]));
    assert_eq!(crate::amqp::performative::MESSAGE_FORMAT_BATCH, 0x8001_3700); // TV-18
}

#[test]
fn tv18_lock_token_delivery_tag_is_dotnet_order() {
    let tag = [
        0x2e, 0x0c, 0x1f, 0x6a, 0x2c, 0x1b, 0x3e, 0x4d, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e,
        0x0f,
    ];
    assert_eq!(delivery_tag(&LockToken::from_guid(GUID)), Some(tag));
    assert_eq!(lock_token_from_tag(&tag), Some(LockToken::from_guid(GUID)));
    assert_eq!(lock_token_from_tag(&tag[1..]), None);
}

#[test]
fn spec_5_5_c2d_maps_to_amqp_and_back() {
    let mut m = iothub::Message::new(&b"{\"x\":1}"[..]);
    m.message_id = Some("msg-42".into());
    m.correlation_id = Some("6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f".into());
    m.to = Some("/devices/device1/messages/deviceBound".into());
    m.user_id = Some("myhub".into());
    m.content_type = Some("application/json".into());
    m.expiry = Some(crate::time::Timestamp::from_millis(1_704_168_245_000));
    m.enqueued_time = Some(crate::time::Timestamp::from_millis(1_704_164_645_000));
    m.ack = Some(iothub::Ack::Full);
    m.properties.set("color", "blue");
    let stamps = HubStamps {
        lock_token: Some(LockToken::from_guid(GUID)),
        sequence_number: Some(17),
        delivery_count: Some(0),
        ..HubStamps::default()
    };
    let amqp = from_iothub(&m, &stamps).unwrap();
    let p = amqp.properties.as_ref().unwrap();
    assert_eq!(p.correlation_id, Some(MessageId::Uuid(GUID)));
    assert_eq!(p.user_id, Some(Bytes::from_static(b"myhub")));
    let a = amqp.message_annotations.as_ref().unwrap();
    assert_eq!(
        a.get(LOCK_TOKEN),
        Some(&Value::String(Utf8Bytes::from("6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f")))
    );
    assert_eq!(a.get(DELIVERY_COUNT), Some(&Value::Ubyte(0)));
    let app = amqp.application_properties.as_ref().unwrap();
    assert_eq!(app.get(ACK), Some(&Value::String(Utf8Bytes::from("full"))));
    let mut out = BytesMut::new();
    amqp.encode(&mut out).unwrap();
    let again = Message::decode(&out.freeze(), &Limits::default()).unwrap();
    assert_eq!(to_iothub(&again).unwrap(), (m, stamps));
}

#[test]
fn spec_3_d2c_annotations_and_int_property_map_to_iothub() {
    let mut a = Annotations::new();
    a.insert(Symbol::from_static(CONNECTION_DEVICE_ID), Value::String(Utf8Bytes::from("device1")));
    let mut app = ApplicationProperties::new();
    app.insert("IoThub-status", Value::Int(200)).unwrap();
    let mut amqp = Message::new(Body::Data(vec![Bytes::from_static(b"ok")]));
    amqp.message_annotations = Some(a);
    amqp.application_properties = Some(app);
    let (m, stamps) = to_iothub(&amqp).unwrap();
    assert_eq!(stamps.connection_device_id.as_deref(), Some("device1"));
    assert_eq!(m.properties.get("IoThub-status"), Some(Some("200")));
    assert_eq!(m.body, Bytes::from_static(b"ok"));
}

#[test]
fn spec_5_5_amqp_value_body_does_not_map() {
    let amqp = Message::new(Body::Value(Value::Null));
    assert_eq!(to_iothub(&amqp), Err(MappingError::BodyNotData { found: "amqp-value" }));
}
