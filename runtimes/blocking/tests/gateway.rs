//! The field gateway on threads (`hubwire_runtime::scenarios`' gateway scenarios):
//! MQTT devices → gateway → one AMQP connection → hub, over loopback. The
//! 200-device run is hubwire-mio's: 200 devices connecting at once to threads on a
//! small machine outrun the accept thread, and a device whose connection the
//! kernel dropped waits out its 30 s response time-out, not the gateway.

use hubwire_blocking::Threads;
use hubwire_runtime::scenarios;

#[test]
fn twenty_mqtt_devices_share_one_upstream_connection() {
    scenarios::mqtt_devices_share_one_upstream_connection::<Threads>(20);
}

#[test]
fn a_token_the_hub_refuses_gets_connack_5() {
    scenarios::a_token_the_hub_refuses_gets_connack_5::<Threads>();
}

#[test]
fn no_acknowledged_message_is_lost_when_the_hub_restarts() {
    scenarios::no_acknowledged_message_is_lost_when_the_hub_restarts::<Threads>();
}

#[test]
fn telemetry_the_hub_rejects_is_not_acknowledged_downstream() {
    scenarios::telemetry_the_hub_rejects_is_not_acknowledged_downstream::<Threads>();
}

#[test]
fn c2d_for_a_device_away_waits_in_the_hub_and_arrives_once() {
    scenarios::c2d_for_a_device_away_waits_in_the_hub_and_arrives_once::<Threads>();
}

#[test]
fn c2d_redelivered_after_a_hub_restart_reaches_the_device_once() {
    scenarios::c2d_redelivered_after_a_hub_restart_reaches_the_device_once::<Threads>();
}

#[test]
fn an_http_device_takes_c2d_upstream_only_while_it_polls() {
    scenarios::an_http_device_takes_c2d_upstream_only_while_it_polls::<Threads>();
}
