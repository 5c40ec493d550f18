//! `hubwire hub` and `hubwire device` as separate processes on a loopback port.

use std::io::Write;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

use hubwire_conformance::process::{WAIT, next_event, start};

#[test]
fn device_telemetry_reaches_hub_stdout_and_hub_stdin_c2d_reaches_the_device() {
    let (_hub, mut hub_stdin, hub_out) =
        start(&["hub", "--mqtt", "127.0.0.1:0", "--device", "dev1"]);
    let device_line = next_event(&hub_out, "device");
    assert_eq!(device_line["deviceId"], "dev1");
    let Some(cs) = device_line["connectionString"].as_str().map(String::from) else {
        panic!("no connection string in {device_line}");
    };
    let listening = next_event(&hub_out, "listening");
    let Some(port) = listening["mqtt"].as_str().and_then(|a| a.rsplit(':').next()) else {
        panic!("no address in {listening}");
    };
    assert!(cs.starts_with(&format!("HostName=127.0.0.1:{port};DeviceId=dev1;")), "{cs}");

    let (_device, _device_stdin, device_out) = start(&[
        "device",
        "--connection-string",
        &cs,
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
        let telemetry = next_event(&hub_out, "telemetry");
        assert_eq!(telemetry["deviceId"], "dev1");
        assert_eq!(telemetry["sequenceNumber"], n);
        assert_eq!(telemetry["body"], format!("message {n}"));
        assert_eq!(telemetry["properties"]["unit"], "C");
    }

    let c2d = r#"{"deviceId":"dev1","body":"reboot","messageId":"c1","ack":"full","properties":{"k":"v"}}"#;
    if let Err(e) = writeln!(hub_stdin, "{c2d}") {
        panic!("hub stdin: {e}");
    }
    let queued = next_event(&hub_out, "c2dQueued");
    assert_eq!(queued["deviceId"], "dev1");
    let completed = next_event(&hub_out, "c2dCompleted");
    assert_eq!(completed["messageId"], "c1");
    assert_eq!(completed["feedback"]["statusCode"], "Success");

    // The device printed the message it completed.
    let deadline = Instant::now() + WAIT;
    loop {
        match device_out.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("c2d message c1") => {
                assert!(line.contains("reboot") && line.contains("k=v"), "{line}");
                assert!(line.contains("completed"), "{line}");
                break;
            }
            Ok(_) => {}
            Err(_) => panic!("the device did not print the C2D message"),
        }
    }
}

#[test]
fn refusals_and_bad_stdin_lines_are_reported_on_stdout() {
    let (_hub, mut hub_stdin, hub_out) =
        start(&["hub", "--mqtt", "127.0.0.1:0", "--device", "dev1"]);
    let listening = next_event(&hub_out, "listening");
    let Some(address) = listening["mqtt"].as_str().map(String::from) else {
        panic!("no address in {listening}");
    };
    let wrong_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cs = format!("HostName={address};DeviceId=dev1;SharedAccessKey={wrong_key}");
    let (mut device, _device_stdin, device_out) =
        start(&["device", "--connection-string", &cs, "--count", "1"]);
    let refused = next_event(&hub_out, "refused");
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
        if let Err(e) = writeln!(hub_stdin, "{line}") {
            panic!("hub stdin: {e}");
        }
    }
    assert_eq!(next_event(&hub_out, "error")["code"], 400004);
    assert_eq!(next_event(&hub_out, "error")["code"], 404001);
}
