//! Property tests: every section and whole messages survive encode → decode;
//! arbitrary bytes never panic.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::amqp::types::{Limits, Symbol, Value};
use crate::utf8::Utf8Bytes;

fn text() -> impl Strategy<Value = Utf8Bytes> {
    "\\PC{0,8}".prop_map(|s: alloc::string::String| Utf8Bytes::from(s))
}

fn symbol() -> impl Strategy<Value = Symbol> {
    "[ -~]{0,8}".prop_map(|s: alloc::string::String| {
        Symbol::try_from_bytes(Bytes::from(s)).unwrap_or_default()
    })
}

fn simple() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i32>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::Ulong),
        any::<i64>().prop_map(Value::Timestamp),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        text().prop_map(Value::String),
        symbol().prop_map(Value::Symbol),
        vec(any::<u8>(), 0..8).prop_map(|b| Value::Binary(Bytes::from(b))),
    ]
}

fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<u64>().prop_map(MessageId::Ulong),
        any::<[u8; 16]>().prop_map(MessageId::Uuid),
        vec(any::<u8>(), 0..8).prop_map(|b| MessageId::Binary(Bytes::from(b))),
        text().prop_map(MessageId::String),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (any::<bool>(), any::<u8>(), any::<Option<u32>>(), any::<bool>(), any::<u32>()).prop_map(
        |(durable, priority, ttl, first_acquirer, delivery_count)| Header {
            durable,
            priority,
            ttl,
            first_acquirer,
            delivery_count,
        },
    )
}

fn properties() -> impl Strategy<Value = Properties> {
    use proptest::option::of;
    (
        (of(message_id()), of(vec(any::<u8>(), 0..4)), of(text()), of(text()), of(text())),
        (of(message_id()), of(symbol()), of(symbol()), any::<Option<i64>>(), any::<Option<i64>>()),
        (of(text()), any::<Option<u32>>(), of(text())),
    )
        .prop_map(
            |((mid, uid, to, subject, reply_to), (cid, ct, ce, exp, ctime), (gid, gseq, rgid))| {
                Properties {
                    message_id: mid,
                    user_id: uid.map(Bytes::from),
                    to,
                    subject,
                    reply_to,
                    correlation_id: cid,
                    content_type: ct,
                    content_encoding: ce,
                    absolute_expiry_time: exp,
                    creation_time: ctime,
                    group_id: gid,
                    group_sequence: gseq,
                    reply_to_group_id: rgid,
                }
            },
        )
}

fn annotations() -> impl Strategy<Value = Annotations> {
    let key = prop_oneof![
        symbol().prop_map(AnnotationKey::Symbol),
        any::<u64>().prop_map(AnnotationKey::Ulong)
    ];
    vec((key, simple()), 0..4).prop_map(|pairs| {
        let mut a = Annotations::new();
        pairs.into_iter().for_each(|(k, v)| a.insert(k, v));
        a
    })
}

fn application_properties() -> impl Strategy<Value = ApplicationProperties> {
    vec((text(), simple()), 0..4).prop_map(|pairs| {
        let mut a = ApplicationProperties::new();
        for (k, v) in pairs {
            let _ = a.insert(k, v);
        }
        a
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::Empty),
        vec(vec(any::<u8>(), 0..8).prop_map(Bytes::from), 1..3).prop_map(Body::Data),
        vec(vec(simple(), 0..3), 1..3).prop_map(Body::Sequence),
        simple().prop_map(Body::Value),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    use proptest::option::of;
    (
        of(header()),
        of(annotations()),
        of(annotations()),
        of(properties()),
        of(application_properties()),
        body(),
        of(annotations()),
    )
        .prop_map(|(h, da, ma, p, ap, body, footer)| Message {
            header: h,
            delivery_annotations: da,
            message_annotations: ma,
            properties: p,
            application_properties: ap,
            body,
            footer,
        })
}

fn round_trip(m: &Message) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    m.encode(&mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded = Message::decode(&out.freeze(), &Limits::default());
    prop_assert_eq!(decoded, Ok(m.clone()));
    Ok(())
}

/// `pairs` as the described map of section `code`, through [`Value`]s.
fn map_section(code: u64, pairs: Vec<(Value, Value)>) -> BytesMut {
    let mut out = BytesMut::new();
    let section = Value::from(Described::new(code, Value::Map(pairs)));
    crate::amqp::types::encode(&section, &mut out).expect("encodes");
    out
}

proptest! {
    /// The sections written straight into bytes are the bytes of the same
    /// sections built as values.
    #[test]
    fn direct_encoding_matches_the_values(
        h in header(),
        p in properties(),
        a in annotations(),
        ap in application_properties(),
    ) {
        use crate::amqp::performative::field::Writer;
        let mut direct = BytesMut::new();
        h.write(Writer::encoding(&mut direct)).expect("encodes");
        let mut collected = BytesMut::new();
        h.write(Writer::new()).encode(&mut collected).expect("encodes");
        prop_assert_eq!(&direct, &collected);
        let mut direct = BytesMut::new();
        p.write(Writer::encoding(&mut direct)).expect("encodes");
        let mut collected = BytesMut::new();
        p.write(Writer::new()).encode(&mut collected).expect("encodes");
        prop_assert_eq!(&direct, &collected);
        let mut direct = BytesMut::new();
        a.encode(super::MESSAGE_ANNOTATIONS, &mut direct).expect("encodes");
        let pairs = a.iter().map(|(k, v)| {
            let key = match k {
                AnnotationKey::Symbol(s) => Value::Symbol(s.clone()),
                AnnotationKey::Ulong(n) => Value::Ulong(*n),
            };
            (key, v.clone())
        });
        prop_assert_eq!(&direct, &map_section(super::MESSAGE_ANNOTATIONS, pairs.collect()));
        let mut direct = BytesMut::new();
        ap.encode(&mut direct).expect("encodes");
        let pairs = ap.iter().map(|(k, v)| (Value::String(k.clone()), v.clone()));
        prop_assert_eq!(&direct, &map_section(super::APPLICATION_PROPERTIES, pairs.collect()));
    }

    #[test]
    fn header_round_trips(h in header()) {
        round_trip(&Message { header: Some(h), ..Message::new(Body::Empty) })?;
    }

    #[test]
    fn properties_round_trip(p in properties()) {
        round_trip(&Message { properties: Some(p), ..Message::new(Body::Empty) })?;
    }

    #[test]
    fn annotation_sections_round_trip(a in annotations()) {
        let m = Message {
            delivery_annotations: Some(a.clone()),
            message_annotations: Some(a.clone()),
            footer: Some(a),
            ..Message::new(Body::Empty)
        };
        round_trip(&m)?;
    }

    #[test]
    fn application_properties_round_trip(a in application_properties()) {
        round_trip(&Message { application_properties: Some(a), ..Message::new(Body::Empty) })?;
    }

    #[test]
    fn bodies_round_trip(b in body()) {
        round_trip(&Message::new(b))?;
    }

    #[test]
    fn messages_round_trip(m in message()) {
        round_trip(&m)?;
    }

    #[test]
    fn batches_round_trip(ms in vec(message(), 1..4)) {
        let mut out = BytesMut::new();
        encode_batch(&ms, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode_batch(&out.freeze(), &Limits::default()), Ok(ms));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let input = Bytes::from(bytes);
        if let Ok(m) = Message::decode(&input, &Limits::default()) {
            round_trip(&m)?;
        }
        let _ = decode_batch(&input, &Limits::default());
    }
}
