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
//! - Twin requests (spec file §4.5) are published at QoS 0, as Node and C do, with a
//!   decimal counter as `$rid` (the C SDK's form); `$iothub/twin/res/#` is
//!   subscribed before the first. They wait while offline (at most `max_queued`
//!   with those awaiting an answer; past that the oldest fails); one unanswered when
//!   its connection ends fails with no status. A 200 whose body is no twin fails
//!   with status 200.
//! - Desired-property notifications and direct methods arrive on the subscriptions
//!   `receive_desired` and `receive_methods` ask for, made after the CONNACK with
//!   the C2D one; a method request not answered before its connection ends is
//!   forgotten (the hub answers the service for it).
//! - A key-signed token is renewed by reconnecting at 80 % of its lifetime, as the C
//!   SDK does (spec file §2.3); IoT Hub closes connections whose token expires.
//! - A lost connection is retried with capped exponential backoff; an authentication
//!   refusal is final.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::codec::{self, Limits};
use super::iothub_topic::IotHubTopic;
use super::keep_alive::{PingAction, Pinger};
use super::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, Subscribe,
    SubscribeReturnCode,
};
use super::packet_ids::PacketIds;
use super::subscription::Subscription;
use super::topic;
use crate::Protocol;
use crate::device::{
    C2dMessage, ConfigError, DeviceConfig, DeviceEvent, DisconnectReason, DispositionError,
    ProtocolError, RequestError, SendError, TelemetryId, TwinRequestId, signed_token,
};
use crate::iothub::{
    Authentication, Disposition, Identity, LockToken, Message, MethodRequest, MethodResponse, Twin,
    TwinPatch, method, twin,
};
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
    /// QoS 1 PUBLISHes received on this connection and not yet acknowledged, in
    /// arrival order: PUBACKs go out in that order [MQTT-4.6.0-2], each once its
    /// message is not the application's to complete (`c2d`), so a completed C2D
    /// message waits for the ones that came before it.
    pubacks: VecDeque<PacketId>,
    /// The ids in `pubacks`: one the hub sends again on this connection is
    /// queued once.
    puback_ids: BTreeSet<PacketId>,
    /// SUBSCRIBEs sent and not yet answered: what each asks for.
    subscribing: BTreeMap<PacketId, Vec<Subscription>>,
    /// The subscriptions the hub holds in its session.
    subscribed: BTreeSet<Subscription>,
    /// The last twin request id given out; `$rid` is its decimal form.
    last_twin_request: u64,
    /// Twin requests not yet sent, oldest first.
    twin_queued: VecDeque<(TwinRequestId, TwinRequest)>,
    /// Twin requests sent on this connection and not yet answered.
    twin_sent: BTreeMap<TwinRequestId, TwinRequest>,
    /// Method requests shown to the application and not yet answered, by `$rid`.
    methods: BTreeSet<String>,
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

/// A twin request (spec file §4.5).
#[derive(Clone, Debug)]
enum TwinRequest {
    Get,
    /// The reported-properties patch, as JSON.
    Patch(Bytes),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum C2dState {
    /// Shown to the application, which has not settled it.
    Delivered,
    /// Completed; its PUBACK waits for the PUBLISHes that arrived before it or,
    /// when completed offline, for the hub to send it again.
    Completed,
}

impl DeviceSession {
    /// A session that asks to dial at once.
    pub fn new(now: Timestamp, config: DeviceConfig) -> Result<Self, ConfigError> {
        config.check_limits()?;
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
            pubacks: VecDeque::new(),
            puback_ids: BTreeSet::new(),
            subscribing: BTreeMap::new(),
            subscribed: BTreeSet::new(),
            last_twin_request: 0,
            twin_queued: VecDeque::new(),
            twin_sent: BTreeMap::new(),
            methods: BTreeSet::new(),
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

    /// Asks for the twin; see [`crate::device::Device::get_twin`]. Sent at once when
    /// connected, else on connecting.
    ///
    /// Errors: [`RequestError::Stopped`].
    pub fn get_twin(&mut self, now: Timestamp) -> Result<TwinRequestId, RequestError> {
        self.queue_twin(now, TwinRequest::Get)
    }

    /// Patches the reported properties; see
    /// [`crate::device::Device::patch_reported`].
    ///
    /// Errors: [`RequestError::Stopped`]; [`RequestError::TooLarge`] when the
    /// patch's JSON passes [`twin::MAX_SECTION_SIZE`], which no section can hold.
    pub fn patch_reported(
        &mut self,
        now: Timestamp,
        patch: TwinPatch,
    ) -> Result<TwinRequestId, RequestError> {
        let json = patch.to_json();
        if json.len() > twin::MAX_SECTION_SIZE {
            return Err(RequestError::TooLarge { size: json.len(), max: twin::MAX_SECTION_SIZE });
        }
        self.queue_twin(now, TwinRequest::Patch(Bytes::from(json)))
    }

    fn queue_twin(
        &mut self,
        now: Timestamp,
        request: TwinRequest,
    ) -> Result<TwinRequestId, RequestError> {
        if matches!(self.state, State::Stopped) {
            return Err(RequestError::Stopped);
        }
        if self.twin_queued.len() + self.twin_sent.len() >= self.config.max_queued {
            // The oldest request goes: a newer GET answers what an older one asked.
            let oldest = self
                .twin_sent
                .pop_first()
                .map(|(id, _)| id)
                .or_else(|| self.twin_queued.pop_front().map(|(id, _)| id));
            if let Some(request) = oldest {
                self.events.push_back(DeviceEvent::TwinRequestFailed {
                    request,
                    status: None,
                    description: String::from("dropped: more than max_queued twin requests waited"),
                });
            }
        }
        self.last_twin_request += 1;
        let id = TwinRequestId(self.last_twin_request);
        self.twin_queued.push_back((id, request));
        self.pump_twin(now);
        Ok(id)
    }

    /// Answers a method request; see [`crate::device::Device::respond_method`]:
    /// published at QoS 0 on `$iothub/methods/res/{status}/?$rid={rid}` (spec file
    /// §4.6, TV-13).
    ///
    /// Errors: [`RequestError::UnknownRequest`], [`RequestError::TooLarge`] past
    /// [`method::MAX_PAYLOAD`].
    pub fn respond_method(
        &mut self,
        now: Timestamp,
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        let MethodResponse { request_id, status, payload } = response;
        if !self.methods.contains(&request_id) {
            return Err(RequestError::UnknownRequest(request_id));
        }
        if payload.len() > method::MAX_PAYLOAD {
            return Err(RequestError::TooLarge { size: payload.len(), max: method::MAX_PAYLOAD });
        }
        self.methods.remove(&request_id);
        let topic = IotHubTopic::MethodResponse { status, rid: request_id }.to_topic();
        self.send(now, &qos0(topic, payload));
        Ok(())
    }

    /// Settles a C2D delivery. Over MQTT only [`Disposition::Complete`] exists: it
    /// sends the PUBACK [MQTT-4.3.2-2], once the PUBLISHes that arrived before this
    /// one are acknowledged too [MQTT-4.6.0-2]; reject and abandon are refused.
    pub fn settle(
        &mut self,
        now: Timestamp,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        if disposition != Disposition::Complete {
            return Err(DispositionError::Unsupported { protocol: Protocol::Mqtt, disposition });
        }
        let Some(id) = lock.packet_id().filter(|id| self.c2d.get(id) == Some(&C2dState::Delivered))
        else {
            return Err(DispositionError::UnknownLockToken(*lock));
        };
        self.c2d.insert(id, C2dState::Completed);
        if self.puback_ids.contains(&id) {
            self.send_pubacks(now);
        }
        Ok(())
    }

    /// Sends the PUBACKs that may go, in arrival order [MQTT-4.6.0-2]: those at
    /// the front of the queue up to the first message the application holds.
    fn send_pubacks(&mut self, now: Timestamp) {
        while let Some(&id) = self.pubacks.front() {
            match self.c2d.get(&id) {
                Some(C2dState::Delivered) => return,
                Some(C2dState::Completed) => {
                    self.c2d.remove(&id);
                }
                None => {}
            }
            self.pubacks.pop_front();
            self.puback_ids.remove(&id);
            self.send(now, &Packet::PubAck(id));
        }
    }

    /// A QoS 1 PUBLISH arrived: its PUBACK joins the queue, and goes when the
    /// ones before it have and its message is not the application's to complete.
    fn received_qos1(&mut self, now: Timestamp, id: PacketId) {
        if self.puback_ids.insert(id) {
            self.pubacks.push_back(id);
        }
        self.send_pubacks(now);
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
        self.methods.clear();
        self.fail_twin_requests("the device disconnected before the answer");
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
            Packet::SubAck(suback) if self.subscribing.contains_key(&suback.packet_id) => {
                let asked = self.subscribing.remove(&suback.packet_id).unwrap_or_default();
                for (i, subscription) in asked.into_iter().enumerate() {
                    match (suback.return_codes.get(i), subscription) {
                        (Some(SubscribeReturnCode::Success(_)), _) => {
                            self.subscribed.insert(subscription);
                        }
                        (_, Subscription::C2d) => {
                            self.events.push_back(DeviceEvent::C2dSubscriptionRefused);
                        }
                        (_, Subscription::TwinResponses) => {
                            // No answer can arrive for what is waiting.
                            self.fail_sent_twin_requests(
                                "the hub refused the $iothub/twin/res/# subscription",
                            );
                        }
                        // A refused desired or method subscription shows in the service's
                        // view of the device (404103 for methods).
                        _ => {}
                    }
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
            // The hub has no session: its C2D deliveries and our subscriptions are
            // gone with it [MQTT-3.2.2-2].
            self.c2d.clear();
            self.subscribed.clear();
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
        self.subscribe_missing(now);
        self.pump(now);
        self.pump_twin(now);
    }

    /// Subscribes, in one SUBSCRIBE, to what the configuration asks for and twin
    /// requests need, and neither the hub holds nor a SUBSCRIBE in flight asks for.
    /// C2D at QoS 1 (spec file §4.4); the `$iothub/` filters at QoS 0, as Node and C
    /// subscribe (spec file §4.6).
    fn subscribe_missing(&mut self, now: Timestamp) {
        let wanted = [
            (Subscription::C2d, self.config.receive_c2d),
            (Subscription::Desired, self.config.receive_desired),
            (Subscription::Methods, self.config.receive_methods),
            (Subscription::TwinResponses, !self.twin_queued.is_empty()),
        ];
        let missing: Vec<Subscription> = wanted
            .into_iter()
            .filter(|&(s, wanted)| {
                wanted
                    && !self.subscribed.contains(&s)
                    && !self.subscribing.values().any(|asked| asked.contains(&s))
            })
            .map(|(s, _)| s)
            .collect();
        if missing.is_empty() {
            return;
        }
        let Some(id) = self.next_packet_id() else {
            return;
        };
        let filters = missing
            .iter()
            .map(|&s| {
                let qos = if s == Subscription::C2d { QoS::AtLeastOnce } else { QoS::AtMostOnce };
                (s.filter(&self.identity.device_id).into(), qos)
            })
            .collect();
        self.subscribing.insert(id, missing);
        self.send(now, &Packet::Subscribe(Subscribe { packet_id: id, filters }));
    }

    /// Sends the queued twin requests, after the SUBSCRIBE their answers need.
    fn pump_twin(&mut self, now: Timestamp) {
        if !matches!(self.state, State::Connected { .. }) || self.twin_queued.is_empty() {
            return;
        }
        self.subscribe_missing(now);
        while let Some((id, request)) = self.twin_queued.pop_front() {
            let rid = id.0.to_string();
            let (topic, payload) = match &request {
                TwinRequest::Get => (IotHubTopic::TwinGet { rid }, Bytes::new()),
                TwinRequest::Patch(json) => (IotHubTopic::TwinPatchReported { rid }, json.clone()),
            };
            self.send(now, &qos0(topic.to_topic(), payload));
            self.twin_sent.insert(id, request);
        }
    }

    /// An answer to a twin request: 200 a twin, 2xx with `$version` a patch taken,
    /// anything else a failure with the body's `message` (spec file §4.5).
    fn handle_twin_response(&mut self, status: u16, rid: &str, version: Option<u64>, body: &[u8]) {
        let Some((request, sent)) = rid
            .parse()
            .ok()
            .map(TwinRequestId)
            .and_then(|id| self.twin_sent.remove(&id).map(|sent| (id, sent)))
        else {
            // Not ours, or answered already.
            return;
        };
        let failed = |status, description| DeviceEvent::TwinRequestFailed {
            request,
            status: Some(status),
            description,
        };
        let event = match (sent, version) {
            _ if !(200..300).contains(&status) => failed(status, error_message(body)),
            (TwinRequest::Get, _) => match Twin::from_json(body) {
                Ok(twin) => DeviceEvent::Twin { request, twin },
                Err(e) => failed(status, alloc::format!("the answer is no twin: {e}")),
            },
            (TwinRequest::Patch(_), Some(version)) => {
                DeviceEvent::ReportedPatched { request, version }
            }
            (TwinRequest::Patch(_), None) => {
                failed(status, String::from("the answer has no $version"))
            }
        };
        self.events.push_back(event);
    }

    /// Fails every twin request sent and not answered.
    fn fail_sent_twin_requests(&mut self, description: &str) {
        for request in core::mem::take(&mut self.twin_sent).into_keys() {
            self.events.push_back(DeviceEvent::TwinRequestFailed {
                request,
                status: None,
                description: String::from(description),
            });
        }
    }

    /// Fails every twin request, sent or waiting: the device has stopped.
    fn fail_twin_requests(&mut self, description: &str) {
        self.fail_sent_twin_requests(description);
        for (request, _) in core::mem::take(&mut self.twin_queued) {
            self.events.push_back(DeviceEvent::TwinRequestFailed {
                request,
                status: None,
                description: String::from(description),
            });
        }
    }

    /// A PUBLISH on a `$iothub/` topic: a twin answer, a desired-property
    /// notification or a method request. QoS 1 (which the SDKs never ask for) is
    /// acknowledged in its turn, needing nothing of the application; a topic only
    /// devices publish on is dropped.
    fn handle_iothub_publish(&mut self, now: Timestamp, topic: IotHubTopic, publish: Publish) {
        if let (QoS::AtLeastOnce, Some(id)) = (publish.qos, publish.packet_id) {
            self.received_qos1(now, id);
        }
        match topic {
            IotHubTopic::TwinResponse { status, rid, version } => {
                self.handle_twin_response(status, &rid, version, &publish.payload);
            }
            IotHubTopic::DesiredPatch { version } => {
                // The body's own `$version` is dropped; the topic's is the same.
                if let Ok(patch) = TwinPatch::parse(&publish.payload) {
                    self.events.push_back(DeviceEvent::DesiredUpdated { patch, version });
                }
            }
            IotHubTopic::MethodRequest { name, rid } => {
                self.methods.insert(rid.clone());
                self.events.push_back(DeviceEvent::MethodRequest(MethodRequest {
                    request_id: rid,
                    name,
                    payload: publish.payload,
                }));
            }
            IotHubTopic::TwinGet { .. }
            | IotHubTopic::TwinPatchReported { .. }
            | IotHubTopic::MethodResponse { .. } => {}
        }
    }

    fn handle_publish(&mut self, now: Timestamp, publish: Publish) -> Result<(), ProtocolError> {
        let lock = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => None,
            (QoS::AtLeastOnce, Some(id)) => Some(id),
            // We never subscribe at QoS 2, and the server may not exceed the granted
            // QoS [MQTT-3.8.4-6]; a QoS 1 PUBLISH always has an id [MQTT-2.3.1-5].
            _ => return Err(ProtocolError::UnexpectedPacket("PUBLISH at QoS 2")),
        };
        if let Some(topic) = IotHubTopic::parse(&publish.topic) {
            self.handle_iothub_publish(now, topic, publish);
            return Ok(());
        }
        if let Some(id) = lock {
            // The hub sent it again: completed already (its PUBACK goes in turn), or
            // shown and not yet settled (shown once is enough).
            let again = match self.c2d.get(&id) {
                Some(C2dState::Completed) => true,
                Some(C2dState::Delivered) => publish.dup,
                None => false,
            };
            if again {
                self.received_qos1(now, id);
                return Ok(());
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
                    self.received_qos1(now, id);
                }
                return Ok(());
            }
        };
        if let Some(id) = lock {
            self.c2d.insert(id, C2dState::Delivered);
            self.received_qos1(now, id);
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
        let (in_flight, subscribing) = (&self.in_flight, &self.subscribing);
        self.packet_ids.next(|id| {
            subscribing.contains_key(&id) || in_flight.iter().any(|(_, p)| p.packet_id == Some(id))
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
        // The order binds one connection's PUBLISHes; on the next one the hub sends
        // again what was not acknowledged, and that order counts [MQTT-4.4.0-1].
        self.pubacks.clear();
        self.puback_ids.clear();
        self.subscribing.clear();
        if self.config.clean_session {
            self.subscribed.clear();
        }
        // The hub answers the service for methods left unanswered (spec file §4.6).
        self.methods.clear();
        let reconnect_at = if is_final(&reason) {
            self.state = State::Stopped;
            self.fail_twin_requests("the connection ended and the device has stopped");
            None
        } else {
            self.fail_sent_twin_requests("the connection ended before the answer");
            let until = now + self.config.backoff.delay(self.attempt, &mut self.rng);
            self.attempt = self.attempt.saturating_add(1);
            self.state = State::Waiting { until };
            Some(until)
        };
        self.events.push_back(DeviceEvent::Disconnected { reason, reconnect_at });
    }
}

/// A QoS 0 PUBLISH: how twin requests and method responses go (spec file §4.5,
/// §4.6).
fn qos0(topic: super::TopicName, payload: Bytes) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic,
        packet_id: None,
        payload,
    })
}

/// The `message` of an IoT Hub error body (`{"errorCode":…,"message":…}`, spec file
/// §4.5), else the body as text.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => match map.get("message") {
            Some(serde_json::Value::String(m)) => m.clone(),
            _ => String::new(),
        },
        _ => String::from_utf8_lossy(body).into_owned(),
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
