//! The AMQP type decoder's fuzz target and its seeds.

use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::types::{
    self, Array, Composite, Described, Form, Limits, PrimitiveType, Symbol, Value,
};
use crate::utf8::Utf8Bytes;

/// Limits small enough that the fuzzer reaches them: 1 KiB values, 12 levels.
const FUZZ_LIMITS: Limits = Limits { max_size: 1024, max_depth: 12 };

/// Decodes values one after another from `data`, as message sections follow one
/// another in a transfer, until the input ends or an error.
///
/// Properties: each value takes at least one byte and no more than remain; it
/// encodes in the smallest and the wide forms, [`types::encoded_len`] is the length
/// written, and each encoding decodes to the same value using every byte; a value
/// that is a composite (§1.4) writes and reads back as the same composite.
pub fn amqp_types(data: &[u8]) {
    let input = Bytes::copy_from_slice(data);
    let mut pos = 0;
    while pos < input.len() {
        let rest = input.slice(pos..);
        let Ok((value, used)) = types::decode(&rest, &FUZZ_LIMITS) else {
            return;
        };
        assert!((1..=rest.len()).contains(&used), "used {used} of {}", rest.len());
        for form in [Form::Smallest, Form::Wide] {
            assert_reencodes(&value, form);
        }
        if let Ok(composite) = Composite::from_value(value) {
            let mut out = BytesMut::new();
            if let Err(e) = composite.encode(&mut out) {
                panic!("decoded {composite:?} does not encode: {e}");
            }
            let again = Composite::decode(&out.freeze(), &Limits::default());
            assert_eq!(again.map(|(c, _)| c), Ok(composite), "composite round trip");
        }
        pos += used;
    }
}

/// Encode → decode gives `value` back, using every byte.
fn assert_reencodes(value: &Value, form: Form) {
    let mut out = BytesMut::new();
    if let Err(e) = types::encode_as(value, form, &mut out) {
        panic!("decoded {value:?} does not encode ({form:?}): {e}");
    }
    assert_eq!(out.len(), types::encoded_len(value, form), "encoded_len is wrong");
    let bytes = out.freeze();
    // The default limits: a wide re-encoding may outgrow the fuzzing ones.
    let decoded = types::decode(&bytes, &Limits::default());
    assert_eq!(decoded, Ok((value.clone(), bytes.len())), "{form:?}: {bytes:02x?}");
}

fn string(s: &'static str) -> Value {
    Value::String(Utf8Bytes::from_static(s))
}

fn symbol(s: &'static str) -> Value {
    Value::Symbol(Symbol::from_static(s))
}

fn encoded(values: &[Value], form: Form) -> Vec<u8> {
    let mut out = BytesMut::new();
    for value in values {
        if let Err(e) = types::encode_as(value, form, &mut out) {
            panic!("seed {value:?}: {e}");
        }
    }
    out.to_vec()
}

fn composite(descriptor: u64, fields: Vec<Value>) -> Value {
    Value::from(Composite::new(descriptor, fields))
}

/// One value of every fixed-width type, in each of its encodings' ranges.
fn fixed_width_values() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Boolean(true),
        Value::Boolean(false),
        Value::Ubyte(0xab),
        Value::Ushort(0xabcd),
        Value::Uint(0),
        Value::Uint(200),
        Value::Uint(70_000),
        Value::Ulong(0),
        Value::Ulong(0x53),
        Value::Ulong(1 << 40),
        Value::Byte(-3),
        Value::Short(-300),
        Value::Int(-5),
        Value::Int(1 << 20),
        Value::Long(7),
        Value::Long(-(1 << 40)),
        Value::Float(21.5),
        Value::Double(-0.125),
        Value::Decimal32([0x22, 0x50, 0x00, 0x01]),
        Value::Decimal64([0x22, 0x38, 0, 0, 0, 0, 0, 0x01]),
        Value::Decimal128([0x22, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]),
        Value::Char('°'),
        Value::Timestamp(1_700_000_000_000),
        // TV-18's lock token GUID as an AMQP uuid.
        Value::Uuid([
            0x6a, 0x1f, 0x0c, 0x2e, 0x1b, 0x2c, 0x4d, 0x3e, 0x8f, 0x40, 0x5a, 0x6b, 0x7c, 0x8d,
            0x9e, 0x0f,
        ]),
    ]
}

/// An IoT Hub telemetry message as a transfer carries it (part 3 §3.2; spec file
/// §5.4): message annotations, properties, application properties, one data section.
fn telemetry_sections() -> Vec<Value> {
    vec![
        Value::from(Described::new(
            0x72,
            Value::Map(vec![
                (symbol("iothub-interface-id"), string("dtmi:example:Thermostat;1")),
                (symbol("dt-subject"), string("thermostat1")),
            ]),
        )),
        composite(
            0x73,
            vec![
                string("6a1f0c2e-0000-4000-8000-000000000001"),
                Value::Null,
                string("/devices/device1/messages/events"),
                Value::Null,
                Value::Null,
                Value::Null,
                symbol("application/json"),
                symbol("utf-8"),
            ],
        ),
        Value::from(Described::new(
            0x74,
            Value::Map(vec![
                (string("alert"), string("high temp")),
                (string("unit"), string("°C")),
                (string("iothub-creation-time-utc"), string("2023-11-14T22:13:20Z")),
            ]),
        )),
        Value::from(Described::new(0x75, Value::Binary(Bytes::from_static(b"{\"t\":21.5}")))),
    ]
}

/// Every type in its smallest and its wide encodings; performatives an IoT Hub
/// connection opens with (part 2 §2.7); a telemetry message's sections; TV-17's
/// put-token application properties.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let variable = vec![
        Value::Binary(Bytes::from_static(&[0, 1, 2, 0xff])),
        string("héllo"),
        symbol("amqp:decode-error"),
        Value::Binary(Bytes::from(vec![0x5a; 300])),
    ];
    let compounds = vec![
        Value::List(vec![]),
        Value::List(vec![Value::Uint(1), string("two"), Value::List(vec![Value::Null])]),
        Value::Map(vec![(symbol("com.microsoft:client-version"), string("hubwire/0.1"))]),
        Value::Array(Array::new(
            PrimitiveType::Symbol,
            vec![symbol("ANONYMOUS"), symbol("MSSBCBS"), symbol("PLAIN")],
        )),
        Value::Array(Array::new(PrimitiveType::Uint, vec![Value::Uint(1), Value::Uint(300)])),
        Value::Array(Array {
            descriptor: Some(0x75u64.into()),
            element: PrimitiveType::Binary,
            items: vec![Value::Binary(Bytes::from_static(b"a"))],
        }),
        Value::Array(Array::new(
            PrimitiveType::List,
            vec![Value::List(vec![Value::Boolean(true)]), Value::List(vec![])],
        )),
    ];
    // open (0x10): container-id, hostname, max-frame-size, channel-max, idle-time-out
    // as the C SDK sends them (spec file §5.1).
    let open = composite(
        0x10,
        vec![
            string("c1b6d0a4e8f24e8b9d3a5f7c1e2d4b6a8c0e2f41"),
            string("myhub.azure-devices.net"),
            Value::Uint(65_536),
            Value::Ushort(65_535),
            Value::Uint(240_000),
        ],
    );
    // attach (0x12) of the $cbs sender, with source (0x28) and target (0x29).
    let attach = composite(
        0x12,
        vec![
            string("$cbs-sender"),
            Value::Uint(0),
            Value::Boolean(false),
            Value::Null,
            Value::Null,
            composite(0x28, vec![string("$cbs")]),
            composite(0x29, vec![string("$cbs")]),
            Value::Null,
            Value::Null,
            Value::Uint(0),
            Value::Ulong(1 << 20),
            Value::Null,
            Value::Null,
            Value::Map(vec![(symbol("com.microsoft:client-version"), string("hubwire/0.1"))]),
        ],
    );
    let put_token = Value::from(Described::new(
        0x74,
        Value::Map(vec![
            (string("operation"), string("put-token")),
            (string("type"), string("servicebus.windows.net:sastoken")),
            (string("name"), string("myhub.azure-devices.net%2Fdevices%2Fdevice1")),
        ]),
    ));
    let mut seeds = Vec::new();
    for form in [Form::Smallest, Form::Wide] {
        seeds.push(encoded(&fixed_width_values(), form));
        seeds.push(encoded(&variable, form));
        seeds.push(encoded(&compounds, form));
        seeds.push(encoded(&telemetry_sections(), form));
    }
    seeds.push(encoded(&[open], Form::Smallest));
    seeds.push(encoded(&[attach], Form::Smallest));
    seeds.push(encoded(&[put_token], Form::Smallest));
    // Described values with symbolic descriptors, nested (§1.1.2, §1.5).
    seeds.push(encoded(
        &[Value::from(Described::new(
            Symbol::from_static("amqp:rejected:list"),
            Value::List(vec![Value::from(Described::new(
                Symbol::from_static("amqp:error:list"),
                Value::List(vec![symbol("amqp:link:message-size-exceeded")]),
            ))]),
        ))],
        Form::Smallest,
    ));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed is values to its last byte within the fuzzing limits, so the
    /// fuzzer starts from the round trips, not from the error paths.
    #[test]
    fn seeds_are_whole_values() {
        for (i, seed) in seeds().iter().enumerate() {
            let input = Bytes::copy_from_slice(seed);
            let mut pos = 0;
            while pos < input.len() {
                match types::decode(&input.slice(pos..), &FUZZ_LIMITS) {
                    Ok((_, used)) => pos += used,
                    Err(e) => panic!("seed {i} at byte {pos}: {e}"),
                }
            }
        }
    }
}
