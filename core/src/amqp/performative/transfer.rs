//! `transfer` (part 2 §2.7.5): a frame of a delivery; the message payload follows
//! the performative in the frame body.

use super::definitions::{DeliveryNumber, DeliveryTag, Handle, MessageFormat, ReceiverSettleMode};
use super::error::{Definition, Error};
use super::field::{CompositeType, Reader, Sink, Writer};
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::types::Composite;

/// `amqp:transfer:list`, 0x14.
pub const TRANSFER: Definition = Definition {
    name: "transfer",
    section: "part 2 §2.7.5",
    code: 0x14,
    symbol: "amqp:transfer:list",
};

/// `transfer` (§2.7.5). Fields a continuation frame of a multi-frame delivery may
/// leave out are options.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Transfer {
    /// The link (mandatory).
    pub handle: Handle,
    /// The delivery's number in the session; required on a delivery's first frame.
    pub delivery_id: Option<DeliveryNumber>,
    /// The delivery's tag on its link, ≤ 32 bytes; required on the first frame. For
    /// IoT Hub C2D, the lock token (spec file §5.5, TV-18).
    pub delivery_tag: Option<DeliveryTag>,
    /// The message format; required on the first frame: 0, or 0x80013700 for the C
    /// SDK's batches (spec file §5.4).
    pub message_format: Option<MessageFormat>,
    /// Whether the sender settled the delivery; absent on the first frame means false.
    pub settled: Option<bool>,
    /// Whether more frames of this delivery follow; default false.
    pub more: bool,
    /// The receiver-settle-mode for this delivery, when the link's is mixed.
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    /// The delivery's state at the sender (when resuming or settled).
    pub state: Option<DeliveryState>,
    /// Whether this resumes a delivery of an earlier link; default false.
    pub resume: bool,
    /// Whether the delivery is aborted; default false.
    pub aborted: bool,
    /// Whether the peer may delay its disposition; default false.
    pub batchable: bool,
}

impl CompositeType for Transfer {
    fn from_composite(composite: Composite) -> Result<Transfer, Error> {
        let mut r = Reader::new(composite, &TRANSFER)?;
        Ok(Transfer {
            handle: r.req("handle")?,
            delivery_id: r.opt("delivery-id")?,
            delivery_tag: r.delivery_tag("delivery-tag")?,
            message_format: r.opt("message-format")?,
            settled: r.opt("settled")?,
            more: r.or("more", false)?,
            rcv_settle_mode: r.rcv_settle_mode("rcv-settle-mode")?,
            state: r.composite("state")?,
            resume: r.or("resume", false)?,
            aborted: r.or("aborted", false)?,
            batchable: r.or("batchable", false)?,
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.put(self.handle)
            .opt(self.delivery_id)
            .opt(self.delivery_tag.clone())
            .opt(self.message_format)
            .opt(self.settled)
            .or(self.more, false)
            .rcv_settle_mode(self.rcv_settle_mode)
            .composite(self.state.as_ref())
            .or(self.resume, false)
            .or(self.aborted, false)
            .or(self.batchable, false)
            .finish(&TRANSFER)
    }
}
