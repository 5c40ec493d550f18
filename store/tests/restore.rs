//! A hub restarted from its store resumes where it stopped: queued C2D messages come
//! back with their sequence numbers and delivery counts, and new C2D and D2C
//! messages are numbered after the old ones.
//!
//! The test plays the runtime: it drives a [`Pair`]'s hub engine, writes what the
//! engine asks to keep into a [`RedbStore`] (D2C records before the device hears its
//! acknowledgement), and talks to the hub as an HTTP device does (spec file §6),
//! because HTTP answers carry `iothub-sequencenumber` and `iothub-deliverycount`.

use bytes::{Bytes, BytesMut};
use hubwire_core::Protocol;
use hubwire_core::http::{
    API_VERSION, BodyDecoder, BodyLimits, Limits, ResponseHead, parse_response,
};
use hubwire_core::hub::{HubConfig, HubEvent};
use hubwire_core::iothub::{Message, SasToken};
use hubwire_core::testing::{KEY, Pair};
use hubwire_core::time::Duration;
use hubwire_store::{RedbStore, Store, restore};

const DEVICE: &str = "d1";

/// A hub engine, its store, and one HTTP device connection.
struct Runtime {
    pair: Pair,
    store: RedbStore,
    conn: usize,
    /// Bytes of the connection's answers read so far.
    read: usize,
    /// Hub events handed to the store so far.
    seen: usize,
}

impl Runtime {
    /// Starts a hub on the store at `path`: restores what it kept, then accepts an
    /// HTTP connection.
    fn start(path: &std::path::Path) -> Runtime {
        let mut store = RedbStore::open(path).unwrap();
        let mut pair = Pair::new(HubConfig::default());
        // Stores wait for the runtime, as a real one's do.
        pair.hold_stores = true;
        let snapshot = store.load().unwrap();
        restore(&mut pair.hub, pair.now, snapshot).unwrap();
        let conn = pair.raw_connect_with(Protocol::Http);
        Runtime { pair, store, conn, read: 0, seen: 0 }
    }

    /// What a runtime does after each step: store the D2C records the hub asked for
    /// in one transaction, and only then let the hub acknowledge them; keep every
    /// C2D settlement.
    fn sync(&mut self) {
        let records: Vec<_> = self
            .pair
            .pending_stores
            .iter()
            .filter_map(|e| match e {
                HubEvent::StoreTelemetry { record, .. } => Some(record.clone()),
                _ => None,
            })
            .collect();
        self.store.append_d2c(&records).unwrap();
        self.pair.release_stores();
        for event in &self.pair.hub_events[self.seen..] {
            if let HubEvent::C2dSettled(settled) = event {
                self.store.settle_c2d(settled).unwrap();
            }
        }
        self.seen = self.pair.hub_events.len();
    }

    /// The service sends a C2D message; the store keeps it before the service hears
    /// its sequence number.
    fn send_c2d(&mut self, id: &str) -> u64 {
        let mut message = Message::new(id.as_bytes().to_vec());
        message.message_id = Some(id.into());
        let sequence_number = self.pair.send_c2d(DEVICE, message).unwrap();
        let queued = self.pair.hub.queued_c2d(DEVICE, sequence_number).unwrap();
        self.store.put_c2d(DEVICE, &queued).unwrap();
        self.sync();
        sequence_number
    }

    /// Sends an HTTP request as the device and returns the one answer.
    fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> (ResponseHead, Bytes) {
        let resource = format!("localhost/devices/{DEVICE}");
        let token = SasToken::sign(&resource, KEY, self.pair.now + Duration::from_secs(3600), None)
            .unwrap()
            .to_string();
        let mut request = format!(
            "{method} {path}?api-version={API_VERSION} HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: {token}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.pair.raw_send(self.conn, &request);
        self.sync();
        let mut buf = BytesMut::from(&self.pair.raw[self.conn].received[self.read..]);
        let (head, used) = parse_response(&buf, &Limits::default()).unwrap().unwrap();
        let _ = buf.split_to(used);
        let mut decoder = BodyDecoder::for_response(&head, method, &BodyLimits::default()).unwrap();
        let before = buf.len();
        let body = decoder.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty(), "one answer only");
        self.read += used + before;
        (head, body)
    }

    /// Receives the next C2D message: (lock, body, sequence number, delivery count).
    fn receive(&mut self) -> (String, Bytes, u64, u32) {
        let (head, body) =
            self.exchange("GET", &format!("/devices/{DEVICE}/messages/deviceBound"), b"");
        assert_eq!(head.status, 200, "{head:?}");
        let header = |name| head.header(name).unwrap_or_else(|| panic!("no {name}"));
        let lock = header("etag").trim_matches('"').to_owned();
        let sequence_number = header("iothub-sequencenumber").parse().unwrap();
        let delivery_count = header("iothub-deliverycount").parse().unwrap();
        (lock, body, sequence_number, delivery_count)
    }

    fn abandon(&mut self, lock: &str) {
        let path = format!("/devices/{DEVICE}/messages/deviceBound/{lock}/abandon");
        assert_eq!(self.exchange("POST", &path, b"").0.status, 204);
    }

    fn complete(&mut self, lock: &str) {
        let path = format!("/devices/{DEVICE}/messages/deviceBound/{lock}");
        assert_eq!(self.exchange("DELETE", &path, b"").0.status, 204);
    }

    fn send_telemetry(&mut self, body: &[u8]) {
        let path = format!("/devices/{DEVICE}/messages/events");
        assert_eq!(self.exchange("POST", &path, body).0.status, 204);
    }
}

#[test]
fn a_restarted_hub_resumes_queues_and_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");

    // The first run: the device is registered, three C2D messages are queued, the
    // first is abandoned once and locked again when the hub dies.
    {
        let mut run = Runtime::start(&path);
        run.pair.register(DEVICE);
        let record = run.pair.hub.registry().get(DEVICE).unwrap().clone();
        run.store.put_devices(std::slice::from_ref(&record)).unwrap();
        assert_eq!([run.send_c2d("a"), run.send_c2d("b"), run.send_c2d("c")], [1, 2, 3]);
        let (lock, body, seq, count) = run.receive();
        assert_eq!((&body[..], seq, count), (&b"a"[..], 1, 0));
        run.abandon(&lock);
        let (_, body, seq, count) = run.receive();
        assert_eq!((&body[..], seq, count), (&b"a"[..], 1, 1));
        run.send_telemetry(b"t1");
        run.send_telemetry(b"t2");
        assert_eq!(run.pair.stored_bodies(DEVICE), [&b"t1"[..], b"t2"]);
        // Killed here: nothing is closed or flushed.
    }

    // The second run, from the file alone.
    let mut run = Runtime::start(&path);
    assert!(run.pair.hub.registry().get(DEVICE).is_some(), "the registry came back");
    // The lock died with the first hub: "a" is delivered again, its abandon counted.
    let (lock, body, seq, count) = run.receive();
    assert_eq!((&body[..], seq, count), (&b"a"[..], 1, 1));
    run.complete(&lock);
    let (_, body, seq, count) = run.receive();
    assert_eq!((&body[..], seq, count), (&b"b"[..], 2, 0));
    let (_, body, seq, count) = run.receive();
    assert_eq!((&body[..], seq, count), (&b"c"[..], 3, 0));
    // New numbers continue after the old ones.
    assert_eq!(run.send_c2d("d"), 4);
    run.send_telemetry(b"t3");
    let numbers: Vec<(Bytes, u64)> =
        run.store.d2c().unwrap().into_iter().map(|r| (r.message.body, r.sequence_number)).collect();
    assert_eq!(numbers, [(Bytes::from("t1"), 1), (Bytes::from("t2"), 2), (Bytes::from("t3"), 3)]);
    // The store followed: "a" completed, "b" and "c" locked but kept, "d" queued.
    let kept = run.store.load().unwrap().c2d.remove(DEVICE).unwrap_or_default();
    let kept: Vec<u64> = kept.iter().map(|q| q.sequence_number).collect();
    assert_eq!(kept, [2, 3, 4]);
}

#[test]
fn a_hub_acknowledges_telemetry_only_after_the_store_wrote_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Runtime::start(&dir.path().join("hub.redb"));
    run.pair.register(DEVICE);
    let resource = format!("localhost/devices/{DEVICE}");
    let token = SasToken::sign(&resource, KEY, run.pair.now + Duration::from_secs(3600), None)
        .unwrap()
        .to_string();
    let request = format!(
        "POST /devices/{DEVICE}/messages/events?api-version={API_VERSION} HTTP/1.1\r\n\
         Host: localhost\r\nAuthorization: {token}\r\nContent-Length: 2\r\n\r\nt1"
    );
    run.pair.raw_send(run.conn, request.as_bytes());
    assert!(run.pair.raw[run.conn].received.is_empty(), "no answer before the store");
    assert!(run.store.d2c().unwrap().is_empty());
    run.sync();
    assert_eq!(run.store.d2c().unwrap().len(), 1);
    let answer = parse_response(&run.pair.raw[run.conn].received, &Limits::default());
    assert_eq!(answer.unwrap().unwrap().0.status, 204);
}

#[test]
fn restore_brings_back_twins_and_the_numbers_of_an_emptied_queue() {
    use hubwire_core::hub::{Hub, Outcome, Settled};
    use hubwire_core::iothub::TwinPatch;
    use hubwire_core::testing::START;
    use hubwire_store::MemoryStore;

    let mut first = Hub::new(HubConfig::default(), 1);
    let mut store = MemoryStore::new();
    let record = hubwire_core::hub::DeviceRecord::new(DEVICE).unwrap();
    first.registry_mut().add(record.clone()).unwrap();
    store.put_devices(std::slice::from_ref(&record)).unwrap();
    let patch = TwinPatch::parse(br#"{"interval":30}"#).unwrap();
    first.update_desired(START, DEVICE, &patch).unwrap();
    store.put_twin(DEVICE, &first.twin(DEVICE).unwrap()).unwrap();
    for n in 1..=2 {
        let seq = first.send_c2d(START, DEVICE, Message::new(vec![n])).unwrap();
        store.put_c2d(DEVICE, &first.queued_c2d(DEVICE, seq).unwrap()).unwrap();
        let gone = Settled {
            device_id: DEVICE.into(),
            message_id: None,
            sequence_number: seq,
            outcome: Outcome::Purged,
            feedback: None,
        };
        store.settle_c2d(&gone).unwrap();
    }
    // State of a device no longer registered is left out, without an error.
    store.put_c2d("gone", &first.queued_c2d(DEVICE, 1).unwrap()).unwrap();

    let mut second = Hub::new(HubConfig::default(), 2);
    restore(&mut second, START, store.load().unwrap()).unwrap();
    assert_eq!(second.twin(DEVICE).unwrap(), first.twin(DEVICE).unwrap());
    assert_eq!(second.twin(DEVICE).unwrap().desired.version, 2);
    // The queue was empty when the hub stopped; its numbers still go on.
    assert_eq!(second.send_c2d(START, DEVICE, Message::new("x")), Ok(3));
    assert!(second.registry().get("gone").is_none());
}
