//! What can go wrong on a WebSocket ([`WsError`]) and a server's refusal of an
//! upgrade request ([`Rejection`]).

use bytes::Bytes;
use hubwire_core::http::HeadError;
use tungstenite::error::{CapacityError, Error as TungsteniteError, ProtocolError};
use tungstenite::protocol::frame::coding::CloseCode;

/// Why a WebSocket failed, one variant per rule with its RFC 6455 section, or a
/// misuse by the caller ([`WsError::SendAfterClose`]).
///
/// After any peer error the socket is closed ([`super::WebSocket::is_closed`]): the
/// close frame [`WsError::close_code`] names, if any, waits in
/// [`super::WebSocket::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// Client: the server's answer to the upgrade request is not an HTTP head within
    /// the limits of [`hubwire_core::http::Limits::default`].
    #[error("the upgrade response is not a valid HTTP head: {0} (RFC 6455 §4.1)")]
    ResponseHead(HeadError),
    /// Client: the server answered with another status than 101 (RFC 6455 §4.1).
    #[error("the server answered {status} {reason}, not 101 Switching Protocols (RFC 6455 §4.1)")]
    NotSwitchingProtocols {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// Client: the 101 answer lacks `Upgrade: websocket` (RFC 6455 §4.1, item 2 of
    /// the client's checks).
    #[error("the 101 answer lacks `Upgrade: websocket` (RFC 6455 §4.1)")]
    MissingUpgrade,
    /// Client: the 101 answer lacks `Connection: Upgrade` (RFC 6455 §4.1, item 3).
    #[error("the 101 answer lacks `Connection: Upgrade` (RFC 6455 §4.1)")]
    MissingConnectionUpgrade,
    /// Client: `Sec-WebSocket-Accept` is missing or is not the digest of the key sent
    /// (RFC 6455 §4.1, item 4; §1.3).
    #[error("Sec-WebSocket-Accept is {got:?}, expected {expected:?} (RFC 6455 §4.1)")]
    AcceptMismatch {
        /// The value the key sent calls for.
        expected: String,
        /// The value received, if any.
        got: Option<String>,
    },
    /// Client: the server named an extension although the client offered none
    /// (RFC 6455 §4.1, item 5).
    #[error("the server chose extension {0:?}, which was not offered (RFC 6455 §4.1)")]
    UnofferedExtension(String),
    /// Client: the server chose no subprotocol or another one than offered (RFC 6455
    /// §4.1, item 6).
    #[error(
        "the server chose subprotocol {answered:?}, not the {offered:?} offered (RFC 6455 §4.1)"
    )]
    Subprotocol {
        /// The token the client offered.
        offered: &'static str,
        /// The token the server answered with, if any.
        answered: Option<String>,
    },
    /// Server: a client frame is not masked (RFC 6455 §5.1); closed with 1002.
    #[error("a client frame is not masked (RFC 6455 §5.1)")]
    UnmaskedClientFrame,
    /// Client: a server frame is masked (RFC 6455 §5.1); closed with 1002.
    #[error("a server frame is masked (RFC 6455 §5.1)")]
    MaskedServerFrame,
    /// A reserved bit is set with no extension negotiated (RFC 6455 §5.2); closed with
    /// 1002.
    #[error("a reserved bit is set (RFC 6455 §5.2)")]
    ReservedBits,
    /// The opcode is reserved (RFC 6455 §5.2); closed with 1002.
    #[error("opcode {0:#x} is reserved (RFC 6455 §5.2)")]
    ReservedOpcode(u8),
    /// A control frame is fragmented or carries more than 125 bytes (RFC 6455 §5.5);
    /// closed with 1002.
    #[error("a control frame is fragmented or longer than 125 bytes (RFC 6455 §5.5)")]
    InvalidControlFrame,
    /// A continuation frame with no message begun, or a new message before the last
    /// one ended (RFC 6455 §5.4); closed with 1002.
    #[error("a continuation frame out of place (RFC 6455 §5.4)")]
    Fragmentation,
    /// A close frame with a one-byte body (RFC 6455 §5.5.1); closed with 1002.
    #[error("a close frame's body is one byte long (RFC 6455 §5.5.1)")]
    InvalidClosePayload,
    /// A text frame: MQTT over WebSocket uses binary frames only [MQTT-6.0.0-1], and
    /// the AMQP WebSocket Binding carries AMQP frames as binary messages; closed
    /// with 1003 (RFC 6455 §7.4.1).
    #[error("a text message: only binary frames are allowed [MQTT-6.0.0-1]")]
    TextFrame,
    /// A close reason is not UTF-8 (RFC 6455 §5.5.1, §8.1); closed with 1007.
    #[error("a close reason is not UTF-8 (RFC 6455 §8.1)")]
    InvalidUtf8,
    /// A frame or a reassembled message exceeds [`super::WsConfig`]'s limit, found
    /// from the frame header before its payload is buffered (RFC 6455 §10.4); closed
    /// with 1009.
    #[error(
        "a frame or message of {size} bytes exceeds the limit of {limit} bytes (RFC 6455 §10.4)"
    )]
    TooLarge {
        /// Bytes announced or reassembled so far.
        size: usize,
        /// The configured limit, bytes.
        limit: usize,
    },
    /// Another framing error tungstenite reports (RFC 6455 §5); closed with 1002.
    #[error("WebSocket framing error: {0} (RFC 6455 §5)")]
    Framing(String),
    /// The caller sent a message after the close handshake began or the socket
    /// failed (RFC 6455 §5.5.1: no data frames after a Close).
    #[error("a message sent after the WebSocket began closing (RFC 6455 §5.5.1)")]
    SendAfterClose,
}

impl WsError {
    /// The close code sent to the peer for this error (RFC 6455 §7.4.1): 1002
    /// protocol error, 1003 unacceptable data, 1007 invalid payload, 1009 too big;
    /// `None` where no WebSocket exists yet (handshake errors) or for a caller's
    /// misuse.
    pub fn close_code(&self) -> Option<u16> {
        let code = match self {
            WsError::ResponseHead(_)
            | WsError::NotSwitchingProtocols { .. }
            | WsError::MissingUpgrade
            | WsError::MissingConnectionUpgrade
            | WsError::AcceptMismatch { .. }
            | WsError::UnofferedExtension(_)
            | WsError::Subprotocol { .. }
            | WsError::SendAfterClose => return None,
            WsError::UnmaskedClientFrame
            | WsError::MaskedServerFrame
            | WsError::ReservedBits
            | WsError::ReservedOpcode(_)
            | WsError::InvalidControlFrame
            | WsError::Fragmentation
            | WsError::InvalidClosePayload
            | WsError::Framing(_) => CloseCode::Protocol,
            WsError::TextFrame => CloseCode::Unsupported,
            WsError::InvalidUtf8 => CloseCode::Invalid,
            WsError::TooLarge { .. } => CloseCode::Size,
        };
        Some(code.into())
    }
}

impl From<TungsteniteError> for WsError {
    fn from(e: TungsteniteError) -> Self {
        match e {
            TungsteniteError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                WsError::TooLarge { size, limit: max_size }
            }
            TungsteniteError::Protocol(p) => match p {
                ProtocolError::UnmaskedFrameFromClient => WsError::UnmaskedClientFrame,
                ProtocolError::MaskedFrameFromServer => WsError::MaskedServerFrame,
                ProtocolError::NonZeroReservedBits => WsError::ReservedBits,
                ProtocolError::UnknownControlFrameType(op)
                | ProtocolError::UnknownDataFrameType(op)
                | ProtocolError::InvalidOpcode(op) => WsError::ReservedOpcode(op),
                ProtocolError::FragmentedControlFrame | ProtocolError::ControlFrameTooBig => {
                    WsError::InvalidControlFrame
                }
                ProtocolError::UnexpectedContinueFrame | ProtocolError::ExpectedFragment(_) => {
                    WsError::Fragmentation
                }
                ProtocolError::InvalidCloseSequence => WsError::InvalidClosePayload,
                ProtocolError::SendAfterClosing => WsError::SendAfterClose,
                other => WsError::Framing(other.to_string()),
            },
            TungsteniteError::Utf8(_) => WsError::InvalidUtf8,
            other => WsError::Framing(other.to_string()),
        }
    }
}

/// A server's refusal of an upgrade request: write [`Rejection::response`], then
/// close the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status: 400, 404, 405 or 426.
    pub status: u16,
    /// What was wrong, with the rule's source; also the response's body.
    pub reason: String,
    /// The whole HTTP response, from [`hubwire_core::http::error_response`].
    pub response: Bytes,
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "WebSocket upgrade refused with {}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Rejection {}
