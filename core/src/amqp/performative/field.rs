//! Reading and writing the fields of a composite (part 1 §1.4) by type: what every
//! performative, terminus and delivery state shares, on the reader of
//! [`crate::amqp::field`].

use alloc::vec::Vec;
use bytes::BytesMut;

use super::definitions::Fields;
use super::error::{Definition as Def, Error};
use crate::amqp::field;
pub(crate) use crate::amqp::field::FieldType;
use crate::amqp::types::{
    Array, Composite, CompositeEncoder, Descriptor, EncodeError, PrimitiveType, Value,
};

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

    /// Names the fields in order into `w` and finishes it: the one description of
    /// the type's fields, behind both [`to_composite`](Self::to_composite) and
    /// [`encode`](Self::encode).
    fn write<S: Sink>(&self, w: Writer<S>) -> S::Done;

    /// The composite to write: fields holding their default written as null, and
    /// trailing nulls dropped (§1.4).
    fn to_composite(&self) -> Composite {
        self.write(Writer::new())
    }

    /// Appends the composite's encoding to `out`: the bytes of
    /// `to_composite().encode(out)`, without building the composite.
    ///
    /// # Errors
    ///
    /// As [`encode`](crate::amqp::types::encode); nothing is written then.
    fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.write(Writer::encoding(out))
    }
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
        self.described(field)?.map(T::from_composite).transpose()
    }

    /// An optional composite field of more than one type, for the caller to tell
    /// apart by descriptor.
    pub(crate) fn described(&mut self, field: &'static str) -> Result<Option<Composite>, Error> {
        match self.value() {
            Value::Null => Ok(None),
            value => Composite::from_value(value).map(Some).map_err(|_| Error::WrongType {
                composite: self.context(),
                field,
                expected: "a composite (described list)",
                found: "another value",
            }),
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
/// Where a [`Writer`] puts a composite's fields: collected into a [`Composite`]
/// ([`Collect`]), or encoded as they come ([`Encode`]). Public only to name it in
/// [`CompositeType::write`]; its module is private, so nothing outside the crate
/// implements it.
pub trait Sink {
    /// What [`Writer::finish`] gives.
    type Done;
    /// The next field.
    fn field(&mut self, value: Value);
    /// The next field, a composite.
    fn composite<T: CompositeType>(&mut self, value: Option<&T>);
    /// The end, with the composite's descriptor code.
    fn finish(self, code: u64) -> Self::Done;
}

/// Collects fields into a [`Composite`].
#[derive(Debug, Default)]
pub struct Collect(Vec<Value>);

impl Sink for Collect {
    type Done = Composite;

    fn field(&mut self, value: Value) {
        self.0.push(value);
    }

    fn composite<T: CompositeType>(&mut self, value: Option<&T>) {
        self.0.push(value.map_or(Value::Null, |v| Value::from(v.to_composite())));
    }

    fn finish(self, code: u64) -> Composite {
        Composite::new(Descriptor::Code(code), self.0)
    }
}

/// Encodes fields as they come.
#[derive(Debug)]
pub struct Encode<'a>(CompositeEncoder<'a>);

impl Sink for Encode<'_> {
    type Done = Result<(), EncodeError>;

    fn field(&mut self, value: Value) {
        self.0.field(&value);
    }

    fn composite<T: CompositeType>(&mut self, value: Option<&T>) {
        self.0.field_with(value.is_none(), |out| value.map_or(Ok(()), |v| v.encode(out)));
    }

    fn finish(self, code: u64) -> Result<(), EncodeError> {
        self.0.finish(code)
    }
}

/// Writes a composite's fields in order, by type; each [`CompositeType`] names
/// its fields once, for both sinks.
#[derive(Debug)]
pub struct Writer<S> {
    sink: S,
}

impl Writer<Collect> {
    /// A writer collecting into a [`Composite`].
    pub(crate) fn new() -> Writer<Collect> {
        Writer { sink: Collect::default() }
    }
}

impl<'a> Writer<Encode<'a>> {
    /// A writer encoding into `out`.
    pub(crate) fn encoding(out: &'a mut BytesMut) -> Writer<Encode<'a>> {
        Writer { sink: Encode(CompositeEncoder::new(out)) }
    }
}

impl<S: Sink> Writer<S> {
    pub(crate) fn value(mut self, value: Value) -> Writer<S> {
        self.sink.field(value);
        self
    }

    pub(crate) fn put<T: FieldType>(self, value: T) -> Writer<S> {
        self.value(value.into_value())
    }

    pub(crate) fn opt<T: FieldType>(self, value: Option<T>) -> Writer<S> {
        self.value(value.map_or(Value::Null, T::into_value))
    }

    pub(crate) fn or<T: FieldType + PartialEq>(self, value: T, default: T) -> Writer<S> {
        if value == default { self.opt::<T>(None) } else { self.put(value) }
    }

    pub(crate) fn composite<T: CompositeType>(mut self, value: Option<&T>) -> Writer<S> {
        self.sink.composite(value);
        self
    }

    pub(crate) fn multiple<T: FieldType + Clone>(
        self,
        element: PrimitiveType,
        values: &[T],
    ) -> Writer<S> {
        self.value(if values.is_empty() {
            Value::Null
        } else {
            Value::Array(Array::new(element, values.iter().cloned().map(T::into_value).collect()))
        })
    }

    pub(crate) fn map(self, pairs: &[(Value, Value)]) -> Writer<S> {
        self.value(if pairs.is_empty() { Value::Null } else { Value::Map(pairs.to_vec()) })
    }

    pub(crate) fn fields(self, fields: &Fields) -> Writer<S> {
        self.value(if fields.is_empty() { Value::Null } else { fields.clone().into_value() })
    }

    pub(crate) fn finish(self, def: &Def) -> S::Done {
        self.sink.finish(def.code)
    }

    /// As [`finish`](Self::finish), for a composite of part 3 named by its code.
    pub(crate) fn finish_code(self, code: u64) -> S::Done {
        self.sink.finish(code)
    }
}
