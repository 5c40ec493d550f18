use super::*;
use crate::amqp::connection::ConnectionEvent;
use crate::amqp::frame::{Frame, FrameKind, FrameLimits};
use crate::amqp::performative::{Attach, Disposition, Open, Role};
use crate::sansio::Transmit;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use bytes::BytesMut;
use proptest::prelude::*;

const T0: Timestamp = Timestamp::from_unix_secs(1_700_000_000);

fn open(container: &'static str, channel_max: u16) -> Open {
    let mut open = Open::new(Utf8Bytes::from_static(container));
    open.max_frame_size = 4096;
    open.channel_max = channel_max;
    open
}

fn config(incoming_window: u32) -> SessionConfig {
    SessionConfig { incoming_window, ..SessionConfig::default() }
}

fn transfer(handle: Handle, more: bool) -> Transfer {
    Transfer {
        handle,
        delivery_tag: Some(Bytes::from_static(b"t")),
        message_format: Some(0),
        more,
        ..Transfer::default()
    }
}

/// A connection with sessions on top, and what it produced.
struct Side {
    conn: Connection,
    sessions: Sessions,
    events: Vec<SessionEvent>,
    errors: Vec<SessionError>,
    closed: Option<ConnectionEvent>,
}

impl Side {
    fn new(conn: Connection, config: SessionConfig) -> Side {
        Side { conn, sessions: Sessions::new(config), events: vec![], errors: vec![], closed: None }
    }

    fn drain(&mut self) -> Vec<u8> {
        let mut out = vec![];
        while let Some(t) = self.conn.poll_transmit() {
            if let Transmit::Send(b) = t {
                out.extend_from_slice(&b);
            }
        }
        out
    }

    fn feed(&mut self, now: Timestamp, bytes: &[u8]) {
        let _ = self.conn.handle_input(now, bytes);
        while let Some(e) = self.conn.poll_event() {
            match e {
                ConnectionEvent::Frame { channel, performative, payload } => {
                    if let Err(e) = self.sessions.handle_frame(
                        &mut self.conn,
                        now,
                        channel,
                        performative,
                        payload,
                    ) {
                        self.errors.push(e);
                    }
                }
                e @ ConnectionEvent::Closed { .. } => {
                    self.sessions.handle_connection_closed();
                    self.closed = Some(e);
                }
                ConnectionEvent::Opened(_)
                | ConnectionEvent::SaslInit { .. }
                | ConnectionEvent::SaslOutcome { .. } => {}
            }
        }
        while let Some(e) = self.sessions.poll_event() {
            self.events.push(e);
        }
    }

    fn begun(&self) -> Vec<(SessionId, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Begun { session, by_peer, .. } => Some((*session, *by_peer)),
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> Vec<(SessionId, bool, Option<Symbol>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Ended { session, by_peer, error } => {
                    Some((*session, *by_peer, error.as_ref().map(|e| e.condition.clone())))
                }
                _ => None,
            })
            .collect()
    }

    fn transfers(&self) -> Vec<(SessionId, Option<DeliveryNumber>, Bytes)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Frame {
                    session,
                    performative: Performative::Transfer(t),
                    payload,
                } => Some((*session, t.delivery_id, payload.clone())),
                _ => None,
            })
            .collect()
    }

    fn closed_condition(&self) -> Option<Option<Symbol>> {
        match &self.closed {
            Some(ConnectionEvent::Closed { error, .. }) => {
                Some(error.as_ref().map(|e| e.condition.clone()))
            }
            _ => None,
        }
    }
}

/// Two connections joined in memory, in simulated time, with sessions on top.
struct Pair {
    now: Timestamp,
    client: Side,
    server: Side,
}

impl Pair {
    fn new(client: SessionConfig, server: SessionConfig) -> Pair {
        let mut pair = Pair {
            now: T0,
            client: Side::new(Connection::client(open("client", 7), T0), client),
            server: Side::new(Connection::server(open("server", 3), T0), server),
        };
        pair.pump();
        pair
    }

    fn pump(&mut self) {
        loop {
            let to_server = self.client.drain();
            let to_client = self.server.drain();
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
            self.server.feed(self.now, &to_server);
            self.client.feed(self.now, &to_client);
        }
    }

    /// The client begins a session; returns its id on each side.
    fn begin(&mut self) -> (SessionId, SessionId) {
        let id = self.client.sessions.begin(&mut self.client.conn, self.now, config(100)).unwrap();
        self.pump();
        let theirs = self.server.begun().last().map(|(s, _)| *s).unwrap();
        (id, theirs)
    }

    fn send(&mut self, session: SessionId, t: Transfer) -> Result<DeliveryNumber, CommandError> {
        let r = self.client.sessions.transfer(&mut self.client.conn, self.now, session, t, b"hi");
        self.pump();
        r
    }

    /// The server writes a raw performative on `channel`, bypassing its sessions.
    fn server_raw(&mut self, channel: u16, p: &Performative) {
        self.server.conn.send(self.now, channel, p, b"").unwrap();
        self.pump();
    }
}

#[test]
fn s2_7_2_begin_answered_with_remote_channel_maps_both_ways() {
    let mut pair = Pair::new(config(100), config(50));
    let (ours, theirs) = pair.begin();
    assert_eq!(pair.client.begun(), vec![(ours, false)]);
    assert_eq!(pair.server.begun(), vec![(theirs, true)]);
    assert_eq!(pair.client.sessions.state(ours), Some(SessionState::Mapped));
    assert_eq!(pair.server.sessions.state(theirs), Some(SessionState::Mapped));
    // Each side learnt the other's windows from its begin (§2.5.6).
    let c = pair.client.sessions.windows(ours).unwrap();
    assert_eq!((c.remote_incoming_window, c.next_incoming_id), (50, Some(0)));
    let s = pair.server.sessions.windows(theirs).unwrap();
    assert_eq!((s.remote_incoming_window, s.incoming_window), (100, 50));
}

#[test]
fn s2_7_2_the_server_may_begin_too() {
    let mut pair = Pair::new(config(10), config(10));
    let id = pair.server.sessions.begin(&mut pair.server.conn, pair.now, config(10)).unwrap();
    pair.pump();
    assert_eq!(pair.server.begun(), vec![(id, false)]);
    assert_eq!(pair.client.begun().len(), 1);
    assert!(pair.client.errors.is_empty() && pair.server.errors.is_empty());
}

#[test]
fn s2_5_1_several_sessions_get_distinct_channels_within_channel_max() {
    let mut pair = Pair::new(config(10), config(10));
    // The server's channel-max is 3: four channels, 0–3.
    let ids: Vec<_> = (0..4).map(|_| pair.begin().0).collect();
    assert_eq!(ids, vec![SessionId(0), SessionId(1), SessionId(2), SessionId(3)]);
    let err = pair.client.sessions.begin(&mut pair.client.conn, pair.now, config(10));
    assert_eq!(err, Err(CommandError::NoFreeChannel { max: 3 }));
    // Transfers on each land on the matching server session.
    for id in &ids {
        pair.send(*id, transfer(0, false)).unwrap();
    }
    let got: Vec<_> = pair.server.transfers().into_iter().map(|(s, _, _)| s).collect();
    let server_ids: Vec<_> = pair.server.begun().into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, server_ids);
    // Ending one frees its channel for the next begin.
    pair.client.sessions.end(&mut pair.client.conn, pair.now, ids[1], None).unwrap();
    pair.pump();
    assert_eq!(pair.begin().0, SessionId(1));
}

#[test]
fn s2_7_1_before_the_peers_open_only_channel_0_is_used() {
    let t0 = T0;
    let mut conn = Connection::client(open("client", 7), t0);
    let mut sessions = Sessions::new(config(1));
    assert_eq!(sessions.begin(&mut conn, t0, config(1)), Ok(SessionId(0)));
    assert_eq!(
        sessions.begin(&mut conn, t0, config(1)),
        Err(CommandError::NoFreeChannel { max: 0 })
    );
}

#[test]
fn s2_7_8_end_both_ways() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, theirs) = pair.begin();
    pair.client.sessions.end(&mut pair.client.conn, pair.now, ours, None).unwrap();
    assert_eq!(pair.client.sessions.state(ours), Some(SessionState::EndSent));
    pair.pump();
    assert_eq!(pair.client.ended(), vec![(ours, false, None)]);
    assert_eq!(pair.server.ended(), vec![(theirs, true, None)]);
    assert_eq!(pair.client.sessions.state(ours), None);
    assert_eq!(pair.server.sessions.state(theirs), None);

    let (ours, theirs) = pair.begin();
    pair.server.sessions.end(&mut pair.server.conn, pair.now, theirs, None).unwrap();
    pair.pump();
    assert_eq!(pair.client.ended().last(), Some(&(ours, true, None)));
    assert_eq!(pair.server.ended().last(), Some(&(theirs, false, None)));
}

#[test]
fn s2_5_5_end_before_the_peers_begin_waits_for_both() {
    let mut pair = Pair::new(config(10), config(10));
    let id = pair.client.sessions.begin(&mut pair.client.conn, pair.now, config(10)).unwrap();
    pair.client.sessions.end(&mut pair.client.conn, pair.now, id, None).unwrap();
    pair.pump();
    // The peer began and ended its side; no Begun here, one Ended, channel free.
    assert_eq!(pair.client.begun(), vec![]);
    assert_eq!(pair.client.ended(), vec![(id, false, None)]);
    assert_eq!(pair.server.ended().len(), 1);
    assert_eq!(pair.client.sessions.state(id), None);
    assert!(pair.client.errors.is_empty() && pair.server.errors.is_empty());
}

#[test]
fn s2_4_3_sessions_are_gone_with_the_connection() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, theirs) = pair.begin();
    pair.client.conn.close(pair.now, None);
    pair.pump();
    assert_eq!(pair.client.sessions.state(ours), None);
    assert_eq!(pair.server.sessions.state(theirs), None);
}

#[test]
fn s2_7_8_end_with_an_error_reaches_the_peer() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, theirs) = pair.begin();
    let error = AmqpError::new(condition::INTERNAL_ERROR, None);
    pair.server.sessions.end(&mut pair.server.conn, pair.now, theirs, Some(error)).unwrap();
    pair.pump();
    assert_eq!(pair.client.ended(), vec![(ours, true, Some(condition::INTERNAL_ERROR))]);
    assert_eq!(pair.server.ended(), vec![(theirs, false, Some(condition::INTERNAL_ERROR))]);
    // Nothing may be sent on an ended session.
    let err = pair.send(ours, transfer(0, false));
    assert_eq!(err, Err(CommandError::UnknownSession(ours)));
}

#[test]
fn s2_5_6_windows_count_transfers_and_a_flow_reopens_them() {
    let mut pair = Pair::new(config(100), config(3));
    let (ours, theirs) = pair.begin();
    for i in 0..3u32 {
        assert_eq!(pair.send(ours, transfer(0, false)), Ok(i));
    }
    let c = pair.client.sessions.windows(ours).unwrap();
    assert_eq!((c.next_outgoing_id, c.remote_incoming_window), (3, 0));
    let s = pair.server.sessions.windows(theirs).unwrap();
    assert_eq!((s.next_incoming_id, s.incoming_window), (Some(3), 0));
    // §2.5.6: no transfer while the peer's incoming window is 0.
    assert_eq!(pair.send(ours, transfer(0, false)), Err(CommandError::WindowClosed(ours)));
    // The server reopens its window; many more transfers flow, 5 at a time.
    for round in 0..20u32 {
        pair.server
            .sessions
            .set_incoming_window(&mut pair.server.conn, pair.now, theirs, 5)
            .unwrap();
        pair.pump();
        for _ in 0..5 {
            pair.send(ours, transfer(0, false)).unwrap();
        }
        assert_eq!(pair.send(ours, transfer(0, false)), Err(CommandError::WindowClosed(ours)));
        let s = pair.server.sessions.windows(theirs).unwrap();
        assert_eq!(s.next_incoming_id, Some(3 + 5 * (round + 1)));
    }
    let ids: Vec<_> = pair.server.transfers().into_iter().map(|(_, d, _)| d).collect();
    assert_eq!(ids, (0..103).map(Some).collect::<Vec<_>>());
    assert!(pair.server.errors.is_empty());
}

#[test]
fn s2_5_6_continuation_frames_keep_their_delivery_id_and_count_as_transfers() {
    let mut pair = Pair::new(config(100), config(100));
    let (ours, _) = pair.begin();
    assert_eq!(pair.send(ours, transfer(0, true)), Ok(0));
    // Another link's delivery interleaves: the next id.
    assert_eq!(pair.send(ours, transfer(1, false)), Ok(1));
    assert_eq!(pair.send(ours, transfer(0, true)), Ok(0));
    assert_eq!(pair.send(ours, transfer(0, false)), Ok(0));
    assert_eq!(pair.send(ours, transfer(0, false)), Ok(2));
    let w = pair.client.sessions.windows(ours).unwrap();
    assert_eq!((w.next_outgoing_id, w.remote_incoming_window), (5, 95));
}

#[test]
fn s2_5_6_a_transfer_beyond_the_incoming_window_ends_the_session_with_window_violation() {
    let mut pair = Pair::new(config(100), config(1));
    let (ours, theirs) = pair.begin();
    pair.send(ours, transfer(0, false)).unwrap();
    // The client's session would refuse; the raw frame goes around it.
    let t = Performative::Transfer(Transfer { delivery_id: Some(1), ..transfer(0, false) });
    pair.client.conn.send(pair.now, ours.0, &t, b"").unwrap();
    pair.pump();
    assert_eq!(pair.server.errors, vec![SessionError::WindowViolation { session: theirs }]);
    let expected = Some(condition::SESSION_WINDOW_VIOLATION);
    assert_eq!(pair.client.ended(), vec![(ours, true, expected.clone())]);
    assert_eq!(pair.server.ended(), vec![(theirs, false, expected)]);
    // Only the transfer within the window went up.
    assert_eq!(pair.server.transfers().len(), 1);
    assert!(pair.client.closed.is_none() && pair.server.closed.is_none());
}

#[test]
fn s2_5_5_discarding_drops_frames_until_the_peers_end() {
    let mut pair = Pair::new(config(100), config(0));
    let (ours, theirs) = pair.begin();
    let t = Performative::Transfer(transfer(0, false));
    let d = Performative::Disposition(Disposition {
        role: Role::Sender,
        first: 0,
        last: None,
        settled: true,
        state: None,
        batchable: false,
    });
    // Both frames arrive together: the violation, then a frame to discard.
    pair.client.conn.send(pair.now, ours.0, &t, b"").unwrap();
    pair.client.conn.send(pair.now, ours.0, &d, b"").unwrap();
    pair.pump();
    assert_eq!(pair.server.errors, vec![SessionError::WindowViolation { session: theirs }]);
    assert!(!pair.server.events.iter().any(|e| matches!(e, SessionEvent::Frame { .. })));
    assert_eq!(pair.server.sessions.state(theirs), None);
}

#[test]
fn s2_5_1_a_frame_on_an_unmapped_channel_closes_the_connection() {
    let mut pair = Pair::new(config(10), config(10));
    let attach =
        Performative::Attach(Box::new(Attach::new(Utf8Bytes::from_static("l"), 0, Role::Sender)));
    pair.server_raw(2, &attach);
    assert!(matches!(pair.client.errors.as_slice(), [SessionError::Unmapped { channel: 2, .. }]));
    assert_eq!(pair.client.closed_condition(), Some(Some(condition::ILLEGAL_STATE)));
    assert_eq!(pair.server.closed_condition(), Some(Some(condition::ILLEGAL_STATE)));
}

#[test]
fn s2_7_2_a_begin_answering_no_begin_of_ours_closes_the_connection() {
    let mut pair = Pair::new(config(10), config(10));
    let begin = Begin {
        remote_channel: Some(5),
        ..Session::new(&config(1), SessionState::BeginSent).begin(&config(1))
    };
    pair.server_raw(0, &Performative::Begin(begin));
    assert!(matches!(pair.client.errors.as_slice(), [SessionError::Unmapped { channel: 0, .. }]));
    assert_eq!(pair.client.closed_condition(), Some(Some(condition::ILLEGAL_STATE)));
}

#[test]
fn s2_5_1_a_second_begin_on_a_mapped_channel_closes_the_connection() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, _) = pair.begin();
    let begin = Session::new(&config(1), SessionState::BeginSent).begin(&config(1));
    pair.client.conn.send(pair.now, ours.0, &Performative::Begin(begin), b"").unwrap();
    pair.pump();
    assert!(matches!(pair.server.errors.as_slice(), [SessionError::Unmapped { .. }]));
    assert_eq!(pair.server.closed_condition(), Some(Some(condition::ILLEGAL_STATE)));
}

#[test]
fn s2_7_4_an_echo_flow_is_answered_and_a_link_flow_goes_up_stamped() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, theirs) = pair.begin();
    // Forget the server's window: only its answer to the echo restores it.
    if let Some(s) = pair.client.sessions.sessions.get_mut(&ours.0) {
        s.windows.remote_incoming_window = 0;
    }
    let echo = Flow { echo: true, ..Flow::default() };
    pair.client
        .sessions
        .send(&mut pair.client.conn, pair.now, ours, Performative::Flow(echo))
        .unwrap();
    pair.pump();
    // The server answered; its windows are what the client now knows.
    assert_eq!(pair.client.sessions.windows(ours).unwrap().remote_incoming_window, 10);
    let link = Flow { handle: Some(0), link_credit: Some(5), ..Flow::default() };
    pair.client
        .sessions
        .send(&mut pair.client.conn, pair.now, ours, Performative::Flow(link))
        .unwrap();
    pair.pump();
    let up = pair.server.events.iter().find_map(|e| match e {
        SessionEvent::Frame { session, performative: Performative::Flow(f), .. } => {
            Some((*session, f.clone()))
        }
        _ => None,
    });
    let (session, flow) = up.unwrap();
    assert_eq!(session, theirs);
    assert_eq!(
        (flow.next_incoming_id, flow.incoming_window, flow.link_credit),
        (Some(0), 100, Some(5))
    );
}

#[test]
fn commands_on_a_session_not_mapped_are_refused() {
    let mut pair = Pair::new(config(10), config(10));
    let id = pair.client.sessions.begin(&mut pair.client.conn, pair.now, config(1)).unwrap();
    let r =
        pair.client.sessions.transfer(&mut pair.client.conn, pair.now, id, transfer(0, false), b"");
    assert_eq!(r, Err(CommandError::State { session: id, state: SessionState::BeginSent }));
    let r = pair.client.sessions.send(
        &mut pair.client.conn,
        pair.now,
        id,
        Performative::End(End::default()),
    );
    assert_eq!(r, Err(CommandError::NotALinkPerformative("end")));
}

/// The delivery-id on the wire is the session's, whatever the caller put there
/// (§2.6.12: the session allocates delivery-ids).
#[test]
fn s2_7_5_transfers_carry_the_stamped_delivery_id_on_the_wire() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, _) = pair.begin();
    let sent = pair.client.sessions.transfer(
        &mut pair.client.conn,
        pair.now,
        ours,
        Transfer { delivery_id: Some(77), ..transfer(0, false) },
        b"x",
    );
    assert_eq!(sent, Ok(0));
    let mut wire = BytesMut::from(pair.client.drain().as_slice());
    let frame: Frame = crate::amqp::frame::decode(&mut wire, &FrameLimits { max_frame_size: 4096 })
        .unwrap()
        .unwrap();
    assert_eq!(frame.kind, FrameKind::Amqp { channel: ours.0 });
    let (p, payload) =
        Performative::decode(&frame.body, &crate::amqp::types::Limits::default()).unwrap();
    assert!(matches!(p, Performative::Transfer(Transfer { delivery_id: Some(0), .. })));
    assert_eq!(&payload[..], b"x");
}

#[derive(Clone, Debug)]
enum Op {
    /// The client sends a transfer, `more` or not, on link 0 or 1.
    Transfer(bool, bool),
    /// The server widens its incoming window by this many transfers (shrinking it
    /// under transfers in flight is a violation waiting to happen, §2.5.6).
    Window(u32),
    /// Bytes are delivered.
    Pump,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>()).prop_map(|(m, l)| Op::Transfer(m, l)),
        1 => (0u32..8).prop_map(Op::Window),
        2 => Just(Op::Pump),
    ]
}

proptest! {
    /// Whatever the order of transfers, window updates and deliveries, once the
    /// wire is quiet: the client's next-outgoing-id is the server's
    /// next-incoming-id, the client's view of the server's incoming window is the
    /// server's own (§2.5.6), no window is ever violated, and every transfer the
    /// client's session accepted arrived, with delivery-ids in order.
    #[test]
    fn s2_5_6_invariants_hold_over_random_operations(
        initial in any::<u32>(),
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        let client = SessionConfig { next_outgoing_id: initial, ..config(10) };
        let mut pair = Pair::new(client, config(4));
        let ours = pair.client.sessions.begin(&mut pair.client.conn, pair.now, client).unwrap();
        pair.pump();
        let theirs = pair.server.begun()[0].0;
        let mut sent = 0u32;
        for op in ops {
            match op {
                Op::Transfer(more, link) => {
                    let t = transfer(u32::from(link), more);
                    let r = pair.client.sessions.transfer(&mut pair.client.conn, pair.now, ours, t, b"p");
                    match r {
                        Ok(_) => sent += 1,
                        Err(CommandError::WindowClosed(_)) => {}
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                Op::Window(w) => {
                    let now = pair.server.sessions.windows(theirs).unwrap().incoming_window;
                    pair.server.sessions.set_incoming_window(&mut pair.server.conn, pair.now, theirs, now + w).unwrap();
                }
                Op::Pump => pair.pump(),
            }
        }
        pair.pump();
        prop_assert!(pair.server.errors.is_empty(), "{:?}", pair.server.errors);
        let c = pair.client.sessions.windows(ours).unwrap();
        let s = pair.server.sessions.windows(theirs).unwrap();
        prop_assert_eq!(Some(c.next_outgoing_id), s.next_incoming_id);
        prop_assert_eq!(c.next_outgoing_id, initial.wrapping_add(sent));
        prop_assert_eq!(c.remote_incoming_window, s.incoming_window);
        let got = pair.server.transfers();
        prop_assert_eq!(got.len(), sent as usize);
        // Delivery-ids never go backwards by more than an open delivery allows.
        let mut highest: Option<u32> = None;
        for (_, id, _) in got {
            let id = id.unwrap().wrapping_sub(initial);
            prop_assert!(highest.is_none_or(|h| id <= h + 1));
            highest = Some(highest.map_or(id, |h| h.max(id)));
        }
    }
}

#[test]
fn s2_5_1_every_channel_to_65535_begins_and_the_lowest_freed_is_reused() {
    // A peer may begin a session on every channel its partner allows: finding a free
    // channel must not scan the sessions (65 536 begins would take minutes).
    let mut client = Side::new(Connection::client(open("client", u16::MAX), T0), config(1));
    let mut server = Side::new(Connection::server(open("server", u16::MAX), T0), config(1));
    let pump = |client: &mut Side, server: &mut Side| loop {
        let (to_server, to_client) = (client.drain(), server.drain());
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
        server.feed(T0, &to_server);
        client.feed(T0, &to_client);
    };
    pump(&mut client, &mut server);
    for channel in 0..=u16::MAX {
        let id = client.sessions.begin(&mut client.conn, T0, config(1));
        assert_eq!(id, Ok(SessionId(channel)));
        if channel % 1024 == 1023 {
            pump(&mut client, &mut server);
        }
    }
    pump(&mut client, &mut server);
    assert_eq!(server.begun().len(), 65_536);
    let full = client.sessions.begin(&mut client.conn, T0, config(1));
    assert_eq!(full, Err(CommandError::NoFreeChannel { max: u16::MAX }));
    for channel in [40_000, 7] {
        client.sessions.end(&mut client.conn, T0, SessionId(channel), None).unwrap();
    }
    pump(&mut client, &mut server);
    for channel in [7, 40_000] {
        assert_eq!(client.sessions.begin(&mut client.conn, T0, config(1)), Ok(SessionId(channel)));
    }
    pump(&mut client, &mut server);
    assert!(client.errors.is_empty() && server.errors.is_empty());
    assert_eq!(server.begun().len(), 65_538);
}

/// The flows a session writes on its own (a window update, the answer to an
/// echo) carry no handle, so §2.7.4 forbids them every link field, properties
/// included; read back from the bytes written.
#[test]
fn s2_7_4_session_flows_carry_no_link_fields_and_no_properties() {
    let mut pair = Pair::new(config(10), config(10));
    let (ours, theirs) = pair.begin();
    pair.server.sessions.set_incoming_window(&mut pair.server.conn, pair.now, theirs, 5).unwrap();
    let echo = Flow { echo: true, ..Flow::default() };
    pair.client
        .sessions
        .send(&mut pair.client.conn, pair.now, ours, Performative::Flow(echo))
        .unwrap();
    pair.server.feed(pair.now, &pair.client.drain());
    let mut wire = BytesMut::from(pair.server.drain().as_slice());
    let limits = FrameLimits { max_frame_size: 4096 };
    let mut flows = vec![];
    while let Some(frame) = crate::amqp::frame::decode(&mut wire, &limits).unwrap() {
        let (p, _) =
            Performative::decode(&frame.body, &crate::amqp::types::Limits::default()).unwrap();
        if let Performative::Flow(f) = p {
            flows.push(f);
        }
    }
    // The window update, then the echo's answer.
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert_eq!((flows[0].incoming_window, flows[1].incoming_window), (5, 5));
    for f in &flows {
        assert_eq!(f.handle, None);
        assert_eq!(
            (f.delivery_count, f.link_credit, f.available, f.drain),
            (None, None, None, false)
        );
        assert!(f.properties.is_empty(), "a session flow carries properties: {f:?}");
        assert!(!f.echo);
    }
}
