//! SASL frames (part 5 §5.3.3), PLAIN messages (RFC 4616) and IoT Hub's SAS user
//! names (spec file §5.1, TV-18).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec as prop_vec;
use proptest::prelude::*;

use super::*;
use crate::amqp::types::{Limits, Symbol};
use crate::utf8::Utf8Bytes;

fn decode(bytes: &[u8]) -> Result<SaslFrame, SaslError> {
    SaslFrame::decode(&Bytes::copy_from_slice(bytes), &Limits::default())
}

fn encoded(frame: &SaslFrame) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode(&mut out).expect("encodable");
    out.to_vec()
}

#[test]
fn s5_3_3_1_sasl_mechanisms_as_a_server_sends_them() {
    let bytes = [
        0x00, 0x53, 0x40, // descriptor: smallulong 0x40 (sasl-mechanisms)
        0xc0, 0x13, 0x01, // list8: size 19, 1 field
        0xe0, 0x10, 0x02, 0xa3, // array8: size 16, 2 elements of sym8
        0x05, b'P', b'L', b'A', b'I', b'N', // "PLAIN"
        0x07, b'M', b'S', b'S', b'B', b'C', b'B', b'S', // "MSSBCBS"
    ];
    assert_eq!(decode(&bytes), Ok(SaslFrame::Mechanisms(vec![PLAIN, MSSBCBS])));
    assert_eq!(encoded(&SaslFrame::Mechanisms(vec![PLAIN, MSSBCBS])), bytes);
}

#[test]
fn s5_3_3_1_one_mechanism_may_come_as_a_single_symbol() {
    // multiple="true" (part 1 §1.4): a lone value stands for an array of one.
    let bytes = [
        0x00, 0x53, 0x40, // sasl-mechanisms
        0xc0, 0x0c, 0x01, // list8: size 12, 1 field
        0xa3, 0x09, b'A', b'N', b'O', b'N', b'Y', b'M', b'O', b'U', b'S', // sym8 "ANONYMOUS"
    ];
    assert_eq!(decode(&bytes), Ok(SaslFrame::Mechanisms(vec![ANONYMOUS])));
}

#[test]
fn s5_3_3_1_mechanisms_are_mandatory() {
    let bytes = [0x00, 0x53, 0x40, 0x45]; // sasl-mechanisms, list0
    assert!(matches!(decode(&bytes), Err(SaslError::Field(_))));
}

#[test]
fn s5_3_3_2_sasl_init_needs_its_mechanism() {
    // sasl-init with a null mechanism and an initial response.
    let bytes = [0x00, 0x53, 0x41, 0xc0, 0x05, 0x02, 0x40, 0xa0, 0x01, 0x00];
    assert!(matches!(decode(&bytes), Err(SaslError::Field(_))));
}

#[test]
fn s5_3_3_6_a_sasl_code_above_4_is_refused() {
    let bytes = [0x00, 0x53, 0x44, 0xc0, 0x03, 0x01, 0x50, 0x05]; // outcome, ubyte 5
    assert_eq!(decode(&bytes), Err(SaslError::Code { code: 5 }));
    let ok = [0x00, 0x53, 0x44, 0xc0, 0x03, 0x01, 0x50, 0x01]; // outcome, ubyte 1 (auth)
    assert_eq!(decode(&ok), Ok(SaslFrame::Outcome { code: SaslCode::Auth, additional_data: None }));
}

#[test]
fn s5_3_3_other_descriptors_and_trailing_bytes_are_refused() {
    let open = [0x00, 0x53, 0x10, 0x45]; // amqp:open:list is not a SASL frame
    assert!(matches!(decode(&open), Err(SaslError::UnknownDescriptor { .. })));
    let trailing = [0x00, 0x53, 0x44, 0xc0, 0x03, 0x01, 0x50, 0x00, 0x40];
    assert!(matches!(decode(&trailing), Err(SaslError::Decode(_))));
}

/// TV-3's token (the TV-6 form, without `skn`).
const TV3_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
    &sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";

#[test]
fn tv18_plain_initial_response_for_device1_is_154_bytes() {
    let user = SasUser { device_id: "device1".into(), module_id: None, hub_name: "myhub".into() };
    let plain = PlainResponse {
        authzid: String::new(),
        authcid: user.to_string(),
        password: TV3_TOKEN.into(),
    };
    let bytes = plain.to_bytes();
    assert_eq!(bytes.len(), 154);
    assert_eq!(bytes.first(), Some(&0));
    assert!(bytes[1..].starts_with(b"device1@sas.myhub\0SharedAccessSignature "));
    let parsed = PlainResponse::parse(&bytes).expect("a PLAIN message");
    assert_eq!(parsed, plain);
    assert_eq!(SasUser::parse(&parsed.authcid), Some(user));
}

#[test]
fn rfc_4616_2_malformed_plain_messages_are_refused() {
    for bad in [&b"no-nuls"[..], b"\0user", b"\0\0pass", b"\0user\0", b"a\0b\0c\0d", b"\0u\0\xff"] {
        assert_eq!(PlainResponse::parse(bad), Err(PlainError::Malformed), "{bad:?}");
    }
    let long = [&b"\0u\0"[..], &[b'p'; 256]].concat();
    assert_eq!(PlainResponse::parse(&long), Err(PlainError::Malformed));
}

#[test]
fn sas_user_names_of_devices_and_modules() {
    let module = SasUser::parse("dev@1/modules/m1@sas.hub").expect("a module");
    assert_eq!(
        module,
        SasUser { device_id: "dev@1".into(), module_id: Some("m1".into()), hub_name: "hub".into() }
    );
    assert_eq!(module.to_string(), "dev@1/modules/m1@sas.hub");
    for not_a_device in [
        "device1",
        "device1@hub",
        "device1@sas.",
        "@sas.hub",
        "policy@sas.root.hub",
        "d/modules/@sas.hub",
    ] {
        assert_eq!(SasUser::parse(not_a_device), None, "{not_a_device}");
    }
}

fn symbol() -> impl Strategy<Value = Symbol> {
    "[A-Z0-9-]{1,12}".prop_map(|s: String| Symbol::try_from_bytes(Bytes::from(s)).expect("ASCII"))
}

fn binary() -> impl Strategy<Value = Bytes> {
    prop_vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn frame() -> impl Strategy<Value = SaslFrame> {
    let code = prop_oneof![
        Just(SaslCode::Ok),
        Just(SaslCode::Auth),
        Just(SaslCode::Sys),
        Just(SaslCode::SysPerm),
        Just(SaslCode::SysTemp),
    ];
    prop_oneof![
        prop_vec(symbol(), 1..4).prop_map(SaslFrame::Mechanisms),
        (symbol(), proptest::option::of(binary()), proptest::option::of("\\PC{0,12}")).prop_map(
            |(mechanism, initial_response, hostname)| SaslFrame::Init {
                mechanism,
                initial_response,
                hostname: hostname.map(|h: String| Utf8Bytes::from(h)),
            }
        ),
        binary().prop_map(SaslFrame::Challenge),
        binary().prop_map(SaslFrame::Response),
        (code, proptest::option::of(binary()))
            .prop_map(|(code, additional_data)| SaslFrame::Outcome { code, additional_data }),
    ]
}

proptest! {
    #[test]
    fn every_sasl_frame_round_trips(frame in frame()) {
        let bytes = encoded(&frame);
        prop_assert_eq!(decode(&bytes), Ok(frame));
    }

    #[test]
    fn plain_messages_round_trip(
        authzid in "[^\u{0}]{0,20}",
        authcid in "[^\u{0}]{1,40}",
        password in "[^\u{0}]{1,80}",
    ) {
        let plain = PlainResponse { authzid, authcid, password };
        prop_assert_eq!(PlainResponse::parse(&plain.to_bytes()), Ok(plain));
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in prop_vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
        let _ = PlainResponse::parse(&bytes);
    }
}
