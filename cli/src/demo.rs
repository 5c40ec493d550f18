//! `hubwire demo`: an embedded hub and simulated devices over every transport, MQTT's,
//! AMQP's and HTTP's, with a summary table, one row per transport. Exits non-zero if
//! anything was lost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubwire_core::Protocol;

use crate::runtime::{OnRuntime, Runtime};
use hubwire_blocking::{ClientTransport, HubServerEvent, Listen, Transport, listener_name};
use hubwire_core::ConnectionId;
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig};
use hubwire_core::device::{DeviceConfig, DeviceEvent};
use hubwire_core::http::device::poll_interval_warning;
use hubwire_core::hub::{DeviceRecord, HubConfig, HubEvent, Outcome};
use hubwire_core::iothub::Disposition::Complete;
use hubwire_core::iothub::{Message, MethodResponse, TwinPatch};
use hubwire_runtime::sync::{DeviceClient, HubServer, MultiplexedClient, Scheduler};
use hubwire_transports::tls::{self, local_ca};

use crate::out::{self, StdoutClosed};
use crate::registry;

/// The transports the demo runs, in the table's order: every one.
const TRANSPORTS: &[Transport] = Transport::ALL;

/// How long any one step may take before the demo calls it lost.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// `hubwire demo` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// The runtime that drives the hub and the devices: threads (`blocking`, the
    /// default), event loops (`mio`), or `smol` or `async-std` tasks
    #[arg(long, value_enum, default_value = "blocking")]
    runtime: Runtime,

    /// Simulated devices, each on its own connection.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Telemetry messages each device sends.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Also run every device over one AMQP connection (AMQP over TLS), each with
    /// its own CBS token and links, as IoT Hub allows for up to about 1000
    /// devices; its row is `amqp (multiplexed, 1 connection)`.
    #[arg(long)]
    multiplex: bool,
    /// How often the HTTP devices poll for C2D messages, milliseconds. IoT Hub asks
    /// production devices to poll at most every 25 minutes (its guide to C2D
    /// messaging); the demo polls faster to finish in seconds, and says so.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    http_poll_interval_ms: u64,
}

/// What one simulated device saw.
#[derive(Debug, Default)]
struct DeviceRun {
    sent: usize,
    acknowledged: usize,
    /// Send to acknowledgement, per message.
    latencies: Vec<Duration>,
    /// Bytes written while sending telemetry.
    telemetry_bytes: u64,
    c2d_delivered: bool,
    /// The hub took its reported patch and its desired update arrived.
    twin_ok: bool,
    /// It answered the hub's direct method.
    method_answered: bool,
    problem: Option<String>,
}

/// One row of the summary table.
#[derive(Debug)]
struct Row {
    /// The transport's name; HTTP's with its poll interval.
    transport: String,
    devices: usize,
    sent: usize,
    acknowledged: usize,
    stored: usize,
    c2d_delivered: usize,
    c2d_completed: usize,
    /// Devices whose reported patch the hub took and whose desired update arrived;
    /// `None` where the protocol has no twin (HTTP).
    twin: Option<usize>,
    /// Direct methods answered 200, as the hub reported them; `None` without methods.
    methods: Option<usize>,
    p50: Duration,
    p99: Duration,
    bytes_per_message: f64,
}

impl OnRuntime for DemoArgs {
    fn runtime(&self) -> Runtime {
        self.runtime
    }

    fn run_on<S: Scheduler>(self) -> ExitCode {
        run::<S>(self)
    }
}

fn run<S: Scheduler>(args: DemoArgs) -> ExitCode {
    let records: Result<Vec<DeviceRecord>, _> =
        (1..=args.devices).map(|i| registry::generated(&format!("demo-device-{i:03}"))).collect();
    let records = match records {
        Ok(records) => records,
        Err(e) => {
            out::warn(format_args!("hubwire demo: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // A CA of the demo's own, for this run only: the devices trust it as a user's
    // devices trust a local hub's.
    let certificates = std::env::temp_dir().join(format!("hubwire-demo-{}", std::process::id()));
    let result = serve_and_run::<S>(&args, &records, &certificates);
    let _ = std::fs::remove_dir_all(&certificates);
    let (rows, mut problems) = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            out::warn(format_args!("hubwire demo: cannot start the hub: {e}"));
            return ExitCode::FAILURE;
        }
    };
    for row in &rows {
        problems.extend(
            shortfalls(row, args.devices * args.messages)
                .into_iter()
                .map(|p| format!("{}: {p}", row.transport)),
        );
    }
    // A closed stdout loses only the table: the exit status still says whether
    // anything was lost, and the problems go to stderr.
    let _ = print_table(&rows.iter().collect::<Vec<_>>()).and_then(|()| {
        if problems.is_empty() {
            out::print(
                "ok: every message stored and acknowledged, every C2D message completed, every \
                 twin and method round trip done",
            )
        } else {
            Ok(())
        }
    });
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for problem in problems {
        out::warn(format_args!("hubwire demo: FAILED: {problem}"));
    }
    ExitCode::FAILURE
}

/// Starts the embedded hub with a listener for every transport and runs the
/// devices over each in turn; returns a row per transport and the problems seen.
///
/// Errors: the hub could not start (its certificate, its listeners), in words.
fn serve_and_run<S: Scheduler>(
    args: &DemoArgs,
    records: &[DeviceRecord],
    certificates: &Path,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let names = [String::from("127.0.0.1"), String::from("localhost")];
    let certificate = local_ca::ensure(certificates, &names).map_err(|e| e.to_string())?;
    let (chain, key) = tls::load_certificate(&certificate.cert_path, &certificate.key_path)
        .map_err(|e| e.to_string())?;
    let server_tls = tls::server_config(chain, key).map_err(|e| e.to_string())?;
    let config = HubConfig { host_names: names.to_vec(), ..HubConfig::default() };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut listen: Vec<Listen> = Vec::new();
    let multiplexed = args.multiplex.then_some(Transport::Amqp);
    for transport in TRANSPORTS.iter().copied().chain(multiplexed) {
        // MQTT and AMQP over WebSocket share one listener.
        let want = Listen { listener: transport.listener(), address: loopback };
        if !listen.contains(&want) {
            listen.push(want);
        }
    }
    let hub = HubServer::<S>::start(config, records.iter().cloned(), &listen, Some(server_tls))
        .map_err(|e| e.to_string())?;
    let addresses: Vec<String> = hub
        .listeners()
        .iter()
        .map(|l| format!("{} on {}", listener_name(l.listener), l.address))
        .collect();
    out::warn(format_args!(
        "hubwire demo: {} devices x {} messages per transport, on the {} runtime; hub: {}",
        args.devices,
        args.messages,
        args.runtime.name(),
        addresses.join(", ")
    ));
    let poll = Duration::from_millis(args.http_poll_interval_ms);
    if let Some(warning) = poll_interval_warning(poll) {
        out::warn(format_args!("hubwire demo: {warning}"));
    }
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for &transport in TRANSPORTS {
        let Some(address) = hub.local_addr(transport.listener()) else {
            problems.push(format!("{transport}: no listener"));
            continue;
        };
        let client = ClientTransport::with_ca(transport, &certificate.ca_path);
        let (row, seen) =
            run_transport(&hub, &client, transport, address, records, args.messages, poll);
        rows.push(row);
        problems.extend(seen);
    }
    if args.multiplex {
        let (row, seen) = run_multiplexed(&hub, &certificate.ca_path, records, args.messages);
        rows.push(row);
        problems.extend(seen);
    }
    hub.shutdown();
    Ok((rows, problems))
}

/// Runs every device over one transport: all send their telemetry, then each
/// completes the C2D message the hub sends it.
fn run_transport<S: Scheduler>(
    hub: &HubServer<S>,
    client: &ClientTransport,
    transport: Transport,
    address: SocketAddr,
    records: &[DeviceRecord],
    messages: usize,
    poll_interval: Duration,
) -> (Row, Vec<String>) {
    let stored_before = hub.stored().len();
    let all_sent = Barrier::new(records.len() + 1);
    let all_settled = Barrier::new(records.len() + 1);
    // HTTP has neither twin nor methods (spec file §6.1).
    let twin = transport.protocol() != Protocol::Http;
    let config = |cs| {
        let mut config = DeviceConfig::new(cs);
        config.c2d_poll_interval = poll_interval;
        config.receive_desired = twin;
        config.receive_methods = twin;
        config
    };
    let runs: Vec<DeviceRun> = thread::scope(|s| {
        let devices: Vec<_> = records
            .iter()
            .map(|record| {
                let barriers = (&all_sent, &all_settled);
                let config = config(registry::connection_string(address.to_string(), record));
                s.spawn(move || simulate::<S>(record, config, client, messages, barriers))
            })
            .collect();
        all_sent.wait();
        for record in records {
            let mut c2d = Message::new(&b"demo command"[..]);
            c2d.message_id = Some(format!("c2d-{transport}-{}", record.device_id));
            if let Err(e) = hub.send_c2d(&record.device_id, c2d) {
                out::warn(format_args!("hubwire demo: C2D to {} refused: {e}", record.device_id));
            }
        }
        all_settled.wait();
        if twin {
            twin_and_method_to_each(hub, transport, records);
        }
        devices
            .into_iter()
            .map(|d| {
                d.join().unwrap_or_else(|_| DeviceRun {
                    problem: Some(String::from("device thread panicked")),
                    ..DeviceRun::default()
                })
            })
            .collect()
    });
    let methods_expected = if twin { records.len() } else { 0 };
    let tally = tally(hub, records.len(), methods_expected);
    let c2d_completed = tally.completed;
    let stored = hub.stored().len() - stored_before;
    let mut latencies: Vec<Duration> = runs.iter().flat_map(|r| r.latencies.clone()).collect();
    latencies.sort();
    let acknowledged: usize = runs.iter().map(|r| r.acknowledged).sum();
    let telemetry_bytes: u64 = runs.iter().map(|r| r.telemetry_bytes).sum();
    let name = match transport {
        Transport::Http => format!("http (polls every {poll_interval:?})"),
        other => other.name().to_owned(),
    };
    let row = Row {
        transport: name,
        devices: records.len(),
        sent: runs.iter().map(|r| r.sent).sum(),
        acknowledged,
        stored,
        c2d_delivered: runs.iter().filter(|r| r.c2d_delivered).count(),
        c2d_completed,
        twin: twin.then(|| runs.iter().filter(|r| r.twin_ok).count()),
        methods: twin.then_some(tally.methods_ok),
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
        bytes_per_message: telemetry_bytes as f64 / acknowledged.max(1) as f64,
    };
    let problems = runs.into_iter().filter_map(|r| r.problem).map(|p| format!("{transport}: {p}"));
    (row, problems.collect())
}

/// One device: connect, send `messages` telemetry messages one at a time, wait for
/// the others at `all_sent`, then complete the C2D message the hub sends; wait at
/// `all_settled`, then (with the twin) report a property, take the hub's desired
/// update and answer its direct method.
fn simulate<S: Scheduler>(
    record: &DeviceRecord,
    config: DeviceConfig,
    client: &ClientTransport,
    messages: usize,
    (all_sent, all_settled): (&Barrier, &Barrier),
) -> DeviceRun {
    let twin = config.receive_desired;
    let mut run = DeviceRun::default();
    let device = DeviceClient::<S>::connect(config, client.clone());
    if let Err(e) = device.as_ref().map(|device| send_all(device, messages, &mut run)) {
        run.problem = Some(format!("{}: cannot start: {e}", record.device_id));
    }
    // Reached whatever happened, so the hub's thread never waits for a lost device.
    all_sent.wait();
    let Ok(device) = device else {
        all_settled.wait();
        return run;
    };
    if run.problem.is_none() {
        match device.recv_c2d(STEP_TIMEOUT) {
            Some(c2d) => {
                run.c2d_delivered = true;
                let completed = c2d.lock_token.map(|lock| device.complete(&lock));
                if !matches!(completed, Some(Ok(()))) {
                    run.problem = Some(format!("{}: C2D message not completed", record.device_id));
                }
            }
            None => run.problem = Some(format!("{}: no C2D message", record.device_id)),
        }
    }
    all_settled.wait();
    if twin && run.problem.is_none() {
        if let Err(problem) = twin_and_method(&device, &mut run) {
            run.problem = Some(format!("{}: {problem}", record.device_id));
        }
    }
    device.disconnect();
    run
}

/// The device's half of the twin and method round: report a property, then take
/// the hub's desired update and answer its `ping` method, in whichever order they
/// come.
fn twin_and_method<S: Scheduler>(
    device: &DeviceClient<S>,
    run: &mut DeviceRun,
) -> Result<(), String> {
    let patch = TwinPatch::parse(br#"{"demo":"reported"}"#).map_err(|e| e.to_string())?;
    let reported = device.patch_reported(patch, STEP_TIMEOUT);
    reported.map_err(|e| format!("reported patch: {e}"))?;
    let mut desired = false;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !(desired && run.method_answered) {
        let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now()))
        else {
            return Err(format!(
                "no {} within {STEP_TIMEOUT:?}",
                if desired { "method request" } else { "desired update" }
            ));
        };
        match event {
            DeviceEvent::DesiredUpdated { .. } => desired = true,
            DeviceEvent::MethodRequest(request) => {
                let response = MethodResponse {
                    request_id: request.request_id,
                    status: 200,
                    payload: Bytes::from_static(br#"{"pong":true}"#),
                };
                device.respond_method(response).map_err(|e| format!("method answer: {e}"))?;
                run.method_answered = true;
            }
            _ => {}
        }
    }
    run.twin_ok = true;
    Ok(())
}

/// The hub's half: a desired update and a `ping` method for every device.
fn twin_and_method_to_each<S: Scheduler>(
    hub: &HubServer<S>,
    transport: Transport,
    records: &[DeviceRecord],
) {
    for record in records {
        let id = &record.device_id;
        let mut members = serde_json::Map::new();
        members.insert(String::from("demo"), serde_json::Value::from(transport.name()));
        let updated = TwinPatch::from_map(members).map(|patch| hub.update_desired(id, patch, None));
        if !matches!(updated, Ok(Ok(_))) {
            out::warn(format_args!("hubwire demo: desired update to {id} refused: {updated:?}"));
        }
        let payload = Bytes::from_static(b"{}");
        if let Err(e) = hub.invoke_method(id, "ping", payload, STEP_TIMEOUT) {
            out::warn(format_args!("hubwire demo: method on {id} refused: {e}"));
        }
    }
}

fn send_all<S: Scheduler>(device: &DeviceClient<S>, messages: usize, run: &mut DeviceRun) {
    if let Err(problem) = wait_connected(device) {
        run.problem = Some(problem);
        return;
    }
    // Counted from here, so the connection's own packets are not in the figure.
    let before = device.bytes_written();
    for i in 0..messages {
        let mut message = Message::new(format!("{{\"reading\":{i}}}").into_bytes());
        message.properties.set("sensor", "temperature");
        message.properties.set("index", i.to_string());
        run.sent += 1;
        let started = Instant::now();
        match device.send_telemetry_timeout(message, STEP_TIMEOUT) {
            Ok(()) => {
                run.acknowledged += 1;
                run.latencies.push(started.elapsed());
            }
            Err(e) => {
                run.problem = Some(format!("message {i}: {e}"));
                break;
            }
        }
    }
    run.telemetry_bytes = device.bytes_written() - before;
}

fn wait_connected<S: Scheduler>(device: &DeviceClient<S>) -> Result<(), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now())) {
        match event {
            DeviceEvent::Connected { .. } => return Ok(()),
            DeviceEvent::Disconnected { reason, reconnect_at: None } => {
                return Err(format!("stopped: {reason}"));
            }
            _ => {}
        }
    }
    Err(format!("not connected within {STEP_TIMEOUT:?}"))
}

/// What the hub's events said about one row's run.
#[derive(Debug, Default)]
struct Tally {
    /// C2D messages completed.
    completed: usize,
    /// Direct methods that ended with the device's 200.
    methods_ok: usize,
    /// The connections devices authenticated on.
    connections: BTreeSet<ConnectionId>,
}

/// Reads hub events until `completions` C2D completions and `methods` method
/// results, or [`STEP_TIMEOUT`].
fn tally<S: Scheduler>(hub: &HubServer<S>, completions: usize, methods: usize) -> Tally {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut tally = Tally::default();
    let mut results = 0;
    while tally.completed < completions || results < methods {
        let Some(event) = hub.recv_event(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        match event {
            HubServerEvent::Hub(HubEvent::C2dSettled(settled))
                if settled.outcome == Outcome::Completed =>
            {
                tally.completed += 1;
            }
            HubServerEvent::Hub(HubEvent::MethodResult { outcome, .. }) => {
                results += 1;
                tally.methods_ok += usize::from(outcome.status() == 200);
            }
            HubServerEvent::Hub(HubEvent::Connected { connection, .. }) => {
                tally.connections.insert(connection);
            }
            _ => {}
        }
    }
    tally
}

/// The row of [`run_multiplexed`].
const MULTIPLEXED_ROW: &str = "amqp (multiplexed, 1 connection)";

/// Runs every device over one [`MultiplexedClient`] on AMQP over TLS: each sends
/// its telemetry one message at a time, all devices at once, then completes the C2D
/// message the hub sends it. The hub must see one connection.
fn run_multiplexed<S: Scheduler>(
    hub: &HubServer<S>,
    ca: &Path,
    records: &[DeviceRecord],
    messages: usize,
) -> (Row, Vec<String>) {
    let mut row = Row {
        transport: MULTIPLEXED_ROW.to_owned(),
        devices: records.len(),
        sent: 0,
        acknowledged: 0,
        stored: 0,
        c2d_delivered: 0,
        c2d_completed: 0,
        twin: None,
        methods: None,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        bytes_per_message: 0.0,
    };
    let stored_before = hub.stored().len();
    let mut problems = Vec::new();
    let mut latencies = Vec::new();
    match hub.local_addr(Transport::Amqp.listener()) {
        None => problems.push(String::from("no AMQP listener")),
        Some(address) => {
            let run = Multiplex { records, messages, row: &mut row, latencies: &mut latencies };
            if let Err(problem) = run.run(hub, address, ca) {
                problems.push(problem);
            }
        }
    }
    let tally = tally(hub, records.len(), records.len());
    let (c2d_completed, connections) = (tally.completed, tally.connections);
    row.c2d_completed = c2d_completed;
    row.methods = Some(tally.methods_ok);
    row.twin = row.twin.or(Some(0));
    row.stored = hub.stored().len() - stored_before;
    latencies.sort();
    row.p50 = percentile(&latencies, 50);
    row.p99 = percentile(&latencies, 99);
    if connections.len() != 1 {
        problems.push(format!("the hub saw {} connections, not 1", connections.len()));
    }
    let problems = problems.into_iter().map(|p| format!("{MULTIPLEXED_ROW}: {p}")).collect();
    (row, problems)
}

/// One multiplexed run in progress.
struct Multiplex<'a> {
    records: &'a [DeviceRecord],
    messages: usize,
    row: &'a mut Row,
    latencies: &'a mut Vec<Duration>,
}

impl Multiplex<'_> {
    /// Connects the devices, runs the telemetry and the C2D round trips.
    ///
    /// Errors: the first thing that went wrong, in words.
    fn run<S: Scheduler>(
        mut self,
        hub: &HubServer<S>,
        address: SocketAddr,
        ca: &Path,
    ) -> Result<(), String> {
        let config = MultiplexConfig::new(address.to_string());
        let transport = ClientTransport::with_ca(Transport::Amqp, ca);
        let client = MultiplexedClient::<S>::connect(config, transport)
            .map_err(|e| format!("cannot start: {e}"))?;
        let mut ids = BTreeMap::new();
        for record in self.records {
            let cs = registry::connection_string(address.to_string(), record);
            let mut config = DeviceConfig::new(cs);
            config.receive_desired = true;
            config.receive_methods = true;
            let key = client
                .add_device(config)
                .map_err(|e| format!("{}: cannot add: {e}", record.device_id))?;
            ids.insert(key, record.device_id.as_str());
        }
        let mut connected = BTreeSet::new();
        next_events(&client, &ids, |key, event| {
            if let DeviceEvent::Connected { .. } = event {
                connected.insert(key);
            }
            Ok(connected.len() == ids.len())
        })?;
        let result = self.telemetry(&client, &ids).and_then(|()| {
            for id in ids.values() {
                let mut c2d = Message::new(&b"demo command"[..]);
                c2d.message_id = Some(format!("c2d-multiplexed-{id}"));
                hub.send_c2d(id, c2d).map_err(|e| format!("C2D to {id} refused: {e}"))?;
            }
            let mut delivered = BTreeSet::new();
            next_events(&client, &ids, |key, event| {
                if let DeviceEvent::C2d(c2d) = event {
                    delivered.insert(key);
                    let completed = c2d.lock_token.map(|lock| client.settle(key, &lock, Complete));
                    if !matches!(completed, Some(Ok(()))) {
                        return Err(format!("{}: C2D message not completed", name(&ids, key)));
                    }
                }
                Ok(delivered.len() == ids.len())
            })
            .inspect_err(|_| self.row.c2d_delivered = delivered.len())?;
            self.row.c2d_delivered = delivered.len();
            self.twin_and_methods(hub, &client, &ids)
        });
        client.close();
        result
    }

    /// Each device reports a property; the hub updates each one's desired
    /// properties and invokes `ping` on it; each answers. Counts the devices that
    /// did all three.
    fn twin_and_methods<S: Scheduler>(
        &mut self,
        hub: &HubServer<S>,
        client: &MultiplexedClient<S>,
        ids: &BTreeMap<DeviceKey, &str>,
    ) -> Result<(), String> {
        let patch = TwinPatch::parse(br#"{"demo":"reported"}"#).map_err(|e| e.to_string())?;
        for &key in ids.keys() {
            let asked = client.patch_reported(key, patch.clone());
            asked.map_err(|e| format!("{}: reported patch: {e}", name(ids, key)))?;
        }
        let records: Vec<DeviceRecord> = self
            .records
            .iter()
            .filter(|r| ids.values().any(|id| *id == r.device_id))
            .cloned()
            .collect();
        twin_and_method_to_each(hub, Transport::Amqp, &records);
        let (mut reported, mut desired, mut answered) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let all = |set: &BTreeSet<DeviceKey>| set.len() == ids.len();
        next_events(client, ids, |key, event| {
            match event {
                DeviceEvent::ReportedPatched { .. } => {
                    reported.insert(key);
                }
                DeviceEvent::DesiredUpdated { .. } => {
                    desired.insert(key);
                }
                DeviceEvent::MethodRequest(request) => {
                    let response = MethodResponse {
                        request_id: request.request_id.clone(),
                        status: 200,
                        payload: Bytes::from_static(br#"{"pong":true}"#),
                    };
                    client
                        .respond_method(key, response)
                        .map_err(|e| format!("{}: method answer: {e}", name(ids, key)))?;
                    answered.insert(key);
                }
                DeviceEvent::TwinRequestFailed { status, description, .. } => {
                    return Err(format!(
                        "{}: reported patch failed ({status:?}): {description}",
                        name(ids, key)
                    ));
                }
                _ => {}
            }
            Ok(all(&reported) && all(&desired) && all(&answered))
        })?;
        self.row.twin = Some(reported.intersection(&desired).count());
        Ok(())
    }

    /// Every device sends its messages one at a time, all devices at once.
    fn telemetry<S: Scheduler>(
        &mut self,
        client: &MultiplexedClient<S>,
        ids: &BTreeMap<DeviceKey, &str>,
    ) -> Result<(), String> {
        if self.messages == 0 {
            return Ok(());
        }
        // Counted from here, so the connection's own frames are not in the figure.
        let before = client.bytes_written();
        let mut sent_at: BTreeMap<DeviceKey, (usize, Instant)> = BTreeMap::new();
        let send = |key: DeviceKey, i: usize, row: &mut Row, sent_at: &mut BTreeMap<_, _>| {
            let mut message = Message::new(format!("{{\"reading\":{i}}}").into_bytes());
            message.properties.set("sensor", "temperature");
            message.properties.set("index", i.to_string());
            row.sent += 1;
            sent_at.insert(key, (i, Instant::now()));
            client.send_telemetry(key, message).map(|_| ()).map_err(|e| format!("{e}"))
        };
        for &key in ids.keys() {
            send(key, 0, self.row, &mut sent_at)?;
        }
        let mut done = 0;
        let result = next_events(client, ids, |key, event| {
            match event {
                DeviceEvent::TelemetryAcknowledged(_) => {
                    let Some(&(i, started)) = sent_at.get(&key) else { return Ok(false) };
                    self.row.acknowledged += 1;
                    self.latencies.push(started.elapsed());
                    if i + 1 < self.messages {
                        send(key, i + 1, self.row, &mut sent_at)?;
                    } else {
                        done += 1;
                    }
                }
                DeviceEvent::TelemetryRejected { condition, .. } => {
                    return Err(format!("{}: telemetry rejected: {condition}", name(ids, key)));
                }
                _ => {}
            }
            Ok(done == ids.len())
        });
        let bytes = client.bytes_written() - before;
        self.row.bytes_per_message = bytes as f64 / self.row.acknowledged.max(1) as f64;
        result
    }
}

/// Hands the client's events to `each` until it returns `Ok(true)`; a device that
/// stops or [`STEP_TIMEOUT`] without an event is an error.
fn next_events<S: Scheduler>(
    client: &MultiplexedClient<S>,
    ids: &BTreeMap<DeviceKey, &str>,
    mut each: impl FnMut(DeviceKey, &DeviceEvent) -> Result<bool, String>,
) -> Result<(), String> {
    loop {
        let Some((key, event)) = client.recv_event(STEP_TIMEOUT) else {
            return Err(format!("no progress within {STEP_TIMEOUT:?}"));
        };
        if let DeviceEvent::Disconnected { reason, .. } = &event {
            return Err(format!("{}: {reason}", name(ids, key)));
        }
        if each(key, &event)? {
            return Ok(());
        }
    }
}

/// The device id of `key`.
fn name<'a>(ids: &BTreeMap<DeviceKey, &'a str>, key: DeviceKey) -> &'a str {
    ids.get(&key).copied().unwrap_or("?")
}

/// The nearest-rank percentile of sorted values; zero for none.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// What the row shows was lost, in words.
fn shortfalls(row: &Row, expected: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |what: &str, got: usize, wanted: usize| {
        if got != wanted {
            problems.push(format!("{what}: {got} of {wanted}"));
        }
    };
    check("telemetry sent", row.sent, expected);
    check("telemetry acknowledged", row.acknowledged, expected);
    check("telemetry stored", row.stored, expected);
    check("C2D delivered", row.c2d_delivered, row.devices);
    check("C2D completed", row.c2d_completed, row.devices);
    if let Some(twin) = row.twin {
        check("twin round trips", twin, row.devices);
    }
    if let Some(methods) = row.methods {
        check("direct methods answered", methods, row.devices);
    }
    problems
}

/// Prints the table on stdout.
///
/// Errors: [`StdoutClosed`], and the rest of the table is not printed.
fn print_table(rows: &[&Row]) -> Result<(), StdoutClosed> {
    let header = [
        "transport",
        "devices",
        "sent",
        "acknowledged",
        "stored",
        "c2d delivered",
        "c2d completed",
        "twin",
        "methods",
        "p50 ms",
        "p99 ms",
        "wire bytes/msg",
    ];
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    let cells: Vec<[String; 12]> = rows
        .iter()
        .map(|r| {
            [
                r.transport.to_string(),
                r.devices.to_string(),
                r.sent.to_string(),
                r.acknowledged.to_string(),
                r.stored.to_string(),
                r.c2d_delivered.to_string(),
                r.c2d_completed.to_string(),
                r.twin.map_or_else(|| String::from("-"), |n| n.to_string()),
                r.methods.map_or_else(|| String::from("-"), |n| n.to_string()),
                ms(r.p50),
                ms(r.p99),
                format!("{:.1}", r.bytes_per_message),
            ]
        })
        .collect();
    let width =
        |i: usize| cells.iter().map(|row| row[i].len()).chain([header[i].len()]).max().unwrap_or(0);
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i == 0 {
                    format!("{v:<w$}", w = width(i))
                } else {
                    format!("{v:>w$}", w = width(i))
                }
            })
            .collect();
        out::print(padded.join("  "))
    };
    line(header.to_vec())?;
    for row in &cells {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        let values = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&values, 50), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99), Duration::from_millis(99));
        assert_eq!(percentile(&ms(&[7]), 99), Duration::from_millis(7));
        assert_eq!(percentile(&ms(&[1, 2, 3]), 50), Duration::from_millis(2));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
