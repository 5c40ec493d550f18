//! A connection with its sessions and links, driven as one machine: what both IoT
//! Hub roles stand on (the device's and the hub's side of spec file §5).
//!
//! [`Connection`], [`Sessions`] and [`Links`] each keep one layer of part 2; an
//! [`Engine`] feeds each layer's frames to the next (connection frames to the
//! sessions, session frames to the links) and queues what is left for its owner:
//! the connection's own events and the links' events. Commands are the layers'
//! own, with the three layers passed in.

use alloc::collections::VecDeque;
use bytes::Bytes;

use super::connection::{Connection, ConnectionError, ConnectionEvent};
use super::delivery_state::DeliveryState;
use super::link::{self, Delivery, LinkError, LinkEvent, LinkId, LinkSpec, Links};
use super::performative::{AmqpError, DeliveryNumber};
use super::sasl::SaslCode;
use super::session::{self, SessionConfig, SessionError, SessionId, Sessions};
use crate::sansio::Transmit;
use crate::time::Timestamp;

/// What the owner of an [`Engine`] must know: the connection's events but its
/// frames, and the links' events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    /// `Opened`, `SaslInit`, `SaslOutcome` or `Closed`
    /// ([`ConnectionEvent::Frame`] goes to the sessions).
    Connection(ConnectionEvent),
    /// A session or link event.
    Link(LinkEvent),
}

/// A violation by the peer, at the layer it broke. Its wire reaction is queued
/// already (see each layer's error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The connection layer: bytes, frames, headers, open/close.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The session layer: channels and windows.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The link layer: handles, credit, deliveries.
    #[error(transparent)]
    Link(#[from] LinkError),
}

impl EngineError {
    /// The error condition the peer was answered with.
    pub fn condition(&self) -> super::types::Symbol {
        match self {
            EngineError::Connection(e) => e.condition(),
            EngineError::Session(e) => e.condition(),
            EngineError::Link(e) => e.condition(),
        }
    }
}

/// A command the layers refused; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A session command.
    #[error(transparent)]
    Session(#[from] session::CommandError),
    /// A link command.
    #[error(transparent)]
    Link(#[from] link::CommandError),
}

/// One AMQP connection, its sessions and its links. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    connection: Connection,
    sessions: Sessions,
    links: Links,
    events: VecDeque<EngineEvent>,
}

impl Engine {
    /// An engine over `connection` (client or server, with or without SASL).
    pub fn new(connection: Connection, session: SessionConfig) -> Engine {
        let links = Links::new(link::LinkConfig { handle_max: session.handle_max });
        Engine { connection, sessions: Sessions::new(session), links, events: VecDeque::new() }
    }

    /// The connection, for what it tells (`remote_open`, `is_closed`).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The links, for what they tell (`state`, `flow_state`).
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// Bytes from the peer. Every layer's events are queued, also after a
    /// violation, whose error is returned (the first, if several).
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), EngineError> {
        let result = self.connection.handle_input(now, bytes).map_err(EngineError::from);
        let drained = self.drain(now);
        result.and(drained)
    }

    /// Server: answers the client's `sasl-init` (see
    /// [`Connection::sasl_outcome`]); input held meanwhile is read now.
    pub fn sasl_outcome(
        &mut self,
        now: Timestamp,
        code: SaslCode,
        additional_data: Option<Bytes>,
    ) -> Result<(), EngineError> {
        let result =
            self.connection.sasl_outcome(now, code, additional_data).map_err(EngineError::from);
        let drained = self.drain(now);
        result.and(drained)
    }

    /// Moves frames up through the layers until none is left.
    fn drain(&mut self, now: Timestamp) -> Result<(), EngineError> {
        let mut result = Ok(());
        let mut keep = |r: Result<(), EngineError>| {
            if result.is_ok() {
                result = r;
            }
        };
        loop {
            if let Some(event) = self.sessions.poll_event() {
                let r = self.links.handle_session_event(
                    &mut self.sessions,
                    &mut self.connection,
                    now,
                    event,
                );
                keep(r.map_err(EngineError::from));
            } else if let Some(event) = self.links.poll_event() {
                self.events.push_back(EngineEvent::Link(event));
            } else if let Some(event) = self.connection.poll_event() {
                match event {
                    ConnectionEvent::Frame { channel, performative, payload } => {
                        let r = self.sessions.handle_frame(
                            &mut self.connection,
                            now,
                            channel,
                            performative,
                            payload,
                        );
                        keep(r.map_err(EngineError::from));
                    }
                    ConnectionEvent::Closed { .. } => {
                        self.sessions.handle_connection_closed();
                        self.links.handle_connection_closed();
                        self.events.push_back(EngineEvent::Connection(event));
                    }
                    other => self.events.push_back(EngineEvent::Connection(other)),
                }
            } else {
                return result;
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    /// Bytes to write, or the end of the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.connection.poll_transmit()
    }

    /// The connection's next deadline (heartbeat, idle timeout).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.connection.poll_timeout()
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.connection.handle_timeout(now);
        // A timeout that closes the connection says so through its events.
        let _ = self.drain(now);
    }

    /// The transport closed under the connection.
    pub fn handle_close(&mut self, now: Timestamp) {
        self.connection.handle_close(now);
        let _ = self.drain(now);
    }

    /// Closes the connection, with `error` if this side has one (§2.7.9).
    pub fn close(&mut self, now: Timestamp, error: Option<AmqpError>) {
        self.connection.close(now, error);
        let _ = self.drain(now);
    }

    /// Begins a session ([`Sessions::begin`]).
    pub fn begin(
        &mut self,
        now: Timestamp,
        config: SessionConfig,
    ) -> Result<SessionId, CommandError> {
        Ok(self.sessions.begin(&mut self.connection, now, config)?)
    }

    /// Sets how many transfers this side takes in on `session`
    /// ([`Sessions::set_incoming_window`]).
    pub fn set_incoming_window(
        &mut self,
        now: Timestamp,
        session: SessionId,
        window: u32,
    ) -> Result<(), CommandError> {
        Ok(self.sessions.set_incoming_window(&mut self.connection, now, session, window)?)
    }

    /// Attaches a link ([`Links::attach`]).
    pub fn attach(
        &mut self,
        now: Timestamp,
        session: SessionId,
        spec: LinkSpec,
    ) -> Result<LinkId, CommandError> {
        Ok(self.links.attach(&mut self.sessions, &mut self.connection, now, session, spec)?)
    }

    /// Accepts the peer's attach ([`Links::accept_attach`]).
    pub fn accept_attach(
        &mut self,
        now: Timestamp,
        link: LinkId,
        answer: LinkSpec,
    ) -> Result<(), CommandError> {
        Ok(self.links.accept_attach(&mut self.sessions, &mut self.connection, now, link, answer)?)
    }

    /// Refuses the peer's attach ([`Links::refuse_attach`]).
    pub fn refuse_attach(
        &mut self,
        now: Timestamp,
        link: LinkId,
        error: AmqpError,
    ) -> Result<(), CommandError> {
        Ok(self.links.refuse_attach(&mut self.sessions, &mut self.connection, now, link, error)?)
    }

    /// Detaches a link ([`Links::detach`]).
    pub fn detach(
        &mut self,
        now: Timestamp,
        link: LinkId,
        closed: bool,
        error: Option<AmqpError>,
    ) -> Result<(), CommandError> {
        let links = &mut self.links;
        Ok(links.detach(&mut self.sessions, &mut self.connection, now, link, closed, error)?)
    }

    /// Grants a receiver link credit ([`Links::flow`]).
    pub fn flow(
        &mut self,
        now: Timestamp,
        link: LinkId,
        credit: u32,
        drain: bool,
    ) -> Result<(), CommandError> {
        let links = &mut self.links;
        Ok(links.flow(&mut self.sessions, &mut self.connection, now, link, credit, drain)?)
    }

    /// Answers the receiver's drain on a sender link with nothing to send: the
    /// credit is used up by advancing the delivery-count ([`Links::drained`],
    /// AMQP 1.0 §2.6.7).
    pub fn drained(&mut self, now: Timestamp, link: LinkId) -> Result<(), CommandError> {
        Ok(self.links.drained(&mut self.sessions, &mut self.connection, now, link)?)
    }

    /// Sends a delivery on a sender link ([`Links::send`]).
    pub fn send(
        &mut self,
        now: Timestamp,
        link: LinkId,
        delivery: Delivery,
    ) -> Result<DeliveryNumber, CommandError> {
        Ok(self.links.send(&mut self.sessions, &mut self.connection, now, link, delivery)?)
    }

    /// Settles or updates one delivery ([`Links::disposition`]).
    pub fn disposition(
        &mut self,
        now: Timestamp,
        link: LinkId,
        delivery: DeliveryNumber,
        state: Option<DeliveryState>,
        settled: bool,
    ) -> Result<(), CommandError> {
        let (links, sessions, conn) = (&mut self.links, &mut self.sessions, &mut self.connection);
        Ok(links.disposition(sessions, conn, now, link, delivery, None, state, settled)?)
    }
}
