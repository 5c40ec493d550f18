//! The hub as a runtime drives it: the [`Hub`] engine, every connection's transport
//! [`Stack`] (TLS, WebSocket) and the D2C store, behind socket-shaped verbs.
//!
//! A runtime accepts a socket and calls [`ServedHub::accept`], feeds what it reads
//! to [`ServedHub::handle_input`], writes what [`ServedHub::poll_output`] gives and
//! reports a peer's close with [`ServedHub::handle_close`]. Like the engine it is
//! sans-IO: it never touches a socket, a thread or a clock, so the blocking, mio,
//! smol and async-std hubs are one machine under four schedulers.
//!
//! On port 443 the protocol is known only after the first request head; until then
//! the connection is the stack's alone, and the engine hears of it (`accept`) when
//! its stack has routed it. Storing is I/O (DESIGN.md, "Storage is I/O"): every
//! [`HubEvent::StoreTelemetry`] of one drain is appended to the [`Store`] in one
//! transaction, and only then is [`Hub::telemetry_stored`] called, which
//! acknowledges the devices; a C2D message is in the store before its sender hears
//! `Ok`, and its settlement, twin changes and new devices follow as they happen.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hubwire_core::hub::{
    AuthRequest, C2dRequest, D2cRecord, DeviceRecord, Hub, HubError, HubEvent, MethodInvocation,
    RegistryError, StoreTicket,
};
use hubwire_core::iothub::ErrorCode;
use hubwire_core::iothub::{Message, Twin, TwinPatch};
use hubwire_core::{ConnectionId, Endpoint, Protocol, Timestamp, Transmit};
use hubwire_store::Store;
use hubwire_transports::{Listener, Stack};

use crate::transcript::{Entry, Recorder};

/// The protocols a hub serves: port 443 routes to each (spec file §1: WebSocket
/// subprotocols `mqtt` and `AMQPWSB10`; any other request is IoT Hub's REST API,
/// §6).
const SERVES: &[Protocol] = &[Protocol::Mqtt, Protocol::Amqp, Protocol::Http];

/// Names one accepted socket. Ids are never reused.
pub type PeerId = u64;

/// What to do with one peer's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerOutput {
    /// Write these bytes, after every byte given before.
    Bytes(Bytes),
    /// Close the socket once the bytes given before are written. The hub has
    /// forgotten the peer: anything still read from it is ignored, and
    /// [`ServedHub::handle_close`] for it is not needed.
    ///
    /// The close goes in stages (RFC 9112 §9.6, "Tear-down"): the bytes given
    /// before (a TLS connection's close_notify is among them), then a shutdown of
    /// the socket's write side (TCP FIN), then reading and discarding what the peer
    /// still sends until it closes too, fails, or [`LINGER`] passes, and only then
    /// the socket is closed. Closed at once, a socket with unread input makes the
    /// kernel send a TCP RST, which can destroy the answer before the peer reads
    /// it (a 413 to a body still being sent).
    Close,
}

/// How long a closed connection goes on reading and discarding what its peer
/// still sends after this side's FIN ([`PeerOutput::Close`]): time for the peer
/// to read the answer and close its side. A peer that sends longer is cut off.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// What the hub tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubServerEvent {
    /// A D2C message was stored (and its device acknowledged).
    Stored(D2cRecord),
    /// Any other hub event: `Connected`, `Refused`, `Disconnected`, `C2dSettled`,
    /// `ReportedUpdated`, `MethodResult`, `AuthenticationRequested`.
    /// [`HubEvent::StoreTelemetry`] appears here only from a hub that forwards
    /// its telemetry ([`ServedHub::forward_telemetry`]); otherwise it becomes
    /// [`HubServerEvent::Stored`].
    Hub(HubEvent),
    /// The application did not read events fast enough: this many were dropped
    /// before this one ([`EVENT_BACKLOG`] wait at most). What they reported
    /// happened all the same (stored messages are in the store).
    Dropped {
        /// How many.
        count: u64,
    },
    /// The store refused a write: what was being stored, and why. D2C messages not
    /// stored are refused with 500001 ServerError as each protocol can (MQTT: the
    /// connection closes, having no negative PUBACK; AMQP: the delivery is rejected;
    /// HTTP: 500), and their devices send them again; a C2D message, twin or device
    /// not stored is lost at the next restart.
    StoreFailed {
        /// What was being stored, in words.
        what: String,
        /// The store's error, in words.
        error: String,
    },
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

/// How many events wait for the application at most: beyond it they are dropped
/// and counted ([`HubServerEvent::Dropped`]). A stalled reader (nobody reads the
/// hub's stdout) then costs bounded memory and never holds up the devices.
pub const EVENT_BACKLOG: usize = 64 * 1024;

/// What a bounded queue of events did with one.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// It was queued.
    Taken,
    /// The queue is full.
    Full,
    /// Nobody reads the queue any more.
    Closed,
}

/// A bounded queue of events towards the application.
pub trait EventQueue {
    /// Queues `event` if there is room, without waiting.
    fn offer(&self, event: HubServerEvent) -> Offer;
}

impl EventQueue for std::sync::mpsc::SyncSender<HubServerEvent> {
    fn offer(&self, event: HubServerEvent) -> Offer {
        match self.try_send(event) {
            Ok(()) => Offer::Taken,
            Err(std::sync::mpsc::TrySendError::Full(_)) => Offer::Full,
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Offer::Closed,
        }
    }
}

/// Where a hub's driver puts its events: a bounded queue, events beyond it dropped
/// and counted, the count reported once there is room again.
#[derive(Debug)]
pub struct EventSink<Q> {
    queue: Q,
    dropped: u64,
}

impl<Q: EventQueue> EventSink<Q> {
    /// Events go to `queue`.
    pub fn new(queue: Q) -> EventSink<Q> {
        EventSink { queue, dropped: 0 }
    }

    /// Queues `event`, or drops and counts it when the queue is full.
    pub fn send(&mut self, event: HubServerEvent) {
        if self.dropped > 0 {
            match self.queue.offer(HubServerEvent::Dropped { count: self.dropped }) {
                Offer::Taken => self.dropped = 0,
                Offer::Full => {
                    self.dropped += 1;
                    return;
                }
                Offer::Closed => return,
            }
        }
        if self.queue.offer(event) == Offer::Full {
            self.dropped += 1;
        }
    }
}

/// One accepted socket, as the hub holds it.
#[derive(Debug)]
struct Peer {
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

/// The hub engine, its connections' stacks and its store. See the module
/// documentation.
#[derive(Debug)]
pub struct ServedHub {
    hub: Hub,
    store: Box<dyn Store>,
    tls: Option<Arc<rustls::ServerConfig>>,
    peers: BTreeMap<PeerId, Peer>,
    by_connection: BTreeMap<ConnectionId, PeerId>,
    /// Connections whose protocol is not known yet, by deadline.
    unrouted: BTreeSet<(Timestamp, PeerId)>,
    next_peer: PeerId,
    output: VecDeque<(PeerId, PeerOutput)>,
    /// The engine's events not yet settled (stored, acknowledged, passed on).
    heard: Vec<HubEvent>,
    /// The time of the last input, for the acknowledgements settled after it.
    now: Timestamp,
    events: VecDeque<HubServerEvent>,
    /// D2C messages are passed on, not stored ([`ServedHub::forward_telemetry`]).
    forwarding: bool,
    /// Where every engine call and output is written ([`ServedHub::record`]).
    recorder: Option<Recorder>,
    /// What connections may speak ([`ServedHub::serve_only`]).
    serves: &'static [Protocol],
}

impl ServedHub {
    /// Serves `hub`, restored from `store` already, keeping what it must in `store`;
    /// `tls` is the server certificate's configuration, needed by connections
    /// accepted on TLS listeners.
    pub fn new(
        hub: Hub,
        store: Box<dyn Store>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> ServedHub {
        ServedHub {
            hub,
            store,
            tls,
            peers: BTreeMap::new(),
            by_connection: BTreeMap::new(),
            unrouted: BTreeSet::new(),
            next_peer: 0,
            output: VecDeque::new(),
            heard: Vec::new(),
            now: Timestamp::EPOCH,
            events: VecDeque::new(),
            forwarding: false,
            recorder: None,
            serves: SERVES,
        }
    }

    /// From now on connections may speak only `protocols`: a WebSocket upgrade to
    /// another's subprotocol is answered 400, and a request on port 443 that is no
    /// upgrade is refused unless HTTP is among them. A field gateway, which takes
    /// devices over MQTT and HTTPS only, serves so.
    pub fn serve_only(&mut self, protocols: &'static [Protocol]) {
        self.serves = protocols;
    }

    /// From now on every call on the engine and everything it sends is written to
    /// `recorder` (see [`crate::transcript`]); a write error ends the recording with
    /// a [`HubServerEvent::StoreFailed`].
    pub fn record(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    /// Writes what `entry` makes, if recording.
    fn note(&mut self, now: Timestamp, entry: impl FnOnce() -> Entry) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        if let Err(e) = recorder.write(now, &entry()) {
            self.recorder = None;
            let what = String::from("the transcript (recording stopped)");
            self.events.push_back(HubServerEvent::StoreFailed { what, error: e.to_string() });
        }
    }

    /// From now on D2C messages are not stored: each is passed on as
    /// [`HubServerEvent::Hub`] with [`HubEvent::StoreTelemetry`], and its device is
    /// acknowledged when the application calls [`ServedHub::telemetry_stored`]. A
    /// field gateway forwards them upstream so.
    pub fn forward_telemetry(&mut self) {
        self.forwarding = true;
    }

    /// The message of `ticket`, passed on by a forwarding hub, is kept where it
    /// went: acknowledge it to its device (as [`Hub::telemetry_stored`]).
    pub fn telemetry_stored(&mut self, now: Timestamp, ticket: StoreTicket) {
        self.note(now, || Entry::Stored(ticket.0));
        self.hub.telemetry_stored(now, ticket);
        self.drain(now);
    }

    /// The message of `ticket`, passed on by a forwarding hub, was not kept where
    /// it went: its device is told as its protocol can (as
    /// [`Hub::telemetry_refused`]), with IoT Hub's `code`.
    pub fn telemetry_refused(&mut self, now: Timestamp, ticket: StoreTicket, code: ErrorCode) {
        self.note(now, || Entry::Refused(ticket.0, code.code));
        self.hub.telemetry_refused(now, ticket, code);
        self.drain(now);
    }

    /// Answers [`HubEvent::AuthenticationRequested`] (as [`Hub::authenticated`]);
    /// returns whether a connection still waited for it.
    pub fn authenticated(
        &mut self,
        now: Timestamp,
        request: AuthRequest,
        result: Result<(), ErrorCode>,
    ) -> bool {
        self.note(now, || Entry::Unrecorded(String::from("authenticated")));
        let waited = self.hub.authenticated(now, request, result);
        self.drain(now);
        waited
    }

    /// Answers [`HubEvent::C2dRequested`] (as [`Hub::c2d_fetched`]) once what was
    /// fetched is queued; returns whether a poll still waited for it.
    pub fn c2d_fetched(&mut self, now: Timestamp, request: C2dRequest) -> bool {
        self.note(now, || Entry::Unrecorded(String::from("c2d-fetched")));
        let waited = self.hub.c2d_fetched(now, request);
        self.drain(now);
        waited
    }

    /// The engine, to read.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A socket was accepted on `listener` from `address`. Returns its id, or `None`
    /// when `listener` needs TLS and the hub has no certificate (close the socket).
    pub fn accept(
        &mut self,
        now: Timestamp,
        listener: Listener,
        address: Option<SocketAddr>,
    ) -> Option<PeerId> {
        let stack = Stack::server(listener, self.tls.clone(), self.serves).ok()?;
        let id = self.next_peer;
        self.next_peer += 1;
        let mut peer = Peer { stack, connection: None, route_deadline: None, address, listener };
        if peer.stack.route().is_none() {
            // Until the first request head names the protocol no session exists to
            // time the connection out: it gets the time a session would give a
            // CONNECT.
            let deadline = now + self.hub.config().connect_timeout;
            peer.route_deadline = Some(deadline);
            self.unrouted.insert((deadline, id));
        }
        self.peers.insert(id, peer);
        self.route(now, id);
        self.drain(now);
        Some(id)
    }

    /// Bytes read from a peer's socket: through its stack, then to the engine.
    /// Unknown (forgotten) peers are ignored.
    pub fn handle_input(&mut self, now: Timestamp, id: PeerId, bytes: &[u8]) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // A layer's failure is answered on the wire by the stack (an alert, a close
        // frame, an HTTP error) and ends the connection below.
        if let Err(e) = peer.stack.handle_input(bytes) {
            self.events.push_back(HubServerEvent::TransportError {
                peer: peer.address,
                listener: peer.listener,
                error: e.to_string(),
            });
        }
        self.route(now, id);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let plain = peer.stack.take_plain();
        let connection = peer.connection;
        flush(&mut self.output, id, &mut peer.stack);
        if let Some(connection) = connection {
            if !plain.is_empty() {
                self.note(now, || Entry::In(connection, plain.clone()));
                // A protocol violation is already answered (closed) by the engine and
                // reported as an event.
                let _ = self.hub.handle_input(now, connection, &plain);
            }
        }
        if self.peers.get(&id).is_some_and(|p| p.stack.is_closed()) {
            self.forget(now, id);
        }
        self.drain(now);
    }

    /// A peer closed its socket or it broke. Unknown peers are ignored.
    pub fn handle_close(&mut self, now: Timestamp, id: PeerId) {
        if let Some(peer) = self.peers.remove(&id) {
            self.ended(now, id, &peer);
        }
        self.drain(now);
    }

    /// When to call [`ServedHub::handle_timeout`] next: the engine's timers and the
    /// deadline of a connection still waiting for its first request head. Read
    /// again after every call.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let route = self.unrouted.first().map(|&(deadline, _)| deadline);
        hubwire_core::time::earliest(self.hub.poll_timeout(), route)
    }

    /// A deadline from [`ServedHub::poll_timeout`] has passed (calling early is
    /// harmless).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.note(now, || Entry::Timeout);
            self.hub.handle_timeout(now);
        }
        while let Some(&(deadline, id)) = self.unrouted.first() {
            if deadline > now {
                break;
            }
            self.unrouted.pop_first();
            // Its stack answers 408 if a request head was on its way.
            if let Some(late) = self.peers.get_mut(&id) {
                late.stack.close();
                flush(&mut self.output, id, &mut late.stack);
            }
            self.forget(now, id);
        }
        self.drain(now);
    }

    /// The next thing to do with a peer's socket, in order per peer. Poll after
    /// every call (or after a turn of several) until `None`. The D2C messages
    /// received since the last poll are stored first, in one write, and their
    /// acknowledgements come out with the rest.
    pub fn poll_output(&mut self) -> Option<(PeerId, PeerOutput)> {
        if self.output.is_empty() {
            self.settle();
        }
        self.output.pop_front()
    }

    /// The next event for the application. Poll after [`ServedHub::poll_output`]
    /// until `None`.
    pub fn poll_event(&mut self) -> Option<HubServerEvent> {
        self.settle();
        self.events.pop_front()
    }

    /// Queues a C2D message for `device_id` (the service side's "send"); a connected
    /// device receives it at once. Returns its sequence number in the device's queue.
    ///
    /// Errors: as [`Hub::send_c2d`]: an unknown device (404001), a full queue
    /// (403004), a message too large (413001).
    pub fn send_c2d(
        &mut self,
        now: Timestamp,
        device_id: &str,
        message: Message,
    ) -> Result<u64, HubError> {
        self.note(now, || Entry::C2d(device_id.to_owned(), Box::new(message.clone())));
        let sent = self.hub.send_c2d(now, device_id, message);
        if let Ok(sequence_number) = sent {
            // Kept before its sender hears `Ok`; no settlement can come before this
            // command returns.
            if let Some(queued) = self.hub.queued_c2d(device_id, sequence_number) {
                let put = self.store.put_c2d(device_id, &queued);
                self.report(put, || format!("C2D message {sequence_number} for {device_id}"));
            }
        }
        self.drain(now);
        sent
    }

    /// `device_id`'s twin (the service side's "read twin").
    ///
    /// Errors: as [`Hub::twin`]: an unknown device (404001).
    pub fn twin(&mut self, device_id: &str) -> Result<Twin, HubError> {
        self.hub.twin(device_id)
    }

    /// Patches `device_id`'s desired properties; with `if_version`, only while they
    /// are at that version. Returns the desired version.
    ///
    /// Errors: as [`Hub::update_desired`] and [`Hub::update_desired_if`].
    pub fn update_desired(
        &mut self,
        now: Timestamp,
        device_id: &str,
        patch: &TwinPatch,
        if_version: Option<u64>,
    ) -> Result<u64, HubError> {
        self.note(now, || Entry::Unrecorded(String::from("update-desired")));
        let updated = match if_version {
            Some(expected) => self.hub.update_desired_if(now, device_id, patch, expected),
            None => self.hub.update_desired(now, device_id, patch),
        };
        if updated.is_ok() {
            self.keep_twin(device_id);
        }
        self.drain(now);
        updated
    }

    /// Invokes a direct method; [`HubEvent::MethodResult`] with the returned id
    /// reports its end, within `timeout`.
    ///
    /// Errors: as [`Hub::invoke_method`].
    pub fn invoke_method(
        &mut self,
        now: Timestamp,
        device_id: &str,
        name: &str,
        payload: Bytes,
        timeout: std::time::Duration,
    ) -> Result<MethodInvocation, HubError> {
        self.note(now, || Entry::Unrecorded(String::from("invoke-method")));
        let invoked = self.hub.invoke_method(now, device_id, name, payload, timeout);
        self.drain(now);
        invoked
    }

    /// Registers a device while the hub runs.
    ///
    /// Errors: as [`hubwire_core::hub::Registry::add`].
    pub fn add_device(&mut self, record: DeviceRecord) -> Result<(), RegistryError> {
        let put = self.store.put_devices(std::slice::from_ref(&record));
        self.report(put, || format!("device {}", record.device_id));
        let now = self.now;
        self.note(now, || Entry::Unrecorded(String::from("add-device")));
        self.hub.registry_mut().add(record)
    }

    /// Every stored D2C message, in arrival order; empty, with a
    /// [`HubServerEvent::StoreFailed`], when the store cannot be read.
    pub fn stored(&mut self) -> Vec<D2cRecord> {
        let records = self.store.d2c();
        self.report(records, || String::from("(reading) the D2C log")).unwrap_or_default()
    }

    /// Keeps `device_id`'s twin as it is now.
    fn keep_twin(&mut self, device_id: &str) {
        if let Ok(twin) = self.hub.twin(device_id) {
            let put = self.store.put_twin(device_id, &twin);
            self.report(put, || format!("the twin of {device_id}"));
        }
    }

    /// Reports a store failure as an event; passes a success on.
    fn report<T>(
        &mut self,
        result: Result<T, hubwire_store::StoreError>,
        what: impl FnOnce() -> String,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                let failed = HubServerEvent::StoreFailed { what: what(), error: e.to_string() };
                self.events.push_back(failed);
                None
            }
        }
    }

    /// Hands a routed connection to the engine.
    fn route(&mut self, now: Timestamp, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.connection.is_some() {
            return;
        }
        let Some(protocol) = peer.stack.route() else {
            return;
        };
        let connection = self.hub.accept(now, protocol);
        peer.connection = Some(connection);
        if let Some(deadline) = peer.route_deadline.take() {
            self.unrouted.remove(&(deadline, id));
        }
        self.by_connection.insert(connection, id);
        self.note(now, || Entry::Accept(connection, protocol));
    }

    /// Ends a connection after the bytes queued for it, and tells the engine.
    fn forget(&mut self, now: Timestamp, id: PeerId) {
        if let Some(peer) = self.peers.remove(&id) {
            self.output.push_back((id, PeerOutput::Close));
            self.ended(now, id, &peer);
        }
    }

    /// A peer is gone from `peers`: its deadline and its engine connection go too.
    fn ended(&mut self, now: Timestamp, id: PeerId, peer: &Peer) {
        if let Some(deadline) = peer.route_deadline {
            self.unrouted.remove(&(deadline, id));
        }
        if let Some(connection) = peer.connection {
            self.by_connection.remove(&connection);
            self.note(now, || Entry::Close(connection));
            self.hub.handle_close(now, connection);
        }
    }

    /// Takes the engine's transmits and events. Events wait in `heard` until the
    /// runtime reads the output ([`ServedHub::settle`]), so the D2C messages of
    /// every input since are stored in one transaction: one durable write per turn
    /// of the runtime's loop, however many connections sent.
    fn drain(&mut self, now: Timestamp) {
        self.now = now;
        loop {
            if let Some((connection, transmit)) = self.hub.poll_transmit() {
                self.transmit(connection, transmit);
            } else if let Some(event) = self.hub.poll_event() {
                self.heard.push(event);
            } else {
                return;
            }
        }
    }

    /// Stores and acknowledges what the engine has asked to keep since the last
    /// call, until it has nothing more to say.
    fn settle(&mut self) {
        while !self.heard.is_empty() {
            let mut heard = std::mem::take(&mut self.heard);
            let now = self.now;
            self.settle_heard(now, &mut heard);
            self.drain(now);
        }
    }

    /// Stores what the engine's events ask to keep, acknowledges the D2C messages
    /// stored, and passes every event on in order.
    fn settle_heard(&mut self, now: Timestamp, heard: &mut Vec<HubEvent>) {
        let records: Vec<D2cRecord> = heard
            .iter()
            .filter_map(|event| match event {
                HubEvent::StoreTelemetry { record, .. } => Some(record.clone()),
                _ => None,
            })
            .collect();
        let stored = records.is_empty() || self.forwarding || {
            let appended = self.store.append_d2c(&records);
            let count = records.len();
            self.report(appended, || format!("{count} D2C message(s)")).is_some()
        };
        for event in heard.drain(..) {
            match event {
                HubEvent::StoreTelemetry { ticket, record } if self.forwarding => {
                    let event = HubEvent::StoreTelemetry { ticket, record };
                    self.events.push_back(HubServerEvent::Hub(event));
                }
                HubEvent::StoreTelemetry { ticket, record } => {
                    if stored {
                        self.note(now, || Entry::Stored(ticket.0));
                        self.hub.telemetry_stored(now, ticket);
                        self.events.push_back(HubServerEvent::Stored(record));
                    } else {
                        // Told as its protocol can, the device sends it again.
                        self.note(now, || Entry::Refused(ticket.0, ErrorCode::SERVER_ERROR.code));
                        self.hub.telemetry_refused(now, ticket, ErrorCode::SERVER_ERROR);
                    }
                }
                HubEvent::C2dSettled(settled) => {
                    let kept = self.store.settle_c2d(&settled);
                    let (device_id, sequence) = (&settled.device_id, settled.sequence_number);
                    self.report(kept, || {
                        format!("the settlement of C2D {sequence} for {device_id}")
                    });
                    self.events.push_back(HubServerEvent::Hub(HubEvent::C2dSettled(settled)));
                }
                HubEvent::ReportedUpdated { device_id, version, patch } => {
                    self.keep_twin(&device_id);
                    let event = HubEvent::ReportedUpdated { device_id, version, patch };
                    self.events.push_back(HubServerEvent::Hub(event));
                }
                other => self.events.push_back(HubServerEvent::Hub(other)),
            }
        }
    }

    fn transmit(&mut self, connection: ConnectionId, transmit: Transmit) {
        match &transmit {
            Transmit::Send(bytes) => self.note(self.now, || Entry::Out(connection, bytes.clone())),
            Transmit::Close => self.note(self.now, || Entry::Closed(connection)),
            Transmit::Connect => {}
        }
        let Some(&id) = self.by_connection.get(&connection) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match transmit {
            Transmit::Send(bytes) => {
                // A failure closes the stack, which is noticed on the next input.
                let _ = peer.stack.send(bytes);
                flush(&mut self.output, id, &mut peer.stack);
            }
            // The engine has forgotten the connection already.
            Transmit::Close => {
                peer.stack.close();
                flush(&mut self.output, id, &mut peer.stack);
                self.peers.remove(&id);
                self.by_connection.remove(&connection);
                self.output.push_back((id, PeerOutput::Close));
            }
            Transmit::Connect => {}
        }
    }
}

/// Queues what a peer's stack has for its socket.
fn flush(output: &mut VecDeque<(PeerId, PeerOutput)>, id: PeerId, stack: &mut Stack) {
    while let Some(bytes) = stack.poll_output() {
        output.push_back((id, PeerOutput::Bytes(bytes)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use hubwire_core::hub::{DeviceRecord, HubConfig, HubEvent, QueuedC2d, Settled};
    use hubwire_core::iothub::SasToken;
    use hubwire_core::mqtt::{Connect, Packet};
    use hubwire_store::StoreError;

    use super::*;

    fn event(n: u64) -> HubServerEvent {
        HubServerEvent::Hub(HubEvent::MethodResult {
            invocation: hubwire_core::hub::MethodInvocation(n),
            device_id: String::from("d"),
            name: String::from("m"),
            outcome: hubwire_core::hub::MethodOutcome::TimedOut,
        })
    }

    /// A store that keeps everything but D2C messages.
    #[derive(Debug)]
    struct NoRoomForTelemetry(hubwire_store::MemoryStore);

    impl Store for NoRoomForTelemetry {
        fn load(&mut self) -> Result<hubwire_store::Snapshot, StoreError> {
            self.0.load()
        }
        fn append_d2c(&mut self, _: &[D2cRecord]) -> Result<(), StoreError> {
            Err(StoreError::Format { found: 0, expected: 1 })
        }
        fn d2c(&self) -> Result<Vec<D2cRecord>, StoreError> {
            self.0.d2c()
        }
        fn put_devices(&mut self, records: &[DeviceRecord]) -> Result<(), StoreError> {
            self.0.put_devices(records)
        }
        fn remove_device(&mut self, device_id: &str) -> Result<(), StoreError> {
            self.0.remove_device(device_id)
        }
        fn put_twin(&mut self, device_id: &str, twin: &Twin) -> Result<(), StoreError> {
            self.0.put_twin(device_id, twin)
        }
        fn put_c2d(&mut self, device_id: &str, queued: &QueuedC2d) -> Result<(), StoreError> {
            self.0.put_c2d(device_id, queued)
        }
        fn settle_c2d(&mut self, settled: &Settled) -> Result<(), StoreError> {
            self.0.settle_c2d(settled)
        }
    }

    #[test]
    fn telemetry_the_store_cannot_keep_is_refused_not_left_unanswered() {
        // K1 of the spec file.
        const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let now = Timestamp::from_unix_secs(1_700_000_000);
        let mut hub = Hub::new(HubConfig::default(), 7);
        let record = DeviceRecord {
            device_id: String::from("d"),
            primary_key: String::from(KEY),
            secondary_key: String::new(),
            enabled: true,
        };
        if let Err(e) = hub.registry_mut().add(record) {
            panic!("{e}");
        }
        let store = Box::new(NoRoomForTelemetry(hubwire_store::MemoryStore::new()));
        let mut served = ServedHub::new(hub, store, None);
        let Some(peer) = served.accept(now, Listener::Tcp(Protocol::Mqtt), None) else {
            panic!("plain TCP needs no certificate");
        };
        let expiry = now + hubwire_core::time::Duration::from_secs(3600);
        let token = match SasToken::sign("localhost/devices/d", KEY, expiry, None) {
            Ok(token) => token.to_string(),
            Err(e) => panic!("{e}"),
        };
        let connect = Packet::Connect(Connect {
            protocol_name: "MQTT".into(),
            protocol_level: 4,
            clean_session: true,
            keep_alive: 60,
            client_id: "d".into(),
            will: None,
            username: Some("localhost/d/?api-version=2021-04-12".into()),
            password: Some(Bytes::from(token.into_bytes())),
        });
        let mut bytes = bytes::BytesMut::new();
        if let Err(e) = connect.encode(&mut bytes) {
            panic!("{e}");
        }
        served.handle_input(now, peer, &bytes);
        // CONNACK, accepted.
        let connack = served.poll_output();
        assert_eq!(connack, Some((peer, PeerOutput::Bytes(Bytes::from_static(&[0x20, 2, 0, 0])))));
        // PUBLISH QoS 1 to devices/d/messages/events/, packet id 1, payload "x".
        let mut publish = vec![0x32, 31, 0, 26];
        publish.extend_from_slice(b"devices/d/messages/events/");
        publish.extend_from_slice(&[0, 1, b'x']);
        served.handle_input(now, peer, &publish);
        // No PUBACK: MQTT 3.1.1 has no negative one, so the connection closes and the
        // device sends the message again after reconnecting.
        assert_eq!(served.poll_output(), Some((peer, PeerOutput::Close)));
        let events: Vec<_> = std::iter::from_fn(|| served.poll_event()).collect();
        assert!(
            events.iter().any(|e| matches!(e, HubServerEvent::StoreFailed { .. })),
            "{events:?}"
        );
        assert!(!events.iter().any(|e| matches!(e, HubServerEvent::Stored(_))), "{events:?}");
    }

    #[test]
    fn events_beyond_the_backlog_are_counted_and_the_count_comes_first_when_there_is_room() {
        let (queue, application) = mpsc::sync_channel(2);
        let mut sink = EventSink::new(queue);
        for n in 0..5 {
            sink.send(event(n));
        }
        assert_eq!(application.try_recv().ok(), Some(event(0)));
        assert_eq!(application.try_recv().ok(), Some(event(1)));
        assert!(application.try_recv().is_err(), "three were dropped, not queued");
        sink.send(event(5));
        assert_eq!(application.try_recv().ok(), Some(HubServerEvent::Dropped { count: 3 }));
        assert_eq!(application.try_recv().ok(), Some(event(5)));
    }
}
