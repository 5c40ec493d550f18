//! A device and a hub over real loopback sockets on ephemeral ports, over every
//! transport: MQTT and AMQP, each over TLS, over WebSocket over TLS, and over plain
//! TCP; and HTTPS, polling for C2D messages every 50 ms.
//!
//! Every wait has a deadline, so a failing test fails instead of hanging.

use std::time::{Duration, Instant};

use hubwire_transports::Transport;

use crate::HubServerEvent;
use crate::scenarios::{KEY, TestHub};
use crate::sync::{DeviceClient, HubServer, Scheduler, TelemetryError};
use hubwire_core::Protocol;
use hubwire_core::device::{
    DeviceConfig, DeviceEvent, DisconnectReason, DispositionError, TelemetryId,
};
use hubwire_core::hub::{HubEvent, Outcome};
use hubwire_core::iothub::{Ack, ConnectionString, Disposition, ErrorCode, Message, Properties};
use hubwire_core::mqtt::ConnectReturnCode;
use hubwire_core::retry::Backoff;

/// Another valid key, which the hub does not know.
const WRONG_KEY: &str = "HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
const WAIT: Duration = Duration::from_secs(5);

fn connect<S: Scheduler>(
    hub: &TestHub<S>,
    transport: Transport,
    device_id: &str,
    key: &str,
) -> DeviceClient<S> {
    connect_with(hub, transport, device_id, key, |_| {})
}

fn connect_with<S: Scheduler>(
    hub: &TestHub<S>,
    transport: Transport,
    device_id: &str,
    key: &str,
    configure: impl FnOnce(&mut DeviceConfig),
) -> DeviceClient<S> {
    let port = hub.addr(transport).port();
    let cs = format!("HostName=127.0.0.1:{port};DeviceId={device_id};SharedAccessKey={key}");
    let Ok(cs) = ConnectionString::parse(&cs) else {
        panic!("bad connection string {cs}");
    };
    let mut config = DeviceConfig::new(cs);
    // Fast retries keep the restart test short.
    config.backoff =
        Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100) };
    // Over HTTP, C2D messages arrive at the next poll; these tests wait seconds.
    config.c2d_poll_interval = Duration::from_millis(50);
    configure(&mut config);
    match DeviceClient::<S>::connect(config, hub.client(transport)) {
        Ok(device) => device,
        Err(e) => panic!("device did not start: {e}"),
    }
}

/// Reads device events until `pick` accepts one; panics at the deadline, listing
/// the events seen.
fn wait_device<S: Scheduler, T>(
    device: &DeviceClient<S>,
    mut pick: impl FnMut(&DeviceEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(event) = device.recv_event(deadline.saturating_duration_since(Instant::now())) {
        if let Some(found) = pick(&event) {
            return found;
        }
        seen.push(event);
    }
    panic!("device: the event did not come within {WAIT:?}; saw {seen:?}");
}

/// Reads hub events until `pick` accepts one; panics at the deadline.
fn wait_hub<S: Scheduler, T>(
    hub: &HubServer<S>,
    mut pick: impl FnMut(&HubServerEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(event) = hub.recv_event(deadline.saturating_duration_since(Instant::now())) {
        if let Some(found) = pick(&event) {
            return found;
        }
        seen.push(event);
    }
    panic!("hub: the event did not come within {WAIT:?}; saw {seen:?}");
}

fn telemetry(i: usize) -> Message {
    let mut m = Message::new(format!("{{\"reading\":{i}}}").into_bytes());
    m.message_id = Some(format!("m{i}"));
    m.content_type = Some("application/json".into());
    m.properties = Properties::from_iter([("index", i.to_string()), ("kind", "test".into())]);
    m
}

/// Ten messages with properties, each acknowledged, are stored in order.
pub fn ten_messages_over<S: Scheduler>(transport: Transport) {
    let test_hub = TestHub::<S>::start(&["dev1"]);
    let hub = test_hub.server();
    let device = connect(&test_hub, transport, "dev1", KEY);
    for i in 0..10 {
        if let Err(e) = device.send_telemetry_timeout(telemetry(i), WAIT) {
            panic!("{transport}: message {i}: {e}");
        }
    }
    let stored = hub.stored();
    assert_eq!(stored.len(), 10);
    for (i, record) in stored.iter().enumerate() {
        assert_eq!(record.identity.device_id, "dev1");
        assert_eq!(record.sequence_number, i as u64 + 1);
        let sent = telemetry(i);
        assert_eq!(record.message.body, sent.body);
        assert_eq!(record.message.message_id, sent.message_id);
        assert_eq!(record.message.content_type, sent.content_type);
        assert_eq!(record.message.properties, sent.properties);
    }
    assert!(device.bytes_written() > 0);
}

/// A C2D message with properties reaches the device; complete settles it, with
/// feedback as `ack=full` asks, and a second complete is refused.
pub fn c2d_over<S: Scheduler>(transport: Transport) {
    let test_hub = TestHub::<S>::start(&["dev1"]);
    let hub = test_hub.server();
    let device = connect(&test_hub, transport, "dev1", KEY);
    let mut c2d = Message::new(&b"switch on"[..]);
    c2d.message_id = Some("c1".into());
    c2d.ack = Some(Ack::Full);
    c2d.properties = Properties::from_iter([("command", "on"), ("level", "3")]);
    let sequence = match hub.send_c2d("dev1", c2d) {
        Ok(s) => s,
        Err(e) => panic!("send_c2d: {e}"),
    };

    let Some(received) = device.recv_c2d(WAIT) else {
        panic!("no C2D message within {WAIT:?}");
    };
    assert_eq!(&received.message.body[..], b"switch on");
    assert_eq!(received.message.message_id.as_deref(), Some("c1"));
    assert_eq!(received.message.properties.get("command"), Some(Some("on")));
    assert_eq!(received.message.properties.get("level"), Some(Some("3")));
    let Some(lock) = received.lock_token else {
        panic!("a QoS 1 delivery has a lock token");
    };
    assert_eq!(device.complete(&lock), Ok(()));

    let settled = wait_hub(hub, |e| match e {
        HubServerEvent::Hub(HubEvent::C2dSettled(s)) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(settled.device_id, "dev1");
    assert_eq!(settled.sequence_number, sequence);
    assert_eq!(settled.outcome, Outcome::Completed);
    assert!(settled.feedback.is_some(), "ack=full asks for feedback");
    // Settled once: a second complete is refused.
    assert!(device.complete(&lock).is_err());
}

/// A wrong key is refused as the protocol says (CONNACK 5, put-token 401, HTTP
/// 401) and the device stops retrying.
pub fn wrong_key_over<S: Scheduler>(transport: Transport) {
    let test_hub = TestHub::<S>::start(&["dev1"]);
    let hub = test_hub.server();
    let device = connect(&test_hub, transport, "dev1", WRONG_KEY);
    let (reason, reconnect_at) = wait_device(&device, |e| match e {
        DeviceEvent::Disconnected { reason, reconnect_at } => Some((reason.clone(), *reconnect_at)),
        _ => None,
    });
    match transport.protocol() {
        Protocol::Mqtt => {
            assert_eq!(reason, DisconnectReason::Refused(ConnectReturnCode::NotAuthorized));
        }
        // AMQP refuses the put-token (spec file §5.2).
        Protocol::Amqp => assert!(
            matches!(reason, DisconnectReason::TokenRefused { status_code: 401, .. }),
            "{transport}: {reason:?}"
        ),
        // HTTP answers the request 401 (spec file §6.7).
        _ => assert!(
            matches!(&reason, DisconnectReason::Unauthorized { status: 401, error_code, .. }
                if error_code == "IotHubUnauthorized"),
            "{transport}: {reason:?}"
        ),
    }
    assert_eq!(reconnect_at, None);
    let code = wait_hub(hub, |e| match e {
        HubServerEvent::Hub(HubEvent::Refused { code, .. }) => Some(*code),
        _ => None,
    });
    assert_eq!(code, ErrorCode::IOT_HUB_UNAUTHORIZED);
    // A stopped device refuses telemetry instead of queueing it forever.
    assert!(device.send_telemetry_timeout(telemetry(0), WAIT).is_err());
}

/// Telemetry queued while the hub is down is delivered, in order, after it
/// restarts on the same port.
pub fn restart_over<S: Scheduler>(transport: Transport) {
    let mut test_hub = TestHub::<S>::start(&["dev1"]);
    let device = connect(&test_hub, transport, "dev1", KEY);
    assert_eq!(device.send_telemetry_timeout(telemetry(0), WAIT), Ok(()));

    let listen = test_hub.stop();
    let reconnect_at = wait_device(&device, |e| match e {
        DeviceEvent::Disconnected { reconnect_at, .. } => Some(*reconnect_at),
        _ => None,
    });
    assert!(reconnect_at.is_some(), "a lost hub is retried");
    // A caller that stops waiting leaves its message queued; the acknowledgement then
    // comes as an event.
    let gave_up = device.send_telemetry_timeout(telemetry(1), Duration::from_millis(30));
    assert_eq!(gave_up, Err(TelemetryError::TimedOut(Duration::from_millis(30))));
    let mut queued: Vec<TelemetryId> = Vec::new();
    for i in 2..5 {
        match device.send_telemetry_nowait(telemetry(i)) {
            Ok(id) => queued.push(id),
            Err(e) => panic!("message {i} not queued: {e}"),
        }
    }

    test_hub.resume(&listen, &["dev1"]);
    let hub = test_hub.server();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 4 {
        acknowledged.push(wait_device(&device, |e| match e {
            DeviceEvent::TelemetryAcknowledged(id) => Some(*id),
            _ => None,
        }));
    }
    assert!(acknowledged[0] < queued[0], "the timed-out message went first");
    assert_eq!(acknowledged[1..], queued[..]);
    let bodies: Vec<Vec<u8>> = hub.stored().iter().map(|r| r.message.body.to_vec()).collect();
    let sent: Vec<Vec<u8>> = (1..5).map(|i| telemetry(i).body.to_vec()).collect();
    assert_eq!(bodies, sent);
}

/// Two C2D messages, the first rejected, the second abandoned: over AMQP and HTTP
/// the hub dead-letters the first and requeues the second (spec file §5.5, §6.5); MQTT cannot say
/// either (spec file §4.4), so the device refuses, naming the protocol.
pub fn reject_and_abandon_over<S: Scheduler>(transport: Transport) {
    let test_hub = TestHub::<S>::start(&["dev1"]);
    let hub = test_hub.server();
    let device = connect(&test_hub, transport, "dev1", KEY);
    for (id, disposition) in
        [("c-reject", Disposition::Reject), ("c-abandon", Disposition::Abandon)]
    {
        let mut c2d = Message::new(&b"x"[..]);
        c2d.message_id = Some(id.into());
        if let Err(e) = hub.send_c2d("dev1", c2d) {
            panic!("{transport}: send_c2d: {e}");
        }
        let Some(received) = device.recv_c2d(WAIT) else {
            panic!("{transport}: no C2D message within {WAIT:?}");
        };
        assert_eq!(received.message.message_id.as_deref(), Some(id), "{transport}");
        let Some(lock) = received.lock_token else {
            panic!("{transport}: no lock token");
        };
        let settled = match disposition {
            Disposition::Reject => device.reject(&lock),
            _ => device.abandon(&lock),
        };
        if transport.protocol() == Protocol::Mqtt {
            let refused = DispositionError::Unsupported { protocol: Protocol::Mqtt, disposition };
            assert_eq!(settled, Err(refused.clone()), "{transport}");
            assert!(refused.to_string().starts_with("MQTT cannot"), "{refused}");
            // The hub delivers no more while the first is unacknowledged.
            return;
        }
        assert_eq!(settled, Ok(()), "{transport}: {disposition}");
        let outcome = wait_hub(hub, |e| match e {
            HubServerEvent::Hub(HubEvent::C2dSettled(s)) if s.message_id.as_deref() == Some(id) => {
                Some(s.outcome)
            }
            _ => None,
        });
        match disposition {
            Disposition::Reject => assert_eq!(outcome, Outcome::Rejected, "{transport}"),
            _ => assert!(matches!(outcome, Outcome::Abandoned { .. }), "{transport}: {outcome:?}"),
        }
    }
}

/// A device idle for three keep-alive periods of 1 s stays connected — MQTT's
/// PINGREQ [MQTT-3.1.2-23], AMQP's empty frames within the idle timeout (AMQP core
/// §2.4.5) — and its next message is acknowledged; over HTTP the idle connection
/// is closed and the next request opens another.
pub fn keep_alive_over<S: Scheduler>(transport: Transport) {
    let test_hub = TestHub::<S>::start(&["dev1"]);
    let hub = test_hub.server();
    let device = connect_with(&test_hub, transport, "dev1", KEY, |config| {
        config.keep_alive = Duration::from_secs(1);
    });
    assert_eq!(device.send_telemetry_timeout(telemetry(0), WAIT), Ok(()), "{transport}");
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(device.send_telemetry_timeout(telemetry(1), WAIT), Ok(()), "{transport}");
    assert_eq!(hub.stored().len(), 2, "{transport}");
    if transport.protocol() == Protocol::Http {
        return;
    }
    let mut events = Vec::new();
    while let Some(event) = device.recv_event(Duration::ZERO) {
        events.push(event);
    }
    let dropped = events.iter().any(|e| matches!(e, DeviceEvent::Disconnected { .. }));
    assert!(!dropped, "{transport}: the idle device lost its connection: {events:?}");
    let mut hub_events = Vec::new();
    while let Some(event) = hub.recv_event(Duration::ZERO) {
        hub_events.push(event);
    }
    let lost =
        hub_events.iter().any(|e| matches!(e, HubServerEvent::Hub(HubEvent::Disconnected { .. })));
    assert!(!lost, "{transport}: the hub dropped the idle device: {hub_events:?}");
}

/// Forty devices connect at once over TLS and each sends 25 messages: every one is
/// acknowledged and stored. Inputs then queue up while the hub is busy, which is
/// when a driver that takes several at a time must lose none of them.
pub fn forty_devices_at_once_lose_nothing<S: Scheduler>() {
    const DEVICES: usize = 40;
    const MESSAGES: usize = 25;
    let ids: Vec<String> = (0..DEVICES).map(|n| format!("many{n}")).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let test_hub = TestHub::<S>::start(&names);
    std::thread::scope(|scope| {
        for id in &ids {
            let test_hub = &test_hub;
            scope.spawn(move || {
                let device = connect(test_hub, Transport::Mqtt, id, KEY);
                for i in 0..MESSAGES {
                    if let Err(e) = device.send_telemetry_timeout(telemetry(i), WAIT) {
                        panic!("{id}: message {i}: {e}");
                    }
                }
            });
        }
    });
    let stored = test_hub.server().stored();
    assert_eq!(stored.len(), DEVICES * MESSAGES);
    for id in &ids {
        let mine = stored.iter().filter(|r| r.identity.device_id == *id).count();
        assert_eq!(mine, MESSAGES, "{id}");
    }
}
