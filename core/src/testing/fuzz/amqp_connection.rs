//! The `amqp_connection` target: the AMQP connection (part 2 §2.4) in the server
//! role, fed a client's valid header and `open`, then the fuzzer's bytes.

use alloc::vec;
use alloc::vec::Vec;
use bytes::BytesMut;

use super::amqp_frame_bytes;
use super::{START, Schedule};
use crate::amqp::connection::{Connection, ConnectionEvent};
use crate::amqp::frame::{self, FrameLimits};
use crate::amqp::performative::{
    AmqpError, Attach, Begin, Close, End, Open, Performative, Role, condition,
};
use crate::amqp::protocol_header::ProtocolHeader;
use crate::amqp::types::Limits;
use crate::sansio::Transmit;
use crate::utf8::Utf8Bytes;

/// The client's max-frame-size, bytes: the server's frames must stay within it.
const CLIENT_MAX_FRAME: u32 = 1024;

fn client_open() -> Open {
    let mut open = Open::new(Utf8Bytes::from_static("fuzz-client"));
    open.max_frame_size = CLIENT_MAX_FRAME;
    open.channel_max = 7;
    open.idle_time_out = Some(4_000);
    open
}

fn server_open() -> Open {
    let mut open = Open::new(Utf8Bytes::from_static("fuzz-server"));
    open.max_frame_size = 2048;
    open.channel_max = 7;
    open.idle_time_out = Some(10_000);
    open
}

/// The client's header and `open`, as a real client pipelines them (§2.4.2).
fn client_hello() -> Vec<u8> {
    let mut out = BytesMut::new();
    ProtocolHeader::AMQP.encode(&mut out);
    out.extend_from_slice(&amqp_frame_bytes(0, &Performative::Open(client_open())));
    out.to_vec()
}

fn begin() -> Performative {
    Performative::Begin(Begin { remote_channel: Some(0), ..Begin::new(0, 100, 100) })
}

/// The first two bytes are the [`Schedule`]; the rest follows the client's valid
/// header and `open`, cut into chunks, with time steps, a `begin` sent by the
/// server and a server-side close between chunks.
///
/// Properties: the server's output is its header, then frames within the client's
/// max-frame-size, the first an `open`; nothing follows [`Transmit::Close`];
/// exactly one [`ConnectionEvent::Closed`] comes, with the `Close`, and every error
/// is followed by both.
pub fn amqp_connection(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut input = client_hello();
    input.extend_from_slice(stream);
    let mut now = START;
    let mut server = Connection::server(server_open(), now);
    let mut run = Run::default();
    let mut offset = 0;
    while offset < input.len() && !run.closed {
        if schedule.event() {
            match schedule.below(4) {
                0 | 1 => {
                    now = now.saturating_add(schedule.time_step());
                    server.handle_timeout(now);
                }
                2 => {
                    let channel = u16::try_from(schedule.below(9)).unwrap_or(0);
                    let _ = server.send(now, channel, &begin(), b"");
                }
                _ => {
                    let error = AmqpError::new(condition::CONNECTION_FORCED, None);
                    server.close(now, schedule.coin().then_some(error));
                }
            }
            run.drain(&mut server);
        }
        let n = schedule.chunk(input.len() - offset);
        let failed = server.handle_input(now, &input[offset..offset + n]).is_err();
        offset += n;
        run.drain(&mut server);
        if failed {
            assert!(run.closed, "an error without Transmit::Close");
        }
    }
    now = now.saturating_add(schedule.time_step());
    server.handle_timeout(now);
    run.drain(&mut server);
    server.handle_close(now);
    run.drain(&mut server);
    assert!(run.closed_events == 1, "{} Closed events", run.closed_events);
    run.check_output();
}

/// What the body watches of the server.
#[derive(Default)]
struct Run {
    wire: BytesMut,
    closed: bool,
    closed_events: usize,
}

impl Run {
    fn drain(&mut self, server: &mut Connection) {
        while let Some(transmit) = server.poll_transmit() {
            match transmit {
                Transmit::Send(bytes) => {
                    assert!(!self.closed, "bytes after Transmit::Close");
                    self.wire.extend_from_slice(&bytes);
                }
                Transmit::Close => {
                    assert!(!self.closed, "a second Transmit::Close");
                    self.closed = true;
                }
                Transmit::Connect => panic!("a server never connects"),
            }
        }
        while let Some(event) = server.poll_event() {
            if matches!(event, ConnectionEvent::Closed { .. }) {
                self.closed_events += 1;
                assert!(self.closed, "Closed without Transmit::Close");
            }
        }
    }

    /// The server's bytes: nothing when it closed before the client's header was
    /// complete, else its header, then whole frames within the client's limit, the
    /// first its `open` (§2.4.1).
    fn check_output(&self) {
        if self.wire.is_empty() {
            return;
        }
        let mut rx = self.wire.clone();
        assert_eq!(ProtocolHeader::decode(&mut rx), Ok(Some(ProtocolHeader::AMQP)));
        let limits = FrameLimits { max_frame_size: CLIENT_MAX_FRAME };
        let mut first = true;
        loop {
            let frame = match frame::decode(&mut rx, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => panic!("the server sent a bad frame: {e}"),
            };
            if frame.is_empty() {
                continue;
            }
            let decoded = Performative::decode(&frame.body, &Limits::default());
            let Ok((performative, _)) = decoded else {
                panic!("the server sent an undecodable body: {decoded:?}");
            };
            if first {
                assert!(matches!(performative, Performative::Open(_)), "{performative:?} first");
            }
            first = false;
        }
        assert!(rx.is_empty(), "the server's output ends mid-frame");
    }
}

/// What a client sends after its `open`: a heartbeat, a session and a link, a
/// client's close, and a second `open`.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let attach = Attach::new(Utf8Bytes::from_static("sender"), 0, Role::Sender);
    let close = |error| Performative::Close(Close { error });
    let seed = |frames: &[Vec<u8>]| {
        let mut out = vec![0x00, 0x00]; // chunk 1 byte, no events, seed 0
        for f in frames {
            out.extend_from_slice(f);
        }
        out
    };
    let heartbeat = vec![0, 0, 0, 8, 2, 0, 0, 0];
    vec![
        seed(core::slice::from_ref(&heartbeat)),
        seed(&[
            amqp_frame_bytes(0, &begin()),
            amqp_frame_bytes(0, &Performative::Attach(attach.into())),
        ]),
        seed(&[
            amqp_frame_bytes(0, &begin()),
            amqp_frame_bytes(0, &Performative::End(End { error: None })),
        ]),
        seed(&[heartbeat, amqp_frame_bytes(0, &close(None))]),
        seed(&[amqp_frame_bytes(0, &close(Some(AmqpError::new(condition::INTERNAL_ERROR, None))))]),
        seed(&[amqp_frame_bytes(0, &Performative::Open(client_open()))]),
        {
            let mut s = seed(&[amqp_frame_bytes(3, &begin())]);
            s[0] = 0x8F; // any chunk size, events half the time
            s[1] = 0x2A;
            s
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_connection_seeds_run() {
        for seed in seeds() {
            amqp_connection(&seed);
        }
    }
}
