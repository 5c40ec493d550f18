//! The hub's service side as JSON lines: what `hubwire hub` prints on stdout and
//! reads on stdin. One object per line, its kind in `"event"`; times are
//! milliseconds since the Unix epoch.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hubwire_core::hub::{
    D2cRecord, FeedbackRecord, HubError, HubEvent, MethodOutcome, Outcome, Settled,
};
use hubwire_core::iothub::{Ack, ErrorCode, Identity, Message, Properties};
use hubwire_core::time::Duration;
use hubwire_core::{ConnectionId, Timestamp};
use serde::ser::{Serialize, Serializer};
use serde::{Deserialize, Serialize as DeriveSerialize};

use crate::out::{self, StdoutClosed};

/// The streams of `hubwire hub`, for its `--help`: what [`ServiceRequest`] reads and
/// what [`Line`] writes.
pub(crate) const STREAMS_HELP: &str = "\
stdin: one C2D message per line, a JSON object; unknown fields are refused:
  deviceId          the device to send it to (required)
  body              the body as text (default empty)
  bodyEncoding      \"base64\" when body is base64 of binary data
  messageId, correlationId, contentType, contentEncoding
                    the message's system properties
  ack               feedback wanted: none, positive, negative or full
  expiryMs          time to live, milliseconds from now (default: the queue's)
  properties        application properties: an object of strings (null: name only)
Each line is answered on stdout by a c2dQueued or an error line.
A line with \"op\" asks something else (a C2D message is op sendC2d):
  {\"op\":\"updateDesired\",\"deviceId\":..,\"patch\":{..}}
                    patches the device's desired properties (null removes a
                    member); answered by desiredUpdated (deviceId, version);
                    \"ifVersion\":n updates only while they are at version n
                    (error 412001 PreconditionFailed otherwise)
  {\"op\":\"getTwin\",\"deviceId\":..}
                    answered by twin (deviceId, twin: desired and reported)
  {\"op\":\"invokeMethod\",\"deviceId\":..,\"methodName\":..,\"payload\":any JSON,
   \"timeoutMs\":30000}
                    answered by methodInvoked (deviceId, invocation), then
                    methodResult once the device answers or the time is up

stdout: one JSON object per line, its kind in \"event\"; times are milliseconds
since the Unix epoch; code and error are IoT Hub's (e.g. 401003 IotHubUnauthorized):
  listening         the addresses devices connect to: mqtt (MQTT over TLS), https
                    (the REST API, and MQTT and AMQP over WebSocket), mqttTcp (plain
                    MQTT), amqp (AMQP over TLS), amqpTcp (plain AMQP); null when off
                    or not bound;
                    ca: the CA file devices trust (null with --cert)
  device            deviceId, connectionString: a registered device
  telemetry         deviceId, moduleId (modules only), sequenceNumber, enqueuedTime,
                    messageId, correlationId, contentType, contentEncoding, properties,
                    body, bodyEncoding (\"base64\" when the body is not UTF-8)
  connected         connection, deviceId, moduleId (modules only), sessionPresent
  disconnected      connection, deviceId, moduleId (modules only), code, error, reason
  refused           connection, deviceId (null if unknown), code, error, reason;
                    also in words on stderr
  c2dQueued         deviceId, sequenceNumber: a stdin message was queued
  transportError    peer, listener, error: a connection's TLS or WebSocket layer
                    failed (plain TCP on a TLS port, a refused upgrade, a broken
                    frame) and was answered as its standard says; also on stderr
  c2dCompleted, c2dRejected, c2dAbandoned, c2dDeadLettered, c2dPurged
                    a C2D message was settled or left its queue: deviceId, messageId,
                    sequenceNumber; deliveryCount when abandoned; reason (rejected,
                    expired or deliveryCountExceeded) when rejected or dead-lettered;
                    feedback when its ack asked for one
  reportedUpdated   deviceId, version, patch: a device patched its reported properties
  methodResult      invocation, deviceId, methodName, status, payload (JSON, null when
                    empty); code and error when the hub answered for the device
                    (504101 GatewayTimeout; 404103 DeviceNotOnline when its
                    connection ended first). A device offline or not subscribed
                    when invoked gets an error line 404103 instead of methodInvoked;
                    timeoutMs must be 5000 to 300000; 64 invocations may wait
                    for one device (429001 beyond)
  error             line, code, error, message: a stdin line was refused

stderr: the registered devices and every refusal, in words. Lines nobody reads are
dropped rather than hold up stdout, and counted: \"(N stderr lines dropped)\".
The hub serves until killed, or until its stdout is closed.";

/// One stdout line.
#[derive(Debug, DeriveSerialize)]
#[serde(tag = "event", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub(crate) enum Line<'a> {
    /// The hub is ready on this address.
    Listening {
        /// MQTT over TLS.
        mqtt: Option<String>,
        /// IoT Hub's REST API, and MQTT and AMQP over WebSocket, over TLS.
        https: Option<String>,
        /// MQTT over plain TCP.
        mqtt_tcp: Option<String>,
        /// AMQP over TLS.
        amqp: Option<String>,
        /// AMQP over plain TCP.
        amqp_tcp: Option<String>,
        /// The local CA devices trust; none when the hub serves a given certificate.
        ca: Option<String>,
    },
    /// A registered device and how to connect it.
    Device {
        device_id: &'a str,
        connection_string: String,
    },
    /// A stored D2C message.
    Telemetry {
        device_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        module_id: Option<&'a str>,
        sequence_number: u64,
        enqueued_time: u64,
        #[serde(flatten)]
        message: MessageFields<'a>,
    },
    Connected {
        connection: u64,
        device_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        module_id: Option<&'a str>,
        session_present: bool,
    },
    Disconnected {
        connection: u64,
        device_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        module_id: Option<&'a str>,
        code: u32,
        error: &'static str,
        reason: &'a str,
    },
    Refused {
        connection: u64,
        device_id: Option<&'a str>,
        code: u32,
        error: &'static str,
        reason: &'a str,
    },
    C2dCompleted(Settlement<'a>),
    C2dRejected(Settlement<'a>),
    C2dAbandoned(Settlement<'a>),
    C2dDeadLettered(Settlement<'a>),
    C2dPurged(Settlement<'a>),
    /// A C2D message from stdin was enqueued.
    C2dQueued {
        device_id: &'a str,
        sequence_number: u64,
    },
    /// A connection's transport failed (not TLS, a refused upgrade, a broken frame).
    TransportError {
        peer: Option<String>,
        listener: &'static str,
        error: &'a str,
    },
    /// `updateDesired` from stdin: the desired properties' new version.
    DesiredUpdated {
        device_id: &'a str,
        version: u64,
    },
    /// `getTwin` from stdin: the device's twin.
    Twin {
        device_id: &'a str,
        twin: serde_json::Value,
    },
    /// A device patched its reported properties.
    ReportedUpdated {
        device_id: &'a str,
        version: u64,
        patch: serde_json::Value,
    },
    /// `invokeMethod` from stdin went to the device; `methodResult` with the same
    /// invocation reports its end.
    MethodInvoked {
        device_id: &'a str,
        invocation: u64,
    },
    /// A direct method ended: the device's status and payload, or the hub's 504
    /// (timed out) or 404 (disconnected) with IoT Hub's code.
    MethodResult {
        invocation: u64,
        device_id: &'a str,
        method_name: &'a str,
        status: i32,
        payload: serde_json::Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'static str>,
    },
    /// A stdin line was refused.
    Error {
        line: usize,
        code: u32,
        error: &'static str,
        message: String,
    },
}

/// A message's fields as the telemetry line carries them.
#[derive(Debug, DeriveSerialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageFields<'a> {
    message_id: Option<&'a str>,
    correlation_id: Option<&'a str>,
    content_type: Option<&'a str>,
    content_encoding: Option<&'a str>,
    properties: PropertyMap<'a>,
    body: String,
    /// `"base64"` when the body is not UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_encoding: Option<&'static str>,
}

impl<'a> MessageFields<'a> {
    pub(crate) fn of(message: &'a Message) -> Self {
        let (body, body_encoding) = match std::str::from_utf8(&message.body) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (BASE64.encode(&message.body), Some("base64")),
        };
        MessageFields {
            message_id: message.message_id.as_deref(),
            correlation_id: message.correlation_id.as_deref(),
            content_type: message.content_type.as_deref(),
            content_encoding: message.content_encoding.as_deref(),
            properties: PropertyMap(&message.properties),
            body,
            body_encoding,
        }
    }
}

/// Application properties as a JSON object in their order; a bare name (no value)
/// is `null`.
#[derive(Debug)]
pub(crate) struct PropertyMap<'a>(pub(crate) &'a Properties);

impl Serialize for PropertyMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// A C2D message that left its queue, or was abandoned.
#[derive(Debug, DeriveSerialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Settlement<'a> {
    device_id: &'a str,
    message_id: Option<&'a str>,
    sequence_number: u64,
    /// For an abandon: deliveries so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_count: Option<u32>,
    /// For a dead-lettering: `rejected`, `expired` or `deliveryCountExceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<Feedback<'a>>,
}

/// A feedback record, with IoT Hub's field names (spec file §7).
#[derive(Debug, DeriveSerialize)]
#[serde(rename_all = "camelCase")]
struct Feedback<'a> {
    original_message_id: Option<&'a str>,
    /// When the outcome happened, milliseconds since the Unix epoch.
    enqueued_time: u64,
    status_code: &'static str,
    description: &'a str,
    device_id: &'a str,
}

impl<'a> Feedback<'a> {
    fn of(record: &'a FeedbackRecord) -> Self {
        Feedback {
            original_message_id: record.original_message_id.as_deref(),
            enqueued_time: record.enqueued_time.as_millis(),
            status_code: record.status.as_str(),
            description: &record.description,
            device_id: &record.device_id,
        }
    }
}

impl<'a> Line<'a> {
    pub(crate) fn telemetry(record: &'a D2cRecord) -> Self {
        Line::Telemetry {
            device_id: &record.identity.device_id,
            module_id: record.identity.module_id.as_deref(),
            sequence_number: record.sequence_number,
            enqueued_time: record.enqueued_time.as_millis(),
            message: MessageFields::of(&record.message),
        }
    }

    /// The line for a hub event; `None` for `StoreTelemetry`, which the runtime
    /// turns into a stored record.
    pub(crate) fn hub_event(event: &'a HubEvent) -> Option<Self> {
        Some(match event {
            HubEvent::Connected { connection, identity, session_present } => Line::Connected {
                connection: connection.0,
                device_id: &identity.device_id,
                module_id: identity.module_id.as_deref(),
                session_present: *session_present,
            },
            HubEvent::Disconnected { connection, identity, code, reason } => Line::Disconnected {
                connection: connection.0,
                device_id: &identity.device_id,
                module_id: identity.module_id.as_deref(),
                code: code.code,
                error: code.name,
                reason,
            },
            HubEvent::Refused { connection, identity, code, reason } => Line::Refused {
                connection: connection.0,
                device_id: identity.as_ref().map(|i| i.device_id.as_str()),
                code: code.code,
                error: code.name,
                reason,
            },
            HubEvent::C2dSettled(settled) => Line::settled(settled),
            HubEvent::ReportedUpdated { device_id, version, patch } => Line::ReportedUpdated {
                device_id,
                version: *version,
                patch: json_value(&patch.to_json()),
            },
            HubEvent::MethodResult { invocation, device_id, name, outcome } => {
                let payload = match outcome {
                    MethodOutcome::Responded { payload, .. } => json_value(payload),
                    _ => serde_json::Value::Null,
                };
                Line::MethodResult {
                    invocation: invocation.0,
                    device_id,
                    method_name: name,
                    status: outcome.status(),
                    payload,
                    code: outcome.error().map(|c| c.code),
                    error: outcome.error().map(|c| c.name),
                }
            }
            _ => return None,
        })
    }

    fn settled(settled: &'a Settled) -> Self {
        let mut line = Settlement {
            device_id: &settled.device_id,
            message_id: settled.message_id.as_deref(),
            sequence_number: settled.sequence_number,
            delivery_count: None,
            reason: None,
            feedback: settled.feedback.as_ref().map(Feedback::of),
        };
        match settled.outcome {
            Outcome::Completed => Line::C2dCompleted(line),
            Outcome::Rejected => {
                line.reason = Some("rejected");
                Line::C2dRejected(line)
            }
            Outcome::Abandoned { delivery_count } => {
                line.delivery_count = Some(delivery_count);
                Line::C2dAbandoned(line)
            }
            Outcome::Expired => {
                line.reason = Some("expired");
                Line::C2dDeadLettered(line)
            }
            Outcome::DeliveryCountExceeded => {
                line.reason = Some("deliveryCountExceeded");
                Line::C2dDeadLettered(line)
            }
            Outcome::Purged => Line::C2dPurged(line),
        }
    }

    pub(crate) fn error(line: usize, code: ErrorCode, message: String) -> Self {
        Line::Error { line, code: code.code, error: code.name, message }
    }

    /// Writes the line to stdout.
    ///
    /// Errors: [`StdoutClosed`] when stdout cannot be written.
    pub(crate) fn print(&self) -> Result<(), StdoutClosed> {
        match serde_json::to_string(self) {
            Ok(text) => out::print(text),
            // Only a failing `Serialize` impl errs, and ours are infallible.
            Err(_) => Ok(()),
        }
    }
}

/// The words for a refusal on stderr, since device SDKs hide the reason.
pub(crate) fn refusal_words(
    connection: ConnectionId,
    identity: Option<&Identity>,
    code: ErrorCode,
    reason: &str,
) -> String {
    let who = identity.map_or_else(|| String::from("an unidentified client"), |i| format!("{i}"));
    format!("refused connection {connection} from {who}: {code}: {reason}")
}

/// A C2D message to enqueue: one stdin line.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct C2dRequest {
    pub(crate) device_id: String,
    #[serde(default)]
    body: String,
    /// `"base64"` when `body` is base64 of binary data.
    body_encoding: Option<String>,
    message_id: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    /// `none`, `positive`, `negative` or `full` (spec file §7).
    ack: Option<String>,
    /// Time to live in milliseconds from now; the queue's default otherwise.
    expiry_ms: Option<u64>,
    #[serde(default)]
    properties: BTreeMap<String, Option<String>>,
}

/// Why a stdin line is not a C2D message: IoT Hub's code and what to fix.
pub(crate) type RequestError = (ErrorCode, String);

impl C2dRequest {
    /// The message, its expiry counted from `now`.
    pub(crate) fn into_message(self, now: Timestamp) -> Result<Message, RequestError> {
        let invalid = |what: String| (ErrorCode::ARGUMENT_INVALID, what);
        let body = match self.body_encoding.as_deref() {
            None => self.body.into_bytes(),
            Some("base64") => BASE64
                .decode(&self.body)
                .map_err(|e| invalid(format!("body is not base64: {e}")))?,
            Some(other) => return Err(invalid(format!("unknown bodyEncoding {other:?}"))),
        };
        let ack = match self.ack.as_deref() {
            None => None,
            Some(a) => Some(Ack::parse(a).ok_or_else(|| {
                invalid(format!("ack must be none, positive, negative or full, not {a:?}"))
            })?),
        };
        let mut message = Message::new(body);
        message.message_id = self.message_id;
        message.correlation_id = self.correlation_id;
        message.content_type = self.content_type;
        message.content_encoding = self.content_encoding;
        message.ack = ack;
        message.expiry = self.expiry_ms.map(|ms| now + Duration::from_millis(ms));
        for (name, value) in self.properties {
            message.properties.insert(name, value);
        }
        Ok(message)
    }
}

/// A payload as JSON: null when empty, the text as a string when it is not JSON
/// (a device may answer a method with anything).
pub(crate) fn json_value(bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// One stdin line: what the service side asks of the hub, by its `"op"` (a C2D
/// message when it names none).
#[derive(Debug)]
pub(crate) enum ServiceRequest {
    SendC2d(C2dRequest),
    UpdateDesired(UpdateDesired),
    GetTwin(GetTwin),
    InvokeMethod(InvokeMethod),
}

/// `{"op":"updateDesired","deviceId":…,"patch":{…},"ifVersion":n}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateDesired {
    pub(crate) device_id: String,
    pub(crate) patch: serde_json::Map<String, serde_json::Value>,
    /// Only while the desired properties are at this version (412001 otherwise).
    pub(crate) if_version: Option<u64>,
}

/// `{"op":"getTwin","deviceId":…}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GetTwin {
    pub(crate) device_id: String,
}

/// `{"op":"invokeMethod","deviceId":…,"methodName":…,"payload":…,"timeoutMs":…}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct InvokeMethod {
    pub(crate) device_id: String,
    pub(crate) method_name: String,
    /// Any JSON; absent or null sends an empty payload.
    #[serde(default)]
    pub(crate) payload: serde_json::Value,
    /// How long the device has to answer, milliseconds: IoT Hub's default
    /// response timeout, 30 s.
    #[serde(default = "default_method_timeout_ms")]
    pub(crate) timeout_ms: u64,
}

fn default_method_timeout_ms() -> u64 {
    30_000
}

impl ServiceRequest {
    /// Parses one stdin line.
    pub(crate) fn parse(line: &str) -> Result<Self, RequestError> {
        let invalid = |e: &dyn std::fmt::Display| (ErrorCode::ARGUMENT_INVALID, e.to_string());
        let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| invalid(&e))?;
        let op = match value.as_object_mut().and_then(|o| o.remove("op")) {
            None => String::from("sendC2d"),
            Some(serde_json::Value::String(op)) => op,
            Some(_) => return Err(invalid(&"\"op\" must be a string")),
        };
        let request = match op.as_str() {
            "sendC2d" => {
                ServiceRequest::SendC2d(serde_json::from_value(value).map_err(|e| invalid(&e))?)
            }
            "updateDesired" => ServiceRequest::UpdateDesired(
                serde_json::from_value(value).map_err(|e| invalid(&e))?,
            ),
            "getTwin" => {
                ServiceRequest::GetTwin(serde_json::from_value(value).map_err(|e| invalid(&e))?)
            }
            "invokeMethod" => ServiceRequest::InvokeMethod(
                serde_json::from_value(value).map_err(|e| invalid(&e))?,
            ),
            other => {
                return Err(invalid(&format!(
                    "unknown op {other:?}: sendC2d, updateDesired, getTwin or invokeMethod"
                )));
            }
        };
        Ok(request)
    }
}

/// The error line for a refused `send_c2d`.
pub(crate) fn hub_error(line: usize, e: &HubError) -> Line<'static> {
    Line::error(line, e.code(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c2d_request(line: &str) -> Result<C2dRequest, RequestError> {
        match ServiceRequest::parse(line)? {
            ServiceRequest::SendC2d(request) => Ok(request),
            other => panic!("{line} read as {other:?}"),
        }
    }

    #[test]
    fn stdin_ops_read_twin_and_method_requests_and_refuse_the_rest() {
        let update =
            ServiceRequest::parse(r#"{"op":"updateDesired","deviceId":"d","patch":{"a":1}}"#);
        assert!(matches!(update, Ok(ServiceRequest::UpdateDesired(u)) if u.device_id == "d"));
        let get = ServiceRequest::parse(r#"{"op":"getTwin","deviceId":"d"}"#);
        assert!(matches!(get, Ok(ServiceRequest::GetTwin(_))));
        let invoke =
            ServiceRequest::parse(r#"{"op":"invokeMethod","deviceId":"d","methodName":"reboot"}"#);
        let Ok(ServiceRequest::InvokeMethod(invoke)) = invoke else { panic!("{invoke:?}") };
        assert_eq!((invoke.timeout_ms, invoke.payload), (30_000, serde_json::Value::Null));
        assert!(matches!(
            ServiceRequest::parse(r#"{"op":"sendC2d","deviceId":"d"}"#),
            Ok(ServiceRequest::SendC2d(_))
        ));
        for bad in [
            r#"{"op":"reboot","deviceId":"d"}"#,
            r#"{"op":1,"deviceId":"d"}"#,
            r#"{"op":"getTwin","deviceId":"d","extra":1}"#,
            r#"{"op":"updateDesired","deviceId":"d","patch":[1]}"#,
            r#"{"op":"invokeMethod","deviceId":"d"}"#,
        ] {
            let Err((code, _)) = ServiceRequest::parse(bad) else { panic!("{bad} accepted") };
            assert_eq!(code, ErrorCode::ARGUMENT_INVALID);
        }
    }

    #[test]
    fn method_results_carry_the_device_payload_or_the_hubs_code() {
        use hubwire_core::hub::MethodInvocation;
        let responded = HubEvent::MethodResult {
            invocation: MethodInvocation(3),
            device_id: "d".into(),
            name: "reboot".into(),
            outcome: MethodOutcome::Responded {
                status: 200,
                payload: br#"{"ok":true}"#[..].into(),
            },
        };
        let v = json(&Line::hub_event(&responded).unwrap());
        assert_eq!(v["event"], "methodResult");
        assert_eq!((v["invocation"].as_u64(), v["status"].as_i64()), (Some(3), Some(200)));
        assert_eq!(v["payload"]["ok"], true);
        assert!(v.get("code").is_none());
        let timed_out = HubEvent::MethodResult {
            invocation: MethodInvocation(4),
            device_id: "d".into(),
            name: "reboot".into(),
            outcome: MethodOutcome::TimedOut,
        };
        let v = json(&Line::hub_event(&timed_out).unwrap());
        assert_eq!((v["status"].as_i64(), v["code"].as_u64()), (Some(504), Some(504101)));
        assert_eq!(v["payload"], serde_json::Value::Null);
        assert_eq!(json_value(b"not json"), serde_json::Value::String("not json".into()));
    }

    fn json(line: &Line<'_>) -> serde_json::Value {
        match serde_json::to_value(line) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn telemetry_line_carries_the_message_and_base64_for_binary_bodies() {
        let mut message = Message::new(vec![0xff, 0x00]);
        message.message_id = Some("m1".into());
        message.properties.set("k", "v");
        message.properties.insert("bare", None);
        let record = D2cRecord {
            identity: Identity::device("dev1"),
            sequence_number: 7,
            enqueued_time: Timestamp::from_millis(1_700_000_000_123),
            message,
        };
        let v = json(&Line::telemetry(&record));
        assert_eq!(v["event"], "telemetry");
        assert_eq!(v["deviceId"], "dev1");
        assert_eq!(v["sequenceNumber"], 7);
        assert_eq!(v["enqueuedTime"], 1_700_000_000_123u64);
        assert_eq!(v["messageId"], "m1");
        assert_eq!(v["correlationId"], serde_json::Value::Null);
        assert_eq!(v["properties"], serde_json::json!({"k": "v", "bare": null}));
        assert_eq!(v["body"], "/wA=");
        assert_eq!(v["bodyEncoding"], "base64");
        assert!(v.get("moduleId").is_none());
    }

    #[test]
    fn text_body_is_written_as_is() {
        let record = D2cRecord {
            identity: Identity::device("d"),
            sequence_number: 1,
            enqueued_time: Timestamp::EPOCH,
            message: Message::new(&b"hello"[..]),
        };
        let v = json(&Line::telemetry(&record));
        assert_eq!(v["body"], "hello");
        assert!(v.get("bodyEncoding").is_none());
    }

    #[test]
    fn refusal_carries_iot_hub_code_and_name() {
        let event = HubEvent::Refused {
            connection: ConnectionId(3),
            identity: Some(Identity::device("dev1")),
            code: ErrorCode::IOT_HUB_UNAUTHORIZED,
            reason: "bad signature".into(),
        };
        let Some(line) = Line::hub_event(&event) else { panic!("no line") };
        let v = json(&line);
        assert_eq!(
            v,
            serde_json::json!({"event": "refused", "connection": 3, "deviceId": "dev1",
                "code": 401003, "error": "IotHubUnauthorized", "reason": "bad signature"})
        );
    }

    #[test]
    fn settlements_are_named_after_their_outcome() {
        let settled = |outcome| Settled {
            device_id: "d".into(),
            message_id: Some("c1".into()),
            sequence_number: 4,
            outcome,
            feedback: None,
        };
        let name = |outcome| {
            let s = settled(outcome);
            json(&Line::settled(&s))["event"].as_str().map(String::from)
        };
        assert_eq!(name(Outcome::Completed).as_deref(), Some("c2dCompleted"));
        assert_eq!(name(Outcome::Rejected).as_deref(), Some("c2dRejected"));
        assert_eq!(name(Outcome::Abandoned { delivery_count: 2 }).as_deref(), Some("c2dAbandoned"));
        assert_eq!(name(Outcome::Expired).as_deref(), Some("c2dDeadLettered"));
        assert_eq!(name(Outcome::DeliveryCountExceeded).as_deref(), Some("c2dDeadLettered"));
        let s = settled(Outcome::Abandoned { delivery_count: 2 });
        assert_eq!(json(&Line::settled(&s))["deliveryCount"], 2);
    }

    #[test]
    fn c2d_request_becomes_a_message() {
        let line = r#"{"deviceId":"dev1","body":"hello","messageId":"m1","correlationId":"c",
            "ack":"full","expiryMs":1000,"properties":{"k":"v"}}"#;
        let request = match c2d_request(line) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(request.device_id, "dev1");
        let now = Timestamp::from_millis(5000);
        let Ok(m) = request.into_message(now) else { panic!("refused") };
        assert_eq!(&m.body[..], b"hello");
        assert_eq!(m.message_id.as_deref(), Some("m1"));
        assert_eq!(m.correlation_id.as_deref(), Some("c"));
        assert_eq!(m.ack, Some(Ack::Full));
        assert_eq!(m.expiry, Some(Timestamp::from_millis(6000)));
        assert_eq!(m.properties.get("k"), Some(Some("v")));
    }

    #[test]
    fn bad_c2d_requests_are_argument_invalid() {
        for line in
            ["not json", r#"{"body":"no device"}"#, r#"{"deviceId":"d","messageID":"typo"}"#]
        {
            let Err((code, _)) = c2d_request(line) else { panic!("{line} accepted") };
            assert_eq!(code, ErrorCode::ARGUMENT_INVALID, "{line}");
        }
        let bad_ack = c2d_request(r#"{"deviceId":"d","ack":"always"}"#);
        let Ok(bad_ack) = bad_ack else { panic!("parse") };
        assert!(bad_ack.into_message(Timestamp::EPOCH).is_err());
    }

    #[test]
    fn hub_help_names_every_stdin_field() {
        // serde lists every field it knows when it meets one it does not.
        let Err((_, e)) = c2d_request(r#"{"deviceId":"d","noSuchField":1}"#) else {
            panic!("accepted")
        };
        let Some((_, expected)) = e.split_once("expected one of") else { panic!("{e}") };
        let fields: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert_eq!(fields.len(), 10, "{e}");
        let Some((stdin, _)) = STREAMS_HELP.split_once("stdout:") else { panic!("no stdout") };
        for field in fields {
            assert!(stdin.contains(field), "{field} missing from the stdin help");
        }
    }

    #[test]
    fn hub_help_names_every_stdout_line_kind() {
        let record = D2cRecord {
            identity: Identity::device("d"),
            sequence_number: 1,
            enqueued_time: Timestamp::EPOCH,
            message: Message::new(&b""[..]),
        };
        let identity = Identity::device("d");
        let code = ErrorCode::IOT_HUB_UNAUTHORIZED;
        let connection = ConnectionId(1);
        let reason = String::from("r");
        let events = [
            HubEvent::Connected { connection, identity: identity.clone(), session_present: false },
            HubEvent::Disconnected { connection, identity, code, reason: reason.clone() },
            HubEvent::Refused { connection, identity: None, code, reason },
        ];
        let outcomes = [
            Outcome::Completed,
            Outcome::Rejected,
            Outcome::Abandoned { delivery_count: 1 },
            Outcome::Expired,
            Outcome::Purged,
        ];
        let settled: Vec<Settled> = outcomes
            .into_iter()
            .map(|outcome| Settled {
                device_id: "d".into(),
                message_id: None,
                sequence_number: 1,
                outcome,
                feedback: None,
            })
            .collect();
        let mut lines = vec![
            Line::Listening {
                mqtt: None,
                https: None,
                mqtt_tcp: None,
                amqp: None,
                amqp_tcp: None,
                ca: None,
            },
            Line::Device { device_id: "d", connection_string: String::new() },
            Line::telemetry(&record),
            Line::C2dQueued { device_id: "d", sequence_number: 1 },
            Line::TransportError { peer: None, listener: "mqtt", error: "" },
            Line::error(1, code, String::new()),
        ];
        lines.extend(events.iter().filter_map(Line::hub_event));
        lines.extend(settled.iter().map(Line::settled));
        let Some((_, stdout)) = STREAMS_HELP.split_once("stdout:") else { panic!("no stdout") };
        // The kinds head the entries: lines indented by two spaces, up to the gap.
        let named: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("  ").filter(|l| !l.starts_with(' ')))
            .filter_map(|l| l.split("  ").next())
            .flat_map(|kinds| kinds.split(", "))
            .collect();
        for line in &lines {
            let kind = json(line)["event"].as_str().map(String::from).unwrap_or_default();
            assert!(named.contains(&kind.as_str()), "{kind:?} missing from {named:?}");
        }
        assert_eq!(lines.len(), 14);
    }
}
