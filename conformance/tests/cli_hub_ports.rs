//! `hubwire hub` keeps the listeners it can bind when one port is taken, and says
//! how to fix the other.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;
use std::thread;

use hubwire_conformance::process::{TempDir, WAIT, hubwire, lines, registered, spawn_piped};

#[test]
fn a_taken_port_is_reported_with_its_fix_and_the_other_listeners_serve() {
    // The WebSocket port, taken by someone else.
    let taken = match TcpListener::bind("127.0.0.23:0") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let port = match taken.local_addr() {
        Ok(a) => a.port().to_string(),
        Err(e) => panic!("{e}"),
    };
    let data_dir = TempDir::new("hubwire-ports");
    let dir = data_dir.0.display().to_string();
    let (_hub, _stdin, stdout, stderr) = spawn_piped(Command::new(hubwire()).args([
        "hub",
        "--bind",
        "127.0.0.23",
        "--mqtt-port",
        "0",
        "--https-port",
        &port,
        "--data-dir",
        &dir,
    ]));
    let (listening, cs) = registered(&lines(stdout));
    assert!(
        listening["mqtt"].as_str().is_some_and(|a| a.starts_with("127.0.0.23:")),
        "{listening}"
    );
    assert!(listening["https"].is_null(), "{listening}");
    assert!(cs.starts_with("HostName=127.0.0.23:"), "{cs}");

    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) if line.contains("cannot listen") => break line,
            Ok(_) => {}
            Err(_) => panic!("no word on stderr about port {port}"),
        }
    };
    assert!(line.contains(&format!("127.0.0.23:{port}")), "{line}");
    assert!(line.contains("--https-port"), "{line}");
    assert!(line.contains("serving on the other listeners"), "{line}");
}

#[test]
fn a_taken_amqp_port_is_reported_with_its_flag_and_mqtt_serves() {
    let taken = match TcpListener::bind("127.0.0.24:0") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let port = match taken.local_addr() {
        Ok(a) => a.port().to_string(),
        Err(e) => panic!("{e}"),
    };
    let data_dir = TempDir::new("hubwire-ports-amqp");
    let dir = data_dir.0.display().to_string();
    let (_hub, _stdin, stdout, stderr) = spawn_piped(Command::new(hubwire()).args([
        "hub",
        "--bind",
        "127.0.0.24",
        "--mqtt-port",
        "0",
        "--https-port",
        "off",
        "--amqp-port",
        &port,
        "--amqp-tcp-port",
        "0",
        "--data-dir",
        &dir,
    ]));
    let (listening, _) = registered(&lines(stdout));
    assert!(listening["amqp"].is_null(), "{listening}");
    assert!(
        listening["amqpTcp"].as_str().is_some_and(|a| a.starts_with("127.0.0.24:")),
        "{listening}"
    );
    assert!(listening["mqtt"].as_str().is_some(), "{listening}");
    let stderr = lines(stderr);
    let line = loop {
        match stderr.recv_timeout(WAIT) {
            Ok(line) if line.contains("cannot listen") => break line,
            Ok(_) => {}
            Err(_) => panic!("no word on stderr about port {port}"),
        }
    };
    assert!(line.contains(&format!("127.0.0.24:{port} (AMQP over TLS)")), "{line}");
    assert!(line.contains("--amqp-port PORT; none: --amqp-port off"), "{line}");
}
