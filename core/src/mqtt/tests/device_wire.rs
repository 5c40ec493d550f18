//! The device's side of MQTT against a scripted hub: the bytes it writes, and what it
//! does with bytes a hub may or may not send. Each test is named after the statement
//! of MQTT 3.1.1 it checks (conformance/statements/mqtt-3.1.1.toml).

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::device::{Device, DeviceConfig, DeviceEvent, DisconnectReason};
use crate::hub::HubConfig;
use crate::iothub::Message;
use crate::mqtt::Packet;
use crate::sansio::{Connection, Transmit};
use crate::testing::{Pair, START, decode_all};
use crate::time::Timestamp;

/// One device and the hub's end of its connection, played by the test.
struct Wire {
    device: Device,
    now: Timestamp,
    /// Every byte the device wrote, on every connection.
    sent: BytesMut,
    /// The device closed its transport.
    closed: bool,
}

impl Wire {
    /// A device (`dev1`, defaults edited by `configure`) whose transport is open and
    /// whose CONNECT is out.
    fn open(configure: impl FnOnce(&mut DeviceConfig)) -> Wire {
        let mut config = DeviceConfig::new(Pair::connection_string("dev1"));
        configure(&mut config);
        let device = Device::new(START, config).unwrap();
        let mut wire = Wire { device, now: START, sent: BytesMut::new(), closed: false };
        assert_eq!(wire.device.poll_transmit(), Some(Transmit::Connect));
        wire.device.handle_connected(START);
        wire.flush();
        wire
    }

    /// [`Wire::open`], then a CONNACK accepting without a session.
    fn accepted(configure: impl FnOnce(&mut DeviceConfig)) -> Wire {
        let mut wire = Wire::open(configure);
        wire.hub_sends(&[0x20, 0x02, 0x00, 0x00]); // CONNACK, no session, accepted
        assert!(!wire.closed);
        wire
    }

    /// Takes what the device has to write.
    fn flush(&mut self) {
        while let Some(t) = self.device.poll_transmit() {
            match t {
                Transmit::Send(bytes) => {
                    assert!(!self.closed, "bytes written after the close");
                    self.sent.extend_from_slice(&bytes);
                }
                Transmit::Close => self.closed = true,
                Transmit::Connect => panic!("dialing again"),
            }
        }
    }

    /// Feeds `bytes` to the device as the hub's.
    fn hub_sends(&mut self, bytes: &[u8]) {
        let _ = self.device.handle_input(self.now, bytes);
        self.flush();
    }

    /// Everything the device wrote, decoded.
    fn packets(&self) -> Vec<Packet> {
        decode_all(&self.sent)
    }

    fn events(&mut self) -> Vec<DeviceEvent> {
        core::iter::from_fn(|| self.device.poll_event()).collect()
    }

    /// The device closed its transport for a protocol violation.
    fn assert_closed_for_a_violation(&mut self, what: &str) {
        assert!(self.closed, "{what}: not closed");
        let events = self.events();
        assert!(
            events.iter().any(|e| matches!(
                e,
                DeviceEvent::Disconnected { reason: DisconnectReason::ProtocolViolation(_), .. }
            )),
            "{what}: {events:?}"
        );
    }
}

/// After the CONNACK, the hub sends `bytes`; the device must close the connection.
fn assert_closes_on(bytes: &[u8], what: &str) {
    let mut wire = Wire::accepted(|_| {});
    let before = wire.sent.len();
    wire.hub_sends(bytes);
    wire.assert_closed_for_a_violation(what);
    assert!(
        decode_all(&wire.sent[before..]).iter().all(|p| !matches!(p, Packet::PubAck(_))),
        "{what}: acknowledged"
    );
}

/// A C2D PUBLISH at QoS 1 to dev1.
fn c2d(id: u16, dup: bool, body: &[u8]) -> Vec<u8> {
    let topic = b"devices/dev1/messages/devicebound/";
    let mut bytes = alloc::vec![
        0x32 | if dup { 0x08 } else { 0x00 }, // PUBLISH, QoS 1, DUP as asked
        (2 + topic.len() + 2 + body.len()) as u8, // Remaining Length
        0x00,
        topic.len() as u8, // Topic Name length
    ];
    bytes.extend_from_slice(topic);
    bytes.extend_from_slice(&id.to_be_bytes()); // Packet Identifier
    bytes.extend_from_slice(body);
    bytes
}

/// The lock tokens of the C2D messages among `events`.
fn c2d_locks(events: &[DeviceEvent]) -> Vec<crate::iothub::LockToken> {
    events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::C2d(m) => m.lock_token,
            _ => None,
        })
        .collect()
}

#[test]
fn mqtt_3_1_2_11_connect_flags_are_0xc0_and_the_payload_follows_them() {
    let wire = Wire::open(|_| {});
    let bytes = &wire.sent[..];
    assert_eq!(bytes[0], 0x10, "CONNECT");
    let length_bytes = if bytes[1] & 0x80 == 0 { 1 } else { 2 };
    let remaining = match length_bytes {
        1 => usize::from(bytes[1]),
        _ => usize::from(bytes[1] & 0x7F) + (usize::from(bytes[2]) << 7),
    };
    let body = &bytes[1 + length_bytes..];
    assert_eq!(body.len(), remaining, "one packet, nothing after it");
    assert_eq!(&body[..7], b"\x00\x04MQTT\x04", "Protocol Name and Level");
    // User Name 1, Password 1, Will Retain 0, Will QoS 00, Will Flag 0, Clean
    // Session 0, Reserved 0.
    assert_eq!(body[7], 0xC0);
    // Then Keep Alive (2 bytes) and the payload: Client Identifier, User Name,
    // Password, each with a two-byte length, and no Will fields.
    let mut rest = &body[10..];
    let mut fields = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        fields.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    assert!(rest.is_empty());
    assert_eq!(fields.len(), 3, "client id, user name, password");
    assert_eq!(fields[0], b"dev1");
    assert!(fields[1].starts_with(b"localhost/dev1/?api-version="));
    assert!(fields[2].starts_with(b"SharedAccessSignature sr="));
}

#[test]
fn mqtt_3_1_3_2_every_connect_names_the_same_client_id_and_session() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    pair.break_connection(d);
    pair.advance(crate::time::Duration::from_secs(2));
    let packets = pair.devices[d].packets_to_hub();
    let connects: Vec<_> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Connect(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(connects.len(), 2);
    for c in &connects {
        assert_eq!((c.client_id.as_str(), c.clean_session), ("dev1", false));
    }
    // The hub kept the session [MQTT-3.1.2-4]; the device resumes it and does not
    // subscribe again.
    let connected: Vec<_> = pair.devices[d]
        .events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::Connected { session_present } => Some(*session_present),
            _ => None,
        })
        .collect();
    assert_eq!(connected, [false, true]);
    let subscribes = packets.iter().filter(|p| matches!(p, Packet::Subscribe(_))).count();
    assert_eq!(subscribes, 1);
}

#[test]
fn mqtt_3_1_2_6_clean_session_1_subscribes_again_on_each_connection() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| c.clean_session = true);
    pair.drive();
    pair.break_connection(d);
    pair.advance(crate::time::Duration::from_secs(2));
    let packets = pair.devices[d].packets_to_hub();
    let clean: Vec<bool> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Connect(c) => Some(c.clean_session),
            _ => None,
        })
        .collect();
    assert_eq!(clean, [true, true]);
    let subscribes = packets.iter().filter(|p| matches!(p, Packet::Subscribe(_))).count();
    assert_eq!(subscribes, 2, "nothing of the first session is reused");
}

#[test]
fn mqtt_3_2_0_1_a_first_packet_other_than_connack_closes() {
    let mut wire = Wire::open(|_| {});
    wire.hub_sends(&[0xD0, 0x00]); // PINGRESP before any CONNACK
    wire.assert_closed_for_a_violation("PINGRESP first");
}

#[test]
fn mqtt_1_5_3_1_ill_formed_utf8_from_the_hub_closes() {
    // PUBLISH QoS 0, Topic Name 0xC3 0x28: a lead byte without its continuation.
    assert_closes_on(&[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], "ill-formed UTF-8");
}

#[test]
fn mqtt_1_5_3_2_a_null_character_from_the_hub_closes() {
    // PUBLISH QoS 0, Topic Name "a\0b".
    assert_closes_on(&[0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b'], "U+0000");
}

#[test]
fn mqtt_2_2_2_2_invalid_flags_from_the_hub_close() {
    // PUBACK with flags 0001 instead of 0000.
    assert_closes_on(&[0x41, 0x02, 0x00, 0x01], "PUBACK flags");
}

#[test]
fn mqtt_3_3_1_4_qos_3_from_the_hub_closes() {
    // PUBLISH with both QoS bits set, topic "a", Packet Identifier 1.
    assert_closes_on(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], "QoS 3");
}

#[test]
fn mqtt_3_8_4_6_a_publish_above_the_granted_qos_closes() {
    // The device subscribes at QoS 1 at most; a QoS 2 PUBLISH exceeds every grant.
    let mut bytes = c2d(1, false, b"x");
    bytes[0] = 0x34; // PUBLISH, QoS 2
    assert_closes_on(&bytes, "QoS 2 C2D");
}

#[test]
fn mqtt_4_8_0_1_packets_only_a_client_sends_close() {
    for (bytes, what) in [
        (&[0xC0, 0x00][..], "PINGREQ"),
        (&[0x20, 0x02, 0x00, 0x00][..], "a second CONNACK"),
        (&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00][..], "SUBSCRIBE"),
    ] {
        assert_closes_on(bytes, what);
    }
}

#[test]
fn mqtt_4_8_0_2_a_packet_over_the_receive_limit_closes() {
    let mut wire = Wire::accepted(|c| c.max_packet_size = 1024);
    // A PUBLISH header announcing 2000 bytes: more than the device can hold.
    wire.hub_sends(&[0x30, 0xD0, 0x0F]);
    wire.assert_closed_for_a_violation("2000-byte PUBLISH");
}

#[test]
fn mqtt_2_3_1_6_c2d_is_acknowledged_with_its_packet_id() {
    let mut wire = Wire::accepted(|_| {});
    wire.hub_sends(&c2d(0x1234, false, b"x"));
    let locks = c2d_locks(&wire.events());
    assert_eq!(locks.len(), 1);
    let before = wire.sent.len();
    wire.device.complete(wire.now, &locks[0]).unwrap();
    wire.flush();
    assert_eq!(&wire.sent[before..], [0x40, 0x02, 0x12, 0x34], "PUBACK 0x1234");
}

#[test]
fn mqtt_4_3_2_2_a_packet_id_reused_after_its_puback_is_a_new_message() {
    let mut wire = Wire::accepted(|_| {});
    wire.hub_sends(&c2d(7, false, b"first"));
    let first = c2d_locks(&wire.events());
    wire.device.complete(wire.now, &first[0]).unwrap();
    wire.flush();
    // The same identifier, DUP set: still a new message once the PUBACK went out.
    wire.hub_sends(&c2d(7, true, b"second"));
    let events = wire.events();
    let bodies: Vec<Bytes> = events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::C2d(m) => Some(m.message.body.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, [Bytes::from_static(b"second")]);
    wire.device.complete(wire.now, &c2d_locks(&events)[0]).unwrap();
    wire.flush();
    let pubacks = wire.packets().into_iter().filter(|p| matches!(p, Packet::PubAck(_))).count();
    assert_eq!(pubacks, 2);
}

#[test]
fn mqtt_3_3_4_1_qos_1_gets_a_puback_and_qos_0_none() {
    let topic = b"$iothub/methods/POST/reboot/?$rid=1";
    let publish = |qos: u8| {
        let mut bytes = alloc::vec![0x30 | (qos << 1), 0, 0x00, topic.len() as u8];
        bytes.extend_from_slice(topic);
        if qos == 1 {
            bytes.extend_from_slice(&[0x00, 0x09]); // Packet Identifier 9
        }
        bytes[1] = (bytes.len() - 2) as u8; // Remaining Length
        bytes
    };
    let mut wire = Wire::accepted(|c| c.receive_methods = true);
    let before = wire.sent.len();
    wire.hub_sends(&publish(0));
    assert_eq!(wire.sent.len(), before, "nothing answers QoS 0");
    wire.hub_sends(&publish(1));
    assert_eq!(&wire.sent[before..], [0x40, 0x02, 0x00, 0x09], "PUBACK 9");
    assert!(!wire.closed);
}

#[test]
fn mqtt_4_5_0_2_a_qos_1_publish_the_device_drops_is_still_acknowledged() {
    let mut wire = Wire::accepted(|_| {});
    let mut bytes = c2d(5, false, b"x");
    // Another device's topic: devices/dev2/... (same length as dev1).
    bytes[4 + 11] = b'2';
    assert_eq!(&bytes[4..16], b"devices/dev2");
    let before = wire.sent.len();
    wire.hub_sends(&bytes);
    assert!(c2d_locks(&wire.events()).is_empty(), "not shown to the application");
    assert_eq!(&wire.sent[before..], [0x40, 0x02, 0x00, 0x05], "PUBACK 5");
}

#[test]
fn mqtt_3_14_4_1_disconnect_is_the_last_packet_before_the_close() {
    let mut wire = Wire::accepted(|_| {});
    let before = wire.sent.len();
    wire.device.disconnect(wire.now);
    wire.flush();
    assert_eq!(&wire.sent[before..], [0xE0, 0x00], "DISCONNECT");
    assert!(wire.closed);
    // [MQTT-3.14.4-2]: nothing more goes out, whatever the application asks.
    let now = wire.now;
    let _ = wire.device.send_telemetry(now, Message::new(&b"late"[..]));
    wire.device.handle_timeout(now + crate::time::Duration::from_secs(600));
    assert_eq!(wire.device.poll_transmit(), None);
}

#[test]
fn mqtt_2_3_1_7_a_suback_for_no_subscribe_closes() {
    let mut wire = Wire::accepted(|_| {});
    let subscribes: Vec<_> = wire
        .packets()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Subscribe(s) => Some(s.packet_id.get()),
            _ => None,
        })
        .collect();
    assert_eq!(subscribes.len(), 1, "the C2D subscription");
    let other = subscribes[0].wrapping_add(1).max(1);
    let [hi, lo] = other.to_be_bytes();
    // SUBACK granting QoS 1 under an identifier no SUBSCRIBE used.
    wire.hub_sends(&[0x90, 0x03, hi, lo, 0x01]);
    wire.assert_closed_for_a_violation("SUBACK for another identifier");
}
