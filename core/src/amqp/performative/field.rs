//! Reading and writing the fields of a composite (part 1 §1.4) by type: what every
//! performative, terminus and delivery state shares.

use alloc::vec::Vec;
use bytes::Bytes;

use super::definitions::Fields;
use super::error::{Definition as Def, Error};
use crate::amqp::types::{Array, Composite, Descriptor, PrimitiveType, Symbol, Value};
use crate::utf8::Utf8Bytes;

/// A Rust type a composite field holds, with its AMQP type name for errors.
pub(crate) trait FieldType: Sized {
    /// The type's name as §1.6 or the composite's section gives it.
    const TYPE: &'static str;
    /// The value as this type; the value back when it is another type.
    fn from_value(value: Value) -> Result<Self, Value>;
    /// The value to write.
    fn into_value(self) -> Value;
}

macro_rules! primitive_field {
    ($rust:ty, $variant:ident, $name:literal) => {
        impl FieldType for $rust {
            const TYPE: &'static str = $name;
            fn from_value(value: Value) -> Result<Self, Value> {
                match value {
                    Value::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
        }
    };
}

primitive_field!(bool, Boolean, "boolean");
primitive_field!(u8, Ubyte, "ubyte");
primitive_field!(u16, Ushort, "ushort");
primitive_field!(u32, Uint, "uint");
primitive_field!(u64, Ulong, "ulong");
primitive_field!(Bytes, Binary, "binary");
primitive_field!(Utf8Bytes, String, "string");
primitive_field!(Symbol, Symbol, "symbol");

/// `fields` (part 2 §2.8.13): a map with symbol keys.
impl FieldType for Fields {
    const TYPE: &'static str = "fields (a map with symbol keys)";
    fn from_value(value: Value) -> Result<Self, Value> {
        let Value::Map(pairs) = value else {
            return Err(value);
        };
        if !pairs.iter().all(|(k, _)| matches!(k, Value::Symbol(_))) {
            return Err(Value::Map(pairs));
        }
        Ok(pairs
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::Symbol(k) => Some((k, v)),
                _ => None,
            })
            .collect())
    }
    fn into_value(self) -> Value {
        Value::Map(self.into_iter().map(|(k, v)| (Value::Symbol(k), v)).collect())
    }
}

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

/// Reads the fields of one composite in order, checking each against its type.
pub(crate) struct Reader {
    def: &'static Def,
    fields: alloc::vec::IntoIter<Value>,
}

impl Reader {
    /// Checks `composite`'s descriptor against `def` and starts at its first field.
    pub(crate) fn new(composite: Composite, def: &'static Def) -> Result<Reader, Error> {
        if !def.matches(&composite.descriptor) {
            return Err(Error::UnexpectedDescriptor { expected: def, found: composite.descriptor });
        }
        Ok(Reader { def, fields: composite.into_fields().into_iter() })
    }

    /// The next field's raw value: null past the end (§1.4).
    pub(crate) fn value(&mut self) -> Value {
        self.fields.next().unwrap_or(Value::Null)
    }

    /// An optional field.
    pub(crate) fn opt<T: FieldType>(&mut self, field: &'static str) -> Result<Option<T>, Error> {
        match self.value() {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some).map_err(|found| self.wrong::<T>(field, &found)),
        }
    }

    /// A field with a default (§1.4: null means the default).
    pub(crate) fn or<T: FieldType>(&mut self, field: &'static str, default: T) -> Result<T, Error> {
        Ok(self.opt(field)?.unwrap_or(default))
    }

    /// A mandatory field: null or missing is [`Error::MissingField`].
    pub(crate) fn req<T: FieldType>(&mut self, field: &'static str) -> Result<T, Error> {
        self.opt(field)?.ok_or(Error::MissingField { composite: self.def, field })
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
                    composite: self.def,
                    field,
                    expected: "a composite (described list)",
                    found: "another value",
                }),
            },
        }
    }

    /// A field marked `multiple` (§1.4): null, one value, or an array of them. Null
    /// reads as empty.
    pub(crate) fn multiple<T: FieldType>(&mut self, field: &'static str) -> Result<Vec<T>, Error> {
        match self.value() {
            Value::Null => Ok(Vec::new()),
            Value::Array(Array { descriptor: None, items, .. }) => items
                .into_iter()
                .map(|item| T::from_value(item).map_err(|found| self.wrong::<T>(field, &found)))
                .collect(),
            value => T::from_value(value)
                .map(|one| alloc::vec![one])
                .map_err(|found| self.wrong::<T>(field, &found)),
        }
    }

    /// A map field kept as values (keys of any type); empty when absent.
    pub(crate) fn map(&mut self, field: &'static str) -> Result<Vec<(Value, Value)>, Error> {
        match self.value() {
            Value::Null => Ok(Vec::new()),
            Value::Map(pairs) => Ok(pairs),
            found => Err(Error::WrongType {
                composite: self.def,
                field,
                expected: "map",
                found: found.type_name(),
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
            Some(v) => {
                parse(v).map(Some).ok_or(Error::InvalidField { composite: self.def, field, rule })
            }
        }
    }

    fn wrong<T: FieldType>(&self, field: &'static str, found: &Value) -> Error {
        Error::WrongType { composite: self.def, field, expected: T::TYPE, found: found.type_name() }
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
