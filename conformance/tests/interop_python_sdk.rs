//! Microsoft's Azure IoT device SDK for Python (azure-iot-device 2.14.0, TLS 1.2
//! only, ports fixed at 8883 and 443; installed by conformance/install-peers.sh)
//! against `hubwire hub` over MQTT and MQTT over WebSocket: the scenarios in
//! `hubwire_conformance::sdk_interop`, the twin and direct methods over both too.
//!
//! Each test has its own loopback address, so both run at once on the standard
//! ports; binding 443 needs root or CAP_NET_BIND_SERVICE, as on CI.

use hubwire_conformance::{peers, sdk_interop};

#[test]
fn python_sdk_over_mqtt_sends_telemetry_and_receives_c2d() {
    sdk_interop::run("127.0.0.41", "mqtt", peers::python_device);
}

#[test]
fn python_sdk_over_mqtt_ws_sends_telemetry_and_receives_c2d() {
    sdk_interop::run("127.0.0.42", "mqtt-ws", peers::python_device);
}

#[test]
fn python_sdk_over_mqtt_gets_its_twin_reports_hears_desired_and_answers_a_method() {
    sdk_interop::run_twin_and_methods("127.0.0.43", "mqtt", peers::python_device);
}

#[test]
fn python_sdk_over_mqtt_ws_gets_its_twin_reports_hears_desired_and_answers_a_method() {
    sdk_interop::run_twin_and_methods("127.0.0.44", "mqtt-ws", peers::python_device);
}
