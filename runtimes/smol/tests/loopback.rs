//! The async loopback suite on smol: a smol hub and smol devices over every
//! transport, and a smol device against the blocking hub.

#[path = "../../common/tests/async_suite/mod.rs"]
mod suite;

use hubwire_smol::Smol;

#[test]
fn telemetry_is_acknowledged_and_stored_with_its_properties() {
    smol::block_on(suite::telemetry_is_acknowledged_and_stored_with_its_properties::<Smol>());
}

#[test]
fn c2d_messages_are_completed_rejected_and_abandoned() {
    smol::block_on(suite::c2d_messages_are_completed_rejected_and_abandoned::<Smol>());
}

#[test]
fn twin_and_methods_work_over_mqtt_and_amqp() {
    smol::block_on(suite::twin_and_methods_work_over_mqtt_and_amqp::<Smol>());
}

#[test]
fn the_device_reconnects_after_the_hub_restarts_on_the_same_port() {
    smol::block_on(suite::the_device_reconnects_after_the_hub_restarts_on_the_same_port::<Smol>());
}

#[test]
fn a_smol_device_works_with_the_blocking_hub() {
    smol::block_on(suite::an_async_device_works_with_the_blocking_hub::<Smol>());
}

#[test]
fn a_flooding_peer_that_never_reads_is_paced_and_others_are_served() {
    smol::block_on(suite::a_flooding_peer_that_never_reads_is_paced_and_others_are_served::<Smol>());
}

#[test]
fn devices_share_one_amqp_connection_and_a_wrong_key_fails_alone() {
    smol::block_on(suite::devices_share_one_amqp_connection_and_a_wrong_key_fails_alone::<Smol>());
}

#[test]
fn a_blocking_device_works_with_the_smol_hub() {
    smol::block_on(suite::a_blocking_device_works_with_the_async_hub::<Smol>());
}
