//! Microsoft's Azure IoT device SDK for Node.js (azure-iot-device 1.18.4 with
//! azure-iot-device-mqtt 1.16.4, azure-iot-device-amqp 1.14.4 and
//! azure-iot-device-http 1.14.4, installed by conformance/install-peers.sh) against
//! `hubwire hub` over `Mqtt` (TLS, 8883), `MqttWs` (WebSocket over TLS, 443), `Amqp`
//! (TLS, 5671: no SASL, then a CBS put-token, spec file §5.9), `AmqpWs`
//! (subprotocol AMQPWSB10 on 443) and `Http` (REST on 443, C2D by polling, spec file
//! §6): the scenarios in `hubwire_conformance::sdk_interop`. The MQTT transports
//! complete one C2D message; AMQP and HTTP complete, reject and abandon (spec file
//! §5.5, §6.5). Over the MQTT and AMQP transports the SDK also gets its twin,
//! reports properties, hears a desired update and answers a direct method.
//!
//! Each test has its own loopback address (127.0.0.31–39), so all run at once on
//! the standard ports; binding 443 needs root or CAP_NET_BIND_SERVICE, as on CI.

use hubwire_conformance::{peers, sdk_interop};

#[test]
fn node_sdk_over_mqtt_sends_telemetry_and_completes_c2d() {
    sdk_interop::run("127.0.0.31", "mqtt", peers::node_device);
}

#[test]
fn node_sdk_over_mqtt_ws_sends_telemetry_and_completes_c2d() {
    sdk_interop::run("127.0.0.32", "mqtt-ws", peers::node_device);
}

#[test]
fn node_sdk_over_amqp_sends_telemetry_and_completes_rejects_abandons_c2d() {
    sdk_interop::run_settling_three_ways("127.0.0.33", "amqp", peers::node_device);
}

#[test]
fn node_sdk_over_amqp_ws_sends_telemetry_and_completes_rejects_abandons_c2d() {
    sdk_interop::run_settling_three_ways("127.0.0.34", "amqp-ws", peers::node_device);
}

#[test]
fn node_sdk_over_http_sends_telemetry_and_a_batch_and_polls_c2d_three_ways() {
    sdk_interop::run_settling_three_ways("127.0.0.35", "http", peers::node_device);
}

#[test]
fn node_sdk_over_mqtt_gets_its_twin_reports_hears_desired_and_answers_a_method() {
    sdk_interop::run_twin_and_methods("127.0.0.36", "mqtt", peers::node_device);
}

#[test]
fn node_sdk_over_amqp_gets_its_twin_reports_hears_desired_and_answers_a_method() {
    sdk_interop::run_twin_and_methods("127.0.0.37", "amqp", peers::node_device);
}

#[test]
fn node_sdk_over_mqtt_ws_gets_its_twin_reports_hears_desired_and_answers_a_method() {
    sdk_interop::run_twin_and_methods("127.0.0.38", "mqtt-ws", peers::node_device);
}

#[test]
fn node_sdk_over_amqp_ws_gets_its_twin_reports_hears_desired_and_answers_a_method() {
    sdk_interop::run_twin_and_methods("127.0.0.39", "amqp-ws", peers::node_device);
}
