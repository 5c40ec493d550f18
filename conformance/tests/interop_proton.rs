//! Apache Qpid Proton (python3-qpid-proton 0.37, installed by
//! conformance/install-peers.sh) as an IoT Hub device against `hubwire hub` over
//! AMQP: `conformance/peers/proton/device.py` runs the SDKs' AMQP sequence (spec
//! file §5.9) on a client none of us wrote — a CBS put-token with the device's SAS
//! token (§5.2), telemetry with properties (§5.4), and C2D messages disposed
//! accepted, rejected and released (§5.5).
//!
//! Each test has its own loopback address (127.0.0.51–53, used by no other test)
//! and host name, on ephemeral ports.

use std::io::Write;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use hubwire_conformance::peers::proton_device;
use hubwire_conformance::process::{
    Hub, Process, TempDir, WAIT, hubwire, next_event, next_of, spawn, start_hub_with,
};
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
