//! Property tests: every performative, terminus and delivery state survives encode
//! → decode; no frame body makes the decoder panic, and what it accepts encodes
//! back to the same performative.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

use super::*;
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::types::{Symbol, Value};
use crate::utf8::Utf8Bytes;

fn symbol() -> impl Strategy<Value = Symbol> {
    "[ -~]{0,12}"
        .prop_map(|s: alloc::string::String| Symbol::try_from_bytes(Bytes::from(s)).expect("ASCII"))
}

fn string() -> impl Strategy<Value = Utf8Bytes> {
    "\\PC{0,12}".prop_map(Utf8Bytes::from)
}

fn symbols() -> impl Strategy<Value = Vec<Symbol>> {
    vec(symbol(), 0..3)
}

fn fields() -> impl Strategy<Value = Fields> {
    let value = prop_oneof![
        Just(Value::Null),
        any::<u32>().prop_map(Value::Uint),
        any::<f64>().prop_map(Value::Double),
        string().prop_map(Value::String),
    ];
    vec((symbol(), value), 0..3)
}

fn error() -> impl Strategy<Value = AmqpError> {
    (symbol(), of(string()), fields()).prop_map(|(condition, description, info)| AmqpError {
        condition,
        description,
        info,
    })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Sender), Just(Role::Receiver)]
}

fn rcv_settle_mode() -> impl Strategy<Value = Option<ReceiverSettleMode>> {
    of(prop_oneof![Just(ReceiverSettleMode::First), Just(ReceiverSettleMode::Second)])
}

fn delivery_state() -> impl Strategy<Value = DeliveryState> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(section_number, section_offset)| {
            DeliveryState::Received { section_number, section_offset }
        }),
        Just(DeliveryState::Accepted),
        of(error()).prop_map(|error| DeliveryState::Rejected { error }),
        Just(DeliveryState::Released),
        (any::<bool>(), any::<bool>(), fields()).prop_map(|(f, u, a)| DeliveryState::Modified {
            delivery_failed: f,
            undeliverable_here: u,
            message_annotations: a,
        }),
    ]
}

fn terminus() -> impl Strategy<Value = Terminus> {
    let durable = prop_oneof![
        Just(TerminusDurability::None),
        Just(TerminusDurability::Configuration),
        Just(TerminusDurability::UnsettledState),
    ];
    (of(string()), durable, symbol(), any::<u32>(), any::<bool>(), fields()).prop_map(
        |(address, durable, expiry_policy, timeout, dynamic, dynamic_node_properties)| Terminus {
            address,
            durable,
            expiry_policy,
            timeout,
            dynamic,
            dynamic_node_properties,
        },
    )
}

fn source() -> impl Strategy<Value = Source> {
    let filter = vec((symbol().prop_map(Value::Symbol), string().prop_map(Value::String)), 0..2);
    (terminus(), of(symbol()), filter, of(delivery_state()), symbols(), symbols()).prop_map(
        |(terminus, distribution_mode, filter, default_outcome, outcomes, capabilities)| Source {
            terminus,
            distribution_mode,
            filter,
            default_outcome,
            outcomes,
            capabilities,
        },
    )
}

fn target() -> impl Strategy<Value = Target> {
    (terminus(), symbols()).prop_map(|(terminus, capabilities)| Target { terminus, capabilities })
}

fn open() -> impl Strategy<Value = Open> {
    (
        string(),
        of(string()),
        any::<u32>(),
        any::<u16>(),
        of(any::<u32>()),
        symbols(),
        symbols(),
        symbols(),
        symbols(),
        fields(),
    )
        .prop_map(|(c, h, mfs, cm, idle, ol, il, oc, dc, p)| Open {
            container_id: c,
            hostname: h,
            max_frame_size: mfs,
            channel_max: cm,
            idle_time_out: idle,
            outgoing_locales: ol,
            incoming_locales: il,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
}

fn begin() -> impl Strategy<Value = Begin> {
    (
        of(any::<u16>()),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        symbols(),
        symbols(),
        fields(),
    )
        .prop_map(|(rc, noi, iw, ow, hm, oc, dc, p)| Begin {
            remote_channel: rc,
            next_outgoing_id: noi,
            incoming_window: iw,
            outgoing_window: ow,
            handle_max: hm,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
}

/// An attach's target: a target, a transaction coordinator (part 4 §4.5.1), or
/// none.
fn target_or_coordinator() -> impl Strategy<Value = (Option<Target>, Option<Coordinator>)> {
    prop_oneof![
        of(target()).prop_map(|t| (t, None)),
        symbols().prop_map(|capabilities| (None, Some(Coordinator { capabilities }))),
    ]
}

fn attach() -> impl Strategy<Value = Attach> {
    let snd = prop_oneof![
        Just(SenderSettleMode::Unsettled),
        Just(SenderSettleMode::Settled),
        Just(SenderSettleMode::Mixed),
    ];
    let unsettled = vec(
        (
            vec(any::<u8>(), 0..4).prop_map(|t| Value::Binary(Bytes::from(t))),
            delivery_state().prop_map(|s| Value::from(s.to_composite())),
        ),
        0..2,
    );
    (
        (
            string(),
            any::<u32>(),
            role(),
            snd,
            rcv_settle_mode(),
            of(source()),
            target_or_coordinator(),
        ),
        (unsettled, any::<bool>(), of(any::<u32>()), of(any::<u64>()), symbols(), symbols()),
        fields(),
    )
        .prop_map(|((n, h, r, s, rs, so, ta), (u, iu, idc, mms, oc, dc), p)| Attach {
            name: n,
            handle: h,
            role: r,
            snd_settle_mode: s,
            rcv_settle_mode: rs,
            source: so,
            target: ta.0,
            coordinator: ta.1,
            unsettled: u,
            incomplete_unsettled: iu,
            initial_delivery_count: idc,
            max_message_size: mms,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        of(any::<u32>()),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        of(any::<u32>()),
        of(any::<u32>()),
        of(any::<u32>()),
        of(any::<u32>()),
        any::<bool>(),
        any::<bool>(),
        fields(),
    )
        .prop_map(|(nii, iw, noi, ow, h, dc, lc, a, d, e, p)| Flow {
            next_incoming_id: nii,
            incoming_window: iw,
            next_outgoing_id: noi,
            outgoing_window: ow,
            handle: h,
            delivery_count: dc,
            link_credit: lc,
            available: a,
            drain: d,
            echo: e,
            properties: p,
        })
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (
        any::<u32>(),
        of(any::<u32>()),
        of(vec(any::<u8>(), 0..=32).prop_map(Bytes::from)),
        of(prop_oneof![Just(0), Just(0x8001_3700), any::<u32>()]),
        of(any::<bool>()),
        any::<bool>(),
        rcv_settle_mode(),
        of(delivery_state()),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(h, id, tag, mf, s, m, rs, st, r, a, b)| Transfer {
            handle: h,
            delivery_id: id,
            delivery_tag: tag,
            message_format: mf,
            settled: s,
            more: m,
            rcv_settle_mode: rs,
            state: st,
            resume: r,
            aborted: a,
            batchable: b,
        })
}

fn disposition() -> impl Strategy<Value = Disposition> {
    (role(), any::<u32>(), of(any::<u32>()), any::<bool>(), of(delivery_state()), any::<bool>())
        .prop_map(|(role, first, last, settled, state, batchable)| Disposition {
            role,
            first,
            last,
            settled,
            state,
            batchable,
        })
}

fn performative() -> impl Strategy<Value = Performative> {
    prop_oneof![
        open().prop_map(Performative::Open),
        begin().prop_map(Performative::Begin),
        attach().prop_map(|a| Performative::Attach(Box::new(a))),
        flow().prop_map(Performative::Flow),
        transfer().prop_map(Performative::Transfer),
        disposition().prop_map(Performative::Disposition),
        (any::<u32>(), any::<bool>(), of(error())).prop_map(|(handle, closed, error)| {
            Performative::Detach(Detach { handle, closed, error })
        }),
        of(error()).prop_map(|error| Performative::End(End { error })),
        of(error()).prop_map(|error| Performative::Close(Close { error })),
    ]
}

proptest! {
    /// Every performative encodes, and decodes back equal, with the payload after it
    /// returned untouched.
    #[test]
    fn every_performative_round_trips(
        performative in performative(),
        payload in vec(any::<u8>(), 0..16),
    ) {
        let mut out = BytesMut::new();
        performative.encode(&mut out).expect("encodes");
        out.extend_from_slice(&payload);
        let decoded = Performative::decode(&out.freeze(), &Limits::default());
        prop_assert_eq!(decoded, Ok((performative, Bytes::from(payload))));
    }

    /// Encoding straight into bytes writes what encoding the collected composite
    /// writes, for every performative and delivery state.
    #[test]
    fn direct_encoding_matches_the_composite(
        performative in performative(),
        state in delivery_state(),
    ) {
        let (mut direct, mut collected) = (BytesMut::new(), BytesMut::new());
        performative.encode(&mut direct).expect("encodes");
        performative.to_composite().encode(&mut collected).expect("encodes");
        prop_assert_eq!(&direct, &collected);
        let (mut direct, mut collected) = (BytesMut::new(), BytesMut::new());
        CompositeType::encode(&state, &mut direct).expect("encodes");
        state.to_composite().encode(&mut collected).expect("encodes");
        prop_assert_eq!(direct, collected);
    }

    /// Every delivery state writes and reads back equal.
    #[test]
    fn every_delivery_state_round_trips(state in delivery_state()) {
        let mut out = BytesMut::new();
        state.to_composite().encode(&mut out).expect("encodes");
        let (composite, _) = Composite::decode(&out.freeze(), &Limits::default()).expect("decodes");
        prop_assert_eq!(DeliveryState::from_composite(composite), Ok(state));
    }

    /// Arbitrary bytes, and encoded performatives with a byte changed, never panic;
    /// whatever decodes re-encodes to the same performative.
    #[test]
    fn arbitrary_bodies_never_panic(
        bytes in vec(any::<u8>(), 0..256),
        performative in performative(),
        flip in any::<(usize, u8)>(),
    ) {
        let mut corrupted = BytesMut::new();
        performative.encode(&mut corrupted).expect("encodes");
        let at = flip.0 % corrupted.len();
        corrupted[at] ^= flip.1;
        for body in [Bytes::from(bytes), corrupted.freeze()] {
            if let Ok((decoded, _)) = Performative::decode(&body, &Limits::default()) {
                let mut again = BytesMut::new();
                decoded.encode(&mut again).expect("encodes");
                let redecoded = Performative::decode(&again.freeze(), &Limits::default());
                prop_assert_eq!(redecoded.map(|(p, _)| p), Ok(decoded));
            }
        }
    }
}
