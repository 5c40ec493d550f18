//! Composite values (§1.4): a descriptor and a list of fields, the shape of every
//! performative, delivery state and message section.

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::decode::decode;
use super::described::{Described, Descriptor};
use super::encode::{Form, encode_described_list};
use super::error::{DecodeError, EncodeError};
use super::limits::Limits;
use super::value::Value;

/// A composite value (§1.4): a described list whose fields are read by position.
///
/// §1.4 lets a sender truncate the list where only nulls would follow, so trailing
/// nulls carry no information: [`Composite::new`] and every decoder drop them, the
/// encoder never writes them, and [`Composite::field`] reads a missing field as
/// null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composite {
    /// What the composite is (e.g. `0x10` for `open`, part 2 §2.7.1).
    pub descriptor: Descriptor,
    fields: Vec<Value>,
}

/// What a field past the end of a truncated list reads as.
static NULL: Value = Value::Null;

impl Composite {
    /// A composite of `fields`, without their trailing nulls.
    pub fn new(descriptor: impl Into<Descriptor>, mut fields: Vec<Value>) -> Composite {
        while fields.last().is_some_and(Value::is_null) {
            fields.pop();
        }
        Composite { descriptor: descriptor.into(), fields }
    }

    /// The field at `index` (0 is the first); null when the list ends before it.
    pub fn field(&self, index: usize) -> &Value {
        self.fields.get(index).unwrap_or(&NULL)
    }

    /// The fields up to the last non-null one.
    pub fn fields(&self) -> &[Value] {
        &self.fields
    }

    /// Takes the fields, up to the last non-null one.
    pub fn into_fields(self) -> Vec<Value> {
        self.fields
    }

    /// Reads a decoded value as a composite.
    ///
    /// # Errors
    ///
    /// [`DecodeError::NotComposite`]: `value` is not described, or describes
    /// something other than a list.
    pub fn from_value(value: Value) -> Result<Composite, DecodeError> {
        let Value::Described(described) = value else {
            return Err(DecodeError::NotComposite { found: "a value without a descriptor" });
        };
        let Described { descriptor, value } = *described;
        match value {
            Value::List(fields) => Ok(Composite::new(descriptor, fields)),
            _ => Err(DecodeError::NotComposite { found: "a described value other than a list" }),
        }
    }

    /// Decodes the composite at the start of `input`; returns it and the bytes it
    /// took, as [`decode`] does.
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: the bytes are not a value, or not a composite.
    pub fn decode(input: &Bytes, limits: &Limits) -> Result<(Composite, usize), DecodeError> {
        let (value, used) = decode(input, limits)?;
        Ok((Composite::from_value(value)?, used))
    }

    /// Writes the composite as a described list in its smallest encodings, trailing
    /// nulls omitted.
    ///
    /// # Errors
    ///
    /// As [`encode`](super::encode).
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_as(Form::Smallest, out)
    }

    /// Writes the composite in the encodings `form` picks.
    ///
    /// # Errors
    ///
    /// As [`encode`](super::encode).
    pub fn encode_as(&self, form: Form, out: &mut BytesMut) -> Result<(), EncodeError> {
        encode_described_list(&self.descriptor, &self.fields, form, out)
    }
}

impl From<Composite> for Value {
    fn from(composite: Composite) -> Value {
        Value::from(Described {
            descriptor: composite.descriptor,
            value: Value::List(composite.fields),
        })
    }
}
