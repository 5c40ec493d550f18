//! hubwire's blocking runtime: the sans-IO machines of `hubwire-core` driven over
//! `std::net` sockets with threads.
//!
//! - [`DeviceClient`]: a device connected to its hub, one driver thread per device.
//! - [`HubServer`]: a local IoT Hub serving MQTT over plain TCP, one driver thread
//!   for the engine and threads per connection for the sockets.
//! - [`clock`]: the one place time is read.
//!
//! Both drivers are written against the sans-IO contract
//! ([`hubwire_core::sansio`]), not against a protocol.

pub mod clock;
mod device;
pub mod dial;
mod flow;
mod hub;
mod reader;
mod writer;

pub use device::{DeviceClient, TelemetryError};
pub use hub::{HubServer, HubServerEvent};
