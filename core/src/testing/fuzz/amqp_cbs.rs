//! The CBS and link-address readers' fuzz target and its seeds (spec file §5.2,
//! §5.3).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::address::NodeAddress;
use crate::amqp::cbs::{Audience, PutToken, PutTokenResponse};
use crate::amqp::message::{Message, MessageId};
use crate::amqp::performative::Role;
use crate::amqp::types::Limits;
use crate::iothub::{Identity, SasToken};

/// Limits small enough that the fuzzer reaches them.
const FUZZ_LIMITS: Limits = Limits { max_size: 4096, max_depth: 12 };

/// What the first byte asks the rest to be read as.
const MESSAGE: u8 = 0;
const TEXT: u8 = 1;

/// The first byte chooses (modulo 2) how the rest is read: as a message payload
/// (part 3 §3.2) that the hub reads as a put-token and the device as a put-token
/// response, or as text (lossy UTF-8) that the hub reads as a link address and as a
/// put-token audience.
///
/// Properties: whatever reads as a put-token or a response writes a message that
/// reads back to it through bytes; a refused put-token refuses with status 400 and
/// carries the request's message-id when it has one; whatever reads as an address
/// writes a path that reads back to the same node; nothing panics.
pub fn amqp_cbs(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == MESSAGE {
        let Ok(message) = Message::decode(&Bytes::copy_from_slice(rest), &FUZZ_LIMITS) else {
            return;
        };
        match PutToken::from_message(&message) {
            Ok(put) => {
                assert_eq!(
                    PutToken::from_message(&through_bytes(&put.to_message())),
                    Ok(put.clone())
                );
                let _ = Audience::parse(&put.audience);
            }
            Err(e) => {
                assert_eq!(e.status_code(), 400, "{e}");
                let id = message.properties.as_ref().and_then(|p| p.message_id.clone());
                assert_eq!(e.response(&message).map(|r| r.correlation_id), id);
            }
        }
        if let Ok(response) = PutTokenResponse::from_message(&message) {
            let again = PutTokenResponse::from_message(&through_bytes(&response.to_message()));
            assert_eq!(again, Ok(response));
        }
    } else {
        let text = String::from_utf8_lossy(rest);
        if let Ok(parsed) = NodeAddress::parse(&text) {
            let path = parsed.node.path();
            assert_eq!(
                NodeAddress::parse(&path).map(|p| p.node),
                Ok(parsed.node.clone()),
                "{path}"
            );
            for role in [Role::Sender, Role::Receiver] {
                let _ = parsed.node.check_attach(role, |_| true);
            }
        }
        if let Ok(audience) = Audience::parse(&text) {
            assert!(Identity::is_valid_id(&audience.identity.device_id));
            assert!(!audience.host.is_empty());
        }
    }
}

/// `message` encoded and decoded again.
fn through_bytes(message: &Message) -> Message {
    let mut out = BytesMut::new();
    if let Err(e) = message.encode(&mut out) {
        panic!("{message:?} does not encode: {e}");
    }
    match Message::decode(&out.freeze(), &Limits::default()) {
        Ok(message) => message,
        Err(e) => panic!("an encoded message does not decode: {e}"),
    }
}

/// put-tokens in Node's and the C SDK's forms and responses to them (TV-17), the
/// spec file's addresses (§5.3) and audiences.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let token = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
                 &sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
    let mut messages = Vec::new();
    if let Ok(token) = SasToken::parse(token) {
        let node = PutToken::for_token(
            MessageId::String("3f1c2e4a-5b6d-4e7f-8091-a2b3c4d5e6f7".into()),
            &token,
        );
        let mut c = node.to_message();
        if let Some(p) = c.properties.as_mut() {
            p.message_id = Some(MessageId::Ulong(0));
            p.to = None;
            p.reply_to = None;
        }
        messages.push(node.to_message());
        messages.push(c);
    }
    messages.push(PutTokenResponse::ok(MessageId::Ulong(0)).to_message());
    messages.push(PutTokenResponse::ok(MessageId::Uuid([0x6a; 16])).to_message());
    for message in messages {
        let mut out = BytesMut::new();
        if message.encode(&mut out).is_ok() {
            seeds.push([&[MESSAGE][..], &out].concat());
        }
    }
    for text in [
        "$cbs",
        "/devices/device1/messages/events",
        "/devices/device1/modules/module1/messages/events",
        "/devices/device1/messages/devicebound",
        "amqps://myhub.azure-devices.net/devices/device1/messages/deviceBound",
        "amqps://myhub.azure-devices.net:5671/devices/device1/methods/devicebound",
        "/devices/dev%231/modules/m%2B1/twin",
        "myhub.azure-devices.net%2Fdevices%2Fdevice1",
        "myhub.azure-devices.net/devices/device1/modules/module1",
    ] {
        seeds.push([&[TEXT][..], text.as_bytes()].concat());
    }
    seeds
}
