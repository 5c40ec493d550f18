//! `disposition` (part 2 §2.7.6): the state or settlement of a range of deliveries.

use super::definitions::{DeliveryNumber, Role};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::types::Composite;

/// `amqp:disposition:list`, 0x15.
pub const DISPOSITION: Definition = Definition {
    name: "disposition",
    section: "part 2 §2.7.6",
    code: 0x15,
    symbol: "amqp:disposition:list",
};

/// `disposition` (§2.7.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disposition {
    /// The role of the sender of the disposition, hence whose deliveries
    /// (mandatory).
    pub role: Role,
    /// The first delivery-id of the range (mandatory).
    pub first: DeliveryNumber,
    /// The last delivery-id; absent means `first`.
    pub last: Option<DeliveryNumber>,
    /// Whether the deliveries are settled; default false.
    pub settled: bool,
    /// The deliveries' state: the outcome, e.g. accepted for IoT Hub's complete
    /// (spec file §5.5).
    pub state: Option<DeliveryState>,
    /// Whether the peer may delay its answer; default false.
    pub batchable: bool,
}

impl CompositeType for Disposition {
    fn from_composite(composite: Composite) -> Result<Disposition, Error> {
        let mut r = Reader::new(composite, &DISPOSITION)?;
        Ok(Disposition {
            role: r.req("role")?,
            first: r.req("first")?,
            last: r.opt("last")?,
            settled: r.or("settled", false)?,
            state: r.composite("state")?,
            batchable: r.or("batchable", false)?,
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.put(self.role)
            .put(self.first)
            .opt(self.last)
            .or(self.settled, false)
            .composite(self.state.as_ref())
            .or(self.batchable, false)
            .finish(&DISPOSITION)
    }
}
