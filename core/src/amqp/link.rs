//! Links (AMQP 1.0 part 2 §2.6): `attach` (§2.7.3) and `detach` (§2.7.7) both
//! ways, link flow control (§2.6.7, `flow` with a handle, §2.7.4), transfers
//! split across frames and reassembled (§2.6.12, §2.7.5), settlement and
//! `disposition` (§2.6.12, §2.7.6, part 3 §3.4), as a sans-IO component over
//! [`Sessions`].
//!
//! [`Links`] owns every link of one connection. The runtime hands it every
//! [`SessionEvent`] with [`Links::handle_session_event`] (begun and ended sessions
//! too: a link needs its session's peer handle-max), and drains
//! [`Links::poll_event`] after every input and command; session events come back
//! up as [`LinkEvent::SessionBegun`] and [`LinkEvent::SessionEnded`], so the
//! application reads one stream.
//!
//! A link is named by its session and the handle this side gave it ([`LinkId`]);
//! the peer's handle is mapped to it when its `attach` arrives (§2.6.2).
//!
//! A delivery is sent whole: [`Links::send`] splits it into frames within the
//! peer's max-frame-size and sends them all at once, or refuses it when the
//! session's remote incoming window (§2.5.6) cannot take them all. Keeping the
//! rest of a delivery queued would need the session's flows, which [`Sessions`]
//! keeps to itself; a refused delivery is sent again once the peer's window has
//! grown (read [`Sessions::windows`]).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use bytes::{Bytes, BytesMut};

use super::connection::Connection;
use super::delivery_state::DeliveryState;
use super::frame::{FRAME_HEADER_LEN, MIN_MAX_FRAME_SIZE};
use super::performative::{
    AmqpError, Attach, Begin, DeliveryNumber, DeliveryTag, Detach, Disposition, Fields, Flow,
    Handle, MessageFormat, Performative, ReceiverSettleMode, Role, SenderSettleMode, SequenceNo,
    Source, Target, Transfer, condition, definitions::MAX_DELIVERY_TAG_LEN,
};
use super::session::{self, SessionEvent, SessionId, Sessions};
use super::types::Symbol;
use crate::time::Timestamp;
use crate::utf8::Utf8Bytes;

/// A link of a [`Links`]: its session and the handle this side sends it with
/// (§2.6.2). A handle is reused once its link has detached both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId {
    /// The session the link is attached to.
    pub session: SessionId,
    /// This side's handle for it.
    pub handle: Handle,
}

impl core::fmt::Display for LinkId {
    /// `session 0, handle 2`: as error descriptions sent to the peer name a link.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}, handle {}", self.session, self.handle)
    }
}

/// What [`Links`] must know of this side's sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The handle-max this side announces in its `begin`s
    /// ([`SessionConfig::handle_max`](super::session::SessionConfig::handle_max)):
    /// a peer's `attach` above it closes the connection (§2.7.2).
    pub handle_max: Handle,
}

impl Default for LinkConfig {
    /// The standard's default handle-max, as [`SessionConfig::default`](super::session::SessionConfig).
    fn default() -> LinkConfig {
        LinkConfig { handle_max: Begin::DEFAULT_HANDLE_MAX }
    }
}

/// What this side announces in its `attach` (§2.7.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// The link's name, unique per pair of containers and direction (§2.6.1).
    pub name: Utf8Bytes,
    /// This side's end of the link.
    pub role: Role,
    /// Where messages come from.
    pub source: Option<Source>,
    /// Where messages go.
    pub target: Option<Target>,
    /// How this side settles as a sender, or would like the sender to (§2.8.2).
    pub snd_settle_mode: SenderSettleMode,
    /// How this side settles as a receiver, or would like the receiver to (§2.8.3).
    pub rcv_settle_mode: ReceiverSettleMode,
    /// The largest message this side takes in, bytes; `None` or 0: no limit. A
    /// larger delivery is rejected ([`LinkError::MessageSizeExceeded`]).
    pub max_message_size: Option<u64>,
    /// Link properties (spec file §5.3).
    pub properties: Fields,
    /// A sender's first delivery-count (§2.6.7); ignored for a receiver.
    pub initial_delivery_count: SequenceNo,
}

impl LinkSpec {
    /// A link of `name` as `role` between `source` and `target`, settle modes
    /// mixed and first, no size limit, no properties, delivery-count 0.
    pub fn new(
        name: Utf8Bytes,
        role: Role,
        source: Option<Source>,
        target: Option<Target>,
    ) -> LinkSpec {
        LinkSpec {
            name,
            role,
            source,
            target,
            snd_settle_mode: SenderSettleMode::default(),
            rcv_settle_mode: ReceiverSettleMode::default(),
            max_message_size: None,
            properties: Fields::new(),
            initial_delivery_count: 0,
        }
    }

    /// The answer to the peer's `remote` attach (§2.6.3): the same name, the other
    /// role, its termini and settle modes echoed. The application sets its
    /// max-message-size and properties before [`Links::accept_attach`].
    pub fn answering(remote: &Attach) -> LinkSpec {
        LinkSpec {
            snd_settle_mode: remote.snd_settle_mode,
            rcv_settle_mode: remote.rcv_settle_mode.unwrap_or_default(),
            ..LinkSpec::new(
                remote.name.clone(),
                opposite(remote.role),
                remote.source.clone(),
                remote.target.clone(),
            )
        }
    }

    fn attach(&self, handle: Handle) -> Attach {
        Attach {
            snd_settle_mode: self.snd_settle_mode,
            rcv_settle_mode: Some(self.rcv_settle_mode),
            source: self.source.clone(),
            target: self.target.clone(),
            initial_delivery_count: (self.role == Role::Sender)
                .then_some(self.initial_delivery_count),
            max_message_size: self.max_message_size.filter(|&m| m > 0),
            properties: self.properties.clone(),
            ..Attach::new(self.name.clone(), handle, self.role)
        }
    }
}

/// A message to send on a sender link (§2.6.12): one delivery, however many
/// frames it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its tag on the link, at most 32 bytes (§2.8.7).
    pub tag: DeliveryTag,
    /// The message format (§2.8.12): 0, or the C SDK's batch format.
    pub message_format: MessageFormat,
    /// Whether this side settles it as it sends it (at most once): it is then
    /// forgotten at once, and no disposition follows.
    pub settled: bool,
    /// The encoded message (part 3 §3.2).
    pub payload: Bytes,
}

/// A link endpoint's state (§2.6.3, §2.6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// This side's `attach` is sent, the peer's awaited.
    AttachSent,
    /// The peer's `attach` arrived ([`LinkEvent::AttachRequested`]); the
    /// application answers with [`Links::accept_attach`] or
    /// [`Links::refuse_attach`].
    AttachReceived,
    /// Both `attach`es exchanged: transfers and flows move.
    Attached,
    /// This side's `detach` is sent, the peer's awaited; the peer's transfers and
    /// flows are dropped meanwhile, unless this side detached for the peer's error
    /// on the link: then they end the session ([`LinkError::ErrantLink`]).
    DetachSent,
}

/// A link's flow-control state (§2.6.7), as this side sees it. Delivery-counts are
/// serial numbers (RFC 1982) and wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFlow {
    /// Deliveries sent on the link so far, from the sender's initial count.
    pub delivery_count: SequenceNo,
    /// Deliveries the sender may still send.
    pub link_credit: u32,
    /// Whether the receiver asked the sender to use up or give back its credit.
    pub drain: bool,
}

impl LinkFlow {
    /// The link's fields of a flow (§2.7.4); the session stamps its own.
    fn performative(&self, handle: Handle) -> Performative {
        Performative::Flow(Flow {
            handle: Some(handle),
            delivery_count: Some(self.delivery_count),
            link_credit: Some(self.link_credit),
            drain: self.drain,
            ..Flow::default()
        })
    }
}

/// What the application must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A session began ([`SessionEvent::Begun`]): links may attach on it.
    SessionBegun {
        /// The session.
        session: SessionId,
        /// Whether the peer began it.
        by_peer: bool,
    },
    /// A session ended ([`SessionEvent::Ended`]), and its links with it (§2.6.1:
    /// a link lives in a session), without events of their own.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Whether the peer ended it.
        by_peer: bool,
        /// The error of the side that ended it.
        error: Option<AmqpError>,
    },
    /// The peer attached a link (§2.6.3); answer with [`Links::accept_attach`] or
    /// [`Links::refuse_attach`].
    AttachRequested {
        /// The link, with the handle this side has reserved for it.
        link: LinkId,
        /// The peer's attach.
        remote: Box<Attach>,
    },
    /// Both `attach`es are exchanged. A peer refusing this side's attach answers
    /// with a null source or target and detaches at once (§2.6.3):
    /// [`LinkEvent::Detached`] follows.
    Attached {
        /// The link.
        link: LinkId,
        /// Whether the peer attached first (and this side accepted).
        by_peer: bool,
        /// The peer's attach: its termini, settle modes and max-message-size.
        remote: Box<Attach>,
    },
    /// Both `detach`es are exchanged: the link and its unsettled deliveries are
    /// gone, its handle free.
    Detached {
        /// The link.
        link: LinkId,
        /// Whether the peer detached first (this side answered).
        by_peer: bool,
        /// Whether the side that detached first closed the link (§2.6.6).
        closed: bool,
        /// The error of the side that detached first.
        error: Option<AmqpError>,
    },
    /// A sender link's credit after the receiver's flow (§2.6.7); with `drain`, the
    /// receiver wants the credit used up now or given back with
    /// [`Links::drained`].
    Credit {
        /// The link.
        link: LinkId,
        /// Deliveries this side may send.
        credit: u32,
        /// The receiver's drain flag.
        drain: bool,
    },
    /// A whole delivery on a receiver link: its frames' payloads in order.
    Delivery {
        /// The link.
        link: LinkId,
        /// Its number in the session, for [`Links::disposition`].
        delivery_id: DeliveryNumber,
        /// Its tag (for IoT Hub C2D, the lock token, spec file §5.5).
        tag: DeliveryTag,
        /// The message format (§2.8.12).
        message_format: MessageFormat,
        /// Whether the sender settled it: no disposition is expected.
        settled: bool,
        /// When this side settles it (§2.8.3): after the sender, with `second`.
        rcv_settle_mode: ReceiverSettleMode,
        /// The encoded message.
        payload: Bytes,
        /// The sender's state for it, if it gave one.
        state: Option<DeliveryState>,
    },
    /// The sender aborted a delivery mid-way (§2.6.14): its frames are dropped.
    Aborted {
        /// The link.
        link: LinkId,
        /// The delivery's number.
        delivery_id: DeliveryNumber,
    },
    /// The peer's disposition of one of this side's unsettled deliveries (§2.7.6):
    /// one event per delivery its range covers. A settled one is forgotten.
    Disposition {
        /// The link.
        link: LinkId,
        /// The delivery's number.
        delivery_id: DeliveryNumber,
        /// Its state at the peer: the outcome, for a receiver's disposition.
        state: Option<DeliveryState>,
        /// Whether the peer settled it.
        settled: bool,
    },
    /// The sender answered this side's drain (§2.6.7): its credit is used up.
    Drained {
        /// The link.
        link: LinkId,
    },
}

/// A violation by the peer. Its wire reaction is already queued, at the scope
/// of [`condition`](Self::condition): the connection's `close`, the session's
/// `end`, the link's `detach` (closed, with the error), or the delivery's
/// rejection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// An attach with a handle above this side's handle-max: "A peer that receives
    /// a handle outside the supported range MUST close the connection with the
    /// framing-error error-code" (§2.7.2, handle-max).
    #[error("{session}: attach handle {handle} exceeds handle-max {max} (AMQP 1.0 §2.7.2)")]
    HandleOutOfRange {
        /// The session.
        session: SessionId,
        /// The peer's handle.
        handle: Handle,
        /// This side's handle-max.
        max: Handle,
    },
    /// An attach with a handle the peer already uses: "MUST be responded to with
    /// an immediate close carrying a handle-in-use session-error" (§2.7.3,
    /// handle); a session-error ends the session (§2.8.17), so the session ends.
    #[error("{session}: attach handle {handle} is in use (AMQP 1.0 §2.7.3)")]
    HandleInUse {
        /// The session.
        session: SessionId,
        /// The peer's handle.
        handle: Handle,
    },
    /// A transfer, flow or detach on a handle no link of the peer is attached to:
    /// the session ends with `amqp:session:unattached-handle` (§2.7.4, handle;
    /// §2.8.17).
    #[error("{session}: {performative} on unattached handle {handle} (AMQP 1.0 §2.8.17)")]
    UnattachedHandle {
        /// The session.
        session: SessionId,
        /// The performative's name.
        performative: &'static str,
        /// The peer's handle.
        handle: Handle,
    },
    /// Input for a link this side detached for an error the peer made on it (a
    /// transfer, a flow, a disposition of its deliveries, or a pipelined attach
    /// of its name) before the peer's detach: "If any input (other than a detach)
    /// related to the endpoint either via the input handle or delivery-ids be
    /// received, the session MUST be terminated with an errant-link
    /// session-error" (§2.6.5), and so must a pipelined attach.
    #[error("{link}: {performative} for a link detached for the peer's error (AMQP 1.0 §2.6.5)")]
    ErrantLink {
        /// The link.
        link: LinkId,
        /// The performative's name.
        performative: &'static str,
    },
    /// A peer attach when no handle up to the peer's handle-max is free to answer
    /// it with: the session ends with `amqp:resource-limit-exceeded`.
    #[error("{session}: no handle left to answer the peer's attach")]
    NoFreeHandle {
        /// The session.
        session: SessionId,
    },
    /// A delivery beyond the credit this side gave (§2.6.7): the link detaches
    /// with `amqp:link:transfer-limit-exceeded` (§2.8.18).
    #[error("{link}: a transfer without link credit (AMQP 1.0 §2.6.7)")]
    TransferLimitExceeded {
        /// The link.
        link: LinkId,
    },
    /// A transfer on a link where the peer is the receiver: "the peer sent a frame
    /// that is not permitted in the current state"; the link detaches with
    /// `amqp:illegal-state` (§2.8.15).
    #[error("{link}: a transfer from the link's receiver (AMQP 1.0 §2.6.1)")]
    TransferFromReceiver {
        /// The link.
        link: LinkId,
    },
    /// A transfer breaking §2.7.5: a delivery's first frame without its
    /// delivery-id or tag, a continuation frame with another delivery-id. The link
    /// detaches with `amqp:invalid-field`.
    #[error("{link}: {why} (AMQP 1.0 §2.7.5)")]
    InvalidTransfer {
        /// The link.
        link: LinkId,
        /// What was wrong.
        why: &'static str,
    },
    /// A delivery larger than this side's max-message-size on the link (§2.7.3:
    /// "results in a message-size-exceeded link-error"). Only the delivery fails:
    /// it is rejected with `amqp:link:message-size-exceeded` and settled (an
    /// unsettled one), its frames are dropped without being buffered, and the
    /// link goes on, as the limit is this side's own.
    #[error("{link}: delivery {delivery_id} exceeds max-message-size {max} (AMQP 1.0 §2.7.3)")]
    MessageSizeExceeded {
        /// The link.
        link: LinkId,
        /// The delivery.
        delivery_id: DeliveryNumber,
        /// This side's max-message-size, bytes.
        max: u64,
    },
}

/// How far a [`LinkError`]'s reaction reaches.
enum Scope {
    Connection,
    Session(SessionId),
    Link(LinkId),
    Delivery,
}

impl LinkError {
    /// The error condition of the reaction.
    pub fn condition(&self) -> Symbol {
        match self {
            LinkError::HandleOutOfRange { .. } => condition::CONNECTION_FRAMING_ERROR,
            LinkError::HandleInUse { .. } => condition::SESSION_HANDLE_IN_USE,
            LinkError::UnattachedHandle { .. } => condition::SESSION_UNATTACHED_HANDLE,
            LinkError::ErrantLink { .. } => condition::SESSION_ERRANT_LINK,
            LinkError::NoFreeHandle { .. } => condition::RESOURCE_LIMIT_EXCEEDED,
            LinkError::TransferLimitExceeded { .. } => condition::LINK_TRANSFER_LIMIT_EXCEEDED,
            LinkError::TransferFromReceiver { .. } => condition::ILLEGAL_STATE,
            LinkError::InvalidTransfer { .. } => condition::INVALID_FIELD,
            LinkError::MessageSizeExceeded { .. } => condition::LINK_MESSAGE_SIZE_EXCEEDED,
        }
    }

    /// The link the violation happened on, when it was on one.
    pub fn link(&self) -> Option<LinkId> {
        match *self {
            LinkError::TransferLimitExceeded { link }
            | LinkError::TransferFromReceiver { link }
            | LinkError::InvalidTransfer { link, .. }
            | LinkError::MessageSizeExceeded { link, .. }
            | LinkError::ErrantLink { link, .. } => Some(link),
            LinkError::HandleOutOfRange { .. }
            | LinkError::HandleInUse { .. }
            | LinkError::UnattachedHandle { .. }
            | LinkError::NoFreeHandle { .. } => None,
        }
    }

    fn scope(&self) -> Scope {
        match *self {
            LinkError::HandleOutOfRange { .. } => Scope::Connection,
            LinkError::HandleInUse { session, .. }
            | LinkError::UnattachedHandle { session, .. }
            | LinkError::NoFreeHandle { session } => Scope::Session(session),
            LinkError::ErrantLink { link, .. } => Scope::Session(link.session),
            LinkError::TransferLimitExceeded { link }
            | LinkError::TransferFromReceiver { link }
            | LinkError::InvalidTransfer { link, .. } => Scope::Link(link),
            LinkError::MessageSizeExceeded { .. } => Scope::Delivery,
        }
    }

    fn to_amqp_error(&self) -> AmqpError {
        AmqpError::new(self.condition(), Some(Utf8Bytes::from(alloc::format!("{self}"))))
    }
}

/// Why a command was refused. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No such session: not begun, ended, or ending after a violation.
    #[error("no session {0}")]
    UnknownSession(SessionId),
    /// No such link (never attached, or detached).
    #[error("no link {0}")]
    UnknownLink(LinkId),
    /// Every handle up to the peer's handle-max carries a link (§2.7.2).
    #[error("{session}: every handle up to the peer's handle-max {max} is in use")]
    NoFreeHandle {
        /// The session.
        session: SessionId,
        /// The peer's handle-max.
        max: Handle,
    },
    /// The link is not in a state that allows this.
    #[error("{link} is {state:?}")]
    State {
        /// The link.
        link: LinkId,
        /// Its state.
        state: LinkState,
    },
    /// The command belongs to the other end of the link: `send` and `drained` to
    /// a sender, `flow` to a receiver.
    #[error("{link} is a {role:?}")]
    Role {
        /// The link.
        link: LinkId,
        /// This side's role on it.
        role: Role,
    },
    /// [`Links::accept_attach`] with a name or role that does not answer the
    /// peer's attach (§2.6.3: same name, other role).
    #[error("{0}: the answer's name or role does not match the peer's attach")]
    AnswerMismatch(LinkId),
    /// No link credit (§2.6.7): wait for [`LinkEvent::Credit`].
    #[error("{0}: no link credit (AMQP 1.0 §2.6.7)")]
    NoCredit(LinkId),
    /// [`Links::drained`] when the receiver asked for no drain.
    #[error("{0}: the receiver asked for no drain")]
    NotDraining(LinkId),
    /// The message exceeds the peer's max-message-size for the link (§2.7.3).
    #[error("{link}: {size} bytes exceed the peer's max-message-size {max}")]
    MessageTooLarge {
        /// The link.
        link: LinkId,
        /// The payload's size, bytes.
        size: usize,
        /// The peer's limit, bytes.
        max: u64,
    },
    /// A delivery tag over 32 bytes (§2.8.7).
    #[error("a {0}-byte delivery tag exceeds 32 bytes (AMQP 1.0 §2.8.7)")]
    TagTooLong(usize),
    /// The peer's max-frame-size leaves no room for payload after the transfer's
    /// header (§2.7.1).
    #[error("max-frame-size {0} leaves no room for a transfer's payload")]
    FrameTooSmall(u32),
    /// The session's remote incoming window (§2.5.6) cannot take every frame of
    /// the delivery; try again once the peer's flow has widened it.
    #[error("{link}: {frames} frames need more than the peer's incoming window {window}")]
    WindowTooSmall {
        /// The link.
        link: LinkId,
        /// The frames the delivery takes.
        frames: u32,
        /// The peer's incoming window.
        window: u32,
    },
    /// A delivery's settled flag contradicts the sender-settle-mode this side
    /// announced (§2.8.2).
    #[error("{link}: settled={settled} under snd-settle-mode {mode:?} (AMQP 1.0 §2.8.2)")]
    SettleMode {
        /// The link.
        link: LinkId,
        /// The mode announced.
        mode: SenderSettleMode,
        /// The delivery's flag.
        settled: bool,
    },
    /// A receiver settling a delivery under rcv-settle-mode second before the
    /// sender did (§2.8.3): send the outcome unsettled and wait.
    #[error("{link}: delivery {delivery_id} settles after the sender (AMQP 1.0 §2.8.3)")]
    SettleBeforeSender {
        /// The link.
        link: LinkId,
        /// The delivery.
        delivery_id: DeliveryNumber,
    },
    /// The range holds no unsettled delivery of the link, or one of another link
    /// of the session (a disposition's range covers them all, §2.7.6).
    #[error("{link}: deliveries {first}..={last} are not this link's unsettled ones")]
    Deliveries {
        /// The link.
        link: LinkId,
        /// The range's first delivery-id.
        first: DeliveryNumber,
        /// Its last.
        last: DeliveryNumber,
    },
    /// The session refused the frame.
    #[error("{0}")]
    Session(#[from] session::CommandError),
}

/// A delivery arriving frame by frame.
#[derive(Debug)]
struct Partial {
    delivery_id: DeliveryNumber,
    tag: DeliveryTag,
    message_format: MessageFormat,
    settled: bool,
    rcv_settle_mode: ReceiverSettleMode,
    state: Option<DeliveryState>,
    payload: BytesMut,
    /// Rejected for its size: its frames are dropped until the last.
    discarding: bool,
}

#[derive(Debug)]
struct Link {
    state: LinkState,
    role: Role,
    /// This side's attach, once sent.
    local: Option<Box<Attach>>,
    /// The peer's attach, once arrived.
    remote: Option<Box<Attach>>,
    flow: LinkFlow,
    partial: Option<Partial>,
    /// This side's detach, once sent.
    detach: Option<Detach>,
}

impl Link {
    fn new(state: LinkState, role: Role) -> Link {
        Link {
            state,
            role,
            local: None,
            remote: None,
            flow: LinkFlow { delivery_count: 0, link_credit: 0, drain: false },
            partial: None,
            detach: None,
        }
    }

    /// The receiver-settle-mode in force: the receiver's own (§2.8.3).
    fn rcv_settle_mode(&self) -> ReceiverSettleMode {
        let receiver = match self.role {
            Role::Receiver => &self.local,
            Role::Sender => &self.remote,
        };
        receiver.as_ref().and_then(|a| a.rcv_settle_mode).unwrap_or_default()
    }
}

/// The links of one session.
#[derive(Debug)]
struct SessionLinks {
    /// The peer's handle-max (§2.7.2).
    remote_handle_max: Handle,
    /// By this side's handle.
    links: BTreeMap<Handle, Link>,
    /// Handles below `unused` that carry no link (theirs was forgotten): with
    /// `unused`, the lowest free handle without a scan of the links, which a peer
    /// attaching thousands of them would make quadratic.
    freed: BTreeSet<Handle>,
    /// The lowest handle never used: it and every handle above carry no link.
    unused: u64,
    /// This side's links whose attach the peer has not answered: the only ones a
    /// peer's attach may answer, so it is matched without a scan of every link.
    attaching: BTreeSet<Handle>,
    /// The peer's handle to this side's (§2.6.2).
    remote: BTreeMap<Handle, Handle>,
    /// Links this side detached for the peer's error on them, until the peer's
    /// detach: other input for them ends the session (§2.6.5). A link the
    /// application detached with an error (stolen, unauthorized, refused) is not
    /// one: the peer's frames sent before it saw that detach are dropped.
    errant: BTreeSet<Handle>,
    /// Deliveries this side sent unsettled, by delivery-id: the link's handle.
    outgoing: BTreeMap<DeliveryNumber, Handle>,
    /// Deliveries this side received unsettled, by delivery-id: the link's handle
    /// and the delivery's receiver-settle-mode.
    incoming: BTreeMap<DeliveryNumber, (Handle, ReceiverSettleMode)>,
    /// This side ended the session for a violation: the peer's link frames are
    /// dropped until its `end`.
    ending: bool,
}

impl SessionLinks {
    fn new(remote_handle_max: Handle) -> SessionLinks {
        SessionLinks {
            remote_handle_max,
            links: BTreeMap::new(),
            freed: BTreeSet::new(),
            unused: 0,
            attaching: BTreeSet::new(),
            remote: BTreeMap::new(),
            errant: BTreeSet::new(),
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            ending: false,
        }
    }

    /// The lowest handle up to the peer's handle-max that carries no link.
    fn free_handle(&self) -> Option<Handle> {
        let lowest = self.freed.first().map_or(self.unused, |&h| u64::from(h));
        Handle::try_from(lowest).ok().filter(|&h| h <= self.remote_handle_max)
    }

    /// Puts `link` on `handle`, a [`SessionLinks::free_handle`].
    fn add(&mut self, handle: Handle, link: Link) {
        if !self.freed.remove(&handle) {
            self.unused = u64::from(handle) + 1;
        }
        self.links.insert(handle, link);
    }

    /// Forgets a link and its unsettled deliveries.
    fn forget(&mut self, handle: Handle) -> Option<Link> {
        let link = self.links.remove(&handle)?;
        self.freed.insert(handle);
        self.attaching.remove(&handle);
        self.errant.remove(&handle);
        if let Some(remote) = &link.remote {
            self.remote.remove(&remote.handle);
        }
        self.outgoing.retain(|_, h| *h != handle);
        self.incoming.retain(|_, (h, _)| *h != handle);
        Some(link)
    }
}

/// Whether `id` is within the serial-number range `first..=last` (RFC 1982).
fn in_range(id: DeliveryNumber, first: DeliveryNumber, last: DeliveryNumber) -> bool {
    id.wrapping_sub(first) <= last.wrapping_sub(first)
}

fn opposite(role: Role) -> Role {
    match role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    }
}

/// The links of one connection. See the module documentation.
#[derive(Debug)]
pub struct Links {
    config: LinkConfig,
    /// By the session's id.
    sessions: BTreeMap<SessionId, SessionLinks>,
    events: VecDeque<LinkEvent>,
}

impl Links {
    /// No links yet.
    pub fn new(config: LinkConfig) -> Links {
        Links { config, sessions: BTreeMap::new(), events: VecDeque::new() }
    }

    /// The next event for the application. Poll after every input and command.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// A link's state; `None` once it is gone.
    pub fn state(&self, link: LinkId) -> Option<LinkState> {
        self.link(link).map(|l| l.state)
    }

    /// Links of every session in any state, those a peer attached and this side
    /// refused included until their detaches are exchanged: what the peer has made
    /// this side keep.
    pub fn count(&self) -> usize {
        self.sessions.values().map(|s| s.links.len()).sum()
    }

    /// A link's flow-control state (§2.6.7).
    pub fn flow_state(&self, link: LinkId) -> Option<LinkFlow> {
        self.link(link).map(|l| l.flow)
    }

    fn link(&self, link: LinkId) -> Option<&Link> {
        self.sessions.get(&link.session)?.links.get(&link.handle)
    }

    /// Attaches a link (§2.7.3) on the lowest free handle within the peer's
    /// handle-max; [`LinkEvent::Attached`] follows the peer's answer.
    ///
    /// # Errors
    ///
    /// [`CommandError::UnknownSession`], [`CommandError::NoFreeHandle`], or the
    /// session's refusal.
    pub fn attach(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        session: SessionId,
        spec: LinkSpec,
    ) -> Result<LinkId, CommandError> {
        let s = self.session(session)?;
        let max = s.remote_handle_max;
        let handle = s.free_handle().ok_or(CommandError::NoFreeHandle { session, max })?;
        let attach = Box::new(spec.attach(handle));
        sessions.send(conn, now, session, Performative::Attach(attach.clone()))?;
        let mut link = Link::new(LinkState::AttachSent, spec.role);
        link.flow.delivery_count = spec.initial_delivery_count;
        link.local = Some(attach);
        let s = self.session(session)?;
        s.add(handle, link);
        s.attaching.insert(handle);
        Ok(LinkId { session, handle })
    }

    /// Accepts the peer's attach ([`LinkEvent::AttachRequested`]) with this side's
    /// `answer` ([`LinkSpec::answering`]); [`LinkEvent::Attached`] follows.
    ///
    /// # Errors
    ///
    /// [`CommandError::State`] unless the peer's attach awaits an answer,
    /// [`CommandError::AnswerMismatch`], or the session's refusal.
    pub fn accept_attach(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        answer: LinkSpec,
    ) -> Result<(), CommandError> {
        let l = self.awaiting_answer(link)?;
        let Some(remote) = l.remote.clone() else {
            return Err(CommandError::State { link, state: l.state });
        };
        if answer.name != remote.name || answer.role == remote.role {
            return Err(CommandError::AnswerMismatch(link));
        }
        let attach = Box::new(answer.attach(link.handle));
        sessions.send(conn, now, link.session, Performative::Attach(attach.clone()))?;
        let l = self.link_mut(link)?;
        l.local = Some(attach);
        l.state = LinkState::Attached;
        if l.role == Role::Sender {
            l.flow.delivery_count = answer.initial_delivery_count;
        }
        self.events.push_back(LinkEvent::Attached { link, by_peer: true, remote });
        Ok(())
    }

    /// Refuses the peer's attach (§2.6.3): an attach with null termini (the one
    /// the peer asked for null is the refusal: the source when the peer
    /// receives, the target when it sends), then a closing detach with `error`. [`LinkEvent::Detached`] follows
    /// the peer's detach.
    ///
    /// # Errors
    ///
    /// As [`Links::accept_attach`].
    pub fn refuse_attach(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        error: AmqpError,
    ) -> Result<(), CommandError> {
        let l = self.awaiting_answer(link)?;
        let Some(remote) = l.remote.as_deref() else {
            return Err(CommandError::State { link, state: l.state });
        };
        let attach = refusal(remote, link.handle);
        sessions.send(conn, now, link.session, Performative::Attach(attach.clone()))?;
        let detach = Detach { handle: link.handle, closed: true, error: Some(error) };
        let sent = sessions.send(conn, now, link.session, Performative::Detach(detach.clone()));
        let l = self.link_mut(link)?;
        l.local = Some(attach);
        l.state = LinkState::Attached;
        sent?;
        l.state = LinkState::DetachSent;
        l.detach = Some(detach);
        Ok(())
    }

    /// Detaches a link (§2.7.7), closing it or not, with an error or not;
    /// [`LinkEvent::Detached`] follows the peer's detach. A link whose attach
    /// still awaits the peer's may detach; the peer's attach is then awaited too.
    ///
    /// # Errors
    ///
    /// [`CommandError::State`] when detaching already, or before answering the
    /// peer's attach (refuse it instead); or the session's refusal.
    pub fn detach(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        closed: bool,
        error: Option<AmqpError>,
    ) -> Result<(), CommandError> {
        let l = self.link_mut(link)?;
        if !matches!(l.state, LinkState::AttachSent | LinkState::Attached) {
            return Err(CommandError::State { link, state: l.state });
        }
        let detach = Detach { handle: link.handle, closed, error };
        sessions.send(conn, now, link.session, Performative::Detach(detach.clone()))?;
        let l = self.link_mut(link)?;
        l.state = LinkState::DetachSent;
        l.detach = Some(detach);
        l.partial = None;
        Ok(())
    }

    /// Grants a receiver link's sender `credit` deliveries from the current
    /// delivery-count (§2.6.7), replacing the credit given before; with `drain`,
    /// asks it to use them up or give them back ([`LinkEvent::Drained`]).
    ///
    /// # Errors
    ///
    /// [`CommandError::Role`] on a sender, [`CommandError::State`] unless
    /// attached, or the session's refusal.
    pub fn flow(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        credit: u32,
        drain: bool,
    ) -> Result<(), CommandError> {
        let l = self.attached(link, Role::Receiver)?;
        let mut state = l.flow;
        state.link_credit = credit;
        state.drain = drain;
        sessions.send(conn, now, link.session, state.performative(link.handle))?;
        self.link_mut(link)?.flow = state;
        Ok(())
    }

    /// A sender answers the receiver's drain with nothing to send (§2.6.7): "the
    /// sender MUST advance delivery-count until link-credit is zero, and send its
    /// updated flow state to the receiver".
    ///
    /// # Errors
    ///
    /// [`CommandError::NotDraining`] unless the receiver asked for a drain,
    /// [`CommandError::Role`] on a receiver, [`CommandError::State`] unless
    /// attached, or the session's refusal.
    pub fn drained(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
    ) -> Result<(), CommandError> {
        let l = self.attached(link, Role::Sender)?;
        if !l.flow.drain {
            return Err(CommandError::NotDraining(link));
        }
        let state = LinkFlow {
            delivery_count: l.flow.delivery_count.wrapping_add(l.flow.link_credit),
            link_credit: 0,
            drain: true,
        };
        sessions.send(conn, now, link.session, state.performative(link.handle))?;
        self.link_mut(link)?.flow = LinkFlow { drain: false, ..state };
        Ok(())
    }

    /// Sends a delivery on a sender link, using one credit (§2.6.7), in as many
    /// transfer frames as the peer's max-frame-size needs (all but the last with
    /// `more`, §2.7.5), and returns its delivery-id. An unsettled delivery is kept
    /// until settled ([`LinkEvent::Disposition`], [`Links::disposition`]).
    ///
    /// # Errors
    ///
    /// [`CommandError::NoCredit`], [`CommandError::MessageTooLarge`] (the peer's
    /// max-message-size), [`CommandError::WindowTooSmall`] (the session's remote
    /// incoming window cannot take every frame), [`CommandError::TagTooLong`],
    /// [`CommandError::SettleMode`], [`CommandError::FrameTooSmall`],
    /// [`CommandError::Role`], [`CommandError::State`] unless attached, or the
    /// session's refusal (for a connection closing mid-way, after some frames).
    pub fn send(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        delivery: Delivery,
    ) -> Result<DeliveryNumber, CommandError> {
        let l = self.attached(link, Role::Sender)?;
        if l.flow.link_credit == 0 {
            return Err(CommandError::NoCredit(link));
        }
        if delivery.tag.len() > MAX_DELIVERY_TAG_LEN {
            return Err(CommandError::TagTooLong(delivery.tag.len()));
        }
        let mode = l.local.as_ref().map_or(SenderSettleMode::Mixed, |a| a.snd_settle_mode);
        let settled = delivery.settled;
        if matches!(
            (mode, settled),
            (SenderSettleMode::Settled, false) | (SenderSettleMode::Unsettled, true)
        ) {
            return Err(CommandError::SettleMode { link, mode, settled });
        }
        let size = delivery.payload.len();
        if let Some(max) = l.remote.as_ref().and_then(|a| a.max_message_size).filter(|&m| m > 0)
            && u64::try_from(size).map_or(true, |size| size > max)
        {
            return Err(CommandError::MessageTooLarge { link, size, max });
        }
        let first = Transfer {
            handle: link.handle,
            delivery_tag: Some(delivery.tag),
            message_format: Some(delivery.message_format),
            settled: Some(settled),
            ..Transfer::default()
        };
        let chunk = chunk_size(conn, &first)?;
        let frames = size.div_ceil(chunk).max(1);
        let window = sessions.windows(link.session).map_or(0, |w| w.remote_incoming_window);
        let frames = u32::try_from(frames).unwrap_or(u32::MAX);
        if frames > window {
            return Err(CommandError::WindowTooSmall { link, frames, window });
        }
        let mut rest = delivery.payload;
        let mut transfer = first;
        let mut delivery_id = None;
        loop {
            let piece = rest.split_to(rest.len().min(chunk));
            transfer.more = !rest.is_empty();
            let id = sessions.transfer(conn, now, link.session, transfer, &piece)?;
            if delivery_id.is_none() {
                delivery_id = Some(id);
                let l = self.link_mut(link)?;
                l.flow.delivery_count = l.flow.delivery_count.wrapping_add(1);
                l.flow.link_credit -= 1;
                if !settled {
                    self.session(link.session)?.outgoing.insert(id, link.handle);
                }
            }
            if rest.is_empty() {
                return Ok(id);
            }
            // Continuation frames name only their link (§2.7.5); the session
            // stamps the delivery-id.
            transfer = Transfer { handle: link.handle, ..Transfer::default() };
        }
    }

    /// Sends this side's disposition (§2.7.6) of the link's unsettled deliveries
    /// `first..=last` (`last` `None`: `first` alone): their `state` (an outcome for
    /// a receiver), settled or not. Settled ones are forgotten.
    ///
    /// # Errors
    ///
    /// [`CommandError::Deliveries`] when the range holds none of the link's
    /// unsettled deliveries, or one of another link; [`CommandError::SettleBeforeSender`]
    /// for a receiver settling under rcv-settle-mode second; [`CommandError::State`]
    /// while detaching, or the session's refusal.
    #[allow(clippy::too_many_arguments)]
    pub fn disposition(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        first: DeliveryNumber,
        last: Option<DeliveryNumber>,
        state: Option<DeliveryState>,
        settled: bool,
    ) -> Result<(), CommandError> {
        let l = self.link_mut(link)?;
        if l.state == LinkState::DetachSent {
            return Err(CommandError::State { link, state: l.state });
        }
        let role = l.role;
        let end = last.unwrap_or(first);
        let s = self.session(link.session)?;
        let covered: alloc::vec::Vec<(DeliveryNumber, Handle, ReceiverSettleMode)> = match role {
            Role::Sender => s
                .outgoing
                .iter()
                .filter(|(id, _)| in_range(**id, first, end))
                .map(|(id, h)| (*id, *h, ReceiverSettleMode::First))
                .collect(),
            Role::Receiver => s
                .incoming
                .iter()
                .filter(|(id, _)| in_range(**id, first, end))
                .map(|(id, (h, mode))| (*id, *h, *mode))
                .collect(),
        };
        if covered.is_empty() || covered.iter().any(|(_, h, _)| *h != link.handle) {
            return Err(CommandError::Deliveries { link, first, last: end });
        }
        if settled
            && let Some((delivery_id, ..)) =
                covered.iter().find(|(_, _, mode)| *mode == ReceiverSettleMode::Second)
        {
            return Err(CommandError::SettleBeforeSender { link, delivery_id: *delivery_id });
        }
        let disposition = Disposition { role, first, last, settled, state, batchable: false };
        sessions.send(conn, now, link.session, Performative::Disposition(disposition))?;
        if settled {
            let s = self.session(link.session)?;
            // Delivery ids are numbered per direction (§2.7.5): a sender's settle
            // covers what it sent, a receiver's what it received.
            for (id, ..) in covered {
                match role {
                    Role::Sender => {
                        s.outgoing.remove(&id);
                    }
                    Role::Receiver => {
                        s.incoming.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }

    /// An event of the session layer ([`Sessions::poll_event`]): every one, in
    /// order.
    ///
    /// # Errors
    ///
    /// [`LinkError`]: the peer broke §2.6 or §2.7; the reaction is already queued
    /// (with the connection's `close`, the sessions and links are forgotten,
    /// without events: the connection's `Closed` says it all).
    pub fn handle_session_event(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        event: SessionEvent,
    ) -> Result<(), LinkError> {
        match event {
            SessionEvent::Begun { session, by_peer, remote } => {
                self.sessions.insert(session, SessionLinks::new(remote.handle_max));
                self.events.push_back(LinkEvent::SessionBegun { session, by_peer });
                Ok(())
            }
            SessionEvent::Ended { session, by_peer, error } => {
                self.sessions.remove(&session);
                self.events.push_back(LinkEvent::SessionEnded { session, by_peer, error });
                Ok(())
            }
            SessionEvent::Frame { session, performative, payload } => {
                if self.sessions.get(&session).is_none_or(|s| s.ending) {
                    return Ok(());
                }
                let result = self.on_frame(sessions, conn, now, session, performative, payload);
                if let Err(e) = &result {
                    self.react(sessions, conn, now, e);
                }
                result
            }
        }
    }

    /// The connection is over: every link is gone with it, without events.
    pub fn handle_connection_closed(&mut self) {
        self.sessions.clear();
    }

    /// Queues the reaction to a violation at its scope.
    fn react(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        e: &LinkError,
    ) {
        let error = e.to_amqp_error();
        match e.scope() {
            Scope::Connection => {
                conn.close(now, Some(error));
                sessions.handle_connection_closed();
                self.handle_connection_closed();
            }
            Scope::Session(session) => {
                // A connection already closing drops the end; its Closed follows.
                let _ = sessions.end(conn, now, session, Some(error));
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.ending = true;
                    s.links.clear();
                    s.freed.clear();
                    s.unused = 0;
                    s.attaching.clear();
                    s.remote.clear();
                    s.errant.clear();
                    s.outgoing.clear();
                    s.incoming.clear();
                }
            }
            Scope::Link(link) => {
                let detached = match self.state(link) {
                    Some(LinkState::AttachReceived) => {
                        self.refuse_attach(sessions, conn, now, link, error)
                    }
                    _ => self.detach(sessions, conn, now, link, true, Some(error)),
                };
                if detached.is_ok()
                    && let Some(s) = self.sessions.get_mut(&link.session)
                {
                    s.errant.insert(link.handle);
                }
            }
            // Rejected where it was found, with the delivery at hand.
            Scope::Delivery => {}
        }
    }

    fn on_frame(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        session: SessionId,
        performative: Performative,
        payload: Bytes,
    ) -> Result<(), LinkError> {
        let name = performative.definition().name;
        let handle = match &performative {
            Performative::Attach(attach) => return self.on_attach(session, attach.clone()),
            Performative::Disposition(d) => return self.on_disposition(session, d),
            Performative::Transfer(t) => t.handle,
            Performative::Detach(d) => d.handle,
            Performative::Flow(f) => match f.handle {
                Some(handle) => handle,
                None => return Ok(()),
            },
            // Sessions hands up nothing else.
            _ => return Ok(()),
        };
        let Some(s) = self.sessions.get_mut(&session) else { return Ok(()) };
        let Some(&ours) = s.remote.get(&handle) else {
            return Err(LinkError::UnattachedHandle { session, performative: name, handle });
        };
        let link = LinkId { session, handle: ours };
        if s.errant.contains(&ours) && !matches!(performative, Performative::Detach(_)) {
            return Err(LinkError::ErrantLink { link, performative: name });
        }
        match performative {
            Performative::Detach(detach) => {
                self.on_detach(sessions, conn, now, link, detach);
                Ok(())
            }
            Performative::Flow(flow) => {
                self.on_flow(sessions, conn, now, link, &flow);
                Ok(())
            }
            Performative::Transfer(transfer) => {
                self.on_transfer(sessions, conn, now, link, transfer, payload)
            }
            _ => Ok(()),
        }
    }

    fn on_attach(&mut self, session: SessionId, attach: Box<Attach>) -> Result<(), LinkError> {
        let handle = attach.handle;
        let max = self.config.handle_max;
        if handle > max {
            return Err(LinkError::HandleOutOfRange { session, handle, max });
        }
        let Some(s) = self.sessions.get_mut(&session) else { return Ok(()) };
        // An attach of an errant link's name that resumes nothing (an empty
        // unsettled map) is a pipelined attach (§2.6.5).
        let pipelined = s.errant.iter().copied().find(|h| {
            s.links
                .get(h)
                .and_then(|l| l.remote.as_ref())
                .is_some_and(|remote| remote.name == attach.name && remote.role == attach.role)
                && attach.unsettled.is_empty()
        });
        if let Some(ours) = pipelined {
            let link = LinkId { session, handle: ours };
            return Err(LinkError::ErrantLink { link, performative: "attach" });
        }
        if s.remote.contains_key(&handle) {
            return Err(LinkError::HandleInUse { session, handle });
        }
        // This side's attach the peer answers: same name, other role (§2.6.3).
        let links = &s.links;
        let answered = s.attaching.iter().copied().find(|h| {
            links.get(h).is_some_and(|l| {
                l.role != attach.role && l.local.as_ref().is_some_and(|a| a.name == attach.name)
            })
        });
        if let Some((ours, l)) = answered.and_then(|h| Some((h, s.links.get_mut(&h)?))) {
            s.attaching.remove(&ours);
            s.remote.insert(handle, ours);
            if l.role == Role::Receiver {
                l.flow.delivery_count = attach.initial_delivery_count.unwrap_or(0);
            }
            l.remote = Some(attach.clone());
            if l.state == LinkState::AttachSent {
                l.state = LinkState::Attached;
                let link = LinkId { session, handle: ours };
                self.events.push_back(LinkEvent::Attached { link, by_peer: false, remote: attach });
            }
            return Ok(());
        }
        let ours = s.free_handle().ok_or(LinkError::NoFreeHandle { session })?;
        let mut link = Link::new(LinkState::AttachReceived, opposite(attach.role));
        if link.role == Role::Receiver {
            link.flow.delivery_count = attach.initial_delivery_count.unwrap_or(0);
        }
        link.remote = Some(attach.clone());
        s.add(ours, link);
        s.remote.insert(handle, ours);
        let link = LinkId { session, handle: ours };
        self.events.push_back(LinkEvent::AttachRequested { link, remote: attach });
        Ok(())
    }

    /// The peer's detach: answered at once when the peer detached first (§2.6.5),
    /// the link forgotten either way.
    fn on_detach(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        detach: Detach,
    ) {
        let Some(s) = self.sessions.get_mut(&link.session) else { return };
        let Some(l) = s.forget(link.handle) else { return };
        let event = match l.detach {
            Some(ours) => {
                LinkEvent::Detached { link, by_peer: false, closed: ours.closed, error: ours.error }
            }
            None => {
                // A detach before this side answered the attach: the handle is
                // the peer's to know first (§2.6.3's refusal, without an error).
                if l.state == LinkState::AttachReceived
                    && let Some(remote) = l.remote.as_deref()
                {
                    let attach = Performative::Attach(refusal(remote, link.handle));
                    let _ = sessions.send(conn, now, link.session, attach);
                }
                let answer = Detach { handle: link.handle, closed: detach.closed, error: None };
                let _ = sessions.send(conn, now, link.session, Performative::Detach(answer));
                LinkEvent::Detached {
                    link,
                    by_peer: true,
                    closed: detach.closed,
                    error: detach.error,
                }
            }
        };
        self.events.push_back(event);
    }

    /// The peer's flow state for a link (§2.6.7).
    fn on_flow(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        flow: &Flow,
    ) {
        let Ok(l) = self.link_mut(link) else { return };
        if l.state == LinkState::DetachSent {
            return;
        }
        match l.role {
            Role::Sender => {
                // "link-credit(snd) := delivery-count(rcv) + link-credit(rcv) -
                // delivery-count(snd)", with the initial delivery-count for a
                // receiver that has not seen it yet; a receiver counting deliveries
                // this side never sent leaves no credit, not near 2^32.
                let initial = l.local.as_ref().and_then(|a| a.initial_delivery_count);
                let base = flow.delivery_count.or(initial).unwrap_or(0);
                let in_flight = l.flow.delivery_count.wrapping_sub(base);
                l.flow.link_credit = flow.link_credit.unwrap_or(0).saturating_sub(in_flight);
                l.flow.drain = flow.drain;
                if l.flow.link_credit > 0 {
                    let (credit, drain) = (l.flow.link_credit, l.flow.drain);
                    self.events.push_back(LinkEvent::Credit { link, credit, drain });
                }
            }
            Role::Receiver => {
                if let Some(count) = flow.delivery_count {
                    let advanced = count.wrapping_sub(l.flow.delivery_count);
                    l.flow.delivery_count = count;
                    l.flow.link_credit = l.flow.link_credit.saturating_sub(advanced);
                }
                if l.flow.drain && l.flow.link_credit == 0 {
                    l.flow.drain = false;
                    self.events.push_back(LinkEvent::Drained { link });
                }
            }
        }
        if flow.echo
            && let Ok(l) = self.link_mut(link)
            && l.state == LinkState::Attached
        {
            let answer = l.flow.performative(link.handle);
            let _ = sessions.send(conn, now, link.session, answer);
        }
    }

    fn on_transfer(
        &mut self,
        sessions: &mut Sessions,
        conn: &mut Connection,
        now: Timestamp,
        link: LinkId,
        t: Transfer,
        payload: Bytes,
    ) -> Result<(), LinkError> {
        // A delivery-id names one delivery among its session's unsettled ones
        // (§2.6.12, §2.7.5): a second delivery under it could never be told apart
        // in a disposition, so one of the two would go unanswered.
        let in_use = t.delivery_id.is_some_and(|id| {
            self.sessions.get(&link.session).is_some_and(|s| s.incoming.contains_key(&id))
        });
        let Ok(l) = self.link_mut(link) else { return Ok(()) };
        if l.state == LinkState::DetachSent {
            return Ok(());
        }
        if l.role == Role::Sender {
            return Err(LinkError::TransferFromReceiver { link });
        }
        let invalid = |why| LinkError::InvalidTransfer { link, why };
        let mut p = match l.partial.take() {
            Some(p) => {
                if t.delivery_id.is_some_and(|id| id != p.delivery_id) {
                    return Err(invalid("a continuation frame with another delivery-id"));
                }
                p
            }
            None => {
                let delivery_id =
                    t.delivery_id.ok_or_else(|| invalid("a first frame without delivery-id"))?;
                if in_use {
                    return Err(invalid("the delivery-id of a delivery still unsettled"));
                }
                let tag =
                    t.delivery_tag.clone().ok_or_else(|| invalid("a first frame without tag"))?;
                if l.flow.link_credit == 0 {
                    return Err(LinkError::TransferLimitExceeded { link });
                }
                l.flow.link_credit -= 1;
                l.flow.delivery_count = l.flow.delivery_count.wrapping_add(1);
                Partial {
                    delivery_id,
                    tag,
                    message_format: t.message_format.unwrap_or(0),
                    settled: false,
                    rcv_settle_mode: t.rcv_settle_mode.unwrap_or_else(|| l.rcv_settle_mode()),
                    state: None,
                    payload: BytesMut::new(),
                    discarding: false,
                }
            }
        };
        let delivery_id = p.delivery_id;
        if t.aborted {
            self.events.push_back(LinkEvent::Aborted { link, delivery_id });
            return Ok(());
        }
        p.settled |= t.settled == Some(true);
        if t.state.is_some() {
            p.state = t.state;
        }
        if p.discarding {
            if t.more {
                l.partial = Some(p);
            }
            return Ok(());
        }
        let max = l.local.as_ref().and_then(|a| a.max_message_size).filter(|&m| m > 0);
        let size = p.payload.len().saturating_add(payload.len());
        if let Some(max) = max
            && u64::try_from(size).map_or(true, |size| size > max)
        {
            let settled = p.settled;
            if t.more {
                p.payload = BytesMut::new();
                p.discarding = true;
                l.partial = Some(p);
            }
            let e = LinkError::MessageSizeExceeded { link, delivery_id, max };
            if !settled {
                let rejected = DeliveryState::Rejected { error: Some(e.to_amqp_error()) };
                let disposition = Disposition {
                    role: Role::Receiver,
                    first: delivery_id,
                    last: None,
                    settled: true,
                    state: Some(rejected),
                    batchable: false,
                };
                let _ =
                    sessions.send(conn, now, link.session, Performative::Disposition(disposition));
            }
            return Err(e);
        }
        if t.more {
            p.payload.extend_from_slice(&payload);
            l.partial = Some(p);
            return Ok(());
        }
        // A delivery in one frame (every telemetry message below the frame size)
        // keeps its slice of the receive buffer; only a multi-frame one is copied
        // together.
        let payload = if p.payload.is_empty() {
            payload
        } else {
            p.payload.extend_from_slice(&payload);
            p.payload.freeze()
        };
        if !p.settled
            && let Some(s) = self.sessions.get_mut(&link.session)
        {
            s.incoming.insert(delivery_id, (link.handle, p.rcv_settle_mode));
        }
        self.events.push_back(LinkEvent::Delivery {
            link,
            delivery_id,
            tag: p.tag,
            message_format: p.message_format,
            settled: p.settled,
            rcv_settle_mode: p.rcv_settle_mode,
            payload,
            state: p.state,
        });
        Ok(())
    }

    /// The peer's disposition (§2.7.6): its role names whose deliveries it covers
    /// (a receiver's, this side's sent ones); ids no unsettled delivery has are
    /// ignored, as the peer may settle what this side has already forgotten.
    /// One covering a delivery of an errant link ends the session (§2.6.5).
    fn on_disposition(&mut self, session: SessionId, d: &Disposition) -> Result<(), LinkError> {
        let Some(s) = self.sessions.get_mut(&session) else { return Ok(()) };
        let last = d.last.unwrap_or(d.first);
        let covered: alloc::vec::Vec<(DeliveryNumber, Handle)> = match d.role {
            Role::Receiver => s
                .outgoing
                .iter()
                .filter(|(id, _)| in_range(**id, d.first, last))
                .map(|(id, h)| (*id, *h))
                .collect(),
            Role::Sender => s
                .incoming
                .iter()
                .filter(|(id, _)| in_range(**id, d.first, last))
                .map(|(id, (h, _))| (*id, *h))
                .collect(),
        };
        if let Some(&(_, handle)) = covered.iter().find(|(_, h)| s.errant.contains(h)) {
            let link = LinkId { session, handle };
            return Err(LinkError::ErrantLink { link, performative: "disposition" });
        }
        for (delivery_id, handle) in covered {
            // Each direction numbers its deliveries on its own (§2.7.5 delivery-id):
            // the peer's receiver settles this side's outgoing ones, its sender the
            // incoming ones.
            if d.settled {
                match d.role {
                    Role::Receiver => {
                        s.outgoing.remove(&delivery_id);
                    }
                    Role::Sender => {
                        s.incoming.remove(&delivery_id);
                    }
                }
            }
            self.events.push_back(LinkEvent::Disposition {
                link: LinkId { session, handle },
                delivery_id,
                state: d.state.clone(),
                settled: d.settled,
            });
        }
        Ok(())
    }

    fn session(&mut self, session: SessionId) -> Result<&mut SessionLinks, CommandError> {
        match self.sessions.get_mut(&session) {
            Some(s) if !s.ending => Ok(s),
            _ => Err(CommandError::UnknownSession(session)),
        }
    }

    fn link_mut(&mut self, link: LinkId) -> Result<&mut Link, CommandError> {
        self.session(link.session)?
            .links
            .get_mut(&link.handle)
            .ok_or(CommandError::UnknownLink(link))
    }

    fn awaiting_answer(&mut self, link: LinkId) -> Result<&mut Link, CommandError> {
        let l = self.link_mut(link)?;
        match l.state {
            LinkState::AttachReceived => Ok(l),
            state => Err(CommandError::State { link, state }),
        }
    }

    fn attached(&mut self, link: LinkId, role: Role) -> Result<&mut Link, CommandError> {
        let l = self.link_mut(link)?;
        if l.role != role {
            return Err(CommandError::Role { link, role: l.role });
        }
        match l.state {
            LinkState::Attached => Ok(l),
            state => Err(CommandError::State { link, state }),
        }
    }
}

/// The attach refusing the peer's `remote` (§2.6.3): its name, this side's
/// handle and role, and null termini: the one the peer asked for is what makes it
/// a refusal, the other is of no use on a link about to detach, and leaving both
/// out keeps the answer within the peer's max-frame-size whatever the peer's
/// termini held.
fn refusal(remote: &Attach, handle: Handle) -> Box<Attach> {
    Box::new(Attach::new(remote.name.clone(), handle, opposite(remote.role)))
}

/// The payload bytes each transfer frame of a delivery carries: the peer's
/// max-frame-size (512 bytes before its `open`, §2.4.1) less the frame header and
/// the first frame's transfer, encoded with the widest delivery-id and `more`
/// set, as continuation frames carry less.
fn chunk_size(conn: &Connection, first: &Transfer) -> Result<usize, CommandError> {
    let max_frame_size = conn.remote_open().map_or(MIN_MAX_FRAME_SIZE, |o| o.max_frame_size);
    let widest = Transfer { delivery_id: Some(u32::MAX), more: true, ..first.clone() };
    let mut header = BytesMut::new();
    Performative::Transfer(widest)
        .encode(&mut header)
        .map_err(|_| CommandError::FrameTooSmall(max_frame_size))?;
    usize::try_from(max_frame_size)
        .unwrap_or(usize::MAX)
        .checked_sub(FRAME_HEADER_LEN + header.len())
        .filter(|&n| n > 0)
        .ok_or(CommandError::FrameTooSmall(max_frame_size))
}

#[cfg(test)]
mod tests;
