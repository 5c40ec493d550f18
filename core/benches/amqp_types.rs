//! AMQP 1.0 value encode and decode: hubwire's type codec against serde_amqp 0.18
//! (fe2o3-amqp's codec) into its `serde_amqp::Value`, the same bytes in the same
//! run (DESIGN.md, "Tests, fuzzing, benchmarks").
//!
//! The input is an IoT Hub telemetry message's sections (part 3 §3.2; spec file
//! §5.4), four values one after another as a transfer carries them: message
//! annotations with symbol keys, properties (message-id, to, content-type),
//! application properties with five string pairs, and a data section of 256 B.
//! Both codecs must write the same bytes, or the comparison is void. Decoding
//! reads the four values from a buffer built outside the measurement; hubwire's
//! binary and strings share it, serde_amqp copies them into owned values.
//! Encoding writes into a buffer cleared each iteration.
//!
//! `cargo bench -p hubwire-core --bench amqp_types -- --warm-up-time 1 --measurement-time 3`

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hubwire_core::amqp::types::{self, Described, Limits, Symbol, Value};
use hubwire_core::utf8::Utf8Bytes;
use serde_amqp::serde::{Deserialize, Serialize};

fn string(s: &'static str) -> Value {
    Value::String(Utf8Bytes::from_static(s))
}

fn symbol(s: &'static str) -> Value {
    Value::Symbol(Symbol::from_static(s))
}

/// The four sections, as hubwire values.
fn sections() -> Vec<Value> {
    let payload: Vec<u8> =
        br#"{"temperature":21.5,"humidity":40},"#.iter().copied().cycle().take(256).collect();
    vec![
        // message-annotations (0x72)
        Value::from(Described::new(
            0x72,
            Value::Map(vec![
                (symbol("iothub-interface-id"), string("dtmi:com:example:Thermostat;1")),
                (symbol("dt-subject"), string("thermostat1")),
                (symbol("iothub-creation-time-utc"), string("2023-11-14T22:13:20.000Z")),
            ]),
        )),
        // properties (0x73): message-id, user-id, to, subject, reply-to,
        // correlation-id, content-type
        Value::from(Described::new(
            0x73,
            Value::List(vec![
                string("6a1f0c2e-0000-4000-8000-000000000001"),
                Value::Null,
                string("/devices/device1/messages/events"),
                Value::Null,
                Value::Null,
                Value::Null,
                symbol("application/json"),
            ]),
        )),
        // application-properties (0x74)
        Value::from(Described::new(
            0x74,
            Value::Map(vec![
                (string("alert"), string("high temp")),
                (string("unit"), string("°C")),
                (string("site"), string("plant-7")),
                (string("line"), string("3")),
                (string("iothub-ack"), string("full")),
            ]),
        )),
        // data (0x75)
        Value::from(Described::new(0x75, Value::Binary(Bytes::from(payload)))),
    ]
}

fn hubwire_encode(sections: &[Value], out: &mut BytesMut) {
    for section in sections {
        types::encode(section, out).expect("valid section");
    }
}

fn hubwire_decode(wire: &Bytes, limits: &Limits) -> Vec<Value> {
    let mut values = Vec::with_capacity(4);
    let mut pos = 0;
    while pos < wire.len() {
        let (value, used) = types::decode(&wire.slice(pos..), limits).expect("valid section");
        values.push(value);
        pos += used;
    }
    values
}

fn serde_amqp_encode(sections: &[serde_amqp::Value], out: &mut Vec<u8>) {
    let mut serializer = serde_amqp::ser::Serializer::new(out);
    for section in sections {
        section.serialize(&mut serializer).expect("valid section");
    }
}

fn serde_amqp_decode(wire: &[u8]) -> Vec<serde_amqp::Value> {
    let mut deserializer =
        serde_amqp::de::Deserializer::new(serde_amqp::read::SliceReader::new(wire));
    (0..4)
        .map(|_| serde_amqp::Value::deserialize(&mut deserializer).expect("valid section"))
        .collect()
}

/// The sections as hubwire writes them, checked against serde_amqp: it reads them,
/// writes the same bytes back, and hubwire reads those to the same values.
fn wire_bytes() -> (Bytes, Vec<serde_amqp::Value>) {
    let mut ours = BytesMut::new();
    hubwire_encode(&sections(), &mut ours);
    let theirs_values = serde_amqp_decode(&ours);
    let mut theirs = Vec::new();
    serde_amqp_encode(&theirs_values, &mut theirs);
    assert_eq!(ours[..], theirs[..], "the two codecs write different bytes");
    let wire = ours.freeze();
    assert_eq!(hubwire_decode(&wire, &Limits::default()), sections());
    (wire, theirs_values)
}

fn encode(c: &mut Criterion) {
    let (wire, theirs) = wire_bytes();
    let ours = sections();
    let mut group = c.benchmark_group("telemetry_sections_encode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("hubwire", |b| {
        let mut out = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            hubwire_encode(black_box(&ours), &mut out);
            black_box(&out);
        });
    });
    group.bench_function("serde_amqp", |b| {
        let mut out = Vec::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            serde_amqp_encode(black_box(&theirs), &mut out);
            black_box(&out);
        });
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let (wire, _) = wire_bytes();
    let limits = Limits::default();
    let mut group = c.benchmark_group("telemetry_sections_decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("hubwire", |b| b.iter(|| hubwire_decode(black_box(&wire), &limits)));
    group.bench_function("serde_amqp", |b| b.iter(|| serde_amqp_decode(black_box(&wire))));
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
