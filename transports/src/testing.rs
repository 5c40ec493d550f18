//! Test support, behind the `testing` feature: WebSocket frames and handshakes built
//! and read by hand, and the bodies of the fuzz targets in `fuzz/fuzz_targets/`
//! with their seed corpora (shared with the test that replays the corpora in
//! `conformance/`), in the style of `hubwire_core::testing::fuzz`.
//!
//! Each body is a `pub fn(&[u8])` and asserts only properties that hold for every
//! input; any panic is a crash for the fuzzer to save. The frame targets read their
//! first byte as a [`Schedule`] and the rest as the peer's byte stream.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use hubwire_core::http::{self, Limits};
use tungstenite::protocol::frame::FrameHeader;

use crate::ws::{IOTHUB_PATH, Subprotocol, WebSocket, WsConfig, WsError};

pub use hubwire_core::testing::fuzz::Target;

/// Every fuzz target of this crate.
pub const TARGETS: &[Target] = &[
    Target { name: "ws_upgrade_server", run: ws_upgrade_server, seeds: ws_upgrade_server_seeds },
    Target { name: "ws_upgrade_client", run: ws_upgrade_client, seeds: ws_upgrade_client_seeds },
    Target { name: "ws_frames_server", run: ws_frames_server, seeds: ws_frames_server_seeds },
    Target { name: "ws_frames_client", run: ws_frames_client, seeds: ws_frames_client_seeds },
];

// ---------------------------------------------------------------------------------
// Frames and handshakes

/// The client key of RFC 6455 §1.3's example: base64 `dGhlIHNhbXBsZSBub25jZQ==`,
/// answered with `Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub const KEY: [u8; 16] = *b"the sample nonce";

/// The host the test clients name.
pub const HOST: &str = "myhub.azure-devices.net";

/// The masking key of RFC 6455 §5.7's examples.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// FIN set, binary opcode (RFC 6455 §5.2).
pub const BINARY: u8 = 0x82;
/// FIN set, text opcode.
pub const TEXT: u8 = 0x81;
/// FIN clear, binary opcode: the first fragment of a binary message (§5.4).
pub const BINARY_FIRST: u8 = 0x02;
/// FIN clear, continuation opcode: a middle fragment.
pub const CONTINUATION: u8 = 0x00;
/// FIN set, continuation opcode: the last fragment.
pub const CONTINUATION_LAST: u8 = 0x80;
/// FIN set, close opcode (§5.5.1).
pub const CLOSE: u8 = 0x88;
/// FIN set, ping opcode (§5.5.2).
pub const PING: u8 = 0x89;
/// FIN set, pong opcode (§5.5.3).
pub const PONG: u8 = 0x8a;

/// One frame on the wire (RFC 6455 §5.2): `first` (FIN, RSV1-3, opcode), the
/// shortest payload length form, the masking key if any, and the payload, masked
/// with it.
pub fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    match u16::try_from(payload.len()) {
        Ok(n @ 0..=125) => out.push(mask_bit | n as u8),
        Ok(n) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Err(_) => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A close frame's payload: the code, big-endian, then the reason (§5.5.1).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// A frame as read back from a byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenFrame {
    /// FIN, RSV1-3 and the opcode, as the first byte holds them.
    pub first: u8,
    /// Whether the frame was masked.
    pub masked: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl SeenFrame {
    /// The status code of a close frame with one (§5.5.1).
    pub fn close_code(&self) -> Option<u16> {
        match self.payload.as_slice() {
            [hi, lo, ..] if self.first == CLOSE => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }
}

/// Reads `bytes` as whole frames with tungstenite's header parser.
///
/// Errors: the bytes do not end at a frame's end, or a header is invalid.
pub fn read_frames(bytes: &[u8]) -> Result<Vec<SeenFrame>, String> {
    let mut frames = Vec::new();
    let mut cursor = Cursor::new(bytes);
    while (cursor.position() as usize) < bytes.len() {
        let start = cursor.position() as usize;
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(format!("a partial frame header at {start}")),
            Err(e) => return Err(format!("an invalid frame header at {start}: {e}")),
        };
        let at = cursor.position() as usize;
        let end = usize::try_from(len).ok().and_then(|len| at.checked_add(len));
        let Some(payload) = end.and_then(|end| bytes.get(at..end)) else {
            return Err(format!("a frame at {start} announces {len} bytes, past the end"));
        };
        cursor.set_position((at + payload.len()) as u64);
        let masked = header.mask.is_some();
        let key = header.mask.unwrap_or_default();
        let payload = payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k).collect();
        let first = bytes.get(start).copied().unwrap_or_default();
        frames.push(SeenFrame { first, masked, payload });
    }
    Ok(frames)
}

/// Everything `socket` has to send, joined.
pub fn drain(socket: &mut WebSocket) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = socket.poll_output() {
        out.extend_from_slice(&bytes);
    }
    out
}

/// A client's upgrade request for `subprotocol_header` (a `Sec-WebSocket-Protocol`
/// value as written) with [`KEY`], at `target`, as the SDKs send it.
pub fn upgrade_request(target: &str, subprotocol_header: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\n\
         Host: {HOST}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {subprotocol_header}\r\n\
         \r\n"
    )
    .into_bytes()
}

/// The server's 101 answer to [`KEY`] choosing `token`.
pub fn upgrade_response(token: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: {token}\r\n\
         \r\n"
    )
    .into_bytes()
}

/// A client (with [`KEY`]) and the server that accepted it, both open, their
/// handshake bytes exchanged.
pub fn open_pair(subprotocol: Subprotocol, config: WsConfig) -> (WebSocket, WebSocket) {
    let mut client = WebSocket::client(HOST, IOTHUB_PATH, subprotocol, KEY, config);
    let request = drain(&mut client);
    let head = match http::parse_request(&request, &Limits::default()) {
        Ok(Some((head, _))) => head,
        other => panic!("the client's request does not parse: {other:?}"),
    };
    let mut server = match WebSocket::accept(&head, &[Subprotocol::Mqtt, Subprotocol::Amqp], config)
    {
        Ok(server) => server,
        Err(rejection) => panic!("the server refuses the client: {rejection}"),
    };
    let answer = drain(&mut server);
    let mut plain = BytesMut::new();
    if let Err(e) = client.handle_input(&answer, &mut plain) {
        panic!("the client refuses the 101: {e}");
    }
    assert!(client.is_open() && plain.is_empty());
    (client, server)
}

// ---------------------------------------------------------------------------------
// Bodies

/// How a frame body cuts the peer's stream and what its own side does between
/// chunks, from the input's first byte: the low nibble picks the chunk size
/// ([`CHUNK_SIZES`]); bit 4 sends a message after every chunk; bit 5 starts the
/// close handshake after the first chunk.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Bytes per chunk (the last may be shorter).
    pub chunk: usize,
    /// Send a binary message after each chunk.
    pub send_between: bool,
    /// Call `close` after the first chunk.
    pub close_early: bool,
}

/// Chunk sizes a [`Schedule`] picks from: single bytes, sizes around frame headers
/// (2, 4, 6, 10, 14 bytes), and large.
pub const CHUNK_SIZES: [usize; 16] =
    [1, 2, 3, 4, 5, 6, 7, 10, 14, 16, 31, 64, 127, 1000, 4096, usize::MAX];

impl Schedule {
    /// The schedule and the peer's byte stream.
    pub fn split(data: &[u8]) -> (Schedule, &[u8]) {
        let (first, rest) = match data {
            [first, rest @ ..] => (*first, rest),
            [] => (0x0F, data),
        };
        let schedule = Schedule {
            chunk: CHUNK_SIZES[usize::from(first & 0x0F)],
            send_between: first & 0x10 != 0,
            close_early: first & 0x20 != 0,
        };
        (schedule, rest)
    }
}

/// Parses `data` as an upgrade request and answers it as the port-443 server does.
///
/// Properties: a refusal is a whole HTTP response with the refusal's status (400,
/// 404, 405 or 426), `Connection: close` and its reason as the body; an acceptance
/// answers 101 so that a client with the request's key and the chosen subprotocol
/// opens; the bytes after the head then never panic the server, and its output stays
/// readable frames.
pub fn ws_upgrade_server(data: &[u8]) {
    let Ok(Some((head, used))) = http::parse_request(data, &Limits::default()) else {
        return;
    };
    let allowed = [Subprotocol::Mqtt, Subprotocol::Amqp];
    let mut server = match WebSocket::accept(&head, &allowed, WsConfig::default()) {
        Ok(server) => server,
        Err(rejection) => {
            assert!([400, 404, 405, 426].contains(&rejection.status), "{rejection}");
            let parsed = http::parse_response(&rejection.response, &Limits::default());
            let Ok(Some((answer, body_at))) = parsed else {
                panic!("an unreadable refusal: {:?}", rejection.response);
            };
            assert_eq!(answer.status, rejection.status);
            assert!(answer.has_token("Connection", "close"));
            assert_eq!(rejection.response.get(body_at..), Some(rejection.reason.as_bytes()));
            return;
        }
    };
    assert!(server.is_open() && !server.is_closed());
    let answer = drain(&mut server);
    let key = head.header("Sec-WebSocket-Key").map(|k| STANDARD.decode(k));
    let Some(Ok(key)) = key else {
        panic!("accepted a request without a valid key: {head:?}");
    };
    let Ok(key) = <[u8; 16]>::try_from(key) else {
        panic!("accepted a key that is not 16 bytes: {head:?}");
    };
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, server.subprotocol(), key, WsConfig::default());
    let _ = drain(&mut client);
    let mut plain = BytesMut::new();
    if let Err(e) = client.handle_input(&answer, &mut plain) {
        panic!("a client refuses the server's 101 {:?}: {e}", String::from_utf8_lossy(&answer));
    }
    assert!(client.is_open());
    let _ = server.handle_input(data.get(used..).unwrap_or_default(), &mut plain);
    let output = drain(&mut server);
    if let Err(e) = read_frames(&output) {
        panic!("the server wrote {output:02x?}: {e}");
    }
}

/// Feeds a client the bytes of `data` (after the [`Schedule`] byte) as the server's
/// answer and what follows it.
///
/// Properties: the client opens only on a valid 101; it never writes before it
/// opens (its request aside); a handshake failure closes it with nothing to write;
/// once open, what it writes is accepted by a server that answered the same request.
pub fn ws_upgrade_client(data: &[u8]) {
    let (schedule, stream) = Schedule::split(data);
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let request = drain(&mut client);
    let Ok(Some((head, _))) = http::parse_request(&request, &Limits::default()) else {
        panic!("the client's own request does not parse");
    };
    let Ok(mut server) = WebSocket::accept(&head, &[Subprotocol::Mqtt], WsConfig::default()) else {
        panic!("the client's own request is refused");
    };
    let _ = drain(&mut server);
    if schedule.send_between {
        // Held until the 101.
        assert_eq!(client.send(b"early"), Ok(()));
    }
    let mut plain = BytesMut::new();
    for chunk in stream.chunks(schedule.chunk) {
        let was_open = client.is_open();
        let result = client.handle_input(chunk, &mut plain);
        let output = drain(&mut client);
        if !client.is_open() {
            assert!(output.is_empty(), "wrote {output:02x?} before the 101");
            if result.is_err() {
                assert!(client.is_closed(), "a failed handshake leaves the client open");
            }
        } else {
            if !was_open {
                let answer = http::parse_response(stream, &Limits::default());
                assert!(
                    matches!(answer, Ok(Some((ref head, _))) if head.status == 101),
                    "opened on {answer:?}"
                );
            }
            feed_peer(&mut server, &output);
        }
        if result.is_err() {
            assert!(client.is_closed(), "an error leaves the client open: {result:?}");
        }
        if client.is_closed() {
            break;
        }
    }
}

/// Feeds an open server (its client's handshake done) the bytes of `data` after the
/// [`Schedule`] byte as client frames.
///
/// Properties: no panic; after an error the server is closed; everything it writes
/// is accepted by its client without error (its pongs, closes and messages are
/// valid server frames).
pub fn ws_frames_server(data: &[u8]) {
    let (client, server) = open_pair(Subprotocol::Mqtt, WsConfig::default());
    drive_frames(server, client, data);
}

/// Feeds an open client the bytes of `data` after the [`Schedule`] byte as server
/// frames; the properties of [`ws_frames_server`], roles swapped.
pub fn ws_frames_client(data: &[u8]) {
    let (client, server) = open_pair(Subprotocol::Amqp, WsConfig::default());
    drive_frames(client, server, data);
}

/// The frame targets' loop: `under_test` reads the fuzzed stream; `peer` checks
/// what it writes.
fn drive_frames(mut under_test: WebSocket, mut peer: WebSocket, data: &[u8]) {
    let (schedule, stream) = Schedule::split(data);
    let mut plain = BytesMut::new();
    for (i, chunk) in stream.chunks(schedule.chunk).enumerate() {
        let result = under_test.handle_input(chunk, &mut plain);
        if result.is_err() {
            assert!(under_test.is_closed(), "an error leaves the socket open: {result:?}");
        }
        if schedule.send_between {
            let sent = under_test.send(b"between chunks");
            if under_test.is_closed() {
                assert_eq!(sent, Err(WsError::SendAfterClose));
            }
        }
        if schedule.close_early && i == 0 {
            under_test.close();
        }
        let output = drain(&mut under_test);
        feed_peer(&mut peer, &output);
        if under_test.is_closed() {
            assert_eq!(drain(&mut under_test), Vec::<u8>::new());
            break;
        }
    }
}

/// `peer` reads `bytes` without error: they are valid frames for its role.
fn feed_peer(peer: &mut WebSocket, bytes: &[u8]) {
    let mut plain = BytesMut::new();
    if let Err(e) = peer.handle_input(bytes, &mut plain) {
        panic!("the peer refuses {bytes:02x?}: {e}");
    }
    let _ = drain(peer);
}

// ---------------------------------------------------------------------------------
// Seeds

/// Requests the SDKs send (`mqtt`, the C SDK's `MQTT`, `AMQPWSB10`, the no-client-cert
/// query), each followed by a masked frame, and the refusals of §4.2.1 and §4.4.
fn ws_upgrade_server_seeds() -> Vec<Vec<u8>> {
    let then_frame = |mut request: Vec<u8>| {
        request.extend(frame(BINARY, b"\x10\x00", Some(MASK)));
        request
    };
    vec![
        then_frame(upgrade_request(IOTHUB_PATH, "mqtt")),
        then_frame(upgrade_request("/$iothub/websocket?iothub-no-client-cert=true", "MQTT")),
        then_frame(upgrade_request(IOTHUB_PATH, "AMQPWSB10")),
        upgrade_request(IOTHUB_PATH, "wamp, amqpwsb10"),
        upgrade_request("/other", "mqtt"),
        upgrade_request(IOTHUB_PATH, "wamp"),
        String::from_utf8_lossy(&upgrade_request(IOTHUB_PATH, "mqtt"))
            .replace("Version: 13", "Version: 8")
            .into_bytes(),
        String::from_utf8_lossy(&upgrade_request(IOTHUB_PATH, "mqtt"))
            .replacen("GET", "POST", 1)
            .into_bytes(),
    ]
}

/// The 101 for `mqtt` (and `MQTT`), followed by frames; a refusal; a wrong accept.
fn ws_upgrade_client_seeds() -> Vec<Vec<u8>> {
    let with = |schedule: u8, mut bytes: Vec<u8>| {
        bytes.insert(0, schedule);
        bytes
    };
    let mut open_then_frames = upgrade_response("mqtt");
    open_then_frames.extend(frame(BINARY, b"\x20\x02\x00\x00", None));
    open_then_frames.extend(frame(PING, b"hi", None));
    vec![
        with(0x0F, open_then_frames.clone()),
        with(0x12, open_then_frames),
        with(0x0F, upgrade_response("MQTT")),
        with(0x0F, http::error_response(404, "Not Found", &[], "no").to_vec()),
        with(
            0x05,
            String::from_utf8_lossy(&upgrade_response("mqtt")).replace("s3pP", "AAAA").into_bytes(),
        ),
    ]
}

/// A client's frames: MQTT CONNECT and PINGREQ in binary messages, one fragmented
/// around a ping, a pong, and the close; under whole, byte-wise and mixed schedules.
fn ws_frames_server_seeds() -> Vec<Vec<u8>> {
    with_schedules(Some(MASK))
}

/// A server's frames, the same as [`ws_frames_server_seeds`] but unmasked.
fn ws_frames_client_seeds() -> Vec<Vec<u8>> {
    with_schedules(None)
}

fn with_schedules(mask: Option<[u8; 4]>) -> Vec<Vec<u8>> {
    let mut stream = Vec::new();
    stream.extend(frame(BINARY, b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", mask));
    stream.extend(frame(BINARY_FIRST, b"\xc0", mask));
    stream.extend(frame(PING, b"ping", mask));
    stream.extend(frame(CONTINUATION, b"", mask));
    stream.extend(frame(CONTINUATION_LAST, b"\x00", mask));
    stream.extend(frame(PONG, b"", mask));
    stream.extend(frame(BINARY, &[0x30; 300], mask));
    stream.extend(frame(CLOSE, &close_payload(1000, "bye"), mask));
    [0x0F, 0x00, 0x18, 0x24]
        .iter()
        .map(|&schedule| {
            let mut seed = vec![schedule];
            seed.extend_from_slice(&stream);
            seed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_short_inputs_pass_every_target() {
        hubwire_core::testing::fuzz::check_targets(
            TARGETS,
            &[&[0], &[0xFF, 0xFF], &[0x0F, 0x82, 0x80]],
        );
    }

    #[test]
    fn frame_reads_back() {
        for len in [0, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some(MASK)] {
                let frames = read_frames(&frame(BINARY, &payload, mask));
                let expected =
                    SeenFrame { first: BINARY, masked: mask.is_some(), payload: payload.clone() };
                assert_eq!(frames, Ok(vec![expected]));
            }
        }
    }
}
