//! Byte-level tests, one or more per section of part 1: every encoding width
//! decoded, the encoder's choice of width, and every limit the decoder enforces.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::*;
use crate::utf8::Utf8Bytes;

fn decode_bytes(bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    decode(&Bytes::copy_from_slice(bytes), &Limits::default())
}

/// Decodes `bytes`, which must be exactly one value.
fn whole(bytes: &[u8]) -> Value {
    match decode_bytes(bytes) {
        Ok((value, used)) => {
            assert_eq!(used, bytes.len(), "{value:?} used {used} of {} bytes", bytes.len());
            value
        }
        Err(e) => panic!("{bytes:02x?}: {e}"),
    }
}

fn err(bytes: &[u8]) -> DecodeError {
    match decode_bytes(bytes) {
        Ok((value, _)) => panic!("{bytes:02x?} decoded as {value:?}"),
        Err(e) => e,
    }
}

fn encoded(value: &Value, form: Form) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = encode_as(value, form, &mut out) {
        panic!("{value:?}: {e}");
    }
    assert_eq!(out.len(), encoded_len(value, form), "encoded_len of {value:?}");
    out.to_vec()
}

fn smallest(value: &Value) -> Vec<u8> {
    encoded(value, Form::Smallest)
}

fn wide(value: &Value) -> Vec<u8> {
    encoded(value, Form::Wide)
}

fn string(s: &'static str) -> Value {
    Value::String(Utf8Bytes::from_static(s))
}

fn symbol(s: &'static str) -> Value {
    Value::Symbol(Symbol::from_static(s))
}

// §1.2: constructors ---------------------------------------------------------------

#[test]
fn s1_2_empty_input_has_no_constructor() {
    assert_eq!(err(&[]), DecodeError::MissingConstructor);
}

#[test]
fn s1_2_undefined_format_codes_are_refused() {
    // 0x01: no encoding; 0x8f: the reserved ext-type form 0x?f.
    for code in [0x01, 0x8f, 0xff] {
        assert_eq!(err(&[code, 0, 0, 0]), DecodeError::UnknownConstructor { code });
    }
}

#[test]
fn s1_2_bytes_after_the_value_are_left_alone() {
    let input = [
        0x52, 0x07, // smalluint 7
        0xff, 0xff, // not part of the value
    ];
    assert_eq!(decode_bytes(&input), Ok((Value::Uint(7), 2)));
}

#[test]
fn s1_2_1_fixed_width_value_cut_short_is_truncated() {
    let input = [
        0x70, // uint
        0x00, 0x00, // two of its four bytes
    ];
    let expected = DecodeError::Truncated { encoding: Encoding::Uint, needed: 4, present: 2 };
    assert_eq!(err(&input), expected);
    assert_eq!(expected.to_string(), "§1.6.5 uint: 4 bytes needed, 2 present");
}

// §1.6.1–§1.6.18: fixed-width types ------------------------------------------------

#[test]
fn s1_6_1_null() {
    assert_eq!(whole(&[0x40]), Value::Null);
    assert_eq!(smallest(&Value::Null), [0x40]);
    assert_eq!(wide(&Value::Null), [0x40]);
}

#[test]
fn s1_6_2_boolean_in_all_three_encodings() {
    assert_eq!(whole(&[0x41]), Value::Boolean(true)); // boolean.true
    assert_eq!(whole(&[0x42]), Value::Boolean(false)); // boolean.false
    assert_eq!(whole(&[0x56, 0x01]), Value::Boolean(true)); // boolean, data byte 1
    assert_eq!(whole(&[0x56, 0x00]), Value::Boolean(false)); // boolean, data byte 0
    assert_eq!(smallest(&Value::Boolean(true)), [0x41]);
    assert_eq!(smallest(&Value::Boolean(false)), [0x42]);
    assert_eq!(wide(&Value::Boolean(true)), [0x56, 0x01]);
}

#[test]
fn s1_6_2_boolean_byte_other_than_0_or_1_is_refused() {
    assert_eq!(err(&[0x56, 0x02]), DecodeError::InvalidBoolean { byte: 0x02 });
}

#[test]
fn s1_6_3_ubyte_and_s1_6_4_ushort() {
    assert_eq!(whole(&[0x50, 0xfe]), Value::Ubyte(0xfe));
    assert_eq!(whole(&[0x60, 0x12, 0x34]), Value::Ushort(0x1234));
    assert_eq!(smallest(&Value::Ushort(0x1234)), [0x60, 0x12, 0x34]);
}

#[test]
fn s1_6_5_uint_in_all_three_encodings() {
    assert_eq!(whole(&[0x70, 0x00, 0x01, 0x00, 0x00]), Value::Uint(0x1_0000)); // uint
    assert_eq!(whole(&[0x52, 0xff]), Value::Uint(255)); // smalluint
    assert_eq!(whole(&[0x43]), Value::Uint(0)); // uint0
}

#[test]
fn s1_6_5_uint_encoder_picks_the_smallest() {
    assert_eq!(smallest(&Value::Uint(0)), [0x43]);
    assert_eq!(smallest(&Value::Uint(255)), [0x52, 0xff]);
    assert_eq!(smallest(&Value::Uint(256)), [0x70, 0x00, 0x00, 0x01, 0x00]);
    assert_eq!(wide(&Value::Uint(0)), [0x70, 0x00, 0x00, 0x00, 0x00]);
}

#[test]
fn s1_6_6_ulong_in_all_three_encodings() {
    let ulong = [
        0x80, // ulong
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 2^32
    ];
    assert_eq!(whole(&ulong), Value::Ulong(1 << 32));
    assert_eq!(whole(&[0x53, 0x10]), Value::Ulong(0x10)); // smallulong
    assert_eq!(whole(&[0x44]), Value::Ulong(0)); // ulong0
    assert_eq!(smallest(&Value::Ulong(1 << 32)), ulong);
    assert_eq!(smallest(&Value::Ulong(0x10)), [0x53, 0x10]);
    assert_eq!(smallest(&Value::Ulong(0)), [0x44]);
    assert_eq!(wide(&Value::Ulong(0x10))[0], 0x80);
}

#[test]
fn s1_6_7_byte_and_s1_6_8_short() {
    assert_eq!(whole(&[0x51, 0x80]), Value::Byte(-128));
    assert_eq!(whole(&[0x61, 0xff, 0xfe]), Value::Short(-2));
}

#[test]
fn s1_6_9_int_in_both_encodings() {
    assert_eq!(whole(&[0x71, 0xff, 0xff, 0xff, 0x38]), Value::Int(-200)); // int
    assert_eq!(whole(&[0x54, 0xff]), Value::Int(-1)); // smallint
    assert_eq!(smallest(&Value::Int(-1)), [0x54, 0xff]);
    assert_eq!(smallest(&Value::Int(200)), [0x71, 0x00, 0x00, 0x00, 0xc8]);
    assert_eq!(wide(&Value::Int(-1)), [0x71, 0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn s1_6_10_long_in_both_encodings() {
    let long = [
        0x81, // long
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, // -129
    ];
    assert_eq!(whole(&long), Value::Long(-129));
    assert_eq!(whole(&[0x55, 0x7f]), Value::Long(127)); // smalllong
    assert_eq!(smallest(&Value::Long(-129)), long);
    assert_eq!(smallest(&Value::Long(127)), [0x55, 0x7f]);
}

#[test]
fn s1_6_11_float_and_s1_6_12_double() {
    assert_eq!(whole(&[0x72, 0x3f, 0xc0, 0x00, 0x00]), Value::Float(1.5));
    let double = [
        0x82, // double
        0xc0, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // -2.25
    ];
    assert_eq!(whole(&double), Value::Double(-2.25));
    assert_eq!(smallest(&Value::Double(-2.25)), double);
    // Equality is by bits, so a NaN survives a round trip.
    let nan = whole(&[0x72, 0x7f, 0xc0, 0x00, 0x01]);
    assert_eq!(nan, Value::Float(f32::from_bits(0x7fc0_0001)));
}

#[test]
fn s1_6_13_to_15_decimals_are_kept_as_bytes() {
    assert_eq!(whole(&[0x74, 1, 2, 3, 4]), Value::Decimal32([1, 2, 3, 4]));
    assert_eq!(whole(&[0x84, 1, 2, 3, 4, 5, 6, 7, 8]), Value::Decimal64([1, 2, 3, 4, 5, 6, 7, 8]));
    let mut d128 = vec![0x94];
    d128.extend(1..=16u8);
    let expected: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
    assert_eq!(whole(&d128), Value::Decimal128(expected));
    assert_eq!(smallest(&Value::Decimal128(expected)), d128);
}

#[test]
fn s1_6_16_char_is_utf32() {
    assert_eq!(whole(&[0x73, 0x00, 0x01, 0xf6, 0x00]), Value::Char('\u{1f600}'));
    assert_eq!(smallest(&Value::Char('A')), [0x73, 0x00, 0x00, 0x00, 0x41]);
}

#[test]
fn s1_6_16_char_must_be_a_unicode_scalar() {
    assert_eq!(err(&[0x73, 0x00, 0x00, 0xd8, 0x00]), DecodeError::InvalidChar { code: 0xd800 });
    assert_eq!(err(&[0x73, 0x00, 0x11, 0x00, 0x00]), DecodeError::InvalidChar { code: 0x11_0000 });
}

#[test]
fn s1_6_17_timestamp_is_signed_milliseconds() {
    let ts = [
        0x83, // timestamp
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // 1 700 000 000 000 ms
    ];
    assert_eq!(whole(&ts), Value::Timestamp(1_700_000_000_000));
    assert_eq!(smallest(&Value::Timestamp(1_700_000_000_000)), ts);
    assert_eq!(
        whole(&[0x83, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Value::Timestamp(-1)
    );
}

#[test]
fn s1_6_18_uuid_tv18_rfc4122_order() {
    let uuid = [
        0x98, // uuid
        0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, // 6a1f0c2e-1b2c-4d3e-
        0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d, 0x9e, 0x0f, // 8f40-5a6b7c8d9e0f
    ];
    let value = whole(&uuid);
    assert_eq!(
        value,
        Value::Uuid([
            0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d,
            0x9e, 0x0f
        ])
    );
    assert_eq!(smallest(&value), uuid);
}

// §1.6.19–§1.6.21: variable-width types --------------------------------------------

#[test]
fn s1_6_19_binary_vbin8_and_vbin32_share_the_input() {
    let input = Bytes::from_static(&[
        0xa0, 0x03, // vbin8, 3 bytes
        0x01, 0x02, 0x03,
    ]);
    let (value, _) = decode(&input, &Limits::default()).expect("vbin8");
    let Value::Binary(data) = value else { panic!("{value:?}") };
    assert_eq!(data, [1, 2, 3][..]);
    // Zero copy: the slice points into the input.
    assert_eq!(data.as_ptr(), input[2..].as_ptr());
    let vbin32 = [
        0xb0, // vbin32
        0x00, 0x00, 0x00, 0x02, // 2 bytes
        0xaa, 0xbb,
    ];
    assert_eq!(whole(&vbin32), Value::Binary(Bytes::from_static(&[0xaa, 0xbb])));
    assert_eq!(wide(&Value::Binary(Bytes::from_static(&[0xaa, 0xbb]))), vbin32);
}

#[test]
fn s1_6_19_binary_of_256_bytes_needs_vbin32() {
    let value = Value::Binary(Bytes::from(vec![7u8; 256]));
    let bytes = smallest(&value);
    assert_eq!(bytes[..5], [0xb0, 0x00, 0x00, 0x01, 0x00]);
    assert_eq!(smallest(&Value::Binary(Bytes::from(vec![7u8; 255])))[..2], [0xa0, 0xff]);
}

#[test]
fn s1_6_20_string_str8_and_str32() {
    assert_eq!(whole(&[0xa1, 0x02, 0xc2, 0xb0]), string("°")); // str8-utf8, U+00B0
    assert_eq!(whole(&[0xb1, 0x00, 0x00, 0x00, 0x01, 0x78]), string("x")); // str32-utf8
    assert_eq!(smallest(&string("x")), [0xa1, 0x01, 0x78]);
    assert_eq!(wide(&string("x")), [0xb1, 0x00, 0x00, 0x00, 0x01, 0x78]);
}

#[test]
fn s1_6_20_string_must_be_utf8() {
    let input = [
        0xa1, 0x02, // str8-utf8, 2 bytes
        0xc3, 0x28, // an invalid two-byte sequence
    ];
    assert_eq!(err(&input), DecodeError::InvalidUtf8 { encoding: Encoding::Str8 });
}

#[test]
fn s1_6_21_symbol_sym8_and_sym32() {
    let sym8 = [
        0xa3, 0x0e, // sym8, 14 bytes
        b'a', b'm', b'q', b'p', b':', b'o', b'p', b'e', b'n', b':', b'l', b'i', b's', b't',
    ];
    assert_eq!(whole(&sym8), symbol("amqp:open:list"));
    assert_eq!(whole(&[0xb3, 0x00, 0x00, 0x00, 0x01, b'x']), symbol("x")); // sym32
    assert_eq!(smallest(&symbol("amqp:open:list")), sym8);
    assert_eq!(wide(&symbol("x")), [0xb3, 0x00, 0x00, 0x00, 0x01, b'x']);
}

#[test]
fn s1_6_21_symbol_must_be_ascii() {
    let input = [
        0xb3, 0x00, 0x00, 0x00, 0x02, // sym32, 2 bytes
        0xc2, 0xb0, // U+00B0: UTF-8, not ASCII
    ];
    assert_eq!(err(&input), DecodeError::NonAsciiSymbol { encoding: Encoding::Sym32 });
}

#[test]
fn s1_6_19_size_beyond_the_bytes_present() {
    let input = [
        0xa0, 0x05, // vbin8, 5 bytes
        0x01, 0x02, // only 2 follow
    ];
    let expected =
        DecodeError::SizeBeyondInput { encoding: Encoding::Vbin8, declared: 5, present: 2 };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_19_size_over_the_configured_maximum() {
    let mut input = vec![
        0xb0, // vbin32
        0x00, 0x00, 0x00, 0x11, // 17 bytes, all present
    ];
    input.extend([0u8; 17]);
    let limits = Limits { max_size: 16, ..Limits::default() };
    let expected = DecodeError::SizeOverLimit { encoding: Encoding::Vbin32, declared: 17, max: 16 };
    assert_eq!(decode(&Bytes::from(input), &limits), Err(expected));
}

// §1.6.22: list ---------------------------------------------------------------------

#[test]
fn s1_6_22_list0_list8_and_list32() {
    assert_eq!(whole(&[0x45]), Value::List(vec![])); // list0
    let list8 = [
        0xc0, // list8
        0x04, // size: count byte and 3 bytes of elements
        0x02, // count
        0x40, // null
        0x52, 0x05, // smalluint 5
    ];
    assert_eq!(whole(&list8), Value::List(vec![Value::Null, Value::Uint(5)]));
    let list32 = [
        0xd0, // list32
        0x00, 0x00, 0x00, 0x05, // size: count field and 1 byte
        0x00, 0x00, 0x00, 0x01, // count
        0x41, // true
    ];
    assert_eq!(whole(&list32), Value::List(vec![Value::Boolean(true)]));
    assert_eq!(smallest(&Value::List(vec![Value::Null, Value::Uint(5)])), list8);
    // Wide, true takes a data byte: size 6.
    assert_eq!(wide(&Value::List(vec![Value::Boolean(true)]))[..5], [0xd0, 0x00, 0x00, 0x00, 0x06]);
}

#[test]
fn s1_6_22_encoder_picks_list0_list8_list32_by_size() {
    assert_eq!(smallest(&Value::List(vec![])), [0x45]);
    assert_eq!(wide(&Value::List(vec![])), [0xd0, 0, 0, 0, 4, 0, 0, 0, 0]);
    // 127 two-byte elements: size 1 + 254 = 255 still fits list8.
    let fits = Value::List(vec![Value::Uint(1); 127]);
    assert_eq!(smallest(&fits)[..3], [0xc0, 0xff, 0x7f]);
    // One more: size 257 needs list32.
    let over = Value::List(vec![Value::Uint(1); 128]);
    assert_eq!(smallest(&over)[..9], [0xd0, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x80]);
    // 256 one-byte elements: the size (257) and the count need list32.
    let count = Value::List(vec![Value::Null; 256]);
    assert_eq!(smallest(&count)[0], 0xd0);
}

#[test]
fn s1_6_22_list8_count_beyond_its_size() {
    let input = [
        0xc0, // list8
        0x02, // size 2: count and one byte
        0x05, // count 5: cannot fit in 1 byte
        0x40,
    ];
    let expected = DecodeError::CountBeyondSize { encoding: Encoding::List8, count: 5, size: 1 };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_22_list32_size_beyond_the_bytes_present() {
    let input = [
        0xd0, // list32
        0x00, 0x00, 0x01, 0x00, // size 256
        0x00, 0x00, 0x00, 0x01, // count 1
        0x40,
    ];
    let expected =
        DecodeError::SizeBeyondInput { encoding: Encoding::List32, declared: 256, present: 5 };
    assert_eq!(err(&input), expected);
    assert_eq!(expected.to_string(), "§1.6.22 list32 size: 256 bytes declared, 5 present");
}

#[test]
fn s1_6_22_list32_size_over_the_maximum_is_refused_before_the_bytes() {
    let input = [
        0xd0, // list32
        0xff, 0xff, 0xff, 0xff, // size 4 GiB - 1
    ];
    let expected = DecodeError::SizeOverLimit {
        encoding: Encoding::List32,
        declared: 0xffff_ffff,
        max: Limits::DEFAULT_MAX_SIZE,
    };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_22_list8_elements_ending_before_its_size() {
    let input = [
        0xc0, // list8
        0x03, // size 3
        0x01, // count 1
        0x40, // null
        0x40, // a byte inside the size that no element claims
    ];
    let expected = DecodeError::SizeMismatch { encoding: Encoding::List8, declared: 3, used: 2 };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_22_list8_element_running_past_its_size() {
    let input = [
        0xc0, // list8
        0x02, // size 2
        0x01, // count 1
        0x52, // smalluint, whose byte is outside the list
        0x07,
    ];
    let expected = DecodeError::Truncated { encoding: Encoding::SmallUint, needed: 1, present: 0 };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_22_list8_size_too_small_for_its_count() {
    let input = [
        0xc0, // list8
        0x00, // size 0: no room for the count
    ];
    let expected = DecodeError::Truncated { encoding: Encoding::List8, needed: 1, present: 0 };
    assert_eq!(err(&input), expected);
}

// §1.6.23: map ---------------------------------------------------------------------

#[test]
fn s1_6_23_map8_and_map32() {
    let map8 = [
        0xc1, // map8
        0x07, // size
        0x02, // count: one key and one value
        0xa3, 0x01, b'k', // sym8 "k"
        0xa1, 0x01, b'v', // str8 "v"
    ];
    let expected = Value::Map(vec![(symbol("k"), string("v"))]);
    assert_eq!(whole(&map8), expected);
    assert_eq!(smallest(&expected), map8);
    let map32 = [
        0xd1, // map32
        0x00, 0x00, 0x00, 0x06, // size
        0x00, 0x00, 0x00, 0x02, // count
        0x43, // uint0
        0x40, // null
    ];
    assert_eq!(whole(&map32), Value::Map(vec![(Value::Uint(0), Value::Null)]));
}

#[test]
fn s1_6_23_map_count_must_be_even() {
    let input = [
        0xc1, // map8
        0x04, // size
        0x03, // count 3: a key without a value
        0x40, 0x40, 0x40,
    ];
    let expected = DecodeError::OddMapCount { encoding: Encoding::Map8, count: 3 };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_23_duplicate_keys_are_kept_in_wire_order() {
    let input = [
        0xc1, 0x05, 0x04, // map8, size 5, count 4
        0x43, 0x40, // uint0 → null
        0x43, 0x41, // uint0 → true
    ];
    let expected =
        Value::Map(vec![(Value::Uint(0), Value::Null), (Value::Uint(0), Value::Boolean(true))]);
    assert_eq!(whole(&input), expected);
}

// §1.6.24: array -------------------------------------------------------------------

#[test]
fn s1_6_24_array8_of_smalluint() {
    let array8 = [
        0xe0, // array8
        0x05, // size: count, constructor, three elements
        0x03, // count
        0x52, // element constructor: smalluint
        0x01, 0x02, 0x03,
    ];
    let expected = Value::Array(Array::new(
        PrimitiveType::Uint,
        vec![Value::Uint(1), Value::Uint(2), Value::Uint(3)],
    ));
    assert_eq!(whole(&array8), expected);
    assert_eq!(smallest(&expected), array8);
}

#[test]
fn s1_6_24_array32_of_symbols_as_capabilities_are_sent() {
    let array32 = [
        0xf0, // array32
        0x00, 0x00, 0x00, 0x0e, // size
        0x00, 0x00, 0x00, 0x02, // count
        0xb3, // element constructor: sym32
        0x00, 0x00, 0x00, 0x01, b'a', // "a"
        0x00, 0x00, 0x00, 0x00, // ""
    ];
    let expected = Value::Array(Array::new(
        PrimitiveType::Symbol,
        vec![symbol("a"), Value::Symbol(Symbol::default())],
    ));
    assert_eq!(whole(&array32), expected);
    assert_eq!(wide(&expected), array32);
    assert_eq!(smallest(&expected), [0xe0, 0x05, 0x02, 0xa3, 0x01, b'a', 0x00]);
}

#[test]
fn s1_6_24_array_of_described_values_shares_one_descriptor() {
    let input = [
        0xe0, // array8
        0x07, // size
        0x02, // count
        0x00, 0x53, 0x77, // descriptor: ulong 0x77 (amqp:amqp-value:*, part 3)
        0x50, // element constructor: ubyte
        0x0a, 0x0b,
    ];
    let expected = Value::Array(Array {
        descriptor: Some(Descriptor::Code(0x77)),
        element: PrimitiveType::Ubyte,
        items: vec![Value::Ubyte(0x0a), Value::Ubyte(0x0b)],
    });
    assert_eq!(whole(&input), expected);
    assert_eq!(smallest(&expected), input);
}

#[test]
fn s1_6_24_array_of_lists_and_of_booleans() {
    let input = [
        0xe0, // array8
        0x08, // size
        0x02, // count
        0xc0, // element constructor: list8
        0x01, 0x00, // []
        0x03, 0x01, 0x52, 0x09, // [9]
    ];
    let lists = Value::Array(Array::new(
        PrimitiveType::List,
        vec![Value::List(vec![]), Value::List(vec![Value::Uint(9)])],
    ));
    assert_eq!(whole(&input), lists);
    assert_eq!(smallest(&lists), input);
    let booleans = Value::Array(Array::new(
        PrimitiveType::Boolean,
        vec![Value::Boolean(true), Value::Boolean(false)],
    ));
    // One constructor for both: boolean with a data byte.
    assert_eq!(smallest(&booleans), [0xe0, 0x04, 0x02, 0x56, 0x01, 0x00]);
}

#[test]
fn s1_6_24_array_count_beyond_its_fixed_width_elements() {
    let input = [
        0xe0, // array8
        0x0a, // size 10: count, constructor, 8 bytes
        0x03, // count 3 uints: 12 bytes needed
        0x70, // element constructor: uint
        0, 0, 0, 1, 0, 0, 0, 2,
    ];
    let expected = DecodeError::CountBeyondSize { encoding: Encoding::Array8, count: 3, size: 8 };
    assert_eq!(err(&input), expected);
}

#[test]
fn s1_6_24_array_of_zero_width_elements_counts_against_the_size_limit() {
    let three_nulls = [
        0xe0, 0x02, 0x03, // array8, size 2, count 3
        0x40, // element constructor: null, zero bytes each
    ];
    let expected = Value::Array(Array::new(PrimitiveType::Null, vec![Value::Null; 3]));
    assert_eq!(whole(&three_nulls), expected);
    let many = [
        0xf0, // array32
        0x00, 0x00, 0x00, 0x05, // size
        0xff, 0xff, 0xff, 0xff, // count 4 294 967 295
        0x40, // null
    ];
    let expected = DecodeError::ZeroWidthOverLimit {
        encoding: Encoding::Array32,
        count: 0xffff_ffff,
        left: Limits::DEFAULT_MAX_SIZE,
    };
    assert_eq!(err(&many), expected);
}

#[test]
fn s1_6_24_zero_width_elements_share_one_budget_per_value() {
    let limits = Limits { max_size: 10, ..Limits::default() };
    let input = [
        0xc0, 0x09, 0x02, // list8, size 9, count 2
        0xe0, 0x02, 0x06, 0x41, // array8 of six true (0x41: zero width)
        0xe0, 0x02, 0x06, 0x43, // array8 of six uint0: 12 in all, over 10
    ];
    let expected =
        DecodeError::ZeroWidthOverLimit { encoding: Encoding::Array8, count: 6, left: 4 };
    assert_eq!(decode(&Bytes::copy_from_slice(&input), &limits), Err(expected));
    assert!(decode(&Bytes::copy_from_slice(&input[3..7]), &limits).is_ok());
}

#[test]
fn s1_6_24_array_element_constructor_must_be_defined() {
    let unknown = [
        0xe0, 0x03, 0x01, // array8, size 3, count 1
        0x01, // element constructor 0x01: none
        0x00,
    ];
    assert_eq!(err(&unknown), DecodeError::UnknownConstructor { code: 0x01 });
    let nested = [
        0xe0, 0x07, 0x01, // array8, size 7, count 1
        0x00, 0x53, 0x01, // descriptor 1
        0x00, 0x53, 0x02, // a second descriptor
        0x50, // ubyte
    ];
    assert_eq!(err(&nested), DecodeError::NestedArrayDescriptor);
}

#[test]
fn s1_6_24_array_item_of_another_type_is_not_encoded() {
    let array = Value::Array(Array::new(PrimitiveType::Uint, vec![Value::Uint(1), string("two")]));
    let mut out = BytesMut::new();
    let expected = EncodeError::ArrayElementMismatch {
        element: PrimitiveType::Uint,
        index: 1,
        found: "string",
    };
    assert_eq!(encode(&array, &mut out), Err(expected));
    assert!(out.is_empty(), "nothing written");
}

// §1.5: descriptors; §1.1.2: described values ---------------------------------------

#[test]
fn s1_5_described_value_with_ulong_and_symbol_descriptors() {
    let code = [
        0x00, // descriptor constructor
        0x53, 0x75, // smallulong 0x75: amqp:data:binary (part 3 §3.2.6)
        0xa0, 0x01, 0x2a, // vbin8 [0x2a]
    ];
    let expected = Value::from(Described::new(0x75, Value::Binary(Bytes::from_static(&[0x2a]))));
    assert_eq!(whole(&code), expected);
    assert_eq!(smallest(&expected), code);
    let name = [
        0x00, // descriptor constructor
        0xa3, 0x03, b'a', b':', b'b', // sym8 "a:b"
        0x40, // null
    ];
    let expected = Value::from(Described::new(Symbol::from_static("a:b"), Value::Null));
    assert_eq!(whole(&name), expected);
    assert_eq!(smallest(&expected), name);
}

#[test]
fn s1_5_descriptor_of_another_type_is_refused() {
    let string_descriptor = [
        0x00, // descriptor constructor
        0xa1, 0x01, b'x', // str8: not ulong or symbol
        0x40,
    ];
    assert_eq!(err(&string_descriptor), DecodeError::InvalidDescriptor { code: 0xa1 });
    let described_descriptor = [0x00, 0x00, 0x53, 0x01, 0x53, 0x02, 0x40];
    assert_eq!(err(&described_descriptor), DecodeError::InvalidDescriptor { code: 0x00 });
}

#[test]
fn s1_1_2_a_described_value_may_be_described() {
    let input = [
        0x00, 0x53, 0x01, // descriptor 1
        0x00, 0x53, 0x02, // descriptor 2
        0x43, // uint0
    ];
    let expected = Value::from(Described::new(1, Value::from(Described::new(2, Value::Uint(0)))));
    assert_eq!(whole(&input), expected);
    assert_eq!(smallest(&expected), input);
}

// Nesting depth ---------------------------------------------------------------------

/// `depth` list8s nested inside one another, the innermost empty.
fn nested_lists(depth: usize) -> Vec<u8> {
    let mut bytes = vec![0xc0, 0x01, 0x00];
    for _ in 1..depth {
        let size = bytes.len() + 1;
        let mut outer = vec![0xc0, size as u8, 0x01];
        outer.extend(bytes);
        bytes = outer;
    }
    bytes
}

#[test]
fn nesting_at_the_depth_limit_is_accepted_one_more_is_refused() {
    let limits = Limits::default();
    let at_limit = Bytes::from(nested_lists(limits.max_depth));
    assert!(decode(&at_limit, &limits).is_ok());
    let over = Bytes::from(nested_lists(limits.max_depth + 1));
    assert_eq!(decode(&over, &limits), Err(DecodeError::TooDeep { max: limits.max_depth }));
}

#[test]
fn described_values_count_toward_the_depth() {
    let limits = Limits { max_depth: 2, ..Limits::default() };
    let input = [
        0x00, 0x53, 0x01, // described (depth 1)
        0xc0, 0x05, 0x01, // list8 (depth 2)
        0x00, 0x53, 0x02, // described (depth 3)
        0x40,
    ];
    assert_eq!(
        decode(&Bytes::copy_from_slice(&input), &limits),
        Err(DecodeError::TooDeep { max: 2 })
    );
}

#[test]
fn deep_nesting_of_thousands_is_refused_without_recursing() {
    // 100 000 descriptors, each describing the next: no size bounds them, the
    // depth limit stops the decoder long before the stack is at risk.
    let mut input = Vec::new();
    for _ in 0..100_000 {
        input.extend([0x00, 0x53, 0x01]);
    }
    input.push(0x40);
    let limits = Limits::default();
    assert_eq!(decode(&Bytes::from(input), &limits), Err(DecodeError::TooDeep { max: 32 }));
}

// §1.4: composites ------------------------------------------------------------------

/// An `open` (part 2 §2.7.1) with container-id "c1", hostname "h" and two trailing
/// nulls, as a sender that does not truncate writes it.
const OPEN: [u8; 16] = [
    0x00, 0x53, 0x10, // descriptor: amqp:open:list
    0xc0, 0x0a, 0x04, // list8, size 10, count 4
    0xa1, 0x02, b'c', b'1', // container-id "c1"
    0xa1, 0x01, b'h', // hostname "h"
    0x40, // max-frame-size: null
    0x40, // channel-max: null
    0x40, // beyond the list's size
];

#[test]
fn s1_4_composite_drops_trailing_nulls_and_reads_missing_fields_as_null() {
    let input = Bytes::copy_from_slice(&OPEN);
    let (open, used) = Composite::decode(&input, &Limits::default()).expect("open");
    assert_eq!(used, 15);
    assert_eq!(open.descriptor, Descriptor::Code(0x10));
    assert_eq!(open.fields(), [string("c1"), string("h")]);
    assert_eq!(open.field(2), &Value::Null);
    assert_eq!(open.field(9), &Value::Null);
}

#[test]
fn s1_4_composite_is_written_truncated() {
    let open = Composite::new(0x10, vec![string("c1"), string("h"), Value::Null, Value::Null]);
    let mut out = BytesMut::new();
    open.encode(&mut out).expect("open");
    let expected = [
        0x00, 0x53, 0x10, // amqp:open:list
        0xc0, 0x08, 0x02, // list8, size 8, count 2
        0xa1, 0x02, b'c', b'1', // container-id
        0xa1, 0x01, b'h', // hostname
    ];
    assert_eq!(out[..], expected);
    assert_eq!(Value::from(open.clone()), whole(&expected));
    let mut wide = BytesMut::new();
    open.encode_as(Form::Wide, &mut wide).expect("open");
    assert_eq!(wide[..4], [0x00, 0x80, 0x00, 0x00]);
}

#[test]
fn s1_4_composite_with_no_fields_is_list0() {
    let mut out = BytesMut::new();
    Composite::new(0x17, vec![Value::Null]).encode(&mut out).expect("end");
    assert_eq!(out[..], [0x00, 0x53, 0x17, 0x45]); // end, list0
}

#[test]
fn s1_4_a_composite_is_a_described_list() {
    assert!(matches!(
        Composite::from_value(Value::List(vec![])),
        Err(DecodeError::NotComposite { .. })
    ));
    let map = Value::from(Described::new(0x74, Value::Map(vec![])));
    assert!(matches!(Composite::from_value(map), Err(DecodeError::NotComposite { .. })));
}

/// The streaming composite writer gives the bytes of the collected composite: in
/// every list width, trailing nulls dropped, and with a descriptor code beyond a
/// byte (none of the standard's, but a peer's extension could be).
#[test]
fn composite_encoder_matches_encode_described_list() {
    use super::CompositeEncoder;
    let long = Value::Binary(bytes::Bytes::from(alloc::vec![7u8; 300]));
    let cases: [(u64, alloc::vec::Vec<Value>); 5] = [
        (0x10, alloc::vec![]),
        (0x10, alloc::vec![Value::Null, Value::Null]),
        (0x14, alloc::vec![Value::Uint(1), Value::Null, Value::Boolean(true), Value::Null]),
        (0x75, alloc::vec![long.clone(), Value::Null]),
        (0x1_0000_0001, alloc::vec![Value::Ulong(5), long]),
    ];
    for (code, fields) in cases {
        let mut direct = BytesMut::from(&b"prefix"[..]);
        let mut writer = CompositeEncoder::new(&mut direct);
        for field in &fields {
            writer.field(field);
        }
        writer.finish(code).expect("encodes");
        let mut collected = BytesMut::from(&b"prefix"[..]);
        Composite::new(code, fields.clone()).encode(&mut collected).expect("encodes");
        assert_eq!(direct, collected, "{code:#x} {fields:?}");
    }
}
