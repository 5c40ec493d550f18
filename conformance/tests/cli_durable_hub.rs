//! `hubwire hub --data-dir` keeps its state in `hub.redb`: a hub killed with SIGKILL
//! and started again on the same directory loses no acknowledged D2C message (the
//! next one continues its device's sequence numbers, which are written in the same
//! transaction as the messages) and no queued C2D message (delivered after the
//! restart with its sequence number).

use std::io::Write;
use std::time::Duration;

use hubwire_blocking::{ClientTransport, DeviceClient, Transport};
use hubwire_conformance::process::{Hub, TempDir, next_event, next_of, start_hub_with};
use hubwire_core::device::DeviceConfig;
use hubwire_core::iothub::{ConnectionString, Message};
use serde_json::Value;

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WAIT: Duration = Duration::from_secs(10);

fn device(address: &str, ca: &str) -> DeviceClient {
    let cs = format!("HostName={address};DeviceId=dev1;SharedAccessKey={KEY}");
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("{cs}") };
    match DeviceClient::connect(
        DeviceConfig::new(cs),
        ClientTransport::with_ca(Transport::Mqtt, ca),
    ) {
        Ok(device) => device,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_hub_killed_with_sigkill_keeps_acknowledged_telemetry_and_queued_c2d() {
    let data_dir = TempDir::new("hubwire-durable");
    let registry = serde_json::json!([{ "deviceId": "dev1", "primaryKey": KEY }]);
    let registry_file = data_dir.0.join("registry.json");
    if let Err(e) = std::fs::write(&registry_file, registry.to_string()) {
        panic!("{e}");
    }
    let (dir, file) = (data_dir.0.display().to_string(), registry_file.display().to_string());
    let args = ["hub", "--mqtt-port", "0", "--https-port", "off", "--amqp-port", "off"]
        .into_iter()
        .chain(["--data-dir", &dir, "--registry", &file])
        .collect::<Vec<_>>();

    let mut hub = start_hub_with(&args, data_dir);
    let first = device(&hub.mqtt, &hub.ca);
    for n in 0..20u8 {
        if let Err(e) = first.send_telemetry_timeout(Message::new(vec![n]), WAIT) {
            panic!("message {n}: {e}");
        }
    }
    // Two C2D messages queued while the device cannot take them (it disconnects
    // first, so they stay in the queue).
    first.disconnect();
    for id in ["c1", "c2"] {
        let line = format!(r#"{{"deviceId":"dev1","messageId":"{id}","body":"{id}"}}"#);
        if let Err(e) = writeln!(hub.stdin, "{line}") {
            panic!("{e}");
        }
        let queued = next_event(&hub.out, "c2dQueued");
        assert_eq!(queued["deviceId"], "dev1", "{queued}");
    }
    drop(first);

    // SIGKILL: no chance to flush anything.
    let Hub { mut process, data_dir, .. } = hub;
    if let Err(e) = process.child.kill() {
        panic!("{e}");
    }
    let _ = process.child.wait();
    let hub = start_hub_with(&args, data_dir);

    let second = device(&hub.mqtt, &hub.ca);
    let mut received = Vec::new();
    for _ in 0..2 {
        let Some(c2d) = second.recv_c2d(WAIT) else {
            panic!("the queued C2D messages did not survive the kill: got {received:?}");
        };
        received.push(c2d.message.message_id.clone().unwrap_or_default());
        let Some(lock) = c2d.lock_token else { panic!("no lock token") };
        assert_eq!(second.complete(&lock), Ok(()));
        // The hub settles the message it queued before the kill, by its number.
        let completed = next_event(&hub.out, "c2dCompleted");
        assert_eq!(completed["sequenceNumber"], received.len(), "{completed}");
    }
    assert_eq!(received, ["c1", "c2"], "both, in order");
    if let Err(e) = second.send_telemetry_timeout(Message::new(&b"after"[..]), WAIT) {
        panic!("{e}");
    }
    let stored: Value = next_of(&hub.out, &["telemetry"], WAIT);
    assert_eq!(stored["sequenceNumber"], 21, "20 were stored before the kill: {stored}");
}

/// A durable hub started again serves the devices it kept, with their keys: a
/// device's connection string stays valid across restarts, and no `device1` joins
/// a registry that has devices.
#[test]
fn a_durable_hub_keeps_its_devices_keys_across_restarts() {
    let data_dir = TempDir::new("hubwire-durable-registry");
    let dir = data_dir.0.display().to_string();
    let off = ["--https-port", "off", "--amqp-port", "off"];
    let with_device = ["hub", "--mqtt-port", "0", "--data-dir", &dir, "--device", "dev1"];
    let args: Vec<&str> = with_device.iter().chain(&off).copied().collect();
    // The key; the port changes with every start.
    let key = |hub: &Hub| match ConnectionString::parse(&hub.connection_string) {
        Ok(cs) => (cs.device_id, cs.authentication),
        Err(e) => panic!("{e}"),
    };
    let first = start_hub_with(&args, data_dir);
    let dev1 = key(&first);
    let Hub { process, data_dir, .. } = first;
    drop(process);
    let again = start_hub_with(&args, data_dir);
    assert_eq!(key(&again), dev1, "--device dev1 kept its key");
    let Hub { process, data_dir, .. } = again;
    drop(process);
    let bare = ["hub", "--mqtt-port", "0", "--data-dir", &dir];
    let args: Vec<&str> = bare.iter().chain(&off).copied().collect();
    let served = start_hub_with(&args, data_dir);
    assert_eq!(key(&served), dev1, "the kept dev1, not a new device1");
    // And the device connects with it.
    let Ok(cs) = ConnectionString::parse(&served.connection_string) else { panic!("bad string") };
    let client = match DeviceClient::connect(
        DeviceConfig::new(cs),
        ClientTransport::with_ca(Transport::Mqtt, &served.ca),
    ) {
        Ok(client) => client,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = client.send_telemetry_timeout(Message::new(&b"kept"[..]), WAIT) {
        panic!("dev1 with its kept key: {e}");
    }
}
