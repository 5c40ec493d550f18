//! `hubwire device --transport auto` against a hub on IoT Hub's standard ports at a
//! loopback address of its own: with 8883 closed it falls back to MQTT over
//! WebSocket on 443 and says why; with 8883 open it keeps to MQTT over TLS. And
//! `--transport auto-amqp`, which falls back within AMQP: 5671 closed, AMQP over
//! WebSocket on 443.
//!
//! Port 443 needs root or CAP_NET_BIND_SERVICE, which the test command has on CI.

use hubwire_conformance::process::{Hub, TempDir, next_event, start, start_hub_with};

/// A hub on `ip` serving 443 and MQTT's port asked for (`off` closes it), and no
/// AMQP over TLS.
fn hub_on(ip: &str, mqtt_port: &str) -> Hub {
    hub_with(ip, &["--mqtt-port", mqtt_port, "--amqp-port", "off"])
}

/// A hub on `ip` serving 443 and the `ports` arguments.
fn hub_with(ip: &str, ports: &[&str]) -> Hub {
    let data_dir = TempDir::new("hubwire-auto");
    let dir = data_dir.0.display().to_string();
    let args = ["hub", "--bind", ip, "--https-port", "443"];
    let rest = ["--data-dir", &dir, "--device", "dev1"];
    start_hub_with(&[&args[..], ports, &rest].concat(), data_dir)
}

/// Runs a device with `--transport auto --json` and returns its `connected` line.
fn auto_device(hub: &Hub) -> serde_json::Value {
    auto_device_over(hub, "auto")
}

/// Runs a device with `--transport <auto> --json` and returns its `connected` line.
fn auto_device_over(hub: &Hub, auto: &str) -> serde_json::Value {
    let cs = &hub.connection_string;
    let args = ["device", "--connection-string", cs, "--ca", &hub.ca, "--transport", auto];
    let (_device, _stdin, out) =
        start(&[&args[..], &["--count", "1", "--wait-c2d-ms", "0", "--json"]].concat());
    let connected = next_event(&out, "connected");
    let telemetry = next_event(&hub.out, "telemetry");
    assert_eq!(telemetry["deviceId"], "dev1");
    connected
}

#[test]
fn auto_falls_back_to_websocket_on_443_when_8883_is_refused() {
    let hub = hub_on("127.0.0.21", "off");
    // Standard ports: the printed connection string names no port.
    assert!(hub.connection_string.starts_with("HostName=127.0.0.21;"), "{}", hub.connection_string);
    let connected = auto_device(&hub);
    assert_eq!(connected["transport"], "mqtt-ws", "{connected}");
    assert_eq!(connected["peer"], "127.0.0.21:443", "{connected}");
    let reason = connected["fallbackReason"].as_str().unwrap_or_default();
    assert!(reason.contains("mqtt to 127.0.0.21:8883") && reason.contains("refused"), "{reason}");
}

#[test]
fn auto_keeps_to_mqtt_over_tls_when_8883_answers() {
    let hub = hub_on("127.0.0.22", "8883");
    let connected = auto_device(&hub);
    assert_eq!(connected["transport"], "mqtt", "{connected}");
    assert_eq!(connected["peer"], "127.0.0.22:8883", "{connected}");
    assert!(connected["fallbackReason"].is_null(), "{connected}");
}

#[test]
fn auto_amqp_falls_back_to_amqp_over_websocket_on_443_when_5671_is_refused() {
    let hub = hub_with("127.0.0.56", &["--mqtt-port", "off", "--amqp-port", "off"]);
    let connected = auto_device_over(&hub, "auto-amqp");
    assert_eq!(connected["transport"], "amqp-ws", "{connected}");
    assert_eq!(connected["peer"], "127.0.0.56:443", "{connected}");
    let reason = connected["fallbackReason"].as_str().unwrap_or_default();
    assert!(reason.contains("amqp to 127.0.0.56:5671") && reason.contains("refused"), "{reason}");
}
