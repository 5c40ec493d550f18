//! The properties section (part 3 §3.2.4) and the message-id types (§3.2.11–§3.2.15).

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use super::error::{FieldError, Section};
use crate::amqp::field::{FieldType, Reader};
use crate::amqp::performative::field::{Sink, Writer};
use crate::amqp::types::{Symbol, Value};
use crate::utf8::Utf8Bytes;

/// A message-id or correlation-id (§3.2.11–§3.2.15): one of four types, kept as
/// sent because a reply must echo the same type (spec file §5.2: the C SDK matches a
/// ulong, Node a string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageId {
    /// §3.2.12 message-id-ulong.
    Ulong(u64),
    /// §3.2.13 message-id-uuid, RFC 4122 byte order (TV-18).
    Uuid([u8; 16]),
    /// §3.2.14 message-id-binary.
    Binary(Bytes),
    /// §3.2.15 message-id-string.
    String(Utf8Bytes),
}

impl FieldType for MessageId {
    const TYPE: &'static str = "ulong, uuid, binary or string";
    fn from_value(value: Value) -> Result<MessageId, Value> {
        Ok(match value {
            Value::Ulong(n) => MessageId::Ulong(n),
            Value::Uuid(u) => MessageId::Uuid(u),
            Value::Binary(b) => MessageId::Binary(b),
            Value::String(s) => MessageId::String(s),
            other => return Err(other),
        })
    }
    fn into_value(self) -> Value {
        match self {
            MessageId::Ulong(n) => Value::Ulong(n),
            MessageId::Uuid(u) => Value::Uuid(u),
            MessageId::Binary(b) => Value::Binary(b),
            MessageId::String(s) => Value::String(s),
        }
    }
}

impl fmt::Display for MessageId {
    /// A ulong in decimal, a uuid as `xxxxxxxx-xxxx-…` in lower case, a string as
    /// is, binary as lower-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageId::Ulong(n) => write!(f, "{n}"),
            MessageId::Uuid(u) => {
                for (i, b) in u.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            MessageId::Binary(b) => b.iter().try_for_each(|b| write!(f, "{b:02x}")),
            MessageId::String(s) => f.write_str(s),
        }
    }
}

/// The properties section (§3.2.4, descriptor `0x73`, `amqp:properties:list`): the
/// immutable properties of the bare message. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// Application message identifier.
    pub message_id: Option<MessageId>,
    /// Identity of the user who produced the message (IoT Hub: spec file §3).
    pub user_id: Option<Bytes>,
    /// Address of the node the message is destined for (`address-string`).
    pub to: Option<Utf8Bytes>,
    /// Summary of the message content.
    pub subject: Option<Utf8Bytes>,
    /// Node to send replies to.
    pub reply_to: Option<Utf8Bytes>,
    /// Message-id of the message this one relates to.
    pub correlation_id: Option<MessageId>,
    /// MIME type of the body, e.g. `application/json`.
    pub content_type: Option<Symbol>,
    /// Content encoding of the body, e.g. `utf-8`.
    pub content_encoding: Option<Symbol>,
    /// Absolute expiry time, ms since the Unix epoch.
    pub absolute_expiry_time: Option<i64>,
    /// Creation time, ms since the Unix epoch.
    pub creation_time: Option<i64>,
    /// Group the message belongs to.
    pub group_id: Option<Utf8Bytes>,
    /// Position within the group (`sequence-no`, a uint).
    pub group_sequence: Option<u32>,
    /// Group replies belong to.
    pub reply_to_group_id: Option<Utf8Bytes>,
}

impl Properties {
    /// Reads the section's list of fields.
    pub(super) fn from_fields(fields: Vec<Value>) -> Result<Properties, FieldError> {
        let mut r = Reader::from_fields(Section("3.2.4 properties"), fields);
        Ok(Properties {
            message_id: r.opt("message-id")?,
            user_id: r.opt("user-id")?,
            to: r.opt("to")?,
            subject: r.opt("subject")?,
            reply_to: r.opt("reply-to")?,
            correlation_id: r.opt("correlation-id")?,
            content_type: r.opt("content-type")?,
            content_encoding: r.opt("content-encoding")?,
            absolute_expiry_time: r.opt("absolute-expiry-time")?,
            creation_time: r.opt("creation-time")?,
            group_id: r.opt("group-id")?,
            group_sequence: r.opt("group-sequence")?,
            reply_to_group_id: r.opt("reply-to-group-id")?,
        })
    }

    /// Its fields into `w` (§3.2.4).
    pub(super) fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        let id = |id: &Option<MessageId>| id.clone().map_or(Value::Null, MessageId::into_value);
        w.value(id(&self.message_id))
            .opt(self.user_id.clone())
            .opt(self.to.clone())
            .opt(self.subject.clone())
            .opt(self.reply_to.clone())
            .value(id(&self.correlation_id))
            .opt(self.content_type.clone())
            .opt(self.content_encoding.clone())
            .opt(self.absolute_expiry_time)
            .opt(self.creation_time)
            .opt(self.group_id.clone())
            .opt(self.group_sequence)
            .opt(self.reply_to_group_id.clone())
            .finish_code(super::PROPERTIES)
    }
}
