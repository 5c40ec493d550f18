//! D2C appends per second into a [`RedbStore`]: one durable transaction (one fsync)
//! per batch, batches of 1 and of 100 records of a 200-byte telemetry body; the
//! in-memory store for comparison.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hubwire_core::hub::D2cRecord;
use hubwire_core::iothub::{Identity, Message};
use hubwire_core::time::Timestamp;
use hubwire_store::{MemoryStore, RedbStore, Store};

fn batch(len: usize, first: u64) -> Vec<D2cRecord> {
    (0..len as u64)
        .map(|i| {
            let mut message = Message::new(vec![b'x'; 200]);
            message.message_id = Some(format!("m-{}", first + i));
            message.content_type = Some("application/json".into());
            message.properties.set("sensor", "temperature");
            D2cRecord {
                identity: Identity::device("bench-device"),
                sequence_number: first + i,
                enqueued_time: Timestamp::from_millis(first + i),
                message,
            }
        })
        .collect()
}

fn d2c_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("d2c_append");
    group.sample_size(10);
    for len in [1usize, 100] {
        group.throughput(Throughput::Elements(len as u64));
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("no temp dir: {e}"),
        };
        let mut redb = match RedbStore::open(dir.path().join("bench.redb")) {
            Ok(store) => store,
            Err(e) => panic!("cannot open the store: {e}"),
        };
        let mut memory = MemoryStore::new();
        let records = batch(len, 1);
        let stores: [(&str, &mut dyn Store); 2] = [("redb", &mut redb), ("memory", &mut memory)];
        for (name, store) in stores {
            group.bench_function(BenchmarkId::new(name, len), |b| {
                b.iter(|| {
                    if let Err(e) = store.append_d2c(&records) {
                        panic!("append failed: {e}");
                    }
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, d2c_append);
criterion_main!(benches);
