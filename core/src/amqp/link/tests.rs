use super::*;
use crate::amqp::connection::ConnectionEvent;
use crate::amqp::performative::{Open, Terminus};
use crate::amqp::session::{SessionConfig, SessionError};
use crate::sansio::Transmit;
use alloc::vec;
use alloc::vec::Vec;

const T0: Timestamp = Timestamp::from_unix_secs(1_700_000_000);

fn open(container: &'static str, max_frame_size: u32) -> Open {
    let mut open = Open::new(Utf8Bytes::from_static(container));
    open.max_frame_size = max_frame_size;
    open.channel_max = 7;
    open
}

fn spec(name: &'static str, role: Role) -> LinkSpec {
    let source = Source {
        terminus: Terminus::at(Utf8Bytes::from_static("/devices/d1/messages/devicebound")),
        ..Source::default()
    };
    let target = Target {
        terminus: Terminus::at(Utf8Bytes::from_static("/devices/d1/messages/events")),
        ..Target::default()
    };
    LinkSpec::new(Utf8Bytes::from_static(name), role, Some(source), Some(target))
}

fn delivery(tag: &'static [u8], settled: bool, payload: Bytes) -> Delivery {
    Delivery { tag: Bytes::from_static(tag), message_format: 0, settled, payload }
}

fn err(condition: Symbol) -> AmqpError {
    AmqpError::new(condition, None)
}

/// A connection with sessions and links on top, and what they produced.
struct Side {
    conn: Connection,
    sessions: Sessions,
    links: Links,
    events: Vec<LinkEvent>,
    errors: Vec<LinkError>,
    session_errors: Vec<SessionError>,
    closed: Option<Option<AmqpError>>,
}

impl Side {
    fn new(conn: Connection, handle_max: Handle) -> Side {
        let config = SessionConfig { handle_max, ..SessionConfig::default() };
        Side {
            conn,
            sessions: Sessions::new(config),
            links: Links::new(LinkConfig { handle_max }),
            events: vec![],
            errors: vec![],
            session_errors: vec![],
            closed: None,
        }
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
        self.pass_up(now);
    }

    fn pass_up(&mut self, now: Timestamp) {
        while let Some(e) = self.conn.poll_event() {
            match e {
                ConnectionEvent::Frame { channel, performative, payload } => {
                    let (conn, sessions) = (&mut self.conn, &mut self.sessions);
                    if let Err(e) = sessions.handle_frame(conn, now, channel, performative, payload)
                    {
                        self.session_errors.push(e);
                    }
                    while let Some(event) = self.sessions.poll_event() {
                        let r = self.links.handle_session_event(
                            &mut self.sessions,
                            &mut self.conn,
                            now,
                            event,
                        );
                        if let Err(e) = r {
                            self.errors.push(e);
                        }
                    }
                }
                ConnectionEvent::Closed { error, .. } => {
                    self.sessions.handle_connection_closed();
                    self.links.handle_connection_closed();
                    self.closed = Some(error);
                }
                ConnectionEvent::Opened(_)
                | ConnectionEvent::SaslInit { .. }
                | ConnectionEvent::SaslOutcome { .. } => {}
            }
        }
        while let Some(e) = self.links.poll_event() {
            self.events.push(e);
        }
    }

    fn take_events(&mut self) -> Vec<LinkEvent> {
        core::mem::take(&mut self.events)
    }

    fn error_conditions(&self) -> Vec<Symbol> {
        self.errors.iter().map(LinkError::condition).collect()
    }

    fn deliveries(&self) -> Vec<(DeliveryNumber, Bytes, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Delivery { delivery_id, payload, settled, .. } => {
                    Some((*delivery_id, payload.clone(), *settled))
                }
                _ => None,
            })
            .collect()
    }

    fn dispositions(&self) -> Vec<(DeliveryNumber, Option<DeliveryState>, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Disposition { delivery_id, state, settled, .. } => {
                    Some((*delivery_id, state.clone(), *settled))
                }
                _ => None,
            })
            .collect()
    }

    fn detached(&self) -> Vec<(LinkId, bool, bool, Option<Symbol>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Detached { link, by_peer, closed, error } => {
                    Some((*link, *by_peer, *closed, error.as_ref().map(|e| e.condition.clone())))
                }
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> Vec<(bool, Option<Symbol>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                LinkEvent::SessionEnded { by_peer, error, .. } => {
                    Some((*by_peer, error.as_ref().map(|e| e.condition.clone())))
                }
                _ => None,
            })
            .collect()
    }
}

/// Two connections joined in memory with sessions and links on top, one session
/// begun by the client.
struct Pair {
    now: Timestamp,
    client: Side,
    server: Side,
    /// The session, on the client's side and on the server's.
    c_session: SessionId,
    s_session: SessionId,
}

impl Pair {
    fn new() -> Pair {
        Pair::with(4096, Begin::DEFAULT_HANDLE_MAX)
    }

    /// Each side announces `max_frame_size` and `handle_max`.
    fn with(max_frame_size: u32, handle_max: Handle) -> Pair {
        let client = Connection::client(open("client", max_frame_size), T0);
        let server = Connection::server(open("server", max_frame_size), T0);
        let mut pair = Pair {
            now: T0,
            client: Side::new(client, handle_max),
            server: Side::new(server, handle_max),
            c_session: SessionId(0),
            s_session: SessionId(0),
        };
        pair.pump();
        let config = SessionConfig { handle_max, ..SessionConfig::default() };
        let c = &mut pair.client;
        pair.c_session = c.sessions.begin(&mut c.conn, T0, config).unwrap();
        pair.pump();
        let begun = pair.server.take_events();
        pair.s_session = match begun.as_slice() {
            [LinkEvent::SessionBegun { session, by_peer: true }] => *session,
            other => panic!("{other:?}"),
        };
        assert!(matches!(pair.client.take_events().as_slice(), [LinkEvent::SessionBegun { .. }]));
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

    /// The client attaches `spec`; the server accepts with `answer` applied to
    /// its echo. Returns the link on each side; clears both event lists.
    fn attach_with(
        &mut self,
        spec: LinkSpec,
        answer: impl FnOnce(&mut LinkSpec),
    ) -> (LinkId, LinkId) {
        let c = &mut self.client;
        let ours =
            c.links.attach(&mut c.sessions, &mut c.conn, self.now, self.c_session, spec).unwrap();
        self.pump();
        let (theirs, remote) = match self.server.take_events().as_slice() {
            [LinkEvent::AttachRequested { link, remote }] => (*link, remote.clone()),
            other => panic!("{other:?}"),
        };
        let mut spec = LinkSpec::answering(&remote);
        answer(&mut spec);
        let s = &mut self.server;
        s.links.accept_attach(&mut s.sessions, &mut s.conn, self.now, theirs, spec).unwrap();
        self.pump();
        assert!(matches!(
            self.client.take_events().as_slice(),
            [LinkEvent::Attached { by_peer: false, .. }]
        ));
        assert!(matches!(
            self.server.take_events().as_slice(),
            [LinkEvent::Attached { by_peer: true, .. }]
        ));
        (ours, theirs)
    }

    /// A client sender and a server receiver ("telemetry"), `credit` given.
    fn telemetry(&mut self, credit: u32) -> (LinkId, LinkId) {
        let (snd, rcv) = self.attach_with(spec("events", Role::Sender), |_| {});
        self.server_flow(rcv, credit, false);
        self.client.take_events();
        (snd, rcv)
    }

    fn server_flow(&mut self, link: LinkId, credit: u32, drain: bool) {
        let s = &mut self.server;
        s.links.flow(&mut s.sessions, &mut s.conn, self.now, link, credit, drain).unwrap();
        self.pump();
    }

    fn client_send(&mut self, link: LinkId, d: Delivery) -> Result<DeliveryNumber, CommandError> {
        let c = &mut self.client;
        let r = c.links.send(&mut c.sessions, &mut c.conn, self.now, link, d);
        self.pump();
        r
    }

    /// The client writes a raw link performative on its session, bypassing its
    /// links (a transfer through its sessions, so the delivery-id is stamped).
    fn client_raw(&mut self, p: Performative, payload: &[u8]) {
        let c = &mut self.client;
        match p {
            Performative::Transfer(t) => {
                c.sessions.transfer(&mut c.conn, self.now, self.c_session, t, payload).unwrap();
            }
            p => c.sessions.send(&mut c.conn, self.now, self.c_session, p).unwrap(),
        }
        self.pump();
    }

    /// As [`Pair::client_raw`], returning the performatives the server answers
    /// with (then handed to the client).
    fn client_raw_answers(&mut self, p: Performative, payload: &[u8]) -> Vec<Performative> {
        self.client_raw_batch_answers(vec![(p, payload)])
    }

    /// As [`Pair::client_raw_answers`] with several frames in one read: frames the
    /// client sent before it could see the server's answer to the first.
    fn client_raw_batch_answers(
        &mut self,
        frames: Vec<(Performative, &[u8])>,
    ) -> Vec<Performative> {
        let c = &mut self.client;
        for (p, payload) in frames {
            match p {
                Performative::Transfer(t) => {
                    c.sessions.transfer(&mut c.conn, self.now, self.c_session, t, payload).unwrap();
                }
                p => c.sessions.send(&mut c.conn, self.now, self.c_session, p).unwrap(),
            }
        }
        let to_server = self.client.drain();
        self.server.feed(self.now, &to_server);
        let to_client = self.server.drain();
        let mut rx = BytesMut::from(&to_client[..]);
        let limits = crate::amqp::frame::FrameLimits { max_frame_size: u32::MAX };
        let mut answers = vec![];
        while let Some(frame) = crate::amqp::frame::decode(&mut rx, &limits).unwrap() {
            answers.push(Performative::decode(&frame.body, &Default::default()).unwrap().0);
        }
        self.client.feed(self.now, &to_client);
        self.pump();
        answers
    }
}

fn raw_transfer(handle: Handle, tag: &'static [u8], more: bool) -> Performative {
    Performative::Transfer(Transfer {
        handle,
        delivery_tag: Some(Bytes::from_static(tag)),
        message_format: Some(0),
        more,
        ..Transfer::default()
    })
}

#[test]
fn s2_6_3_client_attach_is_answered_and_both_sides_attach() {
    let mut pair = Pair::new();
    let (c, s) = pair.attach_with(spec("events", Role::Sender), |a| {
        a.max_message_size = Some(1 << 20);
    });
    assert_eq!((c.handle, s.handle), (0, 0));
    assert_eq!(pair.client.links.state(c), Some(LinkState::Attached));
    assert_eq!(pair.server.links.state(s), Some(LinkState::Attached));
    let c = &pair.client.links.link(c).unwrap();
    // The client learnt the hub's max-message-size from its answer (spec file §5.4).
    assert_eq!(c.remote.as_ref().unwrap().max_message_size, Some(1 << 20));
    assert_eq!(c.remote.as_ref().unwrap().role, Role::Receiver);
}

#[test]
fn s2_6_3_the_server_may_attach_first() {
    let mut pair = Pair::new();
    let s = &mut pair.server;
    let ours = s
        .links
        .attach(&mut s.sessions, &mut s.conn, T0, pair.s_session, spec("c2d", Role::Sender))
        .unwrap();
    pair.pump();
    let theirs = match pair.client.take_events().as_slice() {
        [LinkEvent::AttachRequested { link, remote }] => {
            assert_eq!(remote.role, Role::Sender);
            assert_eq!(remote.initial_delivery_count, Some(0));
            *link
        }
        other => panic!("{other:?}"),
    };
    let remote = pair.client.links.link(theirs).unwrap().remote.clone().unwrap();
    let c = &mut pair.client;
    let answer = LinkSpec::answering(&remote);
    assert_eq!(answer.role, Role::Receiver);
    c.links.accept_attach(&mut c.sessions, &mut c.conn, T0, theirs, answer).unwrap();
    pair.pump();
    assert!(matches!(
        pair.server.take_events().as_slice(),
        [LinkEvent::Attached { link, by_peer: false, .. }] if *link == ours
    ));
}

#[test]
fn s2_6_3_two_links_get_the_lowest_free_handles() {
    let mut pair = Pair::new();
    let (a, _) = pair.attach_with(spec("a", Role::Sender), |_| {});
    let (b, _) = pair.attach_with(spec("b", Role::Receiver), |_| {});
    assert_eq!((a.handle, b.handle), (0, 1));
}

/// §2.6.2: each end picks its handle for a link itself. Both ends attach a link
/// at once, each taking its handle 0; each answers the other's with handle 1, so
/// every link has handle 0 at one end and 1 at the other.
#[test]
fn s2_6_2_the_two_ends_of_a_link_choose_their_handles_apart() {
    let mut pair = Pair::new();
    let c = &mut pair.client;
    let mine = c.links.attach(
        &mut c.sessions,
        &mut c.conn,
        T0,
        pair.c_session,
        spec("events", Role::Sender),
    );
    let s = &mut pair.server;
    let yours =
        s.links.attach(&mut s.sessions, &mut s.conn, T0, pair.s_session, spec("c2d", Role::Sender));
    assert_eq!((mine.unwrap().handle, yours.unwrap().handle), (0, 0));
    pair.pump();
    for side in [&mut pair.client, &mut pair.server] {
        let (link, remote) = match side.take_events().as_slice() {
            [LinkEvent::AttachRequested { link, remote }] => (*link, remote.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(link.handle, 1);
        let answer = LinkSpec::answering(&remote);
        side.links.accept_attach(&mut side.sessions, &mut side.conn, T0, link, answer).unwrap();
    }
    pair.pump();
    for side in [&mut pair.client, &mut pair.server] {
        let mut handles: Vec<(Handle, Handle)> = side
            .take_events()
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Attached { link, remote, .. } => Some((link.handle, remote.handle)),
                _ => None,
            })
            .collect();
        handles.sort();
        // (ours, the peer's) for each link: never the same.
        assert_eq!(handles, vec![(0, 1), (1, 0)]);
    }
}

#[test]
fn s2_6_3_refusal_is_an_attach_with_a_null_terminus_then_a_closing_detach() {
    let mut pair = Pair::new();
    let c = &mut pair.client;
    let ours = c
        .links
        .attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec("events", Role::Sender))
        .unwrap();
    pair.pump();
    let theirs = match pair.server.take_events().as_slice() {
        [LinkEvent::AttachRequested { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    let s = &mut pair.server;
    let error = err(condition::NOT_FOUND);
    s.links.refuse_attach(&mut s.sessions, &mut s.conn, T0, theirs, error).unwrap();
    pair.pump();
    let events = pair.client.take_events();
    match events.as_slice() {
        [
            LinkEvent::Attached { link, by_peer: false, remote },
            LinkEvent::Detached { by_peer: true, closed: true, error: Some(e), .. },
        ] => {
            assert_eq!(*link, ours);
            // The peer is the receiver: the target it was asked for is null.
            assert_eq!((&remote.target, &remote.source), (&None, &None));
            assert_eq!(remote.role, Role::Receiver);
            assert_eq!(e.condition, condition::NOT_FOUND);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.server.detached(), vec![(theirs, false, true, Some(condition::NOT_FOUND))]);
    assert_eq!(pair.client.links.state(ours), None);
    assert_eq!(pair.server.links.state(theirs), None);
}

#[test]
fn s2_6_7_credit_and_delivery_count_move_with_each_delivery() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.attach_with(spec("events", Role::Sender), |_| {});
    // No credit yet: the sender waits (§2.6.7).
    let d = delivery(b"0", false, Bytes::from_static(b"m0"));
    assert_eq!(pair.client_send(snd, d.clone()), Err(CommandError::NoCredit(snd)));
    pair.server_flow(rcv, 2, false);
    assert_eq!(
        pair.client.take_events(),
        vec![LinkEvent::Credit { link: snd, credit: 2, drain: false }]
    );
    assert_eq!(pair.client_send(snd, d.clone()), Ok(0));
    assert_eq!(pair.client_send(snd, delivery(b"1", false, Bytes::from_static(b"m1"))), Ok(1));
    assert_eq!(pair.client_send(snd, d), Err(CommandError::NoCredit(snd)));
    let flow = LinkFlow { delivery_count: 2, link_credit: 0, drain: false };
    assert_eq!(pair.client.links.flow_state(snd), Some(flow));
    assert_eq!(pair.server.links.flow_state(rcv), Some(flow));
    assert_eq!(
        pair.server.deliveries(),
        vec![(0, Bytes::from_static(b"m0"), false), (1, Bytes::from_static(b"m1"), false)]
    );
}

#[test]
fn s2_6_7_credit_counts_from_the_receivers_delivery_count() {
    // A receiver's flow sent while a delivery is in flight: link-credit(snd) =
    // delivery-count(rcv) + link-credit(rcv) - delivery-count(snd).
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(5);
    let c = &mut pair.client;
    c.links
        .send(&mut c.sessions, &mut c.conn, T0, snd, delivery(b"a", true, Bytes::new()))
        .unwrap();
    // The server grants 5 again before the client's transfer reaches it.
    let s = &mut pair.server;
    s.links.flow(&mut s.sessions, &mut s.conn, T0, rcv, 5, false).unwrap();
    pair.pump();
    assert_eq!(pair.client.links.flow_state(snd).unwrap().link_credit, 4);
    assert_eq!(pair.server.links.flow_state(rcv).unwrap().link_credit, 4);
}

#[test]
fn s2_6_12_a_100_kib_message_is_split_into_frames_of_512_bytes_and_reassembled() {
    let mut pair = Pair::with(512, Begin::DEFAULT_HANDLE_MAX);
    let (snd, _) = pair.telemetry(1);
    let payload: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    let before = pair.client.sessions.windows(pair.c_session).unwrap().next_outgoing_id;
    let c = &mut pair.client;
    c.links
        .send(
            &mut c.sessions,
            &mut c.conn,
            T0,
            snd,
            delivery(b"big", false, payload.clone().into()),
        )
        .unwrap();
    // Every frame within 512 bytes, all but the last with `more`.
    let wire = pair.client.drain();
    let mut rx = BytesMut::from(&wire[..]);
    let limits = crate::amqp::frame::FrameLimits { max_frame_size: 512 };
    let mut frames = 0;
    while let Some(frame) = crate::amqp::frame::decode(&mut rx, &limits).unwrap() {
        let (p, _) = Performative::decode(&frame.body, &Default::default()).unwrap();
        let Performative::Transfer(t) = p else { panic!("{p:?}") };
        frames += 1;
        assert_eq!(t.delivery_id, Some(0));
        assert_eq!(t.more, !rx.is_empty());
    }
    assert!(frames > 200, "{frames} frames");
    let after = pair.client.sessions.windows(pair.c_session).unwrap().next_outgoing_id;
    assert_eq!(after.wrapping_sub(before), frames);
    pair.server.feed(T0, &wire);
    pair.pump();
    assert_eq!(pair.server.deliveries(), vec![(0, Bytes::from(payload), false)]);
}

#[test]
fn s2_6_12_a_delivery_the_window_cannot_take_whole_is_refused() {
    let mut pair = Pair::with(512, Begin::DEFAULT_HANDLE_MAX);
    let (snd, _) = pair.telemetry(1);
    let window = pair.client.sessions.windows(pair.c_session).unwrap().remote_incoming_window;
    let payload = Bytes::from(vec![7u8; 512 * window as usize]);
    let r = pair.client_send(snd, delivery(b"t", false, payload));
    assert!(matches!(r, Err(CommandError::WindowTooSmall { window: w, .. }) if w == window));
    assert_eq!(pair.client.links.flow_state(snd).unwrap().link_credit, 1);
}

#[test]
fn s2_7_3_a_message_over_the_peers_max_message_size_is_not_sent() {
    let mut pair = Pair::new();
    let (snd, rcv) =
        pair.attach_with(spec("events", Role::Sender), |a| a.max_message_size = Some(4));
    pair.server_flow(rcv, 1, false);
    let r = pair.client_send(snd, delivery(b"t", false, Bytes::from_static(b"12345")));
    assert_eq!(r, Err(CommandError::MessageTooLarge { link: snd, size: 5, max: 4 }));
    assert!(pair.server.deliveries().is_empty());
}

#[test]
fn s2_6_14_an_aborted_delivery_is_discarded() {
    let mut pair = Pair::new();
    let (_, rcv) = pair.telemetry(2);
    pair.client_raw(raw_transfer(0, b"a", true), b"part");
    let Performative::Transfer(mut abort) = raw_transfer(0, b"a", false) else { unreachable!() };
    abort.aborted = true;
    pair.client_raw(Performative::Transfer(abort), b"");
    pair.client_raw(raw_transfer(0, b"b", false), b"whole");
    let events = pair.server.take_events();
    assert_eq!(events[0], LinkEvent::Aborted { link: rcv, delivery_id: 0 });
    assert!(matches!(
        &events[1],
        LinkEvent::Delivery { delivery_id: 1, payload, .. } if payload == &b"whole"[..]
    ));
    assert_eq!(pair.server.links.flow_state(rcv).unwrap().link_credit, 0);
}

/// §2.6.14: deliveries on one link are not interleaved. A first frame of another
/// delivery while one is still unfinished (`more` set) detaches the link.
#[test]
fn s2_6_14_a_delivery_begun_inside_an_unfinished_one_detaches_with_invalid_field() {
    let mut pair = Pair::new();
    let (_, rcv) = pair.telemetry(2);
    for (id, tag, more) in [(0, &b"a"[..], true), (1, b"b", false)] {
        let t = Transfer {
            handle: 0,
            delivery_id: Some(id),
            delivery_tag: Some(Bytes::copy_from_slice(tag)),
            message_format: Some(0),
            more,
            ..Transfer::default()
        };
        // Past the client's session, which would continue the open delivery.
        let c = &mut pair.client;
        c.conn.send(pair.now, pair.c_session.0, &Performative::Transfer(t), b"part").unwrap();
        pair.pump();
    }
    assert!(pair.server.deliveries().is_empty());
    assert_eq!(pair.server.detached(), vec![(rcv, false, true, Some(condition::INVALID_FIELD))]);
}

/// §2.6.7: a receiver's flow without a delivery-count is counted from the
/// sender's initial delivery-count (its attach's), not from where the sender is
/// now: 0 + 5 - 2 leaves 3.
#[test]
fn s2_6_7_a_flow_without_delivery_count_counts_from_the_initial_one() {
    let mut pair = Pair::new();
    let (snd, _) = pair.telemetry(5);
    pair.client_send(snd, delivery(b"a", true, Bytes::new())).unwrap();
    pair.client_send(snd, delivery(b"b", true, Bytes::new())).unwrap();
    assert_eq!(pair.client.links.flow_state(snd).unwrap().link_credit, 3);
    let flow = Flow { handle: Some(0), link_credit: Some(5), ..Flow::default() };
    let s = &mut pair.server;
    s.sessions.send(&mut s.conn, pair.now, pair.s_session, Performative::Flow(flow)).unwrap();
    pair.pump();
    let state = pair.client.links.flow_state(snd).unwrap();
    assert_eq!((state.delivery_count, state.link_credit), (2, 3));
}

#[test]
fn s2_6_12_a_presettled_delivery_is_forgotten_an_unsettled_one_kept() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(2);
    pair.client_send(snd, delivery(b"s", true, Bytes::from_static(b"1"))).unwrap();
    pair.client_send(snd, delivery(b"u", false, Bytes::from_static(b"2"))).unwrap();
    assert_eq!(
        pair.server.deliveries(),
        vec![(0, Bytes::from_static(b"1"), true), (1, Bytes::from_static(b"2"), false)]
    );
    let s = &mut pair.server;
    // Settling the pre-settled one again: nothing of the link's is unsettled there.
    let r = s.links.disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, None, None, true);
    assert_eq!(r, Err(CommandError::Deliveries { link: rcv, first: 0, last: 0 }));
    let accepted = Some(DeliveryState::Accepted);
    s.links
        .disposition(&mut s.sessions, &mut s.conn, T0, rcv, 1, None, accepted.clone(), true)
        .unwrap();
    pair.pump();
    assert_eq!(pair.client.dispositions(), vec![(1, accepted, true)]);
    // Settled both ways: the sender has forgotten it.
    let c = &mut pair.client;
    let r = c.links.disposition(&mut c.sessions, &mut c.conn, T0, snd, 1, None, None, true);
    assert!(matches!(r, Err(CommandError::Deliveries { .. })));
}

#[test]
fn s2_8_3_rcv_settle_mode_second_settles_after_the_sender() {
    let mut pair = Pair::new();
    let mut sender = spec("c2d", Role::Sender);
    sender.snd_settle_mode = SenderSettleMode::Unsettled;
    sender.rcv_settle_mode = ReceiverSettleMode::Second;
    let (snd, rcv) = pair.attach_with(sender, |_| {});
    pair.server_flow(rcv, 1, false);
    pair.client_send(snd, delivery(b"x", false, Bytes::from_static(b"m"))).unwrap();
    assert!(matches!(
        pair.server.take_events().as_slice(),
        [LinkEvent::Delivery { rcv_settle_mode: ReceiverSettleMode::Second, settled: false, .. }]
    ));
    let s = &mut pair.server;
    let accepted = Some(DeliveryState::Accepted);
    // The receiver may not settle first.
    let r =
        s.links.disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, None, accepted.clone(), true);
    assert_eq!(r, Err(CommandError::SettleBeforeSender { link: rcv, delivery_id: 0 }));
    s.links
        .disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, None, accepted.clone(), false)
        .unwrap();
    pair.pump();
    assert_eq!(pair.client.dispositions(), vec![(0, accepted.clone(), false)]);
    // The sender settles; the receiver hears it and forgets the delivery.
    let c = &mut pair.client;
    c.links
        .disposition(&mut c.sessions, &mut c.conn, T0, snd, 0, None, accepted.clone(), true)
        .unwrap();
    pair.pump();
    assert_eq!(pair.server.dispositions(), vec![(0, accepted, true)]);
    let s = &mut pair.server;
    let r = s.links.disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, None, None, false);
    assert!(matches!(r, Err(CommandError::Deliveries { .. })));
}

#[test]
fn s2_8_2_settled_flag_must_match_the_announced_sender_settle_mode() {
    let mut pair = Pair::new();
    let mut sender = spec("twin", Role::Sender);
    sender.snd_settle_mode = SenderSettleMode::Settled;
    let (snd, rcv) = pair.attach_with(sender, |_| {});
    pair.server_flow(rcv, 1, false);
    let r = pair.client_send(snd, delivery(b"x", false, Bytes::new()));
    let mode = SenderSettleMode::Settled;
    assert_eq!(r, Err(CommandError::SettleMode { link: snd, mode, settled: false }));
}

#[test]
fn s2_7_6_a_disposition_range_settles_each_delivery_it_covers() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(4);
    for tag in [b"a", b"b", b"c", b"d"] {
        pair.client_send(snd, delivery(tag, false, Bytes::from_static(b"m"))).unwrap();
    }
    let s = &mut pair.server;
    let accepted = Some(DeliveryState::Accepted);
    s.links
        .disposition(&mut s.sessions, &mut s.conn, T0, rcv, 1, Some(2), accepted.clone(), true)
        .unwrap();
    pair.pump();
    assert_eq!(
        pair.client.dispositions(),
        vec![(1, accepted.clone(), true), (2, accepted.clone(), true)]
    );
    // 0 and 3 are still unsettled at both ends.
    let s = &mut pair.server;
    s.links
        .disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, Some(3), accepted.clone(), true)
        .unwrap();
    pair.pump();
    let settled: Vec<_> = pair.client.dispositions().into_iter().map(|(id, ..)| id).collect();
    assert_eq!(settled, vec![1, 2, 0, 3]);
}

/// §2.7.5: each side numbers the deliveries it sends, so a session holds a delivery
/// 0 in each direction; a disposition's role says which one it covers (§2.7.6).
#[test]
fn s2_7_6_settling_a_sent_delivery_leaves_the_received_one_of_the_same_id() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(1);
    // A server-to-client link ("C2D"), with credit from the client.
    let (c2d_rcv, c2d_snd) = pair.attach_with(spec("c2d", Role::Receiver), |_| {});
    let c = &mut pair.client;
    c.links.flow(&mut c.sessions, &mut c.conn, T0, c2d_rcv, 1, false).unwrap();
    pair.pump();
    assert_eq!(pair.client_send(snd, delivery(b"t", false, Bytes::new())), Ok(0));
    let s = &mut pair.server;
    let sent = s.links.send(
        &mut s.sessions,
        &mut s.conn,
        T0,
        c2d_snd,
        delivery(b"c", false, Bytes::new()),
    );
    assert_eq!(sent, Ok(0));
    pair.pump();
    // The client settles the server's delivery 0 ...
    let c = &mut pair.client;
    let accepted = Some(DeliveryState::Accepted);
    c.links
        .disposition(&mut c.sessions, &mut c.conn, T0, c2d_rcv, 0, None, accepted.clone(), true)
        .unwrap();
    pair.pump();
    assert_eq!(pair.server.dispositions(), vec![(0, accepted.clone(), true)]);
    // ... and the server can still settle the client's.
    let s = &mut pair.server;
    s.links
        .disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, None, accepted.clone(), true)
        .unwrap();
    pair.pump();
    assert_eq!(pair.client.dispositions(), vec![(0, accepted, true)]);
}

#[test]
fn s2_7_6_a_range_covering_another_links_delivery_is_refused() {
    let mut pair = Pair::new();
    let (a_snd, a_rcv) = pair.telemetry(1);
    let (b_snd, b_rcv) = pair.attach_with(spec("b", Role::Sender), |_| {});
    pair.server_flow(b_rcv, 1, false);
    pair.client_send(a_snd, delivery(b"a", false, Bytes::new())).unwrap();
    pair.client_send(b_snd, delivery(b"b", false, Bytes::new())).unwrap();
    let s = &mut pair.server;
    let r = s.links.disposition(&mut s.sessions, &mut s.conn, T0, a_rcv, 0, Some(1), None, true);
    assert_eq!(r, Err(CommandError::Deliveries { link: a_rcv, first: 0, last: 1 }));
}

#[test]
fn s2_6_7_drain_advances_the_delivery_count_and_reports_drained() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(0);
    pair.server_flow(rcv, 3, true);
    assert_eq!(
        pair.client.take_events(),
        vec![LinkEvent::Credit { link: snd, credit: 3, drain: true }]
    );
    pair.client_send(snd, delivery(b"a", true, Bytes::from_static(b"m"))).unwrap();
    let c = &mut pair.client;
    c.links.drained(&mut c.sessions, &mut c.conn, T0, snd).unwrap();
    pair.pump();
    assert_eq!(
        pair.client.links.flow_state(snd),
        Some(LinkFlow { delivery_count: 3, link_credit: 0, drain: false })
    );
    let events = pair.server.take_events();
    assert!(matches!(events.last(), Some(LinkEvent::Drained { link }) if *link == rcv));
    assert_eq!(
        pair.server.links.flow_state(rcv),
        Some(LinkFlow { delivery_count: 3, link_credit: 0, drain: false })
    );
    let c = &mut pair.client;
    assert_eq!(
        c.links.drained(&mut c.sessions, &mut c.conn, T0, snd),
        Err(CommandError::NotDraining(snd))
    );
}

#[test]
fn s2_6_5_detach_with_error_is_answered_and_frees_the_handle() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(1);
    pair.client_send(snd, delivery(b"u", false, Bytes::new())).unwrap();
    let s = &mut pair.server;
    let error = Some(err(condition::LINK_DETACH_FORCED));
    s.links.detach(&mut s.sessions, &mut s.conn, T0, rcv, true, error).unwrap();
    assert_eq!(pair.server.links.state(rcv), Some(LinkState::DetachSent));
    pair.pump();
    let forced = Some(condition::LINK_DETACH_FORCED);
    assert_eq!(pair.client.detached(), vec![(snd, true, true, forced.clone())]);
    assert_eq!(pair.server.detached(), vec![(rcv, false, true, forced)]);
    assert_eq!(pair.client.links.state(snd), None);
    pair.client.take_events();
    pair.server.take_events();
    // The handle is free again.
    let (again, _) = pair.attach_with(spec("events2", Role::Sender), |_| {});
    assert_eq!(again.handle, snd.handle);
}

/// The server's answers, by name, with the condition of each detach and end.
fn answered(answers: &[Performative]) -> Vec<(&'static str, Option<Symbol>)> {
    answers
        .iter()
        .map(|p| {
            let condition = match p {
                Performative::Detach(d) => d.error.as_ref().map(|e| e.condition.clone()),
                Performative::End(e) => e.error.as_ref().map(|e| e.condition.clone()),
                _ => None,
            };
            (p.definition().name, condition)
        })
        .collect()
}

/// A transfer without credit: the link's error, then `frame` from a client that
/// has not yet seen the detach. Returns the server's answers.
fn after_a_link_error(pair: &mut Pair, frame: Performative) -> Vec<(&'static str, Option<Symbol>)> {
    let answers =
        pair.client_raw_batch_answers(vec![(raw_transfer(0, b"t", false), b"m"), (frame, b"")]);
    answered(&answers)
}

#[test]
fn s2_6_5_a_transfer_for_a_link_detached_for_the_peers_error_ends_the_session_with_errant_link() {
    let mut pair = Pair::new();
    let (_, rcv) = pair.attach_with(spec("events", Role::Sender), |_| {});
    let answers = after_a_link_error(&mut pair, raw_transfer(0, b"u", false));
    let limit = condition::LINK_TRANSFER_LIMIT_EXCEEDED;
    let errant = condition::SESSION_ERRANT_LINK;
    assert_eq!(answers, vec![("detach", Some(limit.clone())), ("end", Some(errant.clone()))]);
    assert_eq!(pair.server.error_conditions(), vec![limit, errant]);
    assert!(pair.server.deliveries().is_empty());
    assert!(pair.server.links.state(rcv).is_none(), "the session's links are gone");
}

#[test]
fn s2_6_5_a_flow_for_a_link_detached_for_the_peers_error_ends_the_session_with_errant_link() {
    let mut pair = Pair::new();
    pair.attach_with(spec("events", Role::Sender), |_| {});
    let flow = Flow {
        handle: Some(0),
        delivery_count: Some(1),
        link_credit: Some(0),
        next_incoming_id: Some(0),
        ..Flow::default()
    };
    let answers = after_a_link_error(&mut pair, Performative::Flow(flow));
    assert_eq!(answers.last(), Some(&("end", Some(condition::SESSION_ERRANT_LINK))));
}

#[test]
fn s2_6_5_a_pipelined_attach_after_a_link_error_ends_the_session_with_errant_link() {
    let mut pair = Pair::new();
    pair.attach_with(spec("events", Role::Sender), |_| {});
    let reattach = spec("events", Role::Sender).attach(1);
    let answers = after_a_link_error(&mut pair, Performative::Attach(Box::new(reattach)));
    assert_eq!(answers.last(), Some(&("end", Some(condition::SESSION_ERRANT_LINK))));
    assert!(
        !pair.server.events.iter().any(|e| matches!(e, LinkEvent::AttachRequested { .. })),
        "the pipelined attach is not offered to the application"
    );
}

#[test]
fn s2_6_5_a_disposition_of_an_errant_links_delivery_ends_the_session_with_errant_link() {
    let mut pair = Pair::new();
    // The server sends on "c2d"; the client's receiver gives credit and gets one
    // unsettled delivery.
    let (rcv, snd) = pair.attach_with(spec("c2d", Role::Receiver), |_| {});
    let c = &mut pair.client;
    c.links.flow(&mut c.sessions, &mut c.conn, T0, rcv, 1, false).unwrap();
    pair.pump();
    let s = &mut pair.server;
    let id =
        s.links.send(&mut s.sessions, &mut s.conn, T0, snd, delivery(b"d", false, Bytes::new()));
    let id = id.unwrap();
    pair.pump();
    // The client transfers on its receiver link (a link error the server finds),
    // then settles the delivery before it sees the detach.
    let settle = Disposition {
        role: Role::Receiver,
        first: id,
        last: None,
        settled: true,
        state: Some(DeliveryState::Accepted),
        batchable: false,
    };
    let answers = answered(&pair.client_raw_batch_answers(vec![
        (raw_transfer(rcv.handle, b"t", false), b"m"),
        (Performative::Disposition(settle), b""),
    ]));
    let errant = condition::SESSION_ERRANT_LINK;
    assert_eq!(answers, vec![("detach", Some(condition::ILLEGAL_STATE)), ("end", Some(errant))]);
}

#[test]
fn s2_6_5_a_detach_answering_a_link_error_frees_the_handle_and_the_session_goes_on() {
    let mut pair = Pair::new();
    let (snd, _) = pair.attach_with(spec("events", Role::Sender), |_| {});
    pair.client_raw(raw_transfer(0, b"t", false), b"m");
    assert_eq!(pair.server.error_conditions(), vec![condition::LINK_TRANSFER_LIMIT_EXCEEDED]);
    pair.client.take_events();
    pair.server.take_events();
    let (again, theirs) = pair.attach_with(spec("events", Role::Sender), |_| {});
    assert_eq!(again.handle, snd.handle);
    pair.server_flow(theirs, 1, false);
    pair.client_send(again, delivery(b"u", true, Bytes::from_static(b"m"))).unwrap();
    assert_eq!(pair.server.deliveries().len(), 1);
    assert_eq!(pair.server.error_conditions().len(), 1, "no errant-link");
}

/// A link the application detaches and says why (stolen, unauthorized) is not in
/// error: what the peer sent before it saw the detach is dropped, and the
/// session, carrying other devices' links, goes on.
#[test]
fn s2_6_5_frames_in_flight_for_a_link_the_application_detached_with_an_error_are_dropped() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(5);
    let (other, other_rcv) = pair.attach_with(spec("events2", Role::Sender), |_| {});
    pair.server_flow(other_rcv, 1, false);
    let s = &mut pair.server;
    let stolen = Some(err(condition::LINK_STOLEN));
    s.links.detach(&mut s.sessions, &mut s.conn, T0, rcv, true, stolen).unwrap();
    // The client's transfer crosses the detach.
    let t = raw_transfer(snd.handle, b"t", false);
    let answers = answered(&pair.client_raw_batch_answers(vec![(t, b"m")]));
    assert_eq!(answers, vec![("detach", Some(condition::LINK_STOLEN))]);
    assert!(pair.server.errors.is_empty());
    assert!(pair.server.deliveries().is_empty());
    pair.client_send(other, delivery(b"o", true, Bytes::from_static(b"m"))).unwrap();
    assert_eq!(pair.server.deliveries().len(), 1, "the session goes on");
}

#[test]
fn s2_7_2_an_attach_above_handle_max_closes_the_connection_with_framing_error() {
    let mut pair = Pair::with(4096, 3);
    let attach = spec("x", Role::Sender).attach(4);
    pair.client_raw(Performative::Attach(Box::new(attach)), b"");
    assert_eq!(pair.server.error_conditions(), vec![condition::CONNECTION_FRAMING_ERROR]);
    let closed = pair.client.closed.clone().unwrap().unwrap();
    assert_eq!(closed.condition, condition::CONNECTION_FRAMING_ERROR);
}

#[test]
fn s2_7_3_an_attach_on_a_handle_in_use_ends_the_session_with_handle_in_use() {
    let mut pair = Pair::new();
    pair.attach_with(spec("a", Role::Sender), |_| {});
    let attach = spec("b", Role::Sender).attach(0);
    pair.client_raw(Performative::Attach(Box::new(attach)), b"");
    assert_eq!(pair.server.error_conditions(), vec![condition::SESSION_HANDLE_IN_USE]);
    assert_eq!(pair.client.ended(), vec![(true, Some(condition::SESSION_HANDLE_IN_USE))]);
    assert_eq!(pair.server.ended(), vec![(false, Some(condition::SESSION_HANDLE_IN_USE))]);
}

#[test]
fn s2_7_4_a_flow_on_an_unattached_handle_ends_the_session_with_unattached_handle() {
    let mut pair = Pair::new();
    let flow = Flow { handle: Some(9), link_credit: Some(1), ..Flow::default() };
    pair.client_raw(Performative::Flow(flow), b"");
    assert_eq!(pair.server.error_conditions(), vec![condition::SESSION_UNATTACHED_HANDLE]);
    assert_eq!(pair.client.ended(), vec![(true, Some(condition::SESSION_UNATTACHED_HANDLE))]);
}

#[test]
fn s2_8_17_transfer_and_detach_on_unattached_handles_end_the_session() {
    for p in [
        raw_transfer(5, b"t", false),
        Performative::Detach(Detach { handle: 5, closed: true, error: None }),
    ] {
        let mut pair = Pair::new();
        pair.client_raw(p, b"");
        assert_eq!(pair.server.error_conditions(), vec![condition::SESSION_UNATTACHED_HANDLE]);
        assert_eq!(pair.server.ended(), vec![(false, Some(condition::SESSION_UNATTACHED_HANDLE))]);
    }
}

#[test]
fn s2_6_7_transfer_without_credit_detaches_with_transfer_limit_exceeded() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.attach_with(spec("events", Role::Sender), |_| {});
    pair.client_raw(raw_transfer(0, b"t", false), b"m");
    let limit = condition::LINK_TRANSFER_LIMIT_EXCEEDED;
    assert_eq!(pair.server.error_conditions(), vec![limit.clone()]);
    assert!(pair.server.deliveries().is_empty());
    assert_eq!(pair.client.detached(), vec![(snd, true, true, Some(limit.clone()))]);
    assert_eq!(pair.server.detached(), vec![(rcv, false, true, Some(limit))]);
}

#[test]
fn s2_6_1_a_transfer_on_a_sender_link_detaches_with_illegal_state() {
    let mut pair = Pair::new();
    // The client receives; the server sends on the link. The client (as if it
    // were the sender) transfers on its receiver link.
    let (rcv, snd) = pair.attach_with(spec("c2d", Role::Receiver), |_| {});
    pair.client_raw(raw_transfer(rcv.handle, b"t", false), b"m");
    assert_eq!(pair.server.error_conditions(), vec![condition::ILLEGAL_STATE]);
    assert_eq!(pair.server.detached(), vec![(snd, false, true, Some(condition::ILLEGAL_STATE))]);
}

#[test]
fn s2_7_5_a_first_frame_without_delivery_tag_detaches_with_invalid_field() {
    let mut pair = Pair::new();
    let (_, rcv) = pair.telemetry(1);
    let t = Transfer { handle: 0, message_format: Some(0), ..Transfer::default() };
    pair.client_raw(Performative::Transfer(t), b"m");
    assert_eq!(pair.server.error_conditions(), vec![condition::INVALID_FIELD]);
    assert_eq!(pair.server.detached(), vec![(rcv, false, true, Some(condition::INVALID_FIELD))]);
}

/// Two deliveries under one delivery-id, the first still unsettled: the second
/// could never be answered apart from the first, so the link goes.
#[test]
fn s2_7_5_a_delivery_id_still_unsettled_detaches_with_invalid_field() {
    let mut pair = Pair::new();
    let (_, rcv) = pair.telemetry(2);
    for (tag, payload) in [(&b"a"[..], &b"one"[..]), (b"b", b"two")] {
        let t = Transfer {
            handle: 0,
            delivery_id: Some(7),
            delivery_tag: Some(Bytes::from_static(tag)),
            message_format: Some(0),
            ..Transfer::default()
        };
        // Past the client's session, which numbers deliveries itself.
        let c = &mut pair.client;
        c.conn.send(pair.now, pair.c_session.0, &Performative::Transfer(t), payload).unwrap();
        pair.pump();
    }
    assert_eq!(pair.server.deliveries(), vec![(7, Bytes::from_static(b"one"), false)]);
    assert_eq!(pair.server.error_conditions(), vec![condition::INVALID_FIELD]);
    assert_eq!(pair.server.detached(), vec![(rcv, false, true, Some(condition::INVALID_FIELD))]);
}

#[test]
fn s2_7_3_an_oversized_message_is_rejected_and_the_next_one_gets_through() {
    let mut pair = Pair::with(512, Begin::DEFAULT_HANDLE_MAX);
    // The server's limit: the client's links would respect it, raw frames do not.
    let (_, rcv) =
        pair.attach_with(spec("events", Role::Sender), |a| a.max_message_size = Some(1000));
    pair.server_flow(rcv, 2, false);
    let mut answers = vec![];
    for _ in 0..4 {
        answers.extend(pair.client_raw_answers(raw_transfer(0, b"big", true), &[1u8; 400]));
    }
    answers.extend(pair.client_raw_answers(raw_transfer(0, b"big", false), &[1u8; 400]));
    answers.extend(pair.client_raw_answers(raw_transfer(0, b"ok", false), b"small"));
    let size = condition::LINK_MESSAGE_SIZE_EXCEEDED;
    assert_eq!(pair.server.error_conditions(), vec![size.clone()]);
    // Nothing of the big one was kept past the limit.
    assert_eq!(pair.server.deliveries(), vec![(1, Bytes::from_static(b"small"), false)]);
    // One answer: the third frame crossed the limit; delivery 0 rejected, settled.
    match answers.as_slice() {
        [
            Performative::Disposition(Disposition {
                role: Role::Receiver,
                first: 0,
                last: None,
                settled: true,
                state: Some(DeliveryState::Rejected { error: Some(e) }),
                ..
            }),
        ] => assert_eq!(e.condition, size),
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.server.links.state(rcv), Some(LinkState::Attached));
    assert!(pair.client.detached().is_empty());
}

#[test]
fn s2_6_5_session_end_forgets_its_links() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(1);
    let c = &mut pair.client;
    c.sessions.end(&mut c.conn, T0, pair.c_session, None).unwrap();
    pair.pump();
    assert_eq!(pair.client.ended(), vec![(false, None)]);
    assert_eq!(pair.server.ended(), vec![(true, None)]);
    assert_eq!(pair.client.links.state(snd), None);
    assert_eq!(pair.server.links.state(rcv), None);
}

#[test]
fn s2_7_4_echo_is_answered_with_the_link_flow_state() {
    let mut pair = Pair::new();
    let (snd, _) = pair.telemetry(2);
    // The client asks for the receiver's state with a flow of its own (§2.7.4
    // echo), as if it had lost count; the answer restores its credit.
    let flow = Flow {
        handle: Some(snd.handle),
        delivery_count: Some(0),
        link_credit: Some(0),
        echo: true,
        ..Flow::default()
    };
    pair.client_raw(Performative::Flow(flow), b"");
    assert_eq!(
        pair.client.take_events(),
        vec![LinkEvent::Credit { link: snd, credit: 2, drain: false }]
    );
}

#[test]
fn s2_6_3_a_transfer_before_the_answer_is_refused_with_transfer_limit_exceeded() {
    // The peer sends before this side accepted its attach: no credit was given,
    // and the answer is the refusal of §2.6.3, then the detach.
    let mut pair = Pair::new();
    let c = &mut pair.client;
    let snd = c
        .links
        .attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec("events", Role::Sender))
        .unwrap();
    pair.pump();
    let answers = pair.client_raw_answers(raw_transfer(snd.handle, b"t", false), b"m");
    match answers.as_slice() {
        [Performative::Attach(a), Performative::Detach(d)] => {
            assert_eq!(a.target, None);
            let e = d.error.as_ref().unwrap();
            assert_eq!(e.condition, condition::LINK_TRANSFER_LIMIT_EXCEEDED);
        }
        other => panic!("{other:?}"),
    }
    let limit = Some(condition::LINK_TRANSFER_LIMIT_EXCEEDED);
    assert_eq!(pair.client.detached(), vec![(snd, true, true, limit)]);
}

#[test]
fn s2_6_5_a_detach_before_the_answer_is_answered_with_attach_then_detach() {
    let mut pair = Pair::new();
    let c = &mut pair.client;
    let snd = c
        .links
        .attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec("events", Role::Sender))
        .unwrap();
    c.links.detach(&mut c.sessions, &mut c.conn, T0, snd, true, None).unwrap();
    pair.pump();
    assert!(matches!(
        pair.server.take_events().as_slice(),
        [
            LinkEvent::AttachRequested { .. },
            LinkEvent::Detached { by_peer: true, closed: true, .. }
        ]
    ));
    assert_eq!(pair.client.detached(), vec![(snd, false, true, None)]);
    assert!(pair.client.errors.is_empty() && pair.client.session_errors.is_empty());
}

#[test]
fn s2_7_6_a_peers_range_reaches_the_deliveries_of_every_link_it_covers() {
    let mut pair = Pair::new();
    let (a_snd, _) = pair.telemetry(1);
    let (b_snd, b_rcv) = pair.attach_with(spec("b", Role::Sender), |_| {});
    pair.server_flow(b_rcv, 1, false);
    pair.client_send(a_snd, delivery(b"a", false, Bytes::new())).unwrap();
    pair.client_send(b_snd, delivery(b"b", false, Bytes::new())).unwrap();
    pair.client.take_events();
    // One disposition of the server's for both (its links refuse such a range;
    // a peer may send it).
    let d = Disposition {
        role: Role::Receiver,
        first: 0,
        last: Some(1),
        settled: true,
        state: Some(DeliveryState::Released),
        batchable: false,
    };
    let s = &mut pair.server;
    s.sessions.send(&mut s.conn, T0, pair.s_session, Performative::Disposition(d)).unwrap();
    pair.pump();
    let released = Some(DeliveryState::Released);
    assert_eq!(
        pair.client.take_events(),
        vec![
            LinkEvent::Disposition {
                link: a_snd,
                delivery_id: 0,
                state: released.clone(),
                settled: true
            },
            LinkEvent::Disposition { link: b_snd, delivery_id: 1, state: released, settled: true },
        ]
    );
}

#[test]
fn s2_6_3_an_answer_must_carry_the_peers_name_and_the_other_role() {
    let mut pair = Pair::new();
    let c = &mut pair.client;
    c.links
        .attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec("events", Role::Sender))
        .unwrap();
    pair.pump();
    let theirs = match pair.server.take_events().as_slice() {
        [LinkEvent::AttachRequested { link, .. }] => *link,
        other => panic!("{other:?}"),
    };
    let s = &mut pair.server;
    for answer in [spec("other", Role::Receiver), spec("events", Role::Sender)] {
        let r = s.links.accept_attach(&mut s.sessions, &mut s.conn, T0, theirs, answer);
        assert_eq!(r, Err(CommandError::AnswerMismatch(theirs)));
    }
    assert_eq!(s.links.state(theirs), Some(LinkState::AttachReceived));
}

/// Delivery-ids count each direction of a session on its own (§2.7.5): the peer
/// settling this side's outgoing delivery 0 leaves the incoming delivery 0 (of
/// another link, the other way) unsettled, and the reverse.
#[test]
fn s2_7_5_settling_an_outgoing_delivery_leaves_the_incoming_one_of_the_same_id() {
    let mut pair = Pair::new();
    let (snd, rcv) = pair.telemetry(1);
    // The C2D direction: a client receiver, a server sender.
    let (c2d_rcv, c2d_snd) = pair.attach_with(spec("c2d", Role::Receiver), |_| {});
    let c = &mut pair.client;
    c.links.flow(&mut c.sessions, &mut c.conn, T0, c2d_rcv, 1, false).unwrap();
    pair.pump();
    pair.client_send(snd, delivery(b"up", false, Bytes::from_static(b"1"))).unwrap();
    let s = &mut pair.server;
    let id = s
        .links
        .send(
            &mut s.sessions,
            &mut s.conn,
            T0,
            c2d_snd,
            delivery(b"dn", false, Bytes::from_static(b"2")),
        )
        .unwrap();
    pair.pump();
    assert_eq!(id, 0, "both directions start at delivery-id 0");
    // The server accepts and settles the client's telemetry 0 ...
    let accepted = Some(DeliveryState::Accepted);
    let s = &mut pair.server;
    s.links
        .disposition(&mut s.sessions, &mut s.conn, T0, rcv, 0, None, accepted.clone(), true)
        .unwrap();
    pair.pump();
    // ... and the client can still settle the server's C2D delivery 0, which the
    // server still holds.
    let c = &mut pair.client;
    c.links
        .disposition(&mut c.sessions, &mut c.conn, T0, c2d_rcv, 0, None, accepted.clone(), true)
        .unwrap();
    pair.pump();
    assert_eq!(pair.server.dispositions().last(), Some(&(0, accepted, true)));
}

#[test]
fn s2_6_3_a_peer_attaching_tens_of_thousands_of_links_gets_the_lowest_free_handles() {
    // Finding a free handle, or the attach a peer's answers, must not scan every
    // link: 40 000 attaches would take minutes.
    const LINKS: u32 = 40_000;
    let mut pair = Pair::new();
    for i in 0..LINKS {
        let name = Utf8Bytes::from(alloc::format!("link-{i}"));
        let spec = LinkSpec { name, ..spec("x", Role::Sender) };
        let c = &mut pair.client;
        let link = c.links.attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec);
        assert_eq!(link.map(|l| l.handle), Ok(i));
        if i % 1024 == 1023 {
            pair.pump();
        }
    }
    pair.pump();
    let requested: Vec<Handle> = pair
        .server
        .take_events()
        .iter()
        .filter_map(|e| match e {
            LinkEvent::AttachRequested { link, .. } => Some(link.handle),
            _ => None,
        })
        .collect();
    assert_eq!(requested, (0..LINKS).collect::<Vec<_>>());
    // Detaching two frees their handles, the lower reused first, on both sides.
    for handle in [30_000, 9] {
        let link = LinkId { session: pair.c_session, handle };
        let c = &mut pair.client;
        c.links.detach(&mut c.sessions, &mut c.conn, T0, link, true, None).unwrap();
    }
    pair.pump();
    for handle in [9, 30_000] {
        let c = &mut pair.client;
        let link = c.links.attach(
            &mut c.sessions,
            &mut c.conn,
            T0,
            pair.c_session,
            spec("again", Role::Sender),
        );
        assert_eq!(link.map(|l| l.handle), Ok(handle));
    }
    assert!(pair.client.errors.is_empty() && pair.server.errors.is_empty());
}

/// The frames of `wire` as performatives, whatever their size.
fn performatives(wire: &[u8]) -> Vec<Performative> {
    let mut rx = BytesMut::from(wire);
    let limits = crate::amqp::frame::FrameLimits { max_frame_size: u32::MAX };
    let mut out = vec![];
    while let Some(frame) = crate::amqp::frame::decode(&mut rx, &limits).unwrap() {
        out.push(Performative::decode(&frame.body, &Default::default()).unwrap().0);
    }
    out
}

#[test]
fn s2_7_2_no_link_is_attached_beyond_the_peers_handle_max() {
    // Both sides announce handle-max 1: handles 0 and 1, then none.
    let mut pair = Pair::with(4096, 1);
    let (a, _) = pair.attach_with(spec("a", Role::Sender), |_| {});
    let (b, _) = pair.attach_with(spec("b", Role::Sender), |_| {});
    assert_eq!((a.handle, b.handle), (0, 1));
    let c = &mut pair.client;
    let r =
        c.links.attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec("c", Role::Sender));
    assert_eq!(r, Err(CommandError::NoFreeHandle { session: pair.c_session, max: 1 }));
    assert!(performatives(&pair.client.drain()).is_empty(), "an attach went out");
}

#[test]
fn s2_7_3_a_sender_attach_names_its_initial_delivery_count_and_none_an_unsettled_map() {
    let sender = spec("s", Role::Sender).attach(0);
    assert_eq!(sender.initial_delivery_count, Some(0));
    let receiver = spec("r", Role::Receiver).attach(1);
    assert_eq!(receiver.initial_delivery_count, None);
    // The answer to a receiver's attach is a sender's: it names its count too.
    let answer = LinkSpec::answering(&receiver).attach(3);
    assert_eq!((answer.role, answer.initial_delivery_count), (Role::Sender, Some(0)));
    // No resumption: every attach, a reattach too, carries a null unsettled map.
    for attach in [sender, receiver, answer] {
        assert!(attach.unsettled.is_empty() && !attach.incomplete_unsettled, "{attach:?}");
    }
}

#[test]
fn s2_7_4_a_session_echo_is_answered_with_session_fields_only_and_no_echo() {
    let mut pair = Pair::new();
    let echo = Flow { echo: true, ..Flow::default() };
    let answers = pair.client_raw_answers(Performative::Flow(echo), b"");
    let [Performative::Flow(f)] = answers.as_slice() else { panic!("{answers:?}") };
    // The server has the client's begin: next-incoming-id is set.
    assert_eq!(f.next_incoming_id, Some(0));
    assert_eq!(f.handle, None);
    assert_eq!((f.delivery_count, f.link_credit, f.available, f.drain), (None, None, None, false));
    assert!(!f.echo, "an echo answered with an echo can loop");
}

#[test]
fn s2_7_4_a_link_echo_is_answered_with_the_senders_last_count_and_no_echo() {
    let mut pair = Pair::new();
    let (snd, _) = pair.telemetry(2);
    pair.client_send(snd, delivery(b"1", false, Bytes::from_static(b"m"))).unwrap();
    let flow =
        Flow { handle: Some(snd.handle), delivery_count: Some(1), echo: true, ..Flow::default() };
    let answers = pair.client_raw_answers(Performative::Flow(flow), b"");
    let [Performative::Flow(f)] = answers.as_slice() else { panic!("{answers:?}") };
    // The receiver's answer carries the count it last saw from the sender.
    assert_eq!((f.handle, f.delivery_count, f.link_credit), (Some(0), Some(1), Some(1)));
    assert!(!f.echo);
}

#[test]
fn s2_7_4_a_receiver_gives_no_credit_before_the_senders_attach() {
    let mut pair = Pair::new();
    let c = &mut pair.client;
    let rcv = c
        .links
        .attach(&mut c.sessions, &mut c.conn, T0, pair.c_session, spec("c2d", Role::Receiver))
        .unwrap();
    let _attach = pair.client.drain();
    // The server has not answered: a flow would need a delivery-count not yet known.
    let c = &mut pair.client;
    let r = c.links.flow(&mut c.sessions, &mut c.conn, T0, rcv, 5, false);
    assert!(matches!(r, Err(CommandError::State { .. })), "{r:?}");
    assert!(performatives(&pair.client.drain()).is_empty(), "a flow went out");
}

#[test]
fn s2_7_5_an_unset_settled_flag_reads_as_false_then_as_any_earlier_true() {
    let mut pair = Pair::new();
    let (snd, _) = pair.telemetry(3);
    // One frame, settled unset: unsettled.
    pair.client_raw(raw_transfer(snd.handle, b"a", false), b"one");
    // Settled on the first frame only: settled.
    let first =
        Transfer { settled: Some(true), ..transfer_of(raw_transfer(snd.handle, b"b", true)) };
    pair.client_raw(Performative::Transfer(first), b"tw");
    let rest = Transfer { handle: snd.handle, ..Transfer::default() };
    pair.client_raw(Performative::Transfer(rest), b"o");
    assert_eq!(
        pair.server.deliveries(),
        vec![(0, Bytes::from_static(b"one"), false), (1, Bytes::from_static(b"two"), true)]
    );
    assert!(pair.server.errors.is_empty());
}

fn transfer_of(p: Performative) -> Transfer {
    match p {
        Performative::Transfer(t) => t,
        other => panic!("{other:?}"),
    }
}

#[test]
fn s2_7_5_the_first_transfer_names_tag_format_and_settled_and_continuations_their_link() {
    let mut pair = Pair::with(512, Begin::DEFAULT_HANDLE_MAX);
    let (snd, _) = pair.telemetry(1);
    let c = &mut pair.client;
    let payload = Bytes::from(vec![1u8; 2000]);
    c.links.send(&mut c.sessions, &mut c.conn, T0, snd, delivery(b"t", false, payload)).unwrap();
    let transfers: Vec<Transfer> =
        performatives(&pair.client.drain()).into_iter().map(transfer_of).collect();
    let (first, rest) = transfers.split_first().unwrap();
    assert_eq!(first.delivery_id, Some(0));
    assert_eq!(first.delivery_tag.as_deref(), Some(&b"t"[..]));
    assert_eq!((first.message_format, first.settled), (Some(0), Some(false)));
    assert!(!rest.is_empty());
    for t in rest {
        assert_eq!((t.handle, t.delivery_tag.as_ref(), t.message_format), (snd.handle, None, None));
        assert_ne!(t.settled, Some(true));
    }
}

/// §2.7.7 and §2.7.8: a detach or an end for an error carries a description of
/// its cause.
#[test]
fn s2_7_7_and_s2_7_8_detach_and_end_errors_say_why() {
    let mut pair = Pair::new();
    pair.attach_with(spec("events", Role::Sender), |_| {});
    // No credit was given: the receiver detaches.
    let answers = pair.client_raw_answers(raw_transfer(0, b"t", false), b"m");
    let detach = answers.iter().find_map(|p| match p {
        Performative::Detach(d) => d.error.as_ref().and_then(|e| e.description.clone()),
        _ => None,
    });
    assert!(detach.is_some_and(|d| !d.as_str().is_empty()), "{answers:?}");
    // A flow for a link that does not exist: the session ends.
    let flow = Flow { handle: Some(9), link_credit: Some(1), ..Flow::default() };
    let answers = pair.client_raw_answers(Performative::Flow(flow), b"");
    let end = answers.iter().find_map(|p| match p {
        Performative::End(e) => e.error.as_ref().and_then(|e| e.description.clone()),
        _ => None,
    });
    assert!(end.is_some_and(|d| !d.as_str().is_empty()), "{answers:?}");
}
