//! The header section (part 3 §3.2.1): transport headers for one message.

use alloc::vec::Vec;

use super::error::{FieldError, Section};
use crate::amqp::field::Reader;
use crate::amqp::performative::field::{Sink, Writer};
use crate::amqp::types::Value;

/// The header section (§3.2.1, descriptor `0x70`, `amqp:header:list`).
///
/// Fields a sender left null read as their defaults, and defaults are written as
/// null, so the two are one value here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whether intermediaries must store the message durably. Default false.
    pub durable: bool,
    /// Relative priority, 0 lowest. Default [`Header::DEFAULT_PRIORITY`] (4).
    pub priority: u8,
    /// Time to live, ms, from when the message was sent on this hop; none if absent.
    pub ttl: Option<u32>,
    /// Whether no earlier acquirer took the message. Default false.
    pub first_acquirer: bool,
    /// Failed delivery attempts before this one. Default 0.
    pub delivery_count: u32,
}

impl Header {
    /// §3.2.1: the priority a null field means.
    pub const DEFAULT_PRIORITY: u8 = 4;

    /// Reads the section's list of fields.
    pub(super) fn from_fields(fields: Vec<Value>) -> Result<Header, FieldError> {
        let mut r = Reader::from_fields(Section("3.2.1 header"), fields);
        Ok(Header {
            durable: r.or("durable", false)?,
            priority: r.or("priority", Header::DEFAULT_PRIORITY)?,
            ttl: r.opt("ttl")?,
            first_acquirer: r.or("first-acquirer", false)?,
            delivery_count: r.or("delivery-count", 0)?,
        })
    }

    /// Its fields into `w` (§3.2.1), defaults as null.
    pub(super) fn write<S: Sink>(self, w: Writer<S>) -> S::Done {
        let flag = |b: bool| if b { Value::Boolean(true) } else { Value::Null };
        let priority = match self.priority {
            Header::DEFAULT_PRIORITY => Value::Null,
            p => Value::Ubyte(p),
        };
        let count = match self.delivery_count {
            0 => Value::Null,
            n => Value::Uint(n),
        };
        w.value(flag(self.durable))
            .value(priority)
            .value(self.ttl.map_or(Value::Null, Value::Uint))
            .value(flag(self.first_acquirer))
            .value(count)
            .finish_code(super::HEADER)
    }
}

impl Default for Header {
    fn default() -> Header {
        Header {
            durable: false,
            priority: Header::DEFAULT_PRIORITY,
            ttl: None,
            first_acquirer: false,
            delivery_count: 0,
        }
    }
}
