//! The device's side of IoT Hub's REST protocol (spec file §6): telemetry by POST,
//! C2D messages by polling, settlements by DELETE and POST.
//!
//! One [`DeviceSession`] outlives its TCP connections, like the MQTT one:
//!
//! - Requests go one at a time over one persistent HTTP/1.1 connection, dialled when
//!   there is work and closed after `keep_alive` of idleness, before the hub's own
//!   idle close can race a request. Each carries `Host`, `Authorization` (the SAS
//!   token, re-signed before a request once 80 % of its life has passed; spec file
//!   §2.3, §2.4), `User-Agent` and `iothub-to` (spec file §6.1).
//! - Work is taken in this order: settlements (a lock lasts only 60 s, spec file
//!   §7), then telemetry (one message as itself, more as a batch; §6.2, §6.3), then
//!   the C2D poll when due (the schedule below).
//! - A request that fails in a way another attempt may fix (no answer, a broken
//!   transport, 429, 5xx) is sent again, the same bytes, after capped exponential
//!   backoff with jitter: at-least-once, as over MQTT. 401 and 404 refuse the
//!   device's credential and stop it.
//!
//! C2D messages are polled, not pushed (DESIGN.md, "push versus poll"): the first
//! GET at start, then one every `c2d_poll_interval` (25 minutes by default, IoT
//! Hub's guidance, spec file §6.6), at once again after a `200 OK` so a backlog
//! drains back to back, as Node's `drain` option does. [`DeviceSession::poll_now`]
//! polls at once.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::body::{BodyDecoder, BodyLimits};
use super::error::reason_phrase;
use super::head::{Header, Limits, RequestHead, ResponseHead, parse_response};
use super::rest::{self, ERROR_CODE_HEADER, Route};
use super::{batch, message};
use crate::device::{
    C2dMessage, ConfigError, DeviceConfig, DeviceEvent, DisconnectReason, DispositionError,
    ProtocolError, SendError, TelemetryId, signed_token,
};
use crate::iothub::{Authentication, Disposition, Identity, LockToken, Message};
use crate::sansio::{Outbox, Transmit};
use crate::time::{Duration, Timestamp, earliest};

pub use crate::device::{GUIDANCE_POLL_INTERVAL, MAX_TELEMETRY_SIZE};

/// The largest telemetry batch body, bytes (spec file §6.3: 256 KB in all).
pub const MAX_BATCH_SIZE: usize = 256 * 1024;

/// The warning a runtime prints for a C2D poll interval shorter than IoT Hub's
/// guidance of one poll per 25 minutes (spec file §6.6), or `None` for one that
/// keeps to it. Frequent polls are throttled (429) and count against the hub's
/// C2D receive quota.
pub fn poll_interval_warning(interval: Duration) -> Option<String> {
    (interval < GUIDANCE_POLL_INTERVAL).then(|| {
        format!(
            "polling for C2D messages every {} s; IoT Hub asks HTTP devices to poll at most \
             once every {} minutes and throttles more frequent polls (use this only for \
             development)",
            interval.as_secs_f64(),
            GUIDANCE_POLL_INTERVAL.as_secs() / 60
        )
    })
}

/// The device side of HTTP. Drive it through [`crate::device::Device`] or directly
/// with the same methods.
#[derive(Debug)]
pub struct DeviceSession {
    config: DeviceConfig,
    identity: Identity,
    /// The `Host` header: the gateway when there is one, else the hub.
    host: String,
    /// The `Authorization` header and when to sign it again; `None` for X.509.
    authorization: Option<String>,
    renew_at: Option<Timestamp>,
    link: Link,
    outbox: Outbox,
    events: VecDeque<DeviceEvent>,
    rx: BytesMut,
    /// The head of the answer being read, and the reader of its body.
    response: Option<(ResponseHead, BodyDecoder)>,
    rng: Xoshiro256PlusPlus,
    /// Failures since the last 2xx.
    attempt: u32,
    /// No request before this (backoff after a failure).
    retry_at: Option<Timestamp>,
    /// `Connected` has been reported since the start or the last failure.
    reported_connected: bool,
    stopped: bool,
    /// `disconnect` was called: the settlements asked for go out, then the
    /// connection closes.
    closing: bool,
    next_telemetry: u64,
    /// Telemetry not yet in a request, oldest first.
    queued: VecDeque<(TelemetryId, Message)>,
    /// Settlements asked for and not yet sent, in order.
    settlements: VecDeque<(LockToken, Disposition)>,
    /// Locks of C2D messages shown to the application and not yet settled.
    held: BTreeSet<LockToken>,
    /// When the next C2D poll is due; `None` without `receive_c2d`.
    next_poll: Option<Timestamp>,
    /// The request being made: chosen, maybe sent, not yet answered. It survives a
    /// failure and goes again.
    pending: Option<Request>,
}

/// The transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Closed,
    /// `Transmit::Connect` is out; given up at `deadline`.
    Dialing {
        deadline: Timestamp,
    },
    /// Open; `deadline` is the response timeout of the request on the wire, if any.
    Open {
        deadline: Option<Timestamp>,
        idle_since: Timestamp,
    },
}

/// One request, with what it needs to be written again after a failure.
#[derive(Debug)]
enum Request {
    Telemetry { messages: Vec<(TelemetryId, Message)>, headers: Vec<Header>, body: Bytes },
    Receive,
    Settle { lock: LockToken, disposition: Disposition },
}

/// What an answer's status means for the request (spec file §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Success,
    /// 401, 404: the credential or the device is refused.
    Unauthorized,
    /// Worth another attempt later: 403 (quota), 408, 429, 5xx.
    Retry,
    /// This request will never succeed: 400, 412, 413, ….
    Refused,
}

fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        401 | 404 => Verdict::Unauthorized,
        403 | 408 | 429 | 500..=599 => Verdict::Retry,
        400..=499 => Verdict::Refused,
        // 1xx are skipped before this; 3xx and anything else: a hub does not
        // redirect devices, so another attempt is the only hope.
        _ => Verdict::Retry,
    }
}

impl DeviceSession {
    /// A session; it dials when it has work, which is at once when it receives C2D
    /// messages (the first poll is due at start).
    ///
    /// Errors: [`ConfigError::Zero`], [`ConfigError::InvalidKey`] for a key that is
    /// not base64, [`ConfigError::HeaderValue`] for a host name or client type that
    /// cannot be a header value.
    pub fn new(now: Timestamp, config: DeviceConfig) -> Result<Self, ConfigError> {
        config.check_limits()?;
        let cs = &config.connection_string;
        let host = cs.gateway_host_name.clone().unwrap_or_else(|| cs.host_name.clone());
        if !message::is_header_value(&host) {
            return Err(ConfigError::HeaderValue("the host name"));
        }
        if !message::is_header_value(&config.client_type) {
            return Err(ConfigError::HeaderValue("the client type"));
        }
        let (authorization, renew_at) = credentials(&config, now).ok_or(ConfigError::InvalidKey)?;
        let mut session = DeviceSession {
            identity: cs.identity(),
            host,
            authorization,
            renew_at,
            link: Link::Closed,
            outbox: Outbox::default(),
            events: VecDeque::new(),
            rx: BytesMut::new(),
            response: None,
            rng: Xoshiro256PlusPlus::seed_from_u64(config.seed),
            attempt: 0,
            retry_at: None,
            reported_connected: false,
            stopped: false,
            closing: false,
            next_telemetry: 0,
            queued: VecDeque::new(),
            settlements: VecDeque::new(),
            held: BTreeSet::new(),
            next_poll: config.receive_c2d.then_some(now),
            pending: None,
            config,
        };
        session.pump(now);
        Ok(session)
    }

    /// Queues `message` for the hub; see [`crate::device::Device::send_telemetry`].
    ///
    /// Errors: [`SendError::Stopped`], [`SendError::QueueFull`] when `max_queued`
    /// wait, [`SendError::TooLarge`] over [`MAX_TELEMETRY_SIZE`],
    /// [`SendError::Unencodable`] for a property no header can carry.
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
    ) -> Result<TelemetryId, SendError> {
        if self.stopped {
            return Err(SendError::Stopped);
        }
        if self.queued.len() >= self.config.max_queued {
            return Err(SendError::QueueFull { capacity: self.config.max_queued });
        }
        let size = message.size();
        if size > MAX_TELEMETRY_SIZE {
            return Err(SendError::TooLarge { size, max: MAX_TELEMETRY_SIZE });
        }
        message::write_d2c(&message, &mut Vec::new())
            .map_err(|e| SendError::Unencodable(e.to_string()))?;
        let id = TelemetryId(self.next_telemetry);
        self.next_telemetry += 1;
        self.queued.push_back((id, message));
        self.pump(now);
        Ok(id)
    }

    /// Settles a C2D message received over this session: complete (DELETE), reject
    /// (DELETE `&reject`) or abandon (POST `/abandon`; spec file §6.5). The request
    /// goes before any other work; the hub's 412 reports the lock lost
    /// ([`DeviceEvent::C2dLockLost`]).
    ///
    /// Errors: [`DispositionError::UnknownLockToken`] for a lock this session did
    /// not receive or has settled already.
    pub fn settle(
        &mut self,
        now: Timestamp,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        if !self.held.remove(lock) {
            return Err(DispositionError::UnknownLockToken(*lock));
        }
        self.settlements.push_back((*lock, disposition));
        self.pump(now);
        Ok(())
    }

    /// Polls for a C2D message at once instead of at the scheduled time (nothing
    /// without `receive_c2d`, or while a failure's backoff runs: the poll goes when
    /// it ends).
    pub fn poll_now(&mut self, now: Timestamp) {
        if self.config.receive_c2d && !self.stopped {
            self.next_poll = Some(now);
            self.pump(now);
        }
    }

    /// Sends the settlements already asked for (as MQTT's PUBACKs leave before its
    /// DISCONNECT), then closes and stops; polls no more. Telemetry not yet
    /// acknowledged stays unacknowledged. A settlement that fails now is not
    /// retried: its lock times out and the hub delivers the message again.
    pub fn disconnect(&mut self, now: Timestamp) {
        if self.stopped || self.closing {
            return;
        }
        self.closing = true;
        self.next_poll = None;
        let owed =
            !self.settlements.is_empty() || matches!(self.pending, Some(Request::Settle { .. }));
        // The answer to a request on the wire is awaited only when settlements
        // must follow it.
        let on_the_wire = owed && matches!(self.link, Link::Open { deadline: Some(_), .. });
        if !on_the_wire {
            match self.pending.take() {
                // Back in the queue, still unacknowledged.
                Some(Request::Telemetry { messages, .. }) => {
                    for m in messages.into_iter().rev() {
                        self.queued.push_front(m);
                    }
                }
                Some(Request::Receive) | None => {}
                settle @ Some(Request::Settle { .. }) => self.pending = settle,
            }
        }
        // A backoff does not hold the settlements back any more.
        self.retry_at = None;
        self.pump(now);
    }

    /// Telemetry queued or in the request being made.
    pub fn unacknowledged(&self) -> usize {
        let sending = match &self.pending {
            Some(Request::Telemetry { messages, .. }) => messages.len(),
            _ => 0,
        };
        self.queued.len() + sending
    }

    /// The transport asked for is open: the pending request goes.
    pub fn handle_connected(&mut self, now: Timestamp) {
        if let Link::Dialing { .. } = self.link {
            self.link = Link::Open { deadline: None, idle_since: now };
            self.pump(now);
        }
    }

    /// Bytes from the hub: the answer to the request on the wire. Bytes nobody asked
    /// for, a head or body that breaks HTTP/1.1, or a C2D message that does not
    /// read close the connection and schedule a retry.
    pub fn handle_input(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), ProtocolError> {
        let Link::Open { deadline, .. } = self.link else {
            return Ok(());
        };
        if deadline.is_none() {
            return Err(self
                .violation(now, ProtocolError::UnexpectedPacket("HTTP response with no request")));
        }
        self.rx.extend_from_slice(bytes);
        match self.read_response() {
            Ok(Some((head, body))) => self.handle_response(now, head, body),
            Ok(None) => Ok(()),
            Err(e) => Err(self.violation(now, e)),
        }
    }

    /// The transport closed, broke, or could not be opened. An answer whose body
    /// runs until the close ends here; the hub's close of an idle connection is not
    /// a failure.
    pub fn handle_close(&mut self, now: Timestamp) {
        match self.link {
            Link::Closed => {}
            Link::Open { deadline: None, .. } => self.forget_link(),
            Link::Open { deadline: Some(_), .. } => {
                if let Some((head, decoder)) = self.response.take() {
                    if let Ok(body) = decoder.finish_at_eof() {
                        self.forget_link();
                        // Nothing is left to close: a violation here only retries.
                        let _ = self.handle_response(now, head, body);
                        return;
                    }
                }
                self.outbox.discard_bytes();
                self.forget_link();
                self.fail(now, DisconnectReason::TransportClosed);
            }
            Link::Dialing { .. } => {
                self.forget_link();
                self.fail(now, DisconnectReason::TransportClosed);
            }
        }
    }

    /// See [`crate::sansio::Connection::poll_transmit`].
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }

    /// See [`crate::sansio::Connection::poll_event`].
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// The earliest of: the end of a failure's backoff, the deadline of a dial or
    /// of the answer awaited, the idle close, and — when nothing else is under
    /// way — the next C2D poll.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.stopped {
            return None;
        }
        let link = match self.link {
            Link::Closed => None,
            Link::Dialing { deadline } | Link::Open { deadline: Some(deadline), .. } => {
                Some(deadline)
            }
            Link::Open { deadline: None, idle_since } => self.idle_close_at(idle_since),
        };
        let idle = self.pending.is_none()
            && self.retry_at.is_none()
            && matches!(self.link, Link::Closed | Link::Open { deadline: None, .. });
        let poll = if idle { self.next_poll } else { None };
        earliest(earliest(self.retry_at, link), poll)
    }

    /// Gives up on a dial or an answer, ends a backoff, closes an idle connection
    /// or polls, as due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.stopped {
            return;
        }
        match self.link {
            Link::Dialing { deadline } | Link::Open { deadline: Some(deadline), .. }
                if now >= deadline =>
            {
                self.close_link();
                self.fail(now, DisconnectReason::ResponseTimeout);
                return;
            }
            Link::Open { deadline: None, idle_since }
                if self.idle_close_at(idle_since).is_some_and(|at| now >= at) =>
            {
                self.close_link();
            }
            _ => {}
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
        }
        self.pump(now);
    }

    /// When an idle connection is closed: `keep_alive` after its last answer;
    /// never when `keep_alive` is zero.
    fn idle_close_at(&self, idle_since: Timestamp) -> Option<Timestamp> {
        (!self.config.keep_alive.is_zero()).then(|| idle_since + self.config.keep_alive)
    }

    /// Starts the next request if the device is free to: no backoff running, no
    /// request on the wire. Dials first when the connection is closed.
    fn pump(&mut self, now: Timestamp) {
        if self.stopped || self.retry_at.is_some() {
            return;
        }
        if self.closing && self.pending.is_none() && self.settlements.is_empty() {
            self.close_link();
            self.stop(DisconnectReason::Closed);
            return;
        }
        match self.link {
            Link::Closed if self.has_work(now) => {
                self.outbox.push(Transmit::Connect);
                self.link = Link::Dialing { deadline: now + self.config.response_timeout };
            }
            Link::Open { deadline: None, .. } => {
                // Chosen only now, so that telemetry queued while dialling joins a
                // batch.
                if self.pending.is_none() {
                    self.pending = self.next_request(now);
                }
                if self.pending.is_none() {
                    return;
                }
                if self.renew_at.is_some_and(|at| now >= at) {
                    // The key signed a token at `new`, so it signs this one too.
                    if let Some((authorization, renew_at)) = credentials(&self.config, now) {
                        self.authorization = authorization;
                        self.renew_at = renew_at;
                    }
                }
                if let Some(request) = &self.pending {
                    let (head, body) = self.encode(request);
                    head.encode(self.outbox.buffer());
                    self.outbox.buffer().extend_from_slice(&body);
                }
                self.link = Link::Open {
                    deadline: Some(now + self.config.response_timeout),
                    idle_since: now,
                };
            }
            Link::Closed | Link::Dialing { .. } | Link::Open { deadline: Some(_), .. } => {}
        }
    }

    /// Whether a request is waiting or due.
    fn has_work(&self, now: Timestamp) -> bool {
        self.pending.is_some()
            || !self.settlements.is_empty()
            || !self.queued.is_empty()
            || self.next_poll.is_some_and(|at| now >= at)
    }

    /// Settlements first, then telemetry, then the poll when due; only
    /// settlements while closing.
    fn next_request(&mut self, now: Timestamp) -> Option<Request> {
        if let Some((lock, disposition)) = self.settlements.pop_front() {
            return Some(Request::Settle { lock, disposition });
        }
        if self.closing {
            return None;
        }
        if !self.queued.is_empty() {
            return Some(self.telemetry_request());
        }
        if self.next_poll.is_some_and(|at| now >= at) {
            return Some(Request::Receive);
        }
        None
    }

    /// One queued message as itself (spec file §6.2), or up to `max_in_flight` in a
    /// batch of at most [`MAX_BATCH_SIZE`] bytes (§6.3).
    fn telemetry_request(&mut self) -> Request {
        let most = self.config.max_in_flight.min(self.queued.len());
        let mut count = 1;
        let mut batch = Vec::new();
        for n in 2..=most {
            match batch::encode(self.queued.iter().take(n).map(|(_, m)| m)) {
                Ok(body) if body.len() <= MAX_BATCH_SIZE => {
                    count = n;
                    batch = body;
                }
                _ => break,
            }
        }
        let messages: Vec<(TelemetryId, Message)> = self.queued.drain(..count).collect();
        let mut headers = Vec::new();
        let body = match messages.as_slice() {
            [(_, single)] => {
                headers.push(Header::new("Content-Type", "application/octet-stream"));
                // `send_telemetry` checked that the message's headers encode.
                let _ = message::write_d2c(single, &mut headers);
                single.body.clone()
            }
            _ => {
                headers.push(Header::new("Content-Type", batch::CONTENT_TYPE));
                Bytes::from(batch)
            }
        };
        Request::Telemetry { messages, headers, body }
    }

    fn route(&self, request: &Request) -> Route {
        match request {
            Request::Telemetry { .. } => Route::SendEvent { identity: self.identity.clone() },
            Request::Receive => Route::ReceiveC2d { device_id: self.identity.device_id.clone() },
            Request::Settle { lock, disposition } => Route::Settle {
                device_id: self.identity.device_id.clone(),
                lock: lock.to_string(),
                disposition: *disposition,
            },
        }
    }

    /// The request's head and body (spec file §6.1): `Host`, `Authorization`,
    /// `User-Agent`, `iothub-to`, the request's own headers, and `Content-Length`
    /// on a POST.
    fn encode(&self, request: &Request) -> (RequestHead, Bytes) {
        let route = self.route(request);
        let mut headers = alloc::vec![Header::new("Host", self.host.clone())];
        if let Some(authorization) = &self.authorization {
            headers.push(Header::new("Authorization", authorization.clone()));
        }
        headers.push(Header::new("User-Agent", self.config.client_type.clone()));
        headers.push(Header::new("iothub-to", route.path()));
        let body = match request {
            Request::Telemetry { headers: own, body, .. } => {
                headers.extend(own.iter().cloned());
                body.clone()
            }
            Request::Receive | Request::Settle { .. } => Bytes::new(),
        };
        if route.method() == "POST" {
            headers.push(Header::new("Content-Length", body.len().to_string()));
        }
        let head = RequestHead {
            method: String::from(route.method()),
            target: route.target(),
            minor_version: 1,
            headers,
        };
        (head, body)
    }

    /// The whole answer once it has arrived: interim 1xx answers are skipped, and
    /// the body is read within `max_packet_size`.
    fn read_response(&mut self) -> Result<Option<(ResponseHead, Bytes)>, ProtocolError> {
        loop {
            if self.response.is_none() {
                let Some((head, used)) = parse_response(&self.rx, &Limits::default())? else {
                    return Ok(None);
                };
                let _ = self.rx.split_to(used);
                if (100..200).contains(&head.status) {
                    continue;
                }
                let method = self.pending.as_ref().map_or("GET", |r| self.route(r).method());
                let limits = BodyLimits {
                    max_body_size: self.config.max_packet_size,
                    ..BodyLimits::default()
                };
                let decoder = BodyDecoder::for_response(&head, method, &limits)?;
                self.response = Some((head, decoder));
            }
            let Some((_, decoder)) = &mut self.response else {
                return Ok(None);
            };
            let Some(body) = decoder.decode(&mut self.rx)? else {
                return Ok(None);
            };
            let must_close = decoder.must_close();
            let Some((head, _)) = self.response.take() else {
                return Ok(None);
            };
            if !self.rx.is_empty() {
                return Err(ProtocolError::UnexpectedPacket("bytes after the HTTP response"));
            }
            let keep_alive = if head.minor_version == 0 {
                head.has_token("Connection", "keep-alive")
            } else {
                !head.has_token("Connection", "close")
            };
            if must_close || !keep_alive {
                self.close_link();
            }
            return Ok(Some((head, body)));
        }
    }

    /// Acts on the answer to the pending request.
    fn handle_response(
        &mut self,
        now: Timestamp,
        head: ResponseHead,
        body: Bytes,
    ) -> Result<(), ProtocolError> {
        if let Link::Open { deadline, idle_since } = &mut self.link {
            *deadline = None;
            *idle_since = now;
        }
        let Some(request) = self.pending.take() else {
            return Ok(());
        };
        let status = head.status;
        match verdict(status) {
            Verdict::Success => {
                let c2d = match request {
                    Request::Receive if status != 204 => {
                        match message::read_c2d(&head.headers, body) {
                            Ok(read) => Some(read),
                            // Not an answer that works: the backoff grows, and
                            // the poll, due again after it, waits behind
                            // settlements and telemetry like any poll.
                            Err(e) => return Err(self.violation(now, e.into())),
                        }
                    }
                    _ => None,
                };
                self.succeeded();
                match request {
                    Request::Telemetry { messages, .. } => {
                        for (id, _) in messages {
                            self.events.push_back(DeviceEvent::TelemetryAcknowledged(id));
                        }
                    }
                    Request::Receive if status == 204 => {
                        self.next_poll = Some(now + self.config.c2d_poll_interval);
                    }
                    Request::Receive => {
                        let Some((c2d, message)) = c2d else {
                            return Ok(());
                        };
                        self.held.insert(c2d.lock_token);
                        self.events.push_back(DeviceEvent::C2d(C2dMessage {
                            lock_token: Some(c2d.lock_token),
                            message,
                        }));
                        // A backlog drains back to back (spec file §6.6, Node's `drain`).
                        self.next_poll = Some(now);
                    }
                    Request::Settle { .. } => {}
                }
            }
            Verdict::Unauthorized => {
                self.close_link();
                self.stop(DisconnectReason::Unauthorized {
                    status,
                    error_code: error_code(&head),
                    description: rest::error_description(&body),
                });
                return Ok(());
            }
            Verdict::Refused if !matches!(request, Request::Receive) => {
                // The hub answered: the connection is sound.
                self.succeeded();
                match request {
                    Request::Telemetry { messages, .. } => {
                        let condition = format!("{status} {}", error_name(&head));
                        let description = rest::error_description(&body);
                        for (id, _) in messages {
                            self.events.push_back(DeviceEvent::TelemetryRejected {
                                id,
                                condition: condition.clone(),
                                description: description.clone(),
                            });
                        }
                    }
                    Request::Settle { lock, .. } => {
                        self.events.push_back(DeviceEvent::C2dLockLost(lock));
                    }
                    // Answered by the arm below.
                    Request::Receive => {}
                }
            }
            // A refused poll waits out a backoff too, so that a hub refusing every
            // poll is not asked in a loop.
            Verdict::Retry | Verdict::Refused => {
                self.pending = Some(request);
                self.close_link();
                let reason = DisconnectReason::HttpStatus {
                    status,
                    error_code: error_name(&head),
                    description: rest::error_description(&body),
                };
                self.fail_after(now, reason, retry_after(&head).map(|wait| now + wait));
                return Ok(());
            }
        }
        self.pump(now);
        Ok(())
    }

    /// A 2xx answer (or a refusal, which is an answer too): the connection works.
    fn succeeded(&mut self) {
        self.attempt = 0;
        if !self.reported_connected {
            self.reported_connected = true;
            self.events.push_back(DeviceEvent::Connected { session_present: false });
        }
    }

    fn violation(&mut self, now: Timestamp, error: ProtocolError) -> ProtocolError {
        self.close_link();
        self.fail(now, DisconnectReason::ProtocolViolation(error.clone()));
        error
    }

    /// Closes the transport from this side, if open or opening.
    fn close_link(&mut self) {
        if self.link != Link::Closed {
            self.outbox.push(Transmit::Close);
        }
        self.forget_link();
    }

    fn forget_link(&mut self) {
        self.link = Link::Closed;
        self.rx.clear();
        self.response = None;
    }

    /// The request failed in a way another attempt may fix: it goes again after
    /// the backoff.
    fn fail(&mut self, now: Timestamp, reason: DisconnectReason) {
        self.fail_after(now, reason, None);
    }

    /// [`fail`](Self::fail), retrying no sooner than `not_before` (a 429's or
    /// 503's `Retry-After`).
    fn fail_after(
        &mut self,
        now: Timestamp,
        reason: DisconnectReason,
        not_before: Option<Timestamp>,
    ) {
        if self.closing {
            self.close_link();
            self.stop(DisconnectReason::Closed);
            return;
        }
        let backoff = now + self.config.backoff.delay(self.attempt, &mut self.rng);
        let until = not_before.map_or(backoff, |t| t.max(backoff));
        self.attempt = self.attempt.saturating_add(1);
        self.retry_at = Some(until);
        self.reported_connected = false;
        self.events.push_back(DeviceEvent::Disconnected { reason, reconnect_at: Some(until) });
    }

    fn stop(&mut self, reason: DisconnectReason) {
        self.stopped = true;
        self.retry_at = None;
        self.events.push_back(DeviceEvent::Disconnected { reason, reconnect_at: None });
    }
}

/// The `Authorization` header value and when to sign it again: a token signed with
/// the device key, renewed at 80 % of its lifetime; a given token as it is;
/// nothing for X.509 (spec file §2.4). `None` when the key is not base64.
fn credentials(
    config: &DeviceConfig,
    now: Timestamp,
) -> Option<(Option<String>, Option<Timestamp>)> {
    Some(match &config.connection_string.authentication {
        Authentication::SharedAccessKey(key) => {
            let (token, renew_at) = signed_token(config, key, now)?;
            (Some(token.to_string()), Some(renew_at))
        }
        Authentication::SharedAccessSignature(token) => (Some(token.clone()), None),
        Authentication::X509 => (None, None),
    })
}

/// The `iothub-errorcode` of an answer, or empty.
fn error_code(head: &ResponseHead) -> String {
    String::from(head.header(ERROR_CODE_HEADER).unwrap_or_default())
}

/// The wait an answer's `Retry-After` asks for, in its delta-seconds form (RFC 9110
/// §10.2.3; the date form is not read), at most an hour, so that a wrong header
/// cannot park the device for good.
fn retry_after(head: &ResponseHead) -> Option<Duration> {
    let seconds: u64 = head.header("Retry-After")?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

/// What names an answer's error: its `iothub-errorcode`, else its status's reason
/// phrase (a proxy's answer has no IoT Hub code).
fn error_name(head: &ResponseHead) -> String {
    match head.header(ERROR_CODE_HEADER) {
        Some(code) if !code.is_empty() => String::from(code),
        _ => String::from(reason_phrase(head.status)),
    }
}

#[cfg(test)]
mod tests;
