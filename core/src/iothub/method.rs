//! Direct methods (spec file §4.6, §5.7): the service invokes a named method on a
//! connected device with a JSON payload; the device answers with a status and a
//! payload, matched to the request by its request id.

use alloc::string::String;
use bytes::Bytes;

/// The largest method request or response payload, bytes (spec file §4.6, §8).
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// A method invocation as the device receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodRequest {
    /// The id the response must carry: MQTT's `$rid`, AMQP's correlation-id (a
    /// GUID in text form, which AMQP carries as a `uuid`; spec file §5.7).
    pub request_id: String,
    /// The method's name, e.g. `reboot`.
    pub name: String,
    /// JSON, or empty (spec file §4.6).
    pub payload: Bytes,
}

/// A device's answer to a [`MethodRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodResponse {
    /// The request's id.
    pub request_id: String,
    /// The status the application chose, e.g. 200; the service sees it as is.
    pub status: i32,
    /// JSON, or empty.
    pub payload: Bytes,
}
