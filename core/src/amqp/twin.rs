//! The device twin over AMQP (spec file §5.6, TV-19): the messages on the twin
//! links at `/devices/<d>[/modules/<m>]/twin`, in both roles.
//!
//! - [`TwinRequest`]: device → hub on the device's twin sender: the operation and
//!   resource as message-annotations, a string correlation-id, one data section.
//! - [`TwinReply`]: hub → device on the device's twin receiver: a response
//!   ([`TwinResponse`], the request's correlation-id in its own AMQP type, `status`
//!   an int, `version` a long) or a desired-property notification (no
//!   correlation-id, the patch with its `$version` as the body).

use alloc::string::String;
use bytes::Bytes;

use super::message::{Annotations, Body, Message, MessageId, Properties};
use super::types::{Symbol, Value};
use crate::utf8::Utf8Bytes;

/// The attach property both twin links carry, `twin:<uuid>`, and the method links
/// `methods:<uuid>` (spec file §5.3).
pub const CHANNEL_CORRELATION_ID: &str = "com.microsoft:channel-correlation-id";
/// The attach property naming the service API version (spec file §5.3).
pub const API_VERSION: &str = "com.microsoft:api-version";
/// The api-version the device role sends: Node's (spec file §5.3).
pub const API_VERSION_VALUE: &str = "2021-04-12";

/// `resource` of a reported-properties PATCH (spec file §5.6).
pub const REPORTED: &str = "/properties/reported";
/// `resource` of the desired-updates subscription, PUT to subscribe and DELETE to
/// unsubscribe (spec file §5.6).
pub const DESIRED_NOTIFICATIONS: &str = "/notifications/twin/properties/desired";

const OPERATION: &str = "operation";
const RESOURCE: &str = "resource";
const STATUS: &str = "status";
const VERSION: &str = "version";

/// The body GET, PUT and DELETE carry: a single space, as Node and the C SDK send
/// (spec file §5.6).
const SPACE: &[u8] = b" ";

/// What a twin request asks (spec file §5.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwinOperation {
    /// `GET`: the whole twin.
    Get,
    /// `PATCH` of `/properties/reported` with this JSON patch.
    PatchReported(Bytes),
    /// `PUT` of `/notifications/twin/properties/desired`: send desired-property
    /// notifications.
    SubscribeDesired,
    /// `DELETE` of the same resource: stop them.
    UnsubscribeDesired,
}

/// A twin request (device → hub, TV-19).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinRequest {
    /// `properties.correlation-id`: a string from the SDKs; the response echoes it
    /// in its own type.
    pub correlation_id: MessageId,
    /// The operation and its resource.
    pub operation: TwinOperation,
}

/// Why a message is not a twin request the hub can serve (spec file §5.6). The hub
/// answers status 400 when it has a correlation-id to answer to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a twin request: {reason}")]
pub struct TwinRequestError {
    /// The request's correlation-id, if it had one.
    pub correlation_id: Option<MessageId>,
    /// What is wrong.
    pub reason: String,
}

impl TwinRequest {
    /// The message as Node writes it (TV-19): annotations `operation` and (but for
    /// GET) `resource` as symbol keys with string values, the correlation-id, and a
    /// data section: the patch, or `" "`.
    pub fn to_message(&self) -> Message {
        let (operation, resource, body) = match &self.operation {
            TwinOperation::Get => ("GET", None, Bytes::from_static(SPACE)),
            TwinOperation::PatchReported(patch) => ("PATCH", Some(REPORTED), patch.clone()),
            TwinOperation::SubscribeDesired => {
                ("PUT", Some(DESIRED_NOTIFICATIONS), Bytes::from_static(SPACE))
            }
            TwinOperation::UnsubscribeDesired => {
                ("DELETE", Some(DESIRED_NOTIFICATIONS), Bytes::from_static(SPACE))
            }
        };
        let mut annotations = Annotations::new();
        annotations.insert(Symbol::from_static(OPERATION), string(operation));
        if let Some(resource) = resource {
            annotations.insert(Symbol::from_static(RESOURCE), string(resource));
        }
        let mut message = Message::new(Body::Data(alloc::vec![body]));
        message.message_annotations = Some(annotations);
        message.properties = Some(Properties {
            correlation_id: Some(self.correlation_id.clone()),
            ..Properties::default()
        });
        message
    }

    /// Hub side: reads a request as Node and the C SDK send it (spec file §5.6). The
    /// operation matches case-insensitively, the resource exactly; a request's body
    /// is its data sections joined (a PATCH's patch; ignored otherwise).
    ///
    /// # Errors
    ///
    /// [`TwinRequestError`]: no correlation-id; no `operation` string; an operation
    /// other than GET, PATCH, PUT, DELETE; a PATCH whose resource is not
    /// [`REPORTED`]; a PUT or DELETE whose resource is not
    /// [`DESIRED_NOTIFICATIONS`]; a PATCH whose body is not data sections.
    pub fn from_message(message: &Message) -> Result<TwinRequest, TwinRequestError> {
        let correlation_id = message.properties.as_ref().and_then(|p| p.correlation_id.clone());
        let fail = |reason: &str| TwinRequestError {
            correlation_id: correlation_id.clone(),
            reason: String::from(reason),
        };
        let annotation = |key: &str| match message.message_annotations.as_ref()?.get(key)? {
            Value::String(s) => Some(s.as_str()),
            Value::Symbol(s) => Some(s.as_str()),
            _ => None,
        };
        let operation = annotation(OPERATION).ok_or_else(|| fail("no operation annotation"))?;
        let resource = annotation(RESOURCE);
        let operation = if operation.eq_ignore_ascii_case("GET") {
            TwinOperation::Get
        } else if operation.eq_ignore_ascii_case("PATCH") {
            if resource != Some(REPORTED) {
                return Err(fail("PATCH of a resource other than /properties/reported"));
            }
            let patch = message.body.data().ok_or_else(|| fail("a PATCH body is not data"))?;
            TwinOperation::PatchReported(patch)
        } else if operation.eq_ignore_ascii_case("PUT") || operation.eq_ignore_ascii_case("DELETE")
        {
            if resource != Some(DESIRED_NOTIFICATIONS) {
                return Err(fail(
                    "PUT or DELETE of a resource other than \
                     /notifications/twin/properties/desired",
                ));
            }
            if operation.eq_ignore_ascii_case("PUT") {
                TwinOperation::SubscribeDesired
            } else {
                TwinOperation::UnsubscribeDesired
            }
        } else {
            return Err(fail("operation is not GET, PATCH, PUT or DELETE"));
        };
        match correlation_id {
            Some(correlation_id) => Ok(TwinRequest { correlation_id, operation }),
            None => Err(fail("no correlation-id")),
        }
    }
}

/// The hub's answer to a [`TwinRequest`] (spec file §5.6, TV-19).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinResponse {
    /// The request's correlation-id, in its AMQP type.
    pub correlation_id: MessageId,
    /// `status`: 200 for GET, 204 for PATCH, 200 for PUT and DELETE, or the error's
    /// HTTP status.
    pub status: i32,
    /// `version`: the reported section's version after a PATCH.
    pub version: Option<i64>,
    /// GET: the twin JSON; an error: a JSON object saying why; else empty.
    pub body: Bytes,
}

/// What arrives on the device's twin receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TwinReply {
    /// The answer to a request.
    Response(TwinResponse),
    /// A desired-property notification: no correlation-id, the body the patch with
    /// its `$version` (spec file §5.6: the SDKs tell the two apart by that alone).
    Desired(Bytes),
}

/// Why a message on the twin receiver is neither response nor notification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a twin response: {0}")]
pub struct TwinReplyError(pub &'static str);

impl TwinReply {
    /// The message (TV-19): a response has its correlation-id and annotations
    /// `status` (AMQP int) and `version` (AMQP long), a notification neither; the
    /// body is one data section, or none when empty.
    pub fn to_message(&self) -> Message {
        let (body, properties, annotations) = match self {
            TwinReply::Response(r) => {
                let mut annotations = Annotations::new();
                annotations.insert(Symbol::from_static(STATUS), Value::Int(r.status));
                if let Some(version) = r.version {
                    annotations.insert(Symbol::from_static(VERSION), Value::Long(version));
                }
                let properties = Properties {
                    correlation_id: Some(r.correlation_id.clone()),
                    ..Default::default()
                };
                (&r.body, Some(properties), Some(annotations))
            }
            TwinReply::Desired(body) => (body, None, None),
        };
        let body =
            if body.is_empty() { Body::Empty } else { Body::Data(alloc::vec![body.clone()]) };
        let mut message = Message::new(body);
        message.properties = properties;
        message.message_annotations = annotations;
        message
    }

    /// Device side: reads a message from the twin receiver as the C SDK does: a
    /// correlation-id makes it a response, whose `status` must be an int and
    /// `version`, when present, a long.
    ///
    /// # Errors
    ///
    /// [`TwinReplyError`]: a response without an int `status`, a `version` of
    /// another type, a body that is not data sections.
    pub fn from_message(message: &Message) -> Result<TwinReply, TwinReplyError> {
        let body = message.body.data().ok_or(TwinReplyError("the body is not data"))?;
        let Some(correlation_id) =
            message.properties.as_ref().and_then(|p| p.correlation_id.clone())
        else {
            return Ok(TwinReply::Desired(body));
        };
        let annotations = message.message_annotations.as_ref();
        let Some(Value::Int(status)) = annotations.and_then(|a| a.get(STATUS)) else {
            return Err(TwinReplyError("status is not an int"));
        };
        let version = match annotations.and_then(|a| a.get(VERSION)) {
            None | Some(Value::Null) => None,
            Some(Value::Long(v)) => Some(*v),
            Some(_) => return Err(TwinReplyError("version is not a long")),
        };
        Ok(TwinReply::Response(TwinResponse { correlation_id, status: *status, version, body }))
    }
}

fn string(s: &'static str) -> Value {
    Value::String(Utf8Bytes::from_static(s))
}

#[cfg(test)]
mod tests;
