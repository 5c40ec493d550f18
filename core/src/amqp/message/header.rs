//! The header section (part 3 §3.2.1): transport headers for one message.

use alloc::vec;

use super::error::{FieldError, FieldReader};
use crate::amqp::types::{Composite, Value};

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

const READ: FieldReader = FieldReader { section: "3.2.1 header" };

impl Header {
    /// §3.2.1: the priority a null field means.
    pub const DEFAULT_PRIORITY: u8 = 4;

    pub(super) fn from_composite(c: &Composite) -> Result<Header, FieldError> {
        Ok(Header {
            durable: READ.boolean("durable", c.field(0))?.unwrap_or(false),
            priority: READ.ubyte("priority", c.field(1))?.unwrap_or(Header::DEFAULT_PRIORITY),
            ttl: READ.uint("ttl", c.field(2))?,
            first_acquirer: READ.boolean("first-acquirer", c.field(3))?.unwrap_or(false),
            delivery_count: READ.uint("delivery-count", c.field(4))?.unwrap_or(0),
        })
    }

    pub(super) fn to_composite(self) -> Composite {
        let flag = |b: bool| if b { Value::Boolean(true) } else { Value::Null };
        let priority = match self.priority {
            Header::DEFAULT_PRIORITY => Value::Null,
            p => Value::Ubyte(p),
        };
        let count = match self.delivery_count {
            0 => Value::Null,
            n => Value::Uint(n),
        };
        Composite::new(
            super::HEADER,
            vec![
                flag(self.durable),
                priority,
                self.ttl.map_or(Value::Null, Value::Uint),
                flag(self.first_acquirer),
                count,
            ],
        )
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
