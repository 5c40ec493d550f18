//! The async loopback suite on async-std: an async-std hub and async-std devices
//! over every transport, and an async-std device against the blocking hub.

#[path = "../../common/tests/async_suite/mod.rs"]
mod suite;

use hubwire_async_std::AsyncStd;

#[async_std::test]
async fn telemetry_is_acknowledged_and_stored_with_its_properties() {
    suite::telemetry_is_acknowledged_and_stored_with_its_properties::<AsyncStd>().await;
}

#[async_std::test]
async fn c2d_messages_are_completed_rejected_and_abandoned() {
    suite::c2d_messages_are_completed_rejected_and_abandoned::<AsyncStd>().await;
}

#[async_std::test]
async fn twin_and_methods_work_over_mqtt_and_amqp() {
    suite::twin_and_methods_work_over_mqtt_and_amqp::<AsyncStd>().await;
}

#[async_std::test]
async fn the_device_reconnects_after_the_hub_restarts_on_the_same_port() {
    suite::the_device_reconnects_after_the_hub_restarts_on_the_same_port::<AsyncStd>().await;
}

#[async_std::test]
async fn an_async_std_device_works_with_the_blocking_hub() {
    suite::an_async_device_works_with_the_blocking_hub::<AsyncStd>().await;
}

#[async_std::test]
async fn a_flooding_peer_that_never_reads_is_paced_and_others_are_served() {
    suite::a_flooding_peer_that_never_reads_is_paced_and_others_are_served::<AsyncStd>().await;
}

#[async_std::test]
async fn devices_share_one_amqp_connection_and_a_wrong_key_fails_alone() {
    suite::devices_share_one_amqp_connection_and_a_wrong_key_fails_alone::<AsyncStd>().await;
}

#[async_std::test]
async fn a_blocking_device_works_with_the_async_std_hub() {
    suite::a_blocking_device_works_with_the_async_hub::<AsyncStd>().await;
}
