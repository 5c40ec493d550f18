//! Hostile and mistaken transport input against `hubwire hub`: each gets the
//! standard's answer (a TLS alert, an HTTP status, a WebSocket close code), the
//! device gets words it can act on, and the hub serves on.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use hubwire_conformance::process::{Hub, TempDir, next_event, start, start_hub};
use hubwire_conformance::raw::{TlsClient, read_until_closed};
use hubwire_transports::tls::local_ca::{self, CertificateAuthority};

fn upgrade(path: &str, key: &str, protocol: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The status line the hub answers `request` with on its port 443, and that it
/// then closed the connection.
fn status_for(hub: &Hub, request: &str) -> String {
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    client.send(request.as_bytes());
    let answer = client.read_to_close();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// The hub still serves a real device afterwards.
fn hub_serves_a_device(hub: &Hub) {
    let (_device, _stdin, out) = start(&[
        "device",
        "--connection-string",
        &hub.connection_string,
        "--ca",
        &hub.ca,
        "--count",
        "1",
        "--interval-ms",
        "0",
        "--json",
    ]);
    next_event(&out, "acknowledged");
}

#[test]
fn plain_mqtt_on_the_tls_port_gets_a_fatal_alert_and_the_hub_serves_on() {
    let hub = start_hub();
    let mut stream = match TcpStream::connect(&hub.mqtt) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    // An MQTT CONNECT's first bytes: type 1, remaining length 12, "MQTT".
    let connect =
        [0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00];
    if let Err(e) = stream.write_all(&connect) {
        panic!("{e}");
    }
    let answer = read_until_closed(&mut stream);
    // RFC 8446 §5.1 / RFC 5246 §6.2.1: a TLS record of type 21 (alert), then level 2 (fatal).
    assert_eq!(answer.first(), Some(&0x15), "{answer:02x?}");
    assert_eq!(answer.get(5), Some(&0x02), "{answer:02x?}");
    // The hub says so too.
    let reported = next_event(&hub.out, "transportError");
    assert_eq!(reported["listener"], "MQTT over TLS", "{reported}");
    assert!(reported["error"].as_str().is_some_and(|e| e.contains("not TLS")), "{reported}");
    hub_serves_a_device(&hub);
}

#[test]
fn a_device_that_does_not_trust_the_hubs_ca_says_so() {
    let hub = start_hub();
    let (_device, _stdin, out) =
        start(&["device", "--connection-string", &hub.connection_string, "--count", "1", "--json"]);
    let line = next_event(&out, "disconnected");
    let error = line["transportError"].as_str().unwrap_or_default();
    assert!(error.contains("trusted") && error.contains("--ca"), "{line}");
}

#[test]
fn an_expired_hub_certificate_is_refused_with_words_that_say_so() {
    let files = TempDir::new("hubwire-expired");
    let ca = match CertificateAuthority::new() {
        Ok(ca) => ca,
        Err(e) => panic!("{e}"),
    };
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let names = [String::from("127.0.0.1")];
    let (chain, key) = match ca.issue(&names, now - 30 * day, now - day) {
        Ok(issued) => issued,
        Err(e) => panic!("{e}"),
    };
    let write = |name: &str, text: String| {
        let path = files.0.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            panic!("{e}");
        }
        path.display().to_string()
    };
    let cert = write("hub.pem", local_ca::pem_certificates(&chain));
    let key = write("hub-key.pem", local_ca::pem_key(&key));
    let ca_file = write("ca.pem", ca.cert_pem());
    let data_dir = TempDir::new("hubwire-expired-hub");
    let dir = data_dir.0.display().to_string();
    let args = ["hub", "--mqtt-port", "0", "--https-port", "off", "--amqp-port", "off"];
    let args = [&args[..], &["--cert", &cert, "--key", &key]].concat();
    let hub = start_hub_with_ca(
        &[&args[..], &["--data-dir", &dir, "--device", "dev1"]].concat(),
        data_dir,
    );
    let (_device, _stdin, out) = start(&[
        "device",
        "--connection-string",
        &hub.connection_string,
        "--ca",
        &ca_file,
        "--count",
        "1",
        "--json",
    ]);
    let line = next_event(&out, "disconnected");
    let error = line["transportError"].as_str().unwrap_or_default();
    assert!(error.contains("expired"), "{line}");
}

/// A hub serving a given certificate prints no CA: [`start_hub_with`] wants one.
fn start_hub_with_ca(args: &[&str], data_dir: TempDir) -> Hub {
    let (process, stdin, out) = start(args);
    let (listening, connection_string) = hubwire_conformance::process::registered(&out);
    assert!(listening["ca"].is_null(), "a given certificate has no local CA: {listening}");
    let mqtt = listening["mqtt"].as_str().unwrap_or_default().to_owned();
    Hub {
        process,
        stdin,
        out,
        mqtt,
        https: String::new(),
        mqtt_tcp: String::new(),
        amqp: String::new(),
        amqp_tcp: String::new(),
        ca: String::new(),
        connection_string,
        data_dir,
    }
}

#[test]
fn websocket_upgrades_that_break_the_rules_get_their_http_status() {
    let hub = start_hub();
    let cases = [
        (upgrade("/other", KEY, "mqtt", "13"), "HTTP/1.1 404"),
        (upgrade("/$iothub/websocket", "short", "mqtt", "13"), "HTTP/1.1 400"),
        (upgrade("/$iothub/websocket", KEY, "stomp", "13"), "HTTP/1.1 400"),
        (upgrade("/$iothub/websocket", KEY, "mqtt", "8"), "HTTP/1.1 426"),
        // No upgrade: a REST request, whose wrong method the HTTP session answers;
        // it closes as asked.
        (
            String::from(
                "GET /devices/dev1/messages/events HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            ),
            "HTTP/1.1 405",
        ),
        (String::from("NOT HTTP AT ALL\r\n\r\n"), "HTTP/1.1 400"),
    ];
    for (request, status) in cases {
        let line = status_for(&hub, &request);
        assert!(line.starts_with(status), "{request:?} got {line:?}, not {status}");
    }
    hub_serves_a_device(&hub);
}

/// A WebSocket opened as an MQTT device's, after the 101.
fn open_websocket(hub: &Hub) -> TlsClient {
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    // The query string the C SDK adds is allowed; "MQTT" in capitals as the C SDK
    // writes it.
    client.send(
        upgrade("/$iothub/websocket?iothub-no-client-cert=true", KEY, "MQTT", "13").as_bytes(),
    );
    let head = client.read_until(|b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455 §4.2.2: the accept key of the RFC's own example nonce.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    assert!(head.to_ascii_lowercase().contains("sec-websocket-protocol: mqtt"), "{head}");
    client
}

/// The status code of the close frame the hub sends (RFC 6455 §5.5.1).
fn close_code(frames: &[u8]) -> Option<u16> {
    let start = frames.windows(1).position(|w| w[0] == 0x88)?;
    let code = frames.get(start + 2..start + 4)?;
    Some(u16::from_be_bytes([code[0], code[1]]))
}

#[test]
fn an_unmasked_client_frame_is_closed_with_1002() {
    let hub = start_hub();
    let mut client = open_websocket(&hub);
    // A binary frame without the mask bit (RFC 6455 §5.1: the server must close).
    client.send(&[0x82, 0x02, 0xc0, 0x00]);
    let frames = client.read_to_close();
    assert_eq!(close_code(&frames), Some(1002), "{frames:02x?}");
    let reported = next_event(&hub.out, "transportError");
    assert!(reported["error"].as_str().is_some_and(|e| e.contains("mask")), "{reported}");
    hub_serves_a_device(&hub);
}

#[test]
fn a_text_frame_is_closed_with_1003() {
    let hub = start_hub();
    let mut client = open_websocket(&hub);
    // A masked text frame (mask 0): MQTT over WebSocket is binary only [MQTT-6.0.0-1].
    client.send(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
    let frames = client.read_to_close();
    assert_eq!(close_code(&frames), Some(1003), "{frames:02x?}");
}

#[test]
fn an_oversized_frame_is_closed_with_1009_before_its_payload_arrives() {
    let hub = start_hub();
    let mut client = open_websocket(&hub);
    // A masked binary frame announcing 2^40 bytes, 64-bit length form.
    let mut frame = vec![0x82, 0xff];
    frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    client.send(&frame);
    let frames = client.read_to_close();
    assert_eq!(close_code(&frames), Some(1009), "{frames:02x?}");
    hub_serves_a_device(&hub);
}
