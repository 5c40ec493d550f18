//! The `amqp_performative` target: a frame body decoded as a performative (AMQP 1.0
//! part 2 §2.7), and its seeds.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::performative::{
    AmqpError, Attach, Begin, Close, Detach, Disposition, End, Fields, Flow, Open, Performative,
    ReceiverSettleMode, Role, SenderSettleMode, Source, Target, Terminus, Transfer, condition,
    definitions,
};
use crate::amqp::types::{Limits, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// Limits small enough that the fuzzer reaches them: 1 KiB values, 12 levels.
const FUZZ_LIMITS: Limits = Limits { max_size: 1024, max_depth: 12 };

/// Decodes `data` as a frame body.
///
/// Properties: the payload is the bytes after the performative; a performative
/// that decodes encodes, and decoding that (with the payload after it) gives the
/// same performative and payload back. An error names a condition.
pub fn amqp_performative(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let (performative, payload) = match Performative::decode(&body, &FUZZ_LIMITS) {
        Ok(decoded) => decoded,
        Err(e) => {
            assert!(e.condition().as_str().starts_with("amqp:"), "{e}");
            return;
        }
    };
    assert!(body.ends_with(&payload), "the payload is not the body's tail");
    let mut out = BytesMut::new();
    if let Err(e) = performative.encode(&mut out) {
        panic!("decoded {performative:?} does not encode: {e}");
    }
    out.extend_from_slice(&payload);
    let again = Performative::decode(&out.freeze(), &Limits::default());
    assert_eq!(again, Ok((performative, payload)), "round trip");
}

fn string(s: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(s)
}

fn encoded(performative: &Performative, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = performative.encode(&mut out) {
        panic!("seed {performative:?}: {e}");
    }
    out.extend_from_slice(payload);
    out.to_vec()
}

/// A data section (part 3 §3.2.6) holding `hello`.
const DATA_HELLO: &[u8] = &[0x00, 0x53, 0x75, 0xA0, 0x05, b'h', b'e', b'l', b'l', b'o'];

/// The performatives of an IoT Hub session as the SDKs and the hub send them (spec
/// file §5.1, §5.3–§5.5): the C SDK's open and begin, telemetry and C2D attaches,
/// transfers in formats 0 and 0x80013700, flows, dispositions with each outcome,
/// and detach, end and close with errors.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let mut open = Open::new(string("0123456789abcdef0123456789abcdef01234567"));
    open.hostname = Some(string("myhub.azure-devices.net"));
    open.max_frame_size = 65_536;
    open.idle_time_out = Some(240_000);
    let begin = Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: u32::MAX,
        outgoing_window: 100,
        handle_max: Begin::DEFAULT_HANDLE_MAX,
        offered_capabilities: vec![],
        desired_capabilities: vec![],
        properties: Fields::new(),
    };
    let mut events = Attach::new(string("link-snd-device1"), 0, Role::Sender);
    events.snd_settle_mode = SenderSettleMode::Unsettled;
    events.rcv_settle_mode = Some(ReceiverSettleMode::First);
    events.source = Some(Source {
        terminus: Terminus::at(string("link-snd-device1-source")),
        ..Source::default()
    });
    events.target = Some(Target {
        terminus: Terminus::at(string(
            "amqps://myhub.azure-devices.net/devices/device1/messages/events",
        )),
        capabilities: vec![],
    });
    events.initial_delivery_count = Some(0);
    events.max_message_size = Some(1 << 20);
    events.properties = vec![(
        Symbol::from_static("com.microsoft:client-version"),
        Value::String(string("iothubclient/1.11.0")),
    )];
    let mut c2d = Attach::new(string("rheaReceiver_1"), 1, Role::Receiver);
    c2d.source = Some(Source {
        terminus: Terminus::at(string("/devices/device1/messages/devicebound")),
        outcomes: vec![Symbol::from_static("amqp:accepted:list")],
        default_outcome: Some(DeliveryState::Released),
        ..Source::default()
    });
    let transfer = |format, settled| Transfer {
        handle: 0,
        delivery_id: Some(3),
        delivery_tag: Some(Bytes::from_static(&[0x2e, 0x0c, 0x1f, 0x6a])),
        message_format: Some(format),
        settled: Some(settled),
        ..Transfer::default()
    };
    let credit = Flow {
        next_incoming_id: Some(0),
        incoming_window: u32::MAX,
        next_outgoing_id: 0,
        outgoing_window: 100,
        handle: Some(1),
        delivery_count: Some(0),
        link_credit: Some(100),
        ..Flow::default()
    };
    let disposition = |state| Disposition {
        role: Role::Receiver,
        first: 3,
        last: Some(4),
        settled: true,
        state: Some(state),
        batchable: false,
    };
    let rejected = DeliveryState::Rejected {
        error: Some(AmqpError::new(
            Symbol::from_static("amqp:internal-error"),
            Some(string("Rejected by application")),
        )),
    };
    let modified = DeliveryState::Modified {
        delivery_failed: true,
        undeliverable_here: false,
        message_annotations: vec![(Symbol::from_static("x-opt-a"), Value::Uint(1))],
    };
    let error = |c| Some(AmqpError::new(c, Some(string("why"))));
    let batch = [&[0x00, 0x53, 0x75, 0xA0, 0x0A][..], DATA_HELLO].concat();
    vec![
        encoded(&Performative::Open(open), b""),
        encoded(&Performative::Begin(begin), b""),
        encoded(&Performative::Attach(Box::new(events)), b""),
        encoded(&Performative::Attach(Box::new(c2d)), b""),
        encoded(
            &Performative::Transfer(transfer(definitions::MESSAGE_FORMAT_AMQP, false)),
            DATA_HELLO,
        ),
        encoded(
            &Performative::Transfer(transfer(definitions::MESSAGE_FORMAT_BATCH, false)),
            &batch,
        ),
        encoded(&Performative::Flow(credit), b""),
        encoded(&Performative::Disposition(disposition(DeliveryState::Accepted)), b""),
        encoded(&Performative::Disposition(disposition(rejected)), b""),
        encoded(&Performative::Disposition(disposition(DeliveryState::Released)), b""),
        encoded(&Performative::Disposition(disposition(modified)), b""),
        encoded(
            &Performative::Detach(Detach {
                handle: 0,
                closed: true,
                error: error(condition::LINK_MESSAGE_SIZE_EXCEEDED),
            }),
            b"",
        ),
        encoded(&Performative::End(End { error: error(condition::SESSION_WINDOW_VIOLATION) }), b""),
        encoded(&Performative::Close(Close { error: error(condition::DECODE_ERROR) }), b""),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed decodes under the fuzzing limits, so the fuzzer starts from
    /// valid bodies, not from the error paths.
    #[test]
    fn amqp_performative_seeds_decode() {
        for seed in seeds() {
            let body = Bytes::from(seed);
            assert!(Performative::decode(&body, &FUZZ_LIMITS).is_ok(), "{body:02x?}");
        }
    }
}
