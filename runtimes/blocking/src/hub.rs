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

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
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
    D2cLog, D2cRecord, DeviceRecord, Hub, HubConfig, HubError, HubEvent, MethodInvocation,
    RegistryError,
};
use hubwire_core::iothub::{Message, Twin, TwinPatch};
use hubwire_core::{ConnectionId, Endpoint, Protocol, Timestamp, Transmit};

use hubwire_transports::{Listener, Stack};

use crate::flow::{Chunk, Flow};
use crate::{clock, reader, writer};

/// How long the accept thread pauses after an error that is not about one
/// connection (out of file descriptors), which would otherwise repeat at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What the hub tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubServerEvent {
    /// A D2C message was stored (and its device acknowledged).
    Stored(D2cRecord),
    /// Any other hub event: `Connected`, `Refused`, `Disconnected`, `C2dSettled`.
    /// [`HubEvent::StoreTelemetry`] never appears here; it becomes
    /// [`HubServerEvent::Stored`].
    Hub(HubEvent),
    /// A connection's transport failed before or beneath its protocol session: not
    /// TLS on a TLS port, a refused WebSocket upgrade or a broken frame, a request
    /// for a path the hub does not serve. The peer got the standard's answer (a TLS
    /// alert, an HTTP status, a WebSocket close code) and the connection is closed.
    TransportError {
        /// Who connected.
        peer: Option<SocketAddr>,
        /// Where.
        listener: Listener,
        /// What went wrong, in words.
        error: String,
    },
}

/// One listener a hub serves: what it speaks and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// What it serves.
    pub listener: Listener,
    /// Where to bind it; port 0 picks a free port.
    pub address: SocketAddr,
}

/// A listener that could not be bound. The hub serves on the others.
#[derive(Debug)]
pub struct BindError {
    /// The listener asked for.
    pub listen: Listen,
    /// The OS's error.
    pub error: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Listen { listener, address } = self.listen;
        write!(f, "cannot listen on {address} ({}): {}", listener_name(listener), self.error)?;
        if self.error.kind() == io::ErrorKind::PermissionDenied && address.port() < 1024 {
            write!(
                f,
                "; ports below 1024 need root or CAP_NET_BIND_SERVICE \
                 (sudo setcap cap_net_bind_service=+ep $(which hubwire)), or choose a port \
                 of 1024 or more"
            )?;
        } else if self.error.kind() == io::ErrorKind::AddrInUse {
            write!(
                f,
                "; another program (or another hub) holds it: choose another port or address"
            )?;
        }
        Ok(())
    }
}

/// What a listener serves, in words.
pub fn listener_name(listener: Listener) -> &'static str {
    match listener {
        Listener::Tls(Protocol::Mqtt) => "MQTT over TLS",
        Listener::Tls(Protocol::Amqp) => "AMQP over TLS",
        Listener::Tcp(Protocol::Mqtt) => "MQTT over plain TCP",
        Listener::Tcp(Protocol::Amqp) => "AMQP over plain TCP",
        Listener::Web => "MQTT and AMQP over WebSocket, HTTPS",
        _ => "other",
    }
}

/// How long a write to a peer may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocols port 443 routes to (spec file §1: WebSocket subprotocols `mqtt`
/// and `AMQPWSB10`; any other request is IoT Hub's REST API, §6).
const SERVES: &[Protocol] = &[Protocol::Mqtt, Protocol::Amqp, Protocol::Http];

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

/// A connection of the runtime's, before and after the engine knows it.
type PeerId = u64;

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
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        if tls.is_none() && listen.iter().any(|l| !matches!(l.listener, Listener::Tcp(_))) {
            return Err(invalid(String::from("a TLS listener needs a server certificate")));
        }
        // Lock tokens need no secrecy over MQTT (they are packet ids there); the
        // seed only keeps two runs from repeating each other.
        let seed = RandomState::new().hash_one(clock::now());
        let mut hub = Hub::new(config, seed);
        for record in devices {
            hub.registry_mut().add(record).map_err(|e| invalid(e.to_string()))?;
        }
        let mut bound = Vec::new();
        let mut bind_errors = Vec::new();
        for &want in listen {
            match TcpListener::bind(want.address).and_then(|l| Ok((l.local_addr()?, l))) {
                Ok((address, socket)) => bound.push((Listen { address, ..want }, socket)),
                Err(error) => bind_errors.push(BindError { listen: want, error }),
            }
        }
        if bound.is_empty() {
            let words: Vec<String> = bind_errors.iter().map(BindError::to_string).collect();
            let kind = bind_errors.first().map_or(io::ErrorKind::InvalidInput, |e| e.error.kind());
            return Err(io::Error::new(kind, format!("no listener: {}", words.join("; "))));
        }
        let (inputs_tx, inputs) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let driver = Driver {
            hub,
            store: D2cLog::new(),
            tls,
            inputs,
            readers: inputs_tx.clone(),
            events: events_tx,
            peers: BTreeMap::new(),
            by_connection: BTreeMap::new(),
            unrouted: BTreeSet::new(),
            next_peer: 0,
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

/// One open connection, as the driver holds it.
struct Peer {
    /// To shut it down at once when the hub stops. Its reader and writer share
    /// this one socket (one file descriptor per connection).
    stream: Arc<TcpStream>,
    writer: Sender<Transmit>,
    flow: Arc<Flow>,
    /// Its TLS and WebSocket layers.
    stack: Stack,
    /// Its id in the engine, once the protocol is known.
    connection: Option<ConnectionId>,
    /// Until then, when it is given up.
    route_deadline: Option<Timestamp>,
    /// Who and where, for [`HubServerEvent::TransportError`].
    address: Option<SocketAddr>,
    listener: Listener,
}

/// The driver thread's state.
struct Driver {
    hub: Hub,
    store: D2cLog,
    tls: Option<Arc<rustls::ServerConfig>>,
    inputs: Receiver<Input>,
    /// A sender for the reader threads.
    readers: Sender<Input>,
    events: Sender<HubServerEvent>,
    peers: BTreeMap<PeerId, Peer>,
    by_connection: BTreeMap<ConnectionId, PeerId>,
    /// Connections whose protocol is not known yet, by deadline.
    unrouted: BTreeSet<(Timestamp, PeerId)>,
    next_peer: PeerId,
}

impl Driver {
    fn run(mut self) {
        loop {
            self.drain();
            let input = match self.next_deadline() {
                Some(deadline) => self.inputs.recv_timeout(clock::until(deadline)),
                None => self.inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = clock::now();
            match input {
                Ok(Input::Accepted(stream, listener)) => self.accept(now, stream, listener),
                Ok(Input::Bytes(peer, bytes)) => self.received(now, peer, &bytes),
                Ok(Input::Closed(peer)) => self.closed(now, peer),
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
            if self.hub.poll_timeout().is_some_and(|t| t <= now) {
                self.hub.handle_timeout(now);
            }
            while let Some(&(deadline, peer)) = self.unrouted.first() {
                if deadline > now {
                    break;
                }
                self.unrouted.pop_first();
                // Its stack answers 408 if a request head was on its way.
                if let Some(late) = self.peers.get_mut(&peer) {
                    late.stack.close();
                    flush(late);
                }
                self.drop_peer(now, peer);
            }
        }
        for peer in self.peers.values() {
            let _ = peer.stream.shutdown(Shutdown::Both);
            peer.flow.close();
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        let route = self.unrouted.first().map(|&(deadline, _)| deadline);
        match (self.hub.poll_timeout(), route) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Carries out a command; `Break` when the driver is to stop.
    fn command(&mut self, now: Timestamp, command: Command) -> ControlFlow<()> {
        match command {
            Command::SendC2d { device_id, message, reply } => {
                let _ = reply.send(self.hub.send_c2d(now, &device_id, message));
            }
            Command::AddDevice { record, reply } => {
                let _ = reply.send(self.hub.registry_mut().add(record));
            }
            Command::Stored { reply } => {
                let _ = reply.send(self.store.iter().cloned().collect());
            }
            Command::Twin { device_id, reply } => {
                let _ = reply.send(self.hub.twin(&device_id));
            }
            Command::UpdateDesired { device_id, patch, if_version, reply } => {
                let updated = match if_version {
                    Some(expected) => self.hub.update_desired_if(now, &device_id, &patch, expected),
                    None => self.hub.update_desired(now, &device_id, &patch),
                };
                let _ = reply.send(updated);
            }
            Command::InvokeMethod { device_id, name, payload, timeout, reply } => {
                let invoked = self.hub.invoke_method(now, &device_id, &name, payload, timeout);
                let _ = reply.send(invoked);
            }
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Starts a new connection's reader and writer and its stack; the engine hears
    /// of it once its protocol is known (at once, but on port 443).
    fn accept(&mut self, now: Timestamp, stream: TcpStream, listener: Listener) {
        let stream = Arc::new(stream);
        let Ok(stack) = Stack::server(listener, self.tls.clone(), SERVES) else {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        let id = self.next_peer;
        self.next_peer += 1;
        let flow = Arc::new(Flow::default());
        let writer = match self.start_peer(id, &stream, &flow) {
            Ok(writer) => writer,
            Err(_) => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        };
        let address = stream.peer_addr().ok();
        let mut peer = Peer {
            stream,
            writer,
            flow,
            stack,
            connection: None,
            route_deadline: None,
            address,
            listener,
        };
        match peer.stack.route() {
            Some(protocol) => {
                let connection = self.hub.accept(now, protocol);
                peer.connection = Some(connection);
                self.by_connection.insert(connection, id);
            }
            None => {
                // Until the first request head names the protocol no session exists
                // to time the connection out: it gets the time a session would give
                // a CONNECT.
                let deadline = now + self.hub.config().connect_timeout;
                peer.route_deadline = Some(deadline);
                self.unrouted.insert((deadline, id));
            }
        }
        self.peers.insert(id, peer);
    }

    fn start_peer(
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

    /// Bytes from a connection: through its stack, then to the engine.
    fn received(&mut self, now: Timestamp, id: PeerId, bytes: &[u8]) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // A layer's failure is answered on the wire by the stack (an alert, a close
        // frame, an HTTP error) and ends the connection below.
        if let Err(e) = peer.stack.handle_input(bytes) {
            let event = HubServerEvent::TransportError {
                peer: peer.address,
                listener: peer.listener,
                error: e.to_string(),
            };
            let _ = self.events.send(event);
        }
        if peer.connection.is_none() {
            if let Some(protocol) = peer.stack.route() {
                let connection = self.hub.accept(now, protocol);
                peer.connection = Some(connection);
                if let Some(deadline) = peer.route_deadline.take() {
                    self.unrouted.remove(&(deadline, id));
                }
                self.by_connection.insert(connection, id);
            }
        }
        let plain = peer.stack.take_plain();
        let connection = peer.connection;
        flush(peer);
        if let Some(connection) = connection {
            if !plain.is_empty() {
                // A protocol violation is already answered (closed) by the engine
                // and reported as an event.
                let _ = self.hub.handle_input(now, connection, &plain);
            }
        }
        if self.peers.get(&id).is_some_and(|p| p.stack.is_closed()) {
            self.drop_peer(now, id);
        }
    }

    /// The peer closed the connection or it broke.
    fn closed(&mut self, now: Timestamp, id: PeerId) {
        if let Some(peer) = self.peers.get(&id) {
            let _ = peer.stream.shutdown(Shutdown::Both);
            peer.flow.close();
        }
        self.drop_peer(now, id);
    }

    /// Ends a connection after the bytes queued for it, and tells the engine.
    fn drop_peer(&mut self, now: Timestamp, id: PeerId) {
        let Some(peer) = self.peers.remove(&id) else {
            return;
        };
        end(&peer);
        if let Some(deadline) = peer.route_deadline {
            self.unrouted.remove(&(deadline, id));
        }
        if let Some(connection) = peer.connection {
            self.by_connection.remove(&connection);
            self.hub.handle_close(now, connection);
        }
    }

    /// Drains transmits and events until the engine has nothing more to say.
    fn drain(&mut self) {
        loop {
            if let Some((id, transmit)) = self.hub.poll_transmit() {
                self.transmit(id, transmit);
            } else if let Some(event) = self.hub.poll_event() {
                self.event(event);
            } else {
                return;
            }
        }
    }

    fn transmit(&mut self, connection: ConnectionId, transmit: Transmit) {
        let Some(&id) = self.by_connection.get(&connection) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match transmit {
            Transmit::Send(bytes) => {
                // A failure closes the stack; the reader's close then ends it.
                let _ = peer.stack.send(bytes);
                flush(peer);
            }
            // The engine has forgotten the connection; its writer closes the socket
            // after the bytes queued before, and its reader's close is ignored.
            Transmit::Close => {
                peer.stack.close();
                flush(peer);
                if let Some(peer) = self.peers.remove(&id) {
                    end(&peer);
                }
                self.by_connection.remove(&connection);
            }
            Transmit::Connect => {}
        }
    }

    fn event(&mut self, event: HubEvent) {
        match event {
            HubEvent::StoreTelemetry { ticket, record } => {
                self.store.append(record.clone());
                self.hub.telemetry_stored(clock::now(), ticket);
                let _ = self.events.send(HubServerEvent::Stored(record));
            }
            other => {
                let _ = self.events.send(HubServerEvent::Hub(other));
            }
        }
    }
}

/// Ends a connection the driver has forgotten: the writer closes the socket after
/// the bytes queued for it (or gives up on a peer that does not read, after
/// [`WRITE_TIMEOUT`]); the reader, which may be paused until those bytes are
/// written, is released now.
fn end(peer: &Peer) {
    let _ = peer.writer.send(Transmit::Close);
    let _ = peer.stream.shutdown(Shutdown::Read);
    peer.flow.close();
}

/// Hands what a connection's stack has for the socket to its writer.
fn flush(peer: &mut Peer) {
    while let Some(bytes) = peer.stack.poll_output() {
        peer.flow.queued(bytes.len());
        let _ = peer.writer.send(Transmit::Send(bytes));
    }
}
