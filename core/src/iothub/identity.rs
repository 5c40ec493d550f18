//! Device and module identities (spec file §2.1).

use alloc::string::String;
use core::fmt;

/// Who a connection authenticated as: a device, or a module of a device.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Identity {
    /// The device id: case-sensitive, at most 128 characters.
    pub device_id: String,
    /// The module id for a module identity.
    pub module_id: Option<String>,
}

impl Identity {
    /// A device identity.
    pub fn device(id: impl Into<String>) -> Self {
        Identity { device_id: id.into(), module_id: None }
    }

    /// Whether `id` is a valid device or module id: 1 to 128 ASCII alphanumerics or
    /// `- . + % _ # * ? ! ( ) , = @ $ '` (spec file §2.1, DOC-REG).
    pub fn is_valid_id(id: &str) -> bool {
        (1..=128).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.+%_#*?!(),=@$'".contains(&b))
    }

    /// The id a path segment (an MQTT topic level, an AMQP address segment) names:
    /// percent-decoded (Python's and Node's form) when that gives a valid id, else
    /// the segment as it is (the raw form of the SDKs that insert ids unescaped),
    /// else `None` (spec file §2.1). A raw id that happens to contain a valid escape
    /// (`a%41`) therefore reads as its decoded form.
    #[cfg(any(feature = "mqtt", feature = "amqp", feature = "http"))]
    pub(crate) fn id_in_segment(segment: &str) -> Option<String> {
        match super::percent_decode(segment) {
            Some(id) if Identity::is_valid_id(&id) => Some(id.into_owned()),
            _ if Identity::is_valid_id(segment) => Some(segment.into()),
            _ => None,
        }
    }
}

impl fmt::Display for Identity {
    /// `device` or `device/module`, the form of an MQTT client identifier.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.module_id {
            Some(m) => write!(f, "{}/{}", self.device_id, m),
            None => f.write_str(&self.device_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_registry_character_set() {
        assert!(Identity::is_valid_id("device1"));
        assert!(Identity::is_valid_id("a-b.c+d%e_f#g*h?i!j(k)l,m=n@o$p'q"));
        assert!(!Identity::is_valid_id(""));
        assert!(!Identity::is_valid_id("a/b"));
        assert!(!Identity::is_valid_id("a b"));
        assert!(!Identity::is_valid_id(&"x".repeat(129)));
    }

    #[test]
    fn displays_as_a_client_identifier() {
        let mut id = Identity::device("device1");
        assert_eq!(id.to_string(), "device1");
        id.module_id = Some("module1".into());
        assert_eq!(id.to_string(), "device1/module1");
    }
}
