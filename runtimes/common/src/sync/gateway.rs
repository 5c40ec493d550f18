//! The field gateway (DESIGN.md): downstream devices connect to a local hub over
//! MQTT or HTTP, each with its own SAS token; the gateway carries them all upstream over
//! one AMQP connection ([`Multiplexed`], spec file §5.10), each device putting its
//! own token on `$cbs` (§5.2), so the upstream hub, not the gateway, judges it.
//!
//! Two drivers of the runtime's [`Scheduler`] do the work: the downstream hub's
//! (a [`ServedHub`](crate::ServedHub) with [`Authentication::Delegated`] that forwards its telemetry
//! instead of storing it) and the upstream connection's, whose machine is the
//! [`Multiplexed`] connection with the gateway's routing beside it. A thread hands
//! the downstream hub's events to the upstream driver as commands; the upstream
//! machine answers the downstream hub with commands to its driver.
//!
//! Who acknowledges what, when:
//!
//! | downstream | upstream |
//! |---|---|
//! | CONNECT held (no CONNACK) | the device is added with its token as it came: put-token |
//! | CONNACK 0 | its links are attached (`Connected`) |
//! | CONNACK 5, closed | its put-token refused (401, 404, …) |
//! | telemetry PUBACK | only once the upstream hub accepted the message (`accepted`) |
//! | no PUBACK, the connection closed (MQTT has no negative PUBACK) | the message rejected, or its device stopped (token refused) |
//! | C2D message queued for the device | the upstream hub delivered it; its lock is kept |
//! | the device completes (PUBACK) | `accepted` with that lock |
//! | the message expires, is purged or dead-lettered downstream | `rejected` |
//! | abandoned downstream (HTTP): the message leaves the downstream queue | `released` with that lock: the hub counts the delivery, dead-letters it past its maximum, and sends it again |
//! | (the upstream link was lost: its locks are void) | the redelivery replaces the lock, or takes the settlement made meanwhile |
//! | HTTP request held (each carries its token) | the first adds the device with its token: put-token; later ones with the same token are answered at once |
//! | HTTP send answered 204 | only once the upstream hub accepted every message of it |
//! | HTTP poll finding the downstream queue empty: held | credit 1 with drain on the device's C2D link (AMQP 1.0 §2.6.7) |
//! | that poll answered 200 with the message, or 204 | the hub sent its next message (locked now, for this poll), or drained the credit |
//!
//! A device that polls over HTTP gets no standing credit upstream: the gateway
//! takes a C2D message from the hub only while a poll waits for it, so no upstream
//! lock waits in the gateway for a device that may poll again in 25 minutes.
//!
//! Nothing is acknowledged downstream that the upstream hub has not stored, so a
//! lost upstream connection loses no acknowledged message: [`Multiplexed`] keeps
//! every unacknowledged message across reconnects and sends it again (at least
//! once), and the downstream devices wait for their PUBACKs meanwhile.
//!
//! A downstream device that disconnects keeps its upstream device until its
//! telemetry still in flight is answered; then the upstream device is removed, so
//! C2D messages wait in the hub (whose locks would otherwise expire in the gateway
//! while the device is away). The upstream locks of messages already queued
//! downstream are then void: the hub delivers them again when the device is back,
//! and the gateway knows each redelivery by its content and gives it the new lock
//! (or the settlement made downstream meanwhile) instead of queueing it twice. A
//! device that connects again with the same token while its upstream device is
//! there is accepted as soon as that is connected; with another token (a renewed
//! one) the upstream device is removed and added again with it (a put-token cannot
//! be renewed on behalf of a device that holds no key). Its telemetry not yet
//! acknowledged upstream is then dropped upstream; it was not acknowledged
//! downstream either, so its device sends it again. HTTP binds no connection to a
//! device: an HTTP device's upstream half stays for [`HTTP_LINGER`] after its last
//! request.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hubwire_core::amqp::device::{C2dCredit, DeviceKey, MultiplexConfig, Multiplexed};
use hubwire_core::amqp::performative::condition as amqp_condition;
use hubwire_core::device::{
    DeviceConfig, DeviceEvent, DisconnectReason, ProtocolError, SendError, TelemetryId,
};
use hubwire_core::hub::{
    AuthRequest, Authentication, C2dRequest, HubConfig, HubEvent, Outcome, Settled, StoreTicket,
};
use hubwire_core::iothub::{
    Authentication as Credential, ConnectionString, Disposition, ErrorCode, Identity, LockToken,
    Message,
};
use hubwire_core::time::{Duration as CoreDuration, earliest};
use hubwire_core::{Connection, ConnectionId, Protocol, Timestamp, Transmit};
use hubwire_store::MemoryStore;
use hubwire_transports::Listener;
use rand_core::{OsRng, RngCore};

use crate::listen::{self, BindError, Listen};
use crate::sync::{Client, ClientDriver, HubCommand, HubDriver, Scheduler};
use crate::{ClientTransport, Dialed, HubServerEvent, TransportStatus};
use crate::{client_tls, dial};

/// How a gateway listens downstream and reaches its hub upstream.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The upstream connection: `host_name` is the hub's address (`host:port` to
    /// dial another port than the transport's), sent in AMQP `open` too; its
    /// backoff paces reconnects after a lost connection.
    pub upstream: MultiplexConfig,
    /// The upstream transport: `amqp` or `amqp-tcp` (or `amqp-ws`), and the CAs
    /// trusted.
    pub upstream_transport: ClientTransport,
    /// The downstream listeners: MQTT over TLS or plain TCP, and IoT Hub's port
    /// 443 (HTTPS, MQTT over WebSocket).
    pub listen: Vec<Listen>,
    /// The downstream server certificate's configuration, required by TLS
    /// listeners.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The downstream hub's settings; its `authentication` is always
    /// [`Authentication::Delegated`].
    pub downstream: HubConfig,
}

/// What the gateway tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// An event of the downstream hub: a device connected or was refused,
    /// telemetry to forward, a C2D settlement, …
    Downstream(HubServerEvent),
    /// An event of a device's upstream half.
    Upstream {
        /// The device.
        device_id: String,
        /// What happened upstream.
        event: DeviceEvent,
    },
}

/// What devices speak to a gateway: an AMQP device has no need of one, as AMQP
/// itself carries many devices on one connection.
const DOWNSTREAM: &[Protocol] = &[Protocol::Mqtt, Protocol::Http];

/// A running field gateway. See the module documentation.
///
/// Dropping it shuts it down.
#[derive(Debug)]
pub struct GatewayServer<S: Scheduler> {
    listeners: Vec<Listen>,
    bind_errors: Vec<BindError>,
    hub: Arc<Mutex<S::Hub>>,
    upstream: Arc<S::Client<HubServerEvent>>,
    forwarder: Option<JoinHandle<()>>,
    events: Mutex<Receiver<GatewayEvent>>,
}

impl<S: Scheduler> GatewayServer<S> {
    /// Binds the downstream listeners and starts both drivers; the upstream
    /// connection is dialled when the first device connects downstream.
    ///
    /// Errors: `InvalidInput` when the upstream transport is not AMQP, its CAs
    /// cannot be loaded, or a TLS listener has no `tls`; the OS's error when no
    /// listener can be bound or a driver cannot start.
    pub fn start(config: GatewayConfig) -> io::Result<Self> {
        let GatewayConfig { mut upstream, upstream_transport, listen, tls, mut downstream } =
            config;
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        crate::dialed::check_amqp(&upstream_transport)?;
        let amqp = |l: &&Listen| {
            matches!(l.listener, Listener::Tls(Protocol::Amqp) | Listener::Tcp(Protocol::Amqp))
        };
        if let Some(amqp) = listen.iter().find(amqp) {
            return Err(invalid(format!(
                "{}: a field gateway takes its devices over MQTT and HTTPS; AMQP is its \
                 upstream",
                listen::listener_name(amqp.listener)
            )));
        }
        let client_tls = client_tls(&upstream_transport).map_err(|e| invalid(e.to_string()))?;
        downstream.authentication = Authentication::Delegated;
        // The hub counts deliveries and decides when a message is dead: an abandoned
        // message goes back to it, not into the downstream queue.
        downstream.c2d.keep_abandoned = false;
        let store = Box::new(MemoryStore::new());
        let listen::Started { mut hub, listeners, bind_errors } =
            listen::start(downstream, [], &listen, tls, store, listen::Engine::default())?;
        hub.forward_telemetry();
        hub.serve_only(DOWNSTREAM);
        let bound = listeners.iter().map(|(l, _)| *l).collect();
        // The gateway's own thread reads these as they come; beyond the backlog
        // (a stalled gateway thread) they would be dropped and counted.
        let (hub_events_tx, hub_events) = mpsc::sync_channel(crate::EVENT_BACKLOG);
        let hub = Arc::new(Mutex::new(S::start_hub(hub, listeners, hub_events_tx)?));

        let host = dial::split_port(&upstream.host_name);
        let name = format!("hubwire-gateway-{}", upstream.host_name);
        // Gateways started together must not retry in step.
        upstream.seed ^= OsRng.next_u64();
        let machine = Upstream::new(Multiplexed::new(upstream), Arc::clone(&hub));
        let dialed =
            Dialed::new(machine, host, upstream_transport.choice, client_tls, OsRng.next_u64());
        let (events_tx, events) = mpsc::channel();
        let client = UpstreamClient::<S::Hub> { events: events_tx, hub: PhantomData };
        let upstream = Arc::new(S::start_client(name, dialed, client)?);
        let forward = Arc::clone(&upstream);
        let forwarder = thread::Builder::new()
            .name(String::from("hubwire-gateway-forward"))
            .spawn(move || {
                // Ends when the hub's driver stops (its sender drops).
                for event in hub_events {
                    if forward.command(event).is_none() {
                        return;
                    }
                }
            })?;
        Ok(GatewayServer {
            listeners: bound,
            bind_errors,
            hub,
            upstream,
            forwarder: Some(forwarder),
            events: Mutex::new(events),
        })
    }

    /// The downstream listeners bound, with their real addresses.
    pub fn listeners(&self) -> &[Listen] {
        &self.listeners
    }

    /// The address of the first downstream listener of this kind, if one is bound.
    pub fn local_addr(&self, listener: Listener) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.listener == listener).map(|l| l.address)
    }

    /// The downstream listeners asked for that could not be bound.
    pub fn bind_errors(&self) -> &[BindError] {
        &self.bind_errors
    }

    /// The next event, waiting at most `timeout`; `None` when none came. Events
    /// queue in memory until read.
    pub fn recv_event(&self, timeout: Duration) -> Option<GatewayEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.recv_timeout(timeout).ok()
    }

    /// What the upstream transport did last.
    pub fn upstream_status(&self) -> TransportStatus {
        self.upstream.transport_status()
    }

    /// Stops accepting downstream, closes every downstream connection, closes the
    /// upstream connection and waits for the drivers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner).shutdown();
        self.upstream.stop();
        if let Some(forwarder) = self.forwarder.take() {
            let _ = forwarder.join();
        }
    }
}

impl<S: Scheduler> Drop for GatewayServer<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Downstream settlements kept for a redelivery, at most: past it the oldest is
/// dropped, and its redelivery is delivered downstream again.
const MAX_ORPHANS: usize = 1024;

/// How long an HTTP device's upstream half outlives its last request. HTTP has no
/// connection to end it, and each request carries the token again: a device that
/// sends and polls in bursts is put on `$cbs` once per burst, not once per request.
const HTTP_LINGER: CoreDuration = CoreDuration::from_secs(300);

/// A C2D message from upstream, queued downstream.
#[derive(Debug)]
struct Forwarded {
    /// Its device's upstream half.
    key: DeviceKey,
    /// The upstream lock that settles it.
    lock: LockToken,
    /// As it came from upstream, to know its redelivery.
    message: Message,
}

/// A downstream settlement whose upstream lock was void.
#[derive(Debug)]
struct Orphan {
    device_id: String,
    message: Message,
    disposition: Disposition,
}

/// A downstream request for a token to be judged.
#[derive(Clone, Copy, Debug)]
struct Judged {
    request: AuthRequest,
    /// The connection that asks.
    connection: ConnectionId,
    /// HTTP devices poll for C2D; MQTT devices are pushed to.
    protocol: Protocol,
}

/// One downstream device's upstream half.
#[derive(Debug)]
struct Device {
    key: DeviceKey,
    /// The token it was added with.
    token: String,
    /// Its links are attached.
    connected: bool,
    /// Downstream connections waiting for it to connect.
    waiting: Vec<AuthRequest>,
    /// The downstream connection that speaks for it: the last to ask for its
    /// authentication, until it ends.
    downstream: Option<ConnectionId>,
    /// That connection was accepted (CONNACK 0).
    online: bool,
    /// How its C2D link upstream gets credit: standing for a device the hub
    /// pushes to (MQTT), on fetch for one that polls (HTTP).
    credit: C2dCredit,
    /// Polls waiting for the upstream fetch (an HTTP device may poll on several
    /// connections at once).
    polls: Vec<C2dRequest>,
    /// Its last HTTP request: a polling device's upstream half stays for
    /// [`HTTP_LINGER`] after it.
    last_request: Timestamp,
}

/// The upstream machine: the [`Multiplexed`] connection and the gateway's routes
/// between it and the downstream hub, which it commands through `hub`.
#[derive(Debug)]
struct Upstream<H> {
    mux: Multiplexed,
    hub: Arc<Mutex<H>>,
    /// The time of the last input, for the commands an event leads to.
    now: Timestamp,
    devices: BTreeMap<String, Device>,
    ids: BTreeMap<DeviceKey, String>,
    /// Downstream telemetry forwarded and not yet acknowledged upstream.
    tickets: BTreeMap<(DeviceKey, TelemetryId), StoreTicket>,
    /// C2D messages queued downstream (device, sequence number), each with the
    /// upstream lock that settles it.
    c2d: BTreeMap<(String, u64), Forwarded>,
    /// Downstream settlements whose upstream lock was lost with its link, oldest
    /// first: they settle the message's redelivery.
    orphans: VecDeque<Orphan>,
    reports: VecDeque<GatewayEvent>,
    /// When the next HTTP device's linger ends.
    linger_ends: Option<Timestamp>,
}

impl<H: HubDriver> Upstream<H> {
    fn new(mux: Multiplexed, hub: Arc<Mutex<H>>) -> Self {
        Upstream {
            mux,
            hub,
            now: Timestamp::EPOCH,
            devices: BTreeMap::new(),
            ids: BTreeMap::new(),
            tickets: BTreeMap::new(),
            c2d: BTreeMap::new(),
            orphans: VecDeque::new(),
            reports: VecDeque::new(),
            linger_ends: None,
        }
    }

    fn tell_hub(&self, command: HubCommand) {
        let _ = self.hub.lock().unwrap_or_else(PoisonError::into_inner).command(command);
    }

    /// An event of the downstream hub.
    fn on_downstream(&mut self, now: Timestamp, event: HubServerEvent) {
        self.now = now;
        match &event {
            HubServerEvent::Hub(HubEvent::AuthenticationRequested {
                request,
                identity,
                token,
                host_name,
                connection,
                protocol,
            }) => {
                let request =
                    Judged { request: *request, connection: *connection, protocol: *protocol };
                self.authenticate(now, request, identity, token, host_name);
            }
            HubServerEvent::Hub(HubEvent::C2dRequested { request, device_id, .. }) => {
                self.fetch(now, *request, device_id);
            }
            HubServerEvent::Hub(HubEvent::Connected { connection, identity, .. }) => {
                if let Some(device) = self.devices.get_mut(&identity.device_id) {
                    device.online |= device.downstream == Some(*connection);
                }
            }
            // The connection ended, or was refused before it was accepted (a
            // refusal of an accepted connection is followed by its end, if it ends).
            HubServerEvent::Hub(
                HubEvent::Disconnected { connection, identity, .. }
                | HubEvent::Refused { connection, identity: Some(identity), .. },
            ) => {
                let ended = matches!(event, HubServerEvent::Hub(HubEvent::Disconnected { .. }));
                let device_id = &identity.device_id;
                if let Some(device) = self.devices.get_mut(device_id) {
                    if device.downstream == Some(*connection) && (ended || !device.online) {
                        device.downstream = None;
                        device.online = false;
                    }
                }
                self.release_if_idle(now, device_id);
            }
            HubServerEvent::Hub(HubEvent::StoreTelemetry { ticket, record }) => {
                let key = self.devices.get(&record.identity.device_id).map(|d| d.key);
                let mut message = record.message.clone();
                // The upstream hub stamps its own.
                message.enqueued_time = None;
                let sent = match key {
                    Some(key) => self.mux.send_telemetry(now, key, message),
                    None => Err(SendError::Stopped),
                };
                match (key, sent) {
                    (Some(key), Ok(id)) => {
                        self.tickets.insert((key, id), *ticket);
                    }
                    // Its device hears of it (MQTT: the connection closes) and sends
                    // it again.
                    (_, Err(e)) => {
                        self.tell_hub(HubCommand::telemetry_refused(*ticket, send_error_code(&e)));
                    }
                    (None, Ok(_)) => {}
                }
            }
            HubServerEvent::Hub(HubEvent::C2dSettled(settled)) => self.settle(now, settled),
            _ => {}
        }
        self.reports.push_back(GatewayEvent::Downstream(event));
    }

    /// A downstream CONNECT or HTTP request waits for its token to be judged
    /// upstream. A device already there with the same token is judged already: its
    /// request is answered as soon as its links are up. Another token (a renewed
    /// one) replaces the device upstream.
    fn authenticate(
        &mut self,
        now: Timestamp,
        judged: Judged,
        identity: &Identity,
        token: &str,
        host_name: &str,
    ) {
        let Judged { request, connection, protocol } = judged;
        let device_id = &identity.device_id;
        // HTTP binds no connection to a device: each request stands alone.
        let downstream = (protocol != Protocol::Http).then_some(connection);
        if let Some(device) = self.devices.get_mut(device_id) {
            if device.token == token && !self.mux.is_stopped(device.key) {
                if downstream.is_some() {
                    device.downstream = downstream;
                    device.online = false;
                    // The same device over MQTT now: the hub pushes to it again.
                    if device.credit == C2dCredit::OnFetch {
                        device.credit = C2dCredit::Standing;
                        self.mux.set_c2d_credit(now, device.key, C2dCredit::Standing);
                    }
                } else {
                    device.last_request = now;
                    self.linger_ends = earliest(self.linger_ends, Some(now + HTTP_LINGER));
                }
                if device.connected {
                    self.tell_hub(HubCommand::authenticated(request, Ok(())));
                } else {
                    device.waiting.push(request);
                }
                return;
            }
            let key = device.key;
            self.forget(now, key);
        }
        let connection_string = ConnectionString {
            host_name: String::from(host_name),
            device_id: device_id.clone(),
            module_id: identity.module_id.clone(),
            authentication: Credential::SharedAccessSignature(String::from(token)),
            shared_access_key_name: None,
            gateway_host_name: None,
        };
        let config = DeviceConfig::new(connection_string);
        match self.mux.add_device(now, config) {
            Ok(key) => {
                // A polling device takes a C2D message upstream only while a poll
                // waits for it: no lock expires in the gateway.
                let credit = if protocol == Protocol::Http {
                    C2dCredit::OnFetch
                } else {
                    C2dCredit::Standing
                };
                self.mux.set_c2d_credit(now, key, credit);
                if downstream.is_none() {
                    self.linger_ends = earliest(self.linger_ends, Some(now + HTTP_LINGER));
                }
                let device = Device {
                    key,
                    token: String::from(token),
                    connected: false,
                    waiting: vec![request],
                    downstream,
                    online: false,
                    credit,
                    polls: Vec::new(),
                    last_request: now,
                };
                self.devices.insert(device_id.clone(), device);
                self.ids.insert(key, device_id.clone());
            }
            // A token the upstream hub could never take.
            Err(_) => {
                self.tell_hub(HubCommand::authenticated(
                    request,
                    Err(ErrorCode::IOT_HUB_UNAUTHORIZED),
                ));
            }
        }
    }

    /// A downstream poll found its device's queue empty: one message is fetched
    /// upstream (credit 1 with drain), queued downstream, and the poll answered.
    /// A device the hub pushes to has nothing to fetch: what the hub has is on its
    /// way already.
    fn fetch(&mut self, now: Timestamp, request: C2dRequest, device_id: &str) {
        let Some(device) = self.devices.get_mut(device_id) else {
            self.tell_hub(HubCommand::c2d_fetched(request));
            return;
        };
        if device.credit == C2dCredit::Standing {
            self.tell_hub(HubCommand::c2d_fetched(request));
            return;
        }
        device.polls.push(request);
        device.last_request = now;
        if self.mux.fetch_c2d(now, device.key).is_err() {
            self.polls_answered(device_id);
        }
    }

    /// Answers the polls waiting for `device_id`'s fetch: whatever it brought is
    /// queued downstream by now.
    fn polls_answered(&mut self, device_id: &str) {
        let Some(device) = self.devices.get_mut(device_id) else { return };
        for request in std::mem::take(&mut device.polls) {
            self.tell_hub(HubCommand::c2d_fetched(request));
        }
    }

    /// Releases the polling devices whose linger is over, and sets when the next
    /// one's ends.
    fn end_lingers(&mut self, now: Timestamp) {
        let polling: Vec<String> = self
            .devices
            .iter()
            .filter(|(_, d)| d.credit == C2dCredit::OnFetch)
            .map(|(id, _)| id.clone())
            .collect();
        for device_id in &polling {
            self.release_if_idle(now, device_id);
        }
        self.linger_ends = self
            .devices
            .values()
            .filter(|d| d.credit == C2dCredit::OnFetch)
            .map(|d| d.last_request + HTTP_LINGER)
            .min();
    }

    /// Removes a device's upstream half. Its C2D messages queued downstream stay
    /// known: their locks are void now, so their redeliveries (when it is back)
    /// take their locks or settlements.
    fn forget(&mut self, now: Timestamp, key: DeviceKey) {
        self.mux.remove_device(now, key);
        if let Some(device_id) = self.ids.remove(&key) {
            self.devices.remove(&device_id);
        }
        self.tickets.retain(|(k, _), _| *k != key);
    }

    /// Removes the upstream half of a device no downstream connection speaks for
    /// once its telemetry is all answered: C2D messages then wait in the hub, not
    /// in the gateway, whose locks would expire while the device is away.
    fn release_if_idle(&mut self, now: Timestamp, device_id: &str) {
        let Some(device) = self.devices.get(device_id) else { return };
        let lingering =
            device.credit == C2dCredit::OnFetch && now < device.last_request + HTTP_LINGER;
        if device.downstream.is_none()
            && device.waiting.is_empty()
            && device.polls.is_empty()
            && !lingering
            && self.mux.unacknowledged(device.key) == 0
        {
            let key = device.key;
            self.forget(now, key);
        }
    }

    /// A C2D message was settled downstream: its upstream lock settles the same
    /// way.
    fn settle(&mut self, now: Timestamp, settled: &Settled) {
        let disposition = disposition(&settled.outcome);
        let entry = (settled.device_id.clone(), settled.sequence_number);
        let Some(Forwarded { key, lock, message }) = self.c2d.remove(&entry) else {
            return;
        };
        // A lock lost with its link is void: the hub delivers the message again,
        // and that delivery takes this settlement.
        if self.mux.settle(now, key, &lock, disposition).is_err() {
            if self.orphans.len() >= MAX_ORPHANS {
                self.orphans.pop_front();
            }
            self.orphans.push_back(Orphan { device_id: entry.0, message, disposition });
        }
    }

    /// An event of a device's upstream half.
    fn on_upstream(&mut self, key: DeviceKey, event: DeviceEvent) {
        let Some(device_id) = self.ids.get(&key).cloned() else { return };
        match &event {
            DeviceEvent::Connected { .. } => {
                if let Some(device) = self.devices.get_mut(&device_id) {
                    device.connected = true;
                    for request in std::mem::take(&mut device.waiting) {
                        self.tell_hub(HubCommand::authenticated(request, Ok(())));
                    }
                }
                // Its downstream connection may have given up waiting.
                self.release_if_idle(self.now, &device_id);
            }
            DeviceEvent::Disconnected { reason, reconnect_at } => {
                if let Some(device) = self.devices.get_mut(&device_id) {
                    device.connected = false;
                    if reconnect_at.is_none() {
                        let code = refusal_code(reason);
                        for request in std::mem::take(&mut device.waiting) {
                            self.tell_hub(HubCommand::authenticated(request, Err(code)));
                        }
                    }
                }
            }
            DeviceEvent::TelemetryAcknowledged(id) => {
                if let Some(ticket) = self.tickets.remove(&(key, *id)) {
                    self.tell_hub(HubCommand::telemetry_stored(ticket));
                }
                self.release_if_idle(self.now, &device_id);
            }
            DeviceEvent::TelemetryRejected { id, condition, .. } => {
                if let Some(ticket) = self.tickets.remove(&(key, *id)) {
                    self.tell_hub(HubCommand::telemetry_refused(ticket, rejection_code(condition)));
                }
                self.release_if_idle(self.now, &device_id);
            }
            DeviceEvent::C2d(c2d) => {
                self.deliver(key, &device_id, c2d.lock_token, &c2d.message);
                self.polls_answered(&device_id);
            }
            DeviceEvent::C2dDrained => self.polls_answered(&device_id),
            _ => {}
        }
        self.reports.push_back(GatewayEvent::Upstream { device_id, event });
    }

    /// Queues an upstream C2D message for its downstream device, remembering the
    /// lock that settles it. A redelivery (after a lost link or an expired lock)
    /// of a message still queued downstream only replaces its lock; one of a
    /// message settled downstream meanwhile is settled at once. A redelivery is
    /// known by its content: the hub's stamps (enqueued time, expiry) make two
    /// messages equal only if they are one. Two messages identical to the
    /// millisecond would be delivered one after the other.
    fn deliver(
        &mut self,
        key: DeviceKey,
        device_id: &str,
        lock: Option<LockToken>,
        message: &Message,
    ) {
        if let Some(lock) = lock {
            let of_device = (String::from(device_id), 0)..=(String::from(device_id), u64::MAX);
            if let Some(forwarded) =
                self.c2d.range_mut(of_device).map(|(_, f)| f).find(|f| f.message == *message)
            {
                forwarded.key = key;
                forwarded.lock = lock;
                return;
            }
            if let Some(i) =
                self.orphans.iter().position(|o| o.device_id == device_id && o.message == *message)
            {
                if let Some(orphan) = self.orphans.remove(i) {
                    let _ = self.mux.settle(self.now, key, &lock, orphan.disposition);
                }
                return;
            }
        }
        let (reply, answer) = mpsc::channel();
        self.tell_hub(HubCommand::send_c2d(String::from(device_id), message.clone(), reply));
        match answer.recv() {
            Ok(Ok(sequence)) => {
                if let Some(lock) = lock {
                    let forwarded = Forwarded { key, lock, message: message.clone() };
                    self.c2d.insert((String::from(device_id), sequence), forwarded);
                }
            }
            // The downstream queue refused it (full, too large): dead-lettered
            // upstream, as the hub would.
            Ok(Err(_)) => {
                if let Some(lock) = lock {
                    let _ = self.mux.settle(self.now, key, &lock, Disposition::Reject);
                }
            }
            // The downstream hub has stopped.
            Err(_) => {}
        }
    }
}

/// The upstream disposition for a downstream outcome: completed → complete;
/// abandoned → abandon (the downstream queue keeps no abandoned message: the hub
/// counts the delivery, spec file §7); rejected, expired, purged → reject (each
/// ends the message).
fn disposition(outcome: &Outcome) -> Disposition {
    match outcome {
        Outcome::Completed => Disposition::Complete,
        Outcome::Abandoned { .. } => Disposition::Abandon,
        _ => Disposition::Reject,
    }
}

/// IoT Hub's code for telemetry the upstream connection would not take: a device
/// stopped upstream (its token refused) 401003, a full queue 429001, too large
/// 413001, not encodable 400004.
fn send_error_code(e: &SendError) -> ErrorCode {
    match e {
        SendError::Stopped => ErrorCode::IOT_HUB_UNAUTHORIZED,
        SendError::QueueFull { .. } => ErrorCode::THROTTLING,
        SendError::TooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
        _ => ErrorCode::ARGUMENT_INVALID,
    }
}

/// IoT Hub's code for telemetry the upstream hub did not accept: its link's size
/// limit 413001 (`amqp:link:message-size-exceeded`), anything else 500001.
fn rejection_code(condition: &str) -> ErrorCode {
    if condition == amqp_condition::LINK_MESSAGE_SIZE_EXCEEDED.as_str() {
        ErrorCode::MESSAGE_TOO_LARGE
    } else {
        ErrorCode::SERVER_ERROR
    }
}

/// The code a downstream refusal is logged with: the put-token's status as IoT
/// Hub's code (401 → 401003, 404 → 404001, 403 → 403005), 401003 otherwise.
fn refusal_code(reason: &DisconnectReason) -> ErrorCode {
    match reason {
        DisconnectReason::TokenRefused { status_code: 404, .. } => ErrorCode::DEVICE_NOT_FOUND,
        DisconnectReason::TokenRefused { status_code: 403, .. } => {
            ErrorCode::IOT_HUB_MAX_CBS_TOKEN_EXCEEDED
        }
        _ => ErrorCode::IOT_HUB_UNAUTHORIZED,
    }
}

impl<H: HubDriver> Connection for Upstream<H> {
    type Event = GatewayEvent;
    type Error = ProtocolError;

    fn handle_connected(&mut self, now: Timestamp) {
        self.now = now;
        self.mux.handle_connected(now);
    }

    fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ProtocolError> {
        self.now = now;
        self.mux.handle_input(now, bytes)
    }

    fn handle_close(&mut self, now: Timestamp) {
        self.now = now;
        self.mux.handle_close(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.mux.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<GatewayEvent> {
        loop {
            if let Some(report) = self.reports.pop_front() {
                return Some(report);
            }
            let (key, event) = self.mux.poll_event()?;
            self.on_upstream(key, event);
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.mux.poll_timeout(), self.linger_ends)
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        self.now = now;
        self.mux.handle_timeout(now);
        if self.linger_ends.is_some_and(|ends| now >= ends) {
            self.end_lingers(now);
        }
    }
}

/// The upstream driver's client: the downstream hub's events come in as commands,
/// the gateway's events go to the application.
struct UpstreamClient<H> {
    events: Sender<GatewayEvent>,
    /// The machine's hub driver type.
    hub: PhantomData<fn() -> H>,
}

impl<H: HubDriver + 'static> Client for UpstreamClient<H> {
    type Machine = Upstream<H>;
    type Command = HubServerEvent;

    fn command(&mut self, machine: &mut Upstream<H>, now: Timestamp, event: HubServerEvent) {
        machine.on_downstream(now, event);
    }

    fn stop(&mut self, machine: &mut Upstream<H>, now: Timestamp) {
        machine.mux.close(now);
    }

    fn event(&mut self, event: GatewayEvent) {
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downstream_outcomes_settle_upstream_as_the_hub_would() {
        assert_eq!(disposition(&Outcome::Completed), Disposition::Complete);
        let abandoned = Outcome::Abandoned { delivery_count: 1 };
        assert_eq!(disposition(&abandoned), Disposition::Abandon);
        for ended in
            [Outcome::Rejected, Outcome::Expired, Outcome::DeliveryCountExceeded, Outcome::Purged]
        {
            assert_eq!(disposition(&ended), Disposition::Reject, "{ended:?}");
        }
    }

    #[test]
    fn telemetry_refused_upstream_is_refused_downstream_with_iot_hubs_code() {
        assert_eq!(send_error_code(&SendError::Stopped), ErrorCode::IOT_HUB_UNAUTHORIZED);
        let full = SendError::QueueFull { capacity: 1 };
        assert_eq!(send_error_code(&full), ErrorCode::THROTTLING);
        // AMQP 1.0 §2.8.18.
        let size = "amqp:link:message-size-exceeded";
        assert_eq!(rejection_code(size), ErrorCode::MESSAGE_TOO_LARGE);
        assert_eq!(rejection_code("rejected"), ErrorCode::SERVER_ERROR);
    }

    #[test]
    fn a_refused_put_token_is_logged_with_iot_hubs_code() {
        let refused = |status_code| DisconnectReason::TokenRefused {
            status_code,
            description: String::new(),
        };
        assert_eq!(refusal_code(&refused(401)), ErrorCode::IOT_HUB_UNAUTHORIZED);
        assert_eq!(refusal_code(&refused(404)), ErrorCode::DEVICE_NOT_FOUND);
        assert_eq!(refusal_code(&refused(403)), ErrorCode::IOT_HUB_MAX_CBS_TOKEN_EXCEEDED);
        assert_eq!(refusal_code(&DisconnectReason::Closed), ErrorCode::IOT_HUB_UNAUTHORIZED);
    }
}
