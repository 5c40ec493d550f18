//! The hub's side of one HTTP/1.1 connection: IoT Hub's device REST endpoints
//! (spec file §6) on the hub engine.
//!
//! A connection carries any number of requests (RFC 9112 §9.3), read one at a time
//! and answered in order: bytes of a pipelined request wait in the buffer until the
//! answer before it is queued (§9.3.2). Each request is read whole, body included,
//! before it is routed, and each carries its own SAS token: the connection is bound
//! to no device (spec file §9, "Duplicate connection: n/a").
//!
//! | Request | Answer |
//! |---|---|
//! | head that breaks RFC 9112, request line too long, head too large, other version | 400 / 414 / 431 / 505 ([`HeadError::status`]), then close |
//! | body whose framing breaks RFC 9112, too large, unknown coding | 400 / 413 / 501 ([`BodyError::status`]), then close |
//! | unknown path, wrong method, bad id, no api-version | 404 / 405 + `Allow` / 400 / 400 InvalidProtocolVersion ([`RouteError`]) |
//! | no `Authorization`, bad or foreign token | 401 IotHubUnauthorized |
//! | unknown device | 404 DeviceNotFound |
//! | send: headers or batch that do not read | 400 ArgumentInvalid |
//! | send: a message, or a batch body, over `max_message_size` | 413 MessageTooLarge |
//! | send | 204 once every message is stored (DESIGN.md, "Storage is I/O") |
//! | receive | 200 with the message, its ETag and `iothub-*` headers; 204 when none |
//! | settle: lock not a GUID | 400 ArgumentInvalid |
//! | settle: lock unknown or timed out | 412 DeviceMessageLockLost |
//! | settle | 204 |
//! | request not whole within `connect_timeout` of its first byte | 408, then close |
//!
//! Under [`Authentication::Delegated`] (a field gateway's downstream) the runtime
//! judges every request's token, and a device's C2D queue holds only what the
//! runtime fetched upstream:
//!
//! | Request | Answer |
//! |---|---|
//! | token that does not parse, or expired | 401 IotHubUnauthorized, the runtime not asked |
//! | any other | held: [`HubEvent::AuthenticationRequested`], served after [`Hub::authenticated`] `Ok` |
//! | refused by the runtime | 401, with the runtime's code in `iothub-errorcode` |
//! | not judged within `connect_timeout` | 504 GatewayTimeout (504101) |
//! | receive, nothing in the queue to take | held: [`HubEvent::C2dRequested`], answered as above after [`Hub::c2d_fetched`] |
//! | receive, nothing fetched within `connect_timeout` | 204 |
//!
//! A held request holds the connection as a send being stored does: the requests
//! pipelined behind it wait in the buffer.
//!
//! IoT Hub errors carry `iothub-errorcode` and IoT Hub's JSON body
//! ([`rest::error_body`]); plain HTTP errors (404 and 405 for paths and methods)
//! carry a line of text. A connection closes after `Connection: close`, after an
//! HTTP/1.0 request without `keep-alive`, after an answer that leaves the framing
//! unknown, and when idle for [`HubConfig::http_idle_timeout`].
//!
//! [`Hub::authenticated`]: crate::hub::Hub::authenticated
//! [`Hub::c2d_fetched`]: crate::hub::Hub::c2d_fetched

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};

use super::batch;
use super::body::{BodyDecoder, BodyError, BodyLimits};
use super::error::{HeadError, error_response, reason_phrase};
use super::head::{Header, Limits, RequestHead, ResponseHead, parse_request};
use super::message::{self, C2dHeaders};
use super::rest::{self, ERROR_CODE_HEADER, Route, RouteError};
use crate::Protocol;
use crate::hub::{
    AuthError, AuthRequest, Authentication, C2dRequest, HubConfig, HubEvent, HubState, Origin,
    StoreTicket,
};
use crate::iothub::{Disposition, ErrorCode, Identity, LockToken};
use crate::sansio::{ConnectionId, Outbox, Transmit};
use crate::time::{Duration, Timestamp};

/// A request whose framing the hub cannot read; the hub has answered it with the
/// error's status and closed the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubProtocolError {
    /// The head breaks RFC 9112, passes a limit, or names another HTTP version.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The body's framing breaks RFC 9112 or passes a limit.
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// One HTTP connection as the hub sees it.
#[derive(Debug)]
pub(crate) struct HttpConnection {
    id: ConnectionId,
    rx: BytesMut,
    phase: Phase,
    outbox: Outbox,
    limits: Limits,
    body_limits: BodyLimits,
    max_message_size: usize,
    /// How long a request may take from its first byte to its last: the hub's
    /// `connect_timeout`, which also bounds the first request of a connection.
    request_timeout: Duration,
    idle_timeout: Duration,
    /// Request heads read so far; an error answer's tracking id names the request.
    requests: u64,
}

#[derive(Debug)]
enum Phase {
    /// Between requests, nothing of the next one here: closed quietly at `deadline`.
    Idle {
        deadline: Timestamp,
    },
    /// Part of a request head is here; the request must be whole by `deadline`.
    Head {
        deadline: Timestamp,
    },
    /// The head is read; its body is arriving.
    Body {
        head: RequestHead,
        decoder: BodyDecoder,
        deadline: Timestamp,
    },
    /// A send's messages are being stored; its 204 waits for every ticket.
    Storing {
        /// A set: a batch of thousands is stored ticket by ticket.
        tickets: BTreeSet<StoreTicket>,
        persistence: Persistence,
    },
    /// Under [`Authentication::Delegated`]: the request's token is with the
    /// runtime. Served once judged; 504 at `deadline`.
    Authenticating {
        request: AuthRequest,
        held: Box<Held>,
        persistence: Persistence,
        deadline: Timestamp,
    },
    /// Under [`Authentication::Delegated`]: a poll found nothing to take and the
    /// runtime fetches upstream. Answered once it has; 204 at `deadline`.
    Fetching {
        request: C2dRequest,
        device_id: String,
        identity: Identity,
        persistence: Persistence,
        deadline: Timestamp,
    },
    Closed,
}

impl Phase {
    /// What happens after the answer of a request that waits for the runtime (a
    /// store, a judgement, a fetch); the bytes after it wait in the buffer.
    fn waiting(&mut self) -> Option<&mut Persistence> {
        match self {
            Phase::Storing { persistence, .. }
            | Phase::Authenticating { persistence, .. }
            | Phase::Fetching { persistence, .. } => Some(persistence),
            Phase::Idle { .. } | Phase::Head { .. } | Phase::Body { .. } | Phase::Closed => None,
        }
    }
}

/// A routed request whose token the runtime judges: what serving it takes.
#[derive(Debug)]
struct Held {
    route: Route,
    identity: Identity,
    /// A send reads its message's properties from the headers.
    head: RequestHead,
    body: Bytes,
}

/// What happens to the connection after an answer (RFC 9112 §9.3, §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    /// HTTP/1.1's default: it stays open.
    Persistent,
    /// An HTTP/1.0 client asked for `Connection: keep-alive`; the answer says yes.
    KeepAlive,
    /// The answer says `Connection: close`, and the hub closes after it.
    Close,
}

impl Persistence {
    fn of(head: &RequestHead, decoder: &BodyDecoder) -> Persistence {
        if decoder.must_close() || head.has_token("connection", "close") {
            Persistence::Close
        } else if head.minor_version >= 1 {
            Persistence::Persistent
        } else if head.has_token("connection", "keep-alive") {
            Persistence::KeepAlive
        } else {
            Persistence::Close
        }
    }
}

/// How a routed request is answered.
enum Reply {
    /// At once.
    Now(Answer),
    /// With 204 once the runtime has stored these messages.
    AfterStore(BTreeSet<StoreTicket>),
    /// Once the runtime has judged the token ([`Authentication::Delegated`]).
    AfterAuthentication(AuthRequest, Box<Held>),
    /// Once the runtime has fetched for this poll ([`Authentication::Delegated`]).
    AfterFetch { request: C2dRequest, device_id: String, identity: Identity },
}

struct Answer {
    status: u16,
    headers: Vec<Header>,
    body: Bytes,
}

impl Answer {
    fn no_content() -> Answer {
        Answer { status: 204, headers: Vec::new(), body: Bytes::new() }
    }
}

/// Why a request was refused, once its framing was read.
struct Refusal {
    status: u16,
    /// IoT Hub's code, sent in `iothub-errorcode` and the JSON body; `None` for
    /// plain HTTP errors (404, 405 of a path or method no device endpoint has).
    code: Option<ErrorCode>,
    identity: Option<Identity>,
    reason: String,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

impl Refusal {
    /// An IoT Hub error: its status is the code's first three digits (401003 → 401).
    fn hub(code: ErrorCode, identity: &Identity, reason: impl Into<String>) -> Refusal {
        Refusal {
            status: u16::try_from(code.code / 1000).unwrap_or(500),
            code: Some(code),
            identity: Some(identity.clone()),
            reason: reason.into(),
            allow: None,
        }
    }

    fn route(e: RouteError) -> Refusal {
        let allow = match &e {
            RouteError::MethodNotAllowed { allow, .. } => Some(*allow),
            _ => None,
        };
        Refusal { status: e.status(), code: e.code(), identity: None, reason: e.to_string(), allow }
    }
}

impl HttpConnection {
    pub(crate) fn new(id: ConnectionId, now: Timestamp, config: &HubConfig) -> Self {
        HttpConnection {
            id,
            rx: BytesMut::new(),
            phase: Phase::Idle { deadline: now + config.connect_timeout },
            outbox: Outbox::default(),
            limits: Limits::default(),
            // A batch body holds its messages in base64 inside JSON, and a single
            // send's properties travel in headers: 16 KiB over the message limit.
            body_limits: BodyLimits {
                max_body_size: config.max_message_size.saturating_add(16 * 1024),
                ..BodyLimits::default()
            },
            max_message_size: config.max_message_size,
            request_timeout: config.connect_timeout,
            idle_timeout: config.http_idle_timeout,
            requests: 0,
        }
    }

    pub(crate) fn handle_input(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        if matches!(self.phase, Phase::Closed) {
            return Ok(());
        }
        if let Some(persistence) = self.phase.waiting() {
            // After `Connection: close` nothing more is read (RFC 9112 §9.6).
            if *persistence == Persistence::Close {
                return Ok(());
            }
            // The next request waits for this answer; more than a whole request
            // does not: it is dropped, and the connection closes after the
            // answer, which a pipelining client takes as "send the rest again"
            // (RFC 9112 §9.3.2).
            let limit = self.limits.max_head_size
                + self.body_limits.max_body_size
                + self.body_limits.max_framing_size;
            if self.rx.len().saturating_add(bytes.len()) > limit {
                *persistence = Persistence::Close;
                self.rx.clear();
            } else {
                self.rx.extend_from_slice(bytes);
            }
            return Ok(());
        }
        self.rx.extend_from_slice(bytes);
        self.advance(now, hub)
    }

    /// Reads and answers requests until one is incomplete or waits for the runtime.
    fn advance(&mut self, now: Timestamp, hub: &mut HubState) -> Result<(), HubProtocolError> {
        loop {
            match &mut self.phase {
                Phase::Idle { deadline } => {
                    if self.rx.is_empty() {
                        return Ok(());
                    }
                    // The first request keeps the connect deadline; a later one has
                    // the request timeout from its first byte.
                    let deadline =
                        if self.requests == 0 { *deadline } else { now + self.request_timeout };
                    self.phase = Phase::Head { deadline };
                }
                Phase::Head { deadline } => {
                    let deadline = *deadline;
                    let (head, used) = match parse_request(&self.rx, &self.limits) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(self.fail(hub, e.status(), e.to_string(), e)),
                    };
                    self.rx.advance(used);
                    self.requests += 1;
                    if let Err(e) = head.check_host() {
                        return Err(self.fail(hub, e.status(), e.to_string(), e));
                    }
                    let decoder = match BodyDecoder::for_request(&head, &self.body_limits) {
                        Ok(decoder) => decoder,
                        Err(e) => return Err(self.fail(hub, e.status(), e.to_string(), e)),
                    };
                    if head.minor_version >= 1 && head.has_token("expect", "100-continue") {
                        // RFC 9110 §10.1.1: the client may wait for this before
                        // sending the body (curl does, for bodies over 1 KiB).
                        let interim = ResponseHead {
                            minor_version: 1,
                            status: 100,
                            reason: String::from("Continue"),
                            headers: Vec::new(),
                        };
                        interim.encode(self.outbox.buffer());
                    }
                    self.phase = Phase::Body { head, decoder, deadline };
                }
                Phase::Body { decoder, .. } => {
                    let body = match decoder.decode(&mut self.rx) {
                        Ok(Some(body)) => body,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(self.fail(hub, e.status(), e.to_string(), e)),
                    };
                    if let Phase::Body { head, decoder, .. } =
                        core::mem::replace(&mut self.phase, Phase::Closed)
                    {
                        let persistence = Persistence::of(&head, &decoder);
                        let reply = self.route(now, head, body, hub);
                        self.reply(now, reply, persistence, hub);
                    }
                }
                Phase::Storing { .. }
                | Phase::Authenticating { .. }
                | Phase::Fetching { .. }
                | Phase::Closed => return Ok(()),
            }
        }
    }

    /// Answers a request now, or waits for the runtime as `reply` says.
    fn reply(
        &mut self,
        now: Timestamp,
        reply: Result<Reply, Refusal>,
        persistence: Persistence,
        hub: &mut HubState,
    ) {
        let deadline = now + self.request_timeout;
        let answer = match reply {
            Ok(Reply::Now(answer)) => answer,
            Ok(Reply::AfterStore(tickets)) => {
                self.phase = Phase::Storing { tickets, persistence };
                return;
            }
            Ok(Reply::AfterAuthentication(request, held)) => {
                self.phase = Phase::Authenticating { request, held, persistence, deadline };
                return;
            }
            Ok(Reply::AfterFetch { request, device_id, identity }) => {
                let phase = Phase::Fetching { request, device_id, identity, persistence, deadline };
                self.phase = phase;
                return;
            }
            Err(refusal) => self.refusal_answer(now, refusal, hub),
        };
        self.answer(now, answer, persistence);
    }

    /// Routes a whole request and authenticates it, or asks the runtime to.
    fn route(
        &mut self,
        now: Timestamp,
        head: RequestHead,
        body: Bytes,
        hub: &mut HubState,
    ) -> Result<Reply, Refusal> {
        let route = Route::parse(&head.method, &head.target).map_err(Refusal::route)?;
        let identity = match &route {
            Route::SendEvent { identity } => identity.clone(),
            other => Identity::device(other.device_id()),
        };
        // Every request carries its token (spec file §6.1): no header, no access.
        let token = head.header("authorization").ok_or_else(|| {
            let reason = "no Authorization header with a SAS token";
            Refusal::hub(ErrorCode::IOT_HUB_UNAUTHORIZED, &identity, reason)
        })?;
        if hub.config.authentication == Authentication::Delegated {
            let refuse = |e: AuthError| Refusal::hub(e.code(), &identity, e.reason());
            let (_, host_name) = hub.check_delegated(&identity, token, now).map_err(refuse)?;
            let token = String::from(token);
            let request = hub.request_authentication(
                self.id,
                identity.clone(),
                token,
                host_name,
                Protocol::Http,
            );
            let held = Box::new(Held { route, identity, head, body });
            return Ok(Reply::AfterAuthentication(request, held));
        }
        hub.authenticate(&identity, token, now)
            .map_err(|e| Refusal::hub(e.code(), &identity, e.reason()))?;
        self.dispatch(now, route, &identity, &head, body, hub)
    }

    /// Serves an authenticated request.
    fn dispatch(
        &mut self,
        now: Timestamp,
        route: Route,
        identity: &Identity,
        head: &RequestHead,
        body: Bytes,
        hub: &mut HubState,
    ) -> Result<Reply, Refusal> {
        match route {
            Route::SendEvent { .. } => self.send_event(now, head, body, identity, hub),
            Route::ReceiveC2d { device_id } => {
                if let Some(answer) = receive_c2d(now, self.id, &device_id, identity, hub)? {
                    return Ok(Reply::Now(answer));
                }
                if hub.config.authentication != Authentication::Delegated {
                    return Ok(Reply::Now(Answer::no_content()));
                }
                // The queue holds only what was fetched upstream: the runtime
                // fetches before the poll is answered.
                let request = hub.request_c2d(self.id, device_id.clone());
                Ok(Reply::AfterFetch { request, device_id, identity: identity.clone() })
            }
            Route::Settle { device_id, lock, disposition } => {
                settle(now, &device_id, &lock, disposition, identity, hub)?;
                Ok(Reply::Now(Answer::no_content()))
            }
        }
    }

    /// The runtime judged the token of `request`: the held request is served, or
    /// answered 401 with `code` (whatever the code: the device is not let in, as
    /// MQTT answers CONNACK 5 to every refusal, spec file §4.1.3). The requests
    /// that waited behind it are read then. Returns whether it waited for
    /// `request`.
    pub(crate) fn authenticated(
        &mut self,
        now: Timestamp,
        request: AuthRequest,
        result: Result<(), ErrorCode>,
        hub: &mut HubState,
    ) -> bool {
        if !matches!(&self.phase, Phase::Authenticating { request: r, .. } if *r == request) {
            return false;
        }
        let Phase::Authenticating { held, persistence, .. } =
            core::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return false;
        };
        let Held { route, identity, head, body } = *held;
        let reply = match result {
            Ok(()) => self.dispatch(now, route, &identity, &head, body, hub),
            Err(code) => Err(Refusal {
                status: 401,
                code: Some(code),
                identity: Some(identity),
                reason: format!("the upstream hub refused the SAS token ({code})"),
                allow: None,
            }),
        };
        self.reply(now, reply, persistence, hub);
        let _answered = self.advance(now, hub);
        true
    }

    /// The runtime fetched for the poll of `request` and queued what it found:
    /// the poll takes the next message it may, or is answered 204. The requests
    /// that waited behind it are read then. Returns whether it waited for
    /// `request`.
    pub(crate) fn c2d_fetched(
        &mut self,
        now: Timestamp,
        request: C2dRequest,
        hub: &mut HubState,
    ) -> bool {
        if !matches!(&self.phase, Phase::Fetching { request: r, .. } if *r == request) {
            return false;
        }
        let Phase::Fetching { device_id, identity, persistence, .. } =
            core::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return false;
        };
        let reply = receive_c2d(now, self.id, &device_id, &identity, hub)
            .map(|answer| Reply::Now(answer.unwrap_or_else(Answer::no_content)));
        self.reply(now, reply, persistence, hub);
        let _answered = self.advance(now, hub);
        true
    }

    /// One message from the headers and body (spec file §6.2), or a batch (§6.3,
    /// TV-16): every message within `max_message_size`, a batch body too, all
    /// stored before the 204.
    fn send_event(
        &mut self,
        now: Timestamp,
        head: &RequestHead,
        body: Bytes,
        identity: &Identity,
        hub: &mut HubState,
    ) -> Result<Reply, Refusal> {
        let too_large = |what: &str, size: usize| {
            let reason = format!(
                "{what} of {size} bytes exceeds IoT Hub's limit of {} bytes",
                self.max_message_size
            );
            Refusal::hub(ErrorCode::MESSAGE_TOO_LARGE, identity, reason)
        };
        let invalid = |e: &dyn core::fmt::Display| {
            Refusal::hub(ErrorCode::ARGUMENT_INVALID, identity, e.to_string())
        };
        let is_batch = head.header("content-type").is_some_and(|value| {
            let media_type = value.split(';').next().unwrap_or_default().trim();
            media_type.eq_ignore_ascii_case(batch::CONTENT_TYPE)
        });
        let messages = if is_batch {
            if body.len() > self.max_message_size {
                return Err(too_large("a batch", body.len()));
            }
            batch::decode(&body).map_err(|e| invalid(&e))?
        } else {
            vec![message::read_d2c(&head.headers, body).map_err(|e| invalid(&e))?]
        };
        if let Some(big) = messages.iter().find(|m| m.size() > self.max_message_size) {
            return Err(too_large("a message", big.size()));
        }
        let tickets = messages
            .into_iter()
            .map(|m| hub.store_telemetry(now, self.id, identity, m, Origin::Device))
            .collect();
        Ok(Reply::AfterStore(tickets))
    }

    /// The runtime stored a message: once the whole send is stored, its 204 goes
    /// out and the requests that waited behind it are read. A framing error among
    /// those is answered on the wire; there is no caller to return it to.
    pub(crate) fn telemetry_stored(
        &mut self,
        now: Timestamp,
        ticket: StoreTicket,
        hub: &mut HubState,
    ) {
        let Phase::Storing { tickets, persistence } = &mut self.phase else {
            return;
        };
        tickets.remove(&ticket);
        if !tickets.is_empty() {
            return;
        }
        let persistence = *persistence;
        self.answer(now, Answer::no_content(), persistence);
        let _answered = self.advance(now, hub);
    }

    /// The message of `ticket` was not kept: the request is answered with `code`'s
    /// status and IoT Hub's error body, and the rest of a batch is no longer waited
    /// for.
    pub(crate) fn telemetry_refused(
        &mut self,
        now: Timestamp,
        ticket: StoreTicket,
        code: ErrorCode,
        hub: &mut HubState,
    ) {
        let Phase::Storing { tickets, persistence } = &mut self.phase else {
            return;
        };
        if !tickets.contains(&ticket) {
            return;
        }
        let persistence = *persistence;
        let refusal = Refusal {
            status: u16::try_from(code.code / 1000).unwrap_or(500),
            code: Some(code),
            identity: None,
            reason: format!("the telemetry could not be kept ({code})"),
            allow: None,
        };
        let answer = self.refusal_answer(now, refusal, hub);
        self.answer(now, answer, persistence);
        let _answered = self.advance(now, hub);
    }

    /// Writes the IoT Hub error or plain HTTP error of a refused request, and logs it.
    fn refusal_answer(&mut self, now: Timestamp, refusal: Refusal, hub: &mut HubState) -> Answer {
        let Refusal { status, code, identity, reason, allow } = refusal;
        let mut headers = Vec::new();
        let body = match code {
            Some(code) => {
                headers.push(Header::new("Content-Type", "application/json; charset=utf-8"));
                headers.push(Header::new(ERROR_CODE_HEADER, code.name));
                let tracking_id = format!("{:08x}{:08x}", self.id.0, self.requests);
                rest::error_body(code, &reason, &tracking_id, &now.to_rfc3339())
            }
            None => {
                headers.push(Header::new("Content-Type", "text/plain; charset=utf-8"));
                reason.clone()
            }
        };
        if let Some(allow) = allow {
            headers.push(Header::new("Allow", allow));
        }
        // Paths and methods no endpoint has get no IoT Hub code on the wire; the log
        // files them as the operation a device may not use (spec file §9).
        let code = code.unwrap_or(ErrorCode::INVALID_OPERATION);
        hub.emit(HubEvent::Refused { connection: self.id, identity, code, reason });
        Answer { status, headers, body: Bytes::from(body.into_bytes()) }
    }

    /// Queues `answer` with its framing headers, then waits for the next request or
    /// closes.
    fn answer(&mut self, now: Timestamp, answer: Answer, persistence: Persistence) {
        let Answer { status, mut headers, body } = answer;
        // RFC 9110 §8.6: no Content-Length in a 204.
        if status != 204 {
            headers.push(Header::new("Content-Length", body.len().to_string()));
        }
        match persistence {
            Persistence::Persistent => {}
            Persistence::KeepAlive => headers.push(Header::new("Connection", "keep-alive")),
            Persistence::Close => headers.push(Header::new("Connection", "close")),
        }
        let head = ResponseHead {
            minor_version: 1,
            status,
            reason: String::from(reason_phrase(status)),
            headers,
        };
        head.encode(self.outbox.buffer());
        self.outbox.buffer().extend_from_slice(&body);
        match persistence {
            Persistence::Close => self.close(),
            _ => self.phase = Phase::Idle { deadline: now + self.idle_timeout },
        }
    }

    /// Answers a request whose framing cannot be read, and closes: where the next
    /// request would start is unknown (RFC 9112 §9.6). Returns `error` for the caller.
    fn fail<E: Into<HubProtocolError>>(
        &mut self,
        hub: &mut HubState,
        status: u16,
        reason: String,
        error: E,
    ) -> HubProtocolError {
        let code =
            if status == 413 { ErrorCode::MESSAGE_TOO_LARGE } else { ErrorCode::ARGUMENT_INVALID };
        let extra: &[(&str, &str)] =
            if status == 413 { &[(ERROR_CODE_HEADER, code.name)] } else { &[] };
        let response = error_response(status, reason_phrase(status), extra, &reason);
        self.outbox.buffer().extend_from_slice(&response);
        hub.emit(HubEvent::Refused { connection: self.id, identity: None, code, reason });
        self.close();
        error.into()
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.rx.clear();
        self.outbox.push(Transmit::Close);
    }

    /// The peer closed: a request not yet whole is dropped, nothing of it stored
    /// (RFC 9112 §8). A send being stored is stored, unanswered.
    pub(crate) fn handle_close(&mut self, _now: Timestamp, _hub: &mut HubState) {
        self.phase = Phase::Closed;
        self.rx.clear();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Idle { deadline }
            | Phase::Head { deadline }
            | Phase::Body { deadline, .. }
            | Phase::Authenticating { deadline, .. }
            | Phase::Fetching { deadline, .. } => Some(*deadline),
            Phase::Storing { .. } | Phase::Closed => None,
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp, hub: &mut HubState) {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return;
        }
        let seconds = self.request_timeout.as_millis() / 1000;
        match core::mem::replace(&mut self.phase, Phase::Closed) {
            // RFC 9112 §9.5: an idle connection may be closed at any time; no answer
            // is owed when no request has begun.
            Phase::Idle { .. } => self.close(),
            Phase::Head { .. } | Phase::Body { .. } => {
                let reason = format!(
                    "the request did not arrive whole within {seconds} s of its first byte"
                );
                // RFC 9110 §15.5.9
                let response = error_response(408, reason_phrase(408), &[], &reason);
                self.outbox.buffer().extend_from_slice(&response);
                let code = ErrorCode::ARGUMENT_INVALID;
                hub.emit(HubEvent::Refused { connection: self.id, identity: None, code, reason });
                self.close();
            }
            Phase::Authenticating { request, held, persistence, .. } => {
                hub.forget_authentication(request);
                let reason = format!("the SAS token was not judged within {seconds} s");
                let refusal = Refusal::hub(ErrorCode::GATEWAY_TIMEOUT, &held.identity, reason);
                let answer = self.refusal_answer(now, refusal, hub);
                self.answer(now, answer, persistence);
                let _answered = self.advance(now, hub);
            }
            // Nothing was taken from the queue, so nothing is lost: what the runtime
            // queues later waits for the next poll.
            Phase::Fetching { request, persistence, .. } => {
                hub.forget_c2d_request(request);
                self.answer(now, Answer::no_content(), persistence);
                let _answered = self.advance(now, hub);
            }
            phase @ (Phase::Storing { .. } | Phase::Closed) => self.phase = phase,
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }
}

/// Locks the next deliverable message for the device and hands it out in a 200
/// (spec file §6.4, TV-15); `None` when there is none, which is a 204 unless the
/// runtime fetches first. The lock times out after the queue's `lock_timeout`
/// (spec file §7).
fn receive_c2d(
    now: Timestamp,
    connection: ConnectionId,
    device_id: &str,
    identity: &Identity,
    hub: &mut HubState,
) -> Result<Option<Answer>, Refusal> {
    loop {
        let lock = hub.new_lock();
        let until = now + hub.config.c2d.lock_timeout;
        let not_found = || Refusal::hub(ErrorCode::DEVICE_NOT_FOUND, identity, "not registered");
        let device = hub.device_mut(device_id).ok_or_else(not_found)?;
        let Some(delivery) = device.queue.lock_next(now, lock, Some(until)) else {
            return Ok(None);
        };
        let c2d = C2dHeaders {
            lock_token: delivery.lock,
            sequence_number: delivery.sequence_number,
            delivery_count: delivery.delivery_count,
        };
        let mut headers = Vec::new();
        match message::write_c2d(&c2d, &delivery.message, &mut headers) {
            Ok(()) => {
                return Ok(Some(Answer { status: 200, headers, body: delivery.message.body }));
            }
            Err(e) => {
                // A property HTTP cannot carry (MQTT and AMQP can): no HTTP device can
                // ever take this message, so it is dead-lettered rather than left to
                // block the queue, and the log says why.
                let _ = device.queue.settle(now, &delivery.lock, Disposition::Reject);
                hub.drain_settled(device_id);
                let reason = format!(
                    "C2D message {} cannot be sent in HTTP headers and was dead-lettered: {e}",
                    delivery.sequence_number
                );
                let code = ErrorCode::ARGUMENT_INVALID;
                let refused = HubEvent::Refused {
                    connection,
                    identity: Some(identity.clone()),
                    code,
                    reason,
                };
                hub.emit(refused);
            }
        }
    }
}

/// Completes, rejects or abandons the message locked under the path's token (spec
/// file §6.5); `If-Match` is not read, as the spec file advises.
fn settle(
    now: Timestamp,
    device_id: &str,
    lock: &str,
    disposition: Disposition,
    identity: &Identity,
    hub: &mut HubState,
) -> Result<(), Refusal> {
    let lock: LockToken = lock.parse().map_err(|_| {
        let reason =
            format!("{lock:?} is not a lock token (a GUID, the ETag of a received message)");
        Refusal::hub(ErrorCode::ARGUMENT_INVALID, identity, reason)
    })?;
    let not_found = || Refusal::hub(ErrorCode::DEVICE_NOT_FOUND, identity, "not registered");
    let device = hub.device_mut(device_id).ok_or_else(not_found)?;
    device
        .queue
        .settle(now, &lock, disposition)
        .map_err(|e| Refusal::hub(e.code(), identity, e.to_string()))?;
    hub.drain_settled(device_id);
    Ok(())
}

#[cfg(test)]
mod tests;
