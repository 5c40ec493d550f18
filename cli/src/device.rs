//! `hubwire device`: a device that sends telemetry, each message awaited, and
//! prints (and settles: completes, rejects or abandons) the C2D messages it
//! receives, over MQTT, AMQP or HTTP (where it polls for them).

use std::process::ExitCode;

use bytes::Bytes;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use crate::runtime::{OnRuntime, Runtime};
use hubwire_blocking::{ClientTransport, TelemetryError, Transport, TransportChoice};
use hubwire_core::Protocol;
use hubwire_core::device::{C2dMessage, DeviceConfig, DeviceEvent, DisconnectReason};
use hubwire_core::http::device::poll_interval_warning;
use hubwire_core::iothub::{
    ConnectionString, Disposition, Message, MethodRequest, MethodResponse, TwinPatch,
};
use hubwire_runtime::sync::{DeviceClient, Scheduler};
use hubwire_transports::tls::Trust;
use serde_json::json;

use crate::json::MessageFields;
use crate::out::{self, StdoutClosed};

/// `hubwire device` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct DeviceArgs {
    /// The runtime that drives the device: a thread of its own (`blocking`, the
    /// default), the process's event loop (`mio`), or `smol` or `async-std` tasks
    #[arg(long, value_enum, default_value = "blocking")]
    runtime: Runtime,

    /// The device's connection string (`HostName=..;DeviceId=..;SharedAccessKey=..`).
    #[arg(long)]
    connection_string: ConnectionString,
    /// The transport: mqtt (TLS, port 8883), mqtt-ws (WebSocket over TLS, 443),
    /// mqtt-tcp (plain, 1883; development hubs only), amqp (TLS, 5671), amqp-ws
    /// (WebSocket over TLS, 443), amqp-tcp (plain, 5672; development hubs only),
    /// http (HTTPS REST, 443; C2D messages by polling); or auto: mqtt, falling back to mqtt-ws when port 8883 is blocked or refused;
    /// auto-amqp: amqp, falling back to amqp-ws likewise. A port in the connection
    /// string's HostName replaces the transport's own.
    #[arg(long, default_value = "mqtt", value_name = "TRANSPORT", value_parser = transport)]
    transport: TransportChoice,
    /// Also trust this CA certificate (PEM), e.g. the ca.pem a local `hubwire hub`
    /// prints; the platform's roots are trusted too. Repeatable.
    #[arg(long = "ca", value_name = "FILE")]
    ca_files: Vec<PathBuf>,
    /// Telemetry messages to send.
    #[arg(long, default_value_t = 10)]
    count: u64,
    /// Pause between messages, milliseconds (C2D messages are handled meanwhile).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Message body, in which n in braces (as in the default) becomes the message
    /// number.
    #[arg(long, default_value = "message {n}")]
    body: String,
    /// An application property `name=value` for every message (repeatable).
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = property)]
    properties: Vec<(String, String)>,
    /// The messages' message id, in which n in braces becomes the message number,
    /// as in --body. Default: none.
    #[arg(long)]
    message_id: Option<String>,
    /// The messages' content type, e.g. application/json.
    #[arg(long)]
    content_type: Option<String>,
    /// How to settle each C2D message: complete (the hub removes it), reject (it
    /// dead-letters it) or abandon (it requeues it). MQTT can only complete.
    #[arg(long, default_value = "complete", value_name = "DISPOSITION", value_parser = disposition)]
    c2d_disposition: Disposition,
    /// After the last message, keep receiving C2D messages this long, milliseconds.
    #[arg(long, default_value_t = 0)]
    wait_c2d_ms: u64,
    /// Over HTTP, how often to poll for C2D messages, milliseconds. The default is
    /// IoT Hub's guidance for production devices (its guide to C2D messaging), 25
    /// minutes; less is for development and is warned about.
    #[arg(long, default_value_t = 25 * 60 * 1000, value_name = "MS")]
    c2d_poll_interval_ms: u64,
    /// Get the twin once connected and print it, and print every desired-property
    /// update (MQTT and AMQP; HTTP has no twin).
    #[arg(long)]
    twin: bool,
    /// Patch the reported properties with this JSON object once connected (MQTT and
    /// AMQP); null removes a member.
    #[arg(long, value_name = "JSON")]
    report: Option<String>,
    /// Answer direct method NAME with STATUS and the JSON PAYLOAD (empty when left
    /// out), e.g. `reboot=200:{"ok":true}`; repeatable. Other methods are answered
    /// 501, as the .NET SDK answers a method it has no handler for. MQTT and AMQP.
    #[arg(long = "method", value_name = "NAME=STATUS[:PAYLOAD]", value_parser = method_answer)]
    methods: Vec<MethodAnswer>,
    /// Print JSON lines instead of sentences.
    #[arg(long)]
    json: bool,
}

/// How `--method` answers one method.
#[derive(Clone, Debug)]
struct MethodAnswer {
    name: String,
    status: i32,
    payload: String,
}

fn method_answer(s: &str) -> Result<MethodAnswer, String> {
    let usage = || format!("{s:?} is not NAME=STATUS[:PAYLOAD]");
    let (name, rest) = s.split_once('=').ok_or_else(usage)?;
    let (status, payload) = rest.split_once(':').unwrap_or((rest, ""));
    let status = status.parse().map_err(|_| usage())?;
    if name.is_empty() {
        return Err(usage());
    }
    if !payload.is_empty() {
        serde_json::from_str::<serde_json::Value>(payload)
            .map_err(|e| format!("{s:?}: the payload is not JSON: {e}"))?;
    }
    Ok(MethodAnswer { name: name.to_owned(), status, payload: payload.to_owned() })
}

fn transport(s: &str) -> Result<TransportChoice, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(TransportChoice::Auto(Transport::Mqtt));
    }
    if s.eq_ignore_ascii_case("auto-amqp") {
        return Ok(TransportChoice::Auto(Transport::Amqp));
    }
    let transport: Transport = s.parse().map_err(|e| format!("{e}, auto or auto-amqp"))?;
    Ok(TransportChoice::Fixed(transport))
}

fn disposition(s: &str) -> Result<Disposition, String> {
    [Disposition::Complete, Disposition::Reject, Disposition::Abandon]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?}: expected complete, reject or abandon"))
}

fn property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

/// How the device reports what happens: sentences or JSON lines, on stdout.
#[derive(Debug)]
struct Report {
    json: bool,
    /// Where the device dials, `host:port`.
    hub: String,
    /// Whether a connection ever came up: until one has, a lost connection means
    /// the hub cannot be reached, and says so.
    ever_connected: bool,
    /// How C2D messages are settled, as reported.
    c2d_disposition: Disposition,
    /// `--method` answers.
    methods: Vec<MethodAnswer>,
    /// When the connection string names a port: the reminder that it must be the
    /// hub's port for this transport, as a hub on other ports prints its MQTT/TLS
    /// port there. Empty otherwise.
    port_hint: String,
}

impl Report {
    fn say(&self, words: String, value: serde_json::Value) -> Result<(), StdoutClosed> {
        if self.json { out::print(value) } else { out::print(words) }
    }
}

impl OnRuntime for DeviceArgs {
    fn runtime(&self) -> Runtime {
        self.runtime
    }

    fn run_on<S: Scheduler>(self) -> ExitCode {
        run::<S>(self)
    }
}

fn run<S: Scheduler>(args: DeviceArgs) -> ExitCode {
    let first = args.transport.first();
    let (host, port) = hubwire_blocking::dial::target(&args.connection_string, first);
    let hub =
        if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let port_hint = if args.connection_string.host_name.contains(':') {
        let listener = match first.listener() {
            hubwire_transports::Listener::Web => "https",
            hubwire_transports::Listener::Tls(Protocol::Amqp) => "amqp",
            hubwire_transports::Listener::Tcp(Protocol::Amqp) => "amqpTcp",
            hubwire_transports::Listener::Tcp(_) => "mqttTcp",
            _ => "mqtt",
        };
        format!(
            " (is {port} the hub's port for {first}? `hubwire hub` prints it as \"{listener}\" \
             on its listening line)"
        )
    } else {
        String::new()
    };
    let mut report = Report {
        json: args.json,
        hub,
        ever_connected: false,
        c2d_disposition: args.c2d_disposition,
        methods: args.methods.clone(),
        port_hint,
    };
    let transport = ClientTransport {
        choice: args.transport,
        trust: Trust { platform_roots: true, ca_files: args.ca_files.clone() },
    };
    let report_patch = match args.report.as_deref().map(|r| TwinPatch::parse(r.as_bytes())) {
        None => None,
        Some(Ok(patch)) => Some(patch),
        Some(Err(e)) => {
            out::warn(format_args!("hubwire device: --report: {e}"));
            return ExitCode::from(2);
        }
    };
    let mut config = DeviceConfig::new(args.connection_string.clone());
    config.receive_desired = args.twin;
    config.receive_methods = !args.methods.is_empty();
    config.c2d_poll_interval = Duration::from_millis(args.c2d_poll_interval_ms);
    if first == Transport::Http {
        if let Some(warning) = poll_interval_warning(config.c2d_poll_interval) {
            out::warn(format_args!("hubwire device: {warning}"));
        }
    }
    let device = match DeviceClient::<S>::connect(config, transport) {
        Ok(device) => device,
        Err(e) => {
            out::warn(format_args!("hubwire device: {e}"));
            return ExitCode::from(2);
        }
    };
    // A closed stdout ends the command quietly; dropping the device disconnects it.
    send(&args, report_patch, &device, &mut report).unwrap_or(ExitCode::SUCCESS)
}

/// Sends the telemetry and handles events meanwhile.
///
/// Errors: [`StdoutClosed`], upon which the command stops.
fn send<S: Scheduler>(
    args: &DeviceArgs,
    report_patch: Option<TwinPatch>,
    device: &DeviceClient<S>,
    report: &mut Report,
) -> Result<ExitCode, StdoutClosed> {
    if !wait_connected(device, report)? {
        return Ok(ExitCode::FAILURE);
    }
    if !twin_requests(args, report_patch, device, report)? {
        return Ok(ExitCode::FAILURE);
    }
    let mut rejected = 0;
    for n in 1..=args.count {
        let started = Instant::now();
        match device.send_telemetry(message(args, n)) {
            Ok(()) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                report.say(
                    format!("message {n}/{} acknowledged in {ms:.2} ms", args.count),
                    json!({"event": "acknowledged", "number": n, "latencyMs": ms}),
                )?;
            }
            // The hub will not store it, nor will the device send it again: say so
            // and go on with the next.
            Err(TelemetryError::Rejected { condition, description }) => {
                rejected += 1;
                let value = json!({"event": "rejected", "number": n, "condition": condition,
                    "description": description});
                let why = TelemetryError::Rejected { condition, description };
                report.say(format!("message {n}/{} not stored: {why}", args.count), value)?;
            }
            Err(e) => return Ok(stopped(&e)),
        }
        let pause = if n < args.count { args.interval_ms } else { args.wait_c2d_ms };
        if !handle_events(device, report, Instant::now() + Duration::from_millis(pause))? {
            return Ok(ExitCode::FAILURE);
        }
    }
    device.disconnect();
    if rejected > 0 {
        out::warn(format_args!(
            "hubwire device: the hub rejected {rejected} of {} messages",
            args.count
        ));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn message(args: &DeviceArgs, n: u64) -> Message {
    let number = n.to_string();
    let mut message = Message::new(args.body.replace("{n}", &number).into_bytes());
    message.message_id = args.message_id.as_ref().map(|id| id.replace("{n}", &number));
    message.content_type = args.content_type.clone();
    for (name, value) in &args.properties {
        message.properties.set(name.clone(), value.clone());
    }
    message
}

/// What an event meant for the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Connected,
    Stopped,
    Other,
}

/// Reports events until the device is connected. Returns false when it stopped.
fn wait_connected<S: Scheduler>(
    device: &DeviceClient<S>,
    report: &mut Report,
) -> Result<bool, StdoutClosed> {
    loop {
        // The device retries on its own schedule; there is nothing to time out.
        if let Some(event) = device.recv_event(Duration::from_secs(60)) {
            match handle(device, report, event)? {
                Flow::Connected => return Ok(true),
                Flow::Stopped => return Ok(false),
                Flow::Other => {}
            }
        }
    }
}

/// Reports events until `deadline`. Returns false when the device stopped.
fn handle_events<S: Scheduler>(
    device: &DeviceClient<S>,
    report: &mut Report,
    deadline: Instant,
) -> Result<bool, StdoutClosed> {
    while let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now())) {
        if handle(device, report, event)? == Flow::Stopped {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reports one event, settling a C2D message.
fn handle<S: Scheduler>(
    device: &DeviceClient<S>,
    report: &mut Report,
    event: DeviceEvent,
) -> Result<Flow, StdoutClosed> {
    match event {
        DeviceEvent::Connected { session_present } => {
            report.ever_connected = true;
            let status = device.transport_status();
            let transport = status.transport.map(Transport::name);
            let peer = status.peer.map(|p| p.to_string());
            let mut words = format!(
                "connected over {} to {}{}",
                transport.unwrap_or("?"),
                peer.as_deref().unwrap_or("?"),
                status.tls_version.map(|v| format!(", {v}")).unwrap_or_default(),
            );
            // Session Present is MQTT's [MQTT-3.2.2-2]; AMQP keeps no session.
            if status.transport.is_some_and(|t| t.protocol() == Protocol::Mqtt) {
                words.push_str(&format!(" (session present: {session_present})"));
            }
            if let Some(why) = &status.fallback_reason {
                words.push_str(&format!("; chose it because {why}"));
            }
            report.say(
                words,
                json!({"event": "connected", "sessionPresent": session_present,
                    "transport": transport, "peer": peer, "tlsVersion": status.tls_version,
                    "fallbackReason": status.fallback_reason}),
            )?;
            return Ok(Flow::Connected);
        }
        DeviceEvent::Disconnected { reason, reconnect_at: Some(at) } => {
            let ms = hubwire_blocking::clock::until(at).as_millis();
            let transport_error = match reason {
                DisconnectReason::TransportClosed => device.transport_status().last_error,
                _ => None,
            };
            report.say(
                disconnected_words(report, &reason, transport_error.as_deref(), ms),
                json!({"event": "disconnected", "reason": reason.to_string(), "reconnectInMs": ms,
                    "everConnected": report.ever_connected, "hub": report.hub,
                    "transportError": transport_error}),
            )?;
        }
        DeviceEvent::Disconnected { reason, reconnect_at: None } => {
            out::warn(format_args!("hubwire device: {}", explain(&reason)));
            return Ok(Flow::Stopped);
        }
        DeviceEvent::C2d(c2d) => {
            let settled = settle(device, report, &c2d)?;
            return Ok(if settled { Flow::Other } else { Flow::Stopped });
        }
        // A message whose sender stopped waiting (none here, as every send is
        // awaited): still the hub's refusal, and a person should hear of it.
        DeviceEvent::TelemetryRejected { id, condition, description } => {
            let value = json!({"event": "rejected", "telemetryId": id.0, "condition": condition,
                "description": description});
            let why = TelemetryError::Rejected { condition, description };
            report.say(format!("telemetry message {} not stored: {why}", id.0), value)?;
        }
        DeviceEvent::C2dSubscriptionRefused => {
            out::warn("hubwire device: the hub refused the C2D subscription");
        }
        DeviceEvent::DesiredUpdated { patch, version } => {
            let value = crate::json::json_value(&patch.to_json());
            report.say(
                format!("desired properties at version {version}: {value}"),
                json!({"event": "desiredUpdated", "version": version, "patch": value}),
            )?;
        }
        DeviceEvent::MethodRequest(request) => answer_method(device, report, request)?,
        DeviceEvent::C2dLockLost(lock) => {
            report.say(
                format!("the hub no longer holds the lock {lock}; the message will come again"),
                json!({"event": "c2dLockLost", "lockToken": lock.to_string()}),
            )?;
        }
        // Acknowledgements are reported by the sending loop.
        _ => {}
    }
    Ok(Flow::Other)
}

/// How long the device waits for the hub's answer to a twin request.
const TWIN_TIMEOUT: Duration = Duration::from_secs(30);

/// `--twin` and `--report`: gets and prints the twin, patches the reported
/// properties. Returns false when the hub refused (the command then fails).
fn twin_requests<S: Scheduler>(
    args: &DeviceArgs,
    report_patch: Option<TwinPatch>,
    device: &DeviceClient<S>,
    report: &Report,
) -> Result<bool, StdoutClosed> {
    if let Some(patch) = report_patch {
        match device.patch_reported(patch, TWIN_TIMEOUT) {
            Ok(version) => report.say(
                format!("reported properties at version {version}"),
                json!({"event": "reported", "version": version}),
            )?,
            Err(e) => {
                out::warn(format_args!("hubwire device: cannot report properties: {e}"));
                return Ok(false);
            }
        }
    }
    if args.twin {
        match device.get_twin(TWIN_TIMEOUT) {
            Ok(twin) => {
                let value = crate::json::json_value(&twin.to_json());
                report.say(format!("twin: {value}"), json!({"event": "twin", "twin": value}))?;
            }
            Err(e) => {
                out::warn(format_args!("hubwire device: cannot get the twin: {e}"));
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Answers a direct method as `--method` says, 501 when it names none.
fn answer_method<S: Scheduler>(
    device: &DeviceClient<S>,
    report: &Report,
    request: MethodRequest,
) -> Result<(), StdoutClosed> {
    let (status, payload) = match report.methods.iter().find(|m| m.name == request.name) {
        Some(answer) => (answer.status, Bytes::from(answer.payload.clone().into_bytes())),
        None => {
            let message =
                json!({"message": format!("no method {:?} on this device", request.name)});
            (501, Bytes::from(message.to_string().into_bytes()))
        }
    };
    let name = request.name.clone();
    let asked = crate::json::json_value(&request.payload);
    let response = MethodResponse { request_id: request.request_id, status, payload };
    if let Err(e) = device.respond_method(response) {
        out::warn(format_args!("hubwire device: cannot answer method {name}: {e}"));
        return Ok(());
    }
    report.say(
        format!("method {name}({asked}) answered {status}"),
        json!({"event": "method", "name": name, "payload": asked, "status": status}),
    )
}

/// A lost connection in words. Before the first connection the device has only
/// been trying to reach the hub, which is what a person needs to hear.
fn disconnected_words(
    report: &Report,
    reason: &DisconnectReason,
    transport_error: Option<&str>,
    ms: u128,
) -> String {
    let hub = &report.hub;
    let why = transport_error.map(|e| format!(" ({e})")).unwrap_or_default();
    match reason {
        _ if report.ever_connected => {
            format!("disconnected: {reason}{why}; reconnecting in {ms} ms")
        }
        DisconnectReason::TransportClosed => {
            format!("cannot reach the hub at {hub}{why}; retrying in {ms} ms{}", report.port_hint)
        }
        other => format!(
            "cannot connect to the hub at {hub}: {other}; retrying in {ms} ms{}",
            report.port_hint
        ),
    }
}

/// Reports a C2D message and settles it as `--c2d-disposition` says. Returns false
/// when the settlement failed (the protocol cannot express it, the lock is gone):
/// the command then stops, since every later message would fail alike.
fn settle<S: Scheduler>(
    device: &DeviceClient<S>,
    report: &Report,
    c2d: &C2dMessage,
) -> Result<bool, StdoutClosed> {
    let fields = MessageFields::of(&c2d.message);
    let disposition = report.c2d_disposition;
    let settled = match &c2d.lock_token {
        Some(lock) => {
            let result = match disposition {
                Disposition::Complete => device.complete(lock),
                Disposition::Reject => device.reject(lock),
                Disposition::Abandon => device.abandon(lock),
            };
            if let Err(e) = result {
                out::warn(format_args!("hubwire device: cannot {disposition} a C2D message: {e}"));
                return Ok(false);
            }
            Some(disposition)
        }
        // Nothing to settle: the hub expects no answer.
        None => None,
    };
    let completed = settled == Some(Disposition::Complete);
    let text = String::from_utf8_lossy(&c2d.message.body);
    let properties: Vec<String> = c2d
        .message
        .properties
        .iter()
        .map(|(name, value)| format!("{name}={}", value.unwrap_or("")))
        .collect();
    let id = c2d.message.message_id.as_deref().unwrap_or("-");
    let mut value = json!({"event": "c2d", "completed": completed,
        "disposition": settled.map(Disposition::as_str),
        "lockToken": c2d.lock_token.map(|lock| lock.to_string())});
    if let (Some(object), Ok(serde_json::Value::Object(fields))) =
        (value.as_object_mut(), serde_json::to_value(&fields))
    {
        object.extend(fields);
    }
    let outcome = match settled {
        Some(Disposition::Complete) => " (completed)",
        Some(Disposition::Reject) => " (rejected)",
        Some(Disposition::Abandon) => " (abandoned)",
        None => "",
    };
    report
        .say(format!("c2d message {id}: {text:?} [{}]{outcome}", properties.join(", ")), value)?;
    Ok(true)
}

fn stopped(e: &TelemetryError) -> ExitCode {
    match e {
        TelemetryError::Stopped(reason) => {
            out::warn(format_args!("hubwire device: {}", explain(reason)));
        }
        other => out::warn(format_args!("hubwire device: {other}")),
    }
    ExitCode::FAILURE
}

/// Why a device stopped, with what to check: SDKs hide refusals, so say it here.
fn explain(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Refused(code) => format!(
            "the hub refused the connection ({code:?}); check the device id and key in the \
             connection string, and the hub's stderr for the reason"
        ),
        DisconnectReason::TokenRefused { status_code, description } => format!(
            "the hub refused the device's SAS token (put-token status {status_code}: \
             {description}); check the device id and key in the connection string"
        ),
        DisconnectReason::Unauthorized { status, error_code, description } => format!(
            "the hub refused the device's credential (HTTP {status} {error_code}: \
             {description}); check the device id and key in the connection string"
        ),
        other => format!("stopped: {other}"),
    }
}
