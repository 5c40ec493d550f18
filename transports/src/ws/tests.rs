//! Client and server joined in memory (bytes handed across), every refusal of the
//! upgrade, and hostile frames. Frames are written by hand ([`frame`]) so that a
//! test shows the bytes it sends.

use bytes::BytesMut;
use hubwire_core::http::{self, Limits, RequestHead, ResponseHead};
use proptest::collection::vec as vec_of;
use proptest::prelude::*;

use super::*;
use crate::testing::{
    BINARY, BINARY_FIRST, CLOSE, CONTINUATION, CONTINUATION_LAST, HOST, KEY, MASK, PING, PONG,
    SeenFrame, TEXT, close_payload, drain, frame, open_pair, read_frames, upgrade_request,
    upgrade_response,
};

const BOTH: [Subprotocol; 2] = [Subprotocol::Mqtt, Subprotocol::Amqp];

/// Hands everything `from` has to send to `to`; returns what `to` delivered.
fn pump(from: &mut WebSocket, to: &mut WebSocket) -> Result<Vec<u8>, WsError> {
    let mut plain = BytesMut::new();
    let bytes = drain(from);
    to.handle_input(&bytes, &mut plain)?;
    Ok(plain.to_vec())
}

/// Feeds `bytes` to `socket`; returns the outcome, what it delivered and the frames it
/// wrote.
fn feed(socket: &mut WebSocket, bytes: &[u8]) -> (Result<(), WsError>, Vec<u8>, Vec<SeenFrame>) {
    let mut plain = BytesMut::new();
    let result = socket.handle_input(bytes, &mut plain);
    let written = drain(socket);
    let frames = read_frames(&written).unwrap_or_else(|e| panic!("{written:02x?}: {e}"));
    (result, plain.to_vec(), frames)
}

fn request_head(bytes: &[u8]) -> RequestHead {
    match http::parse_request(bytes, &Limits::default()) {
        Ok(Some((head, _))) => head,
        other => panic!("{other:?}"),
    }
}

fn response_head(bytes: &[u8]) -> (ResponseHead, usize) {
    match http::parse_response(bytes, &Limits::default()) {
        Ok(Some(parsed)) => parsed,
        other => panic!("{other:?}"),
    }
}

fn server(subprotocol: Subprotocol) -> WebSocket {
    let (_, server) = open_pair(subprotocol, WsConfig::default());
    server
}

fn client(subprotocol: Subprotocol) -> WebSocket {
    let (client, _) = open_pair(subprotocol, WsConfig::default());
    client
}

/// The one frame a failed socket wrote: a close with `code`.
fn assert_closed_with(socket: &WebSocket, frames: &[SeenFrame], code: u16) {
    assert!(socket.is_closed());
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].close_code(), Some(code), "{frames:?}");
}

// ---------------------------------------------------------------------------------
// Opening handshake

#[test]
fn rfc_6455_4_1_client_request_is_byte_exact() {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    assert_eq!(drain(&mut client), upgrade_request(IOTHUB_PATH, "mqtt"));
    assert!(!client.is_open() && !client.is_closed());
    assert_eq!(client.subprotocol(), Subprotocol::Mqtt);
}

#[test]
fn rfc_6455_1_3_server_answers_the_sample_nonce() {
    let head = request_head(&upgrade_request(IOTHUB_PATH, "mqtt"));
    let Ok(mut server) = WebSocket::accept(&head, &BOTH, WsConfig::default()) else {
        panic!("refused");
    };
    assert!(server.is_open() && !server.is_closed());
    assert_eq!(drain(&mut server), upgrade_response("mqtt"));
}

#[test]
fn upgrade_then_binary_messages_both_ways() {
    for subprotocol in BOTH {
        let (mut client, mut server) = open_pair(subprotocol, WsConfig::default());
        assert_eq!((client.subprotocol(), server.subprotocol()), (subprotocol, subprotocol));
        client.send(b"\x10\x00").unwrap();
        client.send(b"second").unwrap();
        assert_eq!(pump(&mut client, &mut server), Ok(b"\x10\x00second".to_vec()));
        server.send(b"\x20\x02\x00\x00").unwrap();
        assert_eq!(pump(&mut server, &mut client), Ok(b"\x20\x02\x00\x00".to_vec()));
        assert!(!client.is_closed() && !server.is_closed());
    }
}

#[test]
fn client_frames_are_masked_and_server_frames_are_not() {
    let (mut client, mut server) = open_pair(Subprotocol::Mqtt, WsConfig::default());
    client.send(b"up").unwrap();
    server.send(b"down").unwrap();
    let up = read_frames(&drain(&mut client)).unwrap();
    let down = read_frames(&drain(&mut server)).unwrap();
    assert_eq!(up, [SeenFrame { first: BINARY, masked: true, payload: b"up".to_vec() }]);
    assert_eq!(down, [SeenFrame { first: BINARY, masked: false, payload: b"down".to_vec() }]);
}

#[test]
fn client_holds_messages_sent_before_the_101() {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let request = drain(&mut client);
    client.send(b"one").unwrap();
    client.send(b"two").unwrap();
    assert_eq!(client.poll_output(), None, "nothing before the 101");
    let Ok(mut server) = WebSocket::accept(&request_head(&request), &BOTH, WsConfig::default())
    else {
        panic!("refused");
    };
    // The 101 arrives one byte at a time.
    let answer = drain(&mut server);
    let mut plain = BytesMut::new();
    for byte in &answer {
        assert!(!client.is_open());
        client.handle_input(std::slice::from_ref(byte), &mut plain).unwrap();
    }
    assert!(client.is_open());
    assert_eq!(pump(&mut client, &mut server), Ok(b"onetwo".to_vec()));
}

#[test]
fn frames_in_the_same_read_as_the_101_are_delivered() {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let _ = drain(&mut client);
    let mut bytes = upgrade_response("mqtt");
    bytes.extend(frame(BINARY, b"\x20\x02\x00\x00", None)); // CONNACK, right behind the head
    let (result, plain, written) = feed(&mut client, &bytes);
    assert_eq!(result, Ok(()));
    assert_eq!(plain, b"\x20\x02\x00\x00");
    assert!(written.is_empty());
}

#[test]
fn server_echoes_the_token_offered_in_its_letter_case() {
    for (offered, chosen, echoed) in [
        ("MQTT", Subprotocol::Mqtt, "MQTT"), // the C SDK (spec file §1)
        ("mqtt", Subprotocol::Mqtt, "mqtt"),
        ("wamp, amqpwsb10", Subprotocol::Amqp, "amqpwsb10"),
        ("AMQPWSB10, mqtt", Subprotocol::Amqp, "AMQPWSB10"), // the client's order
    ] {
        let head = request_head(&upgrade_request(IOTHUB_PATH, offered));
        let Ok(mut server) = WebSocket::accept(&head, &BOTH, WsConfig::default()) else {
            panic!("refused {offered}");
        };
        assert_eq!(server.subprotocol(), chosen);
        let (answer, _) = response_head(&drain(&mut server));
        assert_eq!(answer.header("Sec-WebSocket-Protocol"), Some(echoed));
    }
}

#[test]
fn client_accepts_its_subprotocol_in_any_letter_case() {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let _ = drain(&mut client);
    let (result, _, _) = feed(&mut client, &upgrade_response("MQTT"));
    assert_eq!(result, Ok(()));
    assert!(client.is_open());
}

#[test]
fn query_after_the_path_is_accepted() {
    let head =
        request_head(&upgrade_request("/$iothub/websocket?iothub-no-client-cert=true", "mqtt"));
    assert!(WebSocket::accept(&head, &BOTH, WsConfig::default()).is_ok());
}

#[test]
fn only_the_exact_path_is_accepted() {
    for path in ["/$iothub/websocketFOO", "/$iothub/websocket/", "/$iothub/websocket/../x"] {
        let head = request_head(&upgrade_request(path, "mqtt"));
        let refusal = WebSocket::accept(&head, &BOTH, WsConfig::default()).err();
        assert_eq!(refusal.map(|r| r.status), Some(404), "{path}");
    }
}

// ---------------------------------------------------------------------------------
// Refusals

/// The request of [`upgrade_request`] with `from` replaced by `to`.
fn altered(from: &str, to: &str) -> RequestHead {
    let request = String::from_utf8(upgrade_request(IOTHUB_PATH, "mqtt")).unwrap();
    assert!(request.contains(from), "{from}");
    request_head(request.replacen(from, to, 1).as_bytes())
}

/// Refuses `head`, checks the response is whole and says `status` and `reason_part`,
/// and returns the response head.
fn refused(
    head: &RequestHead,
    allowed: &[Subprotocol],
    status: u16,
    reason_part: &str,
) -> ResponseHead {
    let rejection = match WebSocket::accept(head, allowed, WsConfig::default()) {
        Ok(_) => panic!("accepted {head:?}"),
        Err(rejection) => rejection,
    };
    assert_eq!(rejection.status, status, "{rejection}");
    assert!(rejection.reason.contains(reason_part), "{rejection}");
    let (answer, body_at) = response_head(&rejection.response);
    assert_eq!(answer.status, status);
    assert_eq!(answer.reason, http::reason_phrase(status));
    assert!(answer.has_token("Connection", "close"));
    assert_eq!(&rejection.response[body_at..], rejection.reason.as_bytes());
    answer
}

#[test]
fn rfc_6455_4_2_1_method_other_than_get_is_405() {
    let answer = refused(&altered("GET", "POST"), &BOTH, 405, "POST");
    assert_eq!(answer.header("Allow"), Some("GET"));
}

#[test]
fn path_other_than_iothub_websocket_is_404() {
    refused(&altered(IOTHUB_PATH, "/"), &BOTH, 404, "/$iothub/websocket");
    refused(&altered(IOTHUB_PATH, "/$iothub/web"), &BOTH, 404, "no WebSocket endpoint");
    refused(&altered(IOTHUB_PATH, "/x?/$iothub/websocket"), &BOTH, 404, "/x");
}

#[test]
fn rfc_6455_4_2_1_missing_upgrade_fields_are_400() {
    refused(&altered("Upgrade: websocket", "Upgrade: h2c"), &BOTH, 400, "Upgrade: websocket");
    refused(&altered("Connection: Upgrade", "Connection: keep-alive"), &BOTH, 400, "Connection");
    refused(&altered("HTTP/1.1", "HTTP/1.0"), &BOTH, 400, "HTTP/1.1");
    refused(&altered("Host: ", "X-Host: "), &BOTH, 400, "Host");
    refused(&altered("Sec-WebSocket-Version: 13", "X: 13"), &BOTH, 400, "Sec-WebSocket-Version");
}

#[test]
fn rfc_6455_4_2_1_key_must_be_base64_of_16_bytes() {
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    refused(&altered(key, ""), &BOTH, 400, "Sec-WebSocket-Key");
    refused(&altered(key, "dGhlIHNhbXBsZSBub25j"), &BOTH, 400, "16 bytes"); // 15 bytes
    refused(&altered(key, "not base64!"), &BOTH, 400, "16 bytes");
    refused(&altered("Sec-WebSocket-Key", "X-Key"), &BOTH, 400, "no Sec-WebSocket-Key");
}

#[test]
fn rfc_6455_4_4_other_version_is_426_naming_13() {
    let answer = refused(&altered("Version: 13", "Version: 8"), &BOTH, 426, "\"8\"");
    assert_eq!(answer.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn subprotocol_not_served_is_400_naming_those_offered() {
    refused(
        &altered("Protocol: mqtt", "Protocol: wamp, v12.stomp"),
        &BOTH,
        400,
        "[\"wamp\", \"v12.stomp\"]",
    );
    refused(&altered("Sec-WebSocket-Protocol: mqtt", "X: y"), &BOTH, 400, "[]");
    let amqp = request_head(&upgrade_request(IOTHUB_PATH, "AMQPWSB10"));
    refused(&amqp, &[Subprotocol::Mqtt], 400, "AMQPWSB10");
}

// ---------------------------------------------------------------------------------
// The client's checks of the 101

/// A client that has sent its request and is fed `answer`.
fn client_fed(answer: &[u8]) -> (WebSocket, Result<(), WsError>) {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let _ = drain(&mut client);
    client.send(b"held").unwrap();
    let (result, plain, written) = feed(&mut client, answer);
    assert!(plain.is_empty() && written.is_empty(), "{plain:?} {written:?}");
    (client, result)
}

fn response_altered(from: &str, to: &str) -> Vec<u8> {
    let answer = String::from_utf8(upgrade_response("mqtt")).unwrap();
    assert!(answer.contains(from), "{from}");
    answer.replacen(from, to, 1).into_bytes()
}

#[test]
fn rfc_6455_4_1_client_refuses_a_bad_answer() {
    let cases = [
        (
            http::error_response(404, "Not Found", &[], "no").to_vec(),
            WsError::NotSwitchingProtocols { status: 404, reason: String::from("Not Found") },
        ),
        (response_altered("Upgrade: websocket", "Upgrade: h2c"), WsError::MissingUpgrade),
        (
            response_altered("Connection: Upgrade", "Connection: close"),
            WsError::MissingConnectionUpgrade,
        ),
        (
            response_altered("s3pP", "AAAA"),
            WsError::AcceptMismatch {
                expected: String::from("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                got: Some(String::from("AAAALMBiTxaQ9kYGzzhZRbK+xOo=")),
            },
        ),
        (
            response_altered("Sec-WebSocket-Accept", "X"),
            WsError::AcceptMismatch {
                expected: String::from("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                got: None,
            },
        ),
        (
            response_altered(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            ),
            WsError::UnofferedExtension(String::from("permessage-deflate")),
        ),
        (
            response_altered("Sec-WebSocket-Protocol: mqtt", "X: y"),
            WsError::Subprotocol { offered: "mqtt", answered: None },
        ),
        (
            response_altered("Protocol: mqtt", "Protocol: AMQPWSB10"),
            WsError::Subprotocol { offered: "mqtt", answered: Some(String::from("AMQPWSB10")) },
        ),
    ];
    for (answer, expected) in cases {
        let (client, result) = client_fed(&answer);
        assert_eq!(result, Err(expected));
        assert!(client.is_closed() && !client.is_open());
    }
}

#[test]
fn client_refuses_an_endless_answer_after_16_kib() {
    let (client, result) = client_fed(&vec![b'H'; 1 << 20]);
    assert!(matches!(result, Err(WsError::ResponseHead(_))), "{result:?}");
    assert!(client.is_closed());
    let (client, result) =
        client_fed(&[b"HTTP/1.1 101 OK\r\nX: ".as_slice(), &[b'a'; 1 << 20]].concat());
    assert_eq!(result, Err(WsError::ResponseHead(http::HeadError::TooLarge { limit: 16 * 1024 })));
    assert!(client.is_closed());
}

#[test]
fn garbage_after_the_101_fails_the_client_with_1002() {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let _ = drain(&mut client);
    let mut bytes = upgrade_response("mqtt");
    bytes.extend_from_slice(b"\x83garbage"); // opcode 3 is reserved
    let (result, _, written) = feed(&mut client, &bytes);
    assert_eq!(result, Err(WsError::ReservedOpcode(3)));
    assert!(client.is_open());
    assert_closed_with(&client, &written, 1002);
    assert!(written[0].masked, "a client's close is masked too");
}

// ---------------------------------------------------------------------------------
// Frames

#[test]
fn rfc_6455_5_4_fragments_are_reassembled_around_a_ping() {
    let mut server = server(Subprotocol::Mqtt);
    let mut bytes = frame(BINARY_FIRST, b"\x10\x0c", Some(MASK));
    bytes.extend(frame(PING, b"Hello", Some(MASK))); // control frames may interleave (§5.4)
    bytes.extend(frame(CONTINUATION, b"\x00\x04MQTT", Some(MASK)));
    bytes.extend(frame(CONTINUATION_LAST, b"\x04\x02\x00\x3c\x00\x00", Some(MASK)));
    for chunk in [1, 3, bytes.len()] {
        let mut server = self::server(Subprotocol::Mqtt);
        let mut plain = BytesMut::new();
        for piece in bytes.chunks(chunk) {
            server.handle_input(piece, &mut plain).unwrap();
        }
        assert_eq!(&plain[..], b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00");
    }
    let (result, plain, written) = feed(&mut server, &bytes);
    assert_eq!(result, Ok(()));
    assert_eq!(plain.len(), 14);
    assert_eq!(written, [SeenFrame { first: PONG, masked: false, payload: b"Hello".to_vec() }]);
}

#[test]
fn rfc_6455_5_7_server_answers_a_masked_ping_with_an_unmasked_pong() {
    let mut server = server(Subprotocol::Mqtt);
    let ping = [
        0x89, // FIN, ping
        0x85, // masked, length 5
        0x37, 0xfa, 0x21, 0x3d, // masking key
        0x7f, 0x9f, 0x4d, 0x51, 0x58, // "Hello" masked
    ];
    server.handle_input(&ping, &mut BytesMut::new()).unwrap();
    assert_eq!(drain(&mut server), b"\x8a\x05Hello"); // FIN, pong; length 5; "Hello"
}

#[test]
fn rfc_6455_5_7_client_answers_an_unmasked_ping_with_a_masked_pong() {
    let mut client = client(Subprotocol::Mqtt);
    let ping = [0x89, 0x05, b'H', b'e', b'l', b'l', b'o']; // FIN, ping; length 5; "Hello"
    let (result, plain, written) = feed(&mut client, &ping);
    assert_eq!((result, plain), (Ok(()), Vec::new()));
    assert_eq!(written, [SeenFrame { first: PONG, masked: true, payload: b"Hello".to_vec() }]);
}

#[test]
fn unfragmented_binary_of_256_bytes_and_64_kib_rfc_6455_5_7() {
    let mut client = client(Subprotocol::Mqtt);
    for len in [256, 65536] {
        let payload = vec![0xA5; len];
        let bytes = frame(BINARY, &payload, None);
        // 126 + 16-bit length for 256 bytes, 127 + 64-bit length for 64 KiB.
        assert_eq!(bytes[1], if len == 256 { 126 } else { 127 });
        let (result, plain, _) = feed(&mut client, &bytes);
        assert_eq!((result, plain), (Ok(()), payload));
    }
}

#[test]
fn close_handshake_started_by_the_client() {
    let (mut client, mut server) = open_pair(Subprotocol::Mqtt, WsConfig::default());
    client.close();
    assert!(!client.is_closed(), "waits for the server's close");
    assert_eq!(client.send(b"late"), Err(WsError::SendAfterClose));
    server.send(b"in flight").unwrap();
    let mut to_client = drain(&mut server);
    let closing = drain(&mut client);
    let frames = read_frames(&closing).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(1000));
    let mut plain = BytesMut::new();
    assert_eq!(server.handle_input(&closing, &mut plain), Ok(()));
    assert!(server.is_closed());
    let answer = drain(&mut server);
    let frames = read_frames(&answer).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(1000), "the server echoes the code (§5.5.1)");
    // The message the server sent before it saw the close still arrives.
    to_client.extend_from_slice(&answer);
    let (result, plain, written) = feed(&mut client, &to_client);
    assert_eq!((result, plain.as_slice()), (Ok(()), &b"in flight"[..]));
    assert!(written.is_empty());
    assert!(client.is_closed() && client.is_open());
}

#[test]
fn close_handshake_started_by_the_server() {
    let (mut client, mut server) = open_pair(Subprotocol::Amqp, WsConfig::default());
    server.close();
    assert!(!server.is_closed());
    assert_eq!(pump(&mut server, &mut client), Ok(Vec::new()));
    assert!(client.is_closed(), "the client answered and is done");
    assert_eq!(pump(&mut client, &mut server), Ok(Vec::new()));
    assert!(server.is_closed());
    assert_eq!(server.poll_output(), None);
    assert_eq!(client.send(b"x"), Err(WsError::SendAfterClose));
    // Input after the close is ignored.
    assert_eq!(feed(&mut server, b"\x00\x01\x02").0, Ok(()));
}

#[test]
fn rfc_6455_5_5_1_server_echoes_the_clients_close_code() {
    let mut server = server(Subprotocol::Mqtt);
    let going_away = frame(CLOSE, &close_payload(1001, "bye"), Some(MASK));
    let (result, _, written) = feed(&mut server, &going_away);
    assert_eq!(result, Ok(()));
    assert_closed_with(&server, &written, 1001);
}

#[test]
fn closes_crossing_each_other_end_both_sides() {
    let (mut client, mut server) = open_pair(Subprotocol::Mqtt, WsConfig::default());
    client.close();
    server.close();
    let from_client = drain(&mut client);
    let from_server = drain(&mut server);
    assert_eq!(feed(&mut server, &from_client).0, Ok(()));
    assert_eq!(feed(&mut client, &from_server).0, Ok(()));
    assert!(client.is_closed() && server.is_closed());
}

#[test]
fn close_before_the_101_ends_the_client_at_once() {
    let mut client =
        WebSocket::client(HOST, IOTHUB_PATH, Subprotocol::Mqtt, KEY, WsConfig::default());
    let _ = drain(&mut client);
    client.send(b"held").unwrap();
    client.close();
    assert!(client.is_closed() && !client.is_open());
    assert_eq!(client.poll_output(), None);
    assert_eq!(feed(&mut client, &upgrade_response("mqtt")).0, Ok(()));
    assert!(!client.is_open(), "ignored after the close");
}

// ---------------------------------------------------------------------------------
// Hostile frames

#[test]
fn rfc_6455_5_1_unmasked_client_frame_closes_with_1002() {
    let mut server = server(Subprotocol::Mqtt);
    let (result, plain, written) = feed(&mut server, &frame(BINARY, b"\x10\x00", None));
    assert_eq!(result, Err(WsError::UnmaskedClientFrame));
    assert!(plain.is_empty());
    assert_closed_with(&server, &written, 1002);
    assert!(!written[0].masked);
    assert_eq!(server.send(b"x"), Err(WsError::SendAfterClose));
}

#[test]
fn rfc_6455_5_1_masked_server_frame_closes_with_1002() {
    let mut client = client(Subprotocol::Mqtt);
    let (result, _, written) = feed(&mut client, &frame(BINARY, b"x", Some(MASK)));
    assert_eq!(result, Err(WsError::MaskedServerFrame));
    assert_closed_with(&client, &written, 1002);
}

#[test]
fn mqtt_6_0_0_1_text_frame_closes_with_1003() {
    let mut server = server(Subprotocol::Mqtt);
    let text = [
        0x81, // FIN, text
        0x85, // masked, length 5
        0x37, 0xfa, 0x21, 0x3d, // masking key
        0x7f, 0x9f, 0x4d, 0x51, 0x58, // "Hello" masked (RFC 6455 §5.7)
    ];
    let mut bytes = frame(BINARY, b"before", Some(MASK));
    bytes.extend_from_slice(&text);
    bytes.extend(frame(BINARY, b"after", Some(MASK)));
    let (result, plain, written) = feed(&mut server, &bytes);
    assert_eq!(result, Err(WsError::TextFrame));
    assert_eq!(plain, b"before", "what came before the fault is delivered; nothing after");
    assert_closed_with(&server, &written, 1003);
    let mut client = client(Subprotocol::Amqp);
    let (result, _, written) = feed(&mut client, &frame(TEXT, b"{}", None));
    assert_eq!(result, Err(WsError::TextFrame));
    assert_closed_with(&client, &written, 1003);
}

#[test]
fn rfc_6455_10_4_length_of_2_pow_63_closes_with_1009_before_buffering() {
    let mut server = server(Subprotocol::Mqtt);
    let header = [
        0x82, // FIN, binary
        0xff, // masked, 64-bit length follows
        0x80, 0, 0, 0, 0, 0, 0, 0, // 2^63
        0x37, 0xfa, 0x21, 0x3d, // masking key
    ];
    let (result, _, written) = feed(&mut server, &header);
    assert!(matches!(result, Err(WsError::TooLarge { limit: 1_048_576, .. })), "{result:?}");
    assert_closed_with(&server, &written, 1009);
}

#[test]
fn message_over_the_limit_in_fragments_closes_with_1009() {
    let config = WsConfig { max_message_size: 10, max_frame_size: 8 };
    let (_, mut server) = open_pair(Subprotocol::Mqtt, config);
    let mut bytes = frame(BINARY_FIRST, &[1; 8], Some(MASK));
    bytes.extend(frame(CONTINUATION_LAST, &[2; 8], Some(MASK)));
    let (result, _, written) = feed(&mut server, &bytes);
    assert_eq!(result, Err(WsError::TooLarge { size: 16, limit: 10 }));
    assert_closed_with(&server, &written, 1009);
    let (_, mut server) = open_pair(Subprotocol::Mqtt, config);
    let (result, _, written) = feed(&mut server, &frame(BINARY, &[0; 9], Some(MASK)));
    assert_eq!(result, Err(WsError::TooLarge { size: 9, limit: 8 }));
    assert_closed_with(&server, &written, 1009);
}

#[test]
fn rfc_6455_framing_violations_close_with_1002() {
    let cases: [(Vec<u8>, WsError); 6] = [
        (frame(0xC2, b"x", Some(MASK)), WsError::ReservedBits), // RSV1 without an extension (§5.2)
        (frame(0x8B, b"", Some(MASK)), WsError::ReservedOpcode(0xB)), // opcode 0xB (§5.2)
        (frame(0x09, b"", Some(MASK)), WsError::InvalidControlFrame), // fragmented ping (§5.5)
        (frame(PING, &[0; 126], Some(MASK)), WsError::InvalidControlFrame), // 126-byte ping (§5.5)
        (frame(CONTINUATION_LAST, b"x", Some(MASK)), WsError::Fragmentation), // nothing to continue (§5.4)
        (frame(CLOSE, b"\x03", Some(MASK)), WsError::InvalidClosePayload), // 1-byte close (§5.5.1)
    ];
    for (bytes, expected) in cases {
        let mut server = server(Subprotocol::Mqtt);
        let (result, _, written) = feed(&mut server, &bytes);
        assert_eq!(result, Err(expected));
        assert_closed_with(&server, &written, 1002);
    }
    let mut server = server(Subprotocol::Mqtt);
    let mut bytes = frame(BINARY_FIRST, b"a", Some(MASK));
    bytes.extend(frame(BINARY, b"b", Some(MASK))); // a new message mid-message (§5.4)
    assert_eq!(feed(&mut server, &bytes).0, Err(WsError::Fragmentation));
}

#[test]
fn rfc_6455_8_1_close_reason_not_utf8_closes_with_1007() {
    let mut server = server(Subprotocol::Mqtt);
    let (result, _, written) = feed(&mut server, &frame(CLOSE, b"\x03\xe8\xff", Some(MASK)));
    assert_eq!(result, Err(WsError::InvalidUtf8));
    assert_closed_with(&server, &written, 1007);
}

#[test]
fn close_reason_carries_the_error_within_123_bytes() {
    let mut server = server(Subprotocol::Mqtt);
    let (_, _, written) = feed(&mut server, &frame(BINARY, b"x", None));
    let reason = std::str::from_utf8(&written[0].payload[2..]).unwrap();
    assert_eq!(reason, WsError::UnmaskedClientFrame.to_string());
    let long = WsError::Framing("é".repeat(100));
    assert!(super::socket::close_reason(&long).len() <= 123);
}

/// Sends `messages` from `from`, hands the bytes to `to` cut at `cuts` (cycled), and
/// returns what `to` delivered.
fn transfer(
    from: &mut WebSocket,
    to: &mut WebSocket,
    messages: &[Vec<u8>],
    cuts: &[usize],
) -> Vec<u8> {
    for message in messages {
        from.send(message).unwrap();
    }
    let bytes = drain(from);
    let mut plain = BytesMut::new();
    let mut rest = bytes.as_slice();
    for &cut in cuts.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(cut.min(rest.len()));
        to.handle_input(piece, &mut plain).unwrap();
        rest = tail;
    }
    plain.to_vec()
}

proptest! {
    /// Any payloads, any chunking of the network bytes: what one side sends, the
    /// other delivers, in order.
    #[test]
    fn payloads_arrive_intact_whatever_the_chunking(
        up in vec_of(vec_of(any::<u8>(), 0..3000), 0..5),
        down in vec_of(vec_of(any::<u8>(), 0..3000), 0..5),
        cuts in vec_of(1usize..200, 1..8),
    ) {
        let (mut client, mut server) = open_pair(Subprotocol::Mqtt, WsConfig::default());
        prop_assert_eq!(transfer(&mut client, &mut server, &up, &cuts), up.concat());
        prop_assert_eq!(transfer(&mut server, &mut client, &down, &cuts), down.concat());
    }
}
