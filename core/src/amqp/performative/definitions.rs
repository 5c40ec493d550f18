//! The definitions the performatives share (part 2 §2.8): roles, settle modes, the
//! number and tag types, `fields`, `error` and the error conditions.

use alloc::vec::Vec;
use bytes::Bytes;

use super::error::{Definition, Error};
use super::field::{CompositeType, FieldType, Reader, Sink, Writer};
use crate::amqp::types::{Composite, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// A link's handle (§2.8.8): the alias a session gives a link.
pub type Handle = u32;
/// A duration in seconds (§2.8.9).
pub type Seconds = u32;
/// A duration in milliseconds (§2.8.10).
pub type Milliseconds = u32;
/// Up to 32 bytes naming a delivery on its link (§2.8.7).
pub type DeliveryTag = Bytes;
/// A 32-bit RFC-1982 serial number (§2.8.11).
pub type SequenceNo = u32;
/// A delivery's number within its session (§2.8.6).
pub type DeliveryNumber = SequenceNo;
/// A transfer frame's number within its session (§2.8.5).
pub type TransferNumber = SequenceNo;
/// The format of a transfer's message (§2.8.12): 0 for the sections of part 3;
/// see [`MESSAGE_FORMAT_AMQP`] and [`MESSAGE_FORMAT_BATCH`].
pub type MessageFormat = u32;
/// A language tag from IETF BCP 47 (§2.8.12 "ietf-language-tag").
pub type IetfLanguageTag = Symbol;
/// A map with symbol keys (§2.8.13), in wire order; empty when absent.
pub type Fields = Vec<(Symbol, Value)>;

/// The message format of part 3: the message sections of §3.2 (part 2 §2.8.12).
pub const MESSAGE_FORMAT_AMQP: MessageFormat = 0;
/// The format of a batch of messages, each in a `data` section, as Microsoft's C SDK
/// always sends telemetry (spec file §5.4, TV-18).
pub const MESSAGE_FORMAT_BATCH: MessageFormat = 0x8001_3700;
/// The longest delivery tag, bytes (§2.8.7).
pub const MAX_DELIVERY_TAG_LEN: usize = 32;

/// Which end of a link (§2.8.1): `false` on the wire for the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `false`.
    Sender,
    /// `true`.
    Receiver,
}

impl FieldType for Role {
    const TYPE: &'static str = "role (boolean)";
    fn from_value(value: Value) -> Result<Self, Value> {
        match value {
            Value::Boolean(false) => Ok(Role::Sender),
            Value::Boolean(true) => Ok(Role::Receiver),
            other => Err(other),
        }
    }
    fn into_value(self) -> Value {
        Value::Boolean(self == Role::Receiver)
    }
}

/// How a sender settles (§2.8.2), a ubyte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SenderSettleMode {
    /// 0: every delivery is sent unsettled.
    Unsettled,
    /// 1: every delivery is sent settled.
    Settled,
    /// 2: either; the default.
    #[default]
    Mixed,
}

impl SenderSettleMode {
    /// The mode of a ubyte; `None` outside 0–2.
    pub const fn from_u8(code: u8) -> Option<SenderSettleMode> {
        match code {
            0 => Some(SenderSettleMode::Unsettled),
            1 => Some(SenderSettleMode::Settled),
            2 => Some(SenderSettleMode::Mixed),
            _ => None,
        }
    }

    /// Its ubyte.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// When a receiver settles (§2.8.3), a ubyte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReceiverSettleMode {
    /// 0: spontaneously, before the sender; the default.
    #[default]
    First,
    /// 1: only after the sender settled.
    Second,
}

impl ReceiverSettleMode {
    /// The mode of a ubyte; `None` outside 0–1.
    pub const fn from_u8(code: u8) -> Option<ReceiverSettleMode> {
        match code {
            0 => Some(ReceiverSettleMode::First),
            1 => Some(ReceiverSettleMode::Second),
            _ => None,
        }
    }

    /// Its ubyte.
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl Reader {
    /// A sender-settle-mode field (§2.8.2), default mixed.
    pub(crate) fn snd_settle_mode(
        &mut self,
        field: &'static str,
    ) -> Result<SenderSettleMode, Error> {
        let code = self.opt::<u8>(field)?;
        let mode = self.check(field, code, SenderSettleMode::from_u8, "§2.8.2: 0, 1 or 2")?;
        Ok(mode.unwrap_or_default())
    }

    /// A receiver-settle-mode field (§2.8.3), optional.
    pub(crate) fn rcv_settle_mode(
        &mut self,
        field: &'static str,
    ) -> Result<Option<ReceiverSettleMode>, Error> {
        let code = self.opt::<u8>(field)?;
        self.check(field, code, ReceiverSettleMode::from_u8, "§2.8.3: 0 or 1")
    }

    /// A delivery-tag field (§2.8.7), optional: binary of at most 32 bytes.
    pub(crate) fn delivery_tag(
        &mut self,
        field: &'static str,
    ) -> Result<Option<DeliveryTag>, Error> {
        let tag = self.opt::<Bytes>(field)?;
        self.check(
            field,
            tag,
            |t| (t.len() <= MAX_DELIVERY_TAG_LEN).then_some(t),
            "§2.8.7: at most 32 bytes",
        )
    }
}

impl<S: Sink> Writer<S> {
    /// A sender-settle-mode field: null for the default, mixed.
    pub(crate) fn snd_settle_mode(self, mode: SenderSettleMode) -> Writer<S> {
        self.or(mode.code(), SenderSettleMode::default().code())
    }

    /// A receiver-settle-mode field.
    pub(crate) fn rcv_settle_mode(self, mode: Option<ReceiverSettleMode>) -> Writer<S> {
        self.opt(mode.map(ReceiverSettleMode::code))
    }
}

/// `error` (§2.8.14): why a link, session or connection ended, or a delivery was
/// rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    /// What went wrong: one of [`condition`]'s symbols or a vendor's (mandatory).
    pub condition: Symbol,
    /// Text for a person, in no particular language.
    pub description: Option<Utf8Bytes>,
    /// More about it, e.g. `network-host` for a redirect (§2.8.16); empty when absent.
    pub info: Fields,
}

/// `amqp:error:list`, 0x1d (§2.8.14).
pub const ERROR: Definition =
    Definition { name: "error", section: "part 2 §2.8.14", code: 0x1d, symbol: "amqp:error:list" };

impl AmqpError {
    /// An error with `condition` and `description`, no info.
    pub fn new(condition: Symbol, description: Option<Utf8Bytes>) -> AmqpError {
        AmqpError { condition, description, info: Fields::new() }
    }
}

impl CompositeType for AmqpError {
    fn from_composite(composite: Composite) -> Result<AmqpError, Error> {
        let mut r = Reader::new(composite, &ERROR)?;
        Ok(AmqpError {
            condition: r.req("condition")?,
            description: r.opt("description")?,
            info: r.opt("info")?.unwrap_or_default(),
        })
    }

    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done {
        w.put(self.condition.clone())
            .opt(self.description.clone())
            .fields(&self.info)
            .finish(&ERROR)
    }
}

/// The error conditions of part 2: amqp-error (§2.8.15), connection-error
/// (§2.8.16), session-error (§2.8.17) and link-error (§2.8.18); and IoT Hub's own
/// `com.microsoft:` conditions that hubwire sends (spec file §5.8).
pub mod condition {
    use crate::amqp::types::Symbol;

    /// §2.8.15: an internal error occurred.
    pub const INTERNAL_ERROR: Symbol = Symbol::from_static("amqp:internal-error");
    /// §2.8.15: a peer tried to use a node that does not exist.
    pub const NOT_FOUND: Symbol = Symbol::from_static("amqp:not-found");
    /// §2.8.15: not authorized for this operation.
    pub const UNAUTHORIZED_ACCESS: Symbol = Symbol::from_static("amqp:unauthorized-access");
    /// §2.8.15: data could not be decoded.
    pub const DECODE_ERROR: Symbol = Symbol::from_static("amqp:decode-error");
    /// §2.8.15: the peer exceeded its resource allocation.
    pub const RESOURCE_LIMIT_EXCEEDED: Symbol = Symbol::from_static("amqp:resource-limit-exceeded");
    /// §2.8.15: the operation is not allowed in this context.
    pub const NOT_ALLOWED: Symbol = Symbol::from_static("amqp:not-allowed");
    /// §2.8.15: an invalid field was passed in a frame body.
    pub const INVALID_FIELD: Symbol = Symbol::from_static("amqp:invalid-field");
    /// §2.8.15: the peer tried to use functionality that is not implemented.
    pub const NOT_IMPLEMENTED: Symbol = Symbol::from_static("amqp:not-implemented");
    /// §2.8.15: a resource is locked by another.
    pub const RESOURCE_LOCKED: Symbol = Symbol::from_static("amqp:resource-locked");
    /// §2.8.15: a precondition of the operation failed.
    pub const PRECONDITION_FAILED: Symbol = Symbol::from_static("amqp:precondition-failed");
    /// §2.8.15: a referenced resource was deleted.
    pub const RESOURCE_DELETED: Symbol = Symbol::from_static("amqp:resource-deleted");
    /// §2.8.15: a frame arrived in a state that does not allow it.
    pub const ILLEGAL_STATE: Symbol = Symbol::from_static("amqp:illegal-state");
    /// §2.8.15: the peer cannot send a frame because the smallest it needs exceeds
    /// the max-frame-size.
    pub const FRAME_SIZE_TOO_SMALL: Symbol = Symbol::from_static("amqp:frame-size-too-small");

    /// §2.8.16: an operator closed the connection.
    pub const CONNECTION_FORCED: Symbol = Symbol::from_static("amqp:connection:forced");
    /// §2.8.16: a frame broke the framing rules.
    pub const CONNECTION_FRAMING_ERROR: Symbol =
        Symbol::from_static("amqp:connection:framing-error");
    /// §2.8.16: the container is elsewhere; the info says where.
    pub const CONNECTION_REDIRECT: Symbol = Symbol::from_static("amqp:connection:redirect");

    /// §2.8.17: the peer sent beyond the session's incoming window.
    pub const SESSION_WINDOW_VIOLATION: Symbol =
        Symbol::from_static("amqp:session:window-violation");
    /// §2.8.17: a frame named a link the endpoint does not know.
    pub const SESSION_ERRANT_LINK: Symbol = Symbol::from_static("amqp:session:errant-link");
    /// §2.8.17: an attach used a handle already in use.
    pub const SESSION_HANDLE_IN_USE: Symbol = Symbol::from_static("amqp:session:handle-in-use");
    /// §2.8.17: a frame used a handle no link is attached to.
    pub const SESSION_UNATTACHED_HANDLE: Symbol =
        Symbol::from_static("amqp:session:unattached-handle");

    /// §2.8.18: an operator detached the link.
    pub const LINK_DETACH_FORCED: Symbol = Symbol::from_static("amqp:link:detach-forced");
    /// §2.8.18: the peer sent more than its credit allowed.
    pub const LINK_TRANSFER_LIMIT_EXCEEDED: Symbol =
        Symbol::from_static("amqp:link:transfer-limit-exceeded");
    /// §2.8.18: a message exceeded the link's max-message-size.
    pub const LINK_MESSAGE_SIZE_EXCEEDED: Symbol =
        Symbol::from_static("amqp:link:message-size-exceeded");
    /// §2.8.18: the address is elsewhere; the info says where.
    pub const LINK_REDIRECT: Symbol = Symbol::from_static("amqp:link:redirect");
    /// §2.8.18: another link with the same name took over.
    pub const LINK_STOLEN: Symbol = Symbol::from_static("amqp:link:stolen");

    /// IoT Hub (spec file §5.8): a request's argument is invalid, e.g. a malformed
    /// put-token (Microsoft's vendor condition, not part 2's).
    pub const ARGUMENT_ERROR: Symbol = Symbol::from_static("com.microsoft:argument-error");
}
