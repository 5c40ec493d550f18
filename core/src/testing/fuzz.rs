//! The bodies of the fuzz targets in `fuzz/fuzz_targets/` and the valid inputs their
//! seed corpora hold (DESIGN.md, "Tests, fuzzing, benchmarks").
//!
//! Each body is a `pub fn(&[u8])` so that libFuzzer and the conformance test that
//! replays the committed corpora and crash files run the same code. A body asserts
//! only properties that hold for every input: a failed assertion, like any panic, is
//! a crash for the fuzzer to save.
//!
//! The HTTP head and body targets read their input as bytes, as a server does. The string
//! targets read their input as lossy UTF-8 and check a round trip where
//! the module has a writer. The session targets drive one machine at [`START`] in
//! simulated time: their first two bytes choose how the rest is cut into chunks and
//! what else happens between chunks ([`Schedule`]); the rest is the peer's byte
//! stream, after a valid opening the body supplies (the CONNECT for the hub, the
//! CONNACK for the device) so that the fuzzer starts where the interesting handlers
//! are.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::num::NonZeroU16;

use super::{KEY, Pair, START};
use crate::Protocol;
use crate::device::{Device, DeviceConfig, DeviceEvent, DispositionError};
use crate::http;
use crate::hub::{DeviceRecord, Hub, HubConfig, HubEvent, StoreTicket};
use crate::iothub::{Ack, ConnectionString, Identity, LockToken, Message, SasToken};
use crate::mqtt::packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe, Will,
};
use crate::mqtt::topic::{self, Topic, TopicError};
use crate::mqtt::topic_rules::TopicName;
use crate::mqtt::username::{API_VERSION, Username};
use crate::mqtt::{Limits, codec, property_bag, topic_rules};
use crate::sansio::{Connection, ConnectionId, Endpoint, Transmit};
use crate::time::{Duration, Timestamp};
use crate::utf8::Utf8Bytes;

mod amqp_cbs;
mod amqp_connection;
mod amqp_device;
mod amqp_frame;
mod amqp_hub;
mod amqp_link;
mod amqp_message;
mod amqp_performative;
mod amqp_session;
mod amqp_twin;
mod amqp_types;
mod http_device;
mod http_hub;
mod http_rest;
mod mqtt_twin;
pub use amqp_cbs::amqp_cbs;
pub use amqp_connection::amqp_connection;
pub use amqp_device::amqp_device;
pub use amqp_frame::amqp_frame;
pub use amqp_hub::{amqp_hub, amqp_hub_sasl};
pub use amqp_link::amqp_link;
pub use amqp_message::amqp_message;
pub use amqp_performative::amqp_performative;
pub use amqp_session::amqp_session;
pub use amqp_twin::amqp_twin;
pub use amqp_types::amqp_types;
pub use http_device::http_device;
pub use http_hub::http_hub;
pub use http_rest::http_rest;
pub use mqtt_twin::mqtt_twin;

/// `performative` as one AMQP frame on `channel`: what the AMQP session targets
/// feed their machines after the fuzzer's own bytes choose what happens.
fn amqp_frame_bytes(
    channel: u16,
    performative: &crate::amqp::performative::Performative,
) -> Vec<u8> {
    use crate::amqp::frame::{Frame, FrameKind, FrameLimits};
    let mut body = BytesMut::new();
    if let Err(e) = performative.encode(&mut body) {
        panic!("the harness built an unencodable {performative:?}: {e}");
    }
    let mut out = BytesMut::new();
    let frame = Frame { kind: FrameKind::Amqp { channel }, body: body.freeze() };
    if let Err(e) = frame.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out) {
        panic!("the harness built an oversized frame: {e}");
    }
    out.to_vec()
}

/// One fuzz target: the name of its file in `fuzz/fuzz_targets/` and of its corpus
/// directory, its body, and the valid inputs its seed corpus holds.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// `fuzz/fuzz_targets/{name}.rs`, `fuzz/corpus/{name}/`, `fuzz/artifacts/{name}/`.
    pub name: &'static str,
    /// The body: panics on a broken property.
    pub run: fn(&[u8]),
    /// The seed corpus, in file order (`seed-00`, `seed-01`, …).
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target { name: "mqtt_decode", run: mqtt_decode, seeds: mqtt_decode_seeds },
    Target { name: "amqp_types", run: amqp_types, seeds: amqp_types::seeds },
    Target { name: "http_head", run: http_head, seeds: http_head_seeds },
    Target { name: "http_body", run: http_body, seeds: http_body_seeds },
    Target { name: "http_rest", run: http_rest, seeds: http_rest::seeds },
    Target { name: "connection_string", run: connection_string, seeds: connection_string_seeds },
    Target { name: "sas_token", run: sas_token, seeds: sas_token_seeds },
    Target { name: "property_bag", run: property_bag, seeds: property_bag_seeds },
    Target { name: "mqtt_topic", run: mqtt_topic, seeds: mqtt_topic_seeds },
    Target { name: "mqtt_username", run: mqtt_username, seeds: mqtt_username_seeds },
    Target { name: "mqtt_twin", run: mqtt_twin, seeds: mqtt_twin::seeds },
    Target { name: "mqtt_hub_session", run: mqtt_hub_session, seeds: mqtt_hub_session_seeds },
    Target {
        name: "mqtt_device_session",
        run: mqtt_device_session,
        seeds: mqtt_device_session_seeds,
    },
    Target { name: "amqp_frame", run: amqp_frame, seeds: amqp_frame::seeds },
    Target { name: "amqp_message", run: amqp_message, seeds: amqp_message::seeds },
    Target { name: "amqp_performative", run: amqp_performative, seeds: amqp_performative::seeds },
    Target { name: "amqp_connection", run: amqp_connection, seeds: amqp_connection::seeds },
    Target { name: "amqp_session", run: amqp_session, seeds: amqp_session::seeds },
    Target { name: "amqp_cbs", run: amqp_cbs, seeds: amqp_cbs::seeds },
    Target { name: "amqp_link", run: amqp_link, seeds: amqp_link::seeds },
    Target { name: "amqp_hub", run: amqp_hub, seeds: amqp_hub::seeds },
    Target { name: "amqp_hub_sasl", run: amqp_hub_sasl, seeds: amqp_hub::sasl_seeds },
    Target { name: "amqp_device", run: amqp_device, seeds: amqp_device::seeds },
    Target { name: "amqp_twin", run: amqp_twin, seeds: amqp_twin::seeds },
    Target { name: "http_hub", run: http_hub, seeds: http_hub::seeds },
    Target { name: "http_device", run: http_device, seeds: http_device::seeds },
];

// ---------------------------------------------------------------------------------
// Codec

/// Decodes packets from `data` until an error or an incomplete packet.
///
/// Properties: [`codec::check`] agrees with [`codec::decode`] on each packet's length
/// and on errors the fixed header proves; every strict prefix of a packet is
/// "incomplete"; every decoded packet encodes, its [`Packet::encoded_len`] is the
/// length written, and decoding the encoding gives the packet back, using every byte.
pub fn mqtt_decode(data: &[u8]) {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    loop {
        let start = data.len() - buf.len();
        let checked = codec::check(&buf, &limits);
        match codec::decode(&mut buf, &limits) {
            Ok(Some(packet)) => {
                let len = data.len() - buf.len() - start;
                assert_eq!(checked, Ok(Some(len)), "check and decode disagree");
                for cut in [len / 2, len - 1] {
                    let mut prefix = BytesMut::from(&data[start..start + cut]);
                    assert_eq!(
                        codec::decode(&mut prefix, &limits),
                        Ok(None),
                        "a {cut}-byte prefix of a {len}-byte {} is not incomplete",
                        packet.name()
                    );
                }
                assert_reencodes(&packet, &limits);
            }
            Ok(None) => {
                let whole_is_longer = matches!(checked, Ok(Some(n)) if n > buf.len());
                assert!(
                    checked == Ok(None) || whole_is_longer,
                    "decode waits for more but check says {checked:?}"
                );
                return;
            }
            Err(e) => {
                if let Err(header_error) = checked {
                    assert_eq!(e, header_error, "check and decode report different errors");
                }
                return;
            }
        }
    }
}

/// Encode → decode gives `packet` back, with nothing left over.
fn assert_reencodes(packet: &Packet, limits: &Limits) {
    let mut encoded = BytesMut::new();
    if let Err(e) = packet.encode(&mut encoded) {
        panic!("decoded {packet:?} does not encode: {e}");
    }
    assert_eq!(packet.encoded_len(), Ok(encoded.len()), "encoded_len is wrong");
    let mut again = encoded.clone();
    assert_eq!(
        codec::decode(&mut again, limits),
        Ok(Some(packet.clone())),
        "decode(encode(p)) != p for {encoded:02x?}"
    );
    assert!(again.is_empty(), "decoding the encoding left bytes over");
}

// ---------------------------------------------------------------------------------
// HTTP heads

/// Limits small enough that the fuzzer reaches them: 64 bytes, 4 header fields.
const SMALL_HEAD_LIMITS: http::Limits = http::Limits { max_head_size: 64, max_headers: 4 };

/// Parses `data` as a request head and as a response head, with the default limits
/// and with [`SMALL_HEAD_LIMITS`].
///
/// Properties: "incomplete" only while fewer than `max_head_size` bytes have arrived
/// (a head never buffers past its limit); a head uses at most `max_head_size` bytes
/// and every strict prefix of it is incomplete; a parsed head encodes, and parsing
/// the encoding gives it back, using every byte; every error maps to 400, 414, 431 or 505.
pub fn http_head(data: &[u8]) {
    for limits in [http::Limits::default(), SMALL_HEAD_LIMITS] {
        check_head(data, &limits, http::parse_request, http::RequestHead::encode);
        check_head(data, &limits, http::parse_response, http::ResponseHead::encode);
    }
}

/// [`http::parse_request`] or [`http::parse_response`].
type HeadParser<H> = fn(&[u8], &http::Limits) -> Result<Option<(H, usize)>, http::HeadError>;

/// The properties of [`http_head`] for one parser and its writer.
fn check_head<H: PartialEq + core::fmt::Debug>(
    data: &[u8],
    limits: &http::Limits,
    parse: HeadParser<H>,
    encode: fn(&H, &mut BytesMut),
) {
    let (head, used) = match parse(data, limits) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            assert!(data.len() < limits.max_head_size, "incomplete past the limit: {limits:?}");
            return;
        }
        Err(e) => {
            assert!([400, 414, 431, 505].contains(&e.status()), "{e} answered {}", e.status());
            return;
        }
    };
    assert!(used <= data.len() && used <= limits.max_head_size, "used {used} of {data:?}");
    for cut in [used / 2, used - 1] {
        let prefix = data.get(..cut).unwrap_or_default();
        assert!(
            matches!(parse(prefix, limits), Ok(None)),
            "a {cut}-byte prefix of a {used}-byte head is not incomplete: {head:?}"
        );
    }
    let mut encoded = BytesMut::new();
    encode(&head, &mut encoded);
    // The writer normalises spacing, so the encoding may be longer than the input.
    let roomy = http::Limits { max_head_size: encoded.len(), max_headers: limits.max_headers };
    let again = parse(&encoded, &roomy).map(|parsed| parsed.map(|(h, n)| (h == head, n)));
    assert_eq!(
        again,
        Ok(Some((true, encoded.len()))),
        "{head:?} reads back otherwise from {encoded:?}"
    );
}

// ---------------------------------------------------------------------------------
// HTTP bodies

/// Limits small enough that the fuzzer reaches them: a 64-byte body, 32 bytes of
/// chunked framing.
const SMALL_BODY_LIMITS: http::BodyLimits =
    http::BodyLimits { max_body_size: 64, max_framing_size: 32 };

/// Reads a body. The first byte chooses the framing (its low two bits: a chunked
/// request, or a request head, or a response head to `GET`, that the input goes on
/// with; the third bit: [`SMALL_BODY_LIMITS`]) and the size of the pieces the input
/// is fed in (its high five bits, plus one).
///
/// Properties: fed whole or in pieces, the decoder gives the same body and leaves
/// the same bytes after it, or fails both ways, with 400 or 413; a refused head is
/// 400, 413 or 501; a body is within `max_body_size`; an incomplete body keeps at
/// most one framing line buffered, and only a body that runs until the close is
/// whole at the end of the input; a decoded body written chunked reads back the same.
pub fn http_body(data: &[u8]) {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let limits = if choice & 4 == 0 { http::BodyLimits::default() } else { SMALL_BODY_LIMITS };
    let step = usize::from(choice >> 3) + 1;
    let (decoder, input) = match choice & 3 {
        0 | 3 => (http::BodyDecoder::for_request(&chunked_request(), &limits), rest),
        1 => match http::parse_request(rest, &http::Limits::default()) {
            Ok(Some((head, used))) => (
                http::BodyDecoder::for_request(&head, &limits),
                rest.get(used..).unwrap_or_default(),
            ),
            _ => return,
        },
        _ => match http::parse_response(rest, &http::Limits::default()) {
            Ok(Some((head, used))) => (
                http::BodyDecoder::for_response(&head, "GET", &limits),
                rest.get(used..).unwrap_or_default(),
            ),
            _ => return,
        },
    };
    let decoder = match decoder {
        Ok(decoder) => decoder,
        Err(e) => {
            assert!([400, 413, 501].contains(&e.status()), "{e} answered {}", e.status());
            return;
        }
    };
    let whole = feed_body(decoder.clone(), input, input.len().max(1), &limits);
    let pieces = feed_body(decoder.clone(), input, step, &limits);
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "whole and in {step}-byte pieces differ"),
        (Err(a), Err(b)) => {
            for e in [a, b] {
                assert!([400, 413].contains(&e.status()), "{e} answered {}", e.status());
            }
            return;
        }
        _ => panic!("whole: {whole:?}, in {step}-byte pieces: {pieces:?}"),
    }
    let Ok((Some(body), _)) = whole else {
        // Incomplete: only a body that runs until the close is whole at the close.
        let mut decoder = decoder;
        let mut buf = BytesMut::from(input);
        let fed = decoder.decode(&mut buf);
        let must_close = decoder.must_close();
        if let (Ok(None), Ok(body)) = (fed, decoder.finish_at_eof()) {
            assert!(must_close, "a body whole at the close did not ask for the close");
            assert!(body.len() <= limits.max_body_size, "a {}-byte body", body.len());
        }
        return;
    };
    assert!(body.len() <= limits.max_body_size, "a {}-byte body", body.len());
    let mut wire = BytesMut::new();
    http::encode_chunked([&body[..]], &mut wire);
    let again = http::BodyDecoder::for_request(&chunked_request(), &limits)
        .and_then(|mut decoder| decoder.decode(&mut wire));
    assert_eq!(again, Ok(Some(body)), "a decoded body does not read back chunked");
}

/// `POST / HTTP/1.1` with `Transfer-Encoding: chunked`.
fn chunked_request() -> http::RequestHead {
    http::RequestHead {
        method: String::from("POST"),
        target: String::from("/"),
        minor_version: 1,
        headers: vec![http::Header::new("Transfer-Encoding", "chunked")],
    }
}

/// Feeds `input` to `decoder` in `step`-byte pieces, after an empty one: the body,
/// if it ends, and the input after it; or, if it does not, the bytes left buffered.
fn feed_body(
    mut decoder: http::BodyDecoder,
    input: &[u8],
    step: usize,
    limits: &http::BodyLimits,
) -> Result<(Option<Bytes>, Vec<u8>), http::BodyError> {
    let mut buf = BytesMut::new();
    let mut fed = 0;
    for piece in core::iter::once(&[][..]).chain(input.chunks(step)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        if let Some(body) = decoder.decode(&mut buf)? {
            // The bytes after the body are left as they came.
            let used = fed - buf.len();
            assert_eq!(&buf[..], input.get(used..fed).unwrap_or_default());
            return Ok((Some(body), input.get(used..).unwrap_or_default().to_vec()));
        }
        // At most one chunk-size line waits for its end: 16 free bytes, the framing
        // allowance and the CRLF.
        let window = 16 + limits.max_framing_size + 2;
        assert!(buf.len() <= window, "{} bytes buffered mid-body", buf.len());
    }
    Ok((None, buf.to_vec()))
}

// ---------------------------------------------------------------------------------
// Strings

/// Parses a connection string; one that parses is written back and parsed again to
/// the same value, and a device is made from it and dialed.
///
/// Properties: Display → parse is the identity; a device built from a string with a
/// valid device id (and module id) and a plain host sends a CONNECT whose client id
/// is the identity and whose user name reads back as the host and identity (spec
/// file §4.1, TV-1, TV-2).
pub fn connection_string(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = ConnectionString::parse(&text) else {
        return;
    };
    let written = parsed.to_string();
    assert_eq!(
        ConnectionString::parse(&written).as_ref(),
        Ok(&parsed),
        "Display → parse changed {written:?}"
    );

    let identity = parsed.identity();
    let expect_connect = Identity::is_valid_id(&identity.device_id)
        && identity.module_id.as_deref().is_none_or(Identity::is_valid_id)
        && !parsed.host_name.is_empty()
        && !parsed.host_name.contains(['/', '\0']);
    let host_name = parsed.host_name.clone();
    let Ok(mut device) = Device::new(START, DeviceConfig::new(parsed)) else {
        return;
    };
    assert_eq!(device.poll_transmit(), Some(Transmit::Connect));
    device.handle_connected(START);
    let sent = match device.poll_transmit() {
        Some(Transmit::Send(bytes)) => bytes,
        other => {
            assert!(!expect_connect, "no CONNECT for {identity:?}: {other:?}");
            return;
        }
    };
    let mut rx = BytesMut::from(&sent[..]);
    let Ok(Some(Packet::Connect(connect))) = codec::decode(&mut rx, &Limits::default()) else {
        panic!("the device sent something other than a CONNECT: {sent:02x?}");
    };
    if expect_connect {
        assert_eq!(connect.client_id.as_str(), identity.to_string());
        let username = connect.username.as_deref().unwrap_or_default();
        let username = Username::parse(username);
        assert_eq!(username.map(|u| (u.host_name, u.identity)), Ok((host_name, identity)));
    }
}

/// Parses a SAS token; one that parses is written back and parsed again to the same
/// value, checked against [`KEY`] without panicking, and what it names is signed
/// with [`KEY`] again.
///
/// Properties: Display → parse is the identity (spec file §2.3, TV-3 … TV-8); a
/// parsed token's audience and key name can always be signed; a token signed with a
/// key verifies with that key at its expiry and names the same audience.
pub fn sas_token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(token) = SasToken::parse(&text) else {
        return;
    };
    let written = token.to_string();
    assert_eq!(
        SasToken::parse(&written).as_ref(),
        Ok(&token),
        "Display → parse changed {written:?}"
    );
    let _ = token.verify(&[KEY], START, crate::iothub::sas::DEFAULT_CLOCK_SKEW);

    let signed =
        SasToken::sign(&token.audience(), KEY, token.expiry_time(), token.key_name.as_deref());
    let signed = match signed {
        Ok(signed) => signed,
        Err(e) => panic!("cannot sign what {written:?} names: {e}"),
    };
    assert_eq!(signed.audience(), token.audience());
    assert_eq!(SasToken::parse(&signed.to_string()).as_ref(), Ok(&signed));
    assert_eq!(
        signed.verify(&[KEY], signed.expiry_time(), Duration::ZERO),
        Ok(()),
        "a token signed with KEY does not verify with KEY: {signed}"
    );
}

/// `message` as [`property_bag::encode`] writes it: `iothub-ack=none` is left out,
/// which reads back as no ack, and expiries after year 9999 are clamped.
fn as_written(mut message: Message) -> Message {
    if message.ack == Some(Ack::None) {
        message.ack = None;
    }
    message.expiry = message.expiry.map(|t| t.min(Timestamp::LAST_RFC3339));
    message
}

/// Decodes a property bag; one that decodes is encoded and decoded again.
///
/// Properties: decode(encode(m)) is m as written ([`as_written`]); encoding is a
/// fixpoint; an encoded bag holds no raw `/` (spec file §4.4: C2D parsers split on
/// it).
pub fn property_bag(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut message = Message::default();
    if property_bag::decode(&text, &mut message).is_err() {
        return;
    }
    let mut bag = String::new();
    property_bag::encode(&message, &mut bag);
    assert!(!bag.contains('/'), "raw '/' in the bag {bag:?}");
    let mut again = Message::default();
    assert_eq!(property_bag::decode(&bag, &mut again), Ok(()), "{bag:?}");
    assert_eq!(again, as_written(message), "the bag {bag:?} reads back otherwise");
    let mut bag_again = String::new();
    property_bag::encode(&again, &mut bag_again);
    assert_eq!(bag, bag_again);
}

/// Parses a topic as IoT Hub's message topics and the MQTT topic rules; a telemetry
/// or C2D topic is written back from the message read and read again.
///
/// Properties: what [`topic::parse`] recognises, [`topic::parse_telemetry`] or
/// [`topic::parse_c2d`] accepts for the identity parsed (or refuses for its property
/// bag only); writing the message read and reading it for the same identity gives
/// it back as written; the topic written is a valid MQTT Topic Name when the ids
/// hold no MQTT wildcard; [`topic::c2d_filter`] is recognised by
/// [`topic::is_c2d_filter`].
pub fn mqtt_topic(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = topic_rules::validate_topic_name(&text);
    let _ = topic_rules::validate_topic_filter(&text);
    let _ = topic::is_c2d_filter(&text, "dev1");
    let body = Bytes::from_static(b"body");
    match topic::parse(&text) {
        Some(Topic::Telemetry { identity, .. }) => {
            let message = match topic::parse_telemetry(&text, &identity, body.clone()) {
                Ok(message) => message,
                Err(TopicError::PropertyBag(_)) => return,
                Err(e) => panic!("parse reads telemetry for {identity} but parse_telemetry: {e}"),
            };
            let written = topic::telemetry(&identity, &message);
            assert_eq!(
                topic::parse_telemetry(&written, &identity, body),
                Ok(as_written(message)),
                "{written:?}"
            );
            let ids = [Some(&identity.device_id), identity.module_id.as_ref()];
            assert_valid_topic_name(&written, ids.into_iter().flatten());
        }
        Some(Topic::C2d { device_id, .. }) => {
            let message = match topic::parse_c2d(&text, &device_id, body.clone()) {
                Ok(message) => message,
                Err(TopicError::PropertyBag(_)) => return,
                Err(e) => panic!("parse reads C2D for {device_id} but parse_c2d: {e}"),
            };
            let written = topic::c2d(&device_id, &message);
            assert_eq!(
                topic::parse_c2d(&written, &device_id, body),
                Ok(as_written(message)),
                "{written:?}"
            );
            assert_valid_topic_name(&written, [&device_id]);
            assert!(topic::is_c2d_filter(&topic::c2d_filter(&device_id), &device_id));
        }
        None => {}
    }
}

/// A topic written for `ids` is a valid MQTT Topic Name, unless an id holds `+` or
/// `#`: ids may (spec file §2.1) and the writers insert them raw, so such topics
/// cannot be sent (a known gap, reported with the fuzz work).
fn assert_valid_topic_name<'a>(written: &str, ids: impl IntoIterator<Item = &'a String>) {
    if ids.into_iter().any(|id| id.contains(['+', '#'])) {
        return;
    }
    assert_eq!(topic_rules::validate_topic_name(written), Ok(()), "{written:?}");
}

/// Parses a CONNECT user name; one that parses is formatted again from its host,
/// identity and client type and parsed again.
///
/// Properties: parse(format(host, identity, client type)) gives the same host,
/// identity and client type, with [`API_VERSION`] (spec file §4.1.1, TV-9).
pub fn mqtt_username(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = Username::parse(&text) else {
        return;
    };
    let client_type = parsed.client_type.clone().unwrap_or_default();
    let written = Username::format(&parsed.host_name, &parsed.identity, &client_type);
    let expected = Username {
        api_version: Some(String::from(API_VERSION)),
        client_type: Some(client_type),
        model_id: None,
        ..parsed
    };
    assert_eq!(Username::parse(&written), Ok(expected), "{written:?}");
}

// ---------------------------------------------------------------------------------
// Sessions

/// Largest chunk handed to a machine in one call, bytes, by the low nibble of the
/// first input byte.
const CHUNK_SIZES: [usize; 16] =
    [1, 2, 3, 5, 8, 13, 21, 34, 64, 128, 256, 512, 1024, 4096, 65536, usize::MAX];

/// Time steps a session may take: past the 60 s keep-alive's 90 s silence, the 30 s
/// CONNACK wait, the 1 h C2D TTL and 48 min token renewal, and the 365-day token of
/// the hub session's CONNECT.
const TIME_STEPS: [Duration; 8] = [
    Duration::from_millis(1),
    Duration::from_millis(100),
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(31),
    Duration::from_secs(91),
    Duration::from_secs(3600),
    Duration::from_secs(400 * 24 * 3600),
];

/// Timers fired one by one in one time step; the rest fire late, at the step's end.
const MAX_TIMERS_PER_STEP: usize = 16;

/// How a session body cuts its input into steps and what else happens between them,
/// from the input's first two bytes, so that the fuzzer mutates timing and bytes
/// independently.
///
/// First byte: low nibble, the largest chunk ([`CHUNK_SIZES`]); high nibble, in
/// sixteenths, how often a step also does something else (a time step, a store
/// completed late, a telemetry message, …). Second byte: the seed of the generator
/// that picks chunk sizes and actions.
#[derive(Debug)]
struct Schedule {
    max_chunk: usize,
    odds: usize,
    state: u32,
}

impl Schedule {
    /// The schedule and the peer's byte stream.
    fn split(data: &[u8]) -> (Schedule, &[u8]) {
        let (first, second, rest) = match data {
            [first, second, rest @ ..] => (*first, *second, rest),
            _ => (0, 0, &[][..]),
        };
        let schedule = Schedule {
            max_chunk: CHUNK_SIZES[usize::from(first & 0x0F)],
            odds: usize::from(first >> 4),
            // Odd, so the xorshift state is never zero.
            state: u32::from(second).wrapping_mul(0x9E37_79B9) | 1,
        };
        (schedule, rest)
    }

    /// xorshift32.
    fn next(&mut self) -> u32 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        self.state
    }

    /// A number in `0..n`, `n` ≥ 1.
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap_or(usize::MAX) % n
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// The next chunk's length, `1..=remaining` for `remaining` ≥ 1.
    fn chunk(&mut self, remaining: usize) -> usize {
        1 + self.below(self.max_chunk.min(remaining))
    }

    /// Whether this step also does something besides feeding bytes.
    fn event(&mut self) -> bool {
        self.below(16) < self.odds
    }

    fn time_step(&mut self) -> Duration {
        TIME_STEPS[self.below(TIME_STEPS.len())]
    }
}

/// Encodes packets the body builds itself; they are valid by construction.
fn encode_all(packets: &[Packet]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for packet in packets {
        if let Err(e) = packet.encode(&mut out) {
            panic!("the harness built an invalid {}: {e}", packet.name());
        }
    }
    out.to_vec()
}

/// A packet id from a literal.
fn pid(id: u16) -> NonZeroU16 {
    NonZeroU16::new(id).unwrap_or(NonZeroU16::MIN)
}

/// The device of both session targets.
const DEVICE_ID: &str = "dev1";

/// The CONNECT `dev1` opens the hub session with: IoT Hub's user name, a SAS token
/// signed with [`KEY`] valid for 365 days after [`START`], keep-alive 60 s; Clean
/// Session and a will (on dev1's telemetry topic) as the schedule says.
fn hub_session_connect(clean_session: bool, will: bool) -> Vec<u8> {
    let expiry = START + Duration::from_secs(365 * 24 * 3600);
    let token = match SasToken::sign("localhost/devices/dev1", KEY, expiry, None) {
        Ok(token) => token.to_string(),
        Err(e) => panic!("cannot sign with KEY: {e}"),
    };
    let will = will.then(|| Will {
        topic: topic_name("devices/dev1/messages/events/%24.ct=text%2Fplain"),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: false,
    });
    encode_all(&[Packet::Connect(Connect {
        protocol_name: Utf8Bytes::from_static(Connect::PROTOCOL_NAME),
        protocol_level: Connect::PROTOCOL_LEVEL,
        clean_session,
        keep_alive: 60,
        client_id: Utf8Bytes::from_static(DEVICE_ID),
        will,
        username: Some(Utf8Bytes::from_static("localhost/dev1/?api-version=2021-04-12")),
        password: Some(Bytes::from(token)),
    })])
}

/// A C2D message the service sends: feedback requested, properties, expiring after
/// two hours.
fn c2d_message(n: u32) -> Message {
    let mut message = Message::new(format!("{{\"c2d\":{n}}}"));
    message.message_id = Some(format!("c2d-{n}"));
    message.content_type = Some(String::from("application/json"));
    message.ack = Some(Ack::Full);
    message.expiry = Some(START + Duration::from_secs(2 * 3600));
    message.properties.set("color", "blue");
    message
}

/// Runs a hub with `dev1` registered and one MQTT connection fed the CONNECT of
/// [`hub_session_connect`] and then the input's byte stream, cut by its
/// [`Schedule`]; a C2D message waits in the queue from the start and another is sent
/// when half the stream has arrived. Stores complete at once or, while the schedule
/// holds them, later and out of order.
///
/// Properties: no panic; the hub sends valid server packets, a CONNACK first;
/// nothing is sent on the connection after its `Close`, and the hub never dials;
/// after `handle_timeout(now)` no deadline is still due; the connection is gone once
/// closed from either side.
pub fn mqtt_hub_session(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = HubRun::new(Protocol::Mqtt);
    let mut input = hub_session_connect(schedule.coin(), schedule.coin());
    let midway = input.len() + stream.len() / 2;
    input.extend_from_slice(stream);
    run.play(&mut schedule, &input, midway);
}

/// The hub of a hub session body ([`mqtt_hub_session`], `amqp_hub`, `http_hub`) with one
/// connection of `protocol`, and what the body watches of it.
struct HubRun {
    hub: Hub,
    now: Timestamp,
    id: ConnectionId,
    hold_stores: bool,
    held: Vec<StoreTicket>,
    /// The hub sent `Close`, or the body closed the connection.
    closed: bool,
    /// MQTT: the hub's packets, checked as they come.
    output: PeerStream,
    /// Every byte the hub sent, for bodies that check it afterwards.
    wire: BytesMut,
    protocol: Protocol,
    /// Telemetry messages the hub asked to store.
    stored: usize,
}

impl HubRun {
    fn new(protocol: Protocol) -> Self {
        let mut hub = Hub::new(HubConfig::default(), 7);
        let record = DeviceRecord {
            device_id: String::from(DEVICE_ID),
            primary_key: String::from(KEY),
            secondary_key: String::from(KEY),
            enabled: true,
        };
        if let Err(e) = hub.registry_mut().add(record) {
            panic!("cannot register dev1: {e}");
        }
        let id = hub.accept(START, protocol);
        let mut run = HubRun {
            hub,
            now: START,
            id,
            hold_stores: false,
            held: Vec::new(),
            closed: false,
            output: PeerStream::default(),
            wire: BytesMut::new(),
            protocol,
            stored: 0,
        };
        run.send_c2d(1);
        run
    }

    /// Feeds `input` in the schedule's chunks, with time steps and stores held or
    /// released between them, and a second C2D message once `midway` bytes are in;
    /// then completes the stores, lets time pass and closes.
    fn play(&mut self, schedule: &mut Schedule, input: &[u8], midway: usize) {
        let mut offset = 0;
        let mut c2d_sent = false;
        while offset < input.len() && !self.closed {
            if schedule.event() {
                match schedule.below(4) {
                    0 | 1 => self.advance(schedule.time_step()),
                    2 => self.hold_stores = !self.hold_stores,
                    _ => self.release_stores(),
                }
            }
            let n = schedule.chunk(input.len() - offset);
            self.input(&input[offset..offset + n]);
            offset += n;
            if !c2d_sent && offset >= midway {
                self.send_c2d(2);
                c2d_sent = true;
            }
        }
        self.release_stores();
        self.advance(schedule.time_step());
        self.close();
    }

    fn send_c2d(&mut self, n: u32) {
        // A full queue may refuse it; the service sees that, the device does not.
        let _ = self.hub.send_c2d(self.now, DEVICE_ID, c2d_message(n));
        self.drain();
    }

    fn input(&mut self, bytes: &[u8]) {
        // A protocol error has already been answered on the wire.
        let _ = self.hub.handle_input(self.now, self.id, bytes);
        self.drain();
    }

    /// Completes every held store, newest first: PUBACKs must still leave in the
    /// order their PUBLISHes came [MQTT-4.6.0-2].
    fn release_stores(&mut self) {
        while let Some(ticket) = self.held.pop() {
            self.hub.telemetry_stored(self.now, ticket);
            self.drain();
        }
    }

    /// Moves time on by `step`, firing the timers due on the way at their deadlines.
    fn advance(&mut self, step: Duration) {
        let target = self.now + step;
        for _ in 0..MAX_TIMERS_PER_STEP {
            match self.hub.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.hub.handle_timeout(self.now);
                    assert_progress(self.hub.poll_timeout(), self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    /// The transport closes (if the hub has not closed it already).
    fn close(&mut self) {
        if !self.closed {
            self.hub.handle_close(self.now, self.id);
            self.closed = true;
            self.drain();
        }
        assert_eq!(self.hub.connection_count(), 0, "a closed connection lingers");
    }

    /// Takes every transmit and event, completing stores unless they are held.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some((id, transmit)) = self.hub.poll_transmit() {
                moved = true;
                assert_eq!(id, self.id, "a transmit for a connection never accepted");
                match transmit {
                    Transmit::Send(bytes) => {
                        assert!(!self.closed, "bytes sent after the connection closed");
                        if self.protocol == Protocol::Mqtt {
                            self.output.receive(&bytes, Role::Hub);
                        }
                        self.wire.extend_from_slice(&bytes);
                    }
                    Transmit::Close => {
                        assert!(!self.closed, "the connection closed twice");
                        self.closed = true;
                        if self.protocol == Protocol::Mqtt {
                            self.output.close();
                        }
                    }
                    Transmit::Connect => panic!("the hub asked to dial"),
                }
            }
            while let Some(event) = self.hub.poll_event() {
                moved = true;
                if let HubEvent::StoreTelemetry { ticket, .. } = event {
                    self.stored += 1;
                    if self.hold_stores {
                        self.held.push(ticket);
                    } else {
                        self.hub.telemetry_stored(self.now, ticket);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}

/// `handle_timeout(now)` moved every deadline past `now`: a runtime that calls it
/// again at once would otherwise spin.
fn assert_progress(next: Option<Timestamp>, now: Timestamp) {
    assert!(next.is_none_or(|t| t > now), "handle_timeout({now}) left a deadline due: {next:?}");
}

/// Which side wrote a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Hub,
    Device,
}

/// One connection's bytes as the other side reads them: they must decode, open with
/// the packet the role opens with (CONNACK, CONNECT) and hold only packets the role
/// may send.
#[derive(Debug, Default)]
struct PeerStream {
    rx: BytesMut,
    opened: bool,
    /// The device sent DISCONNECT: nothing may follow on this connection.
    finished: bool,
}

impl PeerStream {
    fn receive(&mut self, bytes: &[u8], role: Role) {
        assert!(!self.finished, "bytes after DISCONNECT");
        self.rx.extend_from_slice(bytes);
        loop {
            let packet = match codec::decode(&mut self.rx, &Limits::default()) {
                Ok(Some(packet)) => packet,
                Ok(None) => return,
                Err(e) => panic!("the {role:?} sent a malformed packet: {e}"),
            };
            let opening = !self.opened;
            self.opened = true;
            let allowed = match (role, &packet) {
                (Role::Hub, Packet::ConnAck(_)) | (Role::Device, Packet::Connect(_)) => opening,
                (_, _) if opening => false,
                (_, Packet::Publish(p)) => p.qos != QoS::ExactlyOnce,
                (_, Packet::PubAck(_)) => true,
                (Role::Hub, Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp) => true,
                (Role::Device, Packet::Subscribe(_) | Packet::PingReq) => true,
                (Role::Device, Packet::Disconnect) => {
                    self.finished = true;
                    true
                }
                _ => false,
            };
            assert!(allowed, "the {role:?} sent {packet:?} (opening: {opening})");
        }
    }

    /// The transport closed: packets are written whole, so nothing is left over.
    fn close(&mut self) {
        assert!(self.rx.is_empty(), "closed in the middle of a packet");
        *self = PeerStream::default();
    }
}

/// Telemetry messages waiting or in flight, at most, in [`mqtt_device_session`].
const DEVICE_MAX_QUEUED: usize = 8;
/// Telemetry messages in flight, at most, in [`mqtt_device_session`].
const DEVICE_MAX_IN_FLIGHT: usize = 4;

/// Runs a device `dev1` (of [`Pair::connection_string`]) with three telemetry
/// messages queued before it dials; its first connection is answered with CONNACK
/// accepted (no session present), then fed the input's byte stream as the hub's,
/// cut by its [`Schedule`]. Between chunks the schedule sends telemetry, completes
/// (and tries to reject) received C2D messages, moves time, breaks the transport or
/// disconnects. Later dials fail, go unanswered, are refused or are accepted as the
/// schedule says.
///
/// With the seed corpus' streams the device's SUBSCRIBE has packet id 1 and its
/// three messages 2, 3 and 4.
///
/// Properties: no panic; the device sends valid client packets, a CONNECT first, and
/// only while a transport is open; `unacknowledged()` never exceeds the queue and
/// window sizes; each telemetry id is acknowledged at most once, and only ids
/// `send_telemetry` returned; MQTT refuses `reject`; after `handle_timeout(now)` no
/// deadline is still due.
pub fn mqtt_device_session(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = DeviceRun::new();
    for _ in 0..3 {
        run.send_telemetry();
    }
    run.drain(&mut schedule);

    let mut offset = 0;
    while offset < stream.len() {
        if schedule.event() {
            match schedule.below(8) {
                0 | 1 => run.send_telemetry(),
                2 => run.complete(&mut schedule),
                3 => run.reject(),
                4 | 5 => run.advance(schedule.time_step(), &mut schedule),
                6 => run.break_transport(),
                _ if schedule.below(4) == 0 => run.device.disconnect(run.now),
                _ => run.send_telemetry(),
            }
            run.drain(&mut schedule);
        }
        let n = schedule.chunk(stream.len() - offset);
        run.input(&stream[offset..offset + n], &mut schedule);
        offset += n;
    }
    run.advance(schedule.time_step(), &mut schedule);
    run.break_transport();
    run.drain(&mut schedule);
}

/// The device of [`mqtt_device_session`] and what the body watches of it.
struct DeviceRun {
    device: Device,
    now: Timestamp,
    /// A transport is open: between `handle_connected` and a close from either side.
    online: bool,
    /// Dials so far.
    dials: u32,
    output: PeerStream,
    /// Telemetry ids `send_telemetry` returned, and those acknowledged.
    sent: BTreeSet<u64>,
    acknowledged: BTreeSet<u64>,
    /// Lock tokens of C2D messages received and not yet completed.
    locks: Vec<LockToken>,
}

impl DeviceRun {
    fn new() -> Self {
        let mut config = DeviceConfig::new(Pair::connection_string(DEVICE_ID));
        config.seed = 7;
        config.max_queued = DEVICE_MAX_QUEUED;
        config.max_in_flight = DEVICE_MAX_IN_FLIGHT;
        let device = match Device::new(START, config) {
            Ok(device) => device,
            Err(e) => panic!("device config refused: {e}"),
        };
        DeviceRun {
            device,
            now: START,
            online: false,
            dials: 0,
            output: PeerStream::default(),
            sent: BTreeSet::new(),
            acknowledged: BTreeSet::new(),
            locks: Vec::new(),
        }
    }

    fn send_telemetry(&mut self) {
        let n = self.sent.len();
        let mut message = Message::new(format!("{{\"n\":{n}}}"));
        message.content_type = Some(String::from("application/json"));
        message.content_encoding = Some(String::from("utf-8"));
        message.properties.set("n", n.to_string());
        if let Ok(id) = self.device.send_telemetry(self.now, message) {
            assert!(self.sent.insert(id.0), "telemetry id {} given twice", id.0);
        }
        self.check_bounds();
    }

    fn complete(&mut self, schedule: &mut Schedule) {
        if !self.locks.is_empty() {
            let lock = self.locks.remove(schedule.below(self.locks.len()));
            // Unknown once the hub's session is gone: that is an answer, not a fault.
            let _ = self.device.complete(self.now, &lock);
        }
    }

    /// MQTT cannot reject (spec file §4.4): any lock, known or not, is refused so.
    fn reject(&mut self) {
        let lock = self.locks.first().copied().unwrap_or(LockToken::from_packet_id(pid(1)));
        assert!(
            matches!(
                self.device.reject(self.now, &lock),
                Err(DispositionError::Unsupported { .. })
            ),
            "MQTT accepted a reject"
        );
    }

    fn break_transport(&mut self) {
        if self.online {
            self.online = false;
            self.output = PeerStream::default();
            self.device.handle_close(self.now);
        }
    }

    fn input(&mut self, bytes: &[u8], schedule: &mut Schedule) {
        // A violation has already closed the connection.
        let _ = self.device.handle_input(self.now, bytes);
        self.drain(schedule);
    }

    /// Moves time on by `step`, firing the timers due on the way at their deadlines.
    fn advance(&mut self, step: Duration, schedule: &mut Schedule) {
        let target = self.now + step;
        for _ in 0..MAX_TIMERS_PER_STEP {
            match self.device.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.device.handle_timeout(self.now);
                    assert_progress(self.device.poll_timeout(), self.now);
                    self.drain(schedule);
                }
                _ => break,
            }
        }
        self.now = target;
    }

    /// Answers a CONNECT: the first accepted without a session, later ones as the
    /// schedule says.
    fn answer_connect(&mut self, schedule: &mut Schedule) {
        let connack = if self.dials == 1 {
            Some(ConnAck { session_present: false, code: ConnectReturnCode::Accepted })
        } else {
            match schedule.below(16) {
                0 => None,
                1 => {
                    let codes = [
                        ConnectReturnCode::UnacceptableProtocolVersion,
                        ConnectReturnCode::IdentifierRejected,
                        ConnectReturnCode::ServerUnavailable,
                        ConnectReturnCode::BadUsernameOrPassword,
                        ConnectReturnCode::NotAuthorized,
                    ];
                    Some(ConnAck {
                        session_present: false,
                        code: codes[schedule.below(codes.len())],
                    })
                }
                _ => Some(ConnAck {
                    session_present: schedule.coin(),
                    code: ConnectReturnCode::Accepted,
                }),
            }
        };
        if let Some(connack) = connack {
            let bytes = encode_all(&[Packet::ConnAck(connack)]);
            let _ = self.device.handle_input(self.now, &bytes);
        }
    }

    fn drain(&mut self, schedule: &mut Schedule) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.device.poll_transmit() {
                moved = true;
                match transmit {
                    Transmit::Connect => {
                        assert!(!self.online, "dialing with a transport open");
                        self.dials += 1;
                        if self.dials > 1 && schedule.below(8) == 0 {
                            self.device.handle_close(self.now);
                        } else {
                            self.online = true;
                            self.device.handle_connected(self.now);
                            self.drain_sends();
                            self.answer_connect(schedule);
                        }
                    }
                    Transmit::Send(bytes) => {
                        assert!(self.online, "bytes sent with no transport open");
                        self.output.receive(&bytes, Role::Device);
                    }
                    Transmit::Close => {
                        assert!(self.online, "closing with no transport open");
                        self.online = false;
                        self.output.close();
                    }
                }
            }
            while let Some(event) = self.device.poll_event() {
                moved = true;
                match event {
                    DeviceEvent::TelemetryAcknowledged(id) => {
                        assert!(self.sent.contains(&id.0), "unknown telemetry {}", id.0);
                        assert!(self.acknowledged.insert(id.0), "{} acked twice", id.0);
                    }
                    DeviceEvent::C2d(c2d) => self.locks.extend(c2d.lock_token),
                    _ => {}
                }
            }
            self.check_bounds();
            if !moved {
                return;
            }
        }
    }

    /// Takes the CONNECT just written, so it is checked before the CONNACK's effects.
    fn drain_sends(&mut self) {
        while let Some(transmit) = self.device.poll_transmit() {
            match transmit {
                Transmit::Send(bytes) => self.output.receive(&bytes, Role::Device),
                other => panic!("{other:?} right after handle_connected"),
            }
        }
    }

    fn check_bounds(&self) {
        let unacknowledged = self.device.unacknowledged();
        assert!(
            unacknowledged <= DEVICE_MAX_QUEUED + DEVICE_MAX_IN_FLIGHT,
            "{unacknowledged} unacknowledged messages"
        );
    }
}

// ---------------------------------------------------------------------------------
// Seeds

/// Bytes from a hex dump (`"20 02 00 00"`), as the spec file writes them.
fn hex(dump: &str) -> Vec<u8> {
    dump.split_whitespace()
        .map(|byte| match u8::from_str_radix(byte, 16) {
            Ok(b) => b,
            Err(e) => panic!("bad hex {byte:?}: {e}"),
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// TV-10, the CONNACKs under it, TV-14, and one of every other packet type.
fn mqtt_decode_seeds() -> Vec<Vec<u8>> {
    let tv10 = concat!(
        "10 73 00 04 4d 51 54 54 04 c0 00 3c 00 07 64 65 76 69 63 65 31 00 37 6d 79 68 75 ",
        "62 2e 61 7a 75 72 65 2d 64 65 76 69 63 65 73 2e 6e 65 74 2f 64 65 76 69 63 65 31 ",
        "2f 3f 61 70 69 2d 76 65 72 73 69 6f 6e 3d 32 30 32 31 2d 30 34 2d 31 32 00 25 53 ",
        "68 61 72 65 64 41 63 63 65 73 73 53 69 67 6e 61 74 75 72 65 20 73 72 3d 78 26 73 ",
        "69 67 3d 79 26 73 65 3d 31",
    );
    let tv14_subscribe = concat!(
        "82 2b 00 01 00 26 64 65 76 69 63 65 73 2f 64 65 76 69 63 65 31 2f 6d 65 73 73 61 ",
        "67 65 73 2f 64 65 76 69 63 65 62 6f 75 6e 64 2f 23 01",
    );
    let tv14_publish = concat!(
        "32 35 00 2a 64 65 76 69 63 65 73 2f 64 65 76 69 63 65 31 2f 6d 65 73 73 61 67 65 ",
        "73 2f 65 76 65 6e 74 73 2f 25 32 34 2e 6d 69 64 3d 6d 31 00 02 7b 22 74 22 3a 31 7d",
    );
    let mut seeds: Vec<Vec<u8>> = [
        tv10,
        "20 02 00 00",
        "20 02 01 00",
        "20 02 00 05",
        tv14_subscribe,
        "90 03 00 01 01",
        "90 03 00 01 80",
        tv14_publish,
        "40 02 00 02",
    ]
    .iter()
    .map(|dump| hex(dump))
    .collect();
    let others = [
        Packet::Connect(Connect {
            protocol_name: Utf8Bytes::from_static("MQTT"),
            protocol_level: 4,
            clean_session: true,
            keep_alive: 240,
            client_id: Utf8Bytes::from_static("device1/module1"),
            will: Some(Will {
                topic: topic_name("devices/device1/messages/events/"),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            username: Some(Utf8Bytes::from_static("myhub/device1/module1/?api-version=1")),
            password: None,
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: topic_name("devices/device1/messages/devicebound/%24.to=x"),
            packet_id: Some(pid(0x1234)),
            payload: Bytes::from_static(b"c2d"),
        }),
        Packet::PubRec(pid(3)),
        Packet::PubRel(pid(3)),
        Packet::PubComp(pid(3)),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(4),
            filters: vec![
                Utf8Bytes::from_static("devices/device1/messages/devicebound/#"),
                Utf8Bytes::from_static("devices/+/messages/devicebound/#"),
            ],
        }),
        Packet::UnsubAck(pid(4)),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect,
    ];
    seeds.extend(others.iter().map(|p| encode_all(core::slice::from_ref(p))));
    // A whole device session in one stream.
    let mut session = hex(tv10);
    session.extend(hex(tv14_subscribe));
    session.extend(hex(tv14_publish));
    session.extend(encode_all(&[Packet::PingReq, Packet::Disconnect]));
    seeds.push(session);
    seeds
}

/// Requests and responses the hub and devices exchange: WebSocket upgrades (RFC 6455
/// §1.2, §1.3) with IoT Hub's path and subprotocols, refusals, and a REST request
/// (spec file §6.2).
fn http_head_seeds() -> Vec<Vec<u8>> {
    strings(&[
        concat!(
            "GET /$iothub/websocket?iothub-no-client-cert=true HTTP/1.1\r\n",
            "Host: myhub.azure-devices.net\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
        ),
        concat!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
            "Sec-WebSocket-Protocol: AMQPWSB10\r\n\r\n",
        ),
        concat!(
            "HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 0\r\n",
            "Content-Type: text/plain; charset=utf-8\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        concat!(
            "POST /devices/device1/messages/events?api-version=2021-04-12 HTTP/1.1\r\n",
            "Host: myhub.azure-devices.net\r\n",
            "Authorization: SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1",
            "&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000\r\n",
            "iothub-app-color: blue\r\nContent-Length: 2\r\n\r\n{}",
        ),
        "GET / HTTP/2.0\r\n\r\n",
        "HTTP/1.0 204\r\n\r\n",
    ])
}

/// Chunked bodies with extensions and trailers, as a device's REST telemetry might
/// send them, and heads framed every way RFC 9112 §6.3 knows.
fn http_body_seeds() -> Vec<Vec<u8>> {
    let with = |choice: u8, rest: &str| {
        let mut seed = vec![choice];
        seed.extend_from_slice(rest.as_bytes());
        seed
    };
    vec![
        with(0, "5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n"),
        with(8, "3\r\n{}\n\r\n0\r\nX-Checksum: 1\r\n\r\n"),
        with(
            4,
            "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
        ),
        with(
            1,
            concat!(
                "POST /devices/device1/messages/events?api-version=2021-04-12 HTTP/1.1\r\n",
                "Host: myhub.azure-devices.net\r\nContent-Length: 2\r\n\r\n{}",
                "POST / HTTP/1.1\r\n"
            ),
        ),
        with(
            1,
            concat!(
                "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n",
                "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
            ),
        ),
        with(2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        with(2, "HTTP/1.0 200 OK\r\n\r\nuntil the close"),
        with(2, "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
    ]
}

/// TV-1 and TV-2, refusals included.
fn connection_string_seeds() -> Vec<Vec<u8>> {
    strings(&[
        "HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "HostName=myhub.azure-devices.net;DeviceId=edge1;ModuleId=filter;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=;GatewayHostName=gw.local",
        "HostName=h;DeviceId=d;x509=true",
        "HostName=h;DeviceId=d;SharedAccessKey=k;x509=true",
        "HostName=h;DeviceId=d",
        "DeviceId=d;SharedAccessKey=k",
        "HostName=localhost:18883;DeviceId=dev1;SharedAccessSignature=SharedAccessSignature sr=localhost%3A18883%2Fdevices%2Fdev1&sig=AAAA&se=1700000000",
        "HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKeyName=device;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ])
}

/// TV-3 … TV-8.
fn sas_token_seeds() -> Vec<Vec<u8>> {
    strings(&[
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000",
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1%2Fmodules%2Fmodule1&sig=aSJPNyCxfnEudzhZEU6yJNbVb8UQC0RdeXyc7OXVbi8%3D&se=1700000000",
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000&skn=device",
        "SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdevice1&sig=iIyvul1z7xsjQDMXvGvUxZi%2BlqnXkFn5lOgyNrICYDM%3D&se=1700000000",
        "SharedAccessSignature sr=contoso.azure-devices.net%2Fdevices%2FMyDevice01&sig=8kbDyrREn9bM5bMyeo57hT9%2BSZyUnbI7aUPqxPJjlQo%3D&se=1893456000",
        "SharedAccessSignature sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000&sr=myhub.azure-devices.net%2Fdevices%2Fdevice1",
        "SharedAccessSignature sr=x&sig=y&se=1",
    ])
}

/// TV-11's and TV-12's bags, Node's module output form, and an expiry.
fn property_bag_seeds() -> Vec<Vec<u8>> {
    strings(&[
        "%24.mid=msg-0001&%24.cid=corr%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&unit=%C2%B0C&path=a%2Fb%3Dc%26d",
        "%24.mid=6a1f0c2e-0000-4000-8000-000000000001&%24.to=%2Fdevices%2Fdevice1%2Fmessages%2FdeviceBound&%24.ct=text%2Fplain%3B%20charset%3Dutf-8&%24.ce=utf-8&iothub-ack=full&color=blue&empty=&flag",
        "%24.on=out1/",
        "%24.exp=2024-01-02T03%3A04%3A05.000Z&%24.uid=u&iothub-ack=negative&(node)=!'*",
    ])
}

/// TV-11's and TV-12's topics, their no-property forms, and Node's module output.
fn mqtt_topic_seeds() -> Vec<Vec<u8>> {
    strings(&[
        "devices/device1/messages/events/%24.mid=msg-0001&%24.cid=corr%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&unit=%C2%B0C&path=a%2Fb%3Dc%26d",
        "devices/device1/messages/devicebound/%24.mid=6a1f0c2e-0000-4000-8000-000000000001&%24.to=%2Fdevices%2Fdevice1%2Fmessages%2FdeviceBound&%24.ct=text%2Fplain%3B%20charset%3Dutf-8&%24.ce=utf-8&iothub-ack=full&color=blue&empty=&flag",
        "devices/device1/messages/events/",
        "devices/device1/messages/devicebound/",
        "devices/device1/modules/module1/messages/events/%24.on=out1/",
        "devices/dev%2B1/messages/events",
        "devices/+/messages/devicebound/#",
    ])
}

/// TV-9's user names.
fn mqtt_username_seeds() -> Vec<Vec<u8>> {
    strings(&[
        "myhub.azure-devices.net/device1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.3%20(node%20v18.0.0%3B%20Linux%3B%20x64)",
        "myhub.azure-devices.net/device1/module1/?api-version=2020-09-30&DeviceClientType=azsdk-c%2F1.5.0&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1",
        "myhub.azure-devices.net/device1/api-version=2016-11-14&DeviceClientType=iothubclient%2f1.1.27%20(Linux%3b%20armv7l)",
        "myhub.azure-devices.net/device1",
    ])
}

/// Schedules for the session seeds: whole chunks and no events; one byte at a
/// time; small chunks with an event every other step; events at every step.
const SEED_SCHEDULES: [[u8; 2]; 4] = [[0x0F, 0], [0x00, 1], [0x83, 2], [0xF6, 3]];

fn with_schedules(streams: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (i, stream) in streams.iter().enumerate() {
        for schedule in SEED_SCHEDULES.iter().skip(i % 2).step_by(2) {
            let mut seed = schedule.to_vec();
            seed.extend_from_slice(stream);
            seeds.push(seed);
        }
    }
    seeds
}

/// `devices/dev1/messages/events/` with a TV-11-like bag numbered `n`.
fn telemetry_topic(n: u32) -> TopicName {
    topic_name(&format!(
        "devices/dev1/messages/events/%24.mid=m{n}&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&unit=%C2%B0C"
    ))
}

/// A topic name the seeds use; they are all valid.
fn topic_name(name: &str) -> TopicName {
    match TopicName::new(name) {
        Ok(t) => t,
        Err(e) => panic!("seed topic {name:?}: {e}"),
    }
}

fn publish(qos: QoS, packet_id: Option<u16>, topic: TopicName, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: packet_id.map(pid),
        payload: Bytes::from_static(payload),
    })
}

/// Device → hub sessions after the CONNECT: subscribe to C2D, send telemetry,
/// complete the C2D messages (packet ids 1 and 2), ping, unsubscribe, disconnect.
fn mqtt_hub_session_seeds() -> Vec<Vec<u8>> {
    let subscribe = |filter: &'static str| {
        Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            filters: vec![(Utf8Bytes::from_static(filter), QoS::AtLeastOnce)],
        })
    };
    let full = encode_all(&[
        subscribe("devices/dev1/messages/devicebound/#"),
        publish(QoS::AtLeastOnce, Some(2), telemetry_topic(1), b"{\"t\":1}"),
        Packet::PubAck(pid(1)),
        Packet::PingReq,
        publish(QoS::AtMostOnce, None, telemetry_topic(2), b"{\"t\":2}"),
        publish(QoS::AtLeastOnce, Some(3), telemetry_topic(3), b"{\"t\":3}"),
        Packet::PubAck(pid(2)),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(4),
            filters: vec![Utf8Bytes::from_static("devices/dev1/messages/devicebound/#")],
        }),
        Packet::Disconnect,
    ]);
    // azure-sdk-for-c's filter, and a telemetry message sent again with DUP.
    let mut resent = publish(QoS::AtLeastOnce, Some(7), telemetry_topic(7), b"{\"t\":7}");
    let first = encode_all(core::slice::from_ref(&resent));
    if let Packet::Publish(p) = &mut resent {
        p.dup = true;
    }
    let mut sdk_c = encode_all(&[subscribe("devices/+/messages/devicebound/#")]);
    sdk_c.extend(first);
    sdk_c.extend(encode_all(&[
        resent,
        Packet::PubAck(pid(1)),
        Packet::PingReq,
        Packet::PubAck(pid(2)),
    ]));
    // Telemetry only, then silence: the keep-alive and store paths.
    let telemetry = encode_all(&[
        publish(QoS::AtLeastOnce, Some(1), telemetry_topic(1), b"1"),
        publish(QoS::AtLeastOnce, Some(2), telemetry_topic(2), b"2"),
        Packet::PingReq,
    ]);
    // The twin and methods (TV-13): the three filters, a GET at QoS 0 with Node's
    // body, a patch at QoS 1 as Python sends it, a method response nobody waits for.
    let twin = encode_all(&[
        Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            filters: vec![
                (Utf8Bytes::from_static("$iothub/twin/res/#"), QoS::AtMostOnce),
                (
                    Utf8Bytes::from_static("$iothub/twin/PATCH/properties/desired/#"),
                    QoS::AtMostOnce,
                ),
                (Utf8Bytes::from_static("$iothub/methods/POST/#"), QoS::AtMostOnce),
            ],
        }),
        publish(QoS::AtMostOnce, None, topic_name("$iothub/twin/GET/?$rid=1"), b" "),
        publish(
            QoS::AtLeastOnce,
            Some(2),
            topic_name("$iothub/twin/PATCH/properties/reported/?$rid=2"),
            b"{\"batteryLevel\":60}",
        ),
        publish(QoS::AtMostOnce, None, topic_name("$iothub/methods/res/200/?$rid=ab12"), b"{}"),
        publish(
            QoS::AtMostOnce,
            None,
            topic_name("$iothub/twin/PATCH/properties/reported/?$rid=3"),
            b"[1]",
        ),
    ]);
    with_schedules(&[full, sdk_c, telemetry, twin])
}

/// Hub → device streams after the CONNACK: the SUBACK, PUBACKs for the three queued
/// messages (ids 2, 3, 4), C2D messages at QoS 1 (one sent again with DUP) and QoS 0,
/// PINGRESP, and publishes on IoT Hub's `$iothub` topics (twin, methods).
fn mqtt_device_session_seeds() -> Vec<Vec<u8>> {
    let c2d_topic = topic_name(concat!(
        "devices/dev1/messages/devicebound/%24.mid=6a1f0c2e-0000-4000-8000-000000000001",
        "&%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound",
        "&%24.ct=text%2Fplain%3B%20charset%3Dutf-8&%24.ce=utf-8&iothub-ack=full",
        "&color=blue&empty=&flag",
    ));
    let suback = |code| Packet::SubAck(SubAck { packet_id: pid(1), return_codes: vec![code] });
    let c2d = |qos, id, payload| publish(qos, id, c2d_topic.clone(), payload);
    let mut again = c2d(QoS::AtLeastOnce, Some(1), b"c2d 1");
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    let full = encode_all(&[
        suback(SubscribeReturnCode::Success(QoS::AtLeastOnce)),
        Packet::PubAck(pid(2)),
        c2d(QoS::AtLeastOnce, Some(1), b"c2d 1"),
        Packet::PubAck(pid(3)),
        again,
        Packet::PubAck(pid(4)),
        Packet::PingResp,
        c2d(QoS::AtMostOnce, None, b"c2d 0"),
        c2d(QoS::AtLeastOnce, Some(2), b"c2d 2"),
    ]);
    let refused = encode_all(&[
        suback(SubscribeReturnCode::Failure),
        Packet::PubAck(pid(2)),
        Packet::PubAck(pid(3)),
        Packet::PubAck(pid(4)),
        Packet::PingResp,
    ]);
    let c2d_only = encode_all(&[
        suback(SubscribeReturnCode::Success(QoS::AtLeastOnce)),
        c2d(QoS::AtLeastOnce, Some(1), b"1"),
        c2d(QoS::AtLeastOnce, Some(2), b"2"),
        c2d(QoS::AtLeastOnce, Some(3), b"3"),
    ]);
    // IoT Hub's own topics: a twin response, a desired update, a method request.
    let iothub = |topic: &str, payload: &'static [u8]| {
        publish(QoS::AtMostOnce, None, topic_name(topic), payload)
    };
    let twin_and_methods = encode_all(&[
        suback(SubscribeReturnCode::Success(QoS::AtLeastOnce)),
        iothub("$iothub/twin/res/200/?$rid=1", b"{\"desired\":{\"$version\":1},\"reported\":{}}"),
        iothub("$iothub/twin/PATCH/properties/desired/?$version=2", b"{\"x\":1}"),
        iothub("$iothub/methods/POST/reboot/?$rid=9", b"{\"delay\":1}"),
        Packet::PubAck(pid(2)),
    ]);
    with_schedules(&[full, refused, c2d_only, twin_and_methods])
}

/// Runs every target of `targets` over its seeds and over `short` inputs (the empty
/// one among them): what each crate's tests check of its own targets before a
/// fuzzer ever runs them. Panics as a failing body does.
pub fn check_targets(targets: &[Target], short: &[&[u8]]) {
    for target in targets {
        for seed in (target.seeds)() {
            (target.run)(&seed);
        }
        for input in [&[][..]].iter().chain(short) {
            (target.run)(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_short_inputs_pass_every_target() {
        check_targets(TARGETS, &[&[0], &[0xFF, 0xFF], &[0x0F, 0, 0x30]]);
    }

    /// The first four HTTP seeds are whole heads (two requests, two responses), so
    /// the fuzzer starts from the round trip, not from the error paths.
    #[test]
    fn http_head_seeds_are_whole_heads() {
        let seeds = http_head_seeds();
        let limits = http::Limits::default();
        let requests = [&seeds[0], &seeds[3]];
        let responses = [&seeds[1], &seeds[2]];
        assert!(requests.iter().all(|s| matches!(http::parse_request(s, &limits), Ok(Some(_)))));
        assert!(responses.iter().all(|s| matches!(http::parse_response(s, &limits), Ok(Some(_)))));
    }

    #[test]
    fn schedule_chunks_stay_within_the_input() {
        for first in 0..=255u8 {
            let (mut schedule, _) = Schedule::split(&[first, first]);
            for remaining in 1..300 {
                let n = schedule.chunk(remaining);
                assert!((1..=remaining).contains(&n));
                assert!(n <= CHUNK_SIZES[usize::from(first & 0x0F)]);
            }
        }
    }

    /// The hub seeds reach past the CONNECT: the hub accepts it, stores telemetry
    /// and delivers C2D messages, which the seed's PUBACK completes.
    #[test]
    fn hub_session_seed_connects_stores_and_completes_c2d() {
        let mut run = HubRun::new(Protocol::Mqtt);
        let mut input = hub_session_connect(false, false);
        let seed = &mqtt_hub_session_seeds()[0];
        assert_eq!(seed[..2], SEED_SCHEDULES[0]);
        input.extend_from_slice(&seed[2..]);
        let mut stored = 0;
        let mut completed = 0;
        let _ = run.hub.handle_input(run.now, run.id, &input);
        while let Some((_, transmit)) = run.hub.poll_transmit() {
            if let Transmit::Send(bytes) = transmit {
                run.output.receive(&bytes, Role::Hub);
            }
        }
        while let Some(event) = run.hub.poll_event() {
            match event {
                HubEvent::StoreTelemetry { .. } => stored += 1,
                HubEvent::C2dSettled(_) => completed += 1,
                _ => {}
            }
        }
        assert!(run.output.opened, "no CONNACK");
        assert_eq!(stored, 3, "three telemetry messages");
        assert_eq!(completed, 1, "the queued C2D message completed by PUBACK 1");
    }

    /// The device seeds reach past the CONNACK: the device acknowledges its three
    /// messages and receives C2D messages.
    #[test]
    fn device_session_seed_acknowledges_telemetry_and_receives_c2d() {
        let seed = &mqtt_device_session_seeds()[0];
        let (mut schedule, stream) = Schedule::split(seed);
        let mut run = DeviceRun::new();
        for _ in 0..3 {
            run.send_telemetry();
        }
        run.drain(&mut schedule);
        let _ = run.device.handle_input(run.now, stream);
        let events: Vec<DeviceEvent> = core::iter::from_fn(|| run.device.poll_event()).collect();
        let acked =
            events.iter().filter(|e| matches!(e, DeviceEvent::TelemetryAcknowledged(_))).count();
        let c2d = events.iter().filter(|e| matches!(e, DeviceEvent::C2d(_))).count();
        assert_eq!(acked, 3, "{events:?}");
        assert_eq!(c2d, 3, "C2D 1 (once, not again with DUP), 0 and 2: {events:?}");
        assert_eq!(run.device.unacknowledged(), 0);
    }
}
