//! Test support, behind the `testing` feature: the [`Pair`] harness that joins
//! devices and the hub engine in simulated time, and the bodies of the fuzz targets
//! (shared with the tests that replay their corpora).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::Protocol;
use crate::device::{
    C2dMessage, Device, DeviceConfig, DeviceEvent, DispositionError, SendError, TelemetryId,
};
use crate::hub::{D2cLog, DeviceRecord, Hub, HubConfig, HubError, HubEvent};
use crate::iothub::{Authentication, ConnectionString, Disposition, LockToken, Message, SasToken};
use crate::mqtt::{self, Packet};
use crate::sansio::{Connection, ConnectionId, Endpoint, Transmit};
use crate::time::{Duration, Timestamp};
use crate::utf8::Utf8Bytes;

pub mod fuzz;

/// A fixed device key for tests: base64 of the 32 bytes 0x00..0x1F (the spec
/// file's K1).
pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The time every `Pair` starts at: 2023-11-14T22:13:20Z.
pub const START: Timestamp = Timestamp::from_unix_secs(1_700_000_000);

/// One device in a [`Pair`].
#[derive(Debug)]
pub struct DeviceEnd {
    /// The machine under test.
    pub device: Device,
    /// Its connection to the hub, while open.
    pub connection: Option<ConnectionId>,
    /// Every event it produced, in order.
    pub events: Vec<DeviceEvent>,
    /// Bytes it wrote, in total.
    pub bytes_sent: usize,
    /// Every byte it sent to the hub, across connections.
    pub wire_to_hub: BytesMut,
    /// Every byte the hub sent it, across connections.
    pub wire_from_hub: BytesMut,
}

impl DeviceEnd {
    /// Removes and returns the events so far.
    pub fn take_events(&mut self) -> Vec<DeviceEvent> {
        core::mem::take(&mut self.events)
    }

    /// The MQTT packets the device sent, in order.
    pub fn packets_to_hub(&self) -> Vec<Packet> {
        decode_all(&self.wire_to_hub)
    }

    /// The MQTT packets the hub sent the device, in order.
    pub fn packets_from_hub(&self) -> Vec<Packet> {
        decode_all(&self.wire_from_hub)
    }
}

/// A client that speaks raw bytes to the hub, for tests of what the hub does with
/// packets a well-behaved device never sends.
#[derive(Debug, Default)]
pub struct RawClient {
    /// Its connection, until closed.
    pub connection: Option<ConnectionId>,
    /// Every byte the hub sent it.
    pub received: BytesMut,
    /// Whether the hub closed the connection.
    pub closed_by_hub: bool,
}

impl RawClient {
    /// The MQTT packets the hub sent, in order.
    pub fn packets(&self) -> Vec<Packet> {
        decode_all(&self.received)
    }
}

/// Decodes a whole byte stream of MQTT packets; panics (test failure) on bad bytes.
pub fn decode_all(bytes: &[u8]) -> Vec<Packet> {
    let mut buf = BytesMut::from(bytes);
    let limits = mqtt::Limits {
        max_remaining_length: mqtt::codec::MAX_REMAINING_LENGTH,
        ..mqtt::Limits::default()
    };
    let mut packets = Vec::new();
    loop {
        match mqtt::codec::decode(&mut buf, &limits) {
            Ok(Some(p)) => packets.push(p),
            Ok(None) => return packets,
            Err(e) => panic!("bad bytes on the wire: {e}"),
        }
    }
}

/// Encodes one packet; panics (test failure) if it cannot be.
pub fn encode(packet: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    if let Err(e) = packet.encode(&mut out) {
        panic!("test packet does not encode: {e}");
    }
    out
}

/// Devices and a hub joined in memory, in simulated time (DESIGN.md, "Tests").
///
/// Bytes cross instantly; `now` moves only when the test calls [`Pair::advance`].
/// Stores complete at once unless `hold_stores` is set.
#[derive(Debug)]
pub struct Pair {
    /// The hub engine.
    pub hub: Hub,
    /// The devices, in the order added.
    pub devices: Vec<DeviceEnd>,
    /// Simulated time.
    pub now: Timestamp,
    /// What the hub stored.
    pub stored: D2cLog,
    /// Every hub event but `StoreTelemetry`, in order.
    pub hub_events: Vec<HubEvent>,
    /// While true the hub refuses new transport connections (it is "down").
    pub hub_down: bool,
    /// While true stores are not completed; `pending_stores` holds them.
    pub hold_stores: bool,
    /// Stores waiting while `hold_stores` is set.
    pub pending_stores: Vec<HubEvent>,
    /// While true every byte in either direction is lost, but the connections stay
    /// open: a peer that went silent.
    pub blackhole: bool,
    /// Raw clients, in the order added.
    pub raw: Vec<RawClient>,
}

impl Pair {
    /// A hub with `config` and no devices, at [`START`].
    pub fn new(config: HubConfig) -> Self {
        Pair {
            hub: Hub::new(config, 1),
            devices: Vec::new(),
            now: START,
            stored: D2cLog::default(),
            hub_events: Vec::new(),
            hub_down: false,
            hold_stores: false,
            pending_stores: Vec::new(),
            blackhole: false,
            raw: Vec::new(),
        }
    }

    /// The connection string of `device_id` registered with [`KEY`].
    pub fn connection_string(device_id: &str) -> ConnectionString {
        ConnectionString {
            host_name: String::from("localhost"),
            device_id: String::from(device_id),
            module_id: None,
            authentication: Authentication::SharedAccessKey(String::from(KEY)),
            shared_access_key_name: None,
            gateway_host_name: None,
        }
    }

    /// Registers `device_id` with [`KEY`] and adds a device that will dial the hub.
    /// `configure` adjusts the device's defaults. Returns its index.
    pub fn add_device(
        &mut self,
        device_id: &str,
        configure: impl FnOnce(&mut DeviceConfig),
    ) -> usize {
        // A second device end for the same id (to test eviction) reuses the record.
        self.register(device_id);
        let mut config = DeviceConfig::new(Self::connection_string(device_id));
        config.seed = self.devices.len() as u64;
        configure(&mut config);
        self.add_device_with(config)
    }

    /// Adds a device built from `config` (not registered). Returns its index.
    pub fn add_device_with(&mut self, config: DeviceConfig) -> usize {
        let device = match Device::new(self.now, config) {
            Ok(d) => d,
            Err(e) => panic!("device config refused: {e}"),
        };
        self.devices.push(DeviceEnd {
            device,
            connection: None,
            events: Vec::new(),
            bytes_sent: 0,
            wire_to_hub: BytesMut::new(),
            wire_from_hub: BytesMut::new(),
        });
        self.devices.len() - 1
    }

    /// Device `i`.
    pub fn device(&mut self, i: usize) -> &mut DeviceEnd {
        &mut self.devices[i]
    }

    /// Moves bytes, closes and events until nothing moves.
    pub fn drive(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.devices.len() {
                moved |= self.drive_device(i);
            }
            moved |= self.drive_hub();
            if !moved {
                return;
            }
        }
    }

    fn drive_device(&mut self, i: usize) -> bool {
        let mut moved = false;
        while let Some(t) = self.devices[i].device.poll_transmit() {
            moved = true;
            let now = self.now;
            match t {
                Transmit::Connect => {
                    if self.hub_down {
                        self.devices[i].device.handle_close(now);
                    } else {
                        let protocol = self.devices[i].device.protocol();
                        let id = self.hub.accept(now, protocol);
                        self.devices[i].connection = Some(id);
                        self.devices[i].device.handle_connected(now);
                    }
                }
                Transmit::Send(bytes) => {
                    self.devices[i].bytes_sent += bytes.len();
                    if self.blackhole {
                        continue;
                    }
                    self.devices[i].wire_to_hub.extend_from_slice(&bytes);
                    if let Some(id) = self.devices[i].connection {
                        let _ = self.hub.handle_input(now, id, &bytes);
                    }
                }
                Transmit::Close => {
                    if let Some(id) = self.devices[i].connection.take() {
                        self.hub.handle_close(now, id);
                    }
                }
            }
        }
        while let Some(e) = self.devices[i].device.poll_event() {
            moved = true;
            self.devices[i].events.push(e);
        }
        moved
    }

    fn drive_hub(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        while let Some((id, t)) = self.hub.poll_transmit() {
            moved = true;
            if matches!(t, Transmit::Send(_)) && self.blackhole {
                continue;
            }
            if let Some(raw) = self.raw.iter_mut().find(|r| r.connection == Some(id)) {
                match t {
                    Transmit::Send(bytes) => raw.received.extend_from_slice(&bytes),
                    Transmit::Close => {
                        raw.connection = None;
                        raw.closed_by_hub = true;
                    }
                    Transmit::Connect => {}
                }
                continue;
            }
            let Some(end) = self.devices.iter_mut().find(|d| d.connection == Some(id)) else {
                continue;
            };
            match t {
                Transmit::Send(bytes) => {
                    end.wire_from_hub.extend_from_slice(&bytes);
                    let _ = end.device.handle_input(now, &bytes);
                }
                Transmit::Close => {
                    end.connection = None;
                    end.device.handle_close(now);
                }
                Transmit::Connect => {}
            }
        }
        while let Some(e) = self.hub.poll_event() {
            moved = true;
            match e {
                HubEvent::StoreTelemetry { .. } if self.hold_stores => self.pending_stores.push(e),
                HubEvent::StoreTelemetry { ticket, record } => {
                    self.stored.append(record);
                    self.hub.telemetry_stored(now, ticket);
                }
                other => self.hub_events.push(other),
            }
        }
        moved
    }

    /// Completes every held store.
    pub fn release_stores(&mut self) {
        for e in core::mem::take(&mut self.pending_stores) {
            if let HubEvent::StoreTelemetry { ticket, record } = e {
                self.stored.append(record);
                self.hub.telemetry_stored(self.now, ticket);
            }
        }
        self.drive();
    }

    /// Advances simulated time by `d`, firing every timer due on the way in order.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.drive();
        loop {
            let next = self
                .devices
                .iter()
                .filter_map(|d| d.device.poll_timeout())
                .chain(self.hub.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for end in &mut self.devices {
                        if end.device.poll_timeout().is_some_and(|t| t <= now) {
                            end.device.handle_timeout(now);
                        }
                    }
                    if self.hub.poll_timeout().is_some_and(|t| t <= now) {
                        self.hub.handle_timeout(now);
                    }
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = target;
        self.drive();
    }

    /// Breaks device `i`'s transport: both sides see the close, nothing in flight
    /// arrives.
    pub fn break_connection(&mut self, i: usize) {
        if let Some(id) = self.devices[i].connection.take() {
            let now = self.now;
            self.hub.handle_close(now, id);
            self.devices[i].device.handle_close(now);
        }
        self.drive();
    }

    /// Opens a raw MQTT connection to the hub. Returns its index in `raw`.
    pub fn raw_connect(&mut self) -> usize {
        self.raw_connect_with(Protocol::Mqtt)
    }

    /// Opens a raw connection of `protocol` to the hub. Returns its index in `raw`.
    pub fn raw_connect_with(&mut self, protocol: Protocol) -> usize {
        let id = self.hub.accept(self.now, protocol);
        self.raw.push(RawClient { connection: Some(id), ..RawClient::default() });
        self.raw.len() - 1
    }

    /// Closes raw connection `r` from the client's side, as a broken transport would.
    pub fn raw_close(&mut self, r: usize) {
        if let Some(id) = self.raw[r].connection.take() {
            let now = self.now;
            self.hub.handle_close(now, id);
        }
        self.drive();
    }

    /// Sends bytes on raw connection `r` (nothing if the hub closed it).
    pub fn raw_send(&mut self, r: usize, bytes: &[u8]) {
        if let Some(id) = self.raw[r].connection {
            let now = self.now;
            let _ = self.hub.handle_input(now, id, bytes);
        }
        self.drive();
    }

    /// Sends `packet` on raw connection `r`.
    pub fn raw_send_packet(&mut self, r: usize, packet: &Packet) {
        let bytes = encode(packet);
        self.raw_send(r, &bytes);
    }

    /// A CONNECT for `device_id` with a valid token (signed with [`KEY`], an hour
    /// from now), clean session 0, keep-alive 60 s.
    pub fn connect_packet(&self, device_id: &str) -> mqtt::Connect {
        let resource = alloc::format!("localhost/devices/{device_id}");
        let token = match SasToken::sign(&resource, KEY, self.now + Duration::from_secs(3600), None)
        {
            Ok(t) => t.to_string(),
            Err(e) => panic!("cannot sign: {e}"),
        };
        mqtt::Connect {
            protocol_name: Utf8Bytes::from_static("MQTT"),
            protocol_level: 4,
            clean_session: false,
            keep_alive: 60,
            client_id: device_id.into(),
            will: None,
            username: Some(alloc::format!("localhost/{device_id}/?api-version=2021-04-12").into()),
            password: Some(Bytes::from(token.into_bytes())),
        }
    }

    /// Registers `device_id` with [`KEY`] without adding a device end.
    pub fn register(&mut self, device_id: &str) {
        let record = DeviceRecord {
            device_id: String::from(device_id),
            primary_key: String::from(KEY),
            secondary_key: String::from(KEY),
            enabled: true,
        };
        let _ = self.hub.registry_mut().add(record);
    }

    /// Feeds raw bytes to the hub on device `i`'s connection, as if the device sent
    /// them.
    pub fn inject_to_hub(&mut self, i: usize, bytes: &[u8]) {
        if let Some(id) = self.devices[i].connection {
            let now = self.now;
            let _ = self.hub.handle_input(now, id, bytes);
        }
        self.drive();
    }

    /// Device `i` sends `message`; the pair is driven after.
    pub fn send_telemetry(&mut self, i: usize, message: Message) -> Result<TelemetryId, SendError> {
        let now = self.now;
        let result = self.devices[i].device.send_telemetry(now, message);
        self.drive();
        result
    }

    /// Device `i` settles a C2D message; the pair is driven after.
    pub fn settle(
        &mut self,
        i: usize,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        let now = self.now;
        let result = self.devices[i].device.settle(now, lock, disposition);
        self.drive();
        result
    }

    /// The service side sends a C2D message; the pair is driven after.
    pub fn send_c2d(&mut self, device_id: &str, message: Message) -> Result<u64, HubError> {
        let now = self.now;
        let result = self.hub.send_c2d(now, device_id, message);
        self.drive();
        result
    }

    /// The C2D messages device `i` received so far, in order.
    pub fn c2d_received(&self, i: usize) -> Vec<C2dMessage> {
        self.devices[i]
            .events
            .iter()
            .filter_map(|e| match e {
                DeviceEvent::C2d(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// Bodies of the D2C messages stored for `device_id`, in arrival order.
    pub fn stored_bodies(&self, device_id: &str) -> Vec<Bytes> {
        self.stored.device(device_id).map(|r| r.message.body.clone()).collect()
    }
}
