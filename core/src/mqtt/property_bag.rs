//! Property bags: `k1=v1&k2=v2` at the end of telemetry and C2D topics (spec file
//! §4.2), carrying a [`Message`]'s system properties (keys `$.mid`, `$.cid`, …; spec
//! file §3 table) and its application properties.
//!
//! Writing follows the spec's emulator guidance for hub → device topics, the
//! strictest any SDK parser needs: every byte outside `A-Z a-z 0-9 - . _ ~` is
//! percent-encoded in names and values, so no raw `/`, `=` or `&` ever appears.
//! Reading is as lenient as the SDKs' writers make necessary: only `%XX` escapes are
//! decoded, and every other character (Node's unescaped `! ' ( ) *`, the C SDK's
//! unescaped user properties) stands for itself.

use alloc::string::String;
use percent_encoding::utf8_percent_encode;

use crate::iothub::{Ack, Message, UNRESERVED, percent_decode};
use crate::time::Timestamp;

/// Why a property bag was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PropertyBagError {
    /// A `%` not followed by two hex digits, or escapes that decode to invalid UTF-8.
    #[error("invalid percent-encoding in property bag")]
    InvalidEncoding,
    /// `$.exp` is not an RFC 3339 date-time.
    #[error("`$.exp` is not an RFC 3339 date-time")]
    InvalidExpiry,
    /// `iothub-ack` is not one of `none`, `positive`, `negative`, `full` (spec file §7).
    #[error("unknown `iothub-ack` value")]
    InvalidAck,
}

/// Keys of the system properties that map to [`Message`] fields, in the order
/// [`encode`] writes them (spec file §3 table). Node and Python read exactly these
/// (spec file §4.2).
const MESSAGE_ID: &str = "$.mid";
const CORRELATION_ID: &str = "$.cid";
const USER_ID: &str = "$.uid";
const TO: &str = "$.to";
const CONTENT_TYPE: &str = "$.ct";
const CONTENT_ENCODING: &str = "$.ce";
const EXPIRY: &str = "$.exp";
/// The C2D feedback request (spec file §3 table, §7).
const ACK: &str = "iothub-ack";

/// Whether `name` is written from, and read into, a [`Message`] field rather than
/// [`Message::properties`].
fn is_field_key(name: &str) -> bool {
    matches!(
        name,
        MESSAGE_ID | CORRELATION_ID | USER_ID | TO | CONTENT_TYPE | CONTENT_ENCODING | EXPIRY | ACK
    )
}

/// Appends `message`'s properties to `out` as a property bag (spec file §4.2,
/// TV-11, TV-12).
///
/// Order: the system properties `$.mid`, `$.cid`, `$.uid`, `$.to`, `$.ct`, `$.ce`,
/// `$.exp` (those that are set), then `iothub-ack` unless absent or `none`, then the
/// application properties in their order. A property without a value is written as
/// its bare name, an empty one as `name=`. Nothing is written for a message without
/// properties.
///
/// Not written: application properties whose name is one of the keys above (the
/// field is the only source of that key, so a bag never names one twice), and
/// properties with an empty name (a bare empty name would be an empty segment,
/// which readers skip). Expiries after year 9999 are written as
/// 9999-12-31T23:59:59.999Z.
pub fn encode(message: &Message, out: &mut String) {
    let expiry = message.expiry.map(Timestamp::to_rfc3339);
    let ack = message.ack.filter(|a| *a != Ack::None).map(Ack::as_str);
    let system = [
        (MESSAGE_ID, message.message_id.as_deref()),
        (CORRELATION_ID, message.correlation_id.as_deref()),
        (USER_ID, message.user_id.as_deref()),
        (TO, message.to.as_deref()),
        (CONTENT_TYPE, message.content_type.as_deref()),
        (CONTENT_ENCODING, message.content_encoding.as_deref()),
        (EXPIRY, expiry.as_deref()),
        (ACK, ack),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, Some(v))));
    let application =
        message.properties.iter().filter(|(name, _)| !name.is_empty() && !is_field_key(name));

    for (i, (name, value)) in system.chain(application).enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.extend(utf8_percent_encode(name, UNRESERVED));
        if let Some(value) = value {
            out.push('=');
            out.extend(utf8_percent_encode(value, UNRESERVED));
        }
    }
}

/// Reads a property bag into `message` (spec file §4.2, TV-11, TV-12).
///
/// The bag is split on `&`, each pair at its first `=`, and both sides are
/// percent-decoded (`+` stays `+`). One trailing `/` (Node's module outputs,
/// `…/events/%24.on=out1/`) and empty segments are skipped, and so are pairs with
/// an empty name. The decoded keys `$.mid`, `$.cid`, `$.uid`, `$.to`, `$.ct`, `$.ce`,
/// `$.exp` (RFC 3339, any offset) and `iothub-ack` set their [`Message`] fields; a
/// bare key sets its field to `None`. Every other key, the other `$.` system keys
/// (`$.ctime`, `$.on`, `$.sub`, `$.ifid`, `$.schema`, `$.cdid`, …) included, goes to
/// [`Message::properties`] under its decoded name, so nothing is lost and the layer
/// that knows their meaning decides: a bare key gets the value `None`, `key=` gets
/// `Some("")`. A key given twice keeps its last value. Fields the bag does not name
/// are left as they were.
///
/// # Errors
///
/// [`PropertyBagError::InvalidEncoding`] for a broken `%` escape or decoded bytes
/// that are not UTF-8, [`PropertyBagError::InvalidExpiry`] for an unparseable
/// `$.exp`, [`PropertyBagError::InvalidAck`] for an unknown `iothub-ack`. On error
/// `message` may hold the pairs before the bad one.
pub fn decode(bag: &str, message: &mut Message) -> Result<(), PropertyBagError> {
    let bag = bag.strip_suffix('/').unwrap_or(bag);
    for pair in bag.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (pair, None),
        };
        let name = percent_decode(name).ok_or(PropertyBagError::InvalidEncoding)?;
        let value = value
            .map(|v| percent_decode(v).ok_or(PropertyBagError::InvalidEncoding))
            .transpose()?
            .map(alloc::borrow::Cow::into_owned);
        match &*name {
            "" => {}
            MESSAGE_ID => message.message_id = value,
            CORRELATION_ID => message.correlation_id = value,
            USER_ID => message.user_id = value,
            TO => message.to = value,
            CONTENT_TYPE => message.content_type = value,
            CONTENT_ENCODING => message.content_encoding = value,
            EXPIRY => {
                message.expiry = value
                    .as_deref()
                    .map(|v| Timestamp::parse_rfc3339(v).ok_or(PropertyBagError::InvalidExpiry))
                    .transpose()?
            }
            ACK => {
                message.ack = value
                    .as_deref()
                    .map(|v| Ack::parse(v).ok_or(PropertyBagError::InvalidAck))
                    .transpose()?;
            }
            _ => message.properties.insert(name.into_owned(), value),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// TV-11's message.
    pub(crate) fn tv11_message() -> Message {
        let mut m = Message {
            message_id: Some("msg-0001".into()),
            correlation_id: Some("corr 1".into()),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            ..Message::default()
        };
        m.properties.set("alert", "high temp");
        m.properties.set("unit", "°C");
        m.properties.set("path", "a/b=c&d");
        m
    }

    const TV11_BAG: &str = concat!(
        "%24.mid=msg-0001&",
        "%24.cid=corr%201&",
        "%24.ct=application%2Fjson&",
        "%24.ce=utf-8&",
        "alert=high%20temp&",
        "unit=%C2%B0C&", // ° is U+00B0, UTF-8 C2 B0
        "path=a%2Fb%3Dc%26d",
    );

    fn encoded(m: &Message) -> String {
        let mut out = String::new();
        encode(m, &mut out);
        out
    }

    fn decoded(bag: &str) -> Result<Message, PropertyBagError> {
        let mut m = Message::default();
        decode(bag, &mut m).map(|()| m)
    }

    #[test]
    fn tv11_encodes_system_properties_first_with_full_escaping() {
        assert_eq!(encoded(&tv11_message()), TV11_BAG);
    }

    #[test]
    fn tv11_decodes_to_the_inputs() {
        assert_eq!(decoded(TV11_BAG), Ok(tv11_message()));
    }

    #[test]
    fn tv11_pairs_in_any_order_decode_the_same() {
        let mut pairs: Vec<&str> = TV11_BAG.split('&').collect();
        pairs.reverse();
        let m = decoded(&pairs.join("&")).unwrap();
        assert_eq!(m.message_id, tv11_message().message_id);
        assert_eq!(m.content_type, tv11_message().content_type);
        // Application properties keep the order they arrived in.
        let names: Vec<&str> = m.properties.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["path", "unit", "alert"]);
        assert_eq!(m.properties.get("path"), Some(Some("a/b=c&d")));
    }

    #[test]
    fn tv11_trailing_slash_is_ignored() {
        assert_eq!(decoded(&[TV11_BAG, "/"].concat()), Ok(tv11_message()));
    }

    #[test]
    fn tv11_node_style_unescaped_punctuation_is_literal() {
        // encodeURIComponent leaves ! ' ( ) * as they are (spec file §4.2).
        let m = decoded("%24.mid=msg(1)!&note=it's*ok&%24.ct=application%2Fjson").unwrap();
        assert_eq!(m.message_id.as_deref(), Some("msg(1)!"));
        assert_eq!(m.properties.get("note"), Some(Some("it's*ok")));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn unescaped_dollar_and_colon_are_literal() {
        let m = decoded("$.mid=a:b&$.on=out1").unwrap();
        assert_eq!(m.message_id.as_deref(), Some("a:b"));
        assert_eq!(m.properties.get("$.on"), Some(Some("out1")));
    }

    const TV12_BAG: &str = concat!(
        "%24.mid=6a1f0c2e-0000-4000-8000-000000000001&",
        "%24.to=%2Fdevices%2Fdevice1%2Fmessages%2FdeviceBound&",
        "%24.ct=text%2Fplain%3B%20charset%3Dutf-8&",
        "%24.ce=utf-8&",
        "iothub-ack=full&",
        "color=blue&",
        "empty=&", // empty string
        "flag",    // key only: null
    );

    /// TV-12's message.
    pub(crate) fn tv12_message() -> Message {
        let mut m = Message {
            message_id: Some("6a1f0c2e-0000-4000-8000-000000000001".into()),
            to: Some("/devices/device1/messages/deviceBound".into()),
            content_type: Some("text/plain; charset=utf-8".into()),
            content_encoding: Some("utf-8".into()),
            ack: Some(Ack::Full),
            ..Message::default()
        };
        m.properties.set("color", "blue");
        m.properties.set("empty", "");
        m.properties.insert("flag", None);
        m
    }

    #[test]
    fn tv12_decodes_fields_empty_value_and_bare_key() {
        let m = decoded(TV12_BAG).unwrap();
        assert_eq!(m, tv12_message());
        assert_eq!(m.properties.get("empty"), Some(Some("")));
        assert_eq!(m.properties.get("flag"), Some(None));
    }

    #[test]
    fn tv12_message_encodes_to_the_tv12_bag() {
        assert_eq!(encoded(&tv12_message()), TV12_BAG);
    }

    #[test]
    fn ack_none_is_not_written_and_unknown_ack_is_refused() {
        let m = Message { ack: Some(Ack::None), ..Message::default() };
        assert_eq!(encoded(&m), "");
        assert_eq!(decoded("iothub-ack=none").unwrap().ack, Some(Ack::None));
        assert_eq!(decoded("iothub-ack=FULL"), Err(PropertyBagError::InvalidAck));
        assert_eq!(decoded("iothub-ack="), Err(PropertyBagError::InvalidAck));
        assert_eq!(decoded("iothub-ack").unwrap().ack, None);
    }

    #[test]
    fn expiry_is_written_as_rfc3339_utc_milliseconds() {
        let m = Message {
            // 2024-01-02T03:04:05.678Z
            expiry: Some(Timestamp::from_millis(1_704_164_645_678)),
            ..Message::default()
        };
        assert_eq!(encoded(&m), "%24.exp=2024-01-02T03%3A04%3A05.678Z");
        assert_eq!(decoded(&encoded(&m)), Ok(m));
    }

    #[test]
    fn expiry_reads_any_rfc3339_offset_and_precision() {
        let t = |s: &str| decoded(&["%24.exp=", s].concat()).map(|m| m.expiry);
        let expected = Ok(Some(Timestamp::from_millis(1_704_164_645_000)));
        assert_eq!(t("2024-01-02T03:04:05Z"), expected);
        // .NET round-trip format: seven fractional digits.
        assert_eq!(t("2024-01-02T03:04:05.0000000Z"), expected);
        assert_eq!(t("2024-01-02T05:04:05%2B02:00"), expected);
        assert_eq!(t("2024-01-02T03%3A04%3A05.000Z"), expected);
        // Sub-millisecond digits are dropped.
        assert_eq!(
            t("2024-01-02T03:04:05.0019999Z"),
            Ok(Some(Timestamp::from_millis(1_704_164_645_001)))
        );
        assert_eq!(t("1969-12-31T23:59:59Z"), Ok(Some(Timestamp::EPOCH)));
    }

    #[test]
    fn unparseable_expiry_is_refused() {
        for bad in ["", "tomorrow", "2024-01-02", "2024-13-02T03:04:05Z", "1704164645"] {
            assert_eq!(
                decoded(&["%24.exp=", bad].concat()),
                Err(PropertyBagError::InvalidExpiry),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expiry_past_year_9999_is_written_as_the_last_writable_instant() {
        let m = Message { expiry: Some(Timestamp::from_millis(u64::MAX)), ..Message::default() };
        assert_eq!(encoded(&m), "%24.exp=9999-12-31T23%3A59%3A59.999Z");
    }

    #[test]
    fn unicode_names_and_values_round_trip() {
        let mut m = Message::default();
        m.properties.set("température", "21 °C");
        m.properties.set("名前", "値🙂");
        let bag = encoded(&m);
        assert!(bag.is_ascii());
        assert_eq!(decoded(&bag), Ok(m));
    }

    #[test]
    fn separators_and_dollar_in_names_and_values_are_escaped() {
        let mut m = Message::default();
        m.properties.set("a=b&c", "x=y&z");
        m.properties.set("$.custom", "/+?#");
        let bag = encoded(&m);
        assert_eq!(bag, "a%3Db%26c=x%3Dy%26z&%24.custom=%2F%2B%3F%23");
        assert_eq!(decoded(&bag), Ok(m));
    }

    #[test]
    fn plus_is_not_a_space() {
        let m = decoded("q=a+b").unwrap();
        assert_eq!(m.properties.get("q"), Some(Some("a+b")));
    }

    #[test]
    fn raw_equals_after_the_first_belongs_to_the_value() {
        let m = decoded("k=a=b").unwrap();
        assert_eq!(m.properties.get("k"), Some(Some("a=b")));
    }

    #[test]
    fn empty_bag_and_empty_segments_yield_nothing() {
        for bag in ["", "/", "&", "&&/", "=x", "=&="] {
            assert_eq!(decoded(bag), Ok(Message::default()), "{bag:?}");
        }
        assert_eq!(encoded(&Message::default()), "");
        let m = decoded("&a=1&&b=2&").unwrap();
        assert_eq!(m.properties.len(), 2);
    }

    #[test]
    fn empty_names_and_field_keys_in_properties_are_not_written() {
        let mut m = Message::default();
        m.properties.insert("", None);
        m.properties.set("$.mid", "spoof");
        m.properties.set("iothub-ack", "full");
        m.properties.set("k", "v");
        assert_eq!(encoded(&m), "k=v");
    }

    #[test]
    fn bare_system_key_unsets_and_empty_value_is_empty() {
        let mut m = Message { message_id: Some("old".into()), ..Message::default() };
        decode("%24.mid&%24.cid=", &mut m).unwrap();
        assert_eq!(m.message_id, None);
        assert_eq!(m.correlation_id.as_deref(), Some(""));
    }

    #[test]
    fn other_system_keys_are_kept_as_properties() {
        let m = decoded(
            "%24.ctime=2024-01-02T03%3A04%3A05Z&%24.on=out1&%24.sub=thermostat1\
             &%24.ifid=urn&%24.schema=s1&%24.cdid=device1",
        )
        .unwrap();
        let names: Vec<&str> = m.properties.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["$.ctime", "$.on", "$.sub", "$.ifid", "$.schema", "$.cdid"]);
        assert_eq!(m.properties.get("$.on"), Some(Some("out1")));
    }

    #[test]
    fn broken_escapes_are_invalid_encoding() {
        for bag in ["k=%zz", "%zz=v", "k=%", "k=%4", "k=%4g", "k=ok%2"] {
            assert_eq!(decoded(bag), Err(PropertyBagError::InvalidEncoding), "{bag:?}");
        }
    }

    #[test]
    fn escapes_decoding_to_invalid_utf8_are_invalid_encoding() {
        // %C3 starts a two-byte sequence that never ends.
        assert_eq!(decoded("k=%C3"), Err(PropertyBagError::InvalidEncoding));
        assert_eq!(decoded("%C3=v"), Err(PropertyBagError::InvalidEncoding));
        // A lone continuation byte, and an overlong '/'.
        assert_eq!(decoded("k=%80"), Err(PropertyBagError::InvalidEncoding));
        assert_eq!(decoded("k=%C0%AF"), Err(PropertyBagError::InvalidEncoding));
    }

    #[test]
    fn lower_case_hex_escapes_decode() {
        let m = decoded("%24.ct=application%2fjson").unwrap();
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
    }

    fn text() -> impl Strategy<Value = String> {
        any::<String>()
    }

    fn ack() -> impl Strategy<Value = Option<Ack>> {
        // `none` is the default and not written, so it cannot come back.
        proptest::option::of(prop_oneof![Just(Ack::Positive), Just(Ack::Negative), Just(Ack::Full)])
    }

    prop_compose! {
        /// Messages with arbitrary properties that [`encode`] writes.
        pub(crate) fn message()(
            message_id in proptest::option::of(text()),
            correlation_id in proptest::option::of(text()),
            user_id in proptest::option::of(text()),
            to in proptest::option::of(text()),
            content_type in proptest::option::of(text()),
            content_encoding in proptest::option::of(text()),
            expiry in proptest::option::of(0..=Timestamp::LAST_RFC3339.as_millis()),
            ack in ack(),
            properties in proptest::collection::vec(
                (
                    text().prop_filter("written names", |n| !n.is_empty() && !is_field_key(n)),
                    proptest::option::of(text()),
                ),
                0..8,
            ),
        ) -> Message {
            let mut m = Message {
                message_id,
                correlation_id,
                user_id,
                to,
                content_type,
                content_encoding,
                expiry: expiry.map(Timestamp::from_millis),
                ack,
                ..Message::default()
            };
            for (name, value) in properties {
                m.properties.insert(name, value);
            }
            m
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_gives_the_message_back(m in message()) {
            let bag = encoded(&m);
            prop_assert!(bag.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)));
            prop_assert_eq!(decoded(&bag), Ok(m));
        }

        #[test]
        fn decode_never_panics(bag in prop_oneof![any::<String>(), "[%0-9a-fA-F=&/.$é]{0,40}"]) {
            let _ = decoded(&bag);
        }
    }
}
