//! Device twin and direct methods over MQTT, both roles joined by the `Pair`
//! harness (spec file §4.5, §4.6, TV-13), and the hub's answers to raw clients.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::device::{DeviceEvent, RequestError, TwinRequestId};
use crate::hub::{HubConfig, HubError, HubEvent, MethodOutcome};
use crate::iothub::{MethodResponse, Twin, TwinPatch, twin};
use crate::mqtt::{
    Packet, PacketId, Publish, QoS, SubAck, Subscribe, SubscribeReturnCode, TopicName, Unsubscribe,
};
use crate::testing::Pair;
use crate::time::Duration;

fn patch(json: &str) -> TwinPatch {
    TwinPatch::parse(json.as_bytes()).unwrap()
}

/// A pair with `dev1` connected, configured by `configure`.
fn connected(configure: impl FnOnce(&mut crate::device::DeviceConfig)) -> (Pair, usize) {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", configure);
    pair.drive();
    assert!(
        pair.device(d).events.iter().any(|e| matches!(e, DeviceEvent::Connected { .. })),
        "{:?}",
        pair.hub_events
    );
    pair.device(d).take_events();
    (pair, d)
}

fn get_twin(pair: &mut Pair, d: usize) -> TwinRequestId {
    let now = pair.now;
    let id = pair.device(d).device.get_twin(now).unwrap();
    pair.drive();
    id
}

fn patch_reported(pair: &mut Pair, d: usize, json: &str) -> TwinRequestId {
    let now = pair.now;
    let id = pair.device(d).device.patch_reported(now, patch(json)).unwrap();
    pair.drive();
    id
}

/// The PUBLISHes in `packets` as (topic, payload).
fn publishes(packets: Vec<Packet>) -> Vec<(String, Bytes)> {
    packets
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((String::from(p.topic.as_str()), p.payload)),
            _ => None,
        })
        .collect()
}

fn subscribed_filters(packets: &[Packet]) -> Vec<String> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Subscribe(s) => Some(s.filters.iter().map(|(f, _)| String::from(f.as_str()))),
            _ => None,
        })
        .flatten()
        .collect()
}

fn method_results(pair: &Pair) -> Vec<MethodOutcome> {
    pair.hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::MethodResult { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn tv13_get_subscribes_to_responses_first_and_returns_the_empty_twin() {
    let (mut pair, d) = connected(|_| {});
    let id = get_twin(&mut pair, d);
    assert_eq!(id, TwinRequestId(1));
    let events = pair.device(d).take_events();
    assert_eq!(events, [DeviceEvent::Twin { request: id, twin: Twin::default() }]);
    let sent = pair.device(d).packets_to_hub();
    let subscribe_at = sent
        .iter()
        .position(|p| matches!(p, Packet::Subscribe(s) if s.filters[0].0.as_str() == "$iothub/twin/res/#"))
        .expect("subscribed to twin responses");
    let get_at = sent
        .iter()
        .position(
            |p| matches!(p, Packet::Publish(p) if p.topic.as_str() == "$iothub/twin/GET/?$rid=1"),
        )
        .expect("GET sent");
    assert!(subscribe_at < get_at);
    // Twin requests go at QoS 0, as Node and C send them (spec file §4.5).
    assert!(sent.iter().all(|p| !matches!(p, Packet::Publish(p) if p.qos != QoS::AtMostOnce)));
    let answers = publishes(pair.device(d).packets_from_hub());
    assert_eq!(
        answers,
        [(
            String::from("$iothub/twin/res/200/?$rid=1"),
            Bytes::from_static(br#"{"desired":{"$version":1},"reported":{"$version":1}}"#)
        )]
    );
    // One subscription per connection, however many requests.
    get_twin(&mut pair, d);
    let filters = subscribed_filters(&pair.device(d).packets_to_hub());
    assert_eq!(filters.iter().filter(|f| *f == "$iothub/twin/res/#").count(), 1);
}

#[test]
fn tv13_patch_is_answered_with_the_new_version_and_reported_to_the_service() {
    let (mut pair, d) = connected(|_| {});
    get_twin(&mut pair, d);
    pair.device(d).take_events();
    let id = patch_reported(&mut pair, d, r#"{"batteryLevel":60}"#);
    assert_eq!(id, TwinRequestId(2));
    assert_eq!(
        pair.device(d).take_events(),
        [DeviceEvent::ReportedPatched { request: id, version: 2 }]
    );
    let answers = publishes(pair.device(d).packets_from_hub());
    assert_eq!(
        answers.last(),
        Some(&(String::from("$iothub/twin/res/204/?$rid=2&$version=2"), Bytes::new()))
    );
    assert!(pair.hub_events.contains(&HubEvent::ReportedUpdated {
        device_id: "dev1".into(),
        version: 2,
        patch: patch(r#"{"batteryLevel":60}"#),
    }));
    // Versions go up by one per patch, and the twin keeps the merge.
    let id = patch_reported(&mut pair, d, r#"{"batteryLevel":null,"fw":"1.2"}"#);
    assert_eq!(
        pair.device(d).take_events(),
        [DeviceEvent::ReportedPatched { request: id, version: 3 }]
    );
    let twin = pair.hub.twin("dev1").unwrap();
    assert_eq!(twin.reported.version, 3);
    assert_eq!(
        serde_json::Value::Object(twin.reported.properties),
        serde_json::json!({"fw":"1.2"})
    );
}

#[test]
fn a_patch_the_section_cannot_hold_fails_with_the_hubs_413_and_message() {
    let (mut pair, d) = connected(|_| {});
    let half = alloc::format!(r#"{{"a":"{}"}}"#, "x".repeat(twin::MAX_SECTION_SIZE / 2 + 16));
    let other = half.replace("\"a\"", "\"b\"");
    patch_reported(&mut pair, d, &half);
    pair.device(d).take_events();
    let id = patch_reported(&mut pair, d, &other);
    match pair.device(d).take_events().as_slice() {
        [DeviceEvent::TwinRequestFailed { request, status: Some(413), description }] => {
            assert_eq!(*request, id);
            assert!(description.contains("32768"), "{description}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.hub.twin("dev1").unwrap().reported.version, 2);
}

#[test]
fn a_patch_over_32_kib_is_refused_before_sending() {
    let (mut pair, d) = connected(|_| {});
    let big = alloc::format!(r#"{{"a":"{}"}}"#, "x".repeat(twin::MAX_SECTION_SIZE));
    let now = pair.now;
    let refused = pair.device(d).device.patch_reported(now, patch(&big));
    assert!(
        matches!(refused, Err(RequestError::TooLarge { max: twin::MAX_SECTION_SIZE, .. })),
        "{refused:?}"
    );
}

#[test]
fn desired_updates_reach_a_subscribed_device_only() {
    let mut pair = Pair::new(HubConfig::default());
    let d1 = pair.add_device("dev1", |c| c.receive_desired = true);
    let d2 = pair.add_device("dev2", |_| {});
    pair.drive();
    assert!(
        subscribed_filters(&pair.device(d1).packets_to_hub())
            .contains(&String::from("$iothub/twin/PATCH/properties/desired/#"))
    );
    let p = patch(r#"{"telemetrySendFrequency":"5m","route":null}"#);
    let now = pair.now;
    assert_eq!(pair.hub.update_desired(now, "dev1", &p), Ok(2));
    assert_eq!(pair.hub.update_desired(now, "dev2", &p), Ok(2));
    pair.drive();
    let updates: Vec<_> = pair
        .device(d1)
        .events
        .iter()
        .filter(|e| matches!(e, DeviceEvent::DesiredUpdated { .. }))
        .cloned()
        .collect();
    assert_eq!(updates, [DeviceEvent::DesiredUpdated { patch: p.clone(), version: 2 }]);
    let (topic, body) = publishes(pair.device(d1).packets_from_hub()).pop().unwrap();
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, serde_json::json!({"telemetrySendFrequency":"5m","route":null,"$version":2}));
    assert!(publishes(pair.device(d2).packets_from_hub()).is_empty());
    assert!(
        !pair.device(d2).events.iter().any(|e| matches!(e, DeviceEvent::DesiredUpdated { .. }))
    );
}

#[test]
fn an_offline_device_catches_up_with_a_get_after_reconnecting() {
    let (mut pair, d) = connected(|c| c.receive_desired = true);
    pair.hub_down = true;
    pair.break_connection(d);
    let now = pair.now;
    pair.hub.update_desired(now, "dev1", &patch(r#"{"mode":"eco"}"#)).unwrap();
    // Asked for while offline: queued, sent once connected.
    let id = get_twin(&mut pair, d);
    pair.hub_down = false;
    pair.advance(Duration::from_secs(120));
    let events = pair.device(d).take_events();
    assert!(!events.iter().any(|e| matches!(e, DeviceEvent::DesiredUpdated { .. })), "{events:?}");
    let twin = events
        .iter()
        .find_map(|e| match e {
            DeviceEvent::Twin { request, twin } if *request == id => Some(twin.clone()),
            _ => None,
        })
        .expect("the twin after reconnecting");
    assert_eq!(twin.desired.version, 2);
    assert_eq!(twin.desired.properties["mode"], "eco");
}

#[test]
fn a_twin_request_unanswered_when_the_connection_drops_fails_without_status() {
    let (mut pair, d) = connected(|_| {});
    pair.blackhole = true;
    let id = get_twin(&mut pair, d);
    pair.blackhole = false;
    pair.break_connection(d);
    let events = pair.device(d).take_events();
    assert!(
        events.iter().any(|e| matches!(e,
            DeviceEvent::TwinRequestFailed { request, status: None, .. } if *request == id)),
        "{events:?}"
    );
    // Not sent again after the reconnect.
    pair.advance(Duration::from_secs(120));
    assert!(!pair.device(d).events.iter().any(|e| matches!(e, DeviceEvent::Twin { .. })));
}

fn invoke(
    pair: &mut Pair,
    name: &str,
    payload: &'static [u8],
    timeout_s: u64,
) -> Result<crate::hub::MethodInvocation, HubError> {
    let now = pair.now;
    let result = pair.hub.invoke_method(
        now,
        "dev1",
        name,
        Bytes::from_static(payload),
        Duration::from_secs(timeout_s),
    );
    pair.drive();
    result
}

fn method_request(pair: &mut Pair, d: usize) -> crate::iothub::MethodRequest {
    pair.device(d)
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            DeviceEvent::MethodRequest(r) => Some(r),
            _ => None,
        })
        .expect("a method request")
}

#[test]
fn a_method_goes_round_trip() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    assert!(
        subscribed_filters(&pair.device(d).packets_to_hub())
            .contains(&String::from("$iothub/methods/POST/#"))
    );
    let invocation = invoke(&mut pair, "reboot", br#"{"delay":1}"#, 30).unwrap();
    let request = method_request(&mut pair, d);
    assert_eq!(request.name, "reboot");
    assert_eq!(&request.payload[..], br#"{"delay":1}"#);
    let (topic, _) = publishes(pair.device(d).packets_from_hub()).pop().unwrap();
    assert_eq!(topic, alloc::format!("$iothub/methods/POST/reboot/?$rid={}", request.request_id));
    let now = pair.now;
    let response = MethodResponse {
        request_id: request.request_id.clone(),
        status: 201,
        payload: Bytes::from_static(br#"{"ok":true}"#),
    };
    pair.device(d).device.respond_method(now, response.clone()).unwrap();
    pair.drive();
    let sent = publishes(pair.device(d).packets_to_hub());
    assert_eq!(
        sent.last().map(|(t, _)| t.clone()),
        Some(alloc::format!("$iothub/methods/res/201/?$rid={}", request.request_id))
    );
    assert!(pair.hub_events.contains(&HubEvent::MethodResult {
        invocation,
        device_id: "dev1".into(),
        name: "reboot".into(),
        outcome: MethodOutcome::Responded {
            status: 201,
            payload: Bytes::from_static(br#"{"ok":true}"#)
        },
    }));
    // Answered once only.
    assert_eq!(
        pair.device(d).device.respond_method(now, response),
        Err(RequestError::UnknownRequest(request.request_id))
    );
}

#[test]
fn a_method_unanswered_times_out_and_a_late_answer_is_dropped() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    invoke(&mut pair, "slow", b"", 10).unwrap();
    let request = method_request(&mut pair, d);
    pair.advance(Duration::from_secs(11));
    assert_eq!(method_results(&pair), [MethodOutcome::TimedOut]);
    let now = pair.now;
    let late =
        MethodResponse { request_id: request.request_id, status: 200, payload: Bytes::new() };
    pair.device(d).device.respond_method(now, late).unwrap();
    pair.drive();
    assert_eq!(method_results(&pair), [MethodOutcome::TimedOut]);
    assert!(pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::Refused { reason, .. } if reason.contains("answers no waiting invocation"))));
    // Still connected: a late answer is no violation.
    assert!(pair.device(d).connection.is_some());
}

#[test]
fn a_method_to_a_disconnected_or_unsubscribed_device_is_not_online() {
    let (mut pair, d) = connected(|_| {});
    assert_eq!(invoke(&mut pair, "m", b"", 30), Err(HubError::DeviceNotOnline("dev1".into())));
    let now = pair.now;
    pair.device(d).device.disconnect(now);
    pair.drive();
    assert_eq!(invoke(&mut pair, "m", b"", 30), Err(HubError::DeviceNotOnline("dev1".into())));
}

#[test]
fn a_pending_method_ends_when_its_device_disconnects_not_at_its_timeout() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    invoke(&mut pair, "m", b"", 30).unwrap();
    method_request(&mut pair, d);
    pair.break_connection(d);
    assert_eq!(method_results(&pair), [MethodOutcome::Disconnected]);
    pair.advance(Duration::from_secs(31));
    assert_eq!(method_results(&pair), [MethodOutcome::Disconnected], "no second answer");
    assert_eq!(MethodOutcome::Disconnected.error().unwrap().code, 404103);
}

#[test]
fn method_invocations_outside_iot_hubs_bounds_are_refused() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    for timeout_s in [0, 4, 301] {
        let refused = invoke(&mut pair, "m", b"", timeout_s);
        assert!(matches!(refused, Err(HubError::InvalidInvocation(_))), "{timeout_s}: {refused:?}");
    }
    assert!(matches!(invoke(&mut pair, "", b"", 30), Err(HubError::InvalidInvocation(_))));
    let long: &'static str = alloc::boxed::Box::leak("n".repeat(1025).into_boxed_str());
    assert!(matches!(invoke(&mut pair, long, b"", 30), Err(HubError::InvalidInvocation(_))));
    assert_eq!(
        HubError::InvalidInvocation(String::new()).code(),
        crate::iothub::ErrorCode::ARGUMENT_INVALID
    );
    // A device that answers nothing holds at most 64 invocations.
    for _ in 0..crate::hub::methods::MAX_PENDING_PER_DEVICE {
        invoke(&mut pair, "m", b"", 30).unwrap();
    }
    let refused = invoke(&mut pair, "m", b"", 30);
    assert_eq!(refused, Err(HubError::TooManyPending(64)));
    assert_eq!(refused.unwrap_err().code().code, 429001);
    assert!(pair.device(d).connection.is_some());
}

#[test]
fn a_method_request_is_forgotten_with_its_connection() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    invoke(&mut pair, "m", b"", 30).unwrap();
    let request = method_request(&mut pair, d);
    pair.break_connection(d);
    let now = pair.now;
    let response = MethodResponse {
        request_id: request.request_id.clone(),
        status: 200,
        payload: Bytes::new(),
    };
    assert_eq!(
        pair.device(d).device.respond_method(now, response),
        Err(RequestError::UnknownRequest(request.request_id))
    );
}

#[test]
fn a_method_response_over_128_kib_is_refused() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    invoke(&mut pair, "m", b"", 30).unwrap();
    let request = method_request(&mut pair, d);
    let now = pair.now;
    let big = Bytes::from(vec![b' '; crate::iothub::method::MAX_PAYLOAD + 1]);
    let response = MethodResponse { request_id: request.request_id, status: 200, payload: big };
    assert!(matches!(
        pair.device(d).device.respond_method(now, response),
        Err(RequestError::TooLarge { .. })
    ));
}

#[test]
fn the_session_keeps_the_method_subscription_across_a_reconnect() {
    let (mut pair, d) = connected(|c| c.receive_methods = true);
    pair.break_connection(d);
    pair.advance(Duration::from_secs(120));
    assert!(pair.device(d).events.contains(&DeviceEvent::Connected { session_present: true }));
    let filters = subscribed_filters(&pair.device(d).packets_to_hub());
    assert_eq!(filters.iter().filter(|f| *f == "$iothub/methods/POST/#").count(), 1);
    invoke(&mut pair, "m", b"", 30).unwrap();
    method_request(&mut pair, d);
}

// Raw clients: what the hub does with packets the SDKs send.

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn raw_connected() -> (Pair, usize) {
    let mut pair = Pair::new(HubConfig::default());
    pair.register("dev1");
    let r = pair.raw_connect();
    let connect = pair.connect_packet("dev1");
    pair.raw_send_packet(r, &Packet::Connect(connect));
    (pair, r)
}

fn raw_publish(qos: QoS, id: u16, topic: &str, body: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: TopicName::new(topic).unwrap(),
        packet_id: (qos == QoS::AtLeastOnce).then(|| pid(id)),
        payload: Bytes::from_static(body),
    })
}

#[test]
fn the_hub_grants_the_twin_and_method_filters_at_most_qos_1() {
    let (mut pair, r) = raw_connected();
    let filters = vec![
        ("$iothub/twin/res/#".into(), QoS::AtMostOnce),
        ("$iothub/twin/PATCH/properties/desired/#".into(), QoS::AtLeastOnce),
        ("$iothub/methods/POST/#".into(), QoS::ExactlyOnce),
    ];
    pair.raw_send_packet(r, &Packet::Subscribe(Subscribe { packet_id: pid(1), filters }));
    assert_eq!(
        pair.raw[r].packets()[1..],
        [Packet::SubAck(SubAck {
            packet_id: pid(1),
            return_codes: vec![
                SubscribeReturnCode::Success(QoS::AtMostOnce),
                SubscribeReturnCode::Success(QoS::AtLeastOnce),
                SubscribeReturnCode::Success(QoS::AtLeastOnce),
            ],
        })]
    );
    assert!(!pair.raw[r].closed_by_hub);
    // Unsubscribed, methods are not online.
    let unsubscribe =
        Unsubscribe { packet_id: pid(2), filters: vec!["$iothub/methods/POST/#".into()] };
    pair.raw_send_packet(r, &Packet::Unsubscribe(unsubscribe));
    let now = pair.now;
    let result = pair.hub.invoke_method(now, "dev1", "m", Bytes::new(), Duration::from_secs(5));
    assert_eq!(result, Err(HubError::DeviceNotOnline("dev1".into())));
}

#[test]
fn python_twin_requests_at_qos_1_are_pubacked_and_answered_at_qos_0() {
    let (mut pair, r) = raw_connected();
    pair.raw_send_packet(r, &raw_publish(QoS::AtLeastOnce, 5, "$iothub/twin/GET/?$rid=9", b" "));
    let packets = pair.raw[r].packets();
    assert!(packets.contains(&Packet::PubAck(pid(5))), "{packets:?}");
    let answer = packets.iter().find_map(|p| match p {
        Packet::Publish(p) => Some(p.clone()),
        _ => None,
    });
    let answer = answer.expect("an answer even without a subscription");
    assert_eq!(answer.qos, QoS::AtMostOnce);
    assert_eq!(answer.topic.as_str(), "$iothub/twin/res/200/?$rid=9");
}

#[test]
fn spec_4_5_a_patch_that_is_not_a_json_object_is_answered_400_with_an_error_body() {
    let (mut pair, r) = raw_connected();
    pair.raw_send_packet(
        r,
        &raw_publish(QoS::AtMostOnce, 0, "$iothub/twin/PATCH/properties/reported/?$rid=3", b"[1]"),
    );
    let (topic, body) = publishes(pair.raw[r].packets()).pop().expect("an answer");
    assert_eq!(topic, "$iothub/twin/res/400/?$rid=3");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorCode"], 400004);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("not a JSON object")), "{body}");
    assert_eq!(pair.hub.twin("dev1").unwrap().reported.version, 1);
}

#[test]
fn a_device_publishing_on_a_topic_only_the_hub_uses_is_disconnected() {
    for topic in [
        "$iothub/twin/res/200/?$rid=1",
        "$iothub/methods/POST/reboot/?$rid=1",
        "$iothub/twin/PATCH/properties/desired/?$version=2",
        "$iothub/twin/GET/",
    ] {
        let (mut pair, r) = raw_connected();
        pair.raw_send_packet(r, &raw_publish(QoS::AtMostOnce, 0, topic, b"{}"));
        assert!(pair.raw[r].closed_by_hub, "{topic}");
    }
}

#[test]
fn a_conditional_desired_update_at_a_stale_version_is_refused_and_changes_nothing() {
    let (mut pair, d) = connected(|c| c.receive_desired = true);
    let now = pair.now;
    // Two services read the twin at version 1; the first update wins.
    assert_eq!(pair.hub.update_desired_if(now, "dev1", &patch(r#"{"a":1}"#), 1), Ok(2));
    let stale = pair.hub.update_desired_if(now, "dev1", &patch(r#"{"a":2}"#), 1);
    assert_eq!(stale, Err(HubError::VersionMismatch { expected: 1, current: 2 }));
    assert_eq!(stale.unwrap_err().code().code, 412001);
    pair.drive();
    let versions: Vec<u64> = pair
        .device(d)
        .events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::DesiredUpdated { version, .. } => Some(*version),
            _ => None,
        })
        .collect();
    assert_eq!(versions, [2]);
    let twin = pair.hub.twin("dev1").unwrap();
    assert_eq!((twin.desired.version, &twin.desired.properties["a"]), (2, &serde_json::json!(1)));
    assert!(matches!(
        pair.hub.update_desired_if(now, "ghost", &patch("{}"), 1),
        Err(HubError::DeviceNotFound(_))
    ));
}
