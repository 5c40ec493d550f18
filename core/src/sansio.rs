//! The sans-IO contract every protocol machine in this crate follows.
//!
//! A machine is fed bytes, closes and timeouts, each with the current [`Timestamp`],
//! and is drained of transmits, events and its next deadline. The runtime owns the
//! sockets, threads and clocks; the machine owns the protocol.
//!
//! After **every** input (`handle_*`) or command (`send_telemetry`, `complete`, …)
//! the runtime drains `poll_transmit` and `poll_event` until they return `None`, then
//! reads `poll_timeout` and waits until that instant or the next input, whichever
//! comes first.
//!
//! [`Connection`] is the shape of one connection (a device client); [`Endpoint`] is
//! the same verbs for an engine that serves many connections (the hub, later the
//! gateway), with a [`ConnectionId`] on every input and output, in the manner of
//! quinn-proto's `Endpoint`.

use bytes::Bytes;

use crate::time::Timestamp;

/// What a machine asks its runtime to do with the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open a transport connection to the peer (client roles only). The machine
    /// sends nothing on it until the runtime calls `handle_connected`; a failed
    /// attempt is reported with `handle_close`.
    Connect,
    /// Write these bytes to the transport, after every byte asked for before.
    Send(Bytes),
    /// Close the transport once the bytes asked for before are written. The machine
    /// has already forgotten the connection; `handle_close` for it is not needed.
    Close,
}

/// One protocol connection driven by a runtime (the device role).
///
/// The methods mirror each other across roles: see the module documentation for the
/// drain-after-every-input rule.
pub trait Connection {
    /// What the application must know (connected, acknowledged, a C2D message, …).
    type Event;
    /// A protocol violation by the peer. The machine has already queued its wire
    /// reaction (a close, an error code); the runtime only reports it.
    type Error;

    /// The transport asked for by [`Transmit::Connect`] is open.
    fn handle_connected(&mut self, now: Timestamp);

    /// Bytes arrived from the peer. A partial packet is kept until the rest arrives.
    fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), Self::Error>;

    /// The peer closed the transport, it broke, or a connect attempt failed.
    fn handle_close(&mut self, now: Timestamp);

    /// The next thing to do with the transport, in order.
    ///
    /// Poll again after every `handle_*` call and every command.
    fn poll_transmit(&mut self) -> Option<Transmit>;

    /// The next event for the application.
    ///
    /// Poll again after every `handle_*` call and every command.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When to call [`Connection::handle_timeout`] next; `None` when no timer runs.
    ///
    /// Read again after every `handle_*` call and every command.
    fn poll_timeout(&self) -> Option<Timestamp>;

    /// A deadline returned by `poll_timeout` has passed (calling early is harmless).
    fn handle_timeout(&mut self, now: Timestamp);
}

/// Names one connection of an [`Endpoint`]. Ids are never reused by an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl core::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An engine serving many connections (the hub role): the verbs of [`Connection`]
/// with a [`ConnectionId`] on every input and output.
pub trait Endpoint {
    /// What the application must know; events about one connection carry its id.
    type Event;
    /// A protocol violation on one connection (already answered on the wire).
    type Error;

    /// A transport connection speaking `protocol` was accepted. Returns its id.
    fn accept(&mut self, now: Timestamp, protocol: crate::Protocol) -> ConnectionId;

    /// Bytes arrived on connection `id`.
    fn handle_input(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        bytes: &[u8],
    ) -> Result<(), Self::Error>;

    /// Connection `id` was closed by the peer or broke. Unknown ids are ignored.
    fn handle_close(&mut self, now: Timestamp, id: ConnectionId);

    /// The next thing to do with one connection's transport.
    ///
    /// Poll again after every `handle_*` call and every command.
    fn poll_transmit(&mut self) -> Option<(ConnectionId, Transmit)>;

    /// The next event for the application.
    ///
    /// Poll again after every `handle_*` call and every command.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// When to call [`Endpoint::handle_timeout`] next.
    ///
    /// Read again after every `handle_*` call and every command.
    fn poll_timeout(&self) -> Option<Timestamp>;

    /// A deadline returned by `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Timestamp);
}

/// Ordered transport output of one connection: encoded bytes are gathered into one
/// buffer so a burst of packets leaves as one write, while `Connect` and `Close`
/// keep their place in the order.
#[cfg(any(feature = "mqtt", feature = "amqp", feature = "http"))]
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queued: alloc::collections::VecDeque<Transmit>,
    bytes: bytes::BytesMut,
}

#[cfg(any(feature = "mqtt", feature = "amqp", feature = "http"))]
impl Outbox {
    /// The buffer to encode the next packet into.
    pub(crate) fn buffer(&mut self) -> &mut bytes::BytesMut {
        &mut self.bytes
    }

    /// Queues a `Connect` or `Close` after the bytes buffered so far.
    pub(crate) fn push(&mut self, transmit: Transmit) {
        self.flush();
        self.queued.push_back(transmit);
    }

    /// Forgets buffered bytes not yet handed out (their connection is gone).
    pub(crate) fn discard_bytes(&mut self) {
        self.bytes.clear();
        self.queued.retain(|t| !matches!(t, Transmit::Send(_)));
    }

    pub(crate) fn pop(&mut self) -> Option<Transmit> {
        self.flush();
        self.queued.pop_front()
    }

    fn flush(&mut self) {
        if !self.bytes.is_empty() {
            self.queued.push_back(Transmit::Send(self.bytes.split().freeze()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_keeps_bytes_and_closes_in_order() {
        let mut o = Outbox::default();
        o.buffer().extend_from_slice(b"ab");
        o.buffer().extend_from_slice(b"c");
        o.push(Transmit::Close);
        o.push(Transmit::Connect);
        o.buffer().extend_from_slice(b"d");
        assert_eq!(o.pop(), Some(Transmit::Send(Bytes::from_static(b"abc"))));
        assert_eq!(o.pop(), Some(Transmit::Close));
        assert_eq!(o.pop(), Some(Transmit::Connect));
        assert_eq!(o.pop(), Some(Transmit::Send(Bytes::from_static(b"d"))));
        assert_eq!(o.pop(), None);
    }
}
