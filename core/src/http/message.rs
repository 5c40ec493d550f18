//! IoT Hub messages in HTTP header fields (spec file §3 table, §6.2, §6.4): a D2C
//! message in a request's `iothub-*` headers, a C2D message in a `200 OK`'s headers
//! with its lock token as the ETag.
//!
//! Writing keeps the spellings the strictest reader needs: the C SDK matches C2D
//! header names byte for byte (`iothub-app-`, `iothub-messageid`, `ContentType`,
//! `ContentEncoding`; spec file §6.4). Reading ignores case, as RFC 9110 §5.1 says,
//! since Node writes `IoTHub-MessageId`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::Bytes;

use super::head::Header;
use crate::iothub::{Ack, LockToken, Message};
use crate::time::Timestamp;

/// The prefix of an application property's header name (spec file §6.2).
pub const APP_PREFIX: &str = "iothub-app-";

/// A message field that cannot be an HTTP header, or a header that is not the
/// field it names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A property name that is not an RFC 9110 token (`tchar`s only), so it cannot
    /// follow `iothub-app-` in a header name.
    #[error("property name {0:?} cannot be an HTTP header name (RFC 9110 §5.1)")]
    PropertyName(String),
    /// A value with a control character (CR, LF, NUL, …), which no header value may
    /// hold (RFC 9110 §5.5).
    #[error("the value of {0} cannot be an HTTP header value (RFC 9110 §5.5)")]
    Value(String),
    /// A header whose value does not read as its field: a date that is not RFC 3339,
    /// an unknown `iothub-ack`, a number that is not one.
    #[error("header {name} has an invalid value {value:?}")]
    Invalid {
        /// The header's name as the IoT Hub spelling.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A `200 OK` to a C2D receive without an ETag holding a quoted GUID (spec file
    /// §6.4; the C SDK refuses it too).
    #[error("the C2D message has no ETag holding a quoted lock token")]
    MissingLockToken,
}

const MESSAGE_ID: &str = "iothub-messageid";
const CORRELATION_ID: &str = "iothub-correlationid";
const USER_ID: &str = "iothub-userid";
const TO: &str = "iothub-to";
const EXPIRY: &str = "iothub-expiry";
const ACK: &str = "iothub-ack";
const CONTENT_TYPE: &str = "iothub-contenttype";
const CONTENT_ENCODING: &str = "iothub-contentencoding";
const SEQUENCE_NUMBER: &str = "iothub-sequencenumber";
const ENQUEUED_TIME: &str = "iothub-enqueuedtime";
const DELIVERY_COUNT: &str = "iothub-deliverycount";
/// The C SDK's names for a C2D message's content type and encoding (spec file §6.4).
const C2D_CONTENT_TYPE: &str = "ContentType";
const C2D_CONTENT_ENCODING: &str = "ContentEncoding";

/// Appends the headers that carry `message` on a D2C request (spec file §6.2): the
/// system properties a device sets, then `iothub-app-<name>` per application
/// property (a property without a value gets an empty one). `to`, the enqueued
/// time and `ack` are the hub's or the service's, not a device's, and are left out.
///
/// Errors: a property name that is not a token, or a value with a control
/// character; nothing is appended then.
pub fn write_d2c(message: &Message, out: &mut Vec<Header>) -> Result<(), MessageError> {
    let mut headers = system_headers(message, &[MESSAGE_ID, CORRELATION_ID, USER_ID, EXPIRY]);
    headers.extend(
        [(CONTENT_TYPE, &message.content_type), (CONTENT_ENCODING, &message.content_encoding)]
            .into_iter()
            .filter_map(|(name, value)| Some(Header::new(name, value.as_deref()?))),
    );
    app_headers(message, &mut headers)?;
    check_values(&headers)?;
    out.extend(headers);
    Ok(())
}

/// Reads a D2C message from a request's headers and body (spec file §6.2): the
/// system property headers, and each `iothub-app-<name>` as property `<name>` with
/// the case written. Other headers (`Host`, `Authorization`, the path copy in
/// `iothub-to`, …) are not the message's.
///
/// Errors: [`MessageError::Invalid`] for an `iothub-expiry` that is not RFC 3339.
pub fn read_d2c(headers: &[Header], body: Bytes) -> Result<Message, MessageError> {
    let mut message = Message::new(body);
    for h in headers {
        let value = || Some(h.value.clone());
        match h.name.to_ascii_lowercase().as_str() {
            MESSAGE_ID => message.message_id = value(),
            CORRELATION_ID => message.correlation_id = value(),
            USER_ID => message.user_id = value(),
            CONTENT_TYPE => message.content_type = value(),
            CONTENT_ENCODING => message.content_encoding = value(),
            EXPIRY => message.expiry = Some(timestamp(EXPIRY, &h.value)?),
            _ => read_app(h, &mut message),
        }
    }
    Ok(message)
}

/// What a C2D `200 OK` carries besides the message (spec file §6.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct C2dHeaders {
    /// The lock, written as the quoted ETag.
    pub lock_token: LockToken,
    /// The queue's sequence number for the message.
    pub sequence_number: u64,
    /// Times the message was abandoned so far.
    pub delivery_count: u32,
}

/// Appends the headers of a C2D `200 OK` (spec file §6.4, TV-15): `ETag:
/// "<lock>"`, the system properties in the spellings the C SDK matches, and
/// `iothub-app-<name>` per application property.
///
/// Errors: as [`write_d2c`]; a hub refuses such a message when it is queued, so
/// this only guards.
pub fn write_c2d(
    c2d: &C2dHeaders,
    message: &Message,
    out: &mut Vec<Header>,
) -> Result<(), MessageError> {
    let mut headers = alloc::vec![Header::new("ETag", format!("\"{}\"", c2d.lock_token))];
    headers.extend(system_headers(message, &[MESSAGE_ID, CORRELATION_ID]));
    headers.push(Header::new(SEQUENCE_NUMBER, c2d.sequence_number.to_string()));
    headers.extend(system_headers(message, &[TO, ENQUEUED_TIME, EXPIRY]));
    headers.push(Header::new(DELIVERY_COUNT, c2d.delivery_count.to_string()));
    headers.extend(system_headers(message, &[USER_ID, ACK]));
    headers.extend(
        [
            (C2D_CONTENT_TYPE, &message.content_type),
            (C2D_CONTENT_ENCODING, &message.content_encoding),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some(Header::new(name, value.as_deref()?))),
    );
    app_headers(message, &mut headers)?;
    check_values(&headers)?;
    out.extend(headers);
    Ok(())
}

/// Reads a C2D message from a `200 OK`'s headers and body (spec file §6.4, TV-15).
/// Content type and encoding are read under either spelling (`ContentType`,
/// `iothub-contenttype`).
///
/// Errors: [`MessageError::MissingLockToken`] without a quoted GUID ETag;
/// [`MessageError::Invalid`] for a date, ack or number that does not read.
pub fn read_c2d(headers: &[Header], body: Bytes) -> Result<(C2dHeaders, Message), MessageError> {
    let mut message = Message::new(body);
    let mut lock_token = None;
    let mut sequence_number = 0;
    let mut delivery_count = 0;
    for h in headers {
        let value = || Some(h.value.clone());
        match h.name.to_ascii_lowercase().as_str() {
            "etag" => {
                let quoted = h.value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                lock_token = Some(
                    quoted.and_then(|v| v.parse().ok()).ok_or(MessageError::MissingLockToken)?,
                );
            }
            MESSAGE_ID => message.message_id = value(),
            CORRELATION_ID => message.correlation_id = value(),
            USER_ID => message.user_id = value(),
            TO => message.to = value(),
            "contenttype" | CONTENT_TYPE => message.content_type = value(),
            "contentencoding" | CONTENT_ENCODING => message.content_encoding = value(),
            EXPIRY => message.expiry = Some(timestamp(EXPIRY, &h.value)?),
            ENQUEUED_TIME => message.enqueued_time = Some(timestamp(ENQUEUED_TIME, &h.value)?),
            ACK => message.ack = Some(Ack::parse(&h.value).ok_or_else(|| invalid(ACK, &h.value))?),
            SEQUENCE_NUMBER => {
                sequence_number =
                    h.value.parse().map_err(|_| invalid(SEQUENCE_NUMBER, &h.value))?;
            }
            DELIVERY_COUNT => {
                delivery_count = h.value.parse().map_err(|_| invalid(DELIVERY_COUNT, &h.value))?;
            }
            _ => read_app(h, &mut message),
        }
    }
    let lock_token = lock_token.ok_or(MessageError::MissingLockToken)?;
    Ok((C2dHeaders { lock_token, sequence_number, delivery_count }, message))
}

/// The headers among `names` whose system property `message` sets, in that order.
fn system_headers(message: &Message, names: &[&'static str]) -> Vec<Header> {
    names
        .iter()
        .filter_map(|&name| {
            let value = match name {
                MESSAGE_ID => message.message_id.clone(),
                CORRELATION_ID => message.correlation_id.clone(),
                USER_ID => message.user_id.clone(),
                TO => message.to.clone(),
                EXPIRY => message.expiry.map(Timestamp::to_rfc3339),
                ENQUEUED_TIME => message.enqueued_time.map(Timestamp::to_rfc3339),
                ACK => message.ack.map(|a| String::from(a.as_str())),
                _ => None,
            }?;
            Some(Header::new(name, value))
        })
        .collect()
}

fn app_headers(message: &Message, out: &mut Vec<Header>) -> Result<(), MessageError> {
    for (name, value) in message.properties.iter() {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(MessageError::PropertyName(String::from(name)));
        }
        out.push(Header::new(format!("{APP_PREFIX}{name}"), value.unwrap_or_default()));
    }
    Ok(())
}

fn read_app(h: &Header, message: &mut Message) {
    let prefix = h.name.get(..APP_PREFIX.len());
    if prefix.is_some_and(|p| p.eq_ignore_ascii_case(APP_PREFIX)) {
        let name = h.name.get(APP_PREFIX.len()..).unwrap_or_default();
        if !name.is_empty() {
            message.properties.insert(name, Some(h.value.clone()));
        }
    }
}

/// Whether `v` can be written as a header value as it is: header values are
/// written as given, so one with CR or LF would end the head early. Every control
/// character but tab is refused (RFC 9110 §5.5), and surrounding whitespace, which
/// a reader strips.
pub(crate) fn is_header_value(v: &str) -> bool {
    !v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
        && !v.starts_with([' ', '\t'])
        && !v.ends_with([' ', '\t'])
}

fn check_values(headers: &[Header]) -> Result<(), MessageError> {
    match headers.iter().find(|h| !is_header_value(&h.value)) {
        Some(h) => Err(MessageError::Value(h.name.clone())),
        None => Ok(()),
    }
}

/// RFC 9110 §5.6.2 `tchar`: what a header name is made of. It is also the spec
/// file's character set for HTTP property names (§3).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn timestamp(name: &'static str, value: &str) -> Result<Timestamp, MessageError> {
    Timestamp::parse_rfc3339(value).ok_or_else(|| invalid(name, value))
}

fn invalid(name: &'static str, value: &str) -> MessageError {
    MessageError::Invalid { name, value: String::from(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(name: &str, value: &str) -> Header {
        Header::new(name, value)
    }

    #[test]
    fn tv15_c2d_headers_read_into_the_message() {
        let headers = [
            h("ETag", "\"0f8fad5b-d9cb-469f-a165-70867728950e\""),
            h("iothub-messageid", "msg-42"),
            h("iothub-correlationid", "corr-9"),
            h("iothub-sequencenumber", "17"),
            h("iothub-to", "/devices/device1/messages/deviceBound"),
            h("iothub-enqueuedtime", "2024-01-02T03:04:05.0000000Z"),
            h("iothub-expiry", "2024-01-02T04:04:05.0000000Z"),
            h("iothub-deliverycount", "0"),
            h("iothub-userid", "myhub"),
            h("iothub-ack", "full"),
            h("iothub-app-color", "blue"),
        ];
        let (c2d, m) = read_c2d(&headers, Bytes::from_static(b"hi")).unwrap();
        assert_eq!(c2d.lock_token.to_string(), "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_eq!(c2d.sequence_number, 17);
        assert_eq!(c2d.delivery_count, 0);
        assert_eq!(m.message_id.as_deref(), Some("msg-42"));
        assert_eq!(m.correlation_id.as_deref(), Some("corr-9"));
        assert_eq!(m.to.as_deref(), Some("/devices/device1/messages/deviceBound"));
        assert_eq!(m.enqueued_time, Some(Timestamp::from_millis(1_704_164_645_000)));
        assert_eq!(m.expiry, Some(Timestamp::from_millis(1_704_168_245_000)));
        assert_eq!(m.user_id.as_deref(), Some("myhub"));
        assert_eq!(m.ack, Some(Ack::Full));
        assert_eq!(m.properties.get("color"), Some(Some("blue")));
        assert_eq!(&m.body[..], b"hi");
    }

    #[test]
    fn spec_6_4_c2d_headers_use_the_c_sdk_spellings() {
        let mut m = Message::new("x");
        m.message_id = Some("m".into());
        m.content_type = Some("application/json".into());
        m.content_encoding = Some("utf-8".into());
        m.properties.set("color", "blue");
        let lock: LockToken = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        let c2d = C2dHeaders { lock_token: lock, sequence_number: 3, delivery_count: 1 };
        let mut out = Vec::new();
        write_c2d(&c2d, &m, &mut out).unwrap();
        let names: Vec<&str> = out.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ETag",
                "iothub-messageid",
                "iothub-sequencenumber",
                "iothub-deliverycount",
                "ContentType",
                "ContentEncoding",
                "iothub-app-color"
            ]
        );
        assert_eq!(out[0].value, "\"0f8fad5b-d9cb-469f-a165-70867728950e\"");
    }

    #[test]
    fn spec_6_2_d2c_headers_read_in_any_case_and_skip_the_rest() {
        let headers = [
            h("Host", "hub"),
            h("Authorization", "SharedAccessSignature sr=x"),
            h("iothub-to", "/devices/d/messages/events"),
            h("IoTHub-MessageId", "m1"),
            h("IoTHub-App-Unit", "C"),
            h("iothub-app-", "nameless"),
            h("iothub-expiry", "2024-01-02T03:04:05.000Z"),
        ];
        let m = read_d2c(&headers, Bytes::new()).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("m1"));
        assert_eq!(m.to, None);
        assert_eq!(m.expiry, Some(Timestamp::from_millis(1_704_164_645_000)));
        assert_eq!(m.properties.iter().collect::<Vec<_>>(), [("Unit", Some("C"))]);
        let bad = [h("iothub-expiry", "tomorrow")];
        assert!(matches!(read_d2c(&bad, Bytes::new()), Err(MessageError::Invalid { .. })));
    }

    #[test]
    fn values_that_would_break_the_head_are_refused() {
        let mut out = Vec::new();
        let mut m = Message::new("x");
        m.properties.set("a", "x\r\nInjected: 1");
        assert_eq!(write_d2c(&m, &mut out), Err(MessageError::Value("iothub-app-a".into())));
        let mut m = Message::new("x");
        m.properties.set("a b", "1");
        assert_eq!(write_d2c(&m, &mut out), Err(MessageError::PropertyName("a b".into())));
        let mut m = Message::new("x");
        m.message_id = Some(" padded".into());
        assert_eq!(write_d2c(&m, &mut out), Err(MessageError::Value("iothub-messageid".into())));
        assert!(out.is_empty());
    }

    #[test]
    fn c2d_without_a_quoted_guid_etag_is_refused() {
        for etag in
            [None, Some("0f8fad5b-d9cb-469f-a165-70867728950e"), Some("\"\""), Some("\"x\"")]
        {
            let headers: Vec<Header> = etag.map(|e| h("ETag", e)).into_iter().collect();
            assert_eq!(read_c2d(&headers, Bytes::new()), Err(MessageError::MissingLockToken));
        }
    }

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
    }

    fn value() -> impl Strategy<Value = String> {
        "[ -~]{0,20}".prop_map(|v| String::from(v.trim()))
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            proptest::option::of(value()),
            proptest::option::of(value()),
            proptest::option::of(0..=Timestamp::LAST_RFC3339.as_millis()),
            proptest::collection::vec((token(), value()), 0..4),
            proptest::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(|(id, ct, exp, props, body)| {
                let mut m = Message::new(body);
                m.message_id = id;
                m.content_type = ct;
                m.expiry = exp.map(Timestamp::from_millis);
                for (n, v) in props {
                    m.properties.set(n, v);
                }
                m
            })
    }

    proptest! {
        #[test]
        fn d2c_headers_round_trip(m in message()) {
            let mut headers = Vec::new();
            write_d2c(&m, &mut headers).unwrap();
            prop_assert_eq!(read_d2c(&headers, m.body.clone()).unwrap(), m);
        }

        #[test]
        fn c2d_headers_round_trip(m in message(), guid: [u8; 16], seq: u64, count: u32) {
            let c2d = C2dHeaders { lock_token: LockToken::from_guid(guid), sequence_number: seq, delivery_count: count };
            let mut headers = Vec::new();
            write_c2d(&c2d, &m, &mut headers).unwrap();
            prop_assert_eq!(read_c2d(&headers, m.body.clone()).unwrap(), (c2d, m));
        }
    }
}
