//! A device's machine as a runtime drives it: the sans-IO [`Connection`] (one
//! [`hubwire_core::device::Device`], or many devices over one AMQP connection) with
//! the transport [`Stack`] of its current connection and its dialling plan.
//!
//! The machine asks for a connection (`Transmit::Connect`); `Dialed` turns that into
//! an [`Action::Dial`] of the transport to try, the runtime opens the socket and
//! reports how it went ([`Dialed::dial_succeeded`], [`Dialed::dial_failed`]), and
//! under [`TransportChoice::Auto`] a failed dial is followed by a dial of the
//! fallback. The machine hears of a connection (`handle_connected`) only once every
//! handshake of its stack is done, so its first frame is the first thing it sends
//! on an open transport; a failed handshake reaches it as `handle_close`, and its
//! words reach the application through [`TransportStatus`].

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig, Multiplexed};
use hubwire_core::device::{Device, DeviceConfig, DeviceEvent, ProtocolError};
use hubwire_core::{Connection, Protocol, Timestamp, Transmit};
use hubwire_transports::tls::{self, TlsError, Trust};
use hubwire_transports::{Stack, Transport};
use rand_core::{OsRng, RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{clock, dial};

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

impl TransportChoice {
    /// The transport dialled first: the one chosen, before any fallback.
    pub fn first(self) -> Transport {
        match self {
            TransportChoice::Fixed(t) | TransportChoice::Auto(t) => t,
        }
    }
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

/// The TLS configuration `transport` needs, if any of its transports (the fallback
/// included) has TLS.
///
/// Errors: the trusted CAs cannot be loaded (a missing or unreadable CA file).
pub fn client_tls(
    transport: &ClientTransport,
) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    let needs_tls = match transport.choice {
        TransportChoice::Fixed(t) => t.tls(),
        TransportChoice::Auto(t) => t.tls() || t.websocket_fallback().is_some(),
    };
    if needs_tls { tls::client_config(&transport.trust).map(Some) } else { Ok(None) }
}

/// What the runtime does with the device's socket, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Close the current socket, if any, once its bytes are written; open a TCP
    /// connection to `host`:`port` and report the outcome with
    /// [`Dialed::dial_succeeded`] or [`Dialed::dial_failed`]. Input still arriving
    /// from the old socket must be dropped.
    Dial {
        /// A DNS name or an IP literal (without brackets).
        host: String,
        /// The TCP port.
        port: u16,
        /// The transport it is for, for messages.
        transport: Transport,
    },
    /// Write these bytes to the socket, after every byte given before.
    Write(Bytes),
    /// Close the socket once the bytes given before are written. Input still
    /// arriving from it must be dropped.
    Shutdown,
}

/// A device's machine, its stack and its dialling plan. See the module
/// documentation.
#[derive(Debug)]
pub struct Dialed<M> {
    machine: M,
    /// Where to dial: the host, and the port asked for if any.
    host: String,
    port: Option<u16>,
    /// The transport dialled first on the next connect.
    current: Transport,
    /// The transport asked for, and its fallback under [`TransportChoice::Auto`].
    native: Transport,
    fallback: Option<Transport>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The transport being dialled, and the error of the attempt before it when
    /// this is the second.
    dialing: Option<(Transport, Option<String>)>,
    /// The open socket's layers, if any.
    stack: Option<Stack>,
    /// The machine was told the connection is open (every handshake done).
    open: bool,
    status: TransportStatus,
    actions: VecDeque<Action>,
    /// WebSocket nonces (RFC 6455 §4.1).
    rng: Xoshiro256PlusPlus,
}

impl<M: Connection> Dialed<M> {
    /// Drives `machine`, which dials `host` (and `port`, when given, for the
    /// transport asked for) over `choice`. `tls` is [`client_tls`]'s configuration;
    /// `seed` seeds the WebSocket nonces (give it the operating system's randomness).
    pub fn new(
        machine: M,
        (host, port): (String, Option<u16>),
        choice: TransportChoice,
        tls: Option<Arc<rustls::ClientConfig>>,
        seed: u64,
    ) -> Dialed<M> {
        let (native, fallback) = match choice {
            TransportChoice::Fixed(t) => (t, None),
            TransportChoice::Auto(t) => (t, t.websocket_fallback()),
        };
        Dialed {
            machine,
            host,
            port,
            current: native,
            native,
            fallback,
            tls,
            dialing: None,
            stack: None,
            open: false,
            status: TransportStatus::default(),
            actions: VecDeque::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// The machine, for commands; poll [`Dialed::poll_action`] and
    /// [`Dialed::poll_event`] after each.
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The machine, to read.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// What the transport did last.
    pub fn status(&self) -> &TransportStatus {
        &self.status
    }

    /// A socket is open or being dialled.
    pub fn has_socket(&self) -> bool {
        self.stack.is_some() || self.dialing.is_some()
    }

    /// The next thing to do with the socket. Poll after every call and command until
    /// `None`, then poll [`Dialed::poll_event`].
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
            // While a dial is out, the machine's next transmits wait for its outcome.
            if self.dialing.is_some() {
                return None;
            }
            match self.machine.poll_transmit()? {
                Transmit::Connect => {
                    self.drop_socket();
                    self.dial(self.current, None);
                }
                Transmit::Send(bytes) => {
                    if let Some(stack) = self.stack.as_mut() {
                        if let Err(e) = stack.send(bytes) {
                            self.status.last_error = Some(e.to_string());
                        }
                        self.flush();
                    }
                }
                Transmit::Close => {
                    if let Some(stack) = self.stack.as_mut() {
                        stack.close();
                    }
                    self.flush();
                    self.drop_socket();
                }
            }
        }
    }

    /// The next event for the application. Poll after [`Dialed::poll_action`]
    /// returned `None`.
    pub fn poll_event(&mut self) -> Option<M::Event> {
        self.machine.poll_event()
    }

    /// The socket of the last [`Action::Dial`] is open, to `peer`.
    pub fn dial_succeeded(&mut self, now: Timestamp, peer: Option<SocketAddr>) {
        let Some((transport, first_error)) = self.dialing.take() else {
            return;
        };
        let port = self.port_for(transport);
        let mut ws_key = [0u8; 16];
        self.rng.fill_bytes(&mut ws_key);
        let stack = match Stack::client(transport, &self.host, port, self.tls.clone(), ws_key) {
            Ok(stack) => stack,
            Err(e) => {
                self.actions.push_back(Action::Shutdown);
                self.status.last_error = Some(e.to_string());
                self.machine.handle_close(now);
                return;
            }
        };
        self.current = transport;
        if first_error.is_some() {
            // The other transport worked: the fallback says why it is used, the
            // native transport needs no reason.
            self.status.fallback_reason = first_error.filter(|_| transport != self.native);
        }
        self.status.transport = Some(transport);
        self.status.peer = peer;
        self.status.tls_version = None;
        self.stack = Some(stack);
        self.flush();
        if self.stack.as_ref().is_some_and(Stack::is_open) {
            self.open = true;
            self.machine.handle_connected(now);
        }
    }

    /// The socket of the last [`Action::Dial`] could not be opened; `error` says why.
    pub fn dial_failed(&mut self, now: Timestamp, error: String) {
        let Some((transport, first_error)) = self.dialing.take() else {
            return;
        };
        let error = format!("{transport} to {}:{}: {error}", self.host, self.port_for(transport));
        let other = if transport == self.native { self.fallback } else { Some(self.native) };
        match (first_error, other) {
            // The first attempt failed; the other transport is tried before the
            // machine hears anything.
            (None, Some(other)) => self.dial(other, Some(error)),
            (first_error, _) => {
                let words = match first_error {
                    Some(first) => format!("{first}; {error}"),
                    None => error,
                };
                self.status.last_error = Some(words);
                self.machine.handle_close(now);
            }
        }
    }

    /// Bytes read from the socket: through the stack, then to the machine once
    /// every handshake is done.
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) {
        let Some(stack) = self.stack.as_mut() else {
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
            self.status.tls_version = tls_version;
            self.machine.handle_connected(now);
        }
        if self.open && !plain.is_empty() {
            // A protocol violation is already answered (closed) by the machine and
            // reported as an event.
            let _ = self.machine.handle_input(now, &plain);
        }
        if self.stack.as_ref().is_some_and(Stack::is_closed) {
            self.transport_failed(now, String::from("the hub closed the connection"));
        }
    }

    /// The socket closed or broke (a failed write included).
    pub fn handle_close(&mut self, now: Timestamp) {
        if self.stack.take().is_some() {
            self.open = false;
            self.machine.handle_close(now);
        }
    }

    /// When to call [`Dialed::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.machine.poll_timeout()
    }

    /// A deadline from [`Dialed::poll_timeout`] has passed (calling early is
    /// harmless).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
        }
    }

    /// Asks the runtime to dial `transport`.
    fn dial(&mut self, transport: Transport, first_error: Option<String>) {
        let port = self.port_for(transport);
        self.dialing = Some((transport, first_error));
        self.actions.push_back(Action::Dial { host: self.host.clone(), port, transport });
    }

    /// The stack gave up: its last words are written; the machine hears of a close.
    fn transport_failed(&mut self, now: Timestamp, error: String) {
        self.status.last_error = Some(error);
        self.drop_socket();
        self.machine.handle_close(now);
    }

    /// Forgets the current socket (the runtime closes it after its bytes).
    fn drop_socket(&mut self) {
        if self.stack.take().is_some() {
            self.actions.push_back(Action::Shutdown);
        }
        self.open = false;
    }

    /// Queues what the stack has for the socket.
    fn flush(&mut self) {
        if let Some(stack) = self.stack.as_mut() {
            while let Some(bytes) = stack.poll_output() {
                self.actions.push_back(Action::Write(bytes));
            }
        }
    }

    /// The port to dial for `transport`: the one asked for is for the transport
    /// asked for; the fallback goes to its own port.
    fn port_for(&self, transport: Transport) -> u16 {
        match self.port {
            Some(port) if transport == self.native => port,
            _ => transport.default_port(),
        }
    }
}

/// The machines the clients drive, as they start: made from their configuration,
/// with the dialling plan of the transport asked for.
impl<M: Connection> Dialed<M> {
    /// `machine` with its dialling plan: it dials `host` (and `port`, when given,
    /// for the transport asked for) over `transport`, seeding the WebSocket nonces
    /// from the operating system's randomness.
    ///
    /// Errors: `InvalidInput` when the trusted CAs cannot be loaded (a missing CA
    /// file).
    fn over(
        machine: M,
        host: (String, Option<u16>),
        transport: &ClientTransport,
    ) -> io::Result<Dialed<M>> {
        let tls = client_tls(transport).map_err(|e| invalid(&e))?;
        Ok(Dialed::new(machine, host, transport.choice, tls, OsRng.next_u64()))
    }
}

impl Dialed<Device> {
    /// The device `config` describes, dialling its connection string's host (see
    /// [`dial::target`]) over `transport`. The device speaks its transport's
    /// protocol ([`Transport::protocol`]), whatever `config.protocol` says. The
    /// backoff's jitter is seeded from `config.seed` mixed with the operating
    /// system's randomness.
    ///
    /// Errors: `InvalidInput` when the configuration cannot make a device (a key
    /// that is not base64, a zero limit) or the trusted CAs cannot be loaded (a
    /// missing CA file).
    pub(crate) fn device(
        mut config: DeviceConfig,
        transport: &ClientTransport,
    ) -> io::Result<Dialed<Device>> {
        let host = dial::host(&config.connection_string);
        // The fallback stays within the protocol (`websocket_fallback`), so one
        // machine serves both transports.
        config.protocol = transport.choice.first().protocol();
        // Devices started together (a fleet after a hub outage) must not retry in
        // step: the jitter's seed takes the operating system's randomness.
        config.seed ^= OsRng.next_u64();
        let device = Device::new(clock::now(), config).map_err(|e| invalid(&e))?;
        Dialed::over(device, host, transport)
    }
}

impl Dialed<Mux> {
    /// An AMQP connection to `config.host_name` (a host, or `host:port`) over
    /// `transport`, with no device yet. The backoff's jitter is seeded from
    /// `config.seed` mixed with the operating system's randomness.
    ///
    /// Errors: `InvalidInput` when `transport` is not AMQP or the trusted CAs
    /// cannot be loaded.
    pub(crate) fn multiplexed(
        mut config: MultiplexConfig,
        transport: &ClientTransport,
    ) -> io::Result<Dialed<Mux>> {
        check_amqp(transport)?;
        let host = dial::split_port(&config.host_name);
        // Connections started together must not retry in step.
        config.seed ^= OsRng.next_u64();
        Dialed::over(Mux(Multiplexed::new(config)), host, transport)
    }
}

/// An `InvalidInput` error in `e`'s words: a configuration that cannot start.
fn invalid(e: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

/// Refuses a transport that is not AMQP: only AMQP carries several devices on one
/// connection (spec file §5.10).
///
/// Errors: `InvalidInput`, naming the transport and the AMQP ones.
pub(crate) fn check_amqp(transport: &ClientTransport) -> io::Result<()> {
    let asked = transport.choice.first();
    if asked.protocol() == Protocol::Amqp {
        return Ok(());
    }
    Err(invalid(&format_args!(
        "{asked} speaks {}: only AMQP carries several devices on one connection \
         (amqp, amqp-ws, amqp-tcp)",
        asked.protocol()
    )))
}

/// [`Multiplexed`] as the driver drives it: a [`Connection`] whose events name
/// their device.
#[derive(Debug)]
pub(crate) struct Mux(pub(crate) Multiplexed);

impl Connection for Mux {
    type Event = (DeviceKey, DeviceEvent);
    type Error = ProtocolError;

    fn handle_connected(&mut self, now: Timestamp) {
        self.0.handle_connected(now);
    }

    fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ProtocolError> {
        self.0.handle_input(now, bytes)
    }

    fn handle_close(&mut self, now: Timestamp) {
        self.0.handle_close(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.0.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<(DeviceKey, DeviceEvent)> {
        self.0.poll_event()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.0.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.0.handle_timeout(now);
    }
}
