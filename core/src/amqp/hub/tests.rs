//! The hub's side of AMQP, driven through the hub engine by clients built from
//! the same [`Engine`] (so these tests speak AMQP as a peer would, frame by frame).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::Protocol;
use crate::amqp::cbs::{PutToken, PutTokenResponse};
use crate::amqp::connection::{Connection, ConnectionEvent, SaslClient};
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::engine::{Engine, EngineEvent};
use crate::amqp::link::{Delivery, LinkEvent, LinkId, LinkSpec};
use crate::amqp::message::{self, Body, Message, MessageId};
use crate::amqp::performative::{
    AmqpError, Flow, MESSAGE_FORMAT_AMQP, MESSAGE_FORMAT_BATCH, Open, Role, Source, Target,
    Terminus, condition,
};
use crate::amqp::sasl::PlainResponse;
use crate::amqp::session::{SessionConfig, SessionId};
use crate::amqp::types::Symbol;
use crate::hub::{DeviceRecord, Hub, HubConfig, HubEvent, Outcome};
use crate::iothub::{self, ErrorCode, Identity, LockToken, SasToken};
use crate::sansio::{ConnectionId, Endpoint, Transmit};
use crate::testing::{KEY, START};
use crate::time::{Duration, Timestamp};
use crate::utf8::Utf8Bytes;

/// An AMQP client as a device SDK would be, at the frame level.
struct Client {
    engine: Engine,
    id: ConnectionId,
    session: Option<SessionId>,
    events: Vec<EngineEvent>,
    closed: bool,
    next_tag: u64,
}

impl Client {
    /// Deliveries that arrived on `link`, in order.
    fn deliveries(&self, link: LinkId) -> Vec<(u32, Bytes, Bytes)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Link(LinkEvent::Delivery {
                    link: l,
                    delivery_id,
                    tag,
                    payload,
                    ..
                }) if *l == link => Some((*delivery_id, tag.clone(), payload.clone())),
                _ => None,
            })
            .collect()
    }

    /// The hub's outcome for each of this client's deliveries on `link`.
    fn outcomes(&self, link: LinkId) -> Vec<Option<DeliveryState>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Link(LinkEvent::Disposition { link: l, state, .. }) if *l == link => {
                    Some(state.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The error `link` was last detached with, if it was (a handle is reused
    /// once its link is gone).
    fn detached(&self, link: LinkId) -> Option<Option<AmqpError>> {
        self.events.iter().rev().find_map(|e| match e {
            EngineEvent::Link(LinkEvent::Detached { link: l, error, .. }) if *l == link => {
                Some(error.clone())
            }
            _ => None,
        })
    }

    fn connection_closed(&self) -> Option<Option<AmqpError>> {
        self.events.iter().find_map(|e| match e {
            EngineEvent::Connection(ConnectionEvent::Closed { error, .. }) => Some(error.clone()),
            _ => None,
        })
    }
}

/// The hub engine and its clients, in simulated time.
struct World {
    hub: Hub,
    now: Timestamp,
    clients: Vec<Client>,
    events: Vec<HubEvent>,
    /// Stores held back (not yet reported stored), when `store_at_once` is off.
    held: Vec<crate::hub::StoreTicket>,
    store_at_once: bool,
}

/// The `$cbs` links of a client.
struct Cbs {
    requests: LinkId,
    responses: LinkId,
}

fn source(address: &str) -> Option<Source> {
    Some(Source { terminus: Terminus::at(Utf8Bytes::from(address)), ..Source::default() })
}

fn target(address: &str) -> Option<Target> {
    Some(Target { terminus: Terminus::at(Utf8Bytes::from(address)), ..Target::default() })
}

fn token(device_id: &str, expiry: Timestamp) -> SasToken {
    SasToken::sign(&alloc::format!("localhost/devices/{device_id}"), KEY, expiry, None)
        .expect("a valid key")
}

fn telemetry(body: &'static [u8]) -> Message {
    let mut m = iothub::Message::new(Bytes::from_static(body));
    m.message_id = Some(String::from("m1"));
    m.content_type = Some(String::from("application/json"));
    m.properties.set("temperature", "21");
    message::from_iothub(&m, &message::HubStamps::default()).expect("maps")
}

fn encode(m: &Message) -> Bytes {
    let mut out = BytesMut::new();
    m.encode(&mut out).expect("encodes");
    out.freeze()
}

impl World {
    fn new(devices: usize) -> World {
        World::with_config(devices, HubConfig::default())
    }

    fn with_config(devices: usize, config: HubConfig) -> World {
        let mut hub = Hub::new(config, 7);
        for i in 0..devices {
            let record = DeviceRecord {
                device_id: alloc::format!("d{i}"),
                primary_key: String::from(KEY),
                secondary_key: String::from(KEY),
                enabled: true,
            };
            hub.registry_mut().add(record).expect("registers");
        }
        World {
            hub,
            now: START,
            clients: vec![],
            events: vec![],
            held: vec![],
            store_at_once: true,
        }
    }

    /// A client that opened a connection and began a session.
    fn connect_with(&mut self, connection: Connection) -> usize {
        let id = self.hub.accept(self.now, Protocol::Amqp);
        let engine = Engine::new(connection, SessionConfig::default());
        self.clients.push(Client {
            engine,
            id,
            session: None,
            events: vec![],
            closed: false,
            next_tag: 0,
        });
        let c = self.clients.len() - 1;
        self.pump();
        if !self.clients[c].closed {
            let session = self.clients[c].engine.begin(self.now, SessionConfig::default());
            self.clients[c].session = Some(session.expect("begins"));
            self.pump();
        }
        c
    }

    fn connect(&mut self) -> usize {
        let open = Open {
            hostname: Some(Utf8Bytes::from_static("localhost")),
            ..Open::new(Utf8Bytes::from_static("client"))
        };
        self.connect_with(Connection::client(open, self.now))
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for c in &mut self.clients {
                while let Some(t) = c.engine.poll_transmit() {
                    moved = true;
                    match t {
                        Transmit::Send(bytes) => {
                            let _ = self.hub.handle_input(self.now, c.id, &bytes);
                        }
                        Transmit::Close => {
                            c.closed = true;
                            self.hub.handle_close(self.now, c.id);
                        }
                        Transmit::Connect => {}
                    }
                }
                while let Some(e) = c.engine.poll_event() {
                    c.events.push(e);
                }
            }
            while let Some((id, t)) = self.hub.poll_transmit() {
                moved = true;
                let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else { continue };
                match t {
                    Transmit::Send(bytes) => {
                        let _ = c.engine.handle_input(self.now, &bytes);
                    }
                    Transmit::Close => {
                        c.closed = true;
                        c.engine.handle_close(self.now);
                    }
                    Transmit::Connect => {}
                }
            }
            while let Some(e) = self.hub.poll_event() {
                moved = true;
                if let HubEvent::StoreTelemetry { ticket, .. } = &e {
                    if self.store_at_once {
                        self.hub.telemetry_stored(self.now, *ticket);
                    } else {
                        self.held.push(*ticket);
                    }
                }
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
    }

    /// Moves time on to `now + d`, firing every deadline on the way, the clients'
    /// heartbeats included.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let clients = self.clients.iter().filter_map(|c| c.engine.poll_timeout());
            let next = clients.chain(self.hub.poll_timeout()).min().filter(|at| *at <= end);
            let Some(at) = next else { break };
            self.now = self.now.max(at);
            self.hub.handle_timeout(self.now);
            for c in &mut self.clients {
                if c.engine.poll_timeout().is_some_and(|t| t <= self.now) {
                    c.engine.handle_timeout(self.now);
                }
            }
            self.pump();
        }
        self.now = end;
        self.pump();
    }

    fn attach(&mut self, c: usize, name: &str, role: Role, address: &str) -> LinkId {
        let (source, target) = match role {
            Role::Sender => (source("client"), target(address)),
            Role::Receiver => (source(address), target("client")),
        };
        let spec = LinkSpec::new(Utf8Bytes::from(name), role, source, target);
        let client = &mut self.clients[c];
        let session = client.session.expect("a session");
        let link = client.engine.attach(self.now, session, spec).expect("attaches");
        self.pump();
        link
    }

    fn flow(&mut self, c: usize, link: LinkId, credit: u32) {
        self.clients[c].engine.flow(self.now, link, credit, false).expect("flows");
        self.pump();
    }

    fn send(&mut self, c: usize, link: LinkId, payload: Bytes, format: u32) -> u32 {
        let client = &mut self.clients[c];
        client.next_tag += 1;
        let tag = Bytes::copy_from_slice(&client.next_tag.to_be_bytes());
        let delivery = Delivery { tag, message_format: format, settled: false, payload };
        let id = client.engine.send(self.now, link, delivery).expect("sends");
        self.pump();
        id
    }

    fn cbs(&mut self, c: usize) -> Cbs {
        let requests = self.attach(c, "cbs-sender", Role::Sender, "$cbs");
        let responses = self.attach(c, "cbs-receiver", Role::Receiver, "$cbs");
        self.flow(c, responses, 100);
        Cbs { requests, responses }
    }

    /// Sends a put-token and returns the hub's response.
    fn put_token(
        &mut self,
        c: usize,
        cbs: &Cbs,
        id: MessageId,
        token: &SasToken,
    ) -> PutTokenResponse {
        let request = PutToken::for_token(id, token).to_message();
        let before = self.clients[c].deliveries(cbs.responses).len();
        self.send(c, cbs.requests, encode(&request), MESSAGE_FORMAT_AMQP);
        let responses = self.clients[c].deliveries(cbs.responses);
        assert_eq!(responses.len(), before + 1, "one response per put-token");
        // As rhea does: the credit is given back as responses arrive.
        self.flow(c, cbs.responses, 100);
        let (_, _, payload) = responses.last().cloned().expect("a response");
        let m = Message::decode(&payload, &Default::default()).expect("decodes");
        PutTokenResponse::from_message(&m).expect("a put-token response")
    }

    /// A device authenticated on client `c` with a telemetry sender that has credit.
    fn device(&mut self, c: usize, cbs: &Cbs, device_id: &str) -> LinkId {
        let expiry = self.now + Duration::from_secs(3600);
        let id = MessageId::String(Utf8Bytes::from(alloc::format!("put-{device_id}")));
        let response = self.put_token(c, cbs, id, &token(device_id, expiry));
        assert_eq!(response.status_code, 200, "{}", response.description);
        let address = alloc::format!("/devices/{device_id}/messages/events");
        self.attach(c, &alloc::format!("events-{device_id}"), Role::Sender, &address)
    }

    fn stored(&self) -> Vec<&crate::hub::D2cRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                HubEvent::StoreTelemetry { record, .. } => Some(record),
                _ => None,
            })
            .collect()
    }

    fn refusals(&self) -> Vec<ErrorCode> {
        self.events
            .iter()
            .filter_map(|e| match e {
                HubEvent::Refused { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }
}

fn attach_error(world: &World, c: usize, link: LinkId) -> Symbol {
    let error = world.clients[c].detached(link).expect("detached").expect("with an error");
    error.condition
}

#[test]
fn s5_2_put_token_node_form_answered_200_with_the_request_id() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let id = MessageId::String(Utf8Bytes::from_static("6f1c3d5e-uuid-as-string"));
    let expiry = w.now + Duration::from_secs(3600);
    let response = w.put_token(c, &cbs, id.clone(), &token("d0", expiry));
    assert_eq!(response.status_code, 200);
    assert_eq!(response.correlation_id, id);
    assert!(w.events.iter().any(|e| matches!(e,
        HubEvent::Connected { identity, .. } if identity.device_id == "d0")));
}

/// §2.7.1: a client that names no hostname in `open` is served by this hub, as
/// if it had named it (the receiving peer picks a default).
#[test]
fn s2_7_1_an_open_without_hostname_is_served_as_this_hub() {
    let mut w = World::new(1);
    let c = w.connect_with(Connection::client(Open::new(Utf8Bytes::from_static("c")), w.now));
    assert!(!w.clients[c].closed);
    let cbs = w.cbs(c);
    let expiry = w.now + Duration::from_secs(3600);
    let response = w.put_token(c, &cbs, MessageId::Ulong(1), &token("d0", expiry));
    assert_eq!(response.status_code, 200);
}

/// §2.7.1: the hub's `open` names no locale, so only en-US, which every peer
/// supports, and no capability: it uses no extension its peer did not offer.
#[test]
fn s2_7_1_the_hubs_open_claims_en_us_only_and_no_capability() {
    let mut w = World::new(1);
    let c = w.connect();
    let open = w.clients[c].engine.connection().remote_open().cloned().expect("the hub's open");
    assert_eq!(open.container_id.as_str(), "hubwire");
    assert!(open.outgoing_locales.is_empty() && open.incoming_locales.is_empty());
    assert!(open.offered_capabilities.is_empty() && open.desired_capabilities.is_empty());
}

#[test]
fn s5_2_put_token_c_form_ulong_id_keeps_its_type() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let expiry = w.now + Duration::from_secs(3600);
    let response = w.put_token(c, &cbs, MessageId::Ulong(7), &token("d0", expiry));
    assert_eq!(response.status_code, 200);
    assert_eq!(response.correlation_id, MessageId::Ulong(7));
}

#[test]
fn s5_4_telemetry_stored_with_properties_then_accepted() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.store_at_once = false;
    let events = w.device(c, &cbs, "d0");
    w.send(c, events, encode(&telemetry(b"{\"t\":21}")), MESSAGE_FORMAT_AMQP);
    assert!(w.clients[c].outcomes(events).is_empty(), "no outcome before the store");
    let stored = w.stored();
    assert_eq!(stored.len(), 1);
    let record = stored[0];
    assert_eq!(record.identity, Identity::device("d0"));
    assert_eq!(&record.message.body[..], b"{\"t\":21}");
    assert_eq!(record.message.message_id.as_deref(), Some("m1"));
    assert_eq!(record.message.content_type.as_deref(), Some("application/json"));
    assert_eq!(record.message.properties.get("temperature"), Some(Some("21")));
    for ticket in core::mem::take(&mut w.held) {
        w.hub.telemetry_stored(w.now, ticket);
    }
    w.pump();
    assert_eq!(w.clients[c].outcomes(events), vec![Some(DeliveryState::Accepted)]);
}

/// §3.2.10: telemetry with an `x-opt-` annotation the hub does not know, and with
/// a key without `x-` of the kind IoT Hub's clients send (the C SDK's
/// `Diagnostic-Id`, spec file §5.4), is stored and accepted; the link stays.
#[test]
fn s3_2_10_unknown_annotations_on_telemetry_are_ignored() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let events = w.device(c, &cbs, "d0");
    let mut m = telemetry(b"x");
    let annotations = m.message_annotations.get_or_insert_with(message::Annotations::new);
    annotations.insert(Symbol::from_static("x-opt-not-known"), crate::amqp::types::Value::Null);
    annotations.insert(Symbol::from_static("Diagnostic-Id"), crate::amqp::types::Value::Null);
    w.send(c, events, encode(&m), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].detached(events), None);
    assert_eq!(w.clients[c].outcomes(events), vec![Some(DeliveryState::Accepted)]);
    assert_eq!(w.stored().len(), 1);
}

#[test]
fn s5_4_c_sdk_batch_stored_message_by_message_and_accepted_once() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let events = w.device(c, &cbs, "d0");
    let batch = [telemetry(b"one"), telemetry(b"two"), telemetry(b"three")];
    let mut payload = BytesMut::new();
    message::encode_batch(&batch, &mut payload).expect("encodes");
    w.send(c, events, payload.freeze(), MESSAGE_FORMAT_BATCH);
    let bodies: Vec<&[u8]> = w.stored().iter().map(|r| &r.message.body[..]).collect();
    assert_eq!(bodies, vec![&b"one"[..], b"two", b"three"]);
    assert_eq!(w.clients[c].outcomes(events), vec![Some(DeliveryState::Accepted)]);
}

#[test]
fn s5_3_c_sdk_absolute_addresses_attach() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let link =
        w.attach(c, "c-events", Role::Sender, "amqps://localhost:5671/devices/d0/messages/events");
    assert_eq!(w.clients[c].detached(link), None);
    w.send(c, link, encode(&telemetry(b"x")), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].outcomes(link), vec![Some(DeliveryState::Accepted)]);
}

#[test]
fn s5_4_events_attach_carries_a_non_zero_max_message_size() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let link = w.device(c, &cbs, "d0");
    let remote = w.clients[c]
        .events
        .iter()
        .find_map(|e| match e {
            EngineEvent::Link(LinkEvent::Attached { link: l, remote, .. }) if *l == link => {
                Some(remote.clone())
            }
            _ => None,
        })
        .expect("attached");
    assert!(remote.max_message_size.is_some_and(|m| m > 1024), "{:?}", remote.max_message_size);
}

#[test]
fn s5_10_attach_without_a_token_refused_unauthorized() {
    let mut w = World::new(2);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let link = w.attach(c, "events-d1", Role::Sender, "/devices/d1/messages/events");
    assert_eq!(attach_error(&w, c, link), condition::UNAUTHORIZED_ACCESS);
    assert!(w.refusals().contains(&ErrorCode::IOT_HUB_UNAUTHORIZED));
}

#[test]
fn s5_3_unknown_address_refused_not_found_and_wrong_direction_not_allowed() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let unknown = w.attach(c, "x", Role::Sender, "/devices/d0/somewhere");
    assert_eq!(attach_error(&w, c, unknown), condition::NOT_FOUND);
    let backwards = w.attach(c, "y", Role::Sender, "/devices/d0/messages/devicebound");
    assert_eq!(attach_error(&w, c, backwards), condition::NOT_ALLOWED);
}

#[test]
fn s5_2_bad_token_fails_alone() {
    let mut w = World::new(2);
    let c = w.connect();
    let cbs = w.cbs(c);
    let good = w.device(c, &cbs, "d0");
    let expiry = w.now + Duration::from_secs(3600);
    let forged = SasToken::sign("localhost/devices/d1", "AAAA", expiry, None).expect("signs");
    let response = w.put_token(c, &cbs, MessageId::Ulong(9), &forged);
    assert_eq!(response.status_code, 401, "{}", response.description);
    assert!(w.refusals().contains(&ErrorCode::IOT_HUB_UNAUTHORIZED));
    // The neighbour still sends.
    w.send(c, good, encode(&telemetry(b"still here")), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].outcomes(good), vec![Some(DeliveryState::Accepted)]);
    assert_eq!(w.clients[c].connection_closed(), None);
}

#[test]
fn s5_2_malformed_put_token_answered_400() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let mut request =
        PutToken::for_token(MessageId::Ulong(1), &token("d0", w.now + Duration::from_secs(60)))
            .to_message();
    request.body = Body::Data(vec![Bytes::from_static(b"not an amqp-value string")]);
    w.send(c, cbs.requests, encode(&request), MESSAGE_FORMAT_AMQP);
    let (_, _, payload) = w.clients[c].deliveries(cbs.responses).pop().expect("a response");
    let m = Message::decode(&payload, &Default::default()).expect("decodes");
    let response = PutTokenResponse::from_message(&m).expect("a response");
    assert_eq!(response.status_code, 400);
    assert_eq!(w.clients[c].outcomes(cbs.requests), vec![Some(DeliveryState::Accepted)]);
}

#[test]
fn s5_2_token_limit_refuses_the_next_identity_with_403() {
    let mut w = World::new(cbs_limit() + 1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let expiry = w.now + Duration::from_secs(3600);
    for i in 0..cbs_limit() {
        let device_id = alloc::format!("d{i}");
        let response = w.put_token(c, &cbs, MessageId::Ulong(i as u64), &token(&device_id, expiry));
        assert_eq!(response.status_code, 200);
    }
    let last = alloc::format!("d{}", cbs_limit());
    let response = w.put_token(c, &cbs, MessageId::Ulong(99_999), &token(&last, expiry));
    assert_eq!(response.status_code, 403, "{}", response.description);
    assert!(w.refusals().contains(&ErrorCode::IOT_HUB_MAX_CBS_TOKEN_EXCEEDED));
    // A renewal of a held identity is no new place.
    let renewed = w.put_token(c, &cbs, MessageId::Ulong(100_000), &token("d0", expiry));
    assert_eq!(renewed.status_code, 200);
}

fn cbs_limit() -> usize {
    crate::amqp::cbs::MAX_TOKENS
}

#[test]
fn s5_5_c2d_delivered_with_lock_tag_and_settled_by_outcome() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let c2d = w.attach(c, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    w.flow(c, c2d, 10);
    for body in [&b"complete me"[..], b"reject me", b"abandon me"] {
        w.hub
            .send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(body)))
            .expect("queued");
    }
    w.pump();
    let deliveries = w.clients[c].deliveries(c2d);
    assert_eq!(deliveries.len(), 3);
    let mut locks = vec![];
    for (_, tag, payload) in &deliveries {
        let m = Message::decode(payload, &Default::default()).expect("decodes");
        let (message, stamps) = message::to_iothub(&m).expect("maps");
        let lock: LockToken = message::lock_token_from_tag(tag).expect("a 16-byte tag");
        assert_eq!(stamps.lock_token, Some(lock), "tag and annotation agree");
        assert_eq!(stamps.delivery_count, Some(0));
        locks.push((lock, message.body));
    }
    // §2.6.12: each delivery its own tag.
    assert!(locks[0].0 != locks[1].0 && locks[1].0 != locks[2].0 && locks[0].0 != locks[2].0);
    let outcomes =
        [DeliveryState::Accepted, DeliveryState::Rejected { error: None }, DeliveryState::Released];
    for ((delivery_id, _, _), state) in deliveries.iter().zip(outcomes) {
        w.clients[c]
            .engine
            .disposition(w.now, c2d, *delivery_id, Some(state), true)
            .expect("settles");
        w.pump();
    }
    let settled: Vec<Outcome> = w
        .events
        .iter()
        .filter_map(|e| match e {
            HubEvent::C2dSettled(s) => Some(s.outcome),
            _ => None,
        })
        .collect();
    assert_eq!(
        settled,
        vec![Outcome::Completed, Outcome::Rejected, Outcome::Abandoned { delivery_count: 1 }]
    );
    // The abandoned message comes again, its delivery count raised.
    let again = w.clients[c].deliveries(c2d);
    assert_eq!(again.len(), 4);
    let m = Message::decode(&again[3].2, &Default::default()).expect("decodes");
    let (message, stamps) = message::to_iothub(&m).expect("maps");
    assert_eq!(&message.body[..], b"abandon me");
    assert_eq!(stamps.delivery_count, Some(1));
}

#[test]
fn s5_5_c2d_waits_for_credit() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let c2d = w.attach(c, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    for _ in 0..3 {
        w.hub
            .send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(b"m")))
            .expect("queued");
    }
    w.pump();
    assert!(w.clients[c].deliveries(c2d).is_empty(), "no credit, no delivery");
    w.flow(c, c2d, 2);
    assert_eq!(w.clients[c].deliveries(c2d).len(), 2);
}

/// Client `c` asks for `credit` deliveries on `link` with drain (AMQP 1.0 §2.6.7);
/// returns the link flows the hub answered with, decoded, after the client read them.
fn drain(w: &mut World, c: usize, link: LinkId, credit: u32) -> Vec<Flow> {
    use crate::amqp::frame::{self, FrameLimits};
    use crate::amqp::performative::Performative;
    let client = &mut w.clients[c];
    client.engine.flow(w.now, link, credit, true).expect("flows");
    while let Some(t) = client.engine.poll_transmit() {
        if let Transmit::Send(bytes) = t {
            w.hub.handle_input(w.now, client.id, &bytes).expect("the hub reads the flow");
        }
    }
    let mut answer = BytesMut::new();
    while let Some((id, t)) = w.hub.poll_transmit() {
        if let (true, Transmit::Send(bytes)) = (id == client.id, t) {
            answer.extend_from_slice(&bytes);
        }
    }
    client.engine.handle_input(w.now, &answer).expect("the client reads the answer");
    w.pump();
    let mut flows = vec![];
    while let Ok(Some(f)) = frame::decode(&mut answer, &FrameLimits { max_frame_size: u32::MAX }) {
        if f.is_empty() {
            continue;
        }
        let decoded = Performative::decode(&f.body, &crate::amqp::types::Limits::default());
        if let Performative::Flow(flow) = decoded.expect("the hub's frames decode").0
            && flow.handle.is_some()
        {
            flows.push(flow);
        }
    }
    flows
}

fn drained(client: &Client, link: LinkId) -> usize {
    let is_drained = |e: &&EngineEvent| matches!(e, EngineEvent::Link(LinkEvent::Drained { link: l }) if *l == link);
    client.events.iter().filter(is_drained).count()
}

#[test]
fn s2_6_7_drain_on_an_empty_c2d_link_advances_the_delivery_count_to_use_up_the_credit() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let c2d = w.attach(c, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    let flows = drain(&mut w, c, c2d, 1);
    // "The sender MUST advance delivery-count until link-credit is zero, and send
    // its updated flow state": from its initial delivery-count 0, by the one credit.
    let [flow] = flows.as_slice() else { panic!("one link flow expected: {flows:?}") };
    assert_eq!(flow.delivery_count, Some(1));
    assert_eq!(flow.link_credit, Some(0));
    assert!(flow.drain, "the flow echoes the drain");
    assert_eq!(drained(&w.clients[c], c2d), 1);
    // The credit is gone: a message queued now waits for the next grant.
    w.hub.send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(b"m"))).expect("queued");
    w.pump();
    assert!(w.clients[c].deliveries(c2d).is_empty());
    assert!(drain(&mut w, c, c2d, 1).is_empty(), "a message, not a drain answer");
    assert_eq!(w.clients[c].deliveries(c2d).len(), 1);
}

#[test]
fn s2_6_7_c2d_credit_one_with_drain_sends_one_message_and_locks_no_other() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let c2d = w.attach(c, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    for body in [&b"one"[..], b"two"] {
        w.hub.send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(body))).expect("q");
    }
    w.pump();
    assert!(w.clients[c].deliveries(c2d).is_empty(), "no credit, no delivery");
    let bodies = |w: &World| -> Vec<Bytes> {
        let deliveries = w.clients[c].deliveries(c2d);
        let decode = |p: &Bytes| Message::decode(p, &Default::default()).expect("decodes");
        let to_iothub = |m: Message| message::to_iothub(&m).expect("maps").0.body;
        deliveries.iter().map(|(_, _, p)| to_iothub(decode(p))).collect()
    };
    // The one credit is used by a message: no drain answer is due.
    assert!(drain(&mut w, c, c2d, 1).is_empty());
    assert_eq!(bodies(&w), [&b"one"[..]]);
    // "one" is held unsettled; "two" was not locked with it, so the next grant
    // brings it.
    assert!(drain(&mut w, c, c2d, 1).is_empty());
    assert_eq!(bodies(&w), [&b"one"[..], b"two"]);
    assert_eq!(drained(&w.clients[c], c2d), 0);
    // Both are locked now: the next drain comes back empty.
    assert_eq!(drain(&mut w, c, c2d, 1).len(), 1);
    assert_eq!(drained(&w.clients[c], c2d), 1);
    assert_eq!(bodies(&w).len(), 2);
}

#[test]
fn s5_4_oversized_telemetry_rejects_only_that_delivery() {
    let config = HubConfig { max_message_size: 1024, ..HubConfig::default() };
    let mut w = World::with_config(1, config);
    let c = w.connect();
    let cbs = w.cbs(c);
    let events = w.device(c, &cbs, "d0");
    static BIG: [u8; 2000] = [b'x'; 2000];
    w.send(c, events, encode(&telemetry(&BIG)), MESSAGE_FORMAT_AMQP);
    w.send(c, events, encode(&telemetry(b"small")), MESSAGE_FORMAT_AMQP);
    let outcomes = w.clients[c].outcomes(events);
    assert_eq!(outcomes.len(), 2);
    let Some(DeliveryState::Rejected { error: Some(error) }) = &outcomes[0] else {
        panic!("{outcomes:?}");
    };
    assert_eq!(error.condition, condition::LINK_MESSAGE_SIZE_EXCEEDED);
    assert_eq!(outcomes[1], Some(DeliveryState::Accepted));
    assert_eq!(w.stored().len(), 1);
    assert!(w.refusals().contains(&ErrorCode::MESSAGE_TOO_LARGE));
}

#[test]
fn s5_10_expired_token_detaches_its_links_unauthorized() {
    let mut w = World::new(2);
    let c = w.connect();
    let cbs = w.cbs(c);
    let short = w.now + Duration::from_secs(60);
    let response = w.put_token(c, &cbs, MessageId::Ulong(1), &token("d0", short));
    assert_eq!(response.status_code, 200);
    let events = w.attach(c, "events-d0", Role::Sender, "/devices/d0/messages/events");
    let other = w.device(c, &cbs, "d1");
    w.advance(Duration::from_secs(60) + HubConfig::default().sas_skew + Duration::from_secs(1));
    assert_eq!(attach_error(&w, c, events), condition::UNAUTHORIZED_ACCESS);
    assert_eq!(w.clients[c].detached(other), None, "the other device keeps its links");
    assert!(w.events.iter().any(|e| matches!(e,
        HubEvent::Disconnected { identity, code, .. }
            if identity.device_id == "d0" && *code == ErrorCode::IOT_HUB_UNAUTHORIZED)));
}

#[test]
fn s5_2_renewal_extends_the_token_without_new_links() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let short = w.now + Duration::from_secs(60);
    w.put_token(c, &cbs, MessageId::Ulong(1), &token("d0", short));
    let events = w.attach(c, "events-d0", Role::Sender, "/devices/d0/messages/events");
    w.advance(Duration::from_secs(50));
    let longer = w.now + Duration::from_secs(3600);
    let renewed = w.put_token(c, &cbs, MessageId::Ulong(2), &token("d0", longer));
    assert_eq!(renewed.status_code, 200);
    w.advance(Duration::from_secs(600));
    assert_eq!(w.clients[c].detached(events), None);
    w.send(c, events, encode(&telemetry(b"later")), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].outcomes(events), vec![Some(DeliveryState::Accepted)]);
}

#[test]
fn s5_1_sasl_plain_login_needs_no_cbs() {
    let mut w = World::new(1);
    let expiry = w.now + Duration::from_secs(3600);
    let plain = PlainResponse {
        authzid: String::new(),
        authcid: String::from("d0@sas.localhost"),
        password: token("d0", expiry).to_string(),
    };
    let open = Open::new(Utf8Bytes::from_static("client"));
    let c = w.connect_with(Connection::client_with_sasl(open, w.now, SaslClient::Plain(plain)));
    let events = w.attach(c, "events-d0", Role::Sender, "/devices/d0/messages/events");
    w.send(c, events, encode(&telemetry(b"plain")), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].outcomes(events), vec![Some(DeliveryState::Accepted)]);
}

#[test]
fn s5_1_sasl_plain_with_a_bad_token_fails_the_outcome() {
    let mut w = World::new(1);
    let plain = PlainResponse {
        authzid: String::new(),
        authcid: String::from("d0@sas.localhost"),
        password: String::from("SharedAccessSignature sr=x&sig=y&se=1"),
    };
    let open = Open::new(Utf8Bytes::from_static("client"));
    let c = w.connect_with(Connection::client_with_sasl(open, w.now, SaslClient::Plain(plain)));
    assert!(w.clients[c].closed);
    assert!(w.refusals().contains(&ErrorCode::IOT_HUB_UNAUTHORIZED));
}

#[test]
fn s5_1_mssbcbs_then_cbs() {
    let mut w = World::new(1);
    let open = Open::new(Utf8Bytes::from_static("c-sdk"));
    let c = w.connect_with(Connection::client_with_sasl(open, w.now, SaslClient::MssbCbs));
    let cbs = w.cbs(c);
    let events = w.device(c, &cbs, "d0");
    w.send(c, events, encode(&telemetry(b"c sdk")), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].outcomes(events), vec![Some(DeliveryState::Accepted)]);
}

#[test]
fn connect_timeout_closes_a_connection_that_never_authenticates() {
    let mut w = World::new(1);
    let c = w.connect();
    w.cbs(c);
    w.advance(HubConfig::default().connect_timeout + Duration::from_secs(1));
    let error = w.clients[c].connection_closed().expect("closed").expect("with an error");
    assert_eq!(error.condition, condition::UNAUTHORIZED_ACCESS);
    assert_eq!(w.hub.connection_count(), 0);
}

#[test]
fn a_second_connection_for_the_device_steals_its_links() {
    let mut w = World::new(2);
    let first = w.connect();
    let cbs1 = w.cbs(first);
    let stolen = w.device(first, &cbs1, "d0");
    let kept = w.device(first, &cbs1, "d1");
    let second = w.connect();
    let cbs2 = w.cbs(second);
    w.device(second, &cbs2, "d0");
    assert_eq!(attach_error(&w, first, stolen), condition::LINK_STOLEN);
    assert_eq!(w.clients[first].detached(kept), None);
    assert_eq!(w.hub.connection_count(), 2);
}

#[test]
fn transport_loss_returns_c2d_to_the_queue() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let c2d = w.attach(c, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    w.flow(c, c2d, 10);
    w.hub.send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(b"m"))).expect("queued");
    w.pump();
    assert_eq!(w.clients[c].deliveries(c2d).len(), 1);
    let id = w.clients[c].id;
    w.hub.handle_close(w.now, id);
    w.pump();
    // A new connection gets the message again.
    let c2 = w.connect();
    let cbs2 = w.cbs(c2);
    w.device(c2, &cbs2, "d0");
    let c2d2 = w.attach(c2, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    w.flow(c2, c2d2, 10);
    assert_eq!(w.clients[c2].deliveries(c2d2).len(), 1);
    assert!(w.events.iter().any(|e| matches!(e, HubEvent::Disconnected { .. })));
}

#[test]
fn s5_10_995_devices_multiplexed_on_one_connection() {
    const DEVICES: usize = 995;
    let mut w = World::new(DEVICES + 1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let mut links = vec![];
    for i in 0..DEVICES {
        let device_id = alloc::format!("d{i}");
        let events = w.device(c, &cbs, &device_id);
        let address = alloc::format!("/devices/{device_id}/messages/devicebound");
        let c2d = w.attach(c, &alloc::format!("c2d-{device_id}"), Role::Receiver, &address);
        w.flow(c, c2d, 1);
        links.push((device_id, events, c2d));
    }
    // One device with a bad token fails alone.
    let expiry = w.now + Duration::from_secs(3600);
    let forged =
        SasToken::sign(&alloc::format!("localhost/devices/d{DEVICES}"), "AAAA", expiry, None)
            .expect("signs");
    assert_eq!(w.put_token(c, &cbs, MessageId::Ulong(0), &forged).status_code, 401);
    for (device_id, events, _) in &links {
        w.send(c, *events, encode(&telemetry(b"t")), MESSAGE_FORMAT_AMQP);
        let body = Bytes::from(alloc::format!("for {device_id}"));
        w.hub.send_c2d(w.now, device_id, iothub::Message::new(body)).expect("queued");
    }
    w.pump();
    assert_eq!(w.hub.connection_count(), 1);
    assert_eq!(w.stored().len(), DEVICES);
    for (device_id, events, c2d) in &links {
        assert_eq!(w.clients[c].outcomes(*events), vec![Some(DeliveryState::Accepted)]);
        let deliveries = w.clients[c].deliveries(*c2d);
        assert_eq!(deliveries.len(), 1, "{device_id}");
        let m = Message::decode(&deliveries[0].2, &Default::default()).expect("decodes");
        let (message, _) = message::to_iothub(&m).expect("maps");
        assert_eq!(message.body, Bytes::from(alloc::format!("for {device_id}")));
    }
    let connected = w.events.iter().filter(|e| matches!(e, HubEvent::Connected { .. })).count();
    assert_eq!(connected, DEVICES);
}

/// `performative` as one frame on `channel`.
fn frame_on(channel: u16, performative: &crate::amqp::performative::Performative) -> Vec<u8> {
    use crate::amqp::frame::{Frame, FrameKind, FrameLimits};
    let mut body = BytesMut::new();
    performative.encode(&mut body).expect("encodes");
    let mut out = BytesMut::new();
    let f = Frame { kind: FrameKind::Amqp { channel }, body: body.freeze() };
    f.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out).expect("fits");
    out.to_vec()
}

/// `performative` as one frame on channel 0.
fn frame(performative: &crate::amqp::performative::Performative) -> Vec<u8> {
    frame_on(0, performative)
}

/// What the hub answered a raw client on a fresh connection: its performatives
/// after the AMQP header, whether it closed the transport, and the input's result.
struct RawAnswer {
    performatives: Vec<crate::amqp::performative::Performative>,
    closed: bool,
    failed: bool,
}

/// Feeds `input` (header included) to a fresh AMQP connection of `w`.
fn raw(w: &mut World, input: &[u8]) -> RawAnswer {
    use crate::amqp::frame::{self, FrameKind, FrameLimits};
    use crate::amqp::performative::Performative;
    use crate::amqp::protocol_header::ProtocolHeader;
    let id = w.hub.accept(w.now, Protocol::Amqp);
    let failed = w.hub.handle_input(w.now, id, input).is_err();
    let mut wire = BytesMut::new();
    let mut closed = false;
    while let Some((_, t)) = w.hub.poll_transmit() {
        match t {
            Transmit::Send(b) => wire.extend_from_slice(&b),
            Transmit::Close => closed = true,
            Transmit::Connect => panic!("a hub never dials"),
        }
    }
    assert_eq!(ProtocolHeader::decode(&mut wire), Ok(Some(ProtocolHeader::AMQP)));
    let mut performatives = vec![];
    while let Ok(Some(f)) = frame::decode(&mut wire, &FrameLimits { max_frame_size: u32::MAX }) {
        assert!(matches!(f.kind, FrameKind::Amqp { .. }));
        if f.is_empty() {
            continue;
        }
        let decoded = Performative::decode(&f.body, &crate::amqp::types::Limits::default());
        performatives.push(decoded.expect("the hub's frames decode").0);
    }
    RawAnswer { performatives, closed, failed }
}

/// The condition of the hub's `close`, if it sent one.
fn close_condition(answer: &RawAnswer) -> Option<Symbol> {
    answer.performatives.iter().find_map(|p| match p {
        crate::amqp::performative::Performative::Close(c) => {
            c.error.as_ref().map(|e| e.condition.clone())
        }
        _ => None,
    })
}

/// Feeds `bytes` to a fresh hub connection after a valid header (and `open`, when
/// `opened`); returns the condition of the hub's `close` and whether the hub let
/// the connection go.
fn hostile(opened: bool, bytes: &[u8]) -> (Option<Symbol>, bool) {
    use crate::amqp::performative::Performative;
    let mut w = World::new(1);
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    if opened {
        input.extend(frame(&Performative::Open(Open::new(Utf8Bytes::from_static("c")))));
    }
    input.extend_from_slice(bytes);
    let answer = raw(&mut w, &input);
    assert_eq!(answer.failed, answer.closed, "an error is answered by closing, and only then");
    (close_condition(&answer), answer.closed && w.hub.connection_count() == 0)
}

#[test]
fn bad_input_closes_the_connection_with_the_standard_condition() {
    let nested = {
        // An open whose container-id is 40 lists deep: beyond the depth limit.
        let mut body = vec![0x00, 0x53, 0x10, 0xC0, 0x00, 0x01];
        for _ in 0..40 {
            body.extend_from_slice(&[0xC0, 0x00, 0x01]);
        }
        body.push(0x40);
        body
    };
    let framed = |body: &[u8]| {
        let mut out = (8 + body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00]);
        out.extend_from_slice(body);
        out
    };
    let cases: Vec<(&str, bool, Vec<u8>, Symbol)> = vec![
        ("nesting beyond the depth limit", false, framed(&nested), condition::DECODE_ERROR),
        (
            // list8 saying 200 elements in 2 bytes.
            "element count beyond the bytes present",
            false,
            framed(&[0x00, 0x53, 0x10, 0xC0, 0x02, 0xC8, 0x40]),
            condition::DECODE_ERROR,
        ),
        (
            "frame size beyond the frame",
            true,
            // SIZE 4 GiB - 1, beyond the hub's max-frame-size.
            vec![0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00],
            condition::CONNECTION_FRAMING_ERROR,
        ),
        (
            "frame over 512 bytes before open",
            false,
            513u32.to_be_bytes().to_vec(),
            condition::CONNECTION_FRAMING_ERROR,
        ),
        (
            "open without its container-id",
            false,
            framed(&[0x00, 0x53, 0x10, 0xC0, 0x02, 0x01, 0x40]),
            condition::INVALID_FIELD,
        ),
        ("unknown descriptor", true, framed(&[0x00, 0x53, 0x7F, 0x45]), condition::DECODE_ERROR),
        (
            "a second open",
            true,
            frame(&crate::amqp::performative::Performative::Open(Open::new(
                Utf8Bytes::from_static("again"),
            ))),
            condition::ILLEGAL_STATE,
        ),
    ];
    for (what, opened, bytes, expected) in cases {
        let (condition, gone) = hostile(opened, &bytes);
        assert_eq!(condition, Some(expected), "{what}");
        assert!(gone, "{what}: the hub let the connection go");
    }
}

#[test]
fn s2_7_5_transfer_on_an_unattached_handle_ends_the_session_not_the_neighbours() {
    use crate::amqp::performative::{Performative, Transfer};
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let bogus = Performative::Transfer(Transfer {
        handle: 77,
        delivery_id: Some(50),
        delivery_tag: Some(Bytes::from_static(b"x")),
        message_format: Some(0),
        ..Transfer::default()
    });
    let id = w.clients[c].id;
    let _ = w.hub.handle_input(w.now, id, &frame(&bogus));
    w.pump();
    let ended = w.clients[c].events.iter().find_map(|e| match e {
        EngineEvent::Link(LinkEvent::SessionEnded { error, .. }) => Some(error.clone()),
        _ => None,
    });
    let condition = ended.expect("the session ended").expect("with an error").condition;
    assert_eq!(condition, condition::SESSION_UNATTACHED_HANDLE);
    assert_eq!(w.hub.connection_count(), 1, "the connection stays");
}

#[test]
fn s2_6_7_transfer_beyond_credit_detaches_the_link() {
    use crate::amqp::performative::{Performative, Transfer};
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let events = w.device(c, &cbs, "d0");
    // The hub gave TELEMETRY_CREDIT; one more than that, sent past the client's
    // own bookkeeping, breaks §2.6.7.
    let credit = w.clients[c].engine.links().flow_state(events).expect("attached").link_credit;
    let id = w.clients[c].id;
    let mut bytes = vec![];
    for n in 0..=credit {
        let t = Performative::Transfer(Transfer {
            handle: events.handle,
            delivery_id: Some(1000 + n),
            delivery_tag: Some(Bytes::copy_from_slice(&n.to_be_bytes())),
            message_format: Some(0),
            settled: Some(true),
            ..Transfer::default()
        });
        let mut f = frame(&t);
        let payload = encode(&telemetry(b"t"));
        let size = (f.len() + payload.len()) as u32;
        f[..4].copy_from_slice(&size.to_be_bytes());
        f.extend_from_slice(&payload);
        bytes.extend(f);
    }
    w.store_at_once = false;
    let _ = w.hub.handle_input(w.now, id, &bytes);
    w.pump();
    assert_eq!(attach_error(&w, c, events), condition::LINK_TRANSFER_LIMIT_EXCEEDED);
    assert_eq!(w.stored().len(), credit as usize, "every delivery within credit is stored");
    let refused: Vec<Option<&str>> = w
        .events
        .iter()
        .filter_map(|e| match e {
            HubEvent::Refused { identity, .. } => Some(identity.as_ref().map(|i| &*i.device_id)),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [Some("d0")], "the violation is logged as the device's");
}

#[test]
fn s5_5_c2d_beyond_the_device_link_max_message_size_is_dead_lettered_not_stuck() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let mut spec = LinkSpec::new(
        Utf8Bytes::from_static("c2d"),
        Role::Receiver,
        source("/devices/d0/messages/devicebound"),
        target("client"),
    );
    spec.max_message_size = Some(256);
    let session = w.clients[c].session.expect("a session");
    let c2d = w.clients[c].engine.attach(w.now, session, spec).expect("attaches");
    w.pump();
    w.flow(c, c2d, 10);
    static BIG: [u8; 1000] = [b'b'; 1000];
    w.hub.send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(&BIG))).expect("queued");
    w.hub
        .send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(b"small")))
        .expect("queued");
    w.pump();
    let deliveries = w.clients[c].deliveries(c2d);
    assert_eq!(deliveries.len(), 1, "the small one gets through");
    assert!(w.events.iter().any(|e| matches!(e,
        HubEvent::C2dSettled(s) if s.outcome == Outcome::Rejected)));
    assert!(w.refusals().contains(&ErrorCode::MESSAGE_TOO_LARGE));
}

#[test]
fn s2_5_6_c2d_waits_for_the_device_session_window_then_flows() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    w.device(c, &cbs, "d0");
    let c2d = w.attach(c, "c2d", Role::Receiver, "/devices/d0/messages/devicebound");
    let session = w.clients[c].session.expect("a session");
    w.clients[c].engine.set_incoming_window(w.now, session, 0).expect("window");
    w.pump();
    w.flow(c, c2d, 10);
    w.hub.send_c2d(w.now, "d0", iothub::Message::new(Bytes::from_static(b"m"))).expect("queued");
    w.pump();
    assert!(w.clients[c].deliveries(c2d).is_empty(), "the window is shut");
    w.clients[c].engine.set_incoming_window(w.now, session, 10).expect("window");
    w.pump();
    assert_eq!(w.clients[c].deliveries(c2d).len(), 1, "a session-only flow reopens it");
}

#[test]
fn s2_7_3_cbs_request_link_bounds_a_delivery_that_never_ends() {
    use crate::amqp::performative::{Performative, Transfer};
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let announced = w.clients[c].events.iter().find_map(|e| match e {
        EngineEvent::Link(LinkEvent::Attached { link, remote, .. }) if *link == cbs.requests => {
            Some(remote.max_message_size)
        }
        _ => None,
    });
    assert_eq!(announced, Some(Some(super::CBS_MAX_MESSAGE_SIZE)));
    // A stranger's put-token whose frames all say `more`: each frame within the
    // frame size, the delivery without end.
    let frame_of = |first: bool| {
        let transfer = Transfer {
            handle: cbs.requests.handle,
            delivery_id: first.then_some(0),
            delivery_tag: first.then(|| Bytes::from_static(b"t")),
            message_format: first.then_some(MESSAGE_FORMAT_AMQP),
            more: true,
            ..Transfer::default()
        };
        let mut bytes = frame(&Performative::Transfer(transfer));
        let size = u32::try_from(bytes.len() + 8 * 1024).expect("fits");
        bytes[..4].copy_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&[b'x'; 8 * 1024]);
        bytes
    };
    let id = w.clients[c].id;
    for i in 0..4 {
        let _ = w.hub.handle_input(w.now, id, &frame_of(i == 0));
    }
    w.pump();
    assert!(w.refusals().contains(&ErrorCode::ARGUMENT_INVALID), "{:?}", w.refusals());
    assert_eq!(w.hub.connection_count(), 1, "the delivery is refused, not the connection");
}

#[test]
fn s5_2_undecodable_put_token_rejected_and_the_cbs_credit_stays_the_cbs_credit() {
    let mut w = World::new(1);
    let c = w.connect();
    let cbs = w.cbs(c);
    let credit =
        |w: &World| w.clients[c].engine.links().flow_state(cbs.requests).map(|f| f.link_credit);
    assert_eq!(credit(&w), Some(super::CBS_CREDIT));
    w.send(c, cbs.requests, Bytes::from_static(b"\x00\x53\x77\xff"), MESSAGE_FORMAT_AMQP);
    let outcomes = w.clients[c].outcomes(cbs.requests);
    assert!(matches!(outcomes.as_slice(), [Some(DeliveryState::Rejected { .. })]), "{outcomes:?}");
    // Topped up as a put-token is (16), not as telemetry (64).
    assert_eq!(credit(&w), Some(super::CBS_CREDIT));
}

#[test]
fn s2_8_15_a_connection_past_its_link_limit_is_closed_with_resource_limit_exceeded() {
    use crate::amqp::performative::{Attach, Begin, Performative};
    // 2 identities: 64 links in all (the floor), so 63 the highest handle.
    let config = HubConfig { max_cbs_tokens: 2, ..HubConfig::default() };
    let mut w = World::with_config(1, config);
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend(frame_on(0, &Performative::Open(Open::new(Utf8Bytes::from_static("c")))));
    // Each session stays within handle-max; together they pass the limit.
    for (channel, links) in [(0u16, 64u32), (1, 8)] {
        input.extend(frame_on(channel, &Performative::Begin(Begin::new(0, 100, 100))));
        for handle in 0..links {
            // `$cbs` needs no token: each attach is accepted and kept.
            let attach = Attach {
                target: target("$cbs"),
                source: source("c"),
                initial_delivery_count: Some(0),
                ..Attach::new(
                    Utf8Bytes::from(alloc::format!("{channel}-{handle}")),
                    handle,
                    Role::Sender,
                )
            };
            input.extend(frame_on(channel, &Performative::Attach(alloc::boxed::Box::new(attach))));
        }
    }
    let answer = raw(&mut w, &input);
    assert_eq!(
        close_condition(&answer),
        Some(condition::RESOURCE_LIMIT_EXCEEDED),
        "a close with the condition"
    );
    let refused = core::iter::from_fn(|| w.hub.poll_event())
        .any(|e| matches!(e, HubEvent::Refused { reason, .. } if reason.contains("links on one connection")));
    assert!(refused, "the refusal is logged");
}

#[test]
fn part_4_a_transaction_coordinator_link_is_refused_not_implemented() {
    use crate::amqp::performative::{Attach, Begin, Coordinator, Performative};
    let mut w = World::new(1);
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend(frame(&Performative::Open(Open::new(Utf8Bytes::from_static("c")))));
    input.extend(frame(&Performative::Begin(Begin::new(0, 100, 100))));
    let attach = Attach {
        source: source("c"),
        coordinator: Some(Coordinator { capabilities: vec![] }),
        initial_delivery_count: Some(0),
        ..Attach::new(Utf8Bytes::from_static("txn"), 0, Role::Sender)
    };
    input.extend(frame(&Performative::Attach(alloc::boxed::Box::new(attach))));
    let answer = raw(&mut w, &input);
    let detach = answer.performatives.iter().find_map(|p| match p {
        Performative::Detach(d) => d.error.as_ref().map(|e| e.condition.clone()),
        _ => None,
    });
    assert_eq!(detach, Some(condition::NOT_IMPLEMENTED));
    assert_eq!(w.hub.connection_count(), 1, "the connection stays");
}

mod twin_methods;
