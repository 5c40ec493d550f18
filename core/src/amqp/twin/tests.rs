//! TV-19 at the byte level, the hub's reading of malformed requests, and round
//! trips of both messages.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::amqp::types::Limits;

fn encode(m: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out).expect("encodes");
    out.to_vec()
}

fn decode(bytes: &[u8]) -> Message {
    Message::decode(&Bytes::copy_from_slice(bytes), &Limits::default()).expect("decodes")
}

fn c1() -> MessageId {
    MessageId::String(Utf8Bytes::from_static("c-1"))
}

#[test]
fn tv19_patch_request_bytes() {
    let request = TwinRequest {
        correlation_id: c1(),
        operation: TwinOperation::PatchReported(Bytes::from_static(b"{\"batteryLevel\":60}")),
    };
    let mut expected = vec![
        0x00, 0x53, 0x72, // message-annotations
        0xc1, 0x33, 0x04, // map8, size 51, 4 items
        0xa3, 0x09, // sym8 "operation"
    ];
    expected.extend_from_slice(b"operation");
    expected.extend_from_slice(&[0xa1, 0x05]); // str8 "PATCH"
    expected.extend_from_slice(b"PATCH");
    expected.extend_from_slice(&[0xa3, 0x08]); // sym8 "resource"
    expected.extend_from_slice(b"resource");
    expected.extend_from_slice(&[0xa1, 0x14]); // str8 "/properties/reported"
    expected.extend_from_slice(b"/properties/reported");
    expected.extend_from_slice(&[
        0x00, 0x53, 0x73, // properties
        0xc0, 0x0b, 0x06, // list8, size 11, 6 fields
        0x40, 0x40, 0x40, 0x40, 0x40, // message-id, user-id, to, subject, reply-to: null
        0xa1, 0x03, b'c', b'-', b'1', // correlation-id str8 "c-1"
        0x00, 0x53, 0x75, // data
        0xa0, 0x13, // vbin8, 19 bytes
    ]);
    expected.extend_from_slice(b"{\"batteryLevel\":60}");
    assert_eq!(encode(&request.to_message()), expected);
    assert_eq!(TwinRequest::from_message(&decode(&expected)), Ok(request));
}

#[test]
fn tv19_patch_response_status_int_version_long_no_body() {
    let response = TwinReply::Response(TwinResponse {
        correlation_id: c1(),
        status: 204,
        version: Some(2),
        body: Bytes::new(),
    });
    let mut expected = vec![
        0x00, 0x53, 0x72, // message-annotations
        0xc1, 0x19, 0x04, // map8, size 25, 4 items
        0xa3, 0x06, // sym8 "status"
    ];
    expected.extend_from_slice(b"status");
    expected.extend_from_slice(&[0x71, 0x00, 0x00, 0x00, 0xcc]); // int 204
    expected.extend_from_slice(&[0xa3, 0x07]); // sym8 "version"
    expected.extend_from_slice(b"version");
    expected.extend_from_slice(&[0x55, 0x02]); // smalllong 2: a long, as C requires
    expected.extend_from_slice(&[
        0x00, 0x53, 0x73, // properties
        0xc0, 0x0b, 0x06, // list8, size 11, 6 fields
        0x40, 0x40, 0x40, 0x40, 0x40, // null up to correlation-id
        0xa1, 0x03, b'c', b'-', b'1', // correlation-id str8 "c-1": the request's type
    ]); // no body section
    assert_eq!(encode(&response.to_message()), expected);
    assert_eq!(TwinReply::from_message(&decode(&expected)), Ok(response));
}

#[test]
fn tv19_get_and_subscribe_requests_carry_a_space() {
    for (operation, name, resource) in [
        (TwinOperation::Get, "GET", None),
        (TwinOperation::SubscribeDesired, "PUT", Some(DESIRED_NOTIFICATIONS)),
        (TwinOperation::UnsubscribeDesired, "DELETE", Some(DESIRED_NOTIFICATIONS)),
    ] {
        let m = TwinRequest { correlation_id: c1(), operation }.to_message();
        assert_eq!(m.body, Body::Data(vec![Bytes::from_static(b" ")]));
        let a = m.message_annotations.expect("annotations");
        assert_eq!(a.get(OPERATION), Some(&Value::String(name.into())));
        assert_eq!(a.get(RESOURCE).cloned(), resource.map(|r| Value::String(r.into())));
    }
}

#[test]
fn tv19_notification_has_no_correlation_id() {
    let body = Bytes::from_static(b"{\"x\":1,\"$version\":9}");
    let m = TwinReply::Desired(body.clone()).to_message();
    assert_eq!(m.properties, None);
    assert_eq!(m.message_annotations, None);
    assert_eq!(TwinReply::from_message(&decode(&encode(&m))), Ok(TwinReply::Desired(body)));
}

#[test]
fn s5_6_c_rejects_a_status_or_version_of_another_type() {
    let mut m = TwinReply::Response(TwinResponse {
        correlation_id: c1(),
        status: 200,
        version: Some(3),
        body: Bytes::new(),
    })
    .to_message();
    let mut wrong = m.clone();
    wrong
        .message_annotations
        .as_mut()
        .unwrap()
        .insert(Symbol::from_static(STATUS), Value::Long(200));
    assert_eq!(TwinReply::from_message(&wrong), Err(TwinReplyError("status is not an int")));
    m.message_annotations.as_mut().unwrap().insert(Symbol::from_static(VERSION), Value::Int(3));
    assert_eq!(TwinReply::from_message(&m), Err(TwinReplyError("version is not a long")));
}

#[test]
fn s5_6_hub_reads_operations_in_any_case_and_refuses_the_rest_with_their_id() {
    let request = |operation: &'static str, resource: Option<&'static str>| {
        let mut m =
            TwinRequest { correlation_id: c1(), operation: TwinOperation::Get }.to_message();
        let mut a = Annotations::new();
        a.insert(Symbol::from_static(OPERATION), string(operation));
        if let Some(r) = resource {
            a.insert(Symbol::from_static(RESOURCE), string(r));
        }
        m.message_annotations = Some(a);
        TwinRequest::from_message(&m)
    };
    assert_eq!(request("get", None).map(|r| r.operation), Ok(TwinOperation::Get));
    for (operation, resource) in [
        ("POST", None),
        ("PATCH", Some("/properties/desired")),
        ("PATCH", None),
        ("PUT", Some(REPORTED)),
        ("DELETE", None),
    ] {
        let e = request(operation, resource).expect_err(operation);
        assert_eq!(e.correlation_id, Some(c1()), "answerable with 400");
    }
    let mut anonymous =
        TwinRequest { correlation_id: c1(), operation: TwinOperation::Get }.to_message();
    anonymous.properties = None;
    let e = TwinRequest::from_message(&anonymous).expect_err("no id");
    assert_eq!(e.correlation_id, None);
}

fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<u64>().prop_map(MessageId::Ulong),
        any::<[u8; 16]>().prop_map(MessageId::Uuid),
        "\\PC{0,12}".prop_map(|s: alloc::string::String| MessageId::String(s.as_str().into())),
    ]
}

fn operation() -> impl Strategy<Value = TwinOperation> {
    prop_oneof![
        Just(TwinOperation::Get),
        Just(TwinOperation::SubscribeDesired),
        Just(TwinOperation::UnsubscribeDesired),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| TwinOperation::PatchReported(Bytes::from(b))),
    ]
}

proptest! {
    #[test]
    fn twin_request_round_trips(correlation_id in message_id(), operation in operation()) {
        let request = TwinRequest { correlation_id, operation };
        let back = TwinRequest::from_message(&decode(&encode(&request.to_message())));
        prop_assert_eq!(back, Ok(request));
    }

    #[test]
    fn twin_reply_round_trips(
        correlation_id in proptest::option::of(message_id()),
        status in any::<i32>(),
        version in proptest::option::of(any::<i64>()),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let body = Bytes::from(body);
        let reply = match correlation_id {
            Some(correlation_id) => {
                TwinReply::Response(TwinResponse { correlation_id, status, version, body })
            }
            None => TwinReply::Desired(body),
        };
        let back = TwinReply::from_message(&decode(&encode(&reply.to_message())));
        prop_assert_eq!(back, Ok(reply));
    }
}
