//! hubwire's blocking runtime: the sans-IO machines of `hubwire-core` driven over
//! `std::net` sockets with threads.
//!
//! - [`DeviceClient`]: a device connected to its hub, one driver thread per device.
//! - [`MultiplexedClient`]: many devices over one AMQP connection, one driver
//!   thread for them all.
//! - [`HubServer`]: a local IoT Hub serving MQTT, AMQP and HTTPS over TLS, WebSocket
//!   and plain TCP listeners, one driver thread for the engine and threads per
//!   connection for the sockets.
//!
//! The types are `hubwire-runtime`'s synchronous API over the [`Threads`]
//! scheduler; `hubwire-mio` offers the same types on one event loop, so a program
//! switches runtime by changing one crate. The drivers are written against the
//! sans-IO contract ([`hubwire_core::sansio`]), not against a protocol.

use std::io;
use std::net::TcpListener;
use std::sync::mpsc::SyncSender;

use hubwire_runtime::sync::{self, Client, Scheduler};
use hubwire_runtime::{Dialed, ServedHub};

mod driver;
mod hub;
mod reader;
mod writer;

pub use driver::ClientThread;
pub use hub::HubThreads;
pub use hubwire_runtime::listen::{BindError, Listen, listener_name};
pub use hubwire_runtime::sync::{
    AddDeviceError, GatewayConfig, GatewayEvent, TelemetryError, TwinCallError,
};
pub use hubwire_runtime::{
    ClientTransport, HubServerEvent, TransportChoice, TransportStatus, clock, dial,
};
pub use hubwire_transports::{Listener, Transport};

/// A device connected to its hub, driven by a thread of its own.
pub type DeviceClient = sync::DeviceClient<Threads>;
/// Many devices over one AMQP connection, driven by one thread.
pub type MultiplexedClient = sync::MultiplexedClient<Threads>;
/// A field gateway: a local hub's threads downstream, one AMQP connection's
/// thread upstream.
pub type GatewayServer = sync::GatewayServer<Threads>;
/// A local IoT Hub: a driver thread, an accept thread per listener, a reader and a
/// writer thread per connection.
pub type HubServer = sync::HubServer<Threads>;

/// The blocking runtime's scheduler: a thread per client, threads per hub
/// connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Threads;

impl Scheduler for Threads {
    type Client<C: Send + 'static> = ClientThread<C>;
    type Hub = HubThreads;

    fn start_client<A: Client>(
        name: String,
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> io::Result<ClientThread<A::Command>> {
        ClientThread::spawn(name, dialed, client)
    }

    fn start_hub(
        hub: ServedHub,
        listeners: Vec<(Listen, TcpListener)>,
        events: SyncSender<HubServerEvent>,
    ) -> io::Result<HubThreads> {
        HubThreads::start(hub, listeners, events)
    }
}
