//! Helpers shared by the tests that run `hubwire` (and real peers) as processes.
//!
//! Every wait has a deadline; processes are killed when a test ends, however it ends.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A child process, killed when dropped.
pub(crate) struct Process {
    pub(crate) child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hubwire args…` with piped streams; returns it, its stdin and its stdout
/// lines.
pub(crate) fn start(args: &[&str]) -> (Process, ChildStdin, Receiver<String>) {
    spawn(Command::new(env!("CARGO_BIN_EXE_hubwire")).args(args))
}

/// Starts `command` with piped streams; returns it, its stdin and its stdout lines.
pub(crate) fn spawn(command: &mut Command) -> (Process, ChildStdin, Receiver<String>) {
    let child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot run {command:?}: {e}"),
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        panic!("no pipes");
    };
    (Process { child }, stdin, lines(stdout))
}

/// Forwards each line of `from` to the returned channel.
pub(crate) fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
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
pub(crate) fn next_event(lines: &Receiver<String>, event: &str) -> Value {
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

/// A hub process on an ephemeral port with `dev1` registered: the process, its
/// stdin, its stdout lines, its address and dev1's connection string.
pub(crate) fn start_hub() -> (Process, ChildStdin, Receiver<String>, String, String) {
    let (hub, stdin, out) = start(&["hub", "--mqtt", "127.0.0.1:0", "--device", "dev1"]);
    let device_line = next_event(&out, "device");
    let Some(cs) = device_line["connectionString"].as_str().map(String::from) else {
        panic!("no connection string in {device_line}");
    };
    let listening = next_event(&out, "listening");
    let Some(address) = listening["mqtt"].as_str().map(String::from) else {
        panic!("no address in {listening}");
    };
    (hub, stdin, out, address, cs)
}

/// The path of a real peer's program, or a failure that says how to install it:
/// interop tests never skip silently.
pub(crate) fn peer(program: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = PathBuf::from(dir).join(program);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{program} is not installed: run conformance/install-peers.sh \
         (Debian packages mosquitto and mosquitto-clients)"
    );
}
