//! A local IoT Hub on threads: one driver thread owns the [`Hub`] engine, the
//! in-memory D2C store and every connection's transport [`Stack`] (TLS, WebSocket);
//! an accept thread per listener, and a reader and a writer thread per connection,
//! move bytes between the sockets and the driver's channel.
//!
//! On port 443 the protocol is known only after the first request head; until then
//! the connection is the runtime's alone, and the engine hears of it (`accept`) when
//! its stack has routed it.
//!
//! The driver follows the sans-IO contract (DESIGN.md): after every input or command
//! it drains `poll_transmit` and `poll_event`, then waits on its one channel until
//! the next input or `poll_timeout`. Storing is I/O (DESIGN.md, "Storage is I/O"):
//! on [`HubEvent::StoreTelemetry`] the driver appends the record to its [`D2cLog`]
//! and only then calls [`Hub::telemetry_stored`], which acknowledges the device.

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::Bytes;
use hubwire_core::hub::{
    D2cRecord, DeviceRecord, HubConfig, HubError, MethodInvocation, RegistryError,
};
use hubwire_core::iothub::{Message, Twin, TwinPatch};
use hubwire_core::{Timestamp, Transmit};
use hubwire_runtime::listen::{self, BindError, Listen};
use hubwire_runtime::{HubServerEvent, PeerId, PeerOutput, ServedHub, clock};
use hubwire_transports::Listener;

use crate::flow::{Chunk, Flow};
use crate::{reader, writer};

/// How long the accept thread pauses after an error that is not about one
/// connection (out of file descriptors), which would otherwise repeat at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// How long a write to a peer may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running hub. See the module documentation.
///
/// Every method takes `&self`, so one thread may send C2D messages while another
/// reads events. Dropping the server shuts it down.
#[derive(Debug)]
pub struct HubServer {
    listeners: Vec<Listen>,
    bind_errors: Vec<BindError>,
    inputs: Sender<Input>,
    events: Mutex<Receiver<HubServerEvent>>,
    stopping: Arc<AtomicBool>,
    acceptors: Vec<JoinHandle<()>>,
    driver: Option<JoinHandle<()>>,
}

/// What the driver waits for.
#[derive(Debug)]
enum Input {
    Accepted(TcpStream, Listener),
    Bytes(PeerId, Chunk),
    Closed(PeerId),
    /// Boxed: commands are rare, and bytes should not pay for their size.
    Command(Box<Command>),
}

#[derive(Debug)]
enum Command {
    SendC2d {
        device_id: String,
        message: Message,
        reply: Sender<Result<u64, HubError>>,
    },
    AddDevice {
        record: DeviceRecord,
        reply: Sender<Result<(), RegistryError>>,
    },
    Stored {
        reply: Sender<Vec<D2cRecord>>,
    },
    Twin {
        device_id: String,
        reply: Sender<Result<Twin, HubError>>,
    },
    UpdateDesired {
        device_id: String,
        patch: TwinPatch,
        if_version: Option<u64>,
        reply: Sender<Result<u64, HubError>>,
    },
    InvokeMethod {
        device_id: String,
        name: String,
        payload: Bytes,
        timeout: Duration,
        reply: Sender<Result<MethodInvocation, HubError>>,
    },
    Shutdown,
}

impl HubServer {
    /// Registers `devices`, binds every listener it can of `listen` and starts
    /// serving. `tls` is the server certificate's configuration, required when a
    /// TLS listener is asked for. A listener that cannot be bound is reported by
    /// [`bind_errors`](Self::bind_errors), and the hub serves on the others.
    ///
    /// Errors: `InvalidInput` when a device record is refused by the registry (its
    /// [`RegistryError`] inside) or a TLS listener has no `tls`; the OS's error when
    /// no listener can be bound or a thread cannot start.
    pub fn start(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        listen: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<HubServer> {
        let listen::Started { hub, listeners: bound, bind_errors } =
            listen::start(config, devices, listen, tls)?;
        let (inputs_tx, inputs) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let driver = Driver {
            hub,
            inputs,
            readers: inputs_tx.clone(),
            events: events_tx,
            sockets: BTreeMap::new(),
        };
        let driver =
            thread::Builder::new().name(String::from("hubwire-hub")).spawn(move || driver.run())?;
        let stopping = Arc::new(AtomicBool::new(false));
        let mut server = HubServer {
            listeners: bound.iter().map(|(l, _)| *l).collect(),
            bind_errors,
            inputs: inputs_tx,
            events: Mutex::new(events),
            stopping: Arc::clone(&stopping),
            acceptors: Vec::new(),
            driver: Some(driver),
        };
        for (listen, socket) in bound {
            let accepted = server.inputs.clone();
            let stopping = Arc::clone(&stopping);
            // On failure `server` drops here, stopping the driver and the acceptors
            // started so far.
            server.acceptors.push(
                thread::Builder::new()
                    .name(format!("hubwire-hub-accept-{}", listen.address.port()))
                    .spawn(move || accept(&socket, listen.listener, &accepted, &stopping))?,
            );
        }
        Ok(server)
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
    /// device receives it at once. Returns its sequence number in the device's queue.
    ///
    /// Errors: as [`Hub::send_c2d`]: an unknown device (404001), a full queue
    /// (403004), a message too large (413001).
    pub fn send_c2d(&self, device_id: &str, message: Message) -> Result<u64, HubError> {
        self.ask(|reply| Command::SendC2d { device_id: String::from(device_id), message, reply })
    }

    /// `device_id`'s twin (the service side's "read twin").
    ///
    /// Errors: as [`Hub::twin`]: an unknown device (404001).
    pub fn twin(&self, device_id: &str) -> Result<Twin, HubError> {
        self.ask(|reply| Command::Twin { device_id: String::from(device_id), reply })
    }

    /// Patches `device_id`'s desired properties; a connected device subscribed to
    /// them receives the patch at once. With `if_version`, only while the desired
    /// properties are at that version ([`Hub::update_desired_if`]). Returns the
    /// desired version.
    ///
    /// Errors: as [`Hub::update_desired`] and [`Hub::update_desired_if`].
    pub fn update_desired(
        &self,
        device_id: &str,
        patch: TwinPatch,
        if_version: Option<u64>,
    ) -> Result<u64, HubError> {
        let device_id = String::from(device_id);
        self.ask(|reply| Command::UpdateDesired { device_id, patch, if_version, reply })
    }

    /// Invokes a direct method; [`HubEvent::MethodResult`] with the returned id
    /// reports its end, within `timeout`.
    ///
    /// Errors: as [`Hub::invoke_method`]: an unknown device (404001), a device not
    /// connected or not subscribed to methods (404103), a payload over 128 KiB.
    pub fn invoke_method(
        &self,
        device_id: &str,
        name: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<MethodInvocation, HubError> {
        let (device_id, name) = (String::from(device_id), String::from(name));
        self.ask(|reply| Command::InvokeMethod { device_id, name, payload, timeout, reply })
    }

    /// Registers a device while the hub runs.
    ///
    /// Errors: as [`hubwire_core::hub::Registry::add`].
    pub fn add_device(&self, record: DeviceRecord) -> Result<(), RegistryError> {
        self.ask(|reply| Command::AddDevice { record, reply })
    }

    /// A copy of every stored D2C message, in arrival order.
    pub fn stored(&self) -> Vec<D2cRecord> {
        self.ask(|reply| Command::Stored { reply })
    }

    /// The next event, waiting at most `timeout`; `None` when none came.
    ///
    /// Events queue in memory until read, one per stored message among them: a
    /// long-running application reads them (the `hubwire hub` command prints each).
    pub fn recv_event(&self, timeout: Duration) -> Option<HubServerEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.recv_timeout(timeout).ok()
    }

    /// The next event, waiting as long as it takes; `None` only if the driver thread
    /// has died (it panicked) and every event was read.
    pub fn next_event(&self) -> Option<HubServerEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.recv().ok()
    }

    /// Stops accepting, closes every connection as a crashed hub would (no MQTT
    /// goodbye exists for a server), and waits for the accept and driver threads.
    /// Reader and writer threads end on their own as their sockets shut down.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        for (acceptor, listen) in self.acceptors.drain(..).zip(&self.listeners) {
            // `accept` blocks; a connection of our own wakes it to see the flag.
            let mut wake = listen.address;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
                let _ = acceptor.join();
            }
        }
        let _ = self.inputs.send(Input::Command(Box::new(Command::Shutdown)));
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }

    /// Sends a command and waits for its answer.
    ///
    /// Panics if the driver thread panicked: the server exists only while its
    /// driver runs, so there is nothing else to answer.
    fn ask<T>(&self, command: impl FnOnce(Sender<T>) -> Command) -> T {
        let (reply, answer) = mpsc::channel();
        let _ = self.inputs.send(Input::Command(Box::new(command(reply))));
        match answer.recv() {
            Ok(answer) => answer,
            Err(_) => panic!("the hub driver thread panicked"),
        }
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The accept thread: hands each new connection to the driver until `stopping`.
fn accept(socket: &TcpListener, listener: Listener, driver: &Sender<Input>, stopping: &AtomicBool) {
    for stream in socket.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if driver.send(Input::Accepted(stream, listener)).is_err() {
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
                    thread::sleep(ACCEPT_ERROR_PAUSE);
                }
            }
        }
    }
}

/// One open connection's socket, as the driver holds it.
struct Socket {
    /// To shut it down at once when the hub stops. Its reader and writer share
    /// this one socket (one file descriptor per connection).
    stream: Arc<TcpStream>,
    writer: Sender<Transmit>,
    flow: Arc<Flow>,
}

/// The driver thread's state.
struct Driver {
    hub: ServedHub,
    inputs: Receiver<Input>,
    /// A sender for the reader threads.
    readers: Sender<Input>,
    events: Sender<HubServerEvent>,
    sockets: BTreeMap<PeerId, Socket>,
}

impl Driver {
    fn run(mut self) {
        loop {
            self.drain();
            let input = match self.hub.poll_timeout() {
                Some(deadline) => self.inputs.recv_timeout(clock::until(deadline)),
                None => self.inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = clock::now();
            match input {
                Ok(Input::Accepted(stream, listener)) => self.accept(now, stream, listener),
                Ok(Input::Bytes(peer, bytes)) => self.hub.handle_input(now, peer, &bytes),
                Ok(Input::Closed(peer)) => {
                    if let Some(socket) = self.sockets.remove(&peer) {
                        let _ = socket.stream.shutdown(Shutdown::Both);
                        socket.flow.close();
                    }
                    self.hub.handle_close(now, peer);
                }
                Ok(Input::Command(command)) => {
                    if self.command(now, *command).is_break() {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Unreachable while `readers` lives.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Checked after every input so that busy connections cannot starve the
            // timers.
            self.hub.handle_timeout(now);
        }
        for socket in self.sockets.values() {
            let _ = socket.stream.shutdown(Shutdown::Both);
            socket.flow.close();
        }
    }

    /// Carries out a command; `Break` when the driver is to stop.
    fn command(&mut self, now: Timestamp, command: Command) -> ControlFlow<()> {
        match command {
            Command::SendC2d { device_id, message, reply } => {
                let _ = reply.send(self.hub.send_c2d(now, &device_id, message));
            }
            Command::AddDevice { record, reply } => {
                let _ = reply.send(self.hub.add_device(record));
            }
            Command::Stored { reply } => {
                let _ = reply.send(self.hub.stored().cloned().collect());
            }
            Command::Twin { device_id, reply } => {
                let _ = reply.send(self.hub.twin(&device_id));
            }
            Command::UpdateDesired { device_id, patch, if_version, reply } => {
                let _ = reply.send(self.hub.update_desired(now, &device_id, &patch, if_version));
            }
            Command::InvokeMethod { device_id, name, payload, timeout, reply } => {
                let invoked = self.hub.invoke_method(now, &device_id, &name, payload, timeout);
                let _ = reply.send(invoked);
            }
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Starts a new connection's reader and writer; the hub takes it from there.
    fn accept(&mut self, now: Timestamp, stream: TcpStream, listener: Listener) {
        let stream = Arc::new(stream);
        let Some(id) = self.hub.accept(now, listener, stream.peer_addr().ok()) else {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        let flow = Arc::new(Flow::default());
        match self.start_socket(id, &stream, &flow) {
            Ok(writer) => {
                self.sockets.insert(id, Socket { stream, writer, flow });
            }
            Err(_) => {
                let _ = stream.shutdown(Shutdown::Both);
                self.hub.handle_close(now, id);
            }
        }
    }

    fn start_socket(
        &self,
        id: PeerId,
        stream: &Arc<TcpStream>,
        flow: &Arc<Flow>,
    ) -> io::Result<Sender<Transmit>> {
        stream.set_nodelay(true)?;
        // A peer that takes nothing for this long is gone as far as the hub cares;
        // without a limit its writer would wait on it forever, holding the
        // connection's threads after the engine has closed it.
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        reader::spawn(
            format!("hubwire-hub-{id}-read"),
            Arc::clone(stream),
            Arc::clone(flow),
            self.readers.clone(),
            move |chunk| Input::Bytes(id, chunk),
            Input::Closed(id),
        )?;
        writer::spawn(format!("hubwire-hub-{id}-write"), Arc::clone(stream), Arc::clone(flow))
    }

    /// Hands the hub's output to the writers and its events to the application.
    fn drain(&mut self) {
        while let Some((id, output)) = self.hub.poll_output() {
            match output {
                PeerOutput::Bytes(bytes) => {
                    if let Some(socket) = self.sockets.get(&id) {
                        socket.flow.queued(bytes.len());
                        let _ = socket.writer.send(Transmit::Send(bytes));
                    }
                }
                // The writer closes the socket after the bytes queued before (or
                // gives up on a peer that does not read, after [`WRITE_TIMEOUT`]);
                // the reader, which may be paused until those bytes are written, is
                // released now, and its close is ignored.
                PeerOutput::Close => {
                    if let Some(socket) = self.sockets.remove(&id) {
                        let _ = socket.writer.send(Transmit::Close);
                        let _ = socket.stream.shutdown(Shutdown::Read);
                        socket.flow.close();
                    }
                }
            }
        }
        while let Some(event) = self.hub.poll_event() {
            let _ = self.events.send(event);
        }
    }
}
