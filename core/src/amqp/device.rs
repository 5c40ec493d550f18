//! The device's side of IoT Hub over AMQP (spec file §5): one connection carrying
//! any number of devices (§5.10), each authenticated by its own CBS token.
//!
//! The open sequence is the Node SDK's (§5.9): the plain AMQP header (no SASL),
//! `open` with the hub's host name, one session, a shared `$cbs` sender and receiver
//! (§5.2); then per device a put-token, and once the hub answers 200 its telemetry
//! sender to `/devices/<id>/messages/events` and, if it receives C2D, its receiver
//! from `/devices/<id>/messages/devicebound` (§5.3), both with
//! `com.microsoft:client-version`.
//!
//! | Event on the wire | What the device does |
//! |---|---|
//! | put-token answered 200 | attaches its links; at 80 % of the token's life it puts a new token on the same links (§5.2: no reconnect) |
//! | put-token answered otherwise | that device stops (`TokenRefused`), its neighbours carry on |
//! | no put-token answer within `response_timeout` | that device retries after backoff |
//! | telemetry `accepted` | [`DeviceEvent::TelemetryAcknowledged`] |
//! | telemetry `rejected`, `released`, `modified` | [`DeviceEvent::TelemetryRejected`], not sent again (§5.4) |
//! | a C2D delivery that is an IoT Hub message | [`DeviceEvent::C2d`], lock token = delivery tag (§5.5) |
//! | a C2D delivery that is not | `rejected` with `amqp:decode-error` at once, as the C SDK does (§5.5) |
//! | the hub answers a C2D fetch's drain with nothing ([`C2dCredit::OnFetch`]) | [`DeviceEvent::C2dDrained`] |
//! | the hub detaches a device's link | that device puts its token and attaches again after backoff |
//! | the connection is lost | every device re-authenticates on the next one, after backoff; unacknowledged telemetry is sent again (at least once) |
//! | a twin response (correlation-id) | [`DeviceEvent::Twin`], [`DeviceEvent::ReportedPatched`] or [`DeviceEvent::TwinRequestFailed`] (§5.6) |
//! | a twin message without correlation-id | [`DeviceEvent::DesiredUpdated`] (§5.6) |
//! | a method request | [`DeviceEvent::MethodRequest`]; one that does not read is rejected with `amqp:decode-error`, as the C SDK does (§5.7) |
//! | links or connection lost with twin requests unanswered | [`DeviceEvent::TwinRequestFailed`] without status; unanswered method requests are forgotten |
//! | links or connection lost with a C2D fetch out | [`DeviceEvent::C2dDrained`]; a fetch asked for before its link attached waits for the next attach |
//!
//! Twin and method links (§5.3, §5.9 steps 6–7) are attached after the put-token,
//! twin sender then receiver, methods sender then receiver: the twin links with
//! [`DeviceConfig::receive_desired`] or on the first twin request, the method links
//! with [`DeviceConfig::receive_methods`]. With `receive_desired` the device sends
//! the PUT subscription once its twin links are up, on every connection.
//!
//! A device's C2D link gets credit as its [`C2dCredit`] says: a standing credit of
//! 32 messages topped up at half (the default, as the SDKs), or one message per
//! [`Multiplexed::fetch_c2d`] (credit 1 with drain, AMQP 1.0 §2.6.7), for a gateway
//! that takes a C2D message from the hub only while answering its device's poll.
//!
//! Complete, reject and abandon are sent as settled `accepted`, `rejected` and
//! `released` (§5.5). Heartbeats and the idle time-out are the connection's
//! ([`super::connection`]).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::address::NodeAddress;
use super::cbs::{self, PutToken, PutTokenResponse};
use super::connection::{Connection, ConnectionEvent};
use super::delivery_state::DeliveryState;
use super::engine::{CommandError, Engine, EngineEvent};
use super::link::{self, Delivery, LinkEvent, LinkId, LinkSpec, LinkState};
use super::message::{self, HubStamps, MessageId};
use super::performative::{
    AmqpError, DeliveryNumber, DeliveryTag, MESSAGE_FORMAT_AMQP, Open, ReceiverSettleMode, Role,
    SenderSettleMode, Source, Target, Terminus, condition,
};
use super::session::{SessionConfig, SessionId};
use super::types::{Limits, Symbol, Value};
use crate::device::{
    C2dMessage, ConfigError, DeviceConfig, DeviceEvent, DisconnectReason, DispositionError,
    MAX_TELEMETRY_SIZE, ProtocolError, SendError, TelemetryId, signed_token,
};
use crate::iothub::{Authentication, Disposition, Identity, LockToken, SasToken};
use crate::retry::Backoff;
use crate::sansio::{Outbox, Transmit};
use crate::time::{Duration, Timestamp, earliest};
use crate::utf8::Utf8Bytes;

/// The attach property naming the client's product (spec file §5.3).
pub const CLIENT_VERSION: &str = "com.microsoft:client-version";

/// Credit on the `$cbs` receiver: put-token responses the hub may send before this
/// side grants more. Topped up at half.
const CBS_CREDIT: u32 = 16;

/// Credit on a C2D receiver: messages the hub may deliver before the application
/// settles them. Topped up at half, counting the ones not yet settled.
const C2D_CREDIT: u32 = 32;

/// How a device's C2D receiver gets credit, the hub's leave to deliver (AMQP 1.0
/// §2.6.7). Set with [`Multiplexed::set_c2d_credit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum C2dCredit {
    /// The hub may deliver up to 32 messages the application has not settled; the
    /// credit is given at attach and topped up at half, as the SDKs do.
    #[default]
    Standing,
    /// No credit until the application asks: each [`Multiplexed::fetch_c2d`] grants
    /// credit 1 with drain, so the hub sends one message or gives the credit back
    /// at once, and locks nothing while the application does not ask.
    OnFetch,
}

/// Why [`Multiplexed::fetch_c2d`] was refused; nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum C2dFetchError {
    /// The device is not of this connection, or has stopped (refused, removed,
    /// closed).
    #[error("the device is stopped or not of this connection")]
    Stopped,
    /// The device's C2D credit is [`C2dCredit::Standing`]: the hub delivers
    /// without being asked.
    #[error("the device's C2D credit is standing: there is nothing to fetch")]
    Standing,
    /// The device attaches no C2D receiver: `receive_c2d` is off, or it is a
    /// module, which has no C2D queue (spec file §5.3).
    #[error("the device receives no C2D messages")]
    NoC2d,
}

/// The largest frame this side takes, bytes: 64 KiB, as the hub's own limit.
const MAX_FRAME_SIZE: u32 = 64 * 1024;

/// The largest put-token response taken, bytes: a few short fields.
const MAX_CBS_RESPONSE: u64 = 16 * 1024;

/// Names one device of a [`Multiplexed`] connection, from `add_device` on; never
/// reused by that connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey(pub u64);

/// The connection's own settings; each device brings its [`DeviceConfig`].
#[derive(Clone, Debug)]
pub struct MultiplexConfig {
    /// The host dialled, sent as `open`'s hostname (the gateway's when one is set,
    /// spec file §5.1).
    pub host_name: String,
    /// The idle time-out announced in `open`, ms on the wire: the hub heartbeats at
    /// half of it, and a hub silent for twice it is closed (AMQP 1.0 §2.4.5). 240 s,
    /// as the C SDK (spec file §5.1).
    pub idle_time_out: Duration,
    /// How long a put-token may go unanswered before its device retries. Default
    /// 30 s, the C SDK's CBS request time-out (spec file §5.2).
    pub response_timeout: Duration,
    /// Reconnect schedule after a lost connection, and a device's retry schedule
    /// after its links were lost.
    pub backoff: Backoff,
    /// Seed for jitter and the container-id.
    pub seed: u64,
}

impl MultiplexConfig {
    /// Defaults for a connection to `host_name`.
    pub fn new(host_name: impl Into<String>) -> MultiplexConfig {
        MultiplexConfig {
            host_name: host_name.into(),
            idle_time_out: Duration::from_secs(240),
            response_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            seed: 0,
        }
    }

    /// The connection a single device makes: its host (or gateway), its keep-alive
    /// as idle time-out, its response time-out, backoff and seed.
    pub fn for_device(config: &DeviceConfig) -> MultiplexConfig {
        let cs = &config.connection_string;
        let host = cs.gateway_host_name.as_ref().unwrap_or(&cs.host_name);
        MultiplexConfig {
            idle_time_out: config.keep_alive,
            response_timeout: config.response_timeout,
            backoff: config.backoff,
            seed: config.seed,
            ..MultiplexConfig::new(host.clone())
        }
    }
}

/// An AMQP connection to IoT Hub carrying many devices (spec file §5.10). Driven
/// like every [`crate::sansio::Connection`]; events name their device.
#[derive(Debug)]
pub struct Multiplexed {
    config: MultiplexConfig,
    container_id: String,
    state: State,
    outbox: Outbox,
    events: VecDeque<(DeviceKey, DeviceEvent)>,
    rng: Xoshiro256PlusPlus,
    devices: BTreeMap<DeviceKey, Slot>,
    next_key: u64,
    /// Failed connections since a put-token last succeeded.
    attempt: u32,
}

#[derive(Debug)]
enum State {
    /// No device was ever added: nothing to dial for.
    Idle,
    /// Waiting to dial again.
    Waiting { until: Timestamp },
    /// `Transmit::Connect` is out.
    Dialing,
    /// The transport is open.
    Open(alloc::boxed::Box<Wire>),
    /// Closed by the application.
    Stopped,
}

/// One open transport: the engine and what its links are for.
#[derive(Debug)]
struct Wire {
    engine: Engine,
    /// The session, once the hub's `begin` answered ours.
    session: Option<SessionId>,
    cbs_sender: Option<LinkId>,
    links: BTreeMap<LinkId, Owner>,
    /// Put-tokens sent and not answered: message-id → device.
    put_tokens: BTreeMap<u64, DeviceKey>,
    next_message_id: u64,
    /// Numbers the devices' link names.
    next_link: u64,
    /// A violation of ours to report when the close it caused arrives.
    violation: Option<ProtocolError>,
}

/// What a link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    CbsSender,
    CbsReceiver,
    Telemetry(DeviceKey),
    C2d(DeviceKey),
    TwinSender(DeviceKey),
    TwinReceiver(DeviceKey),
    MethodSender(DeviceKey),
    MethodReceiver(DeviceKey),
    /// A removed device's link, detaching.
    Removed,
}

/// One device of the connection.
#[derive(Debug)]
struct Slot {
    config: DeviceConfig,
    identity: Identity,
    auth: Auth,
    telemetry: Option<LinkId>,
    c2d: Option<LinkId>,
    /// Twin and method links and requests.
    channels: twin::Channels,
    /// `Connected` was reported for the links now attached.
    announced: bool,
    next_telemetry: u64,
    next_tag: u64,
    /// Telemetry not yet sent, oldest first: id and encoded message.
    queued: VecDeque<(TelemetryId, Bytes)>,
    /// Telemetry sent (or to send again after a loss) and not yet answered.
    in_flight: VecDeque<InFlight>,
    /// C2D deliveries shown to the application and not yet settled.
    locks: BTreeMap<LockToken, (LinkId, DeliveryNumber)>,
    /// How its C2D link gets credit.
    c2d_credit: C2dCredit,
    /// Its C2D fetch, with [`C2dCredit::OnFetch`].
    fetch: Fetch,
    /// Link losses since its last put-token succeeded.
    attempt: u32,
}

impl Slot {
    /// Whether the device attaches a C2D receiver: if asked to, and if it is a
    /// device: IoT Hub has no C2D queue for modules (spec file §5.3).
    fn wants_c2d(&self) -> bool {
        self.config.receive_c2d && self.identity.module_id.is_none()
    }

    /// Takes every link of the device, to detach them.
    fn take_links(&mut self) -> impl Iterator<Item = LinkId> + use<> {
        let c = &mut self.channels;
        [
            self.telemetry.take(),
            self.c2d.take(),
            c.twin_sender.take(),
            c.twin_receiver.take(),
            c.method_sender.take(),
            c.method_receiver.take(),
        ]
        .into_iter()
        .flatten()
    }
}

/// A device's C2D fetch ([`Multiplexed::fetch_c2d`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fetch {
    /// None asked for.
    Idle,
    /// Asked for while its C2D link is not attached: granted at attach.
    Waiting,
    /// Credit 1 with drain is out on its C2D link: a message or the hub's drain
    /// answer ends it.
    Sent,
}

#[derive(Debug)]
struct InFlight {
    id: TelemetryId,
    payload: Bytes,
    /// Where it went on the current connection; `None`: to send (again).
    delivery: Option<(LinkId, DeliveryNumber)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// No connection to authenticate on.
    Offline,
    /// A put-token is due as soon as the `$cbs` sender has credit. `renewing`: its
    /// links stay as they are.
    Due { renewing: bool },
    /// The put-token with this message-id is out; its token is to be renewed at
    /// `renew_at`.
    Requested { message_id: u64, deadline: Timestamp, renewing: bool, renew_at: Option<Timestamp> },
    /// The token holds until renewal.
    Authorised { renew_at: Option<Timestamp> },
    /// Its links were lost; it authenticates again then.
    Waiting { until: Timestamp },
    /// Refused or removed: never again.
    Stopped,
}

impl Multiplexed {
    /// A connection that dials once its first device is added.
    pub fn new(config: MultiplexConfig) -> Multiplexed {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        // Node's container-id is a UUID (spec file §5.1); version 4 bits set.
        id[6] = (id[6] & 0x0F) | 0x40;
        id[8] = (id[8] & 0x3F) | 0x80;
        Multiplexed {
            container_id: MessageId::Uuid(id).to_string(),
            config,
            state: State::Idle,
            outbox: Outbox::default(),
            events: VecDeque::new(),
            rng,
            devices: BTreeMap::new(),
            next_key: 0,
            attempt: 0,
        }
    }

    /// Adds a device: on an open connection it puts its token at once, otherwise
    /// once the connection opens (the first device makes it dial; after
    /// [`Multiplexed::close`] none does). Its
    /// `connection_string` names it and its credential; `protocol`, `keep_alive`,
    /// `clean_session`, `backoff` and `seed` are the connection's business and
    /// ignored here.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`]: a key that is not base64 or a SAS token that
    /// does not parse; [`ConfigError::Zero`]: `max_in_flight` or `max_queued` is 0.
    pub fn add_device(
        &mut self,
        now: Timestamp,
        config: DeviceConfig,
    ) -> Result<DeviceKey, ConfigError> {
        config.check_limits()?;
        credential(&config, now).ok_or(ConfigError::InvalidKey)?;
        let key = DeviceKey(self.next_key);
        self.next_key += 1;
        let identity = config.connection_string.identity();
        let auth = match self.state {
            State::Open(_) => Auth::Due { renewing: false },
            _ => Auth::Offline,
        };
        self.devices.insert(
            key,
            Slot {
                config,
                identity,
                auth,
                telemetry: None,
                c2d: None,
                channels: twin::Channels::default(),
                announced: false,
                next_telemetry: 0,
                next_tag: 0,
                queued: VecDeque::new(),
                in_flight: VecDeque::new(),
                locks: BTreeMap::new(),
                c2d_credit: C2dCredit::Standing,
                fetch: Fetch::Idle,
                attempt: 0,
            },
        );
        match self.state {
            State::Idle => {
                self.state = State::Dialing;
                self.outbox.push(Transmit::Connect);
            }
            State::Open(_) => {
                self.authenticate(now);
                self.after(now);
            }
            _ => {}
        }
        Ok(key)
    }

    /// Removes a device: its links detach, the connection stays. Its telemetry not
    /// yet acknowledged is dropped, and no event names it again. Returns whether it
    /// was there.
    pub fn remove_device(&mut self, now: Timestamp, key: DeviceKey) -> bool {
        let Some(mut slot) = self.devices.remove(&key) else {
            return false;
        };
        self.events.retain(|(k, _)| *k != key);
        if let State::Open(wire) = &mut self.state {
            for link in slot.take_links() {
                wire.links.insert(link, Owner::Removed);
                let _ = wire.engine.detach(now, link, true, None);
            }
            wire.put_tokens.retain(|_, k| *k != key);
        }
        self.after(now);
        true
    }

    /// Queues a telemetry message of device `key`; the events
    /// [`DeviceEvent::TelemetryAcknowledged`] or [`DeviceEvent::TelemetryRejected`]
    /// with the returned id report the hub's answer.
    ///
    /// # Errors
    ///
    /// [`SendError::Stopped`] for a device refused or not of this connection,
    /// [`SendError::QueueFull`], [`SendError::TooLarge`] above
    /// [`MAX_TELEMETRY_SIZE`], [`SendError::Unencodable`] for a content type or
    /// encoding that is not ASCII.
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        message: crate::iothub::Message,
    ) -> Result<TelemetryId, SendError> {
        if matches!(self.state, State::Stopped) {
            return Err(SendError::Stopped);
        }
        let Some(slot) = self.devices.get_mut(&key).filter(|s| s.auth != Auth::Stopped) else {
            return Err(SendError::Stopped);
        };
        if slot.queued.len() >= slot.config.max_queued {
            return Err(SendError::QueueFull { capacity: slot.config.max_queued });
        }
        let size = message.size();
        if size > MAX_TELEMETRY_SIZE {
            return Err(SendError::TooLarge { size, max: MAX_TELEMETRY_SIZE });
        }
        let amqp = message::from_iothub(&message, &HubStamps::default())
            .map_err(|e| SendError::Unencodable(e.to_string()))?;
        let mut payload = BytesMut::new();
        amqp.encode(&mut payload).map_err(|e| SendError::Unencodable(e.to_string()))?;
        let id = TelemetryId(slot.next_telemetry);
        slot.next_telemetry += 1;
        slot.queued.push_back((id, payload.freeze()));
        self.pump(now, key);
        self.after(now);
        Ok(id)
    }

    /// Settles device `key`'s C2D message: complete → `accepted`, reject →
    /// `rejected`, abandon → `released`, sent settled (spec file §5.5).
    ///
    /// # Errors
    ///
    /// [`DispositionError::UnknownLockToken`]: the device holds no such lock
    /// (already settled, or lost with its link or connection: the hub delivers the
    /// message again).
    pub fn settle(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        let unknown = DispositionError::UnknownLockToken(*lock);
        let State::Open(wire) = &mut self.state else {
            return Err(unknown);
        };
        let Some(slot) = self.devices.get_mut(&key) else {
            return Err(unknown);
        };
        let Some((link, delivery_id)) = slot.locks.remove(lock) else {
            return Err(unknown);
        };
        let state = match disposition {
            Disposition::Complete => DeliveryState::Accepted,
            Disposition::Reject => DeliveryState::Rejected { error: None },
            Disposition::Abandon => DeliveryState::Released,
        };
        if wire.engine.disposition(now, link, delivery_id, Some(state), true).is_err() {
            return Err(unknown);
        }
        top_up_c2d(wire, now, link, slot);
        self.after(now);
        Ok(())
    }

    /// Sets how device `key`'s C2D link gets credit ([`C2dCredit`]); unknown keys
    /// are ignored. Called right after [`Multiplexed::add_device`], it holds from
    /// the first attach on. On an attached link, switching to
    /// [`C2dCredit::OnFetch`] stops the top-ups but takes back no credit already
    /// granted: the hub may still deliver that many messages unasked, until a
    /// fetch replaces that credit with its one. Switching to
    /// [`C2dCredit::Standing`] grants the standing credit at once and ends a fetch
    /// asked for with [`DeviceEvent::C2dDrained`] (a message it brought comes as a
    /// standing delivery).
    pub fn set_c2d_credit(&mut self, now: Timestamp, key: DeviceKey, credit: C2dCredit) {
        let Some(slot) = self.devices.get_mut(&key) else { return };
        if core::mem::replace(&mut slot.c2d_credit, credit) == credit {
            return;
        }
        if credit == C2dCredit::Standing {
            end_fetch(slot, key, true, &mut self.events);
            self.grant_c2d(now, key);
            self.after(now);
        }
    }

    /// Asks the hub for one C2D message for device `key`, whose credit is
    /// [`C2dCredit::OnFetch`]: credit 1 with drain on its C2D link (AMQP 1.0
    /// §2.6.7), so the hub sends its next message or gives the credit back at once.
    /// It ends in exactly one event: [`DeviceEvent::C2d`] with the message, or
    /// [`DeviceEvent::C2dDrained`] when the hub had none, or when the fetch was
    /// lost with its link or connection (or the device stopped). While the link is
    /// not attached (connecting, or reconnecting after a loss) the fetch waits and
    /// is sent at attach. A fetch while one is out does nothing more.
    ///
    /// # Errors
    ///
    /// [`C2dFetchError::Stopped`] for a device stopped or not of this connection,
    /// [`C2dFetchError::Standing`] for a device with standing credit,
    /// [`C2dFetchError::NoC2d`] for one that attaches no C2D link.
    pub fn fetch_c2d(&mut self, now: Timestamp, key: DeviceKey) -> Result<(), C2dFetchError> {
        if matches!(self.state, State::Stopped) {
            return Err(C2dFetchError::Stopped);
        }
        let Some(slot) = self.devices.get_mut(&key).filter(|s| s.auth != Auth::Stopped) else {
            return Err(C2dFetchError::Stopped);
        };
        if slot.c2d_credit == C2dCredit::Standing {
            return Err(C2dFetchError::Standing);
        }
        if !slot.wants_c2d() {
            return Err(C2dFetchError::NoC2d);
        }
        if slot.fetch != Fetch::Idle {
            return Ok(());
        }
        slot.fetch = Fetch::Waiting;
        self.grant_c2d(now, key);
        self.after(now);
        Ok(())
    }

    /// Closes the connection cleanly and stops: every device still running gets
    /// [`DisconnectReason::Closed`].
    pub fn close(&mut self, now: Timestamp) {
        match core::mem::replace(&mut self.state, State::Stopped) {
            State::Stopped => return,
            State::Open(mut wire) => {
                wire.engine.close(now, None);
                let closed = wire.engine.connection().is_closed();
                drain(&mut wire.engine, &mut self.outbox);
                // The hub's `close` is not waited for: nothing is left to hear. A
                // connection closed at once (before the hub's header) queued its own.
                if !closed {
                    self.outbox.push(Transmit::Close);
                }
            }
            State::Dialing => self.outbox.push(Transmit::Close),
            State::Idle | State::Waiting { .. } => {}
        }
        for (key, slot) in &mut self.devices {
            if slot.auth == Auth::Stopped {
                continue;
            }
            slot.auth = Auth::Stopped;
            end_fetch(slot, *key, true, &mut self.events);
            self.events.push_back((
                *key,
                DeviceEvent::Disconnected { reason: DisconnectReason::Closed, reconnect_at: None },
            ));
        }
    }

    /// Telemetry of device `key` queued or in flight.
    pub fn unacknowledged(&self, key: DeviceKey) -> usize {
        self.devices.get(&key).map_or(0, |s| s.queued.len() + s.in_flight.len())
    }

    /// Whether device `key` has stopped for good (refused, closed) or is unknown.
    pub fn is_stopped(&self, key: DeviceKey) -> bool {
        self.devices.get(&key).is_none_or(|s| s.auth == Auth::Stopped)
    }

    /// The devices of this connection.
    pub fn devices(&self) -> impl Iterator<Item = DeviceKey> + '_ {
        self.devices.keys().copied()
    }

    /// The transport asked for is open: AMQP header, `open`, `begin`.
    pub fn handle_connected(&mut self, now: Timestamp) {
        if !matches!(self.state, State::Dialing) {
            return;
        }
        let idle = u32::try_from(self.config.idle_time_out.as_millis()).unwrap_or(u32::MAX);
        let open = Open {
            hostname: Some(Utf8Bytes::from(self.config.host_name.as_str())),
            max_frame_size: MAX_FRAME_SIZE,
            idle_time_out: (idle > 0).then_some(idle),
            ..Open::new(Utf8Bytes::from(self.container_id.as_str()))
        };
        // One session for CBS and every device, with the C SDK's unbounded incoming
        // window (spec file §5.1): flow is governed per link by credit.
        let session = SessionConfig { incoming_window: u32::MAX, ..SessionConfig::default() };
        let mut engine = Engine::new(Connection::client(open, now), session);
        // A fresh client connection always takes a begin.
        let _ = engine.begin(now, session);
        let wire = Wire {
            engine,
            session: None,
            cbs_sender: None,
            links: BTreeMap::new(),
            put_tokens: BTreeMap::new(),
            next_message_id: 0,
            next_link: 0,
            violation: None,
        };
        self.state = State::Open(alloc::boxed::Box::new(wire));
        for slot in self.devices.values_mut() {
            if slot.auth == Auth::Offline {
                slot.auth = Auth::Due { renewing: false };
            }
        }
        self.after(now);
    }

    /// Bytes from the hub.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Amqp`]: the hub broke AMQP; the engine answered at the
    /// violation's scope (a connection violation closes it and a reconnect follows).
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ProtocolError> {
        let State::Open(wire) = &mut self.state else {
            return Ok(());
        };
        let result = wire.engine.handle_input(now, bytes).map_err(ProtocolError::from);
        // Reported with the close it caused; a session or link violation is
        // answered at its scope and the connection goes on.
        if let Err(e) = &result
            && wire.engine.connection().is_closed()
        {
            wire.violation = Some(e.clone());
        }
        self.after(now);
        result
    }

    /// The transport closed, broke, or could not be opened.
    pub fn handle_close(&mut self, now: Timestamp) {
        match &mut self.state {
            State::Open(wire) => {
                wire.engine.handle_close(now);
                // Nothing more reaches this transport.
                while wire.engine.poll_transmit().is_some() {}
                self.outbox.discard_bytes();
                self.after(now);
            }
            State::Dialing => self.connection_lost(now, DisconnectReason::TransportClosed),
            _ => {}
        }
    }

    /// See [`crate::sansio::Connection::poll_transmit`].
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// The next event and the device it concerns.
    pub fn poll_event(&mut self) -> Option<(DeviceKey, DeviceEvent)> {
        self.events.pop_front()
    }

    /// The reconnect time; on an open connection the engine's next heartbeat or
    /// idle deadline and each device's put-token deadline, renewal or retry.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.state {
            State::Waiting { until } => Some(*until),
            State::Open(wire) => {
                self.devices.values().fold(wire.engine.poll_timeout(), |t, slot| {
                    earliest(
                        t,
                        match slot.auth {
                            Auth::Requested { deadline, .. } => Some(deadline),
                            Auth::Authorised { renew_at } => renew_at,
                            Auth::Waiting { until } => Some(until),
                            _ => None,
                        },
                    )
                })
            }
            State::Idle | State::Dialing | State::Stopped => None,
        }
    }

    /// Dials again, renews tokens, retries devices, heartbeats, as due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match &mut self.state {
            State::Waiting { until } if now >= *until => {
                self.state = State::Dialing;
                self.outbox.push(Transmit::Connect);
                return;
            }
            State::Open(wire) => wire.engine.handle_timeout(now),
            _ => return,
        }
        let mut timed_out = Vec::new();
        for (key, slot) in &mut self.devices {
            match slot.auth {
                Auth::Requested { deadline, .. } if now >= deadline => timed_out.push(*key),
                Auth::Authorised { renew_at: Some(at) } if now >= at => {
                    slot.auth = Auth::Due { renewing: true };
                }
                Auth::Waiting { until } if now >= until => {
                    slot.auth = Auth::Due { renewing: false };
                }
                _ => {}
            }
        }
        for key in timed_out {
            self.links_lost(now, key, DisconnectReason::PutTokenTimeout);
        }
        self.after(now);
    }

    /// After every input and command: handle the engine's events, send due
    /// put-tokens, move the engine's output to the outbox.
    fn after(&mut self, now: Timestamp) {
        loop {
            let State::Open(wire) = &mut self.state else {
                return;
            };
            let Some(event) = wire.engine.poll_event() else {
                break;
            };
            self.on_event(now, event);
        }
        self.authenticate(now);
        if let State::Open(wire) = &mut self.state {
            drain(&mut wire.engine, &mut self.outbox);
        }
    }

    fn wire(&mut self) -> Option<&mut Wire> {
        match &mut self.state {
            State::Open(wire) => Some(wire),
            _ => None,
        }
    }

    fn on_event(&mut self, now: Timestamp, event: EngineEvent) {
        let event = match event {
            EngineEvent::Connection(ConnectionEvent::Closed { .. }) => {
                let reason = match self.wire().and_then(|w| w.violation.take()) {
                    Some(e) => DisconnectReason::ProtocolViolation(e),
                    None => DisconnectReason::TransportClosed,
                };
                if let State::Open(wire) = &mut self.state {
                    drain(&mut wire.engine, &mut self.outbox);
                }
                return self.connection_lost(now, reason);
            }
            EngineEvent::Connection(_) => return,
            EngineEvent::Link(event) => event,
        };
        let Some(wire) = self.wire() else { return };
        match event {
            LinkEvent::SessionBegun { session, by_peer: false } => {
                wire.session = Some(session);
                let sender = LinkSpec {
                    snd_settle_mode: SenderSettleMode::Unsettled,
                    ..LinkSpec::new(
                        Utf8Bytes::from_static("$cbs-sender"),
                        Role::Sender,
                        Some(source("$cbs")),
                        Some(target(cbs::NODE)),
                    )
                };
                let receiver = LinkSpec {
                    max_message_size: Some(MAX_CBS_RESPONSE),
                    ..LinkSpec::new(
                        Utf8Bytes::from_static("$cbs-receiver"),
                        Role::Receiver,
                        Some(source(cbs::NODE)),
                        Some(target("$cbs")),
                    )
                };
                if let Ok(link) = wire.engine.attach(now, session, sender) {
                    wire.links.insert(link, Owner::CbsSender);
                    wire.cbs_sender = Some(link);
                }
                if let Ok(link) = wire.engine.attach(now, session, receiver) {
                    wire.links.insert(link, Owner::CbsReceiver);
                }
            }
            LinkEvent::SessionBegun { by_peer: true, .. } => {
                // A hub does not begin sessions with its clients.
                wire.engine.close(now, Some(error(condition::NOT_ALLOWED, "unexpected begin")));
            }
            LinkEvent::SessionEnded { .. } => {
                // The one session carries everything: start over on a new connection.
                wire.engine.close(now, None);
            }
            LinkEvent::AttachRequested { link, .. } => {
                let e = error(condition::NOT_ALLOWED, "the device serves no links");
                let _ = wire.engine.refuse_attach(now, link, e);
            }
            // A refusal is an attach with a null terminus, its detach follows
            // (AMQP 1.0 §2.6.3): nothing to start on it.
            LinkEvent::Attached { remote, .. }
                if remote.source.is_none() || remote.target.is_none() => {}
            LinkEvent::Attached { link, .. } => match wire.links.get(&link).copied() {
                Some(Owner::CbsReceiver) => {
                    let _ = wire.engine.flow(now, link, CBS_CREDIT, false);
                }
                Some(Owner::C2d(key)) => {
                    self.grant_c2d(now, key);
                    self.announce(key);
                }
                Some(Owner::Telemetry(key)) => {
                    self.announce(key);
                    self.pump(now, key);
                }
                Some(Owner::TwinReceiver(key)) => {
                    let _ = wire.engine.flow(now, link, twin::TWIN_CREDIT, false);
                    self.announce(key);
                    self.twin_links_up(now, key);
                }
                Some(Owner::TwinSender(key)) => {
                    self.announce(key);
                    self.twin_links_up(now, key);
                }
                Some(Owner::MethodReceiver(key)) => {
                    let _ = wire.engine.flow(now, link, twin::METHOD_CREDIT, false);
                    self.announce(key);
                }
                Some(Owner::MethodSender(key)) => {
                    self.announce(key);
                    self.pump_method_responses(now, key);
                }
                _ => {}
            },
            LinkEvent::Detached { link, error, .. } => {
                match wire.links.remove(&link) {
                    Some(Owner::CbsSender | Owner::CbsReceiver) => {
                        // Without CBS no device can renew: start over.
                        wire.engine.close(now, None);
                    }
                    // Detached by the hub, or by this side for the hub's violation
                    // on it.
                    Some(
                        Owner::Telemetry(key)
                        | Owner::C2d(key)
                        | Owner::TwinSender(key)
                        | Owner::TwinReceiver(key)
                        | Owner::MethodSender(key)
                        | Owner::MethodReceiver(key),
                    ) => {
                        let reason = DisconnectReason::LinkDetached {
                            condition: error
                                .as_ref()
                                .map(|e| e.condition.as_str().to_string())
                                .unwrap_or_default(),
                            description: description(error.as_ref()),
                        };
                        self.links_lost(now, key, reason);
                    }
                    _ => {}
                }
            }
            LinkEvent::Credit { link, .. } => match wire.links.get(&link).copied() {
                Some(Owner::Telemetry(key)) => self.pump(now, key),
                Some(Owner::TwinSender(key)) => self.pump_twin(now, key),
                Some(Owner::MethodSender(key)) => self.pump_method_responses(now, key),
                _ => {}
            },
            LinkEvent::Delivery {
                link,
                delivery_id,
                tag,
                settled,
                rcv_settle_mode,
                payload,
                ..
            } => match wire.links.get(&link).copied() {
                Some(Owner::CbsReceiver) => {
                    if !settled {
                        let accepted = Some(DeliveryState::Accepted);
                        let _ = wire.engine.disposition(now, link, delivery_id, accepted, true);
                    }
                    if wire.engine.links().flow_state(link).map_or(0, |f| f.link_credit)
                        <= CBS_CREDIT / 2
                    {
                        let _ = wire.engine.flow(now, link, CBS_CREDIT, false);
                    }
                    self.on_put_token_response(now, &payload);
                }
                Some(Owner::C2d(key)) => {
                    let d = C2dDelivery { link, delivery_id, tag, settled, rcv_settle_mode };
                    self.on_c2d(now, key, d, &payload);
                }
                Some(Owner::TwinReceiver(key)) => {
                    let d = C2dDelivery { link, delivery_id, tag, settled, rcv_settle_mode };
                    self.on_twin_reply(now, key, &d, &payload);
                }
                Some(Owner::MethodReceiver(key)) => {
                    let d = C2dDelivery { link, delivery_id, tag, settled, rcv_settle_mode };
                    self.on_method_request(now, key, &d, &payload);
                }
                _ => {}
            },
            LinkEvent::Disposition { link, delivery_id, state, settled } => {
                if let Some(Owner::Telemetry(key)) = wire.links.get(&link).copied() {
                    self.on_outcome(now, key, link, delivery_id, state, settled);
                }
            }
            LinkEvent::Drained { link } => {
                if let Some(Owner::C2d(key)) = wire.links.get(&link).copied()
                    && let Some(slot) = self.devices.get_mut(&key)
                {
                    end_fetch(slot, key, false, &mut self.events);
                }
            }
            LinkEvent::Aborted { .. } => {}
        }
    }

    /// Sends the put-tokens that are due while the `$cbs` sender has credit; X.509
    /// devices, whose TLS certificate authenticates them, attach at once (spec file
    /// §5.9 step 3).
    fn authenticate(&mut self, now: Timestamp) {
        let State::Open(wire) = &mut self.state else {
            return;
        };
        let (Some(sender), Some(_)) = (wire.cbs_sender, wire.session) else {
            return;
        };
        let mut certified = Vec::new();
        for (key, slot) in &mut self.devices {
            let Auth::Due { renewing } = slot.auth else {
                continue;
            };
            if matches!(slot.config.connection_string.authentication, Authentication::X509) {
                slot.auth = Auth::Authorised { renew_at: None };
                certified.push(*key);
                continue;
            }
            if wire.engine.links().state(sender) != Some(LinkState::Attached)
                || wire.engine.links().flow_state(sender).map_or(0, |f| f.link_credit) == 0
            {
                continue;
            }
            // `add_device` signed with this key already.
            let Some((Some(token), renew_at)) = credential(&slot.config, now) else {
                continue;
            };
            let message_id = wire.next_message_id;
            wire.next_message_id += 1;
            let request = PutToken::for_token(MessageId::Ulong(message_id), &token).to_message();
            let mut payload = BytesMut::new();
            if request.encode(&mut payload).is_err() {
                continue;
            }
            let delivery = Delivery {
                tag: Bytes::copy_from_slice(&message_id.to_be_bytes()),
                message_format: MESSAGE_FORMAT_AMQP,
                settled: false,
                payload: payload.freeze(),
            };
            if wire.engine.send(now, sender, delivery).is_err() {
                continue;
            }
            wire.put_tokens.insert(message_id, *key);
            let deadline = now + self.config.response_timeout;
            slot.auth = Auth::Requested { message_id, deadline, renewing, renew_at };
        }
        for key in certified {
            self.attach_device(now, key);
        }
    }

    fn on_put_token_response(&mut self, now: Timestamp, payload: &Bytes) {
        let limits = Limits { max_size: MAX_CBS_RESPONSE as usize, ..Limits::default() };
        let Some(response) = message::Message::decode(payload, &limits)
            .ok()
            .and_then(|m| PutTokenResponse::from_message(&m).ok())
        else {
            // Not an answer this side can match to a request; its device times out.
            return;
        };
        let MessageId::Ulong(message_id) = response.correlation_id else { return };
        let Some(wire) = self.wire() else { return };
        let Some(key) = wire.put_tokens.remove(&message_id) else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let Auth::Requested { message_id: expected, renewing, renew_at, .. } = slot.auth else {
            return;
        };
        if expected != message_id {
            return;
        }
        if !response.is_success() {
            let reason = DisconnectReason::TokenRefused {
                status_code: response.status_code,
                description: response.description,
            };
            return self.stop_device(now, key, reason);
        }
        slot.auth = Auth::Authorised { renew_at };
        slot.attempt = 0;
        self.attempt = 0;
        if !renewing {
            self.attach_device(now, key);
        }
    }

    /// Attaches the device's telemetry sender and, if it receives C2D, its receiver.
    fn attach_device(&mut self, now: Timestamp, key: DeviceKey) {
        let State::Open(wire) = &mut self.state else { return };
        let (Some(slot), Some(session)) = (self.devices.get_mut(&key), wire.session) else {
            return;
        };
        let properties = alloc::vec![(
            Symbol::from_static(CLIENT_VERSION),
            Value::String(Utf8Bytes::from(slot.config.client_type.as_str())),
        )];
        let events = NodeAddress::Events(slot.identity.clone()).path();
        // Names are unique per connection and direction (AMQP 1.0 §2.6.1), also
        // when a device attaches again while its old links still detach.
        let mut name = |kind: &str| {
            let n = wire.next_link;
            wire.next_link += 1;
            Utf8Bytes::from(alloc::format!("{kind}-{}-{n}", slot.identity).as_str())
        };
        let sender = LinkSpec {
            snd_settle_mode: SenderSettleMode::Unsettled,
            properties: properties.clone(),
            ..LinkSpec::new(name("link-snd"), Role::Sender, Some(source("")), Some(target(&events)))
        };
        if let Ok(link) = wire.engine.attach(now, session, sender) {
            wire.links.insert(link, Owner::Telemetry(key));
            slot.telemetry = Some(link);
        }
        if slot.wants_c2d() {
            let c2d = NodeAddress::C2d(slot.identity.clone()).path();
            let receiver = LinkSpec {
                rcv_settle_mode: ReceiverSettleMode::First,
                max_message_size: u64::try_from(slot.config.max_packet_size).ok(),
                properties,
                ..LinkSpec::new(
                    name("link-rcv"),
                    Role::Receiver,
                    Some(source(&c2d)),
                    Some(target("")),
                )
            };
            if let Ok(link) = wire.engine.attach(now, session, receiver) {
                wire.links.insert(link, Owner::C2d(key));
                slot.c2d = Some(link);
            }
        }
        let wants_twin = slot.config.receive_desired || slot.channels.wants_twin;
        if wants_twin {
            self.attach_twin(now, key);
        }
        self.attach_methods(now, key);
    }

    /// Gives the device's attached C2D link credit as its [`C2dCredit`] says:
    /// standing, [`C2D_CREDIT`] less the messages it holds; on fetch, credit 1 with
    /// drain for a fetch waiting (AMQP 1.0 §2.6.7), and nothing otherwise.
    fn grant_c2d(&mut self, now: Timestamp, key: DeviceKey) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let Some(link) =
            slot.c2d.filter(|l| wire.engine.links().state(*l) == Some(LinkState::Attached))
        else {
            return;
        };
        match slot.c2d_credit {
            C2dCredit::Standing => {
                let held = u32::try_from(slot.locks.len()).unwrap_or(u32::MAX);
                let _ = wire.engine.flow(now, link, C2D_CREDIT.saturating_sub(held), false);
            }
            C2dCredit::OnFetch if slot.fetch == Fetch::Waiting => {
                if wire.engine.flow(now, link, 1, true).is_ok() {
                    slot.fetch = Fetch::Sent;
                }
            }
            C2dCredit::OnFetch => {}
        }
    }

    /// Reports `Connected` once all of the device's links are attached.
    fn announce(&mut self, key: DeviceKey) {
        let State::Open(wire) = &self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let attached = |l: Option<LinkId>| {
            l.is_some_and(|l| wire.engine.links().state(l) == Some(LinkState::Attached))
        };
        let c = &slot.channels;
        // Every link asked for so far; twin links attached later (on a first twin
        // request) come after `Connected`.
        let others = [slot.c2d, c.twin_sender, c.twin_receiver, c.method_sender, c.method_receiver];
        if slot.announced
            || !attached(slot.telemetry)
            || (slot.wants_c2d() && slot.c2d.is_none())
            || others.into_iter().any(|l| l.is_some() && !attached(l))
        {
            return;
        }
        slot.announced = true;
        self.events.push_back((key, DeviceEvent::Connected { session_present: false }));
    }

    /// Sends the device's telemetry: first what a lost link or connection left
    /// unanswered, then the queue, within its in-flight window and the link's
    /// credit.
    fn pump(&mut self, now: Timestamp, key: DeviceKey) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let Some(link) = slot.telemetry else { return };
        if wire.engine.links().state(link) != Some(LinkState::Attached) {
            return;
        }
        loop {
            if wire.engine.links().flow_state(link).map_or(0, |f| f.link_credit) == 0 {
                return;
            }
            let index = match slot.in_flight.iter().position(|m| m.delivery.is_none()) {
                Some(i) => i,
                None if slot.in_flight.len() < slot.config.max_in_flight => {
                    let Some((id, payload)) = slot.queued.pop_front() else { return };
                    slot.in_flight.push_back(InFlight { id, payload, delivery: None });
                    slot.in_flight.len() - 1
                }
                None => return,
            };
            let Some(entry) = slot.in_flight.get_mut(index) else { return };
            let tag = Bytes::copy_from_slice(&slot.next_tag.to_be_bytes());
            slot.next_tag += 1;
            let delivery = Delivery {
                tag,
                message_format: MESSAGE_FORMAT_AMQP,
                settled: false,
                payload: entry.payload.clone(),
            };
            match wire.engine.send(now, link, delivery) {
                Ok(delivery_id) => entry.delivery = Some((link, delivery_id)),
                Err(CommandError::Link(link::CommandError::MessageTooLarge {
                    size, max, ..
                })) => {
                    // The hub's link can never take it.
                    let id = entry.id;
                    slot.in_flight.remove(index);
                    let description = alloc::format!(
                        "{size}-byte message exceeds the link's max-message-size of {max} bytes"
                    );
                    let condition = condition::LINK_MESSAGE_SIZE_EXCEEDED.as_str().to_string();
                    self.events.push_back((
                        key,
                        DeviceEvent::TelemetryRejected { id, condition, description },
                    ));
                }
                // No window or credit now: a flow from the hub resumes.
                Err(_) => return,
            }
        }
    }

    fn on_outcome(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        link: LinkId,
        delivery_id: DeliveryNumber,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let Some(index) =
            slot.in_flight.iter().position(|m| m.delivery == Some((link, delivery_id)))
        else {
            return;
        };
        let event = match state {
            Some(DeliveryState::Received { .. }) => return,
            None if !settled => return,
            Some(DeliveryState::Accepted) => None,
            Some(DeliveryState::Rejected { error }) => Some((
                error.as_ref().map_or("rejected".to_string(), |e| e.condition.as_str().to_string()),
                description(error.as_ref()),
            )),
            Some(DeliveryState::Released) => Some(("released".to_string(), String::new())),
            Some(DeliveryState::Modified { .. }) => Some(("modified".to_string(), String::new())),
            // Settled without an outcome: the hub did not say it stored it.
            None => Some(("settled without outcome".to_string(), String::new())),
        };
        let Some(entry) = slot.in_flight.remove(index) else { return };
        let id = entry.id;
        if !settled && let State::Open(wire) = &mut self.state {
            let _ = wire.engine.disposition(now, link, delivery_id, None, true);
        }
        self.events.push_back((
            key,
            match event {
                None => DeviceEvent::TelemetryAcknowledged(id),
                Some((condition, description)) => {
                    DeviceEvent::TelemetryRejected { id, condition, description }
                }
            },
        ));
        self.pump(now, key);
    }

    fn on_c2d(&mut self, now: Timestamp, key: DeviceKey, d: C2dDelivery, payload: &Bytes) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let limits = Limits { max_size: slot.config.max_packet_size, ..Limits::default() };
        let decoded = message::Message::decode(payload, &limits)
            .map_err(|e| e.to_string())
            .and_then(|m| message::to_iothub(&m).map_err(|e| e.to_string()));
        let lock = message::lock_token_from_tag(&d.tag);
        // The delivery ends a fetch: it used the fetch's one credit.
        let fetched = slot.fetch == Fetch::Sent;
        if fetched {
            slot.fetch = Fetch::Idle;
        }
        let message = match (decoded, lock) {
            (Ok((message, _)), _) if d.settled => {
                self.events
                    .push_back((key, DeviceEvent::C2d(C2dMessage { lock_token: None, message })));
                return top_up_c2d(wire, now, d.link, slot);
            }
            (Ok((message, _)), Some(lock)) => (message, lock),
            (result, _) => {
                if !d.settled {
                    let why = match result {
                        Err(e) => e,
                        Ok(_) => "the delivery tag is not a 16-byte lock token".to_string(),
                    };
                    // The C SDK's answer to a C2D message it cannot read (§5.5).
                    let state = DeliveryState::Rejected {
                        error: Some(error(condition::DECODE_ERROR, &why)),
                    };
                    let settle = d.rcv_settle_mode == ReceiverSettleMode::First;
                    let _ =
                        wire.engine.disposition(now, d.link, d.delivery_id, Some(state), settle);
                }
                // Nothing for the application: its fetch ends empty.
                if fetched {
                    self.events.push_back((key, DeviceEvent::C2dDrained));
                }
                return top_up_c2d(wire, now, d.link, slot);
            }
        };
        let (message, lock) = message;
        slot.locks.insert(lock, (d.link, d.delivery_id));
        self.events
            .push_back((key, DeviceEvent::C2d(C2dMessage { lock_token: Some(lock), message })));
    }

    /// The device lost a link (or its put-token went unanswered): its other link
    /// detaches, what it sent goes again, and it authenticates anew after backoff.
    fn links_lost(&mut self, now: Timestamp, key: DeviceKey, reason: DisconnectReason) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        for link in slot.take_links() {
            if let Some(owner) = wire.links.get_mut(&link) {
                *owner = Owner::Removed;
                let _ = wire.engine.detach(now, link, true, None);
            }
        }
        wire.put_tokens.retain(|_, k| *k != key);
        reset(slot, key, &mut self.events);
        let until = now + self.config.backoff.delay(slot.attempt, &mut self.rng);
        slot.attempt = slot.attempt.saturating_add(1);
        slot.auth = Auth::Waiting { until };
        self.events
            .push_back((key, DeviceEvent::Disconnected { reason, reconnect_at: Some(until) }));
    }

    /// The device's credential was refused: it stops, its links detach.
    fn stop_device(&mut self, now: Timestamp, key: DeviceKey, reason: DisconnectReason) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        for link in slot.take_links() {
            wire.links.insert(link, Owner::Removed);
            let _ = wire.engine.detach(now, link, true, None);
        }
        reset(slot, key, &mut self.events);
        slot.channels.fail_queued(key, &mut self.events);
        end_fetch(slot, key, true, &mut self.events);
        slot.auth = Auth::Stopped;
        self.events.push_back((key, DeviceEvent::Disconnected { reason, reconnect_at: None }));
    }

    fn connection_lost(&mut self, now: Timestamp, reason: DisconnectReason) {
        let reconnect_at = if matches!(self.state, State::Stopped) {
            None
        } else {
            let until = now + self.config.backoff.delay(self.attempt, &mut self.rng);
            self.attempt = self.attempt.saturating_add(1);
            self.state = State::Waiting { until };
            Some(until)
        };
        for (key, slot) in &mut self.devices {
            let _ = slot.take_links();
            reset(slot, *key, &mut self.events);
            if slot.auth == Auth::Stopped {
                continue;
            }
            slot.auth = Auth::Offline;
            self.events.push_back((
                *key,
                DeviceEvent::Disconnected { reason: reason.clone(), reconnect_at },
            ));
        }
    }
}

/// What a C2D delivery event carries besides its payload.
struct C2dDelivery {
    link: LinkId,
    delivery_id: DeliveryNumber,
    tag: DeliveryTag,
    settled: bool,
    rcv_settle_mode: ReceiverSettleMode,
}

/// Forgets what lived on a lost link: telemetry in flight is to be sent again, C2D
/// locks are void (the hub delivers those messages again), a C2D fetch out ends
/// empty, twin requests sent are failed and method requests forgotten (see
/// [`twin::Channels::reset`]).
fn reset(slot: &mut Slot, key: DeviceKey, events: &mut VecDeque<(DeviceKey, DeviceEvent)>) {
    slot.announced = false;
    end_fetch(slot, key, false, events);
    slot.channels.reset(key, events);
    slot.locks.clear();
    for m in &mut slot.in_flight {
        m.delivery = None;
    }
}

/// Ends the device's C2D fetch with [`DeviceEvent::C2dDrained`] if one is out on
/// its link or, with `waiting`, if one waits for the link to attach.
fn end_fetch(
    slot: &mut Slot,
    key: DeviceKey,
    waiting: bool,
    events: &mut VecDeque<(DeviceKey, DeviceEvent)>,
) {
    if slot.fetch == Fetch::Sent || (waiting && slot.fetch == Fetch::Waiting) {
        slot.fetch = Fetch::Idle;
        events.push_back((key, DeviceEvent::C2dDrained));
    }
}

/// Gives a standing C2D link its credit back once half is used, counting the
/// messages the application holds; an on-fetch link gets credit only per fetch.
fn top_up_c2d(wire: &mut Wire, now: Timestamp, link: LinkId, slot: &Slot) {
    if slot.c2d_credit == C2dCredit::OnFetch {
        return;
    }
    let held = u32::try_from(slot.locks.len()).unwrap_or(u32::MAX);
    let credit = wire.engine.links().flow_state(link).map_or(0, |f| f.link_credit);
    if credit.saturating_add(held) <= C2D_CREDIT / 2 {
        let _ = wire.engine.flow(now, link, C2D_CREDIT.saturating_sub(held), false);
    }
}

/// Moves the engine's output to the outbox, in order.
fn drain(engine: &mut Engine, outbox: &mut Outbox) {
    while let Some(t) = engine.poll_transmit() {
        match t {
            Transmit::Send(bytes) => outbox.buffer().extend_from_slice(&bytes),
            other => outbox.push(other),
        }
    }
}

/// The token to put and when to renew it: signed with the device key (renewed at
/// 80 % of `token_lifetime`), or given as it is; no token for X.509. `None` when
/// the key is not base64 or the given token does not parse.
fn credential(
    config: &DeviceConfig,
    now: Timestamp,
) -> Option<(Option<SasToken>, Option<Timestamp>)> {
    let cs = &config.connection_string;
    Some(match &cs.authentication {
        Authentication::SharedAccessKey(key) => {
            let (token, renew_at) = signed_token(config, key, now)?;
            (Some(token), Some(renew_at))
        }
        Authentication::SharedAccessSignature(token) => (Some(SasToken::parse(token).ok()?), None),
        Authentication::X509 => (None, None),
    })
}

fn source(address: &str) -> Source {
    Source { terminus: Terminus::at(Utf8Bytes::from(address)), ..Source::default() }
}

fn target(address: &str) -> Target {
    Target { terminus: Terminus::at(Utf8Bytes::from(address)), ..Target::default() }
}

fn error(condition: Symbol, description: &str) -> AmqpError {
    AmqpError::new(condition, Some(Utf8Bytes::from(description)))
}

fn description(error: Option<&AmqpError>) -> String {
    error.and_then(|e| e.description.as_ref()).map(|d| d.as_str().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
mod twin;
