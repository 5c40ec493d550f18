//! The hub's REST endpoints, driven through the hub engine by raw HTTP clients in a
//! [`Pair`]: requests written byte for byte as the SDKs write them (spec file §6),
//! answers read back with core's own response parser.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::Protocol;
use crate::http::body::{BodyDecoder, BodyLimits};
use crate::http::head::{Limits, ResponseHead, parse_response};
use crate::http::message::read_c2d;
use crate::hub::{HubConfig, HubError, HubEvent, Outcome, ProtocolError};
use crate::iothub::{Ack, ErrorCode, Identity, LockToken, Message, SasToken};
use crate::sansio::Endpoint;
use crate::testing::{KEY, Pair};
use crate::time::Duration;

/// The api-version query every SDK request carries (spec file §6.1).
const Q: &str = "?api-version=2021-04-12";
/// A key no device has: base64 of 32 bytes 0xFF.
const OTHER_KEY: &str = "//////////////////////////////////////////8=";

/// A hub with `device1` and `device2` registered and one raw HTTP connection.
struct Rest {
    pair: Pair,
    conn: usize,
    /// Bytes of `received` already read as answers.
    read: usize,
}

impl Rest {
    fn new() -> Rest {
        Rest::with(HubConfig::default())
    }

    fn with(config: HubConfig) -> Rest {
        let mut pair = Pair::new(config);
        pair.register("device1");
        pair.register("device2");
        let conn = pair.raw_connect_with(Protocol::Http);
        Rest { pair, conn, read: 0 }
    }

    /// A SAS token for `device_id` signed with `key`, valid for an hour.
    fn token_with(&self, device_id: &str, key: &str) -> String {
        let resource = format!("localhost/devices/{device_id}");
        let expiry = self.pair.now + Duration::from_secs(3600);
        match SasToken::sign(&resource, key, expiry, None) {
            Ok(token) => token.to_string(),
            Err(e) => panic!("cannot sign: {e}"),
        }
    }

    fn token(&self, device_id: &str) -> String {
        self.token_with(device_id, KEY)
    }

    /// A request as the Node SDK writes it: `Host`, `Authorization` for `device1`,
    /// `extra` headers, and `Content-Length` when there is a body or a POST.
    fn request(&self, method: &str, target: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let token = self.token("device1");
        let mut headers = vec![("Host", "localhost"), ("Authorization", token.as_str())];
        headers.extend_from_slice(extra);
        request_with(method, target, &headers, body)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.pair.raw_send(self.conn, bytes);
    }

    /// The answers that arrived since the last call.
    fn answers(&mut self) -> Vec<(ResponseHead, Bytes)> {
        let received = &self.pair.raw[self.conn].received;
        let (answers, used) = read_answers(&received[self.read..]);
        self.read += used;
        answers
    }

    /// Sends `bytes` and returns the one answer they got.
    fn exchange(&mut self, bytes: &[u8]) -> (ResponseHead, Bytes) {
        self.send(bytes);
        let mut answers = self.answers();
        assert_eq!(answers.len(), 1, "answers: {answers:?}");
        answers.remove(0)
    }

    fn closed(&self) -> bool {
        self.pair.raw[self.conn].closed_by_hub
    }

    fn refusals(&self) -> Vec<(Option<Identity>, ErrorCode)> {
        self.pair
            .hub_events
            .iter()
            .filter_map(|e| match e {
                HubEvent::Refused { identity, code, .. } => Some((identity.clone(), *code)),
                _ => None,
            })
            .collect()
    }

    /// Receives the next C2D message: its lock and the 200's head and body.
    fn receive(&mut self) -> (LockToken, ResponseHead, Bytes) {
        let get =
            self.request("GET", &format!("/devices/device1/messages/deviceBound{Q}"), &[], b"");
        let (head, body) = self.exchange(&get);
        assert_eq!(head.status, 200, "{head:?}");
        let lock = match read_c2d(&head.headers, body.clone()) {
            Ok((c2d, _)) => c2d.lock_token,
            Err(e) => panic!("unreadable C2D answer: {e}"),
        };
        (lock, head, body)
    }

    fn settle(&mut self, lock: &str, suffix: &str, method: &str, query: &str) -> ResponseHead {
        let target = format!("/devices/device1/messages/deviceBound/{lock}{suffix}{Q}{query}");
        let request = self.request(method, &target, &[], b"");
        self.exchange(&request).0
    }

    fn settled(&self) -> Vec<Outcome> {
        self.pair
            .hub_events
            .iter()
            .filter_map(|e| match e {
                HubEvent::C2dSettled(s) => Some(s.outcome),
                _ => None,
            })
            .collect()
    }
}

fn request_with(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Whole answers at the front of `bytes`, and the bytes they take.
fn read_answers(bytes: &[u8]) -> (Vec<(ResponseHead, Bytes)>, usize) {
    let mut buf = BytesMut::from(bytes);
    let mut answers = Vec::new();
    loop {
        let (head, used) = match parse_response(&buf, &Limits::default()) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => break,
            Err(e) => panic!("the hub wrote a bad head: {e}"),
        };
        let _ = buf.split_to(used);
        let mut decoder = match BodyDecoder::for_response(&head, "GET", &BodyLimits::default()) {
            Ok(d) => d,
            Err(e) => panic!("the hub framed a body badly: {e}"),
        };
        match decoder.decode(&mut buf) {
            Ok(Some(body)) => answers.push((head, body)),
            other => panic!("the hub wrote an incomplete body: {other:?}"),
        }
    }
    (answers, bytes.len() - buf.len())
}

fn text(body: &Bytes) -> &str {
    core::str::from_utf8(body).unwrap_or("<not UTF-8>")
}

/// The head is IoT Hub's error answer: status, `iothub-errorcode`, JSON body.
fn assert_hub_error(head: &ResponseHead, body: &Bytes, status: u16, code: ErrorCode) {
    assert_eq!(head.status, status, "{head:?} {}", text(body));
    assert_eq!(head.header("iothub-errorcode"), Some(code.name));
    assert_eq!(head.header("content-type"), Some("application/json; charset=utf-8"));
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => panic!("error body is not JSON ({e}): {}", text(body)),
    };
    let message = json.get("Message").and_then(|m| m.as_str()).unwrap_or_default();
    assert!(message.starts_with(&format!("ErrorCode:{};", code.name)), "{message}");
    let exception = json.get("ExceptionMessage").and_then(|m| m.as_str()).unwrap_or_default();
    assert!(exception.starts_with("Tracking ID:"), "{exception}");
    assert!(exception.contains("-TimeStamp:2023-11-14T22:"), "{exception}");
}

fn events_target() -> String {
    format!("/devices/device1/messages/events{Q}")
}

// ---------------------------------------------------------------------------------
// Send event (spec file §6.2, §6.3)

#[test]
fn spec_6_2_single_send_is_stored_with_its_properties_and_answered_204() {
    let mut rest = Rest::new();
    let headers = [
        ("Content-Type", "application/octet-stream"),
        ("IoTHub-MessageId", "m-1"),
        ("iothub-correlationid", "c-1"),
        ("iothub-to", "/devices/device1/messages/events"),
        ("iothub-app-color", "blue"),
        ("iothub-contenttype", "application/json"),
    ];
    let request = rest.request("POST", &events_target(), &headers, br#"{"t":1}"#);
    let (head, body) = rest.exchange(&request);
    assert_eq!(head.status, 204);
    assert_eq!(head.reason, "No Content");
    // RFC 9110 §8.6: a 204 has no Content-Length; a persistent answer no Connection.
    assert_eq!(head.header("content-length"), None);
    assert_eq!(head.header("connection"), None);
    assert!(body.is_empty());
    let records: Vec<_> = rest.pair.stored.device("device1").collect();
    assert_eq!(records.len(), 1);
    let message = &records[0].message;
    assert_eq!(records[0].identity, Identity::device("device1"));
    assert_eq!(&message.body[..], br#"{"t":1}"#);
    assert_eq!(message.message_id.as_deref(), Some("m-1"));
    assert_eq!(message.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(message.content_type.as_deref(), Some("application/json"));
    assert_eq!(message.properties.get("color"), Some(Some("blue")));
    assert!(!rest.closed());
}

#[test]
fn send_is_answered_only_after_the_store() {
    let mut rest = Rest::new();
    rest.pair.hold_stores = true;
    let request = rest.request("POST", &events_target(), &[], b"x");
    rest.send(&request);
    assert_eq!(rest.pair.pending_stores.len(), 1);
    assert!(rest.answers().is_empty(), "answered before the store");
    rest.pair.release_stores();
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
}

/// TV-16's body, as Node and .NET write it.
const TV16: &[u8] = br#"[{"body":"eyJ0IjoyMS41fQ==","properties":{"iothub-app-unit":"C","iothub-messageid":"m1"}},{"body":"aGVsbG8="}]"#;

#[test]
fn tv16_batch_is_stored_as_two_messages_and_answered_when_both_are() {
    let mut rest = Rest::new();
    rest.pair.hold_stores = true;
    // The media type matches in any case, parameters ignored (RFC 9110 §8.3.1).
    let content_type = [("Content-Type", "Application/VND.Microsoft.IotHub.json; charset=utf-8")];
    let request = rest.request("POST", &events_target(), &content_type, TV16);
    rest.send(&request);
    let mut held = core::mem::take(&mut rest.pair.pending_stores);
    assert_eq!(held.len(), 2);
    // The first store completes: the batch is not taken yet.
    rest.pair.pending_stores.push(held.remove(0));
    rest.pair.release_stores();
    assert!(rest.answers().is_empty());
    rest.pair.pending_stores = held;
    rest.pair.release_stores();
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
    let records: Vec<_> = rest.pair.stored.device("device1").collect();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[0].message.body[..], br#"{"t":21.5}"#);
    assert_eq!(records[0].message.properties.get("unit"), Some(Some("C")));
    assert_eq!(records[0].message.message_id.as_deref(), Some("m1"));
    assert_eq!(&records[1].message.body[..], b"hello");
    assert!(records[1].message.properties.is_empty());
    assert_eq!(records[1].message.message_id, None);
    // The device's D2C sequence counts from 1, as over MQTT and AMQP.
    let sequence: Vec<u64> = records.iter().map(|r| r.sequence_number).collect();
    assert_eq!(sequence, [1, 2]);
}

#[test]
fn a_batch_that_does_not_read_is_400_and_nothing_is_stored() {
    let mut rest = Rest::new();
    let content_type = [("Content-Type", "application/vnd.microsoft.iothub.json")];
    let request = rest.request("POST", &events_target(), &content_type, b"[{\"body\":1}]");
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 400, ErrorCode::ARGUMENT_INVALID);
    assert_eq!(rest.pair.stored.device("device1").count(), 0);
    assert!(!rest.closed());
}

#[test]
fn a_chunked_send_is_stored_whole() {
    let mut rest = Rest::new();
    let token = rest.token("device1");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        events_target()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    let (answer, _) = rest.exchange(&request);
    assert_eq!(answer.status, 204);
    assert_eq!(rest.pair.stored_bodies("device1"), [Bytes::from_static(b"hello")]);
}

#[test]
fn expect_100_continue_gets_the_interim_answer_first() {
    let mut rest = Rest::new();
    let request = rest.request("POST", &events_target(), &[("Expect", "100-continue")], b"x");
    rest.send(&request);
    let answers = rest.answers();
    let statuses: Vec<u16> = answers.iter().map(|(h, _)| h.status).collect();
    assert_eq!(statuses, [100, 204]);
}

#[test]
fn spec_8_oversized_single_send_is_413_and_the_connection_stays() {
    let config = HubConfig { max_message_size: 1024, ..HubConfig::default() };
    let mut rest = Rest::with(config);
    let request = rest.request("POST", &events_target(), &[], &[b'a'; 1025]);
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 413, ErrorCode::MESSAGE_TOO_LARGE);
    assert_eq!(rest.pair.stored.device("device1").count(), 0);
    // The body was read whole: the next request is served.
    let request = rest.request("POST", &events_target(), &[], &[b'a'; 1000]);
    assert_eq!(rest.exchange(&request).0.status, 204);
    // Properties count too (spec file §3, "Message size").
    let request =
        rest.request("POST", &events_target(), &[("iothub-app-p", "xxxxxx")], &[b'a'; 1020]);
    assert_eq!(rest.exchange(&request).0.status, 413);
}

#[test]
fn spec_6_3_oversized_batch_is_413() {
    let config = HubConfig { max_message_size: 1024, ..HubConfig::default() };
    let mut rest = Rest::with(config);
    let content_type = [("Content-Type", "application/vnd.microsoft.iothub.json")];
    // Two messages of 600 bytes each: each fits, the batch does not.
    let item = format!(r#"{{"body":"{}","base64Encoded":false}}"#, "a".repeat(600));
    let batch = format!("[{item},{item}]");
    let request = rest.request("POST", &events_target(), &content_type, batch.as_bytes());
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 413, ErrorCode::MESSAGE_TOO_LARGE);
    assert_eq!(rest.pair.stored.device("device1").count(), 0);
}

#[test]
fn a_body_over_the_body_limit_is_413_before_it_is_read_and_closes() {
    let config = HubConfig { max_message_size: 1024, ..HubConfig::default() };
    let mut rest = Rest::with(config);
    let token = rest.token("device1");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\n\
         Content-Length: {}\r\n\r\n",
        events_target(),
        1024 + 16 * 1024 + 1
    );
    let (answer, _) = rest.exchange(head.as_bytes());
    assert_eq!(answer.status, 413);
    assert_eq!(answer.header("iothub-errorcode"), Some("MessageTooLarge"));
    assert!(rest.closed());
}

// ---------------------------------------------------------------------------------
// Receive and settle (spec file §6.4, §6.5, §7)

#[test]
fn spec_6_4_empty_queue_is_204() {
    let mut rest = Rest::new();
    let get = rest.request("GET", &format!("/devices/device1/messages/devicebound{Q}"), &[], b"");
    let (head, body) = rest.exchange(&get);
    assert_eq!(head.status, 204);
    assert!(body.is_empty());
}

/// TV-15's message, as the service sends it.
fn tv15_message() -> Message {
    let mut message = Message::new(&b"{\"on\":true}"[..]);
    message.message_id = Some("msg-42".into());
    message.correlation_id = Some("corr-9".into());
    message.user_id = Some("myhub".into());
    message.ack = Some(Ack::Full);
    message.properties.set("color", "blue");
    message
}

#[test]
fn tv15_receive_is_200_with_the_quoted_etag_and_the_message_headers() {
    let mut rest = Rest::new();
    let _ = rest.pair.send_c2d("device1", tv15_message());
    let (lock, head, body) = rest.receive();
    assert_eq!(head.header("etag"), Some(format!("\"{lock}\"").as_str()));
    for (name, value) in [
        ("iothub-messageid", "msg-42"),
        ("iothub-correlationid", "corr-9"),
        ("iothub-sequencenumber", "1"),
        ("iothub-to", "/devices/device1/messages/deviceBound"),
        ("iothub-deliverycount", "0"),
        ("iothub-userid", "myhub"),
        ("iothub-ack", "full"),
        ("iothub-app-color", "blue"),
    ] {
        assert_eq!(head.header(name), Some(value), "{name}");
    }
    // The C SDK matches these names byte for byte (spec file §6.4).
    assert!(head.headers.iter().any(|h| h.name == "iothub-app-color"));
    assert!(head.headers.iter().any(|h| h.name == "iothub-expiry"));
    assert!(head.headers.iter().any(|h| h.name == "iothub-enqueuedtime"));
    assert_eq!(head.header("content-length"), Some("11"));
    assert_eq!(&body[..], b"{\"on\":true}");
    // The message is locked: a second GET finds nothing.
    let get = rest.request("GET", &format!("/devices/device1/messages/deviceBound{Q}"), &[], b"");
    assert_eq!(rest.exchange(&get).0.status, 204);
}

#[test]
fn tv15_complete_reject_and_abandon_are_204_with_their_outcomes() {
    let mut rest = Rest::new();
    for n in 0..3 {
        let _ = rest.pair.send_c2d("device1", Message::new(format!("m{n}")));
    }
    let (lock, ..) = rest.receive();
    assert_eq!(rest.settle(&lock.to_string(), "", "DELETE", "").status, 204);
    let (lock, ..) = rest.receive();
    assert_eq!(rest.settle(&lock.to_string(), "", "DELETE", "&reject").status, 204);
    let (lock, ..) = rest.receive();
    assert_eq!(rest.settle(&lock.to_string(), "/abandon", "POST", "").status, 204);
    assert_eq!(
        rest.settled(),
        [Outcome::Completed, Outcome::Rejected, Outcome::Abandoned { delivery_count: 1 }]
    );
    // The abandoned message comes back, counted.
    let (_, head, body) = rest.receive();
    assert_eq!(head.header("iothub-deliverycount"), Some("1"));
    assert_eq!(&body[..], b"m2");
}

#[test]
fn spec_6_5_if_match_is_ignored_and_the_path_token_decides() {
    let mut rest = Rest::new();
    let _ = rest.pair.send_c2d("device1", Message::new("m"));
    let (lock, ..) = rest.receive();
    let target = format!("/devices/device1/messages/deviceBound/{lock}{Q}");
    let stale = [("If-Match", "\"00000000-0000-0000-0000-000000000000\"")];
    let request = rest.request("DELETE", &target, &stale, b"");
    assert_eq!(rest.exchange(&request).0.status, 204);
    assert_eq!(rest.settled(), [Outcome::Completed]);
}

#[test]
fn spec_7_settling_after_the_lock_timeout_is_412_lock_lost() {
    let mut rest = Rest::new();
    let _ = rest.pair.send_c2d("device1", Message::new("m"));
    let (lock, ..) = rest.receive();
    rest.pair.advance(Duration::from_secs(61));
    let target = format!("/devices/device1/messages/deviceBound/{lock}{Q}");
    let request = rest.request("DELETE", &target, &[], b"");
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 412, ErrorCode::DEVICE_MESSAGE_LOCK_LOST);
    // The message is back in the queue, not counted (spec file §7).
    let (_, head, _) = rest.receive();
    assert_eq!(head.header("iothub-deliverycount"), Some("0"));
}

#[test]
fn settling_an_unknown_lock_is_412_and_a_lock_that_is_no_guid_is_400() {
    let mut rest = Rest::new();
    let head = rest.settle("0f8fad5b-d9cb-469f-a165-70867728950e", "", "DELETE", "");
    assert_eq!(head.status, 412);
    assert_eq!(head.header("iothub-errorcode"), Some("DeviceMessageLockLost"));
    let head = rest.settle("not-a-guid", "/abandon", "POST", "");
    assert_eq!(head.status, 400);
    assert_eq!(head.header("iothub-errorcode"), Some("ArgumentInvalid"));
    assert!(!rest.closed());
}

// ---------------------------------------------------------------------------------
// Authentication (spec file §6.1, §9)

#[test]
fn spec_9_bad_signature_is_401_and_logged() {
    let mut rest = Rest::new();
    let token = rest.token_with("device1", OTHER_KEY);
    let headers = [("Host", "localhost"), ("Authorization", token.as_str())];
    let (head, body) = rest.exchange(&request_with("POST", &events_target(), &headers, b"x"));
    assert_hub_error(&head, &body, 401, ErrorCode::IOT_HUB_UNAUTHORIZED);
    assert_eq!(rest.pair.stored.device("device1").count(), 0);
    assert_eq!(
        rest.refusals(),
        [(Some(Identity::device("device1")), ErrorCode::IOT_HUB_UNAUTHORIZED)]
    );
}

#[test]
fn spec_9_unknown_device_is_404_device_not_found() {
    let mut rest = Rest::new();
    let token = rest.token("ghost");
    let headers = [("Host", "localhost"), ("Authorization", token.as_str())];
    let target = format!("/devices/ghost/messages/deviceBound{Q}");
    let (head, body) = rest.exchange(&request_with("GET", &target, &headers, b""));
    assert_hub_error(&head, &body, 404, ErrorCode::DEVICE_NOT_FOUND);
    assert_eq!(rest.refusals(), [(Some(Identity::device("ghost")), ErrorCode::DEVICE_NOT_FOUND)]);
}

#[test]
fn a_token_for_one_device_on_another_devices_path_is_401() {
    let mut rest = Rest::new();
    let _ = rest.pair.send_c2d("device2", Message::new("for device2"));
    // `request` signs for device1.
    let target = format!("/devices/device2/messages/deviceBound{Q}");
    let request = rest.request("GET", &target, &[], b"");
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 401, ErrorCode::IOT_HUB_UNAUTHORIZED);
    let target = format!("/devices/device2/messages/events{Q}");
    let request = rest.request("POST", &target, &[], b"x");
    assert_eq!(rest.exchange(&request).0.status, 401);
    assert_eq!(rest.pair.stored.device("device2").count(), 0);
}

#[test]
fn spec_6_1_a_request_without_authorization_is_401() {
    let mut rest = Rest::new();
    let request = request_with("POST", &events_target(), &[("Host", "localhost")], b"x");
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 401, ErrorCode::IOT_HUB_UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------
// Routes (spec file §6.1)

#[test]
fn spec_6_1_missing_api_version_is_400_invalid_protocol_version() {
    let mut rest = Rest::new();
    let request = rest.request("POST", "/devices/device1/messages/events", &[], b"x");
    let (head, body) = rest.exchange(&request);
    assert_hub_error(&head, &body, 400, ErrorCode::INVALID_PROTOCOL_VERSION);
    assert_eq!(rest.refusals(), [(None, ErrorCode::INVALID_PROTOCOL_VERSION)]);
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let mut rest = Rest::new();
    let twin = rest.request("GET", &format!("/devices/device1/twin{Q}"), &[], b"");
    let (head, body) = rest.exchange(&twin);
    assert_eq!(head.status, 404);
    assert_eq!(head.header("iothub-errorcode"), None);
    assert_eq!(head.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(!body.is_empty());
    let put = rest.request("PUT", &format!("/devices/device1/messages/deviceBound{Q}"), &[], b"");
    let (head, _) = rest.exchange(&put);
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), Some("GET"));
    assert!(!rest.closed());
}

// ---------------------------------------------------------------------------------
// Framing (RFC 9112)

#[test]
fn rfc_9112_malformed_head_is_400_and_closes() {
    let mut rest = Rest::new();
    let id = rest.pair.raw[rest.conn].connection;
    let now = rest.pair.now;
    let result = match id {
        Some(id) => rest.pair.hub.handle_input(now, id, b"GET /\x01 HTTP/1.1\r\n\r\n"),
        None => panic!("not connected"),
    };
    assert!(matches!(result, Err(ProtocolError::Http(_))), "{result:?}");
    rest.pair.drive();
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 400);
    assert!(answers[0].0.has_token("connection", "close"));
    assert!(rest.closed());
}

#[test]
fn rfc_6585_too_many_header_fields_is_431_and_closes() {
    let mut rest = Rest::new();
    let headers: Vec<(String, &str)> = (0..200).map(|i| (format!("x-h{i}"), "v")).collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let request =
        rest.request("GET", &format!("/devices/device1/messages/deviceBound{Q}"), &headers, b"");
    let (head, _) = rest.exchange(&request);
    assert_eq!(head.status, 431);
    assert!(rest.closed());
}

#[test]
fn rfc_9112_8_a_body_cut_short_by_the_close_stores_nothing() {
    let mut rest = Rest::new();
    let token = rest.token("device1");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\n\
         Content-Length: 100\r\n\r\n0123456789",
        events_target()
    );
    rest.send(head.as_bytes());
    assert!(rest.answers().is_empty());
    rest.pair.raw_close(rest.conn);
    assert_eq!(rest.pair.stored.device("device1").count(), 0);
    assert_eq!(rest.pair.hub.connection_count(), 0);
}

#[test]
fn rfc_9112_7_1_an_overflowing_chunk_size_is_400_and_closes() {
    let mut rest = Rest::new();
    let token = rest.token("device1");
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\n\
         Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        events_target()
    );
    let (head, _) = rest.exchange(request.as_bytes());
    assert_eq!(head.status, 400);
    assert!(rest.closed());
    assert_eq!(rest.pair.stored.device("device1").count(), 0);
}

/// A send and a receive written at once, the send's store held: nothing is
/// answered until the store, then both in order (RFC 9112 §9.3.2).
fn pipelined(rest: &Rest) -> Vec<u8> {
    let mut bytes = rest.request("POST", &events_target(), &[], b"first");
    let get = format!("/devices/device1/messages/deviceBound{Q}");
    bytes.extend_from_slice(&rest.request("GET", &get, &[], b""));
    bytes
}

#[test]
fn rfc_9112_9_3_2_pipelined_requests_are_answered_in_order() {
    let mut rest = Rest::new();
    let _ = rest.pair.send_c2d("device1", Message::new("c2d"));
    rest.pair.hold_stores = true;
    let bytes = pipelined(&rest);
    rest.send(&bytes);
    assert!(rest.answers().is_empty());
    rest.pair.release_stores();
    let answers = rest.answers();
    let statuses: Vec<u16> = answers.iter().map(|(h, _)| h.status).collect();
    assert_eq!(statuses, [204, 200]);
    assert_eq!(&answers[1].1[..], b"c2d");
}

#[test]
fn byte_at_a_time_feeding_gives_the_same_answers() {
    let mut whole = Rest::new();
    let mut bytes = whole.request("POST", &events_target(), &[], b"first");
    bytes.extend_from_slice(&whole.request("POST", &events_target(), &[], b"second"));
    whole.send(&bytes);
    let expected = whole.answers();
    assert_eq!(expected.len(), 2);
    let mut trickle = Rest::new();
    for byte in &bytes {
        trickle.send(core::slice::from_ref(byte));
    }
    assert_eq!(trickle.answers(), expected);
    assert_eq!(trickle.pair.stored_bodies("device1"), whole.pair.stored_bodies("device1"));
}

#[test]
fn rfc_9112_9_6_connection_close_is_honoured() {
    let mut rest = Rest::new();
    let mut bytes = rest.request("POST", &events_target(), &[("Connection", "close")], b"x");
    // Nothing after the close is read (RFC 9112 §9.6).
    bytes.extend_from_slice(&rest.request("POST", &events_target(), &[], b"y"));
    rest.send(&bytes);
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.header("connection"), Some("close"));
    assert!(rest.closed());
    assert_eq!(rest.pair.stored_bodies("device1"), [Bytes::from_static(b"x")]);
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let mut rest = Rest::new();
    let token = rest.token("device1");
    let get = |keep_alive: &str| {
        format!(
            "GET /devices/device1/messages/deviceBound{Q} HTTP/1.0\r\n\
             Authorization: {token}\r\n{keep_alive}\r\n"
        )
    };
    let (head, _) = rest.exchange(get("Connection: keep-alive\r\n").as_bytes());
    assert_eq!(head.status, 204);
    assert_eq!(head.header("connection"), Some("keep-alive"));
    assert!(!rest.closed());
    let (head, _) = rest.exchange(get("").as_bytes());
    assert_eq!(head.header("connection"), Some("close"));
    assert!(rest.closed());
}

// ---------------------------------------------------------------------------------
// Timers

#[test]
fn an_idle_connection_closes_after_the_idle_timeout() {
    let mut rest = Rest::new();
    let request = rest.request("POST", &events_target(), &[], b"x");
    let _ = rest.exchange(&request);
    rest.pair.advance(Duration::from_secs(239));
    assert!(!rest.closed());
    rest.pair.advance(Duration::from_secs(2));
    assert!(rest.closed());
    // Closed quietly: no request had begun.
    assert!(rest.answers().is_empty());
}

#[test]
fn a_connection_without_a_request_closes_after_the_connect_timeout() {
    let mut rest = Rest::new();
    rest.pair.advance(Duration::from_secs(29));
    assert!(!rest.closed());
    rest.pair.advance(Duration::from_secs(2));
    assert!(rest.closed());
    assert!(rest.answers().is_empty());
}

#[test]
fn a_request_that_stalls_gets_408_and_closes() {
    let mut rest = Rest::new();
    let request = rest.request("POST", &events_target(), &[], b"x");
    let _ = rest.exchange(&request);
    rest.pair.advance(Duration::from_secs(100));
    // Half a body, then silence.
    let request = rest.request("POST", &events_target(), &[], b"0123456789");
    rest.send(&request[..request.len() - 5]);
    rest.pair.advance(Duration::from_secs(29));
    assert!(!rest.closed());
    rest.pair.advance(Duration::from_secs(2));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 408);
    assert!(rest.closed());
    assert_eq!(rest.pair.stored.device("device1").count(), 1);
}

proptest! {
    /// However the bytes of two pipelined requests are cut, the answers and the
    /// stored messages are those of the whole write.
    #[test]
    fn any_split_of_a_pipelined_pair_gives_the_same_answers(
        cuts in proptest::collection::vec(0usize..2000, 0..6),
        hold in any::<bool>(),
    ) {
        let mut rest = Rest::new();
        let _ = rest.pair.send_c2d("device1", Message::new("c2d"));
        rest.pair.hold_stores = hold;
        let bytes = pipelined(&rest);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            rest.send(&bytes[start..cut.max(start)]);
            start = cut.max(start);
        }
        rest.pair.release_stores();
        let statuses: Vec<u16> = rest.answers().iter().map(|(h, _)| h.status).collect();
        prop_assert_eq!(statuses, vec![204, 200]);
        prop_assert_eq!(rest.pair.stored_bodies("device1"), vec![Bytes::from_static(b"first")]);
    }
}

#[test]
fn spec_3_c2d_properties_no_header_can_carry_are_refused_when_sent() {
    let mut rest = Rest::new();
    for (name, value) in [("has space", "v"), ("k", "line\r\nbreak"), ("k", " padded")] {
        let mut m = Message::new(&b"x"[..]);
        m.properties.set(name, value);
        let refused = rest.pair.send_c2d("device1", m);
        assert!(
            matches!(refused, Err(HubError::NotHeaderSafe(_))),
            "{name:?}={value:?}: {refused:?}"
        );
        assert_eq!(refused.unwrap_err().code(), ErrorCode::ARGUMENT_INVALID);
    }
    let mut m = Message::new(&b"x"[..]);
    m.properties.set("unit", "°C");
    assert!(rest.pair.send_c2d("device1", m).is_ok(), "UTF-8 values are header values");
}

#[test]
fn telemetry_not_kept_is_answered_with_the_codes_status() {
    let mut rest = Rest::new();
    rest.pair.hold_stores = true;
    let request = rest.request("POST", &events_target(), &[], b"x");
    rest.send(&request);
    let held = core::mem::take(&mut rest.pair.pending_stores);
    let [HubEvent::StoreTelemetry { ticket, .. }] = held.as_slice() else {
        panic!("one store expected: {held:?}");
    };
    let now = rest.pair.now;
    rest.pair.hub.telemetry_refused(now, *ticket, ErrorCode::THROTTLING);
    rest.pair.drive();
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 429);
    assert!(rest.pair.stored.is_empty());
}

// ---------------------------------------------------------------------------------
// Under Authentication::Delegated (a field gateway's downstream)

mod delegated;
