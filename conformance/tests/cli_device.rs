//! `hubwire device` as a person sees it: its help, its words for a hub it cannot
//! reach or has lost, and a closed stdout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use hubwire_conformance::process::{Process, WAIT, hubwire, start, start_hub};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The next stdout line, within [`WAIT`].
fn next_line(lines: &Receiver<String>) -> String {
    match lines.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(e) => panic!("no line within {WAIT:?}: {e}"),
    }
}

/// A loopback address where nothing listens (a port just freed).
fn nobody_listening() -> String {
    let address = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    match address {
        Ok(address) => address.to_string(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn help_shows_the_body_placeholder_in_one_line() {
    let output = Command::new(hubwire()).args(["device", "--help"]).output();
    let Ok(output) = output else { panic!("cannot run hubwire") };
    let help = String::from_utf8_lossy(&output.stdout);
    let mut lines = help.lines().skip_while(|l| !l.contains("--body <BODY>"));
    let (Some(_), Some(doc)) = (lines.next(), lines.next()) else { panic!("no --body in {help}") };
    assert!(doc.contains("becomes the message number"), "{doc:?} in\n{help}");
    assert!(doc.contains(r#"[default: "message {n}"]"#), "{doc:?}");
}

#[test]
fn before_its_first_connection_the_device_says_it_cannot_reach_the_hub() {
    let address = nobody_listening();
    let cs = format!("HostName={address};DeviceId=dev1;SharedAccessKey={KEY}");
    let (_device, _stdin, out) = start(&["device", "--connection-string", &cs]);
    let line = next_line(&out);
    let prefix = format!("cannot reach the hub at {address} (mqtt to ");
    assert!(line.starts_with(&prefix) && line.contains("; retrying in "), "{line}");
    assert!(line.contains("refused") && line.contains(" ms"), "{line}");
    // The connection string names a port: the reminder of which port it must be.
    let port = address.rsplit(':').next().unwrap_or_default();
    let hint = format!("(is {port} the hub's port for mqtt? `hubwire hub` prints it as \"mqtt\"");
    assert!(line.contains(&hint), "{line}");

    let (_device, _stdin, out) = start(&["device", "--connection-string", &cs, "--json"]);
    let line = next_line(&out);
    let value: serde_json::Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => panic!("{line}: {e}"),
    };
    assert_eq!(value["event"], "disconnected", "{line}");
    assert_eq!(value["reason"], "transport closed", "{line}");
    assert_eq!(value["everConnected"], false, "{line}");
    assert_eq!(value["hub"], address.as_str(), "{line}");
    assert!(value["transportError"].as_str().is_some_and(|e| e.contains("refused")), "{line}");
    assert!(value["reconnectInMs"].is_u64(), "{line}");
}

#[test]
fn after_a_connection_the_device_says_disconnected_and_reconnecting() {
    let hub = start_hub();
    let cs = &hub.connection_string;
    let (_device, _stdin, out) = start(&[
        "device",
        "--connection-string",
        cs,
        "--ca",
        &hub.ca,
        "--count",
        "1",
        "--wait-c2d-ms",
        "60000",
    ]);
    let connected = next_line(&out);
    assert!(
        connected.starts_with(&format!("connected over mqtt to {}, TLSv1.3", hub.mqtt)),
        "{connected}"
    );
    assert!(next_line(&out).starts_with("message 1/1 acknowledged"));
    drop(hub);
    let line = next_line(&out);
    assert!(
        line.starts_with("disconnected: transport closed; reconnecting in ")
            && line.ends_with(" ms"),
        "{line}"
    );
}

#[test]
fn a_closed_stdout_stops_the_device_quietly() {
    let hub = start_hub();
    let child = Command::new(hubwire())
        .args(["device", "--connection-string", &hub.connection_string, "--ca", &hub.ca])
        .args(["--count", "5", "--interval-ms", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut device = match child {
        Ok(child) => Process { child },
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    let (Some(stdout), Some(mut stderr)) = (device.child.stdout.take(), device.child.stderr.take())
    else {
        panic!("no pipes");
    };
    // `hubwire device … | head -1`.
    let mut first = String::new();
    if let Err(e) = BufReader::new(stdout).read_line(&mut first) {
        panic!("{e}");
    }
    assert!(first.starts_with("connected"), "{first}");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match device.child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("the device kept running with its stdout closed"),
            Err(e) => panic!("{e}"),
        }
    };
    let mut errors = String::new();
    if let Err(e) = stderr.read_to_string(&mut errors) {
        panic!("{e}");
    }
    assert!(status.success(), "{status:?}: {errors}");
    assert!(errors.is_empty(), "{errors}");
}

/// MQTT can only complete a C2D message (spec file §4.4): `--c2d-disposition
/// reject` over MQTT fails on the first C2D message with core's error, which names
/// the protocol, and the command exits non-zero.
#[test]
fn over_mqtt_rejecting_a_c2d_message_fails_naming_the_protocol() {
    let mut hub = start_hub();
    let child = Command::new(hubwire())
        .args(["device", "--connection-string", &hub.connection_string, "--ca", &hub.ca])
        .args(["--count", "1", "--wait-c2d-ms", "10000", "--c2d-disposition", "reject"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut device = match child {
        Ok(child) => Process { child },
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    let (Some(stdout), Some(mut stderr)) = (device.child.stdout.take(), device.child.stderr.take())
    else {
        panic!("no pipes");
    };
    let out = hubwire_conformance::process::lines(stdout);
    assert!(next_line(&out).starts_with("connected over mqtt"));
    assert!(next_line(&out).starts_with("message 1/1 acknowledged"));
    let c2d = r#"{"deviceId":"dev1","body":"no","messageId":"c1"}"#;
    if let Err(e) = writeln!(hub.stdin, "{c2d}") {
        panic!("hub stdin: {e}");
    }
    let mut errors = String::new();
    if let Err(e) = stderr.read_to_string(&mut errors) {
        panic!("{e}");
    }
    let status = device.child.wait();
    assert!(matches!(status, Ok(s) if s.code() == Some(1)), "{status:?}: {errors}");
    assert!(
        errors.contains("cannot reject a C2D message") && errors.contains("MQTT cannot reject"),
        "{errors}"
    );
}
