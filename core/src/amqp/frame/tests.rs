use super::*;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

/// Limits large enough for every test frame but the ones about limits.
const ROOMY: FrameLimits = FrameLimits { max_frame_size: 1 << 20 };

fn decode_all(bytes: &[u8], limits: &FrameLimits) -> Result<Option<Frame>, FrameError> {
    decode(&mut BytesMut::from(bytes), limits)
}

fn encoded(frame: &Frame, limits: &FrameLimits) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = frame.encode(limits, &mut out) {
        panic!("{frame:?} does not encode: {e}");
    }
    out.to_vec()
}

fn amqp(channel: u16, body: &'static [u8]) -> Frame {
    Frame { kind: FrameKind::Amqp { channel }, body: Bytes::from_static(body) }
}

#[test]
fn s2_3_1_amqp_frame_layout() {
    let bytes = [
        0x00, 0x00, 0x00, 0x0B, // SIZE 11: header and a 3-byte body
        0x02, // DOFF 2: no extended header
        0x00, // TYPE 0x00: AMQP
        0x01, 0x02, // CHANNEL 0x0102
        0xAA, 0xBB, 0xCC, // body
    ];
    let frame = amqp(0x0102, &[0xAA, 0xBB, 0xCC]);
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Ok(Some(frame.clone())));
    assert_eq!(encoded(&frame, &FrameLimits::BEFORE_OPEN), bytes);
}

#[test]
fn s5_3_1_sasl_frame_layout_ignores_the_channel_bytes() {
    let bytes = [
        0x00, 0x00, 0x00, 0x0A, // SIZE 10
        0x02, // DOFF 2
        0x01, // TYPE 0x01: SASL
        0xAB, 0xCD, // ignored
        0x00, 0x53, // body
    ];
    let frame = Frame { kind: FrameKind::Sasl, body: Bytes::from_static(&[0x00, 0x53]) };
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Ok(Some(frame.clone())));
    // "Implementations SHOULD set these to 0x00."
    assert_eq!(encoded(&frame, &FrameLimits::BEFORE_OPEN), [0, 0, 0, 10, 2, 1, 0, 0, 0x00, 0x53]);
}

#[test]
fn s2_3_1_extended_header_is_skipped() {
    let bytes = [
        0x00, 0x00, 0x00, 0x0E, // SIZE 14
        0x03, // DOFF 3: the body starts at byte 12
        0x00, // TYPE AMQP
        0x00, 0x07, // CHANNEL 7
        0xE0, 0xE1, 0xE2, 0xE3, // extended header
        0x42, 0x43, // body
    ];
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Ok(Some(amqp(7, b"BC"))));
}

#[test]
fn s5_3_1_sasl_extended_header_is_ignored() {
    let bytes = [
        0x00, 0x00, 0x00, 0x0D, // SIZE 13
        0x03, // DOFF 3
        0x01, // TYPE SASL
        0x00, 0x00, // ignored
        0x01, 0x02, 0x03, 0x04, // extended header
        0x45, // body
    ];
    let frame = Frame { kind: FrameKind::Sasl, body: Bytes::from_static(b"E") };
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Ok(Some(frame)));
}

#[test]
fn s2_4_5_empty_frame_is_a_heartbeat() {
    let bytes = [
        0x00, 0x00, 0x00, 0x08, // SIZE 8: header only
        0x02, // DOFF 2
        0x00, // TYPE AMQP
        0x00, 0x00, // CHANNEL 0
    ];
    let Ok(Some(frame)) = decode_all(&bytes, &FrameLimits::BEFORE_OPEN) else {
        panic!("an empty frame decodes");
    };
    assert!(frame.is_empty());
    assert_eq!(frame, Frame::heartbeat());
    assert_eq!(encoded(&Frame::heartbeat(), &FrameLimits::BEFORE_OPEN), bytes);
}

/// "Implementations MUST be prepared to handle empty frames arriving on any valid
/// channel", with or without an extended header.
#[test]
fn s2_4_5_empty_frames_on_any_channel_and_after_an_extended_header() {
    let bytes = [
        0x00, 0x00, 0x00, 0x0C, // SIZE 12
        0x03, // DOFF 3: the body would start at byte 12, the end
        0x00, // TYPE AMQP
        0xFF, 0xFF, // CHANNEL 65535
        0x00, 0x00, 0x00, 0x00, // extended header
    ];
    let Ok(Some(frame)) = decode_all(&bytes, &FrameLimits::BEFORE_OPEN) else {
        panic!("an empty frame decodes");
    };
    assert!(frame.is_empty());
    assert_eq!(frame.kind, FrameKind::Amqp { channel: 0xFFFF });
}

#[test]
fn s5_3_1_empty_sasl_frame_is_an_error() {
    let bytes = [
        0x00, 0x00, 0x00, 0x08, // SIZE 8: no body
        0x02, // DOFF 2
        0x01, // TYPE SASL
        0x00, 0x00, // ignored
    ];
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Err(FrameError::EmptySaslFrame));
    assert_eq!(FrameError::EmptySaslFrame.condition(), "amqp:decode-error");
}

#[test]
fn s2_3_1_size_below_8_is_a_framing_error() {
    for size in 0..8u8 {
        let bytes = [
            0x00, 0x00, 0x00, size, // SIZE below the header's 8 bytes
        ];
        let expected = FrameError::SizeBelowHeader { size: u32::from(size) };
        assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Err(expected.clone()));
        assert_eq!(expected.condition(), "amqp:connection:framing-error");
    }
}

#[test]
fn s2_3_1_doff_below_2_is_a_framing_error() {
    for doff in [0, 1] {
        let bytes = [
            0x00, 0x00, 0x00, 0x10, // SIZE 16
            doff, // DOFF inside the fixed header
        ];
        let expected = FrameError::DataOffsetBelowHeader { doff };
        assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Err(expected.clone()));
        assert_eq!(expected.condition(), "amqp:connection:framing-error");
    }
}

#[test]
fn s2_3_1_doff_beyond_size_is_a_framing_error() {
    let bytes = [
        0x00, 0x00, 0x00, 0x0B, // SIZE 11
        0x03, // DOFF 3: 12 bytes, one past the end
    ];
    let expected = FrameError::DataOffsetBeyondFrame { doff: 3, size: 11 };
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Err(expected.clone()));
    assert_eq!(expected.condition(), "amqp:connection:framing-error");
    // The largest DOFF, 255 words, is 1020 bytes: beyond 512 before open.
    let widest = [0x00, 0x00, 0x02, 0x00, 0xFF];
    assert_eq!(
        decode_all(&widest, &FrameLimits::BEFORE_OPEN),
        Err(FrameError::DataOffsetBeyondFrame { doff: 255, size: 512 })
    );
}

#[test]
fn s2_3_1_unknown_frame_type_is_a_framing_error() {
    for code in [0x02, 0x41, 0xFF] {
        let bytes = [
            0x00, 0x00, 0x00, 0x09, // SIZE 9
            0x02, // DOFF 2
            code, // TYPE: neither AMQP nor SASL
        ];
        let expected = FrameError::UnknownType { code };
        assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Err(expected.clone()));
        assert_eq!(expected.condition(), "amqp:connection:framing-error");
    }
}

/// "Prior to any explicit negotiation, the maximum frame size is 512", and "A peer
/// that receives an oversized frame MUST close the connection with the
/// framing-error error-code" (§2.7.1).
#[test]
fn s2_4_1_frame_over_512_bytes_before_open_is_a_framing_error() {
    assert_eq!(FrameLimits::default(), FrameLimits::BEFORE_OPEN);
    let bytes = [
        0x00, 0x00, 0x02, 0x01, // SIZE 513
    ];
    let expected = FrameError::TooLarge { size: 513, max: 512 };
    assert_eq!(decode_all(&bytes, &FrameLimits::default()), Err(expected.clone()));
    assert_eq!(expected.condition(), "amqp:connection:framing-error");
    let mut largest = vec![0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00]; // SIZE 512
    largest.resize(512, 0x5A);
    assert_eq!(
        decode_all(&largest, &FrameLimits::default()).map(|f| f.map(|f| f.body.len())),
        Ok(Some(504))
    );
}

#[test]
fn s2_7_1_frame_over_the_announced_max_frame_size_is_a_framing_error() {
    let limits = FrameLimits { max_frame_size: 4096 };
    let bytes = [
        0x00, 0x00, 0x10, 0x01, // SIZE 4097
        0x02, 0x00, 0x00, 0x00, // DOFF 2, AMQP, channel 0
    ];
    assert_eq!(decode_all(&bytes, &limits), Err(FrameError::TooLarge { size: 4097, max: 4096 }));
    let at_limit = [0x00, 0x00, 0x10, 0x00, 0x02, 0x00, 0x00, 0x00];
    assert_eq!(decode_all(&at_limit, &limits), Ok(None));
}

/// "Both peers MUST accept frames of up to 512 (MIN-MAX-FRAME-SIZE) octets": a limit
/// configured below that acts as 512, on both sides.
#[test]
fn s2_7_1_limits_below_512_still_allow_512() {
    let tiny = FrameLimits { max_frame_size: 16 };
    let frame = Frame { kind: FrameKind::Sasl, body: Bytes::from(vec![7; 504]) };
    let bytes = encoded(&frame, &tiny);
    assert_eq!(bytes.len(), 512);
    assert_eq!(decode_all(&bytes, &tiny), Ok(Some(frame)));
}

/// A SIZE of 4 GiB − 1 is refused from its 4 bytes, before any room is reserved.
#[test]
fn s2_3_1_four_gib_size_is_refused_before_allocating() {
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]); // SIZE 4 294 967 295
    let capacity = buf.capacity();
    assert_eq!(
        decode(&mut buf, &ROOMY),
        Err(FrameError::TooLarge { size: u32::MAX, max: 1 << 20 })
    );
    assert_eq!(buf.capacity(), capacity, "nothing reserved");
    assert_eq!(buf.len(), 4, "nothing consumed");
}

/// Room is reserved only once the header passed; nothing is consumed meanwhile.
#[test]
fn s2_3_every_prefix_of_a_valid_frame_is_incomplete() {
    let frame = amqp(3, b"a performative and its payload");
    let bytes = encoded(&frame, &FrameLimits::BEFORE_OPEN);
    for len in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..len]);
        assert_eq!(decode(&mut buf, &FrameLimits::BEFORE_OPEN), Ok(None), "{len} bytes");
        assert_eq!(&buf[..], &bytes[..len], "{len} bytes: nothing consumed");
    }
    assert_eq!(decode_all(&bytes, &FrameLimits::BEFORE_OPEN), Ok(Some(frame)));
}

/// Frames pipelined in one read come out one by one, each body a slice of the
/// receive buffer (DESIGN.md, "One copy").
#[test]
fn s2_3_frames_are_split_off_the_receive_buffer_without_copying() {
    let mut bytes = encoded(&amqp(0, b"open"), &ROOMY);
    bytes.extend(encoded(&Frame::heartbeat(), &ROOMY));
    bytes.extend(encoded(&amqp(1, b"begin"), &ROOMY));
    bytes.extend_from_slice(&[0x00, 0x00]); // the start of a fourth frame
    let mut buf = BytesMut::from(&bytes[..]);
    let start = buf.as_ptr() as usize;

    let Ok(Some(open)) = decode(&mut buf, &ROOMY) else { panic!("first frame") };
    assert_eq!(open, amqp(0, b"open"));
    assert_eq!(open.body.as_ptr() as usize - start, FRAME_HEADER_LEN);
    assert_eq!(decode(&mut buf, &ROOMY), Ok(Some(Frame::heartbeat())));
    let Ok(Some(begin)) = decode(&mut buf, &ROOMY) else { panic!("third frame") };
    assert_eq!(begin, amqp(1, b"begin"));
    assert_eq!(begin.body.as_ptr() as usize - start, 12 + 8 + 8);
    assert_eq!(decode(&mut buf, &ROOMY), Ok(None));
    assert_eq!(&buf[..], [0x00, 0x00]);
}

/// "A peer MUST NOT send frames larger than its partner can handle" (§2.7.1); what
/// cannot be sent closes with `amqp:frame-size-too-small` (§2.8.15).
#[test]
fn s2_7_1_encode_refuses_a_frame_over_the_peers_max_frame_size() {
    let frame = Frame { kind: FrameKind::Amqp { channel: 0 }, body: Bytes::from(vec![0; 505]) };
    let mut out = BytesMut::from(&b"queued"[..]);
    let error = frame.encode(&FrameLimits::BEFORE_OPEN, &mut out);
    assert_eq!(error, Err(EncodeError::TooLarge { size: 513, max: 512 }));
    assert_eq!(&out[..], b"queued", "nothing written");
    assert_eq!(
        EncodeError::TooLarge { size: 513, max: 512 }.condition(),
        "amqp:frame-size-too-small"
    );
    let unlimited = FrameLimits { max_frame_size: u32::MAX };
    assert!(frame.encode(&unlimited, &mut out).is_ok());
    assert_eq!(out.len(), 6 + 513);
}

// ---------------------------------------------------------------------------------
// Properties

fn any_kind() -> impl Strategy<Value = FrameKind> {
    prop_oneof![any::<u16>().prop_map(|channel| FrameKind::Amqp { channel }), Just(FrameKind::Sasl)]
}

/// Frames of either type, empty AMQP bodies among them (SASL bodies are never empty,
/// part 5 §5.3.1).
fn any_frame() -> impl Strategy<Value = Frame> {
    (any_kind(), proptest::collection::vec(any::<u8>(), 0..600))
        .prop_filter("SASL frames have a body", |(kind, body)| {
            *kind != FrameKind::Sasl || !body.is_empty()
        })
        .prop_map(|(kind, body)| Frame { kind, body: Bytes::from(body) })
}

/// `encoded` (DOFF 2) with `words` 4-byte words of extended header inserted: what a
/// peer that uses the extended header sends.
fn with_extended_header(encoded: &[u8], words: u8, filler: u8) -> Vec<u8> {
    let ext = usize::from(words) * 4;
    let size = u32::try_from(encoded.len() + ext).expect("test frames are small");
    let mut out = Vec::with_capacity(encoded.len() + ext);
    out.extend_from_slice(&size.to_be_bytes());
    out.push(2 + words);
    out.extend_from_slice(&encoded[5..8]);
    out.extend(core::iter::repeat_n(filler, ext));
    out.extend_from_slice(&encoded[8..]);
    out
}

proptest! {
    #[test]
    fn frame_round_trips(frame in any_frame(), tail in proptest::collection::vec(any::<u8>(), 0..12)) {
        let mut buf = BytesMut::new();
        prop_assert_eq!(frame.encode(&ROOMY, &mut buf), Ok(()));
        prop_assert_eq!(buf.len(), FRAME_HEADER_LEN + frame.body.len());
        buf.extend_from_slice(&tail);
        prop_assert_eq!(decode(&mut buf, &ROOMY), Ok(Some(frame)));
        prop_assert_eq!(&buf[..], &tail[..]);
    }

    /// The extended header is skipped whatever it holds and however long it is.
    #[test]
    fn frame_with_extended_header_decodes_to_the_same_frame(
        frame in any_frame(),
        words in 0..=253u8,
        filler in any::<u8>(),
    ) {
        let plain = encoded(&frame, &ROOMY);
        let extended = with_extended_header(&plain, words, filler);
        prop_assert_eq!(decode_all(&extended, &ROOMY), Ok(Some(frame)));
    }

    /// Any bytes: no panic; a frame decoded uses exactly SIZE bytes and encodes back
    /// to them when it has no extended header; "incomplete" consumes nothing; an
    /// error is reported from the 8-byte header alone.
    #[test]
    fn any_byte_soup_decodes_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        max_frame_size in prop_oneof![Just(0u32), Just(MIN_MAX_FRAME_SIZE), 8..64u32, Just(u32::MAX)],
    ) {
        let limits = FrameLimits { max_frame_size };
        let mut buf = BytesMut::from(&bytes[..]);
        match decode(&mut buf, &limits) {
            Ok(Some(frame)) => {
                let used = bytes.len() - buf.len();
                prop_assert_eq!(Some(&bytes[..4]), Some(&(used as u32).to_be_bytes()[..]));
                if bytes[4] == 2 && (frame.kind != FrameKind::Sasl || bytes[6..8] == [0, 0]) {
                    prop_assert_eq!(encoded(&frame, &limits), &bytes[..used]);
                }
            }
            Ok(None) => prop_assert_eq!(&buf[..], &bytes[..]),
            Err(e) => {
                let header = &bytes[..bytes.len().min(FRAME_HEADER_LEN)];
                prop_assert_eq!(decode_all(header, &limits), Err(e));
            }
        }
    }
}
