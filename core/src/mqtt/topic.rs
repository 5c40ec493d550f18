//! IoT Hub topic names and filters (spec file §4.3, §4.4). STUB: signatures only.

use alloc::string::String;

use crate::iothub::{Identity, Message};

/// A topic IoT Hub knows, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `devices/{d}[/modules/{m}]/messages/events/{bag}`.
    Telemetry {
        /// Identity in the topic (percent-decoded).
        identity: Identity,
        /// The property bag, still encoded; may be empty.
        bag: &'a str,
    },
    /// `devices/{d}/messages/devicebound/{bag}`.
    C2d {
        /// Device id in the topic (percent-decoded).
        device_id: String,
        /// The property bag, still encoded; may be empty.
        bag: &'a str,
    },
}

/// Parses a topic name; `None` when IoT Hub does not know it.
pub fn parse(_topic: &str) -> Option<Topic<'_>> {
    None
}

/// The telemetry topic for `message` from `identity`.
pub fn telemetry(_identity: &Identity, _message: &Message) -> String {
    String::new()
}

/// The device-bound topic the hub publishes `message` on.
pub fn c2d(_device_id: &str, _message: &Message) -> String {
    String::new()
}

/// The filter a device subscribes to for C2D messages.
pub fn c2d_filter(_device_id: &str) -> String {
    String::new()
}

/// Whether `filter` is `device_id`'s C2D subscription in either form SDKs send.
pub fn is_c2d_filter(_filter: &str, _device_id: &str) -> bool {
    false
}
