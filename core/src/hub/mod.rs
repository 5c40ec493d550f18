//! The hub engine: every device connection of a local IoT Hub in one sans-IO
//! machine, connection ids in and connection ids out (DESIGN.md, "The sans-IO
//! contract").
//!
//! The engine keeps the registry, each device's C2D queue and protocol session, and
//! asks the runtime to persist D2C messages ([`HubEvent::StoreTelemetry`]); a device
//! is acknowledged only after [`Hub::telemetry_stored`] (DESIGN.md, "Storage is I/O").
//! Protocol rules live with each protocol ([`crate::mqtt::hub`],
//! [`crate::http::hub`]); what is shared —
//! authentication, one connection per identity, queues, logging of refusals — lives
//! here.

pub mod c2d;
mod connection;
pub mod d2c;
pub mod methods;
pub mod registry;
mod timers;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::string::ToString;
use alloc::vec::Vec;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub use c2d::{
    C2dConfig, C2dError, C2dQueue, Delivery, FeedbackRecord, FeedbackStatus, Outcome, QueuedC2d,
    Settled,
};
pub use connection::ProtocolError;
pub use d2c::{D2cLog, D2cRecord};
pub use methods::{MethodInvocation, MethodOutcome};
pub use registry::{AuthError, DeviceRecord, Registry, RegistryError};

use crate::Protocol;
use connection::HubConnection;
use timers::{TimerKey, Timers};

use crate::iothub::{
    ErrorCode, Identity, LockToken, Message, MethodRequest, MethodResponse, Twin, TwinError,
    TwinPatch, sas,
};
use crate::mqtt;
use crate::sansio::{ConnectionId, Endpoint, Transmit};
use crate::time::{Duration, Timestamp};
use bytes::Bytes;
use methods::{Methods, Pending};

/// Hub settings. [`HubConfig::default`] follows IoT Hub's own numbers (spec file §8).
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Host names devices may address in their SAS token audience (compared without
    /// port, ignoring case).
    pub host_names: Vec<String>,
    /// C2D queue rules.
    pub c2d: C2dConfig,
    /// Largest D2C message, bytes, counted with [`Message::size`]: 256 KiB.
    pub max_message_size: usize,
    /// Clock skew allowed on SAS expiry: 5 min (spec file §2.3).
    pub sas_skew: Duration,
    /// How long a new connection may take to authenticate: 30 s.
    pub connect_timeout: Duration,
    /// Largest MQTT packet accepted, bytes.
    pub mqtt_limits: mqtt::Limits,
    /// Largest packet accepted before a connection has authenticated, bytes: an
    /// IoT Hub CONNECT (ids of at most 128 characters, a user name, a SAS token)
    /// is well under 2 KiB, and a stranger should not make the hub hold the
    /// 272 KiB a telemetry PUBLISH may take. 16 KiB leaves room for a will.
    pub max_connect_size: usize,
    /// C2D messages sent to one MQTT connection and not yet acknowledged, at most.
    pub mqtt_c2d_in_flight: usize,
    /// Identities one AMQP connection may hold CBS tokens for, at most; a put-token
    /// for one more is refused with status 403 (IoT Hub's 403005
    /// IotHubMaxCbsTokenExceeded). Default [`crate::amqp::cbs::MAX_TOKENS`], IoT
    /// Hub's per-connection limit of about 1000 (spec file §5.2, §5.10).
    pub max_cbs_tokens: usize,
    /// How long an HTTP connection may sit idle between requests before the hub
    /// closes it: 240 s, the idle timeout of Azure's load balancers in front of IoT
    /// Hub's port 443 (their documented default, 4 minutes). A device that polls
    /// every 25 minutes (spec file §6.6) opens a connection per poll anyway.
    pub http_idle_timeout: Duration,
    /// Who judges a device's SAS token: this hub's registry (the default), or the
    /// runtime, as a field gateway does by putting the token upstream (spec file
    /// §5.2, §5.10).
    pub authentication: Authentication,
}

/// Who judges the SAS tokens devices connect with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authentication {
    /// The hub checks each token against its registry's keys (spec file §2.3).
    #[default]
    Registry,
    /// The hub checks only the token's form and expiry and asks the runtime with
    /// [`HubEvent::AuthenticationRequested`], holding the connection (no MQTT
    /// CONNACK) or the HTTP request until [`Hub::authenticated`] answers; a device
    /// the registry does not know gets its C2D queue and twin when it is accepted.
    /// A field gateway hands the token to the real hub, which judges it. Every
    /// HTTP request is judged, each carrying its own token (spec file §6.1), and a
    /// poll that finds the device's queue empty asks the runtime to fetch with
    /// [`HubEvent::C2dRequested`] before it is answered ([`Hub::c2d_fetched`]): the
    /// queue holds only what the gateway fetched upstream. MQTT and HTTP only: AMQP
    /// connections are checked against the registry still.
    Delegated,
}

/// Names one [`HubEvent::AuthenticationRequested`] until [`Hub::authenticated`]
/// answers it. Never reused by a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthRequest(pub u64);

/// Names one [`HubEvent::C2dRequested`] until [`Hub::c2d_fetched`] answers it.
/// Never reused by a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct C2dRequest(pub u64);

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            host_names: alloc::vec![String::from("localhost")],
            c2d: C2dConfig::default(),
            max_message_size: 256 * 1024,
            sas_skew: sas::DEFAULT_CLOCK_SKEW,
            connect_timeout: Duration::from_secs(30),
            mqtt_limits: mqtt::Limits::default(),
            max_connect_size: 16 * 1024,
            mqtt_c2d_in_flight: 16,
            max_cbs_tokens: crate::amqp::cbs::MAX_TOKENS,
            http_idle_timeout: Duration::from_secs(240),
            authentication: Authentication::Registry,
        }
    }
}

/// Where a D2C message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The device sent it.
    Device,
    /// The hub published the device's will when its connection dropped.
    Will,
}

/// Property names only the hub may set on D2C messages: the anti-spoofing stamps
/// (`iothub-connection-device-id`, `-module-id`, `-auth-method`,
/// `-auth-generation-id`, `iothub-enqueuedtime`; their MQTT bag forms `$.cdid`,
/// `$.cmid`) and the will mark `iothub-MessageType` (spec file §3, §4.1). Compared
/// without case, as a consumer might read them.
fn is_hub_stamp(name: &str) -> bool {
    let lower = |prefix: &str| {
        name.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    lower("iothub-connection-")
        || ["iothub-enqueuedtime", "iothub-MessageType", "$.cdid", "$.cmid"]
            .iter()
            .any(|stamp| name.eq_ignore_ascii_case(stamp))
}

/// Names one D2C message between [`HubEvent::StoreTelemetry`] and
/// [`Hub::telemetry_stored`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreTicket(pub u64);

/// What the hub tells its runtime and service side.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubEvent {
    /// Persist this D2C message, then call [`Hub::telemetry_stored`] with `ticket`;
    /// the device is acknowledged only then.
    StoreTelemetry {
        /// What to hand back.
        ticket: StoreTicket,
        /// The message with the hub's stamps.
        record: D2cRecord,
    },
    /// Under [`Authentication::Delegated`]: judge `token` for `identity`, then call
    /// [`Hub::authenticated`] with `request`. The connection (MQTT) or the request
    /// (HTTP) waits, within the connect timeout, without an answer.
    AuthenticationRequested {
        /// What to hand back.
        request: AuthRequest,
        /// The connection waiting.
        connection: ConnectionId,
        /// Who the device says it is (the MQTT user name's identity, the HTTP
        /// path's).
        identity: Identity,
        /// The SAS token it presented, as it presented it.
        token: String,
        /// The host name the device addressed (its hub's, not this one's, when it
        /// connects through a gateway): the MQTT user name's; for HTTP, which names
        /// it nowhere else, the host of the token's `sr`
        /// (`myhub.azure-devices.net` from `myhub.azure-devices.net/devices/d1`).
        host_name: String,
        /// How the device speaks: an MQTT device is pushed its C2D messages, an
        /// HTTP device polls for them ([`HubEvent::C2dRequested`]).
        protocol: Protocol,
    },
    /// Under [`Authentication::Delegated`]: an HTTP device polled for a C2D message
    /// (spec file §6.4) and its queue holds none it may take. Fetch at most one
    /// from upstream, queue it with [`Hub::send_c2d`], then call
    /// [`Hub::c2d_fetched`] with `request`, whether or not there was one. The poll
    /// waits, within the connect timeout, without an answer.
    C2dRequested {
        /// What to hand back.
        request: C2dRequest,
        /// The connection waiting.
        connection: ConnectionId,
        /// Whose queue.
        device_id: String,
    },
    /// A device authenticated.
    Connected {
        /// Its connection.
        connection: ConnectionId,
        /// Who.
        identity: Identity,
        /// Whether an earlier session was resumed.
        session_present: bool,
    },
    /// The hub refused a connection or an operation. The SDKs hide the code from
    /// their users, so this is where it is seen.
    Refused {
        /// The connection.
        connection: ConnectionId,
        /// Who, when known.
        identity: Option<Identity>,
        /// IoT Hub's code.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
    /// An authenticated connection ended.
    Disconnected {
        /// The connection.
        connection: ConnectionId,
        /// Who.
        identity: Identity,
        /// IoT Hub's code for the cause.
        code: ErrorCode,
        /// Why, in words.
        reason: String,
    },
    /// A C2D message left its queue or was given back (with its feedback record when
    /// its sender asked for one).
    C2dSettled(Settled),
    /// A device patched its reported properties (spec file §4.5, §5.6); the hub
    /// keeps them in its twin.
    ReportedUpdated {
        /// Whose twin.
        device_id: String,
        /// The reported section's new version.
        version: u64,
        /// The patch the device sent.
        patch: TwinPatch,
    },
    /// A direct method invoked with [`Hub::invoke_method`] ended: the device
    /// answered, or the hub answered for it.
    MethodResult {
        /// The invocation.
        invocation: MethodInvocation,
        /// The device it went to.
        device_id: String,
        /// The method's name.
        name: String,
        /// How it ended.
        outcome: MethodOutcome,
    },
}

/// Why a service-side request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// 404001: no such device.
    #[error("device {0} is not registered")]
    DeviceNotFound(String),
    /// The queue refused the message.
    #[error(transparent)]
    C2d(#[from] C2dError),
    /// 413001: the properties, percent-encoded, cannot fit in an MQTT topic name
    /// (65 535 bytes), so no device could receive the message over MQTT.
    #[error("the C2D properties take {len} bytes in an MQTT topic; at most 65535 fit")]
    PropertiesTooLong {
        /// Bytes the topic would take.
        len: usize,
    },
    /// 404103: the device is not connected, or not subscribed to direct methods
    /// (spec file §4.6).
    #[error("device {0} is not online for direct methods")]
    DeviceNotOnline(String),
    /// A desired-properties patch the twin refuses (400 not an object or a
    /// reserved name, 413 past 32 KiB; spec file §4.5).
    #[error(transparent)]
    Twin(TwinError),
    /// 412001: a conditional desired update named another version than the
    /// twin's.
    #[error("the desired properties are at version {current}, not {expected}")]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The version the twin has.
        current: u64,
    },
    /// 400004: a method timeout outside IoT Hub's 5 s to 300 s, or a method name
    /// that is empty or longer than [`methods::MAX_NAME_LEN`].
    #[error("invalid method invocation: {0}")]
    InvalidInvocation(String),
    /// 429001: [`methods::MAX_PENDING_PER_DEVICE`] invocations already wait for the
    /// device.
    #[error("{0} method invocations already wait for the device")]
    TooManyPending(usize),
    /// 413001: a direct method payload over 128 KiB (spec file §4.6).
    #[error("a method payload of {0} bytes exceeds 131072")]
    PayloadTooLarge(usize),
    /// 400004: a property an HTTP device could not receive in a header (a name
    /// that is not a token, a value with a control character or surrounding
    /// whitespace). IoT Hub allows C2D properties a narrow character set (spec file
    /// §3), so this is refused whatever the device speaks.
    #[error("the C2D message cannot go in HTTP headers: {0}")]
    NotHeaderSafe(crate::http::MessageError),
}

impl HubError {
    /// IoT Hub's code for the error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::DeviceNotFound(_) => ErrorCode::DEVICE_NOT_FOUND,
            HubError::C2d(e) => e.code(),
            HubError::PropertiesTooLong { .. } => ErrorCode::MESSAGE_TOO_LARGE,
            HubError::NotHeaderSafe(_) => ErrorCode::ARGUMENT_INVALID,
            HubError::DeviceNotOnline(_) => ErrorCode::DEVICE_NOT_ONLINE,
            HubError::VersionMismatch { .. } => ErrorCode::PRECONDITION_FAILED,
            HubError::InvalidInvocation(_) => ErrorCode::ARGUMENT_INVALID,
            HubError::TooManyPending(_) => ErrorCode::THROTTLING,
            HubError::Twin(TwinError::TooLarge { .. }) | HubError::PayloadTooLarge(_) => {
                ErrorCode::MESSAGE_TOO_LARGE
            }
            HubError::Twin(_) => ErrorCode::ARGUMENT_INVALID,
        }
    }
}

/// The local IoT Hub: see the module documentation.
#[derive(Debug)]
pub struct Hub {
    state: HubState,
    connections: BTreeMap<ConnectionId, HubConnection>,
    /// Connections whose outbox may hold something.
    ready: BTreeSet<ConnectionId>,
    /// Every connection's and queue's next deadline.
    timers: Timers,
    next_connection: u64,
}

/// Everything but the connections, so a connection can be handed the rest.
#[derive(Debug)]
pub(crate) struct HubState {
    pub(crate) config: HubConfig,
    pub(crate) registry: Registry,
    devices: BTreeMap<String, DeviceState>,
    /// Devices whose state a step may have changed: their queue deadlines are read
    /// again after it.
    touched: BTreeSet<String>,
    events: VecDeque<HubEvent>,
    rng: Xoshiro256PlusPlus,
    next_ticket: u64,
    /// Which connection waits for each store.
    pending_stores: BTreeMap<StoreTicket, ConnectionId>,
    /// Devices whose connection a newer one replaced: the old connection, and the
    /// device it must stop speaking for.
    pub(crate) evicted: Vec<(ConnectionId, String)>,
    /// Direct methods waiting for their devices.
    methods: Methods,
    /// Authentications asked of the runtime and not answered, and the connection
    /// waiting for each.
    pending_auth: BTreeMap<AuthRequest, ConnectionId>,
    next_auth: u64,
    /// C2D fetches asked of the runtime and not answered, and the connection
    /// waiting for each.
    pending_c2d: BTreeMap<C2dRequest, ConnectionId>,
    next_c2d: u64,
}

/// What the hub keeps per device between connections.
#[derive(Debug)]
pub(crate) struct DeviceState {
    pub(crate) queue: C2dQueue,
    /// The connection authenticated as this device, if any.
    pub(crate) connection: Option<ConnectionId>,
    /// MQTT session state kept for Clean Session 0 [MQTT-3.1.2-4].
    pub(crate) mqtt_session: Option<mqtt::hub::Session>,
    /// The device's twin, kept across its connections (spec file §4.5).
    pub(crate) twin: Twin,
    next_sequence: u64,
}

impl HubState {
    /// A registered device's state, made on first use; under
    /// [`Authentication::Delegated`] any device's, the registry being upstream.
    pub(crate) fn device_mut(&mut self, device_id: &str) -> Option<&mut DeviceState> {
        if !self.devices.contains_key(device_id) {
            if self.config.authentication != Authentication::Delegated {
                self.registry.get(device_id)?;
            }
            let queue = C2dQueue::new(device_id, self.config.c2d);
            let state = DeviceState {
                queue,
                connection: None,
                mqtt_session: None,
                twin: Twin::default(),
                next_sequence: 1,
            };
            self.devices.insert(String::from(device_id), state);
        }
        self.device(device_id)
    }

    /// A device's state, if it has any yet.
    pub(crate) fn device(&mut self, device_id: &str) -> Option<&mut DeviceState> {
        let device = self.devices.get_mut(device_id)?;
        if !self.touched.contains(device_id) {
            self.touched.insert(String::from(device_id));
        }
        Some(device)
    }

    /// Checks a SAS token for `identity` against the registry.
    pub(crate) fn authenticate(
        &self,
        identity: &Identity,
        token: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        self.registry
            .authenticate(identity, token, &self.config.host_names, now, self.config.sas_skew)
            .map(|_| ())
    }

    /// The checks a delegating hub makes itself ([`Authentication::Delegated`])
    /// before the runtime judges `token` for `identity`: a token that does not parse
    /// (TV-8), names another device or a module, or has expired (the clock skew
    /// allowed) could never pass upstream, or would make the runtime speak for this
    /// device with another's token, so it is refused without asking. Any hub host
    /// is taken: the runtime's hub judges that. Returns the parsed token and its
    /// audience's host (with its port, if written), the hub the device addresses.
    ///
    /// Errors: [`AuthError::MalformedToken`], [`AuthError::WrongAudience`],
    /// [`AuthError::ModuleNotSupported`], [`AuthError::Expired`].
    pub(crate) fn check_delegated(
        &self,
        identity: &Identity,
        token: &str,
        now: Timestamp,
    ) -> Result<(sas::SasToken, String), AuthError> {
        if identity.module_id.is_some() {
            return Err(AuthError::ModuleNotSupported);
        }
        let parsed = sas::SasToken::parse(token).map_err(|_| AuthError::MalformedToken)?;
        let audience = parsed.audience();
        let host = registry::audience_host(&audience, &identity.device_id)
            .map(String::from)
            .ok_or(AuthError::WrongAudience)?;
        if parsed.expiry_time() + self.config.sas_skew > now {
            Ok((parsed, host))
        } else {
            Err(AuthError::Expired)
        }
    }

    /// Asks the runtime to judge `token` ([`Authentication::Delegated`]).
    pub(crate) fn request_authentication(
        &mut self,
        connection: ConnectionId,
        identity: Identity,
        token: String,
        host_name: String,
        protocol: Protocol,
    ) -> AuthRequest {
        let request = AuthRequest(self.next_auth);
        self.next_auth += 1;
        self.pending_auth.insert(request, connection);
        self.events.push_back(HubEvent::AuthenticationRequested {
            request,
            connection,
            identity,
            token,
            host_name,
            protocol,
        });
        request
    }

    /// An authentication the runtime did not answer in time: its answer, when it
    /// comes, finds nothing waiting.
    pub(crate) fn forget_authentication(&mut self, request: AuthRequest) {
        self.pending_auth.remove(&request);
    }

    /// Asks the runtime to fetch a C2D message for `device_id` from upstream
    /// ([`Authentication::Delegated`]).
    pub(crate) fn request_c2d(
        &mut self,
        connection: ConnectionId,
        device_id: String,
    ) -> C2dRequest {
        let request = C2dRequest(self.next_c2d);
        self.next_c2d += 1;
        self.pending_c2d.insert(request, connection);
        self.events.push_back(HubEvent::C2dRequested { request, connection, device_id });
        request
    }

    /// A fetch the runtime did not answer in time.
    pub(crate) fn forget_c2d_request(&mut self, request: C2dRequest) {
        self.pending_c2d.remove(&request);
    }

    /// Drops every request `connection` waited for: it is gone.
    fn forget_connection(&mut self, connection: ConnectionId) {
        self.pending_auth.retain(|_, waiting| *waiting != connection);
        self.pending_c2d.retain(|_, waiting| *waiting != connection);
    }

    /// Makes `connection` the device's one connection; an older one is evicted
    /// (spec file §4.1.3: 400027 ConnectionForcefullyClosedOnNewConnection).
    pub(crate) fn bind(&mut self, device_id: &str, connection: ConnectionId) {
        let Some(device) = self.device_mut(device_id) else {
            return;
        };
        if let Some(old) = device.connection.replace(connection) {
            if old != connection {
                // The session's deliveries were the old connection's: back to the
                // queue, to be sent again on the new one.
                if let Some(session) = device.mqtt_session.as_mut() {
                    session.detach(&mut device.queue);
                }
                self.evicted.push((old, String::from(device_id)));
            }
        }
    }

    /// Forgets that `connection` speaks for `device_id`, if it still does.
    pub(crate) fn unbind(&mut self, device_id: &str, connection: ConnectionId) {
        let Some(device) = self.device(device_id) else { return };
        if device.connection != Some(connection) {
            return;
        }
        device.connection = None;
        // Its method requests went on that connection: no answer can come now.
        for (invocation, pending) in self.methods.take_device(device_id) {
            self.events.push_back(HubEvent::MethodResult {
                invocation,
                device_id: pending.device_id,
                name: pending.name,
                outcome: MethodOutcome::Disconnected,
            });
        }
    }

    /// Stamps a D2C message and asks the runtime to store it.
    ///
    /// What the hub stamps, a device may not claim: properties named like the
    /// hub's anti-spoofing stamps (spec file §3) are dropped, so the record's
    /// identity and enqueued time, and a `Will` mark, are only ever the hub's.
    pub(crate) fn store_telemetry(
        &mut self,
        now: Timestamp,
        connection: ConnectionId,
        identity: &Identity,
        mut message: Message,
        origin: Origin,
    ) -> StoreTicket {
        message.properties.retain(|name, _| !is_hub_stamp(name));
        if origin == Origin::Will {
            // DOC-MQTT: the will arrives as telemetry marked as such (spec file §4.1).
            message.properties.set("iothub-MessageType", "Will");
        }
        // An HTTP device sends without a connection that made its state.
        if !self.devices.contains_key(&identity.device_id) {
            let _ = self.device_mut(&identity.device_id);
        }
        // Only the sequence number changes, no queue deadline: the plain lookup
        // keeps the telemetry path free of the `touched` bookkeeping.
        let sequence_number = match self.devices.get_mut(&identity.device_id) {
            Some(d) => {
                d.next_sequence += 1;
                d.next_sequence - 1
            }
            None => 0,
        };
        message.enqueued_time = Some(now);
        let ticket = StoreTicket(self.next_ticket);
        self.next_ticket += 1;
        self.pending_stores.insert(ticket, connection);
        let record =
            D2cRecord { identity: identity.clone(), sequence_number, enqueued_time: now, message };
        self.events.push_back(HubEvent::StoreTelemetry { ticket, record });
        ticket
    }

    /// A fresh C2D lock: a random GUID (version 4 layout).
    pub(crate) fn new_lock(&mut self) -> LockToken {
        let mut g = [0u8; 16];
        self.rng.fill_bytes(&mut g);
        g[6] = (g[6] & 0x0f) | 0x40;
        g[8] = (g[8] & 0x3f) | 0x80;
        LockToken::from_guid(g)
    }

    pub(crate) fn emit(&mut self, event: HubEvent) {
        self.events.push_back(event);
    }

    /// `device_id`'s twin as a GET answers it (spec file §4.5); a registered
    /// device's twin starts empty at version 1. `None` for an unknown device.
    pub(crate) fn twin(&mut self, device_id: &str) -> Option<Twin> {
        self.device_mut(device_id).map(|d| d.twin.clone())
    }

    /// A device's reported-properties patch: merged into its twin, reported as
    /// [`HubEvent::ReportedUpdated`]. Returns the new version.
    ///
    /// Errors: [`TwinError`] when the section would grow past its limit; a device
    /// that is not registered cannot be connected, so it has a twin.
    pub(crate) fn patch_reported(
        &mut self,
        device_id: &str,
        patch: TwinPatch,
    ) -> Result<u64, TwinError> {
        let Some(device) = self.device_mut(device_id) else {
            return Err(TwinError::NotATwin(String::from("no such device")));
        };
        let version = device.twin.reported.apply(&patch)?;
        self.events.push_back(HubEvent::ReportedUpdated {
            device_id: String::from(device_id),
            version,
            patch,
        });
        Ok(version)
    }

    /// A device answered a direct method. Returns false when no invocation waits
    /// for this device and request id (answered already, timed out, or never
    /// made): the answer is dropped.
    pub(crate) fn method_responded(&mut self, device_id: &str, response: MethodResponse) -> bool {
        let MethodResponse { request_id, status, payload } = response;
        let Some((invocation, pending)) = self.methods.take_by_request(device_id, &request_id)
        else {
            return false;
        };
        self.events.push_back(HubEvent::MethodResult {
            invocation,
            device_id: pending.device_id,
            name: pending.name,
            outcome: MethodOutcome::Responded { status, payload },
        });
        true
    }

    /// Moves the queue's settlement reports into the event stream.
    pub(crate) fn drain_settled(&mut self, device_id: &str) {
        // Its callers changed the queue through `device`, which marked it touched.
        let Some(device) = self.devices.get_mut(device_id) else {
            return;
        };
        while let Some(settled) = device.queue.poll_settled() {
            self.events.push_back(HubEvent::C2dSettled(settled));
        }
    }
}

impl Hub {
    /// A hub with an empty registry. `seed` drives lock tokens and other random
    /// choices, so a test replays a run exactly.
    pub fn new(config: HubConfig, seed: u64) -> Self {
        Hub {
            state: HubState {
                config,
                registry: Registry::new(),
                devices: BTreeMap::new(),
                touched: BTreeSet::new(),
                events: VecDeque::new(),
                rng: Xoshiro256PlusPlus::seed_from_u64(seed),
                next_ticket: 0,
                pending_stores: BTreeMap::new(),
                evicted: Vec::new(),
                methods: Methods::default(),
                pending_auth: BTreeMap::new(),
                next_auth: 0,
                pending_c2d: BTreeMap::new(),
                next_c2d: 0,
            },
            connections: BTreeMap::new(),
            ready: BTreeSet::new(),
            timers: Timers::default(),
            next_connection: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.state.config
    }

    /// The device registry.
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// The device registry, to add or change devices.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.state.registry
    }

    /// Queues a C2D message for `device_id` (the service side's "send"). Returns its
    /// sequence number. A connected, subscribed device receives it at once.
    pub fn send_c2d(
        &mut self,
        now: Timestamp,
        device_id: &str,
        message: Message,
    ) -> Result<u64, HubError> {
        let device = self
            .state
            .device_mut(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        // Refused now rather than dead-lettered at delivery: the service hears why.
        let mut stamped = message.clone();
        device.queue.stamp(now, &mut stamped);
        let len = mqtt::topic::c2d(device_id, &stamped).len();
        if len > usize::from(u16::MAX) {
            return Err(HubError::PropertiesTooLong { len });
        }
        // Any lock does: only the message's own fields can fail.
        let headers = crate::http::C2dHeaders {
            lock_token: LockToken::from_guid([0; 16]),
            sequence_number: 0,
            delivery_count: 0,
        };
        crate::http::message::write_c2d(&headers, &stamped, &mut Vec::new())
            .map_err(HubError::NotHeaderSafe)?;
        let sequence = device.queue.enqueue(now, message)?;
        let connection = device.connection;
        self.state.drain_settled(device_id);
        if let Some(id) = connection {
            self.with_connection(now, id, |conn, state| conn.pump_c2d(now, device_id, state));
        }
        self.refresh_timers(None);
        Ok(sequence)
    }

    /// Empties `device_id`'s C2D queue (the service side's "purge"). Returns how many
    /// messages were removed.
    pub fn purge_c2d(&mut self, now: Timestamp, device_id: &str) -> Result<usize, HubError> {
        let device = self
            .state
            .device(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        let removed = device.queue.len();
        device.queue.purge(now);
        self.state.drain_settled(device_id);
        self.refresh_timers(None);
        Ok(removed)
    }

    /// `device_id`'s C2D message with this sequence number as its queue holds it,
    /// stamped: what a runtime hands its store once [`send_c2d`](Self::send_c2d)
    /// returned the number, before the service hears it was queued.
    pub fn queued_c2d(&self, device_id: &str, sequence_number: u64) -> Option<QueuedC2d> {
        self.state.devices.get(device_id)?.queue.get(sequence_number)
    }

    /// Puts back a C2D message a store kept for `device_id`, enqueued with its
    /// sequence number and delivery count ([`C2dQueue::restore`]). A runtime restores
    /// what its store kept before it accepts connections; a device connected already
    /// receives the message at once.
    ///
    /// Errors: [`HubError::DeviceNotFound`]: restore the registry first.
    pub fn restore_c2d(
        &mut self,
        now: Timestamp,
        device_id: &str,
        queued: QueuedC2d,
    ) -> Result<(), HubError> {
        let device = self
            .state
            .device_mut(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        device.queue.restore(queued);
        if let Some(id) = device.connection {
            self.with_connection(now, id, |conn, state| conn.pump_c2d(now, device_id, state));
        }
        self.refresh_timers(None);
        Ok(())
    }

    /// Raises the sequence numbers a restarted hub hands out: `device_id`'s next D2C
    /// message gets at least `d2c_next`, its next C2D message at least `c2d_next`, so
    /// no number a consumer saw before the restart is used again. Numbers never go
    /// down.
    ///
    /// Errors: [`HubError::DeviceNotFound`]: restore the registry first.
    pub fn restore_sequences(
        &mut self,
        device_id: &str,
        d2c_next: u64,
        c2d_next: u64,
    ) -> Result<(), HubError> {
        let device = self
            .state
            .device_mut(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        device.next_sequence = device.next_sequence.max(d2c_next);
        device.queue.restore_next_sequence_number(c2d_next);
        Ok(())
    }

    /// Puts back `device_id`'s twin as a store kept it.
    ///
    /// Errors: [`HubError::DeviceNotFound`]: restore the registry first.
    pub fn restore_twin(&mut self, device_id: &str, twin: Twin) -> Result<(), HubError> {
        let device = self
            .state
            .device_mut(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        device.twin = twin;
        Ok(())
    }

    /// `device_id`'s twin: its desired and reported properties (the service side's
    /// "read twin").
    ///
    /// Errors: [`HubError::DeviceNotFound`].
    pub fn twin(&mut self, device_id: &str) -> Result<Twin, HubError> {
        self.state.twin(device_id).ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))
    }

    /// Patches `device_id`'s desired properties (the service side's "update twin"):
    /// the desired version goes up by one, and a connected device subscribed to
    /// desired updates receives the patch with it (spec file §4.5). A device that is
    /// offline catches up with a GET. Returns the new desired version.
    ///
    /// Errors: [`HubError::DeviceNotFound`]; [`HubError::Twin`] when the section
    /// would pass 32 KiB.
    pub fn update_desired(
        &mut self,
        now: Timestamp,
        device_id: &str,
        patch: &TwinPatch,
    ) -> Result<u64, HubError> {
        let device = self
            .state
            .device_mut(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        let version = device.twin.desired.apply(patch).map_err(HubError::Twin)?;
        if let Some(id) = device.connection {
            self.with_connection(now, id, |conn, state| {
                conn.desired_updated(now, device_id, patch, version, state);
            });
        }
        Ok(version)
    }

    /// [`update_desired`](Self::update_desired) only while the desired properties
    /// are at version `expected`: a service that read the twin changes it only if
    /// nobody changed it since, as IoT Hub's `If-Match` does with an ETag.
    ///
    /// Errors: as [`update_desired`](Self::update_desired);
    /// [`HubError::VersionMismatch`] (412001) when the version moved on.
    pub fn update_desired_if(
        &mut self,
        now: Timestamp,
        device_id: &str,
        patch: &TwinPatch,
        expected: u64,
    ) -> Result<u64, HubError> {
        let current = self.twin(device_id)?.desired.version;
        if current != expected {
            return Err(HubError::VersionMismatch { expected, current });
        }
        self.update_desired(now, device_id, patch)
    }

    /// Invokes method `name` on `device_id` with `payload` (JSON or empty): the
    /// request goes to the device at once, and [`HubEvent::MethodResult`] with the
    /// returned id reports the device's answer, or the hub's own after `timeout`
    /// (spec file §4.6, §5.7).
    ///
    /// Errors: [`HubError::DeviceNotFound`]; [`HubError::DeviceNotOnline`] when the
    /// device is not connected or has not subscribed to methods;
    /// [`HubError::PayloadTooLarge`] past 128 KiB; [`HubError::InvalidInvocation`]
    /// for a timeout outside 5–300 s or a name empty or too long;
    /// [`HubError::TooManyPending`] when 64 invocations already wait for the device.
    /// A device whose connection ends with invocations waiting answers them at once
    /// with [`MethodOutcome::Disconnected`].
    pub fn invoke_method(
        &mut self,
        now: Timestamp,
        device_id: &str,
        name: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<MethodInvocation, HubError> {
        if payload.len() > crate::iothub::method::MAX_PAYLOAD {
            return Err(HubError::PayloadTooLarge(payload.len()));
        }
        if !(methods::MIN_TIMEOUT..=methods::MAX_TIMEOUT).contains(&timeout) {
            let reason = format!("a timeout of {} ms is outside 5 s to 300 s", timeout.as_millis());
            return Err(HubError::InvalidInvocation(reason));
        }
        if name.is_empty() || name.len() > methods::MAX_NAME_LEN {
            let reason = format!("a method name of {} bytes (1 to 1024)", name.len());
            return Err(HubError::InvalidInvocation(reason));
        }
        let waiting = self.state.methods.waiting_for(device_id);
        if waiting >= methods::MAX_PENDING_PER_DEVICE {
            return Err(HubError::TooManyPending(waiting));
        }
        let device = self
            .state
            .device_mut(device_id)
            .ok_or_else(|| HubError::DeviceNotFound(String::from(device_id)))?;
        let not_online = || HubError::DeviceNotOnline(String::from(device_id));
        let connection = device.connection.ok_or_else(not_online)?;
        // A GUID: AMQP carries it as a uuid, which the C SDK requires (spec file §5.7).
        let request_id = self.state.new_lock().to_string();
        let request =
            MethodRequest { request_id: request_id.clone(), name: String::from(name), payload };
        let mut delivered = false;
        self.with_connection(now, connection, |conn, state| {
            delivered = conn.method_request(now, device_id, &request, state);
        });
        if !delivered {
            return Err(not_online());
        }
        let id = self.state.methods.next_id();
        let pending =
            Pending { device_id: String::from(device_id), request_id, name: request.name };
        self.state.methods.insert(id, pending);
        self.timers.set(TimerKey::Method(id), Some(now + timeout));
        Ok(id)
    }

    /// The runtime's answer to [`HubEvent::AuthenticationRequested`]: `Ok` accepts
    /// the connection (MQTT CONNACK 0, the device's state made if the registry does
    /// not know it) or serves the HTTP request; `Err` refuses it with IoT Hub's
    /// code for the log (MQTT: CONNACK 5, not authorized, whatever the code, spec
    /// file §4.1.3, then closed; HTTP: 401 whatever the code, with the code in
    /// `iothub-errorcode` and IoT Hub's error body). Returns whether a connection
    /// still waited for `request`: false once it closed or timed out (an HTTP
    /// request was answered 504101 GatewayTimeout then), or for a request answered
    /// before.
    pub fn authenticated(
        &mut self,
        now: Timestamp,
        request: AuthRequest,
        result: Result<(), ErrorCode>,
    ) -> bool {
        let Some(id) = self.state.pending_auth.remove(&request) else {
            return false;
        };
        let mut waited = false;
        self.with_connection(now, id, |conn, state| {
            waited = conn.authenticated(now, request, result, state);
        });
        waited
    }

    /// The runtime's answer to [`HubEvent::C2dRequested`]: it queued what it
    /// fetched with [`send_c2d`](Self::send_c2d), or found nothing. The waiting
    /// poll takes the next message the device's queue may hand out (200 with its
    /// lock, spec file §6.4) or is answered 204. Returns whether a poll still
    /// waited for `request`: false once its connection closed or the poll timed out
    /// (answered 204 then; a message queued since waits for the next poll), or for
    /// a request answered before.
    pub fn c2d_fetched(&mut self, now: Timestamp, request: C2dRequest) -> bool {
        let Some(id) = self.state.pending_c2d.remove(&request) else {
            return false;
        };
        let mut waited = false;
        self.with_connection(now, id, |conn, state| {
            waited = conn.c2d_fetched(now, request, state);
        });
        waited
    }

    /// The runtime stored the message of `ticket`: acknowledge it to its device.
    pub fn telemetry_stored(&mut self, now: Timestamp, ticket: StoreTicket) {
        if let Some(id) = self.state.pending_stores.remove(&ticket) {
            self.with_connection(now, id, |conn, state| conn.telemetry_stored(now, ticket, state));
        }
    }

    /// The runtime could not keep the message of `ticket` (a store that failed, a
    /// gateway's upstream hub that refused it): its device is told as its protocol
    /// can, with IoT Hub's `code` for the log: MQTT 3.1.1 has no negative PUBACK,
    /// so the connection closes and the device sends it again after reconnecting;
    /// AMQP rejects the delivery (`amqp:internal-error`); HTTP answers the request
    /// with the code's status.
    pub fn telemetry_refused(&mut self, now: Timestamp, ticket: StoreTicket, code: ErrorCode) {
        if let Some(id) = self.state.pending_stores.remove(&ticket) {
            self.with_connection(now, id, |conn, state| {
                conn.telemetry_refused(now, ticket, code, state);
            });
        }
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    fn with_connection(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        f: impl FnOnce(&mut HubConnection, &mut HubState),
    ) {
        let Some(conn) = self.connections.get_mut(&id) else {
            return;
        };
        f(conn, &mut self.state);
        self.ready.insert(id);
        self.settle_connection_effects(now);
        self.refresh_timers(Some(id));
    }

    /// Applies what one connection's step did to others: evictions.
    fn settle_connection_effects(&mut self, now: Timestamp) {
        while let Some((old, device_id)) = self.state.evicted.pop() {
            if let Some(conn) = self.connections.get_mut(&old) {
                conn.evict(now, &device_id, &mut self.state);
                self.ready.insert(old);
                self.refresh_timers(Some(old));
            }
        }
    }

    /// Reads the deadlines a step may have moved again: `connection`'s, and those of
    /// the queues of the devices it touched.
    fn refresh_timers(&mut self, connection: Option<ConnectionId>) {
        if let Some(id) = connection {
            let at = self.connections.get(&id).and_then(|c| c.poll_timeout());
            self.timers.set(TimerKey::Connection(id), at);
        }
        for device_id in core::mem::take(&mut self.state.touched) {
            let at = self.state.devices.get(&device_id).and_then(|d| d.queue.poll_timeout());
            self.timers.set(TimerKey::Queue(device_id), at);
        }
    }
}

impl Endpoint for Hub {
    type Event = HubEvent;
    type Error = ProtocolError;

    fn accept(&mut self, now: Timestamp, protocol: Protocol) -> ConnectionId {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        let conn = match protocol {
            Protocol::Mqtt => HubConnection::Mqtt(alloc::boxed::Box::new(
                mqtt::hub::MqttConnection::new(id, now, &self.state.config),
            )),
            Protocol::Amqp => HubConnection::Amqp(alloc::boxed::Box::new(
                crate::amqp::hub::AmqpConnection::new(id, now, &self.state.config),
            )),
            Protocol::Http => HubConnection::Http(alloc::boxed::Box::new(
                crate::http::hub::HttpConnection::new(id, now, &self.state.config),
            )),
        };
        self.connections.insert(id, conn);
        self.refresh_timers(Some(id));
        id
    }

    fn handle_input(
        &mut self,
        now: Timestamp,
        id: ConnectionId,
        bytes: &[u8],
    ) -> Result<(), Self::Error> {
        let mut result = Ok(());
        self.with_connection(now, id, |conn, state| result = conn.handle_input(now, bytes, state));
        result
    }

    fn handle_close(&mut self, now: Timestamp, id: ConnectionId) {
        if let Some(mut conn) = self.connections.remove(&id) {
            self.state.forget_connection(id);
            conn.handle_close(now, &mut self.state);
            self.ready.remove(&id);
            self.settle_connection_effects(now);
            self.refresh_timers(Some(id));
        }
    }

    fn poll_transmit(&mut self) -> Option<(ConnectionId, Transmit)> {
        while let Some(&id) = self.ready.first() {
            let Some(conn) = self.connections.get_mut(&id) else {
                self.ready.remove(&id);
                continue;
            };
            match conn.poll_transmit() {
                Some(Transmit::Close) => {
                    // The connection ended on this side; it has cleaned up already.
                    self.connections.remove(&id);
                    self.ready.remove(&id);
                    self.state.forget_connection(id);
                    self.timers.set(TimerKey::Connection(id), None);
                    return Some((id, Transmit::Close));
                }
                Some(t) => return Some((id, t)),
                None => {
                    self.ready.remove(&id);
                }
            }
        }
        None
    }

    fn poll_event(&mut self) -> Option<HubEvent> {
        self.state.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        for key in self.timers.due(now) {
            match key {
                TimerKey::Connection(id) => {
                    self.with_connection(now, id, |conn, state| conn.handle_timeout(now, state));
                }
                TimerKey::Method(id) => {
                    self.timers.set(TimerKey::Method(id), None);
                    if let Some(pending) = self.state.methods.take(id) {
                        self.state.emit(HubEvent::MethodResult {
                            invocation: id,
                            device_id: pending.device_id,
                            name: pending.name,
                            outcome: MethodOutcome::TimedOut,
                        });
                    }
                }
                TimerKey::Queue(device_id) => {
                    let Some(device) = self.state.device(&device_id) else { continue };
                    device.queue.handle_timeout(now);
                    let connection = device.connection;
                    self.state.drain_settled(&device_id);
                    match connection {
                        Some(id) => {
                            self.with_connection(now, id, |conn, state| {
                                conn.pump_c2d(now, &device_id, state);
                            });
                        }
                        None => self.refresh_timers(None),
                    }
                }
            }
        }
    }
}
