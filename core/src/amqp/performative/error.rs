//! [`Error`]: why a frame body is not a valid performative, and the condition the
//! engine closes or detaches with.

use core::fmt;

use super::definitions::condition;
use crate::amqp::types::{DecodeError, Descriptor, Symbol};

/// One composite type of the standard: its name, section and descriptor (part 1
/// §1.4, §1.5), e.g. `open`, part 2 §2.7.1, `0x10`, `amqp:open:list`.
#[derive(Debug, PartialEq, Eq)]
pub struct Definition {
    /// The type's name, e.g. `open`.
    pub name: &'static str,
    /// Where the standard defines it, e.g. `part 2 §2.7.1`.
    pub section: &'static str,
    /// The numeric descriptor (domain 0x0000_0000).
    pub code: u64,
    /// The symbolic descriptor, e.g. `amqp:open:list`.
    pub symbol: &'static str,
}

impl Definition {
    /// Whether `descriptor` names this type, by code or by symbol (§1.5 allows both).
    pub fn matches(&self, descriptor: &Descriptor) -> bool {
        match descriptor {
            Descriptor::Code(code) => *code == self.code,
            Descriptor::Symbol(symbol) => *symbol == self.symbol,
        }
    }
}

impl fmt::Display for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.section, self.name)
    }
}

/// Why a frame body, terminus or delivery state is not what the standard defines.
/// [`Error::condition`] is the error condition (part 2 §2.8.15) to close the
/// connection with, or, for a link's terminus, to detach it with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not an AMQP value, or not a composite (part 1); condition
    /// `amqp:decode-error`.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// A descriptor that is none of the types a place allows: a frame body that is
    /// none of the nine performatives (part 2 §2.7), a delivery state that is none
    /// of part 3 §3.4's; condition `amqp:decode-error`, or `amqp:not-implemented`
    /// for the transaction types of part 4 (§4.5), which hubwire does not
    /// implement.
    #[error("{place}: descriptor {found:?} is none of its types")]
    UnknownDescriptor {
        /// What was expected, e.g. `part 2 §2.7 performative`.
        place: &'static str,
        /// The descriptor.
        found: Descriptor,
    },
    /// A composite field holds a composite of another type than the field's (e.g.
    /// a source that is a target); condition `amqp:decode-error`, or
    /// `amqp:not-implemented` for the transaction types of part 4 (§4.5), which
    /// hubwire does not implement.
    #[error("{expected}: descriptor {found:?} is not {}", expected.symbol)]
    UnexpectedDescriptor {
        /// The type the field holds.
        expected: &'static Definition,
        /// The descriptor found.
        found: Descriptor,
    },
    /// A mandatory field is null or missing (§1.4: "mandatory"); condition
    /// `amqp:invalid-field` (§2.8.15: "an invalid field was passed in a frame
    /// body").
    #[error("{composite}: the mandatory field {field} is missing")]
    MissingField {
        /// The composite.
        composite: &'static Definition,
        /// The field's name in the standard.
        field: &'static str,
    },
    /// A field holds a value of another type than its definition's; condition
    /// `amqp:decode-error`.
    #[error("{composite}: {field} is {expected}, found {found}")]
    WrongType {
        /// The composite.
        composite: &'static Definition,
        /// The field's name in the standard.
        field: &'static str,
        /// The type the field has.
        expected: &'static str,
        /// The type of the value found.
        found: &'static str,
    },
    /// A field's value is of its type but outside what the definition allows: a
    /// choice not in its list, a delivery-tag over 32 bytes; condition
    /// `amqp:invalid-field`.
    #[error("{composite}: {field}: {rule}")]
    InvalidField {
        /// The composite.
        composite: &'static Definition,
        /// The field's name in the standard.
        field: &'static str,
        /// The rule broken.
        rule: &'static str,
    },
}

/// Descriptors of part 4 (transactions, §4.5), by code and by symbol.
const TRANSACTION_TYPES: [(u64, &str); 5] = [
    (0x30, "amqp:coordinator:list"),
    (0x31, "amqp:declare:list"),
    (0x32, "amqp:discharge:list"),
    (0x33, "amqp:declared:list"),
    (0x34, "amqp:transactional-state:list"),
];

impl Error {
    /// The error condition (part 2 §2.8.15) the engine sends for this error.
    pub fn condition(&self) -> Symbol {
        match self {
            Error::UnexpectedDescriptor { found, .. } | Error::UnknownDescriptor { found, .. }
                if is_transaction(found) =>
            {
                condition::NOT_IMPLEMENTED
            }
            Error::MissingField { .. } | Error::InvalidField { .. } => condition::INVALID_FIELD,
            _ => condition::DECODE_ERROR,
        }
    }
}

fn is_transaction(descriptor: &Descriptor) -> bool {
    TRANSACTION_TYPES.iter().any(|(code, symbol)| match descriptor {
        Descriptor::Code(c) => c == code,
        Descriptor::Symbol(s) => s == symbol,
    })
}
