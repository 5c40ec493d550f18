//! TV-20 at the byte level, and round trips of both messages.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::amqp::types::Limits;

/// TV-18/TV-20's GUID in RFC 4122 order.
const GUID: [u8; 16] = [
    0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f,
];
const GUID_TEXT: &str = "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f";

fn encode(m: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out).expect("encodes");
    out.to_vec()
}

fn decode(bytes: &[u8]) -> Message {
    Message::decode(&Bytes::copy_from_slice(bytes), &Limits::default()).expect("decodes")
}

#[test]
fn tv20_request_correlation_id_is_a_uuid() {
    let request = MethodRequest {
        request_id: String::from(GUID_TEXT),
        name: String::from("reboot"),
        payload: Bytes::from_static(b"{\"delay\":5}"),
    };
    let mut expected = vec![
        0x00, 0x53, 0x73, // properties
        0xc0, 0x17, 0x06, // list8, size 23, 6 fields
        0x40, 0x40, 0x40, 0x40, 0x40, // message-id, user-id, to, subject, reply-to: null
        0x98, // correlation-id: uuid, RFC 4122 order (TV-18)
    ];
    expected.extend_from_slice(&GUID);
    expected.extend_from_slice(&[
        0x00, 0x53, 0x74, // application-properties
        0xc1, 0x1c, 0x02, // map8, size 28, 2 items
        0xa1, 0x11, // str8 "IoThub-methodname"
    ]);
    expected.extend_from_slice(b"IoThub-methodname");
    expected.extend_from_slice(&[0xa1, 0x06]); // str8 "reboot"
    expected.extend_from_slice(b"reboot");
    expected.extend_from_slice(&[0x00, 0x53, 0x75, 0xa0, 0x0b]); // data, vbin8 11 bytes
    expected.extend_from_slice(b"{\"delay\":5}");
    assert_eq!(encode(&request_to_message(&request)), expected);
    let (back, correlation) = request_from_message(&decode(&expected)).expect("a request");
    assert_eq!(back, request);
    assert_eq!(correlation, MessageId::Uuid(GUID));
}

#[test]
fn tv20_response_status_is_an_int_and_the_uuid_comes_back() {
    let response = MethodResponse {
        request_id: String::from(GUID_TEXT),
        status: 200,
        payload: Bytes::from_static(b"{\"result\":\"ok\"}"),
    };
    let bytes = encode(&response_to_message(&response, MessageId::Uuid(GUID)));
    let status = [
        0xa1, 0x0d, // str8 "IoThub-status"
        b'I', b'o', b'T', b'h', b'u', b'b', b'-', b's', b't', b'a', b't', b'u', b's', 0x71, 0x00,
        0x00, 0x00, 0xc8, // int 200 (not smallint: 200 > 127)
    ];
    assert!(bytes.windows(status.len()).any(|w| w == status), "{bytes:02x?}");
    let mut uuid = vec![0x98];
    uuid.extend_from_slice(&GUID);
    assert!(bytes.windows(17).any(|w| w == uuid.as_slice()));
    assert_eq!(response_from_message(&decode(&bytes)), Ok(response));
}

#[test]
fn s5_7_a_request_id_that_is_no_guid_goes_as_a_string() {
    assert_eq!(correlation_id("ab12"), MessageId::String("ab12".into()));
    assert_eq!(correlation_id(GUID_TEXT), MessageId::Uuid(GUID));
}

#[test]
fn s5_7_requests_and_responses_missing_their_parts_are_refused() {
    let request = MethodRequest {
        request_id: String::from(GUID_TEXT),
        name: String::from("reboot"),
        payload: Bytes::new(),
    };
    let mut m = request_to_message(&request);
    m.application_properties = None;
    assert!(request_from_message(&m).is_err());
    let mut m = request_to_message(&request);
    m.properties.as_mut().unwrap().correlation_id = Some(MessageId::Ulong(1));
    assert!(request_from_message(&m).is_err());
    let response =
        MethodResponse { request_id: request.request_id, status: 1, payload: Bytes::new() };
    let mut m = response_to_message(&response, MessageId::Uuid(GUID));
    // Any integer type is read for its value; one that fits no i32, or a string, is
    // no status.
    for (status, read) in [
        (Value::Long(200), Some(200)),
        (Value::Uint(404), Some(404)),
        (Value::Short(-1), Some(-1)),
        (Value::Long(i64::MAX), None),
        (Value::String("200".into()), None),
    ] {
        let mut app = ApplicationProperties::new();
        app.insert(STATUS, status.clone()).unwrap();
        m.application_properties = Some(app);
        let got = response_from_message(&m).ok().map(|r| r.status);
        assert_eq!(got, read, "{status:?}");
    }
    let big = MethodResponse {
        request_id: String::from("x"),
        status: 200,
        payload: Bytes::from(vec![b' '; MAX_PAYLOAD + 1]),
    };
    assert!(response_from_message(&response_to_message(&big, correlation_id("x"))).is_err());
}

proptest! {
    #[test]
    fn method_request_round_trips(
        guid in any::<[u8; 16]>(),
        as_string in any::<bool>(),
        name in "[a-zA-Z0-9_]{1,16}",
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let id = MessageId::Uuid(guid).to_string();
        let request_id = if as_string { alloc::format!("r{id}") } else { id };
        let request = MethodRequest { request_id, name, payload: Bytes::from(payload) };
        let (back, correlation) =
            request_from_message(&decode(&encode(&request_to_message(&request)))).expect("reads");
        prop_assert_eq!(correlation, correlation_id(&request.request_id));
        prop_assert_eq!(back, request);
    }

    #[test]
    fn method_response_round_trips(
        request_id in "\\PC{0,40}",
        status in any::<i32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let response = MethodResponse { request_id, status, payload: Bytes::from(payload) };
        let correlation = correlation_id(&response.request_id);
        let back = response_from_message(&decode(&encode(&response_to_message(&response, correlation))));
        prop_assert_eq!(back, Ok(response));
    }
}
