//! The termini an `attach` carries (part 3 §3.5): `source` (§3.5.3) and `target`
//! (§3.5.4). IoT Hub reads only their addresses (spec file §5.3); the fields it does
//! not use are kept as values.

use alloc::vec::Vec;

use super::definitions::{Fields, Seconds};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::types::{Composite, PrimitiveType, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// `amqp:source:list`, 0x28.
pub const SOURCE: Definition =
    Definition {
        name: "source", section: "part 3 §3.5.3", code: 0x28, symbol: "amqp:source:list"
    };
/// `amqp:target:list`, 0x29.
pub const TARGET: Definition =
    Definition {
        name: "target", section: "part 3 §3.5.4", code: 0x29, symbol: "amqp:target:list"
    };

/// The default terminus-expiry-policy (§3.5.6): expire when the session ends.
pub const EXPIRY_SESSION_END: Symbol = Symbol::from_static("session-end");

/// What of a terminus survives its link (§3.5.5), a uint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TerminusDurability {
    /// 0: nothing; the default.
    #[default]
    None,
    /// 1: its configuration.
    Configuration,
    /// 2: its configuration and unsettled state.
    UnsettledState,
}

impl TerminusDurability {
    /// The durability of a uint; `None` outside 0–2.
    pub const fn from_u32(code: u32) -> Option<TerminusDurability> {
        match code {
            0 => Some(TerminusDurability::None),
            1 => Some(TerminusDurability::Configuration),
            2 => Some(TerminusDurability::UnsettledState),
            _ => None,
        }
    }

    /// Its uint.
    pub const fn code(self) -> u32 {
        self as u32
    }
}

/// The fields source and target share (§3.5.3, §3.5.4), in wire order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminus {
    /// The node's address: an IoT Hub path or `amqps://host/` URI (spec file §5.3).
    pub address: Option<Utf8Bytes>,
    /// Default none.
    pub durable: TerminusDurability,
    /// When the terminus expires (§3.5.6); default `session-end`.
    pub expiry_policy: Symbol,
    /// How long, s, before it expires; default 0.
    pub timeout: Seconds,
    /// Whether the peer should create the node; default false.
    pub dynamic: bool,
    /// Properties of a dynamic node (§3.5.9).
    pub dynamic_node_properties: Fields,
}

impl Default for Terminus {
    fn default() -> Terminus {
        Terminus {
            address: None,
            durable: TerminusDurability::None,
            expiry_policy: EXPIRY_SESSION_END,
            timeout: 0,
            dynamic: false,
            dynamic_node_properties: Fields::new(),
        }
    }
}

impl Terminus {
    /// A terminus at `address`, every other field at its default.
    pub fn at(address: Utf8Bytes) -> Terminus {
        Terminus { address: Some(address), ..Terminus::default() }
    }

    fn read(r: &mut Reader) -> Result<Terminus, Error> {
        let address = r.opt("address")?;
        let durable = r.opt::<u32>("durable")?;
        Ok(Terminus {
            address,
            durable: r
                .check("durable", durable, TerminusDurability::from_u32, "§3.5.5: 0, 1 or 2")?
                .unwrap_or_default(),
            expiry_policy: r.or("expiry-policy", EXPIRY_SESSION_END)?,
            timeout: r.or("timeout", 0)?,
            dynamic: r.or("dynamic", false)?,
            dynamic_node_properties: r.opt("dynamic-node-properties")?.unwrap_or_default(),
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> Writer<S> {
        w.opt(self.address.clone())
            .or(self.durable.code(), 0)
            .or(self.expiry_policy.clone(), EXPIRY_SESSION_END)
            .or(self.timeout, 0)
            .or(self.dynamic, false)
            .fields(&self.dynamic_node_properties)
    }
}

/// `source` (§3.5.3): where a link's messages come from.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Source {
    /// Address, durability, expiry, dynamic node.
    pub terminus: Terminus,
    /// `move` or `copy` (§3.5.3).
    pub distribution_mode: Option<Symbol>,
    /// The filter-set (§3.5.8), kept as values: IoT Hub uses none.
    pub filter: Vec<(Value, Value)>,
    /// The outcome of deliveries settled without one.
    pub default_outcome: Option<DeliveryState>,
    /// Descriptors of the outcomes the source supports (multiple).
    pub outcomes: Vec<Symbol>,
    /// Extensions of the source (multiple).
    pub capabilities: Vec<Symbol>,
}

impl CompositeType for Source {
    fn from_composite(composite: Composite) -> Result<Source, Error> {
        let mut r = Reader::new(composite, &SOURCE)?;
        Ok(Source {
            terminus: Terminus::read(&mut r)?,
            distribution_mode: r.opt("distribution-mode")?,
            filter: r.map("filter")?,
            default_outcome: r.composite("default-outcome")?,
            outcomes: r.multiple("outcomes")?,
            capabilities: r.multiple("capabilities")?,
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        self.terminus
            .write(w)
            .opt(self.distribution_mode.clone())
            .map(&self.filter)
            .composite(self.default_outcome.as_ref())
            .multiple(PrimitiveType::Symbol, &self.outcomes)
            .multiple(PrimitiveType::Symbol, &self.capabilities)
            .finish(&SOURCE)
    }
}

/// `amqp:coordinator:list`, 0x30 (part 4 §4.5.1).
pub const COORDINATOR: Definition = Definition {
    name: "coordinator",
    section: "part 4 §4.5.1",
    code: 0x30,
    symbol: "amqp:coordinator:list",
};

/// `coordinator` (part 4 §4.5.1): the target of a link that carries transaction
/// requests. hubwire implements no transactions (part 4 is out of its scope): it
/// reads one, so that such an attach is refused with `amqp:not-implemented`
/// rather than misread.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Coordinator {
    /// The transaction capabilities asked for (multiple, §4.5.2).
    pub capabilities: Vec<Symbol>,
}

impl CompositeType for Coordinator {
    fn from_composite(composite: Composite) -> Result<Coordinator, Error> {
        let mut r = Reader::new(composite, &COORDINATOR)?;
        Ok(Coordinator { capabilities: r.multiple("capabilities")? })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.multiple(PrimitiveType::Symbol, &self.capabilities).finish(&COORDINATOR)
    }
}

/// `target` (§3.5.4): where a link's messages go.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Target {
    /// Address, durability, expiry, dynamic node.
    pub terminus: Terminus,
    /// Extensions of the target (multiple).
    pub capabilities: Vec<Symbol>,
}

impl CompositeType for Target {
    fn from_composite(composite: Composite) -> Result<Target, Error> {
        let mut r = Reader::new(composite, &TARGET)?;
        Ok(Target { terminus: Terminus::read(&mut r)?, capabilities: r.multiple("capabilities")? })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        self.terminus.write(w).multiple(PrimitiveType::Symbol, &self.capabilities).finish(&TARGET)
    }
}
