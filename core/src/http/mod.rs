//! HTTP/1.1 messages: heads (RFC 9112 §2–§5), read with `httparse` and written by hand,
//! and bodies (RFC 9112 §6–§7).
//!
//! The port-443 listener reads the first request head of a connection with
//! [`parse_request`] and dispatches on it: a WebSocket upgrade at `/$iothub/websocket`
//! or a REST request (spec file §1, DESIGN.md "The sans-IO contract"). A WebSocket
//! client reads the server's answer with [`parse_response`]; [`BodyDecoder`] then
//! reads the body the head announces.
//!
//! IoT Hub's device REST protocol (spec file §6) stands on those:
//!
//! - [`rest`]: the endpoints as [`Route`]s (parsed by a hub, written by a device),
//!   the api-version, and IoT Hub's error bodies.
//! - [`message`]: a [`Message`](crate::iothub::Message) in `iothub-*` headers, D2C
//!   and C2D (with its lock token as the ETag).
//! - [`batch`]: many D2C messages in one JSON body.
//! - [`device`]: the device role: requests over one connection, retries, and the
//!   C2D poll schedule.
//! - [`hub`]: the hub's side of a REST connection on the hub engine, and its
//!   [`HubProtocolError`](hub::HubProtocolError).
//!
//! - [`head`]: [`RequestHead`], [`ResponseHead`], their parsers, writers and header
//!   look-ups, and the [`Limits`] checked before anything is kept.
//! - [`body`]: [`BodyDecoder`], which reads one body by `Content-Length`, the
//!   chunked coding or the close (RFC 9112 §6–§7) within [`BodyLimits`], and
//!   [`BodyError`] with its status; [`encode_chunked`] writes the chunked coding.
//! - [`error`]: [`HeadError`] with the status each kind is answered with, and
//!   [`error_response`], the whole answer a server writes before closing.

pub mod batch;
pub mod body;
pub mod device;
pub mod error;
pub mod head;
#[cfg(feature = "hub")]
pub mod hub;
pub mod message;
pub mod rest;

pub use body::{BodyDecoder, BodyError, BodyLimits, encode_chunked};
pub use error::{HeadError, error_response, reason_phrase};
pub use head::{Header, Limits, RequestHead, ResponseHead, parse_request, parse_response};
pub use message::{C2dHeaders, MessageError};
pub use rest::{API_VERSION, Route, RouteError};
