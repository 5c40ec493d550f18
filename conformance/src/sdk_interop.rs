//! The scenario every Microsoft device SDK runs against `hubwire hub` (issue 3):
//! connect with the connection string the hub printed and the hub's CA, send
//! telemetry with application properties (stored with them intact), receive a C2D
//! message the hub sends (with its properties), and complete it (the hub's own
//! record shows it completed).

use std::io::Write;
use std::process::Command;

use serde_json::Value;

use std::sync::mpsc::Receiver;

use crate::process::{Hub, TempDir, WAIT, next_event, next_of, spawn, start_hub_with};

/// Application properties with characters the topic must escape.
const PROPERTIES: &str = r#"{"k":"v","sp ace":"a&b=c","unit":"°C"}"#;

/// A hub on IoT Hub's standard ports (8883 and 443: the SDKs' WebSocket
/// transports and the Python SDK dial no other) at the loopback address `ip`, which
/// no other test uses, so such hubs run side by side.
pub fn hub_on_standard_ports(ip: &str) -> Hub {
    let data_dir = TempDir::new("hubwire-sdk");
    let dir = data_dir.0.display().to_string();
    let args = ["hub", "--bind", ip, "--mqtt-port", "8883", "--https-port", "443"];
    start_hub_with(&[&args[..], &["--data-dir", &dir, "--device", "dev1"]].concat(), data_dir)
}

/// Runs the scenario with the SDK program `device` makes from its arguments,
/// over `transport` (`mqtt` or `mqtt-ws`), against a hub at `ip`.
pub fn run(ip: &str, transport: &str, device: fn(&[&str]) -> Command) {
    let mut hub = hub_on_standard_ports(ip);
    let cs = hub.connection_string.clone();
    assert!(cs.starts_with(&format!("HostName={ip};DeviceId=dev1;")), "{cs}");
    let args = [
        "--connection-string",
        &cs,
        "--ca",
        &hub.ca,
        "--transport",
        transport,
        "--properties",
        PROPERTIES,
        "--body",
        r#"{"temperature":21.5}"#,
        "--message-id",
        "sdk-m1",
        "--c2d",
        "1",
    ];
    let (_device, _stdin, out) = spawn(&mut device(&args));
    expect(&out, "connected");
    let connected = next_event(&hub.out, "connected");
    assert_eq!(connected["deviceId"], "dev1");

    let telemetry = next_event(&hub.out, "telemetry");
    assert_eq!(telemetry["deviceId"], "dev1");
    assert_eq!(telemetry["messageId"], "sdk-m1");
    assert_eq!(telemetry["body"], r#"{"temperature":21.5}"#);
    assert_eq!(telemetry["contentType"], "application/json", "{telemetry}");
    let properties: Value = match serde_json::from_str(PROPERTIES) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(telemetry["properties"], properties, "{telemetry}");
    expect(&out, "sent");

    let c2d = r#"{"deviceId":"dev1","body":"switch on","messageId":"c2d-1","correlationId":"corr-1","properties":{"command":"on","level":"3"}}"#;
    if let Err(e) = writeln!(hub.stdin, "{c2d}") {
        panic!("hub stdin: {e}");
    }
    let received = expect(&out, "c2d");
    assert_eq!(received["body"], "switch on", "{received}");
    assert_eq!(received["messageId"], "c2d-1", "{received}");
    assert_eq!(received["correlationId"], "corr-1", "{received}");
    assert_eq!(received["properties"]["command"], "on", "{received}");
    assert_eq!(received["properties"]["level"], "3", "{received}");
    let completed = next_event(&hub.out, "c2dCompleted");
    assert_eq!(completed["messageId"], "c2d-1");
    assert_eq!(completed["deviceId"], "dev1");
    expect(&out, "closed");
}

/// The SDK program's next line of kind `event`; its `error` line fails the test
/// with the SDK's words. SDKs take their time to connect: twice the usual wait.
fn expect(out: &Receiver<String>, event: &str) -> Value {
    let value = next_of(out, &[event, "error"], WAIT * 2);
    if value["event"] == "error" {
        panic!("the SDK failed at {}: {}", value["stage"], value["message"]);
    }
    value
}
