//! The hub's REST endpoints under [`Authentication::Delegated`]: a field gateway's
//! downstream, where the runtime judges every request's token and fetches C2D
//! messages upstream when a device polls an empty queue.

use super::*;
use crate::hub::{AuthRequest, Authentication, C2dRequest};
use crate::sansio::ConnectionId;

/// The hub the device's token names, not this one.
const UPSTREAM: &str = "myhub.azure-devices.net";

fn delegated() -> Rest {
    Rest::with(HubConfig { authentication: Authentication::Delegated, ..HubConfig::default() })
}

/// `device1`'s token for the upstream hub, signed with a key this hub does not
/// know, expiring `valid` after now.
fn upstream_token(rest: &Rest, resource: &str, valid: Duration) -> String {
    match SasToken::sign(resource, OTHER_KEY, rest.pair.now + valid, None) {
        Ok(token) => token.to_string(),
        Err(e) => panic!("cannot sign: {e}"),
    }
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

/// A request of `device1` carrying `token`.
fn request_as(method: &str, target: &str, token: &str, body: &[u8]) -> Vec<u8> {
    request_with(method, target, &[("Host", "localhost"), ("Authorization", token)], body)
}

/// A request of `device1` with its upstream token.
fn request(rest: &Rest, method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let token = upstream_token(rest, &format!("{UPSTREAM}/devices/device1"), hour());
    request_as(method, target, &token, body)
}

fn poll(rest: &Rest) -> Vec<u8> {
    request(rest, "GET", &format!("/devices/device1/messages/deviceBound{Q}"), b"")
}

/// Every authentication asked for so far: request, identity, token, host, protocol.
fn auth_requests(rest: &Rest) -> Vec<(AuthRequest, Identity, String, String, Protocol)> {
    rest.pair
        .hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::AuthenticationRequested {
                request,
                identity,
                token,
                host_name,
                protocol,
                ..
            } => Some((*request, identity.clone(), token.clone(), host_name.clone(), *protocol)),
            _ => None,
        })
        .collect()
}

/// The last authentication asked for.
fn last_auth(rest: &Rest) -> AuthRequest {
    match auth_requests(rest).last() {
        Some((request, ..)) => *request,
        None => panic!("no authentication asked: {:?}", rest.pair.hub_events),
    }
}

/// Every fetch asked for so far: request, connection, device.
fn fetches(rest: &Rest) -> Vec<(C2dRequest, ConnectionId, String)> {
    rest.pair
        .hub_events
        .iter()
        .filter_map(|e| match e {
            HubEvent::C2dRequested { request, connection, device_id } => {
                Some((*request, *connection, device_id.clone()))
            }
            _ => None,
        })
        .collect()
}

fn last_fetch(rest: &Rest) -> C2dRequest {
    match fetches(rest).last() {
        Some((request, ..)) => *request,
        None => panic!("no fetch asked: {:?}", rest.pair.hub_events),
    }
}

/// The runtime's answer to the last authentication.
fn judge(rest: &mut Rest, result: Result<(), ErrorCode>) -> bool {
    let request = last_auth(rest);
    let now = rest.pair.now;
    let waited = rest.pair.hub.authenticated(now, request, result);
    rest.pair.drive();
    waited
}

/// The runtime's answer to the last fetch, after queueing `fetched` if any.
fn fetched(rest: &mut Rest, fetched: Option<Message>) -> bool {
    let request = last_fetch(rest);
    if let Some(message) = fetched {
        assert!(rest.pair.send_c2d("device1", message).is_ok());
    }
    let now = rest.pair.now;
    let waited = rest.pair.hub.c2d_fetched(now, request);
    rest.pair.drive();
    waited
}

/// The runtime answers every question asked so far (Ok, nothing fetched). Returns
/// whether one was still waiting.
fn answer_everything(rest: &mut Rest) -> bool {
    let now = rest.pair.now;
    let mut waited = false;
    for (request, ..) in auth_requests(rest) {
        waited |= rest.pair.hub.authenticated(now, request, Ok(()));
    }
    for (request, ..) in fetches(rest) {
        waited |= rest.pair.hub.c2d_fetched(now, request);
    }
    rest.pair.drive();
    waited
}

/// A poll sent and authenticated, now waiting for its fetch.
fn fetching() -> Rest {
    let mut rest = delegated();
    let get = poll(&rest);
    rest.send(&get);
    assert!(judge(&mut rest, Ok(())));
    assert_eq!(fetches(&rest).len(), 1);
    assert!(rest.answers().is_empty(), "answered before the fetch");
    rest
}

#[test]
fn a_send_is_held_until_the_runtime_accepts_the_token_then_stored_and_204() {
    let mut rest = delegated();
    let post = request(&rest, "POST", &events_target(), b"up");
    rest.send(&post);
    assert_eq!(auth_requests(&rest).len(), 1);
    assert!(rest.answers().is_empty(), "answered before the token was judged");
    assert!(rest.pair.stored.is_empty(), "stored before the token was judged");
    assert!(judge(&mut rest, Ok(())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
    assert_eq!(rest.pair.stored_bodies("device1"), [Bytes::from_static(b"up")]);
    assert!(!rest.closed());
}

#[test]
fn an_unregistered_device_is_served_once_the_runtime_accepts_it() {
    let mut rest = delegated();
    let target = format!("/devices/stranger/messages/events{Q}");
    let token = upstream_token(&rest, &format!("{UPSTREAM}/devices/stranger"), hour());
    rest.send(&request_as("POST", &target, &token, b"s"));
    assert!(judge(&mut rest, Ok(())));
    assert_eq!(rest.answers()[0].0.status, 204);
    assert_eq!(rest.pair.stored_bodies("stranger"), [Bytes::from_static(b"s")]);
}

#[test]
fn the_request_carries_the_token_the_identity_the_sr_host_and_protocol_http() {
    let mut rest = delegated();
    let token = upstream_token(&rest, &format!("{UPSTREAM}/devices/device1"), hour());
    rest.send(&request_as("POST", &events_target(), &token, b"x"));
    let asked = auth_requests(&rest);
    assert_eq!(asked.len(), 1);
    let (_, identity, sent, host_name, protocol) = &asked[0];
    assert_eq!(identity, &Identity::device("device1"));
    assert_eq!(sent, &token);
    assert_eq!(host_name, UPSTREAM);
    assert_eq!(*protocol, Protocol::Http);
}

#[test]
fn the_sr_host_is_read_past_a_scheme_and_keeps_its_port() {
    for (resource, host) in [
        (format!("https://{UPSTREAM}/devices/device1"), UPSTREAM),
        (format!("{UPSTREAM}:443/devices/device1"), "myhub.azure-devices.net:443"),
    ] {
        let mut rest = delegated();
        let token = upstream_token(&rest, &resource, hour());
        rest.send(&request_as("POST", &events_target(), &token, b"x"));
        let asked = auth_requests(&rest);
        assert_eq!(asked.len(), 1, "{resource}");
        assert_eq!(asked[0].3, host, "{resource}");
    }
}

#[test]
fn a_refusal_is_401_with_the_runtimes_code_and_nothing_is_stored() {
    for code in [ErrorCode::IOT_HUB_UNAUTHORIZED, ErrorCode::DEVICE_NOT_FOUND] {
        let mut rest = delegated();
        let post = request(&rest, "POST", &events_target(), b"x");
        rest.send(&post);
        assert!(judge(&mut rest, Err(code)));
        let answers = rest.answers();
        assert_eq!(answers.len(), 1);
        assert_hub_error(&answers[0].0, &answers[0].1, 401, code);
        assert!(rest.pair.stored.is_empty());
        assert_eq!(rest.refusals(), [(Some(Identity::device("device1")), code)]);
        // The framing was read whole: the connection serves the next request.
        assert!(!rest.closed());
    }
}

#[test]
fn an_expired_or_malformed_token_is_401_without_asking_the_runtime() {
    let mut rest = delegated();
    let resource = format!("{UPSTREAM}/devices/device1");
    // Expired six minutes ago: past the five minutes of skew (spec file §2.3).
    let expired = match SasToken::sign(
        &resource,
        OTHER_KEY,
        rest.pair.now.saturating_sub(Duration::from_secs(360)),
        None,
    ) {
        Ok(token) => token.to_string(),
        Err(e) => panic!("cannot sign: {e}"),
    };
    for token in [expired.as_str(), "not a token", "SharedAccessSignature sig=x&se=1"] {
        let (head, body) = rest.exchange(&request_as("POST", &events_target(), token, b"x"));
        assert_hub_error(&head, &body, 401, ErrorCode::IOT_HUB_UNAUTHORIZED);
    }
    assert!(auth_requests(&rest).is_empty());
    assert!(rest.pair.stored.is_empty());
}

#[test]
fn a_token_for_another_device_or_a_module_is_401_without_asking_the_runtime() {
    let mut rest = delegated();
    for resource in [
        format!("{UPSTREAM}/devices/device2"),
        format!("{UPSTREAM}/devices/device1/modules/m1"),
        format!("{UPSTREAM}/devices"),
    ] {
        let token = upstream_token(&rest, &resource, hour());
        let (head, body) = rest.exchange(&request_as("POST", &events_target(), &token, b"x"));
        assert_hub_error(&head, &body, 401, ErrorCode::IOT_HUB_UNAUTHORIZED);
    }
    assert!(auth_requests(&rest).is_empty(), "{:?}", auth_requests(&rest));
    assert!(rest.pair.stored.is_empty());
}

#[test]
fn a_request_not_judged_within_the_request_timeout_is_504_and_a_late_answer_is_ignored() {
    let mut rest = delegated();
    let post = request(&rest, "POST", &events_target(), b"x");
    rest.send(&post);
    rest.pair.advance(Duration::from_secs(29));
    assert!(rest.answers().is_empty());
    rest.pair.advance(Duration::from_secs(2));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_hub_error(&answers[0].0, &answers[0].1, 504, ErrorCode::GATEWAY_TIMEOUT);
    assert!(!judge(&mut rest, Ok(())));
    assert!(rest.answers().is_empty());
    assert!(rest.pair.stored.is_empty());
    assert!(!rest.closed());
}

#[test]
fn an_answer_after_the_client_closed_is_ignored() {
    let mut rest = delegated();
    let post = request(&rest, "POST", &events_target(), b"x");
    rest.send(&post);
    let conn = rest.conn;
    rest.pair.raw_close(conn);
    assert!(!judge(&mut rest, Ok(())));
    // A poll closed while its fetch was out.
    let mut rest = fetching();
    let conn = rest.conn;
    rest.pair.raw_close(conn);
    assert!(!fetched(&mut rest, None));
}

#[test]
fn every_request_is_judged_and_an_answer_counts_once() {
    let mut rest = delegated();
    for n in 1..=2 {
        let post = request(&rest, "POST", &events_target(), b"x");
        rest.send(&post);
        assert_eq!(auth_requests(&rest).len(), n);
        // The runtime answers at once, as a gateway does for a token it holds.
        assert!(judge(&mut rest, Ok(())));
        assert!(!judge(&mut rest, Ok(())));
        assert_eq!(rest.answers().len(), 1);
    }
    let requests: Vec<AuthRequest> = auth_requests(&rest).iter().map(|a| a.0).collect();
    assert_ne!(requests[0], requests[1], "a request id is never reused");
}

#[test]
fn a_poll_of_an_empty_queue_asks_for_a_fetch_and_takes_what_was_fetched() {
    let mut rest = fetching();
    let (_, connection, device_id) = fetches(&rest).remove(0);
    assert_eq!(device_id, "device1");
    assert_eq!(rest.pair.raw[rest.conn].connection, Some(connection));
    assert!(fetched(&mut rest, Some(tv15_message())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    let (head, body) = &answers[0];
    assert_eq!(head.status, 200);
    assert_eq!(&body[..], b"{\"on\":true}");
    assert_eq!(head.header("iothub-messageid"), Some("msg-42"));
    assert!(head.header("etag").is_some());
}

#[test]
fn a_fetch_that_found_nothing_is_204() {
    let mut rest = fetching();
    assert!(fetched(&mut rest, None));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
    assert!(!fetched(&mut rest, None), "answered once");
}

#[test]
fn a_fetch_not_answered_within_the_request_timeout_is_204_and_loses_nothing() {
    let mut rest = fetching();
    rest.pair.advance(Duration::from_secs(29));
    assert!(rest.answers().is_empty());
    rest.pair.advance(Duration::from_secs(2));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
    // The runtime queues late: its answer finds nothing waiting, and the message
    // waits for the next poll.
    assert!(!fetched(&mut rest, Some(Message::new("late"))));
    let get = poll(&rest);
    rest.send(&get);
    assert!(judge(&mut rest, Ok(())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 200);
    assert_eq!(&answers[0].1[..], b"late");
    assert_eq!(fetches(&rest).len(), 1, "the queued message needed no fetch");
}

#[test]
fn a_poll_of_a_queue_with_a_message_is_200_without_a_fetch() {
    let mut rest = delegated();
    assert!(rest.pair.send_c2d("device1", Message::new("local")).is_ok());
    let get = poll(&rest);
    rest.send(&get);
    assert!(judge(&mut rest, Ok(())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 200);
    assert_eq!(&answers[0].1[..], b"local");
    assert!(fetches(&rest).is_empty());
}

#[test]
fn a_fetched_message_is_completed_with_its_lock() {
    let mut rest = fetching();
    assert!(fetched(&mut rest, Some(Message::new("down"))));
    let answers = rest.answers();
    let lock = match read_c2d(&answers[0].0.headers, answers[0].1.clone()) {
        Ok((c2d, _)) => c2d.lock_token,
        Err(e) => panic!("unreadable C2D answer: {e}"),
    };
    let target = format!("/devices/device1/messages/deviceBound/{lock}{Q}");
    let delete = request(&rest, "DELETE", &target, b"");
    rest.send(&delete);
    assert!(rest.settled().is_empty(), "settled before the token was judged");
    assert!(judge(&mut rest, Ok(())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
    assert_eq!(rest.settled(), [Outcome::Completed]);
}

#[test]
fn a_pipelined_request_waits_behind_a_held_one_and_is_answered_after_it() {
    let mut rest = delegated();
    let mut bytes = poll(&rest);
    bytes.extend_from_slice(&request(&rest, "POST", &events_target(), b"second"));
    rest.send(&bytes);
    // Only the first is read: the second waits for its answer.
    assert_eq!(auth_requests(&rest).len(), 1);
    assert!(judge(&mut rest, Ok(())));
    assert_eq!(auth_requests(&rest).len(), 1, "read while the poll waits for its fetch");
    assert!(fetched(&mut rest, Some(Message::new("down"))));
    assert_eq!(auth_requests(&rest).len(), 2);
    assert!(judge(&mut rest, Ok(())));
    let statuses: Vec<u16> = rest.answers().iter().map(|(h, _)| h.status).collect();
    assert_eq!(statuses, [200, 204]);
    assert_eq!(rest.pair.stored_bodies("device1"), [Bytes::from_static(b"second")]);
}

#[test]
fn connection_close_on_a_held_request_is_honoured() {
    let mut rest = delegated();
    let token = upstream_token(&rest, &format!("{UPSTREAM}/devices/device1"), hour());
    let headers =
        [("Host", "localhost"), ("Authorization", token.as_str()), ("Connection", "close")];
    let mut bytes = request_with("POST", &events_target(), &headers, b"x");
    // Nothing after the close is read (RFC 9112 §9.6).
    bytes.extend_from_slice(&request(&rest, "POST", &events_target(), b"y"));
    rest.send(&bytes);
    assert!(judge(&mut rest, Ok(())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.header("connection"), Some("close"));
    assert!(rest.closed());
    assert_eq!(auth_requests(&rest).len(), 1);
    assert_eq!(rest.pair.stored_bodies("device1"), [Bytes::from_static(b"x")]);
}

#[test]
fn under_the_registry_an_empty_poll_is_204_without_a_fetch() {
    let mut rest = Rest::new();
    let get = rest.request("GET", &format!("/devices/device1/messages/deviceBound{Q}"), &[], b"");
    assert_eq!(rest.exchange(&get).0.status, 204);
    assert!(fetches(&rest).is_empty());
    assert!(auth_requests(&rest).is_empty());
}

proptest! {
    /// However the bytes of a pipelined poll and send are cut, the runtime is
    /// asked the same things and the answers are those of the whole write.
    #[test]
    fn any_split_of_a_pipelined_pair_under_delegation_gives_the_same_answers(
        cuts in proptest::collection::vec(0usize..4000, 0..6),
    ) {
        let mut rest = delegated();
        let mut bytes = poll(&rest);
        bytes.extend_from_slice(&request(&rest, "POST", &events_target(), b"second"));
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            rest.send(&bytes[start..cut.max(start)]);
            start = cut.max(start);
            // The runtime answers whatever it was asked, at once.
            while answer_everything(&mut rest) {}
        }
        let statuses: Vec<u16> = rest.answers().iter().map(|(h, _)| h.status).collect();
        prop_assert_eq!(statuses, vec![204, 204]);
        prop_assert_eq!(auth_requests(&rest).len(), 2);
        prop_assert_eq!(fetches(&rest).len(), 1);
        prop_assert_eq!(rest.pair.stored_bodies("device1"), vec![Bytes::from_static(b"second")]);
    }
}

#[test]
fn more_than_a_request_behind_a_held_one_is_dropped_and_the_answer_closes() {
    let mut rest = delegated();
    let post = request(&rest, "POST", &events_target(), b"x");
    rest.send(&post);
    // More than a whole request can take: head, body and chunk framing limits.
    rest.send(&vec![b'a'; 400 * 1024]);
    assert!(judge(&mut rest, Ok(())));
    let answers = rest.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.status, 204);
    assert_eq!(answers[0].0.header("connection"), Some("close"));
    assert!(rest.closed());
    assert_eq!(auth_requests(&rest).len(), 1);
}

#[test]
fn a_runtime_tells_a_polling_device_from_a_pushed_one_by_protocol() {
    let mut rest = delegated();
    let connect = rest.pair.connect_packet("device2");
    let mqtt = rest.pair.raw_connect();
    rest.pair.raw_send_packet(mqtt, &crate::mqtt::Packet::Connect(connect));
    let post = request(&rest, "POST", &events_target(), b"x");
    rest.send(&post);
    let asked: Vec<(Identity, Protocol)> = auth_requests(&rest)
        .into_iter()
        .map(|(_, identity, _, _, protocol)| (identity, protocol))
        .collect();
    assert_eq!(
        asked,
        [
            (Identity::device("device2"), Protocol::Mqtt),
            (Identity::device("device1"), Protocol::Http)
        ]
    );
}
