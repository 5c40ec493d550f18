//! The `amqp_session` target: the session layer (part 2 §2.5) over a server
//! connection, fed a client's valid header, `open` and `begin`, then the fuzzer's
//! bytes, with session commands between chunks.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::amqp_frame_bytes;
use super::{START, Schedule};
use crate::amqp::connection::{Connection, ConnectionEvent};
use crate::amqp::frame::{self, FrameKind, FrameLimits};
use crate::amqp::performative::{
    AmqpError, Begin, Disposition, End, Flow, Open, Performative, Role, Transfer, condition,
};
use crate::amqp::protocol_header::ProtocolHeader;
use crate::amqp::session::{
    CommandError, SessionConfig, SessionError, SessionId, SessionState, Sessions,
};
use crate::amqp::types::Limits;
use crate::sansio::Transmit;
use crate::utf8::Utf8Bytes;

/// The client's channel-max: the server's channels must stay within it.
const CLIENT_CHANNEL_MAX: u16 = 3;

fn open(container: &'static str) -> Open {
    let mut open = Open::new(Utf8Bytes::from_static(container));
    open.max_frame_size = 4096;
    open.channel_max = CLIENT_CHANNEL_MAX;
    open
}

fn begin(remote_channel: Option<u16>, incoming_window: u32) -> Performative {
    Performative::Begin(Begin { remote_channel, ..Begin::new(0, incoming_window, 100) })
}

/// The client's header, `open` and a `begin` on channel 0.
fn client_hello() -> Vec<u8> {
    let mut out = BytesMut::new();
    ProtocolHeader::AMQP.encode(&mut out);
    out.extend_from_slice(&amqp_frame_bytes(0, &Performative::Open(open("fuzz-client"))));
    out.extend_from_slice(&amqp_frame_bytes(0, &begin(None, 4)));
    out.to_vec()
}

/// The first two bytes are the [`Schedule`]; the rest follows the client's hello,
/// cut into chunks, with time steps and session commands (begin, end, a transfer,
/// a window update) between chunks.
///
/// Properties: a command refused sends nothing; a transfer is never sent into a
/// closed window (§2.5.6); a window violation leaves its session discarding or
/// gone, any other session error closes the connection; the server's frames are
/// whole, decodable and on channels within the client's channel-max (§2.7.1),
/// every transfer with a delivery-id.
pub fn amqp_session(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut input = client_hello();
    input.extend_from_slice(stream);
    let now = START;
    let mut conn = Connection::server(open("fuzz-server"), now);
    let config = SessionConfig { incoming_window: 2, ..SessionConfig::default() };
    let mut sessions = Sessions::new(config);
    let mut run = Run::default();
    let mut offset = 0;
    while offset < input.len() && !run.closed {
        if schedule.event() {
            let id = SessionId(u16::try_from(schedule.below(4)).unwrap_or(0));
            let before = run.wire.len();
            let refused = match schedule.below(4) {
                0 => sessions.begin(&mut conn, now, config).err(),
                1 => {
                    let error = AmqpError::new(condition::INTERNAL_ERROR, None);
                    sessions.end(&mut conn, now, id, schedule.coin().then_some(error)).err()
                }
                2 => {
                    let closed = sessions.state(id) == Some(SessionState::Mapped)
                        && sessions.windows(id).is_some_and(|w| w.remote_incoming_window == 0);
                    let t = Transfer {
                        delivery_tag: Some(Bytes::from_static(b"t")),
                        message_format: Some(0),
                        more: schedule.coin(),
                        ..Transfer::default()
                    };
                    let r = sessions.transfer(&mut conn, now, id, t, b"payload");
                    if closed {
                        assert_eq!(r, Err(CommandError::WindowClosed(id)));
                    }
                    r.err()
                }
                _ => {
                    let window = u32::try_from(schedule.below(4)).unwrap_or(0);
                    sessions.set_incoming_window(&mut conn, now, id, window).err()
                }
            };
            run.drain(&mut conn, &mut sessions);
            if refused.is_some() {
                assert_eq!(run.wire.len(), before, "a refused command sent {refused:?}");
            }
        }
        let n = schedule.chunk(input.len() - offset);
        // Connection errors are the connection target's; here its Closed event.
        let _ = conn.handle_input(now, &input[offset..offset + n]);
        offset += n;
        run.feed(&mut conn, &mut sessions);
    }
    conn.handle_close(now);
    run.feed(&mut conn, &mut sessions);
    run.check_output();
}

/// What the body watches of the server.
#[derive(Default)]
struct Run {
    wire: BytesMut,
    closed: bool,
    /// A session error other than a window violation: a `close` must be sent.
    must_close: bool,
}

impl Run {
    /// Hands the connection's frames to the sessions, then drains both.
    fn feed(&mut self, conn: &mut Connection, sessions: &mut Sessions) {
        while let Some(event) = conn.poll_event() {
            match event {
                ConnectionEvent::Frame { channel, performative, payload } => {
                    let result = sessions.handle_frame(conn, START, channel, performative, payload);
                    match result {
                        Ok(()) => {}
                        Err(SessionError::WindowViolation { session }) => {
                            assert_eq!(sessions.state(session), Some(SessionState::Discarding));
                        }
                        Err(_) => self.must_close = true,
                    }
                }
                ConnectionEvent::Closed { .. } => sessions.handle_connection_closed(),
                ConnectionEvent::Opened(_)
                | ConnectionEvent::SaslInit { .. }
                | ConnectionEvent::SaslOutcome { .. } => {}
            }
        }
        self.drain(conn, sessions);
    }

    fn drain(&mut self, conn: &mut Connection, sessions: &mut Sessions) {
        while let Some(transmit) = conn.poll_transmit() {
            match transmit {
                Transmit::Send(bytes) => {
                    assert!(!self.closed, "bytes after Transmit::Close");
                    self.wire.extend_from_slice(&bytes);
                }
                Transmit::Close => self.closed = true,
                Transmit::Connect => panic!("a server never connects"),
            }
        }
        while sessions.poll_event().is_some() {}
    }

    /// The server's bytes: its header, then whole frames on channels within the
    /// client's channel-max, every transfer with a delivery-id, and a `close` when
    /// a session error called for one.
    fn check_output(&self) {
        let mut rx = self.wire.clone();
        let mut closed = false;
        if rx.is_empty() {
            return;
        }
        assert_eq!(ProtocolHeader::decode(&mut rx), Ok(Some(ProtocolHeader::AMQP)));
        let limits = FrameLimits { max_frame_size: u32::MAX };
        loop {
            let frame = match frame::decode(&mut rx, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => panic!("the server sent a bad frame: {e}"),
            };
            let FrameKind::Amqp { channel } = frame.kind else { panic!("a SASL frame") };
            if frame.is_empty() {
                continue;
            }
            assert!(channel <= CLIENT_CHANNEL_MAX, "channel {channel}");
            let decoded = Performative::decode(&frame.body, &Limits::default());
            let Ok((performative, _)) = decoded else {
                panic!("the server sent an undecodable body: {decoded:?}");
            };
            match performative {
                Performative::Transfer(t) => {
                    assert!(t.delivery_id.is_some(), "a transfer without a delivery-id");
                }
                Performative::Close(_) => closed = true,
                _ => {}
            }
        }
        assert!(rx.is_empty(), "the server's output ends mid-frame");
        assert!(closed || !self.must_close, "a session error without a close");
    }
}

/// What a client sends after its `begin`: transfers within and beyond the window,
/// a flow reopening the server's window, a disposition, an `end`, a frame on an
/// unmapped channel, a begin answering nothing.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let transfer = |id| {
        Performative::Transfer(Transfer {
            delivery_id: Some(id),
            delivery_tag: Some(Bytes::from_static(b"t")),
            message_format: Some(0),
            ..Transfer::default()
        })
    };
    let flow = Performative::Flow(Flow {
        next_incoming_id: Some(0),
        incoming_window: 10,
        echo: true,
        ..Flow::default()
    });
    let disposition = Performative::Disposition(Disposition {
        role: Role::Receiver,
        first: 0,
        last: None,
        settled: true,
        state: None,
        batchable: false,
    });
    let seed = |schedule: [u8; 2], frames: &[(u16, &Performative)]| {
        let mut out = schedule.to_vec();
        for (channel, p) in frames {
            out.extend_from_slice(&amqp_frame_bytes(*channel, p));
        }
        out
    };
    let end = Performative::End(End::default());
    vec![
        seed([0x00, 0x00], &[(0, &transfer(0)), (0, &transfer(1))]),
        seed([0x00, 0x00], &[(0, &transfer(0)), (0, &transfer(1)), (0, &transfer(2))]),
        seed([0x8F, 0x2A], &[(0, &flow), (0, &disposition), (0, &transfer(0))]),
        seed([0x00, 0x00], &[(0, &end)]),
        seed([0x00, 0x00], &[(2, &disposition)]),
        seed([0x00, 0x00], &[(1, &begin(Some(3), 10))]),
        seed([0xFF, 0x11], &[(0, &flow), (1, &begin(None, 1)), (1, &transfer(0)), (0, &end)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_session_seeds_run() {
        for seed in seeds() {
            amqp_session(&seed);
        }
    }
}
