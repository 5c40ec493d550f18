//! The AMQP device's twin and methods against the hub engine (spec file §5.6,
//! §5.7, §5.9), in simulated time.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use super::{amqp_device, occurrences};
use crate::Protocol;
use crate::device::{DeviceEvent, RequestError};
use crate::hub::{HubConfig, HubError, HubEvent, MethodOutcome};
use crate::iothub::{ErrorCode, MethodResponse, TwinPatch};
use crate::testing::Pair;
use crate::time::Duration;

fn patch(json: &str) -> TwinPatch {
    TwinPatch::parse(json.as_bytes()).expect("a patch")
}

fn listening(pair: &mut Pair, device_id: &str) -> usize {
    pair.add_device(device_id, |c| {
        c.protocol = Protocol::Amqp;
        c.receive_desired = true;
        c.receive_methods = true;
    })
}

fn method_requests(events: &[DeviceEvent]) -> Vec<crate::iothub::MethodRequest> {
    events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::MethodRequest(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn method_results(events: &[HubEvent]) -> Vec<MethodOutcome> {
    events
        .iter()
        .filter_map(|e| match e {
            HubEvent::MethodResult { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

fn desired_updates(events: &[DeviceEvent]) -> Vec<(TwinPatch, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::DesiredUpdated { patch, version } => Some((patch.clone(), *version)),
            _ => None,
        })
        .collect()
}

/// Where `needle` first occurs in `haystack`.
fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn s5_9_twin_then_method_links_after_the_put_token_with_their_properties() {
    let mut pair = Pair::new(HubConfig::default());
    let d = listening(&mut pair, "dev1");
    pair.drive();
    let wire = &pair.devices[d].wire_to_hub;
    let put = position(wire, b"put-token").expect("a put-token");
    let twin_snd = position(wire, b"twin-snd-").expect("a twin sender");
    let twin_rcv = position(wire, b"twin-rcv-").expect("a twin receiver");
    let methods_snd = position(wire, b"methods-snd-").expect("a methods sender");
    let methods_rcv = position(wire, b"methods-rcv-").expect("a methods receiver");
    assert!(
        put < twin_snd
            && twin_snd < twin_rcv
            && twin_rcv < methods_snd
            && methods_snd < methods_rcv
    );
    // Both links of a channel carry the same `twin:`/`methods:` correlation id and
    // the api-version (spec file §5.3).
    assert_eq!(occurrences(wire, b"com.microsoft:channel-correlation-id"), 4);
    assert_eq!(occurrences(wire, b"twin:"), 2);
    assert_eq!(occurrences(wire, b"methods:"), 2);
    assert_eq!(occurrences(wire, b"2021-04-12"), 4);
    assert_eq!(occurrences(wire, b"/devices/dev1/twin"), 2);
    assert_eq!(occurrences(wire, b"/devices/dev1/methods/devicebound"), 2);
    // With receive_desired, the PUT subscription (spec file §5.6).
    assert_eq!(occurrences(wire, b"/notifications/twin/properties/desired"), 1);
    assert!(pair.devices[d].events.iter().any(|e| matches!(e, DeviceEvent::Connected { .. })));
}

#[test]
fn s5_9_no_twin_or_method_links_unless_asked() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let wire = &pair.devices[d].wire_to_hub;
    assert_eq!(occurrences(wire, b"/devices/dev1/twin"), 0);
    assert_eq!(occurrences(wire, b"methods"), 0);
}

#[test]
fn tv19_get_twin_attaches_the_twin_links_lazily_and_answers_with_the_twin() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    pair.hub.update_desired(pair.now, "dev1", &patch("{\"mode\":\"eco\"}")).unwrap();
    let now = pair.now;
    let request = pair.devices[d].device.get_twin(now).expect("asked");
    pair.drive();
    let expected = pair.hub.twin("dev1").unwrap();
    assert!(
        pair.devices[d].events.contains(&DeviceEvent::Twin { request, twin: expected.clone() }),
        "{:?}",
        pair.devices[d].events
    );
    assert_eq!(expected.desired.version, 2);
    // GET is not a subscription: no PUT without receive_desired.
    assert_eq!(occurrences(&pair.devices[d].wire_to_hub, b"/notifications/twin"), 0);
}

#[test]
fn tv19_patch_reported_answers_with_the_version_and_the_hub_reports_it() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    let now = pair.now;
    let first = pair.devices[d].device.patch_reported(now, patch("{\"batteryLevel\":60}")).unwrap();
    let second =
        pair.devices[d].device.patch_reported(now, patch("{\"batteryLevel\":59}")).unwrap();
    pair.drive();
    let events = &pair.devices[d].events;
    assert!(events.contains(&DeviceEvent::ReportedPatched { request: first, version: 2 }));
    assert!(events.contains(&DeviceEvent::ReportedPatched { request: second, version: 3 }));
    let reported: Vec<u64> = pair
        .hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::ReportedUpdated { device_id, version, .. } if device_id == "dev1" => {
                Some(*version)
            }
            _ => None,
        })
        .collect();
    assert_eq!(reported, [2, 3]);
    let twin = pair.hub.twin("dev1").unwrap();
    assert_eq!(twin.reported.properties.get("batteryLevel"), Some(&serde_json::json!(59)));
}

#[test]
fn s5_6_a_patch_the_hub_refuses_fails_with_its_status() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    pair.drive();
    // Two 20 KiB members: the second takes the section past 32 KiB (spec file §8).
    let big = |name: &str| patch(&alloc::format!("{{\"{name}\":\"{}\"}}", "x".repeat(20 * 1024)));
    let now = pair.now;
    let ok = pair.devices[d].device.patch_reported(now, big("a")).unwrap();
    let refused = pair.devices[d].device.patch_reported(now, big("b")).unwrap();
    pair.drive();
    let events = &pair.devices[d].events;
    assert!(events.contains(&DeviceEvent::ReportedPatched { request: ok, version: 2 }));
    let failure = events.iter().find_map(|e| match e {
        DeviceEvent::TwinRequestFailed { request, status, .. } if *request == refused => {
            Some(*status)
        }
        _ => None,
    });
    assert_eq!(failure, Some(Some(413)));
    let too_big = patch(&alloc::format!("{{\"a\":\"{}\"}}", "x".repeat(33 * 1024)));
    assert!(matches!(
        pair.devices[d].device.patch_reported(now, too_big),
        Err(RequestError::TooLarge { .. })
    ));
}

#[test]
fn tv19_desired_update_reaches_the_subscribed_device_only() {
    let mut pair = Pair::new(HubConfig::default());
    let subscribed = listening(&mut pair, "dev1");
    let other = amqp_device(&mut pair, "dev2");
    pair.drive();
    let now = pair.now;
    pair.devices[other].device.get_twin(now).unwrap(); // twin links, no subscription
    pair.drive();
    for d in ["dev1", "dev2"] {
        pair.hub.update_desired(pair.now, d, &patch("{\"x\":1}")).unwrap();
    }
    pair.drive();
    assert_eq!(desired_updates(&pair.devices[subscribed].events), [(patch("{\"x\":1}"), 2)]);
    assert_eq!(desired_updates(&pair.devices[other].events), []);
}

#[test]
fn s5_6_offline_device_catches_up_with_get_and_subscribes_again() {
    let mut pair = Pair::new(HubConfig::default());
    let d = listening(&mut pair, "dev1");
    pair.drive();
    pair.break_connection(d);
    pair.hub.update_desired(pair.now, "dev1", &patch("{\"while\":\"away\"}")).unwrap();
    pair.advance(Duration::from_secs(120));
    let events = pair.devices[d].take_events();
    assert!(events.iter().any(|e| matches!(e, DeviceEvent::Connected { .. })), "{events:?}");
    assert_eq!(desired_updates(&events), [], "missed updates do not come again");
    let now = pair.now;
    let request = pair.devices[d].device.get_twin(now).unwrap();
    pair.drive();
    let twin = pair.devices[d].events.iter().find_map(|e| match e {
        DeviceEvent::Twin { request: r, twin } if *r == request => Some(twin.clone()),
        _ => None,
    });
    let twin = twin.expect("the twin");
    assert_eq!(twin.desired.version, 2);
    assert_eq!(twin.desired.properties.get("while"), Some(&serde_json::json!("away")));
    // The PUT went again on the new connection: later updates arrive.
    pair.hub.update_desired(pair.now, "dev1", &patch("{\"back\":true}")).unwrap();
    pair.drive();
    assert_eq!(desired_updates(&pair.devices[d].events), [(patch("{\"back\":true}"), 3)]);
    assert_eq!(
        occurrences(&pair.devices[d].wire_to_hub, b"/notifications/twin/properties/desired"),
        2
    );
}

#[test]
fn s5_6_requests_wait_for_the_connection_and_unanswered_ones_fail_on_loss() {
    let mut pair = Pair::new(HubConfig::default());
    let d = amqp_device(&mut pair, "dev1");
    // Asked before the connection is even dialled.
    let early = pair.devices[d].device.get_twin(pair.now).unwrap();
    pair.drive();
    assert!(
        pair.devices[d]
            .events
            .iter()
            .any(|e| matches!(e, DeviceEvent::Twin { request, .. } if *request == early))
    );
    // A request the hub never hears of.
    pair.blackhole = true;
    let now = pair.now;
    let lost = pair.devices[d].device.get_twin(now).unwrap();
    pair.drive();
    pair.blackhole = false;
    pair.break_connection(d);
    let failure = pair.devices[d].events.iter().find_map(|e| match e {
        DeviceEvent::TwinRequestFailed { request, status, .. } if *request == lost => Some(*status),
        _ => None,
    });
    assert_eq!(failure, Some(None), "no status: the connection was lost first");
}

#[test]
fn tv20_method_round_trip() {
    let mut pair = Pair::new(HubConfig::default());
    let d = listening(&mut pair, "dev1");
    pair.drive();
    let invocation = pair
        .hub
        .invoke_method(
            pair.now,
            "dev1",
            "reboot",
            Bytes::from_static(b"{\"delay\":5}"),
            Duration::from_secs(30),
        )
        .expect("the device listens");
    pair.drive();
    let requests = method_requests(&pair.devices[d].events);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.name, "reboot");
    assert_eq!(&request.payload[..], b"{\"delay\":5}");
    // The id is a GUID, carried as an AMQP uuid (0x98) on the wire (spec file §5.7).
    let guid: crate::iothub::LockToken = request.request_id.parse().expect("a GUID");
    let mut uuid = alloc::vec![0x98];
    uuid.extend_from_slice(&guid.guid().unwrap());
    assert_eq!(occurrences(&pair.devices[d].wire_from_hub, &uuid), 1);
    let response = MethodResponse {
        request_id: request.request_id.clone(),
        status: 200,
        payload: Bytes::from_static(b"{\"result\":\"ok\"}"),
    };
    let now = pair.now;
    pair.devices[d].device.respond_method(now, response.clone()).expect("answered");
    pair.drive();
    // Echoed as a uuid too.
    assert_eq!(occurrences(&pair.devices[d].wire_to_hub, &uuid), 1);
    let result = pair.hub_events.iter().find_map(|e| match e {
        HubEvent::MethodResult { invocation: i, outcome, .. } if *i == invocation => {
            Some(outcome.clone())
        }
        _ => None,
    });
    assert_eq!(
        result,
        Some(MethodOutcome::Responded {
            status: 200,
            payload: Bytes::from_static(b"{\"result\":\"ok\"}")
        })
    );
    assert_eq!(
        pair.devices[d].device.respond_method(now, response),
        Err(RequestError::UnknownRequest(request.request_id.clone())),
        "answered once"
    );
}

#[test]
fn s5_7_method_timeout_and_the_late_response_dropped() {
    let mut pair = Pair::new(HubConfig::default());
    let d = listening(&mut pair, "dev1");
    pair.drive();
    pair.hub.invoke_method(pair.now, "dev1", "slow", Bytes::new(), Duration::from_secs(5)).unwrap();
    pair.drive();
    let request = method_requests(&pair.devices[d].events).pop().expect("a request");
    pair.advance(Duration::from_secs(6));
    assert_eq!(method_results(&pair.hub_events), [MethodOutcome::TimedOut]);
    let now = pair.now;
    let late =
        MethodResponse { request_id: request.request_id, status: 200, payload: Bytes::new() };
    pair.devices[d].device.respond_method(now, late).expect("the device still may answer");
    pair.drive();
    assert_eq!(method_results(&pair.hub_events), [MethodOutcome::TimedOut], "dropped");
    assert!(pair.hub_events.iter().any(|e| matches!(
        e,
        HubEvent::Refused { code, .. } if *code == ErrorCode::INVALID_OPERATION
    )));
}

#[test]
fn s5_7_method_to_a_device_without_method_links_is_device_not_online() {
    let mut pair = Pair::new(HubConfig::default());
    amqp_device(&mut pair, "dev1");
    pair.drive();
    let e =
        pair.hub.invoke_method(pair.now, "dev1", "reboot", Bytes::new(), Duration::from_secs(5));
    assert_eq!(e, Err(HubError::DeviceNotOnline(String::from("dev1"))));
}

#[test]
fn s5_7_method_requests_are_forgotten_with_the_connection() {
    let mut pair = Pair::new(HubConfig::default());
    let d = listening(&mut pair, "dev1");
    pair.drive();
    pair.hub.invoke_method(pair.now, "dev1", "m", Bytes::new(), Duration::from_secs(30)).unwrap();
    pair.drive();
    let request = method_requests(&pair.devices[d].events).pop().expect("a request");
    pair.break_connection(d);
    let now = pair.now;
    let response = MethodResponse {
        request_id: request.request_id.clone(),
        status: 200,
        payload: Bytes::new(),
    };
    assert_eq!(
        pair.devices[d].device.respond_method(now, response),
        Err(RequestError::UnknownRequest(request.request_id))
    );
}
