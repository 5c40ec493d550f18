//! Hostile peers against a `hubwire hub` process (issue 7, item 5): one that
//! disappears mid-packet, one that sends a byte at a time, one that announces a
//! gigabyte (MQTT Remaining Length, AMQP frame, SASL frame and delivery, HTTP
//! Content-Length, chunk and head), one that floods PINGREQs, one that opens
//! thousands of links or sessions, and a crowd that exhausts the hub's file
//! descriptors. After each the hub has answered as the standard says, is still up
//! (a real device has a message acknowledged and stored), kept every message it
//! acknowledged before and stored nothing half sent, and its memory stayed
//! bounded (`VmRSS`). The flood and the descriptor siege run on every runtime
//! `hubwire hub --runtime` offers, since each paces and accepts in its own code.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hubwire_blocking::{ClientTransport, DeviceClient, Transport, clock};
use hubwire_conformance::process::{self, Hub, TempDir, WAIT, next_of, start_hub_with};
use hubwire_conformance::raw::{TlsClient, read_until_closed};
use hubwire_core::amqp::cbs::PutToken;
use hubwire_core::amqp::delivery_state::DeliveryState;
use hubwire_core::amqp::frame::{self, Frame, FrameKind, FrameLimits};
use hubwire_core::amqp::message::{Body, MessageId};
use hubwire_core::amqp::performative::{
    Attach, Begin, Close, Detach, End, Flow, Open, Performative, Role, Source, Target, Terminus,
    Transfer, condition,
};
use hubwire_core::amqp::protocol_header::ProtocolHeader;
use hubwire_core::amqp::sasl::{self, SaslFrame};
use hubwire_core::amqp::types::Limits;
use hubwire_core::device::DeviceConfig;
use hubwire_core::iothub::{ConnectionString, Message, SasToken};
use hubwire_core::mqtt::{Connect, Packet, PacketId, Publish, QoS, Subscribe, TopicName};

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1): every device's key.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The host the hub's tokens name (its bind address).
const HOST: &str = "127.0.0.1";
const API: &str = "api-version=2021-04-12";

// ---------------------------------------------------------------------------------
// The hub, its memory and what it stored

/// A hub with `dev1` and `dev2` (key [`KEY`]), HTTPS on a free port and MQTT and
/// AMQP on plain TCP, its store in memory.
fn start_hub() -> Hub {
    start_hub_on("mio")
}

/// [`start_hub`] on `runtime` (`hubwire hub --runtime`).
fn start_hub_on(runtime: &str) -> Hub {
    let data_dir = TempDir::new("hubwire-robust");
    let mut args = hub_args(&data_dir);
    args.splice(1..1, [String::from("--runtime"), String::from(runtime)]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_hub_with(&args, data_dir)
}

/// The arguments of [`start_hub`], its registry written into `data_dir`.
fn hub_args(data_dir: &TempDir) -> Vec<String> {
    let registry = serde_json::json!([
        { "deviceId": "dev1", "primaryKey": KEY },
        { "deviceId": "dev2", "primaryKey": KEY },
    ]);
    let registry_file = data_dir.0.join("registry.json");
    if let Err(e) = std::fs::write(&registry_file, registry.to_string()) {
        panic!("{e}");
    }
    let (dir, file) = (data_dir.0.display().to_string(), registry_file.display().to_string());
    ["hub", "--mqtt-port", "off", "--amqp-port", "off", "--https-port", "0"]
        .into_iter()
        .chain(["--mqtt-tcp-port", "0", "--amqp-tcp-port", "0", "--in-memory"])
        .chain(["--data-dir", &dir, "--registry", &file])
        .map(String::from)
        .collect()
}

/// [`start_hub`] with at most `descriptors` open file descriptors (`ulimit -n`).
fn start_hub_with_descriptors(runtime: &str, descriptors: u32) -> Hub {
    let data_dir = TempDir::new("hubwire-robust");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""))
        .arg(process::hubwire())
        .args(["hub", "--runtime", runtime])
        .args(&hub_args(&data_dir)[1..]);
    let (process, stdin, out) = process::spawn(&mut command);
    let (listening, connection_string) = process::registered(&out);
    let field = |name: &str| listening[name].as_str().unwrap_or_default().to_owned();
    Hub {
        process,
        stdin,
        out,
        mqtt: field("mqtt"),
        https: field("https"),
        mqtt_tcp: field("mqttTcp"),
        amqp: field("amqp"),
        amqp_tcp: field("amqpTcp"),
        ca: field("ca"),
        connection_string,
        data_dir,
    }
}

/// The CPU time the hub process has used, in clock ticks (`utime` + `stime` of
/// `/proc/<pid>/stat`).
fn cpu_ticks(hub: &Hub) -> u64 {
    let path = format!("/proc/{}/stat", hub.process.child.id());
    let stat = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => panic!("{path}: {e}"),
    };
    // Fields after the command name, which is in parentheses: state is field 3,
    // utime 14 and stime 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<u64> =
        after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    match fields[..] {
        [utime, stime] => utime + stime,
        _ => panic!("no utime and stime in {path}: {stat}"),
    }
}

/// The hub process's resident memory, KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(hub: &Hub) -> u64 {
    let path = format!("/proc/{}/status", hub.process.child.id());
    let status = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => panic!("{path}: {e}"),
    };
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok());
    match kib {
        Some(kib) => kib,
        None => panic!("no VmRSS in {path}: {status}"),
    }
}

/// Fails unless the hub's memory grew by less than `mib` MiB since `before` KiB.
fn assert_memory_bounded(hub: &Hub, before: u64, mib: u64) {
    let after = rss_kib(hub);
    let grown = after.saturating_sub(before);
    assert!(grown < mib * 1024, "the hub grew from {before} KiB to {after} KiB");
}

/// The bodies of the telemetry the hub stores (its `telemetry` lines) before the
/// one whose body is `body`, which must come within [`WAIT`] of each.
fn stored_until(hub: &Hub, body: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let line = next_of(&hub.out, &["telemetry"], WAIT);
        let stored = line["body"].as_str().unwrap_or_default().to_owned();
        if stored == body {
            return before;
        }
        before.push(stored);
    }
}

/// A real device, `device_id` over MQTT on plain TCP, has `body` acknowledged; the
/// hub's `telemetry` line shows it stored. Returns the bodies stored before it.
fn a_device_is_served(hub: &Hub, device_id: &str, body: &str) -> Vec<String> {
    let cs = format!("HostName={};DeviceId={device_id};SharedAccessKey={KEY}", hub.mqtt_tcp);
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("{cs}") };
    let transport = ClientTransport::new(Transport::MqttTcp);
    let device = match DeviceClient::connect(DeviceConfig::new(cs), transport) {
        Ok(device) => device,
        Err(e) => panic!("{e}"),
    };
    let message = Message::new(body.as_bytes().to_vec());
    if let Err(e) = device.send_telemetry_timeout(message, WAIT) {
        panic!("the hub did not acknowledge {body:?}: {e}");
    }
    device.disconnect();
    stored_until(hub, body)
}

/// A SAS token for `device_id`, valid for an hour.
fn token(device_id: &str) -> SasToken {
    let expiry = clock::now() + Duration::from_secs(3600);
    match SasToken::sign(&format!("{HOST}/devices/{device_id}"), KEY, expiry, None) {
        Ok(token) => token,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------------
// Raw TCP

fn dial(address: &str) -> TcpStream {
    let stream = match TcpStream::connect(address) {
        Ok(s) => s,
        Err(e) => panic!("cannot connect to {address}: {e}"),
    };
    // Each write its own segment: one byte at a time means one byte at a time.
    if let Err(e) = stream.set_nodelay(true) {
        panic!("{e}");
    }
    stream
}

fn write(stream: &mut TcpStream, bytes: &[u8]) {
    if let Err(e) = stream.write_all(bytes) {
        panic!("cannot write {} bytes: {e}", bytes.len());
    }
}

/// Writes `bytes` one per write, a little apart, as a peer on a bad link would.
fn write_byte_by_byte(stream: &mut TcpStream, bytes: &[u8]) {
    for byte in bytes {
        write(stream, &[*byte]);
        thread::sleep(Duration::from_micros(200));
    }
}

/// Exactly `n` bytes from the peer, within [`WAIT`].
fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(WAIT));
    let mut bytes = vec![0; n];
    if let Err(e) = stream.read_exact(&mut bytes) {
        panic!("expected {n} bytes: {e}");
    }
    bytes
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

// ---------------------------------------------------------------------------------
// MQTT

fn mqtt(packet: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = packet.encode(&mut out) {
        panic!("{e}");
    }
    out.to_vec()
}

/// A CONNECT as the SDKs send it for `device_id`, Clean Session 1.
fn mqtt_connect(device_id: &str) -> Vec<u8> {
    mqtt(&Packet::Connect(Connect {
        protocol_name: "MQTT".into(),
        protocol_level: 4,
        clean_session: true,
        keep_alive: 600,
        client_id: device_id.into(),
        will: None,
        username: Some(format!("{HOST}/{device_id}/?{API}").into()),
        password: Some(Bytes::from(token(device_id).to_string().into_bytes())),
    }))
}

/// A QoS 1 telemetry PUBLISH of `body` with packet id `id`.
fn mqtt_telemetry(device_id: &str, id: u16, body: &[u8]) -> Vec<u8> {
    let Ok(topic) = TopicName::new(format!("devices/{device_id}/messages/events/")) else {
        panic!("topic");
    };
    mqtt(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic,
        packet_id: PacketId::new(id),
        payload: Bytes::copy_from_slice(body),
    }))
}

/// CONNACK, Session Present 0, accepted (§3.2).
const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// PUBACK for packet id `id` (§3.4).
fn puback(id: u16) -> Vec<u8> {
    let [high, low] = id.to_be_bytes();
    vec![0x40, 0x02, high, low]
}

/// An MQTT connection of `device_id`, CONNECT accepted.
fn mqtt_connected(hub: &Hub, device_id: &str) -> TcpStream {
    let mut stream = dial(&hub.mqtt_tcp);
    write(&mut stream, &mqtt_connect(device_id));
    assert_eq!(read_exactly(&mut stream, 4), CONNACK_ACCEPTED);
    stream
}

// ---------------------------------------------------------------------------------
// AMQP

/// What the hub sends on an AMQP connection, one item at a time.
#[derive(Debug)]
enum Amqp {
    Header(ProtocolHeader),
    Sasl(SaslFrame),
    Frame(u16, Performative),
    Heartbeat,
}

/// A raw AMQP client: writes what it is given, reads and decodes what the hub
/// sends as it comes.
struct AmqpPeer {
    stream: TcpStream,
    rx: BytesMut,
    received: Vec<Amqp>,
    closed: bool,
}

impl AmqpPeer {
    fn dial(hub: &Hub) -> AmqpPeer {
        AmqpPeer {
            stream: dial(&hub.amqp_tcp),
            rx: BytesMut::new(),
            received: vec![],
            closed: false,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        write(&mut self.stream, bytes);
    }

    /// Reads one chunk, or nothing within 200 ms, and decodes what it completes.
    fn read_some(&mut self) {
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buffer = [0u8; 64 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => self.closed = true,
            Ok(n) => self.rx.extend_from_slice(&buffer[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => self.closed = true,
        }
        self.decode();
    }

    fn decode(&mut self) {
        let limits = FrameLimits { max_frame_size: u32::MAX };
        loop {
            if self.rx.starts_with(b"AMQP") || (self.rx.len() < 4 && b"AMQP".starts_with(&self.rx))
            {
                match ProtocolHeader::decode(&mut self.rx) {
                    Ok(Some(header)) => self.received.push(Amqp::Header(header)),
                    Ok(None) => return,
                    Err(e) => panic!("the hub sent a bad protocol header: {e}"),
                }
                continue;
            }
            let frame = match frame::decode(&mut self.rx, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => panic!("the hub sent a bad frame: {e}"),
            };
            let item = match frame.kind {
                _ if frame.is_empty() => Amqp::Heartbeat,
                FrameKind::Sasl => match SaslFrame::decode(&frame.body, &Limits::default()) {
                    Ok(sasl) => Amqp::Sasl(sasl),
                    Err(e) => panic!("the hub sent a bad SASL frame: {e}"),
                },
                FrameKind::Amqp { channel } => {
                    match Performative::decode(&frame.body, &Limits::default()) {
                        Ok((performative, _)) => Amqp::Frame(channel, performative),
                        Err(e) => panic!("the hub sent a bad performative: {e}"),
                    }
                }
            };
            self.received.push(item);
        }
    }

    /// Reads until `done` holds for what the hub sent, within [`WAIT`].
    fn read_until(&mut self, what: &str, done: impl Fn(&[Amqp]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.received) {
            assert!(
                Instant::now() < deadline && !self.closed,
                "no {what} from the hub (closed: {}); it sent {:?}",
                self.closed,
                self.received.iter().rev().take(5).collect::<Vec<_>>()
            );
            self.read_some();
        }
    }

    /// Reads until the hub gives the link on `handle` credit.
    fn read_until_credit(&mut self, handle: u32) {
        self.read_until("link credit", |r| {
            r.iter().any(|i| {
                matches!(i, Amqp::Frame(_, Performative::Flow(f))
                    if f.handle == Some(handle) && f.link_credit.unwrap_or(0) > 0)
            })
        });
    }

    /// Reads until the hub closes the connection, within [`WAIT`].
    fn read_until_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.closed {
            assert!(
                Instant::now() < deadline,
                "the hub kept the connection open; it sent {} items, the last {:?}",
                self.received.len(),
                self.received.iter().rev().take(3).collect::<Vec<_>>()
            );
            self.read_some();
        }
    }

    /// The hub's `close`, if it sent one.
    fn close_received(&self) -> Option<&Close> {
        self.received.iter().find_map(|item| match item {
            Amqp::Frame(_, Performative::Close(close)) => Some(close),
            _ => None,
        })
    }
}

/// `performative` (and a transfer's `payload`) as one frame on `channel`.
fn amqp_frame(channel: u16, performative: Performative, payload: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    if let Err(e) = performative.encode(&mut body) {
        panic!("{e}");
    }
    body.extend_from_slice(payload);
    let frame = Frame { kind: FrameKind::Amqp { channel }, body: body.freeze() };
    let mut out = BytesMut::new();
    if let Err(e) = frame.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out) {
        panic!("{e}");
    }
    out.to_vec()
}

fn sasl_frame(sasl: &SaslFrame) -> Vec<u8> {
    let mut body = BytesMut::new();
    if let Err(e) = sasl.encode(&mut body) {
        panic!("{e}");
    }
    let frame = Frame { kind: FrameKind::Sasl, body: body.freeze() };
    let mut out = BytesMut::new();
    if let Err(e) = frame.encode(&FrameLimits::BEFORE_OPEN, &mut out) {
        panic!("{e}");
    }
    out.to_vec()
}

fn protocol_header(header: ProtocolHeader) -> Vec<u8> {
    let mut out = BytesMut::new();
    header.encode(&mut out);
    out.to_vec()
}

/// The AMQP header (no SASL, as Node and .NET connect), `open` and `begin` on
/// channel 0.
fn amqp_open_and_begin() -> Vec<u8> {
    let open = Open { max_frame_size: 64 * 1024, ..Open::new("robustness".into()) };
    [
        protocol_header(ProtocolHeader::AMQP),
        amqp_frame(0, Performative::Open(open), b""),
        amqp_frame(0, Performative::Begin(Begin::new(0, u32::MAX, u32::MAX)), b""),
    ]
    .concat()
}

/// A sender link `name` on `handle` to `address`.
fn attach_sender(name: &str, handle: u32, address: &str) -> Vec<u8> {
    let mut attach = Attach::new(name.into(), handle, Role::Sender);
    attach.source = Some(Source::default());
    attach.target = Some(Target { terminus: Terminus::at(address.into()), ..Target::default() });
    attach.initial_delivery_count = Some(0);
    amqp_frame(0, Performative::Attach(Box::new(attach)), b"")
}

/// A receiver link `name` on `handle` from `address`, with `credit`.
fn attach_receiver(name: &str, handle: u32, address: &str, credit: u32) -> Vec<u8> {
    let mut attach = Attach::new(name.into(), handle, Role::Receiver);
    attach.source = Some(Source { terminus: Terminus::at(address.into()), ..Source::default() });
    attach.target = Some(Target::default());
    let flow = Flow {
        next_incoming_id: Some(0),
        incoming_window: u32::MAX,
        outgoing_window: u32::MAX,
        handle: Some(handle),
        delivery_count: Some(0),
        link_credit: Some(credit),
        ..Flow::default()
    };
    [
        amqp_frame(0, Performative::Attach(Box::new(attach)), b""),
        amqp_frame(0, Performative::Flow(flow), b""),
    ]
    .concat()
}

/// A whole unsettled transfer of `message` on `handle`, delivery `id`.
fn transfer(handle: u32, id: u32, message: &hubwire_core::amqp::message::Message) -> Vec<u8> {
    let mut payload = BytesMut::new();
    if let Err(e) = message.encode(&mut payload) {
        panic!("{e}");
    }
    let transfer = Transfer {
        handle,
        delivery_id: Some(id),
        delivery_tag: Some(Bytes::from(id.to_be_bytes().to_vec())),
        message_format: Some(0),
        settled: Some(false),
        ..Transfer::default()
    };
    amqp_frame(0, Performative::Transfer(transfer), &payload)
}

fn data_message(body: &str) -> hubwire_core::amqp::message::Message {
    hubwire_core::amqp::message::Message::new(Body::Data(vec![Bytes::copy_from_slice(
        body.as_bytes(),
    )]))
}

/// An AMQP connection on which `device_id` has put its token (`$cbs`, handles 0
/// and 1) and attached its telemetry sender on handle 2, which the hub has given
/// credit.
fn amqp_authenticated(hub: &Hub, device_id: &str) -> AmqpPeer {
    let mut peer = AmqpPeer::dial(hub);
    peer.send(
        &[
            amqp_open_and_begin(),
            attach_sender("cbs-requests", 0, "$cbs"),
            attach_receiver("cbs-responses", 1, "$cbs", 10),
        ]
        .concat(),
    );
    peer.read_until_credit(0);
    let put = PutToken::for_token(MessageId::Ulong(1), &token(device_id)).to_message();
    peer.send(&transfer(0, 0, &put));
    // The put-token's response, status 200, on the `$cbs` receiver.
    peer.read_until("put-token response", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::Transfer(t)) if t.handle == 1))
    });
    let events = format!("/devices/{device_id}/messages/events");
    peer.send(&attach_sender("telemetry", 2, &events));
    peer.read_until_credit(2);
    peer
}

// ---------------------------------------------------------------------------------
// HTTPS

/// The head of a telemetry POST for `device_id` announcing `length` body bytes.
fn http_post_head(device_id: &str, length: u64) -> String {
    format!(
        "POST /devices/{device_id}/messages/events?{API} HTTP/1.1\r\nHost: {HOST}\r\n\
         Authorization: {}\r\nContent-Length: {length}\r\n\r\n",
        token(device_id)
    )
}

/// The head of a telemetry POST for `device_id` with a chunked body (RFC 9112
/// §7.1).
fn chunked_post_head(device_id: &str) -> String {
    format!(
        "POST /devices/{device_id}/messages/events?{API} HTTP/1.1\r\nHost: {HOST}\r\n\
         Authorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        token(device_id)
    )
}

// ---------------------------------------------------------------------------------
// 1. A peer that disappears mid-packet

#[test]
fn mqtt_a_publish_cut_in_half_is_not_stored_and_the_one_acknowledged_before_is() {
    let hub = start_hub();
    let mut stream = mqtt_connected(&hub, "dev1");
    write(&mut stream, &mqtt_telemetry("dev1", 1, b"acknowledged-before"));
    assert_eq!(read_exactly(&mut stream, 4), puback(1));
    let half = mqtt_telemetry("dev1", 2, b"cut-in-half-and-never-whole");
    write(&mut stream, &half[..half.len() / 2]);
    drop(stream);

    let before = a_device_is_served(&hub, "dev2", "after-the-cut");
    assert_eq!(before, ["acknowledged-before"], "only the acknowledged message is stored");
}

#[test]
fn amqp_a_transfer_cut_in_half_is_not_stored_and_the_one_accepted_before_is() {
    let hub = start_hub();
    let mut peer = amqp_authenticated(&hub, "dev1");
    peer.send(&transfer(2, 0, &data_message("accepted-before")));
    // The hub settles the delivery `accepted` once it is stored (spec file §5.4).
    peer.read_until("the disposition", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::Disposition(d)) if d.first == 0))
    });
    let whole = transfer(2, 1, &data_message("cut-in-half-and-never-whole"));
    peer.send(&whole[..whole.len() / 2]);
    drop(peer);

    let before = a_device_is_served(&hub, "dev2", "after-the-cut");
    assert_eq!(before, ["accepted-before"], "only the accepted message is stored");
}

#[test]
fn http_a_body_cut_short_is_not_stored_and_the_hub_serves_on() {
    let hub = start_hub();
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    client.send(format!("{}0123456789", http_post_head("dev1", 100)).as_bytes());
    // Give the hub the ten bytes before the peer goes.
    thread::sleep(Duration::from_millis(200));
    drop(client);

    let before = a_device_is_served(&hub, "dev2", "after-the-cut");
    assert_eq!(before, Vec::<String>::new(), "nothing half sent is stored");
}

// ---------------------------------------------------------------------------------
// 2. A peer that sends one byte at a time

#[test]
fn mqtt_connect_and_publish_a_byte_at_a_time_are_acknowledged_and_stored() {
    let hub = start_hub();
    let mut stream = dial(&hub.mqtt_tcp);
    write_byte_by_byte(&mut stream, &mqtt_connect("dev1"));
    assert_eq!(read_exactly(&mut stream, 4), CONNACK_ACCEPTED);
    write_byte_by_byte(&mut stream, &mqtt_telemetry("dev1", 7, b"byte-by-byte"));
    assert_eq!(read_exactly(&mut stream, 4), puback(7));
    assert_eq!(stored_until(&hub, "byte-by-byte"), Vec::<String>::new());
}

#[test]
fn amqp_sasl_and_open_a_byte_at_a_time_are_answered() {
    let hub = start_hub();
    let mut peer = AmqpPeer::dial(&hub);
    write_byte_by_byte(&mut peer.stream, &protocol_header(ProtocolHeader::SASL));
    // Part 5 §5.3.2: the server echoes the SASL header and offers its mechanisms.
    peer.read_until("sasl-mechanisms", |r| r.iter().any(|i| matches!(i, Amqp::Sasl(_))));
    assert!(matches!(peer.received[0], Amqp::Header(ProtocolHeader::SASL)), "{:?}", peer.received);
    let Amqp::Sasl(SaslFrame::Mechanisms(mechanisms)) = &peer.received[1] else {
        panic!("{:?}", peer.received);
    };
    assert!(mechanisms.contains(&sasl::ANONYMOUS), "{mechanisms:?}");

    let init =
        SaslFrame::Init { mechanism: sasl::ANONYMOUS, initial_response: None, hostname: None };
    write_byte_by_byte(&mut peer.stream, &sasl_frame(&init));
    peer.read_until("sasl-outcome", |r| {
        r.iter().any(|i| matches!(i, Amqp::Sasl(SaslFrame::Outcome { .. })))
    });
    let outcome = peer.received.iter().find_map(|i| match i {
        Amqp::Sasl(SaslFrame::Outcome { code, .. }) => Some(*code),
        _ => None,
    });
    assert_eq!(outcome, Some(sasl::SaslCode::Ok));

    let open = Open::new("byte-by-byte".into());
    write_byte_by_byte(
        &mut peer.stream,
        &[protocol_header(ProtocolHeader::AMQP), amqp_frame(0, Performative::Open(open), b"")]
            .concat(),
    );
    peer.read_until("open", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(0, Performative::Open(_))))
    });
    assert!(
        peer.received.iter().any(|i| matches!(i, Amqp::Header(ProtocolHeader::AMQP))),
        "{:?}",
        peer.received
    );
    assert_eq!(a_device_is_served(&hub, "dev2", "after-byte-by-byte"), Vec::<String>::new());
}

#[test]
fn http_a_request_a_byte_at_a_time_is_answered_204_and_stored() {
    let hub = start_hub();
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    let request = format!("{}byte-by-byte", http_post_head("dev1", 12));
    for byte in request.as_bytes() {
        // One TLS record per byte.
        client.send(&[*byte]);
        thread::sleep(Duration::from_micros(200));
    }
    let head = client.response_head();
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert_eq!(stored_until(&hub, "byte-by-byte"), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------
// 3. A peer that announces a gigabyte

/// A fixed header announcing the largest Remaining Length MQTT can express,
/// 268,435,455 bytes (§2.2.3): `first` then 0xFF 0xFF 0xFF 0x7F.
fn mqtt_huge_header(first: u8) -> [u8; 5] {
    [first, 0xff, 0xff, 0xff, 0x7f]
}

/// Writes up to 1 MiB after the header, as a peer would start a huge body; the
/// hub may have closed already, so failures are ignored.
fn start_a_huge_body(stream: &mut TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&vec![0x55; 1024 * 1024]);
}

#[test]
fn mqtt_a_first_packet_of_268_mb_is_closed_without_a_connack_or_memory() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut stream = dial(&hub.mqtt_tcp);
    // A CONNECT (type 1) announcing 256 MiB, past the 16 KiB a CONNECT may take.
    write(&mut stream, &mqtt_huge_header(0x10));
    start_a_huge_body(&mut stream);
    // [MQTT-3.2.0-1] asks for a CONNACK only for a CONNECT the server reads; a
    // stranger's oversized one is closed at once.
    assert_eq!(read_until_closed(&mut stream), Vec::<u8>::new());
    let refused = next_of(&hub.out, &["refused"], WAIT);
    assert_eq!(refused["error"], "MessageTooLarge", "{refused}");
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-268-mb"), Vec::<String>::new());
}

#[test]
fn mqtt_a_publish_of_268_mb_closes_the_connection_and_keeps_what_was_acknowledged() {
    let hub = start_hub();
    let mut stream = mqtt_connected(&hub, "dev1");
    write(&mut stream, &mqtt_telemetry("dev1", 1, b"acknowledged-before"));
    assert_eq!(read_exactly(&mut stream, 4), puback(1));
    assert_eq!(stored_until(&hub, "acknowledged-before"), Vec::<String>::new());
    let before = rss_kib(&hub);
    // A QoS 1 PUBLISH (0x32) announcing 256 MiB, past the hub's packet limit: a
    // protocol violation, the connection closed (§4.8).
    write(&mut stream, &mqtt_huge_header(0x32));
    start_a_huge_body(&mut stream);
    assert_eq!(read_until_closed(&mut stream), Vec::<u8>::new());
    let refused = next_of(&hub.out, &["refused"], WAIT);
    assert_eq!(refused["error"], "MessageTooLarge", "{refused}");
    assert_eq!(refused["deviceId"], "dev1", "{refused}");
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-268-mb"), Vec::<String>::new());
}

#[test]
fn amqp_a_frame_of_1_gib_is_closed_with_framing_error() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut peer = AmqpPeer::dial(&hub);
    peer.send(&amqp_open_and_begin());
    peer.read_until("begin", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::Begin(_))))
    });
    // §2.3.1 frame header: SIZE 0x40000000, DOFF 2, TYPE 0 (AMQP), channel 0; past
    // the hub's max-frame-size of 64 KiB.
    peer.send(&[0x40, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]);
    let _ = peer.stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = peer.stream.write_all(&vec![0x55; 1024 * 1024]);
    peer.read_until_closed();
    // §2.7.1: "… the connection MUST be closed with a framing-error".
    let Some(close) = peer.close_received() else { panic!("no close: {:?}", peer.received) };
    let condition = close.error.as_ref().map(|e| e.condition.as_str().to_owned());
    assert_eq!(condition.as_deref(), Some(condition::CONNECTION_FRAMING_ERROR.as_str()));
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-1-gib"), Vec::<String>::new());
}

#[test]
fn http_a_content_length_of_1_gb_is_413_message_too_large_before_the_body() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    client.send(http_post_head("dev1", 1_000_000_000).as_bytes());
    // No body byte sent: the answer comes from the head alone.
    let head = client.response_head();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.to_ascii_lowercase().contains("iothub-errorcode: messagetoolarge"), "{head}");
    client.wait_closed();
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-1-gb"), Vec::<String>::new());
}

#[test]
fn http_a_chunk_of_1_gib_is_413_before_its_data() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    let head = chunked_post_head("dev1");
    // RFC 9112 §7.1: a chunk-size line of 0x40000000 bytes, then none of them.
    client.send(format!("{head}40000000\r\n").as_bytes());
    let answer = client.response_head();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("iothub-errorcode: messagetoolarge"), "{answer}");
    client.wait_closed();
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-1-gib-chunk"), Vec::<String>::new());
}

/// A chunked POST whose chunk is past the hub's limit, its data still being sent
/// after the 413 has started: the hub must close in stages (RFC 9112 §9.6: its
/// answer, then close_notify and FIN, then read and discard until the peer closes)
/// so that the client's writes are not refused and its reads end in an orderly
/// close, not a TCP RST that could destroy the answer.
fn a_413_to_a_body_still_being_sent_is_read_whole_and_closed_without_a_reset(runtime: &str) {
    /// Body data written after the answer's head was read: far more than the
    /// socket buffers take if the hub does not read it.
    const AFTER_THE_ANSWER: usize = 4 * 1024 * 1024;
    let hub = start_hub_on(runtime);
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    let head = chunked_post_head("dev1");
    // RFC 9112 §7.1: a chunk of 0x40000000 bytes, and the first of them.
    let data = vec![0x55; 16 * 1024];
    client.send(format!("{head}40000000\r\n").as_bytes());
    client.send(&data);
    let answer = client.response_head();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A client sending its body reads the answer only later, as curl does.
    for written in (0..AFTER_THE_ANSWER).step_by(data.len()) {
        if let Err(e) = client.try_send(&data) {
            panic!("the hub refused the body after {written} bytes of it ({e}): a reset");
        }
    }
    let body = client.read_to_close();
    assert_eq!(client.broken(), None, "the connection broke instead of closing: {answer}");
    let length = answer.lines().find_map(|line| {
        line.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse().ok()
    });
    assert_eq!(
        Some(body.len()),
        length,
        "the whole answer: {answer}{:?}",
        String::from_utf8_lossy(&body)
    );
    let refused = next_of(&hub.out, &["refused"], WAIT);
    assert_eq!(refused["code"], 413001, "{refused}");
}

#[test]
fn http_a_413_to_a_body_still_being_sent_is_read_whole_and_closed_without_a_reset() {
    a_413_to_a_body_still_being_sent_is_read_whole_and_closed_without_a_reset("mio");
}

#[test]
fn http_a_413_to_a_body_still_being_sent_closes_without_a_reset_on_the_blocking_runtime() {
    a_413_to_a_body_still_being_sent_is_read_whole_and_closed_without_a_reset("blocking");
}

#[test]
fn http_a_413_to_a_body_still_being_sent_closes_without_a_reset_on_the_smol_runtime() {
    a_413_to_a_body_still_being_sent_is_read_whole_and_closed_without_a_reset("smol");
}

#[test]
fn http_a_413_to_a_body_still_being_sent_closes_without_a_reset_on_the_async_std_runtime() {
    a_413_to_a_body_still_being_sent_is_read_whole_and_closed_without_a_reset("async-std");
}

#[test]
fn http_a_body_sent_on_forever_after_a_413_is_cut_off_after_the_linger_on_every_runtime() {
    let runtimes = ["mio", "blocking", "smol", "async-std"].map(|runtime| {
        thread::spawn(move || {
            let hub = start_hub_on(runtime);
            let mut client = TlsClient::connect(&hub.https, &hub.ca);
            client.send(format!("{}40000000\r\n", chunked_post_head("dev1")).as_bytes());
            let answer = client.response_head();
            assert!(answer.starts_with("HTTP/1.1 413"), "{runtime}: {answer}");
            // The hub reads what follows only for a while (hubwire_runtime::LINGER,
            // two seconds): a peer that never stops is cut off, its data unread.
            let started = Instant::now();
            let data = vec![0x55; 16 * 1024];
            let cut = loop {
                if let Err(e) = client.try_send(&data) {
                    break e;
                }
                assert!(started.elapsed() < WAIT, "{runtime}: the hub read on for {WAIT:?}");
            };
            let reset = [ErrorKind::ConnectionReset, ErrorKind::BrokenPipe];
            assert!(reset.contains(&cut.kind()), "{runtime}: {cut}");
            let lingered = started.elapsed();
            assert!(lingered > Duration::from_secs(1), "{runtime}: cut after {lingered:?}");
        })
    });
    for runtime in runtimes {
        if let Err(panic) = runtime.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn amqp_a_telemetry_delivery_that_never_ends_is_refused_at_the_links_size_limit() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut peer = amqp_authenticated(&hub, "dev1");
    // Frames of 60 KiB, each with `more` set (§2.7.5): one delivery of 6 MiB in
    // all, far past the link's max-message-size.
    let mut frames = Vec::new();
    for n in 0..100u32 {
        let transfer = Transfer {
            handle: 2,
            delivery_id: (n == 0).then_some(0),
            delivery_tag: (n == 0).then(|| Bytes::from_static(b"endless")),
            message_format: (n == 0).then_some(0),
            settled: Some(false),
            more: true,
            ..Transfer::default()
        };
        frames.extend_from_slice(&amqp_frame(
            0,
            Performative::Transfer(transfer),
            &[0x55; 60 * 1024],
        ));
    }
    let writer = {
        let Ok(mut stream) = peer.stream.try_clone() else { panic!("cannot clone") };
        thread::spawn(move || {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(&frames);
        })
    };
    let start = peer.received.len();
    let refused = |r: &[Amqp]| {
        r[start..].iter().any(|i| {
            matches!(
                i,
                Amqp::Frame(
                    _,
                    Performative::Detach(_) | Performative::Close(_) | Performative::Disposition(_)
                )
            )
        })
    };
    peer.read_until("an answer to the endless delivery", |r| refused(r));
    let _ = writer.join();
    // Spec file §5.4 / the hub's table: rejected, amqp:link:message-size-exceeded,
    // as soon as the delivery passes the link's max-message-size.
    let rejection = peer.received[start..].iter().find_map(|i| match i {
        Amqp::Frame(_, Performative::Disposition(d)) => Some(d.clone()),
        _ => None,
    });
    let Some(rejection) = rejection else { panic!("{:?}", &peer.received[start..]) };
    assert_eq!((rejection.first, rejection.settled), (0, true), "{rejection:?}");
    let Some(DeliveryState::Rejected { error: Some(error) }) = &rejection.state else {
        panic!("{rejection:?}");
    };
    assert_eq!(error.condition, condition::LINK_MESSAGE_SIZE_EXCEEDED);
    assert_memory_bounded(&hub, before, 50);

    // The delivery ends (its last frame); the link carries the next one.
    let last = Transfer { handle: 2, more: false, ..Transfer::default() };
    peer.send(&amqp_frame(0, Performative::Transfer(last), b""));
    peer.send(&transfer(2, 1, &data_message("same-link-after")));
    peer.read_until("delivery 1 settled", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::Disposition(d)) if d.first == 1))
    });
    assert_eq!(stored_until(&hub, "same-link-after"), Vec::<String>::new());
    assert_eq!(a_device_is_served(&hub, "dev2", "after-endless"), Vec::<String>::new());
}

#[test]
fn amqp_a_sasl_frame_of_1_gib_is_closed_unread() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut peer = AmqpPeer::dial(&hub);
    // After the SASL header, a SASL frame (TYPE 1) announcing 0x40000000 bytes,
    // past the 512 bytes part 5 §5.3.1 allows before authentication (64 KiB here).
    let mut bytes = protocol_header(ProtocolHeader::SASL);
    bytes.extend_from_slice(&[0x40, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00]);
    peer.send(&bytes);
    peer.read_until_closed();
    // Its header and mechanisms came first; no outcome: a SASL layer has no error
    // frame, so the connection just closes.
    assert!(
        matches!(
            peer.received[..],
            [Amqp::Header(ProtocolHeader::SASL), Amqp::Sasl(SaslFrame::Mechanisms(_))]
        ),
        "{:?}",
        peer.received
    );
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-sasl-1-gib"), Vec::<String>::new());
}

#[test]
fn http_a_request_target_that_never_ends_is_414_at_16_kib() {
    let hub = start_hub();
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    client.send(b"POST /devices/dev1/messages/events?");
    // Target bytes, 16 KiB at a time, until the hub answers (at most 1 MiB).
    for _ in 0..64 {
        if client.is_closed() || !client.received().is_empty() {
            break;
        }
        client.send("a".repeat(16 * 1024).as_bytes());
        client.read_some();
    }
    let head = client.response_head();
    // RFC 9112 §3: "MUST respond with a 414 (URI Too Long)".
    assert!(head.starts_with("HTTP/1.1 414 URI Too Long"), "{head}");
    assert_eq!(a_device_is_served(&hub, "dev2", "after-endless-target"), Vec::<String>::new());
}

#[test]
fn http_a_head_that_never_ends_is_431_at_16_kib() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    client.send(
        format!("POST /devices/dev1/messages/events?{API} HTTP/1.1\r\nHost: {HOST}\r\n").as_bytes(),
    );
    let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
    // Header lines, 16 KiB at a time, until the hub answers (at most 1 MiB).
    for _ in 0..64 {
        if client.is_closed() || !client.received().is_empty() {
            break;
        }
        client.send(line.repeat(16).as_bytes());
        client.read_some();
    }
    let head = client.response_head();
    // RFC 6585 §5.
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-endless-head"), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------
// 4. A PINGREQ flood

#[test]
fn mqtt_100k_pingreqs_unread_leave_the_hub_serving_others_and_all_are_answered() {
    const PINGS: usize = 100_000;
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut flood = mqtt_connected(&hub, "dev1");
    let _ = flood.set_write_timeout(Some(Duration::from_secs(5)));
    let pings = [0xc0u8, 0x00].repeat(PINGS);
    let Ok(mut writer) = flood.try_clone() else { panic!("cannot clone the socket") };
    let flooder = thread::spawn(move || writer.write_all(&pings).is_ok());

    // Meanwhile another device is served, promptly.
    let started = Instant::now();
    assert_eq!(a_device_is_served(&hub, "dev2", "during-the-flood"), Vec::<String>::new());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_memory_bounded(&hub, before, 100);

    // The flooder reads at last: a PINGRESP for each PINGREQ [MQTT-3.12.4-1].
    let Ok(all_written) = flooder.join() else { panic!("flooder panicked") };
    assert!(all_written, "the hub stopped reading the flood for good");
    let answers = read_exactly(&mut flood, 2 * PINGS);
    assert!(answers.chunks(2).all(|p| p == [0xd0, 0x00]), "not all PINGRESPs");
    assert_memory_bounded(&hub, before, 100);
}

#[test]
fn mqtt_a_pingreq_flood_that_never_reads_is_paced_and_the_hubs_memory_stays_bounded() {
    pingreq_flood_never_read("mio");
}

#[test]
fn mqtt_a_pingreq_flood_that_never_reads_is_paced_on_the_blocking_runtime() {
    pingreq_flood_never_read("blocking");
}

#[test]
fn mqtt_a_pingreq_flood_that_never_reads_is_paced_on_the_smol_runtime() {
    pingreq_flood_never_read("smol");
}

#[test]
fn mqtt_a_pingreq_flood_that_never_reads_is_paced_on_the_async_std_runtime() {
    pingreq_flood_never_read("async-std");
}

fn pingreq_flood_never_read(runtime: &str) {
    // 64 MiB of PINGREQs, written until the hub stops reading them.
    const FLOOD: usize = 64 * 1024 * 1024;
    let hub = start_hub_on(runtime);
    let before = rss_kib(&hub);
    let mut flood = mqtt_connected(&hub, "dev1");
    let Ok(mut writer) = flood.try_clone() else { panic!("cannot clone the socket") };
    let flooder = thread::spawn(move || {
        let _ = writer.set_write_timeout(Some(Duration::from_secs(1)));
        let chunk = [0xc0u8, 0x00].repeat(32 * 1024);
        let mut sent = 0;
        while sent < FLOOD && writer.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let started = Instant::now();
    assert_eq!(a_device_is_served(&hub, "dev2", "during-the-flood"), Vec::<String>::new());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let Ok(sent) = flooder.join() else { panic!("flooder panicked") };
    // The hub stops reading a peer that does not read its answers: what it took
    // is the socket buffers and its bounded backlog, not the flood.
    assert!(sent < FLOOD, "the hub read all {sent} bytes from a peer that never reads");
    assert_memory_bounded(&hub, before, 100);

    // The flooder reads at last: PINGRESPs, and nothing else [MQTT-3.12.4-1].
    let _ = flood.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answers = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = flood.read(&mut buffer) {
        answers.extend_from_slice(&buffer[..n]);
    }
    assert!(answers.len() >= 2, "no PINGRESP at all");
    let whole = answers.len() - answers.len() % 2;
    assert!(answers[..whole].chunks(2).all(|p| p == [0xd0, 0x00]), "not all PINGRESPs");
    // Every PINGREQ written whole is answered, once the flooder reads (`sent`
    // counts whole chunks only).
    assert!(answers.len() >= sent, "{sent} bytes of PINGREQs, {} of answers", answers.len());
}

// ---------------------------------------------------------------------------------
// 5. Thousands of links

/// handle-max of the hub's sessions with `--max-cbs-tokens 1000` (the default):
/// 8 links per identity, 8,000 in all, handles 0-7,999 (core/src/amqp/hub.rs).
const HANDLE_MAX: u32 = 7_999;

/// dev1's connection ([`amqp_authenticated`]) with a telemetry sender on every
/// handle of session 0 the hub allows, each attached.
fn every_handle_attached(hub: &Hub) -> AmqpPeer {
    let mut peer = amqp_authenticated(hub, "dev1");
    let begin = peer.received.iter().find_map(|i| match i {
        Amqp::Frame(_, Performative::Begin(b)) => Some(b.handle_max),
        _ => None,
    });
    assert_eq!(begin, Some(HANDLE_MAX), "the hub's begin announces its handle-max");
    // Handles 3..=HANDLE_MAX after the two `$cbs` links and the first telemetry.
    let events = "/devices/dev1/messages/events";
    let mut attaches = Vec::new();
    for handle in 3..=HANDLE_MAX {
        attaches.extend_from_slice(&attach_sender(&format!("link-{handle}"), handle, events));
    }
    let writer = {
        let Ok(mut stream) = peer.stream.try_clone() else { panic!("cannot clone") };
        thread::spawn(move || {
            let _ = stream.write_all(&attaches);
        })
    };
    let attached = |r: &[Amqp]| {
        r.iter()
            .filter(|i| matches!(i, Amqp::Frame(_, Performative::Attach(a)) if a.handle >= 3))
            .count()
    };
    let wanted = usize::try_from(HANDLE_MAX - 2).unwrap_or(usize::MAX);
    peer.read_until("every attach answered", |r| attached(r) == wanted);
    let _ = writer.join();
    let refused = peer
        .received
        .iter()
        .filter(|i| {
            matches!(i, Amqp::Frame(_, Performative::Detach(Detach { error: Some(_), .. })))
        })
        .count();
    assert_eq!(refused, 0, "links within the limit are not refused");
    peer
}

/// The condition of the `close` the hub sends next; the client answers it and
/// the hub closes the socket (§2.4.3).
fn next_close_condition(peer: &mut AmqpPeer) -> Option<String> {
    peer.read_until("close", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::Close(_))))
    });
    let condition = peer
        .close_received()
        .and_then(|close| close.error.as_ref())
        .map(|e| e.condition.as_str().to_owned());
    peer.send(&amqp_frame(0, Performative::Close(Close::default()), b""));
    peer.read_until_closed();
    condition
}

#[test]
fn amqp_8000_links_on_one_session_are_attached_and_one_past_handle_max_is_a_framing_error() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut peer = every_handle_attached(&hub);
    assert_memory_bounded(&hub, before, 100);
    // §2.7.2: a handle above handle-max is a framing error on the connection.
    let events = "/devices/dev1/messages/events";
    peer.send(&attach_sender("one-too-many", HANDLE_MAX + 1, events));
    let condition = next_close_condition(&mut peer);
    assert_eq!(condition.as_deref(), Some(condition::CONNECTION_FRAMING_ERROR.as_str()));
    assert_memory_bounded(&hub, before, 100);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-8000-links"), Vec::<String>::new());
}

#[test]
fn amqp_a_link_past_the_connections_8000_on_a_second_session_is_resource_limit_exceeded() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut peer = every_handle_attached(&hub);
    // A second session, then one link more than the connection may hold: the hub's
    // table, "the connection closed, amqp:resource-limit-exceeded" (§2.8.15).
    peer.send(&amqp_frame(1, Performative::Begin(Begin::new(0, u32::MAX, u32::MAX)), b""));
    peer.read_until("the second begin", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(1, Performative::Begin(_))))
    });
    let mut attach = Attach::new("the-8001st".into(), 0, Role::Sender);
    attach.source = Some(Source::default());
    let address = "/devices/dev1/messages/events";
    attach.target = Some(Target { terminus: Terminus::at(address.into()), ..Target::default() });
    peer.send(&amqp_frame(1, Performative::Attach(Box::new(attach)), b""));
    let condition = next_close_condition(&mut peer);
    assert_eq!(condition.as_deref(), Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str()));
    assert_memory_bounded(&hub, before, 100);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-8001-links"), Vec::<String>::new());
}

#[test]
fn amqp_a_17th_session_closes_the_connection_with_framing_error() {
    let hub = start_hub();
    let mut peer = AmqpPeer::dial(&hub);
    // The hub's open allows channels 0-15: every one begins.
    let mut bytes = amqp_open_and_begin();
    for channel in 1..=15u16 {
        let begin = Performative::Begin(Begin::new(0, 100, 100));
        bytes.extend_from_slice(&amqp_frame(channel, begin, b""));
    }
    peer.send(&bytes);
    let begun = |r: &[Amqp]| {
        r.iter().filter(|i| matches!(i, Amqp::Frame(_, Performative::Begin(_)))).count()
    };
    peer.read_until("16 sessions", |r| begun(r) == 16);
    // A 17th.
    peer.send(&amqp_frame(16, Performative::Begin(Begin::new(0, 100, 100)), b""));
    peer.read_until("close", |r| {
        r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::Close(_))))
    });
    // §2.7.1 channel-max: "A peer that receives a channel number outside the
    // supported range MUST close the connection with the framing-error error-code."
    let Some(close) = peer.close_received() else { panic!("no close") };
    let condition = close.error.as_ref().map(|e| e.condition.clone());
    assert_eq!(condition, Some(condition::CONNECTION_FRAMING_ERROR));
    assert_eq!(a_device_is_served(&hub, "dev2", "after-17-sessions"), Vec::<String>::new());
}

/// §2.6.5: frames for a link the hub detached for the peer's error, sent before
/// the peer saw the detach, end the session with errant-link; only the session:
/// the connection goes on and begins another.
#[test]
fn amqp_frames_after_a_link_error_end_only_their_session_with_errant_link() {
    let hub = start_hub();
    let mut peer = amqp_authenticated(&hub, "dev1");
    // A transfer on the `$cbs` receiver (handle 1) is the receiver sending: the
    // hub detaches that link with illegal-state. The flow behind it is errant.
    let flow = Flow {
        next_incoming_id: Some(1),
        incoming_window: u32::MAX,
        outgoing_window: u32::MAX,
        handle: Some(1),
        delivery_count: Some(0),
        link_credit: Some(10),
        ..Flow::default()
    };
    let wrong_way = transfer(1, 1, &data_message("from the receiver"));
    peer.send(&[wrong_way, amqp_frame(0, Performative::Flow(flow), b"")].concat());
    peer.read_until("end", |r| r.iter().any(|i| matches!(i, Amqp::Frame(_, Performative::End(_)))));
    let errors: Vec<(&str, String)> = peer
        .received
        .iter()
        .filter_map(|i| match i {
            Amqp::Frame(_, Performative::Detach(d)) => {
                d.error.as_ref().map(|e| ("detach", e.condition.as_str().to_owned()))
            }
            Amqp::Frame(_, Performative::End(e)) => {
                e.error.as_ref().map(|e| ("end", e.condition.as_str().to_owned()))
            }
            _ => None,
        })
        .collect();
    let expected = [
        ("detach", condition::ILLEGAL_STATE.as_str().to_owned()),
        ("end", condition::SESSION_ERRANT_LINK.as_str().to_owned()),
    ];
    assert_eq!(errors, expected);
    // The client ends its side and begins again on the same connection.
    let begin = Performative::Begin(Begin::new(0, u32::MAX, u32::MAX));
    let end = Performative::End(End::default());
    peer.send(&[amqp_frame(0, end, b""), amqp_frame(1, begin, b"")].concat());
    peer.read_until("a begin answering channel 1", |r| {
        r.iter().any(
            |i| matches!(i, Amqp::Frame(_, Performative::Begin(b)) if b.remote_channel == Some(1)),
        )
    });
    assert!(peer.close_received().is_none(), "the connection is not closed");
    assert_eq!(a_device_is_served(&hub, "dev2", "after-errant-link"), Vec::<String>::new());
}

#[test]
fn amqp_5000_unauthorised_attaches_are_each_refused_and_the_hub_serves_on() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut peer = AmqpPeer::dial(&hub);
    let mut bytes = amqp_open_and_begin();
    for handle in 0..5_000 {
        bytes.extend_from_slice(&attach_sender(
            &format!("link-{handle}"),
            handle,
            "/devices/dev1/messages/events",
        ));
    }
    let writer = {
        let Ok(mut stream) = peer.stream.try_clone() else { panic!("cannot clone") };
        thread::spawn(move || {
            let _ = stream.write_all(&bytes);
        })
    };
    let refused = |r: &[Amqp]| {
        r.iter()
            .filter(|i| {
                matches!(i, Amqp::Frame(_, Performative::Detach(Detach { error: Some(e), .. }))
                    if e.condition == condition::UNAUTHORIZED_ACCESS)
            })
            .count()
    };
    peer.read_until("5,000 refusals", |r| refused(r) == 5_000);
    let _ = writer.join();
    assert_memory_bounded(&hub, before, 100);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-5000-attaches"), Vec::<String>::new());
}

#[test]
fn connections_past_the_hubs_descriptor_limit_wait_without_a_busy_loop_and_are_served_after() {
    descriptor_siege("mio");
}

#[test]
fn connections_past_the_descriptor_limit_wait_on_the_blocking_runtime() {
    descriptor_siege("blocking");
}

#[test]
fn connections_past_the_descriptor_limit_wait_on_the_smol_runtime() {
    descriptor_siege("smol");
}

#[test]
fn connections_past_the_descriptor_limit_wait_on_the_async_std_runtime() {
    descriptor_siege("async-std");
}

fn descriptor_siege(runtime: &str) {
    // 64 descriptors: the hub's own (listeners, poll, pipes) and some 50 more.
    let hub = start_hub_with_descriptors(runtime, 64);
    let before = rss_kib(&hub);
    // 200 connections that say nothing: the hub runs out of descriptors for them,
    // and the rest wait in the listen backlog (or are not completed).
    let address = match hub.mqtt_tcp.parse() {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok())
        .collect();
    assert!(idle.len() > 64, "only {} connections", idle.len());
    thread::sleep(Duration::from_millis(200));
    let fd_dir = format!("/proc/{}/fd", hub.process.child.id());
    let open = std::fs::read_dir(&fd_dir).map(Iterator::count).unwrap_or_default();
    assert!(open >= 60, "the hub holds {open} descriptors: not at its limit");
    // Out of descriptors, the hub pauses accepting instead of retrying at once.
    let ticks = cpu_ticks(&hub);
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(&hub) - ticks;
    assert!(used < 30, "the hub used {used} ticks of CPU in one second while saturated");
    // They go; a device is served.
    drop(idle);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-the-siege"), Vec::<String>::new());
    assert_memory_bounded(&hub, before, 50);
}

#[test]
fn http_5000_pipelined_requests_are_each_answered_204_in_order_and_all_stored() {
    const REQUESTS: usize = 5_000;
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut client = TlsClient::connect(&hub.https, &hub.ca);
    let mut all = Vec::new();
    let bodies: Vec<String> = (0..REQUESTS).map(|n| format!("pipelined-{n:05}")).collect();
    for body in &bodies {
        all.extend_from_slice(http_post_head("dev1", body.len() as u64).as_bytes());
        all.extend_from_slice(body.as_bytes());
    }
    // Every request at once, none of the answers read meanwhile (RFC 9112 §9.3.2).
    client.send(&all);
    for n in 0..REQUESTS {
        let head = client.response_head();
        assert!(head.starts_with("HTTP/1.1 204"), "answer {n}: {head}");
    }
    assert_memory_bounded(&hub, before, 50);
    let Some((last, earlier)) = bodies.split_last() else { panic!("no requests") };
    assert_eq!(stored_until(&hub, last), earlier, "all stored, in order");
}

#[test]
fn mqtt_500_takeovers_of_one_device_close_each_old_connection_and_keep_every_acknowledged_message()
{
    const CONNECTIONS: usize = 500;
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut streams = Vec::new();
    let mut bodies = Vec::new();
    for n in 0..CONNECTIONS {
        // Each connection of dev1 takes over from the one before, left open.
        let mut stream = mqtt_connected(&hub, "dev1");
        let body = format!("takeover-{n:03}");
        write(&mut stream, &mqtt_telemetry("dev1", 1, body.as_bytes()));
        assert_eq!(read_exactly(&mut stream, 4), puback(1), "connection {n}");
        streams.push(stream);
        bodies.push(body);
    }
    // The hub closed every connection but the newest (spec file §9: IoT Hub drops
    // the older of two connections of one device).
    let Some(mut newest) = streams.pop() else { panic!("no connections") };
    for (n, stream) in streams.iter_mut().enumerate() {
        assert_eq!(read_until_closed(stream), Vec::<u8>::new(), "connection {n}");
    }
    write(&mut newest, &mqtt(&Packet::PingReq));
    assert_eq!(read_exactly(&mut newest, 2), [0xd0, 0x00], "the newest connection serves on");
    assert_memory_bounded(&hub, before, 50);
    let stored = a_device_is_served(&hub, "dev2", "after-500-takeovers");
    assert_eq!(stored, bodies, "every acknowledged message, in order");
}

#[test]
fn mqtt_a_subscribe_of_5000_filters_is_closed_without_a_suback() {
    let hub = start_hub();
    let before = rss_kib(&hub);
    let mut stream = mqtt_connected(&hub, "dev1");
    // The device-bound filter, 5,000 times: each one a device may use, but past
    // the 5 the hub's MQTT codec takes in one packet (`Limits::max_topic_filters`).
    let filter = "devices/dev1/messages/devicebound/#";
    let filters = (0..5_000).map(|_| (filter.into(), QoS::AtLeastOnce)).collect();
    let Some(packet_id) = PacketId::new(9) else { panic!("packet id") };
    write(&mut stream, &mqtt(&Packet::Subscribe(Subscribe { packet_id, filters })));
    assert_eq!(read_until_closed(&mut stream), Vec::<u8>::new());
    let refused = next_of(&hub.out, &["refused"], WAIT);
    assert_eq!(refused["error"], "ArgumentInvalid", "{refused}");
    assert_memory_bounded(&hub, before, 50);
    assert_eq!(a_device_is_served(&hub, "dev2", "after-5000-filters"), Vec::<String>::new());
}
