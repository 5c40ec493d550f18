//! The SASL layer wired client to server byte for byte, and each server reaction
//! to a client breaking part 5 §5.3.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::super::tests::{Pair, Side, T0, closed_with, frame_bytes, open, opened};
use super::*;
use crate::amqp::frame;
use crate::amqp::performative::{Begin, Performative, condition};
use crate::amqp::protocol_header::PROTOCOL_HEADER_LEN;
use crate::amqp::sasl::SasUser;
use crate::iothub::SasToken;
use crate::sansio::Transmit;
use crate::time::Duration;

/// TV-3's device token (key K1, se 1700000000).
const TV3_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
/// K1: Base64 of the bytes 0x00..0x1F (spec file §11).
const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const HUB_HOST: &str = "myhub.azure-devices.net";

/// The client's `open`, naming the hub as its hostname (spec file §5.1: the C SDK
/// sends the hub's FQDN).
fn client_open() -> Open {
    let mut open = open("client", None);
    open.hostname = Some(Utf8Bytes::from_static(HUB_HOST));
    open
}

/// What spec file §5.1 tells an emulator to offer, SASL optional.
fn hub_sasl() -> SaslServer {
    SaslServer { mechanisms: vec![MSSBCBS, ANONYMOUS, PLAIN, EXTERNAL], required: false }
}

fn tv18_plain() -> SaslClient {
    SaslClient::Plain(PlainResponse {
        authzid: String::new(),
        authcid: "device1@sas.myhub".into(),
        password: TV3_TOKEN.into(),
    })
}

fn sasl_pair(client: SaslClient, server: SaslServer) -> Pair {
    Pair::with(
        Connection::client_with_sasl(client_open(), T0, client),
        Connection::server_with_sasl(open("server", None), T0, server),
    )
}

/// A `sasl-init` as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Init {
    mechanism: Symbol,
    initial_response: Option<Bytes>,
    hostname: Option<Utf8Bytes>,
}

fn inits(side: &Side) -> Vec<Init> {
    side.events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::SaslInit { mechanism, initial_response, hostname } => Some(Init {
                mechanism: mechanism.clone(),
                initial_response: initial_response.clone(),
                hostname: hostname.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn outcomes(side: &Side) -> Vec<(SaslCode, Option<Bytes>)> {
    side.events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::SaslOutcome { code, additional_data } => {
                Some((*code, additional_data.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Runs the pair, the server's owner answering each `sasl-init` with `verdict`.
fn authenticate(pair: &mut Pair, verdict: impl Fn(&Init) -> SaslCode) {
    let mut answered = 0;
    loop {
        pair.pump();
        let inits = inits(&pair.server);
        if inits.len() == answered {
            return;
        }
        for init in &inits[answered..] {
            if let Err(e) = pair.server.conn.sasl_outcome(pair.now, verdict(init), None) {
                pair.server.errors.push(e);
            }
        }
        answered = inits.len();
    }
}

/// The test's "application": PLAIN passes with a device user name and a SAS token
/// signed with K1, valid at `T0 - 60 s`; ANONYMOUS, MSSBCBS and EXTERNAL pass (CBS
/// or the certificate decides later, spec file §5.1).
fn hub_verdict(init: &Init) -> SaslCode {
    if init.mechanism != PLAIN {
        return SaslCode::Ok;
    }
    let Some(plain) = init.initial_response.as_deref().and_then(|b| PlainResponse::parse(b).ok())
    else {
        return SaslCode::Auth;
    };
    let Some(user) = SasUser::parse(&plain.authcid) else {
        return SaslCode::Auth;
    };
    let Ok(token) = SasToken::parse(&plain.password) else {
        return SaslCode::Auth;
    };
    let checked = token.verify(&[K1], T0.saturating_sub(Duration::from_secs(60)), Duration::ZERO);
    let audience = alloc::format!("{HUB_HOST}/devices/{}", user.device_id);
    if checked.is_ok() && token.audience() == audience && user.hub_name == "myhub" {
        SaslCode::Ok
    } else {
        SaslCode::Auth
    }
}

/// Both sides opened without a violation.
fn both_opened(pair: &Pair) {
    assert!(pair.client.errors.is_empty(), "{:?}", pair.client.errors);
    assert!(pair.server.errors.is_empty(), "{:?}", pair.server.errors);
    assert_eq!(opened(&pair.server.events).map(|o| o.container_id.as_str()), Some("client"));
    assert_eq!(opened(&pair.client.events).map(|o| o.container_id.as_str()), Some("server"));
    assert!(!pair.client.closed && !pair.server.closed);
}

/// A SASL frame (TYPE 0x01) holding `body`.
fn sasl_frame_bytes(body: &SaslFrame) -> Vec<u8> {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded).unwrap();
    let frame = Frame { kind: FrameKind::Sasl, body: encoded.freeze() };
    let mut out = BytesMut::new();
    frame.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out).unwrap();
    out.to_vec()
}

/// The frames in `bytes` after its first protocol header: SASL bodies decoded,
/// until the next protocol header or the end.
fn sasl_frames(bytes: &[u8]) -> Vec<SaslFrame> {
    let mut buf = BytesMut::from(bytes.get(PROTOCOL_HEADER_LEN..).unwrap_or_default());
    let mut out = vec![];
    while !buf.starts_with(b"AMQP") {
        let Ok(Some(frame)) = frame::decode(&mut buf, &FrameLimits { max_frame_size: u32::MAX })
        else {
            break;
        };
        assert_eq!(frame.kind, FrameKind::Sasl);
        out.push(SaslFrame::decode(&frame.body, &Limits::default()).unwrap());
    }
    out
}

/// The AMQP header, then the frames after it, once the SASL layer is done.
fn after_sasl(bytes: &[u8]) -> Option<&[u8]> {
    let at = bytes.windows(PROTOCOL_HEADER_LEN).rposition(|w| w == b"AMQP\x00\x01\x00\x00")?;
    bytes.get(at..)
}

/// A server offering `mechanisms` fed `input` in one `handle_input`.
fn server_fed(sasl: SaslServer, input: &[u8]) -> Side {
    let mut server = Side::new(Connection::server_with_sasl(open("server", None), T0, sasl));
    server.feed(T0, input, usize::MAX);
    server.drain();
    server
}

fn sasl_init(mechanism: Symbol) -> Vec<u8> {
    let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
    input.extend(sasl_frame_bytes(&SaslFrame::Init {
        mechanism,
        initial_response: Some(Bytes::new()),
        hostname: None,
    }));
    input
}

#[test]
fn s5_3_2_anonymous_then_amqp_opens() {
    let mut pair = sasl_pair(SaslClient::Anonymous, hub_sasl());
    authenticate(&mut pair, hub_verdict);
    both_opened(&pair);
    assert_eq!(
        inits(&pair.server),
        [Init {
            mechanism: ANONYMOUS,
            initial_response: Some(Bytes::new()),
            hostname: Some(Utf8Bytes::from_static(HUB_HOST)),
        }]
    );
    assert_eq!(outcomes(&pair.client), [(SaslCode::Ok, None)]);
    // Each side's bytes: SASL header, SASL frames, AMQP header, AMQP frames.
    assert_eq!(&pair.client.wire[..8], b"AMQP\x03\x01\x00\x00");
    assert_eq!(&pair.server.wire[..8], b"AMQP\x03\x01\x00\x00");
    assert_eq!(
        sasl_frames(&pair.server.wire),
        [
            SaslFrame::Mechanisms(vec![MSSBCBS, ANONYMOUS, PLAIN, EXTERNAL]),
            SaslFrame::Outcome { code: SaslCode::Ok, additional_data: None },
        ]
    );
    for side in [&pair.client, &pair.server] {
        let amqp = after_sasl(&side.wire).expect("an AMQP header after the SASL layer");
        let mut rest = BytesMut::from(&amqp[PROTOCOL_HEADER_LEN..]);
        let first = frame::decode(&mut rest, &FrameLimits::BEFORE_OPEN).unwrap().unwrap();
        assert_eq!(first.kind, FrameKind::Amqp { channel: 0 });
    }
}

/// TV-18: PLAIN with TV-3's token as password, checked by the server's owner.
#[test]
fn s5_3_3_2_plain_with_a_sas_token_is_checked_by_the_owner() {
    let mut pair = sasl_pair(tv18_plain(), hub_sasl());
    authenticate(&mut pair, hub_verdict);
    both_opened(&pair);
    let inits = inits(&pair.server);
    let [Init { mechanism, initial_response: Some(response), .. }] = &inits[..] else {
        panic!("{inits:?}");
    };
    assert_eq!(*mechanism, PLAIN);
    // TV-18: 00 + "device1@sas.myhub" + 00 + the token, 154 bytes.
    let mut expected = b"\0device1@sas.myhub\0".to_vec();
    expected.extend_from_slice(TV3_TOKEN.as_bytes());
    assert_eq!(response.len(), 154);
    assert_eq!(&response[..], &expected[..]);
}

#[test]
fn s5_3_3_2_external_then_amqp_opens() {
    let mut pair = sasl_pair(SaslClient::External, hub_sasl());
    authenticate(&mut pair, hub_verdict);
    both_opened(&pair);
    assert_eq!(inits(&pair.server)[0].mechanism, EXTERNAL);
    assert_eq!(inits(&pair.server)[0].initial_response, Some(Bytes::new()));
}

/// Spec file §5.1: the C SDK's mechanism.
#[test]
fn s5_3_3_2_mssbcbs_then_amqp_opens() {
    let mut pair = sasl_pair(SaslClient::MssbCbs, hub_sasl());
    authenticate(&mut pair, hub_verdict);
    both_opened(&pair);
    assert_eq!(inits(&pair.server)[0].mechanism, MSSBCBS);
}

/// §5.3.3.6 `auth`: a token signed with another key. The server sends the outcome
/// and closes; the client reports the code and sends no AMQP header.
#[test]
fn s5_3_3_6_server_refuses_plain_with_auth() {
    let wrong = SaslClient::Plain(PlainResponse {
        authzid: String::new(),
        authcid: "device1@sas.myhub".into(),
        password: TV3_TOKEN.replace("gFSf", "hFSf"),
    });
    let mut pair = sasl_pair(wrong, hub_sasl());
    authenticate(&mut pair, hub_verdict);
    assert!(pair.client.errors.is_empty() && pair.server.errors.is_empty());
    assert_eq!(
        sasl_frames(&pair.server.wire).last(),
        Some(&SaslFrame::Outcome { code: SaslCode::Auth, additional_data: None })
    );
    closed_with(&pair.server, false, Some(condition::UNAUTHORIZED_ACCESS));
    assert_eq!(outcomes(&pair.client), [(SaslCode::Auth, None)]);
    closed_with(&pair.client, true, Some(condition::UNAUTHORIZED_ACCESS));
    assert!(after_sasl(&pair.client.wire).is_none(), "no AMQP header after a failed outcome");
    assert!(opened(&pair.server.events).is_none());
}

/// §5.3.3.2: the client does not fall back to another mechanism.
#[test]
fn s5_3_3_2_client_whose_mechanism_is_not_offered_closes() {
    let anonymous_only = SaslServer { mechanisms: vec![ANONYMOUS], required: true };
    let pair = sasl_pair(tv18_plain(), anonymous_only);
    assert_eq!(
        pair.client.errors,
        [ConnectionError::SaslMechanismNotOffered { mechanism: PLAIN, offered: vec![ANONYMOUS] }]
    );
    closed_with(&pair.client, false, Some(condition::NOT_IMPLEMENTED));
    assert_eq!(pair.client.wire, b"AMQP\x03\x01\x00\x00", "no sasl-init");
    assert!(inits(&pair.server).is_empty());
}

/// §5.3.3.2: "If the selected mechanism is not supported by the receiving peer, it
/// MUST close the connection with the authentication-failure close-code", `auth`.
#[test]
fn s5_3_3_2_server_answers_a_mechanism_not_offered_with_auth() {
    let server =
        server_fed(SaslServer { mechanisms: vec![ANONYMOUS], required: true }, &sasl_init(PLAIN));
    assert_eq!(
        sasl_frames(&server.wire),
        [
            SaslFrame::Mechanisms(vec![ANONYMOUS]),
            SaslFrame::Outcome { code: SaslCode::Auth, additional_data: None },
        ]
    );
    assert!(matches!(
        server.errors[..],
        [ConnectionError::SaslMechanismNotOffered { ref mechanism, .. }] if *mechanism == PLAIN
    ));
    closed_with(&server, false, Some(condition::NOT_IMPLEMENTED));
    assert!(inits(&server).is_empty());
}

/// Spec file §5.1: the Node and .NET SDKs skip SASL; an optional layer lets them.
#[test]
fn s5_1_optional_sasl_server_accepts_the_plain_amqp_header() {
    let pair = Pair::with(
        Connection::client(client_open(), T0),
        Connection::server_with_sasl(open("server", None), T0, hub_sasl()),
    );
    both_opened(&pair);
    assert_eq!(&pair.server.wire[..8], b"AMQP\x00\x01\x00\x00");
    assert!(inits(&pair.server).is_empty());
}

/// Part 2 §2.2, figure 2.13: a server requiring SASL answers the plain header with
/// the SASL header and closes.
#[test]
fn s2_2_required_sasl_server_refuses_the_plain_amqp_header() {
    let required = SaslServer { required: true, ..hub_sasl() };
    let pair = Pair::with(
        Connection::client(client_open(), T0),
        Connection::server_with_sasl(open("server", None), T0, required),
    );
    assert_eq!(pair.server.wire, b"AMQP\x03\x01\x00\x00");
    assert!(pair.server.closed);
    assert!(matches!(pair.server.errors[..], [ConnectionError::UnsupportedHeader(_)]));
    // The client sees a header not its own and closes (§2.2).
    assert!(matches!(pair.client.errors[..], [ConnectionError::UnsupportedHeader(_)]));
    assert!(pair.client.closed);
}

/// An empty mechanism list is invalid (§5.3.3.1): such a server has no SASL layer.
#[test]
fn s5_3_3_1_server_without_mechanisms_has_no_sasl_layer() {
    let none = SaslServer { mechanisms: vec![], required: true };
    let server = server_fed(none, b"AMQP\x03\x01\x00\x00");
    assert_eq!(server.wire, b"AMQP\x00\x01\x00\x00");
    assert!(server.closed);
}

/// The client's sasl-init, AMQP header and open arrive in one read: the server
/// leaves the AMQP bytes unread until its owner has decided.
#[test]
fn s5_3_2_server_holds_pipelined_amqp_header_until_outcome() {
    let mut input = sasl_init(ANONYMOUS);
    input.extend_from_slice(b"AMQP\x00\x01\x00\x00");
    input.extend(frame_bytes(0, &Performative::Open(client_open())));
    let mut server = server_fed(hub_sasl(), &input);
    assert_eq!(inits(&server).len(), 1);
    assert!(opened(&server.events).is_none(), "the open is not read before the outcome");
    assert!(after_sasl(&server.wire).is_none(), "no AMQP header before the outcome");
    assert_eq!(sasl_frames(&server.wire).len(), 1, "only sasl-mechanisms");
    assert!(server.errors.is_empty() && !server.closed);

    server.conn.sasl_outcome(T0, SaslCode::Ok, None).unwrap();
    server.drain();
    assert!(server.errors.is_empty());
    assert_eq!(opened(&server.events).map(|o| o.container_id.as_str()), Some("client"));
    let amqp = after_sasl(&server.wire).expect("the AMQP header answered");
    let mut rest = BytesMut::from(&amqp[PROTOCOL_HEADER_LEN..]);
    let open = frame::decode(&mut rest, &FrameLimits::BEFORE_OPEN).unwrap().unwrap();
    assert!(matches!(
        Performative::decode(&open.body, &Limits::default()),
        Ok((Performative::Open(_), _))
    ));
    // A second answer does nothing.
    server.conn.sasl_outcome(T0, SaslCode::Auth, None).unwrap();
    server.drain();
    assert!(!server.closed);
}

/// A failed outcome drops what was held: the pipelined open is never read.
#[test]
fn s5_3_3_5_refused_client_pipelined_bytes_are_dropped() {
    let mut input = sasl_init(ANONYMOUS);
    input.extend_from_slice(b"AMQP\x00\x01\x00\x00");
    input.extend(frame_bytes(0, &Performative::Open(client_open())));
    let mut server = server_fed(hub_sasl(), &input);
    // additional-data is not sent with a failure (§5.3.3.5).
    server.conn.sasl_outcome(T0, SaslCode::SysTemp, Some(Bytes::from_static(b"x"))).unwrap();
    server.drain();
    assert_eq!(
        sasl_frames(&server.wire).last(),
        Some(&SaslFrame::Outcome { code: SaslCode::SysTemp, additional_data: None })
    );
    closed_with(&server, false, Some(condition::UNAUTHORIZED_ACCESS));
    assert!(opened(&server.events).is_none());
    assert!(after_sasl(&server.wire).is_none());
}

#[test]
fn s5_3_2_server_bounds_the_bytes_it_holds() {
    let mut input = sasl_init(ANONYMOUS);
    input.extend(vec![0u8; MAX_HELD_INPUT + 1]);
    let server = server_fed(hub_sasl(), &input);
    assert!(matches!(server.errors[..], [ConnectionError::SaslHeldInputTooLarge { .. }]));
    closed_with(&server, false, Some(condition::RESOURCE_LIMIT_EXCEEDED));
}

/// The SASL header and a `sasl-mechanisms` frame, byte for byte (part 5 §5.3.2,
/// §5.3.1, §5.3.3.1).
#[test]
fn s5_3_1_sasl_header_and_mechanisms_frame_bytes() {
    let offer = SaslServer { mechanisms: vec![ANONYMOUS, PLAIN], required: true };
    let server = server_fed(offer, b"AMQP\x03\x01\x00\x00");
    #[rustfmt::skip]
    let expected = [
        b'A', b'M', b'Q', b'P', // "AMQP"
        0x03,                   // protocol id 3: SASL (§5.3.2)
        0x01, 0x00, 0x00,       // SASL-MAJOR 1, SASL-MINOR 0, SASL-REVISION 0
        0x00, 0x00, 0x00, 0x22, // SIZE 34: the whole frame
        0x02,                   // DOFF 2: no extended header
        0x01,                   // TYPE 1: SASL frame (§5.3.1)
        0x00, 0x00,             // channel bytes, ignored, written as 0
        0x00, 0x53, 0x40,       // descriptor: smallulong 0x40, sasl-mechanisms
        0xC0, 0x15, 0x01,       // list8: 21 bytes, 1 field
        0xE0, 0x12, 0x02, 0xA3, // array8: 18 bytes, 2 elements, each a sym8
        0x09, b'A', b'N', b'O', b'N', b'Y', b'M', b'O', b'U', b'S', // "ANONYMOUS"
        0x05, b'P', b'L', b'A', b'I', b'N', // "PLAIN"
    ];
    assert_eq!(server.wire, expected);
    let client = Connection::client_with_sasl(client_open(), T0, SaslClient::Anonymous);
    let mut client = Side::new(client);
    assert_eq!(client.drain(), b"AMQP\x03\x01\x00\x00", "the client's SASL header alone");
}

/// §5.3.1: the channel bytes of a SASL frame are ignored.
#[test]
fn s5_3_1_sasl_frame_channel_is_ignored() {
    let mut input = sasl_init(ANONYMOUS);
    input[PROTOCOL_HEADER_LEN + 6] = 0x12; // channel 0x1234
    input[PROTOCOL_HEADER_LEN + 7] = 0x34;
    let server = server_fed(hub_sasl(), &input);
    assert!(server.errors.is_empty());
    assert_eq!(inits(&server).len(), 1);
}

/// SASL frames are bounded by [`SASL_MAX_FRAME_SIZE`], checked on the SIZE field
/// before the body is buffered; a frame over 512 bytes within it is accepted.
#[test]
fn s5_3_1_sasl_frame_over_the_bound_is_a_framing_error() {
    let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
    input.extend_from_slice(&(SASL_MAX_FRAME_SIZE + 1).to_be_bytes()); // SIZE 65537
    let server = server_fed(hub_sasl(), &input);
    assert!(matches!(server.errors[..], [ConnectionError::Frame(_)]));
    closed_with(&server, false, Some(condition::CONNECTION_FRAMING_ERROR));
    assert_eq!(sasl_frames(&server.wire).len(), 1, "nothing after sasl-mechanisms");

    let mut large = b"AMQP\x03\x01\x00\x00".to_vec();
    large.extend(sasl_frame_bytes(&SaslFrame::Init {
        mechanism: ANONYMOUS,
        initial_response: Some(Bytes::from(vec![b'x'; 1000])),
        hostname: None,
    }));
    let server = server_fed(hub_sasl(), &large);
    assert!(server.errors.is_empty(), "{:?}", server.errors);
    assert_eq!(inits(&server).len(), 1);
}

/// §5.3.1: before the outcome only SASL frames; an AMQP `open` is a framing error,
/// and no AMQP `close` can be sent in the SASL layer.
#[test]
fn s5_3_1_amqp_frame_before_the_outcome_is_a_framing_error() {
    let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
    input.extend(frame_bytes(0, &Performative::Open(client_open())));
    let server = server_fed(hub_sasl(), &input);
    assert_eq!(server.errors, [ConnectionError::AmqpFrameBeforeSaslOutcome]);
    closed_with(&server, false, Some(condition::CONNECTION_FRAMING_ERROR));
    assert_eq!(sasl_frames(&server.wire).len(), 1, "no close frame");
}

/// §5.3.3.5: after the outcome the peers exchange AMQP headers; a SASL frame there
/// is a framing error.
#[test]
fn s5_3_3_5_sasl_frame_after_the_outcome_is_a_framing_error() {
    let mut pair = sasl_pair(SaslClient::Anonymous, hub_sasl());
    authenticate(&mut pair, hub_verdict);
    both_opened(&pair);
    let outcome = SaslFrame::Outcome { code: SaslCode::Ok, additional_data: None };
    pair.client.feed(pair.now, &sasl_frame_bytes(&outcome), usize::MAX);
    pair.client.drain();
    assert_eq!(pair.client.errors, [ConnectionError::SaslFrame]);
    closed_with(&pair.client, false, Some(condition::CONNECTION_FRAMING_ERROR));
}

/// None of hubwire's mechanisms expects a challenge (§5.3.3.3): the client closes.
#[test]
fn s5_3_3_3_client_refuses_a_challenge() {
    let mut client =
        Side::new(Connection::client_with_sasl(client_open(), T0, SaslClient::Anonymous));
    client.drain();
    let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
    input.extend(sasl_frame_bytes(&SaslFrame::Mechanisms(vec![ANONYMOUS])));
    input.extend(sasl_frame_bytes(&SaslFrame::Challenge(Bytes::from_static(b"?"))));
    client.feed(T0, &input, 1);
    client.drain();
    assert_eq!(
        client.errors,
        [ConnectionError::SaslUnexpected {
            frame: "sasl-challenge",
            when: "while waiting for sasl-outcome"
        }]
    );
    closed_with(&client, false, Some(condition::ILLEGAL_STATE));
}

/// A failure outcome reaches the client's owner with its code and any data sent.
#[test]
fn s5_3_3_6_client_reports_a_failure_outcome_and_ends() {
    let mut client = Side::new(Connection::client_with_sasl(client_open(), T0, tv18_plain()));
    client.drain();
    assert_eq!(
        client.conn.send(T0, 0, &Performative::Begin(Begin::new(0, 100, 100)), b""),
        Err(super::super::SendError::Closed),
        "nothing is sent before the outcome"
    );
    let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
    input.extend(sasl_frame_bytes(&SaslFrame::Mechanisms(vec![PLAIN])));
    input.extend(sasl_frame_bytes(&SaslFrame::Outcome {
        code: SaslCode::SysTemp,
        additional_data: Some(Bytes::from_static(b"busy")),
    }));
    client.feed(T0, &input, usize::MAX);
    client.drain();
    assert!(client.errors.is_empty());
    assert_eq!(outcomes(&client), [(SaslCode::SysTemp, Some(Bytes::from_static(b"busy")))]);
    closed_with(&client, true, Some(condition::UNAUTHORIZED_ACCESS));
    // Its bytes: SASL header, then sasl-init, then nothing.
    assert_eq!(sasl_frames(&client.wire).len(), 1);
}

/// The server never sends a frame the client did not ask for: a client that sends
/// `sasl-mechanisms` breaks figure 5.6.
#[test]
fn s5_3_2_server_refuses_frames_of_the_wrong_role() {
    let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
    input.extend(sasl_frame_bytes(&SaslFrame::Mechanisms(vec![ANONYMOUS])));
    let server = server_fed(hub_sasl(), &input);
    assert_eq!(
        server.errors,
        [ConnectionError::SaslUnexpected {
            frame: "sasl-mechanisms",
            when: "while waiting for sasl-init"
        }]
    );
    assert!(server.closed);
}

/// Every byte in its own `handle_input`, both directions.
#[test]
fn s5_3_2_exchange_split_into_1_byte_chunks() {
    let mut pair = sasl_pair(tv18_plain(), hub_sasl());
    pair.chunk = 1;
    authenticate(&mut pair, hub_verdict);
    both_opened(&pair);
}

#[test]
fn transport_closed_during_sasl_is_reported() {
    let mut server = server_fed(hub_sasl(), &sasl_init(ANONYMOUS));
    server.conn.handle_close(T0);
    server.drain();
    closed_with(&server, true, None);
    assert_eq!(server.conn.poll_timeout(), None);
    assert!(matches!(server.conn.poll_transmit(), None | Some(Transmit::Close)));
}

proptest! {
    /// Whatever follows the SASL header, the server neither panics nor writes after
    /// its close, and a refusal always closes.
    #[test]
    fn arbitrary_bytes_after_the_sasl_header_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
        answer in 0u8..5,
    ) {
        let mut server =
            Side::new(Connection::server_with_sasl(open("server", None), T0, hub_sasl()));
        let mut input = b"AMQP\x03\x01\x00\x00".to_vec();
        input.extend(bytes);
        server.feed(T0, &input, chunk);
        server.drain();
        let code = SaslCode::from_u8(answer).unwrap();
        if let Err(e) = server.conn.sasl_outcome(T0, code, None) {
            server.errors.push(e);
        }
        server.drain();
        if !server.errors.is_empty() {
            prop_assert!(server.closed);
        }
    }
}
