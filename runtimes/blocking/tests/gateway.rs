//! The field gateway on threads (`hubwire_runtime::scenarios`' gateway scenarios):
//! MQTT devices → gateway → one AMQP connection → hub, over loopback.

use hubwire_blocking::Threads;
use hubwire_runtime::scenarios;

#[test]
fn twenty_mqtt_devices_share_one_upstream_connection() {
    scenarios::twenty_mqtt_devices_share_one_upstream_connection::<Threads>();
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
