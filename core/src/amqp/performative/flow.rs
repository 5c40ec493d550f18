//! `flow` (part 2 §2.7.4): updates a session's windows and, with a handle, a link's
//! credit.

use super::definitions::{Fields, Handle, SequenceNo, TransferNumber};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::types::Composite;

/// `amqp:flow:list`, 0x13.
pub const FLOW: Definition =
    Definition { name: "flow", section: "part 2 §2.7.4", code: 0x13, symbol: "amqp:flow:list" };

/// `flow` (§2.7.4).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Flow {
    /// The next transfer-id the sender expects; absent until the peer's begin.
    pub next_incoming_id: Option<TransferNumber>,
    /// Transfers the sender can take in (mandatory).
    pub incoming_window: u32,
    /// The transfer-id of the sender's next transfer (mandatory).
    pub next_outgoing_id: TransferNumber,
    /// Transfers the sender may send (mandatory).
    pub outgoing_window: u32,
    /// The link this flow is about; absent for a session-only flow.
    pub handle: Option<Handle>,
    /// The link's delivery-count (§2.6.7), with a handle.
    pub delivery_count: Option<SequenceNo>,
    /// Deliveries the receiver allows, with a handle.
    pub link_credit: Option<u32>,
    /// Deliveries the sender has ready.
    pub available: Option<u32>,
    /// Whether the sender should use all its credit or give it back; default false.
    pub drain: bool,
    /// Whether the peer should answer with its own flow; default false.
    pub echo: bool,
    /// Link state properties.
    pub properties: Fields,
}

impl CompositeType for Flow {
    fn from_composite(composite: Composite) -> Result<Flow, Error> {
        let mut r = Reader::new(composite, &FLOW)?;
        Ok(Flow {
            next_incoming_id: r.opt("next-incoming-id")?,
            incoming_window: r.req("incoming-window")?,
            next_outgoing_id: r.req("next-outgoing-id")?,
            outgoing_window: r.req("outgoing-window")?,
            handle: r.opt("handle")?,
            delivery_count: r.opt("delivery-count")?,
            link_credit: r.opt("link-credit")?,
            available: r.opt("available")?,
            drain: r.or("drain", false)?,
            echo: r.or("echo", false)?,
            properties: r.opt("properties")?.unwrap_or_default(),
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.opt(self.next_incoming_id)
            .put(self.incoming_window)
            .put(self.next_outgoing_id)
            .put(self.outgoing_window)
            .opt(self.handle)
            .opt(self.delivery_count)
            .opt(self.link_credit)
            .opt(self.available)
            .or(self.drain, false)
            .or(self.echo, false)
            .fields(&self.properties)
            .finish(&FLOW)
    }
}
