//! Several devices over one AMQP connection (spec file §5.10) through
//! [`MultiplexedClient`], on every AMQP transport against a real [`HubServer`] over
//! loopback. The 995-device proof, through the `hubwire hub` program, is
//! conformance/tests/amqp_multiplex.rs.
//!
//! Every wait has a deadline, so a failing test fails instead of hanging.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use hubwire_transports::Transport;

use crate::scenarios::{KEY, TestHub};
use crate::sync::{MultiplexedClient, Scheduler};
use crate::{ClientTransport, HubServerEvent};
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig};
use hubwire_core::device::{DeviceConfig, DeviceEvent, DisconnectReason};
use hubwire_core::hub::HubEvent;
use hubwire_core::iothub::{ConnectionString, Disposition, Message};

const WAIT: Duration = Duration::from_secs(10);

/// Another valid key, which the hub does not know.
const WRONG_KEY: &str = "HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

fn device(port: u16, device_id: &str, key: &str) -> DeviceConfig {
    let cs = format!("HostName=127.0.0.1:{port};DeviceId={device_id};SharedAccessKey={key}");
    match ConnectionString::parse(&cs) {
        Ok(cs) => DeviceConfig::new(cs),
        Err(e) => panic!("{cs}: {e}"),
    }
}

/// Reads events until `pick` accepts one; panics at the deadline, listing the
/// events seen.
fn wait<S: Scheduler, T>(
    client: &MultiplexedClient<S>,
    mut pick: impl FnMut(DeviceKey, &DeviceEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some((key, event)) =
        client.recv_event(deadline.saturating_duration_since(Instant::now()))
    {
        if let Some(found) = pick(key, &event) {
            return found;
        }
        seen.push((key, event));
    }
    panic!("the event did not come within {WAIT:?}; saw {seen:?}");
}

/// Three devices over one AMQP connection, per AMQP transport; a wrong key fails alone.
pub fn three_devices_share_one_connection_and_a_wrong_key_fails_alone<S: Scheduler>() {
    let ids = ["m1", "m2", "m3"];
    let hub = TestHub::<S>::start(&ids);
    for transport in [Transport::Amqp, Transport::AmqpWs, Transport::AmqpTcp] {
        let port = hub.addr(transport).port();
        let config = MultiplexConfig::new(format!("127.0.0.1:{port}"));
        let client = match MultiplexedClient::<S>::connect(config, hub.client(transport)) {
            Ok(client) => client,
            Err(e) => panic!("{transport}: {e}"),
        };
        let mut keys = BTreeMap::new();
        for id in ids {
            match client.add_device(device(port, id, KEY)) {
                Ok(key) => keys.insert(key, id),
                Err(e) => panic!("{transport} {id}: {e}"),
            };
        }
        let wrong = match client.add_device(device(port, "m1", WRONG_KEY)) {
            Ok(key) => key,
            Err(e) => panic!("{transport}: {e}"),
        };
        let mut connected = BTreeSet::new();
        let mut refused = None;
        while connected.len() < ids.len() || refused.is_none() {
            wait(&client, |key, event| match event {
                DeviceEvent::Connected { .. } => Some(connected.insert(key)),
                DeviceEvent::Disconnected {
                    reason: DisconnectReason::TokenRefused { status_code, .. },
                    reconnect_at: None,
                } if key == wrong => Some(refused.replace(*status_code).is_none()),
                _ => None,
            });
        }
        assert_eq!(refused, Some(401), "{transport}: the wrong key is refused alone");
        assert_eq!(connected, keys.keys().copied().collect(), "{transport}");

        for (key, id) in &keys {
            let body = format!("{transport} {id}");
            if let Err(e) = client.send_telemetry(*key, Message::new(body.into_bytes())) {
                panic!("{transport} {id}: {e}");
            }
            if let Err(e) = hub.server().send_c2d(id, Message::new(b"c2d".to_vec())) {
                panic!("{transport} {id}: {e}");
            }
        }
        let (mut acknowledged, mut completed) = (BTreeSet::new(), BTreeSet::new());
        while acknowledged.len() < keys.len() || completed.len() < keys.len() {
            wait(&client, |key, event| match event {
                DeviceEvent::TelemetryAcknowledged(_) => Some(acknowledged.insert(key)),
                DeviceEvent::C2d(c2d) => {
                    let Some(lock) = c2d.lock_token else { panic!("AMQP C2D has a lock") };
                    assert_eq!(client.settle(key, &lock, Disposition::Complete), Ok(()));
                    Some(completed.insert(key))
                }
                _ => None,
            });
        }

        // The hub saw every device on one connection.
        let mut connections = BTreeMap::new();
        while connections.len() < ids.len() {
            let Some(event) = hub.server().recv_event(WAIT) else {
                panic!("{transport}: the hub reported {connections:?} only");
            };
            if let HubServerEvent::Hub(HubEvent::Connected { connection, identity, .. }) = event {
                connections.insert(identity.device_id, connection);
            }
        }
        let distinct: BTreeSet<_> = connections.values().collect();
        assert_eq!(distinct.len(), 1, "{transport}: {connections:?}");
        client.close();
        while hub.server().recv_event(Duration::from_millis(200)).is_some() {}
    }
}

/// MQTT cannot multiplex: refused by name.
pub fn an_mqtt_transport_is_refused_naming_its_protocol<S: Scheduler>() {
    let config = MultiplexConfig::new("127.0.0.1");
    let Err(e) = MultiplexedClient::<S>::connect(config, ClientTransport::new(Transport::Mqtt))
    else {
        panic!("MQTT cannot multiplex devices");
    };
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("MQTT"), "{e}");
}
