//! C2D credit on fetch (credit 1 with drain, AMQP 1.0 §2.6.7) against the hub engine.

use super::*;

/// An on-fetch device `device_id` whose links attached.
fn on_fetch(pair: &mut MuxPair, device_id: &str) -> DeviceKey {
    let key = pair.add_undriven(device_id, KEY);
    pair.mux.set_c2d_credit(pair.now, key, C2dCredit::OnFetch);
    pair.drive();
    assert_eq!(pair.events_of(key), [&DeviceEvent::Connected { session_present: false }]);
    key
}

fn queue(pair: &mut MuxPair, device_id: &str, body: &'static str) {
    pair.hub.send_c2d(pair.now, device_id, Message::new(body)).unwrap();
    pair.drive();
}

fn fetch(pair: &mut MuxPair, key: DeviceKey) {
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    pair.drive();
}

fn drained(pair: &MuxPair, key: DeviceKey) -> usize {
    pair.events_of(key).into_iter().filter(|e| **e == DeviceEvent::C2dDrained).count()
}

fn bodies(pair: &MuxPair, key: DeviceKey) -> Vec<Vec<u8>> {
    pair.c2d_of(key).iter().map(|c| c.message.body.to_vec()).collect()
}

#[test]
fn on_fetch_device_receives_nothing_unasked_and_the_hub_keeps_its_messages_deliverable() {
    let mut pair = MuxPair::new();
    let key = on_fetch(&mut pair, "dev1");
    queue(&mut pair, "dev1", "one");
    queue(&mut pair, "dev1", "two");
    pair.advance(Duration::from_secs(60));
    assert!(pair.c2d_of(key).is_empty(), "no credit, no delivery");
    assert_eq!(drained(&pair, key), 0);
    // Were "one" locked for the device while it did not ask, the fetch would find
    // nothing deliverable and come back drained.
    fetch(&mut pair, key);
    assert_eq!(bodies(&pair, key), [b"one"]);
    assert_eq!(drained(&pair, key), 0);
}

#[test]
fn fetch_on_an_empty_queue_ends_in_c2d_drained() {
    let mut pair = MuxPair::new();
    let key = on_fetch(&mut pair, "dev1");
    fetch(&mut pair, key);
    assert_eq!(drained(&pair, key), 1);
    assert!(pair.c2d_of(key).is_empty());
    // The credit went back with the drain: a message queued now waits.
    queue(&mut pair, "dev1", "late");
    assert!(pair.c2d_of(key).is_empty());
    fetch(&mut pair, key);
    assert_eq!(bodies(&pair, key), [b"late"]);
    assert_eq!(drained(&pair, key), 1, "the second fetch brought a message");
}

#[test]
fn each_fetch_brings_one_message_and_settling_tops_up_nothing() {
    let mut pair = MuxPair::new();
    let key = on_fetch(&mut pair, "dev1");
    queue(&mut pair, "dev1", "one");
    queue(&mut pair, "dev1", "two");
    fetch(&mut pair, key);
    assert_eq!(bodies(&pair, key), [b"one"]);
    let lock = pair.c2d_of(key)[0].lock_token.unwrap();
    pair.mux.settle(pair.now, key, &lock, Disposition::Complete).unwrap();
    pair.advance(Duration::from_secs(60));
    assert_eq!(bodies(&pair, key), [b"one"], "the settlement granted no credit");
    fetch(&mut pair, key);
    assert_eq!(bodies(&pair, key), [&b"one"[..], b"two"]);
    fetch(&mut pair, key);
    assert_eq!(drained(&pair, key), 1);
    assert_eq!(pair.c2d_of(key).len(), 2);
}

#[test]
fn a_second_fetch_while_one_is_out_sends_nothing() {
    let mut pair = MuxPair::new();
    let key = on_fetch(&mut pair, "dev1");
    queue(&mut pair, "dev1", "one");
    queue(&mut pair, "dev1", "two");
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    let mut flow = Vec::new();
    while let Some(t) = pair.mux.poll_transmit() {
        if let Transmit::Send(bytes) = t {
            flow.extend_from_slice(&bytes);
        }
    }
    assert!(!flow.is_empty(), "the first fetch's flow");
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    assert!(pair.mux.poll_transmit().is_none(), "no second flow");
    let id = pair.connection.unwrap();
    pair.hub.handle_input(pair.now, id, &flow).unwrap();
    pair.drive();
    assert_eq!(bodies(&pair, key), [b"one"]);
    assert_eq!(drained(&pair, key), 0);
}

#[test]
fn a_fetch_made_before_the_links_attach_is_served_once_they_do() {
    let mut pair = MuxPair::new();
    // Registered first, so that the hub queues for it before it connects.
    pair.hub
        .registry_mut()
        .add(DeviceRecord {
            device_id: "dev1".into(),
            primary_key: KEY.into(),
            secondary_key: KEY.into(),
            enabled: true,
        })
        .unwrap();
    pair.hub.send_c2d(pair.now, "dev1", Message::new("waiting")).unwrap();
    pair.hub.send_c2d(pair.now, "dev1", Message::new("later")).unwrap();
    let key = pair.add_undriven("dev1", KEY);
    pair.mux.set_c2d_credit(pair.now, key, C2dCredit::OnFetch);
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    pair.drive();
    assert_eq!(bodies(&pair, key), [b"waiting"]);
    assert_eq!(drained(&pair, key), 0);
}

#[test]
fn a_fetch_out_when_the_connection_is_lost_ends_in_c2d_drained_and_the_next_waits_for_the_links() {
    let mut pair = MuxPair::new();
    let key = on_fetch(&mut pair, "dev1");
    // The fetch's flow never reaches the hub.
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    if let Some(id) = pair.connection.take() {
        pair.hub.handle_close(pair.now, id);
    }
    pair.mux.handle_close(pair.now);
    pair.drive();
    let events = pair.events_of(key);
    assert!(
        matches!(
            events[1..],
            [DeviceEvent::C2dDrained, DeviceEvent::Disconnected { reconnect_at: Some(_), .. }]
        ),
        "{events:?}"
    );
    // Asked for while offline: sent once the links are back.
    queue(&mut pair, "dev1", "after");
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    pair.advance(Duration::from_secs(120));
    assert_eq!(bodies(&pair, key), [b"after"]);
    assert_eq!(drained(&pair, key), 1, "{:?}", pair.events_of(key));
}

#[test]
fn a_device_refused_with_a_fetch_waiting_gets_c2d_drained() {
    let mut pair = MuxPair::new();
    let key = pair.add_undriven("intruder", WRONG_KEY);
    pair.mux.set_c2d_credit(pair.now, key, C2dCredit::OnFetch);
    pair.mux.fetch_c2d(pair.now, key).unwrap();
    pair.drive();
    let events = pair.events_of(key);
    assert!(
        matches!(
            events[..],
            [DeviceEvent::C2dDrained, DeviceEvent::Disconnected { reconnect_at: None, .. }]
        ),
        "{events:?}"
    );
    assert_eq!(pair.mux.fetch_c2d(pair.now, key), Err(C2dFetchError::Stopped));
}

#[test]
fn standing_devices_take_c2d_unasked_and_refuse_fetches() {
    let mut pair = MuxPair::new();
    let standing = pair.add("standing", KEY);
    let fetching = on_fetch(&mut pair, "fetching");
    for body in ["a", "b", "c"] {
        queue(&mut pair, "standing", body);
        queue(&mut pair, "fetching", body);
    }
    assert_eq!(bodies(&pair, standing), [b"a", b"b", b"c"]);
    assert!(pair.c2d_of(fetching).is_empty());
    assert_eq!(pair.mux.fetch_c2d(pair.now, standing), Err(C2dFetchError::Standing));
    assert_eq!(pair.mux.fetch_c2d(pair.now, DeviceKey(99)), Err(C2dFetchError::Stopped));
    assert_eq!(drained(&pair, standing), 0);
}

#[test]
fn switching_to_standing_grants_credit_at_once() {
    let mut pair = MuxPair::new();
    let key = on_fetch(&mut pair, "dev1");
    queue(&mut pair, "dev1", "one");
    queue(&mut pair, "dev1", "two");
    assert!(pair.c2d_of(key).is_empty());
    pair.mux.set_c2d_credit(pair.now, key, C2dCredit::Standing);
    pair.drive();
    assert_eq!(bodies(&pair, key), [&b"one"[..], b"two"]);
    assert_eq!(drained(&pair, key), 0, "no fetch was out");
}

#[test]
fn a_device_that_receives_no_c2d_cannot_fetch() {
    let mut pair = MuxPair::new();
    let key = pair.add_undriven("dev1", KEY);
    pair.mux.set_c2d_credit(pair.now, key, C2dCredit::OnFetch);
    // As `DeviceConfig::receive_c2d` off would have it (a module never has C2D).
    if let Some(slot) = pair.mux.devices.get_mut(&key) {
        slot.config.receive_c2d = false;
    }
    assert_eq!(pair.mux.fetch_c2d(pair.now, key), Err(C2dFetchError::NoC2d));
}
