//! The field gateway ([`GatewayServer`]) between MQTT and HTTP devices ([`DeviceClient`])
//! and a real [`HubServer`] over loopback: the devices dial the gateway
//! (`GatewayHostName`) with tokens for the hub (`HostName`), the gateway carries
//! them over one AMQP connection, the hub judges every token.
//!
//! Every wait has a deadline, so a failing test fails instead of hanging.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hubwire_core::amqp::device::MultiplexConfig;
use hubwire_core::device::{DeviceConfig, DeviceEvent, DisconnectReason};
use hubwire_core::hub::{HubConfig, HubEvent, Outcome};
use hubwire_core::iothub::{ConnectionString, Message};
use hubwire_core::mqtt::ConnectReturnCode;
use hubwire_core::retry::Backoff;
use hubwire_core::{ConnectionId, Protocol};
use hubwire_store::RedbStore;
use hubwire_transports::{Listener, Transport};

use crate::listen::Listen;
use crate::scenarios::hub::loopback_tls;
use crate::scenarios::{KEY, record};
use crate::sync::{DeviceClient, GatewayConfig, GatewayEvent, GatewayServer, HubServer, Scheduler};
use crate::{ClientTransport, HubServerEvent};

const WAIT: Duration = Duration::from_secs(20);

/// Another valid key, which the hub does not know.
const WRONG_KEY: &str = "HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

/// Quick retries keep the restart short.
const FAST: Backoff =
    Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200) };

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("gw-dev-{i}")).collect()
}

/// An upstream hub for `devices`, AMQP over plain TCP on `address`, keeping its
/// state in `store` (a redb file).
fn hub<S: Scheduler>(address: SocketAddr, devices: &[String], store: &PathBuf) -> HubServer<S> {
    let config = HubConfig { host_names: vec!["127.0.0.1".into()], ..HubConfig::default() };
    hub_with(config, address, devices, store)
}

fn hub_with<S: Scheduler>(
    config: HubConfig,
    address: SocketAddr,
    devices: &[String],
    store: &PathBuf,
) -> HubServer<S> {
    let listen = [Listen { listener: Listener::Tcp(Protocol::Amqp), address }];
    let store = match RedbStore::open(store) {
        Ok(store) => Box::new(store),
        Err(e) => panic!("cannot open {}: {e}", store.display()),
    };
    let records = devices.iter().map(|d| record(d));
    match HubServer::<S>::start_with_store(config, records, &listen, None, store) {
        Ok(hub) => hub,
        Err(e) => panic!("hub did not start on {address}: {e}"),
    }
}

/// A fresh redb file path, removed by the caller's [`Cleanup`].
fn store_path() -> (PathBuf, Cleanup) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hubwire-gateway-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    (dir.join("hub.redb"), Cleanup(dir))
}

/// Removes a test's directory when dropped.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A gateway in front of the hub at `upstream`, serving MQTT over plain TCP.
fn gateway<S: Scheduler>(upstream: SocketAddr) -> GatewayServer<S> {
    gateway_on(upstream, Listener::Tcp(Protocol::Mqtt), None)
}

/// A gateway in front of the hub at `upstream`, serving `listener` on an
/// ephemeral loopback port, with `tls` for a TLS listener.
fn gateway_on<S: Scheduler>(
    upstream: SocketAddr,
    listener: Listener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> GatewayServer<S> {
    let mut mux = MultiplexConfig::new(upstream.to_string());
    mux.backoff = FAST;
    let config = GatewayConfig {
        upstream: mux,
        upstream_transport: ClientTransport::new(Transport::AmqpTcp),
        listen: vec![Listen { listener, address: SocketAddr::from(([127, 0, 0, 1], 0)) }],
        tls,
        downstream: HubConfig::default(),
    };
    match GatewayServer::<S>::start(config) {
        Ok(gateway) => gateway,
        Err(e) => panic!("gateway did not start: {e}"),
    }
}

/// A device of the hub at `hub` reaching it through `gateway` over MQTT.
fn device<S: Scheduler>(
    hub: SocketAddr,
    gateway: &GatewayServer<S>,
    device_id: &str,
    key: &str,
) -> DeviceClient<S> {
    let Some(through) = gateway.local_addr(Listener::Tcp(Protocol::Mqtt)) else {
        panic!("the gateway has no MQTT listener");
    };
    let cs = format!(
        "HostName={hub};DeviceId={device_id};SharedAccessKey={key};GatewayHostName={through}"
    );
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("bad connection string {cs}") };
    let mut config = DeviceConfig::new(cs);
    config.backoff = FAST;
    match DeviceClient::<S>::connect(config, ClientTransport::new(Transport::MqttTcp)) {
        Ok(device) => device,
        Err(e) => panic!("{device_id} did not start: {e}"),
    }
}

fn wait_connected<S: Scheduler>(device: &DeviceClient<S>, device_id: &str) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now())) {
        if matches!(event, DeviceEvent::Connected { .. }) {
            return;
        }
        seen.push(event);
    }
    panic!("{device_id} did not connect within {WAIT:?}; saw {seen:?}");
}

/// Reads hub events until `pick` has had what it wants (returns true); false at
/// the deadline.
fn drain_hub<S: Scheduler>(
    hub: &HubServer<S>,
    mut pick: impl FnMut(HubServerEvent) -> bool,
) -> bool {
    let deadline = Instant::now() + WAIT;
    while let Some(event) = hub.recv_event(deadline.saturating_duration_since(Instant::now())) {
        if pick(event) {
            return true;
        }
    }
    false
}

fn free_address() -> SocketAddr {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(address) => address,
        Err(e) => panic!("{e}"),
    }
}

/// `count` MQTT devices through the gateway: every message stored by the hub under
/// its device, all on one upstream connection; a C2D message for each reaches it
/// and its completion reaches the hub.
pub fn mqtt_devices_share_one_upstream_connection<S: Scheduler>(count: usize) {
    let ids = ids(count);
    let (store, _cleanup) = store_path();
    let address = free_address();
    let hub = hub::<S>(address, &ids, &store);
    let gateway = gateway::<S>(address);
    let devices: Vec<_> = ids.iter().map(|id| device(address, &gateway, id, KEY)).collect();
    for (device, id) in devices.iter().zip(&ids) {
        wait_connected(device, id);
    }
    for (device, id) in devices.iter().zip(&ids) {
        for n in 0..3 {
            let mut message = Message::new(format!("{id} {n}").into_bytes());
            message.message_id = Some(format!("{id}-{n}"));
            if let Err(e) = device.send_telemetry_timeout(message, WAIT) {
                panic!("{id} message {n}: {e}");
            }
        }
        if let Err(e) = hub.send_c2d(id, Message::new(format!("to {id}").into_bytes())) {
            panic!("{id}: {e}");
        }
    }
    for (device, id) in devices.iter().zip(&ids) {
        let Some(c2d) = device.recv_c2d(WAIT) else { panic!("{id}: no C2D message") };
        assert_eq!(c2d.message.body.as_ref(), format!("to {id}").as_bytes());
        if let Some(lock) = c2d.lock_token {
            if let Err(e) = device.complete(&lock) {
                panic!("{id}: {e}");
            }
        }
    }

    let (mut stored, mut connections, mut completed) =
        (BTreeMap::new(), BTreeMap::<String, ConnectionId>::new(), BTreeSet::new());
    let done = drain_hub(&hub, |event| {
        match event {
            HubServerEvent::Stored(record) => {
                let id = record.message.message_id.clone().unwrap_or_default();
                stored.insert(id, record.identity.device_id);
            }
            HubServerEvent::Hub(HubEvent::Connected { connection, identity, .. }) => {
                connections.insert(identity.device_id, connection);
            }
            HubServerEvent::Hub(HubEvent::C2dSettled(settled)) => {
                assert_eq!(settled.outcome, Outcome::Completed, "{settled:?}");
                completed.insert(settled.device_id);
            }
            _ => {}
        }
        stored.len() == 3 * ids.len() && completed.len() == ids.len()
    });
    assert!(done, "within {WAIT:?}: {} stored, {} completed", stored.len(), completed.len());
    for id in &ids {
        for n in 0..3 {
            assert_eq!(stored.get(&format!("{id}-{n}")), Some(id), "{id} message {n}");
        }
    }
    assert_eq!(connections.len(), ids.len(), "{connections:?}");
    let distinct: BTreeSet<_> = connections.values().collect();
    assert_eq!(distinct.len(), 1, "one upstream connection: {connections:?}");
}

/// A device whose key the hub does not know is refused with CONNACK 5: the hub
/// refused its token upstream, not the gateway.
pub fn a_token_the_hub_refuses_gets_connack_5<S: Scheduler>() {
    let ids = ids(1);
    let (store, _cleanup) = store_path();
    let address = free_address();
    let hub = hub::<S>(address, &ids, &store);
    let gateway = gateway::<S>(address);
    let device = device(address, &gateway, &ids[0], WRONG_KEY);
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let reason = loop {
        let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now()))
        else {
            panic!("no refusal within {WAIT:?}; saw {seen:?}");
        };
        match event {
            DeviceEvent::Disconnected { reason, .. } => break reason,
            other => seen.push(other),
        }
    };
    assert_eq!(reason, DisconnectReason::Refused(ConnectReturnCode::NotAuthorized));
    let mut refused = false;
    drain_hub(&hub, |event| {
        if let HubServerEvent::Hub(HubEvent::Refused { identity: Some(identity), .. }) = &event {
            refused = identity.device_id == ids[0];
        }
        refused
    });
    assert!(refused, "the hub did not log the refusal");
}

/// The hub stopped and started again on the same port mid-run: every message
/// acknowledged downstream is in its store afterwards.
pub fn no_acknowledged_message_is_lost_when_the_hub_restarts<S: Scheduler>() {
    let ids = ids(5);
    let (store, _cleanup) = store_path();
    let address = free_address();
    let mut hub = Some(hub::<S>(address, &ids, &store));
    let gateway = gateway::<S>(address);
    let devices: Vec<_> = ids.iter().map(|id| device(address, &gateway, id, KEY)).collect();
    for (device, id) in devices.iter().zip(&ids) {
        wait_connected(device, id);
    }
    let acknowledged = std::sync::Mutex::new(BTreeSet::new());
    let mut before = 0;
    std::thread::scope(|scope| {
        for (device, id) in devices.iter().zip(&ids) {
            let acknowledged = &acknowledged;
            scope.spawn(move || {
                for n in 0..40 {
                    let mut message = Message::new(format!("{id} {n}").into_bytes());
                    let message_id = format!("{id}-{n}");
                    message.message_id = Some(message_id.clone());
                    // The outage may outlast one wait; the message is then sent
                    // again (at least once).
                    let mut tries = 0;
                    while device.send_telemetry_timeout(message.clone(), WAIT).is_err() {
                        tries += 1;
                        assert!(tries < 3, "{message_id} never acknowledged");
                    }
                    acknowledged.lock().unwrap_or_else(|e| e.into_inner()).insert(message_id);
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(150));
        if let Some(hub) = hub.take() {
            hub.shutdown();
        }
        before = acknowledged.lock().unwrap_or_else(|e| e.into_inner()).len();
        std::thread::sleep(Duration::from_millis(300));
        hub = Some(self::hub::<S>(address, &ids, &store));
    });
    let acknowledged = acknowledged.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(acknowledged.len(), 40 * ids.len());
    assert!(before > 0 && before < acknowledged.len(), "the restart came mid-run: {before}");
    // The gateway saw its upstream connection go and come back.
    let mut lost = false;
    while let Some(event) = gateway.recv_event(Duration::from_millis(100)) {
        if let GatewayEvent::Upstream {
            event: DeviceEvent::Disconnected { reconnect_at: Some(_), .. },
            ..
        } = event
        {
            lost = true;
        }
    }
    assert!(lost, "the upstream connection was not lost");
    let Some(hub) = hub else { panic!("the hub did not restart") };
    let stored: BTreeSet<String> =
        hub.stored().into_iter().filter_map(|record| record.message.message_id).collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged downstream, not stored upstream: {lost:?}");
    drop(gateway);
}

/// A message the hub does not accept (larger than its limit, which the gateway's
/// own is not) is never acknowledged downstream: MQTT has no negative PUBACK, so
/// the gateway closes the device's connection.
pub fn telemetry_the_hub_rejects_is_not_acknowledged_downstream<S: Scheduler>() {
    let ids = ids(1);
    let (store, _cleanup) = store_path();
    let address = free_address();
    let config = HubConfig {
        host_names: vec!["127.0.0.1".into()],
        max_message_size: 1024,
        ..HubConfig::default()
    };
    let hub = hub_with::<S>(config, address, &ids, &store);
    let gateway = gateway::<S>(address);
    let device = device(address, &gateway, &ids[0], KEY);
    wait_connected(&device, &ids[0]);
    let big = Message::new(vec![7u8; 4096]);
    assert!(device.send_telemetry_timeout(big, Duration::from_secs(2)).is_err());
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let Some(event) = gateway.recv_event(deadline.saturating_duration_since(Instant::now()))
        else {
            panic!("no downstream refusal within {WAIT:?}; saw {seen:?}");
        };
        if let GatewayEvent::Downstream(HubServerEvent::Hub(HubEvent::Refused { code, .. })) =
            &event
        {
            assert_eq!(*code, hubwire_core::iothub::ErrorCode::MESSAGE_TOO_LARGE);
            break;
        }
        seen.push(event);
    }
    assert!(hub.stored().is_empty());
}

/// Reads hub events until a C2D settlement for `device_id`; panics at the
/// deadline.
fn settled_outcome<S: Scheduler>(hub: &HubServer<S>, device_id: &str) -> Outcome {
    let mut outcome = None;
    let done = drain_hub(hub, |event| {
        if let HubServerEvent::Hub(HubEvent::C2dSettled(settled)) = event {
            if settled.device_id == device_id {
                outcome = Some(settled.outcome);
            }
        }
        outcome.is_some()
    });
    match outcome {
        Some(outcome) if done => outcome,
        _ => panic!("no settlement for {device_id} within {WAIT:?}"),
    }
}

/// A device that went away gets the C2D message sent meanwhile when it is back,
/// once; the gateway held no lock for it while it was away.
pub fn c2d_for_a_device_away_waits_in_the_hub_and_arrives_once<S: Scheduler>() {
    let ids = ids(1);
    let id = &ids[0];
    let (store, _cleanup) = store_path();
    let address = free_address();
    let hub = hub::<S>(address, &ids, &store);
    let gateway = gateway::<S>(address);
    // Reads the gateway's events until `pick` accepts one; false at the deadline.
    let heard = |pick: &dyn Fn(&GatewayEvent) -> bool| {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if gateway.recv_event(Duration::from_millis(100)).is_some_and(|e| pick(&e)) {
                return true;
            }
        }
        false
    };
    let upstream_connected = |e: &GatewayEvent| {
        matches!(e, GatewayEvent::Upstream { event: DeviceEvent::Connected { .. }, .. })
    };
    let first = device(address, &gateway, id, KEY);
    wait_connected(&first, id);
    assert!(heard(&upstream_connected));
    first.disconnect();
    drop(first);
    let left = |e: &GatewayEvent| {
        matches!(e, GatewayEvent::Downstream(HubServerEvent::Hub(HubEvent::Disconnected { .. })))
    };
    assert!(heard(&left), "the gateway did not see {id} leave");
    if let Err(e) = hub.send_c2d(id, Message::new(b"while away".to_vec())) {
        panic!("{e}");
    }
    let again = device(address, &gateway, id, KEY);
    wait_connected(&again, id);
    // The gateway had let its upstream half go: it is added and connects again.
    assert!(heard(&upstream_connected), "the gateway kept {id} upstream while it was away");
    let Some(c2d) = again.recv_c2d(WAIT) else { panic!("no C2D message after coming back") };
    assert_eq!(c2d.message.body.as_ref(), b"while away");
    let Some(lock) = c2d.lock_token else { panic!("an MQTT QoS 1 delivery has a lock") };
    if let Err(e) = again.complete(&lock) {
        panic!("{e}");
    }
    assert_eq!(settled_outcome(&hub, id), Outcome::Completed);
    assert!(again.recv_c2d(Duration::from_millis(500)).is_none(), "delivered twice");
}

/// A C2D message delivered downstream while the hub restarts is delivered again by
/// the restarted hub; the gateway knows it, so the device gets it once, and its
/// completion settles the new delivery.
pub fn c2d_redelivered_after_a_hub_restart_reaches_the_device_once<S: Scheduler>() {
    let ids = ids(1);
    let id = &ids[0];
    let (store, _cleanup) = store_path();
    let address = free_address();
    let hub = hub::<S>(address, &ids, &store);
    let gateway = gateway::<S>(address);
    let device = device(address, &gateway, id, KEY);
    wait_connected(&device, id);
    if let Err(e) = hub.send_c2d(id, Message::new(b"across a restart".to_vec())) {
        panic!("{e}");
    }
    let Some(c2d) = device.recv_c2d(WAIT) else { panic!("no C2D message") };
    let Some(lock) = c2d.lock_token else { panic!("an MQTT QoS 1 delivery has a lock") };
    hub.shutdown();
    let hub = self::hub::<S>(address, &ids, &store);
    // The restarted hub delivers it again over the new upstream connection.
    let deadline = Instant::now() + WAIT;
    let mut redelivered = false;
    while !redelivered && Instant::now() < deadline {
        if let Some(GatewayEvent::Upstream { event: DeviceEvent::C2d(_), .. }) =
            gateway.recv_event(Duration::from_millis(100))
        {
            redelivered = true;
        }
    }
    assert!(redelivered, "the restarted hub did not deliver the message again");
    assert!(device.recv_c2d(Duration::from_millis(500)).is_none(), "delivered twice");
    if let Err(e) = device.complete(&lock) {
        panic!("{e}");
    }
    assert_eq!(settled_outcome(&hub, id), Outcome::Completed);
}

/// An HTTP device polls through the gateway: the gateway takes a C2D message from
/// the hub only while a poll waits (credit 1 with drain, AMQP 1.0 §2.6.7), one per
/// poll; the hub keeps the rest, and an empty poll drains the credit. Its telemetry
/// is acknowledged (204) once the hub has it; its completions reach the hub, and an
/// abandon gives the message back to the hub, which counts it.
pub fn an_http_device_takes_c2d_upstream_only_while_it_polls<S: Scheduler>() {
    let ids = ids(1);
    let id = &ids[0];
    let (store, cleanup) = store_path();
    let address = free_address();
    let hub = hub::<S>(address, &ids, &store);
    // HTTPS downstream: IoT Hub's port-443 listener, on an ephemeral port.
    let (tls, ca) = loopback_tls(&cleanup.0);
    let gateway = gateway_on::<S>(address, Listener::Web, Some(tls));
    let Some(through) = gateway.local_addr(Listener::Web) else { panic!("no HTTPS listener") };
    let cs =
        format!("HostName={address};DeviceId={id};SharedAccessKey={KEY};GatewayHostName={through}");
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("bad connection string {cs}") };
    let mut config = DeviceConfig::new(cs);
    // It polls when told to (`poll_now`), not on a schedule.
    config.c2d_poll_interval = hubwire_core::time::Duration::from_secs(3600);
    let device =
        match DeviceClient::<S>::connect(config, ClientTransport::with_ca(Transport::Http, &ca)) {
            Ok(device) => device,
            Err(e) => panic!("{id} did not start: {e}"),
        };
    let mut message = Message::new(b"over http".to_vec());
    message.message_id = Some(String::from("h1"));
    if let Err(e) = device.send_telemetry_timeout(message, WAIT) {
        panic!("{e}");
    }
    let stored = drain_hub(
        &hub,
        |event| matches!(event, HubServerEvent::Stored(r) if r.message.message_id.as_deref() == Some("h1")),
    );
    assert!(stored, "the hub did not store the acknowledged message");

    // Upstream C2D events the gateway reports within `wait`, up to `enough`: a
    // message or a drain.
    let upstream_c2d = |wait: Duration, enough: usize| {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while seen.len() < enough {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = gateway.recv_event(left) else { break };
            if let GatewayEvent::Upstream {
                event: e @ (DeviceEvent::C2d(_) | DeviceEvent::C2dDrained),
                ..
            } = event
            {
                seen.push(e);
            }
        }
        seen
    };
    // The device polls once at start: nothing queued, the credit is drained.
    let first_poll = upstream_c2d(WAIT, 1);
    assert!(matches!(first_poll.as_slice(), [DeviceEvent::C2dDrained]), "{first_poll:?}");

    for body in ["first", "second"] {
        if let Err(e) = hub.send_c2d(id, Message::new(body.as_bytes().to_vec())) {
            panic!("{e}");
        }
    }
    let unasked = upstream_c2d(Duration::from_millis(500), usize::MAX);
    assert!(unasked.is_empty(), "the gateway took C2D messages nobody polled for: {unasked:?}");

    // After a 200 the device polls again at once until a 204 (spec file §6.6, as
    // Node's `drain`), each GET taking one message upstream. "first" is abandoned
    // once: it goes back to the hub, which counts the delivery and hands it out on
    // a later poll.
    device.poll_now();
    let mut abandoned = false;
    let mut completed = Vec::new();
    while completed.len() < 2 {
        let Some(c2d) = device.recv_c2d(WAIT) else { panic!("completed only {completed:?}") };
        let Some(lock) = c2d.lock_token else { panic!("an HTTP delivery has an ETag") };
        let body = String::from_utf8_lossy(&c2d.message.body).into_owned();
        let settled = if body == "first" && !abandoned {
            abandoned = true;
            device.abandon(&lock)
        } else {
            completed.push(body);
            device.complete(&lock)
        };
        if let Err(e) = settled {
            panic!("{e}");
        }
        // A later poll brings the abandoned message back.
        device.poll_now();
    }
    completed.sort();
    assert_eq!(completed, ["first", "second"]);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(settled_outcome(&hub, id));
    }
    assert!(outcomes.contains(&Outcome::Abandoned { delivery_count: 1 }), "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Completed).count(), 2, "{outcomes:?}");
    let taken = upstream_c2d(Duration::from_secs(1), usize::MAX);
    let mut bodies: Vec<&[u8]> = taken
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::C2d(c2d) => Some(c2d.message.body.as_ref()),
            _ => None,
        })
        .collect();
    bodies.sort();
    assert_eq!(bodies, [&b"first"[..], b"first", b"second"], "one message per GET: {taken:?}");
    assert!(device.recv_c2d(Duration::from_millis(500)).is_none(), "a message out of nowhere");
}
