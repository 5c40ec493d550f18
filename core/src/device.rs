//! One device API over every protocol.
//!
//! Application code sends telemetry, receives C2D messages and settles them the same
//! way whatever the protocol: [`Device`] forwards to the protocol's session. A
//! disposition a protocol cannot express is an error naming the protocol, never a
//! silent complete (DESIGN.md, "push versus poll").

use alloc::string::String;
use core::fmt;

use crate::Protocol;
use crate::iothub::{
    ConnectionString, Disposition, LockToken, Message, MethodRequest, MethodResponse, SasToken,
    Twin, TwinPatch, renewal_time,
};
use crate::retry::Backoff;
use crate::sansio::{Connection, Transmit};
use crate::time::{Duration, Timestamp};

#[cfg(feature = "amqp")]
use crate::amqp;
#[cfg(feature = "http")]
use crate::http;
#[cfg(feature = "mqtt")]
use crate::mqtt;

/// The largest D2C message IoT Hub accepts, bytes (spec file §8), counted with
/// [`Message::size`]: `send_telemetry` refuses larger ones over every protocol.
pub const MAX_TELEMETRY_SIZE: usize = 256 * 1024;

/// IoT Hub's guidance for HTTP devices: poll for C2D messages at most once every
/// 25 minutes (spec file §6.6; the C SDK's default minimum time between polls).
/// The default of [`DeviceConfig::c2d_poll_interval`].
pub const GUIDANCE_POLL_INTERVAL: Duration = Duration::from_secs(25 * 60);

/// How a device connects and behaves. [`DeviceConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// Who the device is, where its hub is, and its credential.
    pub connection_string: ConnectionString,
    /// The protocol to speak.
    pub protocol: Protocol,
    /// MQTT Keep Alive: the longest quiet interval before a PINGREQ. Whole seconds
    /// are sent; zero turns pinging off. Default 240 s, as the C SDKs use (spec file
    /// §4.1.2). Over AMQP the idle time-out announced in `open` (the hub
    /// heartbeats at half of it, spec file §5.1). Over HTTP how long an idle
    /// connection stays open (zero: until the hub closes it).
    pub keep_alive: Duration,
    /// How long to wait for a PINGRESP (or a CONNACK) before declaring the
    /// connection dead; over AMQP, for a put-token response (spec file §5.2); over
    /// HTTP, for the transport to open and for each response.
    /// Default 30 s.
    pub response_timeout: Duration,
    /// MQTT Clean Session. Default false, as every IoT Hub SDK connects (spec file
    /// §4.1): the hub keeps the C2D subscription and undelivered messages.
    pub clean_session: bool,
    /// Telemetry messages sent but not yet acknowledged, at most; over HTTP the most
    /// messages in one batch (spec file §6.3). Default 16.
    pub max_in_flight: usize,
    /// Telemetry messages waiting to be sent (while offline or while the in-flight
    /// window is full), at most; `send_telemetry` refuses more. Default 1000.
    pub max_queued: usize,
    /// Lifetime of the SAS tokens the device signs with its key. Default 3600 s,
    /// as the SDKs use (spec file §2.3).
    pub token_lifetime: Duration,
    /// Reconnect schedule after a lost connection.
    pub backoff: Backoff,
    /// Subscribe to C2D messages (over HTTP: poll for them). Default true.
    pub receive_c2d: bool,
    /// Subscribe to desired-property updates of the twin
    /// ([`DeviceEvent::DesiredUpdated`]; MQTT, AMQP; spec file §4.5, §5.6). Default
    /// false, as the SDKs subscribe only when an application listens. Twin requests
    /// ([`Device::get_twin`], [`Device::patch_reported`]) need no subscription.
    pub receive_desired: bool,
    /// Subscribe to direct methods ([`DeviceEvent::MethodRequest`]; MQTT, AMQP; spec
    /// file §4.6, §5.7). Default false: the hub answers a method invoked on a device
    /// that has not subscribed with 404103 DeviceNotOnline.
    pub receive_methods: bool,
    /// Over HTTP, the time from a poll that found the C2D queue empty (204) to the
    /// next one. Default [`GUIDANCE_POLL_INTERVAL`], 25 minutes, IoT Hub's guidance
    /// (spec file §6.6): lower only for development; runtimes warn
    /// (`http::device::poll_interval_warning`). Unused by MQTT and AMQP, where the
    /// hub pushes.
    pub c2d_poll_interval: Duration,
    /// Largest packet accepted from the hub, bytes; over AMQP the C2D link's
    /// max-message-size.
    pub max_packet_size: usize,
    /// Product information sent as `DeviceClientType` (MQTT) or as the
    /// `com.microsoft:client-version` link property (AMQP, spec file §5.3).
    pub client_type: String,
    /// Seed for reconnect jitter.
    pub seed: u64,
}

impl DeviceConfig {
    /// The defaults above for this device, over MQTT.
    pub fn new(connection_string: ConnectionString) -> Self {
        DeviceConfig {
            connection_string,
            protocol: Protocol::Mqtt,
            keep_alive: Duration::from_secs(240),
            response_timeout: Duration::from_secs(30),
            clean_session: false,
            max_in_flight: 16,
            max_queued: 1000,
            token_lifetime: Duration::from_secs(3600),
            backoff: Backoff::default(),
            receive_c2d: true,
            receive_desired: false,
            receive_methods: false,
            c2d_poll_interval: GUIDANCE_POLL_INTERVAL,
            max_packet_size: 256 * 1024 + 16 * 1024,
            client_type: String::from(concat!("hubwire/", env!("CARGO_PKG_VERSION"))),
            seed: 0,
        }
    }

    /// Errors: [`ConfigError::Zero`] when `max_in_flight` or `max_queued` is 0,
    /// which no protocol's session can work with.
    pub(crate) fn check_limits(&self) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if self.max_queued == 0 {
            return Err(ConfigError::Zero("max_queued"));
        }
        Ok(())
    }
}

/// Names one telemetry message from `send_telemetry` to its acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TelemetryId(pub u64);

/// A C2D message as the application sees it, however it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct C2dMessage {
    /// What to pass to `complete`, `reject` or `abandon`; `None` when the hub
    /// expects no settlement (an MQTT QoS 0 delivery).
    pub lock_token: Option<LockToken>,
    /// The message.
    pub message: Message,
}

/// Why a device connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The transport closed, broke, or could not be opened.
    TransportClosed,
    /// The hub did not answer a PINGREQ in time.
    KeepAliveTimeout,
    /// The hub did not answer CONNECT in time.
    ConnAckTimeout,
    /// The hub refused the connection with this MQTT Connect Return code.
    #[cfg(feature = "mqtt")]
    Refused(mqtt::ConnectReturnCode),
    /// The hub answered the device's CBS put-token with a status other than 200
    /// (spec file §5.2): its credential is refused. Not retried.
    TokenRefused {
        /// The put-token response's `status-code` (401: bad signature, 404: unknown
        /// device).
        status_code: i32,
        /// Its `status-description`.
        description: String,
    },
    /// The hub did not answer the device's CBS put-token in time (spec file §5.2).
    PutTokenTimeout,
    /// The hub detached one of the device's AMQP links (its token lapsed, another
    /// connection took the device over; spec file §5.8, §5.10).
    LinkDetached {
        /// The AMQP error condition, e.g. `amqp:unauthorized-access`; empty when
        /// the hub gave none.
        condition: String,
        /// The error's description, if any.
        description: String,
    },
    /// The hub broke the protocol.
    ProtocolViolation(ProtocolError),
    /// The device reconnects to present a fresh SAS token (spec file §4.1.3).
    TokenRenewal,
    /// HTTP: the hub did not answer a request (or the transport did not open) within
    /// `response_timeout`. The request goes again after the backoff.
    ResponseTimeout,
    /// HTTP: the hub answered 401 or 404 (spec file §6.7): the credential or the
    /// device is refused. Not retried.
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The `iothub-errorcode` header (e.g. `IotHubUnauthorizedAccess`); empty
        /// when the hub gave none.
        error_code: String,
        /// The error body's description (`http::rest::error_description`).
        description: String,
    },
    /// HTTP: the hub answered with a status worth retrying (429 throttled, 403
    /// quota, 5xx; spec file §6.7), or refused a C2D poll. The request goes again
    /// after the backoff.
    HttpStatus {
        /// The HTTP status.
        status: u16,
        /// The `iothub-errorcode` header, else the status's reason phrase; empty
        /// when neither is known.
        error_code: String,
        /// The error body's description.
        description: String,
    },
    /// The application asked to disconnect.
    Closed,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::TransportClosed => f.write_str("transport closed"),
            DisconnectReason::KeepAliveTimeout => f.write_str("no PINGRESP in time"),
            DisconnectReason::ConnAckTimeout => f.write_str("no CONNACK in time"),
            #[cfg(feature = "mqtt")]
            DisconnectReason::Refused(code) => write!(f, "refused by the hub: {code:?}"),
            DisconnectReason::TokenRefused { status_code, description } => {
                write!(f, "put-token refused with status {status_code}: {description}")
            }
            DisconnectReason::PutTokenTimeout => f.write_str("no put-token response in time"),
            DisconnectReason::LinkDetached { condition, description } => {
                write!(f, "link detached by the hub: {condition} {description}")
            }
            DisconnectReason::ProtocolViolation(e) => write!(f, "protocol violation: {e}"),
            DisconnectReason::TokenRenewal => f.write_str("reconnecting to renew the SAS token"),
            DisconnectReason::ResponseTimeout => f.write_str("no HTTP response in time"),
            DisconnectReason::Unauthorized { status, error_code, description } => {
                write!(f, "refused by the hub with HTTP {status} {error_code}: {description}")
            }
            DisconnectReason::HttpStatus { status, error_code, description } => {
                write!(f, "the hub answered HTTP {status}")?;
                // A proxy or a hub in trouble may give neither code nor text.
                if !error_code.is_empty() {
                    write!(f, " {error_code}")?;
                }
                if !description.is_empty() {
                    write!(f, ": {description}")?;
                }
                Ok(())
            }
            DisconnectReason::Closed => f.write_str("closed by the application"),
        }
    }
}

/// What a device tells its application.
// C2D messages are the common large event; boxing them would cost an allocation
// per message to save queue slots that are few.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The hub accepted the connection (over AMQP: the device's token, and its
    /// links are attached). `session_present`: it kept the session (subscription,
    /// undelivered messages) from an earlier connection.
    Connected {
        /// MQTT Session Present; always false over AMQP, which has no such session.
        session_present: bool,
    },
    /// The connection ended. `reconnect_at` is when the next attempt starts; `None`
    /// means the device has stopped (an authentication refusal is not retried, and
    /// neither is an application's `disconnect`).
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// When the device dials again.
        reconnect_at: Option<Timestamp>,
    },
    /// The hub acknowledged (stored) this telemetry message.
    TelemetryAcknowledged(TelemetryId),
    /// The hub refused this telemetry message and will not store it: AMQP
    /// `rejected`, `released` or `modified` (spec file §5.4, §5.8), a link that
    /// can never carry it, or an HTTP 400, 413 or other 4xx but 401, 403, 404, 408
    /// and 429 (spec file §6.7). It is not sent again.
    TelemetryRejected {
        /// The message.
        id: TelemetryId,
        /// The AMQP error condition (`amqp:link:message-size-exceeded`, …), or the
        /// outcome's name when it carries none (`released`, `modified`); over HTTP
        /// the status and the `iothub-errorcode` header (or the reason phrase),
        /// e.g. `413 MessageTooLarge`.
        condition: String,
        /// The hub's description, if any.
        description: String,
    },
    /// A C2D message arrived.
    C2d(C2dMessage),
    /// A C2D fetch (AMQP `Multiplexed::fetch_c2d`: credit 1 with drain, AMQP 1.0
    /// §2.6.7) ended without a message: the hub answered the drain with nothing
    /// to send, or the fetch was lost with its link or connection (or its device
    /// stopped), so the application never waits for it forever. A fetch that
    /// brings a message ends in [`DeviceEvent::C2d`] instead.
    C2dDrained,
    /// The hub refused the C2D subscription: no C2D message will arrive.
    C2dSubscriptionRefused,
    /// The twin [`Device::get_twin`] asked for (spec file §4.5, §5.6).
    Twin {
        /// The request.
        request: TwinRequestId,
        /// Desired and reported properties with their versions.
        twin: Twin,
    },
    /// The hub took a [`Device::patch_reported`] patch.
    ReportedPatched {
        /// The request.
        request: TwinRequestId,
        /// The reported section's new version.
        version: u64,
    },
    /// A twin request failed: the hub refused it (with its status: 400 for a patch
    /// that is not a JSON object, 413 past 32 KiB, 429 throttled), or the
    /// connection ended before the answer (`status` `None`); it is not sent again.
    TwinRequestFailed {
        /// The request.
        request: TwinRequestId,
        /// The hub's status; `None` when the connection was lost first.
        status: Option<u16>,
        /// The hub's words, if any.
        description: String,
    },
    /// The service changed desired properties (with [`DeviceConfig::receive_desired`]):
    /// this patch brings them to `version`. Updates made while the device was
    /// offline do not come again: get the twin after reconnecting (spec file §4.5).
    DesiredUpdated {
        /// The change.
        patch: TwinPatch,
        /// The desired section's version after it.
        version: u64,
    },
    /// The service invoked a direct method (with
    /// [`DeviceConfig::receive_methods`]); answer with [`Device::respond_method`]
    /// before the service's timeout.
    MethodRequest(MethodRequest),
    /// HTTP: the hub no longer holds this lock — it timed out (412, spec file §6.5,
    /// §7) — so the settlement did nothing; the message will come again. Also for
    /// a settlement refused with any other 4xx but 401, 403, 404, 408 and 429.
    C2dLockLost(LockToken),
}

/// Why `send_telemetry` refused a message. Nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// `max_queued` messages already wait.
    #[error("telemetry queue is full ({capacity} messages)")]
    QueueFull {
        /// The configured bound.
        capacity: usize,
    },
    /// The device has stopped and will not reconnect.
    #[error("device has stopped")]
    Stopped,
    /// A field the protocol cannot carry, e.g. a content type that is not ASCII
    /// (an AMQP symbol, spec file §5.4).
    #[error("the message cannot be encoded: {0}")]
    Unencodable(String),
    /// The message cannot be sent in one packet.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Encoded size, bytes.
        size: usize,
        /// Limit, bytes.
        max: usize,
    },
}

/// Names one twin request from [`Device::get_twin`] or [`Device::patch_reported`]
/// to its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TwinRequestId(pub u64);

/// Why a twin request or a method response was refused. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The protocol has no twin or direct methods: HTTP (spec file §6.1).
    #[error("{0} has no device twin or direct methods")]
    Unsupported(Protocol),
    /// The device has stopped and will not reconnect.
    #[error("device has stopped")]
    Stopped,
    /// No method request with this id waits for an answer (answered already, or
    /// lost with the connection it came on).
    #[error("no method request {0:?} waits for an answer")]
    UnknownRequest(String),
    /// A payload or patch over its limit: 128 KiB for methods, 32 KiB for a twin
    /// section (spec file §8).
    #[error("{size} bytes exceed the {max}-byte limit")]
    TooLarge {
        /// Its size, bytes.
        size: usize,
        /// The limit, bytes.
        max: usize,
    },
}

/// Why a disposition was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispositionError {
    /// The protocol has no way to say it: MQTT can only complete (spec file §4.4).
    #[error("{protocol} cannot {disposition} a C2D message; only complete")]
    Unsupported {
        /// The protocol in use.
        protocol: Protocol,
        /// What was asked.
        disposition: Disposition,
    },
    /// The lock token is not one this device holds (already settled, or lost with
    /// the session).
    #[error("unknown lock token {0}")]
    UnknownLockToken(LockToken),
}

/// The hub broke the protocol; the device closed the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Bytes that are not valid MQTT.
    #[cfg(feature = "mqtt")]
    #[error(transparent)]
    Mqtt(#[from] mqtt::DecodeError),
    /// AMQP: a violation at the connection, session or link layer.
    #[cfg(feature = "amqp")]
    #[error(transparent)]
    Amqp(#[from] amqp::engine::EngineError),
    /// A valid packet a hub must not send at this point.
    #[error("unexpected {0} from the hub")]
    UnexpectedPacket(&'static str),
    /// An HTTP response head that breaks RFC 9112.
    #[cfg(feature = "http")]
    #[error(transparent)]
    HttpHead(#[from] http::HeadError),
    /// An HTTP response body whose framing breaks RFC 9112, or longer than
    /// `max_packet_size`.
    #[cfg(feature = "http")]
    #[error(transparent)]
    HttpBody(#[from] http::BodyError),
    /// A C2D `200 OK` that does not read as a message (spec file §6.4).
    #[cfg(feature = "http")]
    #[error("C2D message: {0}")]
    HttpC2d(#[from] http::MessageError),
}

/// Why a configuration cannot make a device.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The device's key is not base64.
    #[error("the shared access key is not base64")]
    InvalidKey,
    /// The host name or device id cannot go into an MQTT CONNECT (a null
    /// character, a string longer than 65 535 bytes).
    #[cfg(feature = "mqtt")]
    #[error("the connection string cannot make an MQTT CONNECT: {0}")]
    Connect(mqtt::EncodeError),
    /// The host name or client type cannot be an HTTP header value (a control
    /// character, surrounding whitespace; RFC 9110 §5.5).
    #[cfg(feature = "http")]
    #[error("{0} cannot be an HTTP header value")]
    HeaderValue(&'static str),
    /// `max_in_flight` or `max_queued` is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// This build has no device side for the protocol.
    #[error("this build has no {0} device")]
    Unsupported(Protocol),
}

/// A token signed with the device's `key` for `token_lifetime` from `now`, and when
/// to renew it: at 80 % of its life (spec file §2.3, [`renewal_time`]). `None`
/// when the key is not base64.
pub(crate) fn signed_token(
    config: &DeviceConfig,
    key: &str,
    now: Timestamp,
) -> Option<(SasToken, Timestamp)> {
    let cs = &config.connection_string;
    let expiry = now + config.token_lifetime;
    let token =
        SasToken::sign(&cs.resource_uri(), key, expiry, cs.shared_access_key_name.as_deref())
            .ok()?;
    Some((token, renewal_time(now, expiry)))
}

/// A device client: one [`Connection`] whatever the protocol.
#[derive(Debug)]
pub struct Device {
    session: Session,
}

#[derive(Debug)]
enum Session {
    #[cfg(feature = "mqtt")]
    Mqtt(alloc::boxed::Box<mqtt::device::DeviceSession>),
    /// A multiplexed connection carrying this one device.
    #[cfg(feature = "amqp")]
    Amqp(alloc::boxed::Box<amqp::device::Multiplexed>, amqp::device::DeviceKey),
    #[cfg(feature = "http")]
    Http(alloc::boxed::Box<http::device::DeviceSession>),
}

impl Device {
    /// A device that dials as soon as it is polled.
    pub fn new(now: Timestamp, config: DeviceConfig) -> Result<Self, ConfigError> {
        let session = match config.protocol {
            #[cfg(feature = "mqtt")]
            Protocol::Mqtt => Session::Mqtt(alloc::boxed::Box::new(
                mqtt::device::DeviceSession::new(now, config)?,
            )),
            #[cfg(feature = "amqp")]
            Protocol::Amqp => {
                let mut mux = amqp::device::Multiplexed::new(
                    amqp::device::MultiplexConfig::for_device(&config),
                );
                let key = mux.add_device(now, config)?;
                Session::Amqp(alloc::boxed::Box::new(mux), key)
            }
            #[cfg(feature = "http")]
            Protocol::Http => Session::Http(alloc::boxed::Box::new(
                http::device::DeviceSession::new(now, config)?,
            )),
            #[allow(unreachable_patterns)]
            other => return Err(ConfigError::Unsupported(other)),
        };
        Ok(Device { session })
    }

    /// The protocol this device speaks.
    pub fn protocol(&self) -> Protocol {
        match &self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(_) => Protocol::Mqtt,
            #[cfg(feature = "amqp")]
            Session::Amqp(..) => Protocol::Amqp,
            #[cfg(feature = "http")]
            Session::Http(_) => Protocol::Http,
        }
    }

    /// Queues a telemetry message; [`DeviceEvent::TelemetryAcknowledged`] with the
    /// returned id reports the hub's acknowledgement.
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
    ) -> Result<TelemetryId, SendError> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.send_telemetry(now, message),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, key) => m.send_telemetry(now, *key, message),
            #[cfg(feature = "http")]
            Session::Http(s) => s.send_telemetry(now, message),
        }
    }

    /// Settles a C2D message: the hub removes it. Over MQTT the completion is a
    /// PUBACK, and PUBACKs go in the order the messages arrived [MQTT-4.6.0-2]: a
    /// message completed before an earlier one is acknowledged with it, and one
    /// the application never settles holds back the acknowledgement of every
    /// message after it on that connection.
    pub fn complete(&mut self, now: Timestamp, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(now, lock, Disposition::Complete)
    }

    /// Settles a C2D message: the hub dead-letters it.
    pub fn reject(&mut self, now: Timestamp, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(now, lock, Disposition::Reject)
    }

    /// Settles a C2D message: the hub requeues it.
    pub fn abandon(&mut self, now: Timestamp, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(now, lock, Disposition::Abandon)
    }

    /// Settles a C2D message as `disposition` says.
    pub fn settle(
        &mut self,
        now: Timestamp,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.settle(now, lock, disposition),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, key) => m.settle(now, *key, lock, disposition),
            #[cfg(feature = "http")]
            Session::Http(s) => s.settle(now, lock, disposition),
        }
    }

    /// Polls the hub for a C2D message at once (HTTP; spec file §6.4), then keeps
    /// the schedule of [`DeviceConfig::c2d_poll_interval`]. Over MQTT and AMQP
    /// there is nothing to do: the hub pushes C2D messages as they come.
    #[cfg_attr(not(feature = "http"), allow(unused_variables))]
    pub fn poll_now(&mut self, now: Timestamp) {
        match &mut self.session {
            #[cfg(feature = "http")]
            Session::Http(s) => s.poll_now(now),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Asks for the device's twin; [`DeviceEvent::Twin`] with the returned id
    /// answers (or [`DeviceEvent::TwinRequestFailed`]). Sent at once when connected,
    /// else once connected.
    ///
    /// Errors: [`RequestError::Unsupported`] over HTTP, [`RequestError::Stopped`].
    pub fn get_twin(&mut self, now: Timestamp) -> Result<TwinRequestId, RequestError> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.get_twin(now),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, key) => m.get_twin(now, *key),
            #[cfg(feature = "http")]
            Session::Http(_) => Err(RequestError::Unsupported(Protocol::Http)),
        }
    }

    /// Patches the device's reported properties (null removes a member);
    /// [`DeviceEvent::ReportedPatched`] with the returned id answers with the new
    /// version. Sent at once when connected, else once connected.
    ///
    /// Errors: [`RequestError::Unsupported`] over HTTP, [`RequestError::Stopped`],
    /// [`RequestError::TooLarge`] past 32 KiB.
    pub fn patch_reported(
        &mut self,
        now: Timestamp,
        patch: TwinPatch,
    ) -> Result<TwinRequestId, RequestError> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.patch_reported(now, patch),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, key) => m.patch_reported(now, *key, patch),
            #[cfg(feature = "http")]
            Session::Http(_) => Err(RequestError::Unsupported(Protocol::Http)),
        }
    }

    /// Answers a [`DeviceEvent::MethodRequest`] with a status and a payload (JSON
    /// or empty).
    ///
    /// Errors: [`RequestError::UnknownRequest`] for a request not waiting (answered,
    /// or lost with its connection), [`RequestError::TooLarge`] past 128 KiB,
    /// [`RequestError::Unsupported`] over HTTP.
    pub fn respond_method(
        &mut self,
        now: Timestamp,
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.respond_method(now, response),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, key) => m.respond_method(now, *key, response),
            #[cfg(feature = "http")]
            Session::Http(_) => Err(RequestError::Unsupported(Protocol::Http)),
        }
    }

    /// Closes the connection cleanly and stops reconnecting.
    pub fn disconnect(&mut self, now: Timestamp) {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.disconnect(now),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.close(now),
            #[cfg(feature = "http")]
            Session::Http(s) => s.disconnect(now),
        }
    }

    /// Telemetry messages queued or in flight, not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        match &self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.unacknowledged(),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, key) => m.unacknowledged(*key),
            #[cfg(feature = "http")]
            Session::Http(s) => s.unacknowledged(),
        }
    }

    /// A single AMQP device whose credential was refused has nothing left to do on
    /// its connection: close it rather than keep an idle one open.
    #[cfg(feature = "amqp")]
    fn close_if_stopped(&mut self, now: Timestamp) {
        #[allow(irrefutable_let_patterns)]
        if let Session::Amqp(m, key) = &mut self.session
            && m.is_stopped(*key)
        {
            m.close(now);
        }
    }

    #[cfg(not(feature = "amqp"))]
    fn close_if_stopped(&mut self, _now: Timestamp) {}
}

impl Connection for Device {
    type Event = DeviceEvent;
    type Error = ProtocolError;

    fn handle_connected(&mut self, now: Timestamp) {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.handle_connected(now),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.handle_connected(now),
            #[cfg(feature = "http")]
            Session::Http(s) => s.handle_connected(now),
        }
    }

    fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ProtocolError> {
        let result = match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.handle_input(now, bytes),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.handle_input(now, bytes),
            #[cfg(feature = "http")]
            Session::Http(s) => s.handle_input(now, bytes),
        };
        self.close_if_stopped(now);
        result
    }

    fn handle_close(&mut self, now: Timestamp) {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.handle_close(now),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.handle_close(now),
            #[cfg(feature = "http")]
            Session::Http(s) => s.handle_close(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.poll_transmit(),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.poll_transmit(),
            #[cfg(feature = "http")]
            Session::Http(s) => s.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<DeviceEvent> {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.poll_event(),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.poll_event().map(|(_, e)| e),
            #[cfg(feature = "http")]
            Session::Http(s) => s.poll_event(),
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.poll_timeout(),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.poll_timeout(),
            #[cfg(feature = "http")]
            Session::Http(s) => s.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        match &mut self.session {
            #[cfg(feature = "mqtt")]
            Session::Mqtt(s) => s.handle_timeout(now),
            #[cfg(feature = "amqp")]
            Session::Amqp(m, _) => m.handle_timeout(now),
            #[cfg(feature = "http")]
            Session::Http(s) => s.handle_timeout(now),
        }
        self.close_if_stopped(now);
    }
}
