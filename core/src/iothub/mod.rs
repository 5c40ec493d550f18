//! IoT Hub rules shared by every protocol (spec file §2, §3, §7).

pub mod c2d;
pub mod connection_string;
pub mod error;
pub mod identity;
pub mod message;
pub mod sas;

pub use c2d::{Ack, Disposition, LockToken};
pub use connection_string::{Authentication, ConnectionString, ConnectionStringError};
pub use error::ErrorCode;
pub use identity::Identity;
pub use message::{Message, Properties};
pub use sas::{SasError, SasToken};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// What IoT Hub's strings keep unescaped when percent-encoded: RFC 3986
/// "unreserved", `A-Z a-z 0-9 - . _ ~`, everything else as `%XX` in upper-case hex.
/// It is the Node SDK's `encodeUriComponentStrict` for SAS resources (spec file §2.3)
/// and the emulator guidance for property bags (§4.2).
pub(crate) const UNRESERVED: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
