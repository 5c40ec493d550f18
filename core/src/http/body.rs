//! Message bodies: how long a body is, chosen from its head (RFC 9112 §6.3), read by
//! [`BodyDecoder`] from `Content-Length`, the chunked coding (RFC 9112 §7.1) or the
//! connection's close, and written chunked by [`encode_chunked`].

use alloc::string::String;
use bytes::{Buf, Bytes, BytesMut};
use core::fmt::Write as _;

use super::head::{Header, RequestHead, ResponseHead};

/// Bounds on one body, checked before bytes are kept, so that a peer cannot make a
/// decoder buffer without end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// The most bytes a body may hold once decoded. Default 272 KiB: IoT Hub takes
    /// device-to-cloud messages of at most 256 KiB (spec file §1), plus 16 KiB for
    /// the properties a REST body may carry beside them.
    pub max_body_size: usize,
    /// The most bytes of chunked framing a body may carry beyond its sizes: chunk
    /// extensions, size lines past their 16th byte, and trailer fields, all chunks
    /// together. Default 16 KiB, as `Limits::max_head_size`; it bounds the wire
    /// bytes a peer can send per body byte.
    pub max_framing_size: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits { max_body_size: 256 * 1024 + 16 * 1024, max_framing_size: 16 * 1024 }
    }
}

/// Why a body cannot be read.
///
/// The connection cannot carry another message after any of these: the reader no
/// longer knows where the next one starts (RFC 9112 §6.3, §8). A server answers with
/// [`BodyError::status`] and closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The framing headers or the chunked coding break RFC 9112; the text names the
    /// rule.
    #[error("malformed HTTP body: {0}")]
    Malformed(&'static str),
    /// The body, declared or as decoded so far, is longer than
    /// [`BodyLimits::max_body_size`] (RFC 9110 §15.5.14).
    #[error("the HTTP body is longer than {limit} bytes (RFC 9110 §15.5.14)")]
    TooLarge {
        /// The configured limit, bytes.
        limit: usize,
    },
    /// Chunk extensions, long size lines and trailer fields together take more than
    /// [`BodyLimits::max_framing_size`] bytes.
    #[error("the chunked framing takes more than {limit} bytes beyond the chunk sizes")]
    FramingTooLarge {
        /// The configured limit, bytes.
        limit: usize,
    },
    /// `Transfer-Encoding` names a coding other than `chunked`, which hubwire does
    /// not decode (RFC 9112 §6.1); the text is the coding, at most 16 bytes of it.
    #[error("transfer coding {0:?} is not implemented, only chunked (RFC 9112 §6.1)")]
    UnsupportedCoding(String),
    /// The connection closed before the body's last byte (RFC 9112 §8).
    #[error("the connection closed before the HTTP body ended (RFC 9112 §8)")]
    Incomplete,
}

impl BodyError {
    /// The status a server answers with: 400 Bad Request for malformed framing or an
    /// incomplete body, 413 Content Too Large for a body or framing over a limit (RFC
    /// 9110 §15.5.14), 501 Not Implemented for a transfer coding it does not know
    /// (RFC 9112 §6.1).
    pub fn status(&self) -> u16 {
        match self {
            BodyError::Malformed(_) | BodyError::Incomplete => 400,
            BodyError::TooLarge { .. } | BodyError::FramingTooLarge { .. } => 413,
            BodyError::UnsupportedCoding(_) => 501,
        }
    }
}

/// Reads one message's body from the bytes after its head.
///
/// Feed it with [`decode`](BodyDecoder::decode) as bytes arrive; it takes exactly
/// the body's bytes from the buffer and leaves what follows (the next pipelined
/// message) in place. At the connection's end call
/// [`finish_at_eof`](BodyDecoder::finish_at_eof).
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    state: State,
    body: BytesMut,
    limits: BodyLimits,
    /// Framing bytes counted against `limits.max_framing_size` so far.
    framing: usize,
    must_close: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// This many body bytes are still to come (`Content-Length`, RFC 9112 §6.2).
    Length(u64),
    /// A chunk-size line is next (RFC 9112 §7.1).
    ChunkSize,
    /// This many bytes of the current chunk's data are still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data is next.
    ChunkEnd,
    /// Trailer fields or the empty line that ends them are next (RFC 9112 §7.1.2).
    Trailers,
    /// The body runs to the connection's end (RFC 9112 §6.3 item 8).
    UntilClose,
    /// The whole body is read and has not been returned yet.
    Complete,
    /// The body has been returned.
    Spent,
}

/// Size lines up to this many bytes are free; bytes past it count as framing, so
/// that leading zeros cannot stretch a line without bound.
const FREE_SIZE_LINE: usize = 16;

impl BodyDecoder {
    /// The decoder for the body of `head`, a request a server has read (RFC 9112
    /// §6.3): chunked if `Transfer-Encoding` ends in `chunked`, else the length
    /// `Content-Length` gives, else none.
    ///
    /// Errors: [`BodyError::UnsupportedCoding`] (501) for any coding but `chunked`,
    /// wherever it stands (§6.1); [`BodyError::Malformed`] (400) for a
    /// `Transfer-Encoding` that lists no coding (§6.3 item 4), `chunked` twice or
    /// with parameters (§6.1, §7), `Transfer-Encoding` in an HTTP/1.0 message
    /// (§6.1), or an invalid or ambiguous `Content-Length` (§6.3 item 5);
    /// [`BodyError::TooLarge`] (413) for a declared length over the limit.
    pub fn for_request(head: &RequestHead, limits: &BodyLimits) -> Result<Self, BodyError> {
        let http_1_0 = head.minor_version == 0;
        BodyDecoder::from_headers(&head.headers, http_1_0, Role::Request, limits)
    }

    /// The decoder for the body of `head`, the answer to a request whose method was
    /// `request_method` (RFC 9112 §6.3): none for an answer to `HEAD`, a 1xx, 204 or
    /// 304 status, or a 2xx answer to `CONNECT` (items 1 and 2); else as
    /// [`for_request`](BodyDecoder::for_request), except that without either header,
    /// or with a `Transfer-Encoding` that lists no coding, the body runs until the
    /// server closes (items 4 and 8).
    ///
    /// Errors: as [`for_request`](BodyDecoder::for_request).
    pub fn for_response(
        head: &ResponseHead,
        request_method: &str,
        limits: &BodyLimits,
    ) -> Result<Self, BodyError> {
        let no_body = request_method == "HEAD"
            || (100..200).contains(&head.status)
            || head.status == 204
            || head.status == 304
            || (request_method == "CONNECT" && (200..300).contains(&head.status));
        if no_body {
            return Ok(BodyDecoder::new(State::Complete, limits, false));
        }
        let http_1_0 = head.minor_version == 0;
        BodyDecoder::from_headers(&head.headers, http_1_0, Role::Response, limits)
    }

    fn new(state: State, limits: &BodyLimits, must_close: bool) -> Self {
        BodyDecoder { state, body: BytesMut::new(), limits: *limits, framing: 0, must_close }
    }

    fn from_headers(
        headers: &[Header],
        http_1_0: bool,
        role: Role,
        limits: &BodyLimits,
    ) -> Result<Self, BodyError> {
        let has_length = headers.iter().any(|h| h.name.eq_ignore_ascii_case("content-length"));
        if headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")) {
            if http_1_0 {
                return Err(BodyError::Malformed(
                    "an HTTP/1.0 message has Transfer-Encoding (RFC 9112 §6.1)",
                ));
            }
            let state = match (transfer_codings(headers)?, role) {
                (Codings::Chunked, _) => State::ChunkSize,
                (Codings::Empty, Role::Request) => {
                    return Err(BodyError::Malformed(
                        "a request's last transfer coding is not chunked (RFC 9112 §6.3)",
                    ));
                }
                (Codings::Empty, Role::Response) => State::UntilClose,
            };
            // Both headers may be an attempt at request smuggling; Transfer-Encoding
            // decides, and the connection ends after this message (RFC 9112 §6.1).
            return Ok(BodyDecoder::new(state, limits, has_length));
        }
        if has_length {
            let length = content_length(headers)?;
            if length > limits.max_body_size as u64 {
                return Err(BodyError::TooLarge { limit: limits.max_body_size });
            }
            let state = if length == 0 { State::Complete } else { State::Length(length) };
            return Ok(BodyDecoder::new(state, limits, false));
        }
        match role {
            Role::Request => Ok(BodyDecoder::new(State::Complete, limits, false)),
            Role::Response => Ok(BodyDecoder::new(State::UntilClose, limits, false)),
        }
    }

    /// Whether the connection must close after this message: it had both
    /// `Transfer-Encoding` and `Content-Length` (RFC 9112 §6.1), or its body runs
    /// until the close.
    pub fn must_close(&self) -> bool {
        self.must_close || self.state == State::UntilClose
    }

    /// Takes body bytes from the front of `buf`.
    ///
    /// `Ok(None)`: the body is not complete; call again when more bytes have arrived.
    /// `Ok(Some(body))`: the whole decoded body; `buf` starts with the byte after it.
    /// The body is returned once: afterwards `decode` takes nothing and returns
    /// `Ok(None)`.
    ///
    /// Errors: [`BodyError::Malformed`] for chunked framing that breaks RFC 9112
    /// §7.1, [`BodyError::TooLarge`] and [`BodyError::FramingTooLarge`] as soon as
    /// a limit is passed, before the bytes are kept.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, BodyError> {
        loop {
            match self.state {
                State::Length(remaining) => {
                    let take = take_len(remaining, buf);
                    self.body.unsplit(buf.split_to(take));
                    self.state = match remaining - take as u64 {
                        0 => State::Complete,
                        left => return self.wait(State::Length(left)),
                    };
                }
                State::ChunkSize => {
                    let window = FREE_SIZE_LINE + self.framing_left();
                    let Some(len) = self.line(buf, window, chunk_size_prefix)? else {
                        return Ok(None);
                    };
                    let size = chunk_size(buf.get(..len).unwrap_or_default())?;
                    self.framing += len.saturating_sub(FREE_SIZE_LINE);
                    buf.advance(len + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else if size
                        > self.limits.max_body_size.saturating_sub(self.body.len()) as u64
                    {
                        return Err(BodyError::TooLarge { limit: self.limits.max_body_size });
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(remaining) => {
                    let take = take_len(remaining, buf);
                    self.body.unsplit(buf.split_to(take));
                    self.state = match remaining - take as u64 {
                        0 => State::ChunkEnd,
                        left => return self.wait(State::ChunkData(left)),
                    };
                }
                State::ChunkEnd => {
                    let have = buf.len().min(2);
                    if buf.get(..have) != b"\r\n".get(..have) {
                        return Err(BodyError::Malformed(
                            "a chunk's data is not followed by CRLF (RFC 9112 §7.1)",
                        ));
                    }
                    if have < 2 {
                        return Ok(None);
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let window = self.framing_left();
                    let Some(len) = self.line(buf, window, trailer_field_prefix)? else {
                        return Ok(None);
                    };
                    let line = buf.get(..len).unwrap_or_default();
                    if len > 0 && !line.contains(&b':') {
                        return Err(BodyError::Malformed(
                            "a trailer field has no colon (RFC 9112 §7.1.2)",
                        ));
                    }
                    self.framing += len;
                    buf.advance(len + 2);
                    if len == 0 {
                        self.state = State::Complete;
                    }
                }
                State::UntilClose => {
                    if buf.len() > self.limits.max_body_size.saturating_sub(self.body.len()) {
                        return Err(BodyError::TooLarge { limit: self.limits.max_body_size });
                    }
                    self.body.unsplit(buf.split());
                    return Ok(None);
                }
                State::Complete => {
                    self.state = State::Spent;
                    return Ok(Some(core::mem::take(&mut self.body).freeze()));
                }
                State::Spent => return Ok(None),
            }
        }
    }

    /// The connection has ended: the body if it is complete or runs until the close,
    /// else [`BodyError::Incomplete`] (RFC 9112 §8). Call [`decode`](Self::decode)
    /// with the last bytes first. A decoder that has returned its body returns an
    /// empty one.
    pub fn finish_at_eof(mut self) -> Result<Bytes, BodyError> {
        match self.state {
            State::UntilClose | State::Complete => Ok(self.body.split().freeze()),
            State::Spent => Ok(Bytes::new()),
            _ => Err(BodyError::Incomplete),
        }
    }

    fn wait(&mut self, state: State) -> Result<Option<Bytes>, BodyError> {
        self.state = state;
        Ok(None)
    }

    fn framing_left(&self) -> usize {
        self.limits.max_framing_size.saturating_sub(self.framing)
    }

    /// The length, CRLF excluded, of the line at the front of `buf` once it is whole
    /// (`Ok(None)` until then). `check` refuses a bad line, or the part of it that
    /// has arrived, early; a line longer than `window` is
    /// [`BodyError::FramingTooLarge`].
    fn line(
        &self,
        buf: &[u8],
        window: usize,
        check: fn(&[u8]) -> Result<(), BodyError>,
    ) -> Result<Option<usize>, BodyError> {
        let too_large = BodyError::FramingTooLarge { limit: self.limits.max_framing_size };
        let search = buf.get(..window.saturating_add(2)).unwrap_or(buf);
        let Some(lf) = memchr::memchr(b'\n', search) else {
            // A CR at the end may start the CRLF; the rest must be line content.
            let partial = search.strip_suffix(b"\r").unwrap_or(search);
            check(partial)?;
            return if search.len() > window.saturating_add(1) { Err(too_large) } else { Ok(None) };
        };
        let Some(len) = lf.checked_sub(1).filter(|&cr| search.get(cr) == Some(&b'\r')) else {
            return Err(BodyError::Malformed(
                "a chunked-coding line ends in a bare LF (RFC 9112 §7.1)",
            ));
        };
        let line = search.get(..len).unwrap_or_default();
        check(line)?;
        if len > window { Err(too_large) } else { Ok(Some(len)) }
    }
}

/// Which side's rules apply where RFC 9112 §6.3 tells requests and responses apart.
#[derive(Clone, Copy)]
enum Role {
    Request,
    Response,
}

/// What `Transfer-Encoding` asks for, once every coding is one hubwire knows.
enum Codings {
    /// Exactly `chunked`.
    Chunked,
    /// No coding once empty list elements are dropped: chunked is not last, so a
    /// request's length is unknown and a response runs until the close (RFC 9112
    /// §6.3 item 4).
    Empty,
}

/// Reads every `Transfer-Encoding` field as one list (RFC 9110 §5.3).
fn transfer_codings(headers: &[Header]) -> Result<Codings, BodyError> {
    let codings = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|h| h.value.split(','))
        .map(|element| element.trim_matches([' ', '\t']))
        .filter(|element| !element.is_empty());
    let mut chunked = false;
    for coding in codings {
        let name = coding.split(';').next().unwrap_or_default().trim_matches([' ', '\t']);
        if !name.eq_ignore_ascii_case("chunked") {
            let name = name.get(..16).unwrap_or(name);
            return Err(BodyError::UnsupportedCoding(String::from(name)));
        }
        if chunked {
            return Err(BodyError::Malformed("chunked is applied twice (RFC 9112 §6.1)"));
        }
        if name.len() != coding.len() {
            return Err(BodyError::Malformed("chunked has parameters (RFC 9112 §7)"));
        }
        chunked = true;
    }
    Ok(if chunked { Codings::Chunked } else { Codings::Empty })
}

/// The one length every `Content-Length` field and list element gives (RFC 9112
/// §6.3 item 5, RFC 9110 §8.6: identical repeats are read as one).
fn content_length(headers: &[Header]) -> Result<u64, BodyError> {
    let mut length = None;
    for element in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .flat_map(|h| h.value.split(','))
    {
        let digits = element.trim_matches([' ', '\t']);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BodyError::Malformed(
                "Content-Length is not a decimal number (RFC 9112 §6.3)",
            ));
        }
        let value = digits.parse::<u64>().map_err(|_| {
            BodyError::Malformed("Content-Length does not fit in 64 bits (RFC 9110 §8.6)")
        })?;
        if length.is_some_and(|l| l != value) {
            return Err(BodyError::Malformed("Content-Length values differ (RFC 9112 §6.3)"));
        }
        length = Some(value);
    }
    length.ok_or(BodyError::Malformed("Content-Length is empty (RFC 9112 §6.3)"))
}

/// How many of `remaining` bytes `buf` can give now.
fn take_len(remaining: u64, buf: &BytesMut) -> usize {
    usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()))
}

/// The hexadecimal chunk size at the front of a whole chunk-size line (RFC 9112
/// §7.1); what follows it is a chunk extension, which [`chunk_size_prefix`] has
/// checked.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (hex, rest) = line.split_at(digits);
    if hex.is_empty() {
        return Err(BodyError::Malformed("a chunk-size line has no size (RFC 9112 §7.1)"));
    }
    if !rest.is_empty() && trim_blank(rest).is_empty() {
        return Err(BodyError::Malformed(
            "a chunk size is followed by whitespace without an extension (RFC 9112 §7.1)",
        ));
    }
    hex_value(hex)
}

/// Refuses a chunk-size line, whole or the part that has arrived, that is not hex
/// digits and then maybe `;` and an extension, or whose size overflows 64 bits.
fn chunk_size_prefix(line: &[u8]) -> Result<(), BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (hex, rest) = line.split_at(digits);
    hex_value(hex)?;
    // Whitespace may stand before `;` (BWS); [`chunk_size`] refuses it alone.
    let extension = trim_blank(rest);
    let well_formed = match extension.first() {
        None => !hex.is_empty() || rest.is_empty(),
        Some(b';') => !hex.is_empty() && is_field_text(extension),
        Some(_) => false,
    };
    if well_formed {
        Ok(())
    } else {
        Err(BodyError::Malformed(
            "a chunk-size line is not a hex size and extensions (RFC 9112 §7.1)",
        ))
    }
}

/// `bytes` without leading spaces and tabs.
fn trim_blank(bytes: &[u8]) -> &[u8] {
    let blank = bytes.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    bytes.get(blank..).unwrap_or_default()
}

fn hex_value(hex: &[u8]) -> Result<u64, BodyError> {
    hex.iter().try_fold(0u64, |size, &digit| {
        let value = char::from(digit).to_digit(16).map(u64::from).unwrap_or_default();
        size.checked_mul(16)
            .and_then(|s| s.checked_add(value))
            .ok_or(BodyError::Malformed("a chunk size does not fit in 64 bits (RFC 9112 §7.1)"))
    })
}

/// Refuses a trailer line, whole or the part that has arrived, that is not a field
/// name and then `:` and a value (RFC 9112 §7.1.2, RFC 9110 §5).
fn trailer_field_prefix(line: &[u8]) -> Result<(), BodyError> {
    let name = line.iter().take_while(|&&b| is_tchar(b)).count();
    let rest = line.get(name..).unwrap_or_default();
    let well_formed = match rest.first() {
        None => true,
        Some(b':') => name > 0 && is_field_text(rest),
        Some(_) => false,
    };
    if well_formed {
        Ok(())
    } else {
        Err(BodyError::Malformed("a trailer line is not a field (RFC 9112 §7.1.2)"))
    }
}

/// Whether `bytes` hold no control characters but HTAB (RFC 9110 §5.5).
fn is_field_text(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7F))
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends `chunks` in the chunked coding (RFC 9112 §7.1): each non-empty chunk as
/// its size in hex, CRLF, its bytes, CRLF; then the last chunk `0` and the empty
/// line, without extensions or trailers. Empty chunks are skipped: one would end the
/// body.
pub fn encode_chunked<'c>(chunks: impl IntoIterator<Item = &'c [u8]>, out: &mut BytesMut) {
    for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
        // Writing to a BytesMut grows it; it cannot fail.
        let _ = write!(out, "{:x}\r\n", chunk.len());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, parse_request, parse_response};
    use alloc::string::ToString;
    use alloc::vec::Vec;
    use proptest::collection::vec as vec_of;
    use proptest::prelude::*;

    fn request_head(headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: String::from("POST"),
            target: String::from("/devices/d1/messages/events"),
            minor_version: 1,
            headers: headers.iter().map(|&(n, v)| Header::new(n, v)).collect(),
        }
    }

    fn response_head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            minor_version: 1,
            status,
            reason: String::new(),
            headers: headers.iter().map(|&(n, v)| Header::new(n, v)).collect(),
        }
    }

    fn request_decoder(headers: &[(&str, &str)]) -> BodyDecoder {
        match BodyDecoder::for_request(&request_head(headers), &BodyLimits::default()) {
            Ok(decoder) => decoder,
            Err(e) => panic!("{e}"),
        }
    }

    fn chunked() -> BodyDecoder {
        request_decoder(&[("Transfer-Encoding", "chunked")])
    }

    /// Feeds all of `bytes` at once.
    fn decode_all(
        decoder: &mut BodyDecoder,
        bytes: &[u8],
    ) -> (Result<Option<Bytes>, BodyError>, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        let result = decoder.decode(&mut buf);
        (result, buf)
    }

    #[test]
    fn rfc9112_6_2_content_length_takes_exactly_its_bytes() {
        let mut decoder = request_decoder(&[("Content-Length", "5")]);
        let (result, rest) = decode_all(&mut decoder, b"hello GET");
        assert_eq!(result, Ok(Some(Bytes::from_static(b"hello"))));
        assert_eq!(&rest[..], b" GET");
        assert!(!decoder.must_close());
        assert_eq!(decode_all(&mut decoder, b"more").0, Ok(None), "spent");
    }

    #[test]
    fn rfc9112_6_3_request_without_framing_has_no_body() {
        let mut decoder = request_decoder(&[("Host", "h")]);
        let (result, rest) = decode_all(&mut decoder, b"GET / HTTP/1.1\r\n");
        assert_eq!(result, Ok(Some(Bytes::new())));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
        let mut zero = request_decoder(&[("Content-Length", "0")]);
        assert_eq!(decode_all(&mut zero, b"x").0, Ok(Some(Bytes::new())));
    }

    #[test]
    fn rfc9112_6_3_item_5_content_length_must_be_one_decimal() {
        let limits = BodyLimits::default();
        for bad in ["", "-1", "+5", "0x10", "5 5", "1,2", "99999999999999999999999", " , "] {
            let head = request_head(&[("Content-Length", bad)]);
            let error = BodyDecoder::for_request(&head, &limits).map(|_| ());
            assert!(matches!(error, Err(BodyError::Malformed(_))), "{bad:?}: {error:?}");
            assert_eq!(error.map_err(|e| e.status()), Err(400));
        }
        let two = request_head(&[("Content-Length", "3"), ("content-length", "4")]);
        assert!(matches!(BodyDecoder::for_request(&two, &limits), Err(BodyError::Malformed(_))));
        // Identical repeats are one length (RFC 9110 §8.6).
        let mut same = request_decoder(&[("Content-Length", "3, 3"), ("Content-Length", "3")]);
        assert_eq!(decode_all(&mut same, b"abcd").0, Ok(Some(Bytes::from_static(b"abc"))));
    }

    #[test]
    fn rfc9110_15_5_14_declared_length_over_the_limit_is_413_before_any_byte() {
        let limits = BodyLimits { max_body_size: 10, max_framing_size: 100 };
        let head = request_head(&[("Content-Length", "11")]);
        let error = BodyDecoder::for_request(&head, &limits).map(|_| ());
        assert_eq!(error, Err(BodyError::TooLarge { limit: 10 }));
        assert_eq!(error.map_err(|e| e.status()), Err(413));
        let head = request_head(&[("Content-Length", "10")]);
        assert!(BodyDecoder::for_request(&head, &limits).is_ok());
    }

    #[test]
    fn rfc9112_8_lying_content_length_is_incomplete_at_eof() {
        let mut decoder = request_decoder(&[("Content-Length", "10")]);
        assert_eq!(decode_all(&mut decoder, b"only six").0, Ok(None));
        let error = decoder.finish_at_eof();
        assert_eq!(error, Err(BodyError::Incomplete));
        assert_eq!(error.map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn rfc9112_7_1_chunked_body_and_pipelined_request_after_it() {
        let mut decoder = chunked();
        let bytes = b"5\r\nhello\r\n\
            6;name=value;x\r\n world\r\n\
            0\r\n\
            \r\n\
            GET / HTTP/1.1\r\n";
        let (result, rest) = decode_all(&mut decoder, bytes);
        assert_eq!(result, Ok(Some(Bytes::from_static(b"hello world"))));
        assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n");
        assert_eq!(parse_request(&rest, &Limits::default()), Ok(None), "the next head, unharmed");
    }

    #[test]
    fn rfc9112_7_1_2_trailers_are_skipped() {
        let mut decoder = chunked();
        let bytes = b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\nnext";
        let (result, rest) = decode_all(&mut decoder, bytes);
        assert_eq!(result, Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(&rest[..], b"next");
        for bad in [&b"0\r\nno colon\r\n\r\n"[..], b"0\r\n folded: x\r\n\r\n", b"0\r\n: x\r\n\r\n"]
        {
            let error = decode_all(&mut chunked(), bad).0;
            assert!(matches!(error, Err(BodyError::Malformed(_))), "{bad:?}: {error:?}");
        }
    }

    #[test]
    fn rfc9112_7_1_chunk_size_overflow_is_400() {
        // 17 significant hex digits: past u64.
        let error = decode_all(&mut chunked(), b"10000000000000000\r\n").0;
        assert!(matches!(error, Err(BodyError::Malformed(_))), "{error:?}");
        assert_eq!(error.map_err(|e| e.status()), Err(400));
        // Refused as soon as the digits arrive, before the line ends.
        let error = decode_all(&mut chunked(), b"ffffffffffffffff0").0;
        assert!(matches!(error, Err(BodyError::Malformed(_))), "{error:?}");
        // The largest u64 parses, and is then over the body limit.
        let error = decode_all(&mut chunked(), b"ffffffffffffffff\r\n").0;
        assert_eq!(error, Err(BodyError::TooLarge { limit: BodyLimits::default().max_body_size }));
    }

    #[test]
    fn rfc9112_7_1_malformed_chunk_framing_is_400() {
        let cases: [&[u8]; 8] = [
            b"\r\n",                  // no size
            b"x\r\n",                 // not hex
            b"5 \r\n",                // whitespace without an extension
            b"5\n",                   // bare LF
            b"5\r\nhelloXY",          // no CRLF after the data
            b"5\r\nhello\r",          // CR, then not LF
            b"5\r\nhello\r\n0\r\x01", // control byte in the last-chunk line
            b"5;a\x00b\r\n",          // NUL in an extension
        ];
        for case in cases {
            let mut decoder = chunked();
            let mut buf = BytesMut::from(case);
            let mut result = decoder.decode(&mut buf);
            if case == b"5\r\nhello\r" {
                assert_eq!(result, Ok(None));
                buf.extend_from_slice(b"X");
                result = decoder.decode(&mut buf);
            }
            assert!(matches!(result, Err(BodyError::Malformed(_))), "{case:?}: {result:?}");
        }
    }

    #[test]
    fn rfc9112_7_1_chunk_sizes_over_the_body_limit_are_413_as_they_come() {
        let limits = BodyLimits { max_body_size: 8, max_framing_size: 64 };
        let head = request_head(&[("Transfer-Encoding", "chunked")]);
        let Ok(mut decoder) = BodyDecoder::for_request(&head, &limits) else { panic!() };
        let (result, rest) = decode_all(&mut decoder, b"5\r\nhello\r\n4\r\nabcd\r\n");
        assert_eq!(result, Err(BodyError::TooLarge { limit: 8 }));
        assert_eq!(&rest[..], b"abcd\r\n", "refused before the data is kept");
    }

    #[test]
    fn absurd_chunk_counts_within_limits_decode_and_extensions_are_bounded() {
        // 10 000 one-byte chunks: the body limit, not the chunk count, bounds them.
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut wire = BytesMut::new();
        encode_chunked(body.chunks(1), &mut wire);
        let (result, rest) = decode_all(&mut chunked(), &wire);
        assert_eq!(result, Ok(Some(Bytes::from(body))));
        assert!(rest.is_empty());
        // Extensions on every chunk add up against the framing limit.
        let limits = BodyLimits { max_body_size: 1 << 20, max_framing_size: 1000 };
        let head = request_head(&[("Transfer-Encoding", "chunked")]);
        let Ok(mut decoder) = BodyDecoder::for_request(&head, &limits) else { panic!() };
        let mut wire = BytesMut::new();
        for _ in 0..200 {
            wire.extend_from_slice(b"1;padding=xxxxxxxxxxxx\r\nx\r\n");
        }
        assert_eq!(
            decode_all(&mut decoder, &wire).0,
            Err(BodyError::FramingTooLarge { limit: 1000 })
        );
        // So do leading zeros past the 16th byte of a size line, even before its end.
        let Ok(mut decoder) = BodyDecoder::for_request(&head, &limits) else { panic!() };
        let zeros = [b'0'; 2000];
        let error = decode_all(&mut decoder, &zeros).0;
        assert_eq!(error, Err(BodyError::FramingTooLarge { limit: 1000 }));
        assert_eq!(error.map_err(|e| e.status()), Err(413));
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_body_and_leaves_the_rest() {
        let wire = b"5;e=1\r\nhello\r\n1\r\n!\r\n0\r\nT: v\r\n\r\nNEXT";
        let mut decoder = chunked();
        let mut buf = BytesMut::new();
        let mut body = None;
        for &byte in wire {
            buf.extend_from_slice(&[byte]);
            if let Some(done) = decoder.decode(&mut buf).unwrap_or_else(|e| panic!("{e}")) {
                assert!(body.is_none(), "returned twice");
                body = Some(done);
            }
        }
        assert_eq!(body, Some(Bytes::from_static(b"hello!")));
        assert_eq!(&buf[..], b"NEXT");
        let mut decoder = request_decoder(&[("Content-Length", "3")]);
        let mut buf = BytesMut::new();
        for &byte in b"ab" {
            buf.extend_from_slice(&[byte]);
            assert_eq!(decoder.decode(&mut buf), Ok(None));
        }
        buf.extend_from_slice(b"cd");
        assert_eq!(decoder.decode(&mut buf), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(&buf[..], b"d");
    }

    #[test]
    fn rfc9112_6_1_transfer_encoding_wins_over_content_length_and_closes() {
        let mut decoder =
            request_decoder(&[("Content-Length", "100"), ("Transfer-Encoding", "chunked")]);
        assert!(decoder.must_close());
        let (result, rest) = decode_all(&mut decoder, b"1\r\nx\r\n0\r\n\r\nGET");
        assert_eq!(result, Ok(Some(Bytes::from_static(b"x"))));
        assert_eq!(&rest[..], b"GET");
        assert!(decoder.must_close(), "still, after the body");
    }

    #[test]
    fn rfc9112_6_1_transfer_codings_hubwire_does_not_read() {
        let limits = BodyLimits::default();
        let status = |headers: &[(&str, &str)]| {
            BodyDecoder::for_request(&request_head(headers), &limits)
                .map(|_| ())
                .map_err(|e| e.status())
        };
        assert_eq!(status(&[("Transfer-Encoding", "gzip, chunked")]), Err(501));
        assert_eq!(
            status(&[("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]),
            Err(501)
        );
        assert_eq!(status(&[("Transfer-Encoding", "chunked, chunked")]), Err(400));
        assert_eq!(status(&[("Transfer-Encoding", "chunked;q=1")]), Err(400));
        assert_eq!(status(&[("Transfer-Encoding", " , ")]), Err(400), "§6.3 item 4");
        assert_eq!(status(&[("Transfer-Encoding", "Chunked ,")]), Ok(()));
        let mut old = request_head(&[("Transfer-Encoding", "chunked")]);
        old.minor_version = 0;
        assert!(matches!(BodyDecoder::for_request(&old, &limits), Err(BodyError::Malformed(_))));
        let long = request_head(&[("Transfer-Encoding", "x-a-very-long-coding-name")]);
        assert_eq!(
            BodyDecoder::for_request(&long, &limits).map(|_| ()),
            Err(BodyError::UnsupportedCoding(String::from("x-a-very-long-co")))
        );
    }

    #[test]
    fn rfc9112_6_3_response_without_framing_reads_until_close() {
        let limits = BodyLimits { max_body_size: 10, max_framing_size: 10 };
        let Ok(mut decoder) = BodyDecoder::for_response(&response_head(200, &[]), "GET", &limits)
        else {
            panic!()
        };
        assert!(decoder.must_close());
        let (result, rest) = decode_all(&mut decoder, b"hello");
        assert_eq!((result, rest.len()), (Ok(None), 0));
        assert_eq!(decode_all(&mut decoder, b" you").0, Ok(None));
        assert_eq!(decoder.clone().finish_at_eof(), Ok(Bytes::from_static(b"hello you")));
        assert_eq!(decode_all(&mut decoder, b"xx").0, Err(BodyError::TooLarge { limit: 10 }));
        let gzip = response_head(200, &[("Transfer-Encoding", "gzip")]);
        assert!(matches!(
            BodyDecoder::for_response(&gzip, "GET", &limits),
            Err(BodyError::UnsupportedCoding(_))
        ));
    }

    #[test]
    fn rfc9112_6_3_items_1_2_responses_without_a_body() {
        let limits = BodyLimits::default();
        let framed = [("Content-Length", "5")];
        for (status, method) in
            [(200, "HEAD"), (101, "GET"), (204, "POST"), (304, "GET"), (200, "CONNECT")]
        {
            let Ok(mut decoder) =
                BodyDecoder::for_response(&response_head(status, &framed), method, &limits)
            else {
                panic!("{status} {method}")
            };
            let (result, rest) = decode_all(&mut decoder, b"HTTP/1.1");
            assert_eq!(result, Ok(Some(Bytes::new())), "{status} {method}");
            assert_eq!(rest.len(), 8);
        }
        let Ok(mut decoder) =
            BodyDecoder::for_response(&response_head(200, &framed), "GET", &limits)
        else {
            panic!()
        };
        assert_eq!(decode_all(&mut decoder, b"hello").0, Ok(Some(Bytes::from_static(b"hello"))));
    }

    #[test]
    fn a_response_read_whole_from_the_wire() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        let Ok(Some((head, used))) = parse_response(wire, &Limits::default()) else { panic!() };
        let Ok(mut decoder) = BodyDecoder::for_response(&head, "POST", &BodyLimits::default())
        else {
            panic!()
        };
        let mut buf = BytesMut::from(&wire[used..]);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(Bytes::from_static(b"{}"))));
        assert!(buf.is_empty());
    }

    #[test]
    fn encode_chunked_is_byte_exact_and_skips_empty_chunks() {
        let mut out = BytesMut::new();
        encode_chunked([&b"hello"[..], b"", &[b'x'; 26]], &mut out);
        let mut expected = b"5\r\nhello\r\n1a\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 26]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn statuses_follow_rfc_9110_and_9112() {
        assert_eq!(BodyError::Malformed("x").status(), 400);
        assert_eq!(BodyError::Incomplete.status(), 400);
        assert_eq!(BodyError::TooLarge { limit: 1 }.status(), 413);
        assert_eq!(BodyError::FramingTooLarge { limit: 1 }.status(), 413);
        assert_eq!(BodyError::UnsupportedCoding(String::from("gzip")).status(), 501);
        assert!(BodyError::Incomplete.to_string().contains("RFC 9112 §8"));
    }

    /// Splits `body` at `cuts` (positions taken modulo its length).
    fn pieces<'b>(body: &'b [u8], cuts: &[usize]) -> Vec<&'b [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        at.push(0);
        at.push(body.len());
        at.sort_unstable();
        at.windows(2).filter_map(|w| body.get(w[0]..w[1])).collect()
    }

    proptest! {
        #[test]
        fn chunked_round_trips_however_cut(
            body in vec_of(any::<u8>(), 0..2000),
            chunk_cuts in vec_of(any::<usize>(), 0..20),
            feed_cuts in vec_of(any::<usize>(), 0..20),
            tail in vec_of(any::<u8>(), 0..8),
        ) {
            let mut wire = BytesMut::new();
            encode_chunked(pieces(&body, &chunk_cuts), &mut wire);
            wire.extend_from_slice(&tail);
            let mut decoder = chunked();
            let mut buf = BytesMut::new();
            let mut decoded = None;
            for piece in pieces(&wire, &feed_cuts) {
                buf.extend_from_slice(piece);
                if let Some(done) = decoder.decode(&mut buf)? {
                    prop_assert!(decoded.is_none());
                    decoded = Some(done);
                }
            }
            prop_assert_eq!(decoded.as_deref(), Some(&body[..]));
            prop_assert_eq!(&buf[..], &tail[..]);
        }

        #[test]
        fn content_length_round_trips(
            body in vec_of(any::<u8>(), 0..2000),
            tail in vec_of(any::<u8>(), 0..8),
        ) {
            let length = body.len().to_string();
            let mut decoder = request_decoder(&[("Content-Length", &length)]);
            let mut buf = BytesMut::from(&body[..]);
            buf.extend_from_slice(&tail);
            prop_assert_eq!(decoder.decode(&mut buf)?, Some(Bytes::from(body)));
            prop_assert_eq!(&buf[..], &tail[..]);
        }

        #[test]
        fn any_bytes_decode_or_are_refused_within_limits(
            bytes in vec_of(any::<u8>(), 0..300),
        ) {
            let limits = BodyLimits { max_body_size: 64, max_framing_size: 32 };
            let head = request_head(&[("Transfer-Encoding", "chunked")]);
            let Ok(mut decoder) = BodyDecoder::for_request(&head, &limits) else { panic!() };
            let mut buf = BytesMut::from(&bytes[..]);
            match decoder.decode(&mut buf) {
                Ok(Some(body)) => prop_assert!(body.len() <= 64),
                Ok(None) => prop_assert!(buf.len() <= 64 + 32 + 16 + 2),
                Err(e) => prop_assert!([400, 413].contains(&e.status()), "{}", e),
            }
        }
    }
}
