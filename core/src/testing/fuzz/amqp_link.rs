//! The `amqp_link` target: the link layer (part 2 §2.6) over a server connection
//! and its sessions, fed a client's valid header, `open`, `begin` and a sender's
//! `attach`, then the fuzzer's bytes, with link commands between chunks.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::amqp_frame_bytes;
use super::{START, Schedule};
use crate::amqp::connection::{Connection, ConnectionEvent};
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::frame::{self, FrameKind, FrameLimits};
use crate::amqp::link::{Delivery, LinkConfig, LinkError, LinkEvent, LinkId, LinkSpec, Links};
use crate::amqp::performative::{
    AmqpError, Attach, Begin, Detach, Disposition, Flow, Open, Performative, Role, Target,
    Terminus, Transfer, condition,
};
use crate::amqp::protocol_header::ProtocolHeader;
use crate::amqp::session::{SessionConfig, SessionId, Sessions};
use crate::amqp::types::{Limits, Symbol};
use crate::sansio::Transmit;
use crate::utf8::Utf8Bytes;

/// The client's max-frame-size: the server's frames must stay within it.
const CLIENT_MAX_FRAME_SIZE: u32 = 512;
/// The client's handle-max: the server's attaches must stay within it.
const CLIENT_HANDLE_MAX: u32 = 3;
/// The server's handle-max.
const SERVER_HANDLE_MAX: u32 = 7;
/// The server's max-message-size on the links it accepts, bytes.
const MAX_MESSAGE_SIZE: u64 = 2048;

fn open(container: &'static str) -> Open {
    let mut open = Open::new(Utf8Bytes::from_static(container));
    open.max_frame_size = CLIENT_MAX_FRAME_SIZE;
    open.channel_max = 1;
    open
}

/// The client's sender `attach` on `handle`, named `events`.
fn attach(handle: u32) -> Performative {
    let target = Target {
        terminus: Terminus::at(Utf8Bytes::from_static("/devices/d1/messages/events")),
        ..Target::default()
    };
    let mut attach = Attach::new(Utf8Bytes::from_static("events"), handle, Role::Sender);
    attach.target = Some(target);
    attach.initial_delivery_count = Some(0);
    Performative::Attach(alloc::boxed::Box::new(attach))
}

/// The client's header, `open`, a `begin` on channel 0 and its sender's attach.
fn client_hello() -> Vec<u8> {
    let mut out = BytesMut::new();
    ProtocolHeader::AMQP.encode(&mut out);
    out.extend_from_slice(&amqp_frame_bytes(0, &Performative::Open(open("fuzz-client"))));
    let begin = Begin { handle_max: CLIENT_HANDLE_MAX, ..Begin::new(0, 64, 64) };
    out.extend_from_slice(&amqp_frame_bytes(0, &Performative::Begin(begin)));
    out.extend_from_slice(&amqp_frame_bytes(0, &attach(0)));
    out.to_vec()
}

/// The first two bytes are the [`Schedule`]; the rest follows the client's hello,
/// cut into chunks. Each attach the client asks for is accepted (with a
/// max-message-size) and its sender given credit; between chunks the server
/// attaches, sends, grants credit, drains, settles and detaches.
///
/// Properties: a refused command sends nothing; the server's frames are whole,
/// decodable and within the client's max-frame-size, its attaches within the
/// client's handle-max (§2.7.2), every transfer with a delivery-id; no delivery
/// handed up exceeds the max-message-size; and, while the server sent no
/// `close`, each peer violation's condition is on the wire (the link's detach,
/// the session's end, the connection's close).
pub fn amqp_link(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut input = client_hello();
    input.extend_from_slice(stream);
    let now = START;
    let mut s = Server::new();
    let mut offset = 0;
    while offset < input.len() && !s.closed {
        if schedule.event() {
            s.command(&mut schedule);
        }
        let n = schedule.chunk(input.len() - offset);
        // Connection errors are the connection target's; here its Closed event.
        let _ = s.conn.handle_input(now, &input[offset..offset + n]);
        offset += n;
        s.feed();
    }
    s.conn.handle_close(now);
    s.feed();
    s.check_output();
}

/// The server and what the body watches of it.
struct Server {
    conn: Connection,
    sessions: Sessions,
    links: Links,
    wire: BytesMut,
    closed: bool,
    /// Conditions the server's reactions to link errors must carry.
    expected: Vec<Symbol>,
    /// Links as they attached, newest last; deliveries as they arrived.
    attached: Vec<LinkId>,
    delivered: Vec<(LinkId, u32)>,
    session: Option<SessionId>,
    next_tag: u8,
}

impl Server {
    fn new() -> Server {
        let config = SessionConfig {
            incoming_window: 8,
            handle_max: SERVER_HANDLE_MAX,
            ..SessionConfig::default()
        };
        Server {
            conn: Connection::server(open("fuzz-server"), START),
            sessions: Sessions::new(config),
            links: Links::new(LinkConfig { handle_max: SERVER_HANDLE_MAX }),
            wire: BytesMut::new(),
            closed: false,
            expected: vec![],
            attached: vec![],
            delivered: vec![],
            session: None,
            next_tag: 0,
        }
    }

    /// One link command, picked by the schedule.
    fn command(&mut self, schedule: &mut Schedule) {
        let now = START;
        let (conn, sessions, links) = (&mut self.conn, &mut self.sessions, &mut self.links);
        let n = self.attached.len().max(1);
        let link = self
            .attached
            .get(schedule.below(n))
            .copied()
            .unwrap_or(LinkId { session: SessionId(0), handle: 0 });
        let before = self.wire.len();
        let refused = match schedule.below(7) {
            0 => {
                let session = self.session.unwrap_or(SessionId(0));
                let role = if schedule.coin() { Role::Sender } else { Role::Receiver };
                let name = if role == Role::Sender { "c2d" } else { "twin" };
                let spec = LinkSpec::new(Utf8Bytes::from_static(name), role, None, None);
                links.attach(sessions, conn, now, session, spec).err()
            }
            1 => {
                self.next_tag = self.next_tag.wrapping_add(1);
                let size = [0, 1, 600, 3000][schedule.below(4)];
                let d = Delivery {
                    tag: Bytes::copy_from_slice(&[self.next_tag]),
                    message_format: 0,
                    settled: schedule.coin(),
                    payload: Bytes::from(vec![self.next_tag; size]),
                };
                links.send(sessions, conn, now, link, d).err()
            }
            2 => {
                let credit = u32::try_from(schedule.below(4)).unwrap_or(0);
                links.flow(sessions, conn, now, link, credit, schedule.coin()).err()
            }
            3 => links.drained(sessions, conn, now, link).err(),
            4 => {
                let (first, last) = match self.delivered.last() {
                    Some(&(_, id)) => (id.wrapping_sub(1), Some(id)),
                    None => (0, None),
                };
                let state = Some(DeliveryState::Accepted);
                links
                    .disposition(sessions, conn, now, link, first, last, state, schedule.coin())
                    .err()
            }
            5 => {
                let error =
                    schedule.coin().then(|| AmqpError::new(condition::INTERNAL_ERROR, None));
                links.detach(sessions, conn, now, link, schedule.coin(), error).err()
            }
            _ => {
                let error = AmqpError::new(condition::NOT_FOUND, None);
                links.refuse_attach(sessions, conn, now, link, error).err()
            }
        };
        self.drain();
        if refused.is_some() {
            assert_eq!(self.wire.len(), before, "a refused command sent {refused:?}");
        }
        self.pass_links_events();
    }

    /// Hands the connection's frames to the sessions and theirs to the links.
    fn feed(&mut self) {
        let now = START;
        while let Some(event) = self.conn.poll_event() {
            match event {
                ConnectionEvent::Frame { channel, performative, payload } => {
                    let (conn, sessions) = (&mut self.conn, &mut self.sessions);
                    // Session errors are the session target's.
                    let _ = sessions.handle_frame(conn, now, channel, performative, payload);
                    while let Some(event) = self.sessions.poll_event() {
                        let (conn, sessions) = (&mut self.conn, &mut self.sessions);
                        match self.links.handle_session_event(sessions, conn, now, event) {
                            Ok(()) => {}
                            // A pre-settled delivery is dropped without a word.
                            Err(LinkError::MessageSizeExceeded { .. }) => {}
                            Err(e) => self.expected.push(e.condition()),
                        }
                    }
                }
                ConnectionEvent::Closed { .. } => {
                    self.sessions.handle_connection_closed();
                    self.links.handle_connection_closed();
                }
                ConnectionEvent::Opened(_)
                | ConnectionEvent::SaslInit { .. }
                | ConnectionEvent::SaslOutcome { .. } => {}
            }
            self.pass_links_events();
        }
        self.drain();
    }

    /// Accepts every attach (with a max-message-size), gives each sender of the
    /// client credit, and checks each delivery's size.
    fn pass_links_events(&mut self) {
        let now = START;
        while let Some(event) = self.links.poll_event() {
            let (conn, sessions, links) = (&mut self.conn, &mut self.sessions, &mut self.links);
            match event {
                LinkEvent::SessionBegun { session, .. } => self.session = Some(session),
                LinkEvent::AttachRequested { link, remote } => {
                    let mut answer = LinkSpec::answering(&remote);
                    answer.max_message_size = Some(MAX_MESSAGE_SIZE);
                    if links.accept_attach(sessions, conn, now, link, answer).is_ok()
                        && remote.role == Role::Sender
                    {
                        let _ = links.flow(sessions, conn, now, link, 4, false);
                    }
                }
                LinkEvent::Attached { link, .. } => self.attached.push(link),
                LinkEvent::Delivery { link, delivery_id, payload, .. } => {
                    let size = u64::try_from(payload.len()).unwrap_or(u64::MAX);
                    assert!(size <= MAX_MESSAGE_SIZE, "a {size}-byte delivery");
                    self.delivered.push((link, delivery_id));
                }
                _ => {}
            }
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(transmit) = self.conn.poll_transmit() {
            match transmit {
                Transmit::Send(bytes) => {
                    assert!(!self.closed, "bytes after Transmit::Close");
                    self.wire.extend_from_slice(&bytes);
                }
                Transmit::Close => self.closed = true,
                Transmit::Connect => panic!("a server never connects"),
            }
        }
    }

    /// The server's bytes: its header, then whole frames within the client's
    /// max-frame-size, attaches within its handle-max, transfers with a
    /// delivery-id; and, without a `close`, every expected condition.
    fn check_output(&self) {
        let mut rx = self.wire.clone();
        if rx.is_empty() {
            return;
        }
        assert_eq!(ProtocolHeader::decode(&mut rx), Ok(Some(ProtocolHeader::AMQP)));
        let limits = FrameLimits { max_frame_size: u32::MAX };
        let mut conditions = vec![];
        let mut closed = false;
        loop {
            let frame = match frame::decode(&mut rx, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => panic!("the server sent a bad frame: {e}"),
            };
            let FrameKind::Amqp { .. } = frame.kind else { panic!("a SASL frame") };
            if frame.is_empty() {
                continue;
            }
            let size = frame::FRAME_HEADER_LEN + frame.body.len();
            // Before the client's open, 512 bytes (§2.4.1) is the same bound here.
            assert!(size <= CLIENT_MAX_FRAME_SIZE as usize, "a {size}-byte frame");
            let decoded = Performative::decode(&frame.body, &Limits::default());
            let Ok((performative, _)) = decoded else {
                panic!("the server sent an undecodable body: {decoded:?}");
            };
            match performative {
                Performative::Attach(a) => {
                    assert!(a.handle <= CLIENT_HANDLE_MAX, "attach handle {}", a.handle);
                }
                Performative::Transfer(t) => {
                    assert!(t.delivery_id.is_some(), "a transfer without a delivery-id");
                }
                Performative::Detach(Detach { error: Some(e), .. }) => conditions.push(e.condition),
                Performative::End(end) => conditions.extend(end.error.map(|e| e.condition)),
                Performative::Close(_) => closed = true,
                _ => {}
            }
        }
        assert!(rx.is_empty(), "the server's output ends mid-frame");
        if !closed {
            for c in &self.expected {
                assert!(conditions.contains(c), "no reaction carries {c:?}");
            }
        }
    }
}

/// What a client sends after its attach: transfers within its credit, one frame
/// and several, one too large, an aborted one; a flow asking for an echo; a
/// disposition; a detach; violations (an unattached handle, a handle in use, a
/// transfer beyond credit).
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let transfer = |id: u32, tag: &'static [u8], more: bool, aborted: bool| {
        Performative::Transfer(Transfer {
            handle: 0,
            delivery_id: Some(id),
            delivery_tag: Some(Bytes::from_static(tag)),
            message_format: Some(0),
            more,
            aborted,
            ..Transfer::default()
        })
    };
    let with_payload = |p: &Performative, payload: &[u8]| {
        let mut bytes = amqp_frame_bytes(0, p);
        append_payload(&mut bytes, payload);
        bytes
    };
    let flow = Performative::Flow(Flow {
        next_incoming_id: Some(0),
        incoming_window: 10,
        next_outgoing_id: 0,
        outgoing_window: 10,
        handle: Some(0),
        delivery_count: Some(0),
        link_credit: Some(0),
        echo: true,
        ..Flow::default()
    });
    let disposition = Performative::Disposition(Disposition {
        role: Role::Receiver,
        first: 0,
        last: Some(3),
        settled: true,
        state: Some(DeliveryState::Accepted),
        batchable: false,
    });
    let detach = Performative::Detach(Detach { handle: 0, closed: true, error: None });
    let unattached = Performative::Detach(Detach { handle: 2, closed: true, error: None });
    let seed = |schedule: [u8; 2], frames: Vec<Vec<u8>>| {
        let mut out = schedule.to_vec();
        for f in frames {
            out.extend_from_slice(&f);
        }
        out
    };
    let big = vec![0x42u8; 400];
    let f = |p: &Performative| amqp_frame_bytes(0, p);
    vec![
        seed([0x0F, 0], vec![with_payload(&transfer(0, b"a", false, false), b"hello")]),
        seed(
            [0x83, 2],
            vec![
                with_payload(&transfer(0, b"b", true, false), &big),
                with_payload(&transfer(0, b"b", false, false), &big),
                f(&flow),
                f(&disposition),
            ],
        ),
        seed(
            [0x0F, 0],
            (0..7).map(|i| with_payload(&transfer(0, b"c", i < 6, false), &big)).collect(),
        ),
        seed(
            [0xF6, 3],
            vec![
                with_payload(&transfer(0, b"d", true, false), &big),
                f(&transfer(0, b"d", false, true)),
                f(&detach),
            ],
        ),
        seed([0x00, 1], vec![f(&unattached)]),
        seed([0x0F, 0], vec![f(&attach(0))]),
        seed([0x0F, 0], vec![f(&attach(SERVER_HANDLE_MAX + 1))]),
        seed(
            [0x0F, 0],
            (0..5).map(|i| with_payload(&transfer(i, b"e", false, false), b"x")).collect(),
        ),
    ]
}

/// Appends `payload` to the one frame in `frame`, fixing its size field (§2.3.1).
fn append_payload(frame: &mut Vec<u8>, payload: &[u8]) {
    frame.extend_from_slice(payload);
    let size = u32::try_from(frame.len()).unwrap_or(u32::MAX).to_be_bytes();
    if let Some(field) = frame.get_mut(..4) {
        field.copy_from_slice(&size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_link_seeds_run() {
        for seed in seeds() {
            amqp_link(&seed);
        }
    }

    /// The first seed's transfer reaches the links as a delivery: the hello and
    /// the accepted attach put the fuzzer past the attach.
    #[test]
    fn the_hello_attaches_a_link_with_credit() {
        let mut s = Server::new();
        let mut input = client_hello();
        input.extend_from_slice(&seeds()[0][2..]);
        let _ = s.conn.handle_input(START, &input);
        s.feed();
        assert_eq!(s.attached.len(), 1);
        assert_eq!(s.delivered.len(), 1);
    }
}
