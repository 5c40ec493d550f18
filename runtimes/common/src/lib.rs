//! What every hubwire runtime shares, so that the blocking, mio, smol and async-std
//! runtimes differ only in how they wait:
//!
//! - [`ServedHub`]: the hub engine, every connection's transport stack and the D2C
//!   store, fed socket bytes and drained of socket writes;
//! - [`Dialed`]: a device's machine (one device, or many over one AMQP connection)
//!   with its transport stack and its dialling plan (the transport asked for, and
//!   its WebSocket fallback);
//! - [`listen`]: binding a hub's listeners; [`dial`]: where a device connects;
//! - [`clock`]: the one place time is read;
//! - [`sync`]: the synchronous API of the blocking and mio runtimes; with the
//!   feature `async`, [`tasks`]: the same API as futures and streams, which the
//!   smol and async-std runtimes name. Both APIs' clients send one set of commands
//!   to their drivers, which carry them out and keep their callers waiting for the
//!   hub's answers in one way; only the channels differ (`std::sync::mpsc` or
//!   `async_channel`).
//!
//! Apart from the clock, nothing here touches a socket, a thread or a timer: the
//! runtimes do, through the sans-IO contract ([`hubwire_core::sansio`]).

mod channels;
pub mod clock;
mod command;
pub mod dial;
mod dialed;
pub mod flow;
pub mod listen;
#[cfg(feature = "scenarios")]
pub mod scenarios;
mod served;
pub mod sync;
#[cfg(feature = "async")]
pub mod tasks;
pub mod transcript;
mod waiters;

pub use dialed::{Action, ClientTransport, Dialed, TransportChoice, TransportStatus, client_tls};
pub use served::{
    EVENT_BACKLOG, EventQueue, EventSink, HubServerEvent, LINGER, Offer, PeerId, PeerOutput,
    ServedHub,
};
