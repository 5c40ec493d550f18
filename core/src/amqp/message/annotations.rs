//! The map sections: annotations (part 3 §3.2.10, used by delivery-annotations
//! §3.2.2, message-annotations §3.2.3 and footer §3.2.6) and application-properties
//! (§3.2.5).

use alloc::vec::Vec;
use bytes::BytesMut;

use super::error::MessageError;
use crate::amqp::types::{EncodeError, Symbol, Value, encode_described_map};
use crate::utf8::Utf8Bytes;

/// An annotation key (§3.2.10): a symbol, or a ulong (reserved by the standard).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AnnotationKey {
    /// A symbolic key, e.g. `x-opt-lock-token`.
    Symbol(Symbol),
    /// A numeric key.
    Ulong(u64),
}

impl From<Symbol> for AnnotationKey {
    fn from(symbol: Symbol) -> AnnotationKey {
        AnnotationKey::Symbol(symbol)
    }
}

/// Annotations (§3.2.10): keys symbols or ulongs, distinct, values of any type, in
/// wire order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations(Vec<(AnnotationKey, Value)>);

impl Annotations {
    /// No annotations.
    pub const fn new() -> Annotations {
        Annotations(Vec::new())
    }

    /// Sets `key` to `value`, replacing an earlier value in place.
    pub fn insert(&mut self, key: impl Into<AnnotationKey>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of the symbolic key `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| matches!(k, AnnotationKey::Symbol(s) if *s == name))
            .map(|(_, v)| v)
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = &(AnnotationKey, Value)> {
        self.0.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn from_map(
        pairs: Vec<(Value, Value)>,
        section: &'static str,
    ) -> Result<Annotations, MessageError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let key = match key {
                Value::Symbol(s) => AnnotationKey::Symbol(s),
                Value::Ulong(n) => AnnotationKey::Ulong(n),
                other => return Err(MessageError::AnnotationKey { found: other.type_name() }),
            };
            if out.iter().any(|(k, _)| *k == key) {
                return Err(MessageError::DuplicateKey { section });
            }
            out.push((key, value));
        }
        Ok(Annotations(out))
    }

    /// The section of descriptor `code`, appended to `out` (§3.2.2, §3.2.3, §3.2.10).
    pub(super) fn encode(&self, code: u64, out: &mut BytesMut) -> Result<(), EncodeError> {
        let pairs = self.0.iter().map(|(k, v)| {
            let key = match k {
                AnnotationKey::Symbol(s) => Value::Symbol(s.clone()),
                AnnotationKey::Ulong(n) => Value::Ulong(*n),
            };
            (key, v)
        });
        encode_described_map(code, self.0.len(), pairs, out)
    }
}

/// Application properties (§3.2.5): string keys, distinct, to values of simple types
/// (not list, map, array or described), in wire order. [`insert`](Self::insert)
/// enforces the value rule, so every value of this type encodes to a valid section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplicationProperties(Vec<(Utf8Bytes, Value)>);

impl ApplicationProperties {
    /// No properties.
    pub const fn new() -> ApplicationProperties {
        ApplicationProperties(Vec::new())
    }

    /// Sets `key` to `value`, replacing an earlier value in place.
    ///
    /// # Errors
    ///
    /// [`MessageError::ApplicationPropertyValue`]: `value` is not of a simple type.
    pub fn insert(&mut self, key: impl Into<Utf8Bytes>, value: Value) -> Result<(), MessageError> {
        let key = key.into();
        if !is_simple(&value) {
            return Err(MessageError::ApplicationPropertyValue { key, found: value.type_name() });
        }
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = &(Utf8Bytes, Value)> {
        self.0.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn from_map(
        pairs: Vec<(Value, Value)>,
    ) -> Result<ApplicationProperties, MessageError> {
        let mut out = ApplicationProperties(Vec::with_capacity(pairs.len()));
        for (key, value) in pairs {
            let Value::String(key) = key else {
                return Err(MessageError::ApplicationPropertyKey { found: key.type_name() });
            };
            if out.get(&key).is_some() {
                return Err(MessageError::DuplicateKey { section: "application-properties" });
            }
            out.insert(key, value)?;
        }
        Ok(out)
    }

    /// The section, appended to `out` (§3.2.5).
    pub(super) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let pairs = self.0.iter().map(|(k, v)| (Value::String(k.clone()), v));
        encode_described_map(super::APPLICATION_PROPERTIES, self.0.len(), pairs, out)
    }
}

/// §3.2.5: "simple types only, that is, excluding map, list, and array types";
/// a described value is not a simple type either.
fn is_simple(value: &Value) -> bool {
    !matches!(value, Value::List(_) | Value::Map(_) | Value::Array(_) | Value::Described(_))
}
