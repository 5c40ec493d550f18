//! The device's twin and method links (spec file §5.3, §5.6, §5.7, §5.9 steps 6–7):
//! attaching them, twin requests matched to their answers by correlation-id,
//! desired-property notifications, method requests and their responses.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use bytes::{Bytes, BytesMut};
use rand_core::RngCore;

use super::{
    C2dDelivery, CLIENT_VERSION, DeviceKey, Multiplexed, Owner, State, error, source, target,
};
use crate::amqp::address::NodeAddress;
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::engine::CommandError;
use crate::amqp::link::{self, Delivery, LinkId, LinkSpec, LinkState};
use crate::amqp::message::{Message, MessageId};
use crate::amqp::methods;
use crate::amqp::performative::{
    MESSAGE_FORMAT_AMQP, ReceiverSettleMode, Role, SenderSettleMode, condition,
};
use crate::amqp::twin::{
    API_VERSION, API_VERSION_VALUE, CHANNEL_CORRELATION_ID, TwinOperation, TwinReply, TwinRequest,
    TwinResponse,
};
use crate::amqp::types::{Limits, Symbol, Value};
use crate::device::{DeviceEvent, RequestError, TwinRequestId};
use crate::iothub::method::MAX_PAYLOAD;
use crate::iothub::twin::MAX_SECTION_SIZE;
use crate::iothub::{MethodResponse, Twin, TwinPatch};
use crate::time::Timestamp;
use crate::utf8::Utf8Bytes;

/// Credit on the twin receiver: replies and notifications the hub may send before
/// this side grants more. Topped up at half.
pub(super) const TWIN_CREDIT: u32 = 16;

/// Credit on the methods receiver: requests the hub may send before this side
/// grants more. Topped up at half.
pub(super) const METHOD_CREDIT: u32 = 16;

/// What a twin request sent asks, to read its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    Get(TwinRequestId),
    Patch(TwinRequestId),
    /// The PUT subscription to desired updates ([`crate::device::DeviceConfig::receive_desired`]).
    Subscribe,
}

/// One device's twin and method links and what waits on them.
#[derive(Debug, Default)]
pub(super) struct Channels {
    pub(super) twin_sender: Option<LinkId>,
    pub(super) twin_receiver: Option<LinkId>,
    pub(super) method_sender: Option<LinkId>,
    pub(super) method_receiver: Option<LinkId>,
    /// The twin links are wanted on every connection: a twin request was made.
    pub(super) wants_twin: bool,
    /// Twin requests not yet sent, oldest first.
    queue: VecDeque<(Ask, TwinOperation)>,
    /// Twin requests sent and not answered, by correlation-id.
    pending: BTreeMap<String, Ask>,
    /// The PUT subscription went out on the current twin links.
    subscribed: bool,
    next_request: u64,
    /// Method requests shown to the application and not answered: request id →
    /// correlation-id, echoed in its type (spec file §5.7).
    method_requests: BTreeMap<String, MessageId>,
    /// Encoded method responses waiting for the methods sender's credit.
    method_responses: VecDeque<Bytes>,
    next_tag: u64,
}

impl Channels {
    /// The links are gone: requests sent are failed (the answer would come on the
    /// lost link), method requests are forgotten (the hub answers the service
    /// itself), the subscription is to be sent again.
    pub(super) fn reset(
        &mut self,
        key: DeviceKey,
        events: &mut VecDeque<(DeviceKey, DeviceEvent)>,
    ) {
        self.subscribed = false;
        self.method_requests.clear();
        self.method_responses.clear();
        self.queue.retain(|(ask, _)| *ask != Ask::Subscribe);
        for ask in core::mem::take(&mut self.pending).into_values() {
            fail(ask, key, None, "the link or connection was lost before the answer", events);
        }
    }

    /// The device stopped: requests never sent fail too.
    pub(super) fn fail_queued(
        &mut self,
        key: DeviceKey,
        events: &mut VecDeque<(DeviceKey, DeviceEvent)>,
    ) {
        for (ask, _) in core::mem::take(&mut self.queue) {
            fail(ask, key, None, "the device stopped", events);
        }
    }
}

/// Reports a failed twin request (the subscription's failure has no event).
fn fail(
    ask: Ask,
    key: DeviceKey,
    status: Option<u16>,
    description: &str,
    events: &mut VecDeque<(DeviceKey, DeviceEvent)>,
) {
    if let Ask::Get(request) | Ask::Patch(request) = ask {
        let description = String::from(description);
        events.push_back((key, DeviceEvent::TwinRequestFailed { request, status, description }));
    }
}

impl Multiplexed {
    /// Asks for device `key`'s twin: [`DeviceEvent::Twin`] answers, or
    /// [`DeviceEvent::TwinRequestFailed`]. The first twin request attaches the twin
    /// links (spec file §5.9 step 6); requests wait while the device is offline.
    ///
    /// # Errors
    ///
    /// [`RequestError::Stopped`] for a device refused, closed or not of this
    /// connection.
    pub fn get_twin(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
    ) -> Result<TwinRequestId, RequestError> {
        self.twin_request(now, key, |id| (Ask::Get(id), TwinOperation::Get))
    }

    /// Patches device `key`'s reported properties: [`DeviceEvent::ReportedPatched`]
    /// answers with the new version, or [`DeviceEvent::TwinRequestFailed`].
    ///
    /// # Errors
    ///
    /// [`RequestError::Stopped`]; [`RequestError::TooLarge`] for a patch past 32 KiB
    /// of JSON (spec file §8).
    pub fn patch_reported(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        patch: TwinPatch,
    ) -> Result<TwinRequestId, RequestError> {
        let json = patch.to_json();
        if json.len() > MAX_SECTION_SIZE {
            return Err(RequestError::TooLarge { size: json.len(), max: MAX_SECTION_SIZE });
        }
        let json = Bytes::from(json);
        self.twin_request(now, key, |id| (Ask::Patch(id), TwinOperation::PatchReported(json)))
    }

    /// Answers device `key`'s method request: the response goes on its methods
    /// sender with the request's correlation-id in its type and `IoThub-status` an
    /// int (spec file §5.7).
    ///
    /// # Errors
    ///
    /// [`RequestError::UnknownRequest`]: no such request waits (answered, or lost
    /// with its link); [`RequestError::TooLarge`] past 128 KiB.
    pub fn respond_method(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        if response.payload.len() > MAX_PAYLOAD {
            return Err(RequestError::TooLarge { size: response.payload.len(), max: MAX_PAYLOAD });
        }
        let Some(slot) = self.devices.get_mut(&key) else {
            return Err(RequestError::UnknownRequest(response.request_id));
        };
        let Some(correlation) = slot.channels.method_requests.remove(&response.request_id) else {
            return Err(RequestError::UnknownRequest(response.request_id));
        };
        let mut payload = BytesMut::new();
        if methods::response_to_message(&response, correlation).encode(&mut payload).is_err() {
            // Built from a string, an int and bytes within the limit: it encodes.
            return Err(RequestError::UnknownRequest(response.request_id));
        }
        slot.channels.method_responses.push_back(payload.freeze());
        self.pump_method_responses(now, key);
        self.after(now);
        Ok(())
    }

    fn twin_request(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        request: impl FnOnce(TwinRequestId) -> (Ask, TwinOperation),
    ) -> Result<TwinRequestId, RequestError> {
        if matches!(self.state, State::Stopped) {
            return Err(RequestError::Stopped);
        }
        let Some(slot) = self.devices.get_mut(&key).filter(|s| s.auth != super::Auth::Stopped)
        else {
            return Err(RequestError::Stopped);
        };
        let id = TwinRequestId(slot.channels.next_request);
        slot.channels.next_request += 1;
        slot.channels.queue.push_back(request(id));
        if !slot.channels.wants_twin {
            slot.channels.wants_twin = true;
            // Links already up (the device is authorised): the twin's join them.
            if slot.telemetry.is_some() && slot.channels.twin_sender.is_none() {
                self.attach_twin(now, key);
            }
        }
        self.pump_twin(now, key);
        self.after(now);
        Ok(id)
    }

    /// The attach properties of a twin or method link: the product, the channel's
    /// correlation-id, the api-version (spec file §5.3).
    fn channel_properties(
        &mut self,
        key: DeviceKey,
        kind: &str,
    ) -> Option<crate::amqp::performative::Fields> {
        let slot = self.devices.get(&key)?;
        let mut uuid = [0u8; 16];
        self.rng.fill_bytes(&mut uuid);
        let channel = alloc::format!("{kind}:{}", MessageId::Uuid(uuid));
        Some(alloc::vec![
            (
                Symbol::from_static(CLIENT_VERSION),
                Value::String(Utf8Bytes::from(slot.config.client_type.as_str())),
            ),
            (
                Symbol::from_static(CHANNEL_CORRELATION_ID),
                Value::String(Utf8Bytes::from(channel.as_str()))
            ),
            (
                Symbol::from_static(API_VERSION),
                Value::String(Utf8Bytes::from_static(API_VERSION_VALUE))
            ),
        ])
    }

    /// Attaches the twin sender then receiver (spec file §5.9 step 6), both
    /// snd-settle-mode settled and rcv-settle-mode first, as Node and C (§5.3).
    pub(super) fn attach_twin(&mut self, now: Timestamp, key: DeviceKey) {
        let Some(properties) = self.channel_properties(key, "twin") else { return };
        let links = self.attach_pair(now, key, "twin", properties, SenderSettleMode::Settled);
        if let (Some(slot), Some((sender, receiver))) = (self.devices.get_mut(&key), links) {
            slot.channels.twin_sender = Some(sender);
            slot.channels.twin_receiver = Some(receiver);
        }
    }

    /// With [`crate::device::DeviceConfig::receive_methods`], attaches the methods
    /// sender then receiver (spec file §5.9 step 7).
    pub(super) fn attach_methods(&mut self, now: Timestamp, key: DeviceKey) {
        if !self.devices.get(&key).is_some_and(|s| s.config.receive_methods) {
            return;
        }
        let Some(properties) = self.channel_properties(key, "methods") else { return };
        // The receiver lets the hub choose: it accepts whatever comes unsettled.
        let links = self.attach_pair(now, key, "methods", properties, SenderSettleMode::Mixed);
        if let (Some(slot), Some((sender, receiver))) = (self.devices.get_mut(&key), links) {
            slot.channels.method_sender = Some(sender);
            slot.channels.method_receiver = Some(receiver);
        }
    }

    /// A sender to and a receiver from the device's `kind` node, in that order.
    fn attach_pair(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        kind: &str,
        properties: crate::amqp::performative::Fields,
        receiver_mode: SenderSettleMode,
    ) -> Option<(LinkId, LinkId)> {
        let State::Open(wire) = &mut self.state else { return None };
        let slot = self.devices.get(&key)?;
        let session = wire.session?;
        let node = if kind == "twin" {
            NodeAddress::Twin(slot.identity.clone())
        } else {
            NodeAddress::Methods(slot.identity.clone())
        };
        let address = node.path();
        let n = wire.next_link;
        wire.next_link += 2;
        let name = |dir: &str, n: u64| {
            Utf8Bytes::from(alloc::format!("{kind}-{dir}-{}-{n}", slot.identity).as_str())
        };
        let sender = LinkSpec {
            snd_settle_mode: SenderSettleMode::Settled,
            rcv_settle_mode: ReceiverSettleMode::First,
            properties: properties.clone(),
            ..LinkSpec::new(name("snd", n), Role::Sender, Some(source("")), Some(target(&address)))
        };
        let receiver = LinkSpec {
            snd_settle_mode: receiver_mode,
            rcv_settle_mode: ReceiverSettleMode::First,
            max_message_size: u64::try_from(slot.config.max_packet_size).ok(),
            properties,
            ..LinkSpec::new(
                name("rcv", n + 1),
                Role::Receiver,
                Some(source(&address)),
                Some(target("")),
            )
        };
        let sender = wire.engine.attach(now, session, sender).ok()?;
        let receiver = wire.engine.attach(now, session, receiver).ok()?;
        let (snd_owner, rcv_owner) = if kind == "twin" {
            (Owner::TwinSender(key), Owner::TwinReceiver(key))
        } else {
            (Owner::MethodSender(key), Owner::MethodReceiver(key))
        };
        wire.links.insert(sender, snd_owner);
        wire.links.insert(receiver, rcv_owner);
        Some((sender, receiver))
    }

    /// A twin link attached: once both are, the subscription goes first (with
    /// `receive_desired`), then the requests waiting.
    pub(super) fn twin_links_up(&mut self, now: Timestamp, key: DeviceKey) {
        let Some(slot) = self.devices.get_mut(&key) else { return };
        if slot.config.receive_desired && !slot.channels.subscribed {
            slot.channels.subscribed = true;
            slot.channels.queue.push_front((Ask::Subscribe, TwinOperation::SubscribeDesired));
        }
        self.pump_twin(now, key);
    }

    /// Sends the device's waiting twin requests, settled, while the twin sender has
    /// credit and both twin links are attached.
    pub(super) fn pump_twin(&mut self, now: Timestamp, key: DeviceKey) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let c = &mut slot.channels;
        let (Some(sender), Some(receiver)) = (c.twin_sender, c.twin_receiver) else { return };
        let attached = |l| wire.engine.links().state(l) == Some(LinkState::Attached);
        if !attached(sender) || !attached(receiver) {
            return;
        }
        while wire.engine.links().flow_state(sender).map_or(0, |f| f.link_credit) > 0 {
            let Some((ask, operation)) = c.queue.pop_front() else { return };
            let mut uuid = [0u8; 16];
            self.rng.fill_bytes(&mut uuid);
            // A uuid kept as a string, as Node does (spec file §5.6).
            let correlation = MessageId::Uuid(uuid).to_string();
            let request = TwinRequest {
                correlation_id: MessageId::String(Utf8Bytes::from(correlation.as_str())),
                operation,
            };
            let mut payload = BytesMut::new();
            if request.to_message().encode(&mut payload).is_err() {
                fail(ask, key, None, "the request does not encode", &mut self.events);
                continue;
            }
            let tag = Bytes::copy_from_slice(&c.next_tag.to_be_bytes());
            c.next_tag += 1;
            let delivery = Delivery {
                tag,
                message_format: MESSAGE_FORMAT_AMQP,
                settled: true,
                payload: payload.freeze(),
            };
            match wire.engine.send(now, sender, delivery) {
                Ok(_) => {
                    c.pending.insert(correlation, ask);
                }
                Err(CommandError::Link(link::CommandError::MessageTooLarge { .. })) => {
                    let why = "the request exceeds the hub link's max-message-size";
                    fail(ask, key, None, why, &mut self.events);
                }
                Err(_) => {
                    c.queue.push_front((ask, request.operation));
                    return;
                }
            }
        }
    }

    /// Sends the device's method responses while the methods sender has credit.
    pub(super) fn pump_method_responses(&mut self, now: Timestamp, key: DeviceKey) {
        let State::Open(wire) = &mut self.state else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        let c = &mut slot.channels;
        let Some(sender) = c.method_sender else { return };
        if wire.engine.links().state(sender) != Some(LinkState::Attached) {
            return;
        }
        while wire.engine.links().flow_state(sender).map_or(0, |f| f.link_credit) > 0 {
            let Some(payload) = c.method_responses.pop_front() else { return };
            let tag = Bytes::copy_from_slice(&c.next_tag.to_be_bytes());
            c.next_tag += 1;
            let delivery = Delivery {
                tag,
                message_format: MESSAGE_FORMAT_AMQP,
                settled: true,
                payload: payload.clone(),
            };
            match wire.engine.send(now, sender, delivery) {
                Ok(_) => {}
                // The hub's link takes no response this large: the service times out.
                Err(CommandError::Link(link::CommandError::MessageTooLarge { .. })) => {}
                Err(_) => {
                    c.method_responses.push_front(payload);
                    return;
                }
            }
        }
    }

    /// A message on the twin receiver: a response (spec file §5.6) or, without
    /// correlation-id, a desired-property notification.
    pub(super) fn on_twin_reply(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        d: &C2dDelivery,
        payload: &Bytes,
    ) {
        let reply = self.read_received(now, key, d, payload, TWIN_CREDIT, |m| {
            TwinReply::from_message(m).map_err(|e| e.to_string())
        });
        let Some(slot) = self.devices.get_mut(&key) else { return };
        match reply {
            Ok(TwinReply::Response(response)) => {
                let correlation = match &response.correlation_id {
                    MessageId::String(s) => String::from(s.as_str()),
                    other => other.to_string(),
                };
                let Some(ask) = slot.channels.pending.remove(&correlation) else { return };
                if let Some(event) = answer(ask, response) {
                    self.events.push_back((key, event));
                }
            }
            Ok(TwinReply::Desired(body)) if slot.config.receive_desired => {
                if let Some((patch, version)) = desired(&body) {
                    self.events.push_back((key, DeviceEvent::DesiredUpdated { patch, version }));
                }
            }
            // A notification not subscribed to, or a reply that does not read (its
            // request times out with the link).
            _ => {}
        }
    }

    /// A method request (spec file §5.7): shown to the application, which answers
    /// with [`Multiplexed::respond_method`].
    pub(super) fn on_method_request(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        d: &C2dDelivery,
        payload: &Bytes,
    ) {
        let request = self.read_received(now, key, d, payload, METHOD_CREDIT, |m| {
            methods::request_from_message(m).map_err(|e| e.to_string())
        });
        let Ok((request, correlation)) = request else { return };
        let Some(slot) = self.devices.get_mut(&key) else { return };
        slot.channels.method_requests.insert(request.request_id.clone(), correlation);
        self.events.push_back((key, DeviceEvent::MethodRequest(request)));
    }

    /// Reads a twin or method delivery for device `key` within its packet limit
    /// with `read`, then settles it as [`settle_received`](Self::settle_received)
    /// says. Errors: why it did not read, in words.
    fn read_received<T>(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        d: &C2dDelivery,
        payload: &Bytes,
        credit: u32,
        read: impl FnOnce(&Message) -> Result<T, String>,
    ) -> Result<T, String> {
        // A device removed meanwhile has nobody to read it for.
        let Some(slot) = self.devices.get(&key) else {
            return Err(String::from("the device was removed"));
        };
        let limits = Limits { max_size: slot.config.max_packet_size, ..Limits::default() };
        let read =
            Message::decode(payload, &limits).map_err(|e| e.to_string()).and_then(|m| read(&m));
        self.settle_received(now, d, read.as_ref().err(), credit);
        read
    }

    /// Accepts a twin or method delivery sent unsettled, or rejects one that did
    /// not read with `amqp:decode-error` (as the C SDK, spec file §5.7); tops the
    /// link's credit up to `credit` at half.
    fn settle_received(
        &mut self,
        now: Timestamp,
        d: &C2dDelivery,
        fault: Option<&String>,
        credit: u32,
    ) {
        let State::Open(wire) = &mut self.state else { return };
        if !d.settled {
            let state = match fault {
                None => DeliveryState::Accepted,
                Some(why) => {
                    DeliveryState::Rejected { error: Some(error(condition::DECODE_ERROR, why)) }
                }
            };
            let settle = d.rcv_settle_mode == ReceiverSettleMode::First;
            let _ = wire.engine.disposition(now, d.link, d.delivery_id, Some(state), settle);
        }
        if wire.engine.links().flow_state(d.link).map_or(0, |f| f.link_credit) <= credit / 2 {
            let _ = wire.engine.flow(now, d.link, credit, false);
        }
    }
}

/// The event a twin response makes (spec file §5.6): success is a 2xx status
/// (Node's rule); a GET's body must be a twin, a PATCH's answer carry a version.
fn answer(ask: Ask, response: TwinResponse) -> Option<DeviceEvent> {
    let status = u16::try_from(response.status).unwrap_or(500);
    let failed = |request, description: String| DeviceEvent::TwinRequestFailed {
        request,
        status: Some(status),
        description,
    };
    let success = (200..300).contains(&status);
    Some(match ask {
        Ask::Subscribe => return None,
        Ask::Get(request) | Ask::Patch(request) if !success => {
            failed(request, error_description(&response.body))
        }
        Ask::Get(request) => match Twin::from_json(&response.body) {
            Ok(twin) => DeviceEvent::Twin { request, twin },
            Err(e) => failed(request, e.to_string()),
        },
        Ask::Patch(request) => match response.version.and_then(|v| u64::try_from(v).ok()) {
            Some(version) => DeviceEvent::ReportedPatched { request, version },
            None => failed(request, String::from("the answer carries no version")),
        },
    })
}

/// The hub's words in an error body: its JSON `message` (or `Message`), else the
/// body as text.
fn error_description(body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = json.as_ref().and_then(|j| j.get("message").or_else(|| j.get("Message")));
    match message.and_then(|m| m.as_str()) {
        Some(m) => String::from(m),
        None => String::from_utf8_lossy(body).into_owned(),
    }
}

/// A notification's patch and the `$version` it brings the desired section to.
fn desired(body: &[u8]) -> Option<(TwinPatch, u64)> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let version = json.get("$version")?.as_u64()?;
    Some((TwinPatch::parse(body).ok()?, version))
}
