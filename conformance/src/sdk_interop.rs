//! The scenarios Microsoft's device SDKs run against `hubwire hub` (issue 3):
//! connect with the connection string the hub printed and the hub's CA, send
//! telemetry with application properties (stored with them intact), receive C2D
//! messages the hub sends (with their properties) and settle them — [`run`]
//! completes one; [`run_settling_three_ways`] completes, rejects and abandons
//! three, for transports whose SDK offers all three (the hub's own record shows
//! each settlement). Over HTTP the device polls for them, and also sends a batch.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{ChildStdin, Command};
use std::sync::mpsc::Receiver;

use serde_json::Value;

use crate::process::{Hub, Process, TempDir, WAIT, next_event, next_of, spawn, start_hub_with};

/// Application properties with characters the topic must escape.
const PROPERTIES: &str = r#"{"k":"v","sp ace":"a&b=c","unit":"°C"}"#;

/// Application properties an HTTP header can carry: names are tokens and values
/// ASCII (spec file §3: the character rules for D2C over HTTPS), since each goes
/// in an `iothub-app-<name>` header.
const HTTP_PROPERTIES: &str = r#"{"k":"v","unit":"C","a&b":"x=y;z"}"#;

/// Telemetry messages the device sends in one batch over HTTP (spec file §6.3).
const HTTP_BATCH: usize = 2;

fn properties(transport: &str) -> &'static str {
    if transport == "http" { HTTP_PROPERTIES } else { PROPERTIES }
}

/// A hub on IoT Hub's standard ports (8883, 5671 and 443: the SDKs' WebSocket
/// transports and the Python SDK dial no other, and the connection strings the hub
/// prints name no port) at the loopback address `ip`, which no other test uses, so
/// such hubs run side by side.
pub fn hub_on_standard_ports(ip: &str) -> Hub {
    let data_dir = TempDir::new("hubwire-sdk");
    let dir = data_dir.0.display().to_string();
    let args = ["hub", "--bind", ip, "--mqtt-port", "8883", "--https-port", "443"];
    let amqp = ["--amqp-port", "5671", "--data-dir", &dir, "--device", "dev1"];
    start_hub_with(&[&args[..], &amqp].concat(), data_dir)
}

/// Runs the scenario with the SDK program `device` makes from its arguments,
/// over `transport` (`mqtt`, `mqtt-ws`, `amqp` or `amqp-ws`), against a hub at `ip`.
pub fn run(ip: &str, transport: &str, device: fn(&[&str]) -> Command) {
    let mut hub = hub_on_standard_ports(ip);
    let (_device, _stdin, out) = start_device(&hub, transport, device, &["--c2d", "1"]);
    let connected = next_event(&hub.out, "connected");
    assert_eq!(connected["deviceId"], "dev1");
    assert_stored(&next_event(&hub.out, "telemetry"), transport);
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

/// The C2D messages [`run_settling_three_ways`] sends, and what the device does
/// with each.
const SETTLED_THREE_WAYS: [(&str, &str); 3] =
    [("c2d-complete", "complete"), ("c2d-reject", "reject"), ("c2d-abandon", "abandon")];

/// [`run`]'s telemetry, with three C2D messages queued before the device connects,
/// so that the hub sends them together as soon as the device's C2D link is up: the
/// device completes, rejects and abandons them; the abandoned one comes again with
/// its delivery count raised (and, over AMQP, a lock token of its own: spec file
/// §5.5) and is completed. The hub records each settlement in the order the device
/// made them, which device.js keeps one at a time.
///
/// Over HTTP the device holds no connection the hub could report, receives the
/// messages by polling, and sends two more messages in one batch.
pub fn run_settling_three_ways(ip: &str, transport: &str, device: fn(&[&str]) -> Command) {
    let mut hub = hub_on_standard_ports(ip);
    for (id, _) in SETTLED_THREE_WAYS {
        let c2d = format!(
            r#"{{"deviceId":"dev1","body":"{id} body","messageId":"{id}","properties":{{"k":"{id}"}}}}"#
        );
        if let Err(e) = writeln!(hub.stdin, "{c2d}") {
            panic!("hub stdin: {e}");
        }
        next_event(&hub.out, "c2dQueued");
    }
    let http = transport == "http";
    let batch = HTTP_BATCH.to_string();
    let settle = ["--settle", "complete,reject,abandon,complete"];
    let extra = if http { [&settle[..], &["--batch", &batch]].concat() } else { settle.to_vec() };
    let (_device, _stdin, out) = start_device(&hub, transport, device, &extra);
    if !http {
        let connected = next_event(&hub.out, "connected");
        assert_eq!(connected["deviceId"], "dev1");
    }
    expect(&out, "sent");
    if http {
        assert_eq!(expect(&out, "batchSent")["count"], HTTP_BATCH);
    }

    let mut received = Vec::new();
    let mut settled = Vec::new();
    while received.len() < 4 || settled.len() < 4 {
        let line = expect_one_of(&out, &["c2d", "settled"]);
        if line["event"] == "c2d" {
            received.push(line);
        } else {
            settled.push((line["messageId"].clone(), line["action"].clone()));
        }
    }
    let ids: Vec<&Value> = received.iter().map(|r| &r["messageId"]).collect();
    assert_eq!(ids, ["c2d-complete", "c2d-reject", "c2d-abandon", "c2d-abandon"]);
    for line in &received {
        let id = line["messageId"].as_str().unwrap_or_default();
        assert_eq!(line["body"], format!("{id} body"), "{line}");
        assert_eq!(line["properties"]["k"], id, "{line}");
    }
    if http {
        // The ETag: each delivery is locked anew (spec file §6.4).
        let locks: BTreeSet<&str> =
            received.iter().filter_map(|r| r["lockToken"].as_str()).collect();
        assert_eq!(locks.len(), 4, "{received:#?}");
    }
    if transport.starts_with("amqp") {
        let counts: Vec<&Value> = received.iter().map(|r| &r["deliveryCount"]).collect();
        assert_eq!(counts, [0, 0, 0, 1], "{received:#?}");
        assert_ne!(received[2]["lockToken"], received[3]["lockToken"], "{received:#?}");
    }
    let expected: Vec<(Value, Value)> = SETTLED_THREE_WAYS
        .iter()
        .chain(&[("c2d-abandon", "complete")])
        .map(|&(id, action)| (Value::from(id), Value::from(action)))
        .collect();
    assert_eq!(settled, expected);
    expect(&out, "closed");

    // The hub's lines: telemetry and settlements, in whatever order they interleave.
    let settlements = ["c2dCompleted", "c2dRejected", "c2dAbandoned"];
    let mut recorded = Vec::new();
    let mut telemetry = Vec::new();
    let expected_telemetry = if http { 1 + HTTP_BATCH } else { 1 };
    while recorded.len() < 4 || telemetry.len() < expected_telemetry {
        let line = next_of(&hub.out, &[&settlements[..], &["telemetry"]].concat(), WAIT);
        assert_eq!(line["deviceId"], "dev1", "{line}");
        if line["event"] == "telemetry" {
            telemetry.push(line);
        } else {
            let event = line["event"].clone();
            recorded.push((event, line["messageId"].clone(), line["deliveryCount"].clone()));
        }
    }
    assert_stored(&telemetry[0], transport);
    // The Node SDK's batch carries the body and the application properties only
    // (spec file §6.3).
    for (i, line) in telemetry.iter().enumerate().skip(1) {
        assert_eq!(line["body"], format!("batch-{i}"), "{line}");
        assert_eq!(line["properties"], json(HTTP_PROPERTIES), "{line}");
    }
    let expected = [
        ("c2dCompleted", "c2d-complete", Value::Null),
        ("c2dRejected", "c2d-reject", Value::Null),
        ("c2dAbandoned", "c2d-abandon", Value::from(1)),
        ("c2dCompleted", "c2d-abandon", Value::Null),
    ]
    .map(|(event, id, count)| (Value::from(event), Value::from(id), count));
    assert_eq!(recorded, expected);
}

/// Twin and direct methods (issue 8): a desired property set before the device
/// connects comes with its GET; the device reports properties, which the hub keeps;
/// a desired update made while it is connected reaches its desired-property
/// handler; a method the hub invokes is answered by the device's handler, and the
/// hub reports the device's status and payload (spec file §4.5–§4.6, §5.6–§5.7).
pub fn run_twin_and_methods(ip: &str, transport: &str, device: fn(&[&str]) -> Command) {
    let mut hub = hub_on_standard_ports(ip);
    service(&mut hub, r#"{"op":"updateDesired","deviceId":"dev1","patch":{"mode":"eco"}}"#);
    assert_eq!(next_event(&hub.out, "desiredUpdated")["version"], 2);
    let args = [
        "--c2d",
        "0",
        "--twin",
        "--report",
        r#"{"firmware":"1.2","battery":{"level":60}}"#,
        "--desired",
        "1",
        "--method",
        r#"reboot=200:{"ok":true}"#,
        "--methods",
        "1",
        "--timeout-ms",
        "30000",
    ];
    let (_device, _stdin, out) = start_device(&hub, transport, device, &args);
    expect(&out, "sent");
    let twin = expect(&out, "twin");
    assert_eq!(twin["desired"]["mode"], "eco", "{twin}");
    assert_eq!(twin["desired"]["$version"], 2, "{twin}");
    assert_eq!(twin["reported"]["$version"], 1, "{twin}");
    expect(&out, "reported");
    let reported = next_event(&hub.out, "reportedUpdated");
    assert_eq!(reported["deviceId"], "dev1", "{reported}");
    assert_eq!(reported["version"], 2, "{reported}");
    assert_eq!(reported["patch"]["battery"]["level"], 60, "{reported}");
    expect(&out, "twinReady");

    service(
        &mut hub,
        r#"{"op":"updateDesired","deviceId":"dev1","patch":{"interval":5,"mode":null}}"#,
    );
    assert_eq!(next_event(&hub.out, "desiredUpdated")["version"], 3);
    let desired = expect(&out, "desired");
    assert_eq!(desired["patch"]["interval"], 5, "{desired}");
    assert_eq!(desired["patch"]["$version"], 3, "{desired}");

    // The SDK subscribes to methods on its own schedule: a hub that has not seen
    // the subscription yet answers 404103, and the caller tries again.
    let invoke = r#"{"op":"invokeMethod","deviceId":"dev1","methodName":"reboot","payload":{"delay":1},"timeoutMs":10000}"#;
    let mut attempts = 0;
    let invoked = loop {
        service(&mut hub, invoke);
        let line = next_of(&hub.out, &["methodInvoked", "error"], WAIT);
        if line["event"] == "methodInvoked" {
            break line;
        }
        attempts += 1;
        assert!(line["code"] == 404103 && attempts < 50, "{line}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let method = expect(&out, "method");
    assert_eq!(method["name"], "reboot", "{method}");
    assert_eq!(method["payload"]["delay"], 1, "{method}");
    let result = next_event(&hub.out, "methodResult");
    assert_eq!(result["invocation"], invoked["invocation"], "{result}");
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["payload"]["ok"], true, "{result}");

    service(&mut hub, r#"{"op":"getTwin","deviceId":"dev1"}"#);
    let twin = next_event(&hub.out, "twin");
    assert_eq!(twin["twin"]["reported"]["firmware"], "1.2", "{twin}");
    assert_eq!(twin["twin"]["reported"]["$version"], 2, "{twin}");
    assert_eq!(twin["twin"]["desired"]["interval"], 5, "{twin}");
    assert_eq!(twin["twin"]["desired"].get("mode"), None, "{twin}");
    expect(&out, "closed");
}

/// Writes one service-side line on the hub's stdin.
fn service(hub: &mut Hub, line: &str) {
    if let Err(e) = writeln!(hub.stdin, "{line}") {
        panic!("hub stdin: {e}");
    }
}

/// Starts the SDK program `device` on dev1's connection string, with the
/// telemetry message [`assert_stored`] expects and `extra` arguments, and waits
/// until it has connected.
fn start_device(
    hub: &Hub,
    transport: &str,
    device: fn(&[&str]) -> Command,
    extra: &[&str],
) -> (Process, ChildStdin, Receiver<String>) {
    let cs = &hub.connection_string;
    let ip = hub.https.split(':').next().unwrap_or_default();
    assert!(cs.starts_with(&format!("HostName={ip};DeviceId=dev1;")), "{cs}");
    let args = [
        "--connection-string",
        cs,
        "--ca",
        &hub.ca,
        "--transport",
        transport,
        "--properties",
        properties(transport),
        "--body",
        r#"{"temperature":21.5}"#,
        "--message-id",
        "sdk-m1",
    ];
    let (process, stdin, out) = spawn(&mut device(&[&args[..], extra].concat()));
    expect(&out, "connected");
    (process, stdin, out)
}

/// Checks a `telemetry` line of the hub: the message [`start_device`] has the
/// device send over `transport`, stored with its id, content type and properties.
fn assert_stored(telemetry: &Value, transport: &str) {
    assert_eq!(telemetry["deviceId"], "dev1", "{telemetry}");
    assert_eq!(telemetry["messageId"], "sdk-m1", "{telemetry}");
    assert_eq!(telemetry["body"], r#"{"temperature":21.5}"#, "{telemetry}");
    assert_eq!(telemetry["contentType"], "application/json", "{telemetry}");
    assert_eq!(telemetry["properties"], json(properties(transport)), "{telemetry}");
}

fn json(text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => panic!("{e}: {text}"),
    }
}

/// The SDK program's next line of one of the kinds `events`; its `error` line
/// fails the test with the SDK's words. SDKs take their time: twice the usual wait.
fn expect_one_of(out: &Receiver<String>, events: &[&str]) -> Value {
    let value = next_of(out, &[events, &["error"]].concat(), WAIT * 2);
    if value["event"] == "error" {
        panic!("the SDK failed at {}: {}", value["stage"], value["message"]);
    }
    value
}

/// The SDK program's next line of kind `event` (see [`expect_one_of`]).
fn expect(out: &Receiver<String>, event: &str) -> Value {
    expect_one_of(out, &[event])
}
