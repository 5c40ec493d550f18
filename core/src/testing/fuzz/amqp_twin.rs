//! The twin and method message readers' fuzz target and its seeds (spec file §5.6,
//! §5.7, TV-19, TV-20), both roles.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use crate::amqp::message::{Message, MessageId};
use crate::amqp::methods;
use crate::amqp::twin::{TwinOperation, TwinReply, TwinRequest, TwinResponse};
use crate::amqp::types::Limits;
use crate::iothub::{MethodRequest, MethodResponse, Twin};

/// Limits small enough that the fuzzer reaches them.
const FUZZ_LIMITS: Limits = Limits { max_size: 4096, max_depth: 12 };

/// Reads the input as a message payload (part 3 §3.2) and gives it to every reader
/// of both roles: the hub's twin-request and method-response readers, the device's
/// twin-reply and method-request readers.
///
/// Properties: whatever reads writes a message that reads back to it through bytes
/// (a method request's id may come back as the same GUID in lower case: a GUID
/// string is re-sent as a uuid, spec file §5.7); a refused twin request keeps the
/// correlation-id it had, so the hub can answer it 400; nothing panics.
pub fn amqp_twin(data: &[u8]) {
    let Ok(message) = Message::decode(&Bytes::copy_from_slice(data), &FUZZ_LIMITS) else {
        return;
    };
    match TwinRequest::from_message(&message) {
        Ok(request) => {
            let again = TwinRequest::from_message(&through_bytes(&request.to_message()));
            assert_eq!(again, Ok(request));
        }
        Err(e) => {
            let id = message.properties.as_ref().and_then(|p| p.correlation_id.clone());
            assert_eq!(e.correlation_id, id, "{e}");
        }
    }
    if let Ok(reply) = TwinReply::from_message(&message) {
        assert_eq!(TwinReply::from_message(&through_bytes(&reply.to_message())), Ok(reply));
    }
    if let Ok((request, _)) = methods::request_from_message(&message) {
        let again =
            methods::request_from_message(&through_bytes(&methods::request_to_message(&request)));
        let Ok((again, correlation)) = again else { panic!("{request:?} does not read back") };
        assert!(again.request_id.eq_ignore_ascii_case(&request.request_id), "{again:?}");
        assert_eq!((&again.name, &again.payload), (&request.name, &request.payload));
        assert_eq!(correlation, methods::correlation_id(&request.request_id));
    }
    if let Ok(response) = methods::response_from_message(&message) {
        let correlation = methods::correlation_id(&response.request_id);
        let written = methods::response_to_message(&response, correlation);
        let Ok(again) = methods::response_from_message(&through_bytes(&written)) else {
            panic!("{response:?} does not read back")
        };
        assert!(again.request_id.eq_ignore_ascii_case(&response.request_id), "{again:?}");
        assert_eq!((again.status, &again.payload), (response.status, &response.payload));
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

/// TV-19's requests, responses and notification; TV-20's request and response.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let c1 = || MessageId::String("c-1".into());
    let request = |operation| TwinRequest { correlation_id: c1(), operation }.to_message();
    let response = |status, version, body: &'static [u8]| {
        TwinReply::Response(TwinResponse {
            correlation_id: c1(),
            status,
            version,
            body: Bytes::from_static(body),
        })
        .to_message()
    };
    let guid = "6a1f0c2e-1b2c-4d3e-8f40-5a6b7c8d9e0f";
    let method = MethodRequest {
        request_id: String::from(guid),
        name: String::from("reboot"),
        payload: Bytes::from_static(b"{\"delay\":5}"),
    };
    let answer = MethodResponse {
        request_id: String::from(guid),
        status: 200,
        payload: Bytes::from_static(b"{\"result\":\"ok\"}"),
    };
    let twin = Twin::default().to_json();
    let messages = [
        request(TwinOperation::PatchReported(Bytes::from_static(b"{\"batteryLevel\":60}"))),
        request(TwinOperation::Get),
        request(TwinOperation::SubscribeDesired),
        request(TwinOperation::UnsubscribeDesired),
        response(204, Some(2), b""),
        response(400, None, b"{\"errorCode\":400004,\"message\":\"not a JSON object\"}"),
        TwinReply::Response(TwinResponse {
            correlation_id: c1(),
            status: 200,
            version: None,
            body: Bytes::from(twin),
        })
        .to_message(),
        TwinReply::Desired(Bytes::from_static(b"{\"x\":1,\"$version\":9}")).to_message(),
        methods::request_to_message(&method),
        methods::response_to_message(&answer, methods::correlation_id(guid)),
    ];
    messages
        .iter()
        .filter_map(|m| {
            let mut out = BytesMut::new();
            m.encode(&mut out).ok().map(|()| out.to_vec())
        })
        .collect()
}
