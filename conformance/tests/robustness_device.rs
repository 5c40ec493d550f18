//! A hostile hub against `hubwire_blocking::DeviceClient` over MQTT on plain TCP
//! (issue 7, item 5): the hub closes mid-CONNACK, closes before its PUBACK, sends
//! its CONNACK a byte at a time, announces a 268 MB PUBLISH, floods PINGRESPs and
//! PUBACKs for ids the device never used. The device stays up, reconnects after
//! its backoff (a second CONNECT arrives), sends again what was not acknowledged
//! [MQTT-4.4.0-1] and counts as acknowledged only what the hub acknowledged.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hubwire_blocking::{ClientTransport, DeviceClient, Transport};
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

    /// The device's next connection, whose first packet must be a CONNECT
    /// [MQTT-3.1.0-1], within [`WAIT`].
    fn accept_connect(&self) -> Accepted {
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
    let cs = format!("HostName=127.0.0.1:{port};DeviceId=dev1;SharedAccessKey={KEY}");
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("{cs}") };
    let mut config = DeviceConfig::new(cs);
    config.receive_c2d = false;
    config.backoff =
        Backoff { initial: Duration::from_millis(200), max: Duration::from_millis(400) };
    match DeviceClient::connect(config, ClientTransport::new(Transport::MqttTcp)) {
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
fn a_hub_that_closes_mid_connack_gets_a_second_connect_and_the_message_after_it() {
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
fn a_publish_the_hub_never_acknowledged_is_sent_again_after_the_reconnect() {
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
fn a_connack_a_byte_at_a_time_connects_on_the_first_connection() {
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
fn a_publish_of_268_mb_from_the_hub_is_refused_unread_and_the_message_sent_again() {
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
fn a_flood_of_pingresps_and_pubacks_for_unknown_ids_acknowledges_nothing() {
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
