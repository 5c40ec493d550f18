//! MQTT telemetry through the transport stacks in memory: the same PUBLISH packets
//! sent from a device's [`Stack`] to a hub's and decoded there, over plain TCP (no
//! layer: the baseline), TLS, and WebSocket over TLS, in the same run (DESIGN.md,
//! "Tests, fuzzing, benchmarks"). Throughput is MQTT bytes per second; the ratio of
//! each stack to plain is the cost of its layers.
//!
//! The connection is set up once, outside the measurement (handshakes are not
//! throughput); each iteration sends a burst of packets as one `send` per packet,
//! as a device's outbox does, and the hub side decodes every packet.
//!
//! `cargo bench -p hubwire-transports --bench stack_throughput -- --warm-up-time 1 --measurement-time 5`

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hubwire_core::Protocol;
use hubwire_core::mqtt::{Limits, Packet, PacketId, Publish, QoS, TopicName, codec};
use hubwire_transports::tls::TrustedRoots;
use hubwire_transports::tls::local_ca::CertificateAuthority;
use hubwire_transports::{Stack, Transport, tls};

const TOPIC: &str = "devices/device1/messages/events/%24.ct=application%2Fjson&unit=C";
/// Payload sizes, bytes.
const SIZES: [usize; 2] = [256, 16 * 1024];
/// Packets per iteration.
const BURST: usize = 64;

fn publish(len: usize) -> Bytes {
    let payload: Vec<u8> = br#"{"temperature":21.5},"#.iter().copied().cycle().take(len).collect();
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TopicName::new(TOPIC).expect("a valid topic"),
        packet_id: PacketId::new(1),
        payload: payload.into(),
    });
    let mut out = BytesMut::new();
    packet.encode(&mut out).expect("encodable");
    out.freeze()
}

/// A device stack and a hub stack for `transport`, handshakes done.
fn connected(transport: Transport) -> (Stack, Stack) {
    let ca = CertificateAuthority::new().expect("a CA");
    let now = SystemTime::now();
    let names = [String::from("127.0.0.1")];
    let (chain, key) = ca.issue(&names, now, now + Duration::from_secs(3600)).expect("a cert");
    let server_tls = tls::server_config(chain, key).expect("server config");
    // The CA alone, as a device given `--ca` and no platform roots trusts.
    let mut roots = TrustedRoots {
        store: rustls::RootCertStore::empty(),
        platform: 0,
        platform_skipped: 0,
        from_files: 1,
    };
    roots.store.add(ca.cert_der().clone()).expect("the CA");
    let client_tls = roots.into_client_config().expect("client config");
    let mut device = Stack::client(transport, "127.0.0.1", 443, Some(client_tls), [7; 16])
        .expect("client stack");
    let mut hub =
        Stack::server(transport.listener(), Some(Arc::clone(&server_tls)), &[Protocol::Mqtt])
            .expect("server stack");
    for _ in 0..16 {
        shuttle(&mut device, &mut hub);
        shuttle(&mut hub, &mut device);
    }
    assert!(device.is_open() && hub.is_open(), "{transport}: handshake did not finish");
    (device, hub)
}

/// Hands everything `from` has for the network to `to`.
fn shuttle(from: &mut Stack, to: &mut Stack) {
    while let Some(bytes) = from.poll_output() {
        to.handle_input(&bytes).expect("valid input");
    }
}

fn throughput(c: &mut Criterion) {
    let limits = Limits::default();
    for size in SIZES {
        let packet = publish(size);
        let mut group = c.benchmark_group(format!("mqtt_telemetry_{size}B"));
        group.throughput(Throughput::Bytes((packet.len() * BURST) as u64));
        for &transport in &[Transport::MqttTcp, Transport::Mqtt, Transport::MqttWs] {
            let (mut device, mut hub) = connected(transport);
            let mut received = BytesMut::new();
            group.bench_function(BenchmarkId::from_parameter(transport.name()), |b| {
                b.iter(|| {
                    for _ in 0..BURST {
                        device.send(packet.clone()).expect("sendable");
                    }
                    shuttle(&mut device, &mut hub);
                    received.extend_from_slice(&hub.take_plain());
                    let mut decoded = 0;
                    while let Some(p) = codec::decode(&mut received, &limits).expect("valid") {
                        black_box(p);
                        decoded += 1;
                    }
                    assert_eq!(decoded, BURST);
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
