//! Cloud-to-device vocabulary shared by the device and the hub (spec file §7):
//! lock tokens, dispositions and feedback requests.

use core::fmt;
use core::num::NonZeroU16;

/// How a device settles a C2D message it received (spec file §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Done with it: the hub removes it (MQTT PUBACK, AMQP `accepted`, HTTP DELETE).
    Complete,
    /// Refused: the hub dead-letters it (AMQP `rejected`, HTTP DELETE `?reject`).
    Reject,
    /// Give it back: the hub requeues it and counts a delivery (AMQP `released`,
    /// HTTP POST `/abandon`).
    Abandon,
}

impl Disposition {
    /// Lower-case name, as logs and the hub's JSON lines print it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Disposition::Complete => "complete",
            Disposition::Reject => "reject",
            Disposition::Abandon => "abandon",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The feedback a C2D sender asks for with `iothub-ack` (spec file §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Ack {
    /// No feedback (the default).
    #[default]
    None,
    /// Feedback when the device completes the message.
    Positive,
    /// Feedback when the message is dead-lettered (rejected, expired, or delivered
    /// too often).
    Negative,
    /// Both.
    Full,
}

impl Ack {
    /// Parses the `iothub-ack` value (`none`, `positive`, `negative`, `full`).
    pub fn parse(s: &str) -> Option<Ack> {
        match s {
            "none" => Some(Ack::None),
            "positive" => Some(Ack::Positive),
            "negative" => Some(Ack::Negative),
            "full" => Some(Ack::Full),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Ack::None => "none",
            Ack::Positive => "positive",
            Ack::Negative => "negative",
            Ack::Full => "full",
        }
    }

    /// Whether a completion produces a feedback record.
    pub const fn on_success(self) -> bool {
        matches!(self, Ack::Positive | Ack::Full)
    }

    /// Whether a dead-lettering produces a feedback record.
    pub const fn on_failure(self) -> bool {
        matches!(self, Ack::Negative | Ack::Full)
    }
}

/// Names one delivery of a C2D message so the device can settle it.
///
/// Over MQTT it is the PUBLISH packet identifier (the PUBACK settles it); the hub's
/// queue locks a message under a GUID, which AMQP carries as the delivery tag and
/// HTTP as the ETag (spec file §5.5, §6.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockToken(Repr);

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    PacketId(NonZeroU16),
    Guid([u8; 16]),
}

impl LockToken {
    /// The lock of an MQTT QoS 1 delivery.
    pub const fn from_packet_id(id: NonZeroU16) -> Self {
        LockToken(Repr::PacketId(id))
    }

    /// A queue lock: a GUID in RFC 4122 byte order.
    pub const fn from_guid(bytes: [u8; 16]) -> Self {
        LockToken(Repr::Guid(bytes))
    }

    /// The MQTT packet identifier, if this is an MQTT delivery.
    pub const fn packet_id(&self) -> Option<NonZeroU16> {
        match self.0 {
            Repr::PacketId(id) => Some(id),
            Repr::Guid(_) => None,
        }
    }

    /// The GUID, if this is a queue lock.
    pub const fn guid(&self) -> Option<[u8; 16]> {
        match self.0 {
            Repr::Guid(g) => Some(g),
            Repr::PacketId(_) => None,
        }
    }
}

impl fmt::Display for LockToken {
    /// A packet identifier prints as its number; a GUID as
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::PacketId(id) => write!(f, "{id}"),
            Repr::Guid(g) => {
                for (i, b) in g.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A string that is not a GUID in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a lock token (a GUID, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
pub struct InvalidLockToken;

impl core::str::FromStr for LockToken {
    type Err = InvalidLockToken;

    /// Reads a queue lock as HTTP carries it in the ETag and in settlement paths
    /// (spec file §6.4, §6.5): a GUID in hex, either case, with its four dashes.
    fn from_str(s: &str) -> Result<Self, InvalidLockToken> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes.get(i) != Some(&b'-')) {
            return Err(InvalidLockToken);
        }
        let mut digits = bytes.iter().filter(|&&b| b != b'-');
        let mut guid = [0u8; 16];
        for byte in guid.iter_mut() {
            let mut nibble =
                || digits.next().and_then(|&d| char::from(d).to_digit(16)).ok_or(InvalidLockToken);
            let high = nibble()?;
            let low = nibble()?;
            // Both digits are below 16, so the value fits a byte.
            *byte = u8::try_from(high * 16 + low).map_err(|_| InvalidLockToken)?;
        }
        Ok(LockToken::from_guid(guid))
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockToken({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_prints_in_rfc4122_form() {
        // TV-18: 6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f in RFC 4122 byte order.
        let g = [
            0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d,
            0x9e, 0x0f,
        ];
        assert_eq!(LockToken::from_guid(g).to_string(), "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f");
    }

    #[test]
    fn guid_reads_back_in_either_case_and_nothing_else_does() {
        let text = "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f";
        let lock: LockToken = text.parse().unwrap();
        assert_eq!(lock.to_string(), text);
        assert_eq!(text.to_uppercase().parse::<LockToken>(), Ok(lock));
        for bad in [
            "",
            "6a1f0c2e1b2c4d3e8f405a6b7c8d9e0f",
            "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0",
            "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0g",
            "6a1f0c2e-1b2c-4d3e-8f40+5a6b7c8d9e0f",
            "6a1f0c2e-1b2c-4d3e-8f4-05a6b7c8d9e0f",
            "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0\u{e9}",
        ] {
            assert_eq!(bad.parse::<LockToken>(), Err(InvalidLockToken), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_guid_round_trips_through_text(guid: [u8; 16]) {
            let lock = LockToken::from_guid(guid);
            proptest::prop_assert_eq!(lock.to_string().parse::<LockToken>(), Ok(lock));
        }
    }

    #[test]
    fn ack_round_trips_and_knows_when_to_report() {
        for a in [Ack::None, Ack::Positive, Ack::Negative, Ack::Full] {
            assert_eq!(Ack::parse(a.as_str()), Some(a));
        }
        assert!(Ack::Full.on_success() && Ack::Full.on_failure());
        assert!(!Ack::Negative.on_success() && !Ack::Positive.on_failure());
        assert_eq!(Ack::parse("FULL"), None);
    }
}
