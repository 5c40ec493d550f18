//! The `amqp_device` target: a [`Multiplexed`] AMQP connection carrying two
//! devices, opened against the hub engine (header, `open`, `begin`, CBS links,
//! put-tokens, each device's links), then fed the fuzzer's bytes as the rest of
//! the hub's stream, with device commands between chunks.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::BytesMut;

use super::{MAX_TIMERS_PER_STEP, START, Schedule, assert_progress, with_schedules};
use crate::Protocol;
use crate::amqp::device::{DeviceKey, MultiplexConfig, Multiplexed};
use crate::device::{DeviceConfig, DeviceEvent, DispositionError, SendError};
use crate::hub::{DeviceRecord, Hub, HubConfig, HubEvent};
use crate::iothub::{Disposition, LockToken, Message};
use crate::sansio::{ConnectionId, Endpoint, Transmit};
use crate::testing::{KEY, Pair};
use crate::time::{Duration, Timestamp};

/// The plain AMQP header (no SASL) every connection opens with (spec file §5.1).
const HEADER: [u8; 8] = *b"AMQP\x00\x01\x00\x00";
const DEVICES: [&str; 2] = ["dev1", "dev2"];
const MAX_QUEUED: usize = 8;
const MAX_IN_FLIGHT: usize = 3;
/// Telemetry each device queues before the fuzzer's stream, as the seeds expect.
const OPENING_TELEMETRY: usize = 3;

/// The first two bytes are the [`Schedule`]; the rest is the hub's stream after
/// the opening, cut into chunks, with telemetry, settlements, time steps, broken
/// transports, removals and closes between chunks.
///
/// Properties: each telemetry id is answered (acknowledged or rejected) at most
/// once and only if sent, by its own device; unacknowledged telemetry stays within
/// the queue and the window; a removed device is never named again; bytes go out
/// only on an open transport, every connection starting with the plain AMQP
/// header; a lock is settled at most once; `handle_timeout` moves every deadline.
pub fn amqp_device(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = Run::opened();
    for _ in 0..OPENING_TELEMETRY {
        for key in run.keys.clone() {
            run.send_telemetry(key);
        }
    }
    run.drain(&mut schedule);
    let mut offset = 0;
    while offset < stream.len() {
        if schedule.event() {
            let key = run.keys[schedule.below(run.keys.len())];
            match schedule.below(10) {
                0 | 1 => run.send_telemetry(key),
                2 | 3 => run.settle(&mut schedule),
                4 | 5 => run.advance(schedule.time_step(), &mut schedule),
                6 => run.break_transport(),
                7 if schedule.below(4) == 0 => run.remove(key),
                8 if schedule.below(8) == 0 => run.mux.close(run.now),
                _ => run.unknown_lock(key),
            }
            run.drain(&mut schedule);
        }
        let n = schedule.chunk(stream.len() - offset);
        run.input(&stream[offset..offset + n], &mut schedule);
        offset += n;
    }
    run.advance(schedule.time_step(), &mut schedule);
    run.break_transport();
    run.drain(&mut schedule);
}

/// The connection under test and what the body knows of it.
struct Run {
    mux: Multiplexed,
    now: Timestamp,
    keys: Vec<DeviceKey>,
    removed: BTreeSet<DeviceKey>,
    online: bool,
    /// Bytes sent on the current transport, until the header has been seen.
    header: BytesMut,
    sent: BTreeMap<DeviceKey, BTreeSet<u64>>,
    answered: BTreeMap<DeviceKey, BTreeSet<u64>>,
    locks: Vec<(DeviceKey, LockToken)>,
}

impl Run {
    /// Two devices connected through the hub engine, which is then left behind:
    /// everything after comes from the fuzzer.
    fn opened() -> Run {
        let (mux, keys, _, _) = open_through_hub();
        Run {
            mux,
            now: START,
            sent: keys.iter().map(|k| (*k, BTreeSet::new())).collect(),
            answered: keys.iter().map(|k| (*k, BTreeSet::new())).collect(),
            keys,
            removed: BTreeSet::new(),
            online: true,
            // The opening's transport: its header went to the hub engine.
            header: BytesMut::from(&HEADER[..]),
            locks: Vec::new(),
        }
    }

    fn send_telemetry(&mut self, key: DeviceKey) {
        let n = self.sent.values().map(BTreeSet::len).sum::<usize>();
        match self.mux.send_telemetry(self.now, key, telemetry(n)) {
            Ok(id) => {
                assert!(!self.removed.contains(&key), "a removed device took telemetry");
                let sent = self.sent.entry(key).or_default();
                assert!(sent.insert(id.0), "telemetry id {} given twice", id.0);
            }
            Err(SendError::QueueFull { .. } | SendError::Stopped) => {}
            Err(e) => panic!("valid telemetry refused: {e}"),
        }
    }

    fn settle(&mut self, schedule: &mut Schedule) {
        if self.locks.is_empty() {
            return;
        }
        let (key, lock) = self.locks.remove(schedule.below(self.locks.len()));
        let disposition =
            [Disposition::Complete, Disposition::Reject, Disposition::Abandon][schedule.below(3)];
        // Unknown once its link or connection is gone: an answer, not a fault.
        let _ = self.mux.settle(self.now, key, &lock, disposition);
        assert_eq!(
            self.mux.settle(self.now, key, &lock, disposition),
            Err(DispositionError::UnknownLockToken(lock)),
            "a lock settled twice"
        );
    }

    fn unknown_lock(&mut self, key: DeviceKey) {
        let lock = LockToken::from_guid([0xEE; 16]);
        assert_eq!(
            self.mux.settle(self.now, key, &lock, Disposition::Complete),
            Err(DispositionError::UnknownLockToken(lock))
        );
    }

    fn remove(&mut self, key: DeviceKey) {
        if self.mux.remove_device(self.now, key) {
            self.removed.insert(key);
            self.locks.retain(|(k, _)| *k != key);
        }
    }

    fn break_transport(&mut self) {
        if self.online {
            self.online = false;
            self.mux.handle_close(self.now);
        }
    }

    fn input(&mut self, bytes: &[u8], schedule: &mut Schedule) {
        // A violation has closed the connection or the offending link already.
        let _ = self.mux.handle_input(self.now, bytes);
        self.drain(schedule);
    }

    fn advance(&mut self, step: Duration, schedule: &mut Schedule) {
        let target = self.now + step;
        for _ in 0..MAX_TIMERS_PER_STEP {
            match self.mux.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.mux.handle_timeout(self.now);
                    assert_progress(self.mux.poll_timeout(), self.now);
                    self.drain(schedule);
                }
                _ => break,
            }
        }
        self.now = target;
    }

    fn drain(&mut self, schedule: &mut Schedule) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.mux.poll_transmit() {
                moved = true;
                match transmit {
                    Transmit::Connect => {
                        assert!(!self.online, "dialing with a transport open");
                        if schedule.below(8) == 0 {
                            self.mux.handle_close(self.now);
                        } else {
                            self.online = true;
                            self.header.clear();
                            self.mux.handle_connected(self.now);
                        }
                    }
                    Transmit::Send(bytes) => {
                        assert!(self.online, "bytes sent with no transport open");
                        if self.header.len() < 8 {
                            self.header.extend_from_slice(&bytes);
                            if self.header.len() >= 8 {
                                assert_eq!(self.header[..8], HEADER, "not the plain AMQP header");
                            }
                        }
                    }
                    Transmit::Close => {
                        assert!(self.online, "closing with no transport open");
                        self.online = false;
                    }
                }
            }
            while let Some((key, event)) = self.mux.poll_event() {
                moved = true;
                assert!(self.keys.contains(&key), "an event for unknown {key:?}");
                assert!(!self.removed.contains(&key), "an event for removed {key:?}");
                match event {
                    DeviceEvent::TelemetryAcknowledged(id)
                    | DeviceEvent::TelemetryRejected { id, .. } => {
                        let sent = self.sent.get(&key).is_some_and(|s| s.contains(&id.0));
                        assert!(sent, "{key:?}: unknown telemetry {}", id.0);
                        let first = self.answered.entry(key).or_default().insert(id.0);
                        assert!(first, "{key:?}: telemetry {} answered twice", id.0);
                    }
                    DeviceEvent::C2d(c2d) => {
                        self.locks.extend(c2d.lock_token.map(|lock| (key, lock)));
                    }
                    _ => {}
                }
            }
            for key in &self.keys {
                let unacknowledged = self.mux.unacknowledged(*key);
                assert!(
                    unacknowledged <= MAX_QUEUED + MAX_IN_FLIGHT,
                    "{key:?}: {unacknowledged} unacknowledged messages"
                );
            }
            if !moved {
                return;
            }
        }
    }
}

/// A [`Multiplexed`] with [`DEVICES`] connected to a hub engine at [`START`]: both
/// put their tokens and attached their links. Returns the hub and its connection
/// too, for the seeds to go on with.
fn open_through_hub() -> (Multiplexed, Vec<DeviceKey>, Hub, ConnectionId) {
    let mut hub = Hub::new(HubConfig::default(), 1);
    let mut mux = Multiplexed::new(MultiplexConfig::new("localhost"));
    let mut keys = Vec::new();
    for id in DEVICES {
        let record = DeviceRecord {
            device_id: id.into(),
            primary_key: KEY.into(),
            secondary_key: KEY.into(),
            enabled: true,
        };
        if let Err(e) = hub.registry_mut().add(record) {
            panic!("cannot register {id}: {e:?}");
        }
        let mut config = DeviceConfig::new(Pair::connection_string(id));
        config.protocol = Protocol::Amqp;
        config.max_queued = MAX_QUEUED;
        config.max_in_flight = MAX_IN_FLIGHT;
        match mux.add_device(START, config) {
            Ok(key) => keys.push(key),
            Err(e) => panic!("device refused: {e}"),
        }
    }
    let connection = hub.accept(START, Protocol::Amqp);
    let mut connected = 0;
    loop {
        let mut moved = false;
        while let Some(t) = mux.poll_transmit() {
            moved = true;
            match t {
                Transmit::Connect => mux.handle_connected(START),
                Transmit::Send(bytes) => {
                    if let Err(e) = hub.handle_input(START, connection, &bytes) {
                        panic!("the hub refused the device: {e:?}");
                    }
                }
                Transmit::Close => panic!("the device closed while opening"),
            }
        }
        while let Some((_, t)) = hub.poll_transmit() {
            moved = true;
            match t {
                Transmit::Send(bytes) => {
                    if let Err(e) = mux.handle_input(START, &bytes) {
                        panic!("the device refused the hub: {e}");
                    }
                }
                other => panic!("the hub sent {other:?} while opening"),
            }
        }
        while let Some((_, event)) = mux.poll_event() {
            moved = true;
            match event {
                DeviceEvent::Connected { .. } => connected += 1,
                other => panic!("{other:?} while opening"),
            }
        }
        while hub.poll_event().is_some() {}
        if !moved {
            assert_eq!(connected, DEVICES.len(), "not every device connected");
            return (mux, keys, hub, connection);
        }
    }
}

/// The `n`th telemetry message the body sends.
fn telemetry(n: usize) -> Message {
    let mut message = Message::new(format!("{{\"n\":{n}}}"));
    message.content_type = Some(String::from("application/json"));
    message.properties.set("n", format!("{n}"));
    message
}

/// Hub → device streams after the opening, recorded from the hub engine: the
/// acknowledgements of the opening's telemetry alone; with one C2D message for each
/// device; with four C2D messages shared between them.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let acks = record(|_, _| {});
    let c2d = record(|hub, now| {
        for (i, id) in DEVICES.iter().enumerate() {
            let mut m = Message::new(format!("c2d {i}"));
            m.message_id = Some(format!("c{i}"));
            m.properties.set("color", "blue");
            if let Err(e) = hub.send_c2d(now, id, m) {
                panic!("send_c2d: {e}");
            }
        }
    });
    let many = record(|hub, now| {
        for i in 0..4 {
            if let Err(e) = hub.send_c2d(now, DEVICES[i % 2], Message::new(format!("{i}"))) {
                panic!("send_c2d: {e}");
            }
        }
    });
    with_schedules(&[acks, c2d, many])
}

/// The hub's bytes after [`open_through_hub`], once the devices queued the
/// opening's telemetry and `service` acted on the hub.
fn record(service: impl FnOnce(&mut Hub, Timestamp)) -> Vec<u8> {
    let (mut mux, keys, mut hub, connection) = open_through_hub();
    // As the body queues them, so that the recorded answers fit its deliveries.
    let mut n = 0;
    for _ in 0..OPENING_TELEMETRY {
        for key in &keys {
            if let Err(e) = mux.send_telemetry(START, *key, telemetry(n)) {
                panic!("telemetry refused: {e}");
            }
            n += 1;
        }
    }
    service(&mut hub, START);
    let mut stream = Vec::new();
    loop {
        let mut moved = false;
        while let Some(t) = mux.poll_transmit() {
            moved = true;
            if let Transmit::Send(bytes) = t {
                let _ = hub.handle_input(START, connection, &bytes);
            }
        }
        while let Some((_, t)) = hub.poll_transmit() {
            moved = true;
            if let Transmit::Send(bytes) = t {
                stream.extend_from_slice(&bytes);
                let _ = mux.handle_input(START, &bytes);
            }
        }
        while let Some(event) = hub.poll_event() {
            moved = true;
            if let HubEvent::StoreTelemetry { ticket, .. } = event {
                hub.telemetry_stored(START, ticket);
            }
        }
        while mux.poll_event().is_some() {
            moved = true;
        }
        if !moved {
            return stream;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach past the opening: every queued message is acknowledged and
    /// the C2D messages arrive.
    #[test]
    fn seeds_acknowledge_the_opening_telemetry_and_deliver_c2d() {
        let seeds = seeds();
        let (_, stream) = Schedule::split(&seeds[2]);
        let mut run = Run::opened();
        for _ in 0..OPENING_TELEMETRY {
            for key in run.keys.clone() {
                run.send_telemetry(key);
            }
        }
        let mut schedule = Schedule::split(&[0x0F, 0]).0;
        run.drain(&mut schedule);
        run.input(stream, &mut schedule);
        let answered: usize = run.answered.values().map(BTreeSet::len).sum();
        assert_eq!(answered, OPENING_TELEMETRY * DEVICES.len());
        assert_eq!(run.locks.len(), DEVICES.len(), "one C2D message each");
    }
}
