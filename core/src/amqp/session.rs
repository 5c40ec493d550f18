//! Sessions (AMQP 1.0 part 2 §2.5): `begin` (§2.7.2) and `end` (§2.7.8) both ways,
//! the channel maps (§2.5.1), the endpoint states (§2.5.5) and the session flow
//! control of §2.5.6, as a sans-IO component over a [`Connection`].
//!
//! [`Sessions`] owns every session of one connection. The runtime hands it each
//! [`ConnectionEvent::Frame`](super::connection::ConnectionEvent::Frame) with
//! [`Sessions::handle_frame`], and drains [`Sessions::poll_event`] after every input
//! and command, as for the connection. Frames for links (attach, detach, transfer,
//! disposition, a flow with a handle) go up as [`SessionEvent::Frame`]; the link
//! layer sends its own with [`Sessions::send`] and [`Sessions::transfer`].
//!
//! A session is named by the channel this side sends it on ([`SessionId`]); the
//! peer's channel is mapped to it when its `begin` arrives (§2.5.1).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use bytes::Bytes;

use super::connection::{self, Connection};
use super::performative::{
    AmqpError, Begin, DeliveryNumber, End, Flow, Handle, Performative, Transfer, TransferNumber,
    condition,
};
use super::types::Symbol;
use crate::time::Timestamp;
use crate::utf8::Utf8Bytes;

/// A session of a [`Sessions`]: the channel this side sends it on (§2.5.1). A
/// channel, hence an id, is reused once its session has ended both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u16);

impl core::fmt::Display for SessionId {
    /// `session 0`: the channel this side sends it on.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "session {}", self.0)
    }
}

/// What this side announces in its `begin` (§2.7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The transfer-id of this side's first transfer (§2.5.6's
    /// initial-outgoing-id); any value is valid, transfer-ids wrap (RFC 1982).
    pub next_outgoing_id: TransferNumber,
    /// Transfers this side takes in before it widens the window with
    /// [`Sessions::set_incoming_window`] (§2.5.6).
    pub incoming_window: u32,
    /// Transfers this side may send before it updates the peer (§2.5.6). This
    /// side has no policy that shrinks it: it is announced as given.
    pub outgoing_window: u32,
    /// The highest link handle this side uses (§2.7.2).
    pub handle_max: Handle,
}

impl Default for SessionConfig {
    /// 0, 2048 transfers in, `u32::MAX` out (no limit of this side's), the
    /// standard's default handle-max.
    fn default() -> SessionConfig {
        SessionConfig {
            next_outgoing_id: 0,
            incoming_window: 2048,
            outgoing_window: u32::MAX,
            handle_max: Begin::DEFAULT_HANDLE_MAX,
        }
    }
}

/// A session endpoint's state (§2.5.5). UNMAPPED is a session [`Sessions`] no
/// longer knows; BEGIN RCVD and END RCVD pass at once, as this side answers a
/// peer's `begin` and `end` as soon as they arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// This side's `begin` is sent, the peer's is awaited.
    BeginSent,
    /// Both `begin`s exchanged: frames flow both ways.
    Mapped,
    /// This side's `end` is sent, the peer's is awaited; the peer's frames are
    /// still handed up, as §2.5.5 lets it send until its `end`.
    EndSent,
    /// This side ended the session with an error: the peer's frames are dropped
    /// until its `end` (§2.5.5: "any incoming frames on the session MUST be
    /// silently discarded until the peer's end frame is received").
    Discarding,
}

/// The session flow-control state of §2.5.6, as this side sees it. Transfer-ids
/// are serial numbers (RFC 1982) and wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindows {
    /// The transfer-id the peer's next transfer gets; `None` until its `begin`.
    pub next_incoming_id: Option<TransferNumber>,
    /// Transfers this side still takes in.
    pub incoming_window: u32,
    /// The transfer-id this side's next transfer gets.
    pub next_outgoing_id: TransferNumber,
    /// This side's announced outgoing window.
    pub outgoing_window: u32,
    /// Transfers the peer still takes in: this side sends none at 0.
    pub remote_incoming_window: u32,
    /// Transfers the peer may still send before it updates this side.
    pub remote_outgoing_window: u32,
}

/// What the link layer above must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// Both `begin`s are exchanged (§2.5.5 MAPPED): links may attach.
    Begun {
        /// The session.
        session: SessionId,
        /// Whether the peer began it (and this side answered).
        by_peer: bool,
        /// The peer's `begin`: its handle-max bounds the handles this side uses.
        remote: Begin,
    },
    /// Both `end`s are exchanged: the session is gone and its channel free.
    Ended {
        /// The session.
        session: SessionId,
        /// Whether the peer ended it (this side answered) rather than this side.
        by_peer: bool,
        /// The error of the side that ended it.
        error: Option<AmqpError>,
    },
    /// A link's performative: attach, detach, transfer, disposition, or a flow
    /// with a handle (the session's fields of a flow are applied already).
    Frame {
        /// The session it arrived on.
        session: SessionId,
        /// The performative.
        performative: Performative,
        /// A transfer's payload; empty for the others.
        payload: Bytes,
    },
}

/// A violation by the peer. Its wire reaction is already queued: the session's
/// `end` with [`condition`](Self::condition), or the connection's `close`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A transfer beyond this side's incoming window (§2.5.6); the session ends
    /// with `amqp:session:window-violation` (§2.8.17) and discards until the
    /// peer's `end`.
    #[error("{session}: a transfer beyond the incoming window (AMQP 1.0 §2.5.6)")]
    WindowViolation {
        /// The session.
        session: SessionId,
    },
    /// A frame other than `begin` on a channel no session of the peer's is mapped
    /// to (§2.5.1), a `begin` on a channel already mapped, or a `begin` answering a
    /// channel where no `begin` of this side waits. The connection closes with
    /// `amqp:illegal-state` ("the peer sent a frame that is not permitted in the
    /// current state", §2.8.15): the frame itself is well formed, so
    /// framing-error (§2.8.16: no valid frame header "can be formed") does not
    /// describe it.
    #[error("{performative} on channel {channel}: {why} (AMQP 1.0 §2.5.1)")]
    Unmapped {
        /// The performative's name.
        performative: &'static str,
        /// The peer's channel.
        channel: u16,
        /// What was wrong.
        why: &'static str,
    },
    /// A `begin` from the peer when every channel the peer accepts carries a
    /// session of this side: no channel is left to answer on (§2.7.2). The
    /// connection closes with `amqp:resource-limit-exceeded`.
    #[error("no channel left to answer the peer's begin on channel {channel}")]
    NoFreeChannel {
        /// The peer's channel.
        channel: u16,
    },
}

impl SessionError {
    /// The error condition the session ends, or the connection closes, with.
    pub fn condition(&self) -> Symbol {
        match self {
            SessionError::WindowViolation { .. } => condition::SESSION_WINDOW_VIOLATION,
            SessionError::Unmapped { .. } => condition::ILLEGAL_STATE,
            SessionError::NoFreeChannel { .. } => condition::RESOURCE_LIMIT_EXCEEDED,
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
    /// No such session (it never began, or has ended).
    #[error("no session {0}")]
    UnknownSession(SessionId),
    /// The session is not in a state that allows this: link frames need MAPPED,
    /// `end` a session not yet ending (§2.5.5).
    #[error("{session} is {state:?}")]
    State {
        /// The session.
        session: SessionId,
        /// Its state.
        state: SessionState,
    },
    /// Every channel up to the peer's channel-max carries a session (§2.7.1).
    #[error("every channel up to the peer's channel-max {max} is in use")]
    NoFreeChannel {
        /// The peer's channel-max.
        max: u16,
    },
    /// The peer's incoming window is 0 (§2.5.6: no transfer may be sent); wait for
    /// its flow.
    #[error("{0}: the peer's incoming window is closed (AMQP 1.0 §2.5.6)")]
    WindowClosed(SessionId),
    /// [`Sessions::send`] takes attach, detach, disposition and flow; transfers go
    /// through [`Sessions::transfer`], begin and end through their own commands.
    #[error("{0} is not sent with Sessions::send")]
    NotALinkPerformative(&'static str),
    /// The connection refused the frame.
    #[error("{0}")]
    Connection(#[from] connection::SendError),
}

#[derive(Debug)]
struct Session {
    state: SessionState,
    remote_channel: Option<u16>,
    initial_outgoing_id: TransferNumber,
    windows: SessionWindows,
    next_delivery_id: DeliveryNumber,
    /// Handles with a delivery whose last frame had `more` set, and its id.
    open_deliveries: BTreeMap<Handle, DeliveryNumber>,
    /// The error of this side's `end`, for [`SessionEvent::Ended`].
    error: Option<AmqpError>,
}

impl Session {
    fn new(config: &SessionConfig, state: SessionState) -> Session {
        Session {
            state,
            remote_channel: None,
            initial_outgoing_id: config.next_outgoing_id,
            windows: SessionWindows {
                next_incoming_id: None,
                incoming_window: config.incoming_window,
                next_outgoing_id: config.next_outgoing_id,
                outgoing_window: config.outgoing_window,
                remote_incoming_window: 0,
                remote_outgoing_window: 0,
            },
            // §2.6.12 leaves the first delivery-id to the sender; starting at the
            // first transfer-id keeps the two readable side by side.
            next_delivery_id: config.next_outgoing_id,
            open_deliveries: BTreeMap::new(),
            error: None,
        }
    }

    /// The peer's `begin` arrived: its windows (§2.5.6).
    fn on_remote_begin(&mut self, channel: u16, begin: &Begin) {
        self.remote_channel = Some(channel);
        self.windows.next_incoming_id = Some(begin.next_outgoing_id);
        self.windows.remote_incoming_window = begin.incoming_window;
        self.windows.remote_outgoing_window = begin.outgoing_window;
    }

    fn begin(&self, config: &SessionConfig) -> Begin {
        let w = &self.windows;
        Begin {
            handle_max: config.handle_max,
            ..Begin::new(w.next_outgoing_id, w.incoming_window, w.outgoing_window)
        }
    }

    /// Stamps a flow with the session's fields (§2.7.4: every flow carries them).
    fn stamp(&self, flow: &mut Flow) {
        flow.next_incoming_id = self.windows.next_incoming_id;
        flow.incoming_window = self.windows.incoming_window;
        flow.next_outgoing_id = self.windows.next_outgoing_id;
        flow.outgoing_window = self.windows.outgoing_window;
    }

    /// A flow from the peer (§2.5.6): "remote-incoming-window = next-incoming-id
    /// (flow) + incoming-window (flow) - next-outgoing-id (endpoint)", with the
    /// initial-outgoing-id when the flow has no next-incoming-id. A peer counting
    /// transfers this side never sent leaves the window at 0, not near 2^32.
    fn on_flow(&mut self, flow: &Flow) {
        let base = flow.next_incoming_id.unwrap_or(self.initial_outgoing_id);
        let in_flight = self.windows.next_outgoing_id.wrapping_sub(base);
        self.windows.remote_incoming_window = flow.incoming_window.saturating_sub(in_flight);
        self.windows.remote_outgoing_window = flow.outgoing_window;
    }
}

/// The sessions of one connection. See the module documentation.
#[derive(Debug)]
pub struct Sessions {
    config: SessionConfig,
    /// By this side's channel.
    sessions: BTreeMap<u16, Session>,
    /// The peer's channel to this side's (§2.5.1's incoming channel map).
    remote: BTreeMap<u16, u16>,
    /// Channels below `unused` that carry no session (their session ended): with
    /// `unused`, the lowest free channel without a scan of the sessions, which a
    /// peer beginning thousands of them would make quadratic.
    freed: BTreeSet<u16>,
    /// The lowest channel never used: it and every channel above carry no session.
    unused: u32,
    events: VecDeque<SessionEvent>,
}

impl Sessions {
    /// No sessions yet; `config` is announced in the `begin`s this side answers
    /// the peer's with.
    pub fn new(config: SessionConfig) -> Sessions {
        Sessions {
            config,
            sessions: BTreeMap::new(),
            remote: BTreeMap::new(),
            freed: BTreeSet::new(),
            unused: 0,
            events: VecDeque::new(),
        }
    }

    /// A session's state; `None` when it is unmapped (§2.5.5).
    pub fn state(&self, session: SessionId) -> Option<SessionState> {
        self.sessions.get(&session.0).map(|s| s.state)
    }

    /// A session's flow-control state (§2.5.6).
    pub fn windows(&self, session: SessionId) -> Option<SessionWindows> {
        self.sessions.get(&session.0).map(|s| s.windows)
    }

    /// The next event for the link layer. Poll after every input and command.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Begins a session (§2.7.2) on the lowest free channel within the peer's
    /// channel-max (only channel 0 before its `open` arrives), announcing `config`.
    /// [`SessionEvent::Begun`] follows the peer's answer.
    ///
    /// # Errors
    ///
    /// [`CommandError::NoFreeChannel`], or the connection's refusal.
    pub fn begin(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        config: SessionConfig,
    ) -> Result<SessionId, CommandError> {
        let max = peer_channel_max(conn);
        let channel = self.free_channel(max).ok_or(CommandError::NoFreeChannel { max })?;
        let session = Session::new(&config, SessionState::BeginSent);
        conn.send(now, channel, &Performative::Begin(session.begin(&config)), &[])?;
        self.map(channel, session);
        Ok(SessionId(channel))
    }

    /// Ends a session (§2.7.8), with an error or not; [`SessionEvent::Ended`]
    /// follows the peer's `end`. A session still waiting for the peer's `begin` may
    /// end: its `begin` and `end` are then both awaited.
    ///
    /// # Errors
    ///
    /// [`CommandError::UnknownSession`], [`CommandError::State`] once ending, or
    /// the connection's refusal.
    pub fn end(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        session: SessionId,
        error: Option<AmqpError>,
    ) -> Result<(), CommandError> {
        let s = self.sessions.get_mut(&session.0).ok_or(CommandError::UnknownSession(session))?;
        if !matches!(s.state, SessionState::BeginSent | SessionState::Mapped) {
            return Err(CommandError::State { session, state: s.state });
        }
        conn.send(now, session.0, &Performative::End(End { error: error.clone() }), &[])?;
        s.state = SessionState::EndSent;
        s.error = error;
        Ok(())
    }

    /// Sets this side's incoming window to `window` transfers from the peer's
    /// next one, and tells the peer with a flow (§2.5.6, §2.7.4): what reopens a
    /// window the peer has filled. Shrinking it below the transfers the peer has
    /// in flight makes them violate it (§2.5.6 counts from next-incoming-id, as
    /// this side knows it): widen freely, shrink only on a quiet session.
    ///
    /// # Errors
    ///
    /// As [`Sessions::send`].
    pub fn set_incoming_window(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        session: SessionId,
        window: u32,
    ) -> Result<(), CommandError> {
        let s = self.mapped(session)?;
        let old = s.windows.incoming_window;
        s.windows.incoming_window = window;
        let mut flow = Flow::default();
        s.stamp(&mut flow);
        let sent = conn.send(now, session.0, &Performative::Flow(flow), &[]);
        if sent.is_err()
            && let Some(s) = self.sessions.get_mut(&session.0)
        {
            s.windows.incoming_window = old;
        }
        Ok(sent?)
    }

    /// Sends a link's attach, detach, disposition or flow on a mapped session. A
    /// flow's session fields are overwritten with the session's (§2.7.4).
    ///
    /// # Errors
    ///
    /// [`CommandError::NotALinkPerformative`] for the others,
    /// [`CommandError::UnknownSession`], [`CommandError::State`] unless MAPPED, or
    /// the connection's refusal.
    pub fn send(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        session: SessionId,
        performative: Performative,
    ) -> Result<(), CommandError> {
        let performative = match performative {
            Performative::Attach(_) | Performative::Detach(_) | Performative::Disposition(_) => {
                performative
            }
            Performative::Flow(mut flow) => {
                self.mapped(session)?.stamp(&mut flow);
                Performative::Flow(flow)
            }
            other => return Err(CommandError::NotALinkPerformative(other.definition().name)),
        };
        self.mapped(session)?;
        Ok(conn.send(now, session.0, &performative, &[])?)
    }

    /// Sends one transfer frame of a link with `payload` after it, and returns its
    /// delivery-id. The session stamps it: a delivery's first frame on a handle
    /// gets the session's next delivery-id (§2.6.12: delivery-ids are allocated
    /// per session, in order), its continuation frames (after `more`) the same one;
    /// its transfer-id is implicit (§2.5.6): next-outgoing-id, then incremented,
    /// and the peer's incoming window decremented.
    ///
    /// # Errors
    ///
    /// [`CommandError::WindowClosed`] when the peer's incoming window is 0 (§2.5.6:
    /// the link waits for the peer's flow), [`CommandError::UnknownSession`],
    /// [`CommandError::State`] unless MAPPED, or the connection's refusal (a frame
    /// over the peer's max-frame-size: splitting is the link's job).
    pub fn transfer(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        session: SessionId,
        mut transfer: Transfer,
        payload: &[u8],
    ) -> Result<DeliveryNumber, CommandError> {
        let s = self.mapped(session)?;
        if s.windows.remote_incoming_window == 0 {
            return Err(CommandError::WindowClosed(session));
        }
        let open = s.open_deliveries.get(&transfer.handle).copied();
        let delivery_id = open.unwrap_or(s.next_delivery_id);
        transfer.delivery_id = Some(delivery_id);
        let (handle, more) = (transfer.handle, transfer.more && !transfer.aborted);
        conn.send(now, session.0, &Performative::Transfer(transfer), payload)?;
        let s = self.mapped(session)?;
        if open.is_none() {
            s.next_delivery_id = s.next_delivery_id.wrapping_add(1);
        }
        if more {
            s.open_deliveries.insert(handle, delivery_id);
        } else {
            s.open_deliveries.remove(&handle);
        }
        s.windows.next_outgoing_id = s.windows.next_outgoing_id.wrapping_add(1);
        s.windows.remote_incoming_window -= 1;
        Ok(delivery_id)
    }

    /// A performative the connection handed up on the peer's `channel`
    /// ([`ConnectionEvent::Frame`](super::connection::ConnectionEvent::Frame)).
    ///
    /// # Errors
    ///
    /// [`SessionError`]: the peer broke §2.5; the session's `end` or the
    /// connection's `close` is already queued (with the latter, every session is
    /// forgotten, without events: the connection's `Closed` says it all).
    pub fn handle_frame(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        channel: u16,
        performative: Performative,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        let result = self.on_frame(conn, now, channel, performative, payload);
        if let Err(e @ (SessionError::Unmapped { .. } | SessionError::NoFreeChannel { .. })) =
            &result
        {
            conn.close(now, Some(e.to_amqp_error()));
            self.handle_connection_closed();
        }
        result
    }

    fn on_frame(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        channel: u16,
        performative: Performative,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        let name = performative.definition().name;
        let unmapped = |why| SessionError::Unmapped { performative: name, channel, why };
        if let Performative::Begin(begin) = performative {
            if self.remote.contains_key(&channel) {
                return Err(unmapped("the channel already carries a session"));
            }
            return match begin.remote_channel {
                Some(ours) => self.on_begin_answer(channel, ours, begin).ok_or_else(|| {
                    unmapped("it answers a channel where no begin of this side waits")
                }),
                None => self.on_peer_begin(conn, now, channel, begin),
            };
        }
        let Some(&local) = self.remote.get(&channel) else {
            return Err(unmapped("no session is mapped to the channel"));
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return Err(unmapped("no session is mapped to the channel"));
        };
        let session = SessionId(local);
        match performative {
            Performative::End(end) => {
                self.on_end(conn, now, session, end);
                return Ok(());
            }
            _ if s.state == SessionState::Discarding => return Ok(()),
            Performative::Transfer(_) => {
                if s.windows.incoming_window == 0 {
                    let e = SessionError::WindowViolation { session };
                    let end = End { error: Some(e.to_amqp_error()) };
                    // A connection already closing drops the end; the violation
                    // is reported all the same.
                    let _ = conn.send(now, local, &Performative::End(end.clone()), &[]);
                    s.state = SessionState::Discarding;
                    s.error = end.error;
                    return Err(e);
                }
                let w = &mut s.windows;
                w.incoming_window -= 1;
                w.next_incoming_id = w.next_incoming_id.map(|id| id.wrapping_add(1));
                w.remote_outgoing_window = w.remote_outgoing_window.saturating_sub(1);
            }
            Performative::Flow(ref flow) => {
                s.on_flow(flow);
                if flow.handle.is_none() {
                    if flow.echo && s.state == SessionState::Mapped {
                        let mut answer = Flow::default();
                        s.stamp(&mut answer);
                        let _ = conn.send(now, local, &Performative::Flow(answer), &[]);
                    }
                    return Ok(());
                }
            }
            // The connection hands neither up (it owns them); nothing to do.
            Performative::Open(_) | Performative::Close(_) | Performative::Begin(_) => {
                return Ok(());
            }
            Performative::Attach(_) | Performative::Detach(_) | Performative::Disposition(_) => {}
        }
        self.events.push_back(SessionEvent::Frame { session, performative, payload });
        Ok(())
    }

    /// The peer's `begin` answering ours on `ours` (§2.5.5 BEGIN SENT → MAPPED);
    /// `None` when no `begin` of ours waits there.
    fn on_begin_answer(&mut self, channel: u16, ours: u16, begin: Begin) -> Option<()> {
        let s = self.sessions.get_mut(&ours)?;
        if s.remote_channel.is_some()
            || !matches!(s.state, SessionState::BeginSent | SessionState::EndSent)
        {
            return None;
        }
        s.on_remote_begin(channel, &begin);
        self.remote.insert(channel, ours);
        if s.state == SessionState::BeginSent {
            s.state = SessionState::Mapped;
            let session = SessionId(ours);
            self.events.push_back(SessionEvent::Begun { session, by_peer: false, remote: begin });
        }
        Some(())
    }

    /// A `begin` the peer initiated: answered at once on a fresh channel with
    /// remote-channel set (§2.7.2), BEGIN RCVD → MAPPED.
    fn on_peer_begin(
        &mut self,
        conn: &mut Connection,
        now: Timestamp,
        channel: u16,
        begin: Begin,
    ) -> Result<(), SessionError> {
        let local = self
            .free_channel(peer_channel_max(conn))
            .ok_or(SessionError::NoFreeChannel { channel })?;
        let mut session = Session::new(&self.config, SessionState::Mapped);
        session.on_remote_begin(channel, &begin);
        let mut answer = session.begin(&self.config);
        answer.remote_channel = Some(channel);
        // A connection already closing drops the answer, and its `Closed` follows.
        let _ = conn.send(now, local, &Performative::Begin(answer), &[]);
        self.map(local, session);
        self.remote.insert(channel, local);
        let session = SessionId(local);
        self.events.push_back(SessionEvent::Begun { session, by_peer: true, remote: begin });
        Ok(())
    }

    /// The peer's `end`: answered at once when the peer ended first (§2.5.5 END
    /// RCVD), the session unmapped either way.
    fn on_end(&mut self, conn: &mut Connection, now: Timestamp, session: SessionId, end: End) {
        let Some(s) = self.sessions.remove(&session.0) else { return };
        self.freed.insert(session.0);
        if let Some(remote) = s.remote_channel {
            self.remote.remove(&remote);
        }
        let (by_peer, error) = match s.state {
            SessionState::BeginSent | SessionState::Mapped => {
                let _ = conn.send(now, session.0, &Performative::End(End::default()), &[]);
                (true, end.error)
            }
            SessionState::EndSent | SessionState::Discarding => (false, s.error),
        };
        self.events.push_back(SessionEvent::Ended { session, by_peer, error });
    }

    /// The connection is over ([`ConnectionEvent::Closed`](super::connection::ConnectionEvent::Closed)):
    /// every session is gone with it (§2.4.3 ends them implicitly), without
    /// events of its own.
    pub fn handle_connection_closed(&mut self) {
        self.sessions.clear();
        self.remote.clear();
        self.freed.clear();
        self.unused = 0;
    }

    fn mapped(&mut self, session: SessionId) -> Result<&mut Session, CommandError> {
        let s = self.sessions.get_mut(&session.0).ok_or(CommandError::UnknownSession(session))?;
        match s.state {
            SessionState::Mapped => Ok(s),
            state => Err(CommandError::State { session, state }),
        }
    }

    /// The lowest channel up to `max` that carries no session.
    fn free_channel(&self, max: u16) -> Option<u16> {
        let lowest = self.freed.first().map_or(self.unused, |&c| u32::from(c));
        u16::try_from(lowest).ok().filter(|&c| c <= max)
    }

    /// Puts `session` on `channel`, a [`Sessions::free_channel`].
    fn map(&mut self, channel: u16, session: Session) {
        if !self.freed.remove(&channel) {
            self.unused = u32::from(channel) + 1;
        }
        self.sessions.insert(channel, session);
    }
}

/// The peer's channel-max (§2.7.1); 0 before its `open`: channel 0 is the one every
/// peer handles ("A peer MUST NOT use channel numbers outside the range that its
/// partner can handle", and channel-max may be 0).
fn peer_channel_max(conn: &Connection) -> u16 {
    conn.remote_open().map_or(0, |open| open.channel_max)
}

#[cfg(test)]
mod tests;
