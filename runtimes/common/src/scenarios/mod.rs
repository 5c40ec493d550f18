//! One scenario suite for every runtime: the synchronous API of a [`Scheduler`]'s
//! runtime — its hub and its devices over real loopback sockets on ephemeral ports,
//! over every transport — checked the same way whatever drives it.
//!
//! A runtime runs the suite with [`scenario_suite!`](crate::scenario_suite), which
//! writes one test per scenario and transport:
//!
//! ```ignore
//! hubwire_runtime::scenario_suite!(hubwire_mio::EventLoop);
//! ```
//!
//! Every wait has a deadline, so a failing scenario fails instead of hanging.
//!
//! [`Scheduler`]: crate::sync::Scheduler

mod backpressure;
mod device;
mod gateway;
mod hub;
mod multiplexed;

pub use backpressure::{
    a_flooding_device_that_never_reads_is_paced_and_others_are_served, connect_bytes,
};
pub use device::{
    c2d_over, forty_devices_at_once_lose_nothing, keep_alive_over, reject_and_abandon_over,
    restart_over, ten_messages_over, wrong_key_over,
};
pub use gateway::{
    a_token_the_hub_refuses_gets_connack_5, an_http_device_takes_c2d_upstream_only_while_it_polls,
    c2d_for_a_device_away_waits_in_the_hub_and_arrives_once,
    c2d_redelivered_after_a_hub_restart_reaches_the_device_once,
    mqtt_devices_share_one_upstream_connection,
    no_acknowledged_message_is_lost_when_the_hub_restarts,
    telemetry_the_hub_rejects_is_not_acknowledged_downstream,
};
pub use hub::{KEY, TestHub, record};
pub use hubwire_transports::Transport;
pub use multiplexed::{
    an_mqtt_transport_is_refused_naming_its_protocol,
    three_devices_share_one_connection_and_a_wrong_key_fails_alone,
};

/// Writes the scenario suite's tests for a scheduler: a module per transport with
/// a test per device scenario, and the hub-wide scenarios.
#[macro_export]
macro_rules! scenario_suite {
    ($scheduler:ty) => {
        $crate::scenario_suite!(@transport $scheduler, mqtt, Mqtt);
        $crate::scenario_suite!(@transport $scheduler, mqtt_ws, MqttWs);
        $crate::scenario_suite!(@transport $scheduler, mqtt_tcp, MqttTcp);
        $crate::scenario_suite!(@transport $scheduler, amqp, Amqp);
        $crate::scenario_suite!(@transport $scheduler, amqp_ws, AmqpWs);
        $crate::scenario_suite!(@transport $scheduler, amqp_tcp, AmqpTcp);
        $crate::scenario_suite!(@transport $scheduler, http, Http);

        #[test]
        fn a_flooding_device_that_never_reads_is_paced_and_others_are_served() {
            $crate::scenarios::a_flooding_device_that_never_reads_is_paced_and_others_are_served::<
                $scheduler,
            >();
        }

        #[test]
        fn forty_devices_at_once_lose_nothing() {
            $crate::scenarios::forty_devices_at_once_lose_nothing::<$scheduler>();
        }

        #[test]
        fn three_devices_share_one_amqp_connection_and_a_wrong_key_fails_alone() {
            $crate::scenarios::three_devices_share_one_connection_and_a_wrong_key_fails_alone::<
                $scheduler,
            >();
        }

        #[test]
        fn multiplexing_over_mqtt_is_refused_naming_its_protocol() {
            $crate::scenarios::an_mqtt_transport_is_refused_naming_its_protocol::<$scheduler>();
        }
    };
    (@transport $scheduler:ty, $module:ident, $transport:ident) => {
        mod $module {
            use $crate::scenarios::Transport;

            #[test]
            fn ten_acknowledged_messages_are_stored_in_order_with_their_properties() {
                $crate::scenarios::ten_messages_over::<$scheduler>(Transport::$transport);
            }

            #[test]
            fn c2d_message_with_properties_reaches_the_device_and_complete_settles_it() {
                $crate::scenarios::c2d_over::<$scheduler>(Transport::$transport);
            }

            #[test]
            fn reject_and_abandon_reach_the_hub_or_are_refused_by_name_over_mqtt() {
                $crate::scenarios::reject_and_abandon_over::<$scheduler>(Transport::$transport);
            }

            #[test]
            fn a_wrong_key_is_refused_for_good() {
                $crate::scenarios::wrong_key_over::<$scheduler>(Transport::$transport);
            }

            #[test]
            fn telemetry_queued_while_the_hub_is_down_is_delivered_after_it_restarts() {
                $crate::scenarios::restart_over::<$scheduler>(Transport::$transport);
            }

            #[test]
            fn an_idle_device_keeps_its_connection_alive() {
                $crate::scenarios::keep_alive_over::<$scheduler>(Transport::$transport);
            }
        }
    };
}
