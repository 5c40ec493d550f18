//! HTTP/1.1 message heads (RFC 9112 §2–§5), read with `httparse` and written by hand.
//!
//! The port-443 listener reads the first request head of a connection with
//! [`parse_request`] and dispatches on it: a WebSocket upgrade at `/$iothub/websocket`
//! or a REST request (spec file §1, DESIGN.md "The sans-IO contract"). A WebSocket
//! client reads the server's answer with [`parse_response`]. Only heads live here;
//! bodies, chunked coding and the HTTP device protocol come later.
//!
//! - [`head`]: [`RequestHead`], [`ResponseHead`], their parsers, writers and header
//!   look-ups, and the [`Limits`] checked before anything is kept.
//! - [`error`]: [`HeadError`] with the status each kind is answered with, and
//!   [`error_response`], the whole answer a server writes before closing.

pub mod error;
pub mod head;

pub use error::{HeadError, error_response, reason_phrase};
pub use head::{Header, Limits, RequestHead, ResponseHead, parse_request, parse_response};
