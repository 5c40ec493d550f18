//! The AMQP message and SASL frame decoders' fuzz target and its seeds.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::message::{self, HubStamps, Message};
use crate::amqp::sasl::{self, PlainResponse, SaslCode, SaslFrame};
use crate::amqp::types::Limits;
use crate::iothub;

/// Limits small enough that the fuzzer reaches them.
const FUZZ_LIMITS: Limits = Limits { max_size: 4096, max_depth: 12 };

/// What the first byte asks the rest to be read as.
const MESSAGE: u8 = 0;
const BATCH: u8 = 1;
const SASL: u8 = 2;

/// The first byte chooses the decoder (modulo 3): a transfer's message payload
/// (part 3 §3.2), the body of a batched transfer (message-format 0x80013700, spec
/// file §5.4), or a SASL frame body (part 5 §5.3.3); the rest is its input.
///
/// Properties: whatever decodes encodes, and decodes back to itself; a decoded
/// message maps to IoT Hub's model or says why not, without panicking.
pub fn amqp_message(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let input = Bytes::copy_from_slice(rest);
    match selector % 3 {
        MESSAGE => {
            let Ok(decoded) = Message::decode(&input, &FUZZ_LIMITS) else { return };
            let _ = message::to_iothub(&decoded);
            let mut out = BytesMut::new();
            if let Err(e) = decoded.encode(&mut out) {
                panic!("decoded {decoded:?} does not encode: {e}");
            }
            let again = Message::decode(&out.freeze(), &Limits::default());
            assert_eq!(again.as_ref(), Ok(&decoded), "message round trip");
        }
        BATCH => {
            let Ok(decoded) = message::decode_batch(&input, &FUZZ_LIMITS) else { return };
            let mut out = BytesMut::new();
            if let Err(e) = message::encode_batch(&decoded, &mut out) {
                panic!("decoded batch {decoded:?} does not encode: {e}");
            }
            let again = message::decode_batch(&out.freeze(), &Limits::default());
            assert_eq!(again.as_ref(), Ok(&decoded), "batch round trip");
        }
        _ => {
            let Ok(decoded) = SaslFrame::decode(&input, &FUZZ_LIMITS) else { return };
            if let SaslFrame::Init { initial_response: Some(response), .. } = &decoded {
                if let Ok(plain) = PlainResponse::parse(response) {
                    assert_eq!(PlainResponse::parse(&plain.to_bytes()), Ok(plain.clone()));
                    let _ = sasl::SasUser::parse(&plain.authcid);
                }
            }
            let mut out = BytesMut::new();
            if let Err(e) = decoded.encode(&mut out) {
                panic!("decoded {decoded:?} does not encode: {e}");
            }
            let again = SaslFrame::decode(&out.freeze(), &Limits::default());
            assert_eq!(again.as_ref(), Ok(&decoded), "SASL frame round trip");
        }
    }
}

/// IoT Hub telemetry and C2D messages as the hub and the SDKs encode them, a batch
/// of two, and the SASL exchange of a PLAIN login.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let mut telemetry = iothub::Message::new(&b"{\"temperature\":21.5}"[..]);
    telemetry.message_id = Some(String::from("6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f"));
    telemetry.correlation_id = Some(String::from("corr-1"));
    telemetry.content_type = Some(String::from("application/json"));
    telemetry.content_encoding = Some(String::from("utf-8"));
    telemetry.properties.set("unit", "°C");
    telemetry.properties.set("alert", "high");
    let stamped =
        HubStamps { connection_device_id: Some(String::from("device1")), ..HubStamps::default() };
    let mut seeds = Vec::new();
    let mut amqp = Vec::new();
    for stamps in [HubStamps::default(), stamped] {
        let Ok(message) = message::from_iothub(&telemetry, &stamps) else {
            continue;
        };
        let mut out = BytesMut::new();
        if message.encode(&mut out).is_ok() {
            seeds.push([&[MESSAGE][..], &out].concat());
        }
        amqp.push(message);
    }
    let mut batch = BytesMut::new();
    if message::encode_batch(&amqp, &mut batch).is_ok() {
        seeds.push([&[BATCH][..], &batch].concat());
    }
    let plain = PlainResponse {
        authzid: String::new(),
        authcid: String::from("device1@sas.myhub"),
        password: String::from(
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=x&se=1",
        ),
    };
    let frames = [
        SaslFrame::Mechanisms(vec![sasl::PLAIN, sasl::MSSBCBS, sasl::ANONYMOUS]),
        SaslFrame::Init {
            mechanism: sasl::PLAIN,
            initial_response: Some(plain.to_bytes()),
            hostname: Some("myhub.azure-devices.net".into()),
        },
        SaslFrame::Outcome { code: SaslCode::Ok, additional_data: None },
    ];
    for frame in frames {
        let mut out = BytesMut::new();
        if frame.encode(&mut out).is_ok() {
            seeds.push([&[SASL][..], &out].concat());
        }
    }
    seeds
}
