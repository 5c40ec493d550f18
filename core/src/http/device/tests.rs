//! The HTTP device against a scripted hub: the test reads the request bytes the
//! device writes and feeds back raw response bytes, in simulated time.

use super::*;
use crate::Protocol;
use crate::http::parse_request;
use crate::iothub::{Ack, ConnectionString};
use crate::retry::Backoff;

/// TV-1's device, so that a token signed for an hour before TV-3's expiry is TV-3's.
const CONNECTION_STRING: &str = "HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// TV-3's token: signed at `T0` for 3600 s, it expires at 1 700 000 000.
const TV3_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
const T0: Timestamp = Timestamp::from_unix_secs(1_700_000_000 - 3600);
/// TV-15's lock token.
const LOCK: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

fn config() -> DeviceConfig {
    let mut config = DeviceConfig::new(ConnectionString::parse(CONNECTION_STRING).unwrap());
    config.protocol = Protocol::Http;
    config.client_type = String::from("hubwire-test/1");
    config.seed = 3;
    config
}

/// Telemetry only: no C2D polls to script.
fn telemetry_config() -> DeviceConfig {
    DeviceConfig { receive_c2d: false, ..config() }
}

/// TV-15's `200 OK` carrying a C2D message with `lock` and `body`.
fn c2d_response(lock: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\n\
         ETag: \"{lock}\"\r\n\
         iothub-messageid: msg-42\r\n\
         iothub-correlationid: corr-9\r\n\
         iothub-sequencenumber: 17\r\n\
         iothub-to: /devices/device1/messages/deviceBound\r\n\
         iothub-enqueuedtime: 2024-01-02T03:04:05.0000000Z\r\n\
         iothub-expiry: 2024-01-02T04:04:05.0000000Z\r\n\
         iothub-deliverycount: 0\r\n\
         iothub-userid: myhub\r\n\
         iothub-ack: full\r\n\
         iothub-app-color: blue\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An IoT Hub error answer (spec file §6.7).
fn error_response(status: u16, code: &str) -> Vec<u8> {
    let body = format!(r#"{{"Message":"ErrorCode:{code};no","ExceptionMessage":"x"}}"#);
    format!(
        "HTTP/1.1 {status} {}\r\niothub-errorcode: {code}\r\nContent-Length: {}\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    )
    .into_bytes()
}

/// The device under test and a scripted hub's view of it.
struct Scripted {
    device: DeviceSession,
    now: Timestamp,
    /// Request bytes written and not yet read by the test.
    wire: BytesMut,
    dials: usize,
    closes: usize,
    events: Vec<DeviceEvent>,
}

impl Scripted {
    fn new(config: DeviceConfig) -> Self {
        let mut s = Scripted {
            device: DeviceSession::new(T0, config).unwrap(),
            now: T0,
            wire: BytesMut::new(),
            dials: 0,
            closes: 0,
            events: Vec::new(),
        };
        s.drain();
        s
    }

    /// Takes transmits and events; opens every transport asked for at once.
    fn drain(&mut self) {
        loop {
            while let Some(e) = self.device.poll_event() {
                self.events.push(e);
            }
            match self.device.poll_transmit() {
                Some(Transmit::Connect) => {
                    self.dials += 1;
                    self.device.handle_connected(self.now);
                }
                Some(Transmit::Send(bytes)) => self.wire.extend_from_slice(&bytes),
                Some(Transmit::Close) => self.closes += 1,
                None => return,
            }
        }
    }

    /// The next whole request: its head and body.
    fn request(&mut self) -> (RequestHead, Bytes) {
        self.try_request().expect("a request")
    }

    fn try_request(&mut self) -> Option<(RequestHead, Bytes)> {
        let (head, used) = parse_request(&self.wire, &Limits::default()).unwrap()?;
        let _ = self.wire.split_to(used);
        let mut decoder = BodyDecoder::for_request(&head, &BodyLimits::default()).unwrap();
        let body = decoder.decode(&mut self.wire).unwrap().expect("a whole body");
        Some((head, body))
    }

    fn respond(&mut self, bytes: &[u8]) {
        self.device.handle_input(self.now, bytes).unwrap();
        self.drain();
    }

    fn send(&mut self, message: Message) -> TelemetryId {
        let id = self.device.send_telemetry(self.now, message).unwrap();
        self.drain();
        id
    }

    fn take_events(&mut self) -> Vec<DeviceEvent> {
        core::mem::take(&mut self.events)
    }

    /// Fires the next timer.
    fn fire(&mut self) -> Timestamp {
        let at = self.device.poll_timeout().expect("a timer");
        self.now = self.now.max(at);
        self.device.handle_timeout(self.now);
        self.drain();
        at
    }
}

/// TV-16's first message.
fn tv16_message() -> Message {
    let mut m = Message::new(&b"{\"t\":21.5}"[..]);
    m.message_id = Some(String::from("m1"));
    m.properties.set("unit", "C");
    m
}

#[test]
fn tv3_single_send_is_byte_exact_and_204_acknowledges_it() {
    let mut s = Scripted::new(telemetry_config());
    assert_eq!(s.dials, 0, "nothing to do, nothing dialled");
    let id = s.send(tv16_message());
    assert_eq!(s.dials, 1);
    let expected = format!(
        "POST /devices/device1/messages/events?api-version=2021-04-12 HTTP/1.1\r\n\
         Host: myhub.azure-devices.net\r\n\
         Authorization: {TV3_TOKEN}\r\n\
         User-Agent: hubwire-test/1\r\n\
         iothub-to: /devices/device1/messages/events\r\n\
         Content-Type: application/octet-stream\r\n\
         iothub-messageid: m1\r\n\
         iothub-app-unit: C\r\n\
         Content-Length: 10\r\n\
         \r\n\
         {{\"t\":21.5}}"
    );
    assert_eq!(core::str::from_utf8(&s.wire).unwrap(), expected);
    s.wire.clear();
    s.respond(NO_CONTENT);
    assert_eq!(
        s.take_events(),
        [DeviceEvent::Connected { session_present: false }, DeviceEvent::TelemetryAcknowledged(id)]
    );
    assert_eq!(s.device.unacknowledged(), 0);
}

#[test]
fn tv16_messages_queued_while_dialling_go_as_one_batch() {
    let mut s = Scripted::new(telemetry_config());
    let mut second = Message::new(&b"hello"[..]);
    second.properties.set("n", "2");
    let messages = [tv16_message(), second, Message::new(&b"third"[..])];
    // Dial, but let the transport open only after all three are queued.
    let mut ids = Vec::new();
    for m in &messages {
        ids.push(s.device.send_telemetry(s.now, m.clone()).unwrap());
    }
    assert_eq!(s.device.poll_transmit(), Some(Transmit::Connect));
    s.device.handle_connected(s.now);
    s.drain();
    let (head, body) = s.request();
    assert_eq!(head.method, "POST");
    assert_eq!(head.target, "/devices/device1/messages/events?api-version=2021-04-12");
    assert_eq!(head.header("Content-Type"), Some(batch::CONTENT_TYPE));
    assert_eq!(body, batch::encode(&messages).unwrap());
    assert_eq!(batch::decode(&body).unwrap(), messages);
    s.respond(NO_CONTENT);
    let acked: Vec<_> = s
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            DeviceEvent::TelemetryAcknowledged(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(acked, ids);
}

#[test]
fn spec_6_3_a_batch_holds_at_most_max_in_flight_messages_and_256_kib() {
    let mut s = Scripted::new(DeviceConfig { max_in_flight: 2, ..telemetry_config() });
    for n in 0..3 {
        let _ = s.device.send_telemetry(s.now, Message::new(format!("m{n}"))).unwrap();
    }
    s.drain();
    let (_, body) = s.request();
    assert_eq!(batch::decode(&body).unwrap().len(), 2);
    s.respond(NO_CONTENT);
    let (head, body) = s.request();
    assert_eq!(head.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(&body[..], b"m2");
    s.respond(NO_CONTENT);

    // Two 100 KiB messages fit in no 256 KiB batch once base64-encoded: singly.
    let big = || Message::new(alloc::vec![b'x'; 100 * 1024]);
    let _ = s.device.send_telemetry(s.now, big()).unwrap();
    let _ = s.device.send_telemetry(s.now, big()).unwrap();
    s.drain();
    let (_, body) = s.request();
    assert_eq!(body.len(), 100 * 1024, "the first alone, not base64");
}

#[test]
fn tv15_a_polled_message_is_shown_and_settled_by_delete_delete_reject_and_post_abandon() {
    let targets = [
        (
            Disposition::Complete,
            "DELETE",
            format!("/devices/device1/messages/deviceBound/{LOCK}?api-version=2021-04-12"),
        ),
        (
            Disposition::Reject,
            "DELETE",
            format!("/devices/device1/messages/deviceBound/{LOCK}?api-version=2021-04-12&reject"),
        ),
        (
            Disposition::Abandon,
            "POST",
            format!("/devices/device1/messages/deviceBound/{LOCK}/abandon?api-version=2021-04-12"),
        ),
    ];
    for (disposition, method, target) in targets {
        let mut s = Scripted::new(config());
        let (head, body) = s.request();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/devices/device1/messages/deviceBound?api-version=2021-04-12");
        assert_eq!(head.header("iothub-to"), Some("/devices/device1/messages/deviceBound"));
        assert_eq!(head.header("Content-Length"), None);
        assert!(body.is_empty());
        s.respond(&c2d_response(LOCK, "hi"));
        let events = s.take_events();
        let [DeviceEvent::Connected { .. }, DeviceEvent::C2d(c2d)] = events.as_slice() else {
            panic!("{events:?}");
        };
        let lock: LockToken = LOCK.parse().unwrap();
        assert_eq!(c2d.lock_token, Some(lock));
        assert_eq!(c2d.message.message_id.as_deref(), Some("msg-42"));
        assert_eq!(c2d.message.ack, Some(Ack::Full));
        assert_eq!(c2d.message.properties.get("color"), Some(Some("blue")));
        assert_eq!(&c2d.message.body[..], b"hi");
        // The re-poll that drains a backlog goes at once.
        let (head, _) = s.request();
        assert_eq!(head.method, "GET");
        // A settlement asked for while a poll is out goes next.
        s.device.settle(s.now, &lock, disposition).unwrap();
        s.drain();
        assert!(s.try_request().is_none(), "one request at a time");
        s.respond(NO_CONTENT);
        let (head, _) = s.request();
        assert_eq!((head.method.as_str(), head.target.as_str()), (method, target.as_str()));
        if method == "POST" {
            assert_eq!(head.header("Content-Length"), Some("0"));
        }
        s.respond(NO_CONTENT);
        assert!(s.take_events().is_empty());
        assert!(s.try_request().is_none());
        assert_eq!(
            s.device.settle(s.now, &lock, Disposition::Complete),
            Err(DispositionError::UnknownLockToken(lock)),
            "settled once"
        );
    }
}

#[test]
fn spec_6_5_unknown_lock_is_refused_at_once() {
    let mut s = Scripted::new(config());
    let lock: LockToken = LOCK.parse().unwrap();
    assert_eq!(
        s.device.settle(s.now, &lock, Disposition::Abandon),
        Err(DispositionError::UnknownLockToken(lock))
    );
}

#[test]
fn spec_6_5_412_reports_the_lock_lost() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    s.respond(&c2d_response(LOCK, ""));
    let _ = s.request();
    s.respond(NO_CONTENT);
    let lock: LockToken = LOCK.parse().unwrap();
    s.device.settle(s.now, &lock, Disposition::Complete).unwrap();
    s.drain();
    let _ = s.request();
    s.take_events();
    s.respond(&error_response(412, "DeviceMessageLockLost"));
    assert_eq!(s.take_events(), [DeviceEvent::C2dLockLost(lock)]);
    assert!(s.try_request().is_none(), "not retried");
}

#[test]
fn spec_6_7_400_and_413_reject_telemetry_without_resending() {
    for (status, code) in [(413, "MessageTooLarge"), (400, "ArgumentInvalid")] {
        let mut s = Scripted::new(telemetry_config());
        let id = s.send(Message::new(&b"x"[..]));
        let _ = s.request();
        s.respond(&error_response(status, code));
        assert_eq!(
            s.take_events(),
            [
                DeviceEvent::Connected { session_present: false },
                DeviceEvent::TelemetryRejected {
                    id,
                    condition: format!("{status} {code}"),
                    description: format!("ErrorCode:{code};no"),
                }
            ]
        );
        assert!(s.try_request().is_none());
        assert_eq!(s.device.unacknowledged(), 0);
    }
}

#[test]
fn spec_6_7_401_stops_the_device() {
    let mut s = Scripted::new(telemetry_config());
    let _ = s.send(Message::new(&b"x"[..]));
    let _ = s.request();
    s.respond(&error_response(401, "IotHubUnauthorizedAccess"));
    assert_eq!(
        s.take_events(),
        [DeviceEvent::Disconnected {
            reason: DisconnectReason::Unauthorized {
                status: 401,
                error_code: String::from("IotHubUnauthorizedAccess"),
                description: String::from("ErrorCode:IotHubUnauthorizedAccess;no"),
            },
            reconnect_at: None,
        }]
    );
    assert_eq!(s.closes, 1);
    assert_eq!(s.device.poll_timeout(), None);
    assert_eq!(s.device.send_telemetry(s.now, Message::new(&b"y"[..])), Err(SendError::Stopped));
}

#[test]
fn spec_6_7_429_and_503_retry_the_same_bytes_after_backoff() {
    let backoff = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60) };
    let mut s = Scripted::new(DeviceConfig { backoff, ..telemetry_config() });
    let id = s.send(tv16_message());
    let first = s.wire.clone();
    let _ = s.request();
    for (attempt, status) in [(0u32, 429u16), (1, 503)] {
        let failed_at = s.now;
        s.respond(&error_response(status, "ThrottlingException"));
        let events = s.take_events();
        let [DeviceEvent::Disconnected { reason, reconnect_at: Some(at) }] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert!(matches!(reason, DisconnectReason::HttpStatus { status: s, .. } if *s == status));
        let ceiling = 1000u64 << attempt;
        let delay = at.as_millis() - failed_at.as_millis();
        assert!((ceiling / 2..=ceiling).contains(&delay), "attempt {attempt}: {delay} ms");
        assert_eq!(s.device.poll_timeout(), Some(*at));
        assert_eq!(s.fire(), *at);
        assert_eq!(s.dials, 2 + attempt as usize, "a new connection after the close");
        assert_eq!(s.wire, first, "the same request again");
        let _ = s.request();
    }
    s.respond(NO_CONTENT);
    assert_eq!(
        s.take_events(),
        [DeviceEvent::Connected { session_present: false }, DeviceEvent::TelemetryAcknowledged(id)]
    );
}

#[test]
fn rfc_9110_10_2_3_retry_after_holds_the_retry_back_longer_than_the_backoff() {
    let mut s = Scripted::new(telemetry_config());
    s.send(tv16_message());
    let _ = s.request();
    let failed_at = s.now;
    s.respond(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n");
    let events = s.take_events();
    let [DeviceEvent::Disconnected { reason, reconnect_at: Some(at) }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(*at, failed_at + Duration::from_secs(120));
    // No iothub-errorcode: the reason phrase names the error.
    assert_eq!(reason.to_string(), "the hub answered HTTP 429 Too Many Requests");
}

#[test]
fn a_200_without_a_lock_token_backs_off_more_each_time_and_telemetry_goes_first() {
    let mut s = Scripted::new(config());
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let mut delays = Vec::new();
    for _ in 0..3 {
        let (head, _) = s.request();
        assert_eq!(head.method, "GET");
        let failed_at = s.now;
        assert!(s.device.handle_input(s.now, bad).is_err());
        s.drain();
        let events = s.take_events();
        let Some(DeviceEvent::Disconnected { reconnect_at: Some(at), .. }) = events.last() else {
            panic!("{events:?}");
        };
        delays.push(at.as_millis() - failed_at.as_millis());
        s.fire();
    }
    // Attempts 0, 1 and 2 of the default backoff: within 0.5–1 s, 1–2 s, 2–4 s.
    assert!(delays[2] >= 2000 && delays[1] >= 1000, "{delays:?}");
    // Telemetry queued meanwhile goes before the poll that failed.
    let _ = s.request();
    assert!(s.device.handle_input(s.now, bad).is_err());
    s.drain();
    s.send(Message::new(&b"t"[..]));
    assert!(s.try_request().is_none(), "nothing during the backoff");
    s.fire();
    let (head, _) = s.request();
    assert_eq!(head.method, "POST");
}

#[test]
fn no_response_in_time_closes_and_retries() {
    let mut s = Scripted::new(telemetry_config());
    let _ = s.send(Message::new(&b"x"[..]));
    let _ = s.request();
    let sent_at = s.now;
    assert_eq!(s.fire(), sent_at + Duration::from_secs(30));
    assert_eq!(s.closes, 1);
    let events = s.take_events();
    assert!(matches!(
        events.as_slice(),
        [DeviceEvent::Disconnected {
            reason: DisconnectReason::ResponseTimeout,
            reconnect_at: Some(_)
        }]
    ));
    // A late answer on the closed connection is not read.
    s.device.handle_input(s.now, NO_CONTENT).unwrap();
    s.fire();
    let _ = s.request();
    assert_eq!(s.dials, 2);
}

#[test]
fn a_transport_lost_mid_request_retries_after_reconnect() {
    let mut s = Scripted::new(telemetry_config());
    let id = s.send(Message::new(&b"x"[..]));
    let _ = s.request();
    s.device.handle_close(s.now);
    s.drain();
    assert!(matches!(
        s.take_events().as_slice(),
        [DeviceEvent::Disconnected { reason: DisconnectReason::TransportClosed, .. }]
    ));
    s.fire();
    let (_, body) = s.request();
    assert_eq!(&body[..], b"x");
    s.respond(NO_CONTENT);
    assert!(s.take_events().contains(&DeviceEvent::TelemetryAcknowledged(id)));
}

#[test]
fn spec_2_3_token_is_resigned_after_its_renewal_time_without_reconnecting() {
    let mut s = Scripted::new(DeviceConfig {
        keep_alive: Duration::from_secs(86_400),
        ..telemetry_config()
    });
    let _ = s.send(Message::new(&b"1"[..]));
    let (head, _) = s.request();
    assert_eq!(head.header("Authorization"), Some(TV3_TOKEN));
    s.respond(NO_CONTENT);
    // 80 % of 3600 s.
    s.now = T0 + Duration::from_secs(2879);
    let _ = s.send(Message::new(&b"2"[..]));
    let (head, _) = s.request();
    assert_eq!(head.header("Authorization"), Some(TV3_TOKEN), "not yet due");
    s.respond(NO_CONTENT);
    s.now = T0 + Duration::from_secs(2880);
    let _ = s.send(Message::new(&b"3"[..]));
    let (head, _) = s.request();
    let renewed = head.header("Authorization").unwrap();
    let expiry = s.now.as_unix_secs() + 3600;
    assert!(renewed.ends_with(&format!("&se={expiry}")), "{renewed}");
    assert_eq!((s.dials, s.closes), (1, 0), "the same connection");
}

#[test]
fn an_idle_connection_closes_quietly_and_the_next_send_dials_again() {
    let mut s = Scripted::new(telemetry_config());
    let _ = s.send(Message::new(&b"1"[..]));
    let _ = s.request();
    s.respond(NO_CONTENT);
    s.take_events();
    let answered = s.now;
    assert_eq!(s.fire(), answered + Duration::from_secs(240), "keep_alive");
    assert_eq!(s.closes, 1);
    assert!(s.take_events().is_empty(), "no error event");
    assert_eq!(s.device.poll_timeout(), None);
    let _ = s.send(Message::new(&b"2"[..]));
    assert_eq!(s.dials, 2);
    let (_, body) = s.request();
    assert_eq!(&body[..], b"2");
    // The hub closing an idle connection is no failure either.
    s.respond(NO_CONTENT);
    s.take_events();
    s.device.handle_close(s.now);
    s.drain();
    assert!(s.take_events().is_empty());
}

#[test]
fn a_chunked_c2d_answer_and_an_interim_100_read_whole() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    let response = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nETag: \"{LOCK}\"\r\n\
         Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    );
    for byte in response.as_bytes() {
        s.respond(core::slice::from_ref(byte));
    }
    let events = s.take_events();
    let [_, DeviceEvent::C2d(c2d)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(&c2d.message.body[..], b"abcde");
}

#[test]
fn a_body_until_close_ends_with_the_close() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    s.respond(format!("HTTP/1.1 200 OK\r\nETag: \"{LOCK}\"\r\n\r\nbody").as_bytes());
    s.device.handle_close(s.now);
    s.drain();
    let events = s.take_events();
    let [_, DeviceEvent::C2d(c2d)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(&c2d.message.body[..], b"body");
    // The drain re-poll dials again.
    let _ = s.request();
    assert_eq!(s.dials, 2);
}

#[test]
fn bytes_nobody_asked_for_and_malformed_answers_close_and_retry() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    assert!(s.device.handle_input(s.now, b"HTTP/9.9 200 OK\r\n\r\n").is_err());
    s.drain();
    assert_eq!(s.closes, 1);
    s.fire();
    let _ = s.request();
    s.respond(NO_CONTENT);
    assert!(s.device.handle_input(s.now, NO_CONTENT).is_err(), "an answer with no request out");
}

/// Drives only timers for 24 h, answering every poll with 204; returns the GETs.
fn polls_in_a_day(config: DeviceConfig) -> usize {
    let mut s = Scripted::new(config);
    let end = T0 + Duration::from_secs(24 * 3600);
    let mut gets = 0;
    loop {
        while let Some((head, _)) = s.try_request() {
            assert_eq!(head.method, "GET");
            gets += 1;
            s.respond(NO_CONTENT);
        }
        match s.device.poll_timeout() {
            Some(at) if at <= end => {
                s.now = at;
                s.device.handle_timeout(at);
                s.drain();
            }
            _ => return gets,
        }
    }
}

#[test]
fn spec_6_6_a_simulated_day_polls_58_times_by_default() {
    assert_eq!(polls_in_a_day(config()), 58, "t = 0 and every 25 minutes");
}

#[test]
fn spec_6_6_a_one_minute_interval_polls_1441_times_a_day() {
    let config = DeviceConfig { c2d_poll_interval: Duration::from_secs(60), ..config() };
    assert_eq!(polls_in_a_day(config), 1441);
}

#[test]
fn spec_6_6_a_backlog_drains_back_to_back_then_the_schedule_resumes() {
    let mut s = Scripted::new(config());
    let locks = [
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "0f8fad5b-d9cb-469f-a165-70867728950f",
        "0f8fad5b-d9cb-469f-a165-708677289510",
    ];
    for lock in locks {
        let (head, _) = s.request();
        assert_eq!(head.method, "GET");
        s.respond(&c2d_response(lock, "m"));
    }
    let _ = s.request();
    s.respond(NO_CONTENT);
    let c2d = s.take_events().iter().filter(|e| matches!(e, DeviceEvent::C2d(_))).count();
    assert_eq!(c2d, 3);
    assert_eq!(s.now, T0, "all at once");
    assert_eq!(s.device.poll_timeout(), Some(T0 + Duration::from_secs(240)), "idle close");
    s.fire();
    assert_eq!(s.device.poll_timeout(), Some(T0 + GUIDANCE_POLL_INTERVAL));
}

#[test]
fn poll_now_polls_at_once() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    s.respond(NO_CONTENT);
    s.now = T0 + Duration::from_secs(60);
    s.device.poll_now(s.now);
    s.drain();
    let (head, _) = s.request();
    assert_eq!(head.method, "GET");
}

#[test]
fn disconnect_closes_and_stops() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    s.device.disconnect(s.now);
    s.drain();
    assert_eq!(s.closes, 1);
    assert_eq!(
        s.take_events(),
        [DeviceEvent::Disconnected { reason: DisconnectReason::Closed, reconnect_at: None }]
    );
    assert_eq!(s.device.poll_timeout(), None);
}

#[test]
fn disconnect_sends_the_settlements_asked_for_then_closes() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    s.respond(&c2d_response(LOCK, "hi"));
    let lock: LockToken = LOCK.parse().unwrap();
    // The drain poll is on the wire when the application completes and disconnects.
    s.device.settle(s.now, &lock, Disposition::Complete).unwrap();
    s.device.disconnect(s.now);
    s.drain();
    s.take_events();
    let (head, _) = s.request();
    assert_eq!(head.method, "GET");
    s.respond(NO_CONTENT);
    let (head, _) = s.request();
    assert_eq!(head.method, "DELETE");
    assert_eq!(s.closes, 0, "the settlement goes before the close");
    s.respond(NO_CONTENT);
    assert_eq!(s.closes, 1);
    assert_eq!(
        s.take_events(),
        [DeviceEvent::Disconnected { reason: DisconnectReason::Closed, reconnect_at: None }]
    );
    assert!(s.try_request().is_none(), "no poll after the disconnect");
    assert_eq!(s.device.poll_timeout(), None);
}

#[test]
fn a_settlement_that_fails_while_closing_is_not_retried() {
    let mut s = Scripted::new(config());
    let _ = s.request();
    s.respond(&c2d_response(LOCK, "hi"));
    let _ = s.request();
    s.respond(NO_CONTENT);
    let lock: LockToken = LOCK.parse().unwrap();
    s.device.settle(s.now, &lock, Disposition::Reject).unwrap();
    s.device.disconnect(s.now);
    s.drain();
    s.take_events();
    let _ = s.request();
    s.device.handle_close(s.now);
    s.drain();
    assert_eq!(
        s.take_events(),
        [DeviceEvent::Disconnected { reason: DisconnectReason::Closed, reconnect_at: None }]
    );
    assert_eq!(s.device.poll_timeout(), None);
    assert_eq!(s.dials, 1);
}

#[test]
fn send_telemetry_refuses_what_no_request_can_carry() {
    let mut s = Scripted::new(DeviceConfig { max_queued: 1, ..telemetry_config() });
    let mut bad = Message::new(&b"x"[..]);
    bad.properties.set("has space", "v");
    assert!(matches!(s.device.send_telemetry(s.now, bad), Err(SendError::Unencodable(_))));
    let huge = Message::new(alloc::vec![0; MAX_TELEMETRY_SIZE + 1]);
    assert!(matches!(s.device.send_telemetry(s.now, huge), Err(SendError::TooLarge { .. })));
    // One waits in the queue while dialling; the next finds it full.
    s.device.send_telemetry(s.now, Message::new(&b"1"[..])).unwrap();
    assert_eq!(
        s.device.send_telemetry(s.now, Message::new(&b"2"[..])),
        Err(SendError::QueueFull { capacity: 1 })
    );
}

#[test]
fn spec_6_6_poll_interval_warning_below_25_minutes_only() {
    assert!(poll_interval_warning(Duration::from_secs(60)).is_some());
    assert!(poll_interval_warning(Duration::from_secs(25 * 60 - 1)).is_some());
    assert_eq!(poll_interval_warning(GUIDANCE_POLL_INTERVAL), None);
    assert_eq!(poll_interval_warning(Duration::from_secs(3600)), None);
}

#[test]
fn device_speaks_http_and_poll_now_does_nothing_over_mqtt() {
    let mut device = crate::device::Device::new(T0, config()).unwrap();
    assert_eq!(device.protocol(), Protocol::Http);
    use crate::sansio::Connection;
    assert_eq!(device.poll_transmit(), Some(Transmit::Connect), "the first poll");
    let mqtt = DeviceConfig { protocol: Protocol::Mqtt, ..config() };
    let mut device = crate::device::Device::new(T0, mqtt).unwrap();
    while device.poll_transmit().is_some() {}
    device.poll_now(T0);
    assert_eq!(device.poll_transmit(), None);
}

/// The HTTP device against the hub engine, joined in memory, in simulated time.
mod with_the_hub {
    use super::*;
    use crate::hub::{HubConfig, HubEvent, Outcome};
    use crate::testing::Pair;

    fn pair() -> (Pair, usize) {
        let mut pair = Pair::new(HubConfig::default());
        let i = pair.add_device("dev1", |c| c.protocol = Protocol::Http);
        pair.drive();
        (pair, i)
    }

    fn outcomes(pair: &Pair) -> Vec<Outcome> {
        let settled = pair.hub_events.iter().filter_map(|e| match e {
            HubEvent::C2dSettled(s) => Some(s.outcome),
            _ => None,
        });
        settled.collect()
    }

    #[test]
    fn telemetry_single_and_batched_is_stored_and_acknowledged() {
        let (mut pair, i) = pair();
        let mut first = Message::new(&b"one"[..]);
        first.properties.set("unit", "C");
        pair.send_telemetry(i, first).unwrap();
        // Queued together while nothing else is on the wire: one batch.
        let now = pair.now;
        for body in ["two", "three"] {
            pair.devices[i].device.send_telemetry(now, Message::new(body.as_bytes())).unwrap();
        }
        pair.drive();
        assert_eq!(
            pair.stored_bodies("dev1"),
            ["one", "two", "three"].map(|b| Bytes::from_static(b.as_bytes()))
        );
        let stored: Vec<_> = pair.stored.device("dev1").collect();
        assert_eq!(stored[0].message.properties.get("unit"), Some(Some("C")));
        let acks = pair.devices[i]
            .take_events()
            .into_iter()
            .filter(|e| matches!(e, DeviceEvent::TelemetryAcknowledged(_)))
            .count();
        assert_eq!(acks, 3);
        assert_eq!(pair.devices[i].device.unacknowledged(), 0);
    }

    #[test]
    fn c2d_arrives_at_the_next_poll_and_is_completed_rejected_and_abandoned() {
        let (mut pair, i) = pair();
        for id in ["complete", "reject", "abandon"] {
            let mut m = Message::new(id.as_bytes());
            m.message_id = Some(String::from(id));
            pair.send_c2d("dev1", m).unwrap();
        }
        assert!(pair.c2d_received(i).is_empty(), "polled at start, before the messages");
        pair.advance(GUIDANCE_POLL_INTERVAL);
        // The first poll's answer is followed by polls back to back; settling each
        // as it comes drains the queue.
        for (n, disposition) in [Disposition::Complete, Disposition::Reject, Disposition::Abandon]
            .into_iter()
            .enumerate()
        {
            let received = pair.c2d_received(i);
            let lock = received[n].lock_token.unwrap();
            pair.settle(i, &lock, disposition).unwrap();
        }
        // Given back, it comes at the next scheduled poll.
        pair.advance(GUIDANCE_POLL_INTERVAL);
        let received = pair.c2d_received(i);
        let ids: Vec<_> = received.iter().map(|c| c.message.message_id.clone().unwrap()).collect();
        assert_eq!(ids, ["complete", "reject", "abandon", "abandon"]);
        assert_ne!(received[2].lock_token, received[3].lock_token, "a new lock");
        pair.settle(i, &received[3].lock_token.unwrap(), Disposition::Complete).unwrap();
        assert_eq!(
            outcomes(&pair),
            [
                Outcome::Completed,
                Outcome::Rejected,
                Outcome::Abandoned { delivery_count: 1 },
                Outcome::Completed
            ]
        );
    }

    #[test]
    fn a_lock_held_past_its_timeout_is_lost_and_the_message_comes_again() {
        let (mut pair, i) = pair();
        pair.send_c2d("dev1", Message::new(&b"late"[..])).unwrap();
        pair.devices[i].device.poll_now(pair.now);
        pair.drive();
        let first = pair.c2d_received(i)[0].lock_token.unwrap();
        pair.advance(Duration::from_secs(61));
        pair.settle(i, &first, Disposition::Complete).unwrap();
        let lost = DeviceEvent::C2dLockLost(first);
        assert!(pair.devices[i].events.contains(&lost), "{:?}", pair.devices[i].events);
        pair.devices[i].device.poll_now(pair.now);
        pair.drive();
        let received = pair.c2d_received(i);
        assert_eq!(received.len(), 2);
        assert_eq!(&received[1].message.body[..], b"late");
        assert_ne!(received[1].lock_token, Some(first));
        assert!(outcomes(&pair).is_empty());
    }

    #[test]
    fn a_wrong_key_stops_the_device_with_the_hubs_401() {
        let mut pair = Pair::new(HubConfig::default());
        pair.register("dev1");
        let mut config = DeviceConfig::new(Pair::connection_string("dev1"));
        config.protocol = Protocol::Http;
        config.connection_string.authentication =
            Authentication::SharedAccessKey(String::from("d3Jvbmcga2V5"));
        let i = pair.add_device_with(config);
        pair.drive();
        let events = pair.devices[i].take_events();
        let Some(DeviceEvent::Disconnected { reason, reconnect_at: None }) = events.last() else {
            panic!("{events:?}");
        };
        assert!(
            matches!(reason, DisconnectReason::Unauthorized { status: 401, error_code, .. } if error_code == "IotHubUnauthorized"),
            "{reason:?}"
        );
    }
}
