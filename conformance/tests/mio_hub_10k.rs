//! The hub on its mio event loop holds 10,000 concurrent MQTT device connections on
//! loopback: `hubwire load`, in a process of its own, connects 10,000 devices and
//! keeps them connected for 60 s, each sending one QoS 1 message every 10 s; every
//! message is acknowledged and no connection drops. The hub's resident memory per
//! connection is measured and printed (`cargo test -- --nocapture` shows it).
//!
//! Both processes raise their open-file limit to what they need; where the hard
//! limit is too low, `hubwire load` fails saying how to raise it.

use std::process::Command;

use hubwire_conformance::process::{TempDir, hubwire, start_hub_with};
use serde_json::Value;

const DEVICES: usize = 10_000;
/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[test]
fn the_mio_hub_holds_10000_mqtt_devices_for_60_s_and_acknowledges_every_message() {
    let data_dir = TempDir::new("hubwire-10k");
    let registry: Vec<Value> = (0..DEVICES)
        .map(|n| serde_json::json!({ "deviceId": format!("load{n:05}"), "primaryKey": KEY }))
        .collect();
    let registry_file = data_dir.0.join("registry.json");
    if let Err(e) = std::fs::write(&registry_file, Value::Array(registry).to_string()) {
        panic!("{e}");
    }
    let (dir, file) = (data_dir.0.display().to_string(), registry_file.display().to_string());
    let args = ["hub", "--runtime", "mio", "--mqtt-port", "off", "--https-port", "off"]
        .into_iter()
        .chain(["--amqp-port", "off", "--mqtt-tcp-port", "0"])
        .chain(["--data-dir", &dir, "--registry", &file])
        .collect::<Vec<_>>();
    let hub = start_hub_with(&args, data_dir);
    let pid = hub.process.child.id().to_string();

    let load = Command::new(hubwire())
        .args(["load", "--hub", &hub.mqtt_tcp, "--registry", &file, "--hub-pid", &pid])
        .args(["--interval-ms", "10000", "--duration-s", "60", "--runtime", "mio"])
        .output();
    let Ok(load) = load else { panic!("cannot run hubwire load") };
    let words = String::from_utf8_lossy(&load.stderr);
    let stdout = String::from_utf8_lossy(&load.stdout);
    let Some(Ok(report)) = stdout.lines().last().map(serde_json::from_str::<Value>) else {
        panic!("hubwire load printed no report; its stderr:\n{words}");
    };
    println!("{words}{report}");
    assert_eq!(report["connected"], DEVICES, "{words}");
    assert_eq!(report["disconnects"], 0, "{words}");
    assert_eq!(report["refused"], 0, "{words}");
    // Each device sends at 0..10 s, then every 10 s for 60 s: six messages.
    assert_eq!(report["sent"], DEVICES * 6, "{words}");
    assert_eq!(report["acknowledged"], report["sent"], "{words}");
    assert!(report["hubBytesPerConnection"].is_u64(), "{report}");
    assert!(load.status.success(), "{words}");
}
