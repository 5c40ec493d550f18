//! 995 devices over one AMQP connection (spec file §5.10: the .NET SDK's cap per
//! connection) against `hubwire hub --max-cbs-tokens 995` (§5.2: the hub's
//! per-connection CBS token limit): every device sends telemetry and completes a
//! C2D message sent through the hub's stdin, on one connection; the 996th identity
//! is refused with 403 while the others carry on, and a wrong key fails alone with
//! 401.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hubwire_blocking::{ClientTransport, MultiplexedClient, Transport};
use hubwire_conformance::process::{TempDir, start_hub_with};
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig};
use hubwire_core::device::{DeviceConfig, DeviceEvent, DisconnectReason};
use hubwire_core::iothub::{ConnectionString, Disposition, Message};
use serde_json::Value;

/// The devices carried: the .NET SDK's cap per connection, and the hub's limit.
const DEVICES: usize = 995;
/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1): every device's key.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Another valid key, which the hub does not know.
const WRONG_KEY: &str = "HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
/// The longest the test waits for one phase.
const PHASE: Duration = Duration::from_secs(30);

fn id(n: usize) -> String {
    format!("mux-{n:03}")
}

/// Reads the hub's stdout until `done` holds for the counts of each `event` seen
/// (and the connection ids they name); panics at the deadline.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, usize>,
    connections: BTreeMap<String, BTreeSet<u64>>,
    lines: Vec<Value>,
}

impl Tally {
    fn read_until(&mut self, out: &Receiver<String>, done: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + PHASE;
        while !done(self) {
            let Ok(line) = out.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                panic!("hub stdout: not there within {PHASE:?}; counts {:?}", self.counts);
            };
            let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
            let event = value["event"].as_str().unwrap_or_default().to_owned();
            if let Some(connection) = value["connection"].as_u64() {
                self.connections.entry(event.clone()).or_default().insert(connection);
            }
            *self.counts.entry(event).or_default() += 1;
            self.lines.push(value);
        }
    }

    fn count(&self, event: &str) -> usize {
        self.counts.get(event).copied().unwrap_or(0)
    }
}

/// Reads client events until `pick` has accepted `n`; panics at the deadline.
fn collect(
    client: &MultiplexedClient,
    n: usize,
    mut pick: impl FnMut(DeviceKey, DeviceEvent) -> bool,
) {
    let deadline = Instant::now() + PHASE;
    let mut accepted = 0;
    let mut other = Vec::new();
    while accepted < n {
        let Some((key, event)) =
            client.recv_event(deadline.saturating_duration_since(Instant::now()))
        else {
            panic!("{accepted} of {n} events within {PHASE:?}; others: {other:?}");
        };
        if pick(key, event.clone()) {
            accepted += 1;
        } else if other.len() < 20 {
            other.push((key, event));
        }
    }
}

fn config(amqp: &str, device_id: &str, key: &str) -> DeviceConfig {
    let cs = format!("HostName={amqp};DeviceId={device_id};SharedAccessKey={key}");
    match ConnectionString::parse(&cs) {
        Ok(cs) => DeviceConfig::new(cs),
        Err(e) => panic!("{cs}: {e}"),
    }
}

#[test]
fn amqp_995_devices_share_one_connection_the_996th_is_refused_403_and_a_wrong_key_401() {
    let started = Instant::now();
    let data_dir = TempDir::new("hubwire-amqp-multiplex");
    // 995 to carry, the 996th the limit refuses, and one to present a wrong key.
    let registry: Vec<Value> = (0..DEVICES + 2)
        .map(|n| serde_json::json!({ "deviceId": id(n), "primaryKey": KEY }))
        .collect();
    let registry_file = data_dir.0.join("registry.json");
    if let Err(e) = std::fs::write(&registry_file, Value::Array(registry).to_string()) {
        panic!("{e}");
    }
    let (dir, file) = (data_dir.0.display().to_string(), registry_file.display().to_string());
    let args = ["hub", "--mqtt-port", "off", "--https-port", "off", "--amqp-port", "0"]
        .into_iter()
        .chain(["--data-dir", &dir, "--registry", &file, "--max-cbs-tokens", "995"])
        .collect::<Vec<_>>();
    let mut hub = start_hub_with(&args, data_dir);
    let amqp = hub.amqp.clone();
    let transport = ClientTransport::with_ca(Transport::Amqp, &hub.ca);
    let client = match MultiplexedClient::connect(MultiplexConfig::new(amqp.clone()), transport) {
        Ok(client) => client,
        Err(e) => panic!("{e}"),
    };
    let mut ids = BTreeMap::new();
    for n in 0..DEVICES {
        match client.add_device(config(&amqp, &id(n), KEY)) {
            Ok(key) => ids.insert(key, id(n)),
            Err(e) => panic!("{}: {e}", id(n)),
        };
    }
    let mut connected = BTreeSet::new();
    collect(&client, DEVICES, |key, event| {
        matches!(event, DeviceEvent::Connected { .. }) && connected.insert(key)
    });
    let connect_time = started.elapsed();

    // One telemetry message each, and one C2D message each through stdin.
    for (key, device_id) in &ids {
        if let Err(e) = client.send_telemetry(*key, Message::new(device_id.clone().into_bytes())) {
            panic!("{device_id}: {e}");
        }
        let line = serde_json::json!({ "deviceId": device_id, "body": format!("to {device_id}") });
        if let Err(e) = writeln!(hub.stdin, "{line}") {
            panic!("hub stdin: {e}");
        }
    }
    let (mut acknowledged, mut completed) = (BTreeSet::new(), BTreeSet::new());
    collect(&client, 2 * DEVICES, |key, event| match event {
        DeviceEvent::TelemetryAcknowledged(_) => acknowledged.insert(key),
        DeviceEvent::C2d(c2d) => {
            let expected = ids.get(&key).map(|id| format!("to {id}").into_bytes());
            assert_eq!(Some(c2d.message.body.to_vec()), expected, "C2D to its own device");
            let Some(lock) = c2d.lock_token else { panic!("an AMQP C2D message has a lock") };
            assert_eq!(client.settle(key, &lock, Disposition::Complete), Ok(()));
            completed.insert(key)
        }
        _ => false,
    });
    let mut tally = Tally::default();
    tally.read_until(&hub.out, |t| {
        t.count("connected") == DEVICES
            && t.count("telemetry") == DEVICES
            && t.count("c2dCompleted") == DEVICES
    });
    let stored: BTreeSet<&str> = tally
        .lines
        .iter()
        .filter(|l| l["event"] == "telemetry")
        .filter_map(|l| l["deviceId"].as_str())
        .collect();
    assert_eq!(stored.len(), DEVICES, "every device's message stored");
    assert_eq!(tally.connections.get("connected").map(BTreeSet::len), Some(1), "one connection");
    let round_trips = started.elapsed();

    // The 996th identity on the connection: 403, the others carry on.
    let Some((&first, _)) = ids.first_key_value() else { panic!("no devices") };
    refused_alone(&client, config(&amqp, &id(DEVICES), KEY), 403, first);
    // A wrong key fails alone; its neighbour's next message is acknowledged.
    let Some((&last, _)) = ids.last_key_value() else { panic!("no devices") };
    refused_alone(&client, config(&amqp, &id(DEVICES + 1), WRONG_KEY), 401, last);

    tally.read_until(&hub.out, |t| t.count("refused") == 2 && t.count("telemetry") == DEVICES + 2);
    let refusals: Vec<(Option<&str>, Option<u64>)> = tally
        .lines
        .iter()
        .filter(|l| l["event"] == "refused")
        .map(|l| (l["deviceId"].as_str(), l["code"].as_u64()))
        .collect();
    let (past_limit, wrong) = (id(DEVICES), id(DEVICES + 1));
    assert_eq!(
        refusals,
        [(Some(past_limit.as_str()), Some(403005)), (Some(wrong.as_str()), Some(401003))],
        "IoT Hub's codes"
    );
    let all: BTreeSet<u64> = tally.connections.values().flatten().copied().collect();
    assert_eq!(all.len(), 1, "every line names the one connection: {:?}", tally.connections);
    assert_eq!(tally.count("disconnected"), 0, "no device lost its connection");
    client.close();
    eprintln!(
        "{DEVICES} devices connected in {connect_time:?}, round trips done at {round_trips:?}, \
         all done at {:?}",
        started.elapsed()
    );
}

/// Adds a device whose put-token the hub refuses with `status`, then checks that
/// `neighbour` on the same connection still has its telemetry acknowledged.
fn refused_alone(
    client: &MultiplexedClient,
    device: DeviceConfig,
    status: i32,
    neighbour: DeviceKey,
) {
    let refused = match client.add_device(device) {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    };
    collect(client, 1, |key, event| match event {
        DeviceEvent::Disconnected {
            reason: DisconnectReason::TokenRefused { status_code, .. },
            reconnect_at: None,
        } if key == refused => {
            assert_eq!(status_code, status, "the refused device's status");
            true
        }
        _ => false,
    });
    if let Err(e) = client.send_telemetry(neighbour, Message::new(&b"after the refusal"[..])) {
        panic!("{e}");
    }
    collect(client, 1, |key, event| {
        key == neighbour && matches!(event, DeviceEvent::TelemetryAcknowledged(_))
    });
}
