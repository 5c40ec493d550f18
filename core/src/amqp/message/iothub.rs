//! IoT Hub's message model over AMQP (spec file §3 table, §5.4, §5.5): where each
//! system property travels, and the lock token in the delivery tag.

use alloc::string::{String, ToString};
use bytes::Bytes;

use super::{
    Annotations, ApplicationProperties, Body, Message, MessageError, MessageId, Properties,
};
use crate::amqp::types::{Symbol, Value};
use crate::iothub::{self, Ack, LockToken};
use crate::time::Timestamp;
use crate::utf8::Utf8Bytes;

/// Message annotation: the device that sent a D2C message (hub-stamped, spec file §3).
pub const CONNECTION_DEVICE_ID: &str = "iothub-connection-device-id";
/// Message annotation: the module that sent it.
pub const CONNECTION_MODULE_ID: &str = "iothub-connection-module-id";
/// Message annotation: when the hub enqueued the message (timestamp).
pub const ENQUEUED_TIME: &str = "iothub-enqueuedtime";
/// Message annotation: C2D delivery count (ubyte).
pub const DELIVERY_COUNT: &str = "iothub-deliverycount";
/// Message annotation: the C2D lock token as a GUID string (spec file §5.5).
pub const LOCK_TOKEN: &str = "x-opt-lock-token";
/// Message annotation: the C2D sequence number (ulong).
pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
/// Application property: the feedback a C2D sender asked for.
pub const ACK: &str = "iothub-ack";

/// The hub's stamps that [`iothub::Message`] has no field for (spec file §3, §5.5),
/// carried as message annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStamps {
    /// `iothub-connection-device-id`.
    pub connection_device_id: Option<String>,
    /// `iothub-connection-module-id`.
    pub connection_module_id: Option<String>,
    /// `x-opt-lock-token` (a GUID lock; a packet-id lock is not written).
    pub lock_token: Option<LockToken>,
    /// `x-opt-sequence-number`.
    pub sequence_number: Option<u64>,
    /// `iothub-deliverycount`.
    pub delivery_count: Option<u8>,
}

/// Why an AMQP message does not map to IoT Hub's model, or the reverse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// The body is amqp-sequence or amqp-value: IoT Hub bodies are data sections
    /// (spec file §5.5; the C SDK rejects anything else).
    #[error("the body is {found}, not data sections")]
    BodyNotData {
        /// The body form.
        found: &'static str,
    },
    /// An application property value has no text form (binary, decimal): IoT Hub
    /// properties are strings (spec file §3).
    #[error("application property {name:?} is a {found}, which has no text form")]
    PropertyValue {
        /// The property.
        name: String,
        /// Its type.
        found: &'static str,
    },
    /// An annotation IoT Hub defines has another type than the spec file gives it.
    #[error("annotation {name} is a {found}")]
    AnnotationType {
        /// The annotation.
        name: &'static str,
        /// Its type.
        found: &'static str,
    },
    /// A timestamp before 1970: IoT Hub times are after the epoch.
    #[error("{field} is before 1970")]
    TimeBeforeEpoch {
        /// The field.
        field: &'static str,
    },
    /// `content-type` or `content-encoding` is not ASCII, so not a symbol (§1.6.21).
    #[error("{field} is not ASCII, so cannot be a symbol")]
    NotAscii {
        /// The field.
        field: &'static str,
    },
    /// The message breaks §3.2 (an application property).
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Reads an AMQP message as IoT Hub's: properties as spec file §3's table places
/// them, application properties as text (null → a bare name), `iothub-ack` parsed
/// into [`iothub::Message::ack`] and removed, data sections joined into the body
/// (one section stays a slice of the payload).
///
/// # Errors
///
/// [`MappingError`].
pub fn to_iothub(amqp: &Message) -> Result<(iothub::Message, HubStamps), MappingError> {
    let body = amqp.body.data().ok_or(MappingError::BodyNotData { found: amqp.body.name() })?;
    let mut message = iothub::Message::new(body);
    if let Some(p) = &amqp.properties {
        let text = |s: &Option<Utf8Bytes>| s.as_ref().map(|s| s.as_str().to_string());
        message.message_id = p.message_id.as_ref().map(MessageId::to_string);
        message.correlation_id = p.correlation_id.as_ref().map(MessageId::to_string);
        message.user_id = p.user_id.as_ref().map(|u| String::from_utf8_lossy(u).into_owned());
        message.to = text(&p.to);
        message.content_type = p.content_type.as_ref().map(|s| s.as_str().to_string());
        message.content_encoding = p.content_encoding.as_ref().map(|s| s.as_str().to_string());
        message.expiry =
            p.absolute_expiry_time.map(|t| timestamp(t, "absolute-expiry-time")).transpose()?;
    }
    if let Some(app) = &amqp.application_properties {
        for (name, value) in app.iter() {
            let text = property_text(value).ok_or_else(|| MappingError::PropertyValue {
                name: name.as_str().to_string(),
                found: value.type_name(),
            })?;
            if *name == ACK {
                message.ack = text.as_deref().and_then(Ack::parse);
            } else {
                message.properties.insert(name.as_str(), text);
            }
        }
    }
    let mut stamps = HubStamps::default();
    if let Some(a) = &amqp.message_annotations {
        if let Some(v) = a.get(ENQUEUED_TIME) {
            let Value::Timestamp(t) = v else { return Err(wrong(ENQUEUED_TIME, v)) };
            message.enqueued_time = Some(timestamp(*t, ENQUEUED_TIME)?);
        }
        stamps.connection_device_id = annotation_string(a, CONNECTION_DEVICE_ID)?;
        stamps.connection_module_id = annotation_string(a, CONNECTION_MODULE_ID)?;
        if let Some(token) = annotation_string(a, LOCK_TOKEN)? {
            let guid = parse_uuid(&token).ok_or(MappingError::AnnotationType {
                name: LOCK_TOKEN,
                found: "string other than a GUID",
            })?;
            stamps.lock_token = Some(LockToken::from_guid(guid));
        }
        stamps.sequence_number = match a.get(SEQUENCE_NUMBER) {
            None => None,
            Some(Value::Ulong(n)) => Some(*n),
            Some(v) => return Err(wrong(SEQUENCE_NUMBER, v)),
        };
        stamps.delivery_count = match a.get(DELIVERY_COUNT) {
            None => None,
            Some(Value::Ubyte(n)) => Some(*n),
            Some(v) => return Err(wrong(DELIVERY_COUNT, v)),
        };
    }
    Ok((message, stamps))
}

/// Writes IoT Hub's message as AMQP (spec file §3, §5.4, §5.5): one data section;
/// message-id and correlation-id as uuid when they are a GUID in lower-case
/// canonical form (what the Node SDK does, spec file §5.4), strings otherwise;
/// user-id as binary; application properties as strings (a bare name as null),
/// `iothub-ack` among them; the enqueued time and `stamps` as message annotations.
///
/// # Errors
///
/// [`MappingError::NotAscii`]: a content type or encoding that is not ASCII.
pub fn from_iothub(message: &iothub::Message, stamps: &HubStamps) -> Result<Message, MappingError> {
    let symbol = |s: &Option<String>, field: &'static str| {
        s.as_ref()
            .map(|s| {
                Symbol::try_from_bytes(Bytes::from(s.clone()))
                    .map_err(|_| MappingError::NotAscii { field })
            })
            .transpose()
    };
    let id = |s: &Option<String>| {
        s.as_ref().map(|s| match parse_uuid(s) {
            Some(u) => MessageId::Uuid(u),
            None => MessageId::String(Utf8Bytes::from(s.as_str())),
        })
    };
    let properties = Properties {
        message_id: id(&message.message_id),
        correlation_id: id(&message.correlation_id),
        user_id: message.user_id.as_ref().map(|u| Bytes::from(u.clone())),
        to: message.to.as_deref().map(Utf8Bytes::from),
        content_type: symbol(&message.content_type, "content-type")?,
        content_encoding: symbol(&message.content_encoding, "content-encoding")?,
        absolute_expiry_time: message.expiry.map(millis),
        ..Properties::default()
    };
    let mut amqp = Message::new(Body::Data(alloc::vec![message.body.clone()]));
    if properties != Properties::default() {
        amqp.properties = Some(properties);
    }
    let mut app = ApplicationProperties::new();
    for (name, value) in message.properties.iter() {
        app.insert(name, value.map_or(Value::Null, |v| Value::String(Utf8Bytes::from(v))))?;
    }
    if let Some(ack) = message.ack {
        app.insert(ACK, Value::String(Utf8Bytes::from_static(ack.as_str())))?;
    }
    if !app.is_empty() {
        amqp.application_properties = Some(app);
    }
    let mut annotations = Annotations::new();
    let mut put =
        |name: &'static str, value: Value| annotations.insert(Symbol::from_static(name), value);
    if let Some(t) = message.enqueued_time {
        put(ENQUEUED_TIME, Value::Timestamp(millis(t)));
    }
    if let Some(d) = &stamps.connection_device_id {
        put(CONNECTION_DEVICE_ID, Value::String(Utf8Bytes::from(d.as_str())));
    }
    if let Some(m) = &stamps.connection_module_id {
        put(CONNECTION_MODULE_ID, Value::String(Utf8Bytes::from(m.as_str())));
    }
    if let Some(guid) = stamps.lock_token.and_then(|t| t.guid()) {
        put(LOCK_TOKEN, Value::String(Utf8Bytes::from(MessageId::Uuid(guid).to_string())));
    }
    if let Some(n) = stamps.sequence_number {
        put(SEQUENCE_NUMBER, Value::Ulong(n));
    }
    if let Some(n) = stamps.delivery_count {
        put(DELIVERY_COUNT, Value::Ubyte(n));
    }
    if !annotations.is_empty() {
        amqp.message_annotations = Some(annotations);
    }
    Ok(amqp)
}

/// The delivery tag carrying a C2D lock token: the GUID in .NET
/// `Guid.ToByteArray()` order, its first three fields little-endian (spec file §5.5,
/// TV-18). `None` for a packet-id lock, which AMQP never carries.
pub fn delivery_tag(token: &LockToken) -> Option<[u8; 16]> {
    token.guid().map(swap_guid_order)
}

/// The lock token a C2D delivery tag carries; `None` unless the tag is 16 bytes
/// (spec file §5.5, TV-18).
pub fn lock_token_from_tag(tag: &[u8]) -> Option<LockToken> {
    let bytes: [u8; 16] = tag.try_into().ok()?;
    Some(LockToken::from_guid(swap_guid_order(bytes)))
}

/// RFC 4122 order ↔ .NET order: reverses the first three fields; its own inverse.
fn swap_guid_order(mut g: [u8; 16]) -> [u8; 16] {
    g[..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}

/// A GUID written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower case, as
/// [`MessageId::Uuid`] prints it; anything else (upper case too) is not one, so
/// that text survives the trip through AMQP unchanged.
fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let bytes = s.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = bytes.iter().enumerate().filter(|(i, _)| !matches!(i, 8 | 13 | 18 | 23));
    if [8, 13, 18, 23].iter().any(|&i| bytes.get(i) != Some(&b'-')) {
        return None;
    }
    for byte in &mut out {
        let hi = hex(*digits.next()?.1)?;
        let lo = hex(*digits.next()?.1)?;
        *byte = hi << 4 | lo;
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn timestamp(ms: i64, field: &'static str) -> Result<Timestamp, MappingError> {
    u64::try_from(ms)
        .map(Timestamp::from_millis)
        .map_err(|_| MappingError::TimeBeforeEpoch { field })
}

/// IoT Hub times are after 1970 and before 2262, so within an i64 of ms.
fn millis(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn wrong(name: &'static str, v: &Value) -> MappingError {
    MappingError::AnnotationType { name, found: v.type_name() }
}

fn annotation_string(a: &Annotations, name: &'static str) -> Result<Option<String>, MappingError> {
    match a.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str().to_string())),
        Some(v) => Err(wrong(name, v)),
    }
}

/// An application property as IoT Hub text: null is a bare name (`Some(None)`);
/// numbers, booleans, chars, strings and symbols as written; timestamps in ms and
/// uuids as GUIDs; binary and decimals have no text (`None`).
fn property_text(v: &Value) -> Option<Option<String>> {
    Some(Some(match v {
        Value::Null => return Some(None),
        Value::Boolean(b) => b.to_string(),
        Value::Ubyte(n) => n.to_string(),
        Value::Ushort(n) => n.to_string(),
        Value::Uint(n) => n.to_string(),
        Value::Ulong(n) => n.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Short(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) | Value::Timestamp(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        Value::Char(c) => c.to_string(),
        Value::Uuid(u) => MessageId::Uuid(*u).to_string(),
        Value::String(s) => s.as_str().to_string(),
        Value::Symbol(s) => s.as_str().to_string(),
        _ => return None,
    }))
}
