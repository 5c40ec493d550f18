//! `curl` against `hubwire hub`: every REST exchange of the spec file's §6 (TV-15,
//! TV-16) made by a client that knows nothing of IoT Hub, with the status, headers
//! and hub record each should give.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubwire_conformance::process::{
    Hub, TempDir, hub_args, next_event, peer, start_hub, start_hub_with,
};
use hubwire_core::iothub::{ConnectionString, SasToken};
use hubwire_core::time::Timestamp;
use serde_json::Value;

/// What curl got back: the status, the headers (names in lower case) and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A device's view of one hub: where to send and what to sign with.
struct Rest {
    base: String,
    ca: String,
    token: String,
}

impl Rest {
    fn new(hub: &Hub) -> Rest {
        let cs: ConnectionString = match hub.connection_string.parse() {
            Ok(cs) => cs,
            Err(e) => panic!("{e}: {}", hub.connection_string),
        };
        Rest {
            base: format!("https://{}", hub.https),
            ca: hub.ca.clone(),
            token: sign(&cs, "dev1", key(&cs)),
        }
    }

    /// Runs curl: `method` on `target` (after the host), with `headers` and `body`.
    fn curl(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut command = Command::new(peer("curl"));
        command.args(["--silent", "--show-error", "--include", "--cacert", &self.ca]);
        // The body goes through stdin: a large one does not fit in an argument.
        command.args(["--request", method, "--data-binary", "@-"]);
        // curl would add a form Content-Type to a body otherwise.
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
            command.args(["--header", "Content-Type:"]);
        }
        for (name, value) in headers {
            command.args(["--header", &format!("{name}: {value}")]);
        }
        command.arg(format!("{}{target}", self.base));
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot run curl: {e}"),
        };
        if let Some(mut stdin) = child.stdin.take() {
            if let Err(e) = stdin.write_all(body.as_bytes()) {
                panic!("curl's stdin: {e}");
            }
        }
        let output = match child.wait_with_output() {
            Ok(output) => output,
            Err(e) => panic!("curl: {e}"),
        };
        assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
        parse(&String::from_utf8_lossy(&output.stdout))
    }

    /// [`curl`](Self::curl) as dev1, with its SAS token.
    fn as_device(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let auth = [("Authorization", self.token.as_str())];
        self.curl(method, target, &[&auth[..], headers].concat(), body)
    }
}

fn key(cs: &ConnectionString) -> &str {
    match &cs.authentication {
        hubwire_core::iothub::Authentication::SharedAccessKey(key) => key,
        other => panic!("no key in the hub's connection string: {other:?}"),
    }
}

/// A token for `device` signed with `key`, valid an hour.
fn sign(cs: &ConnectionString, device: &str, key: &str) -> String {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let expiry = Timestamp::EPOCH.saturating_add(since_epoch + Duration::from_secs(3600));
    let resource = format!("{}/devices/{device}", cs.host_name);
    match SasToken::sign(&resource, key, expiry, None) {
        Ok(token) => token.to_string(),
        Err(e) => panic!("cannot sign: {e}"),
    }
}

/// Reads `curl --include` output: the status line, headers, an empty line, the body.
fn parse(text: &str) -> Answer {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

const EVENTS: &str = "/devices/dev1/messages/events?api-version=2021-04-12";
const DEVICE_BOUND: &str = "/devices/dev1/messages/deviceBound?api-version=2021-04-12";

fn settle_target(lock: &str, suffix: &str, query: &str) -> String {
    format!("/devices/dev1/messages/deviceBound/{lock}{suffix}?api-version=2021-04-12{query}")
}

/// Queues a C2D message for dev1 through the hub's stdin.
fn queue_c2d(hub: &mut Hub, line: &str) {
    if let Err(e) = writeln!(hub.stdin, "{line}") {
        panic!("hub stdin: {e}");
    }
    next_event(&hub.out, "c2dQueued");
}

/// Receives the next C2D message, which must be there: its ETag without quotes.
fn receive(rest: &Rest) -> (String, Answer) {
    let answer = rest.as_device("GET", DEVICE_BOUND, &[], "");
    assert_eq!(answer.status, 200, "{answer:?}");
    let etag = answer.headers.get("etag").cloned().unwrap_or_default();
    let lock = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"'));
    let lock = lock.unwrap_or_else(|| panic!("ETag not quoted: {answer:?}")).to_owned();
    (lock, answer)
}

/// Spec file §6.2 and §6.3 (TV-16): a single send and a batch, each 204 once stored,
/// stored with their properties.
#[test]
fn curl_sends_telemetry_single_and_batch() {
    let hub = start_hub();
    let rest = Rest::new(&hub);
    let single = [
        ("iothub-messageid", "m-single"),
        ("iothub-contenttype", "application/json"),
        ("iothub-app-unit", "C"),
        ("IoTHub-App-Site", "north"),
    ];
    let answer = rest.as_device("POST", EVENTS, &single, r#"{"t":21.5}"#);
    assert_eq!(answer.status, 204, "{answer:?}");
    let stored = next_event(&hub.out, "telemetry");
    assert_eq!(stored["deviceId"], "dev1", "{stored}");
    assert_eq!(stored["messageId"], "m-single", "{stored}");
    assert_eq!(stored["contentType"], "application/json", "{stored}");
    assert_eq!(stored["body"], r#"{"t":21.5}"#, "{stored}");
    assert_eq!(stored["properties"], serde_json::json!({"unit": "C", "Site": "north"}));

    let batch = r#"[{"body":"eyJ0IjoyMS41fQ==","properties":{"iothub-app-unit":"C","iothub-messageid":"m1"}},{"body":"aGVsbG8="}]"#;
    let content_type = [("Content-Type", "application/vnd.microsoft.iothub.json")];
    let answer = rest.as_device("POST", EVENTS, &content_type, batch);
    assert_eq!(answer.status, 204, "{answer:?}");
    let first = next_event(&hub.out, "telemetry");
    assert_eq!(first["messageId"], "m1", "{first}");
    assert_eq!(first["body"], r#"{"t":21.5}"#, "{first}");
    assert_eq!(first["properties"], serde_json::json!({"unit": "C"}));
    let second = next_event(&hub.out, "telemetry");
    assert_eq!(second["body"], "hello", "{second}");
    assert_eq!(second["messageId"], Value::Null, "{second}");
}

/// Spec file §6.4 and §6.5 (TV-15): 204 on an empty queue; 200 with the quoted
/// ETag and the message's headers; complete, reject and abandon each 204 and
/// recorded by the hub, the abandoned message delivered again with its delivery
/// count raised; a settled lock then answers 412 DeviceMessageLockLost.
#[test]
fn curl_receives_and_settles_c2d_three_ways() {
    let mut hub = start_hub();
    let rest = Rest::new(&hub);
    let empty = rest.as_device("GET", DEVICE_BOUND, &[], "");
    assert_eq!(empty.status, 204, "{empty:?}");
    assert!(empty.body.is_empty(), "{empty:?}");

    for id in ["to-complete", "to-reject", "to-abandon"] {
        queue_c2d(
            &mut hub,
            &format!(
                r#"{{"deviceId":"dev1","body":"{id} body","messageId":"{id}","correlationId":"corr-9","ack":"full","properties":{{"color":"blue"}}}}"#
            ),
        );
    }
    let (lock, answer) = receive(&rest);
    assert_eq!(answer.body, "to-complete body");
    for (name, value) in [
        ("iothub-messageid", "to-complete"),
        ("iothub-correlationid", "corr-9"),
        ("iothub-to", "/devices/dev1/messages/deviceBound"),
        ("iothub-deliverycount", "0"),
        ("iothub-ack", "full"),
        ("iothub-app-color", "blue"),
    ] {
        assert_eq!(answer.headers.get(name).map(String::as_str), Some(value), "{answer:?}");
    }
    for name in ["iothub-sequencenumber", "iothub-enqueuedtime", "iothub-expiry"] {
        assert!(answer.headers.contains_key(name), "{name}: {answer:?}");
    }
    let completed = rest.as_device("DELETE", &settle_target(&lock, "", ""), &[], "");
    assert_eq!(completed.status, 204, "{completed:?}");
    assert_eq!(next_event(&hub.out, "c2dCompleted")["messageId"], "to-complete");
    let again = rest.as_device("DELETE", &settle_target(&lock, "", ""), &[], "");
    assert_eq!(again.status, 412, "{again:?}");
    assert_eq!(
        again.headers.get("iothub-errorcode").map(String::as_str),
        Some("DeviceMessageLockLost")
    );

    let (lock, _) = receive(&rest);
    let rejected = rest.as_device("DELETE", &settle_target(&lock, "", "&reject"), &[], "");
    assert_eq!(rejected.status, 204, "{rejected:?}");
    assert_eq!(next_event(&hub.out, "c2dRejected")["messageId"], "to-reject");

    let (lock, _) = receive(&rest);
    let abandoned = rest.as_device("POST", &settle_target(&lock, "/abandon", ""), &[], "");
    assert_eq!(abandoned.status, 204, "{abandoned:?}");
    let line = next_event(&hub.out, "c2dAbandoned");
    assert_eq!(line["messageId"], "to-abandon", "{line}");
    assert_eq!(line["deliveryCount"], 1, "{line}");
    let (lock, answer) = receive(&rest);
    assert_eq!(answer.headers.get("iothub-messageid").map(String::as_str), Some("to-abandon"));
    assert_eq!(answer.headers.get("iothub-deliverycount").map(String::as_str), Some("1"));
    // C and Node send If-Match, quoted or not; the path's token decides (§6.5).
    let quoted = format!("\"{lock}\"");
    let completed =
        rest.as_device("DELETE", &settle_target(&lock, "", ""), &[("If-Match", &quoted)], "");
    assert_eq!(completed.status, 204, "{completed:?}");
    assert_eq!(rest.as_device("GET", DEVICE_BOUND, &[], "").status, 204);
}

/// A request curl makes and the refusal it must get: method, target, headers,
/// status, `iothub-errorcode`.
type Refusal<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, Option<&'a str>);

/// Spec file §6.1, §6.7, §9: the refusals, each with IoT Hub's code in
/// `iothub-errorcode` and its JSON error body.
#[test]
fn curl_is_refused_with_iot_hubs_statuses_and_codes() {
    let data_dir = TempDir::new("hubwire-curl");
    let mut args = hub_args(&data_dir);
    args.extend(["--device", "dev2"].map(String::from));
    let hub = start_hub_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), data_dir);
    let rest = Rest::new(&hub);
    let cs: ConnectionString = match hub.connection_string.parse() {
        Ok(cs) => cs,
        Err(e) => panic!("{e}"),
    };
    let wrong_key = sign(&cs, "dev1", "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=");
    let ghost = sign(&cs, "ghost", key(&cs));
    let cases: [Refusal<'_>; 6] = [
        (
            "POST",
            EVENTS.replace("?api-version=2021-04-12", ""),
            vec![("Authorization", &rest.token)],
            400,
            Some("InvalidProtocolVersion"),
        ),
        (
            "POST",
            EVENTS.to_owned(),
            vec![("Authorization", &wrong_key)],
            401,
            Some("IotHubUnauthorized"),
        ),
        ("POST", EVENTS.to_owned(), vec![], 401, Some("IotHubUnauthorized")),
        (
            "GET",
            DEVICE_BOUND.replace("dev1", "ghost"),
            vec![("Authorization", &ghost)],
            404,
            Some("DeviceNotFound"),
        ),
        // Another device's queue with dev1's token.
        (
            "GET",
            DEVICE_BOUND.replace("dev1", "dev2"),
            vec![("Authorization", &rest.token)],
            401,
            Some("IotHubUnauthorized"),
        ),
        ("GET", EVENTS.to_owned(), vec![("Authorization", &rest.token)], 405, None),
    ];
    for (method, target, headers, status, code) in cases {
        let answer = rest.curl(method, &target, &headers, "x");
        assert_eq!(answer.status, status, "{method} {target}: {answer:?}");
        assert_eq!(answer.headers.get("iothub-errorcode").map(String::as_str), code, "{answer:?}");
        if let Some(code) = code {
            let body: Value =
                serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
            let message = body["Message"].as_str().unwrap_or_default();
            assert!(message.starts_with(&format!("ErrorCode:{code};")), "{answer:?}");
        }
    }
    // Over IoT Hub's 256 KiB (spec file §8), within what the hub reads of a body.
    let big = "x".repeat(260 * 1024);
    let answer = rest.as_device("POST", EVENTS, &[], &big);
    assert_eq!(answer.status, 413, "{:?}", answer.headers);
    let code = answer.headers.get("iothub-errorcode").map(String::as_str);
    assert_eq!(code, Some("MessageTooLarge"));
}
