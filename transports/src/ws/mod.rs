//! WebSocket (RFC 6455), both roles, sans-IO, with IoT Hub's upgrade rules (spec
//! file §1): MQTT and AMQP travel as binary messages over a WebSocket opened at
//! [`IOTHUB_PATH`] with the subprotocol `mqtt` or `AMQPWSB10`, on port 443.
//!
//! The upgrade heads are read and written with [`hubwire_core::http`]; frames are
//! tungstenite's (the project's rule: framing is a library's job), driven through an
//! in-memory stream so that no call blocks (`pipe`). A [`WebSocket`] takes network
//! bytes in ([`WebSocket::handle_input`]) and gives the binary payloads out, and
//! takes payloads ([`WebSocket::send`]) and gives network bytes out
//! ([`WebSocket::poll_output`]).
//!
//! - `upgrade`: the opening handshake (RFC 6455 §4) in both roles.
//! - `socket`: [`WebSocket`], the connection after (and, for a client, during) it.
//! - `error`: [`WsError`] and the server's [`Rejection`] of an upgrade.

mod error;
mod pipe;
mod socket;
mod upgrade;

#[cfg(test)]
mod tests;

pub use error::{Rejection, WsError};
pub use socket::WebSocket;

/// The path IoT Hub serves WebSockets at (spec file §1); a query may follow it, as
/// in the C SDK's `/$iothub/websocket?iothub-no-client-cert=true`.
pub const IOTHUB_PATH: &str = "/$iothub/websocket";

/// The protocol a WebSocket carries, negotiated with `Sec-WebSocket-Protocol`
/// (RFC 6455 §1.9, §4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subprotocol {
    /// MQTT 3.1.1 (token `mqtt`; the C SDK sends `MQTT`, Edge hub and the other
    /// SDKs `mqtt`: spec file §1).
    Mqtt,
    /// AMQP 1.0 (token `AMQPWSB10`, the AMQP WebSocket Binding's: spec file §1).
    Amqp,
}

impl Subprotocol {
    /// The token a client offers.
    pub fn token(self) -> &'static str {
        match self {
            Subprotocol::Mqtt => "mqtt",
            Subprotocol::Amqp => "AMQPWSB10",
        }
    }

    /// The subprotocol a token names, in any letter case, as Edge hub matches them
    /// (spec file §1, "Emulator guidance"); `None` for other tokens.
    pub fn from_token(token: &str) -> Option<Subprotocol> {
        [Subprotocol::Mqtt, Subprotocol::Amqp]
            .into_iter()
            .find(|p| p.token().eq_ignore_ascii_case(token))
    }
}

impl core::fmt::Display for Subprotocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.token())
    }
}

/// Limits on what a peer may send, checked from each frame header before its payload
/// is buffered (RFC 6455 §10.4); a frame or message over them closes the socket with
/// 1009.
///
/// The default, 1 MiB for both, holds IoT Hub's largest message, 256 KiB of D2C
/// telemetry (spec file §8), with its MQTT topic and property bag (up to 64 KiB) or
/// AMQP framing, and the 1 MiB AMQP message size Edge hub advertises (spec file §8):
/// SDKs write each MQTT packet or AMQP frame as one unfragmented message, so the
/// frame limit matches the message limit. It bounds a connection's buffer at 1 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsConfig {
    /// The most bytes one message may reassemble to.
    pub max_message_size: usize,
    /// The most payload bytes one frame may announce.
    pub max_frame_size: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig { max_message_size: 1 << 20, max_frame_size: 1 << 20 }
    }
}
