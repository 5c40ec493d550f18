//! The connection (AMQP 1.0 part 2 §2.4): the protocol header exchange (§2.2), `open`
//! (§2.7.1), heartbeats and the idle timeout (§2.4.5), and `close` (§2.7.9), as a
//! sans-IO machine in either role (DESIGN.md, "The sans-IO contract").
//!
//! A SASL layer (part 5 §5.3) may come first: [`Connection::client_with_sasl`] and
//! [`Connection::server_with_sasl`] run it; [`Connection::client`] and
//! [`Connection::server`] skip it, as IoT Hub's Node and .NET SDKs do,
//! authenticating later by CBS (spec file §5.1). Sessions and links sit above: every performative other than `open` and `close` is handed up as
//! [`ConnectionEvent::Frame`], and the layer above sends its own with
//! [`Connection::send`].
//!
//! The runtime feeds bytes with [`Connection::handle_input`] and deadlines with
//! [`Connection::handle_timeout`], and after each input or command drains
//! [`Connection::poll_transmit`] and [`Connection::poll_event`], then reads
//! [`Connection::poll_timeout`].

use alloc::collections::VecDeque;
use bytes::{Bytes, BytesMut};

use super::frame::{self, EncodeError, Frame, FrameError, FrameKind, FrameLimits};
use super::performative::{self, AmqpError, Close, Open, Performative, condition};
use super::protocol_header::{ProtocolHeader, ProtocolHeaderError, ProtocolId, negotiate};
use super::sasl::{SaslCode, SaslError};
use super::types::{Limits, Symbol};
use crate::sansio::{Outbox, Transmit};
use crate::time::{Duration, Timestamp};
use crate::utf8::Utf8Bytes;

mod sasl;
pub use sasl::{SaslClient, SaslServer};
use sasl::{SaslLayer, SaslStep};

/// Which side of the connection this machine is (§2.2: the client sends its protocol
/// header first, the server answers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the transport; sends its header and `open` at once (§2.4.2 allows the
    /// `open` to be pipelined behind the header), or first its SASL header and
    /// exchange (part 5 §5.3.2).
    Client,
    /// Accepted the transport; waits for the client's header, answers it, then sends
    /// its `open`.
    Server,
}

/// What the layer above must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The peer's `open` arrived (§2.7.1): its container-id, max-frame-size (bytes),
    /// channel-max and idle-time-out (ms) now apply to what this side sends.
    Opened(Open),
    /// A performative for a session or link (anything but `open` and `close`), on
    /// `channel`, with the bytes after it (a transfer's payload, a slice of the
    /// receive buffer).
    Frame {
        /// The frame's channel (§2.3.2); at most this side's channel-max.
        channel: u16,
        /// The decoded performative.
        performative: Performative,
        /// The bytes after the performative; empty but for a transfer.
        payload: Bytes,
    },
    /// Server: the client chose a SASL mechanism this side offered (part 5
    /// §5.3.3.2). The owner checks the credentials and answers with
    /// [`Connection::sasl_outcome`]; until then the bytes after the `sasl-init` wait
    /// unread.
    SaslInit {
        /// The mechanism, one of [`SaslServer::mechanisms`].
        mechanism: Symbol,
        /// The mechanism's first message, e.g. PLAIN's `\0user\0password`
        /// ([`PlainResponse::parse`](crate::amqp::sasl::PlainResponse::parse)).
        initial_response: Option<Bytes>,
        /// The host the client names (§5.3.3.2: it may pick a virtual host).
        hostname: Option<Utf8Bytes>,
    },
    /// Client: the server's `sasl-outcome` (part 5 §5.3.3.5). On
    /// [`SaslCode::Ok`] the AMQP header and `open` follow; on any other code
    /// [`ConnectionEvent::Closed`] follows, by the peer, with
    /// `amqp:unauthorized-access`.
    SaslOutcome {
        /// The result (§5.3.3.6).
        code: SaslCode,
        /// Mechanism data sent with success (§5.3.3.5); a server should send none
        /// with a failure, and is reported if it does.
        additional_data: Option<Bytes>,
    },
    /// The connection is over and [`Transmit::Close`] is queued. Sent once.
    Closed {
        /// Whether the peer ended it (its `close`, or the transport closing) rather
        /// than this side (a command, a violation by the peer, the idle timeout).
        by_peer: bool,
        /// The error the side that ended it gave: the peer's `close`'s, or the
        /// condition this side closed with (also when no `close` frame could carry
        /// it, as after a bad protocol header); `None` for a clean close.
        error: Option<AmqpError>,
    },
}

/// A violation by the peer. The machine has already queued its wire reaction (a
/// `close` with [`condition`](Self::condition), or a protocol header, then
/// [`Transmit::Close`]) and the [`ConnectionEvent::Closed`] event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The bytes where a protocol header belongs are not one (§2.2).
    #[error("{0}")]
    Header(#[from] ProtocolHeaderError),
    /// A valid header for a layer or version this side does not speak: the server
    /// answered with `AMQP 0 1.0.0` and closed; a client closes when the server's
    /// header is not its own (§2.2).
    #[error("unsupported protocol header {0:?} (AMQP 1.0 §2.2)")]
    UnsupportedHeader(ProtocolHeader),
    /// A frame header breaks §2.3.1, or exceeds this side's max-frame-size (512
    /// bytes before the peer's `open`, §2.4.1; the announced one after, §2.7.1).
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A SASL frame after the AMQP header: the connection has no SASL layer, or it
    /// ended with its outcome (part 5 §5.1, §5.3.3.5: the peers then exchange AMQP
    /// headers); condition `amqp:connection:framing-error`.
    #[error("a SASL frame in the AMQP layer (AMQP 1.0 part 5 §5.1)")]
    SaslFrame,
    /// An AMQP frame (TYPE 0x00) in the SASL layer, before its outcome: only SASL
    /// frames (TYPE 0x01) belong there (part 5 §5.3.1); condition
    /// `amqp:connection:framing-error`.
    #[error("an AMQP frame before the SASL outcome (AMQP 1.0 part 5 §5.3.1)")]
    AmqpFrameBeforeSaslOutcome,
    /// A SASL frame body is not one of §5.3.3 ([`SaslError::condition`]).
    #[error("{0}")]
    Sasl(#[from] SaslError),
    /// The SASL mechanism is not among those offered: "If the selected mechanism is
    /// not supported by the receiving peer, it MUST close the connection with the
    /// authentication-failure close-code" (part 5 §5.3.3.2). A server has answered
    /// with outcome `auth`; a client (whose mechanism the server does not offer)
    /// closes without falling back to another. Condition `amqp:not-implemented`.
    #[error(
        "SASL mechanism {mechanism} is not among those offered, {offered:?} (AMQP 1.0 part 5 §5.3.3.2)"
    )]
    SaslMechanismNotOffered {
        /// The mechanism chosen.
        mechanism: Symbol,
        /// The mechanisms the server offered.
        offered: alloc::vec::Vec<Symbol>,
    },
    /// A SASL frame the exchange does not allow here (part 5 §5.3.2, figure 5.6):
    /// e.g. a `sasl-challenge`, which none of hubwire's mechanisms (ANONYMOUS,
    /// PLAIN, EXTERNAL, MSSBCBS) expects, or a frame only the other role sends.
    /// Condition `amqp:illegal-state`.
    #[error("{frame} is not allowed {when} (AMQP 1.0 part 5 §5.3.2)")]
    SaslUnexpected {
        /// The frame's name, e.g. `sasl-challenge`.
        frame: &'static str,
        /// Where the exchange was, e.g. `while waiting for sasl-outcome`.
        when: &'static str,
    },
    /// Server: more than [`SASL_MAX_FRAME_SIZE`](crate::amqp::sasl::SASL_MAX_FRAME_SIZE)
    /// bytes arrived after the `sasl-init` while the owner had not yet given the
    /// outcome. A client may pipeline its AMQP header and first frames (each at
    /// most 512 bytes before the `open`s, §2.4.1) but has no reason to send more
    /// before it is authenticated. Condition `amqp:resource-limit-exceeded`.
    #[error(
        "{len} bytes arrived before the SASL outcome, more than {max} (AMQP 1.0 part 5 §5.3.2)"
    )]
    SaslHeldInputTooLarge {
        /// The bytes held.
        len: usize,
        /// The bound, bytes.
        max: usize,
    },
    /// A frame body is not a valid performative, e.g. an `open` without its
    /// mandatory container-id (`amqp:invalid-field`).
    #[error("{0}")]
    Performative(#[from] performative::Error),
    /// A frame on a channel above this side's channel-max: "A peer that receives a
    /// channel number outside the supported range MUST close the connection with the
    /// framing-error error-code" (§2.7.1).
    #[error("channel {channel} exceeds channel-max {max} (AMQP 1.0 §2.7.1)")]
    ChannelOutOfRange {
        /// The frame's channel.
        channel: u16,
        /// This side's channel-max.
        max: u16,
    },
    /// Bytes after an `open` or `close` in its frame: only a transfer carries a
    /// payload (§2.3.2); condition `amqp:decode-error`.
    #[error("{performative} is followed by {len} bytes in its frame (AMQP 1.0 §2.3.2)")]
    TrailingBytes {
        /// The performative's name.
        performative: &'static str,
        /// How many bytes follow it.
        len: usize,
    },
    /// A performative the connection's state does not allow (`amqp:illegal-state`):
    /// anything but `open` first (§2.4.1: each peer "MUST send an open frame
    /// before sending any other frames"), a second `open`, `open` or `close` on a
    /// channel other than 0 (the connection's frames use channel 0, §2.4.1).
    #[error("{performative} on channel {channel} is not allowed {when} (AMQP 1.0 §2.4.1)")]
    IllegalState {
        /// The performative's name.
        performative: &'static str,
        /// Its channel.
        channel: u16,
        /// Where the connection was, e.g. `before open`.
        when: &'static str,
    },
}

impl ConnectionError {
    /// The error condition the connection closes with (§2.8.15, §2.8.16).
    pub fn condition(&self) -> Symbol {
        match self {
            ConnectionError::Header(_)
            | ConnectionError::UnsupportedHeader(_)
            | ConnectionError::SaslFrame
            | ConnectionError::AmqpFrameBeforeSaslOutcome
            | ConnectionError::ChannelOutOfRange { .. } => condition::CONNECTION_FRAMING_ERROR,
            ConnectionError::Sasl(e) => e.condition(),
            ConnectionError::SaslMechanismNotOffered { .. } => condition::NOT_IMPLEMENTED,
            ConnectionError::SaslUnexpected { .. } => condition::ILLEGAL_STATE,
            ConnectionError::SaslHeldInputTooLarge { .. } => condition::RESOURCE_LIMIT_EXCEEDED,
            ConnectionError::Frame(e) => Symbol::from_static(e.condition()),
            ConnectionError::Performative(e) => e.condition(),
            ConnectionError::TrailingBytes { .. } => condition::DECODE_ERROR,
            ConnectionError::IllegalState { .. } => condition::ILLEGAL_STATE,
        }
    }

    fn to_amqp_error(&self) -> AmqpError {
        AmqpError::new(self.condition(), Some(Utf8Bytes::from(alloc::format!("{self}"))))
    }
}

/// Why [`Connection::send`] refused a performative. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The frame exceeds the peer's max-frame-size (§2.7.1); splitting a transfer
    /// across frames is the link layer's job.
    #[error("{0}")]
    TooLarge(#[from] EncodeError),
    /// The channel exceeds the peer's channel-max (§2.7.1: "A peer MUST NOT use
    /// channel numbers outside the range that its partner can handle").
    #[error("channel {channel} exceeds the peer's channel-max {max} (AMQP 1.0 §2.7.1)")]
    ChannelOutOfRange {
        /// The channel asked for.
        channel: u16,
        /// The peer's channel-max.
        max: u16,
    },
    /// `open` and `close` belong to the connection: it sends its own, and
    /// [`Connection::close`] closes.
    #[error("open and close are the connection's own performatives")]
    ConnectionPerformative,
    /// The connection is closing or closed (§2.4.3: nothing follows a `close`).
    #[error("the connection is closing or closed")]
    Closed,
    /// The performative holds a value over 4 GiB.
    #[error("{0}")]
    Encode(#[from] super::types::EncodeError),
}

/// Where the connection is (§2.4.6's states, folded to what this side acts on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's protocol header (a client has sent its own, and its
    /// `open` unless a SASL exchange comes first; a server sends both once the
    /// client's arrives).
    AwaitingHeader,
    /// In the SASL layer, SASL headers exchanged (part 5 §5.3.2).
    Sasl(SaslStep),
    /// Headers exchanged and our `open` sent; waiting for the peer's (OPEN SENT).
    AwaitingOpen,
    /// Both `open`s exchanged (OPENED).
    Opened,
    /// Our `close` sent; waiting for the peer's (CLOSE SENT).
    CloseSent,
    /// Over; [`Transmit::Close`] queued (END).
    Closed,
}

/// An AMQP connection in one role. See the module documentation.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    state: State,
    /// The `open` this side sends; its max-frame-size is at least 512 bytes.
    local: Open,
    /// The peer's `open`, once received.
    remote: Option<Open>,
    recv: BytesMut,
    outbox: Outbox,
    events: VecDeque<ConnectionEvent>,
    last_received: Timestamp,
    last_sent: Timestamp,
    /// When a `close` this side sent stops being waited for.
    close_deadline: Option<Timestamp>,
    /// The error of the `close` this side sent, for [`ConnectionEvent::Closed`].
    closing: Option<AmqpError>,
    /// The SASL layer still to run or running; `None` once its outcome came, or
    /// when there is none.
    sasl: Option<SaslLayer>,
}

impl Connection {
    /// A client on a transport that has just opened at `now`: queues the AMQP header
    /// and `local` (pipelined, §2.4.2).
    ///
    /// `local.max_frame_size` below 512 bytes is raised to 512 (§2.4.1: every peer
    /// accepts frames of 512 bytes). Its idle-time-out (ms) is half of how long this
    /// side waits for a frame before closing (§2.4.5).
    pub fn client(local: Open, now: Timestamp) -> Connection {
        let mut connection = Connection::new(Role::Client, local, now);
        connection.send_header(ProtocolHeader::AMQP);
        connection.send_open(now);
        connection
    }

    /// A server on a transport it accepted at `now`: waits for the client's header.
    /// `local` as for [`Connection::client`].
    pub fn server(local: Open, now: Timestamp) -> Connection {
        Connection::new(Role::Server, local, now)
    }

    fn new(role: Role, mut local: Open, now: Timestamp) -> Connection {
        local.max_frame_size = local.max_frame_size.max(frame::MIN_MAX_FRAME_SIZE);
        Connection {
            role,
            state: State::AwaitingHeader,
            local,
            remote: None,
            recv: BytesMut::new(),
            outbox: Outbox::default(),
            events: VecDeque::new(),
            last_received: now,
            last_sent: now,
            close_deadline: None,
            closing: None,
            sasl: None,
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's `open`, once it arrived.
    pub fn remote_open(&self) -> Option<&Open> {
        self.remote.as_ref()
    }

    /// Whether the connection is over ([`ConnectionEvent::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes arrived from the peer. A partial header or frame is kept until the rest
    /// arrives; bytes after the connection ended are ignored.
    ///
    /// # Errors
    ///
    /// [`ConnectionError`]: the peer broke the protocol; the close is already queued.
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ConnectionError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.recv.extend_from_slice(bytes);
        self.process(now)
    }

    /// Reads what `recv` holds; on a violation, reacts to it.
    fn process(&mut self, now: Timestamp) -> Result<(), ConnectionError> {
        match self.read(now) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.fail(now, &e);
                Err(e)
            }
        }
    }

    fn read(&mut self, now: Timestamp) -> Result<(), ConnectionError> {
        loop {
            match self.state {
                State::Closed => return Ok(()),
                State::AwaitingHeader => {
                    let header = match ProtocolHeader::decode(&mut self.recv) {
                        Ok(Some(header)) => header,
                        Ok(None) => return Ok(()),
                        Err(e) => {
                            if self.role == Role::Server {
                                self.send_header(negotiate(None, self.accepted_layers()).reply);
                            }
                            return Err(e.into());
                        }
                    };
                    self.last_received = now;
                    self.on_header(now, header)?;
                }
                State::Sasl(SaslStep::Deciding) => return self.hold_input(),
                State::Sasl(step) => {
                    let Some(frame) = frame::decode(&mut self.recv, &sasl::FRAME_LIMITS)? else {
                        return Ok(());
                    };
                    self.last_received = now;
                    self.on_sasl_frame(now, step, frame)?;
                }
                State::AwaitingOpen | State::Opened | State::CloseSent => {
                    // §2.4.1: 512 bytes until the peer has our open, which it has
                    // once it sends its own after the header exchange.
                    let limits = match self.remote {
                        Some(_) => FrameLimits { max_frame_size: self.local.max_frame_size },
                        None => FrameLimits::BEFORE_OPEN,
                    };
                    let Some(frame) = frame::decode(&mut self.recv, &limits)? else {
                        return Ok(());
                    };
                    // §2.4.5 counts frames: bytes of one that never ends do not
                    // keep the connection alive.
                    self.last_received = now;
                    self.on_frame(now, frame)?;
                }
            }
        }
    }

    /// The peer's header: a server answers it (§2.2); either side then runs the
    /// SASL layer or the AMQP one.
    fn on_header(&mut self, now: Timestamp, header: ProtocolHeader) -> Result<(), ConnectionError> {
        match self.role {
            Role::Server => {
                let answer = negotiate(Some(header), self.accepted_layers());
                self.send_header(answer.reply);
                if answer.close {
                    return Err(ConnectionError::UnsupportedHeader(header));
                }
            }
            Role::Client => {
                let ours = match self.sasl {
                    Some(_) => ProtocolHeader::SASL,
                    None => ProtocolHeader::AMQP,
                };
                if header != ours {
                    return Err(ConnectionError::UnsupportedHeader(header));
                }
            }
        }
        if header.id == ProtocolId::Sasl {
            self.start_sasl(now);
            return Ok(());
        }
        // A server whose SASL layer is optional and was skipped.
        self.sasl = None;
        if self.role == Role::Server {
            self.send_open(now);
        }
        self.state = State::AwaitingOpen;
        Ok(())
    }

    fn on_frame(&mut self, now: Timestamp, frame: Frame) -> Result<(), ConnectionError> {
        let FrameKind::Amqp { channel } = frame.kind else {
            return Err(ConnectionError::SaslFrame);
        };
        if frame.is_empty() {
            // A heartbeat (§2.4.5): its arrival already reset the idle timer.
            return Ok(());
        }
        if channel > self.local.channel_max {
            return Err(ConnectionError::ChannelOutOfRange {
                channel,
                max: self.local.channel_max,
            });
        }
        let limits = Limits {
            max_size: usize::try_from(self.local.max_frame_size).unwrap_or(usize::MAX),
            ..Limits::default()
        };
        let (performative, payload) = Performative::decode(&frame.body, &limits)?;
        let name = performative.definition().name;
        let illegal = |when| ConnectionError::IllegalState { performative: name, channel, when };
        match (self.state, performative) {
            (_, Performative::Open(_) | Performative::Close(_)) if channel != 0 => {
                Err(illegal("on a channel other than 0"))
            }
            (_, Performative::Open(_) | Performative::Close(_)) if !payload.is_empty() => {
                Err(ConnectionError::TrailingBytes { performative: name, len: payload.len() })
            }
            (State::AwaitingOpen, Performative::Open(open)) => {
                self.remote = Some(open.clone());
                self.state = State::Opened;
                self.events.push_back(ConnectionEvent::Opened(open));
                Ok(())
            }
            (State::AwaitingOpen, _) => Err(illegal("before open")),
            (State::Opened, Performative::Open(_)) => Err(illegal("after open")),
            (State::Opened, Performative::Close(close)) => {
                // §2.4.3: answer the peer's close with ours, then end.
                self.write_close(now, &Close::default());
                self.end(true, close.error);
                Ok(())
            }
            (State::Opened, performative) => {
                self.events.push_back(ConnectionEvent::Frame { channel, performative, payload });
                Ok(())
            }
            (State::CloseSent, Performative::Close(_)) => {
                let ours = self.closing.take();
                self.end(false, ours);
                Ok(())
            }
            (State::CloseSent, Performative::Open(open)) if self.remote.is_none() => {
                self.remote = Some(open);
                Ok(())
            }
            // §2.4.3: after sending close, frames other than the peer's close are
            // of no use; they are dropped.
            (State::CloseSent, _) => Ok(()),
            (State::AwaitingHeader | State::Sasl(_) | State::Closed, _) => Ok(()),
        }
    }

    /// Reacts to a violation: a `close` with its condition once both AMQP headers
    /// are exchanged (our `open` is then sent, as §2.4.1 requires before a close),
    /// then the transport closes without waiting for the peer's answer. In the
    /// SASL layer no `close` can be sent: the transport just closes.
    fn fail(&mut self, now: Timestamp, e: &ConnectionError) {
        let error = e.to_amqp_error();
        if matches!(self.state, State::AwaitingOpen | State::Opened) {
            self.write_close(now, &Close { error: Some(error.clone()) });
        }
        self.end(false, Some(error));
    }

    /// Closes the connection from this side (§2.7.9) with an optional error: sends
    /// `close` and waits for the peer's, at most this side's idle-time-out (or 60 s
    /// without one), then closes the transport. A close before the AMQP header
    /// exchange (in the SASL layer too) closes the transport at once. Does nothing
    /// once closing.
    pub fn close(&mut self, now: Timestamp, error: Option<AmqpError>) {
        match self.state {
            State::AwaitingOpen | State::Opened => {
                self.write_close(now, &Close { error: error.clone() });
                self.closing = error;
                self.state = State::CloseSent;
                self.close_deadline = Some(now.saturating_add(self.close_wait()));
            }
            State::AwaitingHeader | State::Sasl(_) => self.end(false, error),
            State::CloseSent | State::Closed => {}
        }
    }

    /// Sends a session's or link's performative on `channel` at `now`, with
    /// `payload` after it (a transfer's message bytes), in one frame. Allowed once
    /// this side's `open` is sent (before the peer's arrives, §2.4.2's pipelining,
    /// under the 512-byte limit of §2.4.1), so not during a SASL exchange.
    ///
    /// # Errors
    ///
    /// [`SendError`]: the frame exceeds the peer's max-frame-size (§2.7.1), the
    /// channel its channel-max, the performative is `open` or `close`, or the
    /// connection is closing. Nothing is sent.
    pub fn send(
        &mut self,
        now: Timestamp,
        channel: u16,
        performative: &Performative,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let open_sent = match (self.state, self.role) {
            (State::AwaitingOpen | State::Opened, _) => true,
            (State::AwaitingHeader, role) => role == Role::Client && self.sasl.is_none(),
            (State::Sasl(_) | State::CloseSent | State::Closed, _) => false,
        };
        if !open_sent {
            return Err(SendError::Closed);
        }
        if matches!(performative, Performative::Open(_) | Performative::Close(_)) {
            return Err(SendError::ConnectionPerformative);
        }
        if let Some(max) = self.remote.as_ref().map(|open| open.channel_max)
            && channel > max
        {
            return Err(SendError::ChannelOutOfRange { channel, max });
        }
        let mut body = BytesMut::new();
        performative.encode(&mut body)?;
        body.extend_from_slice(payload);
        let frame = Frame { kind: FrameKind::Amqp { channel }, body: body.freeze() };
        frame.encode(&self.peer_limits(), self.outbox.buffer())?;
        self.last_sent = now;
        Ok(())
    }

    /// The transport closed under the connection, or broke. Unless the connection
    /// was already over, [`ConnectionEvent::Closed`] follows, by the peer, without
    /// an error.
    pub fn handle_close(&mut self, _now: Timestamp) {
        if self.state != State::Closed {
            self.outbox.discard_bytes();
            self.end(true, None);
        }
    }

    /// The next thing to do with the transport: bytes (headers and frames, in
    /// order), then [`Transmit::Close`] once the connection is over. Poll again
    /// after every input and command until `None`.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// The next event for the layer above. Poll again after every input and
    /// command until `None`.
    pub fn poll_event(&mut self) -> Option<ConnectionEvent> {
        self.events.pop_front()
    }

    /// When to call [`Connection::handle_timeout`] next: the next heartbeat (half
    /// the peer's idle-time-out after the last frame sent, §2.4.5), twice this side's
    /// idle-time-out after the last frame received, or the end of the wait for the
    /// peer's `close`; `None` when none runs, as while waiting for a header and
    /// during a SASL exchange. Read again after every input and command.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.state {
            State::AwaitingHeader | State::Sasl(_) | State::Closed => None,
            State::AwaitingOpen | State::Opened => {
                crate::time::earliest(self.heartbeat_deadline(), self.idle_deadline())
            }
            // §2.4.5: no empty frame follows a `close`.
            State::CloseSent => self.close_deadline,
        }
    }

    /// A deadline from [`Connection::poll_timeout`] has passed (early calls do
    /// nothing).
    ///
    /// Nothing received for twice this side's idle-time-out: `close` with
    /// `amqp:resource-limit-exceeded`, and the transport closes without waiting for
    /// an answer from a peer already silent that long. §2.4.5 says the peer "SHOULD
    /// try to gracefully close the connection using a close frame with an error
    /// explaining why", and names no condition; resource-limit-exceeded ("the peer
    /// exceeded its resource allocation", §2.8.15) is the nearest, and what other
    /// brokers (IBM MQ's AMQP channel) send for a silent client.
    ///
    /// Called so late that this side sent nothing for twice the peer's
    /// idle-time-out (a stalled host): `close` with `amqp:internal-error`, as
    /// §2.4.5 asks of a side that overran its peer's threshold, and the transport
    /// closes.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match self.state {
            State::AwaitingOpen | State::Opened
                if self.idle_deadline().is_some_and(|deadline| now >= deadline) =>
            {
                let error = AmqpError::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    Some(Utf8Bytes::from_static(
                        "nothing received within the idle timeout (AMQP 1.0 §2.4.5)",
                    )),
                );
                self.write_close(now, &Close { error: Some(error.clone()) });
                self.end(false, Some(error));
                return;
            }
            // Called too late to have kept the peer's threshold (twice what it
            // announced, §2.4.5): it may have given up on this side already.
            State::Opened if self.peer_threshold().is_some_and(|deadline| now >= deadline) => {
                let error = AmqpError::new(
                    condition::INTERNAL_ERROR,
                    Some(Utf8Bytes::from_static(
                        "nothing sent within the peer's idle timeout (AMQP 1.0 §2.4.5)",
                    )),
                );
                self.write_close(now, &Close { error: Some(error.clone()) });
                self.end(false, Some(error));
                return;
            }
            State::CloseSent if self.close_deadline.is_some_and(|deadline| now >= deadline) => {
                let ours = self.closing.take();
                self.end(false, ours);
                return;
            }
            _ => {}
        }
        if self.heartbeat_deadline().is_some_and(|deadline| now >= deadline) {
            // Encoding an empty frame cannot fail: 8 bytes are within every limit.
            if Frame::heartbeat().encode(&self.peer_limits(), self.outbox.buffer()).is_ok() {
                self.last_sent = now;
            }
        }
    }

    /// Half the peer's idle-time-out after the last frame sent (§2.4.5: "To avoid
    /// spurious timeouts, the value in idle-time-out SHOULD be half the peer's
    /// actual timeout threshold" is advice to the announcer; sending at half the
    /// announced value keeps either reading safe). A peer's 0 means no timeout.
    fn heartbeat_deadline(&self) -> Option<Timestamp> {
        // §2.4.5: empty frames "MUST NOT be sent after the close frame has been
        // sent", so heartbeats stop with `close`.
        if self.state != State::Opened {
            return None;
        }
        let idle = self.remote.as_ref()?.idle_time_out.filter(|&ms| ms > 0)?;
        Some(self.last_sent.saturating_add(Duration::from_millis(u64::from(idle / 2).max(1))))
    }

    /// Twice the peer's idle-time-out after the last frame sent: past it, the peer
    /// following §2.4.5 has closed, or may, for this side's silence.
    fn peer_threshold(&self) -> Option<Timestamp> {
        let idle = self.remote.as_ref()?.idle_time_out.filter(|&ms| ms > 0)?;
        Some(self.last_sent.saturating_add(Duration::from_millis(2 * u64::from(idle))))
    }

    /// Twice this side's idle-time-out after the last frame received: §2.4.5 has
    /// the announced value be "half the peer's actual timeout threshold", so a
    /// peer that sends a frame every announced period is never closed.
    fn idle_deadline(&self) -> Option<Timestamp> {
        let idle = self.local.idle_time_out.filter(|&ms| ms > 0)?;
        Some(self.last_received.saturating_add(Duration::from_millis(2 * u64::from(idle))))
    }

    /// How long a `close` this side sent waits for the peer's: this side's
    /// idle-time-out, or 60 s without one (§2.4.3 names no bound; the socket "MAY"
    /// close when the peer does not answer, §2.4.5).
    fn close_wait(&self) -> Duration {
        match self.local.idle_time_out {
            Some(ms) if ms > 0 => Duration::from_millis(u64::from(ms)),
            _ => Duration::from_secs(60),
        }
    }

    /// The largest frame the peer accepts: its max-frame-size, 512 bytes before its
    /// `open` (§2.4.1).
    fn peer_limits(&self) -> FrameLimits {
        self.remote.as_ref().map_or(FrameLimits::BEFORE_OPEN, |open| FrameLimits {
            max_frame_size: open.max_frame_size,
        })
    }

    fn send_header(&mut self, header: ProtocolHeader) {
        header.encode(self.outbox.buffer());
    }

    /// Sends this side's `open` (§2.7.1) on channel 0. At most 512 bytes are
    /// allowed before the peer's `open` (§2.4.1); an `open` the caller built larger
    /// is still sent, as no smaller one exists, and the peer decides.
    fn send_open(&mut self, now: Timestamp) {
        let open = Performative::Open(self.local.clone());
        let unlimited = FrameLimits { max_frame_size: u32::MAX };
        // An open holds no value near 4 GiB: the frame always encodes.
        let _ = self.write_frame(now, &open, &unlimited);
    }

    /// Sends `close` on channel 0 within the peer's max-frame-size (§2.7.1): when
    /// the error's description and info make it too large, without them; the
    /// condition alone always fits in 512 bytes for this side's own conditions.
    fn write_close(&mut self, now: Timestamp, close: &Close) {
        let limits = self.peer_limits();
        if self.write_frame(now, &Performative::Close(close.clone()), &limits).is_ok() {
            return;
        }
        let bare = close.error.as_ref().map(|e| AmqpError::new(e.condition.clone(), None));
        if self.write_frame(now, &Performative::Close(Close { error: bare }), &limits).is_err() {
            let _ = self.write_frame(now, &Performative::Close(Close::default()), &limits);
        }
    }

    fn write_frame(
        &mut self,
        now: Timestamp,
        performative: &Performative,
        limits: &FrameLimits,
    ) -> Result<(), SendError> {
        let mut body = BytesMut::new();
        performative.encode(&mut body)?;
        let frame = Frame { kind: FrameKind::Amqp { channel: 0 }, body: body.freeze() };
        frame.encode(limits, self.outbox.buffer())?;
        self.last_sent = now;
        Ok(())
    }

    /// The connection is over: the transport closes after the bytes queued.
    fn end(&mut self, by_peer: bool, error: Option<AmqpError>) {
        self.state = State::Closed;
        self.close_deadline = None;
        self.outbox.push(Transmit::Close);
        self.events.push_back(ConnectionEvent::Closed { by_peer, error });
    }
}

#[cfg(test)]
mod tests;
