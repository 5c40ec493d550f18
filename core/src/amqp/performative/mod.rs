//! The performatives (AMQP 1.0 part 2 §2.7): the typed bodies of AMQP frames, and
//! the definitions they share (§2.8) and carry (the termini of part 3 §3.5).
//!
//! Each performative is a struct with every field of the standard, mandatory ones
//! not optional and defaulted ones holding their default; [`CompositeType`] reads
//! one from a [`Composite`] and writes it back. [`Performative`] is the frame body:
//! [`Performative::decode`] reads it, returning a transfer's payload as a slice of
//! the body.

mod attach;
mod begin;
mod close;
pub mod definitions;
mod detach;
mod disposition;
mod end;
mod error;
pub(crate) mod field;
mod flow;
mod open;
pub mod terminus;
mod transfer;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use bytes::{Bytes, BytesMut};

pub use attach::{ATTACH, Attach};
pub use begin::{BEGIN, Begin};
pub use close::{CLOSE, Close};
pub use definitions::{
    AmqpError, DeliveryNumber, DeliveryTag, Fields, Handle, IetfLanguageTag, MESSAGE_FORMAT_AMQP,
    MESSAGE_FORMAT_BATCH, MessageFormat, Milliseconds, ReceiverSettleMode, Role, Seconds,
    SenderSettleMode, SequenceNo, TransferNumber, condition,
};
pub use detach::{DETACH, Detach};
pub use disposition::{DISPOSITION, Disposition};
pub use end::{END, End};
pub use error::{Definition, Error};
pub use field::CompositeType;
pub use flow::{FLOW, Flow};
pub use open::{OPEN, Open};
pub use terminus::{Coordinator, Source, Target, Terminus, TerminusDurability};
pub use transfer::{TRANSFER, Transfer};

use crate::amqp::types::{Composite, EncodeError, Limits};

/// One of the nine performatives (§2.7): the body of an AMQP frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Performative {
    /// §2.7.1.
    Open(Open),
    /// §2.7.2.
    Begin(Begin),
    /// §2.7.3; boxed, being the largest by far (two termini).
    Attach(Box<Attach>),
    /// §2.7.4.
    Flow(Flow),
    /// §2.7.5.
    Transfer(Transfer),
    /// §2.7.6.
    Disposition(Disposition),
    /// §2.7.7.
    Detach(Detach),
    /// §2.7.8.
    End(End),
    /// §2.7.9.
    Close(Close),
}

/// The nine, in descriptor order 0x10–0x18.
const PERFORMATIVES: [&Definition; 9] =
    [&OPEN, &BEGIN, &ATTACH, &FLOW, &TRANSFER, &DISPOSITION, &DETACH, &END, &CLOSE];

impl Performative {
    /// Reads a frame body: the performative, and the bytes after it, a slice of
    /// `body` (a transfer's message payload; empty for the others, whose bytes
    /// after the performative the engine should refuse).
    ///
    /// # Errors
    ///
    /// [`Error`]: the body is not a composite within `limits`, its descriptor is
    /// none of the nine (`amqp:decode-error`), or a field breaks its definition.
    /// Never panics, whatever the input.
    pub fn decode(body: &Bytes, limits: &Limits) -> Result<(Performative, Bytes), Error> {
        let (composite, used) = Composite::decode(body, limits)?;
        let performative = Performative::from_composite(composite)?;
        Ok((performative, body.slice(used..)))
    }

    /// Writes the performative (the caller appends a transfer's payload).
    ///
    /// # Errors
    ///
    /// As [`Composite::encode`]: only a value over 4 GiB.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        CompositeType::encode(self, out)
    }

    /// What the performative is: its name, section and descriptor.
    pub fn definition(&self) -> &'static Definition {
        match self {
            Performative::Open(_) => &OPEN,
            Performative::Begin(_) => &BEGIN,
            Performative::Attach(_) => &ATTACH,
            Performative::Flow(_) => &FLOW,
            Performative::Transfer(_) => &TRANSFER,
            Performative::Disposition(_) => &DISPOSITION,
            Performative::Detach(_) => &DETACH,
            Performative::End(_) => &END,
            Performative::Close(_) => &CLOSE,
        }
    }
}

impl CompositeType for Performative {
    fn from_composite(composite: Composite) -> Result<Performative, Error> {
        let Some(def) = PERFORMATIVES.into_iter().find(|def| def.matches(&composite.descriptor))
        else {
            return Err(Error::UnknownDescriptor {
                place: "part 2 §2.7 performative",
                found: composite.descriptor,
            });
        };
        Ok(match def.code {
            0x10 => Performative::Open(Open::from_composite(composite)?),
            0x11 => Performative::Begin(Begin::from_composite(composite)?),
            0x12 => Performative::Attach(Box::new(Attach::from_composite(composite)?)),
            0x13 => Performative::Flow(Flow::from_composite(composite)?),
            0x14 => Performative::Transfer(Transfer::from_composite(composite)?),
            0x15 => Performative::Disposition(Disposition::from_composite(composite)?),
            0x16 => Performative::Detach(Detach::from_composite(composite)?),
            0x17 => Performative::End(End::from_composite(composite)?),
            _ => Performative::Close(Close::from_composite(composite)?),
        })
    }

    fn write<S: field::Sink>(&self, w: field::Writer<S>) -> S::Done {
        match self {
            Performative::Open(p) => p.write(w),
            Performative::Begin(p) => p.write(w),
            Performative::Attach(p) => p.write(w),
            Performative::Flow(p) => p.write(w),
            Performative::Transfer(p) => p.write(w),
            Performative::Disposition(p) => p.write(w),
            Performative::Detach(p) => p.write(w),
            Performative::End(p) => p.write(w),
            Performative::Close(p) => p.write(w),
        }
    }
}
