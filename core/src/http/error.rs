//! What can be wrong with a head ([`HeadError`]) and the answer a server writes
//! before closing ([`error_response`]).

use alloc::string::{String, ToString};
use alloc::vec;
use bytes::{Bytes, BytesMut};

use super::head::{Header, ResponseHead};

/// Why bytes from the peer are not an acceptable HTTP/1.1 head.
///
/// Each kind has the status a server answers it with ([`HeadError::status`]); the
/// server then closes the connection, since it cannot tell where the next message
/// would start (RFC 9112 §2.2, §9.6).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The head breaks the HTTP/1.1 grammar (RFC 9112 §2–§5) or holds a header
    /// value that is not UTF-8; the text names the part.
    #[error("malformed HTTP head: {0}")]
    Malformed(&'static str),
    /// The head has not ended within [`Limits::max_head_size`] bytes; reported as
    /// soon as that many bytes have arrived, whole head or not (RFC 6585 §5).
    ///
    /// [`Limits::max_head_size`]: super::Limits::max_head_size
    #[error("the HTTP head is longer than {limit} bytes (RFC 6585 §5)")]
    TooLarge {
        /// The configured limit, bytes.
        limit: usize,
    },
    /// The request line has not ended within [`Limits::max_head_size`] bytes: its
    /// target, the one part without a bound of its own, is longer than the server
    /// parses, and "a server ... MUST respond with a 414 (URI Too Long)" (RFC 9112
    /// §3).
    ///
    /// [`Limits::max_head_size`]: super::Limits::max_head_size
    #[error("the request line is longer than {limit} bytes (RFC 9112 §3)")]
    UriTooLong {
        /// The configured limit, bytes.
        limit: usize,
    },
    /// The head has more than [`Limits::max_headers`] header fields (RFC 6585 §5).
    ///
    /// [`Limits::max_headers`]: super::Limits::max_headers
    #[error("the HTTP head has more than {limit} header fields (RFC 6585 §5)")]
    TooManyHeaders {
        /// The configured limit, header fields.
        limit: usize,
    },
    /// The version is not `HTTP/1.0` or `HTTP/1.1` (RFC 9112 §2.3, RFC 9110 §15.6.6);
    /// the text is what the peer wrote there, at most 16 bytes of it, lossily decoded.
    #[error("HTTP version {0:?} is not supported, only HTTP/1.0 and HTTP/1.1 (RFC 9110 §15.6.6)")]
    Version(String),
}

impl HeadError {
    /// The status a server answers with: 400 Bad Request for a malformed head,
    /// 414 URI Too Long for a request line over the limit (RFC 9112 §3), 431
    /// Request Header Fields Too Large for a head over a limit (RFC 6585 §5), 505
    /// HTTP Version Not Supported for another version (RFC 9110 §15.6.6).
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Malformed(_) => 400,
            HeadError::UriTooLong { .. } => 414,
            HeadError::TooLarge { .. } | HeadError::TooManyHeaders { .. } => 431,
            HeadError::Version(_) => 505,
        }
    }
}

/// The reason phrase of `status` as RFC 9110 §15 (RFC 6585 for 429 and 431) names
/// it, for the statuses hubwire sends; empty for others, which the grammar allows
/// (RFC 9112 §4).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A whole HTTP/1.1 response that refuses a request: the status line, then
/// `Connection: close` (the server closes after writing it, RFC 9112 §9.6),
/// `Content-Length`, `Content-Type: text/plain; charset=utf-8`, then `extra_headers`
/// in order, and `body` as the text a person reads.
///
/// The caller keeps `reason`, the header names and values free of CR and LF: they
/// are written as given.
pub fn error_response(
    status: u16,
    reason: &str,
    extra_headers: &[(&str, &str)],
    body: &str,
) -> Bytes {
    let mut headers = vec![
        Header::new("Connection", "close"),
        Header::new("Content-Length", body.len().to_string()),
        Header::new("Content-Type", "text/plain; charset=utf-8"),
    ];
    headers.extend(extra_headers.iter().map(|&(name, value)| Header::new(name, value)));
    let head = ResponseHead { minor_version: 1, status, reason: String::from(reason), headers };
    let mut out = BytesMut::new();
    head.encode(&mut out);
    out.extend_from_slice(body.as_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, parse_response};

    #[test]
    fn error_response_reads_back_with_its_body_length() {
        let response = error_response(
            426,
            reason_phrase(426),
            &[("Sec-WebSocket-Version", "13")],
            "Sec-WebSocket-Version 8 is not 13",
        );
        let Ok(Some((head, used))) = parse_response(&response, &Limits::default()) else {
            panic!("unreadable: {response:?}");
        };
        assert_eq!(head.status, 426);
        assert_eq!(head.reason, "Upgrade Required");
        assert_eq!(head.minor_version, 1);
        assert!(head.has_token("connection", "close"));
        assert_eq!(head.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(head.header("sec-websocket-version"), Some("13"));
        let body = &response[used..];
        assert_eq!(body, b"Sec-WebSocket-Version 8 is not 13");
        assert_eq!(head.header("Content-Length"), Some(body.len().to_string().as_str()));
    }

    #[test]
    fn error_response_is_byte_exact() {
        let response = error_response(404, "Not Found", &[], "no");
        assert_eq!(
            &response[..],
            b"HTTP/1.1 404 Not Found\r\n\
              Connection: close\r\n\
              Content-Length: 2\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              \r\n\
              no"
        );
    }

    #[test]
    fn statuses_follow_rfc_6585_and_9110() {
        assert_eq!(HeadError::Malformed("x").status(), 400);
        assert_eq!(HeadError::UriTooLong { limit: 1 }.status(), 414);
        assert_eq!(HeadError::TooLarge { limit: 1 }.status(), 431);
        assert_eq!(HeadError::TooManyHeaders { limit: 1 }.status(), 431);
        assert_eq!(HeadError::Version(String::from("HTTP/2.0")).status(), 505);
        for status in [400, 414, 431, 505] {
            assert!(!reason_phrase(status).is_empty());
        }
        assert_eq!(reason_phrase(299), "");
    }
}
