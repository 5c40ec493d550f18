//! What can go wrong in a TLS connection or in loading what it trusts, worded so that a
//! user can act on it.

use std::path::PathBuf;

use chrono::DateTime;
use rustls::{AlertDescription, CertificateError, PeerIncompatible};
use rustls_pki_types::UnixTime;

/// A TLS failure: a connection's handshake or records, or its configuration.
///
/// Connection errors are fatal: the alert rustls sends for them, if any, waits in
/// [`Tls::poll_output`](super::Tls::poll_output), and the connection is closed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate chain leads to no CA this client trusts (RFC 8446 §6.2
    /// `unknown_ca`).
    #[error(
        "the server's certificate is not signed by a trusted CA; pass the hub's CA with --ca FILE \
         (`hubwire hub` prints the path of its ca.pem)"
    )]
    UntrustedIssuer,
    /// The server's certificate is past its `notAfter` time (RFC 5280 §4.1.2.5).
    #[error(
        "the server's certificate has expired ({}); the hub needs a new certificate",
        validity("not after", *.not_after, *.now)
    )]
    Expired {
        /// The certificate's `notAfter`, when rustls reported it.
        not_after: Option<UnixTime>,
        /// This side's clock at the check, when rustls reported it.
        now: Option<UnixTime>,
    },
    /// The server's certificate is before its `notBefore` time (RFC 5280 §4.1.2.5).
    #[error(
        "the server's certificate is not valid yet ({}); check the clocks of this machine and the hub's",
        validity("not before", *.not_before, *.now)
    )]
    NotYetValid {
        /// The certificate's `notBefore`, when rustls reported it.
        not_before: Option<UnixTime>,
        /// This side's clock at the check, when rustls reported it.
        now: Option<UnixTime>,
    },
    /// The server's certificate does not name the host this client connected to
    /// (RFC 6125 §6; an IP address must be an IP SAN, RFC 5280 §4.2.1.6).
    #[error(
        "the server's certificate is not valid for {name:?}: the hub's certificate must list \
         {name:?} among its names{}",
        presented_names(.presented)
    )]
    NameMismatch {
        /// The name this client connected to.
        name: String,
        /// The names the certificate lists (empty when rustls did not report them).
        presented: Vec<String>,
    },
    /// Another problem with the peer's certificate (bad encoding, signature, purpose…).
    #[error("the peer's certificate was rejected: {0}")]
    BadCertificate(CertificateError),
    /// The peer ended the handshake with a fatal alert (RFC 8446 §6.2).
    #[error("the peer ended the connection with the TLS alert {alert:?}{}", alert_hint(*.alert))]
    AlertReceived {
        /// The alert the peer sent.
        alert: AlertDescription,
    },
    /// The peer's first bytes are not a TLS record: it speaks plain TCP (MQTT, HTTP…) on a
    /// TLS port, or this side speaks TLS to a plain port.
    #[error("not TLS: the peer sent {} — plain TCP on a TLS port?", hex_and_ascii(.first_bytes))]
    NotTls {
        /// Up to the first 16 bytes the peer sent.
        first_bytes: Vec<u8>,
    },
    /// The two sides share no TLS version, cipher suite or key exchange.
    #[error(
        "TLS handshake failed: the peer offers nothing this side accepts ({0:?}); hubwire speaks \
         TLS 1.2 and 1.3"
    )]
    HandshakeFailure(PeerIncompatible),
    /// The peer broke the TLS protocol (a malformed or undecryptable record, an unexpected
    /// message).
    #[error("TLS protocol error from the peer: {0}")]
    Protocol(rustls::Error),
    /// The peer sent a handshake message that, with its record headers, overflows the
    /// 64 KiB rustls buffers for one (messages longer still and records over 2^14 + 2048
    /// bytes are [`TlsError::Protocol`] errors). No alert is sent for it.
    #[error("the peer sent an oversized TLS message")]
    Oversized,
    /// A client was asked to connect to something that is neither a DNS name nor an IP address.
    #[error("{0:?} is neither a DNS name nor an IP address")]
    InvalidServerName(String),
    /// Plain bytes were sent after [`Tls::close`](super::Tls::close) or a fatal error.
    #[error("the TLS connection is closed; nothing more can be sent")]
    Closed,
    /// A CA file given to trust could not be used.
    #[error("CA file {}: {reason}", .path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing to trust: no platform roots loaded and no CA file given.
    #[error(
        "no trusted CA certificates: the platform offers none here; pass the hub's CA with --ca FILE"
    )]
    NoTrustedRoots,
    /// A certificate chain file could not be used.
    #[error("certificate file {}: {reason}", .path.display())]
    CertificateFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A private key file could not be used.
    #[error("key file {}: {reason}", .path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file does not hold the private key of a certificate file's first certificate.
    #[error("key file {} does not belong to the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused a configuration (an unusable key, say).
    #[error("TLS configuration refused: {0}")]
    Config(rustls::Error),
}

impl TlsError {
    /// Maps an error rustls reports on a connection. `first_bytes` are the first bytes the
    /// peer sent: when they are not the start of a TLS record, whatever rustls made of them,
    /// the peer does not speak TLS.
    pub(super) fn from_connection(err: rustls::Error, first_bytes: &[u8]) -> TlsError {
        if !first_bytes.is_empty() && !looks_like_tls_record(first_bytes) {
            return TlsError::NotTls { first_bytes: first_bytes.to_vec() };
        }
        match err {
            rustls::Error::InvalidCertificate(cert) => TlsError::from_certificate(cert),
            rustls::Error::AlertReceived(alert) => TlsError::AlertReceived { alert },
            rustls::Error::PeerIncompatible(why) => TlsError::HandshakeFailure(why),
            other => TlsError::Protocol(other),
        }
    }

    fn from_certificate(err: CertificateError) -> TlsError {
        match err {
            CertificateError::UnknownIssuer => TlsError::UntrustedIssuer,
            CertificateError::Expired => TlsError::Expired { not_after: None, now: None },
            CertificateError::ExpiredContext { time, not_after } => {
                TlsError::Expired { not_after: Some(not_after), now: Some(time) }
            }
            CertificateError::NotValidYet => TlsError::NotYetValid { not_before: None, now: None },
            CertificateError::NotValidYetContext { time, not_before } => {
                TlsError::NotYetValid { not_before: Some(not_before), now: Some(time) }
            }
            CertificateError::NotValidForNameContext { expected, presented } => {
                TlsError::NameMismatch {
                    name: expected.to_str().into_owned(),
                    presented: presented.into_iter().map(bare_name).collect(),
                }
            }
            other => TlsError::BadCertificate(other),
        }
    }
}

/// How many of the peer's first bytes [`TlsError::NotTls`] keeps.
pub(super) const FIRST_BYTES_KEPT: usize = 16;

/// A TLS record starts with a content type (RFC 8446 §5.1: change_cipher_spec 20, alert 21,
/// handshake 22, application_data 23; heartbeat 24, RFC 6520) and a legacy version whose
/// first byte is 3 (SSL 3.0 and every TLS version).
fn looks_like_tls_record(first_bytes: &[u8]) -> bool {
    let content_type_ok = first_bytes.first().is_some_and(|t| (20..=24).contains(t));
    let version_ok = first_bytes.get(1).is_none_or(|major| *major == 3);
    content_type_ok && version_ok
}

/// webpki reports a certificate's names in their debug form, `DnsName("localhost")` or
/// `IpAddress(127.0.0.1)`; a user wants the name itself.
fn bare_name(presented: String) -> String {
    let bare = presented
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| presented.strip_prefix("IpAddress(").and_then(|s| s.strip_suffix(')')));
    match bare {
        Some(name) => name.to_owned(),
        None => presented,
    }
}

fn validity(label: &str, edge: Option<UnixTime>, now: Option<UnixTime>) -> String {
    match (edge, now) {
        (Some(edge), Some(now)) => format!("{label} {}, now {}", date(edge), date(now)),
        (Some(edge), None) => format!("{label} {}", date(edge)),
        _ => "per this machine's clock".to_owned(),
    }
}

/// `t` as a UTC date and time, `2025-01-01 00:00:00 UTC`.
pub(super) fn date(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .map_or_else(|| format!("{} s after 1970", t.as_secs()), |d| d.to_string())
}

fn presented_names(names: &[String]) -> String {
    if names.is_empty() { String::new() } else { format!(" (it lists {})", names.join(", ")) }
}

fn alert_hint(alert: AlertDescription) -> &'static str {
    match alert {
        AlertDescription::UnknownCA
        | AlertDescription::BadCertificate
        | AlertDescription::CertificateUnknown => {
            ": it does not trust our certificate (a device must be given the hub's CA, its ca.pem)"
        }
        AlertDescription::CertificateExpired => ": it says our certificate has expired",
        AlertDescription::HandshakeFailure
        | AlertDescription::ProtocolVersion
        | AlertDescription::InsufficientSecurity => {
            ": no TLS version or cipher suite in common (hubwire speaks TLS 1.2 and 1.3)"
        }
        _ => "",
    }
}

/// `10 1a 00 04 4d 51 54 54 ("....MQTT")`: hex, then the printable ASCII in quotes.
fn hex_and_ascii(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let ascii: String = bytes
        .iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b) } else { '.' })
        .collect();
    format!("{} ({ascii:?})", hex.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_connect_is_not_a_tls_record() {
        // 0x10 CONNECT, remaining length 0x1a, protocol name length 4, "MQTT".
        assert!(!looks_like_tls_record(&[0x10, 0x1a, 0x00, 0x04, b'M']));
        // An HTTP response: 'H' is no content type.
        assert!(!looks_like_tls_record(b"HTTP/1.1 400"));
    }

    #[test]
    fn client_hello_is_a_tls_record() {
        // 0x16 handshake, legacy version 3.1, length 0x0200.
        assert!(looks_like_tls_record(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        // One byte so far: the content type alone decides.
        assert!(looks_like_tls_record(&[0x16]));
        // A handshake content type with a version that is not 3.x.
        assert!(!looks_like_tls_record(&[0x16, 0x10]));
    }

    #[test]
    fn not_tls_message_shows_hex_and_ascii() {
        let err =
            TlsError::NotTls { first_bytes: vec![0x10, 0x1a, 0x00, 0x04, b'M', b'Q', b'T', b'T'] };
        assert_eq!(
            err.to_string(),
            "not TLS: the peer sent 10 1a 00 04 4d 51 54 54 (\"....MQTT\") — plain TCP on a TLS port?"
        );
    }

    #[test]
    fn presented_names_lose_their_debug_wrapping() {
        assert_eq!(bare_name("DnsName(\"localhost\")".to_owned()), "localhost");
        assert_eq!(bare_name("IpAddress(127.0.0.1)".to_owned()), "127.0.0.1");
        assert_eq!(bare_name("IpAddress(::1)".to_owned()), "::1");
        assert_eq!(bare_name("DirectoryName".to_owned()), "DirectoryName");
    }

    #[test]
    fn expiry_message_shows_dates() {
        let err = TlsError::Expired {
            not_after: Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                1_700_000_000,
            ))),
            now: Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000))),
        };
        assert_eq!(
            err.to_string(),
            "the server's certificate has expired (not after 2023-11-14 22:13:20 UTC, now \
             2027-01-15 08:00:00 UTC); the hub needs a new certificate"
        );
    }
}
