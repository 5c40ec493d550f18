//! The opening handshake (RFC 6455 §4): the client's upgrade request, the server's
//! checks and its 101 answer, and the client's checks of that answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hubwire_core::http::{self, Header, RequestHead, ResponseHead};
use tungstenite::handshake::derive_accept_key;

use super::{IOTHUB_PATH, Rejection, Subprotocol, WsError};

/// The only WebSocket version, RFC 6455's (§4.1 item 9, §4.4).
const VERSION: &str = "13";

/// The client's upgrade request (RFC 6455 §4.1): `GET path HTTP/1.1` with `Host`,
/// `Upgrade: websocket`, `Connection: Upgrade`, the key, version 13 and one
/// subprotocol.
pub(super) fn request(host: &str, path: &str, subprotocol: Subprotocol, key: &str) -> RequestHead {
    RequestHead {
        method: String::from("GET"),
        target: String::from(path),
        minor_version: 1,
        headers: vec![
            Header::new("Host", host),
            Header::new("Upgrade", "websocket"),
            Header::new("Connection", "Upgrade"),
            Header::new("Sec-WebSocket-Key", key),
            Header::new("Sec-WebSocket-Version", VERSION),
            Header::new("Sec-WebSocket-Protocol", subprotocol.token()),
        ],
    }
}

/// The server's checks of an upgrade request (RFC 6455 §4.2.1, spec file §1), in the
/// order a request fails them: the method, the path, the HTTP version and upgrade
/// fields, the WebSocket version, the key, `Host`, and last the subprotocol. On
/// success, the subprotocol chosen and the 101 answer (RFC 6455 §4.2.2).
pub(super) fn accept(
    head: &RequestHead,
    allowed: &[Subprotocol],
) -> Result<(Subprotocol, ResponseHead), Rejection> {
    if head.method != "GET" {
        let reason = format!("method {} is not GET (RFC 6455 §4.2.1)", head.method);
        // RFC 9110 §15.5.6: a 405 names the methods allowed.
        return Err(reject(405, reason, &[("Allow", "GET")]));
    }
    // The path is IoT Hub's exactly; only a query may follow (RFC 6455 §4.2.1 item 3:
    // the resource name is the path and query).
    if head.path() != IOTHUB_PATH {
        let reason = format!("no WebSocket endpoint at {}: it is {IOTHUB_PATH}", head.path());
        return Err(reject(404, reason, &[]));
    }
    if head.minor_version < 1 {
        return Err(bad_request("a WebSocket upgrade needs HTTP/1.1 (RFC 6455 §4.2.1)"));
    }
    if !head.has_token("Upgrade", "websocket") {
        return Err(bad_request("no `Upgrade: websocket` (RFC 6455 §4.2.1)"));
    }
    if !head.has_token("Connection", "Upgrade") {
        return Err(bad_request("no `Connection: Upgrade` (RFC 6455 §4.2.1)"));
    }
    match head.header("Sec-WebSocket-Version") {
        None => return Err(bad_request("no Sec-WebSocket-Version (RFC 6455 §4.2.1)")),
        Some(VERSION) => {}
        Some(other) => {
            let reason = format!("Sec-WebSocket-Version {other:?} is not 13 (RFC 6455 §4.4)");
            // RFC 6455 §4.4 names the versions served; RFC 9110 §15.5.22 the protocol.
            let extra = [("Sec-WebSocket-Version", VERSION), ("Upgrade", "websocket")];
            return Err(reject(426, reason, &extra));
        }
    }
    let Some(key) = head.header("Sec-WebSocket-Key") else {
        return Err(bad_request("no Sec-WebSocket-Key (RFC 6455 §4.2.1)"));
    };
    if STANDARD.decode(key).map(|nonce| nonce.len()) != Ok(16) {
        return Err(bad_request("Sec-WebSocket-Key is not base64 of 16 bytes (RFC 6455 §4.2.1)"));
    }
    if head.header("Host").is_none() {
        return Err(bad_request("no Host (RFC 6455 §4.2.1, RFC 9112 §3.2)"));
    }
    let offered: Vec<&str> = offered_subprotocols(head).collect();
    let chosen = offered.iter().find_map(|&token| {
        Subprotocol::from_token(token).filter(|p| allowed.contains(p)).map(|p| (p, token))
    });
    let Some((subprotocol, token)) = chosen else {
        let served: Vec<&str> = allowed.iter().map(|p| p.token()).collect();
        let reason = format!(
            "no subprotocol served here among those offered {offered:?}; served: {served:?} \
             (RFC 6455 §4.2.2)"
        );
        return Err(bad_request(&reason));
    };
    let answer = ResponseHead {
        minor_version: 1,
        status: 101,
        reason: String::from(http::reason_phrase(101)),
        headers: vec![
            Header::new("Upgrade", "websocket"),
            Header::new("Connection", "Upgrade"),
            Header::new("Sec-WebSocket-Accept", derive_accept_key(key.as_bytes())),
            // Echo the spelling offered: the C SDK offers `MQTT` (spec file §1).
            Header::new("Sec-WebSocket-Protocol", token),
        ],
    };
    Ok((subprotocol, answer))
}

/// The client's checks of the server's answer (RFC 6455 §4.1, the numbered list
/// after "the client MUST validate the server's response").
pub(super) fn check_response(
    head: &ResponseHead,
    key: &str,
    offered: Subprotocol,
) -> Result<(), WsError> {
    if head.status != 101 {
        let reason = head.reason.clone();
        return Err(WsError::NotSwitchingProtocols { status: head.status, reason });
    }
    if !head.has_token("Upgrade", "websocket") {
        return Err(WsError::MissingUpgrade);
    }
    if !head.has_token("Connection", "Upgrade") {
        return Err(WsError::MissingConnectionUpgrade);
    }
    let expected = derive_accept_key(key.as_bytes());
    let got = head.header("Sec-WebSocket-Accept");
    if got != Some(expected.as_str()) {
        return Err(WsError::AcceptMismatch { expected, got: got.map(String::from) });
    }
    if let Some(extensions) = head.header("Sec-WebSocket-Extensions").filter(|e| !e.is_empty()) {
        return Err(WsError::UnofferedExtension(String::from(extensions)));
    }
    let answered = head.header("Sec-WebSocket-Protocol");
    if answered.and_then(Subprotocol::from_token) != Some(offered) {
        let answered = answered.map(String::from);
        return Err(WsError::Subprotocol { offered: offered.token(), answered });
    }
    Ok(())
}

/// Every token of every `Sec-WebSocket-Protocol` field, in order (RFC 6455 §4.1 item
/// 10: a comma-separated list, possibly over several fields).
fn offered_subprotocols(head: &RequestHead) -> impl Iterator<Item = &str> {
    head.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
        .flat_map(|h| h.value.split(','))
        .map(|token| token.trim_matches([' ', '\t']))
        .filter(|token| !token.is_empty())
}

fn bad_request(reason: &str) -> Rejection {
    reject(400, String::from(reason), &[])
}

fn reject(status: u16, reason: String, extra_headers: &[(&str, &str)]) -> Rejection {
    let response =
        http::error_response(status, http::reason_phrase(status), extra_headers, &reason);
    Rejection { status, reason, response }
}
