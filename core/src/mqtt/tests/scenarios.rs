use crate::device::{DeviceEvent, DisconnectReason};
use crate::hub::{HubConfig, HubEvent, Outcome};
use crate::iothub::{Disposition, Message};
use crate::testing::Pair;
use crate::time::Duration;

fn connected(events: &[DeviceEvent]) -> usize {
    events.iter().filter(|e| matches!(e, DeviceEvent::Connected { .. })).count()
}

#[test]
fn telemetry_is_stored_and_acknowledged() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    assert_eq!(connected(&pair.device(d).events), 1, "{:?}", pair.hub_events);
    let mut m = Message::new(&b"{\"t\":21.5}"[..]);
    m.message_id = Some("m1".into());
    m.properties.set("unit", "C");
    let id = pair.send_telemetry(d, m).unwrap();
    assert!(pair.device(d).events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
    let stored: Vec<_> = pair.stored.device("dev1").collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message.message_id.as_deref(), Some("m1"));
    assert_eq!(stored[0].message.properties.get("unit"), Some(Some("C")));
    assert_eq!(&stored[0].message.body[..], b"{\"t\":21.5}");
}

#[test]
fn c2d_is_delivered_and_completed_by_puback() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |_| {});
    pair.drive();
    let mut m = Message::new(&b"hello"[..]);
    m.message_id = Some("c1".into());
    m.properties.set("color", "blue");
    pair.send_c2d("dev1", m).unwrap();
    let c2d = pair.c2d_received(d).pop().expect("C2D delivered");
    assert_eq!(&c2d.message.body[..], b"hello");
    assert_eq!(c2d.message.properties.get("color"), Some(Some("blue")));
    let lock = c2d.lock_token.unwrap();
    pair.settle(d, &lock, Disposition::Complete).unwrap();
    assert!(
        pair.hub_events.iter().any(|e| matches!(e,
        HubEvent::C2dSettled(s) if s.outcome == Outcome::Completed)),
        "{:?}",
        pair.hub_events
    );
}

#[test]
fn wrong_key_is_refused_and_not_retried() {
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev1", |c| {
        c.connection_string.authentication = crate::iothub::Authentication::SharedAccessKey(
            "Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s=".into(),
        )
    });
    pair.advance(Duration::from_secs(600));
    let events = &pair.device(d).events;
    assert_eq!(
        events.as_slice(),
        [DeviceEvent::Disconnected {
            reason: DisconnectReason::Refused(crate::mqtt::ConnectReturnCode::NotAuthorized),
            reconnect_at: None
        }]
    );
}

#[test]
fn a_device_id_with_mqtt_wildcards_sends_telemetry_and_receives_c2d() {
    // `+` and `#` are legal in device ids (spec file §2.1) but not in topic names.
    let mut pair = Pair::new(HubConfig::default());
    let d = pair.add_device("dev+#1", |_| {});
    pair.drive();
    assert_eq!(connected(&pair.device(d).events), 1, "{:?}", pair.hub_events);
    let id = pair.send_telemetry(d, Message::new(&b"t"[..])).unwrap();
    assert!(pair.device(d).events.contains(&DeviceEvent::TelemetryAcknowledged(id)));
    assert_eq!(pair.stored_bodies("dev+#1"), [bytes::Bytes::from_static(b"t")]);
    pair.send_c2d("dev+#1", Message::new(&b"c"[..])).unwrap();
    assert_eq!(pair.c2d_received(d).len(), 1);
}
