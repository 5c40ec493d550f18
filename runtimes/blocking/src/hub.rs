//! A local IoT Hub on threads: one driver thread owns the [`Hub`] engine and the
//! in-memory D2C store; an accept thread, and a reader and a writer thread per
//! connection, move bytes between the sockets and the driver's channel.
//!
//! The driver follows the sans-IO contract (DESIGN.md): after every input or command
//! it drains `poll_transmit` and `poll_event`, then waits on its one channel until
//! the next input or `poll_timeout`. Storing is I/O (DESIGN.md, "Storage is I/O"):
//! on [`HubEvent::StoreTelemetry`] the driver appends the record to its [`D2cLog`]
//! and only then calls [`Hub::telemetry_stored`], which acknowledges the device.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hubwire_core::hub::{
    D2cLog, D2cRecord, DeviceRecord, Hub, HubConfig, HubError, HubEvent, RegistryError,
};
use hubwire_core::iothub::Message;
use hubwire_core::{ConnectionId, Endpoint, Protocol, Timestamp, Transmit};

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
}

/// A running hub. See the module documentation.
///
/// Every method takes `&self`, so one thread may send C2D messages while another
/// reads events. Dropping the server shuts it down.
#[derive(Debug)]
pub struct HubServer {
    local_addr: SocketAddr,
    inputs: Sender<Input>,
    events: Mutex<Receiver<HubServerEvent>>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    driver: Option<JoinHandle<()>>,
}

/// What the driver waits for.
#[derive(Debug)]
enum Input {
    Accepted(TcpStream),
    Bytes(ConnectionId, Chunk),
    Closed(ConnectionId),
    /// Boxed: commands are rare, and bytes should not pay for their size.
    Command(Box<Command>),
}

#[derive(Debug)]
enum Command {
    SendC2d { device_id: String, message: Message, reply: Sender<Result<u64, HubError>> },
    AddDevice { record: DeviceRecord, reply: Sender<Result<(), RegistryError>> },
    Stored { reply: Sender<Vec<D2cRecord>> },
    Shutdown,
}

impl HubServer {
    /// Registers `devices`, binds MQTT (plain TCP) on `mqtt_addr` (port 0 picks a
    /// free port: see [`local_addr`](Self::local_addr)) and starts serving.
    ///
    /// Errors: `InvalidInput` when a device record is refused by the registry (its
    /// [`RegistryError`] inside); the OS's error when the address cannot be bound
    /// or a thread cannot start.
    pub fn start(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        mqtt_addr: SocketAddr,
    ) -> io::Result<HubServer> {
        // Lock tokens need no secrecy over MQTT (they are packet ids there); the
        // seed only keeps two runs from repeating each other.
        let seed = RandomState::new().hash_one(clock::now());
        let mut hub = Hub::new(config, seed);
        for record in devices {
            hub.registry_mut()
                .add(record)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        let listener = TcpListener::bind(mqtt_addr)?;
        let local_addr = listener.local_addr()?;
        let (inputs_tx, inputs) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let driver = Driver {
            hub,
            store: D2cLog::new(),
            inputs,
            readers: inputs_tx.clone(),
            events: events_tx,
            connections: BTreeMap::new(),
        };
        let driver =
            thread::Builder::new().name(String::from("hubwire-hub")).spawn(move || driver.run())?;
        let stopping = Arc::new(AtomicBool::new(false));
        let mut server = HubServer {
            local_addr,
            inputs: inputs_tx,
            events: Mutex::new(events),
            stopping: Arc::clone(&stopping),
            acceptor: None,
            driver: Some(driver),
        };
        let accepted = server.inputs.clone();
        // On failure `server` drops here, stopping the driver.
        server.acceptor = Some(
            thread::Builder::new()
                .name(String::from("hubwire-hub-accept"))
                .spawn(move || accept(&listener, &accepted, &stopping))?,
        );
        Ok(server)
    }

    /// The address the MQTT listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues a C2D message for `device_id` (the service side's "send"); a connected
    /// device receives it at once. Returns its sequence number in the device's queue.
    ///
    /// Errors: as [`Hub::send_c2d`]: an unknown device (404001), a full queue
    /// (403004), a message too large (413001).
    pub fn send_c2d(&self, device_id: &str, message: Message) -> Result<u64, HubError> {
        self.ask(|reply| Command::SendC2d { device_id: String::from(device_id), message, reply })
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
        if let Some(acceptor) = self.acceptor.take() {
            // `accept` blocks; a connection of our own wakes it to see the flag.
            let mut wake = self.local_addr;
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
fn accept(listener: &TcpListener, driver: &Sender<Input>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if driver.send(Input::Accepted(stream)).is_err() {
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
    /// To shut it down at once when the hub stops.
    stream: TcpStream,
    writer: Sender<Transmit>,
    flow: Arc<Flow>,
}

/// The driver thread's state.
struct Driver {
    hub: Hub,
    store: D2cLog,
    inputs: Receiver<Input>,
    /// A sender for the reader threads.
    readers: Sender<Input>,
    events: Sender<HubServerEvent>,
    connections: BTreeMap<ConnectionId, Peer>,
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
                Ok(Input::Accepted(stream)) => self.accept(now, stream),
                Ok(Input::Bytes(id, bytes)) => {
                    if self.connections.contains_key(&id) {
                        // A protocol violation is already answered (closed) by the
                        // engine and reported as an event.
                        let _ = self.hub.handle_input(now, id, &bytes);
                    }
                }
                Ok(Input::Closed(id)) => {
                    if let Some(peer) = self.connections.remove(&id) {
                        let _ = peer.stream.shutdown(Shutdown::Both);
                        peer.flow.close();
                        self.hub.handle_close(now, id);
                    }
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
            if self.hub.poll_timeout().is_some_and(|t| t <= now) {
                self.hub.handle_timeout(now);
            }
        }
        for peer in self.connections.values() {
            let _ = peer.stream.shutdown(Shutdown::Both);
            peer.flow.close();
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
            Command::Shutdown => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// Registers a new connection with the engine and starts its reader and writer.
    fn accept(&mut self, now: Timestamp, stream: TcpStream) {
        let id = self.hub.accept(now, Protocol::Mqtt);
        let flow = Arc::new(Flow::default());
        match self.start_peer(id, &stream, &flow) {
            Ok(writer) => {
                self.connections.insert(id, Peer { stream, writer, flow });
            }
            Err(_) => {
                let _ = stream.shutdown(Shutdown::Both);
                self.hub.handle_close(now, id);
            }
        }
    }

    fn start_peer(
        &self,
        id: ConnectionId,
        stream: &TcpStream,
        flow: &Arc<Flow>,
    ) -> io::Result<Sender<Transmit>> {
        stream.set_nodelay(true)?;
        reader::spawn(
            format!("hubwire-hub-{}-read", id.0),
            stream.try_clone()?,
            Arc::clone(flow),
            self.readers.clone(),
            move |chunk| Input::Bytes(id, chunk),
            Input::Closed(id),
        )?;
        writer::spawn(format!("hubwire-hub-{}-write", id.0), stream.try_clone()?, Arc::clone(flow))
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

    fn transmit(&mut self, id: ConnectionId, transmit: Transmit) {
        match transmit {
            Transmit::Send(ref bytes) => {
                if let Some(peer) = self.connections.get(&id) {
                    peer.flow.queued(bytes.len());
                    let _ = peer.writer.send(transmit);
                }
            }
            // The engine has forgotten the connection; its writer closes the socket
            // after the bytes queued before, and its reader's close is ignored.
            Transmit::Close => {
                if let Some(peer) = self.connections.remove(&id) {
                    let _ = peer.writer.send(Transmit::Close);
                }
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
