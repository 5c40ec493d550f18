//! A hostile hub against `hubwire_blocking::DeviceClient` (issue 7, item 5). Over
//! MQTT on plain TCP the hub closes mid-CONNACK, closes before its PUBACK, sends
//! its CONNACK a byte at a time, announces a 268 MB PUBLISH, floods PINGRESPs and
//! PUBACKs for ids the device never used, or goes silent; over AMQP on plain TCP
//! it closes before settling a transfer, cuts its `open` in half, announces a
//! 1 GiB frame, sends its header and `open` a byte at a time, floods heartbeats and
//! dispositions for deliveries the device never sent, or goes silent. The device
//! stays up, reconnects after its backoff (a second CONNECT or protocol header
//! arrives), sends again what was not acknowledged [MQTT-4.4.0-1] (spec file §5.4)
//! and counts as acknowledged only what the hub acknowledged.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hubwire_blocking::{ClientTransport, DeviceClient, Transport};
use hubwire_core::amqp::cbs::{PutToken, PutTokenResponse};
use hubwire_core::amqp::delivery_state::DeliveryState;
use hubwire_core::amqp::frame::{self, Frame, FrameKind, FrameLimits};
use hubwire_core::amqp::message::Message as AmqpMessage;
use hubwire_core::amqp::performative::{
    Attach, Begin, Close, Disposition, Flow, Open, Performative, Role, Transfer, condition,
};
use hubwire_core::amqp::protocol_header::ProtocolHeader;
use hubwire_core::amqp::types::Limits as AmqpLimits;
use hubwire_core::device::{DeviceConfig, DeviceEvent, DisconnectReason, TelemetryId};
use hubwire_core::iothub::{ConnectionString, Message};
use hubwire_core::mqtt::{Limits, Packet, PacketId, Publish, codec};
use hubwire_core::retry::Backoff;

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WAIT: Duration = Duration::from_secs(10);
/// CONNACK, Session Present 0, accepted (§3.2).
const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// A hub written for the test: a listener, and what it reads from the device.
struct HostileHub {
    listener: TcpListener,
}

/// One connection the device opened, with the bytes read and not yet decoded.
struct Accepted {
    stream: TcpStream,
    rx: BytesMut,
}

impl HostileHub {
    fn new() -> HostileHub {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("{e}");
        }
        HostileHub { listener }
    }

    fn port(&self) -> u16 {
        match self.listener.local_addr() {
            Ok(a) => a.port(),
            Err(e) => panic!("{e}"),
        }
    }

    /// The device's next connection, within [`WAIT`].
    fn accept(&self) -> TcpStream {
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the device did not connect (again)");
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        };
        if let Err(e) = stream.set_nonblocking(false).and_then(|()| stream.set_nodelay(true)) {
            panic!("{e}");
        }
        stream
    }

    /// The device's next connection, whose first packet must be a CONNECT
    /// [MQTT-3.1.0-1], within [`WAIT`].
    fn accept_connect(&self) -> Accepted {
        let stream = self.accept();
        let mut accepted = Accepted { stream, rx: BytesMut::new() };
        let first = accepted.next_packet();
        assert!(matches!(first, Packet::Connect(_)), "{first:?}");
        accepted
    }
}

impl Accepted {
    fn write(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("{e}");
        }
    }

    /// The device's next packet, within [`WAIT`].
    fn next_packet(&mut self) -> Packet {
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(100)));
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 4096];
        loop {
            match codec::decode(&mut self.rx, &Limits::default()) {
                Ok(Some(packet)) => return packet,
                Ok(None) => {}
                Err(e) => panic!("the device sent bad MQTT: {e}"),
            }
            assert!(Instant::now() < deadline, "no packet from the device");
            match self.stream.read(&mut buffer) {
                Ok(0) => panic!("the device closed the connection"),
                Ok(n) => self.rx.extend_from_slice(&buffer[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// The device's next PUBLISH, skipping PINGREQs.
    fn next_publish(&mut self) -> Publish {
        loop {
            match self.next_packet() {
                Packet::Publish(publish) => return publish,
                Packet::PingReq => {}
                other => panic!("expected a PUBLISH, got {other:?}"),
            }
        }
    }

    /// Whether the device closed the connection within [`WAIT`], reading and
    /// dropping what it sends meanwhile.
    fn closed_by_device(&mut self) -> bool {
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(100)));
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// PUBACK for `id` (§3.4).
fn puback(id: PacketId) -> [u8; 4] {
    let [high, low] = id.get().to_be_bytes();
    [0x40, 0x02, high, low]
}

/// `dev1` of the hostile hub on `port`, over MQTT on plain TCP, retrying after
/// 100–200 ms, not subscribing to C2D (so its first packet after CONNACK is its
/// telemetry).
fn device(port: u16) -> DeviceClient {
    device_over(port, Transport::MqttTcp)
}

/// [`device`] over `transport`.
fn device_over(port: u16, transport: Transport) -> DeviceClient {
    device_with(port, transport, |_| {})
}

/// [`device_over`], its configuration changed by `change` first.
fn device_with(
    port: u16,
    transport: Transport,
    change: impl FnOnce(&mut DeviceConfig),
) -> DeviceClient {
    let cs = format!("HostName=127.0.0.1:{port};DeviceId=dev1;SharedAccessKey={KEY}");
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("{cs}") };
    let mut config = DeviceConfig::new(cs);
    config.receive_c2d = false;
    config.backoff =
        Backoff { initial: Duration::from_millis(200), max: Duration::from_millis(400) };
    change(&mut config);
    match DeviceClient::connect(config, ClientTransport::new(transport)) {
        Ok(device) => device,
        Err(e) => panic!("{e}"),
    }
}

/// Queues `body` as telemetry without waiting for its acknowledgement.
fn send(device: &DeviceClient, body: &str) -> TelemetryId {
    match device.send_telemetry_nowait(Message::new(body.as_bytes().to_vec())) {
        Ok(id) => id,
        Err(e) => panic!("{e}"),
    }
}

/// The device's events within `wait`, until (and with) one `stop` accepts.
fn events_until(
    device: &DeviceClient,
    wait: Duration,
    stop: impl Fn(&DeviceEvent) -> bool,
) -> Vec<DeviceEvent> {
    let deadline = Instant::now() + wait;
    let mut events = Vec::new();
    while let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now())) {
        let done = stop(&event);
        events.push(event);
        if done {
            break;
        }
    }
    events
}

/// Fails unless the device reports `id` acknowledged within [`WAIT`]; returns the
/// events before it.
fn acknowledged(device: &DeviceClient, id: TelemetryId) -> Vec<DeviceEvent> {
    let mut events = events_until(device, WAIT, |e| *e == DeviceEvent::TelemetryAcknowledged(id));
    assert_eq!(events.pop(), Some(DeviceEvent::TelemetryAcknowledged(id)), "{events:?}");
    events
}

/// The device reported a lost transport and a reconnect planned.
fn reported_a_reconnect(events: &[DeviceEvent]) -> bool {
    events.iter().any(|e| matches!(e, DeviceEvent::Disconnected { reconnect_at: Some(_), .. }))
}

#[test]
fn mqtt_a_hub_that_closes_mid_connack_gets_a_second_connect_and_the_message_after_it() {
    let hub = HostileHub::new();
    let device = device(hub.port());
    let id = send(&device, "m1");
    let mut first = hub.accept_connect();
    first.write(&CONNACK_ACCEPTED[..2]);
    drop(first);

    let mut second = hub.accept_connect();
    second.write(&CONNACK_ACCEPTED);
    let publish = second.next_publish();
    assert_eq!(&publish.payload[..], b"m1");
    let Some(packet_id) = publish.packet_id else { panic!("QoS 0 telemetry: {publish:?}") };
    second.write(&puback(packet_id));
    let events = acknowledged(&device, id);
    assert!(reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn mqtt_a_publish_the_hub_never_acknowledged_is_sent_again_after_the_reconnect() {
    let hub = HostileHub::new();
    let device = device(hub.port());
    let id = send(&device, "at-least-once");
    let mut first = hub.accept_connect();
    first.write(&CONNACK_ACCEPTED);
    let original = first.next_publish();
    assert_eq!(&original.payload[..], b"at-least-once");
    drop(first);

    let mut second = hub.accept_connect();
    second.write(&CONNACK_ACCEPTED);
    let again = second.next_publish();
    assert_eq!(again.payload, original.payload, "the same message, sent again");
    // [MQTT-3.3.1-1]: a re-delivery has DUP set; [MQTT-4.4.0-1]: with Clean
    // Session 0 (the device's default) its original packet id.
    assert!(again.dup, "{again:?}");
    assert_eq!(again.packet_id, original.packet_id);
    let Some(packet_id) = again.packet_id else { panic!("QoS 0 telemetry: {again:?}") };
    second.write(&puback(packet_id));
    let events = acknowledged(&device, id);
    assert!(reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn mqtt_a_connack_a_byte_at_a_time_connects_on_the_first_connection() {
    let hub = HostileHub::new();
    let device = device(hub.port());
    let id = send(&device, "slow-connack");
    let mut conn = hub.accept_connect();
    for byte in CONNACK_ACCEPTED {
        conn.write(&[byte]);
        thread::sleep(Duration::from_millis(50));
    }
    let publish = conn.next_publish();
    assert_eq!(&publish.payload[..], b"slow-connack");
    let Some(packet_id) = publish.packet_id else { panic!("QoS 0 telemetry: {publish:?}") };
    conn.write(&puback(packet_id));
    let events = acknowledged(&device, id);
    assert!(
        events.iter().any(|e| matches!(e, DeviceEvent::Connected { .. })),
        "connected once: {events:?}"
    );
    assert!(!reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn mqtt_a_publish_of_268_mb_from_the_hub_is_refused_unread_and_the_message_sent_again() {
    let hub = HostileHub::new();
    let device = device(hub.port());
    let id = send(&device, "before-the-giant");
    let mut first = hub.accept_connect();
    first.write(&CONNACK_ACCEPTED);
    let original = first.next_publish();
    // A QoS 0 PUBLISH announcing 268,435,455 bytes, the most MQTT can say
    // (§2.2.3), far past the device's 272 KiB limit; then the start of a body.
    first.write(&[0x30, 0xff, 0xff, 0xff, 0x7f]);
    let _ = first.stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = first.stream.write_all(&vec![0x55; 1024 * 1024]);
    assert!(first.closed_by_device(), "the device kept reading a 268 MB packet");
    let events = events_until(&device, WAIT, |e| matches!(e, DeviceEvent::Disconnected { .. }));
    assert!(
        events.iter().any(|e| matches!(
            e,
            DeviceEvent::Disconnected { reason: DisconnectReason::ProtocolViolation(_), .. }
        )),
        "{events:?}"
    );

    let mut second = hub.accept_connect();
    second.write(&CONNACK_ACCEPTED);
    let again = second.next_publish();
    assert_eq!(again.payload, original.payload);
    assert!(again.dup, "{again:?}");
    let Some(packet_id) = again.packet_id else { panic!("QoS 0 telemetry: {again:?}") };
    second.write(&puback(packet_id));
    acknowledged(&device, id);
}

#[test]
fn mqtt_a_flood_of_pingresps_and_pubacks_for_unknown_ids_acknowledges_nothing() {
    const FLOOD: u16 = 10_000;
    let hub = HostileHub::new();
    let device = device(hub.port());
    let id = send(&device, "only-its-own-puback");
    let mut conn = hub.accept_connect();
    conn.write(&CONNACK_ACCEPTED);
    let publish = conn.next_publish();
    let Some(packet_id) = publish.packet_id else { panic!("QoS 0 telemetry: {publish:?}") };
    let mut flood = Vec::new();
    for n in 1..=FLOOD {
        flood.extend_from_slice(&[0xd0, 0x00]);
        let Some(other) = PacketId::new(n).filter(|other| *other != packet_id) else { continue };
        flood.extend_from_slice(&puback(other));
    }
    conn.write(&flood);
    // None of those acknowledges the message, nor ends the connection.
    let events = events_until(&device, Duration::from_secs(1), |_| false);
    assert!(
        !events.iter().any(|e| matches!(e, DeviceEvent::TelemetryAcknowledged(_))),
        "acknowledged by a PUBACK for another id: {events:?}"
    );
    assert!(!reported_a_reconnect(&events), "{events:?}");
    conn.write(&puback(packet_id));
    acknowledged(&device, id);
}

// ---------------------------------------------------------------------------------
// AMQP

/// One AMQP connection the device opened to the hostile hub, which plays IoT Hub
/// as far as the test needs: open, begin, attaches with credit, put-token answered
/// 200 (spec file §5.2, §5.9).
struct AmqpConn {
    stream: TcpStream,
    rx: BytesMut,
    /// The device's `begin`'s next-outgoing-id plus the transfers since: the
    /// next-incoming-id of the hub's flows (§2.5.6).
    next_incoming: u32,
    /// The hub's next transfer id.
    next_outgoing: u32,
    /// Handles of the device's links: its `$cbs` sender, its `$cbs` receiver and
    /// its telemetry sender.
    cbs_requests: Option<u32>,
    cbs_responses: Option<u32>,
    telemetry: Option<u32>,
    /// Credit the device gave its `$cbs` receiver, and the put-token responses
    /// waiting for it (§2.6.7: no transfer without credit).
    cbs_credit: u32,
    cbs_waiting: Vec<Bytes>,
}

/// A telemetry delivery the device sent: its delivery id and body.
struct Delivered {
    id: u32,
    body: Bytes,
}

impl HostileHub {
    /// The device's next connection, its AMQP protocol header read (the Node SDK's
    /// sequence: no SASL, spec file §5.9), within [`WAIT`].
    fn accept_amqp(&self) -> AmqpConn {
        let stream = self.accept();
        let mut conn = AmqpConn {
            stream,
            rx: BytesMut::new(),
            next_incoming: 0,
            next_outgoing: 0,
            cbs_requests: None,
            cbs_responses: None,
            telemetry: None,
            cbs_credit: 0,
            cbs_waiting: Vec::new(),
        };
        conn.fill(8);
        assert_eq!(ProtocolHeader::decode(&mut conn.rx), Ok(Some(ProtocolHeader::AMQP)));
        conn
    }
}

impl AmqpConn {
    fn write(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("{e}");
        }
    }

    /// Reads until `rx` holds `n` bytes, within [`WAIT`].
    fn fill(&mut self, n: usize) {
        let _ = self.stream.set_read_timeout(Some(WAIT));
        let mut buffer = [0u8; 4096];
        while self.rx.len() < n {
            match self.stream.read(&mut buffer) {
                Ok(0) => panic!("the device closed the connection"),
                Ok(read) => self.rx.extend_from_slice(&buffer[..read]),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// The device's next performative and its payload, heartbeats skipped.
    fn next(&mut self) -> (Performative, Bytes) {
        let limits = FrameLimits { max_frame_size: u32::MAX };
        loop {
            match frame::decode(&mut self.rx, &limits) {
                Ok(Some(f)) if f.is_empty() => {}
                Ok(Some(f)) => match Performative::decode(&f.body, &AmqpLimits::default()) {
                    Ok(decoded) => return decoded,
                    Err(e) => panic!("the device sent a bad performative: {e}"),
                },
                Ok(None) => {
                    let wanted = self.rx.len() + 1;
                    self.fill(wanted);
                }
                Err(e) => panic!("the device sent a bad frame: {e}"),
            }
        }
    }

    fn send(&mut self, performative: Performative, payload: &[u8]) {
        let bytes = amqp_frame(performative, payload);
        self.write(&bytes);
    }

    /// The hub's answer to the device's `open`: its header and its own `open`.
    fn answer_open(&mut self) {
        let (open, _) = self.next();
        assert!(matches!(open, Performative::Open(_)), "{open:?}");
        self.write(&protocol_header(ProtocolHeader::AMQP));
        self.send(Performative::Open(hub_open()), b"");
    }

    /// Plays IoT Hub until the device sends a telemetry transfer, and returns it.
    fn serve_until_telemetry(&mut self) -> Delivered {
        loop {
            let (performative, payload) = self.next();
            match performative {
                Performative::Open(_) => {
                    self.write(&protocol_header(ProtocolHeader::AMQP));
                    self.send(Performative::Open(hub_open()), b"");
                }
                Performative::Begin(begin) => {
                    self.next_incoming = begin.next_outgoing_id;
                    let answer = Begin { remote_channel: Some(0), ..Begin::new(0, 5000, 5000) };
                    self.send(Performative::Begin(answer), b"");
                }
                Performative::Attach(attach) => self.answer_attach(&attach),
                Performative::Transfer(transfer) => {
                    self.next_incoming = self.next_incoming.wrapping_add(1);
                    let id = transfer.delivery_id.unwrap_or_default();
                    if Some(transfer.handle) == self.telemetry {
                        let message = match AmqpMessage::decode(&payload, &AmqpLimits::default()) {
                            Ok(m) => m,
                            Err(e) => panic!("the device sent a bad message: {e}"),
                        };
                        return Delivered { id, body: message.body.data().unwrap_or_default() };
                    }
                    if Some(transfer.handle) == self.cbs_requests {
                        self.answer_put_token(id, &payload);
                    }
                }
                Performative::Flow(flow)
                    if flow.handle.is_some() && flow.handle == self.cbs_responses =>
                {
                    self.cbs_credit = flow.link_credit.unwrap_or_default();
                    self.send_put_token_responses();
                }
                _ => {}
            }
        }
    }

    /// The attach the device asked for, mirrored; a device's sender gets credit.
    fn answer_attach(&mut self, attach: &Attach) {
        let address = match attach.role {
            Role::Sender => attach.target.as_ref().and_then(|t| t.terminus.address.clone()),
            Role::Receiver => attach.source.as_ref().and_then(|s| s.terminus.address.clone()),
        };
        let address = address.map(|a| a.as_str().to_owned()).unwrap_or_default();
        match (attach.role, address.as_str()) {
            (Role::Sender, "$cbs") => self.cbs_requests = Some(attach.handle),
            (Role::Receiver, "$cbs") => self.cbs_responses = Some(attach.handle),
            (Role::Sender, a) if a.ends_with("/messages/events") => {
                self.telemetry = Some(attach.handle);
            }
            _ => {}
        }
        let mut answer = Attach::new(attach.name.clone(), attach.handle, Role::Sender);
        answer.source = attach.source.clone();
        answer.target = attach.target.clone();
        if attach.role == Role::Sender {
            answer.role = Role::Receiver;
        } else {
            answer.initial_delivery_count = Some(0);
        }
        self.send(Performative::Attach(Box::new(answer)), b"");
        if attach.role == Role::Sender {
            let flow = Flow {
                next_incoming_id: Some(self.next_incoming),
                incoming_window: 5000,
                next_outgoing_id: self.next_outgoing,
                outgoing_window: 5000,
                handle: Some(attach.handle),
                delivery_count: Some(0),
                link_credit: Some(100),
                ..Flow::default()
            };
            self.send(Performative::Flow(flow), b"");
        }
    }

    /// 200 for the put-token in `payload`, on the device's `$cbs` receiver.
    fn answer_put_token(&mut self, delivery_id: u32, payload: &Bytes) {
        let request = match AmqpMessage::decode(payload, &AmqpLimits::default()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let put = match PutToken::from_message(&request) {
            Ok(put) => put,
            Err(e) => panic!("{e}"),
        };
        self.settle(delivery_id);
        let mut response = BytesMut::new();
        if let Err(e) = PutTokenResponse::ok(put.message_id).to_message().encode(&mut response) {
            panic!("{e}");
        }
        self.cbs_waiting.push(response.freeze());
        self.send_put_token_responses();
    }

    /// The put-token responses waiting, as far as the device's credit goes.
    fn send_put_token_responses(&mut self) {
        let Some(handle) = self.cbs_responses else { return };
        while self.cbs_credit > 0 && !self.cbs_waiting.is_empty() {
            let response = self.cbs_waiting.remove(0);
            self.cbs_credit -= 1;
            let id = self.next_outgoing;
            self.next_outgoing = self.next_outgoing.wrapping_add(1);
            let transfer = Transfer {
                handle,
                delivery_id: Some(id),
                delivery_tag: Some(Bytes::from(id.to_be_bytes().to_vec())),
                message_format: Some(0),
                settled: Some(true),
                ..Transfer::default()
            };
            self.send(Performative::Transfer(transfer), &response);
        }
    }

    /// Settles the device's delivery `id` `accepted`: IoT Hub's acknowledgement
    /// (spec file §5.4).
    fn settle(&mut self, id: u32) {
        let disposition = Disposition {
            role: Role::Receiver,
            first: id,
            last: None,
            settled: true,
            state: Some(DeliveryState::Accepted),
            batchable: false,
        };
        self.send(Performative::Disposition(disposition), b"");
    }

    /// Whether the device closed the connection within [`WAIT`]; returns the
    /// performatives it sent meanwhile.
    fn until_closed_by_device(&mut self) -> (bool, Vec<Performative>) {
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(100)));
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 4096];
        let mut sent = Vec::new();
        let limits = FrameLimits { max_frame_size: u32::MAX };
        while Instant::now() < deadline {
            while let Ok(Some(f)) = frame::decode(&mut self.rx, &limits) {
                if let Ok((p, _)) = Performative::decode(&f.body, &AmqpLimits::default()) {
                    sent.push(p);
                }
            }
            match self.stream.read(&mut buffer) {
                Ok(0) => return (true, sent),
                Ok(n) => self.rx.extend_from_slice(&buffer[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return (true, sent),
            }
        }
        (false, sent)
    }
}

fn hub_open() -> Open {
    Open { max_frame_size: 64 * 1024, ..Open::new("hostile-hub".into()) }
}

fn protocol_header(header: ProtocolHeader) -> Vec<u8> {
    let mut out = BytesMut::new();
    header.encode(&mut out);
    out.to_vec()
}

/// `performative` and `payload` as one frame on channel 0.
fn amqp_frame(performative: Performative, payload: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    if let Err(e) = performative.encode(&mut body) {
        panic!("{e}");
    }
    body.extend_from_slice(payload);
    let frame = Frame { kind: FrameKind::Amqp { channel: 0 }, body: body.freeze() };
    let mut out = BytesMut::new();
    if let Err(e) = frame.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out) {
        panic!("{e}");
    }
    out.to_vec()
}

#[test]
fn amqp_a_transfer_the_hub_never_settled_is_sent_again_after_the_reconnect() {
    let hub = HostileHub::new();
    let device = device_over(hub.port(), Transport::AmqpTcp);
    let id = send(&device, "at-least-once");
    let mut first = hub.accept_amqp();
    let original = first.serve_until_telemetry();
    assert_eq!(&original.body[..], b"at-least-once");
    drop(first);

    let mut second = hub.accept_amqp();
    let again = second.serve_until_telemetry();
    assert_eq!(again.body, original.body, "the same message, sent again");
    second.settle(again.id);
    let events = acknowledged(&device, id);
    assert!(reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn amqp_a_hub_that_closes_mid_open_gets_a_second_header_and_the_message_after_it() {
    let hub = HostileHub::new();
    let device = device_over(hub.port(), Transport::AmqpTcp);
    let id = send(&device, "m1");
    let mut first = hub.accept_amqp();
    let (open, _) = first.next();
    assert!(matches!(open, Performative::Open(_)), "{open:?}");
    let answer =
        [protocol_header(ProtocolHeader::AMQP), amqp_frame(Performative::Open(hub_open()), b"")]
            .concat();
    first.write(&answer[..answer.len() - 5]);
    drop(first);

    let mut second = hub.accept_amqp();
    let delivered = second.serve_until_telemetry();
    assert_eq!(&delivered.body[..], b"m1");
    second.settle(delivered.id);
    let events = acknowledged(&device, id);
    assert!(reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn amqp_a_frame_of_1_gib_from_the_hub_is_closed_with_framing_error_and_the_device_reconnects() {
    let hub = HostileHub::new();
    let device = device_over(hub.port(), Transport::AmqpTcp);
    let id = send(&device, "before-the-giant");
    let mut first = hub.accept_amqp();
    first.answer_open();
    // §2.3.1: SIZE 0x40000000, DOFF 2, TYPE 0, channel 0; past the 64 KiB (or
    // less) the device's `open` allows.
    first.write(&[0x40, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]);
    let _ = first.stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = first.stream.write_all(&vec![0x55; 1024 * 1024]);
    let (closed, sent) = first.until_closed_by_device();
    assert!(closed, "the device kept reading a 1 GiB frame");
    // §2.7.1 (max-frame-size): "… the connection MUST be closed with a
    // framing-error"; the device says so in its `close` before it goes.
    let condition = sent.iter().find_map(|p| match p {
        Performative::Close(Close { error: Some(error) }) => Some(error.condition.clone()),
        _ => None,
    });
    assert_eq!(condition, Some(condition::CONNECTION_FRAMING_ERROR), "{sent:?}");

    let mut second = hub.accept_amqp();
    let delivered = second.serve_until_telemetry();
    assert_eq!(&delivered.body[..], b"before-the-giant");
    second.settle(delivered.id);
    let events = acknowledged(&device, id);
    assert!(reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn amqp_a_hub_header_and_open_a_byte_at_a_time_are_read_on_the_first_connection() {
    let hub = HostileHub::new();
    let device = device_over(hub.port(), Transport::AmqpTcp);
    let id = send(&device, "slow-open");
    let mut conn = hub.accept_amqp();
    let (open, _) = conn.next();
    assert!(matches!(open, Performative::Open(_)), "{open:?}");
    let answer =
        [protocol_header(ProtocolHeader::AMQP), amqp_frame(Performative::Open(hub_open()), b"")]
            .concat();
    for byte in answer {
        conn.write(&[byte]);
        thread::sleep(Duration::from_millis(2));
    }
    let delivered = conn.serve_until_telemetry();
    assert_eq!(&delivered.body[..], b"slow-open");
    conn.settle(delivered.id);
    let events = acknowledged(&device, id);
    assert!(!reported_a_reconnect(&events), "{events:?}");
}

#[test]
fn amqp_a_flood_of_heartbeats_and_dispositions_for_unknown_deliveries_settles_nothing() {
    const FLOOD: u32 = 10_000;
    let hub = HostileHub::new();
    let device = device_over(hub.port(), Transport::AmqpTcp);
    let id = send(&device, "only-its-own-disposition");
    let mut conn = hub.accept_amqp();
    let delivered = conn.serve_until_telemetry();
    let mut flood = Vec::new();
    for n in 1..=FLOOD {
        // §2.3.1: an empty frame, 8 bytes, DOFF 2, channel 0: a heartbeat (§2.4.5).
        flood.extend_from_slice(&[0x00, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x00]);
        let disposition = Disposition {
            role: Role::Receiver,
            first: delivered.id.wrapping_add(n),
            last: None,
            settled: true,
            state: Some(DeliveryState::Accepted),
            batchable: false,
        };
        flood.extend_from_slice(&amqp_frame(Performative::Disposition(disposition), b""));
    }
    conn.write(&flood);
    let events = events_until(&device, Duration::from_secs(1), |_| false);
    assert!(
        !events.iter().any(|e| matches!(e, DeviceEvent::TelemetryAcknowledged(_))),
        "settled by a disposition for another delivery: {events:?}"
    );
    assert!(!reported_a_reconnect(&events), "{events:?}");
    conn.settle(delivered.id);
    acknowledged(&device, id);
}

#[test]
fn mqtt_a_hub_that_goes_silent_is_left_after_the_keep_alive_and_the_message_sent_again() {
    let hub = HostileHub::new();
    let device = device_with(hub.port(), Transport::MqttTcp, |config| {
        config.keep_alive = Duration::from_secs(1);
        config.response_timeout = Duration::from_secs(1);
    });
    let id = send(&device, "to-a-silent-hub");
    let mut first = hub.accept_connect();
    first.write(&CONNACK_ACCEPTED);
    let original = first.next_publish();
    // The hub goes silent, the socket open: no PUBACK, no PINGRESP.
    let started = Instant::now();
    let mut second = hub.accept_connect();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the device waited {waited:?} on a silent hub");
    second.write(&CONNACK_ACCEPTED);
    let again = second.next_publish();
    assert_eq!(again.payload, original.payload);
    let Some(packet_id) = again.packet_id else { panic!("QoS 0 telemetry: {again:?}") };
    second.write(&puback(packet_id));
    let events = acknowledged(&device, id);
    assert!(
        events.iter().any(|e| matches!(
            e,
            DeviceEvent::Disconnected { reason: DisconnectReason::KeepAliveTimeout, .. }
        )),
        "{events:?}"
    );
    drop(first);
}

#[test]
fn amqp_a_hub_that_goes_silent_is_left_after_the_idle_time_out_and_the_transfer_sent_again() {
    let hub = HostileHub::new();
    // The idle time-out the device announces in its open (§2.4.5): a hub that
    // sends nothing for that long is gone.
    let device = device_with(hub.port(), Transport::AmqpTcp, |config| {
        config.keep_alive = Duration::from_secs(1);
    });
    let id = send(&device, "to-a-silent-hub");
    let mut first = hub.accept_amqp();
    let original = first.serve_until_telemetry();
    let started = Instant::now();
    let mut second = hub.accept_amqp();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the device waited {waited:?} on a silent hub");
    let again = second.serve_until_telemetry();
    assert_eq!(again.body, original.body);
    second.settle(again.id);
    let events = acknowledged(&device, id);
    assert!(reported_a_reconnect(&events), "{events:?}");
    drop(first);
}
