//! Delivery states (AMQP 1.0 part 3 §3.4): where a delivery stands at one end of a
//! link. The outcomes (accepted, rejected, released, modified) are terminal; IoT
//! Hub's complete, reject and abandon are sent as accepted, rejected and released
//! (spec file §5.5).

use crate::amqp::performative::field::{Reader, Sink, Writer};
use crate::amqp::performative::{AmqpError, CompositeType, Definition, Error, Fields};
use crate::amqp::types::Composite;

/// `amqp:received:list`, 0x23 (§3.4.1).
pub const RECEIVED: Definition = Definition {
    name: "received",
    section: "part 3 §3.4.1",
    code: 0x23,
    symbol: "amqp:received:list",
};
/// `amqp:accepted:list`, 0x24 (§3.4.2).
pub const ACCEPTED: Definition = Definition {
    name: "accepted",
    section: "part 3 §3.4.2",
    code: 0x24,
    symbol: "amqp:accepted:list",
};
/// `amqp:rejected:list`, 0x25 (§3.4.3).
pub const REJECTED: Definition = Definition {
    name: "rejected",
    section: "part 3 §3.4.3",
    code: 0x25,
    symbol: "amqp:rejected:list",
};
/// `amqp:released:list`, 0x26 (§3.4.4).
pub const RELEASED: Definition = Definition {
    name: "released",
    section: "part 3 §3.4.4",
    code: 0x26,
    symbol: "amqp:released:list",
};
/// `amqp:modified:list`, 0x27 (§3.4.5).
pub const MODIFIED: Definition = Definition {
    name: "modified",
    section: "part 3 §3.4.5",
    code: 0x27,
    symbol: "amqp:modified:list",
};

/// A delivery state of part 3 §3.4. Transactional-state (part 4 §4.5.5) is not
/// one: it is refused with `amqp:not-implemented`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// §3.4.1: how much of the message arrived, to resume it.
    Received {
        /// The section the next transfer starts in (mandatory).
        section_number: u32,
        /// Its first byte not yet received (mandatory).
        section_offset: u64,
    },
    /// §3.4.2: processed; IoT Hub's complete.
    Accepted,
    /// §3.4.3: invalid, not to be redelivered; IoT Hub's reject. The C SDK sends
    /// the description "Rejected by application" (spec file §5.5).
    Rejected {
        /// Why.
        error: Option<AmqpError>,
    },
    /// §3.4.4: not processed, may be redelivered; IoT Hub's abandon.
    Released,
    /// §3.4.5: not processed, with changes for redelivery. IoT Hub's engine reads
    /// it as abandon (spec file §5.5).
    Modified {
        /// Count the delivery as failed; default false.
        delivery_failed: bool,
        /// Do not redeliver it on this link; default false.
        undeliverable_here: bool,
        /// Annotations to merge into the message's.
        message_annotations: Fields,
    },
}

impl CompositeType for DeliveryState {
    fn from_composite(composite: Composite) -> Result<DeliveryState, Error> {
        let descriptor = composite.descriptor.clone();
        let def = [&RECEIVED, &ACCEPTED, &REJECTED, &RELEASED, &MODIFIED]
            .into_iter()
            .find(|def| def.matches(&descriptor))
            .ok_or(Error::UnknownDescriptor {
                place: "part 3 §3.4 delivery state",
                found: descriptor,
            })?;
        let mut r = Reader::new(composite, def)?;
        Ok(match def.code {
            0x23 => DeliveryState::Received {
                section_number: r.req("section-number")?,
                section_offset: r.req("section-offset")?,
            },
            0x24 => DeliveryState::Accepted,
            0x25 => DeliveryState::Rejected { error: r.composite("error")? },
            0x26 => DeliveryState::Released,
            _ => DeliveryState::Modified {
                delivery_failed: r.or("delivery-failed", false)?,
                undeliverable_here: r.or("undeliverable-here", false)?,
                message_annotations: r.opt("message-annotations")?.unwrap_or_default(),
            },
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        match self {
            DeliveryState::Received { section_number, section_offset } => {
                w.put(*section_number).put(*section_offset).finish(&RECEIVED)
            }
            DeliveryState::Accepted => w.finish(&ACCEPTED),
            DeliveryState::Rejected { error } => w.composite(error.as_ref()).finish(&REJECTED),
            DeliveryState::Released => w.finish(&RELEASED),
            DeliveryState::Modified {
                delivery_failed,
                undeliverable_here,
                message_annotations,
            } => w
                .or(*delivery_failed, false)
                .or(*undeliverable_here, false)
                .fields(message_annotations)
                .finish(&MODIFIED),
        }
    }
}

impl DeliveryState {
    /// Whether this is an outcome (§3.4: every state but received), which may
    /// settle a delivery and serve as a source's default-outcome.
    pub fn is_outcome(&self) -> bool {
        !matches!(self, DeliveryState::Received { .. })
    }
}
