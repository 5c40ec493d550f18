//! The `amqp_connection` target: the AMQP connection (part 2 §2.4) in the server
//! role with an optional SASL layer (part 5 §5.3), fed a client's valid header and
//! `open`, then the fuzzer's bytes, or the fuzzer's bytes alone when they start
//! with a protocol header's `AMQP`.

use alloc::vec;
use alloc::vec::Vec;
use bytes::BytesMut;

use super::amqp_frame_bytes;
use super::{START, Schedule};
use crate::amqp::connection::{Connection, ConnectionEvent, SaslServer};
use crate::amqp::frame::{self, Frame, FrameKind, FrameLimits};
use crate::amqp::performative::{
    AmqpError, Attach, Begin, Close, End, Open, Performative, Role, condition,
};
use crate::amqp::protocol_header::ProtocolHeader;
use crate::amqp::sasl::{
    ANONYMOUS, MSSBCBS, PLAIN, PlainResponse, SASL_MAX_FRAME_SIZE, SaslCode, SaslFrame,
};
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

/// What spec file §5.1 tells an emulator to offer, SASL optional so the plain
/// header of the seeds without SASL still opens.
fn server_sasl() -> SaslServer {
    SaslServer { mechanisms: vec![ANONYMOUS, PLAIN, MSSBCBS], required: false }
}

/// The owner's verdict on a `sasl-init`: `ok`, so the fuzzer gets past SASL, but
/// `auth` for a PLAIN response that is not one (RFC 4616), so refusals run too.
fn verdict(mechanism: &crate::amqp::types::Symbol, response: Option<&[u8]>) -> SaslCode {
    let plain_ok = response.is_some_and(|r| PlainResponse::parse(r).is_ok());
    if *mechanism == PLAIN && !plain_ok { SaslCode::Auth } else { SaslCode::Ok }
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
/// header and `open` (or stands alone when it starts with `AMQP`: the seeds that
/// run SASL), cut into chunks, with time steps, a `begin` sent by the server and a
/// server-side close between chunks. Every `sasl-init` is answered at once
/// ([`verdict`]).
///
/// Properties: the server's output is its SASL header and SASL frames, the first
/// `sasl-mechanisms`, if the client asked for SASL; then its AMQP header, then
/// frames within the client's max-frame-size, the first an `open`; nothing follows
/// [`Transmit::Close`]; exactly one [`ConnectionEvent::Closed`] comes, with the
/// `Close`, and every error is followed by both.
pub fn amqp_connection(data: &[u8]) {
    let (mut schedule, stream) = Schedule::split(data);
    let mut input = if stream.starts_with(b"AMQP") { Vec::new() } else { client_hello() };
    input.extend_from_slice(stream);
    let mut now = START;
    let mut server = Connection::server_with_sasl(server_open(), now, server_sasl());
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
            run.drain(&mut server, now);
        }
        let n = schedule.chunk(input.len() - offset);
        let failed = server.handle_input(now, &input[offset..offset + n]).is_err();
        offset += n;
        run.drain(&mut server, now);
        if failed {
            assert!(run.closed, "an error without Transmit::Close");
        }
    }
    now = now.saturating_add(schedule.time_step());
    server.handle_timeout(now);
    run.drain(&mut server, now);
    server.handle_close(now);
    run.drain(&mut server, now);
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
    /// Drains the server, answering its `sasl-init`s, until it is quiet.
    fn drain(&mut self, server: &mut Connection, now: crate::time::Timestamp) {
        while let Some((mechanism, response)) = self.drain_once(server) {
            let failed = server.sasl_outcome(now, verdict(&mechanism, response.as_deref()), None);
            self.drain_once(server);
            if failed.is_err() {
                assert!(self.closed, "an error without Transmit::Close");
            }
        }
    }

    /// Drains transmits and events once; returns a `sasl-init` to answer.
    fn drain_once(
        &mut self,
        server: &mut Connection,
    ) -> Option<(crate::amqp::types::Symbol, Option<bytes::Bytes>)> {
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
        let mut init = None;
        while let Some(event) = server.poll_event() {
            match event {
                ConnectionEvent::Closed { .. } => {
                    self.closed_events += 1;
                    assert!(self.closed, "Closed without Transmit::Close");
                }
                ConnectionEvent::SaslInit { mechanism, initial_response, .. } => {
                    assert!(init.is_none(), "two sasl-inits in one exchange");
                    init = Some((mechanism, initial_response));
                }
                ConnectionEvent::SaslOutcome { .. } => panic!("a server never gets an outcome"),
                ConnectionEvent::Opened(_) | ConnectionEvent::Frame { .. } => {}
            }
        }
        init
    }

    /// The server's bytes: nothing when it closed before the client's header was
    /// complete; else, if SASL ran, its SASL header and SASL frames, the first
    /// `sasl-mechanisms` (part 5 §5.3.2); then its AMQP header, then whole frames
    /// within the client's limit, the first its `open` (§2.4.1).
    fn check_output(&self) {
        let mut rx = self.wire.clone();
        if rx.starts_with(b"AMQP\x03") {
            assert_eq!(ProtocolHeader::decode(&mut rx), Ok(Some(ProtocolHeader::SASL)));
            check_sasl_frames(&mut rx);
        }
        if rx.is_empty() {
            return;
        }
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

/// Reads the server's SASL frames from the front of `rx`, up to its AMQP header.
fn check_sasl_frames(rx: &mut BytesMut) {
    let limits = FrameLimits { max_frame_size: SASL_MAX_FRAME_SIZE };
    let mut first = true;
    while !rx.is_empty() && !rx.starts_with(b"AMQP") {
        let frame = match frame::decode(rx, &limits) {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("the server's SASL output ends mid-frame"),
            Err(e) => panic!("the server sent a bad SASL frame: {e}"),
        };
        assert_eq!(frame.kind, FrameKind::Sasl, "an AMQP frame in the SASL layer");
        let body = SaslFrame::decode(&frame.body, &Limits::default());
        let Ok(body) = body else {
            panic!("the server sent an undecodable SASL body: {body:?}");
        };
        if first {
            assert!(matches!(body, SaslFrame::Mechanisms(_)), "{body:?} first");
        }
        first = false;
    }
}

/// `body` as one SASL frame (part 5 §5.3.1).
pub(super) fn sasl_frame_bytes(body: &SaslFrame) -> Vec<u8> {
    let mut encoded = BytesMut::new();
    if let Err(e) = body.encode(&mut encoded) {
        panic!("the harness built an unencodable {body:?}: {e}");
    }
    let mut out = BytesMut::new();
    let frame = Frame { kind: FrameKind::Sasl, body: encoded.freeze() };
    if let Err(e) = frame.encode(&FrameLimits { max_frame_size: u32::MAX }, &mut out) {
        panic!("the harness built an oversized SASL frame: {e}");
    }
    out.to_vec()
}

/// A client that authenticates with `mechanism` first (part 5 §5.3.2) and
/// pipelines its AMQP header, `open` and a `begin` behind the `sasl-init`.
fn sasl_client_hello(mechanism: crate::amqp::types::Symbol, response: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    ProtocolHeader::SASL.encode(&mut out);
    out.extend_from_slice(&sasl_frame_bytes(&SaslFrame::Init {
        mechanism,
        initial_response: Some(bytes::Bytes::copy_from_slice(response)),
        hostname: Some(Utf8Bytes::from_static("localhost")),
    }));
    out.extend_from_slice(&client_hello());
    out.extend_from_slice(&amqp_frame_bytes(0, &begin()));
    out.to_vec()
}

/// What a client sends after its `open`: a heartbeat, a session and a link, a
/// client's close, and a second `open`; then whole streams through SASL: ANONYMOUS
/// and PLAIN a byte at a time, MSSBCBS in one chunk, and a PLAIN refused.
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
        seed(&[sasl_client_hello(ANONYMOUS, b"")]),
        seed(&[sasl_client_hello(
            PLAIN,
            b"\0dev1@sas.localhost\0SharedAccessSignature sr=x&sig=y&se=1",
        )]),
        {
            let mut s = seed(&[sasl_client_hello(MSSBCBS, b"")]);
            s[0] = 0x0F; // any chunk size, no events
            s
        },
        seed(&[sasl_client_hello(PLAIN, b"no NUL separators")]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SASL seeds reach the AMQP layer: the server answers the pipelined header
    /// and `open` after the outcome and hands the `begin` up.
    #[test]
    fn sasl_seed_opens_after_the_outcome() {
        let mut server = Connection::server_with_sasl(server_open(), START, server_sasl());
        let mut run = Run::default();
        server.handle_input(START, &sasl_client_hello(ANONYMOUS, b"")).unwrap();
        run.drain(&mut server, START);
        assert!(!run.closed);
        assert!(server.remote_open().is_some(), "the pipelined open was read");
        let mut rx = run.wire.clone();
        assert_eq!(ProtocolHeader::decode(&mut rx), Ok(Some(ProtocolHeader::SASL)));
        check_sasl_frames(&mut rx);
        assert_eq!(ProtocolHeader::decode(&mut rx), Ok(Some(ProtocolHeader::AMQP)));
        run.check_output();
    }

    #[test]
    fn amqp_connection_seeds_run() {
        for seed in seeds() {
            amqp_connection(&seed);
        }
    }
}
