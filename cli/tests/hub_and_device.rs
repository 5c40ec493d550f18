//! `hubwire hub` and `hubwire device` as separate processes on a loopback port.
//!
//! Every wait has a deadline; the processes are killed when a test ends, however it
//! ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// A child process, killed when dropped.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hubwire args…` with piped streams; returns it, its stdin and its stdout
/// lines.
fn start(args: &[&str]) -> (Process, ChildStdin, Receiver<String>) {
    let child = Command::new(env!("CARGO_BIN_EXE_hubwire"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        panic!("no pipes");
    };
    (Process { child }, stdin, lines(stdout))
}

/// Forwards each line of `from` to the returned channel.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next JSON line whose `event` is `event`, skipping others (which are returned
/// in the panic message if it never comes).
fn next_event(lines: &Receiver<String>, event: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let value: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => panic!("stdout line is not JSON ({e}): {line}"),
        };
        if value["event"] == event {
            return value;
        }
        seen.push(line);
    }
    panic!("no {event:?} line within {WAIT:?}; saw {seen:#?}");
}

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
