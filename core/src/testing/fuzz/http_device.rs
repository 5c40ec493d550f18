//! The `http_device` target: a [`Device`] speaking HTTP (spec file §6) with three
//! telemetry messages queued before it dials, fed the fuzzer's bytes as the hub's
//! answers, with commands, time steps and broken transports between chunks.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use bytes::BytesMut;

use super::{MAX_TIMERS_PER_STEP, START, Schedule, assert_progress, with_schedules};
use crate::Protocol;
use crate::device::{Device, DeviceConfig, DeviceEvent, DispositionError, SendError};
use crate::http::{self, BodyDecoder, BodyLimits};
use crate::iothub::{Disposition, LockToken, Message};
use crate::sansio::{Connection, Transmit};
use crate::testing::Pair;
use crate::time::Duration;
use crate::time::Timestamp;

const MAX_QUEUED: usize = 8;
const MAX_IN_FLIGHT: usize = 3;
/// Telemetry queued before the fuzzer's stream: the first request is their batch.
const OPENING_TELEMETRY: usize = 3;

/// The first two bytes are the [`Schedule`]; the rest is what the hub writes, cut
/// into chunks, with telemetry, settlements, `poll_now`, time steps, broken
/// transports and a disconnect between chunks. Dials after the first fail as the
/// schedule says. Half the schedules answer as a hub does: each response the
/// stream frames whole goes only to a request, time moving on until the device
/// makes one, and no chunk spans two; the rest feed the stream as it comes, which
/// mostly tests the device's refusal of answers nobody asked for.
///
/// Properties: no panic; every byte the device writes on a connection makes whole
/// requests that re-parse with [`http::parse_request`] and name a device REST
/// route; bytes go out only on an open transport, and a dial only with none open;
/// each telemetry id is answered (acknowledged or rejected) at most once and only
/// if sent; `unacknowledged()` stays within the queue and a batch; a lock received
/// and not yet settled settles; `handle_timeout(now)` moves every deadline.
pub fn http_device(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut run = Run::new();
    for _ in 0..OPENING_TELEMETRY {
        run.send_telemetry();
    }
    run.drain(&mut schedule);
    let aligned = schedule.coin();
    // Bytes of the framed response being fed, in aligned runs.
    let mut response_left = 0;
    let mut offset = 0;
    while offset < stream.len() {
        if schedule.event() {
            match schedule.below(9) {
                0 | 1 => run.send_telemetry(),
                2 | 3 => run.settle(&mut schedule),
                4 | 5 => run.advance(schedule.time_step(), &mut schedule),
                6 => run.break_transport(),
                7 => run.device.poll_now(run.now),
                _ if schedule.below(4) == 0 => run.device.disconnect(run.now),
                _ => run.send_telemetry(),
            }
            run.drain(&mut schedule);
        }
        let rest = &stream[offset..];
        if aligned && response_left == 0 {
            if let Some((len, final_answer)) = response_len(rest) {
                if final_answer && !run.awaiting_answer() {
                    // A poll falls due within its interval.
                    run.advance(POLL_INTERVAL, &mut schedule);
                }
                if !final_answer || run.awaiting_answer() {
                    response_left = len;
                    run.answers += usize::from(final_answer);
                }
            }
        }
        let mut n = schedule.chunk(rest.len());
        if response_left > 0 {
            n = n.min(response_left);
            response_left -= n;
        }
        // A violation has already closed the connection.
        let _ = run.device.handle_input(run.now, &stream[offset..offset + n]);
        run.drain(&mut schedule);
        offset += n;
    }
    run.advance(schedule.time_step(), &mut schedule);
    run.break_transport();
    run.drain(&mut schedule);
}

struct Run {
    device: Device,
    now: Timestamp,
    online: bool,
    dials: u32,
    /// What the device wrote on the open connection and no request has used yet.
    written: BytesMut,
    /// Whole requests written on the open connection, and final answers begun to
    /// them (aligned runs).
    requests: usize,
    answers: usize,
    sent: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    locks: Vec<LockToken>,
}

impl Run {
    fn new() -> Run {
        let mut config = DeviceConfig::new(Pair::connection_string("dev1"));
        config.protocol = Protocol::Http;
        config.seed = 11;
        config.max_queued = MAX_QUEUED;
        config.max_in_flight = MAX_IN_FLIGHT;
        config.c2d_poll_interval = POLL_INTERVAL;
        let device = match Device::new(START, config) {
            Ok(device) => device,
            Err(e) => panic!("device config refused: {e}"),
        };
        Run {
            device,
            now: START,
            online: false,
            dials: 0,
            written: BytesMut::new(),
            requests: 0,
            answers: 0,
            sent: BTreeSet::new(),
            answered: BTreeSet::new(),
            locks: Vec::new(),
        }
    }

    fn send_telemetry(&mut self) {
        let n = self.sent.len();
        let mut message = Message::new(format!("{{\"n\":{n}}}"));
        message.message_id = Some(format!("m{n}"));
        message.properties.set("n", n.to_string());
        match self.device.send_telemetry(self.now, message) {
            Ok(id) => assert!(self.sent.insert(id.0), "telemetry id {} given twice", id.0),
            Err(SendError::QueueFull { .. } | SendError::Stopped) => {}
            Err(e) => panic!("valid telemetry refused: {e}"),
        }
    }

    fn settle(&mut self, schedule: &mut Schedule) {
        if self.locks.is_empty() {
            let unknown = LockToken::from_guid([7; 16]);
            assert_eq!(
                self.device.complete(self.now, &unknown),
                Err(DispositionError::UnknownLockToken(unknown))
            );
            return;
        }
        let lock = self.locks.remove(schedule.below(self.locks.len()));
        let disposition =
            [Disposition::Complete, Disposition::Reject, Disposition::Abandon][schedule.below(3)];
        assert_eq!(self.device.settle(self.now, &lock, disposition), Ok(()), "a held lock");
    }

    fn break_transport(&mut self) {
        if self.online {
            self.transport_gone();
            self.device.handle_close(self.now);
        }
    }

    fn transport_gone(&mut self) {
        self.online = false;
        self.written.clear();
        self.requests = 0;
        self.answers = 0;
    }

    /// A request on the open connection waits for its answer.
    fn awaiting_answer(&self) -> bool {
        self.online && self.requests > self.answers
    }

    fn advance(&mut self, step: Duration, schedule: &mut Schedule) {
        let target = self.now + step;
        for _ in 0..MAX_TIMERS_PER_STEP {
            match self.device.poll_timeout() {
                Some(deadline) if deadline <= target => {
                    self.now = self.now.max(deadline);
                    self.device.handle_timeout(self.now);
                    assert_progress(self.device.poll_timeout(), self.now);
                    self.drain(schedule);
                }
                _ => break,
            }
        }
        self.now = target;
    }

    fn drain(&mut self, schedule: &mut Schedule) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.device.poll_transmit() {
                moved = true;
                match transmit {
                    Transmit::Connect => {
                        assert!(!self.online, "dialing with a transport open");
                        self.dials += 1;
                        if self.dials > 1 && schedule.below(8) == 0 {
                            self.device.handle_close(self.now);
                        } else {
                            self.online = true;
                            self.device.handle_connected(self.now);
                        }
                    }
                    Transmit::Send(bytes) => {
                        assert!(self.online, "bytes sent with no transport open");
                        self.written.extend_from_slice(&bytes);
                        self.check_requests();
                    }
                    Transmit::Close => self.transport_gone(),
                }
            }
            while let Some(event) = self.device.poll_event() {
                moved = true;
                match event {
                    DeviceEvent::TelemetryAcknowledged(id)
                    | DeviceEvent::TelemetryRejected { id, .. } => {
                        assert!(self.sent.contains(&id.0), "unknown telemetry {}", id.0);
                        assert!(self.answered.insert(id.0), "{} answered twice", id.0);
                    }
                    DeviceEvent::C2d(c2d) => {
                        let lock = c2d.lock_token;
                        assert!(lock.is_some(), "an HTTP C2D message without its lock");
                        self.locks.extend(lock);
                    }
                    _ => {}
                }
            }
            assert!(
                self.device.unacknowledged() <= MAX_QUEUED + MAX_IN_FLIGHT,
                "{} unacknowledged",
                self.device.unacknowledged()
            );
            if !moved {
                return;
            }
        }
    }

    /// Requests are written whole: the bytes so far are complete requests, each a
    /// device REST route with a `Host`.
    fn check_requests(&mut self) {
        while !self.written.is_empty() {
            let (head, used) = match http::parse_request(&self.written, &http::Limits::default()) {
                Ok(Some(parsed)) => parsed,
                other => panic!("the device wrote a request that does not parse: {other:?}"),
            };
            assert!(head.check_host().is_ok(), "no Host");
            if let Err(e) = http::Route::parse(&head.method, &head.target) {
                panic!("{} {} is no device route: {e}", head.method, head.target);
            }
            let _ = self.written.split_to(used);
            let body = BodyDecoder::for_request(&head, &BodyLimits::default())
                .and_then(|mut d| d.decode(&mut self.written));
            assert!(matches!(body, Ok(Some(_))), "a request body is not whole: {body:?}");
            self.requests += 1;
        }
    }
}

/// The device's C2D poll interval here.
const POLL_INTERVAL: Duration = Duration::from_secs(60);

/// The length of the whole response at the start of `bytes` by its own framing,
/// and whether it is a final answer (not an interim 1xx); `None` when the bytes
/// frame no whole response (malformed, cut short, or a body that runs to the close).
fn response_len(bytes: &[u8]) -> Option<(usize, bool)> {
    let (head, used) = http::parse_response(bytes, &http::Limits::default()).ok()??;
    let final_answer = !(100..200).contains(&head.status);
    let mut decoder = BodyDecoder::for_response(&head, "GET", &BodyLimits::default()).ok()?;
    let mut body = BytesMut::from(bytes.get(used..)?);
    let before = body.len();
    decoder.decode(&mut body).ok()??;
    Some((used + before - body.len(), final_answer))
}

/// Hub answers: 204, a TV-15 `200 OK`, 412, 429, 503, 401 and a chunked `200 OK`,
/// in the orders a device meets them: its batch first, then the poll and the
/// re-poll that drains.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let no_content = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
    let tv15 = b"HTTP/1.1 200 OK\r\n\
        ETag: \"0f8fad5b-d9cb-469f-a165-70867728950e\"\r\n\
        iothub-messageid: msg-42\r\n\
        iothub-correlationid: corr-9\r\n\
        iothub-sequencenumber: 17\r\n\
        iothub-to: /devices/dev1/messages/deviceBound\r\n\
        iothub-enqueuedtime: 2024-01-02T03:04:05.0000000Z\r\n\
        iothub-expiry: 2024-01-02T04:04:05.0000000Z\r\n\
        iothub-deliverycount: 0\r\n\
        iothub-userid: myhub\r\n\
        iothub-ack: full\r\n\
        iothub-app-color: blue\r\n\
        Content-Length: 5\r\n\r\nhello"
        .to_vec();
    let chunked = b"HTTP/1.1 200 OK\r\n\
        ETag: \"6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f\"\r\n\
        Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        .to_vec();
    let error = |status: u16, reason: &str, code: &str| {
        let body = format!(r#"{{"Message":"ErrorCode:{code};x","ExceptionMessage":"t"}}"#);
        format!(
            "HTTP/1.1 {status} {reason}\r\niothub-errorcode: {code}\r\n\
             Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let streams = [
        [no_content.clone(), tv15.clone(), no_content.clone()].concat(),
        [no_content.clone(), chunked, no_content.clone()].concat(),
        [
            error(413, "Content Too Large", "MessageTooLarge"),
            tv15,
            error(412, "Precondition Failed", "DeviceMessageLockLost"),
        ]
        .concat(),
        [error(429, "Too Many Requests", "ThrottlingException"), no_content.clone()].concat(),
        [error(503, "Service Unavailable", "ServerError"), no_content].concat(),
        error(401, "Unauthorized", "IotHubUnauthorizedAccess"),
    ];
    with_schedules(&streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first seed, fed byte by byte, reaches past the batch and the first poll.
    #[test]
    fn first_seed_acknowledges_the_batch_and_delivers_c2d() {
        let seed = &seeds()[0];
        let (mut schedule, stream) = Schedule::split(seed);
        let mut run = Run::new();
        for _ in 0..OPENING_TELEMETRY {
            run.send_telemetry();
        }
        run.drain(&mut schedule);
        for byte in stream {
            let _ = run.device.handle_input(run.now, core::slice::from_ref(byte));
            run.drain(&mut schedule);
        }
        assert_eq!(run.answered.len(), OPENING_TELEMETRY);
        assert_eq!(run.locks.len(), 1);
        assert_eq!(run.device.unacknowledged(), 0);
    }
}
