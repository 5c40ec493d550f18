//! Frames (AMQP 1.0 part 2 §2.3, "Framing"): an 8-byte header, an extended header
//! this version of the standard gives no meaning, and a body, all counted by the
//! header's SIZE.
//!
//! ```text
//! bytes 0-3  SIZE     u32 big-endian: the whole frame, header included (≥ 8)
//! byte  4    DOFF     where the body starts, in 4-byte words (≥ 2)
//! byte  5    TYPE     0x00 AMQP, 0x01 SASL
//! bytes 6-7  CHANNEL  u16 big-endian for AMQP frames; ignored in SASL frames
//! 8..DOFF*4           extended header, skipped
//! DOFF*4..SIZE        body: a performative and its payload, or nothing (heartbeat)
//! ```
//!
//! [`decode`] checks each header field against [`FrameLimits`] as soon as it
//! arrives, before the body is waited for or room reserved; the body it returns is a
//! slice of the receive buffer. [`Frame::encode`] writes a header around a body the
//! caller encoded.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the fixed frame header, bytes (§2.3.1).
pub const FRAME_HEADER_LEN: usize = 8;

/// The largest frame every peer must accept, and the limit on frames before the
/// `open` exchange sets one, bytes (§2.4.1: "Prior to any explicit negotiation, the
/// maximum frame size is 512 (MIN-MAX-FRAME-SIZE)"; §2.7.1 open, max-frame-size).
/// The standard bounds SASL frames by it too (part 5 §5.3.1); hubwire accepts
/// larger ones, up to [`SASL_MAX_FRAME_SIZE`](super::sasl::SASL_MAX_FRAME_SIZE).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

// SIZE, a u32, is used as a `usize` without loss.
const _: () = assert!(usize::BITS >= u32::BITS);

/// DOFF counts 4-byte words (§2.3.1).
const DOFF_WORD: u32 = 4;
/// The smallest DOFF: the 8-byte header itself (§2.3.1).
const MIN_DOFF: u8 = 2;

/// TYPE byte values (§2.3.1, part 5 §5.3.1).
const TYPE_AMQP: u8 = 0x00;
const TYPE_SASL: u8 = 0x01;

/// Error conditions (§2.8.15, §2.8.16).
const FRAMING_ERROR: &str = "amqp:connection:framing-error";
const DECODE_ERROR: &str = "amqp:decode-error";
const FRAME_SIZE_TOO_SMALL: &str = "amqp:frame-size-too-small";

/// What a frame carries, from its TYPE byte (§2.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// TYPE 0x00: a performative on a channel (§2.3.2). Connection-level frames
    /// (`open`, `close`) and heartbeats before `open` use channel 0 (§2.4.1, §2.4.5).
    Amqp {
        /// Bytes 6–7: the channel a session is mapped to (§2.4).
        channel: u16,
    },
    /// TYPE 0x01: a SASL frame (part 5 §5.3.1). Its bytes 6–7 are ignored and
    /// written as 0.
    Sasl,
}

/// One frame, its extended header dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// TYPE and, for AMQP frames, the channel.
    pub kind: FrameKind,
    /// Everything after the extended header: the encoded performative and its
    /// payload; empty for a heartbeat (§2.4.5). When decoded, a slice of the receive
    /// buffer.
    pub body: Bytes,
}

impl Frame {
    /// The empty frame a peer sends to keep the partner's idle timeout from firing:
    /// header only, on channel 0, which must be used before the partner's `open` and
    /// should be used after (§2.4.5).
    pub const fn heartbeat() -> Self {
        Frame { kind: FrameKind::Amqp { channel: 0 }, body: Bytes::new() }
    }

    /// Whether the frame has no body: an AMQP heartbeat (§2.4.5), which has no
    /// meaning but to show the peer is alive.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Appends the frame to `out`: the 8-byte header (DOFF 2, no extended header, as
    /// part 5 §5.3.1 asks of SASL frames and nothing requires otherwise), then the
    /// body.
    ///
    /// `peer` holds the largest frame the peer accepts: its `open`'s max-frame-size,
    /// or [`FrameLimits::BEFORE_OPEN`] until it arrives.
    ///
    /// Errors: the frame is larger than that ("A peer MUST NOT send frames larger than
    /// its partner can handle", §2.7.1). Nothing is written.
    pub fn encode(&self, peer: &FrameLimits, out: &mut BytesMut) -> Result<(), EncodeError> {
        let len = FRAME_HEADER_LEN.saturating_add(self.body.len());
        let max = peer.max();
        let size = match u32::try_from(len) {
            Ok(size) if size <= max => size,
            _ => return Err(EncodeError::TooLarge { size: len, max }),
        };
        let (frame_type, channel) = match self.kind {
            FrameKind::Amqp { channel } => (TYPE_AMQP, channel),
            FrameKind::Sasl => (TYPE_SASL, 0),
        };
        out.reserve(len);
        out.put_u32(size);
        out.put_u8(MIN_DOFF);
        out.put_u8(frame_type);
        out.put_u16(channel);
        out.put_slice(&self.body);
        Ok(())
    }
}

/// The frame size a receiver accepts, checked before anything is buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest frame, header included, bytes: the max-frame-size this side announced
    /// in its `open` (§2.7.1). Values below [`MIN_MAX_FRAME_SIZE`] act as it: every
    /// peer must accept frames of 512 bytes.
    pub max_frame_size: u32,
}

impl FrameLimits {
    /// Before the `open` exchange: 512 bytes (§2.4.1).
    pub const BEFORE_OPEN: Self = FrameLimits { max_frame_size: MIN_MAX_FRAME_SIZE };

    /// The limit in force, bytes.
    const fn max(&self) -> u32 {
        if self.max_frame_size < MIN_MAX_FRAME_SIZE {
            MIN_MAX_FRAME_SIZE
        } else {
            self.max_frame_size
        }
    }
}

impl Default for FrameLimits {
    /// [`FrameLimits::BEFORE_OPEN`]: a connection starts with it.
    fn default() -> Self {
        FrameLimits::BEFORE_OPEN
    }
}

/// Decodes one frame from the front of `buf` and removes its bytes.
///
/// `Ok(None)`: more bytes are needed; nothing was consumed. Once the whole header has
/// passed its checks, room for the rest of the frame is reserved.
///
/// Each header field is checked as soon as its bytes arrive, so a peer announcing a
/// frame that is too large or malformed is refused after at most 8 bytes, before
/// anything is buffered for it. The body returned shares `buf`'s memory.
///
/// Errors: the rule the header breaks; the connection closes with
/// [`FrameError::condition`]. `buf` is left as it was.
pub fn decode(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Option<Frame>, FrameError> {
    let Some(header) = Header::parse(buf, limits)? else {
        return Ok(None);
    };
    let size = header.size as usize;
    if buf.len() < size {
        buf.reserve(size - buf.len());
        return Ok(None);
    }
    let mut body = buf.split_to(size).freeze();
    body.advance(header.body_offset());
    Ok(Some(Frame { kind: header.kind, body }))
}

/// A frame header that passed every check.
struct Header {
    size: u32,
    doff: u8,
    kind: FrameKind,
}

impl Header {
    /// Reads and checks the header at the front of `buf`, field by field; `None` until
    /// all 8 bytes are there.
    fn parse(buf: &[u8], limits: &FrameLimits) -> Result<Option<Self>, FrameError> {
        let Some(&size) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let size = u32::from_be_bytes(size);
        if size < FRAME_HEADER_LEN as u32 {
            return Err(FrameError::SizeBelowHeader { size });
        }
        let max = limits.max();
        if size > max {
            return Err(FrameError::TooLarge { size, max });
        }
        let Some(&doff) = buf.get(4) else {
            return Ok(None);
        };
        if doff < MIN_DOFF {
            return Err(FrameError::DataOffsetBelowHeader { doff });
        }
        if u32::from(doff) * DOFF_WORD > size {
            return Err(FrameError::DataOffsetBeyondFrame { doff, size });
        }
        let Some(&frame_type) = buf.get(5) else {
            return Ok(None);
        };
        let body_empty = u32::from(doff) * DOFF_WORD == size;
        match frame_type {
            TYPE_AMQP => {}
            TYPE_SASL if body_empty => return Err(FrameError::EmptySaslFrame),
            TYPE_SASL => {}
            code => return Err(FrameError::UnknownType { code }),
        }
        let Some(&[.., channel_high, channel_low]) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(None);
        };
        let kind = if frame_type == TYPE_SASL {
            FrameKind::Sasl
        } else {
            FrameKind::Amqp { channel: u16::from_be_bytes([channel_high, channel_low]) }
        };
        Ok(Some(Header { size, doff, kind }))
    }

    /// Where the body starts, bytes from the frame's first byte.
    fn body_offset(&self) -> usize {
        usize::from(self.doff) * DOFF_WORD as usize
    }
}

/// Why bytes from the peer are not a frame this side accepts. Each is fatal to the
/// connection, which closes with [`condition`](Self::condition) (after its `open`,
/// if it has sent none: §2.4.1). In the SASL layer, which has no close, the socket
/// just closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// SIZE is below 8: "The frame is malformed if the size is less than the size of
    /// the frame header (8 bytes)" (§2.3.1).
    #[error("frame size {size} is less than the 8-byte frame header (AMQP 1.0 §2.3.1)")]
    SizeBelowHeader {
        /// SIZE, bytes.
        size: u32,
    },
    /// DOFF is below 2: "Due to the mandatory 8-byte frame header, the frame is
    /// malformed if the value is less than 2" (§2.3.1).
    #[error("data offset {doff} is less than 2 words (AMQP 1.0 §2.3.1)")]
    DataOffsetBelowHeader {
        /// DOFF, 4-byte words.
        doff: u8,
    },
    /// DOFF points past the end SIZE gives: the body would start outside the frame
    /// (§2.3.1: the body is SIZE − 4 × DOFF bytes).
    #[error("data offset {doff} words lies beyond the frame's {size} bytes (AMQP 1.0 §2.3.1)")]
    DataOffsetBeyondFrame {
        /// DOFF, 4-byte words.
        doff: u8,
        /// SIZE, bytes.
        size: u32,
    },
    /// SIZE exceeds [`FrameLimits::max_frame_size`]: "A peer that receives an
    /// oversized frame MUST close the connection with the framing-error error-code"
    /// (§2.7.1); before `open` the limit is 512 bytes (§2.4.1). Reported once the
    /// first 4 bytes arrive.
    #[error("frame size {size} exceeds the maximum frame size {max} (AMQP 1.0 §2.7.1)")]
    TooLarge {
        /// SIZE, bytes.
        size: u32,
        /// The limit in force, bytes.
        max: u32,
    },
    /// TYPE is neither 0x00 (AMQP) nor 0x01 (SASL), the only types §2.3.1 and part 5
    /// §5.3.1 define: no header this side understands can be read.
    #[error("frame type {code:#04x} is neither AMQP (0x00) nor SASL (0x01) (AMQP 1.0 §2.3.1)")]
    UnknownType {
        /// TYPE.
        code: u8,
    },
    /// A SASL frame without a body: "Receipt of an empty frame is an irrecoverable
    /// error" (part 5 §5.3.1).
    #[error("empty SASL frame (AMQP 1.0 part 5 §5.3.1)")]
    EmptySaslFrame,
}

impl FrameError {
    /// The error condition the connection closes with (§2.8.15, §2.8.16):
    /// `amqp:connection:framing-error` ("A valid frame header cannot be formed from
    /// the incoming byte stream") for a malformed or oversized header;
    /// `amqp:decode-error` for an empty SASL frame, whose header is valid but whose
    /// body lacks the SASL performative it must hold (part 5 names no condition; none
    /// is sent, as SASL has no close).
    pub const fn condition(&self) -> &'static str {
        match self {
            FrameError::EmptySaslFrame => DECODE_ERROR,
            FrameError::SizeBelowHeader { .. }
            | FrameError::DataOffsetBelowHeader { .. }
            | FrameError::DataOffsetBeyondFrame { .. }
            | FrameError::TooLarge { .. }
            | FrameError::UnknownType { .. } => FRAMING_ERROR,
        }
    }
}

/// Why a [`Frame`] cannot be sent. Nothing is written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame is larger than the peer's max-frame-size (§2.7.1). A transfer's
    /// payload can be split across frames (§2.6.14); a performative that cannot is
    /// reported with [`condition`](Self::condition).
    #[error("a {size}-byte frame exceeds the peer's maximum frame size {max} (AMQP 1.0 §2.7.1)")]
    TooLarge {
        /// The frame's length, header included, bytes (saturated at `usize::MAX`).
        size: usize,
        /// The peer's limit, bytes.
        max: u32,
    },
}

impl EncodeError {
    /// `amqp:frame-size-too-small` (§2.8.15): "The peer cannot send a frame because
    /// the smallest encoding of the performative with the currently valid values
    /// would be too large to fit within a frame of the agreed maximum frame size."
    pub const fn condition(&self) -> &'static str {
        match self {
            EncodeError::TooLarge { .. } => FRAME_SIZE_TOO_SMALL,
        }
    }
}

#[cfg(test)]
mod tests;
