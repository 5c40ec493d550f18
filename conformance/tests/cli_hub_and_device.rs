//! `hubwire hub` and `hubwire device` as separate processes on loopback ports, over
//! every transport.

use std::io::Write;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use hubwire_conformance::process::{WAIT, next_event, start, start_hub};

#[test]
fn device_telemetry_reaches_hub_stdout_and_hub_stdin_c2d_reaches_the_device() {
    for transport in ["mqtt", "mqtt-ws", "mqtt-tcp"] {
        round_trip_over(transport);
    }
}

fn round_trip_over(transport: &str) {
    let mut hub = start_hub();
    let Some(port) = hub.mqtt.rsplit(':').next() else { panic!("{}", hub.mqtt) };
    let cs = &hub.connection_string;
    assert!(cs.starts_with(&format!("HostName=127.0.0.1:{port};DeviceId=dev1;")), "{cs}");
    // The printed connection string names the MQTT/TLS port; the others replace it.
    let address = match transport {
        "mqtt-ws" => &hub.https,
        "mqtt-tcp" => &hub.mqtt_tcp,
        _ => &hub.mqtt,
    };
    let cs = cs.replace(&format!("HostName=127.0.0.1:{port};"), &format!("HostName={address};"));
    let hub_out = &hub.out;

    let (_device, _device_stdin, device_out) = start(&[
        "device",
        "--connection-string",
        &cs,
        "--transport",
        transport,
        "--ca",
        &hub.ca,
        "--count",
        "3",
        "--interval-ms",
        "0",
        "--property",
        "unit=C",
        "--wait-c2d-ms",
        "10000",
    ]);
    for n in 1..=3 {
        let telemetry = next_event(hub_out, "telemetry");
        assert_eq!(telemetry["deviceId"], "dev1");
        assert_eq!(telemetry["sequenceNumber"], n);
        assert_eq!(telemetry["body"], format!("message {n}"));
        assert_eq!(telemetry["properties"]["unit"], "C");
    }

    let c2d = r#"{"deviceId":"dev1","body":"reboot","messageId":"c1","ack":"full","properties":{"k":"v"}}"#;
    if let Err(e) = writeln!(hub.stdin, "{c2d}") {
        panic!("hub stdin: {e}");
    }
    let queued = next_event(&hub.out, "c2dQueued");
    assert_eq!(queued["deviceId"], "dev1");
    let completed = next_event(&hub.out, "c2dCompleted");
    assert_eq!(completed["messageId"], "c1");
    assert_eq!(completed["feedback"]["statusCode"], "Success");

    // The device printed the message it completed.
    let deadline = Instant::now() + WAIT;
    loop {
        match device_out.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("connected") => {
                assert!(
                    line.contains(&format!("connected over {transport} to {address}")),
                    "{line}"
                );
            }
            Ok(line) if line.contains("c2d message c1") => {
                assert!(line.contains("reboot") && line.contains("k=v"), "{line}");
                assert!(line.contains("completed"), "{line}");
                break;
            }
            Ok(_) => {}
            Err(_) => panic!("{transport}: the device did not print the C2D message"),
        }
    }
}

#[test]
fn refusals_and_bad_stdin_lines_are_reported_on_stdout() {
    let mut hub = start_hub();
    let hub_out = &hub.out;
    let wrong_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cs = format!("HostName={};DeviceId=dev1;SharedAccessKey={wrong_key}", hub.mqtt);
    let (mut device, _device_stdin, device_out) =
        start(&["device", "--connection-string", &cs, "--ca", &hub.ca, "--count", "1"]);
    let refused = next_event(hub_out, "refused");
    assert_eq!(refused["code"], 401003);
    assert_eq!(refused["error"], "IotHubUnauthorized");
    assert_eq!(refused["deviceId"], "dev1");
    // The device gives up (a refusal is final) and says so with its exit code. Its
    // stdout closing marks its exit.
    let deadline = Instant::now() + WAIT;
    while let Err(RecvTimeoutError::Timeout) | Ok(_) =
        device_out.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        assert!(Instant::now() < deadline, "the refused device did not exit");
    }
    let status = match device.child.wait() {
        Ok(status) => status,
        Err(e) => panic!("{e}"),
    };
    assert!(!status.success());

    for line in ["not json", r#"{"deviceId":"nobody","body":"x"}"#] {
        if let Err(e) = writeln!(hub.stdin, "{line}") {
            panic!("hub stdin: {e}");
        }
    }
    assert_eq!(next_event(&hub.out, "error")["code"], 400004);
    assert_eq!(next_event(&hub.out, "error")["code"], 404001);
}
