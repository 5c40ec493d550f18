//! Processes: `hubwire` itself and the real peers, with their output as lines.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any test waits for one thing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Process {
    /// The running program.
    pub child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hubwire args…` with piped streams; returns it, its stdin and its stdout
/// lines.
pub fn start(args: &[&str]) -> (Process, ChildStdin, Receiver<String>) {
    spawn(Command::new(hubwire()).args(args))
}

/// The `hubwire` program built by cargo beside the running test (`target/<profile>/`),
/// or the one `HUBWIRE_BIN` names. `conformance/test.sh` builds it first; a missing
/// one fails the test with the command that builds it.
pub fn hubwire() -> PathBuf {
    if let Some(path) = std::env::var_os("HUBWIRE_BIN") {
        return PathBuf::from(path);
    }
    // Tests run from target/<profile>/deps/.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("hubwire")))
        .filter(|path| path.is_file());
    match beside {
        Some(path) => path,
        None => panic!("the hubwire program is not built: run `cargo build -p hubwire` first"),
    }
}

/// Starts `command` with piped stdin and stdout (stderr discarded); returns it, its stdin and its stdout lines.
pub fn spawn(command: &mut Command) -> (Process, ChildStdin, Receiver<String>) {
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

/// Starts `command` with all three streams piped and left to the caller.
pub fn spawn_piped(command: &mut Command) -> (Process, ChildStdin, ChildStdout, ChildStderr) {
    let child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot run {command:?}: {e}"),
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        panic!("no pipes");
    };
    (Process { child }, stdin, stdout, stderr)
}

/// Forwards each line of `from` to the returned channel.
pub fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
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
pub fn next_event(lines: &Receiver<String>, event: &str) -> Value {
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
pub fn start_hub() -> (Process, ChildStdin, Receiver<String>, String, String) {
    let (hub, stdin, out) = start(&["hub", "--mqtt", "127.0.0.1:0", "--device", "dev1"]);
    let (address, cs) = registered(&out);
    (hub, stdin, out, address, cs)
}

/// Reads a starting hub's first lines: the address it listens on and the
/// connection string of its (first) device.
pub fn registered(out: &Receiver<String>) -> (String, String) {
    let device_line = next_event(out, "device");
    let Some(cs) = device_line["connectionString"].as_str().map(String::from) else {
        panic!("no connection string in {device_line}");
    };
    let listening = next_event(out, "listening");
    let Some(address) = listening["mqtt"].as_str().map(String::from) else {
        panic!("no address in {listening}");
    };
    (address, cs)
}

/// The path of a real peer's program, or a failure that says how to install it:
/// interop tests never skip silently.
pub fn peer(program: &str) -> PathBuf {
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
