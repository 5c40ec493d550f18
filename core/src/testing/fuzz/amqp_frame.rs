//! The `amqp_frame` target: the AMQP 1.0 protocol header and frame decoders on the
//! bytes a peer opens a connection with.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::frame::{self, FRAME_HEADER_LEN, Frame, FrameKind, FrameLimits};
use crate::amqp::protocol_header::{self, PROTOCOL_HEADER_LEN, ProtocolHeader, ProtocolId};

/// The limits the first input byte chooses among: before `open`, two sizes peers
/// announce, and "no limit".
const LIMITS: [FrameLimits; 4] = [
    FrameLimits::BEFORE_OPEN,
    FrameLimits { max_frame_size: 4096 },
    FrameLimits { max_frame_size: 65_536 },
    FrameLimits { max_frame_size: u32::MAX },
];

/// The first byte chooses the [`LIMITS`]; the rest is what a peer sends: a protocol
/// header, then frames. When the rest does not start with a protocol header, it is
/// read as frames from its first byte.
///
/// Properties: a protocol header encodes back to its 8 bytes, and negotiating it
/// replies with a supported header, proceeding only on an exact echo; every strict
/// prefix of a frame is "incomplete" and consumes nothing; a frame uses exactly the
/// SIZE its header gives; it encodes under the same limits, and decoding that gives it
/// back, byte for byte the input when it had no extended header; an error is
/// reported from the 8-byte header alone.
pub fn amqp_frame(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let limits = LIMITS[usize::from(selector) % LIMITS.len()];
    let mut buf = BytesMut::from(stream);
    match ProtocolHeader::decode(&mut buf) {
        Ok(Some(header)) => assert_header(header, &stream[..PROTOCOL_HEADER_LEN]),
        Ok(None) => {
            assert!(stream.len() < PROTOCOL_HEADER_LEN && buf.len() == stream.len());
            return;
        }
        Err(_) => assert_eq!(buf.len(), stream.len(), "a refused header consumed bytes"),
    }
    loop {
        let start = stream.len() - buf.len();
        let rest = &stream[start..];
        match frame::decode(&mut buf, &limits) {
            Ok(Some(frame)) => assert_frame(&frame, &rest[..rest.len() - buf.len()], &limits),
            Ok(None) => {
                assert_eq!(&buf[..], rest, "an incomplete frame consumed bytes");
                return;
            }
            Err(e) => {
                let header = &rest[..rest.len().min(FRAME_HEADER_LEN)];
                assert_eq!(
                    frame::decode(&mut BytesMut::from(header), &limits),
                    Err(e),
                    "the error needs more than the header"
                );
                return;
            }
        }
    }
}

fn assert_header(header: ProtocolHeader, bytes: &[u8]) {
    let mut encoded = BytesMut::new();
    header.encode(&mut encoded);
    assert_eq!(&encoded[..], bytes, "the header does not encode back");
    let supported = [ProtocolId::Sasl, ProtocolId::Amqp];
    let answer = protocol_header::negotiate(Some(header), &supported);
    assert!(supported.contains(&answer.reply.id));
    assert_eq!(answer.close, answer.reply != header, "{header:?} → {answer:?}");
}

/// `bytes`: the frame as it arrived.
fn assert_frame(frame: &Frame, bytes: &[u8], limits: &FrameLimits) {
    let len = bytes.len();
    assert_eq!(bytes.get(..4), Some(&(len as u32).to_be_bytes()[..]), "SIZE bytes not used");
    for cut in [len / 2, len - 1] {
        let mut prefix = BytesMut::from(&bytes[..cut]);
        assert_eq!(frame::decode(&mut prefix, limits), Ok(None), "{cut}-byte prefix of {len}");
        assert_eq!(prefix.len(), cut, "an incomplete frame consumed bytes");
    }
    let mut encoded = BytesMut::new();
    if let Err(e) = frame.encode(limits, &mut encoded) {
        panic!("decoded {frame:?} does not encode: {e}");
    }
    let canonical = bytes.get(4) == Some(&2)
        && (frame.kind != FrameKind::Sasl || bytes.get(6..8) == Some(&[0, 0][..]));
    if canonical {
        assert_eq!(&encoded[..], bytes, "the frame does not encode back to its bytes");
    }
    let mut again = encoded.clone();
    assert_eq!(frame::decode(&mut again, limits), Ok(Some(frame.clone())), "{encoded:02x?}");
    assert!(again.is_empty(), "decoding the encoding left bytes over");
}

/// `open` on channel 0 (§2.7.1): descriptor 0x10, a list of one field, the
/// container-id "dev1". Hand-encoded (part 1 §1.6): no type system needed here.
const OPEN_BODY: &[u8] = &[
    0x00, 0x53, 0x10, // descriptor: smallulong 0x10, open
    0xC0, 0x07, 0x01, // list8: 7 bytes, 1 field
    0xA1, 0x04, b'd', b'e', b'v', b'1', // str8 "dev1"
];

/// `sasl-init` (part 5 §5.3.3.2): descriptor 0x41, mechanism ANONYMOUS.
const SASL_INIT_BODY: &[u8] = &[
    0x00, 0x53, 0x41, // descriptor: smallulong 0x41, sasl-init
    0xC0, 0x0C, 0x01, // list8: 12 bytes, 1 field
    0xA3, 0x09, b'A', b'N', b'O', b'N', b'Y', b'M', b'O', b'U', b'S', // sym8
];

/// Openings as the Node/.NET SDKs (plain AMQP) and the C SDK (SASL first) send them
/// (spec file §5.1), heartbeats, an extended header, frames at each limit, and a
/// stream without a protocol header.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let amqp = |channel, body: &[u8]| Frame {
        kind: FrameKind::Amqp { channel },
        body: Bytes::copy_from_slice(body),
    };
    let sasl = |body: &[u8]| Frame { kind: FrameKind::Sasl, body: Bytes::copy_from_slice(body) };
    let stream = |selector: u8, header: Option<ProtocolHeader>, frames: &[Frame]| {
        let limits = LIMITS[usize::from(selector)];
        let mut out = BytesMut::new();
        if let Some(header) = header {
            header.encode(&mut out);
        }
        for frame in frames {
            if let Err(e) = frame.encode(&limits, &mut out) {
                panic!("seed frame {frame:?} does not encode: {e}");
            }
        }
        let mut seed = vec![selector];
        seed.extend_from_slice(&out);
        seed
    };
    let mut extended = stream(0, None, &[amqp(0, OPEN_BODY)]);
    // DOFF 3 and four bytes of extended header, SIZE grown to match.
    extended[4] += 4;
    extended[5] = 3;
    extended.splice(9..9, [0xEE; 4]);
    vec![
        stream(0, Some(ProtocolHeader::AMQP), &[amqp(0, OPEN_BODY), Frame::heartbeat()]),
        stream(
            0,
            Some(ProtocolHeader::SASL),
            &[sasl(SASL_INIT_BODY), sasl(&[0x00, 0x53, 0x44, 0x45])],
        ),
        stream(1, Some(ProtocolHeader::AMQP), &[amqp(7, &[0x5A; 4088]), amqp(0xFFFF, b"")]),
        stream(2, Some(ProtocolHeader::TLS), &[amqp(1, &[0xA5; 20_000])]),
        stream(3, None, &[Frame::heartbeat(), amqp(3, b"transfer"), sasl(b"x")]),
        extended,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed is whole: its header (if any) and frames decode to the last byte,
    /// so the fuzzer starts from valid streams, not from the error paths.
    #[test]
    fn amqp_frame_seeds_decode_to_the_end() {
        for seed in seeds() {
            let limits = LIMITS[usize::from(seed[0])];
            let mut buf = BytesMut::from(&seed[1..]);
            if seed[1] == b'A' {
                assert!(matches!(ProtocolHeader::decode(&mut buf), Ok(Some(_))));
            }
            let mut frames = 0;
            while !buf.is_empty() {
                assert!(matches!(frame::decode(&mut buf, &limits), Ok(Some(_))), "{seed:02x?}");
                frames += 1;
            }
            assert!(frames >= 1);
        }
    }
}
