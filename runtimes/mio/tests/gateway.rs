//! The field gateway on one event loop (`hubwire_runtime::scenarios`' gateway scenarios):
//! MQTT devices → gateway → one AMQP connection → hub, over loopback.

use hubwire_mio::EventLoop;
use hubwire_runtime::scenarios;

#[test]
fn twenty_mqtt_devices_share_one_upstream_connection() {
    scenarios::mqtt_devices_share_one_upstream_connection::<EventLoop>(20);
}

#[test]
fn two_hundred_mqtt_devices_share_one_upstream_connection() {
    scenarios::mqtt_devices_share_one_upstream_connection::<EventLoop>(200);
}

#[test]
fn a_token_the_hub_refuses_gets_connack_5() {
    scenarios::a_token_the_hub_refuses_gets_connack_5::<EventLoop>();
}

#[test]
fn no_acknowledged_message_is_lost_when_the_hub_restarts() {
    scenarios::no_acknowledged_message_is_lost_when_the_hub_restarts::<EventLoop>();
}

#[test]
fn telemetry_the_hub_rejects_is_not_acknowledged_downstream() {
    scenarios::telemetry_the_hub_rejects_is_not_acknowledged_downstream::<EventLoop>();
}

#[test]
fn c2d_for_a_device_away_waits_in_the_hub_and_arrives_once() {
    scenarios::c2d_for_a_device_away_waits_in_the_hub_and_arrives_once::<EventLoop>();
}

#[test]
fn c2d_redelivered_after_a_hub_restart_reaches_the_device_once() {
    scenarios::c2d_redelivered_after_a_hub_restart_reaches_the_device_once::<EventLoop>();
}

#[test]
fn an_http_device_takes_c2d_upstream_only_while_it_polls() {
    scenarios::an_http_device_takes_c2d_upstream_only_while_it_polls::<EventLoop>();
}
