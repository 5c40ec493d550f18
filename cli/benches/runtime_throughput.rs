//! Telemetry messages per second through `hubwire hub` on each runtime, MQTT and
//! AMQP over loopback, and through a mosquitto broker driven by the same client:
//! whole processes, as users run them.
//!
//! For each runtime: a hub on that runtime (in memory, its JSON event lines to
//! /dev/null), then `hubwire load --window 16` with devices on the same runtime
//! keeping 16 messages unacknowledged each for the measured time. The same load
//! then runs against `mosquitto` (QoS 1, in memory, as it runs by default), and
//! the table gives hub / mosquitto.
//!
//! ```sh
//! cargo bench -p hubwire --bench runtime_throughput
//! ```
//!
//! mosquitto comes from Debian's package (`apt-get install mosquitto`, as
//! `conformance/test.sh` installs it); without it the benchmark says so and stops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const HUBWIRE: &str = env!("CARGO_BIN_EXE_hubwire");
const DEVICES: usize = 10;
const WINDOW: usize = 16;
const SECONDS: u64 = 10;
const RUNTIMES: [&str; 4] = ["blocking", "mio", "smol", "async-std"];
/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("hubwire-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    let registry = dir.join("registry.json");
    let entries: Vec<String> = (0..DEVICES)
        .map(|n| format!(r#"{{"deviceId":"bench{n}","primaryKey":"{KEY}"}}"#))
        .collect();
    if let Err(e) = std::fs::write(&registry, format!("[{}]", entries.join(","))) {
        panic!("{e}");
    }
    let mosquitto = which("mosquitto").unwrap_or_else(|| {
        panic!("mosquitto is not installed: apt-get install mosquitto (conformance/test.sh does)")
    });

    println!(
        "{DEVICES} devices x {WINDOW} messages in flight, {SECONDS} s per row; messages/s acknowledged"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>14} {:>10}",
        "runtime", "hub MQTT", "hub AMQP", "mosquitto MQTT", "MQTT ratio"
    );
    for runtime in RUNTIMES {
        let (mqtt_port, amqp_port) = (free_port(), free_port());
        let hub = start_hub(runtime, &dir, &registry, mqtt_port, amqp_port);
        let hub_mqtt = load(runtime, &registry, mqtt_port, "mqtt-tcp");
        let hub_amqp = load(runtime, &registry, amqp_port, "amqp-tcp");
        drop(hub);
        let broker_port = free_port();
        let broker = spawn(Command::new(&mosquitto).args(["-p", &broker_port.to_string()]));
        wait_listening(broker_port);
        let broker_mqtt = load(runtime, &registry, broker_port, "mqtt-tcp");
        drop(broker);
        println!(
            "{runtime:<10} {hub_mqtt:>12.0} {hub_amqp:>12.0} {broker_mqtt:>14.0} {:>10.2}",
            hub_mqtt / broker_mqtt
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn start_hub(runtime: &str, dir: &Path, registry: &Path, mqtt: u16, amqp: u16) -> Running {
    let hub = spawn(
        Command::new(HUBWIRE)
            .args(["hub", "--runtime", runtime, "--in-memory", "--data-dir"])
            .arg(dir)
            .arg("--registry")
            .arg(registry)
            .args(["--mqtt-port", "off", "--https-port", "off", "--amqp-port", "off"])
            .args(["--mqtt-tcp-port", &mqtt.to_string(), "--amqp-tcp-port", &amqp.to_string()]),
    );
    wait_listening(mqtt);
    wait_listening(amqp);
    hub
}

/// Runs `hubwire load` against `port` and returns its messages per second.
fn load(runtime: &str, registry: &Path, port: u16, transport: &str) -> f64 {
    let output = Command::new(HUBWIRE)
        .args(["load", "--runtime", runtime, "--transport", transport])
        .args(["--hub", &format!("127.0.0.1:{port}")])
        .arg("--registry")
        .arg(registry)
        .args(["--window", &WINDOW.to_string(), "--duration-s", &SECONDS.to_string()])
        .output();
    let Ok(output) = output else { panic!("cannot run hubwire load") };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rate = stdout.lines().last().and_then(|line| {
        let at = line.find("\"messagesPerSecond\":")? + "\"messagesPerSecond\":".len();
        line[at..].split([',', '}']).next()?.parse::<f64>().ok()
    });
    match rate {
        Some(rate) if output.status.success() => rate,
        _ => panic!(
            "hubwire load over {transport} on {runtime} failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn spawn(command: &mut Command) -> Running {
    match command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
        Ok(child) => Running(child),
        Err(e) => panic!("cannot start {command:?}: {e}"),
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(address) => address.port(),
        Err(e) => panic!("{e}"),
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
