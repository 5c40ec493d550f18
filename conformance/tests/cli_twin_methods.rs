//! The twin and direct methods between `hubwire hub` (its JSON lines on stdin and
//! stdout) and `hubwire device` (`--twin`, `--report`, `--method`), over MQTT and
//! AMQP (spec file §4.5–§4.6, §5.6–§5.7).

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Duration;

use hubwire_conformance::process::{Hub, WAIT, next_event, next_of, start, start_hub};
use serde_json::Value;

#[test]
fn hub_stdin_twin_and_method_requests_reach_hubwire_device() {
    for transport in ["mqtt-tcp", "amqp-tcp"] {
        twin_and_methods_over(transport);
    }
}

fn service(hub: &mut Hub, line: &str) {
    if let Err(e) = writeln!(hub.stdin, "{line}") {
        panic!("hub stdin: {e}");
    }
}

/// Invokes `method` on dev1, trying again while the device has not subscribed yet
/// (404103); returns the hub's `methodResult`.
fn invoke(hub: &mut Hub, method: &str) -> Value {
    let line = format!(
        r#"{{"op":"invokeMethod","deviceId":"dev1","methodName":"{method}","payload":{{"n":1}},"timeoutMs":5000}}"#
    );
    for _ in 0..50 {
        service(hub, &line);
        let answer = next_of(&hub.out, &["methodInvoked", "error"], WAIT);
        if answer["event"] == "methodInvoked" {
            return next_event(&hub.out, "methodResult");
        }
        assert_eq!(answer["code"], 404103, "{answer}");
        thread::sleep(Duration::from_millis(100));
    }
    panic!("the device never subscribed to methods");
}

fn device_line(out: &Receiver<String>, event: &str) -> Value {
    next_event(out, event)
}

fn twin_and_methods_over(transport: &str) {
    let mut hub = start_hub();
    let Some(port) = hub.mqtt.rsplit(':').next() else { panic!("{}", hub.mqtt) };
    let address = if transport == "amqp-tcp" { &hub.amqp_tcp } else { &hub.mqtt_tcp };
    let cs = hub
        .connection_string
        .replace(&format!("HostName=127.0.0.1:{port};"), &format!("HostName={address};"));
    service(&mut hub, r#"{"op":"updateDesired","deviceId":"dev1","patch":{"mode":"eco"}}"#);
    assert_eq!(next_event(&hub.out, "desiredUpdated")["version"], 2);

    let (_device, _stdin, out) = start(&[
        "device",
        "--connection-string",
        &cs,
        "--transport",
        transport,
        "--count",
        "1",
        "--interval-ms",
        "0",
        "--wait-c2d-ms",
        "20000",
        "--twin",
        "--report",
        r#"{"firmware":"1.2"}"#,
        "--method",
        r#"reboot=200:{"ok":true}"#,
        "--json",
    ]);
    let reported = device_line(&out, "reported");
    assert_eq!(reported["version"], 2, "{reported}");
    let twin = device_line(&out, "twin");
    assert_eq!(twin["twin"]["desired"]["mode"], "eco", "{twin}");
    assert_eq!(twin["twin"]["reported"]["firmware"], "1.2", "{twin}");
    let updated = next_event(&hub.out, "reportedUpdated");
    assert_eq!(updated["patch"]["firmware"], "1.2", "{transport}: {updated}");

    service(&mut hub, r#"{"op":"updateDesired","deviceId":"dev1","patch":{"interval":5}}"#);
    assert_eq!(next_event(&hub.out, "desiredUpdated")["version"], 3);
    let desired = device_line(&out, "desiredUpdated");
    assert_eq!(desired["version"], 3, "{desired}");
    assert_eq!(desired["patch"]["interval"], 5, "{desired}");

    let result = invoke(&mut hub, "reboot");
    assert_eq!(result["status"], 200, "{transport}: {result}");
    assert_eq!(result["payload"]["ok"], true, "{result}");
    let method = device_line(&out, "method");
    assert_eq!(method["name"], "reboot", "{method}");
    assert_eq!(method["payload"]["n"], 1, "{method}");
    // A method the device was not told to answer: 501, as the .NET SDK answers.
    let result = invoke(&mut hub, "selfDestruct");
    assert_eq!(result["status"], 501, "{result}");

    service(&mut hub, r#"{"op":"getTwin","deviceId":"dev1"}"#);
    let twin = next_event(&hub.out, "twin");
    assert_eq!(twin["twin"]["desired"]["$version"], 3, "{twin}");
    assert_eq!(twin["twin"]["reported"]["$version"], 2, "{twin}");

    // Refusals on the service side carry IoT Hub's codes.
    service(&mut hub, r#"{"op":"getTwin","deviceId":"ghost"}"#);
    assert_eq!(next_event(&hub.out, "error")["code"], 404001);
    service(&mut hub, r#"{"op":"updateDesired","deviceId":"dev1","patch":{"$bad":1}}"#);
    assert_eq!(next_event(&hub.out, "error")["code"], 400004);
    // A conditional update at a version the twin left behind: 412001.
    service(&mut hub, r#"{"op":"updateDesired","deviceId":"dev1","patch":{"x":1},"ifVersion":2}"#);
    assert_eq!(next_event(&hub.out, "error")["code"], 412001);
    service(&mut hub, r#"{"op":"updateDesired","deviceId":"dev1","patch":{"x":1},"ifVersion":3}"#);
    assert_eq!(next_event(&hub.out, "desiredUpdated")["version"], 4);
}
