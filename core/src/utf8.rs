//! [`Utf8Bytes`]: text that stays a slice of the receive buffer.

use alloc::string::String;
use bytes::Bytes;
use core::{fmt, ops::Deref, str};

/// A UTF-8 string held as [`Bytes`], so decoded topic names and client ids share the
/// receive buffer instead of being copied. The bytes are checked once, on creation.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Checks `bytes` and wraps them. Returns the bytes back if they are not UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, Bytes> {
        match str::from_utf8(&bytes) {
            Ok(_) => Ok(Utf8Bytes(bytes)),
            Err(_) => Err(bytes),
        }
    }

    /// A string known at compile time.
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or inherits UTF-8 validity, and `Bytes`
        // is immutable.
        #[allow(unsafe_code)]
        unsafe {
            str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_utf8_and_keeps_valid_text() {
        assert!(Utf8Bytes::try_from_bytes(Bytes::from_static(b"\xff")).is_err());
        let s = Utf8Bytes::try_from_bytes(Bytes::from_static("°C".as_bytes())).unwrap();
        assert_eq!(s, "°C");
        assert_eq!(s.len(), 3);
    }
}
