//! [`Value`]: any AMQP 1.0 value (part 1, §1.1), with its primitive types (§1.6).

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;
use core::{fmt, str};

use super::described::{Described, Descriptor};
use crate::utf8::Utf8Bytes;

/// The 24 primitive types of §1.6, whatever their encoding width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrimitiveType {
    /// §1.6.1.
    Null,
    /// §1.6.2.
    Boolean,
    /// §1.6.3.
    Ubyte,
    /// §1.6.4.
    Ushort,
    /// §1.6.5.
    Uint,
    /// §1.6.6.
    Ulong,
    /// §1.6.7.
    Byte,
    /// §1.6.8.
    Short,
    /// §1.6.9.
    Int,
    /// §1.6.10.
    Long,
    /// §1.6.11.
    Float,
    /// §1.6.12.
    Double,
    /// §1.6.13.
    Decimal32,
    /// §1.6.14.
    Decimal64,
    /// §1.6.15.
    Decimal128,
    /// §1.6.16.
    Char,
    /// §1.6.17.
    Timestamp,
    /// §1.6.18.
    Uuid,
    /// §1.6.19.
    Binary,
    /// §1.6.20.
    String,
    /// §1.6.21.
    Symbol,
    /// §1.6.22.
    List,
    /// §1.6.23.
    Map,
    /// §1.6.24.
    Array,
}

/// An AMQP value: a primitive value (§1.6) or a described one (§1.1.2).
///
/// Binary, string and symbol data are [`Bytes`] sharing the buffer they were decoded
/// from. Equality compares floats by their bits, so a decoded NaN equals itself and
/// `decode(encode(v)) == v` holds for every value.
#[derive(Clone, Debug)]
pub enum Value {
    /// §1.6.1: no value.
    Null,
    /// §1.6.2.
    Boolean(bool),
    /// §1.6.3.
    Ubyte(u8),
    /// §1.6.4.
    Ushort(u16),
    /// §1.6.5.
    Uint(u32),
    /// §1.6.6.
    Ulong(u64),
    /// §1.6.7.
    Byte(i8),
    /// §1.6.8.
    Short(i16),
    /// §1.6.9.
    Int(i32),
    /// §1.6.10.
    Long(i64),
    /// §1.6.11: IEEE 754 binary32.
    Float(f32),
    /// §1.6.12: IEEE 754 binary64.
    Double(f64),
    /// §1.6.13: IEEE 754 decimal32, as its 4 bytes (network order); hubwire does no
    /// decimal arithmetic.
    Decimal32([u8; 4]),
    /// §1.6.14: IEEE 754 decimal64, as its 8 bytes.
    Decimal64([u8; 8]),
    /// §1.6.15: IEEE 754 decimal128, as its 16 bytes.
    Decimal128([u8; 16]),
    /// §1.6.16: one Unicode scalar value (UTF-32 on the wire).
    Char(char),
    /// §1.6.17: milliseconds since the Unix epoch (1970-01-01T00:00:00Z), signed.
    Timestamp(i64),
    /// §1.6.18: an RFC 4122 UUID, its 16 bytes in network order (TV-18).
    Uuid([u8; 16]),
    /// §1.6.19: opaque bytes.
    Binary(Bytes),
    /// §1.6.20: UTF-8 text.
    String(Utf8Bytes),
    /// §1.6.21: ASCII text from a constrained domain.
    Symbol(Symbol),
    /// §1.6.22: a sequence of values of any types.
    List(Vec<Value>),
    /// §1.6.23: key-value pairs in wire order. Duplicate keys are kept as sent:
    /// the rule that keys are distinct is for the layer that gives the map meaning.
    Map(Vec<(Value, Value)>),
    /// §1.6.24: values of one type.
    Array(Array),
    /// §1.1.2: a value with a descriptor.
    Described(Box<Described>),
}

impl PrimitiveType {
    /// The type's name in §1.6, e.g. `ulong`.
    pub const fn name(self) -> &'static str {
        match self {
            PrimitiveType::Null => "null",
            PrimitiveType::Boolean => "boolean",
            PrimitiveType::Ubyte => "ubyte",
            PrimitiveType::Ushort => "ushort",
            PrimitiveType::Uint => "uint",
            PrimitiveType::Ulong => "ulong",
            PrimitiveType::Byte => "byte",
            PrimitiveType::Short => "short",
            PrimitiveType::Int => "int",
            PrimitiveType::Long => "long",
            PrimitiveType::Float => "float",
            PrimitiveType::Double => "double",
            PrimitiveType::Decimal32 => "decimal32",
            PrimitiveType::Decimal64 => "decimal64",
            PrimitiveType::Decimal128 => "decimal128",
            PrimitiveType::Char => "char",
            PrimitiveType::Timestamp => "timestamp",
            PrimitiveType::Uuid => "uuid",
            PrimitiveType::Binary => "binary",
            PrimitiveType::String => "string",
            PrimitiveType::Symbol => "symbol",
            PrimitiveType::List => "list",
            PrimitiveType::Map => "map",
            PrimitiveType::Array => "array",
        }
    }
}

impl Value {
    /// The primitive type of this value; `None` for a described value.
    pub const fn primitive_type(&self) -> Option<PrimitiveType> {
        Some(match self {
            Value::Null => PrimitiveType::Null,
            Value::Boolean(_) => PrimitiveType::Boolean,
            Value::Ubyte(_) => PrimitiveType::Ubyte,
            Value::Ushort(_) => PrimitiveType::Ushort,
            Value::Uint(_) => PrimitiveType::Uint,
            Value::Ulong(_) => PrimitiveType::Ulong,
            Value::Byte(_) => PrimitiveType::Byte,
            Value::Short(_) => PrimitiveType::Short,
            Value::Int(_) => PrimitiveType::Int,
            Value::Long(_) => PrimitiveType::Long,
            Value::Float(_) => PrimitiveType::Float,
            Value::Double(_) => PrimitiveType::Double,
            Value::Decimal32(_) => PrimitiveType::Decimal32,
            Value::Decimal64(_) => PrimitiveType::Decimal64,
            Value::Decimal128(_) => PrimitiveType::Decimal128,
            Value::Char(_) => PrimitiveType::Char,
            Value::Timestamp(_) => PrimitiveType::Timestamp,
            Value::Uuid(_) => PrimitiveType::Uuid,
            Value::Binary(_) => PrimitiveType::Binary,
            Value::String(_) => PrimitiveType::String,
            Value::Symbol(_) => PrimitiveType::Symbol,
            Value::List(_) => PrimitiveType::List,
            Value::Map(_) => PrimitiveType::Map,
            Value::Array(_) => PrimitiveType::Array,
            Value::Described(_) => return None,
        })
    }

    /// The name of this value's type in §1.6, or `described`.
    pub const fn type_name(&self) -> &'static str {
        match self.primitive_type() {
            Some(ty) => ty.name(),
            None => "described",
        }
    }

    /// Whether this is [`Value::Null`].
    pub const fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Boolean(a), Boolean(b)) => a == b,
            (Ubyte(a), Ubyte(b)) => a == b,
            (Ushort(a), Ushort(b)) => a == b,
            (Uint(a), Uint(b)) => a == b,
            (Ulong(a), Ulong(b)) => a == b,
            (Byte(a), Byte(b)) => a == b,
            (Short(a), Short(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Long(a), Long(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Decimal32(a), Decimal32(b)) => a == b,
            (Decimal64(a), Decimal64(b)) => a == b,
            (Decimal128(a), Decimal128(b)) => a == b,
            (Char(a), Char(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Uuid(a), Uuid(b)) => a == b,
            (Binary(a), Binary(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Symbol(a), Symbol(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Described(a), Described(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl From<Symbol> for Value {
    fn from(symbol: Symbol) -> Value {
        Value::Symbol(symbol)
    }
}

impl From<Utf8Bytes> for Value {
    fn from(string: Utf8Bytes) -> Value {
        Value::String(string)
    }
}

impl From<Described> for Value {
    fn from(described: Described) -> Value {
        Value::Described(Box::new(described))
    }
}

/// A symbol (§1.6.21): ASCII text held as [`Bytes`], checked once on creation.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(Bytes);

impl Symbol {
    /// Checks that `bytes` are ASCII and wraps them; returns them back otherwise.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Symbol, Bytes> {
        if bytes.is_ascii() { Ok(Symbol(bytes)) } else { Err(bytes) }
    }

    /// A symbol known at compile time. Evaluated in a `const`, a non-ASCII `s` fails
    /// the build.
    ///
    /// # Panics
    ///
    /// If `s` is not ASCII: a programming error, never a peer's.
    pub const fn from_static(s: &'static str) -> Symbol {
        assert!(s.is_ascii(), "a symbol is ASCII (§1.6.21)");
        Symbol(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // ASCII is UTF-8; the fallback cannot be reached.
        str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the symbol is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// An array (§1.6.24): values of one primitive type, encoded with one constructor,
/// optionally all described by one descriptor (§1.2.4).
///
/// Every item must be a value of `element` (the descriptor, when there is one, is
/// here, not on the items); the encoder refuses an array that breaks this. Decoded
/// arrays always keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Array {
    /// The descriptor shared by every element, for an array of described values.
    pub descriptor: Option<Descriptor>,
    /// The primitive type of every item.
    pub element: PrimitiveType,
    /// The items, in order.
    pub items: Vec<Value>,
}

impl Array {
    /// An array of `element` values without a descriptor.
    pub fn new(element: PrimitiveType, items: Vec<Value>) -> Array {
        Array { descriptor: None, element, items }
    }
}
