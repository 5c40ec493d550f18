//! Reading the fields of a composite (part 1 §1.4) by type: one reader for the
//! performatives, termini and delivery states, the message sections and the SASL
//! frames. Each of those names its own errors through a [`Context`].

use alloc::vec::Vec;
use bytes::Bytes;

use crate::amqp::performative::definitions::Fields;
use crate::amqp::types::{Array, Symbol, Value};
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
// No field of the standard is a `long`, so `i64` can stand for the timestamps (ms
// since the Unix epoch, §1.6.20) of the properties section.
primitive_field!(i64, Timestamp, "timestamp");
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

/// The composite being read, as its errors name it.
pub(crate) trait Context: Copy {
    /// The error a bad field is.
    type Error;
    /// `field` holds a value of type `found` where the standard gives `expected`.
    fn wrong_type(
        self,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    ) -> Self::Error;
    /// `field`, which the standard marks mandatory and types `expected`, is null or
    /// absent.
    fn missing(self, field: &'static str, expected: &'static str) -> Self::Error;
}

/// Reads the fields of one composite in order, checking each against its type.
pub(crate) struct Reader<C> {
    context: C,
    fields: alloc::vec::IntoIter<Value>,
}

impl<C: Context> Reader<C> {
    /// Starts at the first of `fields`.
    pub(crate) fn from_fields(context: C, fields: Vec<Value>) -> Reader<C> {
        Reader { context, fields: fields.into_iter() }
    }

    /// The composite being read.
    pub(crate) fn context(&self) -> C {
        self.context
    }

    /// The next field's raw value: null past the end (§1.4).
    pub(crate) fn value(&mut self) -> Value {
        self.fields.next().unwrap_or(Value::Null)
    }

    /// An optional field.
    pub(crate) fn opt<T: FieldType>(&mut self, field: &'static str) -> Result<Option<T>, C::Error> {
        match self.value() {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some).map_err(|found| self.wrong::<T>(field, &found)),
        }
    }

    /// A field with a default (§1.4: null means the default).
    pub(crate) fn or<T: FieldType>(
        &mut self,
        field: &'static str,
        default: T,
    ) -> Result<T, C::Error> {
        Ok(self.opt(field)?.unwrap_or(default))
    }

    /// A mandatory field: null or missing is [`Context::missing`].
    pub(crate) fn req<T: FieldType>(&mut self, field: &'static str) -> Result<T, C::Error> {
        self.opt(field)?.ok_or_else(|| self.context.missing(field, T::TYPE))
    }

    /// A field marked `multiple` (§1.4): null, one value, or an array of them. Null
    /// reads as empty.
    pub(crate) fn multiple<T: FieldType>(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<T>, C::Error> {
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
    pub(crate) fn map(&mut self, field: &'static str) -> Result<Vec<(Value, Value)>, C::Error> {
        match self.value() {
            Value::Null => Ok(Vec::new()),
            Value::Map(pairs) => Ok(pairs),
            found => Err(self.context.wrong_type(field, "map", found.type_name())),
        }
    }

    fn wrong<T: FieldType>(&self, field: &'static str, found: &Value) -> C::Error {
        self.context.wrong_type(field, T::TYPE, found.type_name())
    }
}
