//! One connection cannot starve the others: a device that floods the hub and never
//! reads its answers is paced by TCP, while another device goes on as usual.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hubwire_transports::Transport;

use crate::clock;
use crate::scenarios::{KEY, TestHub};
use crate::sync::{DeviceClient, Scheduler};
use hubwire_core::device::DeviceConfig;
use hubwire_core::iothub::{ConnectionString, Message, SasToken};
use hubwire_core::mqtt::{Connect, Packet};

/// A valid MQTT CONNECT for `device_id` (with [`KEY`]) on the hub at
/// `127.0.0.1:port`, for tests that speak raw MQTT.
pub fn connect_bytes(port: u16, device_id: &str) -> BytesMut {
    let host = format!("127.0.0.1:{port}");
    let token = SasToken::sign(
        &format!("{host}/devices/{device_id}"),
        KEY,
        clock::now() + Duration::from_secs(3600),
        None,
    );
    let Ok(token) = token else { panic!("cannot sign") };
    let connect = Packet::Connect(Connect {
        protocol_name: "MQTT".into(),
        protocol_level: 4,
        clean_session: true,
        keep_alive: 600,
        client_id: device_id.into(),
        will: None,
        username: Some(format!("{host}/{device_id}/?api-version=2021-04-12").into()),
        password: Some(Bytes::from(token.to_string().into_bytes())),
    });
    let mut out = BytesMut::new();
    if let Err(e) = connect.encode(&mut out) {
        panic!("{e}");
    }
    out
}

/// A device floods PINGREQs and never reads; another device is served meanwhile.
pub fn a_flooding_device_that_never_reads_is_paced_and_others_are_served<S: Scheduler>() {
    let test_hub = TestHub::<S>::start(&["flood", "calm"]);
    let hub = test_hub.server();
    // Plain TCP, so the flood is raw MQTT; the calm device uses TLS, whose work
    // runs on the same driver as the flood.
    let addr = test_hub.addr(Transport::MqttTcp);

    // A device that sends PINGREQs as fast as it can and reads nothing.
    let mut flood = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let _ = flood.set_write_timeout(Some(Duration::from_secs(1)));
    if let Err(e) = flood.write_all(&connect_bytes(addr.port(), "flood")) {
        panic!("{e}");
    }
    let pings = [0xc0u8, 0x00].repeat(32 * 1024);
    let flooder = thread::spawn(move || {
        let mut sent = 0usize;
        // Stops when the hub no longer reads (the write times out) or at 256 MiB.
        while sent < 256 * 1024 * 1024 && flood.write_all(&pings).is_ok() {
            sent += pings.len();
        }
        (sent, flood)
    });

    // Meanwhile another device connects and has every message acknowledged.
    let port = test_hub.addr(Transport::Mqtt).port();
    let cs = format!("HostName=127.0.0.1:{port};DeviceId=calm;SharedAccessKey={KEY}");
    let Ok(cs) = ConnectionString::parse(&cs) else { panic!("{cs}") };
    let calm =
        match DeviceClient::<S>::connect(DeviceConfig::new(cs), test_hub.client(Transport::Mqtt)) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
    let started = Instant::now();
    for n in 0..20u8 {
        if let Err(e) = calm.send_telemetry_timeout(Message::new(vec![n]), Duration::from_secs(5)) {
            panic!("message {n} not acknowledged: {e}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    let Ok((sent, _flood)) = flooder.join() else { panic!("flooder panicked") };
    // The hub stopped reading: what it took is the socket buffers, one chunk and
    // its answers' allowance, nowhere near what the flooder would have sent.
    assert!(sent < 64 * 1024 * 1024, "the hub read {sent} bytes from a peer that never reads");
    assert_eq!(hub.stored().len(), 20);
}
