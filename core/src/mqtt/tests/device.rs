//! The device session's IoT Hub behaviour, against the real hub engine.

use alloc::vec::Vec;

use crate::Protocol;
use crate::device::{DeviceEvent, DisconnectReason, DispositionError, SendError, TelemetryId};
use crate::hub::{HubConfig, HubEvent};
use crate::iothub::{Authentication, Disposition, Message, SasToken};
use crate::mqtt::{ConnectReturnCode, Packet, QoS};
use crate::sansio::{Connection, Transmit};
use crate::testing::{KEY, Pair, decode_all};
use crate::time::Duration;

fn acks(events: &[DeviceEvent]) -> Vec<TelemetryId> {
    events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::TelemetryAcknowledged(id) => Some(*id),
            _ => None,
        })
        .collect()
}

fn reconnect_delays(pair: &Pair, i: usize) -> Vec<u64> {
    let mut last = crate::testing::START;
    let mut out = Vec::new();
    for e in &pair.devices[i].events {
        if let DeviceEvent::Disconnected { reconnect_at: Some(at), .. } = e {
            out.push(at.saturating_duration_since(last).as_millis() as u64);
            last = *at;
        }
    }
    out
}

#[test]
fn connect_carries_the_iot_hub_client_id_username_and_sas_password() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| c.keep_alive = Duration::from_secs(120));
    pair.drive();
    let Some(Packet::Connect(connect)) = pair.devices[d].packets_to_hub().into_iter().next() else {
        panic!("first packet is not CONNECT");
    };
    assert_eq!(connect.client_id, "dev1");
    assert_eq!(connect.protocol_name, "MQTT");
    assert_eq!(connect.protocol_level, 4);
    assert!(!connect.clean_session, "SDKs connect with clean session 0 (spec file §4.1)");
    assert_eq!(connect.keep_alive, 120);
    let username = connect.username.unwrap();
    assert!(username.starts_with("localhost/dev1/?api-version=2021-04-12&DeviceClientType="));
    let token = SasToken::parse(core::str::from_utf8(&connect.password.unwrap()).unwrap()).unwrap();
    assert_eq!(token.audience(), "localhost/devices/dev1");
    token.verify(&[KEY], pair.now, Duration::ZERO).unwrap();
    assert_eq!(token.expiry_time(), pair.now + Duration::from_secs(3600));
}

#[test]
fn nothing_but_connect_goes_out_before_the_connack() {
    let mut pair = Pair::new(HubConfig::default());
    pair.hub_down = true;
    let d = pair.add_device("dev1", |_| {});
    for n in 0..5u8 {
        pair.send_telemetry(d, Message::new(alloc::vec![n])).unwrap();
    }
    // Drive the device by hand to see what it writes before any answer.
    let now = pair.now;
    let dev = &mut pair.devices[d].device;
    dev.handle_timeout(now + Duration::from_secs(120));
    assert_eq!(dev.poll_transmit(), Some(Transmit::Connect));
    dev.handle_connected(now + Duration::from_secs(120));
    let Some(Transmit::Send(bytes)) = dev.poll_transmit() else { panic!("no CONNECT") };
    let packets = decode_all(&bytes);
    assert!(matches!(packets.as_slice(), [Packet::Connect(_)]), "{packets:?}");
    assert_eq!(dev.poll_transmit(), None, "nothing else before CONNACK");
}

#[test]
fn telemetry_queued_offline_goes_out_after_connack_within_the_window() {
    let mut pair = Pair::new(HubConfig::default());
    pair.hub_down = true;
    let d = pair.add_device("dev1", |c| c.max_in_flight = 2);
    let ids: Vec<_> =
        (0..5u8).map(|n| pair.send_telemetry(d, Message::new(alloc::vec![n])).unwrap()).collect();
    pair.hub_down = false;
    pair.hold_stores = true;
    pair.advance(Duration::from_secs(5));
    let publishes = |pair: &Pair| {
        pair.devices[d].packets_to_hub().iter().filter(|p| matches!(p, Packet::Publish(_))).count()
    };
    assert_eq!(publishes(&pair), 2, "never more in flight than the window");
    pair.release_stores();
    pair.release_stores();
    pair.release_stores();
    assert_eq!(acks(&pair.devices[d].events), ids);
    assert_eq!(pair.stored_bodies("dev1"), (0..5u8).map(|n| alloc::vec![n]).collect::<Vec<_>>());
}

#[test]
fn the_queue_bound_refuses_telemetry_beyond_it() {
    let mut pair = Pair::new(HubConfig::default());
    pair.hub_down = true;
    let d = pair.add_device("dev1", |c| c.max_queued = 3);
    for _ in 0..3 {
        pair.send_telemetry(d, Message::new(&b"x"[..])).unwrap();
    }
    assert_eq!(
        pair.send_telemetry(d, Message::new(&b"x"[..])),
        Err(SendError::QueueFull { capacity: 3 })
    );
}

#[test]
fn mqtt_4_4_0_1_unacknowledged_publishes_are_resent_with_dup_after_reconnect() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    pair.hold_stores = true;
    let ids: Vec<_> =
        (0..3u8).map(|n| pair.send_telemetry(d, Message::new(alloc::vec![n])).unwrap()).collect();
    pair.pending_stores.clear(); // the hub lost them with its connection
    pair.break_connection(d);
    pair.hold_stores = false;
    pair.advance(Duration::from_secs(2));
    let publishes: Vec<_> = pair.devices[d]
        .packets_to_hub()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(publishes.len(), 6);
    for (first, again) in publishes[..3].iter().zip(&publishes[3..]) {
        assert!(!first.dup && again.dup, "[MQTT-3.3.1-1] DUP on the resend");
        assert_eq!(first.packet_id, again.packet_id, "same packet identifier");
        assert_eq!(first.payload, again.payload);
    }
    assert_eq!(acks(&pair.devices[d].events), ids);
    assert_eq!(pair.stored_bodies("dev1").len(), 3);
}

#[test]
fn keep_alive_pings_a_quiet_connection_and_the_hub_keeps_it() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| {
        c.keep_alive = Duration::from_secs(60);
        c.token_lifetime = Duration::from_secs(24 * 3600);
    });
    pair.advance(Duration::from_secs(3600));
    let pings =
        pair.devices[d].packets_to_hub().iter().filter(|p| matches!(p, Packet::PingReq)).count();
    assert_eq!(pings, 60, "one PINGREQ a minute for an hour");
    let events = &pair.devices[d].events;
    assert!(!events.iter().any(|e| matches!(e, DeviceEvent::Disconnected { .. })), "{events:?}");
}

#[test]
fn a_missing_pingresp_declares_the_connection_dead_and_reconnects() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| {
        c.keep_alive = Duration::from_secs(60);
        c.response_timeout = Duration::from_secs(10);
    });
    pair.drive();
    pair.blackhole = true;
    pair.advance(Duration::from_secs(70));
    assert!(pair.devices[d].events.iter().any(|e| matches!(
        e,
        DeviceEvent::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout,
            reconnect_at: Some(_)
        }
    )));
    pair.blackhole = false;
    pair.advance(Duration::from_secs(120));
    let connects = pair.devices[d]
        .events
        .iter()
        .filter(|e| matches!(e, DeviceEvent::Connected { .. }))
        .count();
    assert_eq!(connects, 2);
}

#[test]
fn the_token_is_renewed_by_reconnecting_before_it_expires() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| c.token_lifetime = Duration::from_secs(3600));
    pair.advance(Duration::from_secs(3 * 3600));
    let renewals = pair.devices[d]
        .events
        .iter()
        .filter(|e| {
            matches!(e, DeviceEvent::Disconnected { reason: DisconnectReason::TokenRenewal, .. })
        })
        .count();
    assert_eq!(renewals, 3, "at 80 % of each hour-long token: 48, 96 and 144 minutes");
    let expired = pair
        .hub_events
        .iter()
        .any(|e| matches!(e, HubEvent::Disconnected { code, .. } if code.code == 401003));
    assert!(!expired, "the hub never had to close an expired token: {:?}", pair.hub_events);
    // Every CONNECT carried a token that was fresh when sent.
    let connects = pair.devices[d]
        .packets_to_hub()
        .into_iter()
        .filter(|p| matches!(p, Packet::Connect(_)))
        .count();
    assert_eq!(connects, 4);
}

#[test]
fn a_fixed_token_is_closed_by_the_hub_at_expiry_and_then_refused() {
    let mut pair = Pair::new(HubConfig::default());
    let token =
        SasToken::sign("localhost/devices/dev1", KEY, pair.now + Duration::from_secs(600), None)
            .unwrap();
    let d = pair.add_device("dev1", |c| {
        c.connection_string.authentication =
            Authentication::SharedAccessSignature(alloc::string::ToString::to_string(&token));
    });
    pair.advance(Duration::from_secs(3600));
    let events = &pair.devices[d].events;
    assert!(matches!(events[0], DeviceEvent::Connected { .. }));
    assert!(matches!(
        events[1],
        DeviceEvent::Disconnected {
            reason: DisconnectReason::TransportClosed,
            reconnect_at: Some(_)
        }
    ));
    assert_eq!(
        events.last(),
        Some(&DeviceEvent::Disconnected {
            reason: DisconnectReason::Refused(ConnectReturnCode::NotAuthorized),
            reconnect_at: None,
        })
    );
}

#[test]
fn reconnects_back_off_exponentially_up_to_the_cap() {
    let mut pair = Pair::new(HubConfig::default());
    pair.hub_down = true;
    let d = pair.add_device("dev1", |_| {});
    pair.advance(Duration::from_secs(600));
    let delays = reconnect_delays(&pair, d);
    assert!(delays.len() >= 9, "{delays:?}");
    for (attempt, delay) in delays.iter().enumerate() {
        let ceiling = (1000u64 << attempt.min(16)).min(60_000);
        assert!((ceiling / 2..=ceiling).contains(delay), "attempt {attempt}: {delay} ms");
    }
    pair.hub_down = false;
    pair.advance(Duration::from_secs(61));
    assert!(matches!(pair.devices[d].events.last(), Some(DeviceEvent::Connected { .. })));
}

#[test]
fn the_same_seed_replays_the_same_session_byte_for_byte() {
    let run = || {
        let mut pair = Pair::new(HubConfig::default());
        pair.hub_down = true;
        let d = pair.add_device("dev1", |c| c.seed = 42);
        pair.advance(Duration::from_secs(100));
        pair.hub_down = false;
        pair.send_telemetry(d, Message::new(&b"x"[..])).unwrap();
        pair.advance(Duration::from_secs(100));
        (reconnect_delays(&pair, d), pair.devices[d].wire_to_hub.clone())
    };
    assert_eq!(run(), run());
}

#[test]
fn reject_and_abandon_are_refused_over_mqtt() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let lock = pair.c2d_received(d)[0].lock_token.unwrap();
    for disposition in [Disposition::Reject, Disposition::Abandon] {
        assert_eq!(
            pair.settle(d, &lock, disposition),
            Err(DispositionError::Unsupported { protocol: Protocol::Mqtt, disposition })
        );
    }
    // The message is still the device's to complete.
    pair.settle(d, &lock, Disposition::Complete).unwrap();
    assert_eq!(
        pair.settle(d, &lock, Disposition::Complete),
        Err(DispositionError::UnknownLockToken(lock))
    );
}

fn pubacks_sent(pair: &Pair, d: usize) -> Vec<crate::mqtt::PacketId> {
    pair.devices[d]
        .packets_to_hub()
        .into_iter()
        .filter_map(|p| match p {
            Packet::PubAck(id) => Some(id),
            _ => None,
        })
        .collect()
}

#[test]
fn mqtt_4_6_0_2_c2d_pubacks_follow_arrival_order_whatever_order_the_application_completes_in() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    for body in [&b"1"[..], b"2", b"3"] {
        pair.send_c2d("dev1", Message::new(body)).unwrap();
    }
    let received = pair.c2d_received(d);
    let locks: Vec<_> = received.iter().map(|m| m.lock_token.unwrap()).collect();
    let ids: Vec<_> = locks.iter().map(|l| l.packet_id().unwrap()).collect();
    assert_eq!(received.len(), 3);
    pair.settle(d, &locks[2], Disposition::Complete).unwrap();
    pair.settle(d, &locks[1], Disposition::Complete).unwrap();
    pair.drive();
    assert_eq!(pubacks_sent(&pair, d), [], "the first PUBLISH is not yet acknowledged");
    assert_eq!(
        pair.settle(d, &locks[2], Disposition::Complete),
        Err(DispositionError::UnknownLockToken(locks[2])),
        "completed once is enough, even while its PUBACK waits"
    );
    pair.settle(d, &locks[0], Disposition::Complete).unwrap();
    pair.drive();
    assert_eq!(pubacks_sent(&pair, d), ids, "PUBACKs in the order the PUBLISHes arrived");
    let completed = pair.hub_events.iter().filter(
        |e| matches!(e, HubEvent::C2dSettled(s) if s.outcome == crate::hub::Outcome::Completed),
    );
    assert_eq!(completed.count(), 3);
}

#[test]
fn mqtt_4_6_0_2_a_c2d_message_held_by_the_application_holds_later_pubacks_until_the_connection_ends()
 {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    pair.send_c2d("dev1", Message::new(&b"held"[..])).unwrap();
    pair.send_c2d("dev1", Message::new(&b"done"[..])).unwrap();
    let locks: Vec<_> = pair.c2d_received(d).iter().map(|m| m.lock_token.unwrap()).collect();
    pair.settle(d, &locks[1], Disposition::Complete).unwrap();
    pair.drive();
    assert_eq!(pubacks_sent(&pair, d), []);
    // On the next connection the hub sends both again: the completed one is
    // acknowledged behind the held one, in the new arrival order.
    pair.break_connection(d);
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.c2d_received(d).len(), 2, "nothing shown twice");
    assert_eq!(pubacks_sent(&pair, d), []);
    pair.settle(d, &locks[0], Disposition::Complete).unwrap();
    pair.drive();
    let ids: Vec<_> = locks.iter().map(|l| l.packet_id().unwrap()).collect();
    assert_eq!(pubacks_sent(&pair, d), ids);
}

#[test]
fn c2d_completed_while_offline_is_acknowledged_when_the_hub_resends_it() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let lock = pair.c2d_received(d)[0].lock_token.unwrap();
    pair.break_connection(d);
    pair.settle(d, &lock, Disposition::Complete).unwrap();
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.c2d_received(d).len(), 1, "not shown to the application twice");
    assert!(pair.hub_events.iter().any(|e| matches!(e, HubEvent::C2dSettled(s)
        if s.outcome == crate::hub::Outcome::Completed)));
    let resent = pair.devices[d]
        .packets_from_hub()
        .into_iter()
        .filter(|p| matches!(p, Packet::Publish(p) if p.dup && p.qos == QoS::AtLeastOnce));
    assert_eq!(resent.count(), 1, "[MQTT-4.4.0-1] the hub resent it with DUP");
}

#[test]
fn a_connection_string_no_connect_can_carry_is_a_configuration_error() {
    let mut config = crate::device::DeviceConfig::new(Pair::connection_string("dev1"));
    config.connection_string.host_name = "a\0b".into();
    assert!(matches!(
        crate::device::Device::new(crate::testing::START, config),
        Err(crate::device::ConfigError::Connect(_))
    ));
    let mut config = crate::device::DeviceConfig::new(Pair::connection_string("dev1"));
    config.connection_string.authentication = Authentication::SharedAccessKey("not base64!".into());
    assert!(matches!(
        crate::device::Device::new(crate::testing::START, config),
        Err(crate::device::ConfigError::InvalidKey)
    ));
}
