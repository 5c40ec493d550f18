//! `hubwire gateway` between 200 devices, half over MQTT and half over HTTP, and a
//! durable `hubwire hub` that is killed with SIGKILL and started again mid-run
//! (issue 6): the hub sees one connection from the gateway, every message a device
//! had acknowledged is in the hub's store afterwards, and C2D messages reach
//! devices of both kinds, the HTTP ones only as they poll (credit with drain).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use hubwire_blocking::{ClientTransport, DeviceClient, Transport};
use hubwire_conformance::process::{Hub, TempDir, next_event, start, start_hub_with};
use hubwire_conformance::raw::TlsClient;
use hubwire_core::device::DeviceConfig;
use hubwire_core::iothub::{ConnectionString, Message};
use hubwire_store::{RedbStore, Store};
use serde_json::Value;

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1), every device's key.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const DEVICES: usize = 200;
/// Devices `d000`..`d099` speak MQTT, the rest HTTP.
const MQTT_DEVICES: usize = 100;
/// How long the test waits for each phase of the run.
const PHASE: Duration = Duration::from_secs(90);
/// A device's gap between messages, and how long it waits for a C2D message.
const PACE: Duration = Duration::from_millis(250);
/// Devices that get a C2D message after the restart: five of each protocol.
const C2D_TO: [&str; 10] =
    ["d000", "d001", "d002", "d003", "d004", "d100", "d101", "d102", "d103", "d104"];

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(address) => address.port(),
        Err(e) => panic!("no free port: {e}"),
    }
}

/// What the device threads saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Message ids the gateway acknowledged.
    acknowledged: Mutex<BTreeSet<String>>,
    /// Acknowledged messages per device.
    counts: Vec<AtomicUsize>,
    /// C2D message ids completed by their device.
    completed: Mutex<BTreeSet<String>>,
}

impl Seen {
    fn fewest_acknowledged(&self) -> usize {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0)
    }
}

fn device_id(n: usize) -> String {
    format!("d{n:03}")
}

/// One device: sends a message every [`PACE`] until `stop`, completing any C2D
/// message it receives in between.
fn run_device(
    n: usize,
    gateway: (String, String),
    ca: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) {
    let id = device_id(n);
    let (transport, through) = if n < MQTT_DEVICES {
        (Transport::MqttTcp, gateway.0)
    } else {
        (Transport::Http, gateway.1)
    };
    let cs =
        format!("HostName=localhost;DeviceId={id};SharedAccessKey={KEY};GatewayHostName={through}");
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("{cs}") };
    let mut config = DeviceConfig::new(cs);
    // Polled often, so the C2D messages arrive within the test (IoT Hub asks
    // production devices for 25 minutes).
    config.c2d_poll_interval = hubwire_core::time::Duration::from_secs(1);
    let client = match DeviceClient::connect(config, ClientTransport::with_ca(transport, &ca)) {
        Ok(client) => client,
        Err(e) => panic!("{id}: {e}"),
    };
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let message_id = format!("{id}-{sent}");
        sent += 1;
        let mut message = Message::new(message_id.clone().into_bytes());
        message.message_id = Some(message_id.clone());
        // Unacknowledged (the hub away too long): it may or may not be stored.
        if client.send_telemetry_timeout(message, PHASE).is_ok() {
            seen.acknowledged.lock().unwrap_or_else(PoisonError::into_inner).insert(message_id);
            seen.counts[n].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c2d) = client.recv_c2d(PACE) {
            let Some(lock) = c2d.lock_token else { panic!("{id}: a C2D message without a lock") };
            if client.complete(&lock).is_ok() {
                let c2d_id = c2d.message.message_id.unwrap_or_default();
                seen.completed.lock().unwrap_or_else(PoisonError::into_inner).insert(c2d_id);
            }
        }
    }
    client.disconnect();
}

/// Waits until `done` holds, panicking with `what` after [`PHASE`].
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PHASE;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {PHASE:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The connection ids in the `connected` lines printed so far, and the lines
/// whose event is `event` (message id → line) among them.
fn read_lines(out: &Receiver<String>, event: &str) -> (BTreeSet<u64>, BTreeMap<String, Value>) {
    let (mut connections, mut lines) = (BTreeSet::new(), BTreeMap::new());
    while let Ok(line) = out.try_recv() {
        let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
        if value["event"] == "connected" {
            if let Some(connection) = value["connection"].as_u64() {
                connections.insert(connection);
            }
        } else if value["event"] == event {
            lines.insert(value["messageId"].as_str().unwrap_or_default().to_owned(), value);
        }
    }
    (connections, lines)
}

/// A gateway takes devices over MQTT and HTTPS: on its port 443 a WebSocket
/// upgrade to AMQP is answered 400 naming the subprotocol it does speak, where it
/// used to be accepted and then refused every device as not registered.
#[test]
fn a_gateway_answers_an_amqp_websocket_upgrade_400_and_an_mqtt_one_101() {
    let gateway_dir = TempDir::new("hubwire-gateway-ws");
    let data = gateway_dir.0.display().to_string();
    let upstream = format!("127.0.0.1:{}", free_port());
    let (_gateway, _stdin, out) = start(&[
        "gateway",
        "--upstream",
        &upstream,
        "--mqtt-port",
        "off",
        "--https-port",
        "0",
        "--data-dir",
        &data,
    ]);
    let listening = next_event(&out, "listening");
    let (Some(https), Some(ca)) = (listening["https"].as_str(), listening["ca"].as_str()) else {
        panic!("no https or ca in {listening}")
    };
    let upgrade = |subprotocol: &str| {
        let mut client = TlsClient::connect(https, ca);
        client.send(
            format!(
                "GET /$iothub/websocket HTTP/1.1\r\nHost: {https}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
            )
            .as_bytes(),
        );
        client.response_head()
    };
    let amqp = upgrade("AMQPWSB10");
    assert!(amqp.starts_with("HTTP/1.1 400 "), "{amqp}");
    let mqtt = upgrade("mqtt");
    assert!(mqtt.starts_with("HTTP/1.1 101 "), "{mqtt}");
    assert!(mqtt.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{mqtt}");
}

#[test]
fn two_hundred_mqtt_and_http_devices_reach_a_hub_killed_mid_run_over_one_connection_mio() {
    through_a_gateway_on("mio");
}

#[test]
fn two_hundred_mqtt_and_http_devices_reach_a_hub_killed_mid_run_over_one_connection_threads() {
    through_a_gateway_on("blocking");
}

/// The run, with the gateway on `runtime` (the hub on its default).
fn through_a_gateway_on(runtime: &str) {
    let data_dir = TempDir::new("hubwire-gateway-hub");
    let registry: Vec<Value> = (0..DEVICES)
        .map(|n| serde_json::json!({ "deviceId": device_id(n), "primaryKey": KEY }))
        .collect();
    let registry_file = data_dir.0.join("registry.json");
    if let Err(e) = std::fs::write(&registry_file, Value::Array(registry).to_string()) {
        panic!("{e}");
    }
    let amqp_port = free_port().to_string();
    let (dir, file) = (data_dir.0.display().to_string(), registry_file.display().to_string());
    let hub_args = ["hub", "--mqtt-port", "off", "--https-port", "off", "--amqp-port", &amqp_port]
        .into_iter()
        .chain(["--data-dir", &dir, "--registry", &file])
        .collect::<Vec<_>>();
    let hub = start_hub_with(&hub_args, data_dir);

    let gateway_dir = TempDir::new("hubwire-gateway");
    let upstream = format!("127.0.0.1:{amqp_port}");
    let gateway_data = gateway_dir.0.display().to_string();
    let (_gateway, _stdin, gateway_out) = start(&[
        "gateway",
        "--runtime",
        runtime,
        "--upstream",
        &upstream,
        "--upstream-transport",
        "amqp",
        "--ca",
        &hub.ca,
        "--mqtt-port",
        "off",
        "--mqtt-tcp-port",
        "0",
        "--https-port",
        "0",
        "--data-dir",
        &gateway_data,
    ]);
    let listening = next_event(&gateway_out, "listening");
    let field = |name: &str| match listening[name].as_str() {
        Some(value) => value.to_owned(),
        None => panic!("no {name} in {listening}"),
    };
    let (mqtt, https, gateway_ca) = (field("mqttTcp"), field("https"), field("ca"));

    let seen = Arc::new(Seen {
        counts: (0..DEVICES).map(|_| AtomicUsize::new(0)).collect(),
        ..Seen::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let devices: Vec<_> = (0..DEVICES)
        .map(|n| {
            let (gateway, ca) = ((mqtt.clone(), https.clone()), gateway_ca.clone());
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            thread::spawn(move || run_device(n, gateway, ca, seen, stop))
        })
        .collect();

    wait_for("five acknowledged messages from every device", || seen.fewest_acknowledged() >= 5);
    let Hub { mut process, data_dir, out: first_out, .. } = hub;
    if let Err(e) = process.child.kill() {
        panic!("{e}");
    }
    let _ = process.child.wait();
    let before_kill = seen.acknowledged.lock().unwrap_or_else(PoisonError::into_inner).len();
    let (first_connections, _) = read_lines(&first_out, "telemetry");
    thread::sleep(Duration::from_secs(1));

    let mut hub = start_hub_with(&hub_args, data_dir);
    let at_restart: Vec<usize> = seen.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    for id in C2D_TO {
        let line = format!(r#"{{"deviceId":"{id}","messageId":"c2d-{id}","body":"for {id}"}}"#);
        if let Err(e) = writeln!(hub.stdin, "{line}") {
            panic!("{e}");
        }
    }
    wait_for("five more acknowledged messages from every device after the restart", || {
        seen.counts
            .iter()
            .zip(&at_restart)
            .all(|(c, before)| c.load(Ordering::Relaxed) >= before + 5)
    });
    wait_for("every C2D message completed", || {
        seen.completed.lock().unwrap_or_else(PoisonError::into_inner).len() == C2D_TO.len()
    });
    stop.store(true, Ordering::Relaxed);
    for device in devices {
        if device.join().is_err() {
            panic!("a device thread panicked");
        }
    }
    // The settlements travel device → gateway → hub after the device's complete.
    thread::sleep(Duration::from_secs(2));
    let (second_connections, completed) = read_lines(&hub.out, "c2dCompleted");

    let Hub { mut process, data_dir, .. } = hub;
    if let Err(e) = process.child.kill() {
        panic!("{e}");
    }
    let _ = process.child.wait();
    let store = match RedbStore::open(data_dir.0.join("hub.redb")) {
        Ok(store) => store,
        Err(e) => panic!("{e}"),
    };
    let stored: BTreeSet<String> = match store.d2c() {
        Ok(records) => records.into_iter().filter_map(|r| r.message.message_id).collect(),
        Err(e) => panic!("{e}"),
    };

    let acknowledged = seen.acknowledged.lock().unwrap_or_else(PoisonError::into_inner);
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages are not in the hub's store: {lost:?}",
        lost.len()
    );
    assert!(
        before_kill > 0 && acknowledged.len() > before_kill,
        "{before_kill} then {}",
        acknowledged.len()
    );
    assert_eq!(first_connections.len(), 1, "the first hub saw connections {first_connections:?}");
    assert_eq!(
        second_connections.len(),
        1,
        "the restarted hub saw connections {second_connections:?}"
    );
    for id in C2D_TO {
        assert!(
            completed.contains_key(&format!("c2d-{id}")),
            "no c2dCompleted for {id}: {completed:?}"
        );
    }
    eprintln!(
        "gateway on {runtime}: {} messages acknowledged downstream ({before_kill} before the kill), {} stored, \
         all acknowledged ones among them; one upstream connection per hub process",
        acknowledged.len(),
        stored.len()
    );
}
