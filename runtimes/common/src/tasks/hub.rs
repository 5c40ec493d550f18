//! A local IoT Hub as tasks: one driver task owns the [`ServedHub`] (the engine,
//! the in-memory D2C store and every connection's transport stack); an accept task
//! per listener, and a reader and a writer task per connection, move bytes between
//! the sockets and the driver's channel.
//!
//! The driver follows the sans-IO contract (DESIGN.md): after every input or command
//! it drains `poll_output` and `poll_event`, then waits on its one channel until the
//! next input or `poll_timeout`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::Stream;
use hubwire_core::Timestamp;
use hubwire_core::hub::{
    D2cRecord, DeviceRecord, HubConfig, HubError, MethodInvocation, RegistryError,
};
use hubwire_core::iothub::{Message, Twin, TwinPatch};
use hubwire_store::{MemoryStore, Store};
use hubwire_transports::Listener;

use super::driver::close;
use super::socket::{self, Write};
use super::{Runtime, Waited, oneshot, wait};
use crate::flow::{Chunk, Flow};
use crate::listen::{self, BindError, Listen};
use crate::sync::{HubCommand, HubDriver};
use crate::{EVENT_BACKLOG, EventQueue, EventSink, Offer};
use crate::{HubServerEvent, PeerId, PeerOutput, ServedHub, clock};

/// How long an accept task pauses after an error that is not about one connection
/// (out of file descriptors), which would otherwise repeat at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A running hub of runtime `R`. Each runtime crate names it for its runtime
/// (`hubwire_smol::HubServer`).
///
/// Every method takes `&self`, so one task may send C2D messages while another
/// reads events. Dropping the server shuts it down, without waiting.
pub struct HubServer<R: Runtime> {
    listeners: Vec<Listen>,
    bind_errors: Vec<BindError>,
    tasks: HubTasks<R>,
    events: Receiver<HubServerEvent>,
}

impl<R: Runtime> fmt::Debug for HubServer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubServer")
            .field("listeners", &self.listeners)
            .field("bind_errors", &self.bind_errors)
            .finish_non_exhaustive()
    }
}

/// The application's side of a hub's tasks: what [`HubServer`] holds, and the
/// [`HubDriver`] of [`super::OnTasks`]. Dropping it shuts the hub down, without
/// waiting.
pub struct HubTasks<R: Runtime> {
    inputs: Sender<Input<R::Stream>>,
    /// Closed to stop the accept tasks.
    stop_accepting: Sender<()>,
    /// Closed once every accept task has ended (its listener closed).
    accepting: Receiver<()>,
}

impl<R: Runtime> fmt::Debug for HubTasks<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubTasks").finish_non_exhaustive()
    }
}

/// Where a hub driver's events go: the async API's channel, or the synchronous
/// API's, both bounded.
pub(crate) enum Events {
    Async(EventSink<Sender<HubServerEvent>>),
    Sync(EventSink<std::sync::mpsc::SyncSender<HubServerEvent>>),
}

impl Events {
    fn send(&mut self, event: HubServerEvent) {
        match self {
            Events::Async(events) => events.send(event),
            Events::Sync(events) => events.send(event),
        }
    }
}

impl EventQueue for Sender<HubServerEvent> {
    fn offer(&self, event: HubServerEvent) -> Offer {
        match self.try_send(event) {
            Ok(()) => Offer::Taken,
            Err(async_channel::TrySendError::Full(_)) => Offer::Full,
            Err(async_channel::TrySendError::Closed(_)) => Offer::Closed,
        }
    }
}

/// What the driver waits for.
enum Input<S> {
    Accepted(S, Listener, SocketAddr),
    Bytes(PeerId, Chunk),
    Closed(PeerId),
    /// Boxed: commands are rare, and bytes should not pay for their size.
    Command(Box<Command>),
}

#[derive(Debug)]
enum Command {
    /// A service-side request, of either API.
    Request(HubCommand),
    /// Close every connection and stop; answer once done (when someone waits).
    Shutdown { reply: Option<Sender<()>> },
}

impl<R: Runtime> HubServer<R> {
    /// Registers `devices`, binds every listener it can of `listen` and starts
    /// serving on the runtime's tasks, keeping everything in memory. `tls` is the server certificate's
    /// configuration, required when a TLS listener is asked for. A listener that
    /// cannot be bound is reported by [`bind_errors`](Self::bind_errors), and the
    /// hub serves on the others.
    ///
    /// Errors: `InvalidInput` when a device record is refused by the registry (its
    /// [`RegistryError`] in words) or a TLS listener has no `tls`; the OS's error
    /// when no listener can be bound.
    pub fn start(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        listen: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<HubServer<R>> {
        Self::start_with_store(config, devices, listen, tls, Box::new(MemoryStore::new()))
    }

    /// As [`start`](Self::start), with the hub restored from `store` and keeping
    /// its registry, twins, D2C log and C2D queues there ([`hubwire_store::RedbStore`]
    /// survives a crash). `devices` replace stored records of the same id.
    ///
    /// Errors: as [`start`](Self::start); `InvalidData` when the store cannot be
    /// read or restored.
    pub fn start_with_store(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        listen: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
        store: Box<dyn Store>,
    ) -> io::Result<HubServer<R>> {
        let listen::Started { hub, listeners: bound, bind_errors } =
            listen::start(config, devices, listen, tls, store, listen::Engine::default())?;
        let listeners = bound.iter().map(|(l, _)| *l).collect();
        let (events_tx, events) = async_channel::bounded(EVENT_BACKLOG);
        let tasks = HubTasks::spawn(hub, bound, Events::Async(EventSink::new(events_tx)))?;
        Ok(HubServer { listeners, bind_errors, tasks, events })
    }

    /// The listeners bound, with their real addresses (a port 0 asked for is
    /// the port picked).
    pub fn listeners(&self) -> &[Listen] {
        &self.listeners
    }

    /// The address of the first listener of this kind, if one is bound.
    pub fn local_addr(&self, listener: Listener) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.listener == listener).map(|l| l.address)
    }

    /// The listeners asked for that could not be bound, with how to fix each.
    pub fn bind_errors(&self) -> &[BindError] {
        &self.bind_errors
    }

    /// Queues a C2D message for `device_id` (the service side's "send"); a connected
    /// device receives it at once. Resolves with its sequence number in the
    /// device's queue.
    ///
    /// Errors: as [`hubwire_core::hub::Hub::send_c2d`]: an unknown device (404001),
    /// a full queue (403004), a message too large (413001).
    pub async fn send_c2d(&self, device_id: &str, message: Message) -> Result<u64, HubError> {
        let device_id = String::from(device_id);
        self.ask(move |hub, now| hub.send_c2d(now, &device_id, message)).await
    }

    /// `device_id`'s twin (the service side's "read twin").
    ///
    /// Errors: as [`hubwire_core::hub::Hub::twin`]: an unknown device (404001).
    pub async fn twin(&self, device_id: &str) -> Result<Twin, HubError> {
        let device_id = String::from(device_id);
        self.ask(move |hub, _| hub.twin(&device_id)).await
    }

    /// Patches `device_id`'s desired properties; a connected device subscribed to
    /// them receives the patch at once. With `if_version`, only while the desired
    /// properties are at that version. Resolves with the desired version.
    ///
    /// Errors: as [`hubwire_core::hub::Hub::update_desired`] and
    /// [`hubwire_core::hub::Hub::update_desired_if`].
    pub async fn update_desired(
        &self,
        device_id: &str,
        patch: TwinPatch,
        if_version: Option<u64>,
    ) -> Result<u64, HubError> {
        let device_id = String::from(device_id);
        self.ask(move |hub, now| hub.update_desired(now, &device_id, &patch, if_version)).await
    }

    /// Invokes a direct method; [`hubwire_core::hub::HubEvent::MethodResult`] with
    /// the returned id reports its end, within `timeout`.
    ///
    /// Errors: as [`hubwire_core::hub::Hub::invoke_method`]: an unknown device
    /// (404001), a device not connected or not subscribed to methods (404103), a
    /// payload over 128 KiB.
    pub async fn invoke_method(
        &self,
        device_id: &str,
        name: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<MethodInvocation, HubError> {
        let (device_id, name) = (String::from(device_id), String::from(name));
        self.ask(move |hub, now| hub.invoke_method(now, &device_id, &name, payload, timeout)).await
    }

    /// Registers a device while the hub runs.
    ///
    /// Errors: as [`hubwire_core::hub::Registry::add`].
    pub async fn add_device(&self, record: DeviceRecord) -> Result<(), RegistryError> {
        self.ask(move |hub, _| hub.add_device(record)).await
    }

    /// A copy of every stored D2C message, in arrival order.
    pub async fn stored(&self) -> Vec<D2cRecord> {
        self.ask(|hub, _| hub.stored()).await
    }

    /// The next event; `None` only if the driver task has ended (it panicked) and
    /// every event was read.
    ///
    /// Events queue in memory until read, one per stored message among them: a
    /// long-running application reads them.
    pub async fn next_event(&self) -> Option<HubServerEvent> {
        self.events.recv().await.ok()
    }

    /// The hub's events, as a [`Stream`]: what [`next_event`](Self::next_event)
    /// reads, from the same queue.
    pub fn events(&self) -> HubEventStream {
        HubEventStream(Box::pin(self.events.clone()))
    }

    /// Stops accepting, closes every connection as a crashed hub would (no MQTT
    /// goodbye exists for a server), and resolves once the driver has stopped and
    /// every listener is closed, so the ports can be bound again.
    pub async fn shutdown(self) {
        self.tasks.shutdown_and_wait().await;
    }

    /// Sends a command and waits for its answer.
    ///
    /// Panics if the driver task panicked: the server exists only while its driver
    /// runs, so there is nothing else to answer.
    async fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(&mut ServedHub, Timestamp) -> T + Send + 'static,
    ) -> T {
        let (reply, answer) = oneshot();
        let command = HubCommand::new(move |hub, now| {
            let _ = reply.try_send(request(hub, now));
        });
        let _ = self.tasks.inputs.try_send(Input::Command(Box::new(Command::Request(command))));
        match answer.recv().await {
            Ok(answer) => answer,
            Err(_) => panic!("the hub driver task panicked"),
        }
    }
}

impl<R: Runtime> HubTasks<R> {
    /// Spawns the driver task of `hub` and an accept task per listener of
    /// `listeners` (as bound), sending the hub's events to `events`.
    ///
    /// Errors: the OS's, when a listener cannot be made non-blocking.
    pub(crate) fn spawn(
        hub: ServedHub,
        listeners: Vec<(Listen, TcpListener)>,
        events: Events,
    ) -> io::Result<HubTasks<R>> {
        let mut sockets = Vec::new();
        for (listen, socket) in listeners {
            sockets.push((listen.listener, R::listener(socket)?));
        }
        let (inputs_tx, inputs) = async_channel::unbounded();
        let (stop_accepting, stop) = async_channel::bounded::<()>(1);
        let (accepted, accepting) = async_channel::bounded::<()>(1);
        let driver = Driver::<R> {
            hub,
            inputs,
            readers: inputs_tx.clone(),
            events,
            sockets: BTreeMap::new(),
        };
        R::spawn(driver.run());
        for (listener, socket) in sockets {
            let accept =
                accept::<R>(socket, listener, inputs_tx.clone(), stop.clone(), accepted.clone());
            R::spawn(accept);
        }
        Ok(HubTasks { inputs: inputs_tx, stop_accepting, accepting })
    }

    /// Stops accepting, closes every connection, and resolves once the driver has
    /// stopped and every listener is closed. Calling it again does nothing.
    async fn shutdown_and_wait(&self) {
        self.stop_accepting.close();
        let (reply, done) = oneshot();
        let shutdown = Command::Shutdown { reply: Some(reply) };
        if self.inputs.try_send(Input::Command(Box::new(shutdown))).is_ok() {
            let _ = done.recv().await;
        }
        // Every accept task holds a sender: the channel closes as the last ends.
        while self.accepting.recv().await.is_ok() {}
    }
}

impl<R: Runtime> HubDriver for HubTasks<R> {
    fn command(&self, command: HubCommand) -> Option<()> {
        self.inputs.try_send(Input::Command(Box::new(Command::Request(command)))).ok()
    }

    /// Blocks the calling thread until the hub has stopped: call it off the
    /// runtime's executor.
    fn shutdown(&mut self) {
        futures_lite::future::block_on(self.shutdown_and_wait());
    }
}

impl<R: Runtime> Drop for HubTasks<R> {
    fn drop(&mut self) {
        self.stop_accepting.close();
        let shutdown = Command::Shutdown { reply: None };
        let _ = self.inputs.try_send(Input::Command(Box::new(shutdown)));
    }
}

/// The hub's events, as a [`Stream`]; it ends only if the driver task has ended.
#[derive(Debug)]
// Boxed: a receiver's wait is pinned to it.
pub struct HubEventStream(Pin<Box<Receiver<HubServerEvent>>>);

impl Stream for HubEventStream {
    type Item = HubServerEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HubServerEvent>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// The accept task of one listener: hands each new connection to the driver until
/// `stop` closes; the listener is closed before `accepting` is dropped.
async fn accept<R: Runtime>(
    socket: R::Listener,
    listener: Listener,
    driver: Sender<Input<R::Stream>>,
    stop: Receiver<()>,
    accepting: Sender<()>,
) {
    let _accepting = accepting;
    let socket = socket;
    let serve = async {
        loop {
            match R::accept(&socket).await {
                Ok((stream, address)) => {
                    if driver.send(Input::Accepted(stream, listener, address)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let one_connection = matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    );
                    if !one_connection {
                        R::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                }
            }
        }
    };
    let stopped = async {
        let _ = stop.recv().await;
    };
    futures_lite::future::or(serve, stopped).await;
    drop(socket);
}

/// One open connection's socket, as the driver holds it.
struct Socket<S> {
    /// To shut it down at once when the hub stops. Its reader and writer hold
    /// handles to this one socket.
    stream: S,
    writer: Sender<Write>,
    flow: Arc<Flow>,
}

/// The driver task's state.
struct Driver<R: Runtime> {
    hub: ServedHub,
    inputs: Receiver<Input<R::Stream>>,
    /// A sender for the reader tasks.
    readers: Sender<Input<R::Stream>>,
    events: Events,
    sockets: BTreeMap<PeerId, Socket<R::Stream>>,
}

impl<R: Runtime> Driver<R> {
    async fn run(mut self) {
        let reply = loop {
            self.drain();
            let input = wait::<R, _>(&self.inputs, self.hub.poll_timeout()).await;
            let now = clock::now();
            match input {
                Waited::Input(Input::Accepted(stream, listener, address)) => {
                    self.accept(now, stream, listener, address);
                }
                Waited::Input(Input::Bytes(peer, bytes)) => {
                    self.hub.handle_input(now, peer, &bytes);
                }
                Waited::Input(Input::Closed(peer)) => {
                    if let Some(socket) = self.sockets.remove(&peer) {
                        R::shutdown(&socket.stream, Shutdown::Both);
                        socket.flow.close();
                    }
                    self.hub.handle_close(now, peer);
                }
                Waited::Input(Input::Command(command)) => {
                    if let ControlFlow::Break(reply) = self.command(now, *command) {
                        break reply;
                    }
                }
                Waited::Timeout => {}
                // Unreachable while `readers` lives.
                Waited::Closed => break None,
            }
            // Checked after every input so that busy connections cannot starve the
            // timers.
            self.hub.handle_timeout(now);
        };
        for socket in self.sockets.values() {
            R::shutdown(&socket.stream, Shutdown::Both);
            socket.flow.close();
        }
        close(&self.inputs);
        if let Some(reply) = reply {
            let _ = reply.try_send(());
        }
    }

    /// Carries out a command; `Break` (with whom to answer) when the driver is to
    /// stop.
    fn command(&mut self, now: Timestamp, command: Command) -> ControlFlow<Option<Sender<()>>> {
        match command {
            Command::Request(command) => command.apply(&mut self.hub, now),
            Command::Shutdown { reply } => return ControlFlow::Break(reply),
        }
        ControlFlow::Continue(())
    }

    /// Starts a new connection's reader and writer; the hub takes it from there.
    fn accept(&mut self, now: Timestamp, stream: R::Stream, listener: Listener, at: SocketAddr) {
        let Some(id) = self.hub.accept(now, listener, Some(at)) else {
            R::shutdown(&stream, Shutdown::Both);
            return;
        };
        let flow = Arc::new(Flow::default());
        socket::spawn_reader::<R, _>(
            stream.clone(),
            Arc::clone(&flow),
            self.readers.clone(),
            move |chunk| Input::Bytes(id, chunk),
            Input::Closed(id),
        );
        let writer = socket::spawn_writer::<R>(stream.clone(), Arc::clone(&flow));
        self.sockets.insert(id, Socket { stream, writer, flow });
    }

    /// Hands the hub's output to the writers and its events to the application.
    fn drain(&mut self) {
        while let Some((id, output)) = self.hub.poll_output() {
            match output {
                PeerOutput::Bytes(bytes) => {
                    if let Some(socket) = self.sockets.get(&id) {
                        socket.flow.queued(bytes.len());
                        let _ = socket.writer.try_send(Write::Bytes(bytes));
                    }
                }
                // The writer closes the socket in stages after the bytes queued
                // before (or gives up on a peer that does not read), reading what
                // the peer still sends itself; the reader, which may be paused until
                // those bytes are written, stops now, and its close is ignored. No
                // read shutdown: the writer still reads.
                PeerOutput::Close => {
                    if let Some(socket) = self.sockets.remove(&id) {
                        let _ = socket.writer.try_send(Write::Close);
                        socket.flow.close();
                    }
                }
            }
        }
        while let Some(event) = self.hub.poll_event() {
            self.events.send(event);
        }
    }
}
