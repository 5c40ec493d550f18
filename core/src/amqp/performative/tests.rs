//! Performatives as IoT Hub's SDKs send them (spec file §5.1, §5.3–§5.5), and the
//! rules decoding enforces, named after their sections.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::*;
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::types::{Array, Descriptor, PrimitiveType, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// The pieces of a frame body, joined.
fn body(pieces: &[&[u8]]) -> Bytes {
    Bytes::from(pieces.concat())
}

fn decode(bytes: &Bytes) -> Result<(Performative, Bytes), Error> {
    Performative::decode(bytes, &Limits::default())
}

fn encode(performative: &Performative) -> Bytes {
    let mut out = BytesMut::new();
    performative.encode(&mut out).expect("encodes");
    out.freeze()
}

fn sym(s: &'static str) -> Symbol {
    Symbol::from_static(s)
}

fn string(s: &'static str) -> Utf8Bytes {
    Utf8Bytes::from_static(s)
}

/// The C SDK's open (spec file §5.1): a random 40-character container id, the hub's
/// name, idle-time-out 240 000 ms.
#[test]
fn p2_2_7_1_open_as_the_c_sdk_sends_it() {
    let bytes = body(&[
        &[0x00, 0x53, 0x10], // descriptor: smallulong 0x10, open
        &[0xC0, 0x51, 0x05], // list8: 81 bytes, 5 fields
        &[0xA1, 0x28],       // container-id: str8, 40 bytes
        b"0123456789abcdef0123456789abcdef01234567",
        &[0xA1, 0x17], // hostname: str8, 23 bytes
        b"myhub.azure-devices.net",
        &[0x70, 0x00, 0x01, 0x00, 0x00], // max-frame-size: uint 65536
        &[0x60, 0xFF, 0xFF],             // channel-max: ushort 65535 (the default, explicit)
        &[0x70, 0x00, 0x03, 0xA9, 0x80], // idle-time-out: uint 240000 ms
    ]);
    let (performative, payload) = decode(&bytes).expect("decodes");
    assert!(payload.is_empty());
    let Performative::Open(open) = &performative else { panic!("{performative:?}") };
    assert_eq!(open.container_id, "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(open.hostname.as_deref(), Some("myhub.azure-devices.net"));
    assert_eq!(open.max_frame_size, 65_536);
    assert_eq!(open.channel_max, Open::DEFAULT_CHANNEL_MAX);
    assert_eq!(open.idle_time_out, Some(240_000));
    assert!(open.offered_capabilities.is_empty() && open.properties.is_empty());
    // The default channel-max is written as null, the rest as received.
    let again = encode(&performative);
    assert_eq!(again.len(), bytes.len() - 2);
    assert_eq!(decode(&again).map(|(p, _)| p), Ok(performative));
}

/// The C SDK's telemetry sender attach (spec file §5.3): link name, source named
/// after it, the `amqps://` events address, unsettled/first settle modes (uAMQP
/// defaults), and `com.microsoft:client-version`.
#[test]
fn p2_2_7_3_attach_as_the_c_sdk_telemetry_sender_sends_it() {
    let bytes = body(&[
        &[0x00, 0x53, 0x12], // descriptor: attach
        &[0xC0, 0xBB, 0x0E], // list8: 187 bytes, 14 fields
        &[0xA1, 0x10],       // name: str8, 16 bytes
        b"link-snd-device1",
        &[0x43],                               // handle: uint0
        &[0x42],                               // role: false, sender
        &[0x50, 0x00],                         // snd-settle-mode: ubyte 0, unsettled
        &[0x50, 0x00],                         // rcv-settle-mode: ubyte 0, first
        &[0x00, 0x53, 0x28, 0xC0, 0x1A, 0x01], // source: descriptor 0x28, list8 of 1
        &[0xA1, 0x17],                         //   address: str8, 23 bytes
        b"link-snd-device1-source",
        &[0x00, 0x53, 0x29, 0xC0, 0x42, 0x01], // target: descriptor 0x29, list8 of 1
        &[0xA1, 0x3F],                         //   address: str8, 63 bytes
        b"amqps://myhub.azure-devices.net/devices/device1/messages/events",
        &[0x40],             // unsettled: null
        &[0x40],             // incomplete-unsettled: null (false)
        &[0x43],             // initial-delivery-count: uint0
        &[0x44],             // max-message-size: ulong0 (no limit)
        &[0x40],             // offered-capabilities: null
        &[0x40],             // desired-capabilities: null
        &[0xC1, 0x34, 0x02], // properties: map8, 52 bytes, 1 pair
        &[0xA3, 0x1C],       //   key: sym8, 28 bytes
        b"com.microsoft:client-version",
        &[0xA1, 0x13], //   value: str8, 19 bytes
        b"iothubclient/1.11.0",
    ]);
    let (performative, _) = decode(&bytes).expect("decodes");
    let Performative::Attach(attach) = &performative else { panic!("{performative:?}") };
    assert_eq!(attach.name, "link-snd-device1");
    assert_eq!((attach.handle, attach.role), (0, Role::Sender));
    assert_eq!(attach.snd_settle_mode, SenderSettleMode::Unsettled);
    assert_eq!(attach.rcv_settle_mode, Some(ReceiverSettleMode::First));
    let source = attach.source.as_ref().expect("source");
    assert_eq!(source.terminus.address.as_deref(), Some("link-snd-device1-source"));
    let target = attach.target.as_ref().expect("target");
    assert_eq!(
        target.terminus.address.as_deref(),
        Some("amqps://myhub.azure-devices.net/devices/device1/messages/events")
    );
    assert_eq!(target.terminus.expiry_policy, "session-end");
    assert_eq!((attach.initial_delivery_count, attach.max_message_size), (Some(0), Some(0)));
    assert_eq!(
        attach.properties,
        vec![(sym("com.microsoft:client-version"), Value::String(string("iothubclient/1.11.0")))]
    );
    assert_eq!(decode(&encode(&performative)).map(|(p, _)| p), Ok(performative));
}

/// Node's C2D receiver (spec file §5.3): the path address as source, no target,
/// and a sender attach from the .NET stack without initial-delivery-count (spec file
/// §5.4), which decodes with the field absent.
#[test]
fn p2_2_7_3_attach_receiver_from_node_and_sender_without_initial_delivery_count() {
    let bytes = body(&[
        &[0x00, 0x53, 0x12, 0xC0, 0x43, 0x06], // attach, list8: 67 bytes, 6 fields
        &[0xA1, 0x0E],
        b"rheaReceiver_1",                     // name
        &[0x52, 0x01],                         // handle: smalluint 1
        &[0x41],                               // role: true, receiver
        &[0x40],                               // snd-settle-mode: null (mixed)
        &[0x40],                               // rcv-settle-mode: null
        &[0x00, 0x53, 0x28, 0xC0, 0x28, 0x01], // source, list8: 40 bytes, 1 field
        &[0xA1, 0x25],
        b"/devices/device1/messages/devicebound",
    ]);
    let (performative, _) = decode(&bytes).expect("decodes");
    let Performative::Attach(attach) = &performative else { panic!("{performative:?}") };
    assert_eq!((attach.handle, attach.role), (1, Role::Receiver));
    assert_eq!(attach.snd_settle_mode, SenderSettleMode::Mixed);
    assert_eq!(
        attach.source.as_ref().and_then(|s| s.terminus.address.as_deref()),
        Some("/devices/device1/messages/devicebound")
    );
    assert_eq!(attach.target, None);

    let sender = Attach::new(string("events"), 2, Role::Sender);
    let decoded = decode(&encode(&Performative::Attach(Box::new(sender.clone()))));
    assert!(
        matches!(decoded, Ok((Performative::Attach(a), _)) if a.initial_delivery_count.is_none() && *a == sender)
    );
}

/// The first bytes of a transfer with `message_format` (uint) then its payload.
fn transfer_body(format: &[u8], payload: &[u8]) -> Bytes {
    let list_size = 1 + 1 + 1 + 6 + format.len() + 1;
    body(&[
        &[0x00, 0x53, 0x14],                   // descriptor: transfer
        &[0xC0, list_size as u8, 0x05],        // list8, 5 fields
        &[0x43],                               // handle: uint0
        &[0x43],                               // delivery-id: uint0
        &[0xA0, 0x04, 0x00, 0x00, 0x00, 0x01], // delivery-tag: vbin8, 4 bytes
        format,                                // message-format
        &[0x42],                               // settled: false
        payload,
    ])
}

/// A data section (part 3 §3.2.6) holding `hello`.
const DATA_HELLO: &[u8] = &[0x00, 0x53, 0x75, 0xA0, 0x05, b'h', b'e', b'l', b'l', b'o'];

/// A transfer's payload is the bytes after the performative, a slice of the frame
/// body (no copy).
#[test]
fn p2_2_7_5_transfer_message_format_0_payload_is_a_slice_of_the_body() {
    let bytes = transfer_body(&[0x43], DATA_HELLO); // message-format: uint0
    let (performative, payload) = decode(&bytes).expect("decodes");
    let Performative::Transfer(transfer) = &performative else { panic!("{performative:?}") };
    assert_eq!(transfer.handle, 0);
    assert_eq!(transfer.delivery_id, Some(0));
    assert_eq!(transfer.delivery_tag.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(transfer.message_format, Some(definitions::MESSAGE_FORMAT_AMQP));
    assert_eq!(transfer.settled, Some(false));
    assert!(!transfer.more);
    assert_eq!(&payload[..], DATA_HELLO);
    let start = bytes.len() - DATA_HELLO.len();
    assert_eq!(payload.as_ptr(), bytes[start..].as_ptr(), "the payload was copied");
}

/// The C SDK batches telemetry: message-format 0x80013700 (spec file §5.4, TV-18),
/// its payload data sections each holding a whole message.
#[test]
fn tv18_transfer_with_the_c_sdk_batch_message_format() {
    let inner = [&[0x00, 0x53, 0x75, 0xA0, 0x0A][..], DATA_HELLO].concat(); // data: a message
    let bytes = transfer_body(&[0x70, 0x80, 0x01, 0x37, 0x00], &inner); // uint 0x80013700
    let (performative, payload) = decode(&bytes).expect("decodes");
    let Performative::Transfer(transfer) = &performative else { panic!("{performative:?}") };
    assert_eq!(transfer.message_format, Some(0x8001_3700));
    assert_eq!(transfer.message_format, Some(definitions::MESSAGE_FORMAT_BATCH));
    assert_eq!(&payload[..], &inner[..]);
    let mut again = BytesMut::new();
    performative.encode(&mut again).expect("encodes");
    again.extend_from_slice(&payload);
    assert_eq!(&again[..], &bytes[..], "the smallest encoding is the C SDK's");
}

/// The dispositions IoT Hub's SDKs send for complete, reject and abandon (spec file
/// §5.5), settled, decode to accepted, rejected with the C SDK's description, and
/// released.
#[test]
fn p3_3_4_dispositions_for_complete_reject_and_abandon() {
    let rejected = DeliveryState::Rejected {
        error: Some(AmqpError::new(
            sym("amqp:internal-error"),
            Some(string("Rejected by application")),
        )),
    };
    for state in [DeliveryState::Accepted, rejected, DeliveryState::Released] {
        let disposition = Performative::Disposition(Disposition {
            role: Role::Receiver,
            first: 7,
            last: None,
            settled: true,
            state: Some(state),
            batchable: false,
        });
        let bytes = encode(&disposition);
        assert_eq!(&bytes[..3], &[0x00, 0x53, 0x15]);
        assert_eq!(decode(&bytes).map(|(p, _)| p), Ok(disposition));
    }
    // accepted, written by hand: disposition(true, 7, null, true, accepted).
    let bytes = body(&[
        &[0x00, 0x53, 0x15, 0xC0, 0x0A, 0x05], // disposition, list8: 10 bytes, 5 fields
        &[0x41],                               // role: receiver
        &[0x52, 0x07],                         // first: smalluint 7
        &[0x40],                               // last: null
        &[0x41],                               // settled: true
        &[0x00, 0x53, 0x24, 0x45],             // state: accepted, list0
    ]);
    let Ok((Performative::Disposition(d), _)) = decode(&bytes) else { panic!() };
    assert_eq!(d.state, Some(DeliveryState::Accepted));
}

/// §1.4 "mandatory": each mandatory field of each composite, null or cut off,
/// is refused naming the field, with `amqp:invalid-field`.
#[test]
fn p1_1_4_every_mandatory_field_missing_is_invalid_field() {
    let full: Vec<(Composite, &[(usize, &str)])> = vec![
        (Open::new(string("c")).to_composite(), &[(0, "container-id")]),
        (
            Begin { next_outgoing_id: 1, incoming_window: 2, outgoing_window: 3, ..begin() }
                .to_composite(),
            &[(1, "next-outgoing-id"), (2, "incoming-window"), (3, "outgoing-window")],
        ),
        (
            Attach::new(string("l"), 1, Role::Receiver).to_composite(),
            &[(0, "name"), (1, "handle"), (2, "role")],
        ),
        (
            Flow { incoming_window: 1, next_outgoing_id: 2, outgoing_window: 3, ..Flow::default() }
                .to_composite(),
            &[(1, "incoming-window"), (2, "next-outgoing-id"), (3, "outgoing-window")],
        ),
        (Transfer { handle: 1, ..Transfer::default() }.to_composite(), &[(0, "handle")]),
        (
            Disposition {
                role: Role::Sender,
                first: 1,
                last: None,
                settled: false,
                state: None,
                batchable: false,
            }
            .to_composite(),
            &[(0, "role"), (1, "first")],
        ),
        (Detach { handle: 1, closed: true, error: None }.to_composite(), &[(0, "handle")]),
    ];
    for (composite, mandatory) in full {
        for &(index, name) in mandatory {
            let mut fields = composite.fields().to_vec();
            fields[index] = Value::Null;
            let broken = Composite::new(composite.descriptor.clone(), fields.clone());
            let err = Performative::from_composite(broken).expect_err(name);
            assert!(matches!(err, Error::MissingField { field, .. } if field == name), "{err}");
            assert_eq!(err.condition(), condition::INVALID_FIELD);
            // Cut off at the field: a truncated list reads it as null (§1.4).
            fields.truncate(index);
            let cut = Composite::new(composite.descriptor.clone(), fields);
            assert!(matches!(Performative::from_composite(cut), Err(Error::MissingField { .. })));
        }
    }
    let error = Composite::new(0x1d_u64, vec![Value::Null, Value::String(string("d"))]);
    assert!(matches!(
        AmqpError::from_composite(error),
        Err(Error::MissingField { field: "condition", .. })
    ));
    let received = Composite::new(0x23_u64, vec![Value::Uint(1)]);
    assert!(matches!(
        DeliveryState::from_composite(received),
        Err(Error::MissingField { field: "section-offset", .. })
    ));
}

fn begin() -> Begin {
    Begin::new(0, 0, 0)
}

/// A field of another type than its definition's is `amqp:decode-error`: a
/// container-id as a symbol, a handle as a ulong, a role as a ubyte, properties
/// with a string key, a source that is a target.
#[test]
fn p1_1_4_a_field_of_the_wrong_type_is_a_decode_error() {
    let cases = [
        Composite::new(0x10_u64, vec![Value::Symbol(sym("c"))]),
        Composite::new(0x16_u64, vec![Value::Ulong(1)]),
        Composite::new(0x15_u64, vec![Value::Ubyte(1), Value::Uint(0)]),
        Composite::new(
            0x17_u64,
            vec![Value::from(Composite::new(
                0x1d_u64,
                vec![
                    Value::Symbol(sym("amqp:internal-error")),
                    Value::Null,
                    Value::Map(vec![(Value::String(string("k")), Value::Null)]),
                ],
            ))],
        ),
        Composite::new(
            0x10_u64,
            vec![
                Value::String(string("c")),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Array(Array::new(PrimitiveType::String, vec![Value::String(string("x"))])),
            ],
        ),
    ];
    for composite in cases {
        let err = Performative::from_composite(composite).expect_err("wrong type");
        assert!(matches!(err, Error::WrongType { .. }), "{err}");
        assert_eq!(err.condition(), condition::DECODE_ERROR);
    }
    let mut attach = Attach::new(string("l"), 0, Role::Sender).to_composite().into_fields();
    attach.resize(6, Value::Null);
    attach[5] = Value::from(Target::default().to_composite());
    let err = Performative::from_composite(Composite::new(0x12_u64, attach)).expect_err("target");
    assert!(matches!(err, Error::UnexpectedDescriptor { .. }), "{err}");
    assert_eq!(err.condition(), condition::DECODE_ERROR);
}

/// A value of the right type outside the definition's choices or length is
/// `amqp:invalid-field`: snd-settle-mode 3 (§2.8.2), rcv-settle-mode 2 (§2.8.3),
/// a 33-byte delivery tag (§2.8.7), durable 3 (part 3 §3.5.5).
#[test]
fn p2_2_8_values_outside_their_definition_are_invalid_field() {
    let attach = |i: usize, v: Value| {
        let mut f = Attach::new(string("l"), 0, Role::Sender).to_composite().into_fields();
        f.resize(i + 1, Value::Null);
        f[i] = v;
        Performative::from_composite(Composite::new(0x12_u64, f))
    };
    let source = Value::from(Composite::new(0x28_u64, vec![Value::Null, Value::Uint(3)]));
    let tag =
        Transfer { handle: 0, delivery_tag: Some(Bytes::from(vec![0; 33])), ..Transfer::default() };
    let results = [
        attach(3, Value::Ubyte(3)),
        attach(4, Value::Ubyte(2)),
        attach(5, source),
        Performative::from_composite(tag.to_composite()),
    ];
    for result in results {
        let err = result.expect_err("invalid");
        assert!(matches!(err, Error::InvalidField { .. }), "{err}");
        assert_eq!(err.condition(), condition::INVALID_FIELD);
    }
    let max =
        Transfer { handle: 0, delivery_tag: Some(Bytes::from(vec![0; 32])), ..Transfer::default() };
    assert_eq!(Transfer::from_composite(max.to_composite()), Ok(max));
}

/// §2.7: a descriptor that is no performative is `amqp:decode-error`; a
/// transaction state of part 4 is `amqp:not-implemented`, and a coordinator target
/// is read as one, for the link's refusal (part 4 §4.5.1); a body that is not a
/// composite is a decode error.
#[test]
fn p2_2_7_unknown_descriptors_and_transactions() {
    let unknown = body(&[&[0x00, 0x53, 0x19, 0x45]]); // descriptor 0x19, list0
    let err = decode(&unknown).expect_err("unknown");
    assert!(matches!(err, Error::UnknownDescriptor { found: Descriptor::Code(0x19), .. }));
    assert_eq!(err.condition(), condition::DECODE_ERROR);

    let sasl_init = body(&[&[0x00, 0x53, 0x41, 0x45]]);
    assert_eq!(decode(&sasl_init).map_err(|e| e.condition()), Err(condition::DECODE_ERROR));

    // disposition(sender, 0, state: transactional-state (0x34), list0)
    let transactional = body(&[
        &[0x00, 0x53, 0x15, 0xC0, 0x09, 0x05, 0x42, 0x43, 0x40, 0x40],
        &[0x00, 0x53, 0x34, 0x45],
    ]);
    let err = decode(&transactional).expect_err("transactional-state");
    assert_eq!(err.condition(), condition::NOT_IMPLEMENTED, "{err}");

    let coordinator = Composite::new(
        0x12_u64,
        vec![
            Value::String(string("txn")),
            Value::Uint(0),
            Value::Boolean(false),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::from(Composite::new(0x30_u64, vec![])),
        ],
    );
    let Ok(Performative::Attach(attach)) = Performative::from_composite(coordinator) else {
        panic!("an attach to a coordinator reads");
    };
    assert_eq!(attach.coordinator, Some(Coordinator::default()));
    assert_eq!(attach.target, None);

    for not_composite in [&[0x40][..], &[0x45], &[0x00, 0x53, 0x10, 0x40], &[]] {
        let err = decode(&Bytes::copy_from_slice(not_composite)).expect_err("not a composite");
        assert!(matches!(err, Error::Decode(_)), "{err}");
        assert_eq!(err.condition(), condition::DECODE_ERROR);
    }
}

/// §1.5: a symbolic descriptor names the same performative as its code.
#[test]
fn p1_1_5_symbolic_descriptors_are_accepted() {
    let by_symbol = Composite::new(sym("amqp:close:list"), vec![]);
    assert_eq!(Performative::from_composite(by_symbol), Ok(Performative::Close(Close::default())));
    let state = Composite::new(sym("amqp:released:list"), vec![]);
    assert_eq!(DeliveryState::from_composite(state), Ok(DeliveryState::Released));
}

/// §1.4 "multiple": a single value and an array of one read the same, null reads
/// as none.
#[test]
fn p1_1_4_multiple_fields_take_one_value_or_an_array() {
    let cap = sym("com.microsoft:x");
    let single = Composite::new(
        0x10_u64,
        vec![
            Value::String(string("c")),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Symbol(cap.clone()),
        ],
    );
    let Ok(Performative::Open(open)) = Performative::from_composite(single) else { panic!() };
    assert_eq!(open.offered_capabilities, vec![cap.clone()]);
    let encoded = open.to_composite();
    assert_eq!(
        encoded.field(7),
        &Value::Array(Array::new(PrimitiveType::Symbol, vec![Value::Symbol(cap)]))
    );
    assert_eq!(Open::from_composite(encoded), Ok(open));

    let source = Source {
        outcomes: vec![sym("amqp:accepted:list"), sym("amqp:rejected:list")],
        default_outcome: Some(DeliveryState::Released),
        ..Source::default()
    };
    assert_eq!(Source::from_composite(source.to_composite()), Ok(source));
}

/// §1.4: for a multiple field, null and an empty array (of the field's type)
/// both say "no value" and read the same.
#[test]
fn p1_1_4_null_and_an_empty_array_are_the_same_absence() {
    let open = |capabilities: &[u8]| {
        let size = u8::try_from(1 + 3 + 6 + capabilities.len()).unwrap();
        body(&[
            &[0x00, 0x53, 0x10], // descriptor: smallulong 0x10, open
            &[0xC0, size, 0x08], // list8: 8 fields
            &[0xA1, 0x01, b'c'], // container-id: str8 "c"
            &[0x40; 6],          // hostname .. incoming-locales: null
            capabilities,        // offered-capabilities
        ])
    };
    let null = decode(&open(&[0x40])).expect("decodes").0;
    // array8: size 2, count 0, element constructor sym8
    let empty = decode(&open(&[0xE0, 0x02, 0x00, 0xA3])).expect("decodes").0;
    let Performative::Open(o) = &empty else { panic!("{empty:?}") };
    assert!(o.offered_capabilities.is_empty());
    assert_eq!(empty, null);
}

/// Each performative's descriptor is its code 0x10–0x18, written as smallulong.
#[test]
fn p2_2_7_descriptor_codes() {
    let all = [
        Performative::Open(Open::new(string("c"))),
        Performative::Begin(begin()),
        Performative::Attach(Box::new(Attach::new(string("l"), 0, Role::Sender))),
        Performative::Flow(Flow::default()),
        Performative::Transfer(Transfer::default()),
        Performative::Disposition(Disposition {
            role: Role::Sender,
            first: 0,
            last: None,
            settled: false,
            state: None,
            batchable: false,
        }),
        Performative::Detach(Detach { handle: 0, closed: false, error: None }),
        Performative::End(End::default()),
        Performative::Close(Close {
            error: Some(AmqpError::new(condition::CONNECTION_FORCED, None)),
        }),
    ];
    for (code, performative) in (0x10..).zip(all) {
        assert_eq!(performative.definition().code, code);
        let bytes = encode(&performative);
        assert_eq!(&bytes[..3], &[0x00, 0x53, code as u8]);
        assert_eq!(decode(&bytes), Ok((performative, Bytes::new())));
    }
}
