//! IoT Hub telemetry transfers, typed: hubwire's `transfer` performative and
//! `Message` against fe2o3-amqp-types 0.18 (`Performative::Transfer`,
//! `Message<Data>`, through serde_amqp 0.18), the same bytes in the same run
//! (DESIGN.md, "Tests, fuzzing, benchmarks").
//!
//! The input is one frame body as a device sends telemetry (spec file §5.4): a
//! `transfer` (handle, delivery-id, an 8-byte tag, message-format 0, unsettled)
//! followed by the message: properties (a uuid-shaped message-id string, `to`,
//! content-type and content-encoding), application properties with four string
//! pairs, and a 256 B data section. Both sides must read the other's bytes into
//! equal fields, or the comparison is void. Decoding splits the body at the
//! performative's end for fe2o3 (hubwire finds it itself); hubwire's binary and
//! strings share the input buffer, fe2o3 copies them. Encoding writes the
//! performative and the message into a buffer cleared each iteration.
//!
//! `cargo bench -p hubwire-core --bench amqp_transfer -- --warm-up-time 1 --measurement-time 3`

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fe2o3_amqp_types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp_types::messaging::{self as fe, Data};
use fe2o3_amqp_types::performatives as fe_perf;
use hubwire_core::amqp::message::{ApplicationProperties, Body, Message, MessageId, Properties};
use hubwire_core::amqp::performative::{Performative, Transfer};
use hubwire_core::amqp::types::{Limits, Symbol, Value};
use hubwire_core::utf8::Utf8Bytes;
use serde_amqp::primitives::Binary;
use serde_amqp::serde::Serialize;

const PROPERTIES: [(&str, &str); 4] = [
    ("temperatureAlert", "false"),
    ("sensor", "thermostat1"),
    ("firmware", "1.4.2"),
    ("site", "building-7/floor-3"),
];

fn payload() -> Vec<u8> {
    br#"{"temperature":21.5,"humidity":40},"#.iter().copied().cycle().take(256).collect()
}

fn hubwire_transfer() -> Performative {
    Performative::Transfer(Transfer {
        handle: 1,
        delivery_id: Some(42),
        delivery_tag: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 42])),
        message_format: Some(0),
        settled: Some(false),
        ..Transfer::default()
    })
}

fn hubwire_message() -> Message {
    let mut message = Message::new(Body::Data(vec![Bytes::from(payload())]));
    message.properties = Some(Properties {
        message_id: Some(MessageId::String(Utf8Bytes::from_static(
            "6a1f0c2e-0000-4000-8000-000000000001",
        ))),
        to: Some(Utf8Bytes::from_static("/devices/device1/messages/events")),
        content_type: Some(Symbol::from_static("application/json")),
        content_encoding: Some(Symbol::from_static("utf-8")),
        ..Properties::default()
    });
    let mut app = ApplicationProperties::new();
    for (k, v) in PROPERTIES {
        app.insert(k, Value::String(Utf8Bytes::from_static(v))).expect("string keys");
    }
    message.application_properties = Some(app);
    message
}

fn fe2o3_transfer() -> fe_perf::Performative {
    fe_perf::Performative::Transfer(fe_perf::Transfer {
        handle: 1.into(),
        delivery_id: Some(42),
        delivery_tag: Some(serde_bytes::ByteBuf::from(vec![0, 0, 0, 0, 0, 0, 0, 42])),
        message_format: Some(0),
        settled: Some(false),
        more: false,
        rcv_settle_mode: None,
        state: None,
        resume: false,
        aborted: false,
        batchable: false,
    })
}

fn fe2o3_message() -> fe::Message<Data> {
    let properties = fe::Properties {
        message_id: Some(fe::MessageId::String(String::from(
            "6a1f0c2e-0000-4000-8000-000000000001",
        ))),
        to: Some(String::from("/devices/device1/messages/events")),
        content_type: Some(serde_amqp::primitives::Symbol::from("application/json")),
        content_encoding: Some(serde_amqp::primitives::Symbol::from("utf-8")),
        ..fe::Properties::default()
    };
    let mut app = fe::ApplicationProperties::builder();
    for (k, v) in PROPERTIES {
        app = app.insert(k, v);
    }
    fe::Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: Some(app.build()),
        body: Data(Binary::from(payload())),
        footer: None,
    }
}

fn hubwire_encode(transfer: &Performative, message: &Message, out: &mut BytesMut) {
    transfer.encode(out).expect("encodes");
    message.encode(out).expect("encodes");
}

fn fe2o3_encode(transfer: &fe_perf::Performative, message: &fe::Message<Data>, out: &mut Vec<u8>) {
    let mut serializer = serde_amqp::ser::Serializer::new(out);
    transfer.serialize(&mut serializer).expect("encodes");
    Serializable(message).serialize(&mut serializer).expect("encodes");
}

fn hubwire_decode(body: &Bytes, limits: &Limits) -> (Performative, Message) {
    let (transfer, payload) = Performative::decode(body, limits).expect("decodes");
    (transfer, Message::decode(&payload, limits).expect("decodes"))
}

fn fe2o3_decode(transfer: &[u8], message: &[u8]) -> (fe_perf::Performative, fe::Message<Data>) {
    let t: fe_perf::Performative = serde_amqp::from_slice(transfer).expect("decodes");
    let m: Deserializable<fe::Message<Data>> = serde_amqp::from_slice(message).expect("decodes");
    (t, m.0)
}

/// hubwire's frame body, where its performative ends, and a check that each side
/// reads the other's bytes.
fn frame_body() -> (Bytes, usize) {
    let mut out = BytesMut::new();
    hubwire_transfer().encode(&mut out).expect("encodes");
    let split = out.len();
    hubwire_message().encode(&mut out).expect("encodes");
    let body = out.freeze();
    let (t, m) = fe2o3_decode(&body[..split], &body[split..]);
    let fe_perf::Performative::Transfer(t) = t else { panic!("not a transfer") };
    assert_eq!(t.delivery_id, Some(42));
    assert_eq!(m.body.0.as_ref(), &payload()[..]);
    assert_eq!(m.application_properties.map(|a| a.0.len()), Some(PROPERTIES.len()));
    let mut theirs = Vec::new();
    fe2o3_encode(&fe2o3_transfer(), &fe2o3_message(), &mut theirs);
    let (t, m) = hubwire_decode(&Bytes::from(theirs), &Limits::default());
    let Performative::Transfer(t) = t else { panic!("not a transfer") };
    assert_eq!(t.delivery_id, Some(42));
    assert_eq!(m, hubwire_message());
    (body, split)
}

fn encode(c: &mut Criterion) {
    let (body, _) = frame_body();
    let (transfer, message) = (hubwire_transfer(), hubwire_message());
    let (fe_transfer, fe_message) = (fe2o3_transfer(), fe2o3_message());
    let mut group = c.benchmark_group("telemetry_transfer_encode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("hubwire", |b| {
        let mut out = BytesMut::with_capacity(1024);
        b.iter(|| {
            out.clear();
            hubwire_encode(black_box(&transfer), black_box(&message), &mut out);
        });
    });
    group.bench_function("fe2o3_amqp_types", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            fe2o3_encode(black_box(&fe_transfer), black_box(&fe_message), &mut out);
        });
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let (body, split) = frame_body();
    let limits = Limits::default();
    let mut group = c.benchmark_group("telemetry_transfer_decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("hubwire", |b| b.iter(|| hubwire_decode(black_box(&body), &limits)));
    group.bench_function("fe2o3_amqp_types", |b| {
        b.iter(|| fe2o3_decode(black_box(&body[..split]), black_box(&body[split..])));
    });
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
