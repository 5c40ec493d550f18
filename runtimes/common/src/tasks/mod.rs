//! The async driver the smol and async-std runtimes share (feature `async`): the
//! device client ([`DeviceClient`]), many devices over one AMQP connection
//! ([`MultiplexedClient`]) and the hub server ([`HubServer`]) as tasks,
//! generic over a [`Runtime`] that names the runtime's spawn, TCP sockets and
//! timer. `hubwire-smol` and `hubwire-async-std` each plug in their runtime and
//! name the types (`hubwire_smol::DeviceClient` is `DeviceClient<Smol>`). The
//! same drivers also serve the synchronous API ([`OnTasks`]).
//!
//! The drivers follow the sans-IO contract (DESIGN.md): after every input or
//! command a driver drains `poll_action` (`poll_output`) and `poll_event`, then
//! waits on its one channel until the next input or `poll_timeout`. A reader task
//! per socket forwards what it reads to that channel, one chunk at a time and only
//! while the bytes waiting to be written to the peer are few; a hub
//! connection has a writer task too, so a slow peer never holds up the hub.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::listen::Listen;
use crate::sync::{Client, Scheduler};
use crate::{Dialed, HubServerEvent, ServedHub};

mod device;
mod driver;
mod hub;
mod multiplexed;
mod socket;

pub use device::{C2dStream, DeviceClient, EventStream};
pub use driver::ClientTask;
pub use hub::{HubEventStream, HubServer, HubTasks};
pub use multiplexed::{MultiplexedClient, MuxEventStream};

/// What the async driver needs of a runtime: spawning a task, TCP sockets and a
/// timer. Implemented by a marker type of each runtime crate.
pub trait Runtime: Send + Sync + 'static {
    /// A connected TCP socket. Cloning it gives another handle to the same socket,
    /// so one task reads while another writes.
    type Stream: AsyncRead + AsyncWrite + Clone + Unpin + Send + Sync + 'static;
    /// A listening TCP socket.
    type Listener: Send + Sync + 'static;

    /// Runs `task` to completion in the background; nobody waits for it.
    fn spawn(task: impl Future<Output = ()> + Send + 'static);

    /// Opens a TCP connection to `host`:`port`, resolving the name, with Nagle's
    /// algorithm off (every write is a whole batch of packets the peer should see
    /// at once).
    ///
    /// Errors: the resolver's error, or the connect error.
    fn connect(host: String, port: u16) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The runtime's listener over a bound std listener.
    ///
    /// Errors: the OS's, when the socket cannot be made non-blocking.
    fn listener(socket: TcpListener) -> io::Result<Self::Listener>;

    /// The next connection accepted on `listener`, with Nagle's algorithm off, and
    /// its peer's address.
    ///
    /// Errors: the OS's accept error.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + '_;

    /// Shuts `stream` down (every handle to it); errors are ignored, since the
    /// socket is given up either way.
    fn shutdown(stream: &Self::Stream, how: Shutdown);

    /// The address `stream` is connected to, if the OS says.
    fn peer_addr(stream: &Self::Stream) -> Option<SocketAddr>;

    /// Resolves after `duration`, never earlier.
    fn sleep(duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The synchronous API ([`crate::sync`]) with its drivers as tasks of runtime `R`:
/// `sync::DeviceClient<OnTasks<Smol>>` blocks its caller's thread while smol
/// tasks drive the device. For threads of a program that runs an async runtime
/// anyway, and for the runtimes' scenario suite. Its blocking calls must be made
/// off the runtime's executor.
pub struct OnTasks<R>(PhantomData<fn() -> R>);

impl<R> fmt::Debug for OnTasks<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnTasks")
    }
}

impl<R: Runtime> Scheduler for OnTasks<R> {
    type Client<C: Send + 'static> = ClientTask<C>;
    type Hub = HubTasks<R>;

    fn start_client<A: Client>(
        _name: String,
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> io::Result<ClientTask<A::Command>> {
        Ok(ClientTask::spawn::<R, A>(dialed, client))
    }

    fn start_hub(
        hub: ServedHub,
        listeners: Vec<(Listen, TcpListener)>,
        events: std::sync::mpsc::SyncSender<HubServerEvent>,
    ) -> io::Result<HubTasks<R>> {
        HubTasks::spawn(hub, listeners, hub::Events::Sync(crate::EventSink::new(events)))
    }
}

/// A one-answer channel from a driver to the caller waiting for it.
fn oneshot<T>() -> (async_channel::Sender<T>, async_channel::Receiver<T>) {
    async_channel::bounded(1)
}

/// What a driver's wait ended with.
enum Waited<T> {
    /// An input arrived.
    Input(T),
    /// The deadline passed.
    Timeout,
    /// Every sender is gone.
    Closed,
}

/// The next input of `inputs`, or [`Waited::Timeout`] once `deadline` passes.
async fn wait<R: Runtime, T>(
    inputs: &async_channel::Receiver<T>,
    deadline: Option<hubwire_core::Timestamp>,
) -> Waited<T> {
    let input = async {
        match inputs.recv().await {
            Ok(input) => Waited::Input(input),
            Err(_) => Waited::Closed,
        }
    };
    match deadline {
        Some(deadline) => {
            let timer = async {
                R::sleep(crate::clock::until(deadline)).await;
                Waited::Timeout
            };
            futures_lite::future::or(input, timer).await
        }
        None => input.await,
    }
}

/// `future`'s output, or `None` once `duration` has passed.
async fn timeout<R: Runtime, T>(duration: Duration, future: impl Future<Output = T>) -> Option<T> {
    let timer = async {
        R::sleep(duration).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, timer).await
}
