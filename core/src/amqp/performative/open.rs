//! `open` (part 2 §2.7.1): a connection's first frame, negotiating its parameters.

use alloc::vec::Vec;

use super::definitions::{Fields, IetfLanguageTag, Milliseconds};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::types::{Composite, PrimitiveType, Symbol};
use crate::utf8::Utf8Bytes;

/// `amqp:open:list`, 0x10.
pub const OPEN: Definition =
    Definition { name: "open", section: "part 2 §2.7.1", code: 0x10, symbol: "amqp:open:list" };

/// `open` (§2.7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The sender's container id (mandatory): a random 40-character id from the C
    /// SDK, a UUID from rhea (spec file §5.1).
    pub container_id: Utf8Bytes,
    /// The host the client dialled: the hub's or gateway's name (spec file §5.1).
    pub hostname: Option<Utf8Bytes>,
    /// The largest frame the sender accepts, bytes; default 4294967295.
    pub max_frame_size: u32,
    /// The highest channel number the sender uses; default 65535.
    pub channel_max: u16,
    /// The sender's idle timeout, ms: the peer must send a frame at least this
    /// often (§2.4.5). The C SDK sends 240 000 (spec file §5.1).
    pub idle_time_out: Option<Milliseconds>,
    /// Locales the sender may write in, preferred first (multiple).
    pub outgoing_locales: Vec<IetfLanguageTag>,
    /// Locales the sender wants to read (multiple).
    pub incoming_locales: Vec<IetfLanguageTag>,
    /// Extensions the sender supports (multiple).
    pub offered_capabilities: Vec<Symbol>,
    /// Extensions the sender may use if the peer offers them (multiple).
    pub desired_capabilities: Vec<Symbol>,
    /// Connection properties.
    pub properties: Fields,
}

impl Open {
    /// Default max-frame-size, bytes.
    pub const DEFAULT_MAX_FRAME_SIZE: u32 = u32::MAX;
    /// Default channel-max.
    pub const DEFAULT_CHANNEL_MAX: u16 = u16::MAX;

    /// An `open` with `container_id` and every other field at its default.
    pub fn new(container_id: Utf8Bytes) -> Open {
        Open {
            container_id,
            hostname: None,
            max_frame_size: Open::DEFAULT_MAX_FRAME_SIZE,
            channel_max: Open::DEFAULT_CHANNEL_MAX,
            idle_time_out: None,
            outgoing_locales: Vec::new(),
            incoming_locales: Vec::new(),
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Fields::new(),
        }
    }
}

impl CompositeType for Open {
    fn from_composite(composite: Composite) -> Result<Open, Error> {
        let mut r = Reader::new(composite, &OPEN)?;
        Ok(Open {
            container_id: r.req("container-id")?,
            hostname: r.opt("hostname")?,
            max_frame_size: r.or("max-frame-size", Open::DEFAULT_MAX_FRAME_SIZE)?,
            channel_max: r.or("channel-max", Open::DEFAULT_CHANNEL_MAX)?,
            idle_time_out: r.opt("idle-time-out")?,
            outgoing_locales: r.multiple("outgoing-locales")?,
            incoming_locales: r.multiple("incoming-locales")?,
            offered_capabilities: r.multiple("offered-capabilities")?,
            desired_capabilities: r.multiple("desired-capabilities")?,
            properties: r.opt("properties")?.unwrap_or_default(),
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.put(self.container_id.clone())
            .opt(self.hostname.clone())
            .or(self.max_frame_size, Open::DEFAULT_MAX_FRAME_SIZE)
            .or(self.channel_max, Open::DEFAULT_CHANNEL_MAX)
            .opt(self.idle_time_out)
            .multiple(PrimitiveType::Symbol, &self.outgoing_locales)
            .multiple(PrimitiveType::Symbol, &self.incoming_locales)
            .multiple(PrimitiveType::Symbol, &self.offered_capabilities)
            .multiple(PrimitiveType::Symbol, &self.desired_capabilities)
            .fields(&self.properties)
            .finish(&OPEN)
    }
}
