//! MQTT 3.1.1 with IoT Hub's conventions (spec file §4).
//!
//! - [`packet`] and [`codec`]: the fourteen control packets and their wire format.
//! - [`topic_rules`]: the MQTT rules for Topic Names and Topic Filters (§4.7).
//! - [`topic`], [`property_bag`], [`username`]: IoT Hub's message topic names,
//!   property bags and CONNECT user names; [`iothub_topic`]: its `$iothub/` twin and
//!   method topics; [`subscription`]: the filters it serves.
//! - [`device`]: the device session (CONNECT, keep-alive, telemetry, C2D, twin,
//!   direct methods).
//! - [`hub`]: the hub's side of one connection.

pub mod codec;
pub mod device;
#[cfg(feature = "hub")]
pub mod hub;
pub mod iothub_topic;
pub mod keep_alive;
pub mod packet;
mod packet_ids;
pub mod property_bag;
pub mod subscription;
pub mod topic;
pub mod topic_rules;
pub mod username;

#[cfg(test)]
mod tests;

pub use codec::{DecodeError, EncodeError, Limits};
pub use packet::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketId, Publish, QoS, SubAck, Subscribe,
    SubscribeReturnCode, Unsubscribe, Will,
};
pub use topic_rules::TopicName;
