//! `hubwire load`: many simulated devices against one hub, each connected for the
//! whole run and sending one QoS 1 (acknowledged) telemetry message per interval,
//! their first sends spread over the first interval. It reports what was sent,
//! acknowledged and lost, acknowledgement latency, and, given the hub's process id,
//! the hub's resident memory per connection.
//!
//! The devices run on the runtime asked for; with `mio` (the default) every socket
//! lives on one event loop thread, so the load process measures the hub rather than
//! its own threads. The file-descriptor limit is raised to what the devices need,
//! or the command says how to raise it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use hubwire_blocking::{ClientTransport, Transport};
use hubwire_core::device::{DeviceConfig, DeviceEvent, TelemetryId};
use hubwire_core::iothub::{ConnectionString, Message};
use hubwire_runtime::sync::{DeviceClient, Scheduler};

use crate::registry;
use crate::runtime::{OnRuntime, Runtime};

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The hub's address, `host:port`, for the transport
    #[arg(long, value_name = "HOST:PORT")]
    hub: String,
    /// The devices, as `hubwire hub --registry` reads them (a JSON array of
    /// {"deviceId","primaryKey"}); the first --devices of them connect
    #[arg(long, value_name = "FILE")]
    registry: PathBuf,
    /// How many devices connect (default: every one in the registry)
    #[arg(long)]
    devices: Option<usize>,
    /// The transport every device uses
    #[arg(long, default_value = "mqtt-tcp")]
    transport: Transport,
    /// A CA certificate (PEM) to trust for the TLS transports
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Milliseconds between one device's messages
    #[arg(long, default_value_t = 10_000)]
    interval_ms: u64,
    /// Seconds the load runs once every device is connected
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Throughput instead of a steady rate: each device keeps this many messages
    /// unacknowledged, sending the next as each is acknowledged, for --duration-s
    /// (--interval-ms is then unused); the report gives messages per second
    #[arg(long, default_value_t = 0)]
    window: usize,
    /// Devices that dial together before the next group starts (the hub's accept
    /// backlog is finite)
    #[arg(long, default_value_t = 250)]
    connect_batch: usize,
    /// The hub's process id, to read its resident memory before and after the
    /// devices connect (Linux /proc)
    #[arg(long, value_name = "PID")]
    hub_pid: Option<u32>,
    /// The runtime that drives the devices: one event loop thread (`mio`, the
    /// default), a thread per device (`blocking`), or `smol` or `async-std` tasks
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,
}

impl OnRuntime for LoadArgs {
    fn runtime(&self) -> Runtime {
        self.runtime
    }

    fn run_on<S: Scheduler>(self) -> ExitCode {
        match run::<S>(&self) {
            Ok(report) => {
                let clean = report.connected == report.devices
                    && report.acknowledged == report.sent
                    && report.disconnects == 0;
                crate::out::warn(format_args!("hubwire load: {}", report.words()));
                if crate::out::print(report.json()).is_err() || !clean {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                crate::out::warn(format_args!("hubwire load: {e}"));
                ExitCode::from(2)
            }
        }
    }
}

/// One device of the load.
struct Simulated<S: Scheduler> {
    client: DeviceClient<S>,
    next_send: Instant,
    /// Messages sent and not yet acknowledged, with when they were sent.
    pending: BTreeMap<TelemetryId, Instant>,
}

/// What a run measured.
#[derive(Debug, Default)]
struct Report {
    devices: usize,
    connected: usize,
    connect_time: Duration,
    sent: u64,
    acknowledged: u64,
    disconnects: u64,
    refused: u64,
    latencies_us: Vec<u64>,
    /// From the first send to the last acknowledgement (or the drain's end).
    run_time: Duration,
    hub_rss_before_kib: Option<u64>,
    hub_rss_after_kib: Option<u64>,
    load_rss_kib: Option<u64>,
}

/// How long a group of devices may take to connect.
const CONNECT_WAIT: Duration = Duration::from_secs(60);
/// How long the run waits for the last acknowledgements.
const DRAIN_WAIT: Duration = Duration::from_secs(15);
/// How often the devices' events are read.
const SWEEP: Duration = Duration::from_millis(10);

/// Runs the load.
///
/// Errors, in words: the registry cannot be read, too few file descriptors, a
/// device that cannot be made.
fn run<S: Scheduler>(args: &LoadArgs) -> Result<Report, String> {
    let mut records = registry::load(Some(&args.registry), &[], &[])?;
    if let Some(n) = args.devices {
        if n > records.len() {
            return Err(format!("--devices {n}: the registry has {} devices", records.len()));
        }
        records.truncate(n);
    }
    raise_file_limit(records.len())?;
    let transport = match &args.ca {
        Some(ca) => ClientTransport::with_ca(args.transport, ca),
        None => ClientTransport::new(args.transport),
    };
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut report = Report {
        devices: records.len(),
        hub_rss_before_kib: args.hub_pid.and_then(rss_kib),
        ..Report::default()
    };

    let started = Instant::now();
    let mut fleet: Vec<Simulated<S>> = Vec::with_capacity(records.len());
    for group in records.chunks(args.connect_batch.max(1)) {
        let first = fleet.len();
        for record in group {
            let cs = format!(
                "HostName={};DeviceId={};SharedAccessKey={}",
                args.hub, record.device_id, record.primary_key
            );
            let cs = ConnectionString::parse(&cs).map_err(|e| format!("{cs}: {e}"))?;
            let client = DeviceClient::<S>::connect(DeviceConfig::new(cs), transport.clone())
                .map_err(|e| format!("{}: {e}", record.device_id))?;
            fleet.push(Simulated { client, next_send: started, pending: BTreeMap::new() });
        }
        report.connected += wait_connected(&fleet[first..], &mut report);
    }
    report.connect_time = started.elapsed();
    report.hub_rss_after_kib = args.hub_pid.and_then(rss_kib);

    let begin = Instant::now();
    let end = begin + Duration::from_secs(args.duration_s);
    if args.window > 0 {
        saturate(&mut fleet, &mut report, args.window, end);
    } else {
        steady(&mut fleet, &mut report, interval, begin, end);
    }
    let drained = Instant::now() + DRAIN_WAIT;
    while fleet.iter().any(|d| !d.pending.is_empty()) && Instant::now() < drained {
        sweep(&mut fleet, &mut report);
        std::thread::sleep(SWEEP);
    }
    report.run_time = begin.elapsed();
    report.load_rss_kib = rss_kib(std::process::id());
    for device in &fleet {
        device.client.disconnect();
    }
    Ok(report)
}

/// Each device sends one message per `interval`, the first sends spread over the
/// first interval so the hub sees a steady rate, until `end`.
fn steady<S: Scheduler>(
    fleet: &mut [Simulated<S>],
    report: &mut Report,
    interval: Duration,
    begin: Instant,
    end: Instant,
) {
    let count = fleet.len().max(1) as u32;
    for (i, device) in fleet.iter_mut().enumerate() {
        device.next_send = begin + interval * i as u32 / count;
    }
    // Until every device has sent each message due before the end: a sweep late
    // by a few milliseconds still sends what fell due within the run.
    loop {
        let now = Instant::now();
        let mut due = false;
        for device in fleet.iter_mut() {
            if device.next_send >= end {
                continue;
            }
            due = true;
            if device.next_send > now {
                continue;
            }
            device.next_send += interval;
            send(device, report, now);
        }
        sweep(fleet, report);
        if !due {
            return;
        }
        std::thread::sleep(SWEEP);
    }
}

/// Each device keeps `window` messages unacknowledged until `end`.
fn saturate<S: Scheduler>(
    fleet: &mut [Simulated<S>],
    report: &mut Report,
    window: usize,
    end: Instant,
) {
    while Instant::now() < end {
        let now = Instant::now();
        for device in fleet.iter_mut() {
            while device.pending.len() < window {
                if !send(device, report, now) {
                    break;
                }
            }
        }
        // Acknowledgements come back within a millisecond or so: a short pause
        // keeps the window full without spinning.
        std::thread::sleep(Duration::from_micros(200));
        sweep(fleet, report);
    }
}

/// Sends one telemetry message; false when the device refused it.
fn send<S: Scheduler>(device: &mut Simulated<S>, report: &mut Report, now: Instant) -> bool {
    let body = format!("{{\"n\":{}}}", report.sent).into_bytes();
    match device.client.send_telemetry_nowait(Message::new(body)) {
        Ok(id) => {
            device.pending.insert(id, now);
            report.sent += 1;
            true
        }
        Err(_) => {
            report.refused += 1;
            false
        }
    }
}

/// Waits until every device of `group` has connected (or `CONNECT_WAIT` passed);
/// returns how many did.
fn wait_connected<S: Scheduler>(group: &[Simulated<S>], report: &mut Report) -> usize {
    let deadline = Instant::now() + CONNECT_WAIT;
    let mut connected = vec![false; group.len()];
    let mut count = 0;
    while count < group.len() && Instant::now() < deadline {
        for (device, done) in group.iter().zip(connected.iter_mut()) {
            while let Some(event) = device.client.recv_event(Duration::ZERO) {
                match event {
                    DeviceEvent::Connected { .. } if !*done => {
                        *done = true;
                        count += 1;
                    }
                    DeviceEvent::Disconnected { .. } => report.disconnects += 1,
                    _ => {}
                }
            }
        }
        std::thread::sleep(SWEEP);
    }
    count
}

/// Reads every device's events: acknowledgements and losses.
fn sweep<S: Scheduler>(fleet: &mut [Simulated<S>], report: &mut Report) {
    for device in fleet {
        while let Some(event) = device.client.recv_event(Duration::ZERO) {
            match event {
                DeviceEvent::TelemetryAcknowledged(id) => {
                    if let Some(sent) = device.pending.remove(&id) {
                        report.acknowledged += 1;
                        let micros = sent.elapsed().as_micros();
                        report.latencies_us.push(u64::try_from(micros).unwrap_or(u64::MAX));
                    }
                }
                DeviceEvent::Disconnected { .. } => report.disconnects += 1,
                _ => {}
            }
        }
    }
}

/// Raises the soft limit on open files to what `devices` sockets need, up to the
/// hard limit.
///
/// Errors: the hard limit is too low, with how to raise it.
fn raise_file_limit(devices: usize) -> Result<(), String> {
    // Beside the sockets: the standard streams, the poller, a few files.
    let need = devices as u64 + 64;
    let soft = rlimit::increase_nofile_limit(need)
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if soft < need {
        return Err(format!(
            "{devices} devices need {need} open files and this process may open {soft}: \
             raise the limit (`ulimit -n {need}` in the shell that starts it; the hard \
             limit comes from /etc/security/limits.conf or the service manager)"
        ));
    }
    Ok(())
}

/// A process's resident memory, KiB (Linux `/proc/<pid>/status`, `VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Report {
    fn percentile_ms(&self, p: usize) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
        sorted.get(index).map_or(0.0, |&us| us as f64 / 1000.0)
    }

    /// Acknowledged messages per second of the run.
    fn rate(&self) -> f64 {
        let seconds = self.run_time.as_secs_f64();
        if seconds > 0.0 { self.acknowledged as f64 / seconds } else { 0.0 }
    }

    /// The hub's resident memory per connected device, bytes.
    fn hub_bytes_per_connection(&self) -> Option<u64> {
        let (before, after) = (self.hub_rss_before_kib?, self.hub_rss_after_kib?);
        let connected = u64::try_from(self.connected).ok().filter(|&n| n > 0)?;
        Some(after.saturating_sub(before) * 1024 / connected)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": "load",
            "devices": self.devices,
            "connected": self.connected,
            "connectMs": self.connect_time.as_millis() as u64,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "disconnects": self.disconnects,
            "messagesPerSecond": self.rate(),
            "p50Ms": self.percentile_ms(50),
            "p99Ms": self.percentile_ms(99),
            "hubRssBeforeKiB": self.hub_rss_before_kib,
            "hubRssAfterKiB": self.hub_rss_after_kib,
            "hubBytesPerConnection": self.hub_bytes_per_connection(),
            "loadRssKiB": self.load_rss_kib,
        })
    }

    fn words(&self) -> String {
        let memory = match self.hub_bytes_per_connection() {
            Some(bytes) => {
                format!("; the hub holds {bytes} bytes of resident memory per connection")
            }
            None => String::new(),
        };
        format!(
            "{}/{} devices connected in {:.1} s; {} sent, {} acknowledged ({:.0}/s), {} \
             disconnects; acknowledgement p50 {:.2} ms, p99 {:.2} ms{memory}",
            self.connected,
            self.devices,
            self.connect_time.as_secs_f64(),
            self.sent,
            self.acknowledged,
            self.rate(),
            self.disconnects,
            self.percentile_ms(50),
            self.percentile_ms(99),
        )
    }
}
