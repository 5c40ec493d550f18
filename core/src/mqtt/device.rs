//! The device's side of an MQTT connection to IoT Hub (spec file §4).
//!
//! One [`DeviceSession`] outlives its TCP connections: telemetry waiting or in flight,
//! C2D messages not yet completed and the reconnect schedule carry over from one
//! connection to the next.
//!
//! - CONNECT carries the IoT Hub client id, user name and a SAS token signed from the
//!   device key (spec file §4.1); nothing else is sent before the CONNACK.
//! - Telemetry is published at QoS 1 on `devices/{id}/messages/events/{bag}`, at most
//!   `max_in_flight` at a time; the PUBACK resolves it. After a reconnect the
//!   unacknowledged PUBLISHes are sent again first, in order, with DUP set
//!   [MQTT-4.4.0-1] [MQTT-3.3.1-1].
//! - C2D messages arrive on the device-bound subscription; `complete` sends the PUBACK.
//!   MQTT has no reject and no abandon (spec file §4.4).
//! - A key-signed token is renewed by reconnecting at 80 % of its lifetime, as the C
//!   SDK does (spec file §2.3); IoT Hub closes connections whose token expires.
//! - A lost connection is retried with capped exponential backoff; an authentication
//!   refusal is final.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use bytes::BytesMut;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::codec::{self, Limits};
use super::keep_alive::{PingAction, Pinger};
use super::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, Subscribe,
    SubscribeReturnCode,
};
use super::packet_ids::PacketIds;
use super::topic;
use crate::Protocol;
use crate::device::{
    C2dMessage, ConfigError, DeviceConfig, DeviceEvent, DisconnectReason, DispositionError,
    ProtocolError, SendError, TelemetryId, signed_token,
};
use crate::iothub::{Authentication, Disposition, Identity, LockToken, Message};
use crate::mqtt::username::Username;
use crate::sansio::{Outbox, Transmit};
use crate::time::{Timestamp, earliest};
use crate::utf8::Utf8Bytes;

pub use crate::device::MAX_TELEMETRY_SIZE;

/// The device side of MQTT. Drive it through [`crate::device::Device`] or directly
/// with the same methods.
#[derive(Debug)]
pub struct DeviceSession {
    config: DeviceConfig,
    identity: Identity,
    username: Utf8Bytes,
    state: State,
    outbox: Outbox,
    events: VecDeque<DeviceEvent>,
    rx: BytesMut,
    limits: Limits,
    rng: Xoshiro256PlusPlus,
    packet_ids: PacketIds,
    next_telemetry: u64,
    /// Telemetry not yet sent, oldest first.
    queued: VecDeque<(TelemetryId, Publish)>,
    /// Telemetry sent and not yet acknowledged, in sending order; kept across
    /// reconnects to be sent again.
    in_flight: VecDeque<(TelemetryId, Publish)>,
    /// C2D deliveries shown to the application and not yet acknowledged.
    c2d: BTreeMap<PacketId, C2dState>,
    subscribe_id: Option<PacketId>,
    /// The hub holds our C2D subscription in its session.
    subscribed: bool,
    /// Failed connection attempts since the last CONNACK accepted.
    attempt: u32,
}

#[derive(Debug)]
enum State {
    /// Waiting to dial again.
    Waiting {
        until: Timestamp,
    },
    /// `Transmit::Connect` is out; waiting for the transport.
    Dialing,
    /// CONNECT sent; nothing else may be until the CONNACK.
    AwaitingConnAck {
        deadline: Timestamp,
        renew_at: Option<Timestamp>,
    },
    Connected {
        pinger: Pinger,
        renew_at: Option<Timestamp>,
    },
    /// No more connections.
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum C2dState {
    /// Shown to the application, which has not settled it.
    Delivered,
    /// Completed while offline: the PUBACK goes out when the hub sends it again.
    CompletedOffline,
}

impl DeviceSession {
    /// A session that asks to dial at once.
    pub fn new(now: Timestamp, config: DeviceConfig) -> Result<Self, ConfigError> {
        if config.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if config.max_queued == 0 {
            return Err(ConfigError::Zero("max_queued"));
        }
        let identity = config.connection_string.identity();
        let username =
            Username::format(&config.connection_string.host_name, &identity, &config.client_type)
                .into();
        // Building the first CONNECT here turns a key that is not base64, or a host
        // or id no CONNECT can carry, into a configuration error instead of a device
        // that dials forever and is never answered.
        let (password, _) = credentials(&config, now).ok_or(ConfigError::InvalidKey)?;
        connect_packet(&config, &identity, &username, password)
            .encoded_len()
            .map_err(ConfigError::Connect)?;
        let mut outbox = Outbox::default();
        outbox.push(Transmit::Connect);
        Ok(DeviceSession {
            identity,
            username,
            state: State::Dialing,
            outbox,
            events: VecDeque::new(),
            rx: BytesMut::new(),
            limits: Limits { max_remaining_length: config.max_packet_size, ..Limits::default() },
            rng: Xoshiro256PlusPlus::seed_from_u64(config.seed),
            packet_ids: PacketIds::default(),
            next_telemetry: 0,
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            c2d: BTreeMap::new(),
            subscribe_id: None,
            subscribed: false,
            attempt: 0,
            config,
        })
    }

    /// Queues `message` for the hub; see [`crate::device::Device::send_telemetry`].
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
    ) -> Result<TelemetryId, SendError> {
        if matches!(self.state, State::Stopped) {
            return Err(SendError::Stopped);
        }
        if self.queued.len() >= self.config.max_queued {
            return Err(SendError::QueueFull { capacity: self.config.max_queued });
        }
        let size = message.size();
        if size > MAX_TELEMETRY_SIZE {
            return Err(SendError::TooLarge { size, max: MAX_TELEMETRY_SIZE });
        }
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: topic::telemetry(&self.identity, &message),
            packet_id: PacketId::new(1),
            payload: message.body,
        };
        // A property bag can make a topic longer than an MQTT string may be.
        if Packet::Publish(publish.clone()).encoded_len().is_err() {
            return Err(SendError::TooLarge { size, max: usize::from(u16::MAX) });
        }
        let id = TelemetryId(self.next_telemetry);
        self.next_telemetry += 1;
        self.queued.push_back((id, publish));
        self.pump(now);
        Ok(id)
    }

    /// PLACEHOLDER until the MQTT twin lands.
    pub fn get_twin(
        &mut self,
        _now: Timestamp,
    ) -> Result<crate::device::TwinRequestId, crate::device::RequestError> {
        Err(crate::device::RequestError::Stopped)
    }

    /// PLACEHOLDER until the MQTT twin lands.
    pub fn patch_reported(
        &mut self,
        _now: Timestamp,
        _patch: crate::iothub::TwinPatch,
    ) -> Result<crate::device::TwinRequestId, crate::device::RequestError> {
        Err(crate::device::RequestError::Stopped)
    }

    /// PLACEHOLDER until MQTT methods land.
    pub fn respond_method(
        &mut self,
        _now: Timestamp,
        response: crate::iothub::MethodResponse,
    ) -> Result<(), crate::device::RequestError> {
        Err(crate::device::RequestError::UnknownRequest(response.request_id))
    }

    /// Settles a C2D delivery. Over MQTT only [`Disposition::Complete`] exists: it
    /// sends the PUBACK [MQTT-4.3.2-2]; reject and abandon are refused.
    pub fn settle(
        &mut self,
        now: Timestamp,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        if disposition != Disposition::Complete {
            return Err(DispositionError::Unsupported { protocol: Protocol::Mqtt, disposition });
        }
        let Some(id) = lock.packet_id().filter(|id| self.c2d.contains_key(id)) else {
            return Err(DispositionError::UnknownLockToken(*lock));
        };
        if matches!(self.state, State::Connected { .. }) {
            self.c2d.remove(&id);
            self.send(now, &Packet::PubAck(id));
        } else {
            self.c2d.insert(id, C2dState::CompletedOffline);
        }
        Ok(())
    }

    /// Sends DISCONNECT if connected, closes, and stops reconnecting. Telemetry not
    /// yet acknowledged stays unacknowledged.
    pub fn disconnect(&mut self, now: Timestamp) {
        match self.state {
            State::Stopped => return,
            State::Connected { .. } => {
                self.send(now, &Packet::Disconnect);
                self.outbox.push(Transmit::Close);
            }
            State::Dialing | State::AwaitingConnAck { .. } => self.outbox.push(Transmit::Close),
            State::Waiting { .. } => {}
        }
        self.state = State::Stopped;
        self.events.push_back(DeviceEvent::Disconnected {
            reason: DisconnectReason::Closed,
            reconnect_at: None,
        });
    }

    /// Telemetry queued or in flight.
    pub fn unacknowledged(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// The transport asked for is open: send CONNECT.
    pub fn handle_connected(&mut self, now: Timestamp) {
        if !matches!(self.state, State::Dialing) {
            return;
        }
        // `new` built a CONNECT with these credentials already.
        let Some((password, renew_at)) = credentials(&self.config, now) else { return };
        let connect = connect_packet(&self.config, &self.identity, &self.username, password);
        self.send(now, &connect);
        self.state =
            State::AwaitingConnAck { deadline: now + self.config.response_timeout, renew_at };
    }

    /// Bytes from the hub. A decoding error or a packet the hub may not send closes
    /// the connection and schedules a reconnect.
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ProtocolError> {
        if !matches!(self.state, State::AwaitingConnAck { .. } | State::Connected { .. }) {
            return Ok(());
        }
        self.rx.extend_from_slice(bytes);
        loop {
            let packet = match codec::decode(&mut self.rx, &self.limits) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.violation(now, e.into())),
            };
            if let Err(e) = self.handle_packet(now, packet) {
                return Err(self.violation(now, e));
            }
            if !matches!(self.state, State::AwaitingConnAck { .. } | State::Connected { .. }) {
                return Ok(());
            }
        }
    }

    /// The transport closed, broke, or could not be opened.
    pub fn handle_close(&mut self, now: Timestamp) {
        if matches!(
            self.state,
            State::Dialing | State::AwaitingConnAck { .. } | State::Connected { .. }
        ) {
            // Bytes not yet written went nowhere; what they carried is still queued
            // or in flight and goes out on the next connection.
            self.outbox.discard_bytes();
            self.connection_lost(now, DisconnectReason::TransportClosed);
        }
    }

    /// See [`crate::sansio::Connection::poll_transmit`].
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// See [`crate::sansio::Connection::poll_event`].
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// The reconnect time, the CONNACK deadline, or the next keep-alive or token
    /// renewal instant, by state.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.state {
            State::Waiting { until } => Some(*until),
            State::AwaitingConnAck { deadline, .. } => Some(*deadline),
            State::Connected { pinger, renew_at } => earliest(pinger.poll_timeout(), *renew_at),
            State::Dialing | State::Stopped => None,
        }
    }

    /// Dials again, gives up on a CONNACK, renews the token or pings, as due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        match &mut self.state {
            State::Waiting { until } if now >= *until => {
                self.state = State::Dialing;
                self.outbox.push(Transmit::Connect);
            }
            State::AwaitingConnAck { deadline, .. } if now >= *deadline => {
                self.close(now, DisconnectReason::ConnAckTimeout);
            }
            State::Connected { renew_at: Some(at), .. } if now >= *at => {
                self.send(now, &Packet::Disconnect);
                self.outbox.push(Transmit::Close);
                self.events.push_back(DeviceEvent::Disconnected {
                    reason: DisconnectReason::TokenRenewal,
                    reconnect_at: Some(now),
                });
                self.state = State::Dialing;
                self.outbox.push(Transmit::Connect);
            }
            State::Connected { pinger, .. } => match pinger.handle_timeout(now) {
                Some(PingAction::SendPingReq) => self.send(now, &Packet::PingReq),
                Some(PingAction::Dead) => self.close(now, DisconnectReason::KeepAliveTimeout),
                None => {}
            },
            _ => {}
        }
    }

    fn handle_packet(&mut self, now: Timestamp, packet: Packet) -> Result<(), ProtocolError> {
        if let State::AwaitingConnAck { renew_at, .. } = self.state {
            // [MQTT-3.2.0-1]: the first packet from the server is a CONNACK.
            let Packet::ConnAck(connack) = packet else {
                return Err(ProtocolError::UnexpectedPacket(packet.name()));
            };
            self.handle_connack(now, connack, renew_at);
            return Ok(());
        }
        match packet {
            Packet::PubAck(id) => {
                // Acknowledgements come in order [MQTT-4.6.0-2]; the search is for
                // hubs that answer otherwise.
                if let Some(i) = self.in_flight.iter().position(|(_, p)| p.packet_id == Some(id)) {
                    if let Some((telemetry, _)) = self.in_flight.remove(i) {
                        self.events.push_back(DeviceEvent::TelemetryAcknowledged(telemetry));
                    }
                    self.pump(now);
                }
                Ok(())
            }
            Packet::Publish(publish) => self.handle_publish(now, publish),
            Packet::SubAck(suback) if Some(suback.packet_id) == self.subscribe_id => {
                self.subscribe_id = None;
                match suback.return_codes.first() {
                    Some(SubscribeReturnCode::Success(_)) => self.subscribed = true,
                    _ => self.events.push_back(DeviceEvent::C2dSubscriptionRefused),
                }
                Ok(())
            }
            Packet::PingResp => {
                if let State::Connected { pinger, .. } = &mut self.state {
                    pinger.on_pingresp();
                }
                Ok(())
            }
            other => Err(ProtocolError::UnexpectedPacket(other.name())),
        }
    }

    fn handle_connack(&mut self, now: Timestamp, connack: ConnAck, renew_at: Option<Timestamp>) {
        if connack.code != ConnectReturnCode::Accepted {
            self.close(now, DisconnectReason::Refused(connack.code));
            return;
        }
        self.attempt = 0;
        self.state = State::Connected {
            pinger: Pinger::new(now, self.config.keep_alive, self.config.response_timeout),
            renew_at,
        };
        if !connack.session_present {
            // The hub has no session: its C2D deliveries and our subscription are
            // gone with it [MQTT-3.2.2-2].
            self.c2d.clear();
            self.subscribed = false;
        }
        self.events.push_back(DeviceEvent::Connected { session_present: connack.session_present });
        // [MQTT-4.4.0-1]: unacknowledged PUBLISHes go again, first and in order.
        for i in 0..self.in_flight.len() {
            if let Some((_, publish)) = self.in_flight.get_mut(i) {
                publish.dup = true;
                let packet = Packet::Publish(publish.clone());
                self.send(now, &packet);
            }
        }
        if self.config.receive_c2d && !self.subscribed {
            self.subscribe(now);
        }
        self.pump(now);
    }

    fn subscribe(&mut self, now: Timestamp) {
        let Some(id) = self.next_packet_id() else {
            return;
        };
        self.subscribe_id = Some(id);
        let filter = topic::c2d_filter(&self.identity.device_id).into();
        let subscribe =
            Subscribe { packet_id: id, filters: alloc::vec![(filter, QoS::AtLeastOnce)] };
        self.send(now, &Packet::Subscribe(subscribe));
    }

    fn handle_publish(&mut self, now: Timestamp, publish: Publish) -> Result<(), ProtocolError> {
        let lock = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => None,
            (QoS::AtLeastOnce, Some(id)) => Some(id),
            // We never subscribe at QoS 2, and the server may not exceed the granted
            // QoS [MQTT-3.8.4-6]; a QoS 1 PUBLISH always has an id [MQTT-2.3.1-5].
            _ => return Err(ProtocolError::UnexpectedPacket("PUBLISH at QoS 2")),
        };
        if let Some(id) = lock {
            match self.c2d.get(&id) {
                Some(C2dState::CompletedOffline) => {
                    self.c2d.remove(&id);
                    self.send(now, &Packet::PubAck(id));
                    return Ok(());
                }
                // The hub sent it again before we settled it: shown once is enough.
                Some(C2dState::Delivered) if publish.dup => return Ok(()),
                _ => {}
            }
        }
        let message = match topic::parse_c2d(
            &publish.topic,
            &self.identity.device_id,
            publish.payload.clone(),
        ) {
            Ok(message) => message,
            Err(topic::TopicError::PropertyBag(_)) => {
                return Err(ProtocolError::UnexpectedPacket(
                    "C2D property bag that does not decode",
                ));
            }
            Err(_) => {
                // Not a C2D message for this device (a broker relaying other traffic):
                // acknowledge so the sender's window moves, and drop it.
                if let Some(id) = lock {
                    self.send(now, &Packet::PubAck(id));
                }
                return Ok(());
            }
        };
        if let Some(id) = lock {
            self.c2d.insert(id, C2dState::Delivered);
        }
        self.events.push_back(DeviceEvent::C2d(C2dMessage {
            lock_token: lock.map(LockToken::from_packet_id),
            message,
        }));
        Ok(())
    }

    /// Sends queued telemetry while the in-flight window has room.
    fn pump(&mut self, now: Timestamp) {
        if !matches!(self.state, State::Connected { .. }) {
            return;
        }
        while self.in_flight.len() < self.config.max_in_flight {
            let Some(id) = self.next_packet_id() else {
                return;
            };
            let Some((telemetry, mut publish)) = self.queued.pop_front() else {
                return;
            };
            publish.packet_id = Some(id);
            self.send(now, &Packet::Publish(publish.clone()));
            self.in_flight.push_back((telemetry, publish));
        }
    }

    fn next_packet_id(&mut self) -> Option<PacketId> {
        let (in_flight, subscribe_id) = (&self.in_flight, self.subscribe_id);
        self.packet_ids.next(|id| {
            subscribe_id == Some(id) || in_flight.iter().any(|(_, p)| p.packet_id == Some(id))
        })
    }

    fn send(&mut self, now: Timestamp, packet: &Packet) {
        // Every packet built here was size-checked where its contents entered
        // (`send_telemetry`, `new`), so encoding does not fail.
        if packet.encode(self.outbox.buffer()).is_ok() {
            if let State::Connected { pinger, .. } = &mut self.state {
                pinger.on_sent(now);
            }
        }
    }

    fn violation(&mut self, now: Timestamp, error: ProtocolError) -> ProtocolError {
        self.close(now, DisconnectReason::ProtocolViolation(error.clone()));
        error
    }

    /// Closes the transport from this side and decides what comes next.
    fn close(&mut self, now: Timestamp, reason: DisconnectReason) {
        self.outbox.push(Transmit::Close);
        self.connection_lost(now, reason);
    }

    fn connection_lost(&mut self, now: Timestamp, reason: DisconnectReason) {
        self.rx.clear();
        self.subscribe_id = None;
        if self.config.clean_session {
            self.subscribed = false;
        }
        let reconnect_at = if is_final(&reason) {
            self.state = State::Stopped;
            None
        } else {
            let until = now + self.config.backoff.delay(self.attempt, &mut self.rng);
            self.attempt = self.attempt.saturating_add(1);
            self.state = State::Waiting { until };
            Some(until)
        };
        self.events.push_back(DeviceEvent::Disconnected { reason, reconnect_at });
    }
}

/// The CONNECT password and when to renew it: a token signed with the device key,
/// renewed at 80 % of its lifetime; a given token as it is; nothing for X.509, whose
/// TLS client certificate authenticates. `None` when the key is not base64.
fn credentials(
    config: &DeviceConfig,
    now: Timestamp,
) -> Option<(Option<String>, Option<Timestamp>)> {
    let cs = &config.connection_string;
    Some(match &cs.authentication {
        Authentication::SharedAccessKey(key) => {
            let (token, renew_at) = signed_token(config, key, now)?;
            (Some(token.to_string()), Some(renew_at))
        }
        Authentication::SharedAccessSignature(token) => (Some(token.clone()), None),
        Authentication::X509 => (None, None),
    })
}

/// CONNECT with the IoT Hub client id and user name (spec file §4.1).
fn connect_packet(
    config: &DeviceConfig,
    identity: &Identity,
    username: &Utf8Bytes,
    password: Option<String>,
) -> Packet {
    Packet::Connect(Connect {
        protocol_name: Utf8Bytes::from_static(Connect::PROTOCOL_NAME),
        protocol_level: Connect::PROTOCOL_LEVEL,
        clean_session: config.clean_session,
        keep_alive: u16::try_from(config.keep_alive.as_secs()).unwrap_or(u16::MAX),
        client_id: identity.to_string().into(),
        will: None,
        username: Some(username.clone()),
        password: password.map(|p| bytes::Bytes::from(p.into_bytes())),
    })
}

/// Refusals that another attempt cannot fix: a protocol level the hub lacks, an
/// identity or credential it refused. "Server unavailable" is worth retrying
/// (spec file §4.1.3).
fn is_final(reason: &DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::Refused(
            ConnectReturnCode::UnacceptableProtocolVersion
                | ConnectReturnCode::IdentifierRejected
                | ConnectReturnCode::BadUsernameOrPassword
                | ConnectReturnCode::NotAuthorized
        )
    )
}
