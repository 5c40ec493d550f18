//! `hubwire hub`: a local IoT Hub whose standard streams are the service side.
//!
//! stdout: JSON lines only (see [`crate::json`]). stderr: the same for people, and
//! every refusal in words; it never holds up stdout (see [`Stderr`]). stdin: one
//! C2D message per JSON line. The end of stdin does not stop the hub; it serves
//! until killed, or until stdout is closed.

use std::io::{self, BufRead};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crate::runtime::{OnRuntime, Runtime};
use bytes::Bytes;
use hubwire_blocking::{HubServerEvent, Listen, Listener, clock, listener_name};
use hubwire_core::Protocol;
use hubwire_core::hub::{DeviceRecord, HubConfig, HubEvent};
use hubwire_core::iothub::{ErrorCode, TwinPatch};
use hubwire_runtime::listen::Engine;
use hubwire_runtime::sync::{HubServer, Scheduler};
use hubwire_store::{MemoryStore, RedbStore, Store};
use hubwire_transports::tls::{self, local_ca};

use crate::json::{self, Line, ServiceRequest};
use crate::out::{self, Stderr, StdoutClosed};
use crate::registry;

/// `hubwire hub` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    /// The runtime that drives the hub: one event loop thread (`mio`, the default),
    /// threads per connection (`blocking`), or `smol` or `async-std` tasks
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,

    /// The address every listener binds. Any loopback address (127.0.0.N) works and
    /// goes into the hub's certificate, so several hubs can serve the standard ports
    /// side by side.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    bind: IpAddr,
    /// Port for MQTT over TLS (IoT Hub's 8883); 0 picks a free one, `off` serves none.
    #[arg(long, default_value = "8883", value_name = "PORT|off", value_parser = port)]
    mqtt_port: PortSetting,
    /// Port for IoT Hub's HTTPS REST API and for MQTT and AMQP over WebSocket over
    /// TLS at /$iothub/websocket (subprotocols mqtt and AMQPWSB10): IoT Hub's 443;
    /// 0 picks a free one, `off` serves none. Ports below 1024 need root or
    /// CAP_NET_BIND_SERVICE.
    #[arg(long, default_value = "443", value_name = "PORT|off", value_parser = port)]
    https_port: PortSetting,
    /// Also serve MQTT over plain TCP on this port, for development (IoT Hub does not
    /// offer it); 0 picks a free one.
    #[arg(long, value_name = "PORT")]
    mqtt_tcp_port: Option<u16>,
    /// Port for AMQP over TLS (IoT Hub's 5671); 0 picks a free one, `off` serves none.
    #[arg(long, default_value = "5671", value_name = "PORT|off", value_parser = port)]
    amqp_port: PortSetting,
    /// Also serve AMQP over plain TCP on this port, for development (IoT Hub does not
    /// offer it; AMQP's own is 5672); 0 picks a free one.
    #[arg(long, value_name = "PORT")]
    amqp_tcp_port: Option<u16>,
    /// A host name devices use for this hub (no port). The first goes into the
    /// printed connection strings; all are accepted in SAS token audiences and put in
    /// the hub's certificate. Default: the bind address (and `localhost`).
    #[arg(long = "host-name", value_name = "NAME")]
    host_names: Vec<String>,
    /// Where the hub keeps its local CA (ca.pem: give it to devices) and its server
    /// certificate, made on first start, and, when given, its store (hub.redb: the
    /// registry, twins, D2C log and C2D queues, written before a device is
    /// acknowledged, so a restart loses nothing acknowledged). Default for the
    /// certificates: $XDG_DATA_HOME/hubwire, else ~/.local/share/hubwire; without
    /// it the store is in memory
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep messages, queues and twins in memory even with --data-dir (which then
    /// holds the certificates only): for benchmarks and throwaway hubs
    #[arg(long)]
    in_memory: bool,
    /// How many D2C messages the hub keeps, the oldest going first, as IoT Hub keeps
    /// them for a retention time (default: 100000 in memory, 1000000 in --data-dir)
    #[arg(long, value_name = "N")]
    keep_messages: Option<u64>,
    /// How long the hub keeps a D2C message, seconds, judged against the latest
    /// one: IoT Hub's default retention of one day; IoT Hub allows up to seven
    #[arg(long, default_value = "86400", value_name = "SECONDS")]
    retention_s: u64,
    /// Serve this certificate chain (PEM) instead of one from the local CA.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Register a device with this id and generated keys (a device the --data-dir
    /// store keeps already keeps its keys).
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,
    /// Register the devices of this JSON file: an array of
    /// {"deviceId","primaryKey","secondaryKey","enabled"}, keys generated when absent.
    /// Without --device or --registry the hub serves the devices its --data-dir
    /// store keeps, or registers `device1` when there are none.
    #[arg(long, value_name = "FILE")]
    registry: Option<PathBuf>,
    /// Identities one AMQP connection may hold CBS tokens for: a put-token for one
    /// more is refused with status 403 (IoT Hub's 403005). IoT Hub's per-connection
    /// CBS token limit is about 1000, the default.
    #[arg(long, value_name = "N", default_value_t = hubwire_core::amqp::cbs::MAX_TOKENS)]
    max_cbs_tokens: usize,
    /// The seed of the hub's random numbers (AMQP lock tokens): the same seed, devices
    /// and inputs at the same times give the same answers, byte for byte. Default: a
    /// new one every run
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Write a transcript of the run to a new file in DIR (`hub-<ms since the epoch>.txt`):
    /// the hub's seed, configuration and registry, then every connection's protocol
    /// bytes both ways (below TLS and WebSocket), C2D messages queued and telemetry
    /// acknowledgements, each with its time, for replay by
    /// conformance/tests/transcripts.rs. Record with the store in memory (no
    /// --data-dir, or --in-memory): a restored store is not in the transcript
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
}

/// A listener's port, or none for `off`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PortSetting(pub(crate) Option<u16>);

pub(crate) fn port(s: &str) -> Result<PortSetting, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(PortSetting(None));
    }
    s.parse()
        .map(|p| PortSetting(Some(p)))
        .map_err(|_| format!("{s:?} is not a port number (0-65535) or `off`"))
}

impl OnRuntime for HubArgs {
    fn runtime(&self) -> Runtime {
        self.runtime
    }

    fn run_on<S: Scheduler>(self) -> ExitCode {
        run::<S>(self)
    }
}

fn run<S: Scheduler>(args: HubArgs) -> ExitCode {
    let opened = store(&args).and_then(|mut store| {
        let known = store.load().map_err(|e| format!("cannot read the store: {e}"))?.devices;
        Ok((store, known))
    });
    let (store, known) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            out::warn(format_args!("hubwire hub: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut ids = args.devices.clone();
    // A hub that kept its registry serves it; a new one gets a device to start with.
    if ids.is_empty() && args.registry.is_none() && known.is_empty() {
        ids.push(String::from("device1"));
    }
    let records = match registry::load(args.registry.as_deref(), &ids, &known) {
        Ok(records) if records.is_empty() => known,
        Ok(records) => records,
        Err(e) => {
            out::warn(format_args!("hubwire hub: {e}"));
            return ExitCode::from(2);
        }
    };
    match start::<S>(&args, &records, store) {
        Ok(code) => code,
        Err(e) => {
            out::warn(format_args!("hubwire hub: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Starts the hub and serves until stdout closes.
///
/// Errors: what kept the hub from starting, in words.
fn start<S: Scheduler>(
    args: &HubArgs,
    records: &[DeviceRecord],
    store: Box<dyn Store>,
) -> Result<ExitCode, String> {
    let host = args.host_names.first().cloned().unwrap_or_else(|| host_of(args.bind));
    let host_names = if args.host_names.is_empty() {
        vec![host.clone(), String::from("localhost")]
    } else {
        args.host_names.clone()
    };
    let (server_tls, ca) = certificate(args, &host_names)?;
    let config =
        HubConfig { host_names, max_cbs_tokens: args.max_cbs_tokens, ..HubConfig::default() };
    let at = |port| SocketAddr::new(args.bind, port);
    let mut listen = Vec::new();
    if let PortSetting(Some(port)) = args.mqtt_port {
        listen.push(Listen { listener: Listener::Tls(Protocol::Mqtt), address: at(port) });
    }
    if let PortSetting(Some(port)) = args.https_port {
        listen.push(Listen { listener: Listener::Web, address: at(port) });
    }
    if let Some(port) = args.mqtt_tcp_port {
        listen.push(Listen { listener: Listener::Tcp(Protocol::Mqtt), address: at(port) });
    }
    if let PortSetting(Some(port)) = args.amqp_port {
        listen.push(Listen { listener: Listener::Tls(Protocol::Amqp), address: at(port) });
    }
    if let Some(port) = args.amqp_tcp_port {
        listen.push(Listen { listener: Listener::Tcp(Protocol::Amqp), address: at(port) });
    }
    if listen.is_empty() {
        return Err(String::from("every listener is off: nothing to serve"));
    }
    // Every connection is a file descriptor: a hub takes what the hard limit allows
    // (the default soft limit, often 1024, would refuse connections long before).
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let devices = records.iter().cloned();
    let (transcript, recording) = match &args.record {
        Some(dir) => {
            let (file, path) = transcript_file(dir)?;
            (Some(file), Some(path))
        }
        None => (None, None),
    };
    let engine = Engine { seed: args.seed, transcript };
    let tls = Some(server_tls);
    let server = HubServer::<S>::start_with_engine(config, devices, &listen, tls, store, engine)
        .map_err(|e| format!("cannot start: {e}"))?;
    let mut stderr = Stderr::spawn().map_err(|e| format!("cannot start: {e}"))?;
    if let Some(path) = recording {
        stderr.line(format!("hubwire hub: recording a transcript in {}", path.display()));
    }
    for error in server.bind_errors() {
        let (flag, none) = match error.listen.listener {
            Listener::Web => ("--https-port", "--https-port off"),
            Listener::Tcp(Protocol::Amqp) => ("--amqp-tcp-port", "leave it out"),
            Listener::Tcp(_) => ("--mqtt-tcp-port", "leave it out"),
            Listener::Tls(Protocol::Amqp) => ("--amqp-port", "--amqp-port off"),
            _ => ("--mqtt-port", "--mqtt-port off"),
        };
        stderr.line(format!(
            "hubwire hub: {error} (another port: {flag} PORT; none: {none}); serving on the \
             other listeners"
        ));
    }
    let address = |listener| server.local_addr(listener).map(|a| a.to_string());
    let (mqtt, https, mqtt_tcp, amqp, amqp_tcp) = (
        address(Listener::Tls(Protocol::Mqtt)),
        address(Listener::Web),
        address(Listener::Tcp(Protocol::Mqtt)),
        address(Listener::Tls(Protocol::Amqp)),
        address(Listener::Tcp(Protocol::Amqp)),
    );
    let authority = connection_authority(&host, &server);
    for record in records {
        let cs = registry::connection_string(authority.clone(), record);
        stderr.line(format!("device {}: {cs}", record.device_id));
        let line = Line::Device { device_id: &record.device_id, connection_string: cs.to_string() };
        if line.print().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    for listen in server.listeners() {
        stderr.line(format!(
            "hubwire hub: {} on {}",
            listener_name(listen.listener),
            listen.address
        ));
    }
    if let Some(ca) = &ca {
        stderr.line(format!("hubwire hub: devices trust its CA: {}", ca.display()));
    }
    let ca = ca.map(|p| p.display().to_string());
    if (Line::Listening { mqtt, https, mqtt_tcp, amqp, amqp_tcp, ca }).print().is_err() {
        return Ok(ExitCode::SUCCESS);
    }
    serve(Arc::new(server), stderr).map_err(|e| format!("cannot start: {e}"))
}

/// The server certificate's TLS configuration, and the local CA's path when the
/// certificate is the local CA's.
///
/// Errors: a certificate that cannot be made or loaded, in words.
fn certificate(
    args: &HubArgs,
    host_names: &[String],
) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), String> {
    let (cert, key, ca) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), None),
        _ => {
            let dir = match &args.data_dir {
                Some(dir) => dir.clone(),
                None => default_data_dir()?,
            };
            let mut names = vec![String::from("localhost"), String::from("127.0.0.1")];
            if !args.bind.is_unspecified() {
                names.push(args.bind.to_string());
            }
            names.extend(host_names.iter().cloned());
            names.sort();
            names.dedup();
            let made = local_ca::ensure(&dir, &names).map_err(|e| e.to_string())?;
            (made.cert_path, made.key_path, Some(made.ca_path))
        }
    };
    let (chain, key) = tls::load_certificate(&cert, &key).map_err(|e| e.to_string())?;
    let config = tls::server_config(chain, key).map_err(|e| e.to_string())?;
    Ok((config, ca))
}

/// A new transcript file in `dir`, made if need be, named after the time.
///
/// Errors: the directory or the file cannot be made, in words.
fn transcript_file(dir: &Path) -> Result<(Box<dyn io::Write + Send>, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let path = dir.join(format!("hub-{}.txt", clock::now().as_millis()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    // Line by line: what was said survives the hub being killed.
    Ok((Box::new(io::LineWriter::new(file)), path))
}

/// The store's file in `--data-dir`.
const STORE_FILE: &str = "hub.redb";

/// The hub's store: `hub.redb` in `--data-dir` when it is given (durable), else
/// memory.
///
/// Errors: the directory cannot be made, or the database cannot be opened (another
/// hub has it open, or it is not a hub's store), in words.
fn store(args: &HubArgs) -> Result<Box<dyn Store>, String> {
    let retention = hubwire_core::time::Duration::from_secs(args.retention_s);
    let Some(dir) = args.data_dir.as_ref().filter(|_| !args.in_memory) else {
        out::warn(format_args!(
            "hubwire hub: keeping messages and queues in memory; pass --data-dir to keep \
             them across restarts"
        ));
        let store = match args.keep_messages {
            Some(n) => MemoryStore::with_d2c_limit(usize::try_from(n).unwrap_or(usize::MAX)),
            None => MemoryStore::new(),
        };
        return Ok(Box::new(store.with_d2c_retention(retention)));
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let path = dir.join(STORE_FILE);
    let mut store = RedbStore::open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .with_d2c_retention(retention);
    if let Some(n) = args.keep_messages {
        store = store.with_d2c_limit(n);
    }
    out::warn(format_args!(
        "hubwire hub: keeping devices, twins, messages and queues in {}",
        path.display()
    ));
    Ok(Box::new(store))
}

/// `$XDG_DATA_HOME/hubwire`, else `~/.local/share/hubwire`.
///
/// Errors: neither variable is set.
pub(crate) fn default_data_dir() -> Result<PathBuf, String> {
    let from = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(data) = from("XDG_DATA_HOME") {
        return Ok(data.join("hubwire"));
    }
    match from("HOME") {
        Some(home) => Ok(home.join(".local/share/hubwire")),
        None => {
            Err(String::from("no HOME nor XDG_DATA_HOME to keep certificates in: pass --data-dir"))
        }
    }
}

/// `HostName` for the printed connection strings: the host, with the port devices
/// must dial when it is not their transport's own. The transport is the first
/// served of MQTT over TLS (the one `hubwire device` and the SDKs use by default),
/// WebSocket on 443, AMQP over TLS, then the plain-TCP ones, whose port is always
/// written.
fn connection_authority<S: Scheduler>(host: &str, server: &HubServer<S>) -> String {
    let first = [
        Listener::Tls(Protocol::Mqtt),
        Listener::Web,
        Listener::Tls(Protocol::Amqp),
        Listener::Tcp(Protocol::Mqtt),
        Listener::Tcp(Protocol::Amqp),
    ]
    .into_iter()
    .find_map(|listener| Some((listener, server.local_addr(listener)?.port())));
    match first {
        Some((Listener::Tcp(_), port)) => format!("{host}:{port}"),
        Some((listener, port)) if port != listener.default_port() => format!("{host}:{port}"),
        _ => host.to_owned(),
    }
}

/// Reports events and takes C2D messages from stdin, each on a thread of its own,
/// until stdout is closed (success: nobody reads the hub any more) or the hub's
/// driver dies (failure). The end of stdin ends only its own thread.
///
/// Errors: the OS's, when a thread cannot start.
fn serve<S: Scheduler>(server: Arc<HubServer<S>>, stderr: Stderr) -> io::Result<ExitCode> {
    let (done, end) = mpsc::channel();
    let (reporter, reported) = (Arc::clone(&server), done.clone());
    thread::Builder::new().name(String::from("hubwire-events")).spawn(move || {
        let _ = reported.send(report_events(&reporter, stderr));
    })?;
    // Not joined: it blocks reading stdin, and returning from `main` ends it.
    thread::Builder::new().name(String::from("hubwire-stdin")).spawn(move || {
        if enqueue_from_stdin(&server).is_err() {
            let _ = done.send(ExitCode::SUCCESS);
        }
    })?;
    Ok(end.recv().unwrap_or(ExitCode::FAILURE))
}

/// The host to put in connection strings for a listen address: the IP itself
/// (IPv6 in brackets), or `localhost` for the unspecified address.
fn host_of(ip: IpAddr) -> String {
    match ip {
        ip if ip.is_unspecified() => String::from("localhost"),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Prints every hub event as it comes; refusals also on stderr. Returns success
/// when stdout is closed, failure when the hub's driver has died (its panic
/// message, on stderr, says why).
fn report_events<S: Scheduler>(server: &HubServer<S>, mut stderr: Stderr) -> ExitCode {
    while let Some(event) = server.next_event() {
        let printed = match &event {
            HubServerEvent::Stored(record) => Line::telemetry(record).print(),
            HubServerEvent::TransportError { peer, listener, error } => {
                let peer = peer.map(|p| p.to_string());
                let who = peer.as_deref().unwrap_or("a peer");
                stderr.line(format!(
                    "hubwire hub: {who} on the {} listener: {error}",
                    listener_name(*listener)
                ));
                Line::TransportError { peer, listener: listener_name(*listener), error }.print()
            }
            HubServerEvent::Hub(event) => {
                if let HubEvent::Refused { connection, identity, code, reason } = event {
                    stderr.line(json::refusal_words(*connection, identity.as_ref(), *code, reason));
                }
                Line::hub_event(event).map_or(Ok(()), |line| line.print())
            }
            HubServerEvent::Dropped { count } => {
                stderr.line(format!(
                    "hubwire hub: {count} events were not reported: stdout is not read as \
                     fast as they come (what they report happened all the same)"
                ));
                Ok(())
            }
            HubServerEvent::StoreFailed { what, error } => {
                stderr.line(format!("hubwire hub: cannot store {what}: {error}"));
                Ok(())
            }
            _ => Ok(()),
        };
        if printed.is_err() {
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::FAILURE
}

/// Carries out each stdin line (a C2D message to enqueue, or a twin or method
/// request), answering each on stdout, until stdin ends.
///
/// Errors: [`StdoutClosed`] when an answer cannot be written.
fn enqueue_from_stdin<S: Scheduler>(server: &HubServer<S>) -> Result<(), StdoutClosed> {
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let number = index + 1;
        let line = match line {
            Ok(line) => line,
            // The line was consumed; the next one may be fine.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Line::error(number, ErrorCode::ARGUMENT_INVALID, e.to_string()).print()?;
                continue;
            }
            Err(_) => return Ok(()),
        };
        if line.trim().is_empty() {
            continue;
        }
        // A request's answer line goes out before any event it causes (the
        // method's result, the message's settlement): the event thread waits on
        // stdout until this line is handled. The driver never writes to stdout.
        let _answer_first = out::hold_stdout();
        let request = match ServiceRequest::parse(&line) {
            Ok(ServiceRequest::SendC2d(request)) => request,
            Ok(other) => {
                answer_service(server, number, other)?;
                continue;
            }
            Err((code, message)) => {
                Line::error(number, code, message).print()?;
                continue;
            }
        };
        let device_id = request.device_id.clone();
        let message = match request.into_message(clock::now()) {
            Ok(message) => message,
            Err((code, message)) => {
                Line::error(number, code, message).print()?;
                continue;
            }
        };
        match server.send_c2d(&device_id, message) {
            Ok(sequence_number) => {
                Line::C2dQueued { device_id: &device_id, sequence_number }.print()?;
            }
            Err(e) => json::hub_error(number, &e).print()?,
        }
    }
    Ok(())
}

/// Answers a twin or method request from stdin line `number`.
///
/// Errors: [`StdoutClosed`].
fn answer_service<S: Scheduler>(
    server: &HubServer<S>,
    number: usize,
    request: ServiceRequest,
) -> Result<(), StdoutClosed> {
    match request {
        ServiceRequest::UpdateDesired(json::UpdateDesired { device_id, patch, if_version }) => {
            let patch = match TwinPatch::from_map(patch) {
                Ok(patch) => patch,
                Err(e) => {
                    return Line::error(number, ErrorCode::ARGUMENT_INVALID, e.to_string()).print();
                }
            };
            match server.update_desired(&device_id, patch, if_version) {
                Ok(version) => Line::DesiredUpdated { device_id: &device_id, version }.print(),
                Err(e) => json::hub_error(number, &e).print(),
            }
        }
        ServiceRequest::GetTwin(json::GetTwin { device_id }) => match server.twin(&device_id) {
            Ok(twin) => {
                let twin = json::json_value(&twin.to_json());
                Line::Twin { device_id: &device_id, twin }.print()
            }
            Err(e) => json::hub_error(number, &e).print(),
        },
        ServiceRequest::InvokeMethod(json::InvokeMethod {
            device_id,
            method_name,
            payload,
            timeout_ms,
        }) => {
            let payload = match payload {
                serde_json::Value::Null => Bytes::new(),
                value => Bytes::from(value.to_string()),
            };
            let timeout = Duration::from_millis(timeout_ms);
            match server.invoke_method(&device_id, &method_name, payload, timeout) {
                Ok(invocation) => {
                    Line::MethodInvoked { device_id: &device_id, invocation: invocation.0 }.print()
                }
                Err(e) => json::hub_error(number, &e).print(),
            }
        }
        // Sent by the caller's own loop.
        ServiceRequest::SendC2d(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_host_is_the_listen_ip_or_localhost() {
        assert_eq!(host_of(IpAddr::from([127, 0, 0, 1])), "127.0.0.1");
        assert_eq!(host_of(IpAddr::from([0, 0, 0, 0])), "localhost");
        assert_eq!(host_of(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])), "[::1]");
    }
}
