//! hubwire's async-std runtime: the sans-IO machines of `hubwire-core` driven as
//! [`async_std`] tasks over async-std's sockets and timers.
//!
//! - [`DeviceClient`]: a device connected to its hub, one driver task per device;
//!   telemetry resolves on the hub's acknowledgement, C2D messages and events
//!   arrive as [`Stream`](async_std::stream::Stream)s.
//! - [`MultiplexedClient`]: many devices over one AMQP connection, one driver task
//!   for them all.
//! - [`HubServer`]: a local IoT Hub serving MQTT and AMQP over TLS, WebSocket and
//!   plain TCP, and HTTPS, one driver task for the engine and tasks per
//!   connection for the sockets.
//!
//! The tasks run on async-std's global executor (`async_std::task::spawn`). The
//! driver is shared with the smol runtime ([`hubwire_runtime::tasks`]); this crate
//! plugs in async-std ([`AsyncStd`]). Switching to `hubwire-smol` changes the
//! crate, not the calls; the blocking and mio runtimes offer the same calls
//! without `.await` ([`hubwire_runtime::sync`]).
//!
//! ```no_run
//! use async_std::stream::StreamExt;
//! use hubwire_async_std::{ClientTransport, DeviceClient, Transport};
//! use hubwire_core::device::DeviceConfig;
//! use hubwire_core::iothub::{ConnectionString, Message};
//!
//! #[async_std::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
//! }
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

/// A device connected to its hub by an async-std task: see
/// [`hubwire_runtime::tasks::DeviceClient`] for its calls.
pub type DeviceClient = hubwire_runtime::tasks::DeviceClient<AsyncStd>;

/// Many devices over one AMQP connection, driven by an async-std task: see
/// [`hubwire_runtime::tasks::MultiplexedClient`] for its calls.
pub type MultiplexedClient = hubwire_runtime::tasks::MultiplexedClient<AsyncStd>;

/// A local IoT Hub on async-std tasks: see [`hubwire_runtime::tasks::HubServer`]
/// for its calls.
pub type HubServer = hubwire_runtime::tasks::HubServer<AsyncStd>;

/// async-std, as the shared async driver needs it: `async_std::task::spawn`,
/// `async_std::net` sockets and `async_std::task::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStd;

impl hubwire_runtime::tasks::Runtime for AsyncStd {
    type Stream = async_std::net::TcpStream;
    type Listener = async_std::net::TcpListener;

    fn spawn(task: impl Future<Output = ()> + Send + 'static) {
        // The handle is dropped: the task runs on, detached.
        drop(async_std::task::spawn(task));
    }

    async fn connect(host: String, port: u16) -> io::Result<async_std::net::TcpStream> {
        let stream = async_std::net::TcpStream::connect((host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn listener(socket: std::net::TcpListener) -> io::Result<async_std::net::TcpListener> {
        // async-std makes the socket non-blocking itself.
        Ok(async_std::net::TcpListener::from(socket))
    }

    async fn accept(
        listener: &async_std::net::TcpListener,
    ) -> io::Result<(async_std::net::TcpStream, SocketAddr)> {
        let (stream, address) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, address))
    }

    fn shutdown(stream: &async_std::net::TcpStream, how: Shutdown) {
        let _ = stream.shutdown(how);
    }

    fn peer_addr(stream: &async_std::net::TcpStream) -> Option<SocketAddr> {
        stream.peer_addr().ok()
    }

    async fn sleep(duration: Duration) {
        async_std::task::sleep(duration).await;
    }
}
