//! The `amqp_hub` target: the hub engine's AMQP role (spec file §5), fed a device
//! that has authenticated by CBS and attached its telemetry and C2D links, then
//! the fuzzer's bytes, with time steps, late stores and C2D messages between
//! chunks, so the fuzzer starts where the IoT Hub handlers are (put-token,
//! telemetry, dispositions, twin requests, method responses), not at the protocol
//! header. The device has also attached its twin and method links and subscribed
//! to desired updates, and the service has updated its desired properties and
//! invoked a method on it.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::amqp_connection::sasl_frame_bytes;
use super::{HubRun, KEY, START, Schedule, amqp_frame_bytes};
use crate::Protocol;
use crate::amqp::cbs::PutToken;
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::frame::{self, FrameKind, FrameLimits};
use crate::amqp::message::{self, HubStamps, MessageId};
use crate::amqp::methods;
use crate::amqp::performative::{
    Attach, Begin, Disposition, Flow, Open, Performative, Role, Source, Target, Terminus, Transfer,
};
use crate::amqp::protocol_header::ProtocolHeader;
use crate::amqp::sasl::{self, SaslFrame};
use crate::amqp::twin::{TwinOperation, TwinRequest};
use crate::amqp::types::Limits;
use crate::iothub::{self, MethodResponse, SasToken, TwinPatch};
use crate::time::Duration;
use crate::utf8::Utf8Bytes;

/// The client's handles: the `$cbs` pair, telemetry, C2D, the twin and method
/// pairs.
const CBS_REQUESTS: u32 = 0;
const CBS_RESPONSES: u32 = 1;
const EVENTS: u32 = 2;
const C2D: u32 = 3;
const TWIN_REQUESTS: u32 = 4;
const TWIN_REPLIES: u32 = 5;
const METHOD_RESPONSES: u32 = 6;
const METHOD_REQUESTS: u32 = 7;

fn attach(name: &'static str, handle: u32, role: Role, address: &str) -> Performative {
    let node = Terminus::at(Utf8Bytes::from(address));
    let (source, target) = match role {
        Role::Sender => (Source::default(), Target { terminus: node, ..Target::default() }),
        Role::Receiver => (Source { terminus: node, ..Source::default() }, Target::default()),
    };
    Performative::Attach(Box::new(Attach {
        source: Some(source),
        target: Some(target),
        initial_delivery_count: (role == Role::Sender).then_some(0),
        ..Attach::new(Utf8Bytes::from_static(name), handle, role)
    }))
}

fn flow(handle: u32, credit: u32) -> Performative {
    Performative::Flow(Flow {
        next_incoming_id: Some(0),
        incoming_window: 100,
        next_outgoing_id: 0,
        outgoing_window: 100,
        handle: Some(handle),
        delivery_count: Some(0),
        link_credit: Some(credit),
        ..Flow::default()
    })
}

/// A transfer of one whole message on `handle`.
fn transfer(handle: u32, delivery_id: u32, message: &message::Message) -> Vec<u8> {
    let mut payload = BytesMut::new();
    if let Err(e) = message.encode(&mut payload) {
        panic!("the harness built an unencodable message: {e}");
    }
    let t = Performative::Transfer(Transfer {
        handle,
        delivery_id: Some(delivery_id),
        delivery_tag: Some(Bytes::copy_from_slice(&delivery_id.to_be_bytes())),
        message_format: Some(0),
        ..Transfer::default()
    });
    let mut frame = amqp_frame_bytes(0, &t);
    // The payload follows the performative in the same frame (§2.3.2): patch the
    // frame's size to cover it.
    let size = u32::try_from(frame.len() + payload.len()).unwrap_or(u32::MAX);
    frame[..4].copy_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The client's AMQP header, `open` and `begin` on channel 0, then `then`.
fn opening(then: &[Performative]) -> Vec<u8> {
    let mut out = BytesMut::new();
    ProtocolHeader::AMQP.encode(&mut out);
    let mut out = out.to_vec();
    let open = Open {
        hostname: Some(Utf8Bytes::from_static("localhost")),
        ..Open::new(Utf8Bytes::from_static("fuzz-device"))
    };
    for p in [Performative::Open(open), Performative::Begin(Begin::new(0, 100, 100))] {
        out.extend_from_slice(&amqp_frame_bytes(0, &p));
    }
    for p in then {
        out.extend_from_slice(&amqp_frame_bytes(0, p));
    }
    out
}

/// The client's header, `open`, `begin`, CBS links with a valid put-token for
/// `dev1`, and its telemetry and C2D links with credit: in three steps, each sent
/// once the hub has answered the one before, as a client must (a transfer waits
/// for the hub's credit, an attach for the token).
fn device_hello() -> [Vec<u8>; 3] {
    let links = opening(&[
        attach("cbs-sender", CBS_REQUESTS, Role::Sender, "$cbs"),
        attach("cbs-receiver", CBS_RESPONSES, Role::Receiver, "$cbs"),
        flow(CBS_RESPONSES, 10),
    ]);
    let expiry = START + Duration::from_secs(3600);
    let token = match SasToken::sign("localhost/devices/dev1", KEY, expiry, None) {
        Ok(t) => t,
        Err(e) => panic!("cannot sign: {e}"),
    };
    let put = PutToken::for_token(MessageId::Ulong(1), &token).to_message();
    let mut device = vec![];
    for p in [
        attach("events", EVENTS, Role::Sender, "/devices/dev1/messages/events"),
        attach("c2d", C2D, Role::Receiver, "/devices/dev1/messages/devicebound"),
        flow(C2D, 5),
        attach("twin-snd", TWIN_REQUESTS, Role::Sender, "/devices/dev1/twin"),
        attach("twin-rcv", TWIN_REPLIES, Role::Receiver, "/devices/dev1/twin"),
        flow(TWIN_REPLIES, 5),
        attach("methods-snd", METHOD_RESPONSES, Role::Sender, "/devices/dev1/methods/devicebound"),
        attach("methods-rcv", METHOD_REQUESTS, Role::Receiver, "/devices/dev1/methods/devicebound"),
        flow(METHOD_REQUESTS, 5),
    ] {
        device.extend_from_slice(&amqp_frame_bytes(0, &p));
    }
    [links, transfer(CBS_REQUESTS, 0, &put), device]
}

/// The device's PUT subscription to desired updates (spec file §5.6), sent once its
/// twin links are up.
fn subscribe() -> Vec<u8> {
    let put = TwinRequest {
        correlation_id: MessageId::String("put".into()),
        operation: TwinOperation::SubscribeDesired,
    };
    transfer(TWIN_REQUESTS, 1, &put.to_message())
}

/// The first two bytes are the [`Schedule`]; the rest follows the device's hello.
///
/// Properties: no panic; the hub's output is its header and whole, decodable
/// frames; `handle_timeout` always makes progress; once the transport closes the
/// connection is gone.
pub fn amqp_hub(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = HubRun::new(Protocol::Amqp);
    for step in device_hello() {
        run.input(&step);
    }
    run.input(&subscribe());
    // Both go out at once: the device's receivers have credit.
    if let Ok(patch) = TwinPatch::parse(b"{\"x\":1}") {
        let _ = run.hub.update_desired(run.now, super::DEVICE_ID, &patch);
    }
    let payload = Bytes::from_static(b"{\"delay\":5}");
    let _ =
        run.hub.invoke_method(run.now, super::DEVICE_ID, "reboot", payload, Duration::from_secs(5));
    run.drain();
    run.play(&mut schedule, stream, stream.len() / 2);
    check_output(&run.wire);
}

/// The `amqp_hub_sasl` target: the hub's AMQP role from the first frame after the
/// client's SASL protocol header: its `sasl-init` (PLAIN with a device's SAS token
/// as IoT Hub takes it, ANONYMOUS or MSSBCBS before a CBS put-token, spec file
/// §5.1, or anything), then the AMQP layer. `amqp_hub` opens without SASL, so that
/// its fuzzer starts at the session; this one fuzzes the hub's own SASL handling.
/// The first two bytes are the [`Schedule`].
///
/// Properties: those of [`amqp_hub`].
pub fn amqp_hub_sasl(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = HubRun::new(Protocol::Amqp);
    let mut input = BytesMut::new();
    ProtocolHeader::SASL.encode(&mut input);
    input.extend_from_slice(stream);
    run.play(&mut schedule, &input, input.len() / 2);
    check_output(&run.wire);
}

/// What follows the SASL header: PLAIN as `dev1` with its token, then a telemetry
/// link and a message; ANONYMOUS and MSSBCBS, then the CBS hello; PLAIN with a
/// token of the wrong key.
pub(super) fn sasl_seeds() -> Vec<Vec<u8>> {
    let init = |mechanism, response: Vec<u8>| {
        sasl_frame_bytes(&SaslFrame::Init {
            mechanism,
            initial_response: Some(Bytes::from(response)),
            hostname: Some(Utf8Bytes::from_static("localhost")),
        })
    };
    let plain = |key: &str| {
        let expiry = START + Duration::from_secs(3600);
        let token = match SasToken::sign("localhost/devices/dev1", key, expiry, None) {
            Ok(t) => t.to_string(),
            Err(e) => panic!("cannot sign: {e}"),
        };
        let mut response = b"\0dev1@sas.localhost\0".to_vec();
        response.extend_from_slice(token.as_bytes());
        response
    };
    let amqp = opening(&[attach("events", EVENTS, Role::Sender, "/devices/dev1/messages/events")]);
    let telemetry = {
        let m = iothub::Message::new(Bytes::from_static(b"{\"t\":1}"));
        match message::from_iothub(&m, &HubStamps::default()) {
            Ok(m) => m,
            Err(e) => panic!("cannot map telemetry: {e}"),
        }
    };
    let [cbs_links, put_token, device_links] = device_hello();
    // The hello's own protocol header: the SASL layer ends with the AMQP one.
    let cbs_hello = [cbs_links, put_token, device_links].concat();
    let seed = |parts: &[&[u8]]| {
        let mut out = vec![0x00, 0x00];
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    };
    vec![
        seed(&[&init(sasl::PLAIN, plain(KEY)), &amqp, &transfer(EVENTS, 0, &telemetry)]),
        seed(&[&init(sasl::ANONYMOUS, Vec::new()), &cbs_hello]),
        seed(&[&init(sasl::MSSBCBS, Vec::new()), &cbs_hello]),
        seed(&[&init(sasl::PLAIN, plain("HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=")), &amqp]),
    ]
}

/// The hub's bytes: a protocol header (SASL's first, when the client chose it),
/// then whole frames that decode.
fn check_output(wire: &BytesMut) {
    let mut rx = wire.clone();
    let mut header = ProtocolHeader::decode(&mut rx);
    while let Ok(Some(ProtocolHeader::SASL)) = header {
        // SASL frames, then the AMQP header once the outcome is sent.
        loop {
            match frame::decode(&mut rx, &FrameLimits { max_frame_size: u32::MAX }) {
                Ok(Some(f)) if matches!(f.kind, FrameKind::Sasl) => continue,
                _ => break,
            }
        }
        header = ProtocolHeader::decode(&mut rx);
    }
    match header {
        Ok(Some(ProtocolHeader::AMQP)) => {}
        Ok(None) => return,
        other => panic!("the hub's output starts with {other:?}"),
    }
    loop {
        let frame = match frame::decode(&mut rx, &FrameLimits { max_frame_size: u32::MAX }) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => panic!("the hub sent a bad frame: {e}"),
        };
        if frame.is_empty() {
            continue;
        }
        let decoded = Performative::decode(&frame.body, &Limits::default());
        assert!(decoded.is_ok(), "the hub sent an undecodable body: {decoded:?}");
    }
    assert!(rx.is_empty(), "the hub's output ends mid-frame");
}

/// What a device sends once its links are up: telemetry (single, batched, too
/// large for its properties), C2D outcomes (one for every delivery so far), a
/// renewed put-token, a detach, an end.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let telemetry = |body: &'static [u8]| {
        let mut m = iothub::Message::new(Bytes::from_static(body));
        m.message_id = Some("m1".into());
        m.properties.set("temperature", "21");
        match message::from_iothub(&m, &HubStamps::default()) {
            Ok(m) => m,
            Err(e) => panic!("cannot map telemetry: {e}"),
        }
    };
    let disposition = |state| {
        Performative::Disposition(Disposition {
            role: Role::Receiver,
            first: 0,
            last: None,
            settled: true,
            state: Some(state),
            batchable: false,
        })
    };
    let settle_all = |state| {
        Performative::Disposition(Disposition {
            role: Role::Receiver,
            first: 0,
            last: Some(15),
            settled: true,
            state: Some(state),
            batchable: false,
        })
    };
    let token = match SasToken::sign(
        "localhost/devices/dev1",
        KEY,
        START + Duration::from_secs(7200),
        None,
    ) {
        Ok(t) => t,
        Err(e) => panic!("cannot sign: {e}"),
    };
    let renewal = PutToken::for_token(MessageId::Ulong(2), &token).to_message();
    let detach = Performative::Detach(crate::amqp::performative::Detach {
        handle: EVENTS,
        closed: true,
        error: None,
    });
    let twin = |operation| {
        TwinRequest { correlation_id: MessageId::String("c-1".into()), operation }.to_message()
    };
    let patch = |json: &'static [u8]| Bytes::from_static(json);
    // The hub's request id is a GUID the fuzzer must guess; this one answers nothing.
    let answer = MethodResponse {
        request_id: "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f".into(),
        status: 200,
        payload: Bytes::from_static(b"{\"result\":\"ok\"}"),
    };
    let method_response =
        methods::response_to_message(&answer, methods::correlation_id(&answer.request_id));
    let seed = |schedule: [u8; 2], parts: &[Vec<u8>]| {
        let mut out = schedule.to_vec();
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    };
    vec![
        seed([0x00, 0x00], &[transfer(EVENTS, 1, &telemetry(b"{\"t\":1}"))]),
        seed(
            [0x3F, 0x21],
            &[
                transfer(EVENTS, 1, &telemetry(b"a")),
                transfer(EVENTS, 2, &telemetry(b"b")),
                amqp_frame_bytes(0, &disposition(DeliveryState::Accepted)),
            ],
        ),
        seed([0x00, 0x00], &[amqp_frame_bytes(0, &disposition(DeliveryState::Released))]),
        // One settlement for everything the hub has sent so far, its first C2D
        // message among it.
        seed([0x00, 0x00], &[amqp_frame_bytes(0, &settle_all(DeliveryState::Accepted))]),
        seed(
            [0x00, 0x00],
            &[amqp_frame_bytes(0, &disposition(DeliveryState::Rejected { error: None }))],
        ),
        seed([0x8F, 0x05], &[transfer(CBS_REQUESTS, 1, &renewal), amqp_frame_bytes(0, &detach)]),
        seed([0xF1, 0x77], &[amqp_frame_bytes(0, &flow(C2D, 0))]),
        seed([0x00, 0x00], &[transfer(TWIN_REQUESTS, 2, &twin(TwinOperation::Get))]),
        seed(
            [0x21, 0x10],
            &[
                transfer(
                    TWIN_REQUESTS,
                    2,
                    &twin(TwinOperation::PatchReported(patch(b"{\"b\":60}"))),
                ),
                transfer(TWIN_REQUESTS, 3, &twin(TwinOperation::PatchReported(patch(b"[1]")))),
                transfer(TWIN_REQUESTS, 4, &twin(TwinOperation::UnsubscribeDesired)),
            ],
        ),
        seed([0x00, 0x00], &[transfer(METHOD_RESPONSES, 2, &method_response)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_login_reaches_the_telemetry_handler_and_a_wrong_key_does_not() {
        let seeds = sasl_seeds();
        for (seed, stored) in [(&seeds[0], 1), (&seeds[3], 0)] {
            let (_, stream) = Schedule::split(seed);
            let mut run = HubRun::new(Protocol::Amqp);
            let mut input = BytesMut::new();
            ProtocolHeader::SASL.encode(&mut input);
            input.extend_from_slice(stream);
            // Byte by byte, as the seeds' schedule feeds them: the hub grants credit
            // on the telemetry link before the transfer behind its attach is whole.
            for byte in input.iter() {
                run.input(&[*byte]);
            }
            run.release_stores();
            assert_eq!(run.stored, stored);
        }
        for seed in &seeds {
            amqp_hub_sasl(seed);
        }
    }

    #[test]
    fn amqp_hub_seeds_run() {
        for seed in seeds() {
            amqp_hub(&seed);
        }
    }

    #[test]
    fn the_hello_authenticates_and_attaches() {
        let mut run = HubRun::new(Protocol::Amqp);
        for step in device_hello() {
            run.input(&step);
        }
        run.input(&transfer(EVENTS, 1, &{
            let m = iothub::Message::new(Bytes::from_static(b"x"));
            match message::from_iothub(&m, &HubStamps::default()) {
                Ok(m) => m,
                Err(e) => panic!("{e}"),
            }
        }));
        assert!(!run.closed);
        assert_eq!(run.stored, 1, "the hub reached the telemetry handler");
    }

    #[test]
    fn the_prelude_reaches_the_twin_and_method_handlers() {
        // The body's own prelude, with an empty stream and schedule.
        let mut run = HubRun::new(Protocol::Amqp);
        for step in device_hello() {
            run.input(&step);
        }
        run.input(&subscribe());
        let patch = TwinPatch::parse(b"{\"x\":1}").expect("a patch");
        assert_eq!(run.hub.update_desired(run.now, super::super::DEVICE_ID, &patch), Ok(2));
        let payload = Bytes::new();
        let invoked = run.hub.invoke_method(
            run.now,
            super::super::DEVICE_ID,
            "m",
            payload,
            Duration::from_secs(5),
        );
        assert!(invoked.is_ok(), "the device's methods receiver is attached: {invoked:?}");
        run.drain();
        let wire = &run.wire[..];
        let has = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"$version"), "the desired notification went out");
        assert!(has(b"IoThub-methodname"), "the method request went out");
    }
}
