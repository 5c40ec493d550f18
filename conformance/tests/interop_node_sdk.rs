//! Microsoft's Azure IoT device SDK for Node.js (azure-iot-device 1.18.4 with
//! azure-iot-device-mqtt 1.16.4, installed by conformance/install-peers.sh) against
//! `hubwire hub` over `Mqtt` (TLS, 8883) and `MqttWs` (WebSocket over TLS, 443):
//! the scenario in `hubwire_conformance::sdk_interop`.
//!
//! Each test has its own loopback address, so both run at once on the standard
//! ports; binding 443 needs root or CAP_NET_BIND_SERVICE, as on CI.

use hubwire_conformance::{peers, sdk_interop};

#[test]
fn node_sdk_over_mqtt_sends_telemetry_and_completes_c2d() {
    sdk_interop::run("127.0.0.31", "mqtt", peers::node_device);
}

#[test]
fn node_sdk_over_mqtt_ws_sends_telemetry_and_completes_c2d() {
    sdk_interop::run("127.0.0.32", "mqtt-ws", peers::node_device);
}
