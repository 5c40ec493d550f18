//! The hub's side of one MQTT connection (spec file §4, MQTT 3.1.1 chapter 3).
//!
//! An `MqttConnection` validates CONNECT as the standard and IoT Hub require and
//! answers with the CONNACK code of the table below; lets a device publish only to
//! its own telemetry topic and the `$iothub/` twin and method topics, and subscribe
//! only to its own device-bound topic and the twin and method filters; sends a
//! telemetry PUBACK only once the runtime has stored the message; delivers C2D
//! messages at QoS 1, the PUBACK completing them; answers twin requests, sends
//! desired-property notifications and method requests at QoS 0; and closes on every
//! protocol violation.
//!
//! Twin requests are answered whether or not the device subscribed to
//! `$iothub/twin/res/#`: every SDK subscribes first, and an answer nobody reads
//! costs less than a request that hangs (the spec file is silent on IoT Hub's own
//! behaviour). Desired notifications and method requests go only to a device that
//! subscribed to them (spec file §4.5, §4.6).
//!
//! | CONNECT problem | CONNACK | logged as |
//! |---|---|---|
//! | protocol name not `MQTT` | none, closed [MQTT-3.1.2-1] | 400004 |
//! | protocol level not 4 | 0x01 [MQTT-3.1.2-2] | 400004 |
//! | empty client id, or not the user name's identity | 0x02 [MQTT-3.1.3-9] | 400004 |
//! | no user name, or not an IoT Hub user name (TV-9) | 0x04 | 401003 |
//! | no password, bad token, unknown device, expired, wrong audience | 0x05 (spec file §4.1.3) | 401003 / 404001 |
//! | disabled device | 0x03 (the C SDK reads it as "device disabled") | per registry |
//! | module identity, or a will topic that is not its telemetry topic | 0x05 | 401003 / 400003 |
//! | delegated authentication ([`crate::hub::Authentication::Delegated`]): a token that does not parse or has expired | 0x05 | 401003 |
//! | delegated: the runtime answers `Err(code)` | 0x05 | `code` |
//! | delegated: no answer within the connect timeout | none, closed | 401003 |

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::codec::{self, DecodeError, Limits};
use super::iothub_topic::IotHubTopic;
use super::keep_alive::server_timeout;
use super::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe, Will,
};
use super::packet_ids::PacketIds;
use super::subscription::Subscription;
use super::topic;
use super::username::Username;
use crate::Protocol;
use crate::hub::{
    AuthRequest, Authentication, C2dQueue, HubConfig, HubEvent, HubState, Origin, StoreTicket,
};
use crate::iothub::{
    Disposition, ErrorCode, Identity, LockToken, MethodRequest, MethodResponse, SasToken,
    TwinPatch, method,
};
use crate::sansio::{ConnectionId, Outbox, Transmit};
use crate::time::{Duration, Timestamp};

/// A protocol violation on a hub connection; the hub has closed it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubProtocolError {
    /// Bytes that are not valid MQTT 3.1.1.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A valid packet the rules forbid here (a second CONNECT, QoS 2, a topic the
    /// device may not use, …).
    #[error("{0}")]
    Forbidden(String),
}

/// The MQTT session IoT Hub keeps for a device between connections when it
/// connects with Clean Session 0 [MQTT-3.1.2-4]: the subscriptions and the C2D
/// deliveries not yet acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The subscriptions, each with the QoS granted.
    subscriptions: BTreeMap<Subscription, QoS>,
    /// C2D deliveries on the current connection: packet id → (queue lock,
    /// sequence number).
    in_flight: BTreeMap<PacketId, (LockToken, u64)>,
    /// Deliveries an earlier connection left unacknowledged: sequence number → the
    /// packet id to send them again with, DUP set [MQTT-4.4.0-1].
    resend: BTreeMap<u64, PacketId>,
    packet_ids: PacketIds,
}

impl Session {
    /// The connection that carried the deliveries is gone: their messages go back to
    /// the queue (so neither a lock nor a TTL waits on a device that may never come
    /// back) and are remembered to be sent again with their packet ids.
    pub(crate) fn detach(&mut self, queue: &mut C2dQueue) {
        for (id, (lock, sequence)) in core::mem::take(&mut self.in_flight) {
            queue.unlock(&lock);
            self.resend.insert(sequence, id);
        }
    }

    fn next_packet_id(&mut self) -> Option<PacketId> {
        let (in_flight, resend) = (&self.in_flight, &self.resend);
        self.packet_ids.next(|id| in_flight.contains_key(&id) || resend.values().any(|r| *r == id))
    }
}

/// One MQTT connection as the hub sees it.
#[derive(Debug)]
pub(crate) struct MqttConnection {
    id: ConnectionId,
    state: State,
    rx: BytesMut,
    limits: Limits,
    /// `limits`, shrunk to `max_connect_size` until the CONNECT is accepted.
    connect_limits: Limits,
    outbox: Outbox,
    /// PUBACKs owed, in the order their PUBLISHes arrived [MQTT-4.6.0-2]: the
    /// telemetry's store ticket (none for a twin or method PUBLISH, acknowledged
    /// once those before it are), packet id, stored yet.
    acks: VecDeque<(Option<StoreTicket>, PacketId, bool)>,
    max_message_size: usize,
    max_c2d_in_flight: usize,
}

#[derive(Debug)]
enum State {
    AwaitingConnect {
        deadline: Timestamp,
    },
    /// The CONNECT passed every check but the token's, which the runtime judges
    /// ([`crate::hub::Authentication::Delegated`]); `deadline` is still the
    /// connect timeout's. Input waits in `rx`.
    AwaitingAuthentication {
        deadline: Timestamp,
        request: AuthRequest,
        accepted: Box<Accepted>,
    },
    Connected(Online),
    Closed,
}

#[derive(Debug)]
struct Online {
    identity: Identity,
    clean_session: bool,
    will: Option<Will>,
    /// Silence allowed: 1.5 × Keep Alive, capped [MQTT-3.1.2-24].
    timeout: Duration,
    silent_until: Timestamp,
    /// SAS expiry plus the allowed skew: IoT Hub closes connections whose token
    /// expires (spec file §4.1.3).
    token_expiry: Timestamp,
}

/// A CONNECT that passed its checks, to accept once its token is judged.
#[derive(Debug)]
struct Accepted {
    identity: Identity,
    clean_session: bool,
    will: Option<Will>,
    keep_alive: u16,
    /// SAS expiry plus the allowed skew.
    token_expiry: Timestamp,
}

/// How a connection ends, for the log and the will.
struct Ending {
    code: ErrorCode,
    reason: String,
    /// MQTT publishes the will unless the client sent DISCONNECT [MQTT-3.1.2-8].
    publish_will: bool,
}

impl MqttConnection {
    pub(crate) fn new(id: ConnectionId, now: Timestamp, config: &HubConfig) -> Self {
        MqttConnection {
            id,
            state: State::AwaitingConnect { deadline: now + config.connect_timeout },
            rx: BytesMut::new(),
            limits: config.mqtt_limits,
            connect_limits: Limits {
                max_remaining_length: config
                    .max_connect_size
                    .min(config.mqtt_limits.max_remaining_length),
                ..config.mqtt_limits
            },
            outbox: Outbox::default(),
            acks: VecDeque::new(),
            max_message_size: config.max_message_size,
            max_c2d_in_flight: config.mqtt_c2d_in_flight,
        }
    }

    pub(crate) fn handle_input(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        if matches!(self.state, State::Closed) {
            return Ok(());
        }
        self.rx.extend_from_slice(bytes);
        loop {
            if matches!(self.state, State::AwaitingAuthentication { .. }) {
                // A client may send on before its CONNACK; that waits for the
                // answer, within the bound on what a stranger may make the hub hold.
                if self.rx.len() > self.connect_limits.max_remaining_length {
                    let reason = String::from("too much input before the CONNACK");
                    self.refuse_and_close(now, hub, ErrorCode::MESSAGE_TOO_LARGE, reason.clone());
                    return Err(HubProtocolError::Forbidden(reason));
                }
                return Ok(());
            }
            let limits = match self.state {
                State::AwaitingConnect { .. } => &self.connect_limits,
                _ => &self.limits,
            };
            let packet = match codec::decode(&mut self.rx, limits) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let code = match e {
                        DecodeError::TooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
                        _ => ErrorCode::ARGUMENT_INVALID,
                    };
                    self.refuse_and_close(now, hub, code, e.to_string());
                    return Err(e.into());
                }
            };
            if let State::Connected(online) = &mut self.state {
                // Any packet counts as a sign of life [MQTT-3.1.2-24].
                online.silent_until = now + online.timeout;
            }
            self.handle_packet(now, packet, hub)?;
            if matches!(self.state, State::Closed) {
                return Ok(());
            }
        }
    }

    fn handle_packet(
        &mut self,
        now: Timestamp,
        packet: Packet,
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        if matches!(self.state, State::AwaitingConnect { .. }) {
            return match packet {
                Packet::Connect(connect) => {
                    self.handle_connect(now, connect, hub);
                    Ok(())
                }
                // [MQTT-3.1.0-1]: the first packet must be CONNECT.
                other => self.forbid(
                    now,
                    hub,
                    ErrorCode::ARGUMENT_INVALID,
                    format!("{} before CONNECT [MQTT-3.1.0-1]", other.name()),
                ),
            };
        }
        match packet {
            Packet::Publish(publish) => self.handle_publish(now, publish, hub),
            Packet::PubAck(id) => {
                self.handle_c2d_puback(now, id, hub);
                Ok(())
            }
            Packet::Subscribe(subscribe) => self.handle_subscribe(now, subscribe, hub),
            Packet::Unsubscribe(unsubscribe) => {
                self.handle_unsubscribe(unsubscribe, hub);
                Ok(())
            }
            Packet::PingReq => {
                // [MQTT-3.12.4-1]
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect => {
                // [MQTT-3.14.4-1] [MQTT-3.14.4-3]: close, and discard the will.
                let ending = Ending {
                    code: ErrorCode::DEVICE_CONNECTION_CLOSED_REMOTELY,
                    reason: String::from("the device sent DISCONNECT"),
                    publish_will: false,
                };
                self.end(now, hub, ending);
                self.outbox.push(Transmit::Close);
                Ok(())
            }
            Packet::Connect(_) => self.forbid(
                now,
                hub,
                ErrorCode::ARGUMENT_INVALID,
                String::from("a second CONNECT [MQTT-3.1.0-2]"),
            ),
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => self.forbid(
                now,
                hub,
                ErrorCode::INVALID_OPERATION,
                String::from("QoS 2 flow: IoT Hub does not support QoS 2"),
            ),
            other => self.forbid(
                now,
                hub,
                ErrorCode::ARGUMENT_INVALID,
                format!("{} is sent by servers, not clients", other.name()),
            ),
        }
    }

    fn handle_connect(&mut self, now: Timestamp, connect: Connect, hub: &mut HubState) {
        let (identity, token, host_name) = match self.check_connect(&connect) {
            Ok(v) => v,
            Err(refusal) => return self.refuse_connect(hub, refusal),
        };
        if hub.config.authentication == Authentication::Delegated {
            return self.delegate(now, connect, identity, token, host_name, hub);
        }
        if let Err(e) = hub.authenticate(&identity, &token, now) {
            let code = match e {
                crate::hub::AuthError::Disabled => ConnectReturnCode::ServerUnavailable,
                _ => ConnectReturnCode::NotAuthorized,
            };
            let refusal = Refusal {
                identity: Some(identity),
                connack: Some(code),
                code: e.code(),
                reason: e.reason().to_string(),
            };
            return self.refuse_connect(hub, refusal);
        }
        // authenticate() parsed it already; the expiry bounds the connection.
        let token_expiry =
            SasToken::parse(&token).map(|t| t.expiry_time() + hub.config.sas_skew).unwrap_or(now);
        let accepted = Accepted {
            identity,
            clean_session: connect.clean_session,
            will: connect.will,
            keep_alive: connect.keep_alive,
            token_expiry,
        };
        self.accept(now, accepted, hub);
    }

    /// Under [`Authentication::Delegated`]: the token is checked for its form and
    /// expiry here (a token that could never pass is not sent anywhere), then
    /// judged by the runtime; the connection waits for [`Self::authenticated`].
    fn delegate(
        &mut self,
        now: Timestamp,
        connect: Connect,
        identity: Identity,
        token: String,
        host_name: String,
        hub: &mut HubState,
    ) {
        let token_expiry = match hub.check_delegated(&identity, &token, now) {
            Ok((t, _)) => t.expiry_time() + hub.config.sas_skew,
            Err(e) => {
                let refusal = Refusal {
                    identity: Some(identity),
                    connack: Some(ConnectReturnCode::NotAuthorized),
                    code: e.code(),
                    reason: e.reason().to_string(),
                };
                return self.refuse_connect(hub, refusal);
            }
        };
        let State::AwaitingConnect { deadline } = self.state else { return };
        let accepted = Box::new(Accepted {
            identity: identity.clone(),
            clean_session: connect.clean_session,
            will: connect.will,
            keep_alive: connect.keep_alive,
            token_expiry,
        });
        let request =
            hub.request_authentication(self.id, identity, token, host_name, Protocol::Mqtt);
        self.state = State::AwaitingAuthentication { deadline, request, accepted };
    }

    /// The runtime judged the token of `request`: the CONNECT is accepted, or
    /// refused with CONNACK 5 (spec file §4.1.3: IoT Hub answers every failed
    /// authentication so). Returns whether this connection waited for it.
    pub(crate) fn authenticated(
        &mut self,
        now: Timestamp,
        request: AuthRequest,
        result: Result<(), ErrorCode>,
        hub: &mut HubState,
    ) -> bool {
        let State::AwaitingAuthentication { request: waiting, .. } = &self.state else {
            return false;
        };
        if *waiting != request {
            return false;
        }
        let State::AwaitingAuthentication { accepted, .. } =
            core::mem::replace(&mut self.state, State::Closed)
        else {
            return false;
        };
        match result {
            Ok(()) => {
                self.accept(now, *accepted, hub);
                // What the client sent on after its CONNECT. A violation in it is
                // answered (closed) already and reported as an event.
                let _ = self.handle_input(now, &[], hub);
            }
            Err(code) => {
                let refusal = Refusal {
                    identity: Some(accepted.identity),
                    connack: Some(ConnectReturnCode::NotAuthorized),
                    code,
                    reason: format!("the upstream hub refused the SAS token ({code})"),
                };
                self.refuse_connect(hub, refusal);
            }
        }
        true
    }

    /// Accepts an authenticated CONNECT: binds the device, restores or starts its
    /// session, sends CONNACK 0 and what its queue holds.
    fn accept(&mut self, now: Timestamp, accepted: Accepted, hub: &mut HubState) {
        let Accepted { identity, clean_session, will, keep_alive, token_expiry } = accepted;
        hub.bind(&identity.device_id, self.id);
        let Some(device) = hub.device_mut(&identity.device_id) else {
            return;
        };
        if clean_session {
            // [MQTT-3.1.2-6]: a clean session starts empty and ends with the
            // connection.
            if let Some(old) = device.mqtt_session.as_mut() {
                old.detach(&mut device.queue);
            }
            device.mqtt_session = None;
        }
        // [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3]
        let session_present = device.mqtt_session.is_some();
        device.mqtt_session.get_or_insert_with(Session::default);
        let timeout = server_timeout(keep_alive);
        self.state = State::Connected(Online {
            identity: identity.clone(),
            clean_session,
            will,
            timeout,
            silent_until: now + timeout,
            token_expiry,
        });
        self.send(&Packet::ConnAck(ConnAck { session_present, code: ConnectReturnCode::Accepted }));
        hub.emit(HubEvent::Connected { connection: self.id, identity, session_present });
        self.pump_c2d(now, hub);
    }

    /// The CONNECT checks that need no registry: returns the identity, the token and
    /// the user name's host name.
    fn check_connect(&self, connect: &Connect) -> Result<(Identity, String, String), Refusal> {
        let refuse = |connack, code, reason: &str| Refusal {
            identity: None,
            connack,
            code,
            reason: String::from(reason),
        };
        if connect.protocol_name != "MQTT" {
            return Err(refuse(
                None,
                ErrorCode::ARGUMENT_INVALID,
                "protocol name is not MQTT [MQTT-3.1.2-1]",
            ));
        }
        if connect.protocol_level != 4 {
            return Err(refuse(
                Some(ConnectReturnCode::UnacceptableProtocolVersion),
                ErrorCode::ARGUMENT_INVALID,
                "protocol level is not 4 (MQTT 3.1.1) [MQTT-3.1.2-2]",
            ));
        }
        if connect.client_id.is_empty() {
            return Err(refuse(
                Some(ConnectReturnCode::IdentifierRejected),
                ErrorCode::ARGUMENT_INVALID,
                "empty client identifier: IoT Hub needs the device id [MQTT-3.1.3-9]",
            ));
        }
        let Some(username) = connect.username.as_deref() else {
            return Err(refuse(
                Some(ConnectReturnCode::BadUsernameOrPassword),
                ErrorCode::IOT_HUB_UNAUTHORIZED,
                "no user name: IoT Hub needs {host}/{device}/?api-version=...",
            ));
        };
        let username = Username::parse(username).map_err(|_| {
            refuse(
                Some(ConnectReturnCode::BadUsernameOrPassword),
                ErrorCode::IOT_HUB_UNAUTHORIZED,
                "user name is not {host}/{device}[/{module}]/?api-version=...",
            )
        })?;
        let Username { identity, host_name, .. } = username;
        if connect.client_id.as_str() != identity.to_string() {
            return Err(Refusal {
                identity: Some(identity),
                connack: Some(ConnectReturnCode::IdentifierRejected),
                code: ErrorCode::ARGUMENT_INVALID,
                reason: format!(
                    "client identifier {:?} is not the user name's identity",
                    connect.client_id.as_str()
                ),
            });
        }
        let with_identity = |code, reason: &str| Refusal {
            identity: Some(identity.clone()),
            connack: Some(ConnectReturnCode::NotAuthorized),
            code,
            reason: String::from(reason),
        };
        if identity.module_id.is_some() {
            return Err(with_identity(
                ErrorCode::IOT_HUB_UNAUTHORIZED,
                "module identities are not supported by this hub yet",
            ));
        }
        let Some(token) = connect.password.as_ref().and_then(|p| core::str::from_utf8(p).ok())
        else {
            return Err(with_identity(
                ErrorCode::IOT_HUB_UNAUTHORIZED,
                "no SAS token in the password (X.509 needs TLS)",
            ));
        };
        if let Some(will) = &connect.will {
            if topic::parse_telemetry(&will.topic, &identity, bytes::Bytes::new()).is_err() {
                return Err(with_identity(
                    ErrorCode::INVALID_OPERATION,
                    "the will topic must be the device's telemetry topic",
                ));
            }
        }
        Ok((identity.clone(), String::from(token), host_name))
    }

    fn refuse_connect(&mut self, hub: &mut HubState, refusal: Refusal) {
        if let Some(code) = refusal.connack {
            // [MQTT-3.2.2-4]: Session Present is 0 with a refusal; [MQTT-3.2.2-5]:
            // then close.
            self.send(&Packet::ConnAck(ConnAck { session_present: false, code }));
        }
        hub.emit(HubEvent::Refused {
            connection: self.id,
            identity: refusal.identity,
            code: refusal.code,
            reason: refusal.reason,
        });
        self.state = State::Closed;
        self.rx.clear();
        self.outbox.push(Transmit::Close);
    }

    fn handle_publish(
        &mut self,
        now: Timestamp,
        publish: Publish,
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        let State::Connected(online) = &self.state else {
            return Ok(());
        };
        if publish.qos == QoS::ExactlyOnce {
            return self.forbid(
                now,
                hub,
                ErrorCode::INVALID_OPERATION,
                String::from("PUBLISH at QoS 2: IoT Hub closes the connection"),
            );
        }
        if let Some(request) = IotHubTopic::parse(&publish.topic) {
            return self.handle_iothub_publish(now, request, publish, hub);
        }
        if publish.topic.as_str().starts_with("$iothub/") {
            // Named like a twin or method topic, but not one: say what is wrong with
            // it rather than that the device may not publish there.
            let reason = format!(
                "PUBLISH to {:?}: a twin or method topic needs a $rid, and a response an \
                 integer status",
                publish.topic.as_str()
            );
            return self.forbid(now, hub, ErrorCode::ARGUMENT_INVALID, reason);
        }
        let mut message =
            match topic::parse_telemetry(&publish.topic, &online.identity, publish.payload.clone())
            {
                Ok(message) => message,
                Err(topic::TopicError::PropertyBag(e)) => {
                    return self.forbid(now, hub, ErrorCode::ARGUMENT_INVALID, format!("{e}"));
                }
                Err(_) => {
                    return self.forbid(
                        now,
                        hub,
                        ErrorCode::INVALID_OPERATION,
                        format!(
                            "PUBLISH to {:?}: a device may publish only to its telemetry topic \
                             and the twin and method topics",
                            publish.topic.as_str()
                        ),
                    );
                }
            };
        if message.size() > self.max_message_size {
            return self.forbid(
                now,
                hub,
                ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "message of {} bytes exceeds {} bytes",
                    message.size(),
                    self.max_message_size
                ),
            );
        }
        if publish.retain {
            // IoT Hub keeps no retained messages; it marks the message instead
            // (spec file §4.3).
            message.properties.set("mqtt-retain", "true");
        }
        let packet_id = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                if publish.dup && self.acks.iter().any(|(_, pending, _)| *pending == id) {
                    // The device resent a PUBLISH whose store is under way: one copy
                    // is enough, its PUBACK follows the store.
                    return Ok(());
                }
                Some(id)
            }
            _ => None,
        };
        let identity = online.identity.clone();
        let ticket = hub.store_telemetry(now, self.id, &identity, message, Origin::Device);
        if let Some(id) = packet_id {
            self.acks.push_back((Some(ticket), id, false));
        }
        Ok(())
    }

    /// A PUBLISH on a `$iothub/` topic: a twin request or a method response, acted
    /// on at once and acknowledged in turn at QoS 1 (Python publishes them so, spec
    /// file §4.5).
    fn handle_iothub_publish(
        &mut self,
        now: Timestamp,
        request: IotHubTopic,
        publish: Publish,
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        let State::Connected(online) = &self.state else {
            return Ok(());
        };
        let identity = online.identity.clone();
        let device_id = identity.device_id.as_str();
        match request {
            IotHubTopic::TwinGet { rid } => {
                // The body is ignored: Node sends " " (spec file §4.5).
                let answer = match hub.twin(device_id) {
                    Some(twin) => Ok(Bytes::from(twin.to_json())),
                    None => Err((
                        404,
                        ErrorCode::DEVICE_NOT_FOUND,
                        String::from("the device is not registered"),
                    )),
                };
                self.answer_twin(rid, answer.map(|body| (None, body)));
            }
            IotHubTopic::TwinPatchReported { rid } => {
                let result = TwinPatch::parse(&publish.payload)
                    .and_then(|patch| hub.patch_reported(device_id, patch));
                let answer = match result {
                    Ok(version) => Ok((Some(version), Bytes::new())),
                    Err(e) => Err((e.status(), e.code(), e.to_string())),
                };
                self.answer_twin(rid, answer);
            }
            IotHubTopic::MethodResponse { status, rid } => {
                let payload = publish.payload.clone();
                let refusal = if payload.len() > method::MAX_PAYLOAD {
                    Some((
                        ErrorCode::MESSAGE_TOO_LARGE,
                        format!(
                            "method response {rid:?} of {} bytes exceeds {} bytes; dropped",
                            payload.len(),
                            method::MAX_PAYLOAD
                        ),
                    ))
                } else {
                    let response = MethodResponse { request_id: rid.clone(), status, payload };
                    (!hub.method_responded(device_id, response)).then(|| {
                        (
                            ErrorCode::ARGUMENT_INVALID,
                            format!(
                                "method response {rid:?} answers no waiting invocation \
                                 (answered, timed out, or never made); dropped"
                            ),
                        )
                    })
                };
                if let Some((code, reason)) = refusal {
                    // Not a protocol violation: a device may answer late.
                    hub.emit(HubEvent::Refused {
                        connection: self.id,
                        identity: Some(identity),
                        code,
                        reason,
                    });
                }
            }
            other => {
                return self.forbid(
                    now,
                    hub,
                    ErrorCode::INVALID_OPERATION,
                    format!(
                        "PUBLISH to {:?}: the hub publishes on this topic, a device does not",
                        other.to_topic().as_str()
                    ),
                );
            }
        }
        if let (QoS::AtLeastOnce, Some(id)) = (publish.qos, publish.packet_id) {
            self.acks.push_back((None, id, true));
            self.send_due_acks();
        }
        Ok(())
    }

    /// Answers twin request `rid` at QoS 0, as the SDKs subscribe (spec file §4.5):
    /// 200 with the twin or 204 with the new version, or an error status with
    /// `{"errorCode":…,"message":…}`, the body Node fails the request on.
    fn answer_twin(
        &mut self,
        rid: String,
        answer: Result<(Option<u64>, Bytes), (u16, ErrorCode, String)>,
    ) {
        let (status, version, payload) = match answer {
            Ok((None, body)) => (200, None, body),
            Ok((Some(version), body)) => (204, Some(version), body),
            Err((status, code, message)) => {
                let body = serde_json::json!({ "errorCode": code.code, "message": message });
                (status, None, Bytes::from(body.to_string().into_bytes()))
            }
        };
        let topic = IotHubTopic::TwinResponse { status, rid, version }.to_topic();
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            payload,
        }));
    }

    /// The runtime stored a message: send every PUBACK now due, in arrival order.
    pub(crate) fn telemetry_stored(&mut self, _now: Timestamp, ticket: StoreTicket) {
        if let Some(entry) = self.acks.iter_mut().find(|(t, _, _)| *t == Some(ticket)) {
            entry.2 = true;
        }
        self.send_due_acks();
    }

    /// The message of `ticket` was not kept: no PUBACK can say so [MQTT-4.3.2-2],
    /// so the connection closes, and the device sends it again on its next one.
    pub(crate) fn telemetry_refused(
        &mut self,
        now: Timestamp,
        ticket: StoreTicket,
        code: ErrorCode,
        hub: &mut HubState,
    ) {
        if self.acks.iter().any(|(t, _, _)| *t == Some(ticket)) {
            let reason = String::from("the telemetry could not be kept; closing unacknowledged");
            self.refuse_and_close(now, hub, code, reason);
        }
    }

    /// Sends the PUBACKs at the front of the queue whose PUBLISHes are done.
    fn send_due_acks(&mut self) {
        while let Some(&(_, id, true)) = self.acks.front() {
            self.acks.pop_front();
            // [MQTT-4.3.2-2] [MQTT-4.6.0-2]
            self.send(&Packet::PubAck(id));
        }
    }

    fn handle_subscribe(
        &mut self,
        now: Timestamp,
        subscribe: Subscribe,
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        let State::Connected(online) = &self.state else {
            return Ok(());
        };
        let device_id = online.identity.device_id.clone();
        let mut granted = Vec::with_capacity(subscribe.filters.len());
        for (filter, qos) in &subscribe.filters {
            let Some(subscription) = Subscription::of(filter, &device_id) else {
                // IoT Hub disconnects on a SUBSCRIBE it cannot serve (spec file §4.8).
                return self.forbid(
                    now,
                    hub,
                    ErrorCode::INVALID_OPERATION,
                    format!(
                        "SUBSCRIBE to {:?}: a device may subscribe only to its device-bound \
                         topic and the twin and method filters",
                        filter.as_str()
                    ),
                );
            };
            // QoS 2 is granted as QoS 1 (spec file §4.4) [MQTT-3.8.4-6].
            granted.push((subscription, (*qos).min(QoS::AtLeastOnce)));
        }
        let return_codes =
            granted.iter().map(|(_, qos)| SubscribeReturnCode::Success(*qos)).collect();
        // [MQTT-3.8.4-1] [MQTT-3.8.4-2] [MQTT-3.8.4-5]
        self.send(&Packet::SubAck(SubAck { packet_id: subscribe.packet_id, return_codes }));
        if let Some(session) = hub.device(&device_id).and_then(|d| d.mqtt_session.as_mut()) {
            // [MQTT-3.8.4-3]: a repeated filter replaces the subscription.
            session.subscriptions.extend(granted);
        }
        self.pump_c2d(now, hub);
        Ok(())
    }

    fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe, hub: &mut HubState) {
        let State::Connected(online) = &self.state else {
            return;
        };
        let device_id = &online.identity.device_id;
        if let Some(session) = hub.device(device_id).and_then(|d| d.mqtt_session.as_mut()) {
            for filter in &unsubscribe.filters {
                if let Some(subscription) = Subscription::of(filter, device_id) {
                    session.subscriptions.remove(&subscription);
                }
            }
        }
        // [MQTT-3.10.4-4] [MQTT-3.10.4-5]: UNSUBACK even when nothing matched.
        self.send(&Packet::UnsubAck(unsubscribe.packet_id));
    }

    /// A PUBACK for a C2D delivery completes the message (spec file §4.4).
    fn handle_c2d_puback(&mut self, now: Timestamp, id: PacketId, hub: &mut HubState) {
        let State::Connected(online) = &self.state else {
            return;
        };
        let device_id = online.identity.device_id.clone();
        let Some(device) = hub.device(&device_id) else {
            return;
        };
        let Some(session) = device.mqtt_session.as_mut() else {
            return;
        };
        if let Some((lock, _)) = session.in_flight.remove(&id) {
            // A lock the queue no longer knows was settled otherwise (a purge).
            let _ = device.queue.settle(now, &lock, Disposition::Complete);
            hub.drain_settled(&device_id);
            self.pump_c2d(now, hub);
        }
    }

    /// Sends queued C2D messages while the subscription exists and the window has
    /// room.
    pub(crate) fn pump_c2d(&mut self, now: Timestamp, hub: &mut HubState) {
        let State::Connected(online) = &self.state else {
            return;
        };
        let device_id = online.identity.device_id.clone();
        loop {
            let lock = hub.new_lock();
            let Some(device) = hub.device(&device_id) else {
                return;
            };
            if device.connection != Some(self.id) {
                return;
            }
            let Some(session) = device.mqtt_session.as_mut() else {
                return;
            };
            let Some(&granted) = session.subscriptions.get(&Subscription::C2d) else {
                return;
            };
            if session.in_flight.len() >= self.max_c2d_in_flight {
                return;
            }
            let Some(delivery) = device.queue.lock_next(now, lock, None) else {
                return;
            };
            let topic = topic::c2d(&device_id, &delivery.message);
            let mut publish = Publish {
                dup: false,
                qos: granted,
                retain: false,
                topic,
                packet_id: None,
                payload: delivery.message.body.clone(),
            };
            if granted == QoS::AtLeastOnce {
                let resent = session.resend.remove(&delivery.sequence_number);
                let Some(id) = resent.or_else(|| session.next_packet_id()) else {
                    device.queue.unlock(&delivery.lock);
                    return;
                };
                publish.dup = resent.is_some();
                publish.packet_id = Some(id);
                session.in_flight.insert(id, (delivery.lock, delivery.sequence_number));
            }
            let packet = Packet::Publish(publish);
            if packet.encode(self.outbox.buffer()).is_err() {
                // `Hub::send_c2d` refuses messages whose topic cannot fit, so this
                // holds only if the queue's stamps outgrow that check; such a message
                // could never reach a device over MQTT, and waiting would block the
                // queue behind it.
                if let Packet::Publish(Publish { packet_id: Some(id), .. }) = packet {
                    session.in_flight.remove(&id);
                }
                let _ = device.queue.settle(now, &delivery.lock, Disposition::Reject);
                hub.emit(HubEvent::Refused {
                    connection: self.id,
                    identity: Some(Identity::device(device_id.clone())),
                    code: ErrorCode::MESSAGE_TOO_LARGE,
                    reason: String::from(
                        "C2D properties too long for an MQTT topic; dead-lettered",
                    ),
                });
                hub.drain_settled(&device_id);
                continue;
            }
            if granted == QoS::AtMostOnce {
                // Nothing will acknowledge a QoS 0 delivery: sending completes it.
                let _ = device.queue.settle(now, &delivery.lock, Disposition::Complete);
                hub.drain_settled(&device_id);
            }
        }
    }

    /// The service patched the desired properties: a device subscribed to them
    /// receives `patch` with `"$version"` on
    /// `$iothub/twin/PATCH/properties/desired/?$version={version}` at QoS 0 (spec
    /// file §4.5, TV-13); one not subscribed, nothing.
    pub(crate) fn desired_updated(
        &mut self,
        _now: Timestamp,
        patch: &TwinPatch,
        version: u64,
        hub: &mut HubState,
    ) {
        if !self.subscribed(Subscription::Desired, hub) {
            return;
        }
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: IotHubTopic::DesiredPatch { version }.to_topic(),
            packet_id: None,
            payload: Bytes::from(patch.to_json_with_version(version)),
        }));
    }

    /// The service invokes a direct method: a device subscribed to methods receives
    /// it on `$iothub/methods/POST/{name}/?$rid={request id}` at QoS 0 (spec file
    /// §4.6, TV-13). Returns false, sending nothing, when the device has not
    /// subscribed or the method's name makes the topic too long for MQTT.
    pub(crate) fn method_request(
        &mut self,
        _now: Timestamp,
        request: &MethodRequest,
        hub: &mut HubState,
    ) -> bool {
        if !self.subscribed(Subscription::Methods, hub) {
            return false;
        }
        let topic = IotHubTopic::MethodRequest {
            name: request.name.clone(),
            rid: request.request_id.clone(),
        }
        .to_topic();
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            payload: request.payload.clone(),
        });
        packet.encode(self.outbox.buffer()).is_ok()
    }

    /// Whether this connection carries the device and its session holds
    /// `subscription`.
    fn subscribed(&self, subscription: Subscription, hub: &mut HubState) -> bool {
        let State::Connected(online) = &self.state else {
            return false;
        };
        hub.device(&online.identity.device_id).is_some_and(|device| {
            device.connection == Some(self.id)
                && device
                    .mqtt_session
                    .as_ref()
                    .is_some_and(|s| s.subscriptions.contains_key(&subscription))
        })
    }

    /// A newer connection authenticated as the same device.
    pub(crate) fn evict(&mut self, now: Timestamp, hub: &mut HubState) {
        if let State::Connected(online) = &self.state {
            let reason = String::from("another connection authenticated as this device");
            hub.emit(HubEvent::Refused {
                connection: self.id,
                identity: Some(online.identity.clone()),
                code: ErrorCode::CONNECTION_FORCEFULLY_CLOSED_ON_NEW_CONNECTION,
                reason: reason.clone(),
            });
            let ending = Ending {
                code: ErrorCode::CONNECTION_FORCEFULLY_CLOSED_ON_NEW_CONNECTION,
                reason,
                publish_will: true,
            };
            self.end(now, hub, ending);
            self.outbox.push(Transmit::Close);
        }
    }

    /// The peer closed or the transport broke.
    pub(crate) fn handle_close(&mut self, now: Timestamp, hub: &mut HubState) {
        let ending = Ending {
            code: ErrorCode::DEVICE_CONNECTION_CLOSED_REMOTELY,
            reason: String::from("the transport closed without DISCONNECT"),
            publish_will: true,
        };
        self.end(now, hub, ending);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.state {
            State::AwaitingConnect { deadline }
            | State::AwaitingAuthentication { deadline, .. } => Some(*deadline),
            State::Connected(online) => Some(online.silent_until.min(online.token_expiry)),
            State::Closed => None,
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp, hub: &mut HubState) {
        match &self.state {
            State::AwaitingAuthentication { deadline, accepted, .. } if now >= *deadline => {
                hub.emit(HubEvent::Refused {
                    connection: self.id,
                    identity: Some(accepted.identity.clone()),
                    code: ErrorCode::IOT_HUB_UNAUTHORIZED,
                    reason: String::from("the SAS token was not judged within the connect timeout"),
                });
                self.state = State::Closed;
                self.rx.clear();
                self.outbox.push(Transmit::Close);
            }
            State::AwaitingConnect { deadline } if now >= *deadline => {
                hub.emit(HubEvent::Refused {
                    connection: self.id,
                    identity: None,
                    code: ErrorCode::ARGUMENT_INVALID,
                    reason: String::from("no CONNECT within the connect timeout"),
                });
                self.state = State::Closed;
                self.outbox.push(Transmit::Close);
            }
            State::Connected(online) if now >= online.token_expiry => {
                let ending = Ending {
                    code: ErrorCode::IOT_HUB_UNAUTHORIZED,
                    reason: String::from("the SAS token expired"),
                    publish_will: true,
                };
                self.end(now, hub, ending);
                self.outbox.push(Transmit::Close);
            }
            State::Connected(online) if now >= online.silent_until => {
                let ending = Ending {
                    code: ErrorCode::DEVICE_CONNECTION_CLOSED_REMOTELY,
                    reason: format!(
                        "no packet for {} ms, 1.5 × the keep-alive [MQTT-3.1.2-24]",
                        online.timeout.as_millis()
                    ),
                    publish_will: true,
                };
                self.end(now, hub, ending);
                self.outbox.push(Transmit::Close);
            }
            _ => {}
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    fn send(&mut self, packet: &Packet) {
        // Packets the hub builds are within every limit (C2D topics are checked in
        // `pump_c2d`), so encoding does not fail.
        let _ = packet.encode(self.outbox.buffer());
    }

    /// Logs a refusal, ends the connection and closes it: the reaction MQTT has for
    /// every violation.
    fn forbid(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        code: ErrorCode,
        reason: String,
    ) -> Result<(), HubProtocolError> {
        self.refuse_and_close(now, hub, code, reason.clone());
        Err(HubProtocolError::Forbidden(reason))
    }

    fn refuse_and_close(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        code: ErrorCode,
        reason: String,
    ) {
        let identity = match &self.state {
            State::Connected(online) => Some(online.identity.clone()),
            _ => None,
        };
        hub.emit(HubEvent::Refused { connection: self.id, identity, code, reason: reason.clone() });
        self.end(now, hub, Ending { code, reason, publish_will: true });
        self.outbox.push(Transmit::Close);
    }

    /// Leaves the Connected state: publishes the will, hands deliveries back to the
    /// queue, releases the device and logs the end.
    fn end(&mut self, now: Timestamp, hub: &mut HubState, ending: Ending) {
        self.rx.clear();
        let State::Connected(online) = core::mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        let device_id = online.identity.device_id.clone();
        if ending.publish_will {
            if let Some(will) = online.will {
                publish_will(now, self.id, &online.identity, will, hub);
            }
        }
        if let Some(device) = hub.device(&device_id) {
            // A newer connection owns the session once it has evicted this one.
            if device.connection == Some(self.id) {
                if let Some(session) = device.mqtt_session.as_mut() {
                    session.detach(&mut device.queue);
                }
                if online.clean_session {
                    device.mqtt_session = None;
                }
            }
        }
        hub.unbind(&device_id, self.id);
        hub.emit(HubEvent::Disconnected {
            connection: self.id,
            identity: online.identity,
            code: ending.code,
            reason: ending.reason,
        });
    }
}

/// A CONNECT refusal: the CONNACK code (none: close without one), IoT Hub's code
/// and the reason for the log.
struct Refusal {
    identity: Option<Identity>,
    connack: Option<ConnectReturnCode>,
    code: ErrorCode,
    reason: String,
}

/// IoT Hub turns the will into telemetry marked `iothub-MessageType: Will` (spec file
/// §4.1).
fn publish_will(
    now: Timestamp,
    connection: ConnectionId,
    identity: &Identity,
    will: Will,
    hub: &mut HubState,
) {
    // The topic was checked at CONNECT.
    let Ok(message) = topic::parse_telemetry(&will.topic, identity, will.payload) else {
        return;
    };
    hub.store_telemetry(now, connection, identity, message, Origin::Will);
}
