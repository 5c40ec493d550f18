//! PUBLISH encode and decode: hubwire's MQTT codec against mqttbytes 0.6 (rumqttc's
//! codec), the same packets in the same run (DESIGN.md, "Tests, fuzzing,
//! benchmarks").
//!
//! The packets are IoT Hub telemetry: QoS 1 on a telemetry topic with a TV-11-like
//! property bag, payloads of 256 B and 16 KiB. Encoding writes into a buffer that
//! is cleared each iteration, as a connection's outbox is reused; decoding reads one
//! packet from a fresh `BytesMut` built outside the measurement (`iter_batched`).
//! Both libraries return payloads that share the buffer.
//!
//! `cargo bench -p hubwire-core --bench mqtt_publish -- --warm-up-time 1 --measurement-time 3`

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hubwire_core::mqtt::{Limits, Packet, PacketId, Publish, QoS, TopicName, codec};

/// A telemetry topic as the Node SDK writes it, with TV-11's kinds of properties.
const TOPIC: &str = concat!(
    "devices/device1/messages/events/",
    "%24.mid=6a1f0c2e-0000-4000-8000-000000000001",
    "&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&unit=%C2%B0C",
);

const PACKET_ID: u16 = 42;

/// Payload sizes, bytes.
const SIZES: [usize; 2] = [256, 16 * 1024];

/// A JSON-looking payload of `len` bytes.
fn payload(len: usize) -> Bytes {
    let unit = br#"{"temperature":21.5,"humidity":40},"#;
    unit.iter().copied().cycle().take(len).collect::<Vec<u8>>().into()
}

fn hubwire_publish(payload: &Bytes) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TopicName::new(TOPIC).expect("a valid topic name"),
        packet_id: PacketId::new(PACKET_ID),
        payload: payload.clone(),
    })
}

fn mqttbytes_publish(payload: &Bytes) -> mqttbytes::v4::Publish {
    let mut publish =
        mqttbytes::v4::Publish::from_bytes(TOPIC, mqttbytes::QoS::AtLeastOnce, payload.clone());
    publish.pkid = PACKET_ID;
    publish
}

/// The packet as both libraries write it; they must agree, or the comparison is void.
fn wire_bytes(payload: &Bytes) -> Bytes {
    let mut ours = BytesMut::new();
    hubwire_publish(payload).encode(&mut ours).expect("valid PUBLISH");
    let mut theirs = BytesMut::new();
    mqttbytes_publish(payload).write(&mut theirs).expect("valid PUBLISH");
    assert_eq!(ours, theirs, "the two codecs write different bytes");
    ours.freeze()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_encode");
    for size in SIZES {
        let payload = payload(size);
        let wire = wire_bytes(&payload);
        group.throughput(Throughput::Bytes(wire.len() as u64));

        let packet = hubwire_publish(&payload);
        group.bench_with_input(BenchmarkId::new("hubwire", size), &packet, |b, packet| {
            let mut out = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                out.clear();
                black_box(packet).encode(&mut out).expect("valid PUBLISH");
                black_box(&out);
            });
        });

        let publish = mqttbytes_publish(&payload);
        group.bench_with_input(BenchmarkId::new("mqttbytes", size), &publish, |b, publish| {
            let mut out = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                out.clear();
                black_box(publish).write(&mut out).expect("valid PUBLISH");
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_decode");
    let limits = Limits::default();
    for size in SIZES {
        let wire = wire_bytes(&payload(size));
        group.throughput(Throughput::Bytes(wire.len() as u64));

        group.bench_with_input(BenchmarkId::new("hubwire", size), &wire, |b, wire| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| codec::decode(&mut buf, &limits).expect("valid PUBLISH"),
                BatchSize::SmallInput,
            );
        });

        group.bench_with_input(BenchmarkId::new("mqttbytes", size), &wire, |b, wire| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| {
                    mqttbytes::v4::read(&mut buf, limits.max_remaining_length)
                        .expect("valid PUBLISH")
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
