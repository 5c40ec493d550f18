//! hubwire's smol runtime: the sans-IO machines of `hubwire-core` driven as
//! [`smol`] tasks over smol's sockets and timers.
//!
//! - [`DeviceClient`]: a device connected to its hub, one driver task per device;
//!   telemetry resolves on the hub's acknowledgement, C2D messages and events
//!   arrive as [`Stream`](smol::stream::Stream)s.
//! - [`MultiplexedClient`]: many devices over one AMQP connection, one driver task
//!   for them all.
//! - [`HubServer`]: a local IoT Hub serving MQTT and AMQP over TLS, WebSocket and
//!   plain TCP, and HTTPS, one driver task for the engine and tasks per
//!   connection for the sockets.
//!
//! The tasks run on smol's global executor (`smol::spawn`), so they make progress
//! whatever the application blocks on. The driver is shared with the async-std
//! runtime ([`hubwire_runtime::tasks`]); this crate plugs in smol ([`Smol`]).
//! Switching to `hubwire-async-std` changes the crate, not the calls; the
//! blocking and mio runtimes offer the same calls without `.await`
//! ([`hubwire_runtime::sync`]).
//!
//! ```no_run
//! use smol::stream::StreamExt;
//! use hubwire_core::device::DeviceConfig;
//! use hubwire_core::iothub::{ConnectionString, Message};
//! use hubwire_smol::{ClientTransport, DeviceClient, Transport};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let cs = ConnectionString::parse(
//!         "HostName=hub.example.net;DeviceId=dev1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
//!     )?;
//!     let device = DeviceClient::connect(
//!         DeviceConfig::new(cs),
//!         ClientTransport::new(Transport::Mqtt),
//!     )
//!     .await?;
//!     // Resolves once the hub has stored the message.
//!     device.send_telemetry(Message::new(&b"{\"t\":21.5}"[..])).await?;
//!     let mut c2d = device.c2d();
//!     if let Some(message) = c2d.next().await {
//!         if let Some(lock) = message.lock_token {
//!             device.complete(&lock).await?;
//!         }
//!     }
//!     device.disconnect().await;
//!     Ok(())
//! })
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

pub use hubwire_runtime::listen::{BindError, Listen, listener_name};
pub use hubwire_runtime::sync::{AddDeviceError, TelemetryError, TwinCallError};
pub use hubwire_runtime::tasks::{C2dStream, EventStream, HubEventStream, MuxEventStream};
pub use hubwire_runtime::{
    ClientTransport, HubServerEvent, TransportChoice, TransportStatus, clock, dial,
};
pub use hubwire_transports::{Listener, Transport};

/// A device connected to its hub by a smol task: see
/// [`hubwire_runtime::tasks::DeviceClient`] for its calls.
pub type DeviceClient = hubwire_runtime::tasks::DeviceClient<Smol>;

/// Many devices over one AMQP connection, driven by a smol task: see
/// [`hubwire_runtime::tasks::MultiplexedClient`] for its calls.
pub type MultiplexedClient = hubwire_runtime::tasks::MultiplexedClient<Smol>;

/// A local IoT Hub on smol tasks: see [`hubwire_runtime::tasks::HubServer`] for its
/// calls.
pub type HubServer = hubwire_runtime::tasks::HubServer<Smol>;

/// smol, as the shared async driver needs it: `smol::spawn` on the global
/// executor, `smol::net` sockets and `smol::Timer`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Smol;

impl hubwire_runtime::tasks::Runtime for Smol {
    type Stream = smol::net::TcpStream;
    type Listener = smol::net::TcpListener;

    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        smol::spawn(task).detach();
    }

    async fn connect(host: String, port: u16) -> io::Result<smol::net::TcpStream> {
        let stream = smol::net::TcpStream::connect((host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn listener(socket: std::net::TcpListener) -> io::Result<smol::net::TcpListener> {
        smol::net::TcpListener::try_from(socket)
    }

    async fn accept(
        listener: &smol::net::TcpListener,
    ) -> io::Result<(smol::net::TcpStream, SocketAddr)> {
        let (stream, address) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, address))
    }

    fn shutdown(stream: &smol::net::TcpStream, how: Shutdown) {
        let _ = stream.shutdown(how);
    }

    fn peer_addr(stream: &smol::net::TcpStream) -> Option<SocketAddr> {
        stream.peer_addr().ok()
    }

    async fn sleep(duration: Duration) {
        smol::Timer::after(duration).await;
    }
}
