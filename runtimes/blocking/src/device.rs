//! A device client on a thread: one driver thread owns the [`Device`] machine, its
//! TCP connection and the transport [`Stack`] on it (TLS, WebSocket); the
//! application talks to it over a channel.
//!
//! The driver follows the sans-IO contract (DESIGN.md): after every input or command
//! it drains `poll_transmit` and `poll_event`, then waits on its one channel until
//! the next input or `poll_timeout`. A reader thread per TCP connection forwards
//! bytes and the close to that channel, tagged with the connection's generation, so
//! anything still arriving from a connection the machine has closed is ignored.
//! Transmits are written by the driver itself: a device has one peer, and a blocked
//! write has nothing else to hold up.
//!
//! The machine hears of a connection (`handle_connected`) only once every handshake
//! of its stack is done, so its CONNECT is the first thing it sends on an open
//! transport; a failed handshake reaches it as `handle_close`, and its words reach
//! the application through [`DeviceClient::transport_status`].

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hubwire_core::device::{
    C2dMessage, Device, DeviceConfig, DeviceEvent, DisconnectReason, DispositionError, SendError,
    TelemetryId,
};
use hubwire_core::iothub::{Disposition, LockToken, Message};
use hubwire_core::{Connection, Timestamp, Transmit};
use hubwire_transports::tls::{self, Trust};
use hubwire_transports::{Stack, Transport};
use rand_core::{OsRng, RngCore};

use crate::flow::{Chunk, Flow};
use crate::{clock, dial, reader};

/// Why a telemetry message was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The device refused to queue it; nothing was sent.
    #[error(transparent)]
    Refused(#[from] SendError),
    /// The device stopped (an authentication refusal, or `disconnect`) before the
    /// hub acknowledged the message.
    #[error("the device stopped before the hub acknowledged the message: {0}")]
    Stopped(DisconnectReason),
    /// The hub refused the message and will not store it (over AMQP: `rejected`,
    /// `released` or `modified`, spec file §5.4); it is not sent again.
    #[error("the hub rejected the message: {}", rejection(.condition, .description))]
    Rejected {
        /// The AMQP error condition, or the outcome's name when it carries none.
        condition: String,
        /// The hub's description; empty when it gave none.
        description: String,
    },
    /// No acknowledgement within the time given. The message stays queued; its
    /// acknowledgement (or rejection), if it comes, is reported by
    /// [`DeviceClient::recv_event`].
    #[error("no acknowledgement within {0:?}")]
    TimedOut(Duration),
    /// The client was disconnected before.
    #[error("the device client is disconnected")]
    Closed,
}

/// An outcome's condition and, when given, its description, in words.
fn rejection(condition: &str, description: &str) -> String {
    if description.is_empty() {
        condition.to_owned()
    } else {
        format!("{condition} ({description})")
    }
}

/// Which transport a device uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportChoice {
    /// Always this one.
    Fixed(Transport),
    /// This one, or its WebSocket fallback on 443 when its own port cannot be
    /// reached (blocked or refused): the reason IoT Hub offers WebSockets at all.
    /// Once the fallback works it is kept; the native port is tried again only when
    /// the fallback fails too.
    Auto(Transport),
}

/// How a device reaches its hub: the transport and what it trusts.
#[derive(Clone, Debug)]
pub struct ClientTransport {
    /// The transport.
    pub choice: TransportChoice,
    /// The certificate authorities the TLS transports trust.
    pub trust: Trust,
}

impl ClientTransport {
    /// `transport` trusting the platform's roots only.
    pub fn new(transport: Transport) -> Self {
        ClientTransport {
            choice: TransportChoice::Fixed(transport),
            trust: Trust { platform_roots: true, ca_files: Vec::new() },
        }
    }

    /// `transport` trusting the platform's roots and the CA in `ca_file` (PEM): a
    /// local hub's CA, say.
    pub fn with_ca(transport: Transport, ca_file: impl Into<std::path::PathBuf>) -> Self {
        let mut this = ClientTransport::new(transport);
        this.trust.ca_files.push(ca_file.into());
        this
    }
}

/// What the transport under a device did last, for people: which transport and
/// address it uses and why, and the last transport error (a refused dial, an
/// untrusted certificate, a refused WebSocket upgrade), which the machine itself
/// only sees as a closed transport.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStatus {
    /// The transport of the current (or last) connection.
    pub transport: Option<Transport>,
    /// The address it is connected to.
    pub peer: Option<SocketAddr>,
    /// The TLS version negotiated, when TLS is in the stack.
    pub tls_version: Option<&'static str>,
    /// Why [`TransportChoice::Auto`] chose the WebSocket fallback.
    pub fallback_reason: Option<String>,
    /// The last transport error.
    pub last_error: Option<String>,
}

/// A device connected to its hub by a driver thread. See the module documentation.
///
/// Every method takes `&self`: one thread may send telemetry while another receives
/// C2D messages. Dropping the client disconnects it.
#[derive(Debug)]
pub struct DeviceClient {
    commands: Sender<Input>,
    inbox: Mutex<Inbox>,
    bytes_written: Arc<AtomicU64>,
    status: Arc<Mutex<TransportStatus>>,
    driver: Option<JoinHandle<()>>,
}

/// Events received, and those [`DeviceClient::recv_c2d`] passed over.
#[derive(Debug)]
struct Inbox {
    events: Receiver<DeviceEvent>,
    passed_over: VecDeque<DeviceEvent>,
}

/// What the driver waits for.
#[derive(Debug)]
enum Input {
    /// Bytes from the connection of this generation.
    Bytes { generation: u64, bytes: Chunk },
    /// The connection of this generation closed or broke.
    Closed { generation: u64 },
    /// Boxed: commands are rare, and bytes should not pay for their size.
    Command(Box<Command>),
}

#[derive(Debug)]
enum Command {
    /// Queue a message and answer when the hub acknowledges it.
    Send {
        message: Message,
        ack: Sender<Result<(), TelemetryError>>,
    },
    /// Queue a message and answer with its id at once.
    SendNowait {
        message: Message,
        reply: Sender<Result<TelemetryId, SendError>>,
    },
    Settle {
        lock: LockToken,
        disposition: Disposition,
        reply: Sender<Result<(), DispositionError>>,
    },
    Disconnect {
        reply: Sender<()>,
    },
}

impl DeviceClient {
    /// Starts a device: its driver thread dials the hub at once, and again after
    /// every lost connection, as the machine's backoff says, resolving the host name
    /// anew each time. The address is the connection string's (see
    /// [`dial::target`]). The device speaks its transport's protocol
    /// ([`Transport::protocol`]), whatever `config.protocol` says. The backoff's jitter is seeded from `config.seed` mixed
    /// with the operating system's randomness, so devices started together spread
    /// their retries. Returns without waiting for the connection:
    /// [`DeviceEvent::Connected`] reports it.
    ///
    /// Errors: `InvalidInput` when the configuration cannot make a device (a key that
    /// is not base64, a zero limit) or the trusted CAs cannot be loaded (a missing
    /// CA file); the OS's error when the thread cannot start.
    pub fn connect(config: DeviceConfig, transport: ClientTransport) -> io::Result<DeviceClient> {
        let invalid =
            |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let device_id = config.connection_string.device_id.clone();
        let (host, port) = dial::host(&config.connection_string);
        let (first, fallback) = match transport.choice {
            TransportChoice::Fixed(t) => (t, None),
            TransportChoice::Auto(t) => (t, t.websocket_fallback()),
        };
        let tls = if first.tls() || fallback.is_some() {
            Some(tls::client_config(&transport.trust).map_err(|e| invalid(&e))?)
        } else {
            None
        };
        let mut config = config;
        // The fallback stays within the protocol (`websocket_fallback`), so one
        // machine serves both transports.
        config.protocol = first.protocol();
        // Devices started together (a fleet after a hub outage) must not retry in
        // step: the jitter's seed takes the operating system's randomness.
        config.seed ^= OsRng.next_u64();
        let device = Device::new(clock::now(), config).map_err(|e| invalid(&e))?;
        let (commands, inputs) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let bytes_written = Arc::new(AtomicU64::new(0));
        let status = Arc::new(Mutex::new(TransportStatus::default()));
        let driver = Driver {
            name: format!("hubwire-device-{device_id}"),
            device,
            host,
            port,
            current: first,
            native: first,
            fallback,
            tls,
            status: Arc::clone(&status),
            inputs,
            readers: commands.clone(),
            events: events_tx,
            socket: None,
            open: false,
            generation: 0,
            waiting: BTreeMap::new(),
            bytes_written: Arc::clone(&bytes_written),
        };
        let driver =
            thread::Builder::new().name(driver.name.clone()).spawn(move || driver.run())?;
        Ok(DeviceClient {
            commands,
            inbox: Mutex::new(Inbox { events, passed_over: VecDeque::new() }),
            bytes_written,
            status,
            driver: Some(driver),
        })
    }

    /// Sends a telemetry message and waits until the hub acknowledges it, across
    /// reconnects if need be. Its acknowledgement is this return, not an event.
    ///
    /// Errors: [`TelemetryError::Refused`] when the device would not queue it,
    /// [`TelemetryError::Rejected`] when the hub refuses it,
    /// [`TelemetryError::Stopped`] when the device stops first,
    /// [`TelemetryError::Closed`] after [`disconnect`](Self::disconnect).
    pub fn send_telemetry(&self, message: Message) -> Result<(), TelemetryError> {
        let ack = self.queue_acknowledged(message)?;
        ack.recv().unwrap_or(Err(TelemetryError::Closed))
    }

    /// [`send_telemetry`](Self::send_telemetry), giving up after `timeout` with
    /// [`TelemetryError::TimedOut`].
    pub fn send_telemetry_timeout(
        &self,
        message: Message,
        timeout: Duration,
    ) -> Result<(), TelemetryError> {
        let ack = self.queue_acknowledged(message)?;
        match ack.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(TelemetryError::TimedOut(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(TelemetryError::Closed),
        }
    }

    fn queue_acknowledged(
        &self,
        message: Message,
    ) -> Result<Receiver<Result<(), TelemetryError>>, TelemetryError> {
        let (ack, acknowledged) = mpsc::channel();
        self.command(Command::Send { message, ack }).ok_or(TelemetryError::Closed)?;
        Ok(acknowledged)
    }

    /// Queues a telemetry message and returns at once with its id;
    /// [`DeviceEvent::TelemetryAcknowledged`] (or
    /// [`DeviceEvent::TelemetryRejected`]) from [`recv_event`](Self::recv_event)
    /// reports the hub's answer.
    ///
    /// Errors: [`TelemetryError::Refused`], [`TelemetryError::Closed`].
    pub fn send_telemetry_nowait(&self, message: Message) -> Result<TelemetryId, TelemetryError> {
        let (reply, answer) = mpsc::channel();
        self.command(Command::SendNowait { message, reply }).ok_or(TelemetryError::Closed)?;
        match answer.recv() {
            Ok(result) => Ok(result?),
            Err(_) => Err(TelemetryError::Closed),
        }
    }

    /// The next event, waiting at most `timeout`; `None` when none came or the client
    /// is disconnected and every event was read. Every [`DeviceEvent`] arrives here
    /// except the acknowledgements and rejections
    /// [`send_telemetry`](Self::send_telemetry) returns.
    pub fn recv_event(&self, timeout: Duration) -> Option<DeviceEvent> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(event) = inbox.passed_over.pop_front() {
            return Some(event);
        }
        inbox.events.recv_timeout(timeout).ok()
    }

    /// The next C2D message, waiting at most `timeout`. Other events that arrive
    /// meanwhile are kept, in order, for [`recv_event`](Self::recv_event).
    pub fn recv_c2d(&self, timeout: Duration) -> Option<C2dMessage> {
        let deadline = Instant::now() + timeout;
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = inbox.passed_over.iter().position(|e| matches!(e, DeviceEvent::C2d(_)));
        if let Some(DeviceEvent::C2d(c2d)) = kept.and_then(|i| inbox.passed_over.remove(i)) {
            return Some(c2d);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match inbox.events.recv_timeout(left).ok()? {
                DeviceEvent::C2d(c2d) => return Some(c2d),
                other => inbox.passed_over.push_back(other),
            }
        }
    }

    /// Completes a C2D message: the hub removes it.
    ///
    /// Errors: as [`Device::complete`]; [`DispositionError::UnknownLockToken`] after
    /// [`disconnect`](Self::disconnect), since the lock went with the session.
    pub fn complete(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Complete)
    }

    /// Rejects a C2D message: the hub dead-letters it. Errors: as
    /// [`complete`](Self::complete); MQTT cannot reject
    /// ([`DispositionError::Unsupported`]).
    pub fn reject(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Reject)
    }

    /// Abandons a C2D message: the hub requeues it. Errors: as
    /// [`complete`](Self::complete); MQTT cannot abandon
    /// ([`DispositionError::Unsupported`]).
    pub fn abandon(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Abandon)
    }

    fn settle(&self, lock: &LockToken, disposition: Disposition) -> Result<(), DispositionError> {
        let (reply, answer) = mpsc::channel();
        let command = Command::Settle { lock: *lock, disposition, reply };
        self.command(command)
            .and_then(|()| answer.recv().ok())
            .unwrap_or(Err(DispositionError::UnknownLockToken(*lock)))
    }

    /// Closes the connection cleanly (MQTT DISCONNECT, AMQP close) and stops the
    /// driver; returns once the socket is shut down. Telemetry not yet acknowledged
    /// stays so, and waiting [`send_telemetry`](Self::send_telemetry) calls return
    /// [`TelemetryError::Stopped`]. Calling it again does nothing.
    pub fn disconnect(&self) {
        let (reply, done) = mpsc::channel();
        if self.command(Command::Disconnect { reply }).is_some() {
            let _ = done.recv();
        }
    }

    /// Bytes this device has written to its sockets, over every connection: the
    /// wire cost of its traffic.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// What the transport did last: see [`TransportStatus`].
    pub fn transport_status(&self) -> TransportStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Hands a command to the driver; `None` when the driver has stopped.
    fn command(&self, command: Command) -> Option<()> {
        self.commands.send(Input::Command(Box::new(command))).ok()
    }
}

impl Drop for DeviceClient {
    fn drop(&mut self) {
        self.disconnect();
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

/// The driver thread's state.
struct Driver {
    name: String,
    device: Device,
    /// Where to dial: the host, and the port the connection string names if any.
    host: String,
    port: Option<u16>,
    /// The transport dialled first on the next connect.
    current: Transport,
    /// The transport asked for, and its fallback under [`TransportChoice::Auto`].
    native: Transport,
    fallback: Option<Transport>,
    tls: Option<Arc<rustls::ClientConfig>>,
    status: Arc<Mutex<TransportStatus>>,
    inputs: Receiver<Input>,
    /// A sender for the reader threads.
    readers: Sender<Input>,
    events: Sender<DeviceEvent>,
    /// The open connection and its layers, if any.
    socket: Option<(TcpStream, Stack)>,
    /// The machine was told the connection is open (every handshake done).
    open: bool,
    /// Counts connections (and closes): input tagged with an older generation comes
    /// from a connection the machine has forgotten.
    generation: u64,
    /// Blocking sends waiting for their acknowledgement.
    waiting: BTreeMap<TelemetryId, Sender<Result<(), TelemetryError>>>,
    bytes_written: Arc<AtomicU64>,
}

impl Driver {
    fn run(mut self) {
        loop {
            self.drain();
            let input = match self.device.poll_timeout() {
                Some(deadline) => self.inputs.recv_timeout(clock::until(deadline)),
                None => self.inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = clock::now();
            match input {
                Ok(Input::Bytes { generation, bytes }) if generation == self.generation => {
                    self.received(now, &bytes);
                }
                Ok(Input::Closed { generation }) if generation == self.generation => {
                    self.socket = None;
                    self.open = false;
                    self.device.handle_close(now);
                }
                Ok(Input::Bytes { .. } | Input::Closed { .. }) => {}
                Ok(Input::Command(command)) => {
                    if self.command(*command).is_break() {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Unreachable while `readers` lives; nothing is left to drive.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Checked after every input, not only on a quiet channel, so a steady
            // stream of input cannot starve the timers.
            if self.device.poll_timeout().is_some_and(|t| t <= now) {
                self.device.handle_timeout(now);
            }
        }
    }

    /// Carries out a command; `Break` when the driver is to stop.
    fn command(&mut self, command: Command) -> ControlFlow<()> {
        let now = clock::now();
        match command {
            Command::Send { message, ack } => match self.device.send_telemetry(now, message) {
                Ok(id) => {
                    self.waiting.insert(id, ack);
                }
                Err(e) => {
                    let _ = ack.send(Err(TelemetryError::Refused(e)));
                }
            },
            Command::SendNowait { message, reply } => {
                let _ = reply.send(self.device.send_telemetry(now, message));
            }
            Command::Settle { lock, disposition, reply } => {
                let _ = reply.send(self.device.settle(now, &lock, disposition));
            }
            Command::Disconnect { reply } => {
                self.device.disconnect(now);
                self.drain();
                self.shut_socket();
                let _ = reply.send(());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Drains transmits and events until the machine has nothing more to say.
    fn drain(&mut self) {
        loop {
            if let Some(transmit) = self.device.poll_transmit() {
                self.transmit(transmit);
            } else if let Some(event) = self.device.poll_event() {
                self.event(event);
            } else {
                return;
            }
        }
    }

    /// Bytes from the connection: through the stack, then to the machine once every
    /// handshake is done.
    fn received(&mut self, now: Timestamp, bytes: &[u8]) {
        let Some((_, stack)) = self.socket.as_mut() else {
            return;
        };
        let result = stack.handle_input(bytes);
        let plain = stack.take_plain();
        let newly_open = !self.open && stack.is_open();
        let tls_version = stack.tls_version();
        self.flush();
        if let Err(e) = result {
            self.transport_failed(now, e.to_string());
            return;
        }
        if newly_open {
            self.open = true;
            self.update_status(|s| s.tls_version = tls_version);
            self.device.handle_connected(now);
        }
        if self.open && !plain.is_empty() {
            // A protocol violation is already answered (closed) by the machine and
            // reported as a `Disconnected` event.
            let _ = self.device.handle_input(now, &plain);
        }
        if self.socket.as_ref().is_some_and(|(_, stack)| stack.is_closed()) {
            self.transport_failed(now, String::from("the hub closed the connection"));
        }
    }

    /// The stack gave up: its last words are written; the machine hears of a close.
    fn transport_failed(&mut self, now: Timestamp, error: String) {
        self.update_status(|s| s.last_error = Some(error));
        self.shut_socket();
        self.open = false;
        self.device.handle_close(now);
    }

    fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Connect => {
                self.shut_socket();
                self.open = false;
                match self.open_connection() {
                    Ok(()) => {
                        let now = clock::now();
                        if self.socket.as_ref().is_some_and(|(_, stack)| stack.is_open()) {
                            self.open = true;
                            self.device.handle_connected(now);
                        }
                    }
                    Err(e) => {
                        self.update_status(|s| s.last_error = Some(e));
                        self.device.handle_close(clock::now());
                    }
                }
            }
            Transmit::Send(bytes) => {
                let Some((_, stack)) = self.socket.as_mut() else {
                    return;
                };
                if let Err(e) = stack.send(bytes) {
                    self.update_status(|s| s.last_error = Some(e.to_string()));
                }
                self.flush();
            }
            Transmit::Close => {
                if let Some((_, stack)) = self.socket.as_mut() {
                    stack.close();
                }
                self.flush();
                self.shut_socket();
            }
        }
    }

    /// Writes what the stack has for the socket. A failed write shuts the socket;
    /// the reader sees that and reports the close, which reaches the machine as
    /// `handle_close` in order with any bytes read before it.
    fn flush(&mut self) {
        let Some((socket, stack)) = self.socket.as_mut() else {
            return;
        };
        while let Some(bytes) = stack.poll_output() {
            match socket.write_all(&bytes) {
                Ok(()) => {
                    self.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    let _ = socket.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }

    /// Dials the hub over the current transport (and, under
    /// [`TransportChoice::Auto`], its fallback when that cannot be reached), starts
    /// the connection's reader and sends the stack's first bytes.
    ///
    /// Errors: what went wrong, in words.
    fn open_connection(&mut self) -> Result<(), String> {
        let first = self.current;
        let (stream, transport) = match self.dial(first) {
            Ok(stream) => (stream, first),
            Err(first_error) => {
                let other = if first == self.native { self.fallback } else { Some(self.native) };
                let Some(other) = other else {
                    return Err(first_error);
                };
                match self.dial(other) {
                    Ok(stream) => {
                        self.current = other;
                        let reason = (other != self.native).then(|| first_error.clone());
                        self.update_status(|s| s.fallback_reason = reason);
                        (stream, other)
                    }
                    Err(other_error) => return Err(format!("{first_error}; {other_error}")),
                }
            }
        };
        let port = self.port_for(transport);
        let mut ws_key = [0u8; 16];
        OsRng.fill_bytes(&mut ws_key);
        let stack = Stack::client(transport, &self.host, port, self.tls.clone(), ws_key)
            .map_err(|e| e.to_string())?;
        let peer = stream.peer_addr().ok();
        self.update_status(|s| {
            s.transport = Some(transport);
            s.peer = peer;
            s.tls_version = None;
        });
        self.start_reader(&stream).map_err(|e| format!("cannot start a reader thread: {e}"))?;
        self.socket = Some((stream, stack));
        self.flush();
        Ok(())
    }

    /// The port to dial for `transport`: the connection string's is for the
    /// transport asked for; the fallback goes to its own port.
    fn port_for(&self, transport: Transport) -> u16 {
        match self.port {
            Some(port) if transport == self.native => port,
            _ => transport.default_port(),
        }
    }

    /// Opens a TCP connection for `transport`.
    ///
    /// Errors: the dial's error, with the transport and address.
    fn dial(&self, transport: Transport) -> Result<TcpStream, String> {
        let port = self.port_for(transport);
        dial::dial(&self.host, port)
            .map_err(|e| format!("{transport} to {}:{port}: {e}", self.host))
    }

    /// Starts the reader of a new connection.
    fn start_reader(&self, stream: &TcpStream) -> io::Result<()> {
        let generation = self.generation;
        // The reader ends when the socket is shut down; the flow only paces it.
        let spawned = reader::spawn(
            format!("{}-read", self.name),
            Arc::new(stream.try_clone()?),
            Arc::new(Flow::default()),
            self.readers.clone(),
            move |bytes| Input::Bytes { generation, bytes },
            Input::Closed { generation },
        );
        if spawned.is_err() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        spawned
    }

    /// Shuts the current connection down (its bytes already written leave first)
    /// and starts a new generation, so its reader's last messages are ignored.
    fn shut_socket(&mut self) {
        if let Some((socket, _)) = self.socket.take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        self.generation += 1;
    }

    fn update_status(&self, change: impl FnOnce(&mut TransportStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn event(&mut self, event: DeviceEvent) {
        match &event {
            DeviceEvent::TelemetryAcknowledged(id) => {
                if let Some(waiter) = self.waiting.remove(id) {
                    if waiter.send(Ok(())).is_ok() {
                        return;
                    }
                    // The caller gave up waiting: the acknowledgement becomes an
                    // event.
                }
            }
            DeviceEvent::TelemetryRejected { id, condition, description } => {
                if let Some(waiter) = self.waiting.remove(id) {
                    let rejected = TelemetryError::Rejected {
                        condition: condition.clone(),
                        description: description.clone(),
                    };
                    if waiter.send(Err(rejected)).is_ok() {
                        return;
                    }
                }
            }
            DeviceEvent::Disconnected { reason, reconnect_at: None } => {
                for (_, waiter) in std::mem::take(&mut self.waiting) {
                    let _ = waiter.send(Err(TelemetryError::Stopped(reason.clone())));
                }
            }
            _ => {}
        }
        let _ = self.events.send(event);
    }
}
