//! `hubwire demo` runs end to end and reports every message delivered, over every
//! transport.

use std::process::{Command, Stdio};

#[test]
fn demo_exits_zero_and_prints_the_table() {
    let output = Command::new(hubwire_conformance::process::hubwire())
        .args(["demo", "--devices", "4", "--messages", "20"])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    for column in ["transport", "sent", "acknowledged", "stored", "p50 ms", "wire bytes/msg"] {
        assert!(header.contains(column), "no {column:?} in {header:?}");
    }
    // One row per transport: transport, devices, sent, acknowledged, stored, c2d
    // delivered, c2d completed.
    for transport in ["mqtt", "mqtt-ws", "mqtt-tcp", "amqp", "amqp-ws", "amqp-tcp"] {
        let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        let expected = [transport, "4", "80", "80", "80", "4", "4"];
        assert_eq!(row.get(..7), Some(&expected[..]), "{stdout}");
    }
}

#[test]
fn demo_with_defaults_succeeds() {
    let status = Command::new(hubwire_conformance::process::hubwire()).arg("demo").output();
    let Ok(output) = status else { panic!("cannot run hubwire") };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("mqtt"));
}

#[test]
fn demo_with_a_closed_stdout_exits_quietly_with_its_verdict() {
    let child = Command::new(hubwire_conformance::process::hubwire())
        .args(["demo", "--devices", "2", "--messages", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    // Closed before the table is printed: `hubwire demo | true`.
    drop(child.stdout.take());
    let output = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn demo_multiplex_adds_a_row_of_every_device_over_one_amqp_connection() {
    let output = Command::new(hubwire_conformance::process::hubwire())
        .args(["demo", "--multiplex", "--devices", "5", "--messages", "10"])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    let label = "amqp (multiplexed, 1 connection)";
    let Some(row) = stdout.lines().find_map(|l| l.strip_prefix(label)) else {
        panic!("no {label:?} row in\n{stdout}");
    };
    // devices, sent, acknowledged, stored, c2d delivered, c2d completed.
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(..6), Some(&["5", "50", "50", "50", "5", "5"][..]), "{stdout}");
}
