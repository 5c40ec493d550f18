//! Property tests: every value tree (bounded depth) survives encode → decode in the
//! smallest and in the wide encodings; no input makes the decoder panic; whatever
//! it accepts, the encoder writes back to the same value.

use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::utf8::Utf8Bytes;

fn binary() -> impl Strategy<Value = Bytes> {
    // Mostly short, sometimes past the one-byte size forms.
    prop_oneof![4 => vec(any::<u8>(), 0..8), 1 => vec(any::<u8>(), 250..300)].prop_map(Bytes::from)
}

fn symbol() -> impl Strategy<Value = Symbol> {
    prop_oneof!["[ -~]{0,12}", "[a-z]{250,260}"]
        .prop_map(|s: alloc::string::String| Symbol::try_from_bytes(Bytes::from(s)).expect("ASCII"))
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    prop_oneof![
        prop_oneof![0..0x80u64, any::<u64>()].prop_map(Descriptor::Code),
        symbol().prop_map(Descriptor::Symbol),
    ]
}

/// A value of the fixed-width or variable-width type `ty`.
fn scalar_of(ty: PrimitiveType) -> BoxedStrategy<Value> {
    use PrimitiveType as T;
    match ty {
        T::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        T::Ubyte => any::<u8>().prop_map(Value::Ubyte).boxed(),
        T::Ushort => any::<u16>().prop_map(Value::Ushort).boxed(),
        T::Uint => prop_oneof![Just(0), 0..=255u32, any::<u32>()].prop_map(Value::Uint).boxed(),
        T::Ulong => prop_oneof![Just(0), 0..=255u64, any::<u64>()].prop_map(Value::Ulong).boxed(),
        T::Byte => any::<i8>().prop_map(Value::Byte).boxed(),
        T::Short => any::<i16>().prop_map(Value::Short).boxed(),
        T::Int => prop_oneof![-128..=127i32, any::<i32>()].prop_map(Value::Int).boxed(),
        T::Long => prop_oneof![-128..=127i64, any::<i64>()].prop_map(Value::Long).boxed(),
        T::Float => any::<u32>().prop_map(|b| Value::Float(f32::from_bits(b))).boxed(),
        T::Double => any::<u64>().prop_map(|b| Value::Double(f64::from_bits(b))).boxed(),
        T::Decimal32 => any::<[u8; 4]>().prop_map(Value::Decimal32).boxed(),
        T::Decimal64 => any::<[u8; 8]>().prop_map(Value::Decimal64).boxed(),
        T::Decimal128 => any::<[u8; 16]>().prop_map(Value::Decimal128).boxed(),
        T::Char => any::<char>().prop_map(Value::Char).boxed(),
        T::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
        T::Uuid => any::<[u8; 16]>().prop_map(Value::Uuid).boxed(),
        T::Binary => binary().prop_map(Value::Binary).boxed(),
        T::String => prop_oneof!["\\PC{0,8}", "[a-zé]{250,260}"]
            .prop_map(|s: alloc::string::String| Value::String(Utf8Bytes::from(s)))
            .boxed(),
        T::Symbol => symbol().prop_map(Value::Symbol).boxed(),
        T::Null | T::List | T::Map | T::Array => Just(Value::Null).boxed(),
    }
}

const SCALAR_TYPES: [PrimitiveType; 21] = {
    use PrimitiveType as T;
    [
        T::Null,
        T::Boolean,
        T::Ubyte,
        T::Ushort,
        T::Uint,
        T::Ulong,
        T::Byte,
        T::Short,
        T::Int,
        T::Long,
        T::Float,
        T::Double,
        T::Decimal32,
        T::Decimal64,
        T::Decimal128,
        T::Char,
        T::Timestamp,
        T::Uuid,
        T::Binary,
        T::String,
        T::Symbol,
    ]
};

fn scalar() -> impl Strategy<Value = Value> {
    proptest::sample::select(&SCALAR_TYPES[..]).prop_flat_map(scalar_of)
}

/// An array of scalars of one type, optionally described.
fn scalar_array() -> impl Strategy<Value = Array> {
    (proptest::option::of(descriptor()), proptest::sample::select(&SCALAR_TYPES[..])).prop_flat_map(
        |(descriptor, element)| {
            vec(scalar_of(element), 0..6).prop_map(move |items| Array {
                descriptor: descriptor.clone(),
                element,
                items,
            })
        },
    )
}

/// Any value, containers nested at most four deep.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![8 => scalar(), 1 => scalar_array().prop_map(Value::Array)];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::List),
            vec((inner.clone(), inner.clone()), 0..5).prop_map(Value::Map),
            (descriptor(), inner.clone()).prop_map(|(d, v)| Value::Described(Box::new(
                Described { descriptor: d, value: v }
            ))),
            vec(vec(inner.clone(), 0..3), 0..4).prop_map(|lists| {
                Value::Array(Array::new(
                    PrimitiveType::List,
                    lists.into_iter().map(Value::List).collect(),
                ))
            }),
            vec(scalar_array(), 0..3).prop_map(|arrays| {
                Value::Array(Array::new(
                    PrimitiveType::Array,
                    arrays.into_iter().map(Value::Array).collect(),
                ))
            }),
            vec(vec((inner.clone(), inner), 0..2), 0..3).prop_map(|maps| {
                Value::Array(Array::new(
                    PrimitiveType::Map,
                    maps.into_iter().map(Value::Map).collect(),
                ))
            }),
        ]
    })
}

fn round_trip(value: &Value, form: Form) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    encode_as(value, form, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(out.len(), encoded_len(value, form));
    let bytes = out.freeze();
    let (decoded, used) = decode(&bytes, &Limits::default())
        .map_err(|e| TestCaseError::fail(alloc::format!("{e}: {bytes:02x?}")))?;
    prop_assert_eq!(used, bytes.len());
    prop_assert_eq!(&decoded, value);
    Ok(())
}

proptest! {
    #[test]
    fn smallest_encoding_round_trips(value in value()) {
        round_trip(&value, Form::Smallest)?;
    }

    #[test]
    fn wide_encoding_round_trips(value in value()) {
        round_trip(&value, Form::Wide)?;
    }

    #[test]
    fn smallest_is_never_longer_than_wide(value in value()) {
        prop_assert!(encoded_len(&value, Form::Smallest) <= encoded_len(&value, Form::Wide));
    }

    #[test]
    fn composite_round_trips_without_trailing_nulls(
        descriptor in descriptor(),
        fields in vec(prop_oneof![Just(Value::Null), scalar()], 0..8),
    ) {
        let composite = Composite::new(descriptor, fields.clone());
        let mut out = BytesMut::new();
        composite.encode(&mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bytes = out.freeze();
        let (decoded, used) = Composite::decode(&bytes, &Limits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(used, bytes.len());
        prop_assert!(decoded.fields().last().is_none_or(|f| !f.is_null()));
        for (i, field) in fields.iter().enumerate() {
            prop_assert_eq!(decoded.field(i), field);
        }
        prop_assert_eq!(decoded, composite);
    }

    /// Any bytes: an error or a value, never a panic; an accepted value encodes
    /// and decodes to itself.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let input = Bytes::from(bytes);
        if let Ok((value, used)) = decode(&input, &Limits::default()) {
            prop_assert!(used <= input.len());
            round_trip(&value, Form::Smallest)?;
        }
    }

    /// A valid encoding with one byte changed: the decoder's checks meet real
    /// structure, not only noise.
    #[test]
    fn corrupted_encodings_never_panic(value in value(), at in any::<usize>(), byte in any::<u8>()) {
        let mut out = BytesMut::new();
        encode(&value, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut bytes: Vec<u8> = out.to_vec();
        let len = bytes.len();
        if let Some(b) = bytes.get_mut(at % len) {
            *b = byte;
        }
        let input = Bytes::from(bytes);
        if let Ok((value, _)) = decode(&input, &Limits::default()) {
            round_trip(&value, Form::Wide)?;
        }
    }
}
