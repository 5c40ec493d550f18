//! IoT Hub topic names and filters for messages (spec file §4.3, §4.4, §4.7):
//! telemetry `devices/{d}[/modules/{m}]/messages/events/{bag}` and cloud-to-device
//! `devices/{d}/messages/devicebound/{bag}`, with a [property bag](super::property_bag)
//! at the end.
//!
//! Matching is case-sensitive, as MQTT topic names are (MQTT 3.1.1 §4.7.3), and
//! every SDK sends exactly these spellings (spec file §4.3, §4.4): a topic in
//! another case is unknown.
//!
//! Ids in topics come in two forms: Python percent-encodes them, Node and C insert
//! them raw (spec file §2.1). Since `%` is itself a legal id character, readers here
//! try both. Writers insert ids raw, as Node and C do (the C SDK finds the property
//! bag by the length of its own subscription filter), except an id holding `+` or
//! `#`: legal in ids, they are MQTT wildcards no topic name may hold
//! [MQTT-3.3.2-2], so such an id is percent-encoded whole, as Python does.

use alloc::string::String;
use bytes::Bytes;
use percent_encoding::utf8_percent_encode;

use super::property_bag::{self, PropertyBagError};
use super::topic_rules::TopicName;
use crate::iothub::{Identity, Message, UNRESERVED, percent_decode};

/// Appends `id` to a topic: raw, or percent-encoded whole when it holds a wildcard
/// (encoding only the wildcards would leave a raw `%` to be misread).
fn push_id(topic: &mut String, id: &str) {
    if id.contains(['+', '#']) {
        topic.extend(utf8_percent_encode(id, UNRESERVED));
    } else {
        topic.push_str(id);
    }
}

/// A topic IoT Hub knows, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `devices/{d}[/modules/{m}]/messages/events[/{bag}]` (spec file §4.3, §4.7).
    Telemetry {
        /// Identity in the topic (see [`parse`] for how ids are decoded).
        identity: Identity,
        /// The property bag, still encoded, any trailing `/` included; may be empty.
        bag: &'a str,
    },
    /// `devices/{d}/messages/devicebound[/{bag}]` (spec file §4.4).
    C2d {
        /// Device id in the topic (see [`parse`] for how ids are decoded).
        device_id: String,
        /// The property bag, still encoded; may be empty.
        bag: &'a str,
    },
}

/// Why a PUBLISH's topic gave no message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Not a topic of the kind asked for: the caller tries its next parser (twin,
    /// methods) or treats the topic as unknown (spec file §4.3: most likely a
    /// disconnect on the hub).
    #[error("not a topic of this kind")]
    NoMatch,
    /// The right kind of topic, for another device or module than the one asked
    /// about.
    #[error("topic names another identity")]
    WrongIdentity,
    /// The topic's property bag is broken.
    #[error(transparent)]
    PropertyBag(#[from] PropertyBagError),
}

/// Which message topic a [`Path`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Telemetry,
    C2d,
}

/// A message topic with its id segments as sent.
#[derive(Debug)]
struct Path<'a> {
    device: &'a str,
    module: Option<&'a str>,
    kind: Kind,
    bag: &'a str,
}

/// Splits a message topic without decoding anything.
fn split(topic: &str) -> Option<Path<'_>> {
    let rest = topic.strip_prefix("devices/")?;
    let (device, rest) = rest.split_once('/')?;
    let (module, rest) = match rest.strip_prefix("modules/") {
        Some(rest) => {
            let (module, rest) = rest.split_once('/')?;
            (Some(module), rest)
        }
        None => (None, rest),
    };
    let rest = rest.strip_prefix("messages/")?;
    let (kind, bag) = match (bag_after(rest, "events"), bag_after(rest, "devicebound")) {
        (Some(bag), _) => (Kind::Telemetry, bag),
        // IoT Hub delivers C2D to devices only; module inputs are another topic.
        (None, Some(bag)) if module.is_none() => (Kind::C2d, bag),
        _ => return None,
    };
    Some(Path { device, module, kind, bag })
}

/// What follows the segment `name` at the start of `rest`: nothing, or `/` and a
/// bag. EDGE accepts both `…/events` and `…/events/` (spec file §4.3).
fn bag_after<'a>(rest: &'a str, name: &str) -> Option<&'a str> {
    match rest.strip_prefix(name)? {
        "" => Some(""),
        after => after.strip_prefix('/'),
    }
}

/// Whether a topic segment names `id` in either form.
fn names(segment: &str, id: &str) -> bool {
    segment == id || percent_decode(segment).is_some_and(|decoded| decoded == id)
}

impl Path<'_> {
    fn is_for(&self, identity: &Identity) -> bool {
        names(self.device, &identity.device_id)
            && match (self.module, &identity.module_id) {
                (None, None) => true,
                (Some(segment), Some(id)) => names(segment, id),
                _ => false,
            }
    }
}

/// Parses a message topic; `None` when it is not one IoT Hub knows or an id in it
/// is not valid (spec file §2.1).
///
/// Recognised: `devices/{d}/messages/events`, optionally followed by `/` and a bag
/// (which may itself end in `/`, as Node's module outputs do), the same under
/// `devices/{d}/modules/{m}/`, and `devices/{d}/messages/devicebound`, optionally
/// followed by `/` and a bag. Each id is percent-decoded if that gives a valid id,
/// and taken as sent otherwise; a raw id that happens to contain a valid escape
/// (`a%41`) therefore reads as its decoded form. [`parse_telemetry`] and
/// [`parse_c2d`], which know the identity to expect, accept both.
pub fn parse(topic: &str) -> Option<Topic<'_>> {
    let path = split(topic)?;
    let device_id = Identity::id_in_segment(path.device)?;
    Some(match path.kind {
        Kind::Telemetry => Topic::Telemetry {
            identity: Identity {
                device_id,
                module_id: match path.module {
                    Some(segment) => Some(Identity::id_in_segment(segment)?),
                    None => None,
                },
            },
            bag: path.bag,
        },
        Kind::C2d => Topic::C2d { device_id, bag: path.bag },
    })
}

/// Hub side: the telemetry message `identity` published on `topic` with `body`
/// (spec file §4.3, TV-11). Also the check for a Will topic (spec file §4.1).
///
/// # Errors
///
/// [`TopicError::NoMatch`] if `topic` is not a telemetry topic,
/// [`TopicError::WrongIdentity`] if it is another device's or module's (a device
/// topic from a module connection included), [`TopicError::PropertyBag`] if its
/// bag does not decode.
pub fn parse_telemetry(
    topic: &str,
    identity: &Identity,
    body: Bytes,
) -> Result<Message, TopicError> {
    let path = split(topic).filter(|p| p.kind == Kind::Telemetry).ok_or(TopicError::NoMatch)?;
    message_for(&path, identity, body)
}

/// Device side: the C2D message the hub published to `device_id` on `topic` with
/// `body` (spec file §4.4, TV-12).
///
/// # Errors
///
/// [`TopicError::NoMatch`] if `topic` is not a C2D topic,
/// [`TopicError::WrongIdentity`] if it is another device's,
/// [`TopicError::PropertyBag`] if its bag does not decode.
pub fn parse_c2d(topic: &str, device_id: &str, body: Bytes) -> Result<Message, TopicError> {
    let path = split(topic).filter(|p| p.kind == Kind::C2d).ok_or(TopicError::NoMatch)?;
    message_for(&path, &Identity::device(device_id), body)
}

fn message_for(path: &Path<'_>, identity: &Identity, body: Bytes) -> Result<Message, TopicError> {
    if !path.is_for(identity) {
        return Err(TopicError::WrongIdentity);
    }
    let mut message = Message::new(body);
    property_bag::decode(path.bag, &mut message)?;
    Ok(message)
}

/// The telemetry topic for `message` from `identity`:
/// `devices/{d}[/modules/{m}]/messages/events/` and the property bag (spec file
/// §4.3, §4.7, TV-11). Ids go in raw.
pub fn telemetry(identity: &Identity, message: &Message) -> TopicName {
    let mut topic = String::from("devices/");
    push_id(&mut topic, &identity.device_id);
    if let Some(module_id) = &identity.module_id {
        topic.push_str("/modules/");
        push_id(&mut topic, module_id);
    }
    topic.push_str("/messages/events/");
    property_bag::encode(message, &mut topic);
    TopicName::from_escaped(topic)
}

/// The topic the hub publishes `message` to `device_id` on:
/// `devices/{d}/messages/devicebound/` and the property bag (spec file §4.4,
/// TV-12).
///
/// The `/` after `devicebound` is there even without properties, and the bag holds
/// no raw `/`: Node takes the fifth `/`-separated segment as the bag, and the C SDKs
/// take everything after the `/` (spec file §4.4).
pub fn c2d(device_id: &str, message: &Message) -> TopicName {
    let mut topic = String::from("devices/");
    push_id(&mut topic, device_id);
    topic.push_str("/messages/devicebound/");
    property_bag::encode(message, &mut topic);
    TopicName::from_escaped(topic)
}

/// The filter a device subscribes to for C2D messages:
/// `devices/{d}/messages/devicebound/#` (spec file §4.4).
pub fn c2d_filter(device_id: &str) -> String {
    let mut filter = String::from("devices/");
    push_id(&mut filter, device_id);
    filter.push_str("/messages/devicebound/#");
    filter
}

/// Whether `filter` is `device_id`'s C2D subscription: [`c2d_filter`] (with the id
/// raw or percent-encoded) or azure-sdk-for-c's `devices/+/messages/devicebound/#`,
/// which the hub scopes to the connection's device (spec file §4.4).
pub fn is_c2d_filter(filter: &str, device_id: &str) -> bool {
    filter
        .strip_prefix("devices/")
        .and_then(|rest| rest.strip_suffix("/messages/devicebound/#"))
        .is_some_and(|segment| segment == "+" || names(segment, device_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iothub::Ack;
    use crate::mqtt::property_bag::tests::{message, tv11_message, tv12_message};
    use alloc::vec::Vec;
    use proptest::prelude::*;

    const TV11_TOPIC: &str = concat!(
        "devices/device1/messages/events/",
        "%24.mid=msg-0001&%24.cid=corr%201&%24.ct=application%2Fjson&%24.ce=utf-8",
        "&alert=high%20temp&unit=%C2%B0C&path=a%2Fb%3Dc%26d",
    );

    const TV12_TOPIC: &str = concat!(
        "devices/device1/messages/devicebound/",
        "%24.mid=6a1f0c2e-0000-4000-8000-000000000001",
        "&%24.to=%2Fdevices%2Fdevice1%2Fmessages%2FdeviceBound",
        "&%24.ct=text%2Fplain%3B%20charset%3Dutf-8&%24.ce=utf-8",
        "&iothub-ack=full&color=blue&empty=&flag",
    );

    fn device1() -> Identity {
        Identity::device("device1")
    }

    fn module1() -> Identity {
        Identity { device_id: "device1".into(), module_id: Some("module1".into()) }
    }

    fn telemetry_parts(topic: &str) -> Option<(Identity, &str)> {
        match parse(topic)? {
            Topic::Telemetry { identity, bag } => Some((identity, bag)),
            Topic::C2d { .. } => None,
        }
    }

    fn c2d_parts(topic: &str) -> Option<(String, &str)> {
        match parse(topic)? {
            Topic::C2d { device_id, bag } => Some((device_id, bag)),
            Topic::Telemetry { .. } => None,
        }
    }

    #[test]
    fn tv11_telemetry_topic_is_written_exactly() {
        assert_eq!(telemetry(&device1(), &tv11_message()), TV11_TOPIC);
    }

    #[test]
    fn tv11_telemetry_topic_parses_to_the_message() {
        let (identity, bag) = telemetry_parts(TV11_TOPIC).unwrap();
        assert_eq!(identity, device1());
        assert!(bag.starts_with("%24.mid=msg-0001&"));
        let body = Bytes::from_static(b"{}");
        let m = parse_telemetry(TV11_TOPIC, &device1(), body.clone()).unwrap();
        assert_eq!(m, Message { body, ..tv11_message() });
    }

    #[test]
    fn tv11_no_property_forms() {
        assert_eq!(telemetry(&device1(), &Message::default()), "devices/device1/messages/events/");
        for topic in ["devices/device1/messages/events/", "devices/device1/messages/events"] {
            assert_eq!(telemetry_parts(topic), Some((device1(), "")), "{topic}");
            assert_eq!(parse_telemetry(topic, &device1(), Bytes::new()), Ok(Message::default()));
        }
    }

    #[test]
    fn tv11_node_module_output_with_slash_after_the_bag() {
        let topic = "devices/device1/modules/module1/messages/events/%24.on=out1/";
        assert_eq!(telemetry_parts(topic), Some((module1(), "%24.on=out1/")));
        let m = parse_telemetry(topic, &module1(), Bytes::new()).unwrap();
        assert_eq!(m.properties.get("$.on"), Some(Some("out1")));
        assert_eq!(m.properties.len(), 1);
    }

    #[test]
    fn module_telemetry_topic_is_written_under_modules() {
        let mut m = Message::default();
        m.properties.set("$.on", "out1");
        assert_eq!(
            telemetry(&module1(), &m),
            "devices/device1/modules/module1/messages/events/%24.on=out1"
        );
    }

    #[test]
    fn tv12_c2d_topic_is_written_exactly() {
        assert_eq!(c2d("device1", &tv12_message()), TV12_TOPIC);
    }

    #[test]
    fn tv12_c2d_topic_parses_to_the_message() {
        let (device_id, bag) = c2d_parts(TV12_TOPIC).unwrap();
        assert_eq!(device_id, "device1");
        assert!(bag.ends_with("&empty=&flag"));
        assert_eq!(parse_c2d(TV12_TOPIC, "device1", Bytes::new()), Ok(tv12_message()));
    }

    #[test]
    fn tv12_c2d_without_properties_keeps_the_slash() {
        let topic = c2d("device1", &Message::default());
        assert_eq!(topic, "devices/device1/messages/devicebound/");
        // Node's parser: segment 4 is the bag, here empty.
        assert_eq!(topic.split('/').nth(4), Some(""));
        assert_eq!(c2d_parts(&topic), Some(("device1".into(), "")));
        assert_eq!(c2d_parts("devices/device1/messages/devicebound"), Some(("device1".into(), "")));
    }

    #[test]
    fn c2d_bag_never_holds_a_raw_slash() {
        let mut m = Message {
            to: Some("/devices/device1/messages/deviceBound".into()),
            ..Message::default()
        };
        m.properties.set("path/x", "a/b");
        let topic = c2d("device1", &m);
        assert_eq!(topic.split('/').count(), 5);
    }

    #[test]
    fn sdk_c_c2d_sample_parses() {
        // azure-sdk-for-c test topic (spec file §4.4).
        let topic = "devices/useragent_c/messages/devicebound/\
                     %24.to=%2Fdevices%2Fuseragent_c%2Fmessages%2FdeviceBound&abc=123";
        let m = parse_c2d(topic, "useragent_c", Bytes::new()).unwrap();
        assert_eq!(m.to.as_deref(), Some("/devices/useragent_c/messages/deviceBound"));
        assert_eq!(m.properties.get("abc"), Some(Some("123")));
        let m = parse_c2d(
            "devices/useragent_c/messages/devicebound/abc=123&iothub-ack=full",
            "useragent_c",
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(m.ack, Some(Ack::Full));
    }

    #[test]
    fn dotnet_c2d_sample_parses() {
        // .NET SDK test topic (spec file §4.4).
        let topic = "devices/delMe/messages/devicebound/\
                     %24.to=%2Fdevices%2FdelMe%2Fmessages%2FdeviceBound\
                     &%24.ct=text%2Fplain%3B%20charset%3DUTF-8&%24.ce=utf-8";
        let m = parse_c2d(topic, "delMe", Bytes::new()).unwrap();
        assert_eq!(m.to.as_deref(), Some("/devices/delMe/messages/deviceBound"));
        assert_eq!(m.content_type.as_deref(), Some("text/plain; charset=UTF-8"));
        assert_eq!(m.content_encoding.as_deref(), Some("utf-8"));
        assert!(m.properties.is_empty());
    }

    #[test]
    fn python_percent_encoded_ids_are_decoded() {
        let topic = "devices/dev%231/modules/mod%28a%29/messages/events/";
        let identity = Identity { device_id: "dev#1".into(), module_id: Some("mod(a)".into()) };
        assert_eq!(telemetry_parts(topic), Some((identity.clone(), "")));
        assert!(parse_telemetry(topic, &identity, Bytes::new()).is_ok());
    }

    #[test]
    fn raw_ids_with_percent_are_taken_as_sent() {
        // `%` is a legal id character; Node inserts ids raw.
        let (identity, _) = telemetry_parts("devices/100%/messages/events/").unwrap();
        assert_eq!(identity.device_id, "100%");
        // A raw id that also decodes validly reads decoded, but the identity
        // check accepts the raw form.
        let topic = "devices/a%41/messages/events/";
        assert_eq!(telemetry_parts(topic).unwrap().0.device_id, "aA");
        assert!(parse_telemetry(topic, &Identity::device("a%41"), Bytes::new()).is_ok());
        assert!(parse_telemetry(topic, &Identity::device("aA"), Bytes::new()).is_ok());
    }

    #[test]
    fn raw_slash_inside_a_telemetry_bag_is_literal() {
        // The C SDK does not escape user properties by default (spec file §4.2).
        let m =
            parse_telemetry("devices/device1/messages/events/path=a/b", &device1(), Bytes::new())
                .unwrap();
        assert_eq!(m.properties.get("path"), Some(Some("a/b")));
    }

    #[test]
    fn unknown_or_malformed_topics_are_not_parsed() {
        for topic in [
            "",
            "devices",
            "devices/",
            "devices/device1",
            "devices/device1/",
            "devices/device1/messages",
            "devices/device1/messages/",
            "devices/device1/messages/event",
            "devices/device1/messages/eventsx",
            "devices/device1/messages/devicebound2/",
            "devices//messages/events/",
            "devices/device1/modules//messages/events/",
            "devices/device1/modules/module1/messages/devicebound/",
            "devices/device1/modules/module1/inputs/input1/",
            "devices/device1/modules/module1",
            "devices/dev ice/messages/events/",
            "/devices/device1/messages/events/",
            "Devices/device1/messages/events/",
            "devices/device1/Messages/events/",
            "devices/device1/messages/Events/",
            "devices/device1/messages/deviceBound/",
            "devices/device1/twin/events/",
            "$iothub/twin/GET/?$rid=1",
            "$iothub/methods/res/200/?$rid=ab12",
        ] {
            assert_eq!(parse(topic), None, "{topic:?}");
        }
        let long = ["devices/", &"x".repeat(129), "/messages/events/"].concat();
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn parse_telemetry_tells_no_match_from_wrong_identity_and_bad_bag() {
        let no_match = Err(TopicError::NoMatch);
        let wrong = Err(TopicError::WrongIdentity);
        let p = |t: &str, id: &Identity| parse_telemetry(t, id, Bytes::new());
        assert_eq!(p("$iothub/twin/GET/?$rid=1", &device1()), no_match);
        assert_eq!(p(TV12_TOPIC, &device1()), no_match);
        assert_eq!(p("devices/device2/messages/events/", &device1()), wrong);
        assert_eq!(p("devices/device1/messages/events/", &module1()), wrong);
        assert_eq!(p("devices/device1/modules/module2/messages/events/", &module1()), wrong);
        assert_eq!(p("devices/device1/modules/module1/messages/events/", &device1()), wrong);
        assert_eq!(
            p("devices/device1/messages/events/k=%zz", &device1()),
            Err(TopicError::PropertyBag(PropertyBagError::InvalidEncoding))
        );
    }

    #[test]
    fn parse_c2d_tells_no_match_from_wrong_identity_and_bad_bag() {
        let p = |t: &str, id: &str| parse_c2d(t, id, Bytes::new());
        assert_eq!(p(TV11_TOPIC, "device1"), Err(TopicError::NoMatch));
        assert_eq!(p(TV12_TOPIC, "device2"), Err(TopicError::WrongIdentity));
        assert_eq!(
            p("devices/device1/messages/devicebound/iothub-ack=maybe", "device1"),
            Err(TopicError::PropertyBag(PropertyBagError::InvalidAck))
        );
    }

    #[test]
    fn c2d_filter_in_both_sdk_forms() {
        assert_eq!(c2d_filter("device1"), "devices/device1/messages/devicebound/#");
        assert!(is_c2d_filter(&c2d_filter("device1"), "device1"));
        // azure-sdk-for-c.
        assert!(is_c2d_filter("devices/+/messages/devicebound/#", "device1"));
        // Python encodes the id.
        assert!(is_c2d_filter("devices/dev%231/messages/devicebound/#", "dev#1"));
        for filter in [
            "devices/device2/messages/devicebound/#",
            "devices/device1/messages/devicebound/+",
            "devices/device1/messages/devicebound",
            "devices/device1/messages/devicebound/",
            "devices/device1/messages/#",
            "devices/#",
            "#",
            "devices/device1/modules/module1/#",
            "devices/device1/messages/events/#",
            "devices//messages/devicebound/#",
            "Devices/device1/messages/devicebound/#",
        ] {
            assert!(!is_c2d_filter(filter, "device1"), "{filter:?}");
        }
    }

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9\\-.+%_#*?!(),=@$']{1,128}"
    }

    proptest! {
        #[test]
        fn telemetry_topic_then_parse_gives_the_message_back(
            device_id in id(),
            module_id in proptest::option::of(id()),
            m in message(),
            body in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let identity = Identity { device_id, module_id };
            let m = Message { body: body.into(), ..m };
            let topic = telemetry(&identity, &m);
            prop_assert_eq!(parse_telemetry(&topic, &identity, m.body.clone()), Ok(m));
            if !topic.split('/').take(4).any(|s| s.contains('%')) {
                let parsed = telemetry_parts(&topic).map(|(identity, _)| identity);
                prop_assert_eq!(parsed, Some(identity));
            }
        }

        #[test]
        fn c2d_topic_then_parse_gives_the_message_back(device_id in id(), m in message()) {
            let topic = c2d(&device_id, &m);
            prop_assert_eq!(topic.split('/').count(), 5);
            prop_assert_eq!(parse_c2d(&topic, &device_id, Bytes::new()), Ok(m));
            prop_assert!(is_c2d_filter(&c2d_filter(&device_id), &device_id));
        }

        #[test]
        fn parse_never_panics(
            topic in prop_oneof![any::<String>(), "(devices|/|modules|messages|events|devicebound|%2|x|&|=)*"],
        ) {
            let _ = parse(&topic);
            let parts: Vec<&str> = topic.split('/').collect();
            let _ = parse_telemetry(&topic, &device1(), Bytes::new());
            let _ = parse_c2d(&topic, parts.get(1).copied().unwrap_or("x"), Bytes::new());
        }
    }
}
