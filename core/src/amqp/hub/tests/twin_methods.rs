//! The hub's twin and method nodes (spec file §5.6, §5.7, TV-19, TV-20), spoken to
//! frame by frame as the SDKs do.

use super::*;
use crate::amqp::methods;
use crate::amqp::performative::SenderSettleMode;
use crate::amqp::twin::{
    DESIRED_NOTIFICATIONS, TwinOperation, TwinReply, TwinRequest, TwinResponse,
};
use crate::amqp::types::Value;
use crate::hub::{HubError, MethodOutcome};
use crate::iothub::{MethodResponse, TwinPatch};

/// TV-20's GUID.
const GUID: [u8; 16] = [
    0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f,
];

/// A device's twin or method link pair.
struct Pair {
    sender: LinkId,
    receiver: LinkId,
}

impl World {
    /// Attaches with the settle modes the SDKs ask for on twin links (spec file
    /// §5.3): snd settled, rcv first.
    fn attach_with(
        &mut self,
        c: usize,
        name: &str,
        role: Role,
        address: &str,
        snd_settle_mode: SenderSettleMode,
    ) -> LinkId {
        let (source, target) = match role {
            Role::Sender => (source("client"), target(address)),
            Role::Receiver => (source(address), target("client")),
        };
        let spec = LinkSpec {
            snd_settle_mode,
            ..LinkSpec::new(Utf8Bytes::from(name), role, source, target)
        };
        let client = &mut self.clients[c];
        let session = client.session.expect("a session");
        let link = client.engine.attach(self.now, session, spec).expect("attaches");
        self.pump();
        link
    }

    /// `device_id`'s links to `node` (`twin` or `methods/devicebound`), the receiver
    /// with credit.
    fn node_links(
        &mut self,
        c: usize,
        device_id: &str,
        node: &str,
        mode: SenderSettleMode,
    ) -> Pair {
        let address = alloc::format!("/devices/{device_id}/{node}");
        let sender = self.attach_with(
            c,
            &alloc::format!("{node}-snd-{device_id}"),
            Role::Sender,
            &address,
            mode,
        );
        let receiver = self.attach_with(
            c,
            &alloc::format!("{node}-rcv-{device_id}"),
            Role::Receiver,
            &address,
            mode,
        );
        self.flow(c, receiver, 100);
        Pair { sender, receiver }
    }

    /// Sends `message` on `link` settled, as the SDKs send twin requests.
    fn send_settled(&mut self, c: usize, link: LinkId, message: &Message) {
        let client = &mut self.clients[c];
        client.next_tag += 1;
        let tag = Bytes::copy_from_slice(&client.next_tag.to_be_bytes());
        let delivery = Delivery {
            tag,
            message_format: MESSAGE_FORMAT_AMQP,
            settled: true,
            payload: encode(message),
        };
        client.engine.send(self.now, link, delivery).expect("sends");
        self.pump();
    }

    /// The messages that arrived on `link`, decoded, with whether they came settled.
    fn received(&self, c: usize, link: LinkId) -> Vec<(Message, bool)> {
        self.clients[c]
            .events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Link(LinkEvent::Delivery { link: l, payload, settled, .. })
                    if *l == link =>
                {
                    Some((
                        Message::decode(payload, &Default::default()).expect("decodes"),
                        *settled,
                    ))
                }
                _ => None,
            })
            .collect()
    }

    /// Sends a twin request and returns the hub's response.
    fn twin_request(
        &mut self,
        c: usize,
        twin: &Pair,
        id: MessageId,
        operation: TwinOperation,
    ) -> TwinResponse {
        let before = self.received(c, twin.receiver).len();
        self.send_settled(
            c,
            twin.sender,
            &TwinRequest { correlation_id: id, operation }.to_message(),
        );
        let received = self.received(c, twin.receiver);
        assert_eq!(received.len(), before + 1, "one response per request");
        let (message, _) = received.last().cloned().expect("a response");
        match TwinReply::from_message(&message) {
            Ok(TwinReply::Response(r)) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    fn authenticated(&mut self, devices: &[&str]) -> usize {
        let c = self.connect();
        let cbs = self.cbs(c);
        for d in devices {
            self.device(c, &cbs, d);
        }
        c
    }

    fn method_results(&self) -> Vec<MethodOutcome> {
        self.events
            .iter()
            .filter_map(|e| match e {
                HubEvent::MethodResult { outcome, .. } => Some(outcome.clone()),
                _ => None,
            })
            .collect()
    }
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON")
}

fn string_id(s: &str) -> MessageId {
    MessageId::String(Utf8Bytes::from(s))
}

#[test]
fn tv19_patch_answered_204_int_and_version_long_and_reported_updated() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let twin = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    let before = w.received(c, twin.receiver).len();
    let patch = Bytes::from_static(b"{\"batteryLevel\":60}");
    w.send_settled(
        c,
        twin.sender,
        &TwinRequest {
            correlation_id: string_id("c-1"),
            operation: TwinOperation::PatchReported(patch),
        }
        .to_message(),
    );
    let (message, settled) = w.received(c, twin.receiver)[before].clone();
    assert!(settled, "the device's receiver asked for settled deliveries");
    assert_eq!(message.properties.unwrap().correlation_id, Some(string_id("c-1")));
    let annotations = message.message_annotations.expect("annotations");
    // The exact AMQP types the C SDK demands (spec file §5.6).
    assert_eq!(annotations.get("status"), Some(&Value::Int(204)));
    assert_eq!(annotations.get("version"), Some(&Value::Long(2)));
    assert_eq!(message.body.data(), Some(Bytes::new()), "no body");
    let updated = w.events.iter().find_map(|e| match e {
        HubEvent::ReportedUpdated { device_id, version, patch } => {
            Some((device_id.clone(), *version, patch.clone()))
        }
        _ => None,
    });
    let expected = TwinPatch::parse(b"{\"batteryLevel\":60}").unwrap();
    assert_eq!(updated, Some((String::from("d0"), 2, expected)));
    let twin_now = w.hub.twin("d0").unwrap();
    assert_eq!(twin_now.reported.properties.get("batteryLevel"), Some(&serde_json::json!(60)));
}

#[test]
fn tv19_get_answers_200_with_the_twin_and_the_correlation_id_in_its_type() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let twin = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    let patch = TwinPatch::parse(b"{\"mode\":\"eco\"}").unwrap();
    w.hub.update_desired(w.now, "d0", &patch).unwrap();
    for id in [string_id("g-1"), MessageId::Ulong(7), MessageId::Uuid(GUID)] {
        let r = w.twin_request(c, &twin, id.clone(), TwinOperation::Get);
        assert_eq!((r.correlation_id, r.status, r.version), (id, 200, None));
        let got = crate::iothub::Twin::from_json(&r.body).expect("twin JSON");
        assert_eq!(got, w.hub.twin("d0").unwrap());
        assert_eq!(got.desired.version, 2);
    }
}

#[test]
fn tv19_desired_update_reaches_the_put_subscribed_device_only() {
    let mut w = World::new(2);
    let c = w.authenticated(&["d0", "d1"]);
    let twin0 = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    let twin1 = w.node_links(c, "d1", "twin", SenderSettleMode::Settled);
    let put = w.twin_request(c, &twin0, string_id("s-1"), TwinOperation::SubscribeDesired);
    assert_eq!(put.status, 200);
    let patch = TwinPatch::parse(b"{\"x\":1}").unwrap();
    for d in ["d0", "d1"] {
        w.hub.update_desired(w.now, d, &patch).unwrap();
    }
    w.pump();
    let got: Vec<_> = w.received(c, twin0.receiver).into_iter().map(|(m, _)| m).collect();
    let last = got.last().expect("a notification");
    assert_eq!(last.properties, None, "a notification has no correlation-id");
    let Ok(TwinReply::Desired(body)) = TwinReply::from_message(last) else { panic!("{last:?}") };
    assert_eq!(json(&body), serde_json::json!({"x": 1, "$version": 2}));
    assert_eq!(w.received(c, twin1.receiver).len(), 0, "d1 never subscribed");
    // DELETE ends it.
    let delete = w.twin_request(c, &twin0, string_id("u-1"), TwinOperation::UnsubscribeDesired);
    assert_eq!(delete.status, 200);
    let before = w.received(c, twin0.receiver).len();
    w.hub.update_desired(w.now, "d0", &patch).unwrap();
    w.pump();
    assert_eq!(w.received(c, twin0.receiver).len(), before);
}

#[test]
fn s5_6_desired_notifications_wait_for_credit() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let twin = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    w.twin_request(c, &twin, string_id("s"), TwinOperation::SubscribeDesired);
    // Spend the receiver's credit, as a device that stops granting it.
    w.clients[c].engine.flow(w.now, twin.receiver, 0, false).unwrap();
    w.pump();
    let before = w.received(c, twin.receiver).len();
    for i in 0..3 {
        let patch = TwinPatch::parse(alloc::format!("{{\"n\":{i}}}").as_bytes()).unwrap();
        w.hub.update_desired(w.now, "d0", &patch).unwrap();
    }
    w.pump();
    assert_eq!(w.received(c, twin.receiver).len(), before, "no credit, nothing sent");
    w.flow(c, twin.receiver, 10);
    let got = w.received(c, twin.receiver);
    assert_eq!(got.len(), before + 3);
    let Ok(TwinReply::Desired(last)) = TwinReply::from_message(&got[before + 2].0) else {
        panic!()
    };
    assert_eq!(json(&last), serde_json::json!({"n": 2, "$version": 4}), "in order");
}

#[test]
fn s5_6_malformed_requests_answered_400_with_a_json_body() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let twin = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    for body in [&b"[1,2]"[..], b"not json", b"{\"$bad\":1}"] {
        let r = w.twin_request(
            c,
            &twin,
            string_id("p"),
            TwinOperation::PatchReported(Bytes::from_static(body)),
        );
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        let json: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON body");
        assert_eq!(json["errorCode"], 400004);
    }
    // An operation IoT Hub does not have, and a PUT of the wrong resource.
    let mut unknown =
        TwinRequest { correlation_id: string_id("x"), operation: TwinOperation::Get }.to_message();
    let mut a = message::Annotations::new();
    a.insert(Symbol::from_static("operation"), Value::String("POST".into()));
    unknown.message_annotations = Some(a.clone());
    let before = w.received(c, twin.receiver).len();
    w.send_settled(c, twin.sender, &unknown);
    a.insert(Symbol::from_static("operation"), Value::String("PUT".into()));
    a.insert(Symbol::from_static("resource"), Value::String("/properties/desired".into()));
    unknown.message_annotations = Some(a);
    w.send_settled(c, twin.sender, &unknown);
    let got = w.received(c, twin.receiver);
    assert_eq!(got.len(), before + 2);
    for (m, _) in &got[before..] {
        let Ok(TwinReply::Response(r)) = TwinReply::from_message(m) else { panic!("a response") };
        assert_eq!((r.correlation_id, r.status), (string_id("x"), 400));
    }
    assert_eq!(w.hub.twin("d0").unwrap().reported.version, 1, "nothing applied");
    assert!(w.refusals().contains(&ErrorCode::ARGUMENT_INVALID));
}

#[test]
fn s5_6_unsettled_twin_requests_are_accepted_and_replies_go_unsettled_when_asked() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let twin = w.node_links(c, "d0", "twin", SenderSettleMode::Unsettled);
    let request =
        TwinRequest { correlation_id: string_id("g"), operation: TwinOperation::Get }.to_message();
    w.send(c, twin.sender, encode(&request), MESSAGE_FORMAT_AMQP);
    assert_eq!(w.clients[c].outcomes(twin.sender), vec![Some(DeliveryState::Accepted)]);
    let got = w.received(c, twin.receiver);
    assert_eq!(got.len(), 1);
    assert!(!got[0].1, "the device's receiver asked for unsettled deliveries");
}

#[test]
fn s5_10_a_device_attaching_another_devices_twin_is_refused() {
    let mut w = World::new(2);
    let c = w.authenticated(&["d0"]);
    for (role, address) in [
        (Role::Sender, "/devices/d1/twin"),
        (Role::Receiver, "/devices/d1/twin"),
        (Role::Receiver, "/devices/d1/methods/devicebound"),
    ] {
        let link = w.attach(c, "other", role, address);
        assert_eq!(attach_error(&w, c, link), condition::UNAUTHORIZED_ACCESS, "{address}");
    }
}

#[test]
fn s5_3_module_twin_and_methods_are_refused() {
    // This hub authenticates no module (its put-token is refused 401), so a
    // module's twin or method link is refused before its node is looked at; were
    // modules admitted, `on_attach` would still refuse them `not-implemented`, as
    // the hub keeps device twins only.
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    for address in ["/devices/d0/modules/m1/twin", "/devices/d0/modules/m1/methods/devicebound"] {
        let link = w.attach(c, "m", Role::Receiver, address);
        assert_eq!(attach_error(&w, c, link), condition::UNAUTHORIZED_ACCESS, "{address}");
    }
}

#[test]
fn tv20_method_round_trip_uuid_correlation_and_int_status() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let methods_links = w.node_links(c, "d0", "methods/devicebound", SenderSettleMode::Unsettled);
    let invocation = w
        .hub
        .invoke_method(
            w.now,
            "d0",
            "reboot",
            Bytes::from_static(b"{\"delay\":5}"),
            Duration::from_secs(30),
        )
        .expect("the device listens");
    w.pump();
    let got = w.received(c, methods_links.receiver);
    assert_eq!(got.len(), 1);
    let (request, settled) = &got[0];
    assert!(!settled);
    let correlation = request.properties.as_ref().and_then(|p| p.correlation_id.clone());
    assert!(
        matches!(correlation, Some(MessageId::Uuid(_))),
        "the C SDK requires a uuid: {correlation:?}"
    );
    let app = request.application_properties.as_ref().expect("properties");
    assert_eq!(app.get("IoThub-methodname"), Some(&Value::String("reboot".into())));
    assert_eq!(request.body.data(), Some(Bytes::from_static(b"{\"delay\":5}")));
    let (parsed, id) = methods::request_from_message(request).unwrap();
    let response = MethodResponse {
        request_id: parsed.request_id,
        status: 200,
        payload: Bytes::from_static(b"{\"result\":\"ok\"}"),
    };
    w.send(
        c,
        methods_links.sender,
        encode(&methods::response_to_message(&response, id)),
        MESSAGE_FORMAT_AMQP,
    );
    assert_eq!(w.clients[c].outcomes(methods_links.sender), vec![Some(DeliveryState::Accepted)]);
    let result = w.events.iter().find_map(|e| match e {
        HubEvent::MethodResult { invocation: i, device_id, name, outcome } => {
            Some((*i, device_id.clone(), name.clone(), outcome.clone()))
        }
        _ => None,
    });
    assert_eq!(
        result,
        Some((
            invocation,
            String::from("d0"),
            String::from("reboot"),
            MethodOutcome::Responded {
                status: 200,
                payload: Bytes::from_static(b"{\"result\":\"ok\"}")
            }
        ))
    );
}

#[test]
fn s5_7_method_to_a_device_without_method_links_is_device_not_online() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let _twin = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    let e = w.hub.invoke_method(w.now, "d0", "reboot", Bytes::new(), Duration::from_secs(5));
    assert_eq!(e, Err(HubError::DeviceNotOnline(String::from("d0"))));
}

#[test]
fn s5_7_method_times_out_and_a_late_response_is_dropped() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let links = w.node_links(c, "d0", "methods/devicebound", SenderSettleMode::Settled);
    w.hub.invoke_method(w.now, "d0", "slow", Bytes::new(), Duration::from_secs(5)).unwrap();
    w.pump();
    let (request, _) = w.received(c, links.receiver)[0].clone();
    w.advance(Duration::from_secs(6));
    assert_eq!(w.method_results(), vec![MethodOutcome::TimedOut]);
    let (parsed, id) = methods::request_from_message(&request).unwrap();
    let late = MethodResponse { request_id: parsed.request_id, status: 200, payload: Bytes::new() };
    let refusals = w.refusals().len();
    w.send_settled(c, links.sender, &methods::response_to_message(&late, id));
    assert_eq!(w.method_results(), vec![MethodOutcome::TimedOut], "no second result");
    assert_eq!(w.refusals()[refusals..], [ErrorCode::INVALID_OPERATION]);
}

#[test]
fn s5_7_a_string_correlation_id_answers_too() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let links = w.node_links(c, "d0", "methods/devicebound", SenderSettleMode::Settled);
    w.hub.invoke_method(w.now, "d0", "m", Bytes::new(), Duration::from_secs(5)).unwrap();
    w.pump();
    let (request, _) = w.received(c, links.receiver)[0].clone();
    let (parsed, _) = methods::request_from_message(&request).unwrap();
    // Node re-encodes a uuid-shaped id; EDGE-style clients may echo it as a string.
    let response = MethodResponse {
        request_id: parsed.request_id.clone(),
        status: 500,
        payload: Bytes::new(),
    };
    let id = MessageId::String(Utf8Bytes::from(parsed.request_id.as_str()));
    w.send_settled(c, links.sender, &methods::response_to_message(&response, id));
    assert_eq!(
        w.method_results(),
        vec![MethodOutcome::Responded { status: 500, payload: Bytes::new() }]
    );
}

#[test]
fn s5_10_twin_and_method_links_are_stolen_with_the_device() {
    let mut w = World::new(1);
    let first = w.authenticated(&["d0"]);
    let twin = w.node_links(first, "d0", "twin", SenderSettleMode::Settled);
    let methods_links = w.node_links(first, "d0", "methods/devicebound", SenderSettleMode::Settled);
    w.twin_request(first, &twin, string_id("s"), TwinOperation::SubscribeDesired);
    let _second = w.authenticated(&["d0"]);
    for link in [twin.sender, twin.receiver, methods_links.sender, methods_links.receiver] {
        assert_eq!(attach_error(&w, first, link), condition::LINK_STOLEN);
    }
    let e = w.hub.invoke_method(w.now, "d0", "m", Bytes::new(), Duration::from_secs(5));
    assert_eq!(e, Err(HubError::DeviceNotOnline(String::from("d0"))));
    let patch = TwinPatch::parse(b"{\"y\":2}").unwrap();
    let before = w.received(first, twin.receiver).len();
    w.hub.update_desired(w.now, "d0", &patch).unwrap();
    w.pump();
    assert_eq!(w.received(first, twin.receiver).len(), before);
}

#[test]
fn s5_6_subscribe_put_without_resource_reads_as_a_400() {
    // A PUT must name /notifications/twin/properties/desired (spec file §5.6).
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    let twin = w.node_links(c, "d0", "twin", SenderSettleMode::Settled);
    let mut m =
        TwinRequest { correlation_id: string_id("p"), operation: TwinOperation::SubscribeDesired }
            .to_message();
    let mut a = message::Annotations::new();
    a.insert(Symbol::from_static("operation"), Value::String("PUT".into()));
    m.message_annotations = Some(a);
    w.send_settled(c, twin.sender, &m);
    let (reply, _) = w.received(c, twin.receiver).last().cloned().unwrap();
    let Ok(TwinReply::Response(r)) = TwinReply::from_message(&reply) else { panic!() };
    assert_eq!(r.status, 400);
    let _ = DESIRED_NOTIFICATIONS;
}

#[test]
fn s2_6_7_a_drain_on_an_idle_twin_or_method_receiver_gives_the_credit_back() {
    let mut w = World::new(1);
    let c = w.authenticated(&["d0"]);
    for node in ["twin", "methods/devicebound"] {
        let pair = w.node_links(c, "d0", node, SenderSettleMode::Settled);
        // Nothing waits for the device: the 5 credits are used up by advancing the
        // delivery-count from 0 (§2.6.7).
        let flows = drain(&mut w, c, pair.receiver, 5);
        let [flow] = flows.as_slice() else { panic!("{node}: one link flow: {flows:?}") };
        assert_eq!((flow.delivery_count, flow.link_credit), (Some(5), Some(0)), "{node}");
        assert_eq!(drained(&w.clients[c], pair.receiver), 1, "{node}");
    }
}
