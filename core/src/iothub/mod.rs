//! IoT Hub rules shared by every protocol (spec file §2, §3, §7), and the twin and
//! direct-method documents MQTT and AMQP carry (§4.5–§4.6, §5.6–§5.7).

pub mod c2d;
pub mod connection_string;
pub mod error;
pub mod identity;
pub mod message;
pub mod method;
pub mod sas;
pub mod twin;

pub use c2d::{Ack, Disposition, InvalidLockToken, LockToken};
pub use connection_string::{Authentication, ConnectionString, ConnectionStringError};
pub use error::ErrorCode;
pub use identity::Identity;
pub use message::{Message, Properties};
pub use method::{MethodRequest, MethodResponse};
pub use sas::{SasError, SasToken, renewal_time};
pub use twin::{Twin, TwinError, TwinPatch, TwinSection};

#[cfg(any(feature = "mqtt", feature = "amqp", feature = "http"))]
use alloc::borrow::Cow;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// What IoT Hub's strings keep unescaped when percent-encoded: RFC 3986
/// "unreserved", `A-Z a-z 0-9 - . _ ~`, everything else as `%XX` in upper-case hex.
/// It is the Node SDK's `encodeUriComponentStrict` for SAS resources (spec file §2.3)
/// and the emulator guidance for property bags (§4.2).
pub(crate) const UNRESERVED: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Decodes `%XX` escapes in `s`; every other character, `+` included, is literal.
///
/// Returns `None` when a `%` is not followed by two hex digits or the decoded bytes
/// are not UTF-8. Borrows when there is nothing to decode.
#[cfg(any(feature = "mqtt", feature = "amqp", feature = "http"))]
pub(crate) fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    // `percent_decode_str` passes broken escapes through as text; a peer that sends
    // one has a broken encoder, so refuse instead of guessing.
    let escapes_ok = s.split('%').skip(1).all(|after| {
        after.as_bytes().get(..2).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return None;
    }
    percent_encoding::percent_decode_str(s).decode_utf8().ok()
}
