//! hubwire-core: the Azure IoT Hub device protocols as sans-IO state machines.
//!
//! Nothing in this crate opens a socket, spawns a thread, sleeps or reads a clock:
//! bytes and [`Timestamp`]s go in, bytes, events and timer deadlines come out
//! (see [`sansio`]). Runtimes drive these machines over real transports.
//!
//! - [`iothub`]: rules shared by every protocol: connection strings, SAS tokens,
//!   the message model, C2D lock tokens and dispositions, IoT Hub error codes.
//! - [`mqtt`]: the MQTT 3.1.1 codec, IoT Hub topics, and the device and hub sessions.
//! - [`amqp`]: AMQP 1.0: the type system and framing up to links, IoT Hub's
//!   messages and CBS, and the device and hub roles.
//! - [`http`]: HTTP/1.1 messages and IoT Hub's REST device protocol: routes,
//!   messages in headers, batches, and the device and hub roles.
//! - [`device`]: one device API over every protocol.
//! - [`hub`]: the hub engine: registry, D2C log, C2D queues, feedback.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(any(feature = "mqtt", feature = "amqp", feature = "http"))]
pub mod device;
#[cfg(feature = "http")]
pub mod http;
pub mod iothub;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod retry;
pub mod sansio;
pub mod time;
pub mod utf8;

#[cfg(feature = "hub")]
pub mod hub;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use sansio::{Connection, ConnectionId, Endpoint, Transmit};
pub use time::Timestamp;

/// The device protocols hubwire speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// MQTT 3.1.1 (OASIS standard, 2014).
    Mqtt,
    /// AMQP 1.0 (OASIS standard, 2012).
    Amqp,
    /// HTTP/1.1 (RFC 9110, RFC 9112): IoT Hub's device REST API (spec file §6).
    Http,
}

impl Protocol {
    /// The protocol's name as users write it.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Mqtt => "MQTT",
            Protocol::Amqp => "AMQP",
            Protocol::Http => "HTTP",
        }
    }
}

impl core::fmt::Display for Protocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
