//! The `http_hub` target: the hub engine's HTTP role (spec file §6), fed the
//! fuzzer's requests with time steps, late stores and C2D messages between chunks.
//! HTTP has no handshake: each seed request carries a valid SAS token for `dev1`, so
//! the fuzzer starts at the IoT Hub handlers (send, batch, receive, settle).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::BytesMut;

use super::{DEVICE_ID, HubRun, KEY, START, Schedule, with_schedules};
use crate::Protocol;
use crate::http::{self, BodyDecoder, BodyLimits};
use crate::iothub::SasToken;
use crate::time::Duration;

/// The first two bytes are the [`Schedule`]; the rest is the client's byte stream.
///
/// Properties: no panic; the hub writes whole, readable responses (interim 100s
/// among them), nothing after one that says `Connection: close`, and never an
/// answer it has no status for; `handle_timeout` always makes progress; once the
/// transport closes the connection is gone.
pub fn http_hub(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = HubRun::new(Protocol::Http);
    run.play(&mut schedule, stream, stream.len() / 2);
    check_output(&run.wire);
}

/// The hub's bytes are whole responses; a `Connection: close` is the last.
fn check_output(wire: &BytesMut) {
    let mut rx = wire.clone();
    let mut closed = false;
    while !rx.is_empty() {
        assert!(!closed, "bytes after Connection: close");
        let (head, used) = match http::parse_response(&rx, &http::Limits::default()) {
            Ok(Some(parsed)) => parsed,
            other => panic!("the hub wrote an unreadable head: {other:?}"),
        };
        let _ = rx.split_to(used);
        const SENT: [u16; 14] =
            [100, 200, 204, 400, 401, 404, 405, 408, 412, 413, 414, 431, 501, 505];
        assert!(SENT.contains(&head.status), "status {} is none the hub sends", head.status);
        let limits = BodyLimits { max_body_size: usize::MAX, ..BodyLimits::default() };
        let mut decoder = match BodyDecoder::for_response(&head, "POST", &limits) {
            Ok(decoder) => decoder,
            Err(e) => panic!("the hub framed a body badly: {e}"),
        };
        assert!(!decoder.must_close(), "a body without a length: {head:?}");
        match decoder.decode(&mut rx) {
            Ok(Some(_)) => {}
            other => panic!("the hub wrote a partial body: {other:?}"),
        }
        closed = head.has_token("connection", "close");
    }
}

/// A request for `dev1` with a token valid for two hours.
fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let expiry = START + Duration::from_secs(7200);
    let token = match SasToken::sign(&format!("localhost/devices/{DEVICE_ID}"), KEY, expiry, None) {
        Ok(t) => t,
        Err(e) => panic!("cannot sign: {e}"),
    };
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const Q: &str = "?api-version=2021-04-12";

fn events() -> String {
    format!("/devices/{DEVICE_ID}/messages/events{Q}")
}

fn receive() -> Vec<u8> {
    request("GET", &format!("/devices/{DEVICE_ID}/messages/deviceBound{Q}"), &[], b"")
}

/// The lock the body's hub hands out with its first C2D message: the hub's random
/// source is seeded, so a GET in a seed always gets this one.
fn first_lock() -> String {
    let mut run = HubRun::new(Protocol::Http);
    run.input(&receive());
    let etag = match http::parse_response(&run.wire, &http::Limits::default()) {
        Ok(Some((head, _))) => head.header("etag").map(String::from),
        other => panic!("no answer to the seed's GET: {other:?}"),
    };
    match etag.as_deref().and_then(|e| e.strip_prefix('"')).and_then(|e| e.strip_suffix('"')) {
        Some(lock) => String::from(lock),
        None => panic!("the seed's GET got no ETag"),
    }
}

pub(super) fn seeds() -> Vec<Vec<u8>> {
    let lock = first_lock();
    let settle = |suffix: &str, method: &str, query: &str| {
        let target = format!("/devices/{DEVICE_ID}/messages/deviceBound/{lock}{suffix}{Q}{query}");
        request(method, &target, &[], b"")
    };
    let single = request(
        "POST",
        &events(),
        &[
            ("iothub-messageid", "m1"),
            ("iothub-app-unit", "C"),
            ("Content-Type", "application/json"),
        ],
        br#"{"t":21.5}"#,
    );
    // TV-16
    let batch = request(
        "POST",
        &events(),
        &[("Content-Type", "application/vnd.microsoft.iothub.json")],
        br#"[{"body":"eyJ0IjoyMS41fQ==","properties":{"iothub-app-unit":"C","iothub-messageid":"m1"}},{"body":"hello","base64Encoded":false}]"#,
    );
    let then = |first: &[u8], second: &[u8]| [first, second].concat();
    with_schedules(&[
        single.clone(),
        batch,
        receive(),
        then(&receive(), &settle("", "DELETE", "")),
        then(&receive(), &settle("", "DELETE", "&reject")),
        then(&then(&receive(), &settle("/abandon", "POST", "")), &receive()),
        then(&single, &receive()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sansio::{Endpoint, Transmit};

    /// The settle seeds name the lock their GET receives: the hub completes the
    /// message instead of answering 412.
    #[test]
    fn settle_seed_completes_the_message_its_get_received() {
        let seed = &seeds()[6];
        let mut run = HubRun::new(Protocol::Http);
        run.input(&seed[2..]);
        let mut rx = run.wire.clone();
        let mut statuses = Vec::new();
        while let Ok(Some((head, used))) = http::parse_response(&rx, &http::Limits::default()) {
            let _ = rx.split_to(used);
            let length = head.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let _ = rx.split_to(length);
            statuses.push(head.status);
        }
        assert_eq!(statuses, [200, 204]);
        assert!(!matches!(run.hub.poll_transmit(), Some((_, Transmit::Close))));
    }
}
