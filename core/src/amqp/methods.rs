//! Direct methods over AMQP (spec file §5.7, TV-20): the messages on the method
//! links at `/devices/<d>[/modules/<m>]/methods/devicebound`, in both roles.
//!
//! The request (hub → device, on the device's receiver) carries the request id as
//! its correlation-id, an AMQP `uuid` — the C SDK takes nothing else — and the
//! method's name in the `IoThub-methodname` application property; the response
//! (device → hub, on the device's sender) the same correlation-id and the status
//! in `IoThub-status`, an AMQP int. Both bodies are one data section of JSON.
//!
//! [`MethodRequest::request_id`] is the correlation-id as text: a uuid in GUID form
//! (`6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f`), a string as it is.

use alloc::string::ToString;
use bytes::Bytes;

use super::message::{ApplicationProperties, Body, Message, MessageId, Properties};
use super::types::Value;
use crate::iothub::method::MAX_PAYLOAD;
use crate::iothub::{LockToken, MethodRequest, MethodResponse};
use crate::utf8::Utf8Bytes;

/// The application property naming the method, spelt exactly so (spec file §5.7).
pub const METHOD_NAME: &str = "IoThub-methodname";
/// The application property carrying the device's status, an AMQP int (spec file
/// §5.7).
pub const STATUS: &str = "IoThub-status";

/// Why a message is not a method request or response (spec file §5.7).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a method {kind}: {reason}")]
pub struct MethodMessageError {
    /// `request` or `response`.
    pub kind: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

/// The correlation-id that carries `request_id`: a uuid when it is a GUID (spec
/// file §5.7: the C SDK requires one), a string otherwise.
pub fn correlation_id(request_id: &str) -> MessageId {
    match request_id.parse::<LockToken>().ok().and_then(|l| l.guid()) {
        Some(guid) => MessageId::Uuid(guid),
        None => MessageId::String(Utf8Bytes::from(request_id)),
    }
}

/// Hub side: the request message (TV-20): correlation-id per [`correlation_id`],
/// `IoThub-methodname`, the payload as one data section.
pub fn request_to_message(request: &MethodRequest) -> Message {
    let mut message = Message::new(Body::Data(alloc::vec![request.payload.clone()]));
    message.properties = Some(Properties {
        correlation_id: Some(correlation_id(&request.request_id)),
        ..Properties::default()
    });
    let mut app = ApplicationProperties::new();
    // A string is a simple value: the insert cannot fail.
    let _ = app
        .insert(Utf8Bytes::from_static(METHOD_NAME), Value::String(request.name.as_str().into()));
    message.application_properties = Some(app);
    message
}

/// Device side: reads a request as Node does: the correlation-id a uuid or a
/// string, `IoThub-methodname` a string, the body data (or none) of at most
/// [`MAX_PAYLOAD`] bytes. Also returns the correlation-id, which the response
/// echoes in its type.
///
/// # Errors
///
/// [`MethodMessageError`]: no correlation-id of those types, no method name, a
/// body that is not data or too large.
pub fn request_from_message(
    message: &Message,
) -> Result<(MethodRequest, MessageId), MethodMessageError> {
    let fail = |reason| MethodMessageError { kind: "request", reason };
    let correlation =
        read_correlation_id(message).ok_or_else(|| fail("no uuid or string correlation-id"))?;
    let Some(Value::String(name)) =
        message.application_properties.as_ref().and_then(|a| a.get(METHOD_NAME))
    else {
        return Err(fail("no IoThub-methodname string"));
    };
    let payload =
        payload(message).ok_or_else(|| fail("the body is not data of at most 128 KiB"))?;
    let request =
        MethodRequest { request_id: correlation.to_string(), name: name.as_str().into(), payload };
    Ok((request, correlation))
}

/// Device side: the response message (TV-20): `correlation` (the request's, in its
/// type), `IoThub-status` as an AMQP int, the payload as one data section.
pub fn response_to_message(response: &MethodResponse, correlation: MessageId) -> Message {
    let mut message = Message::new(Body::Data(alloc::vec![response.payload.clone()]));
    message.properties =
        Some(Properties { correlation_id: Some(correlation), ..Properties::default() });
    let mut app = ApplicationProperties::new();
    // An int is a simple value: the insert cannot fail.
    let _ = app.insert(Utf8Bytes::from_static(STATUS), Value::Int(response.status));
    message.application_properties = Some(app);
    message
}

/// Hub side: reads a response as the SDKs send it: the correlation-id a uuid (C,
/// and Node for a GUID) or a string, `IoThub-status` an int, the body data (or
/// none) of at most [`MAX_PAYLOAD`] bytes.
///
/// # Errors
///
/// [`MethodMessageError`]: no correlation-id of those types, no integer status, a body
/// that is not data or too large.
pub fn response_from_message(message: &Message) -> Result<MethodResponse, MethodMessageError> {
    let fail = |reason| MethodMessageError { kind: "response", reason };
    let correlation =
        read_correlation_id(message).ok_or_else(|| fail("no uuid or string correlation-id"))?;
    let status = message
        .application_properties
        .as_ref()
        .and_then(|a| a.get(STATUS))
        .and_then(integer_status)
        .ok_or_else(|| fail("no IoThub-status integer"))?;
    let payload =
        payload(message).ok_or_else(|| fail("the body is not data of at most 128 KiB"))?;
    Ok(MethodResponse { request_id: correlation.to_string(), status, payload })
}

/// A status of any AMQP integer type that fits an `i32`: the SDKs send `int` (spec
/// file §5.7), but a client library's default for a number may be `long`, and the
/// value is what counts.
fn integer_status(value: &Value) -> Option<i32> {
    match *value {
        Value::Int(n) => Some(n),
        Value::Byte(n) => Some(i32::from(n)),
        Value::Short(n) => Some(i32::from(n)),
        Value::Ubyte(n) => Some(i32::from(n)),
        Value::Ushort(n) => Some(i32::from(n)),
        Value::Long(n) => i32::try_from(n).ok(),
        Value::Uint(n) => i32::try_from(n).ok(),
        Value::Ulong(n) => i32::try_from(n).ok(),
        _ => None,
    }
}

fn read_correlation_id(message: &Message) -> Option<MessageId> {
    match message.properties.as_ref()?.correlation_id.as_ref()? {
        id @ (MessageId::Uuid(_) | MessageId::String(_)) => Some(id.clone()),
        MessageId::Ulong(_) | MessageId::Binary(_) => None,
    }
}

fn payload(message: &Message) -> Option<Bytes> {
    message.body.data().filter(|p| p.len() <= MAX_PAYLOAD)
}

#[cfg(test)]
mod tests;
