//! `close` (part 2 §2.7.9): closes the connection.

use super::definitions::AmqpError;
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::types::Composite;

/// `amqp:close:list`, 0x18.
pub const CLOSE: Definition =
    Definition { name: "close", section: "part 2 §2.7.9", code: 0x18, symbol: "amqp:close:list" };

/// `close` (§2.7.9).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Close {
    /// Why, when it is an error.
    pub error: Option<AmqpError>,
}

impl CompositeType for Close {
    fn from_composite(composite: Composite) -> Result<Close, Error> {
        let mut r = Reader::new(composite, &CLOSE)?;
        Ok(Close { error: r.composite("error")? })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.composite(self.error.as_ref()).finish(&CLOSE)
    }
}
