//! Processes: `hubwire` itself and the real peers, with their output as lines.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
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
    next_of(lines, &[event], WAIT)
}

/// The next JSON line whose `event` is one of `events`, within `wait`, skipping
/// other lines (JSON or not: a peer's program may print warnings), which the panic
/// message lists if none comes.
pub fn next_of(lines: &Receiver<String>, events: &[&str], wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Ok(value) = serde_json::from_str::<Value>(&line) {
            if events.iter().any(|e| value["event"] == *e) {
                return value;
            }
        }
        seen.push(line);
    }
    panic!("no {events:?} line within {wait:?}; saw {seen:#?}");
}

/// A directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("cannot make {}: {e}", path.display());
        }
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `hubwire hub` process with `dev1` registered, as [`start_hub`] starts it.
#[derive(Debug)]
pub struct Hub {
    /// The process.
    pub process: Process,
    /// Its stdin (C2D messages).
    pub stdin: ChildStdin,
    /// Its stdout lines, after `device` and `listening`.
    pub out: Receiver<String>,
    /// MQTT over TLS, `host:port` (empty when off).
    pub mqtt: String,
    /// MQTT over WebSocket over TLS, `host:port`.
    pub https: String,
    /// MQTT over plain TCP, `host:port`.
    pub mqtt_tcp: String,
    /// AMQP over TLS, `host:port`.
    pub amqp: String,
    /// AMQP over plain TCP, `host:port`.
    pub amqp_tcp: String,
    /// The CA devices trust.
    pub ca: String,
    /// dev1's connection string as the hub printed it.
    pub connection_string: String,
    /// The hub's data directory.
    pub data_dir: TempDir,
}

/// The arguments that start a hub on ephemeral loopback ports, every listener on,
/// keeping its certificates in `data_dir`, with `dev1` registered.
pub fn hub_args(data_dir: &TempDir) -> Vec<String> {
    let dir = data_dir.0.display().to_string();
    ["hub", "--mqtt-port", "0", "--https-port", "0", "--mqtt-tcp-port", "0"]
        .into_iter()
        .chain(["--amqp-port", "0", "--amqp-tcp-port", "0", "--data-dir", &dir])
        .chain(["--device", "dev1"])
        .map(String::from)
        .collect()
}

/// A hub process on ephemeral ports (see [`hub_args`]).
pub fn start_hub() -> Hub {
    let data_dir = TempDir::new("hubwire-hub");
    let args = hub_args(&data_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_hub_with(&args, data_dir)
}

/// A hub process started with `args` (which name `data_dir`); a listener that is off
/// has an empty address in the returned [`Hub`].
pub fn start_hub_with(args: &[&str], data_dir: TempDir) -> Hub {
    let (process, stdin, out) = start(args);
    let (listening, connection_string) = registered(&out);
    let field = |name: &str| listening[name].as_str().unwrap_or_default().to_owned();
    let ca = field("ca");
    assert!(!ca.is_empty(), "no ca in {listening}");
    Hub {
        process,
        stdin,
        mqtt: field("mqtt"),
        https: field("https"),
        mqtt_tcp: field("mqttTcp"),
        amqp: field("amqp"),
        amqp_tcp: field("amqpTcp"),
        ca,
        out,
        connection_string,
        data_dir,
    }
}

/// Reads a starting hub's first lines: its `listening` line and the connection
/// string of its (first) device.
pub fn registered(out: &Receiver<String>) -> (Value, String) {
    let device_line = next_event(out, "device");
    let Some(cs) = device_line["connectionString"].as_str().map(String::from) else {
        panic!("no connection string in {device_line}");
    };
    (next_event(out, "listening"), cs)
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
         (Debian packages mosquitto, mosquitto-clients and curl)"
    );
}
