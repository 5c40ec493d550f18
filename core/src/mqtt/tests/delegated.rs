//! The hub's MQTT side under [`Authentication::Delegated`]: a field gateway's
//! downstream, where the token is judged upstream and the hub waits for the answer.

use alloc::string::String;
use alloc::vec;

use crate::hub::{AuthRequest, Authentication, HubConfig, HubEvent};
use crate::iothub::{ErrorCode, Identity, Message};
use crate::mqtt::{ConnAck, ConnectReturnCode, Packet, QoS};
use crate::testing::Pair;
use crate::time::Duration;

fn delegated() -> Pair {
    Pair::new(HubConfig { authentication: Authentication::Delegated, ..HubConfig::default() })
}

fn connack(code: ConnectReturnCode) -> Packet {
    Packet::ConnAck(ConnAck { session_present: false, code })
}

/// The one authentication the hub asked for.
fn requested(pair: &Pair) -> (AuthRequest, Identity, String, String) {
    let asked: vec::Vec<_> = pair
        .hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::AuthenticationRequested { request, identity, token, host_name, .. } => {
                Some((*request, identity.clone(), token.clone(), host_name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{:?}", pair.hub_events);
    asked.into_iter().next().unwrap()
}

/// A raw client of an unregistered `dev1` that sent its CONNECT to a delegating hub.
fn waiting() -> (Pair, usize, AuthRequest) {
    let mut pair = delegated();
    let connect = pair.connect_packet("dev1");
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    let (request, ..) = requested(&pair);
    (pair, r, request)
}

#[test]
fn delegated_connect_asks_the_runtime_with_the_token_and_waits_without_connack() {
    let mut pair = delegated();
    let connect = pair.connect_packet("dev1");
    let sent_token = String::from_utf8(connect.password.clone().unwrap().to_vec()).unwrap();
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    let (_, identity, token, host_name) = requested(&pair);
    assert_eq!(identity, Identity::device("dev1"));
    assert_eq!(token, sent_token);
    assert_eq!(host_name, "localhost");
    assert!(pair.raw[r].packets().is_empty());
    assert!(!pair.raw[r].closed_by_hub);
}

#[test]
fn delegated_ok_accepts_an_unregistered_device_and_gives_it_a_c2d_queue() {
    let (mut pair, r, request) = waiting();
    let now = pair.now;
    assert!(pair.hub.authenticated(now, request, Ok(())));
    pair.drive();
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::Accepted)]);
    assert!(pair.hub_events.iter().any(|e| matches!(e, HubEvent::Connected { .. })));
    // Its state exists: the service side can queue for it.
    let sequence = pair.hub.send_c2d(now, "dev1", Message::new(&b"down"[..]));
    assert_eq!(sequence, Ok(1));
}

#[test]
fn delegated_401_and_404_refuse_with_connack_5_and_close() {
    for code in [ErrorCode::IOT_HUB_UNAUTHORIZED, ErrorCode::DEVICE_NOT_FOUND] {
        let (mut pair, r, request) = waiting();
        let now = pair.now;
        assert!(pair.hub.authenticated(now, request, Err(code)));
        pair.drive();
        assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::NotAuthorized)]);
        assert!(pair.raw[r].closed_by_hub);
        let logged = pair.hub_events.iter().find_map(|e| match e {
            HubEvent::Refused { code, .. } => Some(*code),
            _ => None,
        });
        assert_eq!(logged, Some(code));
    }
}

#[test]
fn delegated_connect_timeout_applies_while_waiting_and_a_late_answer_is_ignored() {
    let (mut pair, r, request) = waiting();
    pair.advance(Duration::from_secs(31));
    assert!(pair.raw[r].packets().is_empty());
    assert!(pair.raw[r].closed_by_hub);
    let now = pair.now;
    assert!(!pair.hub.authenticated(now, request, Ok(())));
}

#[test]
fn delegated_answer_after_the_client_closed_is_ignored() {
    let (mut pair, r, request) = waiting();
    pair.raw_close(r);
    let now = pair.now;
    assert!(!pair.hub.authenticated(now, request, Ok(())));
    // Answered once only.
    let (mut pair, _, request) = waiting();
    let now = pair.now;
    assert!(pair.hub.authenticated(now, request, Ok(())));
    assert!(!pair.hub.authenticated(now, request, Ok(())));
}

#[test]
fn delegated_packets_sent_before_the_connack_are_read_after_it() {
    let (mut pair, r, request) = waiting();
    let publish = Packet::Publish(crate::mqtt::Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: crate::mqtt::TopicName::new("devices/dev1/messages/events/").unwrap(),
        packet_id: crate::mqtt::PacketId::new(7),
        payload: bytes::Bytes::from_static(b"early"),
    });
    pair.raw_send_packet(r, &publish);
    assert!(pair.stored.is_empty());
    let now = pair.now;
    pair.hub.authenticated(now, request, Ok(()));
    pair.drive();
    assert_eq!(pair.stored.len(), 1);
    let packets = pair.raw[r].packets();
    assert_eq!(packets.first(), Some(&connack(ConnectReturnCode::Accepted)));
    assert!(matches!(packets.get(1), Some(Packet::PubAck(id)) if id.get() == 7), "{packets:?}");
}

#[test]
fn delegated_expired_or_malformed_token_is_refused_without_asking() {
    let mut pair = delegated();
    let mut connect = pair.connect_packet("dev1");
    connect.password = Some(bytes::Bytes::from_static(b"not a token"));
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::NotAuthorized)]);
    assert!(!pair.hub_events.iter().any(|e| matches!(e, HubEvent::AuthenticationRequested { .. })));
}

#[test]
fn delegated_connect_with_another_devices_token_is_refused_without_asking() {
    let mut pair = delegated();
    let mut connect = pair.connect_packet("dev1");
    connect.password = pair.connect_packet("dev2").password;
    let r = pair.raw_connect();
    pair.raw_send_packet(r, &Packet::Connect(connect));
    assert!(
        !pair.hub_events.iter().any(|e| matches!(e, HubEvent::AuthenticationRequested { .. })),
        "{:?}",
        pair.hub_events
    );
    assert_eq!(pair.raw[r].packets(), [connack(ConnectReturnCode::NotAuthorized)]);
    assert!(pair.raw[r].closed_by_hub);
}
