//! hubwire's mio runtime: the sans-IO machines of `hubwire-core` driven by event
//! loops over mio, one thread waiting on many sockets.
//!
//! - [`HubServer`]: a local IoT Hub serving MQTT, AMQP and HTTPS over TLS,
//!   WebSocket and plain TCP listeners, every listener and connection on one loop
//!   thread. `hubwire hub` runs on it.
//! - [`DeviceClient`] and [`MultiplexedClient`]: devices whose sockets all live on
//!   one loop thread for the process, however many there are.
//!
//! The types are `hubwire-runtime`'s synchronous API over the [`EventLoop`]
//! scheduler, the same types `hubwire-blocking` offers on threads: a program
//! switches runtime by changing one crate.

use std::io;
use std::net::TcpListener;
use std::sync::mpsc::SyncSender;

use hubwire_runtime::sync::{self, Client, Scheduler};
use hubwire_runtime::{Dialed, ServedHub};

mod client;
mod conn;
mod hub;

pub use client::ClientSlot;
pub use hub::HubLoop;
pub use hubwire_runtime::listen::{BindError, Listen, listener_name};
pub use hubwire_runtime::sync::{AddDeviceError, TelemetryError, TwinCallError};
pub use hubwire_runtime::{
    ClientTransport, HubServerEvent, TransportChoice, TransportStatus, clock, dial,
};
pub use hubwire_transports::{Listener, Transport};

/// A device connected to its hub, a slot of the process's device loop.
pub type DeviceClient = sync::DeviceClient<EventLoop>;
/// Many devices over one AMQP connection, a slot of the process's device loop.
pub type MultiplexedClient = sync::MultiplexedClient<EventLoop>;
/// A local IoT Hub on one event loop thread.
pub type HubServer = sync::HubServer<EventLoop>;

/// The mio runtime's scheduler: one loop thread per hub, one loop thread for every
/// client of the process.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventLoop;

impl Scheduler for EventLoop {
    type Client<C: Send + 'static> = ClientSlot<C>;
    type Hub = HubLoop;

    fn start_client<A: Client>(
        _name: String,
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> io::Result<ClientSlot<A::Command>> {
        ClientSlot::start(dialed, client)
    }

    fn start_hub(
        hub: ServedHub,
        listeners: Vec<(Listen, TcpListener)>,
        events: SyncSender<HubServerEvent>,
    ) -> io::Result<HubLoop> {
        HubLoop::start(hub, listeners, events)
    }
}
