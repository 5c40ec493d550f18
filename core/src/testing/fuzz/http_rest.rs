//! The REST readers' fuzz target and its seeds (spec file §6): routes, messages in
//! headers, telemetry batches, lock tokens and error bodies.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::http::{self, Route, batch, message, rest};
use crate::iothub::{LockToken, Message};

/// What the first byte asks the rest to be read as.
const REQUEST: u8 = 0;
const C2D_RESPONSE: u8 = 1;
const BATCH: u8 = 2;

/// The first byte chooses (modulo 3) how the rest is read: as a request head (its
/// route and the D2C message in its headers), as a C2D response head, or as a batch
/// body; the rest is also read as a lock token and an error body.
///
/// Properties: a route read from a request line reads back from the target it
/// writes; a message read from headers writes headers that read back to it (D2C and
/// C2D); a batch that decodes encodes to a batch that decodes to the same messages
/// (properties compared as sets, since a JSON object keeps no order), or is refused
/// for a property no header can carry; a lock token reads back from its text;
/// nothing panics.
pub fn http_rest(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let _ = rest::error_description(rest);
    if let Ok(lock) = String::from_utf8_lossy(rest).parse::<LockToken>() {
        assert_eq!(lock.to_string().parse::<LockToken>(), Ok(lock));
    }
    let limits = http::Limits::default();
    match selector % 3 {
        REQUEST => {
            let Ok(Some((head, used))) = http::parse_request(rest, &limits) else { return };
            if let Ok(route) = Route::parse(&head.method, &head.target) {
                assert_eq!(Route::parse(route.method(), &route.target()), Ok(route.clone()));
            }
            let body = Bytes::copy_from_slice(rest.get(used..).unwrap_or_default());
            let Ok(m) = message::read_d2c(&head.headers, body) else { return };
            let mut headers = Vec::new();
            // Header values arrive as field values already: they write back.
            if let Err(e) = message::write_d2c(&m, &mut headers) {
                panic!("{m:?} read from headers does not write back: {e}");
            }
            assert_eq!(message::read_d2c(&headers, m.body.clone()).as_ref(), Ok(&m));
        }
        C2D_RESPONSE => {
            let Ok(Some((head, used))) = http::parse_response(rest, &limits) else { return };
            let body = Bytes::copy_from_slice(rest.get(used..).unwrap_or_default());
            let Ok((c2d, m)) = message::read_c2d(&head.headers, body) else { return };
            let mut headers = Vec::new();
            if let Err(e) = message::write_c2d(&c2d, &m, &mut headers) {
                panic!("{m:?} read from headers does not write back: {e}");
            }
            let again = message::read_c2d(&headers, m.body.clone());
            assert_eq!(again, Ok((c2d, m)));
        }
        _ => {
            let Ok(messages) = batch::decode(rest) else { return };
            let Ok(body) = batch::encode(&messages) else { return };
            let again = match batch::decode(&body) {
                Ok(again) => again,
                Err(e) => panic!("an encoded batch does not decode: {e}"),
            };
            assert_eq!(again.len(), messages.len());
            for (a, m) in again.iter().zip(&messages) {
                assert_eq!(properties(a), properties(m));
                let plain = |m: &Message| Message { properties: Default::default(), ..m.clone() };
                assert_eq!(plain(a), plain(m));
            }
        }
    }
}

/// A message's properties in name order.
fn properties(m: &Message) -> Vec<(String, Option<String>)> {
    let mut properties: Vec<_> =
        m.properties.iter().map(|(n, v)| (String::from(n), v.map(String::from))).collect();
    properties.sort();
    properties
}

/// A request with properties and a route, a TV-15 response and a TV-16 batch.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let request = b"POST /devices/dev1/messages/events?api-version=2021-04-12 HTTP/1.1\r\n\
        Host: localhost\r\niothub-messageid: m1\r\niothub-app-unit: C\r\n\
        iothub-expiry: 2024-01-02T03:04:05.000Z\r\nContent-Length: 2\r\n\r\nhi";
    let response = b"HTTP/1.1 200 OK\r\nETag: \"0f8fad5b-d9cb-469f-a165-70867728950e\"\r\n\
        iothub-messageid: msg-42\r\niothub-correlationid: corr-9\r\niothub-sequencenumber: 17\r\n\
        iothub-to: /devices/device1/messages/deviceBound\r\n\
        iothub-enqueuedtime: 2024-01-02T03:04:05.0000000Z\r\niothub-deliverycount: 0\r\n\
        iothub-ack: full\r\niothub-app-color: blue\r\nContent-Length: 2\r\n\r\nhi";
    let batch = br#"[{"body":"eyJ0IjoyMS41fQ==","properties":{"iothub-app-unit":"C","iothub-messageid":"m1"}},{"body":"hello","base64Encoded":false}]"#;
    let settle = b"DELETE /devices/dev1/messages/deviceBound/0f8fad5b-d9cb-469f-a165-70867728950e?api-version=1&reject HTTP/1.1\r\nHost: h\r\n\r\n";
    [
        (REQUEST, &request[..]),
        (C2D_RESPONSE, &response[..]),
        (BATCH, &batch[..]),
        (REQUEST, &settle[..]),
    ]
    .into_iter()
    .map(|(selector, rest)| [&[selector][..], rest].concat())
    .collect()
}
