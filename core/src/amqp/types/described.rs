//! Described values (§1.1.2) and their descriptors (§1.5).

use super::value::{Symbol, Value};

/// What a described value's descriptor says it is (§1.5): a symbolic name, or a
/// numeric code whose high 32 bits are a domain id and low 32 bits a descriptor id
/// (`0x0000_0000_0000_0010` is `amqp:open:list`).
///
/// §1.5 reserves descriptors of any other type; the decoder refuses them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Descriptor {
    /// A `ulong` descriptor.
    Code(u64),
    /// A `symbol` descriptor, e.g. `amqp:open:list`.
    Symbol(Symbol),
}

impl From<u64> for Descriptor {
    fn from(code: u64) -> Descriptor {
        Descriptor::Code(code)
    }
}

impl From<Symbol> for Descriptor {
    fn from(symbol: Symbol) -> Descriptor {
        Descriptor::Symbol(symbol)
    }
}

/// A value with a descriptor (§1.1.2): on the wire `0x00`, the descriptor, then the
/// value with its own constructor (§1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// What the value is.
    pub descriptor: Descriptor,
    /// The value described; itself may be described.
    pub value: Value,
}

impl Described {
    /// `value` described by `descriptor`.
    pub fn new(descriptor: impl Into<Descriptor>, value: Value) -> Described {
        Described { descriptor: descriptor.into(), value }
    }
}
