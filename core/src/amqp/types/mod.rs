//! The AMQP 1.0 type system (OASIS AMQP 1.0 part 1, "Types"): [`Value`] for every
//! primitive type (§1.6) and described value (§1.1.2, §1.5), [`decode`] and
//! [`encode`] for the wire format (§1.2), and [`Composite`] for described lists
//! read by field position (§1.4).
//!
//! - `encoding`: the format codes of §1.6, one [`Encoding`] per code.
//! - `value`, `described`: the values.
//! - `decode`: whole bytes in, one value out, checked against [`Limits`] before
//!   allocation.
//! - `encode`: smallest encodings by default, the widest on request ([`Form`]).
//! - `composite`: performatives and sections are composites.

mod composite;
mod decode;
mod described;
mod encode;
mod encoding;
mod error;
mod limits;
mod value;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use composite::Composite;
pub use decode::decode;
pub use described::{Described, Descriptor};
pub(crate) use encode::{CompositeEncoder, encode_described_map};
pub use encode::{Form, encode, encode_as, encoded_len};
pub use encoding::{Category, Encoding};
pub use error::{DecodeError, EncodeError};
pub use limits::Limits;
pub use value::{Array, PrimitiveType, Symbol, Value};
