//! IoT Hub's numeric error codes (DOC-ERR; IoT Hub REST "common error codes").
//!
//! The SDKs hide most of these from their users (an MQTT refusal reaches a Node
//! application as `UnauthorizedError`), so the hub logs every refusal with its code.

use core::fmt;

/// A six-digit IoT Hub error code and its name, e.g. `401003 IotHubUnauthorized`.
/// The first three digits are the HTTP status class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// The number, e.g. 401003.
    pub code: u32,
    /// The name IoT Hub logs beside it.
    pub name: &'static str,
}

impl ErrorCode {
    /// 400001: an HTTP request without `api-version` (spec file §6.1).
    pub const INVALID_PROTOCOL_VERSION: ErrorCode =
        ErrorCode { code: 400001, name: "InvalidProtocolVersion" };
    /// 400003: the operation is not allowed (a topic, QoS or address the device may
    /// not use).
    pub const INVALID_OPERATION: ErrorCode = ErrorCode { code: 400003, name: "InvalidOperation" };
    /// 400004: the request is malformed (a protocol violation).
    pub const ARGUMENT_INVALID: ErrorCode = ErrorCode { code: 400004, name: "ArgumentInvalid" };
    /// 400027: another connection authenticated as the same device.
    pub const CONNECTION_FORCEFULLY_CLOSED_ON_NEW_CONNECTION: ErrorCode =
        ErrorCode { code: 400027, name: "ConnectionForcefullyClosedOnNewConnection" };
    /// 401003: the token cannot be validated (bad signature, expired, wrong audience).
    pub const IOT_HUB_UNAUTHORIZED: ErrorCode =
        ErrorCode { code: 401003, name: "IotHubUnauthorized" };
    /// 403004: the device's C2D queue holds the maximum number of messages.
    pub const DEVICE_MAXIMUM_QUEUE_DEPTH_EXCEEDED: ErrorCode =
        ErrorCode { code: 403004, name: "DeviceMaximumQueueDepthExceeded" };
    /// 403005: a put-token beyond the number of CBS tokens one AMQP connection may
    /// hold (spec file §5.2, §8).
    pub const IOT_HUB_MAX_CBS_TOKEN_EXCEEDED: ErrorCode =
        ErrorCode { code: 403005, name: "IotHubMaxCbsTokenExceeded" };
    /// 404001: no such device in the registry.
    pub const DEVICE_NOT_FOUND: ErrorCode = ErrorCode { code: 404001, name: "DeviceNotFound" };
    /// 404103: a direct method's device is not connected, or not subscribed to
    /// methods (spec file §4.6).
    pub const DEVICE_NOT_ONLINE: ErrorCode = ErrorCode { code: 404103, name: "DeviceNotOnline" };
    /// 504101: the device did not answer a direct method in time.
    pub const GATEWAY_TIMEOUT: ErrorCode = ErrorCode { code: 504101, name: "GatewayTimeout" };
    /// 404104: the connection closed (keep-alive timeout, transport loss).
    pub const DEVICE_CONNECTION_CLOSED_REMOTELY: ErrorCode =
        ErrorCode { code: 404104, name: "DeviceConnectionClosedRemotely" };
    /// 409001: a device with this id is registered already.
    pub const DEVICE_ALREADY_EXISTS: ErrorCode =
        ErrorCode { code: 409001, name: "DeviceAlreadyExists" };
    /// 429001: too many requests at once (spec file §8, DOC-QUOTA).
    pub const THROTTLING: ErrorCode = ErrorCode { code: 429001, name: "ThrottlingException" };
    /// 412001: a conditional update named a version (IoT Hub: an ETag) the
    /// resource no longer has.
    pub const PRECONDITION_FAILED: ErrorCode =
        ErrorCode { code: 412001, name: "PreconditionFailed" };
    /// 412002: the C2D lock expired or is unknown.
    pub const DEVICE_MESSAGE_LOCK_LOST: ErrorCode =
        ErrorCode { code: 412002, name: "DeviceMessageLockLost" };
    /// 413001: the message exceeds the size limit.
    pub const MESSAGE_TOO_LARGE: ErrorCode = ErrorCode { code: 413001, name: "MessageTooLarge" };
    /// 500001: the hub failed on its side (DOC-ERR); a field gateway's answer when
    /// its upstream hub refused a message for a reason the device cannot fix.
    pub const SERVER_ERROR: ErrorCode = ErrorCode { code: 500001, name: "ServerError" };

    /// The HTTP status class: the code's first three digits.
    pub const fn http_status(self) -> u16 {
        (self.code / 1000) as u16
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_class_is_the_first_three_digits() {
        assert_eq!(ErrorCode::IOT_HUB_UNAUTHORIZED.http_status(), 401);
        assert_eq!(ErrorCode::DEVICE_MESSAGE_LOCK_LOST.to_string(), "412002 DeviceMessageLockLost");
    }
}
