//! hubwire's blocking runtime: the sans-IO machines of `hubwire-core` driven over
//! `std::net` sockets with threads.
//!
//! - [`DeviceClient`]: a device connected to its hub, one driver thread per device.
//! - [`MultiplexedClient`]: many devices over one AMQP connection, one driver
//!   thread for them all.
//! - [`HubServer`]: a local IoT Hub serving MQTT and AMQP over TLS, WebSocket and
//!   plain TCP listeners, one driver thread for the engine and threads per
//!   connection for the sockets.
//!
//! The drivers are written against the sans-IO contract
//! ([`hubwire_core::sansio`]), not against a protocol.

mod device;
mod driver;
mod flow;
mod hub;
mod multiplexed;
mod reader;
mod writer;

pub use device::{DeviceClient, TelemetryError, TwinCallError};
pub use hub::HubServer;
pub use hubwire_runtime::listen::{BindError, Listen, listener_name};
pub use hubwire_runtime::{
    ClientTransport, HubServerEvent, TransportChoice, TransportStatus, clock, dial,
};
pub use hubwire_transports::{Listener, Transport};
pub use multiplexed::{AddDeviceError, MultiplexedClient};
