//! `begin` (part 2 §2.7.2): starts a session on a channel.

use alloc::vec::Vec;

use super::definitions::{Fields, Handle, TransferNumber};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::types::{Composite, PrimitiveType, Symbol};

/// `amqp:begin:list`, 0x11.
pub const BEGIN: Definition =
    Definition { name: "begin", section: "part 2 §2.7.2", code: 0x11, symbol: "amqp:begin:list" };

/// `begin` (§2.7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    /// The peer's channel this answers; absent when the sender begins the session.
    pub remote_channel: Option<u16>,
    /// The transfer-id of the sender's first transfer (mandatory).
    pub next_outgoing_id: TransferNumber,
    /// Transfers the sender can take in (mandatory). The C SDK sends `u32::MAX`
    /// (spec file §5.1).
    pub incoming_window: u32,
    /// Transfers the sender may send before the peer updates (mandatory). The C
    /// SDK sends 100 (spec file §5.1).
    pub outgoing_window: u32,
    /// The highest handle the sender uses; default 4294967295.
    pub handle_max: Handle,
    /// Extensions the sender supports (multiple).
    pub offered_capabilities: Vec<Symbol>,
    /// Extensions the sender may use (multiple).
    pub desired_capabilities: Vec<Symbol>,
    /// Session properties.
    pub properties: Fields,
}

impl Begin {
    /// Default handle-max.
    pub const DEFAULT_HANDLE_MAX: Handle = u32::MAX;

    /// A `begin` with the three mandatory window fields (§2.5.6: transfer ids and
    /// window sizes, in transfer frames) and every other field at its default: no
    /// remote-channel (a begin that opens a session), the default handle-max, no
    /// capabilities or properties.
    pub fn new(next_outgoing_id: u32, incoming_window: u32, outgoing_window: u32) -> Begin {
        Begin {
            remote_channel: None,
            next_outgoing_id,
            incoming_window,
            outgoing_window,
            handle_max: Begin::DEFAULT_HANDLE_MAX,
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Vec::new(),
        }
    }
}

impl CompositeType for Begin {
    fn from_composite(composite: Composite) -> Result<Begin, Error> {
        let mut r = Reader::new(composite, &BEGIN)?;
        Ok(Begin {
            remote_channel: r.opt("remote-channel")?,
            next_outgoing_id: r.req("next-outgoing-id")?,
            incoming_window: r.req("incoming-window")?,
            outgoing_window: r.req("outgoing-window")?,
            handle_max: r.or("handle-max", Begin::DEFAULT_HANDLE_MAX)?,
            offered_capabilities: r.multiple("offered-capabilities")?,
            desired_capabilities: r.multiple("desired-capabilities")?,
            properties: r.opt("properties")?.unwrap_or_default(),
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.opt(self.remote_channel)
            .put(self.next_outgoing_id)
            .put(self.incoming_window)
            .put(self.outgoing_window)
            .or(self.handle_max, Begin::DEFAULT_HANDLE_MAX)
            .multiple(PrimitiveType::Symbol, &self.offered_capabilities)
            .multiple(PrimitiveType::Symbol, &self.desired_capabilities)
            .fields(&self.properties)
            .finish(&BEGIN)
    }
}
