//! IoT Hub's device REST endpoints (spec file §6): which request is which, the
//! paths and queries a device writes, and the error answers a hub gives.
//!
//! | Request | Route |
//! |---|---|
//! | `POST /devices/{id}/messages/events` | [`Route::SendEvent`] (single or batch, §6.2–§6.3) |
//! | `GET /devices/{id}/messages/deviceBound` | [`Route::ReceiveC2d`] (§6.4) |
//! | `DELETE /devices/{id}/messages/deviceBound/{lock}` | [`Route::Settle`], complete (§6.5) |
//! | `DELETE …/{lock}?reject` | [`Route::Settle`], reject |
//! | `POST …/{lock}/abandon` | [`Route::Settle`], abandon |
//!
//! Every request carries `?api-version=`; a module's telemetry goes to
//! `/devices/{id}/modules/{module}/messages/events`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use percent_encoding::utf8_percent_encode;

use crate::iothub::{Disposition, ErrorCode, Identity, UNRESERVED, percent_decode};

/// The api-version hubwire's device sends: the Node SDK's (spec file §6.1). A hub
/// requires one and accepts any value, as the spec file advises.
pub const API_VERSION: &str = "2021-04-12";

/// The response header naming IoT Hub's error, e.g. `iothub-errorcode:
/// DeviceNotFound` (spec file §6.7).
pub const ERROR_CODE_HEADER: &str = "iothub-errorcode";

/// One device REST request, as read from a method and a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Send one telemetry message, or a batch (spec file §6.2, §6.3).
    SendEvent {
        /// Whose telemetry: a device, or a module of it.
        identity: Identity,
    },
    /// Take the next C2D message under a lock, or learn there is none (§6.4).
    ReceiveC2d {
        /// Whose queue.
        device_id: String,
    },
    /// Complete, reject or abandon a received C2D message (§6.5).
    Settle {
        /// Whose queue.
        device_id: String,
        /// The lock token as the path names it (percent-decoded), the ETag without
        /// its quotes; the hub reads it with [`str::parse`] into a
        /// [`LockToken`](crate::iothub::LockToken).
        lock: String,
        /// What the request asks.
        disposition: Disposition,
    },
}

/// Why a request names no route. Each kind has its status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// No device endpoint has this path: 404.
    #[error("no endpoint {0}")]
    NotFound(String),
    /// The path exists but not for this method: 405, with `Allow`.
    #[error("{method} is not allowed here; use {allow}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The methods the path takes, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// The id segment is not a device or module id (spec file §2.1): 400.
    #[error("{0:?} is not a device or module id")]
    InvalidId(String),
    /// No `api-version` in the query: 400 with IoT Hub's InvalidProtocolVersion
    /// (spec file §6.1).
    #[error("the query has no api-version")]
    MissingApiVersion,
}

impl RouteError {
    /// IoT Hub's code for the answer, when it is an IoT Hub error rather than a
    /// plain HTTP one (an unknown path or method).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RouteError::NotFound(_) | RouteError::MethodNotAllowed { .. } => None,
            RouteError::InvalidId(_) => Some(ErrorCode::ARGUMENT_INVALID),
            RouteError::MissingApiVersion => Some(ErrorCode::INVALID_PROTOCOL_VERSION),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NotFound(_) => 404,
            RouteError::MethodNotAllowed { .. } => 405,
            RouteError::InvalidId(_) | RouteError::MissingApiVersion => 400,
        }
    }
}

impl Route {
    /// Reads a request line's method and target (origin form: path, then maybe `?`
    /// and a query). Path segments match without letter case (`deviceBound` and
    /// `devicebound` both occur, spec file §6.1); ids are percent-decoded.
    ///
    /// Errors: see [`RouteError`]; a path that is no endpoint is checked before the
    /// method, and both before the api-version.
    pub fn parse(method: &str, target: &str) -> Result<Route, RouteError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let not_found = || RouteError::NotFound(String::from(path));
        let segments: Vec<&str> =
            path.strip_prefix('/').ok_or_else(not_found)?.split('/').collect();
        let is = |segment: &str, name: &str| segment.eq_ignore_ascii_case(name);
        let id = |segment: &str| {
            Identity::id_in_segment(segment).ok_or_else(|| RouteError::InvalidId(segment.into()))
        };
        // A GUID needs no escapes; any other text is decoded so that it reads back
        // as written, and is refused as a lock token later.
        let lock = |segment: &str| {
            percent_decode(segment).map_or_else(|| String::from(segment), |l| l.into_owned())
        };
        let allowed = |allow: &'static str| {
            if allow.split(", ").any(|m| m == method) {
                Ok(())
            } else {
                Err(RouteError::MethodNotAllowed { method: String::from(method), allow })
            }
        };
        let route = match segments.as_slice() {
            [d, device, m, e] if is(d, "devices") && is(m, "messages") && is(e, "events") => {
                allowed("POST")?;
                Route::SendEvent { identity: Identity::device(id(device)?) }
            }
            [d, device, mo, module, m, e]
                if is(d, "devices")
                    && is(mo, "modules")
                    && is(m, "messages")
                    && is(e, "events") =>
            {
                allowed("POST")?;
                let identity = Identity { device_id: id(device)?, module_id: Some(id(module)?) };
                Route::SendEvent { identity }
            }
            [d, device, m, b] if is(d, "devices") && is(m, "messages") && is(b, "deviceBound") => {
                allowed("GET")?;
                Route::ReceiveC2d { device_id: id(device)? }
            }
            [d, device, m, b, segment]
                if is(d, "devices") && is(m, "messages") && is(b, "deviceBound") =>
            {
                allowed("DELETE")?;
                let disposition = if query_has(query, "reject") {
                    Disposition::Reject
                } else {
                    Disposition::Complete
                };
                Route::Settle { device_id: id(device)?, lock: lock(segment), disposition }
            }
            [d, device, m, b, segment, a]
                if is(d, "devices")
                    && is(m, "messages")
                    && is(b, "deviceBound")
                    && is(a, "abandon") =>
            {
                allowed("POST")?;
                let disposition = Disposition::Abandon;
                Route::Settle { device_id: id(device)?, lock: lock(segment), disposition }
            }
            _ => return Err(not_found()),
        };
        if !query_has(query, "api-version") {
            return Err(RouteError::MissingApiVersion);
        }
        Ok(route)
    }

    /// The request's method.
    pub fn method(&self) -> &'static str {
        match self {
            Route::SendEvent { .. } => "POST",
            Route::ReceiveC2d { .. } => "GET",
            Route::Settle { disposition: Disposition::Abandon, .. } => "POST",
            Route::Settle { .. } => "DELETE",
        }
    }

    /// The device whose resource the request names.
    pub fn device_id(&self) -> &str {
        match self {
            Route::SendEvent { identity } => &identity.device_id,
            Route::ReceiveC2d { device_id } | Route::Settle { device_id, .. } => device_id,
        }
    }

    /// The path, ids percent-encoded as the Node SDK writes them (`encodeURIComponent`;
    /// spec file §6.1), in the REST reference's `deviceBound` case.
    pub fn path(&self) -> String {
        let enc = |id: &str| utf8_percent_encode(id, UNRESERVED).to_string();
        match self {
            Route::SendEvent { identity } => match &identity.module_id {
                Some(module) => format!(
                    "/devices/{}/modules/{}/messages/events",
                    enc(&identity.device_id),
                    enc(module)
                ),
                None => format!("/devices/{}/messages/events", enc(&identity.device_id)),
            },
            Route::ReceiveC2d { device_id } => {
                format!("/devices/{}/messages/deviceBound", enc(device_id))
            }
            Route::Settle { device_id, lock, disposition } => {
                let suffix = if *disposition == Disposition::Abandon { "/abandon" } else { "" };
                format!(
                    "/devices/{}/messages/deviceBound/{}{suffix}",
                    enc(device_id),
                    utf8_percent_encode(lock, UNRESERVED)
                )
            }
        }
    }

    /// The request target: [`path`](Self::path), `?api-version=`[`API_VERSION`], and
    /// the bare `&reject` flag of a reject, as every SDK writes it (spec file §6.5).
    pub fn target(&self) -> String {
        let reject = match self {
            Route::Settle { disposition: Disposition::Reject, .. } => "&reject",
            _ => "",
        };
        format!("{}?api-version={API_VERSION}{reject}", self.path())
    }
}

/// Whether a query names `key`, bare (`&reject`) or with any value (`reject=true`,
/// `reject=`).
fn query_has(query: &str, key: &str) -> bool {
    query.split('&').any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == key)
}

/// The body of an IoT Hub error answer (spec file §6.7):
/// `{"Message":"ErrorCode:<Name>;<description>","ExceptionMessage":"Tracking ID:<id>-TimeStamp:<time>"}`,
/// JSON-escaped. Sent with [`ERROR_CODE_HEADER`] and
/// `Content-Type: application/json; charset=utf-8`.
pub fn error_body(code: ErrorCode, description: &str, tracking_id: &str, time: &str) -> String {
    let message = format!("ErrorCode:{};{description}", code.name);
    let exception = format!("Tracking ID:{tracking_id}-TimeStamp:{time}");
    let mut body = serde_json::Map::new();
    body.insert(String::from("Message"), serde_json::Value::String(message));
    body.insert(String::from("ExceptionMessage"), serde_json::Value::String(exception));
    serde_json::Value::Object(body).to_string()
}

/// What an error answer says, as a device reads it: the `Message` field of the
/// JSON body, or the body itself when it is not that JSON (a proxy's page, an older
/// hub's text). At most 1 KiB of it is kept.
pub fn error_description(body: &[u8]) -> String {
    const MAX: usize = 1024;
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => match map.get("Message") {
            Some(serde_json::Value::String(m)) => m.clone(),
            _ => String::from_utf8_lossy(body).into_owned(),
        },
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    String::from(text.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(lock: &str, disposition: Disposition) -> Route {
        Route::Settle { device_id: "device1".into(), lock: lock.into(), disposition }
    }

    const LOCK: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn tv15_settlement_targets_are_byte_exact() {
        assert_eq!(
            settle(LOCK, Disposition::Complete).target(),
            "/devices/device1/messages/deviceBound/0f8fad5b-d9cb-469f-a165-70867728950e?api-version=2021-04-12"
        );
        assert_eq!(
            settle(LOCK, Disposition::Reject).target(),
            "/devices/device1/messages/deviceBound/0f8fad5b-d9cb-469f-a165-70867728950e?api-version=2021-04-12&reject"
        );
        assert_eq!(
            settle(LOCK, Disposition::Abandon).target(),
            "/devices/device1/messages/deviceBound/0f8fad5b-d9cb-469f-a165-70867728950e/abandon?api-version=2021-04-12"
        );
        assert_eq!(settle(LOCK, Disposition::Complete).method(), "DELETE");
        assert_eq!(settle(LOCK, Disposition::Reject).method(), "DELETE");
        assert_eq!(settle(LOCK, Disposition::Abandon).method(), "POST");
    }

    #[test]
    fn every_route_reads_back_from_what_a_device_writes() {
        let routes = [
            Route::SendEvent { identity: Identity::device("device1") },
            Route::SendEvent {
                identity: Identity { device_id: "d@1".into(), module_id: Some("m$(1)".into()) },
            },
            Route::ReceiveC2d { device_id: "dev#1".into() },
            settle(LOCK, Disposition::Complete),
            settle(LOCK, Disposition::Reject),
            settle(LOCK, Disposition::Abandon),
            settle("not a/lock", Disposition::Complete),
        ];
        for route in routes {
            assert_eq!(Route::parse(route.method(), &route.target()), Ok(route.clone()));
        }
    }

    #[test]
    fn spec_6_1_paths_match_in_any_case_and_ids_are_percent_decoded() {
        let r = Route::parse("GET", "/devices/dev%231/messages/devicebound?api-version=2016-11-14");
        assert_eq!(r, Ok(Route::ReceiveC2d { device_id: "dev#1".into() }));
        let r = Route::parse("POST", "/DEVICES/d1/Messages/Events?api-version=x");
        assert_eq!(r, Ok(Route::SendEvent { identity: Identity::device("d1") }));
    }

    #[test]
    fn spec_6_5_reject_flag_in_every_form() {
        for query in ["api-version=1&reject", "reject=true&api-version=1", "api-version=1&reject="]
        {
            let target = format!("/devices/d/messages/deviceBound/{LOCK}?{query}");
            let r = Route::parse("DELETE", &target);
            assert_eq!(
                r,
                Ok(Route::Settle {
                    device_id: "d".into(),
                    lock: LOCK.into(),
                    disposition: Disposition::Reject
                })
            );
        }
        let r = Route::parse(
            "DELETE",
            &format!("/devices/d/messages/deviceBound/{LOCK}?api-version=1&rejected"),
        );
        assert!(matches!(r, Ok(Route::Settle { disposition: Disposition::Complete, .. })));
    }

    #[test]
    fn refusals_carry_their_status() {
        let r = Route::parse("GET", "/devices/d/messages/events?api-version=1");
        assert_eq!(r, Err(RouteError::MethodNotAllowed { method: "GET".into(), allow: "POST" }));
        assert_eq!(r.unwrap_err().status(), 405);
        for path in [
            "/",
            "",
            "/devices/d",
            "/devices/d/messages/events/x",
            "/twins/d",
            "devices/d/messages/events",
        ] {
            let r = Route::parse("POST", &format!("{path}?api-version=1"));
            assert!(matches!(r, Err(RouteError::NotFound(_))), "{path}: {r:?}");
            assert_eq!(r.unwrap_err().status(), 404);
        }
        let r = Route::parse("POST", "/devices/d/messages/events");
        assert_eq!(r, Err(RouteError::MissingApiVersion));
        assert_eq!(RouteError::MissingApiVersion.status(), 400);
        assert_eq!(RouteError::MissingApiVersion.code(), Some(ErrorCode::INVALID_PROTOCOL_VERSION));
        let r = Route::parse("POST", "/devices/a~b/messages/events?api-version=1");
        assert_eq!(r, Err(RouteError::InvalidId("a~b".into())));
        assert_eq!(r.unwrap_err().status(), 400);
    }

    #[test]
    fn spec_6_7_error_body_reads_back_through_error_description() {
        let body = error_body(
            ErrorCode::DEVICE_NOT_FOUND,
            "no \"dev\"",
            "abc",
            "2024-01-02T03:04:05.000Z",
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["Message"], "ErrorCode:DeviceNotFound;no \"dev\"");
        assert_eq!(json["ExceptionMessage"], "Tracking ID:abc-TimeStamp:2024-01-02T03:04:05.000Z");
        assert_eq!(error_description(body.as_bytes()), "ErrorCode:DeviceNotFound;no \"dev\"");
        assert_eq!(error_description(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(error_description(&[0xff; 2000]).chars().count(), 341);
    }
}
