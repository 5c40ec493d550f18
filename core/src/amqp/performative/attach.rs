//! `attach` (part 2 §2.7.3): attaches a link to a session.

use alloc::vec::Vec;

use super::definitions::{Fields, Handle, ReceiverSettleMode, Role, SenderSettleMode, SequenceNo};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use super::terminus::{COORDINATOR, Coordinator, Source, Target};
use crate::amqp::types::{Composite, PrimitiveType, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// `amqp:attach:list`, 0x12.
pub const ATTACH: Definition =
    Definition {
        name: "attach", section: "part 2 §2.7.3", code: 0x12, symbol: "amqp:attach:list"
    };

/// `attach` (§2.7.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    /// The link's name, unique per pair of containers and direction (mandatory);
    /// e.g. `link-snd-<device>-<uuid>` from the C SDK (spec file §5.3).
    pub name: Utf8Bytes,
    /// The sender's alias for the link in this session (mandatory).
    pub handle: Handle,
    /// Which end the sender of the attach is (mandatory).
    pub role: Role,
    /// Default mixed.
    pub snd_settle_mode: SenderSettleMode,
    /// Default first (written null when absent).
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    /// Where messages come from; IoT Hub's C2D address for a device's receiver
    /// (spec file §5.3).
    pub source: Option<Source>,
    /// Where messages go; IoT Hub's events address for a device's sender.
    pub target: Option<Target>,
    /// A transaction coordinator in the target's place (part 4 §4.5.1); written
    /// only when `target` is `None`. hubwire refuses such links.
    pub coordinator: Option<Coordinator>,
    /// Unsettled deliveries by tag, to resume a link (§2.6.13); hubwire does not
    /// resume links, so the map is kept as values. Empty when absent.
    pub unsettled: Vec<(Value, Value)>,
    /// Whether `unsettled` is incomplete; default false.
    pub incomplete_unsettled: bool,
    /// The sender's first delivery-count. The standard requires it from a sender,
    /// but the .NET stack omits it (spec file §5.4), so it is not checked here: the
    /// link defaults it.
    pub initial_delivery_count: Option<SequenceNo>,
    /// The largest message the sender accepts, bytes; absent or 0: no limit. IoT
    /// Hub's events link must advertise one for the C SDK to send (spec file §5.4).
    pub max_message_size: Option<u64>,
    /// Extensions the sender supports (multiple).
    pub offered_capabilities: Vec<Symbol>,
    /// Extensions the sender may use (multiple).
    pub desired_capabilities: Vec<Symbol>,
    /// Link properties: `com.microsoft:client-version`,
    /// `com.microsoft:channel-correlation-id`, `com.microsoft:api-version`… (spec
    /// file §5.3).
    pub properties: Fields,
}

impl Attach {
    /// An attach of `name` on `handle` as `role`, every other field at its default
    /// or absent.
    pub fn new(name: Utf8Bytes, handle: Handle, role: Role) -> Attach {
        Attach {
            name,
            handle,
            role,
            snd_settle_mode: SenderSettleMode::default(),
            rcv_settle_mode: None,
            source: None,
            target: None,
            coordinator: None,
            unsettled: Vec::new(),
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Fields::new(),
        }
    }
}

impl CompositeType for Attach {
    fn from_composite(composite: Composite) -> Result<Attach, Error> {
        let mut r = Reader::new(composite, &ATTACH)?;
        let name = r.req("name")?;
        let handle = r.req("handle")?;
        let role = r.req("role")?;
        let snd_settle_mode = r.snd_settle_mode("snd-settle-mode")?;
        let rcv_settle_mode = r.rcv_settle_mode("rcv-settle-mode")?;
        let source = r.composite("source")?;
        let (target, coordinator) = match r.described("target")? {
            Some(c) if COORDINATOR.matches(&c.descriptor) => {
                (None, Some(Coordinator::from_composite(c)?))
            }
            Some(c) => (Some(Target::from_composite(c)?), None),
            None => (None, None),
        };
        Ok(Attach {
            name,
            handle,
            role,
            snd_settle_mode,
            rcv_settle_mode,
            source,
            target,
            coordinator,
            unsettled: r.map("unsettled")?,
            incomplete_unsettled: r.or("incomplete-unsettled", false)?,
            initial_delivery_count: r.opt("initial-delivery-count")?,
            max_message_size: r.opt("max-message-size")?,
            offered_capabilities: r.multiple("offered-capabilities")?,
            desired_capabilities: r.multiple("desired-capabilities")?,
            properties: r.opt("properties")?.unwrap_or_default(),
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        let w = w
            .put(self.name.clone())
            .put(self.handle)
            .put(self.role)
            .snd_settle_mode(self.snd_settle_mode)
            .rcv_settle_mode(self.rcv_settle_mode)
            .composite(self.source.as_ref());
        let w = match (&self.target, &self.coordinator) {
            (None, Some(coordinator)) => w.composite(Some(coordinator)),
            (target, _) => w.composite(target.as_ref()),
        };
        w.map(&self.unsettled)
            .or(self.incomplete_unsettled, false)
            .opt(self.initial_delivery_count)
            .opt(self.max_message_size)
            .multiple(PrimitiveType::Symbol, &self.offered_capabilities)
            .multiple(PrimitiveType::Symbol, &self.desired_capabilities)
            .fields(&self.properties)
            .finish(&ATTACH)
    }
}
