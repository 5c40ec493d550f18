//! The AMQP device against the hub engine, in simulated time: single devices
//! through [`Pair`], many devices on one connection through [`MuxPair`].

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::Protocol;
use crate::device::{DeviceEvent, DisconnectReason};
use crate::hub::{D2cLog, DeviceRecord, Hub, HubConfig, HubEvent, Outcome};
use crate::iothub::{Authentication, Disposition, Message};
use crate::sansio::{ConnectionId, Endpoint};
use crate::testing::{KEY, Pair, START};

/// A key that is base64 but not the one the hub registered.
const WRONG_KEY: &str = "Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s=";

fn amqp_device(pair: &mut Pair, device_id: &str) -> usize {
    pair.add_device(device_id, |c| c.protocol = Protocol::Amqp)
}

fn connected(events: &[DeviceEvent]) -> usize {
    events.iter().filter(|e| matches!(e, DeviceEvent::Connected { .. })).count()
}

fn disconnected(events: &[DeviceEvent]) -> usize {
    events.iter().filter(|e| matches!(e, DeviceEvent::Disconnected { .. })).count()
}

fn settled(hub_events: &[HubEvent]) -> Vec<Outcome> {
    hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::C2dSettled(s) => Some(s.outcome),
            _ => None,
        })
        .collect()
}

/// How often `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn single_device_opens_without_sasl_puts_its_token_and_attaches() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let end = &pair.devices[d];
    assert_eq!(connected(&end.events), 1, "{:?} {:?}", end.events, pair.hub_events);
    // The plain AMQP header (protocol id 0), not the SASL one (spec file §5.1).
    assert_eq!(&end.wire_to_hub[..8], b"AMQP\x00\x01\x00\x00");
    for text in [
        &b"$cbs"[..],
        b"put-token",
        b"servicebus.windows.net:sastoken",
        b"/devices/dev1/messages/events",
        b"/devices/dev1/messages/devicebound",
        b"com.microsoft:client-version",
        b"localhost",
    ] {
        assert!(
            occurrences(&end.wire_to_hub, text) > 0,
            "{} not sent",
            String::from_utf8_lossy(text)
        );
    }
    assert_eq!(occurrences(&end.wire_to_hub, b"put-token"), 1);
}

/// §2.7.1: the device's `open`, the first frame after its header, names no
/// locale, so only en-US, and no capability: it uses no extension.
#[test]
fn s2_7_1_the_devices_open_claims_en_us_only_and_no_capability() {
    use crate::amqp::frame::{self, FrameLimits};
    use crate::amqp::performative::Performative;
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let mut wire = bytes::BytesMut::from(&pair.devices[d].wire_to_hub[8..]);
    let first = frame::decode(&mut wire, &FrameLimits::BEFORE_OPEN).unwrap().unwrap();
    let Ok((Performative::Open(open), _)) = Performative::decode(&first.body, &Default::default())
    else {
        panic!("the first frame is not an open");
    };
    assert_eq!(open.hostname.as_ref().map(|h| h.as_str()), Some("localhost"));
    assert!(open.outgoing_locales.is_empty() && open.incoming_locales.is_empty());
    assert!(open.offered_capabilities.is_empty() && open.desired_capabilities.is_empty());
}

#[test]
fn telemetry_with_properties_is_stored_and_acknowledged() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let mut m = Message::new(&b"{\"t\":21.5}"[..]);
    m.message_id = Some("m1".into());
    m.content_type = Some("application/json".into());
    m.properties.set("unit", "C");
    let id = pair.send_telemetry(d, m).unwrap();
    assert!(pair.devices[d].events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
    let stored: Vec<_> = pair.stored.device("dev1").collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message.message_id.as_deref(), Some("m1"));
    assert_eq!(stored[0].message.content_type.as_deref(), Some("application/json"));
    assert_eq!(stored[0].message.properties.get("unit"), Some(Some("C")));
    assert_eq!(&stored[0].message.body[..], b"{\"t\":21.5}");
    assert_eq!(pair.devices[d].device.unacknowledged(), 0);
}

/// §2.6.12: every delivery the device sends names a tag of its own: no two on one
/// link share one, whichever link (CBS, telemetry) carries them.
#[test]
fn s2_6_12_the_devices_delivery_tags_differ_on_each_link() {
    use crate::amqp::frame::{self, FrameLimits};
    use crate::amqp::performative::Performative;
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    for i in 0..3u8 {
        pair.send_telemetry(d, Message::new(alloc::vec![i])).unwrap();
    }
    let mut wire = bytes::BytesMut::from(&pair.devices[d].wire_to_hub[8..]);
    let limits = FrameLimits { max_frame_size: u32::MAX };
    let mut tags = Vec::new();
    while let Some(f) = frame::decode(&mut wire, &limits).unwrap() {
        if let Ok((Performative::Transfer(t), _)) =
            Performative::decode(&f.body, &Default::default())
            && let Some(tag) = t.delivery_tag
        {
            tags.push((t.handle, tag));
        }
    }
    assert!(tags.len() >= 4, "a put-token and three messages: {tags:?}");
    let mut distinct = tags.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), tags.len(), "{tags:?}");
}

#[test]
fn telemetry_waits_for_the_in_flight_window() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| {
        c.protocol = Protocol::Amqp;
        c.max_in_flight = 2;
    });
    pair.drive();
    pair.hold_stores = true;
    for i in 0..5u8 {
        pair.send_telemetry(d, Message::new(alloc::vec![i])).unwrap();
    }
    assert_eq!(pair.pending_stores.len(), 2, "only the window is sent");
    assert_eq!(pair.devices[d].device.unacknowledged(), 5);
    pair.hold_stores = false;
    pair.release_stores();
    assert_eq!(pair.stored_bodies("dev1").len(), 5);
    assert_eq!(pair.devices[d].device.unacknowledged(), 0);
    let bodies: Vec<u8> = pair.stored_bodies("dev1").iter().map(|b| b[0]).collect();
    assert_eq!(bodies, [0, 1, 2, 3, 4], "in order");
}

#[test]
fn oversized_telemetry_rejected_by_the_hub_is_an_event_not_an_acknowledgement() {
    let config = HubConfig { max_message_size: 1024, ..HubConfig::default() };
    let mut pair = Pair::new(config);
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let id = pair.send_telemetry(d, Message::new(alloc::vec![0u8; 2000])).unwrap();
    let events = &pair.devices[d].events;
    assert!(!events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
    let rejected = events.iter().find_map(|e| match e {
        DeviceEvent::TelemetryRejected { id: r, condition, .. } if *r == id => Some(condition),
        _ => None,
    });
    assert_eq!(rejected.map(String::as_str), Some("amqp:link:message-size-exceeded"));
    assert_eq!(pair.stored_bodies("dev1").len(), 0);
    assert_eq!(pair.devices[d].device.unacknowledged(), 0, "not sent again");
    // The link is still good.
    let next = pair.send_telemetry(d, Message::new(&b"small"[..])).unwrap();
    assert!(pair.devices[d].events.contains(&DeviceEvent::TelemetryAcknowledged(next)));
}

#[test]
fn telemetry_above_iot_hub_limit_is_refused_before_queueing() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    let big = Message::new(alloc::vec![0u8; MAX_TELEMETRY_SIZE + 1]);
    assert!(matches!(pair.send_telemetry(d, big), Err(SendError::TooLarge { .. })));
}

/// Sends one C2D message to a connected single device and returns its lock.
fn c2d_lock(pair: &mut Pair, d: usize, body: &'static [u8]) -> LockToken {
    let mut m = Message::new(body);
    m.message_id = Some("c1".into());
    m.properties.set("color", "blue");
    pair.send_c2d("dev1", m).unwrap();
    let c2d = pair.c2d_received(d).pop().expect("C2D delivered");
    assert_eq!(&c2d.message.body[..], body);
    assert_eq!(c2d.message.message_id.as_deref(), Some("c1"));
    assert_eq!(c2d.message.properties.get("color"), Some(Some("blue")));
    c2d.lock_token.expect("an unsettled delivery has a lock")
}

#[test]
fn c2d_complete_is_accepted_and_removed_from_the_queue() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let lock = c2d_lock(&mut pair, d, b"hello");
    pair.settle(d, &lock, Disposition::Complete).unwrap();
    assert_eq!(settled(&pair.hub_events), [Outcome::Completed]);
    // Settled once: the lock is gone.
    assert_eq!(
        pair.settle(d, &lock, Disposition::Complete),
        Err(DispositionError::UnknownLockToken(lock))
    );
}

#[test]
fn c2d_reject_is_dead_lettered() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let lock = c2d_lock(&mut pair, d, b"hello");
    pair.settle(d, &lock, Disposition::Reject).unwrap();
    assert_eq!(settled(&pair.hub_events), [Outcome::Rejected]);
    assert_eq!(pair.c2d_received(d).len(), 1, "not delivered again");
}

#[test]
fn c2d_abandon_is_redelivered_with_the_delivery_count_raised() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let lock = c2d_lock(&mut pair, d, b"hello");
    pair.settle(d, &lock, Disposition::Abandon).unwrap();
    assert_eq!(settled(&pair.hub_events), [Outcome::Abandoned { delivery_count: 1 }]);
    let again = pair.c2d_received(d);
    assert_eq!(again.len(), 2, "delivered again");
    assert_eq!(&again[1].message.body[..], b"hello");
    let second = again[1].lock_token.unwrap();
    // The redelivery carries `iothub-deliverycount` 1 (a ubyte: 0x50 0x01).
    let wire = &pair.devices[d].wire_from_hub;
    assert!(occurrences(wire, b"iothub-deliverycount\x50\x01") == 1, "no delivery count 1");
    pair.settle(d, &second, Disposition::Complete).unwrap();
    assert_eq!(settled(&pair.hub_events)[1], Outcome::Completed);
}

#[test]
fn unknown_lock_token_is_refused() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let lock = LockToken::from_guid([7; 16]);
    assert_eq!(
        pair.settle(d, &lock, Disposition::Abandon),
        Err(DispositionError::UnknownLockToken(lock))
    );
}

#[test]
fn token_is_renewed_by_put_token_on_the_same_connection() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    // Three hours: the one-hour token is renewed at 48 min, 96 min, …
    pair.advance(Duration::from_secs(3 * 3600));
    let end = &pair.devices[d];
    assert_eq!(disconnected(&end.events), 0, "{:?}", end.events);
    assert_eq!(connected(&end.events), 1);
    assert_eq!(occurrences(&end.wire_to_hub, b"put-token"), 4, "the first and three renewals");
    assert_eq!(pair.hub.connection_count(), 1);
    // The hub still honours the device: its first token lapsed two hours ago.
    let id = pair.send_telemetry(d, Message::new(&b"late"[..])).unwrap();
    assert!(pair.devices[d].events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
}

#[test]
fn reconnect_after_a_broken_connection_resends_unacknowledged_telemetry() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    pair.hold_stores = true;
    let a = pair.send_telemetry(d, Message::new(&b"a"[..])).unwrap();
    let b = pair.send_telemetry(d, Message::new(&b"b"[..])).unwrap();
    pair.break_connection(d);
    // The stores never finish: the hub lost them with the connection.
    pair.pending_stores.clear();
    pair.hold_stores = false;
    let reconnect_at = pair.devices[d].events.iter().find_map(|e| match e {
        DeviceEvent::Disconnected { reason: DisconnectReason::TransportClosed, reconnect_at } => {
            *reconnect_at
        }
        _ => None,
    });
    assert!(reconnect_at.is_some(), "{:?}", pair.devices[d].events);
    pair.advance(Duration::from_secs(120));
    let end = &pair.devices[d];
    assert_eq!(connected(&end.events), 2);
    assert!(end.events.contains(&DeviceEvent::TelemetryAcknowledged(a)));
    assert!(end.events.contains(&DeviceEvent::TelemetryAcknowledged(b)));
    assert_eq!(pair.stored_bodies("dev1"), [&b"a"[..], &b"b"[..]]);
    assert_eq!(occurrences(&end.wire_to_hub, b"put-token"), 2, "a fresh put-token");
}

/// §3.5.2: telemetry the hub accepted is never sent again, not even by the
/// reconnect that resends what was not acknowledged.
#[test]
fn s3_5_2_accepted_telemetry_is_not_resent_after_a_reconnect() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let a = pair.send_telemetry(d, Message::new(&b"a"[..])).unwrap();
    assert!(pair.devices[d].events.contains(&DeviceEvent::TelemetryAcknowledged(a)));
    pair.hold_stores = true;
    pair.send_telemetry(d, Message::new(&b"b"[..])).unwrap();
    pair.break_connection(d);
    pair.pending_stores.clear();
    pair.hold_stores = false;
    pair.advance(Duration::from_secs(120));
    assert_eq!(connected(&pair.devices[d].events), 2);
    assert_eq!(pair.stored_bodies("dev1"), [&b"a"[..], &b"b"[..]]);
}

#[test]
fn c2d_locks_do_not_survive_a_lost_connection() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let lock = c2d_lock(&mut pair, d, b"hello");
    pair.break_connection(d);
    assert_eq!(
        pair.settle(d, &lock, Disposition::Complete),
        Err(DispositionError::UnknownLockToken(lock))
    );
    pair.advance(Duration::from_secs(120));
    assert_eq!(pair.c2d_received(d).len(), 2, "the hub delivers it again");
}

#[test]
fn wrong_key_is_refused_by_put_token_and_not_retried() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| {
        c.protocol = Protocol::Amqp;
        c.connection_string.authentication = Authentication::SharedAccessKey(WRONG_KEY.into());
    });
    pair.advance(Duration::from_secs(600));
    let events = &pair.devices[d].events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(
        &events[0],
        DeviceEvent::Disconnected {
            reason: DisconnectReason::TokenRefused { status_code: 401, .. },
            reconnect_at: None,
        }
    ));
    assert_eq!(pair.hub.connection_count(), 0, "the single device closed its connection");
    assert_eq!(pair.send_telemetry(d, Message::new(&b"x"[..])), Err(SendError::Stopped));
}

#[test]
fn disconnect_closes_and_stops() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let now = pair.now;
    pair.devices[d].device.disconnect(now);
    pair.advance(Duration::from_secs(600));
    let events = &pair.devices[d].events;
    assert!(matches!(
        events.last(),
        Some(DeviceEvent::Disconnected { reason: DisconnectReason::Closed, reconnect_at: None })
    ));
    assert_eq!(connected(events), 1);
    assert_eq!(pair.hub.connection_count(), 0);
}

// ---------------------------------------------------------------------------------
// Many devices on one connection

/// One [`Multiplexed`] connection and the hub, joined in memory.
struct MuxPair {
    hub: Hub,
    mux: Multiplexed,
    connection: Option<ConnectionId>,
    now: Timestamp,
    events: Vec<(DeviceKey, DeviceEvent)>,
    stored: D2cLog,
    /// Every byte the multiplexed connection sent the hub.
    to_hub: Vec<u8>,
}

impl MuxPair {
    fn new() -> MuxPair {
        MuxPair {
            hub: Hub::new(HubConfig::default(), 1),
            mux: Multiplexed::new(MultiplexConfig::new("localhost")),
            connection: None,
            now: START,
            events: Vec::new(),
            stored: D2cLog::default(),
            to_hub: Vec::new(),
        }
    }

    /// Registers `device_id` with [`KEY`] and adds it with `key` as its credential.
    fn add(&mut self, device_id: &str, key: &str) -> DeviceKey {
        let key = self.add_undriven(device_id, key);
        self.drive();
        key
    }

    /// [`MuxPair::add`] without moving a byte: the device has not attached yet.
    fn add_undriven(&mut self, device_id: &str, key: &str) -> DeviceKey {
        let record = DeviceRecord {
            device_id: device_id.into(),
            primary_key: KEY.into(),
            secondary_key: KEY.into(),
            enabled: true,
        };
        let _ = self.hub.registry_mut().add(record);
        let mut config = DeviceConfig::new(Pair::connection_string(device_id));
        config.protocol = Protocol::Amqp;
        config.connection_string.authentication = Authentication::SharedAccessKey(key.into());
        self.mux.add_device(self.now, config).unwrap()
    }

    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.mux.poll_transmit() {
                moved = true;
                match t {
                    Transmit::Connect => {
                        self.connection = Some(self.hub.accept(self.now, Protocol::Amqp));
                        self.mux.handle_connected(self.now);
                    }
                    Transmit::Send(bytes) => {
                        self.to_hub.extend_from_slice(&bytes);
                        if let Some(id) = self.connection {
                            let _ = self.hub.handle_input(self.now, id, &bytes);
                        }
                    }
                    Transmit::Close => {
                        if let Some(id) = self.connection.take() {
                            self.hub.handle_close(self.now, id);
                        }
                    }
                }
            }
            while let Some(e) = self.mux.poll_event() {
                moved = true;
                self.events.push(e);
            }
            while let Some((id, t)) = self.hub.poll_transmit() {
                moved = true;
                if Some(id) != self.connection {
                    continue;
                }
                match t {
                    Transmit::Send(bytes) => {
                        let _ = self.mux.handle_input(self.now, &bytes);
                    }
                    Transmit::Close => {
                        self.connection = None;
                        self.mux.handle_close(self.now);
                    }
                    Transmit::Connect => {}
                }
            }
            while let Some(e) = self.hub.poll_event() {
                moved = true;
                if let HubEvent::StoreTelemetry { ticket, record } = e {
                    self.stored.append(record);
                    self.hub.telemetry_stored(self.now, ticket);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.drive();
        while let Some(t) =
            earliest(self.mux.poll_timeout(), self.hub.poll_timeout()).filter(|t| *t <= target)
        {
            self.now = self.now.max(t);
            if self.mux.poll_timeout().is_some_and(|t| t <= self.now) {
                self.mux.handle_timeout(self.now);
            }
            if self.hub.poll_timeout().is_some_and(|t| t <= self.now) {
                self.hub.handle_timeout(self.now);
            }
            self.drive();
        }
        self.now = target;
        self.drive();
    }

    fn events_of(&self, key: DeviceKey) -> Vec<&DeviceEvent> {
        self.events.iter().filter(|(k, _)| *k == key).map(|(_, e)| e).collect()
    }

    fn c2d_of(&self, key: DeviceKey) -> Vec<C2dMessage> {
        self.events_of(key)
            .into_iter()
            .filter_map(|e| match e {
                DeviceEvent::C2d(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn fifty_devices_share_one_connection_and_a_bad_key_fails_alone() {
    let mut pair = MuxPair::new();
    let mut keys = Vec::new();
    for i in 0..50 {
        keys.push(pair.add(&alloc::format!("dev{i}"), KEY));
    }
    let bad = pair.add("intruder", WRONG_KEY);
    pair.drive();
    assert_eq!(pair.hub.connection_count(), 1);
    for (i, key) in keys.iter().enumerate() {
        let events = pair.events_of(*key);
        assert_eq!(events, [&DeviceEvent::Connected { session_present: false }], "dev{i}");
    }
    assert!(matches!(
        pair.events_of(bad)[..],
        [DeviceEvent::Disconnected {
            reason: DisconnectReason::TokenRefused { status_code: 401, .. },
            reconnect_at: None,
        }]
    ));
    for (i, key) in keys.iter().enumerate() {
        let now = pair.now;
        pair.mux.send_telemetry(now, *key, Message::new(alloc::format!("up {i}"))).unwrap();
        pair.hub
            .send_c2d(now, &alloc::format!("dev{i}"), Message::new(alloc::format!("down {i}")))
            .unwrap();
    }
    pair.drive();
    for (i, key) in keys.iter().enumerate() {
        let id = alloc::format!("dev{i}");
        let bodies: Vec<_> = pair.stored.device(&id).map(|r| r.message.body.clone()).collect();
        assert_eq!(bodies, [alloc::format!("up {i}").into_bytes()], "{id}");
        assert!(
            pair.events_of(*key).contains(&&DeviceEvent::TelemetryAcknowledged(TelemetryId(0)))
        );
        let c2d = pair.c2d_of(*key);
        assert_eq!(c2d.len(), 1, "{id}");
        assert_eq!(&c2d[0].message.body[..], alloc::format!("down {i}").as_bytes());
        let lock = c2d[0].lock_token.unwrap();
        let now = pair.now;
        pair.mux.settle(now, *key, &lock, Disposition::Complete).unwrap();
    }
    pair.drive();
    assert_eq!(pair.hub.connection_count(), 1);
    assert!(pair.mux.is_stopped(bad));
    assert_eq!(
        pair.mux.send_telemetry(pair.now, bad, Message::new(&b"x"[..])),
        Err(SendError::Stopped)
    );
}

#[test]
fn devices_are_added_and_removed_while_the_connection_stays_up() {
    let mut pair = MuxPair::new();
    let a = pair.add("a", KEY);
    let b = pair.add("b", KEY);
    assert_eq!(pair.hub.connection_count(), 1);
    assert!(pair.mux.remove_device(pair.now, a));
    pair.drive();
    assert!(!pair.mux.remove_device(pair.now, a), "gone already");
    // A removed device sends nothing; its neighbour carries on.
    assert_eq!(
        pair.mux.send_telemetry(pair.now, a, Message::new(&b"x"[..])),
        Err(SendError::Stopped)
    );
    pair.mux.send_telemetry(pair.now, b, Message::new(&b"from b"[..])).unwrap();
    pair.drive();
    assert_eq!(pair.stored.device("b").count(), 1);
    // A's C2D link is gone: the hub keeps its messages queued.
    pair.hub.send_c2d(pair.now, "a", Message::new(&b"for a"[..])).unwrap();
    pair.drive();
    assert!(pair.c2d_of(a).is_empty());
    // A device added later joins the same connection.
    let c = pair.add("c", KEY);
    assert_eq!(pair.events_of(c), [&DeviceEvent::Connected { session_present: false }]);
    assert_eq!(pair.hub.connection_count(), 1);
    let mut devices: Vec<DeviceKey> = pair.mux.devices().collect();
    devices.sort();
    assert_eq!(devices, [b, c]);
}

/// §2.6.1: link names are unique per direction on the connection, also for a
/// device removed and added again while its old links may still be detaching.
#[test]
fn s2_6_1_link_names_stay_unique_when_a_device_attaches_again() {
    use crate::amqp::frame::{self, FrameLimits};
    use crate::amqp::performative::Performative;
    let mut pair = MuxPair::new();
    let a = pair.add("a", KEY);
    pair.add("b", KEY);
    assert!(pair.mux.remove_device(pair.now, a));
    pair.add("a", KEY);
    let mut wire = bytes::BytesMut::from(&pair.to_hub[8..]);
    let limits = FrameLimits { max_frame_size: u32::MAX };
    let mut names = alloc::collections::BTreeSet::new();
    let mut attaches = 0;
    while let Some(f) = frame::decode(&mut wire, &limits).unwrap() {
        if let Ok((Performative::Attach(attach), _)) =
            Performative::decode(&f.body, &Default::default())
        {
            attaches += 1;
            let fresh =
                names.insert((attach.name.as_str().to_string(), attach.role == Role::Sender));
            assert!(fresh, "{} attached twice as {:?}", attach.name.as_str(), attach.role);
        }
    }
    // CBS, then telemetry and C2D for a, b and a again.
    assert!(attaches >= 8, "{attaches} attaches");
}

#[test]
fn every_device_reconnects_after_the_connection_is_lost() {
    let mut pair = MuxPair::new();
    let keys: Vec<DeviceKey> = (0..3).map(|i| pair.add(&alloc::format!("d{i}"), KEY)).collect();
    if let Some(id) = pair.connection.take() {
        pair.hub.handle_close(pair.now, id);
    }
    pair.mux.handle_close(pair.now);
    pair.drive();
    pair.advance(Duration::from_secs(120));
    assert_eq!(pair.hub.connection_count(), 1);
    for key in keys {
        let events = pair.events_of(key);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(events[1], DeviceEvent::Disconnected { reconnect_at: Some(_), .. }));
        assert_eq!(events[2], &DeviceEvent::Connected { session_present: false });
    }
}

#[test]
fn thousands_of_transfers_keep_flowing_on_one_session() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    for i in 0..2100u32 {
        pair.send_telemetry(d, Message::new(i.to_be_bytes().to_vec())).unwrap();
    }
    assert_eq!(pair.stored_bodies("dev1").len(), 2100, "{:?}", pair.hub_events.last());
    assert_eq!(pair.devices[d].device.unacknowledged(), 0);
    assert_eq!(disconnected(&pair.devices[d].events), 0);
}

#[test]
fn a_given_token_that_lapses_detaches_the_links_and_its_renewal_is_refused() {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    let token =
        SasToken::sign("localhost/devices/dev1", KEY, START + Duration::from_secs(600), None)
            .unwrap()
            .to_string();
    let mut config = DeviceConfig::new(Pair::connection_string("dev1"));
    config.protocol = Protocol::Amqp;
    config.connection_string.authentication = Authentication::SharedAccessSignature(token);
    let d = pair.add_device_with(config);
    // The hub honours it until 10 min plus its 5 min skew.
    pair.advance(Duration::from_secs(3600));
    let events = &pair.devices[d].events;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], DeviceEvent::Connected { session_present: false });
    assert!(
        matches!(
            &events[1],
            DeviceEvent::Disconnected {
                reason: DisconnectReason::LinkDetached { condition, .. },
                reconnect_at: Some(_),
            } if condition == "amqp:unauthorized-access"
        ),
        "{events:?}"
    );
    assert!(matches!(
        &events[2],
        DeviceEvent::Disconnected {
            reason: DisconnectReason::TokenRefused { status_code: 401, .. },
            reconnect_at: None,
        }
    ));
    assert_eq!(pair.hub.connection_count(), 0);
}

#[test]
fn an_unanswered_renewal_put_token_times_out_and_the_device_retries() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    pair.advance(Duration::from_secs(47 * 60));
    // The renewal at 48 min goes unanswered.
    pair.blackhole = true;
    pair.advance(Duration::from_secs(90));
    let events = &pair.devices[d].events;
    assert!(
        matches!(
            events.last(),
            Some(DeviceEvent::Disconnected {
                reason: DisconnectReason::PutTokenTimeout,
                reconnect_at: Some(_),
            })
        ),
        "{events:?}"
    );
    pair.blackhole = false;
    pair.advance(Duration::from_secs(60));
    assert_eq!(connected(&pair.devices[d].events), 2, "{:?}", pair.devices[d].events);
    let id = pair.send_telemetry(d, Message::new(&b"after"[..])).unwrap();
    assert!(pair.devices[d].events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
}

#[test]
fn a_c2d_message_that_is_not_an_iot_hub_message_is_rejected_and_not_handed_up() {
    use crate::amqp::frame::{Frame, FrameKind, FrameLimits};
    use crate::amqp::message::Body;
    use crate::amqp::performative::{Performative, Transfer};

    let mut pair = MuxPair::new();
    let key = pair.add("dev1", KEY);
    // An amqp-value body: IoT Hub bodies are data sections (spec file §5.5).
    let mut payload = BytesMut::new();
    message::Message::new(Body::Value(Value::String(Utf8Bytes::from_static("not data"))))
        .encode(&mut payload)
        .unwrap();
    // The hub's handles: `$cbs` sender 0, receiver 1, telemetry 2, C2D 3; its one
    // delivery so far was the put-token response.
    let transfer = Transfer {
        handle: 3,
        delivery_id: Some(1),
        delivery_tag: Some(Bytes::from_static(&[9; 16])),
        message_format: Some(MESSAGE_FORMAT_AMQP),
        settled: Some(false),
        ..Transfer::default()
    };
    let mut body = BytesMut::new();
    Performative::Transfer(transfer).encode(&mut body).unwrap();
    body.extend_from_slice(&payload);
    let mut frame = BytesMut::new();
    let limits = FrameLimits { max_frame_size: u32::MAX };
    Frame { kind: FrameKind::Amqp { channel: 0 }, body: body.freeze() }
        .encode(&limits, &mut frame)
        .unwrap();
    pair.mux.handle_input(pair.now, &frame).unwrap();
    let mut out = Vec::new();
    while let Some(t) = pair.mux.poll_transmit() {
        if let Transmit::Send(bytes) = t {
            out.extend_from_slice(&bytes);
        }
    }
    assert!(pair.c2d_of(key).is_empty());
    assert!(pair.mux.poll_event().is_none(), "nothing handed up");
    assert_eq!(occurrences(&out, b"amqp:decode-error"), 1, "rejected with an error");
    assert_eq!(occurrences(&out, b"amqp-value"), 1, "the error says why");
}

#[test]
fn an_x509_device_attaches_without_a_put_token() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| {
        c.protocol = Protocol::Amqp;
        c.connection_string.authentication = Authentication::X509;
    });
    pair.drive();
    let end = &pair.devices[d];
    assert_eq!(occurrences(&end.wire_to_hub, b"put-token"), 0);
    assert!(occurrences(&end.wire_to_hub, b"/devices/dev1/messages/events") > 0);
    // This hub takes no client certificates: it refuses the links, and the device
    // tries again later.
    assert!(
        matches!(
            end.events.first(),
            Some(DeviceEvent::Disconnected {
                reason: DisconnectReason::LinkDetached { condition, .. },
                reconnect_at: Some(_),
            }) if condition == "amqp:unauthorized-access"
        ),
        "{:?}",
        end.events
    );
}

/// Application code written once: send, receive, settle. Complete works over both
/// protocols; reject and abandon over AMQP only (spec file §4.4, §5.5).
fn application(protocol: Protocol) -> (usize, Vec<Result<(), DispositionError>>) {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| c.protocol = protocol);
    pair.drive();
    let id = pair.send_telemetry(d, Message::new(&b"reading"[..])).unwrap();
    assert!(pair.devices[d].events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
    for body in ["one", "two", "three"] {
        pair.send_c2d("dev1", Message::new(body)).unwrap();
    }
    let locks: Vec<LockToken> = pair.c2d_received(d).iter().filter_map(|c| c.lock_token).collect();
    let answers = [Disposition::Reject, Disposition::Abandon, Disposition::Complete]
        .iter()
        .zip(&locks)
        .map(|(disposition, lock)| pair.settle(d, lock, *disposition))
        .collect();
    (pair.stored_bodies("dev1").len(), answers)
}

#[test]
fn the_same_application_code_runs_over_mqtt_and_amqp() {
    let (stored, answers) = application(Protocol::Amqp);
    assert_eq!(stored, 1);
    assert_eq!(answers, [Ok(()), Ok(()), Ok(())]);
    let (stored, answers) = application(Protocol::Mqtt);
    assert_eq!(stored, 1);
    assert!(matches!(answers[0], Err(DispositionError::Unsupported { .. })));
    assert!(matches!(answers[1], Err(DispositionError::Unsupported { .. })));
    assert_eq!(answers[2], Ok(()));
}

#[test]
fn a_content_type_that_is_not_ascii_is_refused_before_queueing() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    let mut m = Message::new(&b"x"[..]);
    m.content_type = Some("text/plain; charset=ü".into());
    assert!(matches!(pair.send_telemetry(d, m), Err(SendError::Unencodable(_))));
    assert_eq!(pair.devices[d].device.unacknowledged(), 0);
}

mod fetch;
mod twin;

#[test]
fn telemetry_not_kept_by_the_hub_is_rejected_with_internal_error() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    pair.hold_stores = true;
    let id = pair.send_telemetry(d, Message::new(&b"t"[..])).unwrap();
    let held = core::mem::take(&mut pair.pending_stores);
    let [HubEvent::StoreTelemetry { ticket, .. }] = held.as_slice() else {
        panic!("one store expected: {held:?}");
    };
    let now = pair.now;
    pair.hub.telemetry_refused(now, *ticket, crate::iothub::ErrorCode::THROTTLING);
    pair.drive();
    let events = &pair.devices[d].events;
    assert!(!events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
    let rejected = events.iter().find_map(|e| match e {
        DeviceEvent::TelemetryRejected { id: r, condition, .. } if *r == id => Some(condition),
        _ => None,
    });
    assert_eq!(rejected.map(String::as_str), Some("amqp:internal-error"));
    // The connection carries on.
    assert_eq!(connected(events), 1);
    assert_eq!(disconnected(events), 0);
}
