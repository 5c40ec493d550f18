//! The AMQP message format (OASIS AMQP 1.0 part 3 §3.2): a message is a sequence of
//! sections — header, delivery-annotations, message-annotations, properties,
//! application-properties, a body, footer — each a described value.
//!
//! - `header`, `properties`, `annotations`: the sections' typed forms.
//! - `iothub`: the mapping to IoT Hub's message model (spec file §3, §5.4, §5.5).
//! - [`Message::decode`] reads a transfer's payload; [`decode_batch`] the C SDK's
//!   batches (spec file §5.4).

mod annotations;
mod error;
mod header;
mod iothub;
mod properties;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use annotations::{AnnotationKey, Annotations, ApplicationProperties};
pub use error::{FieldError, MessageError};
pub use header::Header;
pub use iothub::{
    ACK, CONNECTION_DEVICE_ID, CONNECTION_MODULE_ID, DELIVERY_COUNT, ENQUEUED_TIME, HubStamps,
    LOCK_TOKEN, MappingError, SEQUENCE_NUMBER, delivery_tag, from_iothub, lock_token_from_tag,
    to_iothub,
};
pub use properties::{MessageId, Properties};

pub(crate) use error::Section;

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::performative::field::Writer;
use crate::amqp::types::{self, Described, Descriptor, EncodeError, Limits, Value};

/// §3.2.1 `amqp:header:list`.
pub const HEADER: u64 = 0x70;
/// §3.2.2 `amqp:delivery-annotations:map`.
pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
/// §3.2.3 `amqp:message-annotations:map`.
pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
/// §3.2.4 `amqp:properties:list`.
pub const PROPERTIES: u64 = 0x73;
/// §3.2.5 `amqp:application-properties:map`.
pub const APPLICATION_PROPERTIES: u64 = 0x74;
/// §3.2.6 `amqp:data:binary`.
pub const DATA: u64 = 0x75;
/// §3.2.7 `amqp:amqp-sequence:list`.
pub const AMQP_SEQUENCE: u64 = 0x76;
/// §3.2.8 `amqp:amqp-value:*`.
pub const AMQP_VALUE: u64 = 0x77;
/// §3.2.9 `amqp:footer:map`.
pub const FOOTER: u64 = 0x78;

/// A message's body (§3.2): one form only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body section. §3.2 asks for one, but peers send messages without (a twin
    /// response, spec file TV-19); it is read as this and written as nothing.
    Empty,
    /// One or more data sections (§3.2.6), each a slice of the payload.
    Data(Vec<Bytes>),
    /// One or more amqp-sequence sections (§3.2.7).
    Sequence(Vec<Vec<Value>>),
    /// A single amqp-value section (§3.2.8).
    Value(Value),
}

impl Body {
    /// The data sections as one byte string (IoT Hub's message body, spec file
    /// §5.4–§5.7): empty for no body; `None` for an amqp-value or amqp-sequence
    /// body.
    pub fn data(&self) -> Option<Bytes> {
        match self {
            Body::Empty => Some(Bytes::new()),
            Body::Data(data) => Some(match data.as_slice() {
                [one] => one.clone(),
                many => {
                    let mut joined = BytesMut::new();
                    many.iter().for_each(|d| joined.extend_from_slice(d));
                    joined.freeze()
                }
            }),
            Body::Sequence(_) | Body::Value(_) => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Body::Empty => "no body",
            Body::Data(_) => "data",
            Body::Sequence(_) => "amqp-sequence",
            Body::Value(_) => "amqp-value",
        }
    }
}

/// An annotated message (§3.2): the bare message (properties, application
/// properties, body) and the annotations around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// §3.2.1.
    pub header: Option<Header>,
    /// §3.2.2: for the next hop only.
    pub delivery_annotations: Option<Annotations>,
    /// §3.2.3: IoT Hub's `iothub-*` and `x-opt-*` stamps (spec file §3).
    pub message_annotations: Option<Annotations>,
    /// §3.2.4.
    pub properties: Option<Properties>,
    /// §3.2.5.
    pub application_properties: Option<ApplicationProperties>,
    /// §3.2.6–§3.2.8.
    pub body: Body,
    /// §3.2.9.
    pub footer: Option<Annotations>,
}

/// The sections in §3.2's order; the three body sections share one rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Header,
    DeliveryAnnotations,
    MessageAnnotations,
    Properties,
    ApplicationProperties,
    Body,
    Footer,
}

/// Whether sections must come in §3.2's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Standard,
    /// The C SDK's batched messages put properties first (spec file §5.4).
    Any,
}

fn section_code(descriptor: &Descriptor) -> Option<u64> {
    match descriptor {
        Descriptor::Code(code) => Some(*code),
        Descriptor::Symbol(s) => Some(match s.as_str() {
            "amqp:header:list" => HEADER,
            "amqp:delivery-annotations:map" => DELIVERY_ANNOTATIONS,
            "amqp:message-annotations:map" => MESSAGE_ANNOTATIONS,
            "amqp:properties:list" => PROPERTIES,
            "amqp:application-properties:map" => APPLICATION_PROPERTIES,
            "amqp:data:binary" => DATA,
            "amqp:amqp-sequence:list" => AMQP_SEQUENCE,
            "amqp:amqp-value:*" => AMQP_VALUE,
            "amqp:footer:map" => FOOTER,
            _ => return None,
        }),
    }
}

fn section_name(code: u64) -> &'static str {
    match code {
        HEADER => "header",
        DELIVERY_ANNOTATIONS => "delivery-annotations",
        MESSAGE_ANNOTATIONS => "message-annotations",
        PROPERTIES => "properties",
        APPLICATION_PROPERTIES => "application-properties",
        DATA => "data",
        AMQP_SEQUENCE => "amqp-sequence",
        AMQP_VALUE => "amqp-value",
        _ => "footer",
    }
}

fn rank(code: u64) -> Option<Rank> {
    Some(match code {
        HEADER => Rank::Header,
        DELIVERY_ANNOTATIONS => Rank::DeliveryAnnotations,
        MESSAGE_ANNOTATIONS => Rank::MessageAnnotations,
        PROPERTIES => Rank::Properties,
        APPLICATION_PROPERTIES => Rank::ApplicationProperties,
        DATA | AMQP_SEQUENCE | AMQP_VALUE => Rank::Body,
        FOOTER => Rank::Footer,
        _ => return None,
    })
}

/// The value of a section whose type §3.2 fixes, or a field error naming it.
fn expect_map(value: Value, section: &'static str) -> Result<Vec<(Value, Value)>, MessageError> {
    match value {
        Value::Map(pairs) => Ok(pairs),
        other => {
            Err(FieldError { section, field: "value", expected: "map", found: other.type_name() }
                .into())
        }
    }
}

impl Message {
    /// A message with this body and no other section.
    pub fn new(body: Body) -> Message {
        Message {
            header: None,
            delivery_annotations: None,
            message_annotations: None,
            properties: None,
            application_properties: None,
            body,
            footer: None,
        }
    }

    /// Reads a transfer's payload: sections to its end, in §3.2's order. Data
    /// sections are slices of `payload`.
    ///
    /// # Errors
    ///
    /// [`MessageError`]: a section is not a value within `limits`, is unknown, out
    /// of order, repeated, or breaks its own section's rules.
    pub fn decode(payload: &Bytes, limits: &Limits) -> Result<Message, MessageError> {
        decode_sections(payload, limits, Order::Standard)
    }

    /// Writes the sections in §3.2's order, smallest encodings.
    ///
    /// # Errors
    ///
    /// As [`types::encode`]; nothing a message built from its typed parts can hit
    /// except a value over 4 GiB.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        // Straight into `out`, each section as it is built; on failure `out` is cut
        // back, so that nothing is written.
        let start = out.len();
        let result = self.encode_sections(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_sections(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let described = |code: u64, value: Value| Value::from(Described::new(code, value));
        if let Some(h) = self.header {
            h.write(Writer::encoding(out))?;
        }
        if let Some(a) = &self.delivery_annotations {
            a.encode(DELIVERY_ANNOTATIONS, out)?;
        }
        if let Some(a) = &self.message_annotations {
            a.encode(MESSAGE_ANNOTATIONS, out)?;
        }
        if let Some(p) = &self.properties {
            p.write(Writer::encoding(out))?;
        }
        if let Some(a) = &self.application_properties {
            a.encode(out)?;
        }
        match &self.body {
            Body::Empty => {}
            Body::Data(data) => {
                for d in data {
                    types::encode(&described(DATA, Value::Binary(d.clone())), out)?;
                }
            }
            Body::Sequence(seqs) => {
                for s in seqs {
                    types::encode(&described(AMQP_SEQUENCE, Value::List(s.clone())), out)?;
                }
            }
            Body::Value(v) => types::encode(&described(AMQP_VALUE, v.clone()), out)?,
        }
        if let Some(a) = &self.footer {
            a.encode(FOOTER, out)?;
        }
        Ok(())
    }
}

fn decode_sections(
    payload: &Bytes,
    limits: &Limits,
    order: Order,
) -> Result<Message, MessageError> {
    let mut message = Message::new(Body::Empty);
    let mut last: Option<(Rank, u64)> = None;
    let mut seen: Vec<u64> = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let (value, used) = types::decode(&payload.slice(pos..), limits)?;
        pos += used;
        let Value::Described(described) = value else {
            return Err(MessageError::NotASection { found: value.type_name() });
        };
        let Described { descriptor, value } = *described;
        let code = section_code(&descriptor)
            .filter(|code| rank(*code).is_some())
            .ok_or(MessageError::UnknownSection { descriptor: descriptor.clone() })?;
        let name = section_name(code);
        let this = rank(code).unwrap_or(Rank::Footer);
        if this != Rank::Body && seen.contains(&code) {
            return Err(MessageError::Duplicate { section: name });
        }
        if let Some((before, before_code)) = last {
            if order == Order::Standard && this < before {
                return Err(MessageError::OutOfOrder {
                    section: name,
                    after: section_name(before_code),
                });
            }
        }
        seen.push(code);
        last = Some((this, code));
        read_section(&mut message, code, name, value)?;
    }
    Ok(message)
}

fn read_section(
    message: &mut Message,
    code: u64,
    name: &'static str,
    value: Value,
) -> Result<(), MessageError> {
    match code {
        HEADER | PROPERTIES => {
            let section = if code == HEADER { "3.2.1 header" } else { "3.2.4 properties" };
            let Value::List(fields) = value else {
                let found = value.type_name();
                return Err(FieldError { section, field: "value", expected: "list", found }.into());
            };
            if code == HEADER {
                message.header = Some(Header::from_fields(fields)?);
            } else {
                message.properties = Some(Properties::from_fields(fields)?);
            }
        }
        DELIVERY_ANNOTATIONS => {
            let map = expect_map(value, "3.2.2 delivery-annotations")?;
            message.delivery_annotations = Some(Annotations::from_map(map, name)?);
        }
        MESSAGE_ANNOTATIONS => {
            let map = expect_map(value, "3.2.3 message-annotations")?;
            message.message_annotations = Some(Annotations::from_map(map, name)?);
        }
        APPLICATION_PROPERTIES => {
            let map = expect_map(value, "3.2.5 application-properties")?;
            message.application_properties = Some(ApplicationProperties::from_map(map)?);
        }
        FOOTER => {
            let map = expect_map(value, "3.2.9 footer")?;
            message.footer = Some(Annotations::from_map(map, name)?);
        }
        DATA => {
            let Value::Binary(data) = value else {
                let found = value.type_name();
                return Err(FieldError {
                    section: "3.2.6 data",
                    field: "value",
                    expected: "binary",
                    found,
                }
                .into());
            };
            match &mut message.body {
                Body::Empty => message.body = Body::Data(alloc::vec![data]),
                Body::Data(all) => all.push(data),
                other => return Err(MessageError::MixedBody { section: name, body: other.name() }),
            }
        }
        AMQP_SEQUENCE => {
            let Value::List(items) = value else {
                let found = value.type_name();
                return Err(FieldError {
                    section: "3.2.7 amqp-sequence",
                    field: "value",
                    expected: "list",
                    found,
                }
                .into());
            };
            match &mut message.body {
                Body::Empty => message.body = Body::Sequence(alloc::vec![items]),
                Body::Sequence(all) => all.push(items),
                other => return Err(MessageError::MixedBody { section: name, body: other.name() }),
            }
        }
        _ => match &message.body {
            Body::Empty => message.body = Body::Value(value),
            other => return Err(MessageError::MixedBody { section: name, body: other.name() }),
        },
    }
    Ok(())
}

/// Reads a batched message (transfer `message-format` [`MESSAGE_FORMAT_BATCH`](crate::amqp::performative::MESSAGE_FORMAT_BATCH),
/// spec file §5.4): an outer message whose data sections each hold one message.
/// The inner messages' sections may come in any order (the C SDK writes properties
/// first); each is still read once at most.
///
/// # Errors
///
/// [`MessageError::BatchBody`]: the outer body is not data sections; otherwise as
/// [`Message::decode`], for the outer message or any inner one.
pub fn decode_batch(payload: &Bytes, limits: &Limits) -> Result<Vec<Message>, MessageError> {
    let outer = Message::decode(payload, limits)?;
    let Body::Data(data) = outer.body else {
        return Err(MessageError::BatchBody { found: outer.body.name() });
    };
    data.iter().map(|inner| decode_sections(inner, limits, Order::Any)).collect()
}

/// Writes `messages` as one batched message's payload (spec file §5.4): a data
/// section per message. The transfer carrying it has message-format
/// [`MESSAGE_FORMAT_BATCH`](crate::amqp::performative::MESSAGE_FORMAT_BATCH).
///
/// # Errors
///
/// As [`Message::encode`].
pub fn encode_batch(messages: &[Message], out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut data = Vec::with_capacity(messages.len());
    for message in messages {
        let mut inner = BytesMut::new();
        message.encode(&mut inner)?;
        data.push(inner.freeze());
    }
    Message::new(Body::Data(data)).encode(out)
}
