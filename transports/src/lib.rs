//! hubwire-transports: the byte layers under the protocol sessions, sans-IO like
//! the sessions themselves (DESIGN.md, "The sans-IO contract").
//!
//! Each layer takes network bytes in and gives plain bytes out, and the reverse; a
//! runtime composes `socket ↔ [TLS] ↔ [WebSocket] ↔ session`.
//!
//! - [`tls`]: TLS 1.2 and 1.3 on rustls, both roles, and the hub's local CA.
//! - [`ws`]: WebSocket (RFC 6455), both roles, with IoT Hub's upgrade rules.
//! - [`Stack`]: the layers of one connection for a [`Transport`] (device) or a
//!   [`Listener`] (hub), including the port-443 dispatch on the first request head.
//! - `testing` (feature `testing`): frames built by hand and the fuzz targets' bodies.

mod stack;
pub mod tls;
pub mod ws;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use stack::{Listener, Stack, StackError, Transport, UnknownTransport};
