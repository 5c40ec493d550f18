//! [`MessageError`]: why bytes are not an AMQP message (part 3 §3.2), and the
//! [`FieldError`] a message section's or SASL frame's field reader gives.

use crate::amqp::field::Context;
use crate::amqp::types::{DecodeError, Descriptor};
use crate::utf8::Utf8Bytes;

/// Why a payload is not a message of part 3 §3.2.
///
/// Over a link the answer is to reject that delivery (`amqp:decode-error`), not to
/// close the connection: the frame around it was sound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// A section's bytes are not an AMQP value, or exceed the limits.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A section is not a described value (§3.2: every section is one).
    #[error("§3.2 a section is a described value, found {found}")]
    NotASection {
        /// The type found.
        found: &'static str,
    },
    /// A descriptor that names no section of §3.2.
    #[error("§3.2 unknown section descriptor {descriptor:?}")]
    UnknownSection {
        /// The descriptor.
        descriptor: Descriptor,
    },
    /// A section after one §3.2 puts after it (e.g. a header after the properties).
    #[error("§3.2 the {section} section comes after the {after}")]
    OutOfOrder {
        /// The section found.
        section: &'static str,
        /// The section it followed.
        after: &'static str,
    },
    /// A section §3.2 allows once appears twice.
    #[error("§3.2 the {section} section appears twice")]
    Duplicate {
        /// The section.
        section: &'static str,
    },
    /// Body sections of two forms, or two amqp-value sections (§3.2: one or more
    /// data sections, one or more amqp-sequence sections, or a single amqp-value).
    #[error(
        "§3.2 a body is data sections, amqp-sequence sections or one amqp-value: found {section} after {body}"
    )]
    MixedBody {
        /// The body section found.
        section: &'static str,
        /// The body form already read.
        body: &'static str,
    },
    /// A section's value has the wrong type, or one of its fields does.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// An annotation key is neither a symbol nor a ulong (§3.2.10).
    #[error("§3.2.10 annotation keys are symbols or ulongs, found {found}")]
    AnnotationKey {
        /// The key's type.
        found: &'static str,
    },
    /// An application property key is not a string (§3.2.5).
    #[error("§3.2.5 application property keys are strings, found {found}")]
    ApplicationPropertyKey {
        /// The key's type.
        found: &'static str,
    },
    /// An application property value is a list, map, array or described value
    /// (§3.2.5: simple types only).
    #[error("§3.2.5 application property {key:?} has a {found} value: simple types only")]
    ApplicationPropertyValue {
        /// The key.
        key: Utf8Bytes,
        /// The value's type.
        found: &'static str,
    },
    /// A map key appears twice (§1.6.23: keys are distinct).
    #[error("§1.6.23 the {section} map repeats a key")]
    DuplicateKey {
        /// The section.
        section: &'static str,
    },
    /// A batched message (spec file §5.4) whose body is not data sections.
    #[error("a batch's body is data sections, found {found}")]
    BatchBody {
        /// The body form found.
        found: &'static str,
    },
}

/// A field of a composite (a message section or a SASL frame) holds a value of the
/// wrong type, or a mandatory field is null.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("§{section} {field}: expected {expected}, found {found}")]
pub struct FieldError {
    /// The section defining the composite, e.g. `3.2.4 properties`.
    pub section: &'static str,
    /// The field's name.
    pub field: &'static str,
    /// The type the standard gives it.
    pub expected: &'static str,
    /// The type found (`null` for a missing mandatory field).
    pub found: &'static str,
}

/// The section of a message (or the SASL frame) whose fields are read, e.g.
/// `3.2.1 header`: the reader's context, which makes its errors [`FieldError`]s.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Section(pub(crate) &'static str);

impl Context for Section {
    type Error = FieldError;
    fn wrong_type(
        self,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    ) -> FieldError {
        FieldError { section: self.0, field, expected, found }
    }
    fn missing(self, field: &'static str, expected: &'static str) -> FieldError {
        FieldError { section: self.0, field, expected, found: "null" }
    }
}
