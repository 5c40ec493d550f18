//! hubwire's device through a real broker: mosquitto relays the IoT Hub telemetry a
//! hubwire device publishes over TLS, with a CA made for the test, and
//! mosquitto_sub sees it byte for byte. Both come from Debian's packages
//! (conformance/install-peers.sh); a missing one fails the test with that
//! instruction.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use hubwire_blocking::{ClientTransport, DeviceClient, Transport};
use hubwire_conformance::process::{Process, WAIT, peer};
use hubwire_core::device::DeviceConfig;
use hubwire_core::iothub::{ConnectionString, Message};
use hubwire_core::mqtt::topic;
use hubwire_transports::tls::local_ca;

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free port: {e}"),
    }
}

/// A mosquitto broker on free loopback ports, anonymous access allowed: plain TCP
/// on the first (for mosquitto_sub), TLS with a certificate from a CA made here on
/// the second. Returns it, the ports and the CA file.
fn start_broker(dir: &Path) -> (Process, u16, u16, PathBuf) {
    let (port, tls_port) = (free_port(), free_port());
    let certificate = match local_ca::ensure(dir, &[String::from("127.0.0.1")]) {
        Ok(c) => c,
        Err(e) => panic!("cannot make a test CA: {e}"),
    };
    // mosquitto drops root for its own user before reading its key (peers.md):
    // give it a copy it may read.
    let key = dir.join("broker-key.pem");
    let copied = std::fs::copy(&certificate.key_path, &key).and_then(|_| {
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
    });
    if let Err(e) = copied {
        panic!("cannot copy the key for mosquitto: {e}");
    }
    let config = dir.join("mosquitto.conf");
    let written = std::fs::File::create(&config).and_then(|mut f| {
        writeln!(f, "allow_anonymous true\npersistence false\nper_listener_settings false")?;
        writeln!(f, "listener {port} 127.0.0.1")?;
        writeln!(f, "listener {tls_port} 127.0.0.1")?;
        writeln!(f, "certfile {}\nkeyfile {}", certificate.cert_path.display(), key.display())
    });
    if let Err(e) = written {
        panic!("cannot write {}: {e}", config.display());
    }
    let child = Command::new(peer("mosquitto"))
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let broker = match child {
        Ok(child) => Process { child },
        Err(e) => panic!("cannot start mosquitto: {e}"),
    };
    let deadline = Instant::now() + WAIT;
    for port in [port, tls_port] {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
            thread::sleep(Duration::from_millis(20));
        }
    }
    (broker, port, tls_port, certificate.ca_path)
}

#[test]
fn device_telemetry_through_mosquitto_reaches_mosquitto_sub_byte_exact() {
    let dir = std::env::temp_dir().join(format!("hubwire-mosquitto-{}", std::process::id()));
    let (_broker, port, tls_port, ca) = start_broker(&dir);
    // A persistent QoS 1 subscription, made before the device publishes: mosquitto
    // keeps what arrives for it until the second run of mosquitto_sub collects it.
    let subscriber = |extra: &[&str]| {
        let output = Command::new(peer("mosquitto_sub"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", "mqttv311"])
            .args(["-i", "hubwire-interop", "-c", "-q", "1"])
            .args(["-t", "devices/dev1/messages/events/#"])
            .args(extra)
            .output();
        match output {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => panic!("mosquitto_sub failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => panic!("cannot run mosquitto_sub: {e}"),
        }
    };
    subscriber(&["-E"]);

    let cs = format!(
        "HostName=127.0.0.1:{tls_port};DeviceId=dev1;\
         SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    let cs = match ConnectionString::parse(&cs) {
        Ok(cs) => cs,
        Err(e) => panic!("{e}"),
    };
    let transport = ClientTransport::with_ca(Transport::Mqtt, &ca);
    let device = match DeviceClient::connect(DeviceConfig::new(cs.clone()), transport) {
        Ok(d) => d,
        Err(e) => panic!("cannot start the device: {e}"),
    };
    // TV-11's message, with a body that is not text.
    let mut message = Message::new(vec![0x00, 0xff, b'{', 0x80, b'\n', 0x7f]);
    message.message_id = Some("msg-0001".into());
    message.correlation_id = Some("corr 1".into());
    message.content_type = Some("application/json".into());
    message.content_encoding = Some("utf-8".into());
    message.properties.set("alert", "high temp");
    message.properties.set("unit", "°C");
    message.properties.set("path", "a/b=c&d");
    let expected_topic = topic::telemetry(&cs.identity(), &message);
    assert_eq!(
        expected_topic,
        "devices/dev1/messages/events/%24.mid=msg-0001&%24.cid=corr%201\
         &%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&unit=%C2%B0C\
         &path=a%2Fb%3Dc%26d"
    );
    if let Err(e) = device.send_telemetry(message) {
        panic!("mosquitto did not acknowledge the telemetry: {e}");
    }

    let received = subscriber(&["-C", "1", "-W", "10", "-F", "%t %x"]);
    let line = received.trim_end();
    assert_eq!(line, format!("{expected_topic} 00ff7b800a7f"));
    assert!(device.transport_status().tls_version.is_some(), "TLS was negotiated");
    let _ = std::fs::remove_dir_all(&dir);
}
