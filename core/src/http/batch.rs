//! Telemetry batches: many D2C messages in one request (spec file §6.3, TV-16).
//!
//! The body is a JSON array, one object per message: `"body"` holds the message
//! bytes in base64 (or as text with `"base64Encoded": false`), `"properties"` the
//! headers a single send would carry (`iothub-app-<name>`, `iothub-messageid`, …),
//! so a batch and a single send read into the same [`Message`] through
//! [`super::message`].

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::head::Header;
use super::message::{self, MessageError};
use crate::iothub::Message;

/// The `Content-Type` that marks a batch (spec file §6.3).
pub const CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.json";

/// Why a batch body was refused: 400 for each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Not JSON, or not an array of objects with a string `"body"`, boolean
    /// `"base64Encoded"` and string-valued `"properties"`.
    #[error("the batch is not a JSON array of messages: {0}")]
    Shape(String),
    /// A `"body"` that is not base64 while `"base64Encoded"` is true (the default).
    #[error("message {0} of the batch: its body is not base64")]
    Base64(usize),
    /// A message's properties do not read (see [`MessageError`]).
    #[error("message {index} of the batch: {error}")]
    Message {
        /// Its place in the array, from 0.
        index: usize,
        /// What is wrong.
        error: MessageError,
    },
    /// An empty array: nothing to store, and no SDK sends one.
    #[error("the batch holds no message")]
    Empty,
}

/// Writes `messages` as a batch body: base64 bodies, every property as its header
/// (system properties too, as the .NET SDK does), `"properties"` left out when a
/// message has none.
///
/// Errors: [`MessageError`] for a property a header cannot carry, as a single send
/// would refuse it.
pub fn encode<'m>(
    messages: impl IntoIterator<Item = &'m Message>,
) -> Result<Vec<u8>, MessageError> {
    let mut items = Vec::new();
    for m in messages {
        let mut headers = Vec::new();
        message::write_d2c(m, &mut headers)?;
        let mut item = Map::new();
        item.insert(String::from("body"), Value::String(BASE64.encode(&m.body)));
        if !headers.is_empty() {
            let properties = headers.into_iter().map(|h| (h.name, Value::String(h.value)));
            item.insert(String::from("properties"), Value::Object(properties.collect()));
        }
        items.push(Value::Object(item));
    }
    // Serializing a Value into a Vec cannot fail.
    Ok(serde_json::to_vec(&Value::Array(items)).unwrap_or_default())
}

/// Reads a batch body into its messages, in order (spec file §6.3, TV-16).
///
/// Errors: see [`BatchError`]; one bad message refuses the whole batch, so a device
/// is never told a batch was taken when part of it was not.
pub fn decode(body: &[u8]) -> Result<Vec<Message>, BatchError> {
    let shape = |what: &str| BatchError::Shape(String::from(what));
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(shape("the body is JSON but not an array")),
        Err(e) => return Err(BatchError::Shape(alloc::format!("{e}"))),
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut messages = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut item) = item else {
            return Err(shape("an element is not an object"));
        };
        let Some(Value::String(text)) = item.remove("body") else {
            return Err(shape("an element has no string \"body\""));
        };
        let base64 = match item.remove("base64Encoded") {
            None => true,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(shape("\"base64Encoded\" is not a boolean")),
        };
        let body = if base64 {
            Bytes::from(BASE64.decode(text.as_bytes()).map_err(|_| BatchError::Base64(index))?)
        } else {
            Bytes::from(text.into_bytes())
        };
        let headers = match item.remove("properties") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(properties)) => properties
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(value) => Ok(Header::new(name, value)),
                    _ => Err(shape("a property value is not a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(shape("\"properties\" is not an object")),
        };
        let message = message::read_d2c(&headers, body)
            .map_err(|error| BatchError::Message { index, error })?;
        messages.push(message);
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use proptest::prelude::*;

    #[test]
    fn tv16_batch_reads_into_two_messages() {
        let body = br#"[{"body":"eyJ0IjoyMS41fQ==","properties":{"iothub-app-unit":"C","iothub-messageid":"m1"}},{"body":"aGVsbG8="}]"#;
        let messages = decode(body).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(&messages[0].body[..], br#"{"t":21.5}"#);
        assert_eq!(messages[0].properties.get("unit"), Some(Some("C")));
        assert_eq!(messages[0].message_id.as_deref(), Some("m1"));
        assert_eq!(&messages[1].body[..], b"hello");
        assert!(messages[1].properties.is_empty());
    }

    #[test]
    fn tv16_text_body_variant() {
        let messages = decode(br#"[{"body":"hello","base64Encoded":false}]"#).unwrap();
        assert_eq!(&messages[0].body[..], b"hello");
    }

    #[test]
    fn bad_batches_are_refused_whole() {
        let cases: [&[u8]; 9] = [
            b"",
            b"{}",
            b"[1]",
            br#"[{"properties":{}}]"#,
            br#"[{"body":"aGk=","base64Encoded":"no"}]"#,
            br#"[{"body":"aGk=","properties":{"iothub-app-a":1}}]"#,
            br#"[{"body":"aGk=","properties":[]}]"#,
            // Node's unescaped quote in a property value (spec file §6.3).
            br#"[{"body":"aGk=","properties":{"iothub-app-a":"say "hi""}}]"#,
            br#"[{"body":"aGk="},{"body":"aGk=","properties":{"iothub-expiry":"soon"}}]"#,
        ];
        for body in cases {
            assert!(decode(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(decode(b"[]"), Err(BatchError::Empty));
        assert_eq!(decode(br#"[{"body":"!!"}]"#), Err(BatchError::Base64(0)));
    }

    #[test]
    fn encode_leaves_out_empty_properties() {
        let body = encode([&Message::new("hello")]).unwrap();
        assert_eq!(body, br#"[{"body":"aGVsbG8="}]"#);
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            proptest::option::of("[!-~]{1,10}"),
            proptest::option::of(0..=Timestamp::LAST_RFC3339.as_millis()),
            proptest::collection::vec(("[A-Za-z0-9_-]{1,8}", "[!-~]{0,10}"), 0..4),
            proptest::collection::vec(any::<u8>(), 0..32),
        )
            .prop_map(|(id, exp, props, body)| {
                let mut m = Message::new(body);
                m.message_id = id;
                m.expiry = exp.map(Timestamp::from_millis);
                m.properties = props.into_iter().collect();
                m
            })
    }

    proptest! {
        #[test]
        fn batches_round_trip(messages in proptest::collection::vec(message(), 1..5)) {
            let body = encode(&messages).unwrap();
            let back = decode(&body).unwrap();
            // JSON objects do not keep key order: compare properties as sets.
            prop_assert_eq!(back.len(), messages.len());
            for (b, m) in back.iter().zip(&messages) {
                let sorted = |m: &Message| {
                    let mut p: Vec<_> = m.properties.iter().map(|(n, v)| (String::from(n), v.map(String::from))).collect();
                    p.sort();
                    p
                };
                prop_assert_eq!(sorted(b), sorted(m));
                prop_assert_eq!(&b.body, &m.body);
                prop_assert_eq!(&b.message_id, &m.message_id);
                prop_assert_eq!(b.expiry, m.expiry);
            }
        }
    }
}
