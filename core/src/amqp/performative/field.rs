//! Reading and writing the fields of a composite (part 1 §1.4) by type: what every
//! performative, terminus and delivery state shares, on the reader of
//! [`crate::amqp::field`].

use alloc::vec::Vec;

use super::definitions::Fields;
use super::error::{Definition as Def, Error};
use crate::amqp::field;
pub(crate) use crate::amqp::field::FieldType;
use crate::amqp::types::{Array, Composite, Descriptor, PrimitiveType, Value};

/// A composite type of the standard (part 1 §1.4) as a typed struct: each
/// performative, `error`, the termini and the delivery states.
pub trait CompositeType: Sized {
    /// Reads the composite, checking its descriptor and every field's type and
    /// presence.
    ///
    /// # Errors
    ///
    /// [`Error`] naming the type's section and the field.
    fn from_composite(composite: Composite) -> Result<Self, Error>;
    /// The composite to write: fields holding their default written as null, and
    /// trailing nulls dropped (§1.4).
    fn to_composite(&self) -> Composite;
}

/// The reader of a performative, terminus, `error` or delivery state, which names
/// its definition in errors.
pub(crate) type Reader = field::Reader<&'static Def>;

impl field::Context for &'static Def {
    type Error = Error;
    fn wrong_type(self, field: &'static str, expected: &'static str, found: &'static str) -> Error {
        Error::WrongType { composite: self, field, expected, found }
    }
    fn missing(self, field: &'static str, _expected: &'static str) -> Error {
        Error::MissingField { composite: self, field }
    }
}

impl Reader {
    /// Checks `composite`'s descriptor against `def` and starts at its first field.
    pub(crate) fn new(composite: Composite, def: &'static Def) -> Result<Reader, Error> {
        if !def.matches(&composite.descriptor) {
            return Err(Error::UnexpectedDescriptor { expected: def, found: composite.descriptor });
        }
        Ok(Reader::from_fields(def, composite.into_fields()))
    }

    /// An optional composite field (error, source, target, delivery state).
    pub(crate) fn composite<T: CompositeType>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<T>, Error> {
        match self.value() {
            Value::Null => Ok(None),
            value => match Composite::from_value(value) {
                Ok(c) => T::from_composite(c).map(Some),
                Err(_) => Err(Error::WrongType {
                    composite: self.context(),
                    field,
                    expected: "a composite (described list)",
                    found: "another value",
                }),
            },
        }
    }

    /// A value checked by `parse`, which refuses values the definition excludes
    /// (a choice outside its list, a tag over its length).
    pub(crate) fn check<T: FieldType, U>(
        &self,
        field: &'static str,
        value: Option<T>,
        parse: impl FnOnce(T) -> Option<U>,
        rule: &'static str,
    ) -> Result<Option<U>, Error> {
        match value {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or(Error::InvalidField {
                composite: self.context(),
                field,
                rule,
            }),
        }
    }
}

/// Writes a composite's fields in order.
pub(crate) struct Writer {
    fields: Vec<Value>,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer { fields: Vec::new() }
    }

    /// A field that is present.
    pub(crate) fn put<T: FieldType>(mut self, value: T) -> Writer {
        self.fields.push(value.into_value());
        self
    }

    /// An optional field: null when absent.
    pub(crate) fn opt<T: FieldType>(mut self, value: Option<T>) -> Writer {
        self.fields.push(value.map_or(Value::Null, T::into_value));
        self
    }

    /// A field with a default: null when it holds the default, which reads the same.
    pub(crate) fn or<T: FieldType + PartialEq>(self, value: T, default: T) -> Writer {
        if value == default { self.opt::<T>(None) } else { self.put(value) }
    }

    /// A composite field.
    pub(crate) fn composite<T: CompositeType>(mut self, value: Option<&T>) -> Writer {
        self.fields.push(value.map_or(Value::Null, |v| Value::from(v.to_composite())));
        self
    }

    /// A `multiple` field: null when empty, otherwise an array.
    pub(crate) fn multiple<T: FieldType + Clone>(
        mut self,
        element: PrimitiveType,
        values: &[T],
    ) -> Writer {
        self.fields.push(if values.is_empty() {
            Value::Null
        } else {
            Value::Array(Array::new(element, values.iter().cloned().map(T::into_value).collect()))
        });
        self
    }

    /// A map kept as values: null when empty.
    pub(crate) fn map(mut self, pairs: &[(Value, Value)]) -> Writer {
        self.fields.push(if pairs.is_empty() { Value::Null } else { Value::Map(pairs.to_vec()) });
        self
    }

    /// `fields` (§2.8.13): null when empty.
    pub(crate) fn fields(mut self, fields: &Fields) -> Writer {
        self.fields.push(if fields.is_empty() { Value::Null } else { fields.clone().into_value() });
        self
    }

    /// The composite described by `def`'s code.
    pub(crate) fn finish(self, def: &Def) -> Composite {
        Composite::new(Descriptor::Code(def.code), self.fields)
    }
}
