//! `end` (part 2 §2.7.8): ends a session.

use super::definitions::AmqpError;
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::types::Composite;

/// `amqp:end:list`, 0x17.
pub const END: Definition =
    Definition { name: "end", section: "part 2 §2.7.8", code: 0x17, symbol: "amqp:end:list" };

/// `end` (§2.7.8).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct End {
    /// Why, when it is an error.
    pub error: Option<AmqpError>,
}

impl CompositeType for End {
    fn from_composite(composite: Composite) -> Result<End, Error> {
        let mut r = Reader::new(composite, &END)?;
        Ok(End { error: r.composite("error")? })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.composite(self.error.as_ref()).finish(&END)
    }
}
