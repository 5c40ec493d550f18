//! The hub's side of MQTT, driven by raw clients: every CONNACK code, the topic
//! rules, keep-alive, sessions and bad input.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::hub::{HubConfig, HubEvent, Outcome};
use crate::iothub::{Message, SasToken};
use crate::mqtt::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, TopicName, Unsubscribe, Will,
};
use crate::sansio::Endpoint;
use crate::testing::{KEY, Pair};
use crate::time::Duration;
use crate::utf8::Utf8Bytes;

fn name(topic: &str) -> TopicName {
    TopicName::new(topic).unwrap()
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn connack(code: ConnectReturnCode) -> Packet {
    Packet::ConnAck(ConnAck { session_present: false, code })
}

fn telemetry(device: &str, qos: QoS, id: u16, body: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: name(&alloc::format!("devices/{device}/messages/events/%24.mid=m{id}&k=v")),
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(id)),
        payload: Bytes::from_static(body),
    })
}

fn subscribe(id: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe { packet_id: pid(id), filters: vec![(filter.into(), qos)] })
}

/// A hub with `dev1` registered and a raw client that sent `connect`.
fn connect_with(edit: impl FnOnce(&mut Connect)) -> (Pair, usize) {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    let mut connect = pair.connect_packet("dev1");
    edit(&mut connect);
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    (pair, r)
}

fn connected() -> (Pair, usize) {
    let (pair, r) = connect_with(|_| {});
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::Accepted)]);
    (pair, r)
}

fn refused_code(pair: &Pair) -> Option<u32> {
    pair.hub_events.iter().find_map(|e| match e {
        HubEvent::Refused { code, .. } => Some(code.code),
        _ => None,
    })
}

/// Asserts a CONNECT was answered with `code`, the connection closed, and the
/// refusal logged with IoT Hub's `error`.
fn assert_refused(edit: impl FnOnce(&mut Connect), code: ConnectReturnCode, error: u32) {
    let (pair, r) = connect_with(edit);
    // [MQTT-3.2.2-4]: Session Present is 0 with a refusal; [MQTT-3.2.2-5]: then close.
    assert_eq!(pair.raw[r].packets(), [connack(code)]);
    assert!(pair.raw[r].closed_by_hub);
    assert_eq!(refused_code(&pair), Some(error), "{:?}", pair.hub_events);
}

fn token(resource: &str, key: &str, valid_for: Duration, pair_now: crate::Timestamp) -> Bytes {
    let t = SasToken::sign(resource, key, pair_now + valid_for, None).unwrap();
    Bytes::from(alloc::string::ToString::to_string(&t).into_bytes())
}

#[test]
fn mqtt_3_1_0_1_the_first_packet_must_be_connect() {
    let mut pair = Pair::new(HubConfig::default());
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::PingReq);
    assert!(pair.raw[r].packets().is_empty());
    assert!(pair.raw[r].closed_by_hub);
    assert_eq!(refused_code(&pair), Some(400004));
}

#[test]
fn mqtt_3_1_0_2_a_second_connect_closes_the_connection() {
    let (mut pair, r) = connected();
    let again = pair.connect_packet("dev1");
    pair.raw_send_packet(r, &Packet::Connect(again));
    assert!(pair.raw[r].closed_by_hub);
}

#[test]
fn mqtt_3_1_2_1_another_protocol_name_is_closed_without_connack() {
    let (pair, r) = connect_with(|c| c.protocol_name = Utf8Bytes::from_static("MQIsdp"));
    assert!(pair.raw[r].packets().is_empty());
    assert!(pair.raw[r].closed_by_hub);
}

#[test]
fn mqtt_3_1_2_2_another_protocol_level_gets_connack_1() {
    assert_refused(
        |c| c.protocol_level = 5,
        ConnectReturnCode::UnacceptableProtocolVersion,
        400004,
    );
}

#[test]
fn mqtt_3_1_3_9_an_empty_client_id_gets_connack_2() {
    assert_refused(|c| c.client_id = "".into(), ConnectReturnCode::IdentifierRejected, 400004);
}

#[test]
fn a_client_id_other_than_the_username_identity_gets_connack_2() {
    assert_refused(|c| c.client_id = "dev2".into(), ConnectReturnCode::IdentifierRejected, 400004);
}

#[test]
fn no_username_gets_connack_4() {
    assert_refused(
        |c| {
            c.username = None;
            c.password = None;
        },
        ConnectReturnCode::BadUsernameOrPassword,
        401003,
    );
}

#[test]
fn a_username_iot_hub_cannot_read_gets_connack_4() {
    assert_refused(
        |c| c.username = Some("dev1".into()),
        ConnectReturnCode::BadUsernameOrPassword,
        401003,
    );
}

#[test]
fn no_password_gets_connack_5() {
    assert_refused(|c| c.password = None, ConnectReturnCode::NotAuthorized, 401003);
}

#[test]
fn a_token_signed_with_another_key_gets_connack_5() {
    let other = "Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s=";
    let now = crate::testing::START;
    assert_refused(
        |c| c.password = Some(token("localhost/devices/dev1", other, Duration::from_secs(60), now)),
        ConnectReturnCode::NotAuthorized,
        401003,
    );
}

#[test]
fn an_expired_token_gets_connack_5() {
    let past = crate::testing::START.saturating_sub(Duration::from_secs(3600));
    assert_refused(
        |c| c.password = Some(token("localhost/devices/dev1", KEY, Duration::ZERO, past)),
        ConnectReturnCode::NotAuthorized,
        401003,
    );
}

#[test]
fn a_token_for_another_device_gets_connack_5() {
    let now = crate::testing::START;
    assert_refused(
        |c| c.password = Some(token("localhost/devices/dev2", KEY, Duration::from_secs(60), now)),
        ConnectReturnCode::NotAuthorized,
        401003,
    );
}

#[test]
fn an_unknown_device_gets_connack_5() {
    let mut pair = Pair::new(HubConfig::default());
    let connect = pair.connect_packet("ghost");
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::NotAuthorized)]);
    assert_eq!(refused_code(&pair), Some(404001));
}

#[test]
fn a_disabled_device_gets_connack_3() {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    pair.hub.registry_mut().get_mut("dev1").unwrap().enabled = false;
    let connect = pair.connect_packet("dev1");
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::ServerUnavailable)]);
    assert!(pair.raw[r].closed_by_hub);
}

#[test]
fn a_module_identity_gets_connack_5() {
    assert_refused(
        |c| {
            c.client_id = "dev1/mod1".into();
            c.username = Some("localhost/dev1/mod1/?api-version=2021-04-12".into());
        },
        ConnectReturnCode::NotAuthorized,
        401003,
    );
}

#[test]
fn a_will_to_another_topic_gets_connack_5() {
    assert_refused(
        |c| {
            c.will = Some(Will {
                topic: name("devices/dev2/messages/events/"),
                payload: Bytes::new(),
                qos: QoS::AtMostOnce,
                retain: false,
            })
        },
        ConnectReturnCode::NotAuthorized,
        400003,
    );
}

#[test]
fn tv9_every_device_username_form_is_accepted() {
    let forms = [
        "myhub.azure-devices.net/device1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.3%20(node%20v18.0.0%3B%20Linux%3B%20x64)",
        "myhub.azure-devices.net/device1/api-version=2016-11-14&DeviceClientType=iothubclient%2f1.1.27%20(Linux%3b%20armv7l)",
        "myhub.azure-devices.net/device1",
    ];
    for username in forms {
        let mut pair = Pair::new(HubConfig {
            host_names: vec![String::from("myhub.azure-devices.net")],
            ..HubConfig::default()
        });
        pair.register("device1");
        let now = pair.now;
        let mut connect = pair.connect_packet("device1");
        connect.username = Some(username.into());
        connect.password = Some(token(
            "myhub.azure-devices.net/devices/device1",
            KEY,
            Duration::from_secs(60),
            now,
        ));
        let r = pair.raw_connect();
        pair.raw_send_packet(r, &Packet::Connect(connect));
        assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::Accepted)], "{username}");
    }
}

#[test]
fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &Packet::PingReq);
    assert_eq!(pair.raw[r].packets()[1..], [Packet::PingResp]);
}

#[test]
fn telemetry_is_acknowledged_only_once_stored() {
    let (mut pair, r) = connected();
    pair.hold_stores = true;
    pair.raw_send_packet(r, &telemetry("dev1", QoS::AtLeastOnce, 7, b"t"));
    assert_eq!(pair.raw[r].packets().len(), 1, "no PUBACK before the store");
    pair.release_stores();
    assert_eq!(pair.raw[r].packets()[1..], [Packet::PubAck(pid(7))]);
    let stored: Vec<_> = pair.stored.device("dev1").collect();
    assert_eq!(stored[0].message.message_id.as_deref(), Some("m7"));
    assert_eq!(stored[0].message.properties.get("k"), Some(Some("v")));
}

#[test]
fn mqtt_4_6_0_2_pubacks_follow_arrival_order_whatever_order_stores_finish_in() {
    let (mut pair, r) = connected();
    pair.hold_stores = true;
    for n in 1..=3 {
        pair.raw_send_packet(r, &telemetry("dev1", QoS::AtLeastOnce, n, b"t"));
    }
    let mut held = core::mem::take(&mut pair.pending_stores);
    held.reverse();
    for e in held {
        if let HubEvent::StoreTelemetry { ticket, .. } = e {
            let now = pair.now;
            pair.hub.telemetry_stored(now, ticket);
            pair.drive();
        }
    }
    assert_eq!(
        pair.raw[r].packets()[1..],
        [Packet::PubAck(pid(1)), Packet::PubAck(pid(2)), Packet::PubAck(pid(3))]
    );
}

#[test]
fn a_resent_publish_whose_store_is_under_way_is_stored_once() {
    let (mut pair, r) = connected();
    pair.hold_stores = true;
    pair.raw_send_packet(r, &telemetry("dev1", QoS::AtLeastOnce, 1, b"t"));
    let Packet::Publish(mut again) = telemetry("dev1", QoS::AtLeastOnce, 1, b"t") else {
        unreachable!()
    };
    again.dup = true;
    pair.raw_send_packet(r, &Packet::Publish(again));
    assert_eq!(pair.pending_stores.len(), 1);
    pair.release_stores();
    assert_eq!(pair.raw[r].packets()[1..], [Packet::PubAck(pid(1))]);
}

#[test]
fn qos_0_telemetry_is_stored_without_puback() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &telemetry("dev1", QoS::AtMostOnce, 0, b"t"));
    assert_eq!(pair.stored_bodies("dev1"), [Bytes::from_static(b"t")]);
    assert_eq!(pair.raw[r].packets().len(), 1);
}

#[test]
fn a_retained_publish_is_stored_with_mqtt_retain() {
    let (mut pair, r) = connected();
    let Packet::Publish(mut p) = telemetry("dev1", QoS::AtLeastOnce, 1, b"t") else {
        unreachable!()
    };
    p.retain = true;
    pair.raw_send_packet(r, &Packet::Publish(p));
    let stored: Vec<_> = pair.stored.device("dev1").collect();
    assert_eq!(stored[0].message.properties.get("mqtt-retain"), Some(Some("true")));
}

#[test]
fn publishing_to_another_devices_topic_closes_the_connection() {
    let (mut pair, r) = connected();
    pair.register("dev2");
    pair.raw_send_packet(r, &telemetry("dev2", QoS::AtLeastOnce, 1, b"t"));
    assert!(pair.raw[r].closed_by_hub);
    assert_eq!(refused_code(&pair), Some(400003));
    assert!(pair.stored.is_empty());
}

#[test]
fn publishing_to_an_unknown_topic_closes_the_connection() {
    let (mut pair, r) = connected();
    let p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: name("sensors/temp"),
        packet_id: None,
        payload: Bytes::new(),
    };
    pair.raw_send_packet(r, &Packet::Publish(p));
    assert!(pair.raw[r].closed_by_hub);
}

#[test]
fn a_qos_2_publish_closes_the_connection() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &telemetry("dev1", QoS::ExactlyOnce, 1, b"t"));
    assert!(pair.raw[r].closed_by_hub);
    assert!(pair.stored.is_empty());
}

#[test]
fn both_c2d_filter_forms_are_granted_and_qos_2_is_granted_as_1() {
    for (filter, qos) in [
        ("devices/dev1/messages/devicebound/#", QoS::AtLeastOnce),
        ("devices/+/messages/devicebound/#", QoS::AtLeastOnce),
        ("devices/dev1/messages/devicebound/#", QoS::ExactlyOnce),
    ] {
        let (mut pair, r) = connected();
        pair.raw_send_packet(r, &subscribe(3, filter, qos));
        assert_eq!(
            pair.raw[r].packets()[1..],
            [Packet::SubAck(SubAck {
                packet_id: pid(3),
                return_codes: vec![SubscribeReturnCode::Success(QoS::AtLeastOnce)],
            })],
            "{filter} at {qos:?}"
        );
    }
}

#[test]
fn subscribing_to_another_topic_closes_the_connection() {
    for filter in [
        "devices/dev2/messages/devicebound/#",
        "#",
        "$iothub/#",
        "$iothub/twin/PATCH/properties/reported/#",
        "$iothub/methods/res/#",
    ] {
        let (mut pair, r) = connected();
        pair.raw_send_packet(r, &subscribe(3, filter, QoS::AtLeastOnce));
        assert!(pair.raw[r].closed_by_hub, "{filter}");
        assert_eq!(pair.raw[r].packets().len(), 1, "no SUBACK for {filter}");
    }
}

#[test]
fn mqtt_3_10_4_4_unsubscribe_gets_unsuback_and_stops_c2d() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    let unsubscribe = Unsubscribe {
        packet_id: pid(2),
        filters: vec!["devices/dev1/messages/devicebound/#".into()],
    };
    pair.raw_send_packet(r, &Packet::Unsubscribe(unsubscribe));
    assert_eq!(pair.raw[r].packets().last(), Some(&Packet::UnsubAck(pid(2))));
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    assert_eq!(pair.raw[r].packets().len(), 3, "nothing delivered after UNSUBSCRIBE");
}

#[test]
fn c2d_goes_out_at_qos_1_with_properties_and_the_puback_completes_it() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    let mut m = Message::new(&b"hello"[..]);
    m.message_id = Some("c1".into());
    m.properties.set("color", "blue");
    pair.send_c2d("dev1", m).unwrap();
    let Some(Packet::Publish(p)) = pair.raw[r].packets().pop() else { panic!("no C2D") };
    assert_eq!(p.qos, QoS::AtLeastOnce);
    // The hub stamps `to` and the expiry of its default time to live (1 h).
    assert_eq!(
        p.topic,
        "devices/dev1/messages/devicebound/%24.mid=c1\
         &%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound\
         &%24.exp=2023-11-14T23%3A13%3A20.000Z&color=blue"
    );
    assert!(!pair.hub_events.iter().any(|e| matches!(e, HubEvent::C2dSettled(_))));
    pair.raw_send_packet(r, &Packet::PubAck(p.packet_id.unwrap()));
    assert!(pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::C2dSettled(s) if s.outcome == Outcome::Completed)));
}

#[test]
fn a_qos_0_subscription_gets_c2d_at_qos_0_completed_on_sending() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtMostOnce));
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let Some(Packet::Publish(p)) = pair.raw[r].packets().pop() else { panic!("no C2D") };
    assert_eq!((p.qos, p.packet_id), (QoS::AtMostOnce, None));
    assert!(pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::C2dSettled(s) if s.outcome == Outcome::Completed)));
}

#[test]
fn mqtt_3_1_2_24_a_client_silent_for_one_and_a_half_keep_alives_is_dropped() {
    let (mut pair, r) = connected();
    pair.advance(Duration::from_secs(89));
    assert!(!pair.raw[r].closed_by_hub);
    pair.raw_send_packet(r, &Packet::PingReq);
    pair.advance(Duration::from_secs(89));
    assert!(!pair.raw[r].closed_by_hub, "any packet restarts the timer");
    pair.advance(Duration::from_secs(1));
    assert!(pair.raw[r].closed_by_hub);
    assert!(pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::Disconnected { code, .. } if code.code == 404104)));
}

#[test]
fn the_keep_alive_timeout_is_capped_at_1767_seconds() {
    let (mut pair, r) = connect_with(|c| c.keep_alive = 1200);
    pair.advance(Duration::from_secs(1766));
    assert!(!pair.raw[r].closed_by_hub);
    pair.advance(Duration::from_secs(1));
    assert!(pair.raw[r].closed_by_hub);
}

#[test]
fn the_hub_disconnects_a_device_when_its_token_expires() {
    let now = crate::testing::START;
    let (mut pair, r) = connect_with(|c| {
        c.keep_alive = 0;
        c.password = Some(token("localhost/devices/dev1", KEY, Duration::from_secs(600), now));
    });
    // 600 s of validity plus the 5-minute clock-skew allowance.
    pair.advance(Duration::from_secs(899));
    assert!(!pair.raw[r].closed_by_hub);
    pair.advance(Duration::from_secs(1));
    assert!(pair.raw[r].closed_by_hub);
    assert!(pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::Disconnected { code, .. } if code.code == 401003)));
}

#[test]
fn a_new_connection_for_the_device_evicts_the_old_one() {
    let (mut pair, first) = connected();
    let connect = pair.connect_packet("dev1");
    let second = pair.raw_connect();
    pair.raw_send_packet(second, &Packet::Connect(connect));
    assert!(pair.raw[first].closed_by_hub);
    assert!(!pair.raw[second].closed_by_hub);
    assert_eq!(refused_code(&pair), Some(400027));
}

#[test]
fn clean_session_0_keeps_the_subscription_and_queued_c2d_across_reconnects() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.raw_send_packet(r, &Packet::Disconnect);
    pair.send_c2d("dev1", Message::new(&b"while away"[..])).unwrap();
    let connect = pair.connect_packet("dev1");
    let again = pair.raw_connect();
    pair.raw_send_packet(again, &Packet::Connect(connect));
    let packets = pair.raw[again].packets();
    // [MQTT-3.2.2-2]: session present.
    assert_eq!(
        packets[0],
        Packet::ConnAck(ConnAck { session_present: true, code: ConnectReturnCode::Accepted })
    );
    assert!(
        matches!(&packets[1], Packet::Publish(p) if p.payload == "while away"),
        "delivered without a new SUBSCRIBE: {packets:?}"
    );
}

#[test]
fn mqtt_3_1_2_6_clean_session_1_starts_empty() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.raw_send_packet(r, &Packet::Disconnect);
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let mut connect = pair.connect_packet("dev1");
    connect.clean_session = true;
    let again = pair.raw_connect();
    pair.raw_send_packet(again, &Packet::Connect(connect));
    // [MQTT-3.2.2-1]: no session present with clean session 1.
    assert_eq!(pair.raw[again].packets(), [connack(ConnectReturnCode::Accepted)]);
}

#[test]
fn mqtt_4_4_0_1_unacknowledged_c2d_is_resent_with_dup_and_its_packet_id() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let Some(Packet::Publish(first)) = pair.raw[r].packets().pop() else { panic!() };
    let id = pair.raw[r].connection.unwrap();
    let now = pair.now;
    pair.hub.handle_close(now, id);
    pair.raw[r].connection = None;
    let connect = pair.connect_packet("dev1");
    let again = pair.raw_connect();
    pair.raw_send_packet(again, &Packet::Connect(connect));
    let Some(Packet::Publish(resent)) = pair.raw[again].packets().pop() else { panic!() };
    assert!(resent.dup);
    assert_eq!(resent.packet_id, first.packet_id);
    assert_eq!(resent.payload, first.payload);
}

#[test]
fn mqtt_3_1_2_8_the_will_is_published_as_telemetry_when_the_transport_drops() {
    let will = Will {
        topic: name("devices/dev1/messages/events/"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
    };
    let (mut pair, r) = connect_with(|c| c.will = Some(will));
    let id = pair.raw[r].connection.take().unwrap();
    let now = pair.now;
    pair.hub.handle_close(now, id);
    pair.drive();
    let stored: Vec<_> = pair.stored.device("dev1").collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message.body, "gone");
    assert_eq!(stored[0].message.properties.get("iothub-MessageType"), Some(Some("Will")));
}

#[test]
fn mqtt_3_14_4_3_disconnect_discards_the_will() {
    let will = Will {
        topic: name("devices/dev1/messages/events/"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
    };
    let (mut pair, r) = connect_with(|c| c.will = Some(will));
    pair.raw_send_packet(r, &Packet::Disconnect);
    assert!(pair.raw[r].closed_by_hub);
    assert!(pair.stored.is_empty());
}

#[test]
fn a_truncated_packet_waits_for_the_rest() {
    let (mut pair, r) = connected();
    let bytes = crate::testing::encode(&telemetry("dev1", QoS::AtLeastOnce, 1, b"split"));
    for b in bytes.iter() {
        pair.raw_send(r, &[*b]);
        assert!(!pair.raw[r].closed_by_hub);
    }
    assert_eq!(pair.stored_bodies("dev1"), [Bytes::from_static(b"split")]);
}

/// Sends `bytes` after an acknowledged telemetry message; the hub must close and the
/// acknowledged message must stay stored.
fn assert_closes_and_keeps_what_it_acknowledged(bytes: &[u8]) {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &telemetry("dev1", QoS::AtLeastOnce, 1, b"kept"));
    assert_eq!(pair.raw[r].packets()[1..], [Packet::PubAck(pid(1))]);
    pair.raw_send(r, bytes);
    assert!(pair.raw[r].closed_by_hub, "{bytes:02x?}");
    assert_eq!(pair.stored_bodies("dev1"), [Bytes::from_static(b"kept")]);
}

#[test]
fn bad_input_closes_the_connection_and_loses_nothing_acknowledged() {
    // A remaining length far over the limit (2 GB), with only the header present.
    assert_closes_and_keeps_what_it_acknowledged(&[0x30, 0xff, 0xff, 0xff, 0x7f]);
    // [MQTT-2.2.3]: a remaining length of five bytes.
    assert_closes_and_keeps_what_it_acknowledged(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // [MQTT-2.2.2-2]: PUBACK with reserved flags set.
    assert_closes_and_keeps_what_it_acknowledged(&[0x41, 0x02, 0x00, 0x01]);
    // [MQTT-1.5.3-1]: invalid UTF-8 in a topic name.
    assert_closes_and_keeps_what_it_acknowledged(&[0x30, 0x04, 0x00, 0x02, 0xc3, 0x28]);
    // [MQTT-4.7.3-1]: a zero-length topic name.
    assert_closes_and_keeps_what_it_acknowledged(&[0x30, 0x03, 0x00, 0x00, 0x78]);
    // [MQTT-3.3.1-4]: QoS 3.
    assert_closes_and_keeps_what_it_acknowledged(&[0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]);
}

#[test]
fn server_packets_from_a_client_close_the_connection() {
    for packet in [
        connack(ConnectReturnCode::Accepted),
        Packet::PingResp,
        Packet::UnsubAck(pid(1)),
        Packet::PubRel(pid(1)),
    ] {
        let (mut pair, r) = connected();
        pair.raw_send_packet(r, &packet);
        assert!(pair.raw[r].closed_by_hub, "{packet:?}");
    }
}

#[test]
fn before_connect_only_a_small_packet_is_accepted() {
    let mut pair = Pair::new(HubConfig::default());
    let r = pair.raw_connect();
    // A CONNECT announcing 20 KiB: more than any IoT Hub CONNECT needs.
    pair.raw_send(r, &[0x10, 0x80, 0xa0, 0x01]);
    assert!(pair.raw[r].closed_by_hub);
    assert_eq!(refused_code(&pair), Some(413001));
}

#[test]
fn a_device_cannot_claim_the_hubs_stamps() {
    let (mut pair, r) = connected();
    let p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: name(
            "devices/dev1/messages/events/%24.cdid=dev2&iothub-connection-device-id=dev2\
             &IoTHub-MessageType=Will&iothub-enqueuedtime=0&k=v",
        ),
        packet_id: Some(pid(1)),
        payload: Bytes::from_static(b"t"),
    };
    pair.raw_send_packet(r, &Packet::Publish(p));
    let stored: Vec<_> = pair.stored.device("dev1").collect();
    let properties: Vec<_> = stored[0].message.properties.iter().collect();
    assert_eq!(properties, [("k", Some("v"))]);
    assert_eq!(stored[0].identity.device_id, "dev1");
}

#[test]
fn c2d_properties_too_long_for_a_topic_are_refused_when_sent() {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    let mut m = Message::new(&b"x"[..]);
    // 30 000 bytes that percent-encode to 90 000: within the 64 KiB message limit,
    // beyond what a topic name can carry.
    m.properties.set("k", "/".repeat(30_000));
    let refused = pair.send_c2d("dev1", m);
    assert!(matches!(refused, Err(crate::hub::HubError::PropertiesTooLong { .. })), "{refused:?}");
    assert_eq!(refused.unwrap_err().code().code, 413001);
}

#[test]
fn c2d_for_a_device_never_connected_expires_at_its_time_to_live() {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    let mut m = Message::new(&b"x"[..]);
    m.expiry = Some(pair.now + Duration::from_secs(60));
    m.ack = Some(crate::iothub::Ack::Negative);
    pair.send_c2d("dev1", m).unwrap();
    assert_eq!(pair.hub.poll_timeout(), Some(pair.now + Duration::from_secs(60)));
    pair.advance(Duration::from_secs(59));
    assert!(pair.hub_events.is_empty());
    pair.advance(Duration::from_secs(1));
    assert!(
        pair.hub_events.iter().any(|e| matches!(e,
            HubEvent::C2dSettled(s) if s.outcome == Outcome::Expired && s.feedback.is_some())),
        "{:?}",
        pair.hub_events
    );
    assert_eq!(pair.hub.poll_timeout(), None, "nothing left to wait for");
}

/// The held stores' tickets, in arrival order.
fn held_tickets(pair: &mut Pair) -> Vec<crate::hub::StoreTicket> {
    core::mem::take(&mut pair.pending_stores)
        .into_iter()
        .filter_map(|e| match e {
            HubEvent::StoreTelemetry { ticket, .. } => Some(ticket),
            _ => None,
        })
        .collect()
}

#[test]
fn mqtt_4_3_2_2_telemetry_not_kept_closes_the_connection_without_its_puback() {
    let (mut pair, r) = connected();
    pair.hold_stores = true;
    pair.raw_send_packet(r, &telemetry("dev1", QoS::AtLeastOnce, 7, b"t"));
    let tickets = held_tickets(&mut pair);
    assert_eq!(tickets.len(), 1);
    let now = pair.now;
    pair.hub.telemetry_refused(now, tickets[0], crate::iothub::ErrorCode::THROTTLING);
    pair.drive();
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::Accepted)], "no PUBACK");
    assert!(pair.raw[r].closed_by_hub);
    assert_eq!(refused_code(&pair), Some(429001));
}

#[test]
fn mqtt_1_5_3_2_a_null_character_closes_the_connection() {
    // PUBLISH QoS 0 whose Topic Name "a\0b" holds U+0000.
    assert_closes_and_keeps_what_it_acknowledged(&[0x30, 0x05, 0x00, 0x03, b'a', 0x00, b'b']);
}

#[test]
fn mqtt_3_1_4_1_a_malformed_connect_closes_without_connack() {
    for (flags, what) in [
        (0xC1, "the reserved flag [MQTT-3.1.2-3]"),
        (0xC8, "Will QoS 1 without the Will Flag [MQTT-3.1.2-13]"),
        (0xE0, "Will Retain without the Will Flag [MQTT-3.1.2-15]"),
    ] {
        let mut pair = Pair::new(HubConfig::default());
        pair.register("dev1");
        let mut bytes = crate::testing::encode(&Packet::Connect(pair.connect_packet("dev1")));
        // Fixed header: type, then a Remaining Length of one or two bytes.
        let length_bytes = if bytes[1] & 0x80 == 0 { 1 } else { 2 };
        // Protocol Name (2 + 4 bytes) and Protocol Level (1) come before the flags.
        let flags_at = 1 + length_bytes + 7;
        assert_eq!(bytes[flags_at], 0xC0, "user name and password, clean session 0");
        bytes[flags_at] = flags;
        let r = pair.raw_connect();
        pair.raw_send(r, &bytes);
        assert!(pair.raw[r].packets().is_empty(), "no CONNACK for {what}");
        assert!(pair.raw[r].closed_by_hub, "{what}");
    }
}

#[test]
fn mqtt_3_1_2_12_without_a_will_nothing_is_published_when_the_transport_drops() {
    let (mut pair, r) = connected();
    pair.raw_close(r);
    assert!(pair.stored.is_empty());
    assert!(pair.hub_events.iter().any(|e| matches!(e, HubEvent::Disconnected { .. })));
}

#[test]
fn mqtt_3_1_4_5_packets_after_a_refused_connect_are_not_processed() {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    let mut connect = pair.connect_packet("dev1");
    connect.password = Some(Bytes::from_static(b"not a token"));
    // The CONNECT and a telemetry PUBLISH arrive in one read.
    let mut bytes = crate::testing::encode(&Packet::Connect(connect));
    bytes.extend_from_slice(&crate::testing::encode(&telemetry("dev1", QoS::AtLeastOnce, 1, b"t")));
    let r = pair.raw_connect();
    pair.raw_send(r, &bytes);
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::NotAuthorized)]);
    assert!(pair.raw[r].closed_by_hub);
    assert!(pair.stored.is_empty(), "the PUBLISH after the refused CONNECT was stored");
}

/// The C2D PUBLISHes raw connection `r` received, in order.
fn c2d_publishes(pair: &Pair, r: usize) -> Vec<Publish> {
    pair.raw[r]
        .packets()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn mqtt_3_3_1_9_c2d_goes_out_with_retain_0() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let bytes = &pair.raw[r].received;
    // CONNACK (4 bytes), SUBACK (5 bytes), then the PUBLISH's first byte.
    assert_eq!(bytes[9], 0x32, "PUBLISH, DUP 0, QoS 1, RETAIN 0");
    let publishes = c2d_publishes(&pair, r);
    assert_eq!(publishes.len(), 1);
    assert!(!publishes[0].retain);
}

#[test]
fn mqtt_3_8_4_3_subscribing_again_replaces_the_subscription() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.raw_send_packet(r, &subscribe(2, "devices/dev1/messages/devicebound/#", QoS::AtMostOnce));
    let granted = |id, qos| {
        Packet::SubAck(SubAck {
            packet_id: pid(id),
            return_codes: vec![SubscribeReturnCode::Success(qos)],
        })
    };
    assert_eq!(
        pair.raw[r].packets()[1..],
        [granted(1, QoS::AtLeastOnce), granted(2, QoS::AtMostOnce)]
    );
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let publishes = c2d_publishes(&pair, r);
    assert_eq!(publishes.len(), 1, "one subscription, one delivery");
    assert_eq!((publishes[0].qos, publishes[0].packet_id), (QoS::AtMostOnce, None));
}

#[test]
fn mqtt_3_10_4_3_a_c2d_in_flight_is_completed_after_unsubscribe() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    let Some(Packet::Publish(p)) = pair.raw[r].packets().pop() else { panic!("no C2D") };
    let unsubscribe = Unsubscribe {
        packet_id: pid(2),
        filters: vec!["devices/dev1/messages/devicebound/#".into()],
    };
    pair.raw_send_packet(r, &Packet::Unsubscribe(unsubscribe));
    assert_eq!(pair.raw[r].packets().last(), Some(&Packet::UnsubAck(pid(2))));
    pair.raw_send_packet(r, &Packet::PubAck(p.packet_id.unwrap()));
    assert!(pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::C2dSettled(s) if s.outcome == Outcome::Completed)));
}

#[test]
fn mqtt_3_10_4_5_unsubscribing_filters_not_held_gets_unsuback_and_deletes_nothing() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    // Neither is, character for character, the filter subscribed to.
    let unsubscribe = Unsubscribe {
        packet_id: pid(2),
        filters: vec!["devices/dev1/messages/devicebound/".into(), "$iothub/twin/res/#".into()],
    };
    pair.raw_send_packet(r, &Packet::Unsubscribe(unsubscribe));
    assert_eq!(pair.raw[r].packets().last(), Some(&Packet::UnsubAck(pid(2))));
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    assert_eq!(c2d_publishes(&pair, r).len(), 1, "the subscription is still there");
}

#[test]
fn mqtt_3_10_4_6_one_unsuback_answers_several_filters() {
    let (mut pair, r) = connected();
    let filters = vec![
        ("devices/dev1/messages/devicebound/#".into(), QoS::AtLeastOnce),
        ("$iothub/methods/POST/#".into(), QoS::AtMostOnce),
    ];
    pair.raw_send_packet(r, &Packet::Subscribe(Subscribe { packet_id: pid(1), filters }));
    let unsubscribe = Unsubscribe {
        packet_id: pid(2),
        filters: vec![
            "devices/dev1/messages/devicebound/#".into(),
            "$iothub/methods/POST/#".into(),
        ],
    };
    pair.raw_send_packet(r, &Packet::Unsubscribe(unsubscribe));
    let after_suback = pair.raw[r].packets()[2..].to_vec();
    assert_eq!(after_suback, [Packet::UnsubAck(pid(2))]);
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    assert!(c2d_publishes(&pair, r).is_empty(), "both subscriptions are gone");
}

#[test]
fn mqtt_4_1_0_2_a_clean_session_lasts_as_long_as_its_connection() {
    let (mut pair, r) = connect_with(|c| c.clean_session = true);
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::Accepted)]);
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    pair.advance(Duration::from_secs(30));
    pair.raw_send_packet(r, &Packet::PingReq);
    pair.send_c2d("dev1", Message::new(&b"x"[..])).unwrap();
    assert_eq!(c2d_publishes(&pair, r).len(), 1, "the subscription holds while connected");
}

#[test]
fn mqtt_4_3_2_2_a_packet_id_reused_after_its_puback_is_a_new_message() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &telemetry("dev1", QoS::AtLeastOnce, 1, b"first"));
    let Packet::Publish(mut again) = telemetry("dev1", QoS::AtLeastOnce, 1, b"second") else {
        unreachable!()
    };
    // Even with DUP set: the PUBACK ended the first one's exchange.
    again.dup = true;
    pair.raw_send_packet(r, &Packet::Publish(again));
    assert_eq!(pair.raw[r].packets()[1..], [Packet::PubAck(pid(1)), Packet::PubAck(pid(1))]);
    assert_eq!(
        pair.stored_bodies("dev1"),
        [Bytes::from_static(b"first"), Bytes::from_static(b"second")]
    );
}

#[test]
fn mqtt_4_6_0_1_unacknowledged_c2d_is_resent_in_its_original_order() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    for body in [&b"1"[..], b"2", b"3"] {
        pair.send_c2d("dev1", Message::new(body)).unwrap();
    }
    let first = c2d_publishes(&pair, r);
    assert_eq!(first.len(), 3);
    pair.raw_close(r);
    let connect = pair.connect_packet("dev1");
    let again = pair.raw_connect();
    pair.raw_send_packet(again, &Packet::Connect(connect));
    let resent = c2d_publishes(&pair, again);
    assert_eq!(resent.len(), 3);
    for (before, after) in first.iter().zip(&resent) {
        assert!(!before.dup && after.dup);
        assert_eq!((&before.packet_id, &before.payload), (&after.packet_id, &after.payload));
    }
}

#[test]
fn mqtt_4_6_0_6_c2d_goes_out_in_the_order_it_was_sent() {
    let (mut pair, r) = connected();
    pair.raw_send_packet(r, &subscribe(1, "devices/dev1/messages/devicebound/#", QoS::AtLeastOnce));
    let bodies: Vec<Bytes> = (0..5u8).map(|n| Bytes::from(vec![b'0' + n])).collect();
    for body in &bodies {
        pair.send_c2d("dev1", Message::new(body.clone())).unwrap();
    }
    let sent: Vec<Bytes> = c2d_publishes(&pair, r).into_iter().map(|p| p.payload).collect();
    assert_eq!(sent, bodies);
}
