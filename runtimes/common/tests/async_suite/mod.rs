//! The loopback suite every async runtime runs (`hubwire-smol`, `hubwire-async-std`
//! include this file): a hub server and device clients of runtime `R` over real
//! loopback sockets on ephemeral ports, over every transport — MQTT and AMQP, each
//! over TLS, over WebSocket over TLS and over plain TCP, and HTTPS polling for C2D
//! messages every 50 ms — and an async device against the blocking hub.
//!
//! Each test is an async fn generic over the runtime; the runtime crate's test runs
//! it on its executor. Every wait has a deadline, so a failing test fails instead
//! of hanging.

#![allow(dead_code)] // each runtime's tests use what they run

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hubwire_core::Protocol;
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig};
use hubwire_core::device::{
    DeviceConfig, DeviceEvent, DisconnectReason, DispositionError, RequestError,
};
use hubwire_core::hub::{DeviceRecord, HubConfig, HubEvent, MethodOutcome, Outcome};
use hubwire_core::iothub::{
    Ack, ConnectionString, Disposition, Message, MethodResponse, Properties, TwinPatch,
};
use hubwire_core::retry::Backoff;
use hubwire_runtime::listen::Listen;
use hubwire_runtime::scenarios::connect_bytes;
use hubwire_runtime::sync::{TelemetryError, TwinCallError};
use hubwire_runtime::tasks::{DeviceClient, HubServer, MultiplexedClient, Runtime};
use hubwire_runtime::{ClientTransport, HubServerEvent};
use hubwire_transports::Transport;
use hubwire_transports::tls::{self, local_ca};

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Another valid key, which the hub does not know.
const WRONG_KEY: &str = "HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(5);

/// `future`'s output; panics naming `what` when it takes longer than [`WAIT`].
async fn within<R: Runtime, T>(what: &str, future: impl Future<Output = T>) -> T {
    let late = async {
        R::sleep(WAIT).await;
        None
    };
    match futures_lite::future::or(async { Some(future.await) }, late).await {
        Some(output) => output,
        None => panic!("{what}: not within {WAIT:?}"),
    }
}

/// `device_id` registered with [`KEY`].
fn record(device_id: &str) -> DeviceRecord {
    DeviceRecord {
        device_id: device_id.into(),
        primary_key: KEY.into(),
        secondary_key: String::new(),
        enabled: true,
    }
}

/// A listener per transport on ephemeral loopback ports (MQTT and AMQP over
/// WebSocket share one).
fn every_listener() -> Vec<Listen> {
    let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut listen: Vec<Listen> = Vec::new();
    for transport in Transport::ALL {
        let want = Listen { listener: transport.listener(), address: ephemeral };
        if !listen.contains(&want) {
            listen.push(want);
        }
    }
    listen
}

/// A certificate for 127.0.0.1 from a local CA, kept in a directory removed when
/// it drops.
struct Certificate {
    tls: Arc<rustls::ServerConfig>,
    ca: PathBuf,
    dir: PathBuf,
}

impl Certificate {
    fn new() -> Certificate {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubwire-async-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let (tls, ca) = certificate(&dir);
        Certificate { tls, ca, dir }
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certificate(dir: &Path) -> (Arc<rustls::ServerConfig>, PathBuf) {
    let names = [String::from("127.0.0.1")];
    let certificate = match local_ca::ensure(dir, &names) {
        Ok(c) => c,
        Err(e) => panic!("cannot make a certificate in {}: {e}", dir.display()),
    };
    let tls = tls::load_certificate(&certificate.cert_path, &certificate.key_path)
        .and_then(|(chain, key)| tls::server_config(chain, key));
    match tls {
        Ok(tls) => (tls, certificate.ca_path),
        Err(e) => panic!("cannot load the certificate: {e}"),
    }
}

fn hub_config() -> HubConfig {
    HubConfig { host_names: vec!["127.0.0.1".into()], ..HubConfig::default() }
}

/// A hub of runtime `R` for `devices` on `listen`.
fn start_hub<R: Runtime>(cert: &Certificate, listen: &[Listen], devices: &[&str]) -> HubServer<R> {
    let records = devices.iter().map(|d| record(d));
    match HubServer::<R>::start(hub_config(), records, listen, Some(Arc::clone(&cert.tls))) {
        Ok(hub) => hub,
        Err(e) => panic!("hub did not start on {listen:?}: {e}"),
    }
}

/// A device configuration for `device_id` reaching `port`, with fast retries, a
/// short keep-alive and HTTP polls every 50 ms, so the tests run in seconds.
fn device_config(port: u16, device_id: &str) -> DeviceConfig {
    let cs = format!("HostName=127.0.0.1:{port};DeviceId={device_id};SharedAccessKey={KEY}");
    let Ok(cs) = ConnectionString::parse(&cs) else {
        panic!("bad connection string {cs}");
    };
    let mut config = DeviceConfig::new(cs);
    config.backoff =
        Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100) };
    config.keep_alive = Duration::from_secs(2);
    config.response_timeout = Duration::from_secs(2);
    config.c2d_poll_interval = Duration::from_millis(50);
    config.receive_methods = true;
    config
}

async fn connect<R: Runtime>(
    config: DeviceConfig,
    transport: Transport,
    ca: &Path,
) -> DeviceClient<R> {
    let connecting = DeviceClient::<R>::connect(config, ClientTransport::with_ca(transport, ca));
    match within::<R, _>("connect", connecting).await {
        Ok(device) => device,
        Err(e) => panic!("{transport}: device did not start: {e}"),
    }
}

fn port<R: Runtime>(hub: &HubServer<R>, transport: Transport) -> u16 {
    match hub.local_addr(transport.listener()) {
        Some(address) => address.port(),
        None => panic!("no {transport} listener"),
    }
}

/// Reads hub events until `pick` accepts one.
async fn wait_hub<R: Runtime, T>(
    hub: &HubServer<R>,
    what: &str,
    mut pick: impl FnMut(&HubServerEvent) -> Option<T>,
) -> T {
    within::<R, _>(what, async {
        while let Some(event) = hub.next_event().await {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
        panic!("{what}: the hub's events ended");
    })
    .await
}

/// Reads device events until `pick` accepts one.
async fn wait_device<R: Runtime, T>(
    device: &DeviceClient<R>,
    what: &str,
    mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
) -> T {
    within::<R, _>(what, async {
        while let Some(event) = device.next_event().await {
            if let Some(found) = pick(&event) {
                return found;
            }
        }
        panic!("{what}: the device's events ended");
    })
    .await
}

fn telemetry(i: usize) -> Message {
    let mut m = Message::new(format!("{{\"reading\":{i}}}").into_bytes());
    m.message_id = Some(format!("m{i}"));
    m.content_type = Some("application/json".into());
    m.properties = Properties::from_iter([("index", i.to_string()), ("kind", "test".into())]);
    m
}

/// Telemetry with properties resolves on the hub's acknowledgement, and the hub
/// has stored it, in order, properties and all.
pub(crate) async fn telemetry_is_acknowledged_and_stored_with_its_properties<R: Runtime>() {
    let cert = Certificate::new();
    for &transport in Transport::ALL {
        let hub = start_hub::<R>(&cert, &every_listener(), &["dev1"]);
        let device =
            connect::<R>(device_config(port(&hub, transport), "dev1"), transport, &cert.ca).await;
        for i in 0..5 {
            let sent = within::<R, _>("telemetry", device.send_telemetry(telemetry(i))).await;
            assert_eq!(sent, Ok(()), "{transport}: message {i}");
        }
        let stored = within::<R, _>("stored", hub.stored()).await;
        assert_eq!(stored.len(), 5, "{transport}");
        for (i, record) in stored.iter().enumerate() {
            let sent = telemetry(i);
            assert_eq!(record.identity.device_id, "dev1");
            assert_eq!(record.sequence_number, i as u64 + 1);
            assert_eq!(record.message.body, sent.body, "{transport}");
            assert_eq!(record.message.message_id, sent.message_id, "{transport}");
            assert_eq!(record.message.content_type, sent.content_type, "{transport}");
            assert_eq!(record.message.properties, sent.properties, "{transport}");
        }
        let stored_event = wait_hub(&hub, "stored event", |e| match e {
            HubServerEvent::Stored(r) => Some(r.sequence_number),
            _ => None,
        });
        assert_eq!(stored_event.await, 1, "{transport}");
        assert!(device.bytes_written() > 0);
        assert_eq!(device.transport_status().transport, Some(transport));
        within::<R, _>("disconnect", device.disconnect()).await;
        assert_eq!(device.send_telemetry(telemetry(9)).await, Err(TelemetryError::Closed));
        within::<R, _>("shutdown", hub.shutdown()).await;
    }
}

/// A C2D message with properties reaches the device's stream; complete settles it.
/// Over AMQP and HTTP reject dead-letters and abandon requeues (spec file §5.5,
/// §6.5); MQTT cannot say either (spec file §4.4), so the device refuses by name.
pub(crate) async fn c2d_messages_are_completed_rejected_and_abandoned<R: Runtime>() {
    let cert = Certificate::new();
    for &transport in Transport::ALL {
        let hub = start_hub::<R>(&cert, &every_listener(), &["dev1"]);
        let device =
            connect::<R>(device_config(port(&hub, transport), "dev1"), transport, &cert.ca).await;
        let mut c2d = device.c2d();
        for (id, disposition) in [
            ("c-complete", Disposition::Complete),
            ("c-reject", Disposition::Reject),
            ("c-abandon", Disposition::Abandon),
        ] {
            let mut message = Message::new(&b"switch on"[..]);
            message.message_id = Some(id.into());
            message.ack = Some(Ack::Full);
            message.properties = Properties::from_iter([("command", "on")]);
            let sequence = match hub.send_c2d("dev1", message).await {
                Ok(s) => s,
                Err(e) => panic!("{transport}: send_c2d: {e}"),
            };
            let next = futures_lite::StreamExt::next(&mut c2d);
            let Some(received) = within::<R, _>("c2d", next).await else {
                panic!("{transport}: the C2D stream ended");
            };
            assert_eq!(received.message.message_id.as_deref(), Some(id), "{transport}");
            assert_eq!(&received.message.body[..], b"switch on");
            assert_eq!(received.message.properties.get("command"), Some(Some("on")));
            let Some(lock) = received.lock_token else {
                panic!("{transport}: no lock token");
            };
            let settled = match disposition {
                Disposition::Complete => device.complete(&lock).await,
                Disposition::Reject => device.reject(&lock).await,
                _ => device.abandon(&lock).await,
            };
            if transport.protocol() == Protocol::Mqtt && disposition != Disposition::Complete {
                let refused =
                    DispositionError::Unsupported { protocol: Protocol::Mqtt, disposition };
                assert_eq!(settled, Err(refused), "{transport}");
                // The hub delivers no more while one is unacknowledged.
                break;
            }
            assert_eq!(settled, Ok(()), "{transport}: {disposition}");
            let outcome = wait_hub(&hub, "settled", |e| match e {
                HubServerEvent::Hub(HubEvent::C2dSettled(s))
                    if s.message_id.as_deref() == Some(id) =>
                {
                    Some((s.sequence_number, s.outcome))
                }
                _ => None,
            })
            .await;
            assert_eq!(outcome.0, sequence, "{transport}");
            match disposition {
                Disposition::Complete => assert_eq!(outcome.1, Outcome::Completed),
                Disposition::Reject => assert_eq!(outcome.1, Outcome::Rejected, "{transport}"),
                _ => assert!(matches!(outcome.1, Outcome::Abandoned { .. }), "{transport}"),
            }
            if disposition == Disposition::Complete {
                assert!(device.complete(&lock).await.is_err(), "{transport}: settled twice");
            }
        }
        within::<R, _>("disconnect", device.disconnect()).await;
        within::<R, _>("shutdown", hub.shutdown()).await;
    }
}

/// The device reads its twin (with the desired properties the service set) and
/// patches its reported properties, which the hub's twin then shows; a method the
/// service invokes reaches the device, whose answer reaches the service. HTTP has
/// neither (spec file §6): the device refuses the twin and the hub the method.
pub(crate) async fn twin_and_methods_work_over_mqtt_and_amqp<R: Runtime>() {
    let cert = Certificate::new();
    for &transport in Transport::ALL {
        let hub = start_hub::<R>(&cert, &every_listener(), &["dev1"]);
        let patch = |json: &str| match TwinPatch::parse(json.as_bytes()) {
            Ok(patch) => patch,
            Err(e) => panic!("{json}: {e}"),
        };
        let desired = hub.update_desired("dev1", patch(r#"{"interval":5}"#), None).await;
        assert_eq!(desired, Ok(2), "{transport}");
        let device =
            connect::<R>(device_config(port(&hub, transport), "dev1"), transport, &cert.ca).await;
        if transport.protocol() == Protocol::Http {
            let twin = within::<R, _>("twin", device.get_twin()).await;
            assert!(matches!(twin, Err(TwinCallError::Refused(_))), "{transport}: {twin:?}");
            wait_device(&device, "connected", |e| {
                matches!(e, DeviceEvent::Connected { .. }).then_some(())
            })
            .await;
            let invoked = hub.invoke_method("dev1", "reboot", Bytes::new(), WAIT).await;
            assert!(invoked.is_err(), "{transport}: a method over HTTP");
            within::<R, _>("shutdown", hub.shutdown()).await;
            continue;
        }
        let twin = match within::<R, _>("twin", device.get_twin()).await {
            Ok(twin) => twin,
            Err(e) => panic!("{transport}: get_twin: {e}"),
        };
        assert_eq!(twin.desired.version, 2, "{transport}");
        assert_eq!(twin.desired.properties.get("interval"), Some(&5.into()), "{transport}");
        let reported = within::<R, _>("patch", device.patch_reported(patch(r#"{"fw":"1.2"}"#)));
        assert_eq!(reported.await, Ok(2), "{transport}");
        let hub_twin = match hub.twin("dev1").await {
            Ok(twin) => twin,
            Err(e) => panic!("{transport}: twin: {e}"),
        };
        assert_eq!(hub_twin.reported.properties.get("fw"), Some(&"1.2".into()), "{transport}");

        // The method subscription may follow the connection by a round trip.
        let invocation = within::<R, _>("invoke", async {
            loop {
                match hub
                    .invoke_method("dev1", "reboot", Bytes::from_static(b"{\"in\":1}"), WAIT)
                    .await
                {
                    Ok(invocation) => return invocation,
                    Err(_) => R::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await;
        let request = wait_device(&device, "method request", |e| match e {
            DeviceEvent::MethodRequest(request) => Some(request.clone()),
            _ => None,
        })
        .await;
        assert_eq!(request.name, "reboot", "{transport}");
        assert_eq!(&request.payload[..], b"{\"in\":1}", "{transport}");
        let response = MethodResponse {
            request_id: request.request_id,
            status: 201,
            payload: Bytes::from_static(b"{\"out\":2}"),
        };
        assert_eq!(device.respond_method(response).await, Ok(()), "{transport}");
        let outcome = wait_hub(&hub, "method result", |e| match e {
            HubServerEvent::Hub(HubEvent::MethodResult { invocation: i, outcome, .. })
                if *i == invocation =>
            {
                Some(outcome.clone())
            }
            _ => None,
        })
        .await;
        let MethodOutcome::Responded { status, payload } = outcome else {
            panic!("{transport}: {outcome:?}");
        };
        assert_eq!((status, &payload[..]), (201, &b"{\"out\":2}"[..]), "{transport}");
        within::<R, _>("disconnect", device.disconnect()).await;
        let after = device.respond_method(MethodResponse {
            request_id: String::from("x"),
            status: 200,
            payload: Bytes::new(),
        });
        assert_eq!(after.await, Err(RequestError::Stopped), "{transport}");
        within::<R, _>("shutdown", hub.shutdown()).await;
    }
}

/// The hub stops as a crash would and starts again on the same ports: the device
/// reconnects, and telemetry sent while the hub was down is acknowledged once it
/// is back — to its caller, or as an event when the caller gave up waiting or did
/// not wait.
pub(crate) async fn the_device_reconnects_after_the_hub_restarts_on_the_same_port<R: Runtime>() {
    let cert = Certificate::new();
    for &transport in Transport::ALL {
        let hub = start_hub::<R>(&cert, &every_listener(), &["dev1"]);
        let listen = hub.listeners().to_vec();
        let device =
            connect::<R>(device_config(port(&hub, transport), "dev1"), transport, &cert.ca).await;
        let first = within::<R, _>("telemetry", device.send_telemetry(telemetry(0)));
        assert_eq!(first.await, Ok(()), "{transport}");
        within::<R, _>("shutdown", hub.shutdown()).await;
        let reconnect_at = wait_device(&device, "disconnected", |e| match e {
            DeviceEvent::Disconnected { reconnect_at, .. } => Some(*reconnect_at),
            _ => None,
        });
        assert!(reconnect_at.await.is_some(), "{transport}: a lost hub is retried");
        // A caller that stops waiting leaves its message queued; its
        // acknowledgement then comes as an event.
        let short = Duration::from_millis(30);
        let gave_up = device.send_telemetry_timeout(telemetry(1), short).await;
        assert_eq!(gave_up, Err(TelemetryError::TimedOut(short)), "{transport}");
        let queued = match device.send_telemetry_nowait(telemetry(2)).await {
            Ok(id) => id,
            Err(e) => panic!("{transport}: not queued: {e}"),
        };

        let hub = start_hub::<R>(&cert, &listen, &["dev1"]);
        let sent = within::<R, _>("telemetry after restart", device.send_telemetry(telemetry(3)));
        assert_eq!(sent.await, Ok(()), "{transport}");
        let mut acknowledged = Vec::new();
        while acknowledged.len() < 2 {
            let ack = wait_device(&device, "acknowledged", |e| match e {
                DeviceEvent::TelemetryAcknowledged(id) => Some(*id),
                _ => None,
            });
            acknowledged.push(ack.await);
        }
        assert!(acknowledged[0] < queued, "{transport}: the timed-out message went first");
        assert_eq!(acknowledged[1], queued, "{transport}");
        let bodies: Vec<Bytes> = within::<R, _>("stored", hub.stored())
            .await
            .into_iter()
            .map(|r| r.message.body)
            .collect();
        let sent: Vec<Bytes> = (1..4).map(|i| telemetry(i).body).collect();
        assert_eq!(bodies, sent, "{transport}");
        within::<R, _>("disconnect", device.disconnect()).await;
        within::<R, _>("shutdown", hub.shutdown()).await;
    }
}

/// An async device and the blocking hub speak the same protocols: telemetry is
/// acknowledged and stored, and a C2D message is received and completed.
pub(crate) async fn an_async_device_works_with_the_blocking_hub<R: Runtime>() {
    let cert = Certificate::new();
    for &transport in Transport::ALL {
        let records = [record("dev1")];
        let tls = Some(Arc::clone(&cert.tls));
        let hub =
            match hubwire_blocking::HubServer::start(hub_config(), records, &every_listener(), tls)
            {
                Ok(hub) => hub,
                Err(e) => panic!("the blocking hub did not start: {e}"),
            };
        let Some(address) = hub.local_addr(transport.listener()) else {
            panic!("no {transport} listener");
        };
        let device = connect::<R>(device_config(address.port(), "dev1"), transport, &cert.ca).await;
        let sent = within::<R, _>("telemetry", device.send_telemetry(telemetry(0)));
        assert_eq!(sent.await, Ok(()), "{transport}");
        let stored: Vec<Bytes> = hub.stored().into_iter().map(|r| r.message.body).collect();
        assert_eq!(stored, vec![telemetry(0).body], "{transport}");
        if let Err(e) = hub.send_c2d("dev1", Message::new(&b"hello"[..])) {
            panic!("{transport}: send_c2d: {e}");
        }
        let Some(received) = within::<R, _>("c2d", device.next_c2d()).await else {
            panic!("{transport}: the C2D stream ended");
        };
        assert_eq!(&received.message.body[..], b"hello");
        let Some(lock) = received.lock_token else {
            panic!("{transport}: no lock token");
        };
        assert_eq!(device.complete(&lock).await, Ok(()), "{transport}");
        within::<R, _>("disconnect", device.disconnect()).await;
        hub.shutdown();
    }
}

/// One connection cannot starve the others: a peer that floods the hub with
/// PINGREQs and never reads its PINGRESPs is paced by TCP (its reader pauses while
/// its answers wait to be written), while another device goes on as usual.
pub(crate) async fn a_flooding_peer_that_never_reads_is_paced_and_others_are_served<R: Runtime>() {
    use std::io::Write as _;

    let cert = Certificate::new();
    let hub = start_hub::<R>(&cert, &every_listener(), &["flood", "calm"]);
    // Plain TCP, so the flood is raw MQTT; the calm device uses TLS, whose work
    // runs on the same driver as the flood.
    let flood_port = port(&hub, Transport::MqttTcp);
    let mut flood = match std::net::TcpStream::connect(("127.0.0.1", flood_port)) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let _ = flood.set_write_timeout(Some(Duration::from_secs(1)));
    if let Err(e) = flood.write_all(&connect_bytes(flood_port, "flood")) {
        panic!("{e}");
    }
    let pings = [0xc0u8, 0x00].repeat(32 * 1024);
    let flooder = std::thread::spawn(move || {
        let mut sent = 0usize;
        // Stops when the hub no longer reads (the write times out) or at 256 MiB.
        while sent < 256 * 1024 * 1024 && flood.write_all(&pings).is_ok() {
            sent += pings.len();
        }
        (sent, flood)
    });

    let calm =
        connect::<R>(device_config(port(&hub, Transport::Mqtt), "calm"), Transport::Mqtt, &cert.ca)
            .await;
    for n in 0..20u8 {
        let sent = within::<R, _>("calm telemetry", calm.send_telemetry(Message::new(vec![n])));
        assert_eq!(sent.await, Ok(()), "message {n}");
    }

    // The flooder stops once its writes block for a second.
    let flooded = within::<R, _>("flooder", async {
        while !flooder.is_finished() {
            R::sleep(Duration::from_millis(20)).await;
        }
    });
    flooded.await;
    let Ok((sent, _flood)) = flooder.join() else { panic!("flooder panicked") };
    // What the hub took is the socket buffers, one chunk and its answers'
    // allowance, nowhere near what the flooder would have sent.
    assert!(sent < 64 * 1024 * 1024, "the hub read {sent} bytes from a peer that never reads");
    assert_eq!(within::<R, _>("stored", hub.stored()).await.len(), 20);
    within::<R, _>("disconnect", calm.disconnect()).await;
    within::<R, _>("shutdown", hub.shutdown()).await;
}

/// Three devices share one AMQP connection on every AMQP transport: each has its
/// telemetry acknowledged, receives its C2D message and reads its twin, and the hub
/// sees them on one connection; a device with a wrong key is refused alone (spec
/// file §5.2, §5.10). Only AMQP multiplexes: MQTT is refused by name.
pub(crate) async fn devices_share_one_amqp_connection_and_a_wrong_key_fails_alone<R: Runtime>() {
    let mqtt = MultiplexedClient::<R>::connect(
        MultiplexConfig::new("127.0.0.1"),
        ClientTransport::new(Transport::Mqtt),
    );
    let Err(e) = mqtt.await else { panic!("MQTT cannot multiplex devices") };
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("MQTT"), "{e}");

    let cert = Certificate::new();
    let ids = ["m1", "m2", "m3"];
    for transport in [Transport::Amqp, Transport::AmqpWs, Transport::AmqpTcp] {
        let hub = start_hub::<R>(&cert, &every_listener(), &ids);
        let port = port(&hub, transport);
        let config = MultiplexConfig::new(format!("127.0.0.1:{port}"));
        let client = ClientTransport::with_ca(transport, &cert.ca);
        let client = match MultiplexedClient::<R>::connect(config, client).await {
            Ok(client) => client,
            Err(e) => panic!("{transport}: {e}"),
        };
        let mut keys = BTreeMap::new();
        for id in ids {
            match client.add_device(device_config(port, id)).await {
                Ok(key) => keys.insert(key, id),
                Err(e) => panic!("{transport} {id}: {e}"),
            };
        }
        let mut wrong = device_config(port, "m1");
        wrong.connection_string = match ConnectionString::parse(&format!(
            "HostName=127.0.0.1:{port};DeviceId=m1;SharedAccessKey={WRONG_KEY}"
        )) {
            Ok(cs) => cs,
            Err(e) => panic!("{e}"),
        };
        let wrong = match client.add_device(wrong).await {
            Ok(key) => key,
            Err(e) => panic!("{transport}: {e}"),
        };
        let mut connected = BTreeSet::new();
        let mut refused = None;
        within::<R, _>("connected and refused", async {
            while connected.len() < ids.len() || refused.is_none() {
                let Some((key, event)) = client.next_event().await else {
                    panic!("{transport}: the events ended");
                };
                match event {
                    DeviceEvent::Connected { .. } => {
                        connected.insert(key);
                    }
                    DeviceEvent::Disconnected {
                        reason: DisconnectReason::TokenRefused { status_code, .. },
                        reconnect_at: None,
                    } if key == wrong => refused = Some(status_code),
                    _ => {}
                }
            }
        })
        .await;
        assert_eq!(refused, Some(401), "{transport}: the wrong key is refused alone");
        assert_eq!(connected, keys.keys().copied().collect(), "{transport}");

        for (&key, id) in &keys {
            let body = format!("{transport} {id}");
            let sent = client.send_telemetry(key, Message::new(body.into_bytes()));
            assert_eq!(within::<R, _>("telemetry", sent).await, Ok(()), "{transport} {id}");
            if let Err(e) = hub.send_c2d(id, Message::new(format!("to {id}").into_bytes())).await {
                panic!("{transport} {id}: {e}");
            }
            let (to, c2d) = within::<R, _>("c2d", async {
                loop {
                    match client.next_event().await {
                        Some((to, DeviceEvent::C2d(c2d))) => return (to, c2d),
                        Some(_) => {}
                        None => panic!("{transport}: the events ended"),
                    }
                }
            })
            .await;
            assert_eq!((to, &c2d.message.body[..]), (key, format!("to {id}").as_bytes()));
            let Some(lock) = c2d.lock_token else { panic!("AMQP C2D has a lock") };
            let settled = client.settle(key, &lock, Disposition::Complete).await;
            assert_eq!(settled, Ok(()), "{transport} {id}");
            let twin = within::<R, _>("twin", client.get_twin(key)).await;
            assert!(twin.is_ok(), "{transport} {id}: {twin:?}");
        }
        let stored: BTreeSet<String> = within::<R, _>("stored", hub.stored())
            .await
            .into_iter()
            .map(|r| r.identity.device_id)
            .collect();
        assert_eq!(stored, ids.iter().map(|id| id.to_string()).collect(), "{transport}");

        // The hub saw every device on one connection.
        let mut connections = BTreeMap::new();
        while connections.len() < ids.len() {
            let connected = wait_hub(&hub, "connected", |e| match e {
                HubServerEvent::Hub(HubEvent::Connected { connection, identity, .. }) => {
                    Some((identity.device_id.clone(), *connection))
                }
                _ => None,
            });
            let (device_id, connection) = connected.await;
            connections.insert(device_id, connection);
        }
        let distinct: BTreeSet<_> = connections.values().collect();
        assert_eq!(distinct.len(), 1, "{transport}: {connections:?}");

        let first = *keys.keys().next().unwrap_or(&DeviceKey(0));
        assert!(client.remove_device(first).await, "{transport}");
        let removed = client.send_telemetry(first, Message::new(&b"x"[..])).await;
        assert!(matches!(removed, Err(TelemetryError::Refused(_))), "{transport}: {removed:?}");
        within::<R, _>("close", client.close()).await;
        within::<R, _>("shutdown", hub.shutdown()).await;
    }
}

/// A blocking device and the async hub speak the same protocols: telemetry is
/// acknowledged and stored, and a C2D message is received and completed. The
/// device's calls block the test's thread only; the hub runs on the runtime's
/// executor.
pub(crate) async fn a_blocking_device_works_with_the_async_hub<R: Runtime>() {
    let cert = Certificate::new();
    for &transport in Transport::ALL {
        let hub = start_hub::<R>(&cert, &every_listener(), &["dev1"]);
        let config = device_config(port(&hub, transport), "dev1");
        let client = ClientTransport::with_ca(transport, &cert.ca);
        let device = match hubwire_blocking::DeviceClient::connect(config, client) {
            Ok(device) => device,
            Err(e) => panic!("{transport}: the blocking device did not start: {e}"),
        };
        let sent = device.send_telemetry_timeout(telemetry(0), WAIT);
        assert_eq!(sent, Ok(()), "{transport}");
        let stored: Vec<Bytes> = within::<R, _>("stored", hub.stored())
            .await
            .into_iter()
            .map(|r| r.message.body)
            .collect();
        assert_eq!(stored, vec![telemetry(0).body], "{transport}");
        if let Err(e) = hub.send_c2d("dev1", Message::new(&b"hello"[..])).await {
            panic!("{transport}: send_c2d: {e}");
        }
        let Some(received) = device.recv_c2d(WAIT) else {
            panic!("{transport}: no C2D message within {WAIT:?}");
        };
        assert_eq!(&received.message.body[..], b"hello");
        let Some(lock) = received.lock_token else {
            panic!("{transport}: no lock token");
        };
        assert_eq!(device.complete(&lock), Ok(()), "{transport}");
        let settled = wait_hub(&hub, "settled", |e| match e {
            HubServerEvent::Hub(HubEvent::C2dSettled(s)) => Some(s.outcome),
            _ => None,
        });
        assert_eq!(settled.await, Outcome::Completed, "{transport}");
        device.disconnect();
        within::<R, _>("shutdown", hub.shutdown()).await;
    }
}
