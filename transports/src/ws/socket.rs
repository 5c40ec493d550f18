//! One WebSocket connection, client or server: the handshake state, then binary
//! messages both ways, pings answered, and the close handshake.

use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use hubwire_core::http::{self, RequestHead};
use tungstenite::error::Error as FramingError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Message, Role, WebSocketConfig};

use super::pipe::Pipe;
use super::{Rejection, Subprotocol, WsConfig, WsError, upgrade};

/// How many bytes tungstenite copies from the pipe per read, and the read buffer each
/// connection starts with.
const READ_CHUNK: usize = 8 * 1024;

/// The longest close reason a close frame may carry: 125 bytes of control payload
/// less the 2-byte code (RFC 6455 §5.5).
const MAX_CLOSE_REASON: usize = 123;

/// A WebSocket connection in either role, sans-IO (DESIGN.md "The sans-IO contract"):
/// network bytes go in through [`WebSocket::handle_input`], binary payloads come out
/// into the caller's buffer; payloads go in through [`WebSocket::send`] and network
/// bytes come out of [`WebSocket::poll_output`].
///
/// Frames the client sends are masked (RFC 6455 §5.3) with keys tungstenite draws
/// from `rand`'s thread-local generator, seeded by the operating system. That is the
/// one randomness not supplied by the caller (the handshake key is): the masking key
/// must be unpredictable to the page scripts the masking defends against (RFC 6455
/// §10.3), so a seedable generator would defeat it. Client output is therefore not
/// byte-for-byte reproducible; the payloads it carries are.
#[derive(Debug)]
pub struct WebSocket {
    framing: tungstenite::WebSocket<Pipe>,
    subprotocol: Subprotocol,
    phase: Phase,
    /// The opening handshake completed; stays set once the socket closes.
    opened: bool,
}

#[derive(Debug)]
enum Phase {
    /// Client: the upgrade request is queued; the 101 has not arrived.
    AwaitingResponse {
        /// `Sec-WebSocket-Key` as sent.
        key: String,
        /// The response bytes so far, at most the head limit.
        head: BytesMut,
        /// Messages sent before the 101, in order.
        held: Vec<Bytes>,
    },
    /// Messages flow; a close handshake may have begun.
    Open,
    /// The close handshake is done or the connection failed.
    Closed,
}

impl WebSocket {
    /// A client: queues the upgrade request (`GET path HTTP/1.1` with `Host: host`,
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13` and
    /// `Sec-WebSocket-Protocol`, RFC 6455 §4.1) for [`WebSocket::poll_output`].
    ///
    /// `host` is the authority as the server expects it (with `:port` for a port
    /// other than the scheme's); `path` is [`super::IOTHUB_PATH`], maybe with a query.
    /// `key` is 16 random bytes the caller draws (DESIGN.md: randomness enters from
    /// the caller), sent base64-encoded (RFC 6455 §4.1 item 7).
    pub fn client(
        host: &str,
        path: &str,
        subprotocol: Subprotocol,
        key: [u8; 16],
        config: WsConfig,
    ) -> WebSocket {
        let key = STANDARD.encode(key);
        let mut framing = framing(Role::Client, config);
        upgrade::request(host, path, subprotocol, &key).encode(&mut framing.get_mut().output);
        let phase = Phase::AwaitingResponse { key, head: BytesMut::new(), held: Vec::new() };
        WebSocket { framing, subprotocol, phase, opened: false }
    }

    /// A server for an upgrade request whose head the caller has parsed (the port-443
    /// dispatcher, with [`hubwire_core::http::parse_request`]); the first subprotocol
    /// the client offers that is in `allowed` is chosen.
    ///
    /// `Ok`: the socket is open and its 101 answer (RFC 6455 §4.2.2) waits in
    /// [`WebSocket::poll_output`]; bytes after the head go to
    /// [`WebSocket::handle_input`].
    ///
    /// Errors: the [`Rejection`] to write before closing: 405 for a method other than
    /// GET; 404 for a path other than [`super::IOTHUB_PATH`] (a query may follow); 400 for HTTP/1.0,
    /// a missing `Upgrade: websocket`, `Connection: Upgrade`, `Host` or
    /// `Sec-WebSocket-Version`, a key that is not base64 of 16 bytes, or no allowed
    /// subprotocol offered (RFC 6455 §4.2.1); 426 with `Sec-WebSocket-Version: 13`
    /// for another version (RFC 6455 §4.4).
    pub fn accept(
        head: &RequestHead,
        allowed: &[Subprotocol],
        config: WsConfig,
    ) -> Result<WebSocket, Rejection> {
        let (subprotocol, answer) = upgrade::accept(head, allowed)?;
        let mut framing = framing(Role::Server, config);
        answer.encode(&mut framing.get_mut().output);
        Ok(WebSocket { framing, subprotocol, phase: Phase::Open, opened: true })
    }

    /// Takes bytes from the network; appends the payload of each complete binary
    /// message to `plain`. A client first reads the server's 101 answer; bytes after
    /// it are frames. Pings are answered and a peer's close is answered, all in
    /// [`WebSocket::poll_output`]. Bytes after the socket closed are ignored.
    ///
    /// Errors: the peer broke a rule ([`WsError`] names it and its RFC section). The
    /// socket is then closed: its close frame, if the error calls for one, waits in
    /// [`WebSocket::poll_output`]; payloads of messages before the fault are in
    /// `plain`.
    pub fn handle_input(&mut self, bytes: &[u8], plain: &mut BytesMut) -> Result<(), WsError> {
        match self.phase {
            Phase::AwaitingResponse { .. } => self.read_response(bytes, plain),
            Phase::Open => self.read_frames(bytes, plain),
            Phase::Closed => Ok(()),
        }
    }

    /// Sends `plain` as one binary message, unfragmented. A client may send before
    /// the 101 arrives: the message is held and sent once the socket opens.
    ///
    /// Errors: [`WsError::SendAfterClose`] once the close handshake began or the
    /// socket closed (RFC 6455 §5.5.1); nothing is sent.
    pub fn send(&mut self, plain: &[u8]) -> Result<(), WsError> {
        match &mut self.phase {
            Phase::AwaitingResponse { held, .. } => {
                held.push(Bytes::copy_from_slice(plain));
                Ok(())
            }
            Phase::Open if self.framing.can_write() => self.write(Bytes::copy_from_slice(plain)),
            Phase::Open | Phase::Closed => Err(WsError::SendAfterClose),
        }
    }

    /// Starts the close handshake with 1000 (RFC 6455 §5.5.1, §7.4.1); the socket
    /// is closed when the peer's close frame arrives. A client still waiting for the
    /// 101 has no WebSocket to close: it is closed at once and its held messages
    /// are dropped. Does nothing once closing.
    pub fn close(&mut self) {
        match self.phase {
            Phase::AwaitingResponse { .. } => self.finish(),
            Phase::Open => {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                let closing = self.framing.close(Some(frame));
                // A failure here has closed the socket; the caller sees is_closed.
                let _ = self.settle(closing);
            }
            Phase::Closed => {}
        }
    }

    /// The next bytes for the layer below, in order; `None` when there are none.
    /// Poll until `None` after [`WebSocket::client`], [`WebSocket::accept`] and every
    /// [`WebSocket::handle_input`], [`WebSocket::send`] and [`WebSocket::close`].
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Bytes> {
        let output = &mut self.framing.get_mut().output;
        (!output.is_empty()).then(|| output.split().freeze())
    }

    /// The opening handshake is done: at once for a server, when a valid 101 arrived
    /// for a client. Stays true after the socket closes.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// The close handshake is done or the connection failed: write what
    /// [`WebSocket::poll_output`] still gives, then close the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The subprotocol offered (client) or chosen (server).
    pub fn subprotocol(&self) -> Subprotocol {
        self.subprotocol
    }

    /// Client: gathers the answer's head, at most the head limit; once it is whole
    /// and valid, sends the held messages and reads what followed it as frames.
    fn read_response(&mut self, bytes: &[u8], plain: &mut BytesMut) -> Result<(), WsError> {
        let limits = http::Limits::default();
        let Phase::AwaitingResponse { key, head, .. } = &mut self.phase else {
            return Ok(());
        };
        let room = limits.max_head_size.saturating_sub(head.len()).min(bytes.len());
        let (taken, rest) = bytes.split_at(room);
        head.extend_from_slice(taken);
        let checked = match http::parse_response(head, &limits) {
            Ok(None) => return Ok(()),
            Ok(Some((response, used))) => {
                upgrade::check_response(&response, key, self.subprotocol).map(|()| used)
            }
            Err(e) => Err(WsError::ResponseHead(e)),
        };
        let used = match checked {
            Ok(used) => used,
            Err(e) => return self.fail(e),
        };
        let Phase::AwaitingResponse { mut head, held, .. } =
            std::mem::replace(&mut self.phase, Phase::Open)
        else {
            return Ok(());
        };
        self.opened = true;
        let frames = head.split_off(used);
        for message in held {
            self.write(message)?;
        }
        self.read_frames(&frames, plain)?;
        self.read_frames(rest, plain)
    }

    /// Feeds network bytes to tungstenite and takes every message it completes.
    fn read_frames(&mut self, bytes: &[u8], plain: &mut BytesMut) -> Result<(), WsError> {
        if !matches!(self.phase, Phase::Open) {
            return Ok(());
        }
        self.framing.get_mut().input.extend_from_slice(bytes);
        loop {
            match self.framing.read() {
                Ok(Message::Binary(payload)) => plain.extend_from_slice(&payload),
                Ok(Message::Text(_)) => return self.fail(WsError::TextFrame),
                // tungstenite queued the pong; the next read or flush writes it.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    // The peer's close answers ours, or tungstenite queued our answer to
                    // it: either way the handshake is done once that answer is written.
                    let answered = self.framing.flush();
                    let _ = self.settle(answered);
                    self.finish();
                    return Ok(());
                }
                Err(FramingError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return self.settle(Err(e)),
            }
        }
        let pongs = self.framing.flush();
        self.settle(pongs)
    }

    fn write(&mut self, payload: Bytes) -> Result<(), WsError> {
        let sent = self.framing.send(Message::Binary(payload));
        self.settle(sent)
    }

    /// What a tungstenite call's result means here: the pipe never blocks on write;
    /// `ConnectionClosed` is the close handshake's end; anything else, a failure.
    fn settle(&mut self, result: tungstenite::Result<()>) -> Result<(), WsError> {
        match result {
            Ok(()) => Ok(()),
            Err(FramingError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(FramingError::ConnectionClosed | FramingError::AlreadyClosed) => {
                self.finish();
                Ok(())
            }
            Err(e) => self.fail(e.into()),
        }
    }

    /// Closes after a failure: sends the close frame the error calls for (RFC 6455
    /// §7.1.7, "Fail the WebSocket Connection"), with the error as its reason.
    fn fail<T>(&mut self, error: WsError) -> Result<T, WsError> {
        if let (Phase::Open, Some(code)) = (&self.phase, error.close_code()) {
            // A pong still queued goes first: nothing may follow the close frame.
            let _ = self.framing.flush();
            let frame =
                CloseFrame { code: CloseCode::from(code), reason: close_reason(&error).into() };
            let _ = self.framing.close(Some(frame));
        }
        self.finish();
        Err(error)
    }

    fn finish(&mut self) {
        self.phase = Phase::Closed;
        self.framing.get_mut().input.clear();
    }
}

/// tungstenite's framing in `role` with `config`'s limits; frames are written to the
/// pipe as soon as they are made.
fn framing(role: Role, config: WsConfig) -> tungstenite::WebSocket<Pipe> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_frame_size));
    tungstenite::WebSocket::from_raw_socket(Pipe::default(), role, Some(config))
}

/// The error's text cut to fit a close frame, at a character boundary.
pub(super) fn close_reason(error: &WsError) -> String {
    let mut text = error.to_string();
    let mut end = text.len().min(MAX_CLOSE_REASON);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}
