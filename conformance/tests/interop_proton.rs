//! Apache Qpid Proton (python3-qpid-proton 0.37, installed by
//! conformance/install-peers.sh) as the peer of both of hubwire's AMQP roles.
//!
//! The hub role: `conformance/peers/proton/device.py`, an IoT Hub device against
//! `hubwire hub`, runs the SDKs' AMQP sequence (spec file §5.9) on a client none of
//! us wrote — a CBS put-token with the device's SAS token (§5.2), telemetry with
//! properties (§5.4), and C2D messages disposed accepted, rejected and released
//! (§5.5).
//!
//! The device role: `hubwire device` against `conformance/peers/proton/broker.py`,
//! an AMQP server none of us wrote that answers put-tokens 200, records the
//! telemetry, pushes C2D messages and answers each message with the outcome asked
//! for.
//!
//! Each test has its own loopback address (127.0.0.51–55, used by no other test)
//! and host name, on ephemeral ports.

use std::io::Write;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use hubwire_conformance::peers::{proton_broker, proton_device};
use hubwire_conformance::process::{
    Hub, Process, TempDir, WAIT, hubwire, next_event, next_of, spawn, start, start_hub_with,
};
use hubwire_transports::tls::local_ca;
use serde_json::Value;

/// The longest device.py runs; under [`WAIT`], so that a hang shows as its own
/// `timeout` error line.
const DEVICE_TIMEOUT_S: &str = "8";

/// A hub at `ip` serving AMQP alone (over TLS and plain TCP, ephemeral ports), known
/// to devices as `host` (in its certificate and its connection strings).
fn amqp_hub(ip: &str, host: &str) -> Hub {
    let data_dir = TempDir::new("hubwire-proton");
    let dir = data_dir.0.display().to_string();
    let args = ["hub", "--bind", ip, "--host-name", host, "--mqtt-port", "off"];
    let amqp = ["--https-port", "off", "--amqp-port", "0", "--amqp-tcp-port", "0"];
    let rest = ["--data-dir", &dir, "--device", "dev1"];
    let hub = start_hub_with(&[&args[..], &amqp, &rest].concat(), data_dir);
    assert!(hub.amqp.starts_with(&format!("{ip}:")), "{}", hub.amqp);
    assert!(hub.amqp_tcp.starts_with(&format!("{ip}:")), "{}", hub.amqp_tcp);
    hub
}

/// A SAS token for the device of `connection_string` as `hubwire token` signs it,
/// for the audience IoT Hub's SDKs use: the host name without a port (spec file §2).
fn sas_token(connection_string: &str) -> String {
    let without_port: Vec<String> = connection_string
        .split(';')
        .map(|field| match field.strip_prefix("HostName=") {
            Some(host) => format!("HostName={}", host.split(':').next().unwrap_or(host)),
            None => field.to_owned(),
        })
        .collect();
    let output = Command::new(hubwire())
        .args(["token", "--json", "--connection-string", &without_port.join(";")])
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        other => panic!("hubwire token failed: {other:?}"),
    };
    let token: Value = match serde_json::from_slice(&output.stdout) {
        Ok(token) => token,
        Err(e) => panic!("hubwire token printed no JSON: {e}"),
    };
    match token["password"].as_str() {
        Some(password) => password.to_owned(),
        None => panic!("no password in {token}"),
    }
}

/// device.py's arguments to reach `hub` as dev1 with `token`: amqps with the hub's
/// CA and `host` as SNI, open hostname and the name checked against the
/// certificate; or plain TCP with SASL ANONYMOUS.
fn connect_args(hub: &Hub, host: &str, token: &str, tls: bool) -> Vec<String> {
    let mut args: Vec<String> = if tls {
        let url = format!("amqps://{}", hub.amqp);
        ["--url", &url, "--ca", &hub.ca, "--host-name", host].map(String::from).to_vec()
    } else {
        let url = format!("amqp://{}", hub.amqp_tcp);
        ["--url", &url, "--sasl", "anonymous"].map(String::from).to_vec()
    };
    args.extend(
        ["--device", "dev1", "--token", token, "--timeout", DEVICE_TIMEOUT_S].map(String::from),
    );
    args
}

/// Queues a C2D message for dev1 through the hub's stdin, asking for full feedback.
fn send_c2d(hub: &mut Hub, message_id: &str) {
    let line = format!(
        r#"{{"deviceId":"dev1","body":"{message_id} body","messageId":"{message_id}","ack":"full","properties":{{"k":"{message_id}"}}}}"#
    );
    if let Err(e) = writeln!(hub.stdin, "{line}") {
        panic!("hub stdin: {e}");
    }
    let queued = next_event(&hub.out, "c2dQueued");
    assert_eq!(queued["deviceId"], "dev1", "{queued}");
}

/// Waits for device.py to exit and returns its status code.
fn exit_code(device: &mut Process) -> Option<i32> {
    for _ in 0..(WAIT.as_millis() / 50) {
        match device.child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("device.py did not exit within {WAIT:?}");
}

/// device.py's lines up to its `closed` one; panics on an `error` line (or none
/// within [`WAIT`]), listing them.
fn until_closed(out: &Receiver<String>) -> Vec<Value> {
    let mut lines = Vec::new();
    loop {
        let line = match out.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => panic!("device.py ended without `closed`: {lines:#?}"),
        };
        let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
        match value["event"].as_str() {
            Some("closed") => return lines,
            Some("error") => panic!("device.py failed: {value}; before: {lines:#?}"),
            _ => lines.push(value),
        }
    }
}

/// A typed AMQP value as amqpjson.py prints it: `{"type", "value"}`.
fn typed<'a>(value: &'a Value, type_name: &str) -> &'a Value {
    assert_eq!(value["type"], type_name, "{value}");
    &value["value"]
}

/// The application property `name` of a `received` line.
fn property<'a>(received: &'a Value, name: &str) -> &'a Value {
    let properties = &received["application_properties"];
    typed(&properties[name], "string")
}

/// The scenario: put-token, two telemetry messages stored with their properties,
/// and three C2D messages accepted, rejected and released — the released one
/// delivered again with its delivery count raised, and accepted then.
fn telemetry_and_c2d(ip: &str, host: &str, tls: bool) {
    let mut hub = amqp_hub(ip, host);
    let token = sas_token(&hub.connection_string);
    assert!(token.starts_with(&format!("SharedAccessSignature sr={host}%2Fdevices%2Fdev1&")));
    for id in ["c2d-accept", "c2d-reject", "c2d-release"] {
        send_c2d(&mut hub, id);
    }
    let mut args = connect_args(&hub, host, &token, tls);
    args.extend(
        [
            "--send",
            "2",
            "--body",
            r#"{"t":21.5}"#,
            "--content-type",
            "application/json",
            "--property",
            "unit=C",
            "--property",
            "sp ace=a&b",
            "--receive",
            "4",
            "--dispositions",
            "accept,reject,release,accept",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut device, _stdin, out) = spawn(&mut proton_device(&args));

    let lines = until_closed(&out);
    let of =
        |event: &str| -> Vec<&Value> { lines.iter().filter(|l| l["event"] == event).collect() };
    let cbs = of("cbs");
    assert!(cbs.len() == 1 && cbs[0]["status"] == 200, "{lines:#?}");
    let sent = of("sent");
    assert_eq!(sent.len(), 2, "{lines:#?}");
    for (index, line) in sent.iter().enumerate() {
        assert_eq!(line["outcome"], "accepted", "{line}");
        assert_eq!(line["index"], index, "{line}");
    }
    let received = of("received");
    assert_eq!(received.len(), 4, "{lines:#?}");
    for (index, line) in received.iter().enumerate() {
        assert_eq!(line["index"], index, "{line}");
        assert_eq!(line["settled"], false, "{line}");
    }
    let ids: Vec<&Value> = received.iter().map(|r| typed(&r["message_id"], "string")).collect();
    assert_eq!(ids, ["c2d-accept", "c2d-reject", "c2d-release", "c2d-release"]);
    for &line in &received {
        assert_eq!(property(line, "k"), typed(&line["message_id"], "string"), "{line}");
        assert_eq!(line["body"]["section"], "data", "{line}");
    }
    let delivery_count =
        |line: &Value| line["annotations"]["iothub-deliverycount"]["value"].clone();
    assert_eq!(delivery_count(received[2]), 0, "{}", received[2]);
    assert_eq!(delivery_count(received[3]), 1, "the released message again: {}", received[3]);
    // A redelivery is a new delivery with a lock token of its own (spec file §5.5).
    assert_ne!(received[2]["lock_token"], received[3]["lock_token"]);
    assert_eq!(exit_code(&mut device), Some(0));

    let connected = next_event(&hub.out, "connected");
    assert_eq!(connected["deviceId"], "dev1", "{connected}");
    for index in 0..2 {
        let stored = next_event(&hub.out, "telemetry");
        assert_eq!(stored["deviceId"], "dev1", "{stored}");
        assert_eq!(stored["messageId"], format!("dev1-{index}"), "{stored}");
        assert_eq!(stored["body"], r#"{"t":21.5}"#, "{stored}");
        assert_eq!(stored["contentType"], "application/json", "{stored}");
        assert_eq!(stored["properties"]["unit"], "C", "{stored}");
        assert_eq!(stored["properties"]["sp ace"], "a&b", "{stored}");
    }
    // The hub reports each settlement as it comes, in whatever order the device's
    // dispositions arrive.
    let settled = ["c2dCompleted", "c2dRejected", "c2dAbandoned"];
    let mut seen = Vec::new();
    for _ in 0..4 {
        let line = next_of(&hub.out, &settled, WAIT);
        seen.push((
            line["event"].as_str().unwrap_or_default().to_owned(),
            line["messageId"].as_str().unwrap_or_default().to_owned(),
            line["feedback"]["statusCode"].clone(),
            line["deliveryCount"].clone(),
        ));
    }
    seen.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
    let expected = [
        ("c2dCompleted", "c2d-accept", Value::from("Success"), Value::Null),
        ("c2dRejected", "c2d-reject", Value::from("Rejected"), Value::Null),
        ("c2dAbandoned", "c2d-release", Value::Null, Value::from(1)),
        ("c2dCompleted", "c2d-release", Value::from("Success"), Value::Null),
    ];
    let expected: Vec<(String, String, Value, Value)> =
        expected.into_iter().map(|(e, m, s, d)| (e.to_owned(), m.to_owned(), s, d)).collect();
    assert_eq!(seen, expected);
}

#[test]
fn proton_over_amqps_sends_telemetry_and_settles_c2d_three_ways() {
    telemetry_and_c2d("127.0.0.51", "proton51.hubwire.test", true);
}

#[test]
fn proton_over_plain_amqp_with_sasl_anonymous_sends_telemetry_and_settles_c2d_three_ways() {
    telemetry_and_c2d("127.0.0.52", "proton52.hubwire.test", false);
}

/// Spec file §5.2: a put-token the hub cannot verify is answered with its status
/// (401), and the hub logs the refusal; another connection of the same device,
/// authenticated before, keeps working.
#[test]
fn proton_with_a_token_of_the_wrong_key_gets_cbs_401_and_a_neighbour_is_unaffected() {
    let host = "proton53.hubwire.test";
    let mut hub = amqp_hub("127.0.0.53", host);
    let token = sas_token(&hub.connection_string);
    // Another valid key, which the hub does not know.
    let wrong_cs =
        hub.connection_string.split(";SharedAccessKey=").next().map(|head| {
            format!("{head};SharedAccessKey=HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=")
        });
    let wrong_token = sas_token(&wrong_cs.unwrap_or_default());
    assert_ne!(token, wrong_token);

    let mut args = connect_args(&hub, host, &token, true);
    args.extend(["--receive", "1"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut neighbour, _neighbour_stdin, neighbour_out) = spawn(&mut proton_device(&args));
    let cbs = next_of(&neighbour_out, &["cbs", "error"], WAIT);
    assert_eq!(cbs["status"], 200, "{cbs}");
    let connected = next_event(&hub.out, "connected");
    assert_eq!(connected["deviceId"], "dev1", "{connected}");

    for tls in [true, false] {
        let mut args = connect_args(&hub, host, &wrong_token, tls);
        args.extend(["--send", "1"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (mut intruder, _stdin, out) = spawn(&mut proton_device(&args));
        let cbs = next_of(&out, &["cbs", "error"], WAIT);
        assert_eq!(cbs["status"], 401, "{cbs}");
        let error = next_of(&out, &["error", "sent"], WAIT);
        assert_eq!(error["stage"], "cbs", "{error}");
        assert_eq!(exit_code(&mut intruder), Some(1));
        let refused = next_event(&hub.out, "refused");
        assert_eq!(refused["deviceId"], "dev1", "{refused}");
        assert_eq!(refused["code"], 401003, "{refused}");
    }

    send_c2d(&mut hub, "after-refusals");
    let received = next_of(&neighbour_out, &["received", "error"], WAIT);
    assert_eq!(typed(&received["message_id"], "string"), "after-refusals", "{received}");
    let closed = next_of(&neighbour_out, &["closed", "error"], WAIT);
    assert_eq!(closed["event"], "closed", "{closed}");
    assert_eq!(exit_code(&mut neighbour), Some(0));
    let completed = next_of(&hub.out, &["c2dCompleted", "disconnected"], WAIT);
    assert_eq!(completed["event"], "c2dCompleted", "{completed}");
    assert_eq!(completed["messageId"], "after-refusals", "{completed}");
    assert_no_telemetry(&hub.out);
}

/// No telemetry was stored: the refused connections' sends never reached the hub.
fn assert_no_telemetry(out: &Receiver<String>) {
    while let Ok(line) = out.recv_timeout(Duration::from_millis(200)) {
        assert!(!line.contains(r#""event":"telemetry""#), "{line}");
    }
}

// --- the device role: `hubwire device` against broker.py ---------------------------

/// The lock token of the C2D message broker.py pushes. broker.py sends it as the
/// delivery tag in .NET byte order (spec file §5.5), which Proton can only send
/// when it is valid UTF-8: these bytes are all ASCII.
const LOCK_TOKEN: &str = "31323334-3536-3738-3930-313233343536";
/// [`LOCK_TOKEN`] as the delivery tag carries it: the first three groups byte-reversed.
const LOCK_TOKEN_TAG: &str = "34333231363538373930313233343536";

/// The C2D message broker.py pushes to every receiver of dev1's devicebound node.
fn c2d_spec() -> String {
    format!(
        r#"/devices/dev1/messages/devicebound={{"body":"switch on","message_id":"c2d-1","lock_token":"{LOCK_TOKEN}","application_properties":{{"command":"on"}}}}"#
    )
}

/// Starts broker.py on `ip`, on an ephemeral port, with `args`; returns it, its
/// stdout lines and its port.
fn start_broker(ip: &str, args: &[&str]) -> (Process, Receiver<String>, u16) {
    let listen = format!("{ip}:0");
    let args = [&["--listen", listen.as_str(), "--timeout", "30"][..], args].concat();
    let (broker, _stdin, out) = spawn(&mut proton_broker(&args));
    let listening = next_event(&out, "listening");
    let Some(port) = listening["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else {
        panic!("no port in {listening}");
    };
    (broker, out, port)
}

/// dev1 at `ip:port`; the key is any: broker.py checks no signature.
fn broker_connection_string(ip: &str, port: u16) -> String {
    format!(
        "HostName={ip}:{port};DeviceId=dev1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    )
}

/// Runs `hubwire device --json` with `args` after `count` telemetry messages like
/// `{"reading":n}` (message id `m-n`, JSON, properties `unit=C` and `sp ace=a&b`);
/// returns its lines up to its exit, and its exit code.
fn run_device(connection_string: &str, count: &str, args: &[&str]) -> (Vec<Value>, Option<i32>) {
    let common = ["device", "--connection-string", connection_string, "--json", "--count", count];
    let message = ["--interval-ms", "0", "--body", r#"{"reading":{n}}"#, "--message-id", "m-{n}"];
    let properties = ["--content-type", "application/json", "--property", "unit=C"];
    let properties = [&properties[..], &["--property", "sp ace=a&b"]].concat();
    // Long enough for the C2D message to come and be settled, which broker.py does
    // as soon as the device's receiver attaches.
    let wait = ["--wait-c2d-ms", "500"];
    let (mut device, _stdin, out) =
        start(&[&common[..], &message, &properties, &wait, args].concat());
    // Until its stdout closes: it has exited then, or is about to.
    let mut lines = Vec::new();
    while let Ok(line) = out.recv_timeout(WAIT) {
        lines.extend(serde_json::from_str::<Value>(&line).ok());
    }
    (lines, exit_code(&mut device))
}

/// The lines of `lines` whose `event` is `event`.
fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

/// broker.py's lines until `enough` holds for them, within [`WAIT`].
fn broker_lines(out: &Receiver<String>, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut lines = Vec::new();
    while !enough(&lines) {
        match out.recv_timeout(WAIT) {
            Ok(line) => lines.extend(serde_json::from_str::<Value>(&line).ok()),
            Err(_) => panic!("broker.py: not enough within {WAIT:?}: {lines:#?}"),
        }
    }
    lines
}

/// broker.py's record of the device's connection: one put-token, answered 200, for
/// dev1's audience; the telemetry link attached unsettled (spec file §5.4); and then
/// `telemetry` messages and `outcomes` of C2D settlements. Returns the `message`
/// lines.
fn check_broker_record(out: &Receiver<String>, telemetry: usize, outcomes: &[&str]) -> Vec<Value> {
    let lines = broker_lines(out, |lines| {
        events(lines, "message").len() == telemetry
            && events(lines, "outcome").len() == outcomes.len()
    });
    let cbs = events(&lines, "cbs");
    assert_eq!(cbs.len(), 1, "{lines:#?}");
    assert_eq!(cbs[0]["status"], 200, "{}", cbs[0]);
    assert_eq!(cbs[0]["operation"], "put-token", "{}", cbs[0]);
    assert_eq!(cbs[0]["type"], "servicebus.windows.net:sastoken", "{}", cbs[0]);
    let audience = cbs[0]["name"].as_str().unwrap_or_default();
    assert!(audience.ends_with("%2Fdevices%2Fdev1"), "{}", cbs[0]);
    let token = cbs[0]["token"].as_str().unwrap_or_default();
    assert!(token.starts_with(&format!("SharedAccessSignature sr={audience}&")), "{}", cbs[0]);
    let attaches = events(&lines, "attach");
    let Some(events_link) =
        attaches.iter().find(|a| a["target"] == "/devices/dev1/messages/events")
    else {
        panic!("no telemetry link in {lines:#?}");
    };
    assert_eq!(events_link["role"], "sender", "{events_link}");
    assert_eq!(events_link["snd_settle_mode"], "unsettled", "{events_link}");
    assert!(
        attaches.iter().any(|a| a["source"] == "/devices/dev1/messages/devicebound"),
        "no C2D link in {lines:#?}"
    );
    let settled: Vec<&Value> = events(&lines, "outcome").into_iter().collect();
    for (line, outcome) in settled.iter().zip(outcomes) {
        assert_eq!(line["address"], "/devices/dev1/messages/devicebound", "{line}");
        assert_eq!(line["delivery_tag"], LOCK_TOKEN_TAG, "{line}");
        assert_eq!(line["outcome"], *outcome, "{line}");
    }
    let messages: Vec<Value> = events(&lines, "message").into_iter().cloned().collect();
    for (index, message) in messages.iter().enumerate() {
        let n = index + 1;
        assert_eq!(message["address"], "/devices/dev1/messages/events", "{message}");
        assert_eq!(message["settled"], false, "{message}");
        assert_eq!(typed(&message["message_id"], "string"), &format!("m-{n}"), "{message}");
        assert_eq!(message["content_type"], "application/json", "{message}");
        assert_eq!(property(message, "unit"), "C", "{message}");
        assert_eq!(property(message, "sp ace"), "a&b", "{message}");
        assert_eq!(message["body"]["section"], "data", "{message}");
        // Base64 of {"reading":1} and {"reading":2}.
        let body = ["eyJyZWFkaW5nIjoxfQ==", "eyJyZWFkaW5nIjoyfQ=="];
        assert_eq!(message["body"]["base64"], body[index], "{message}");
    }
    messages
}

/// The device's line for the C2D message: its fields, lock token and settlement.
fn check_c2d_line(lines: &[Value], disposition: &str) {
    let c2d = events(lines, "c2d");
    assert_eq!(c2d.len(), 1, "{lines:#?}");
    let c2d = c2d[0];
    assert_eq!(c2d["messageId"], "c2d-1", "{c2d}");
    assert_eq!(c2d["body"], "switch on", "{c2d}");
    assert_eq!(c2d["properties"]["command"], "on", "{c2d}");
    assert_eq!(c2d["lockToken"], LOCK_TOKEN, "{c2d}");
    assert_eq!(c2d["disposition"], disposition, "{c2d}");
}

/// Over plain AMQP, three runs of `hubwire device`, one per `--c2d-disposition`:
/// each presents its token, sends telemetry the broker records as sent, and settles
/// the C2D message the broker pushes as asked — accepted, rejected, released (spec
/// file §5.5).
#[test]
fn hubwire_device_over_amqp_tcp_reaches_proton_and_settles_c2d_three_ways() {
    let ip = "127.0.0.54";
    let (_broker, out, port) = start_broker(ip, &["--send", &c2d_spec()]);
    let cs = broker_connection_string(ip, port);
    let runs = [("complete", "accepted"), ("reject", "rejected"), ("abandon", "released")];
    for (disposition, outcome) in runs {
        let args = ["--transport", "amqp-tcp", "--c2d-disposition", disposition];
        let (lines, code) = run_device(&cs, "1", &args);
        assert_eq!(code, Some(0), "{lines:#?}");
        let connected = events(&lines, "connected");
        assert_eq!(connected.len(), 1, "{lines:#?}");
        assert_eq!(connected[0]["transport"], "amqp-tcp", "{}", connected[0]);
        assert_eq!(connected[0]["peer"], format!("{ip}:{port}"), "{}", connected[0]);
        assert_eq!(events(&lines, "acknowledged").len(), 1, "{lines:#?}");
        check_c2d_line(&lines, disposition);

        let messages = check_broker_record(&out, 1, &[outcome]);
        assert_eq!(messages[0]["outcome"], "accepted", "{}", messages[0]);
        let closed = next_event(&out, "closed");
        assert_eq!(closed["clean"], true, "the device closes its connection: {closed}");
    }
}

/// Over AMQP over TLS (a certificate made for this test, trusted with `--ca`): a
/// message the broker answers `rejected` is reported as rejected, with the broker's
/// condition and description, and the command fails; the message the broker
/// accepts is acknowledged, and the C2D message completed.
#[test]
fn hubwire_device_over_amqps_reports_a_telemetry_message_proton_rejects() {
    let ip = "127.0.0.55";
    let dir = TempDir::new("hubwire-proton-broker");
    let certificate = match local_ca::ensure(&dir.0, &[ip.to_owned()]) {
        Ok(c) => c,
        Err(e) => panic!("cannot make a test certificate: {e}"),
    };
    let (cert, key) = (certificate.cert_path.display(), certificate.key_path.display());
    let (cert, key) = (cert.to_string(), key.to_string());
    let (_broker, out, port) = start_broker(
        ip,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--send",
            &c2d_spec(),
            "--outcome",
            "accepted",
            "--outcome",
            "rejected:amqp:not-allowed:too hot",
        ],
    );
    let cs = broker_connection_string(ip, port);
    let ca = certificate.ca_path.display().to_string();
    let (lines, code) = run_device(&cs, "2", &["--transport", "amqp", "--ca", &ca]);
    assert_eq!(code, Some(1), "a rejected message fails the command: {lines:#?}");
    let connected = events(&lines, "connected");
    assert_eq!(connected.len(), 1, "{lines:#?}");
    assert_eq!(connected[0]["transport"], "amqp", "{}", connected[0]);
    assert!(connected[0]["tlsVersion"].is_string(), "{}", connected[0]);
    let acknowledged = events(&lines, "acknowledged");
    assert!(acknowledged.len() == 1 && acknowledged[0]["number"] == 1, "{lines:#?}");
    let rejected = events(&lines, "rejected");
    assert_eq!(rejected.len(), 1, "{lines:#?}");
    assert_eq!(rejected[0]["number"], 2, "{}", rejected[0]);
    assert_eq!(rejected[0]["condition"], "amqp:not-allowed", "{}", rejected[0]);
    assert_eq!(rejected[0]["description"], "too hot", "{}", rejected[0]);
    check_c2d_line(&lines, "complete");

    let messages = check_broker_record(&out, 2, &["accepted"]);
    assert_eq!(messages[0]["outcome"], "accepted", "{}", messages[0]);
    assert_eq!(messages[1]["outcome"], "rejected:amqp:not-allowed:too hot", "{}", messages[1]);
}
