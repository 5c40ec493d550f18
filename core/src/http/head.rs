//! Request and response heads: the start line and header fields up to the empty line
//! (RFC 9112 §2.1), parsed by `httparse` within [`Limits`] and written back.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::BytesMut;
use core::fmt::Write as _;

use super::error::HeadError;

/// Bounds on a head, checked on incomplete input too, so that a peer cannot make a
/// parser buffer forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a head may take, start line and final empty line included.
    /// Default 16 KiB, Node.js's default (`--max-http-header-size`): IoT Hub's REST
    /// heads carry a SAS token and application properties, well under that.
    pub max_head_size: usize,
    /// The most header fields a head may have. Default 64.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head_size: 16 * 1024, max_headers: 64 }
    }
}

/// One header field. Names keep the case the peer wrote; look-ups ignore it
/// (RFC 9110 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The field name, a token (RFC 9110 §5.1).
    pub name: String,
    /// The field value without leading or trailing whitespace (RFC 9110 §5.5);
    /// UTF-8, since a value that is not is refused with 400.
    pub value: String,
}

impl Header {
    /// A header field from its name and value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header { name: name.into(), value: value.into() }
    }
}

/// A request's start line and header fields (RFC 9112 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, case-sensitive (RFC 9110 §9.1): `GET`, `POST`, ….
    pub method: String,
    /// The request target as written, in origin form for the requests hubwire
    /// serves: a path and maybe `?` and a query (RFC 9112 §3.2.1).
    pub target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// The header fields in the order written.
    pub headers: Vec<Header>,
}

/// A response's status line and header fields (RFC 9112 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// The three-digit status code.
    pub status: u16,
    /// The reason phrase; empty if the peer wrote none, or wrote bytes outside ASCII.
    pub reason: String,
    /// The header fields in the order written.
    pub headers: Vec<Header>,
}

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)`: the head is incomplete and within `limits`; call again with more
/// bytes. `Ok(Some((head, used)))`: `used` bytes make the head, the body or the next
/// protocol's bytes follow.
///
/// Errors: [`HeadError::UriTooLong`] once `max_head_size` bytes hold no end of the
/// request line, [`HeadError::TooLarge`] once they hold no complete head,
/// [`HeadError::TooManyHeaders`], [`HeadError::Version`] for versions but HTTP/1.0
/// and HTTP/1.1, [`HeadError::Malformed`] for the rest (non-UTF-8 values included).
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let window = window(buf, limits);
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut slots);
    let used = match request.parse(window) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= limits.max_head_size && !window.contains(&b'\n') {
                return Err(HeadError::UriTooLong { limit: limits.max_head_size });
            }
            return incomplete(buf, limits);
        }
        Err(e) => return Err(parse_error(e, window, limits, VersionAt::RequestLine)),
    };
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HeadError::Malformed("the request line is incomplete (RFC 9112 §3)"));
    };
    let head = RequestHead {
        method: String::from(method),
        target: String::from(target),
        minor_version,
        headers: headers(request.headers)?,
    };
    Ok(Some((head, used)))
}

/// Parses the response head at the start of `buf`; the same contract as
/// [`parse_request`].
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let window = window(buf, limits);
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut response = httparse::Response::new(&mut slots);
    let used = match response.parse(window) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return incomplete(buf, limits),
        Err(e) => return Err(parse_error(e, window, limits, VersionAt::StatusLine)),
    };
    let (Some(minor_version), Some(status)) = (response.version, response.code) else {
        return Err(HeadError::Malformed("the status line is incomplete (RFC 9112 §4)"));
    };
    let head = ResponseHead {
        minor_version,
        status,
        reason: String::from(response.reason.unwrap_or_default()),
        headers: headers(response.headers)?,
    };
    Ok(Some((head, used)))
}

impl RequestHead {
    /// The value of the first header field named `name`, in any letter case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Whether a comma-separated list in any field named `name` holds `token`, both
    /// compared in any letter case, whitespace around elements ignored (RFC 9110
    /// §5.6.1): `Connection: keep-alive, Upgrade` holds `upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }

    /// A server's check of `Host` (RFC 9112 §3.2): it MUST answer 400 to an HTTP/1.1
    /// request without one, and to any request with more than one.
    ///
    /// Errors: [`HeadError::Malformed`] naming which.
    pub fn check_host(&self) -> Result<(), HeadError> {
        match self.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).count() {
            0 if self.minor_version >= 1 => {
                Err(HeadError::Malformed("an HTTP/1.1 request has no Host (RFC 9112 §3.2)"))
            }
            0 | 1 => Ok(()),
            _ => Err(HeadError::Malformed("a request has more than one Host (RFC 9112 §3.2)")),
        }
    }

    /// The target up to `?`.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The target after the first `?`, if it has one.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// Appends the head as written on the wire, ending in the empty line.
    ///
    /// The caller keeps the method a token, the target free of spaces, and names and
    /// values free of CR and LF: they are written as given.
    pub fn encode(&self, out: &mut BytesMut) {
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(b" ");
        out.extend_from_slice(self.target.as_bytes());
        // Writing to a BytesMut grows it; it cannot fail.
        let _ = write!(out, " HTTP/1.{}\r\n", self.minor_version);
        encode_headers(&self.headers, out);
    }
}

impl ResponseHead {
    /// The value of the first header field named `name`, in any letter case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Whether a comma-separated list in any field named `name` holds `token`; see
    /// [`RequestHead::has_token`].
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }

    /// Appends the head as written on the wire, ending in the empty line; the status
    /// is written with three digits.
    ///
    /// The caller keeps the reason, names and values free of CR and LF: they are
    /// written as given.
    pub fn encode(&self, out: &mut BytesMut) {
        // Writing to a BytesMut grows it; it cannot fail.
        let _ = write!(out, "HTTP/1.{} {:03} ", self.minor_version, self.status);
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        encode_headers(&self.headers, out);
    }
}

/// The part of `buf` a head may use.
fn window<'b>(buf: &'b [u8], limits: &Limits) -> &'b [u8] {
    buf.get(..limits.max_head_size).unwrap_or(buf)
}

/// The head has not ended within `buf`: too large once `buf` holds the most bytes a
/// head may take, else wait for more.
fn incomplete<T>(buf: &[u8], limits: &Limits) -> Result<Option<T>, HeadError> {
    if buf.len() >= limits.max_head_size {
        Err(HeadError::TooLarge { limit: limits.max_head_size })
    } else {
        Ok(None)
    }
}

/// Where the HTTP version stands on the start line: third for a request, first for
/// a response.
#[derive(Clone, Copy)]
enum VersionAt {
    RequestLine,
    StatusLine,
}

fn parse_error(e: httparse::Error, window: &[u8], limits: &Limits, at: VersionAt) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders { limit: limits.max_headers },
        httparse::Error::Version => {
            let version = version_text(window, at);
            // 505 is for a well-formed version this server does not speak (HTTP/2.0);
            // anything else where the version belongs breaks the grammar.
            if is_http_version(&version) {
                HeadError::Version(version)
            } else {
                HeadError::Malformed("the HTTP version is malformed (RFC 9112 §2.3)")
            }
        }
        httparse::Error::HeaderName => {
            HeadError::Malformed("a header name is not a token (RFC 9110 §5.1)")
        }
        httparse::Error::HeaderValue => {
            HeadError::Malformed("a header value holds a control character (RFC 9110 §5.5)")
        }
        httparse::Error::NewLine => {
            HeadError::Malformed("a line does not end in CRLF (RFC 9112 §2.2)")
        }
        httparse::Error::Status => {
            HeadError::Malformed("the status line is malformed (RFC 9112 §4)")
        }
        httparse::Error::Token => {
            HeadError::Malformed("the request line is malformed (RFC 9112 §3)")
        }
    }
}

/// Whether `text` names an HTTP version: `HTTP/` and a number, as RFC 9112 §2.3
/// writes `HTTP/1.1` and later versions are named (`HTTP/2`, `HTTP/3`).
fn is_http_version(text: &str) -> bool {
    let Some(number) = text.strip_prefix("HTTP/") else {
        return false;
    };
    let (major, minor) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// What the peer wrote where the version belongs, for [`HeadError::Version`]: at most
/// 16 bytes, lossily decoded.
fn version_text(window: &[u8], at: VersionAt) -> String {
    // httparse skips empty lines before the start line (RFC 9112 §2.2); so does this.
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len());
    let line = window.get(start..).unwrap_or_default();
    let line = line.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let index = match at {
        VersionAt::RequestLine => 2,
        VersionAt::StatusLine => 0,
    };
    let word = line.split(|&b| b == b' ').nth(index).unwrap_or_default();
    let word = word.get(..16).unwrap_or(word);
    match String::from_utf8_lossy(word) {
        Cow::Borrowed(text) => String::from(text),
        Cow::Owned(text) => text,
    }
}

fn headers(parsed: &[httparse::Header<'_>]) -> Result<Vec<Header>, HeadError> {
    parsed
        .iter()
        .map(|h| match core::str::from_utf8(h.value) {
            Ok(value) => Ok(Header::new(h.name, value)),
            Err(_) => Err(HeadError::Malformed("a header value is not UTF-8")),
        })
        .collect()
}

fn find<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(','))
        .any(|element| element.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
}

fn encode_headers(headers: &[Header], out: &mut BytesMut) {
    for header in headers {
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::collection::vec as vec_of;
    use proptest::prelude::*;

    /// The upgrade request of RFC 6455 §1.2, with IoT Hub's path and subprotocol.
    const UPGRADE: &[u8] = b"GET /$iothub/websocket?iothub-no-client-cert=true HTTP/1.1\r\n\
        Host: myhub.azure-devices.net\r\n\
        Upgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Protocol: mqtt\r\n\
        \r\n";

    fn request(bytes: &[u8]) -> (RequestHead, usize) {
        match parse_request(bytes, &Limits::default()) {
            Ok(Some(parsed)) => parsed,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn upgrade_request_parses_with_path_query_and_tokens() {
        let mut bytes = UPGRADE.to_vec();
        bytes.extend_from_slice(&[0x82, 0x80]); // a frame header after the head
        let (head, used) = request(&bytes);
        assert_eq!(used, UPGRADE.len());
        assert_eq!(head.method, "GET");
        assert_eq!(head.path(), "/$iothub/websocket");
        assert_eq!(head.query(), Some("iothub-no-client-cert=true"));
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.headers.len(), 6);
        assert_eq!(head.header("HOST"), Some("myhub.azure-devices.net"));
        assert_eq!(head.header("sec-websocket-key"), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(head.has_token("connection", "UPGRADE"));
        assert!(head.has_token("Connection", "keep-alive"));
        assert!(!head.has_token("Connection", "close"));
        assert!(!head.has_token("Upgrade", "h2c"));
    }

    #[test]
    fn has_token_reads_every_field_of_the_name_and_trims_whitespace() {
        let (head, _) = request(
            b"GET / HTTP/1.1\r\nConnection: close\r\nconnection:\tfoo ,\t Upgrade \r\n\r\n",
        );
        assert!(head.has_token("Connection", "upgrade"));
        assert!(head.has_token("Connection", "foo"));
        assert_eq!(head.header("connection"), Some("close"), "the first field");
        assert_eq!(head.query(), None);
    }

    #[test]
    fn rfc_9112_3_2_a_server_wants_exactly_one_host() {
        let check = |head: &[u8]| match parse_request(head, &Limits::default()) {
            Ok(Some((head, _))) => head.check_host(),
            other => panic!("{other:?}"),
        };
        assert_eq!(check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(()));
        assert_eq!(check(b"GET / HTTP/1.0\r\n\r\n"), Ok(()));
        assert!(matches!(check(b"GET / HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed(_))));
        let two = b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n";
        assert!(matches!(check(two), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn every_prefix_of_a_head_is_incomplete() {
        for cut in 0..UPGRADE.len() {
            assert_eq!(parse_request(&UPGRADE[..cut], &Limits::default()), Ok(None), "{cut}");
        }
    }

    #[test]
    fn rfc_6585_5_head_without_end_is_too_large_before_it_ends() {
        let limits = Limits::default();
        let mut endless = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
        endless.resize(1 << 20, b'a');
        assert_eq!(parse_request(&endless, &limits), Err(HeadError::TooLarge { limit: 16 * 1024 }));
        assert_eq!(parse_request(&endless[..limits.max_head_size - 1], &limits), Ok(None));
        assert_eq!(
            parse_request(&endless[..limits.max_head_size], &limits),
            Err(HeadError::TooLarge { limit: 16 * 1024 })
        );
        assert!(
            matches!(parse_response(&endless, &limits), Err(HeadError::Malformed(_))),
            "not a status line at all"
        );
    }

    #[test]
    fn rfc_9112_3_a_request_line_without_end_within_the_limit_is_414() {
        let limits = Limits::default();
        let mut endless = b"POST /devices/d1/messages/events?".to_vec();
        endless.resize(limits.max_head_size, b'a');
        let too_long = HeadError::UriTooLong { limit: limits.max_head_size };
        assert_eq!(parse_request(&endless, &limits), Err(too_long));
        assert_eq!(parse_request(&endless[..limits.max_head_size - 1], &limits), Ok(None));
        // A request line that ended, then headers without end: the fields' fault.
        let mut fields = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
        fields.resize(limits.max_head_size, b'a');
        assert_eq!(parse_request(&fields, &limits), Err(HeadError::TooLarge { limit: 16 * 1024 }));
    }

    #[test]
    fn head_of_exactly_the_limit_parses() {
        let limits = Limits { max_head_size: UPGRADE.len(), max_headers: 6 };
        assert!(matches!(parse_request(UPGRADE, &limits), Ok(Some((_, n))) if n == UPGRADE.len()));
        let limits = Limits { max_head_size: UPGRADE.len() - 1, max_headers: 6 };
        assert_eq!(
            parse_request(UPGRADE, &limits),
            Err(HeadError::TooLarge { limit: UPGRADE.len() - 1 })
        );
    }

    #[test]
    fn rfc_6585_5_too_many_header_fields() {
        let limits = Limits { max_head_size: 16 * 1024, max_headers: 5 };
        assert_eq!(parse_request(UPGRADE, &limits), Err(HeadError::TooManyHeaders { limit: 5 }));
        // Reported before the head ends: the sixth field is complete.
        let sixth_field_end = UPGRADE.len() - 2;
        assert_eq!(
            parse_request(&UPGRADE[..sixth_field_end], &limits),
            Err(HeadError::TooManyHeaders { limit: 5 })
        );
    }

    #[test]
    fn rfc_9110_15_6_6_other_versions_are_505() {
        let error = parse_request(b"GET / HTTP/2.0\r\n\r\n", &Limits::default());
        assert_eq!(error, Err(HeadError::Version(String::from("HTTP/2.0"))));
        assert_eq!(error.map_err(|e| e.status()), Err(505));
        let error = parse_response(b"\r\nHTTP/3 200 OK\r\n\r\n", &Limits::default());
        assert_eq!(error, Err(HeadError::Version(String::from("HTTP/3"))));
        let long = parse_request(b"GET / HTTP/1.1111111111111111111\r\n\r\n", &Limits::default());
        assert!(matches!(long, Err(HeadError::Malformed(_))), "{long:?}");
        let odd = parse_request(b"GET / HTTQ/1.1111111111111111111\r\n\r\n", &Limits::default());
        assert!(matches!(odd, Err(HeadError::Malformed(_))), "{odd:?}");
        let words = parse_request(b"NOT HTTP AT ALL\r\n\r\n", &Limits::default());
        assert!(matches!(words, Err(HeadError::Malformed(_))), "{words:?}");
    }

    #[test]
    fn rfc_9112_malformed_heads_are_400() {
        let cases: [&[u8]; 6] = [
            b"GET  / HTTP/1.1\r\n\r\n",                  // two spaces
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",    // space in a name
            b"GET / HTTP/1.1\r\nName: a\x01b\r\n\r\n",   // control byte in a value
            b"GET / HTTP/1.1\r\nName: \xff\xfe\r\n\r\n", // value not UTF-8
            b"GET / HTTP/1.1\rX\r\n\r\n",                // CR without LF
            b"G(T / HTTP/1.1\r\n\r\n",                   // method not a token
        ];
        for case in cases {
            let error = parse_request(case, &Limits::default());
            assert!(matches!(error, Err(HeadError::Malformed(_))), "{case:?}: {error:?}");
            assert_eq!(error.map_err(|e| e.status()), Err(400));
        }
        let status = parse_response(b"HTTP/1.1 20x OK\r\n\r\n", &Limits::default());
        assert!(matches!(status, Err(HeadError::Malformed(_))), "{status:?}");
    }

    #[test]
    fn response_head_parses_101() {
        let bytes = b"HTTP/1.1 101 Switching Protocols\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            \r\n\x82\x00";
        let Ok(Some((head, used))) = parse_response(bytes, &Limits::default()) else {
            panic!("unreadable");
        };
        assert_eq!(used, bytes.len() - 2);
        assert_eq!((head.minor_version, head.status), (1, 101));
        assert_eq!(head.reason, "Switching Protocols");
        assert_eq!(head.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(head.has_token("Upgrade", "WebSocket"));
    }

    #[test]
    fn response_without_reason_or_with_non_ascii_reason_reads_empty() {
        for bytes in [&b"HTTP/1.0 204\r\n\r\n"[..], b"HTTP/1.1 204 N\xf6 Content\r\n\r\n"] {
            let Ok(Some((head, _))) = parse_response(bytes, &Limits::default()) else {
                panic!("unreadable: {bytes:?}");
            };
            assert_eq!((head.status, head.reason.as_str()), (204, ""));
        }
    }

    #[test]
    fn encode_writes_the_wire_form() {
        let head = RequestHead {
            method: String::from("GET"),
            target: String::from("/x?y=1"),
            minor_version: 1,
            headers: vec![Header::new("Host", "h"), Header::new("Empty", "")],
        };
        let mut out = BytesMut::new();
        head.encode(&mut out);
        assert_eq!(&out[..], b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\nEmpty: \r\n\r\n");
        let head = ResponseHead {
            minor_version: 0,
            status: 7,
            reason: String::new(),
            headers: Vec::new(),
        };
        let mut out = BytesMut::new();
        head.encode(&mut out);
        assert_eq!(&out[..], b"HTTP/1.0 007 \r\n\r\n");
    }

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
    }

    /// Visible ASCII and inner spaces or tabs: what a value is once httparse has
    /// trimmed it.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[!-~]([ \t!-~]{0,20}[!-~])?"]
    }

    fn headers() -> impl Strategy<Value = Vec<Header>> {
        vec_of((token(), value()).prop_map(|(n, v)| Header::new(n, v)), 0..8)
    }

    proptest! {
        #[test]
        fn request_head_round_trips(
            method in token(),
            target in "[!-~]{1,40}",
            minor_version in 0u8..=1,
            headers in headers(),
            tail in vec_of(any::<u8>(), 0..8),
        ) {
            let head = RequestHead { method, target, minor_version, headers };
            let mut out = BytesMut::new();
            head.encode(&mut out);
            let len = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(parse_request(&out, &Limits::default()), Ok(Some((head, len))));
        }

        #[test]
        fn response_head_round_trips(
            minor_version in 0u8..=1,
            status in 0u16..=999,
            reason in value(),
            headers in headers(),
            tail in vec_of(any::<u8>(), 0..8),
        ) {
            let head = ResponseHead { minor_version, status, reason, headers };
            let mut out = BytesMut::new();
            head.encode(&mut out);
            let len = out.len();
            out.extend_from_slice(&tail);
            prop_assert_eq!(parse_response(&out, &Limits::default()), Ok(Some((head, len))));
        }

        #[test]
        fn any_bytes_within_limits_or_refused(
            bytes in vec_of(any::<u8>(), 0..200),
            max_head_size in 0usize..64,
        ) {
            let limits = Limits { max_head_size, max_headers: 4 };
            for result in [
                parse_request(&bytes, &limits).map(|r| r.map(|(_, n)| n)),
                parse_response(&bytes, &limits).map(|r| r.map(|(_, n)| n)),
            ] {
                match result {
                    Ok(None) => prop_assert!(bytes.len() < max_head_size),
                    Ok(Some(used)) => prop_assert!(used <= max_head_size.min(bytes.len())),
                    Err(e) => prop_assert!([400, 414, 431, 505].contains(&e.status()), "{}", e.to_string()),
                }
            }
        }
    }
}
