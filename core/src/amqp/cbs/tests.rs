//! put-token both ways (TV-17, TV-18), the audience, the token table.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::amqp::types::Limits;
use crate::iothub::renewal_time;

/// TV-3's token.
const TV3_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
    &sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
/// TV-17's Node audience: TV-3's `sr`.
const NODE_AUDIENCE: &str = "myhub.azure-devices.net%2Fdevices%2Fdevice1";
/// TV-17's C audience.
const C_AUDIENCE: &str = "myhub.azure-devices.net/devices/device1";
/// A uuid string in place of TV-17's `3f1c...-uuid-string`.
const NODE_ID: &str = "3f1c2e4a-5b6d-4e7f-8091-a2b3c4d5e6f7";
/// TV-18's GUID in RFC 4122 order.
const TV18_UUID: [u8; 16] = [
    0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f,
];

fn string(s: &str) -> Value {
    Value::String(s.into())
}

fn encode(message: &Message) -> Bytes {
    let mut out = BytesMut::new();
    message.encode(&mut out).unwrap();
    out.freeze()
}

fn decode(bytes: &Bytes) -> Message {
    Message::decode(bytes, &Limits::default()).unwrap()
}

/// A put-token as a peer might send it, built without [`PutToken::to_message`].
fn request(
    id: Option<MessageId>,
    to: Option<&str>,
    props: &[(&str, Value)],
    body: Body,
) -> Message {
    let mut message = Message::new(body);
    message.properties =
        Some(Properties { message_id: id, to: to.map(Utf8Bytes::from), ..Properties::default() });
    let mut app = ApplicationProperties::new();
    for (k, v) in props {
        app.insert(*k, v.clone()).unwrap();
    }
    message.application_properties = Some(app);
    message
}

fn c_form() -> Message {
    request(
        Some(MessageId::Ulong(0)),
        None,
        &[
            ("operation", string("put-token")),
            ("type", string("servicebus.windows.net:sastoken")),
            ("name", string(C_AUDIENCE)),
        ],
        Body::Value(string(TV3_TOKEN)),
    )
}

fn device1() -> Identity {
    Identity::device("device1")
}

#[test]
fn tv17_node_form_request_bytes() {
    let put = PutToken::for_token(
        MessageId::String(NODE_ID.into()),
        &SasToken::parse(TV3_TOKEN).unwrap(),
    );
    assert_eq!(put.audience, NODE_AUDIENCE);
    assert_eq!(put.token, TV3_TOKEN);
    let mut expected: Vec<u8> = Vec::new();
    // properties: descriptor 0x73, list8 of 0x34 bytes, 5 fields
    expected.extend([0x00, 0x53, 0x73, 0xc0, 0x34, 0x05]);
    expected.extend([0xa1, 0x24]); // message-id: str8, 36 bytes
    expected.extend(NODE_ID.as_bytes());
    expected.push(0x40); // user-id: null
    expected.extend([0xa1, 0x04]); // to: str8 "$cbs"
    expected.extend(b"$cbs");
    expected.push(0x40); // subject: null
    expected.extend([0xa1, 0x03]); // reply-to: str8 "cbs"
    expected.extend(b"cbs");
    // application-properties: descriptor 0x74, map8 of 0x71 bytes, 6 items
    expected.extend([0x00, 0x53, 0x74, 0xc1, 0x71, 0x06]);
    expected.extend([0xa1, 0x09]);
    expected.extend(b"operation");
    expected.extend([0xa1, 0x09]);
    expected.extend(b"put-token");
    expected.extend([0xa1, 0x04]);
    expected.extend(b"type");
    expected.extend([0xa1, 0x1f]);
    expected.extend(b"servicebus.windows.net:sastoken");
    expected.extend([0xa1, 0x04]);
    expected.extend(b"name");
    expected.extend([0xa1, 0x2b]); // str8, 43 bytes
    expected.extend(NODE_AUDIENCE.as_bytes());
    // amqp-value: descriptor 0x77, str8 of 0x87 = 135 bytes (TV-18: 154 - 19)
    expected.extend([0x00, 0x53, 0x77, 0xa1, 0x87]);
    expected.extend(TV3_TOKEN.as_bytes());
    let bytes = encode(&put.to_message());
    assert_eq!(&bytes[..], &expected[..]);
    assert_eq!(PutToken::from_message(&decode(&bytes)), Ok(put));
}

#[test]
fn tv17_c_form_is_accepted_and_answered_with_a_ulong() {
    let put = PutToken::from_message(&c_form()).unwrap();
    assert_eq!(put.message_id, MessageId::Ulong(0));
    assert_eq!(put.audience, C_AUDIENCE);
    assert_eq!(put.token, TV3_TOKEN);
    assert_eq!(put.token_type, TokenType::ServiceBusSas);
    let response = PutTokenResponse::ok(put.message_id);
    let mut expected: Vec<u8> = Vec::new();
    // properties: descriptor 0x73, list8 of 7 bytes, 6 fields
    expected.extend([0x00, 0x53, 0x73, 0xc0, 0x07, 0x06]);
    expected.extend([0x40; 5]); // message-id, user-id, to, subject, reply-to: null
    expected.push(0x44); // correlation-id: ulong0, the C SDK's ulong 0
    // application-properties: descriptor 0x74, map8 of 0x2b bytes, 4 items
    expected.extend([0x00, 0x53, 0x74, 0xc1, 0x2b, 0x04]);
    expected.extend([0xa1, 0x0b]);
    expected.extend(b"status-code");
    expected.extend([0x71, 0x00, 0x00, 0x00, 0xc8]); // int 200
    expected.extend([0xa1, 0x12]);
    expected.extend(b"status-description");
    expected.extend([0xa1, 0x02]);
    expected.extend(b"OK");
    assert_eq!(&encode(&response.to_message())[..], &expected[..]);
}

#[test]
fn tv17_both_audiences_name_device1_on_myhub() {
    for name in [NODE_AUDIENCE, C_AUDIENCE] {
        assert_eq!(
            Audience::parse(name),
            Ok(Audience { host: "myhub.azure-devices.net".into(), identity: device1() }),
            "{name}"
        );
    }
}

#[test]
fn tv17_node_response_echoes_the_string_id() {
    let id = MessageId::String(NODE_ID.into());
    let response = PutTokenResponse::from_message(&decode(&encode(
        &PutTokenResponse::ok(id.clone()).to_message(),
    )))
    .unwrap();
    assert_eq!(response.correlation_id, id);
    assert_eq!(response.status_code, 200);
    assert_eq!(response.description, "OK");
    assert!(response.is_success());
}

#[test]
fn tv18_uuid_correlation_id_is_0x98_and_rfc_4122_bytes() {
    let bytes = encode(&PutTokenResponse::ok(MessageId::Uuid(TV18_UUID)).to_message());
    // properties: descriptor 0x73, list8 of 0x17 bytes, 6 fields
    let mut expected =
        alloc::vec![0x00, 0x53, 0x73, 0xc0, 0x17, 0x06, 0x40, 0x40, 0x40, 0x40, 0x40];
    expected.push(0x98); // correlation-id: uuid
    expected.extend(TV18_UUID);
    assert_eq!(&bytes[..expected.len()], &expected[..]);
}

#[test]
fn audience_with_scheme_port_module_and_lower_case_escapes() {
    let module = Identity { device_id: "device1".into(), module_id: Some("module1".into()) };
    for name in [
        "amqps://myhub.azure-devices.net/devices/device1/modules/module1",
        "AMQPS://myhub.azure-devices.net:5671/Devices/device1/Modules/module1",
        "myhub.azure-devices.net%2fdevices%2fdevice1%2fmodules%2fmodule1",
        "amqps%3A%2F%2Fmyhub.azure-devices.net%2Fdevices%2Fdevice1%2Fmodules%2Fmodule1",
    ] {
        let audience = Audience::parse(name).unwrap();
        assert_eq!(audience.host, "myhub.azure-devices.net", "{name}");
        assert_eq!(audience.identity, module, "{name}");
    }
}

#[test]
fn audience_ids_are_decoded_once() {
    // Node encodes `a%41` as `a%2541`; C sends it raw, which does not decode to a
    // valid audience (`%41` gives `A`, but then `100%` is a broken escape).
    assert_eq!(Audience::parse("h%2Fdevices%2Fa%2541").unwrap().identity, Identity::device("a%41"));
    assert_eq!(Audience::parse("h/devices/100%").unwrap().identity, Identity::device("100%"));
    assert_eq!(Audience::parse("h/devices/a+b").unwrap().identity, Identity::device("a+b"));
}

#[test]
fn audiences_that_grant_no_single_identity_are_refused_with_400() {
    for name in [
        "",
        "myhub.azure-devices.net",
        "myhub.azure-devices.net/devices",
        "myhub.azure-devices.net/devices/",
        "/devices/device1",
        "myhub.azure-devices.net:x/devices/device1",
        "myhub.azure-devices.net/devices/device1/",
        "myhub.azure-devices.net/devices/device1/twin",
        "myhub.azure-devices.net/devices/device1/modules",
        "myhub.azure-devices.net/devices/dev ice",
        "myhub.azure-devices.net/other/device1",
    ] {
        let e = Audience::parse(name).unwrap_err();
        assert_eq!(e.status_code(), 400, "{name}");
        assert!(!e.description.is_empty());
    }
}

#[test]
fn token_type_is_either_name_in_any_case() {
    for (name, t) in [
        ("servicebus.windows.net:sastoken", TokenType::ServiceBusSas),
        ("ServiceBus.Windows.Net:SasToken", TokenType::ServiceBusSas),
        ("azure-devices.net:sastoken", TokenType::AzureDevicesSas),
        ("AZURE-DEVICES.NET:SASTOKEN", TokenType::AzureDevicesSas),
    ] {
        let mut message = c_form();
        message.application_properties.as_mut().unwrap().insert("type", string(name)).unwrap();
        assert_eq!(PutToken::from_message(&message).unwrap().token_type, t, "{name}");
    }
    assert_eq!(TokenType::parse("jwt"), None);
}

#[test]
fn malformed_put_tokens_are_refused_with_400_and_why() {
    let ok = [
        ("operation", string("put-token")),
        ("type", string("servicebus.windows.net:sastoken")),
        ("name", string(C_AUDIENCE)),
    ];
    let with = |key: &'static str, value: Option<Value>| -> Vec<(&'static str, Value)> {
        let mut props: Vec<(&'static str, Value)> =
            ok.iter().filter(|(k, _)| *k != key).cloned().collect();
        if let Some(v) = value {
            props.push((key, v));
        }
        props
    };
    let token = || Body::Value(string(TV3_TOKEN));
    let id = || Some(MessageId::Ulong(7));
    let cases: Vec<(Message, &str)> = alloc::vec![
        (request(None, None, &ok, token()), "message-id"),
        (Message::new(token()), "message-id"),
        (
            {
                let mut m = request(id(), None, &ok, token());
                m.application_properties = None;
                m
            },
            "application-properties",
        ),
        (request(id(), None, &with("operation", None), token()), "operation"),
        (
            request(id(), None, &with("operation", Some(string("delete-token"))), token()),
            "operation"
        ),
        (request(id(), None, &with("operation", Some(string("PUT-TOKEN"))), token()), "operation"),
        (
            request(
                id(),
                None,
                &with(
                    "operation",
                    Some(Value::Symbol(crate::amqp::Symbol::from_static("put-token")))
                ),
                token(),
            ),
            "operation",
        ),
        (request(id(), None, &with("type", None), token()), "type"),
        (request(id(), None, &with("type", Some(string("jwt"))), token()), "type"),
        (request(id(), None, &with("name", None), token()), "name"),
        (request(id(), None, &with("name", Some(string(""))), token()), "name"),
        (request(id(), None, &with("name", Some(Value::Int(1))), token()), "name"),
        (request(id(), None, &ok, Body::Empty), "body"),
        (request(id(), None, &ok, Body::Data(alloc::vec![Bytes::from(TV3_TOKEN)])), "body"),
        (request(id(), None, &ok, Body::Value(Value::Binary(Bytes::from(TV3_TOKEN)))), "body"),
    ];
    for (message, fault) in cases {
        let e = PutToken::from_message(&message).unwrap_err();
        assert_eq!(e.code, ErrorCode::ARGUMENT_INVALID, "{fault}");
        assert_eq!(e.status_code(), 400, "{fault}");
        assert!(e.description.contains(fault), "{fault}: {}", e.description);
        // The refusal carries the request's id when it has one.
        match (e.response(&message), message.properties.and_then(|p| p.message_id)) {
            (Some(r), Some(id)) => {
                assert_eq!(r.correlation_id, id);
                assert_eq!(r.status_code, 400);
                assert!(!r.is_success());
                assert!(r.description.starts_with("400004 ArgumentInvalid: "), "{}", r.description);
            }
            (None, None) => {}
            other => panic!("{fault}: {other:?}"),
        }
    }
}

#[test]
fn refusals_map_to_amqp_conditions() {
    let e = |code| CbsError { code, description: String::new() };
    assert_eq!(e(ErrorCode::ARGUMENT_INVALID).condition(), "com.microsoft:argument-error");
    assert_eq!(e(ErrorCode::IOT_HUB_UNAUTHORIZED).condition(), condition::UNAUTHORIZED_ACCESS);
    assert_eq!(
        e(ErrorCode::IOT_HUB_MAX_CBS_TOKEN_EXCEEDED).condition(),
        condition::RESOURCE_LIMIT_EXCEEDED
    );
    assert_eq!(e(ErrorCode::DEVICE_NOT_FOUND).condition(), condition::INTERNAL_ERROR);
}

#[test]
fn response_without_description_reads_as_empty() {
    let mut message = Message::new(Body::Empty);
    message.properties =
        Some(Properties { correlation_id: Some(MessageId::Ulong(3)), ..Properties::default() });
    let mut app = ApplicationProperties::new();
    app.insert("status-code", Value::Int(401)).unwrap();
    message.application_properties = Some(app);
    let response = PutTokenResponse::from_message(&message).unwrap();
    assert_eq!(response.description, "");
    assert_eq!(response.status_code, 401);
    assert!(!response.is_success());
}

#[test]
fn malformed_responses_are_refused() {
    let mut message = PutTokenResponse::ok(MessageId::Ulong(1)).to_message();
    message.properties = None;
    assert_eq!(PutTokenResponse::from_message(&message), Err(ResponseError("no correlation-id")));
    for status in [None, Some(Value::Long(200)), Some(string("200"))] {
        let mut message = Message::new(Body::Empty);
        message.properties =
            Some(Properties { correlation_id: Some(MessageId::Ulong(1)), ..Properties::default() });
        let mut app = ApplicationProperties::new();
        if let Some(v) = status.clone() {
            app.insert("status-code", v).unwrap();
        }
        message.application_properties = Some(app);
        assert_eq!(
            PutTokenResponse::from_message(&message),
            Err(ResponseError("status-code is not an int")),
            "{status:?}"
        );
    }
    let mut message = PutTokenResponse::ok(MessageId::Ulong(1)).to_message();
    message
        .application_properties
        .as_mut()
        .unwrap()
        .insert("status-description", Value::Int(1))
        .unwrap();
    assert_eq!(
        PutTokenResponse::from_message(&message),
        Err(ResponseError("status-description is not a string"))
    );
}

#[test]
fn device_renews_a_one_hour_token_after_48_minutes() {
    let issued = Timestamp::from_unix_secs(1_700_000_000);
    let token = SasToken::sign(
        C_AUDIENCE,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        issued + Duration::from_secs(3600),
        None,
    )
    .unwrap();
    assert_eq!(renewal_time(issued, token.expiry_time()), issued + Duration::from_secs(48 * 60));
}

#[test]
fn put_token_debug_hides_the_token() {
    let put = PutToken::from_message(&c_form()).unwrap();
    assert!(!alloc::format!("{put:?}").contains("sig="));
}

// -- The token table ------------------------------------------------------------

fn nth(n: usize) -> Identity {
    Identity::device(alloc::format!("d{n}"))
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

#[test]
fn the_1001st_identity_is_refused_with_403005() {
    let mut table = CbsTokens::default();
    for n in 0..MAX_TOKENS {
        assert_eq!(table.put(nth(n), at(100)), Ok(()), "{n}");
    }
    assert_eq!(table.len(), 1000);
    let e = table.put(nth(MAX_TOKENS), at(100)).unwrap_err();
    assert_eq!(e.code, ErrorCode::IOT_HUB_MAX_CBS_TOKEN_EXCEEDED);
    assert_eq!(e.code.to_string(), "403005 IotHubMaxCbsTokenExceeded");
    assert_eq!(e.status_code(), 403);
    assert_eq!(e.condition(), condition::RESOURCE_LIMIT_EXCEEDED);
    assert!(!table.is_authorised(&nth(MAX_TOKENS), at(0)));
    // A renewal of a held identity takes no new place.
    assert_eq!(table.put(nth(5), at(200)), Ok(()));
    assert_eq!(table.len(), 1000);
    assert!(table.is_authorised(&nth(5), at(150)));
    assert!(!table.is_authorised(&nth(6), at(150)));
}

#[test]
fn expiry_frees_a_place_and_names_the_identities() {
    let mut table = CbsTokens::new(2);
    table.put(nth(1), at(10)).unwrap();
    table.put(nth(2), at(20)).unwrap();
    assert!(table.put(nth(3), at(30)).is_err());
    assert_eq!(table.next_expiry(), Some(at(10) + Duration::from_millis(1)));
    // Authorised up to and including the expiry instant.
    assert!(table.is_authorised(&nth(1), at(10)));
    assert_eq!(table.expire(at(10)).count(), 0);
    let now = at(10) + Duration::from_millis(1);
    assert!(!table.is_authorised(&nth(1), now));
    assert_eq!(table.expire(now).collect::<Vec<_>>(), [nth(1)]);
    assert_eq!(table.put(nth(3), at(30)), Ok(()));
    assert_eq!(table.next_expiry(), Some(at(20) + Duration::from_millis(1)));
    assert_eq!(table.expire(at(40)).collect::<Vec<_>>(), [nth(2), nth(3)]);
    assert!(table.is_empty());
    assert_eq!(table.next_expiry(), None);
}

#[test]
fn a_lapsed_identity_renews_in_its_own_place() {
    let mut table = CbsTokens::new(1);
    table.put(nth(1), at(10)).unwrap();
    assert!(!table.is_authorised(&nth(1), at(11)));
    assert_eq!(table.put(nth(1), at(20)), Ok(()));
    assert!(table.is_authorised(&nth(1), at(11)));
    assert_eq!(table.expire(at(11)).count(), 0);
}

// -- Round trips ------------------------------------------------------------------

fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<u64>().prop_map(MessageId::Ulong),
        any::<[u8; 16]>().prop_map(MessageId::Uuid),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| MessageId::Binary(b.into())),
        "\\PC{0,40}".prop_map(|s: String| MessageId::String(s.into())),
    ]
}

fn token_type() -> impl Strategy<Value = TokenType> {
    prop_oneof![Just(TokenType::ServiceBusSas), Just(TokenType::AzureDevicesSas)]
}

proptest! {
    #[test]
    fn put_token_survives_message_bytes(
        message_id in message_id(),
        audience in "\\PC{1,60}",
        token in "\\PC{0,200}",
        token_type in token_type(),
    ) {
        let put = PutToken { message_id, audience, token, token_type };
        let again = PutToken::from_message(&decode(&encode(&put.to_message())));
        prop_assert_eq!(again, Ok(put));
    }

    #[test]
    fn put_token_response_survives_message_bytes(
        correlation_id in message_id(),
        status_code in any::<i32>(),
        description in "\\PC{0,60}",
    ) {
        let response = PutTokenResponse { correlation_id, status_code, description };
        let again = PutTokenResponse::from_message(&decode(&encode(&response.to_message())));
        // Equality includes the id's AMQP type: a ulong stays a ulong, a uuid a uuid.
        prop_assert_eq!(again, Ok(response));
    }

    #[test]
    fn node_audiences_read_back_their_identity(
        device in "[A-Za-z0-9\\-.+%_#*?!(),=@$']{1,20}",
        module in proptest::option::of("[A-Za-z0-9\\-.+%_#*?!(),=@$']{1,20}"),
    ) {
        let identity = Identity { device_id: device, module_id: module };
        let resource = match &identity.module_id {
            Some(m) => alloc::format!("myhub.azure-devices.net/devices/{}/modules/{m}", identity.device_id),
            None => alloc::format!("myhub.azure-devices.net/devices/{}", identity.device_id),
        };
        let token = SasToken::sign(&resource, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", at(1), None).unwrap();
        let put = PutToken::for_token(MessageId::Ulong(0), &token);
        let audience = Audience::parse(&put.audience).unwrap();
        prop_assert_eq!(audience.identity, identity);
        prop_assert_eq!(audience.host, "myhub.azure-devices.net");
    }
}
