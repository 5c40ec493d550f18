use super::*;
use crate::amqp::performative::{Begin, End};
use crate::amqp::protocol_header::PROTOCOL_HEADER_LEN;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

pub(super) const T0: Timestamp = Timestamp::from_unix_secs(1_700_000_000);

pub(super) fn open(container: &'static str, idle_ms: Option<u32>) -> Open {
    let mut open = Open::new(Utf8Bytes::from_static(container));
    open.max_frame_size = 4096;
    open.channel_max = 9;
    open.idle_time_out = idle_ms;
    open
}

fn begin() -> Performative {
    Performative::Begin(Begin::new(0, 100, 100))
}

/// One side of a [`Pair`] and what it produced.
pub(super) struct Side {
    pub(super) conn: Connection,
    pub(super) events: Vec<ConnectionEvent>,
    pub(super) errors: Vec<ConnectionError>,
    /// Every byte it wrote.
    pub(super) wire: Vec<u8>,
    /// It asked for the transport to close.
    pub(super) closed: bool,
}

impl Side {
    pub(super) fn new(conn: Connection) -> Self {
        Side { conn, events: vec![], errors: vec![], wire: vec![], closed: false }
    }

    /// Drains transmits; returns the bytes for the peer.
    pub(super) fn drain(&mut self) -> Vec<u8> {
        let mut out = vec![];
        while let Some(t) = self.conn.poll_transmit() {
            match t {
                Transmit::Send(b) => {
                    assert!(!self.closed, "bytes after Close");
                    out.extend_from_slice(&b);
                }
                Transmit::Close => self.closed = true,
                Transmit::Connect => panic!("an AMQP connection never asks to connect"),
            }
        }
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
        self.wire.extend_from_slice(&out);
        out
    }

    pub(super) fn feed(&mut self, now: Timestamp, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk.max(1)) {
            if let Err(e) = self.conn.handle_input(now, piece) {
                self.errors.push(e);
            }
        }
    }

    fn frames(&self, skip_header: bool) -> Vec<(u16, Option<Performative>)> {
        let start = if skip_header { PROTOCOL_HEADER_LEN } else { 0 };
        let mut buf = BytesMut::from(&self.wire[start..]);
        let mut out = vec![];
        while let Ok(Some(f)) = frame::decode(&mut buf, &FrameLimits { max_frame_size: u32::MAX }) {
            let FrameKind::Amqp { channel } = f.kind else { panic!("SASL frame") };
            let p = (!f.is_empty())
                .then(|| Performative::decode(&f.body, &Limits::default()).map(|(p, _)| p).ok())
                .flatten();
            out.push((channel, p));
        }
        out
    }

    fn heartbeats(&self) -> usize {
        self.frames(true).iter().filter(|(_, p)| p.is_none()).count()
    }

    pub(super) fn closed_event(&self) -> Option<&ConnectionEvent> {
        self.events.iter().find(|e| matches!(e, ConnectionEvent::Closed { .. }))
    }
}

/// A client and a server joined in memory in simulated time.
pub(super) struct Pair {
    pub(super) now: Timestamp,
    pub(super) client: Side,
    pub(super) server: Side,
    /// Bytes per `handle_input` call.
    pub(super) chunk: usize,
}

impl Pair {
    fn new(client: Open, server: Open) -> Self {
        Pair::with(Connection::client(client, T0), Connection::server(server, T0))
    }

    /// Joins two connections made at [`T0`] and runs them until both are quiet.
    pub(super) fn with(client: Connection, server: Connection) -> Self {
        let mut pair = Pair {
            now: T0,
            client: Side::new(client),
            server: Side::new(server),
            chunk: usize::MAX,
        };
        pair.pump();
        pair
    }

    pub(super) fn pump(&mut self) {
        loop {
            let to_server = self.client.drain();
            let to_client = self.server.drain();
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
            if !self.server.closed {
                self.server.feed(self.now, &to_server, self.chunk);
            }
            if !self.client.closed {
                self.client.feed(self.now, &to_client, self.chunk);
            }
        }
    }

    /// Runs both sides' timers up to `now + d`.
    fn advance(&mut self, d: Duration) {
        let target = self.now.saturating_add(d);
        loop {
            let next = crate::time::earliest(
                self.client.conn.poll_timeout(),
                self.server.conn.poll_timeout(),
            );
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.client.conn.handle_timeout(self.now);
                    self.server.conn.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
    }
}

pub(super) fn opened(events: &[ConnectionEvent]) -> Option<&Open> {
    events.iter().find_map(|e| match e {
        ConnectionEvent::Opened(open) => Some(open),
        _ => None,
    })
}

pub(super) fn closed_with(end: &Side, by_peer: bool, condition: Option<Symbol>) {
    match end.closed_event() {
        Some(ConnectionEvent::Closed { by_peer: b, error }) => {
            assert_eq!(*b, by_peer, "by_peer");
            assert_eq!(error.as_ref().map(|e| e.condition.clone()), condition);
        }
        other => panic!("no Closed event: {other:?}"),
    }
    assert!(end.closed, "Transmit::Close");
    assert!(end.conn.is_closed());
}

/// The error condition of the last close frame `end` sent.
fn sent_close(end: &Side, skip_header: bool) -> Option<Option<Symbol>> {
    end.frames(skip_header).into_iter().rev().find_map(|(_, p)| match p {
        Some(Performative::Close(c)) => Some(c.error.map(|e| e.condition)),
        _ => None,
    })
}

#[test]
fn s2_2_and_s2_7_1_header_and_open_exchanged_both_ways() {
    let pair = Pair::new(open("client", None), open("server", None));
    assert_eq!(&pair.client.wire[..8], b"AMQP\x00\x01\x00\x00");
    assert_eq!(&pair.server.wire[..8], b"AMQP\x00\x01\x00\x00");
    assert_eq!(opened(&pair.server.events).map(|o| o.container_id.as_str()), Some("client"));
    assert_eq!(opened(&pair.client.events).map(|o| o.container_id.as_str()), Some("server"));
    assert!(pair.client.errors.is_empty() && pair.server.errors.is_empty());
    assert!(!pair.client.closed && !pair.server.closed);
    // The open is the first frame after the header, on channel 0 (§2.4.1).
    assert!(matches!(pair.server.frames(true).first(), Some((0, Some(Performative::Open(_))))));
}

/// The same exchange with every byte in its own `handle_input` call.
#[test]
fn s2_4_frames_split_into_1_byte_chunks_are_reassembled() {
    let mut pair = Pair {
        now: T0,
        client: Side::new(Connection::client(open("client", Some(1000)), T0)),
        server: Side::new(Connection::server(open("server", Some(1000)), T0)),
        chunk: 1,
    };
    pair.pump();
    assert!(opened(&pair.server.events).is_some() && opened(&pair.client.events).is_some());
    pair.client.conn.send(pair.now, 3, &begin(), b"").unwrap();
    pair.pump();
    assert!(pair.server.events.iter().any(|e| matches!(
        e,
        ConnectionEvent::Frame { channel: 3, performative: Performative::Begin(_), .. }
    )));
    pair.advance(Duration::from_secs(10));
    assert!(!pair.client.closed && !pair.server.closed);
    pair.client.conn.close(pair.now, None);
    pair.pump();
    closed_with(&pair.client, false, None);
    closed_with(&pair.server, true, None);
}

#[test]
fn s2_4_frames_above_the_connection_are_handed_up_with_their_payload() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    pair.server.conn.send(pair.now, 0, &begin(), b"tail").unwrap();
    let end = Performative::End(End { error: None });
    pair.server.conn.send(pair.now, 9, &end, b"").unwrap();
    pair.pump();
    let frames: Vec<_> = pair
        .client
        .events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Frame { channel, performative, payload } => {
                Some((*channel, performative.definition().name, payload.to_vec()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(frames, vec![(0, "begin", b"tail".to_vec()), (9, "end", vec![])]);
}

#[test]
fn s2_4_5_heartbeats_keep_an_idle_connection_alive_for_an_hour() {
    // The client waits 10 s, the server 4 s, for a frame.
    let mut pair = Pair::new(open("c", Some(10_000)), open("s", Some(4_000)));
    pair.advance(Duration::from_secs(3600));
    assert!(!pair.client.closed && !pair.server.closed);
    assert!(pair.client.closed_event().is_none() && pair.server.closed_event().is_none());
    // Every half of the peer's timeout: the client every 2 s, the server every 5 s.
    assert_eq!(pair.client.heartbeats(), 1800);
    assert_eq!(pair.server.heartbeats(), 720);
}

#[test]
fn s2_4_5_first_heartbeat_comes_half_the_peer_timeout_after_the_last_frame() {
    let mut pair = Pair::new(open("c", None), open("s", Some(4_000)));
    assert_eq!(pair.client.conn.poll_timeout(), Some(T0 + Duration::from_secs(2)));
    pair.advance(Duration::from_millis(1999));
    assert_eq!(pair.client.heartbeats(), 0);
    // A frame sent for the layer above moves the heartbeat.
    pair.client.conn.send(pair.now, 0, &begin(), b"").unwrap();
    pair.pump();
    pair.advance(Duration::from_millis(1999));
    assert_eq!(pair.client.heartbeats(), 0);
    pair.advance(Duration::from_millis(1));
    assert_eq!(pair.client.heartbeats(), 1);
    // The client announced no timeout: the server sends none, and its only timer
    // is its own idle timeout, twice the 4 s it announced after the heartbeat it
    // received at 3.999 s.
    assert_eq!(pair.server.heartbeats(), 0);
    assert_eq!(pair.server.conn.poll_timeout(), Some(T0 + Duration::from_millis(11_999)));
}

#[test]
fn s2_4_5_silent_peer_is_closed_with_resource_limit_exceeded() {
    let mut server = Side::new(Connection::server(open("s", Some(4_000)), T0));
    let mut client = Side::new(Connection::client(open("c", None), T0));
    // The client's header and open arrive, then nothing more: no heartbeats.
    let hello = client.drain();
    server.feed(T0, &hello, usize::MAX);
    server.drain();
    assert!(opened(&server.events).is_some());
    // Twice the 4 s announced (§2.4.5).
    let deadline = T0 + Duration::from_secs(8);
    assert_eq!(server.conn.poll_timeout(), Some(deadline));
    server.conn.handle_timeout(deadline.saturating_sub(Duration::from_millis(1)));
    server.drain();
    assert!(!server.closed);
    server.conn.handle_timeout(deadline);
    server.drain();
    closed_with(&server, false, Some(condition::RESOURCE_LIMIT_EXCEEDED));
    assert_eq!(sent_close(&server, true), Some(Some(condition::RESOURCE_LIMIT_EXCEEDED)));
}

#[test]
fn s2_7_9_close_from_the_client_is_answered() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    let error = AmqpError::new(condition::CONNECTION_FORCED, None);
    pair.client.conn.close(pair.now, Some(error));
    pair.pump();
    closed_with(&pair.server, true, Some(condition::CONNECTION_FORCED));
    closed_with(&pair.client, false, Some(condition::CONNECTION_FORCED));
    assert_eq!(sent_close(&pair.server, true), Some(None));
}

#[test]
fn s2_7_9_close_from_the_server_is_answered() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    pair.server.conn.close(pair.now, None);
    pair.pump();
    closed_with(&pair.client, true, None);
    closed_with(&pair.server, false, None);
    assert_eq!(sent_close(&pair.client, true), Some(None));
    assert_eq!(pair.client.conn.send(pair.now, 0, &begin(), b""), Err(SendError::Closed));
}

#[test]
fn s2_7_9_unanswered_close_gives_up_after_the_idle_timeout() {
    let mut client = Side::new(Connection::client(open("c", Some(5_000)), T0));
    client.drain();
    client.feed(T0, b"AMQP\x00\x01\x00\x00", usize::MAX);
    client.conn.close(T0, None);
    client.drain();
    assert!(!client.closed);
    assert_eq!(client.conn.poll_timeout(), Some(T0 + Duration::from_secs(5)));
    client.conn.handle_timeout(T0 + Duration::from_secs(5));
    client.drain();
    closed_with(&client, false, None);
}

/// §2.7.1: a close too large for the peer's max-frame-size drops its description.
#[test]
fn s2_7_1_close_too_large_for_the_peer_is_sent_without_description() {
    let mut small = open("s", None);
    small.max_frame_size = 512;
    let mut pair = Pair::new(open("c", None), small);
    let long = Utf8Bytes::from(alloc::string::String::from("x").repeat(600));
    pair.client
        .conn
        .close(pair.now, Some(AmqpError::new(condition::CONNECTION_FORCED, Some(long))));
    pair.pump();
    assert!(pair.server.errors.is_empty());
    closed_with(&pair.server, true, Some(condition::CONNECTION_FORCED));
    match pair.server.closed_event() {
        Some(ConnectionEvent::Closed { error: Some(e), .. }) => assert_eq!(e.description, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn transport_closed_under_the_connection_is_reported() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    pair.server.conn.handle_close(pair.now);
    pair.server.drain();
    closed_with(&pair.server, true, None);
}

/// Feeds `bytes` to a server that has received the client's valid header and open.
fn opened_server(bytes: &[u8]) -> Side {
    let mut client = Side::new(Connection::client(open("c", None), T0));
    let mut server = Side::new(Connection::server(open("s", None), T0));
    let hello = client.drain();
    server.feed(T0, &hello, usize::MAX);
    server.feed(T0, bytes, usize::MAX);
    server.drain();
    server
}

pub(super) fn frame_bytes(channel: u16, performative: &Performative) -> Vec<u8> {
    let mut body = BytesMut::new();
    performative.encode(&mut body).unwrap();
    let mut out = BytesMut::new();
    let frame = Frame { kind: FrameKind::Amqp { channel }, body: body.freeze() };
    frame.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out).unwrap();
    out.to_vec()
}

/// The server refused with `condition`: a close carrying it, then the transport.
fn refused(server: &Side, condition: Symbol) {
    assert_eq!(server.errors.len(), 1, "{:?}", server.errors);
    assert_eq!(server.errors[0].condition(), condition);
    closed_with(server, false, Some(condition.clone()));
    assert_eq!(sent_close(server, true), Some(Some(condition)));
}

#[test]
fn s2_7_1_second_open_is_illegal_state() {
    let server = opened_server(&frame_bytes(0, &Performative::Open(open("c", None))));
    refused(&server, condition::ILLEGAL_STATE);
}

#[test]
fn s2_4_1_frame_before_open_is_illegal_state() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend(frame_bytes(0, &begin()));
    server.feed(T0, &input, usize::MAX);
    server.drain();
    refused(&server, condition::ILLEGAL_STATE);
    assert!(opened(&server.events).is_none());
}

#[test]
fn s2_4_1_close_before_open_is_illegal_state() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend(frame_bytes(0, &Performative::Close(Close::default())));
    server.feed(T0, &input, usize::MAX);
    server.drain();
    refused(&server, condition::ILLEGAL_STATE);
}

#[test]
fn s2_4_1_open_on_another_channel_is_illegal_state() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend(frame_bytes(1, &Performative::Open(open("c", None))));
    server.feed(T0, &input, usize::MAX);
    server.drain();
    refused(&server, condition::ILLEGAL_STATE);
}

/// An open whose container-id is null: `00 53 10` described list 0x10, `C0 02 01
/// 40` list8 of one null.
#[test]
fn s2_7_1_open_without_container_id_is_invalid_field() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x0F, // SIZE 15
        0x02, 0x00, 0x00, 0x00, // DOFF 2, AMQP, channel 0
        0x00, 0x53, 0x10, // descriptor: open
        0xC0, 0x02, 0x01, 0x40, // list8, 2 bytes, 1 field: null container-id
    ]);
    server.feed(T0, &input, usize::MAX);
    server.drain();
    refused(&server, condition::INVALID_FIELD);
}

/// §2.4.1: before the open exchange no frame may exceed 512 bytes; refused once the
/// SIZE field arrives, before the body.
#[test]
fn s2_4_1_frame_over_512_bytes_before_open_is_a_framing_error() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
    input.extend_from_slice(&513u32.to_be_bytes()); // SIZE 513
    server.feed(T0, &input, usize::MAX);
    server.drain();
    refused(&server, condition::CONNECTION_FRAMING_ERROR);
    // The header is answered and the open sent before the close (§2.4.1).
    assert!(matches!(server.frames(true).first(), Some((0, Some(Performative::Open(_))))));
}

#[test]
fn s2_3_2_bytes_after_close_are_a_decode_error() {
    let mut bytes = frame_bytes(0, &Performative::Close(Close::default()));
    bytes.push(0x40); // one byte past the close, counted by SIZE
    bytes[3] += 1;
    let server = opened_server(&bytes);
    refused(&server, condition::DECODE_ERROR);
}

#[test]
fn s2_7_1_frame_over_our_max_frame_size_is_a_framing_error() {
    let server = opened_server(&4097u32.to_be_bytes()); // SIZE 4097 > 4096
    refused(&server, condition::CONNECTION_FRAMING_ERROR);
}

#[test]
fn s2_7_1_frame_at_our_max_frame_size_is_accepted() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    // 4096 bytes: header 8 + begin + payload.
    let mut body = BytesMut::new();
    begin().encode(&mut body).unwrap();
    let payload = vec![0u8; 4096 - 8 - body.len()];
    pair.client.conn.send(pair.now, 0, &begin(), &payload).unwrap();
    pair.pump();
    assert!(pair.server.errors.is_empty());
    let too_big = vec![0u8; payload.len() + 1];
    assert!(matches!(
        pair.client.conn.send(pair.now, 0, &begin(), &too_big),
        Err(SendError::TooLarge(EncodeError::TooLarge { size: 4097, max: 4096 }))
    ));
}

#[test]
fn s2_7_1_channel_above_channel_max_is_a_framing_error() {
    let server = opened_server(&frame_bytes(10, &begin())); // channel-max 9
    refused(&server, condition::CONNECTION_FRAMING_ERROR);
}

#[test]
fn s2_7_1_send_refuses_channels_above_the_peer_channel_max() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    assert_eq!(
        pair.client.conn.send(pair.now, 10, &begin(), b""),
        Err(SendError::ChannelOutOfRange { channel: 10, max: 9 })
    );
    assert_eq!(
        pair.client.conn.send(pair.now, 0, &Performative::Close(Close::default()), b""),
        Err(SendError::ConnectionPerformative)
    );
}

/// §2.4.1: a peer's max-frame-size below 512 still lets this side send 512 bytes.
#[test]
fn s2_4_1_peer_max_frame_size_below_512_is_read_as_512() {
    let mut small = open("s", None);
    small.max_frame_size = 100;
    let mut pair = Pair::new(open("c", None), small);
    assert_eq!(pair.server.conn.local.max_frame_size, 512);
    let mut body = BytesMut::new();
    begin().encode(&mut body).unwrap();
    let payload = vec![0u8; 512 - 8 - body.len()];
    pair.client.conn.send(pair.now, 0, &begin(), &payload).unwrap();
    pair.pump();
    assert!(pair.server.errors.is_empty());
}

#[test]
fn s5_1_sasl_frame_in_the_amqp_layer_is_a_framing_error() {
    let server = opened_server(&[
        0x00, 0x00, 0x00, 0x0C, // SIZE 12
        0x02, 0x01, 0x00, 0x00, // DOFF 2, SASL
        0x00, 0x53, 0x40, 0x45, // sasl-mechanisms, empty list
    ]);
    refused(&server, condition::CONNECTION_FRAMING_ERROR);
}

/// §2.2: a server that does not speak the requested layer answers with its own
/// header and closes.
#[test]
fn s2_2_server_answers_a_sasl_header_with_its_own_and_closes() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    server.feed(T0, b"AMQP\x03\x01\x00\x00", usize::MAX);
    server.drain();
    assert_eq!(server.wire, b"AMQP\x00\x01\x00\x00");
    assert!(server.closed);
    assert!(matches!(server.errors[..], [ConnectionError::UnsupportedHeader(_)]));
}

#[test]
fn s2_2_server_answers_garbage_with_its_header_and_closes() {
    let mut server = Side::new(Connection::server(open("s", None), T0));
    server.feed(T0, b"GET / HTTP/1.1\r\n", usize::MAX);
    server.drain();
    assert!(server.closed);
    assert!(matches!(server.errors[..], [ConnectionError::Header(_)]));
    assert_eq!(server.wire, b"AMQP\x00\x01\x00\x00");
}

#[test]
fn s2_2_client_closes_when_the_server_header_differs() {
    let mut client = Side::new(Connection::client(open("c", None), T0));
    client.drain();
    client.feed(T0, b"AMQP\x03\x01\x00\x00", usize::MAX);
    let before = client.wire.len();
    client.drain();
    assert_eq!(client.wire.len(), before, "nothing more is sent");
    closed_with(&client, false, Some(condition::CONNECTION_FRAMING_ERROR));
}

#[test]
fn s2_4_5_heartbeats_before_and_after_open_are_accepted() {
    let mut pair = Pair::new(open("c", None), open("s", None));
    pair.server.feed(pair.now, &[0, 0, 0, 8, 2, 0, 0, 0], 1);
    pair.server.drain();
    assert!(pair.server.errors.is_empty() && !pair.server.closed);
    pair.pump();
}

proptest! {
    /// Whatever follows a valid header and open, the server neither panics nor
    /// writes after its close, and a refusal always closes.
    #[test]
    fn arbitrary_bytes_after_open_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        chunk in 1usize..64,
    ) {
        let mut client = Side::new(Connection::client(open("c", Some(1000)), T0));
        let mut server = Side::new(Connection::server(open("s", Some(1000)), T0));
        let hello = client.drain();
        server.feed(T0, &hello, usize::MAX);
        server.feed(T0, &bytes, chunk);
        server.drain();
        server.conn.handle_timeout(T0 + Duration::from_secs(2));
        server.drain();
        if !server.errors.is_empty() {
            prop_assert!(server.closed);
        }
    }
}

#[test]
fn s2_4_5_a_frame_trickled_a_byte_at_a_time_does_not_reset_the_idle_timeout() {
    // A peer that opens, then sends one byte of a frame that never ends every
    // second (a slowloris): §2.4.5 counts frames, so the server closes at 8 s,
    // twice the 4 s it announced.
    let mut server = Side::new(Connection::server(open("s", Some(4_000)), T0));
    let mut client = Side::new(Connection::client(open("c", None), T0));
    let hello = client.drain();
    server.feed(T0, &hello, usize::MAX);
    server.drain();
    assert!(opened(&server.events).is_some());
    let partial = [0u8, 0, 0x10, 0, 2, 0, 0, 0, 0, 0x53];
    for (i, byte) in partial.iter().enumerate().take(3) {
        let now = T0 + Duration::from_secs(1 + i as u64);
        server.feed(now, &[*byte], usize::MAX);
        server.conn.handle_timeout(now);
    }
    assert!(!server.closed);
    let deadline = T0 + Duration::from_secs(8);
    assert_eq!(server.conn.poll_timeout(), Some(deadline));
    server.conn.handle_timeout(deadline);
    server.drain();
    closed_with(&server, false, Some(condition::RESOURCE_LIMIT_EXCEEDED));
}

/// §2.4.5: the idle-time-out announced is half the threshold, so a peer that
/// sends a frame once per announced period, never sooner, is not closed.
#[test]
fn s2_4_5_a_peer_sending_once_per_announced_idle_time_out_stays_open() {
    let mut server = Side::new(Connection::server(open("s", Some(4_000)), T0));
    let mut client = Side::new(Connection::client(open("c", None), T0));
    let hello = client.drain();
    server.feed(T0, &hello, usize::MAX);
    server.drain();
    // An empty frame on channel 0 every 4 s, for a minute.
    for i in 1..=15 {
        let now = T0 + Duration::from_secs(4 * i);
        server.conn.handle_timeout(now);
        server.feed(now, &[0, 0, 0, 8, 2, 0, 0, 0], usize::MAX);
        server.drain();
    }
    assert!(server.errors.is_empty());
    assert!(!server.closed && server.closed_event().is_none());
}

/// §2.4.3 and §2.4.5: the close is written on channel 0 and is the last thing
/// written; no heartbeat follows it while the peer's close is awaited.
#[test]
fn s2_4_5_no_empty_frame_follows_a_close() {
    // The server asks for a frame every 2 s (half of 4 s).
    let mut pair = Pair::new(open("c", Some(60_000)), open("s", Some(4_000)));
    pair.client.conn.close(pair.now, None);
    pair.client.drain();
    let written = pair.client.wire.len();
    assert!(matches!(pair.client.frames(true).last(), Some((0, Some(Performative::Close(_))))));
    // The server never answers; only the wait for its close is left to time.
    assert_eq!(pair.client.conn.poll_timeout(), Some(pair.now + Duration::from_secs(60)));
    for s in 1..60 {
        pair.client.conn.handle_timeout(pair.now + Duration::from_secs(s));
        pair.client.drain();
    }
    assert_eq!(pair.client.wire.len(), written, "bytes written after close");
    assert_eq!(pair.client.heartbeats(), 0);
}

/// §2.4.5: a side woken so late that it sent nothing for twice the peer's
/// idle-time-out (the peer's threshold) closes with an error saying why.
#[test]
fn s2_4_5_a_side_that_overran_the_peers_threshold_closes_with_an_error() {
    let mut pair = Pair::new(open("c", None), open("s", Some(4_000)));
    // Woken at 7.999 s, the client is late for its 2 s heartbeat but within the
    // server's 8 s: it heartbeats.
    pair.client.conn.handle_timeout(T0 + Duration::from_millis(7_999));
    pair.client.drain();
    assert_eq!(pair.client.heartbeats(), 1);
    assert!(!pair.client.closed);
    // Then stalled until 8 s past that heartbeat.
    pair.client.conn.handle_timeout(T0 + Duration::from_millis(15_999));
    pair.client.drain();
    closed_with(&pair.client, false, Some(condition::INTERNAL_ERROR));
    assert_eq!(sent_close(&pair.client, true), Some(Some(condition::INTERNAL_ERROR)));
}

/// §2.7.9: a close for an error carries a description of its cause.
#[test]
fn s2_7_9_a_close_for_an_error_says_why() {
    let server = opened_server(&frame_bytes(10, &begin())); // channel-max 9
    let description = server.frames(true).into_iter().rev().find_map(|(_, p)| match p {
        Some(Performative::Close(c)) => c.error.and_then(|e| e.description),
        _ => None,
    });
    let description = description.expect("a description");
    assert!(description.as_str().contains("10"), "{description:?}");
}

/// §2.4.6 DISCARDING: after a close for an error, frames that follow, even
/// valid ones in the same read, are dropped: nothing more is handed up.
#[test]
fn s2_4_6_frames_after_a_close_for_an_error_are_discarded() {
    let mut bytes = frame_bytes(10, &begin()); // channel-max 9: framing-error
    bytes.extend(frame_bytes(0, &begin()));
    bytes.extend(frame_bytes(0, &Performative::Close(Close::default())));
    let mut server = opened_server(&bytes);
    refused(&server, condition::CONNECTION_FRAMING_ERROR);
    server.feed(T0, &frame_bytes(1, &begin()), usize::MAX);
    server.drain();
    assert!(
        !server.events.iter().any(|e| matches!(e, ConnectionEvent::Frame { .. })),
        "{:?}",
        server.events
    );
    assert_eq!(server.errors.len(), 1);
}

/// §2.7.1: idle-time-out is the silence the announcer allows its partner, and 0
/// means the same as leaving it unset: no heartbeats owed, none expected.
#[test]
fn s2_7_1_an_idle_time_out_of_zero_is_no_idle_time_out() {
    let mut pair = Pair::new(open("c", Some(0)), open("s", Some(0)));
    assert_eq!(pair.client.conn.poll_timeout(), None);
    assert_eq!(pair.server.conn.poll_timeout(), None);
    pair.advance(Duration::from_secs(3600));
    assert!(!pair.client.closed && !pair.server.closed);
    assert_eq!((pair.client.heartbeats(), pair.server.heartbeats()), (0, 0));
    // One side announcing 4 s is owed a frame every 2 s; the side announcing 0
    // still expects nothing.
    let mut pair = Pair::new(open("c", Some(0)), open("s", Some(4_000)));
    assert_eq!(pair.client.conn.poll_timeout(), Some(T0 + Duration::from_secs(2)));
    pair.advance(Duration::from_secs(60));
    assert!(!pair.client.closed && !pair.server.closed);
    assert_eq!((pair.client.heartbeats(), pair.server.heartbeats()), (30, 0));
}
