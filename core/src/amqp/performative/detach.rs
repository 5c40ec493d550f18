//! `detach` (part 2 §2.7.7): detaches a link, or closes it.

use super::definitions::{AmqpError, Handle};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::types::Composite;

/// `amqp:detach:list`, 0x16.
pub const DETACH: Definition =
    Definition {
        name: "detach", section: "part 2 §2.7.7", code: 0x16, symbol: "amqp:detach:list"
    };

/// `detach` (§2.7.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detach {
    /// The link (mandatory).
    pub handle: Handle,
    /// Whether the link is closed, not only detached; default false.
    pub closed: bool,
    /// Why, when it is an error.
    pub error: Option<AmqpError>,
}

impl CompositeType for Detach {
    fn from_composite(composite: Composite) -> Result<Detach, Error> {
        let mut r = Reader::new(composite, &DETACH)?;
        Ok(Detach {
            handle: r.req("handle")?,
            closed: r.or("closed", false)?,
            error: r.composite("error")?,
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.put(self.handle).or(self.closed, false).composite(self.error.as_ref()).finish(&DETACH)
    }
}
