//! Every record kind goes into a store and comes back: out of a [`RedbStore`] after
//! the file is closed and opened again, and out of a [`MemoryStore`] the same.

use std::collections::BTreeMap;

use hubwire_core::hub::{D2cRecord, DeviceRecord, Outcome, QueuedC2d, Settled};
use hubwire_core::iothub::{Ack, Identity, Message, Twin, TwinPatch};
use hubwire_core::time::{Duration, Timestamp};
use hubwire_store::{MemoryStore, RedbStore, Sequences, Snapshot, Store, StoreError};

const T0: Timestamp = Timestamp::from_unix_secs(1_700_000_000);
/// K1: base64 of the bytes 0x00..0x1F (spec file §11).
const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn device(id: &str, enabled: bool) -> DeviceRecord {
    DeviceRecord {
        device_id: id.into(),
        primary_key: K1.into(),
        secondary_key: String::new(),
        enabled,
    }
}

fn d2c(device_id: &str, module: Option<&str>, sequence_number: u64) -> D2cRecord {
    let mut message = Message::new(format!("{device_id} {sequence_number}").into_bytes());
    message.content_type = Some("application/json".into());
    message.properties.set("temperature", "21.5");
    message.properties.insert("flag", None);
    message.enqueued_time = Some(T0);
    D2cRecord {
        identity: Identity { device_id: device_id.into(), module_id: module.map(Into::into) },
        sequence_number,
        enqueued_time: T0,
        message,
    }
}

fn c2d(sequence_number: u64) -> QueuedC2d {
    let mut message = Message::new(vec![0, 1, 2, 255]);
    message.message_id = Some(format!("c2d-{sequence_number}"));
    message.correlation_id = Some("corr".into());
    message.user_id = Some("user".into());
    message.to = Some("/devices/d1/messages/deviceBound".into());
    message.content_encoding = Some("utf-8".into());
    message.enqueued_time = Some(T0);
    message.expiry = Some(Timestamp::from_unix_secs(1_700_003_600));
    message.ack = Some(Ack::Full);
    message.properties.set("k", "v");
    QueuedC2d { sequence_number, delivery_count: 0, message }
}

fn settled(device_id: &str, sequence_number: u64, outcome: Outcome) -> Settled {
    Settled {
        device_id: device_id.into(),
        message_id: None,
        sequence_number,
        outcome,
        feedback: None,
    }
}

fn twin() -> Twin {
    let mut twin = Twin::default();
    let patch = TwinPatch::parse(br#"{"interval":30,"nested":{"on":true}}"#).unwrap();
    twin.desired.apply(&patch).unwrap();
    twin.reported.apply(&TwinPatch::parse(br#"{"firmware":"1.2"}"#).unwrap()).unwrap();
    twin
}

/// Writes one of each record kind, settles some C2D messages, and returns what a
/// load must give back and the D2C records in arrival order.
fn fill(store: &mut dyn Store) -> (Snapshot, Vec<D2cRecord>) {
    store.put_devices(std::slice::from_ref(&device("d1", true))).unwrap();
    store.put_devices(std::slice::from_ref(&device("d2", true))).unwrap();
    // A changed record replaces the old one.
    store.put_devices(std::slice::from_ref(&device("d2", false))).unwrap();
    store.put_twin("d1", &Twin::default()).unwrap();
    store.put_twin("d1", &twin()).unwrap();
    for n in 1..=4 {
        store.put_c2d("d1", &c2d(n)).unwrap();
    }
    store.settle_c2d(&settled("d1", 1, Outcome::Abandoned { delivery_count: 1 })).unwrap();
    store.settle_c2d(&settled("d1", 1, Outcome::Abandoned { delivery_count: 2 })).unwrap();
    store.settle_c2d(&settled("d1", 2, Outcome::Completed)).unwrap();
    store.settle_c2d(&settled("d1", 4, Outcome::Expired)).unwrap();
    // Settling what the store does not hold is no error.
    store.settle_c2d(&settled("d1", 99, Outcome::Completed)).unwrap();
    store.settle_c2d(&settled("nobody", 1, Outcome::Abandoned { delivery_count: 1 })).unwrap();
    let first = [d2c("d1", None, 1), d2c("d2", None, 1), d2c("d1", Some("m"), 2)];
    store.append_d2c(&first).unwrap();
    store.append_d2c(&[]).unwrap();
    store.append_d2c(&[d2c("d1", None, 3)]).unwrap();

    let mut abandoned = c2d(1);
    abandoned.delivery_count = 2;
    let expected = Snapshot {
        devices: vec![device("d1", true), device("d2", false)],
        twins: BTreeMap::from([("d1".into(), twin())]),
        sequences: BTreeMap::from([
            ("d1".into(), Sequences { d2c_next: 4, c2d_next: 5 }),
            ("d2".into(), Sequences { d2c_next: 2, c2d_next: 1 }),
        ]),
        c2d: BTreeMap::from([("d1".into(), vec![abandoned, c2d(3)])]),
    };
    let mut records = first.to_vec();
    records.push(d2c("d1", None, 3));
    (expected, records)
}

#[test]
fn redb_keeps_every_record_kind_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    let (expected, records) = {
        let mut store = RedbStore::open(&path).unwrap();
        fill(&mut store)
    };
    let mut store = RedbStore::open(&path).unwrap();
    assert_eq!(store.load().unwrap(), expected);
    assert_eq!(store.d2c().unwrap(), records);
}

#[test]
fn memory_store_keeps_what_redb_keeps() {
    let mut store = MemoryStore::new();
    let (expected, records) = fill(&mut store);
    assert_eq!(store.load().unwrap(), expected);
    assert_eq!(store.d2c().unwrap(), records);
    assert_eq!(store.log().get("d1", 2), records.get(2));
}

#[test]
fn d2c_arrival_order_continues_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    RedbStore::open(&path).unwrap().append_d2c(&[d2c("b", None, 1), d2c("a", None, 1)]).unwrap();
    RedbStore::open(&path).unwrap().append_d2c(&[d2c("b", None, 2)]).unwrap();
    let store = RedbStore::open(&path).unwrap();
    let order: Vec<(String, u64)> = store
        .d2c()
        .unwrap()
        .into_iter()
        .map(|r| (r.identity.device_id, r.sequence_number))
        .collect();
    assert_eq!(order, [("b".into(), 1), ("a".into(), 1), ("b".into(), 2)]);
}

#[test]
fn removing_a_device_drops_its_queue_and_twin_but_keeps_its_d2c_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    for store in [&mut RedbStore::open(&path).unwrap() as &mut dyn Store, &mut MemoryStore::new()] {
        store.put_devices(std::slice::from_ref(&device("d1", true))).unwrap();
        store.put_devices(std::slice::from_ref(&device("d10", true))).unwrap();
        store.put_twin("d1", &twin()).unwrap();
        store.put_c2d("d1", &c2d(1)).unwrap();
        store.put_c2d("d1", &c2d(2)).unwrap();
        // A device whose id starts with the other's keeps its queue.
        store.put_c2d("d10", &c2d(7)).unwrap();
        store.append_d2c(&[d2c("d1", None, 1)]).unwrap();
        store.remove_device("d1").unwrap();
        store.remove_device("never-registered").unwrap();
        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.devices, [device("d10", true)]);
        assert!(snapshot.twins.is_empty());
        assert_eq!(snapshot.c2d, BTreeMap::from([("d10".into(), vec![c2d(7)])]));
        assert_eq!(snapshot.sequences["d1"], Sequences { d2c_next: 2, c2d_next: 3 });
        assert_eq!(store.d2c().unwrap(), [d2c("d1", None, 1)]);
    }
}

#[test]
fn a_file_in_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    drop(RedbStore::open(&path).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta).unwrap().insert("format", 2).unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Format { found: 2, expected: 1 }), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    std::fs::write(&path, b"not a redb database, just some bytes").unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err}");
}

#[test]
fn an_empty_or_truncated_file_is_reported_damaged_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    {
        let mut store = RedbStore::open(&path).unwrap();
        fill(&mut store);
    }
    let whole = std::fs::metadata(&path).unwrap().len();
    for cut in [0, 4096, whole / 2] {
        let copy = dir.path().join(format!("cut-{cut}.redb"));
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new().write(true).open(&copy).unwrap().set_len(cut).unwrap();
        match RedbStore::open(&copy) {
            Err(StoreError::Damaged { reason, .. }) => assert!(!reason.is_empty()),
            // A cut redb can repair, or one it reports as a database error, is
            // fine too; what must not happen is a panic or a silent empty store.
            Err(StoreError::Database(_)) => {}
            Ok(mut reopened) => {
                let snapshot = reopened.load().unwrap();
                assert!(!snapshot.devices.is_empty(), "cut at {cut}: an empty store");
            }
            Err(other) => panic!("cut at {cut}: {other}"),
        }
        assert_eq!(std::fs::metadata(&copy).unwrap().len(), cut, "the file was not touched");
    }
}

#[test]
fn redb_keeps_the_latest_d2c_messages_and_their_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    {
        let mut store = RedbStore::open(&path).unwrap().with_d2c_limit(3);
        store.append_d2c(&[d2c("d1", None, 1), d2c("d1", None, 2)]).unwrap();
        store.append_d2c(&[d2c("d1", None, 3), d2c("d2", None, 1), d2c("d1", None, 4)]).unwrap();
        let kept: Vec<(String, u64)> = store
            .d2c()
            .unwrap()
            .into_iter()
            .map(|r| (r.identity.device_id, r.sequence_number))
            .collect();
        assert_eq!(kept, [("d1".into(), 3), ("d2".into(), 1), ("d1".into(), 4)]);
    }
    let mut reopened = RedbStore::open(&path).unwrap();
    assert_eq!(reopened.d2c().unwrap().len(), 3, "what was dropped stays dropped");
    let snapshot = reopened.load().unwrap();
    assert_eq!(snapshot.sequences.get("d1").map(|s| s.d2c_next), Some(5));
}

/// A D2C record of `device_id` enqueued `seconds` after [`T0`].
fn d2c_at(device_id: &str, sequence_number: u64, seconds: u64) -> D2cRecord {
    let mut record = d2c(device_id, None, sequence_number);
    record.enqueued_time = T0 + Duration::from_secs(seconds);
    record
}

#[test]
fn both_stores_forget_d2c_messages_older_than_the_retention_and_keep_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    let retention = Duration::from_secs(60);
    let redb = RedbStore::open(&path).unwrap().with_d2c_retention(retention);
    let stores: [Box<dyn Store>; 2] =
        [Box::new(redb), Box::new(MemoryStore::new().with_d2c_retention(retention))];
    for mut store in stores {
        store.append_d2c(&[d2c_at("d1", 1, 0), d2c_at("d2", 1, 30)]).unwrap();
        store.append_d2c(&[d2c_at("d1", 2, 60)]).unwrap();
        assert_eq!(store.d2c().unwrap().len(), 3, "at 60 s the one of 0 s is still within");
        store.append_d2c(&[d2c_at("d1", 3, 91), d2c_at("d1", 4, 95)]).unwrap();
        let kept: Vec<(String, u64)> = store
            .d2c()
            .unwrap()
            .into_iter()
            .map(|r| (r.identity.device_id, r.sequence_number))
            .collect();
        assert_eq!(kept, [("d1".into(), 2), ("d1".into(), 3), ("d1".into(), 4)], "{store:?}");
        assert_eq!(store.load().unwrap().sequences.get("d1").map(|s| s.d2c_next), Some(5));
    }
    let reopened = RedbStore::open(&path).unwrap();
    assert_eq!(reopened.d2c().unwrap().len(), 3, "what expired stays gone");
}

#[test]
fn by_default_a_day_of_d2c_messages_is_kept() {
    let mut store = MemoryStore::new();
    let day = u64::try_from(hubwire_store::D2C_RETENTION.as_millis() / 1000).unwrap();
    store.append_d2c(&[d2c_at("d1", 1, 0), d2c_at("d1", 2, day)]).unwrap();
    assert_eq!(store.d2c().unwrap().len(), 2);
    store.append_d2c(&[d2c_at("d1", 3, day + 1)]).unwrap();
    assert_eq!(store.d2c().unwrap().len(), 2);
}
