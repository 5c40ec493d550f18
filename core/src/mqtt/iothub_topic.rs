//! IoT Hub's `$iothub/` topics (spec file §4.5, §4.6, TV-13): the device twin's
//! requests, responses and desired-property notifications, and direct methods'
//! requests and responses, each request matched to its response by `$rid`.
//!
//! These topics name no device: the connection's identity scopes them (a module
//! uses the same topics, spec file §4.7).
//!
//! Writers put `$rid` first in a twin response (`?$rid=2&$version=2`) and as the
//! only parameter of a method request, because the C SDKs parse by position: the C
//! SDK wants `?$rid=` and digits at the start of token 4, azure-sdk-for-c takes
//! everything after `$rid=` as a method's request id (spec file §4.5, §4.6).
//! Variable parts are percent-encoded outside RFC 3986 unreserved (the guidance of
//! spec file §4.2), which leaves decimal and GUID request ids as they are.
//!
//! Readers take the path with or without a `/` before the `?`, split the query at
//! `&` and each pair at its first `=`, percent-decode both sides (Python
//! percent-encodes status and rid, spec file §4.6), keep the first of a repeated
//! parameter and ignore parameters they do not know.

use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt::Write;
use percent_encoding::utf8_percent_encode;

use super::topic_rules::TopicName;
use crate::iothub::{UNRESERVED, percent_decode};

/// The filter for twin responses: `$iothub/twin/res/#` (spec file §4.5).
pub const TWIN_RESPONSE_FILTER: &str = "$iothub/twin/res/#";
/// The filter for desired-property notifications:
/// `$iothub/twin/PATCH/properties/desired/#` (spec file §4.5).
pub const DESIRED_FILTER: &str = "$iothub/twin/PATCH/properties/desired/#";
/// The filter for direct-method requests: `$iothub/methods/POST/#` (spec file
/// §4.6).
pub const METHODS_FILTER: &str = "$iothub/methods/POST/#";

/// A `$iothub/` topic, split into its parts; ids and names decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IotHubTopic {
    /// Device → hub `$iothub/twin/GET/?$rid={rid}`: the device asks for its twin.
    TwinGet {
        /// The request id.
        rid: String,
    },
    /// Device → hub `$iothub/twin/PATCH/properties/reported/?$rid={rid}`, the
    /// patch in the body.
    TwinPatchReported {
        /// The request id.
        rid: String,
    },
    /// Hub → device `$iothub/twin/res/{status}/?$rid={rid}[&$version={version}]`:
    /// 200 with the twin for a GET, 204 with the new reported version for a patch,
    /// ≥ 400 with a JSON error body (spec file §4.5).
    TwinResponse {
        /// The HTTP-like status.
        status: u16,
        /// The request's id.
        rid: String,
        /// The reported section's version after a patch.
        version: Option<u64>,
    },
    /// Hub → device `$iothub/twin/PATCH/properties/desired/?$version={version}`,
    /// the patch in the body.
    DesiredPatch {
        /// The desired section's version after the patch.
        version: u64,
    },
    /// Hub → device `$iothub/methods/POST/{name}/?$rid={rid}`, the payload in the
    /// body (spec file §4.6).
    MethodRequest {
        /// The method's name.
        name: String,
        /// The request id, opaque.
        rid: String,
    },
    /// Device → hub `$iothub/methods/res/{status}/?$rid={rid}`, the payload in
    /// the body.
    MethodResponse {
        /// The status the device's application chose.
        status: i32,
        /// The request's id.
        rid: String,
    },
}

/// The parameters a `$iothub/` topic's query may carry.
#[derive(Default)]
struct Query {
    rid: Option<String>,
    version: Option<String>,
}

impl Query {
    /// `None` when an escape is broken or the text is not UTF-8.
    fn parse(query: &str) -> Option<Query> {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            let slot = match key.as_ref() {
                "$rid" => &mut parsed.rid,
                "$version" => &mut parsed.version,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(percent_decode(value)?.into_owned());
            }
        }
        Some(parsed)
    }
}

/// One decoded path segment that is not empty.
fn segment(raw: &str) -> Option<Cow<'_, str>> {
    percent_decode(raw).filter(|s| !s.is_empty())
}

impl IotHubTopic {
    /// Parses a `$iothub/` topic; `None` for any other topic, one missing the
    /// parameter it needs (`$rid`, or `$version` in a desired notification), or
    /// one with a status or version that is not a decimal integer in range.
    pub fn parse(topic: &str) -> Option<IotHubTopic> {
        // Every PUBLISH comes through here: telemetry leaves before its bag is read.
        let rest = topic.strip_prefix("$iothub/")?;
        let (path, query) = rest.split_once('?')?;
        let rest = path.strip_suffix('/').unwrap_or(path);
        let query = Query::parse(query)?;
        let rid = || query.rid.clone();
        Some(match rest {
            "twin/GET" => IotHubTopic::TwinGet { rid: rid()? },
            "twin/PATCH/properties/reported" => IotHubTopic::TwinPatchReported { rid: rid()? },
            "twin/PATCH/properties/desired" => {
                IotHubTopic::DesiredPatch { version: query.version.as_deref()?.parse().ok()? }
            }
            _ => {
                let (kind, last) = rest.rsplit_once('/')?;
                let last = segment(last)?;
                match kind {
                    "twin/res" => IotHubTopic::TwinResponse {
                        status: last.parse().ok()?,
                        rid: rid()?,
                        version: match query.version.as_deref() {
                            Some(v) => Some(v.parse().ok()?),
                            None => None,
                        },
                    },
                    "methods/POST" => {
                        IotHubTopic::MethodRequest { name: last.into_owned(), rid: rid()? }
                    }
                    "methods/res" => {
                        IotHubTopic::MethodResponse { status: last.parse().ok()?, rid: rid()? }
                    }
                    _ => return None,
                }
            }
        })
    }

    /// The topic, as the table of spec file §4.5 and §4.6 writes it (TV-13).
    pub fn to_topic(&self) -> TopicName {
        let mut topic = String::from("$iothub/");
        // Writing to a String cannot fail.
        let _ = match self {
            IotHubTopic::TwinGet { rid } => write!(topic, "twin/GET/?$rid={}", encode(rid)),
            IotHubTopic::TwinPatchReported { rid } => {
                write!(topic, "twin/PATCH/properties/reported/?$rid={}", encode(rid))
            }
            IotHubTopic::TwinResponse { status, rid, version } => {
                let _ = write!(topic, "twin/res/{status}/?$rid={}", encode(rid));
                match version {
                    Some(v) => write!(topic, "&$version={v}"),
                    None => Ok(()),
                }
            }
            IotHubTopic::DesiredPatch { version } => {
                write!(topic, "twin/PATCH/properties/desired/?$version={version}")
            }
            IotHubTopic::MethodRequest { name, rid } => {
                write!(topic, "methods/POST/{}/?$rid={}", encode(name), encode(rid))
            }
            IotHubTopic::MethodResponse { status, rid } => {
                write!(topic, "methods/res/{status}/?$rid={}", encode(rid))
            }
        };
        // Fixed segments, numbers and percent-encoded text: no U+0000, `+` or `#`.
        TopicName::from_escaped(topic)
    }
}

fn encode(text: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(text, UNRESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(topic: &str) -> Option<IotHubTopic> {
        IotHubTopic::parse(topic)
    }

    fn rid(r: &str) -> String {
        String::from(r)
    }

    #[test]
    fn tv13_get_and_its_answer() {
        let get = IotHubTopic::TwinGet { rid: rid("1") };
        assert_eq!(get.to_topic(), "$iothub/twin/GET/?$rid=1");
        assert_eq!(parse("$iothub/twin/GET/?$rid=1"), Some(get));
        let answer = IotHubTopic::TwinResponse { status: 200, rid: rid("1"), version: None };
        assert_eq!(answer.to_topic(), "$iothub/twin/res/200/?$rid=1");
        assert_eq!(parse("$iothub/twin/res/200/?$rid=1"), Some(answer));
    }

    #[test]
    fn tv13_patch_and_its_answer_with_rid_first_and_version() {
        let patch = IotHubTopic::TwinPatchReported { rid: rid("2") };
        assert_eq!(patch.to_topic(), "$iothub/twin/PATCH/properties/reported/?$rid=2");
        assert_eq!(parse("$iothub/twin/PATCH/properties/reported/?$rid=2"), Some(patch));
        let answer = IotHubTopic::TwinResponse { status: 204, rid: rid("2"), version: Some(2) };
        // $rid first: the C SDK reads `?$rid=` and digits at the start of token 4.
        assert_eq!(answer.to_topic(), "$iothub/twin/res/204/?$rid=2&$version=2");
        assert_eq!(answer.to_topic().split('/').nth(4), Some("?$rid=2&$version=2"));
        assert_eq!(parse("$iothub/twin/res/204/?$rid=2&$version=2"), Some(answer.clone()));
        // Parameters in another order read the same.
        assert_eq!(parse("$iothub/twin/res/204/?$version=2&$rid=2"), Some(answer));
    }

    #[test]
    fn tv13_error_reply() {
        assert_eq!(
            parse("$iothub/twin/res/400/?$rid=3"),
            Some(IotHubTopic::TwinResponse { status: 400, rid: rid("3"), version: None })
        );
    }

    #[test]
    fn tv13_desired_notification() {
        let desired = IotHubTopic::DesiredPatch { version: 8 };
        assert_eq!(desired.to_topic(), "$iothub/twin/PATCH/properties/desired/?$version=8");
        assert_eq!(parse("$iothub/twin/PATCH/properties/desired/?$version=8"), Some(desired));
    }

    #[test]
    fn tv13_method_request_with_rid_last_and_its_response() {
        let request = IotHubTopic::MethodRequest { name: "reboot".into(), rid: rid("ab12") };
        assert_eq!(request.to_topic(), "$iothub/methods/POST/reboot/?$rid=ab12");
        assert_eq!(parse("$iothub/methods/POST/reboot/?$rid=ab12"), Some(request));
        // azure-sdk-for-c: the request id is everything after `$rid=`.
        let guid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let topic = IotHubTopic::MethodRequest { name: "m".into(), rid: rid(guid) }.to_topic();
        assert_eq!(topic.split_once("$rid=").map(|(_, r)| r), Some(guid));
        let response = IotHubTopic::MethodResponse { status: 200, rid: rid("ab12") };
        assert_eq!(response.to_topic(), "$iothub/methods/res/200/?$rid=ab12");
        assert_eq!(parse("$iothub/methods/res/200/?$rid=ab12"), Some(response));
    }

    #[test]
    fn python_percent_encoded_rid_and_status_are_decoded() {
        assert_eq!(
            parse("$iothub/methods/res/%32%30%30/?%24rid=a%2Fb"),
            Some(IotHubTopic::MethodResponse { status: 200, rid: rid("a/b") })
        );
    }

    #[test]
    fn tolerated_variants() {
        // No slash before the query, an unknown parameter, a repeated rid, and a
        // negative method status (the application chooses it).
        assert_eq!(
            parse("$iothub/twin/GET?x=1&$rid=7&$rid=8&"),
            Some(IotHubTopic::TwinGet { rid: rid("7") })
        );
        assert_eq!(
            parse("$iothub/methods/res/-1/?$rid=r"),
            Some(IotHubTopic::MethodResponse { status: -1, rid: rid("r") })
        );
        // `$rid=` is an empty id, which is a legal property value.
        assert_eq!(parse("$iothub/twin/GET/?$rid="), Some(IotHubTopic::TwinGet { rid: rid("") }));
    }

    #[test]
    fn other_topics_are_not_parsed() {
        for topic in [
            "",
            "$iothub/twin/GET/",
            "$iothub/twin/GET/?rid=1",
            "$iothub/twin/GET/?$rid=%zz",
            "$iothub/twin/get/?$rid=1",
            "$iothub/twin/PATCH/properties/desired/?$rid=1",
            "$iothub/twin/PATCH/properties/desired/?$version=x",
            "$iothub/twin/PATCH/properties/other/?$rid=1",
            "$iothub/twin/res/?$rid=1",
            "$iothub/twin/res/abc/?$rid=1",
            "$iothub/twin/res/70000/?$rid=1",
            "$iothub/twin/res/204/?$rid=1&$version=-1",
            "$iothub/twin/res/200/x/?$rid=1",
            "$iothub/methods/POST//?$rid=1",
            "$iothub/methods/POST/reboot/",
            "$iothub/methods/res/200/",
            "$iothub/methods/GET/reboot/?$rid=1",
            "$iothub/other/?$rid=1",
            "iothub/twin/GET/?$rid=1",
            "devices/dev1/messages/events/?$rid=1",
        ] {
            assert_eq!(parse(topic), None, "{topic:?}");
        }
    }

    fn text() -> impl Strategy<Value = String> {
        "[A-Za-z0-9\\-._~/?&=+#%$ é]{0,24}"
    }

    fn any_topic() -> impl Strategy<Value = IotHubTopic> {
        prop_oneof![
            text().prop_map(|rid| IotHubTopic::TwinGet { rid }),
            text().prop_map(|rid| IotHubTopic::TwinPatchReported { rid }),
            (any::<u16>(), text(), proptest::option::of(any::<u64>())).prop_map(
                |(status, rid, version)| IotHubTopic::TwinResponse { status, rid, version }
            ),
            any::<u64>().prop_map(|version| IotHubTopic::DesiredPatch { version }),
            (text().prop_filter("a name", |n| !n.is_empty()), text())
                .prop_map(|(name, rid)| IotHubTopic::MethodRequest { name, rid }),
            (any::<i32>(), text())
                .prop_map(|(status, rid)| IotHubTopic::MethodResponse { status, rid }),
        ]
    }

    proptest! {
        #[test]
        fn written_topics_parse_back(topic in any_topic()) {
            let written = topic.to_topic();
            prop_assert_eq!(IotHubTopic::parse(&written), Some(topic));
        }

        #[test]
        fn parse_never_panics(
            topic in prop_oneof![any::<String>(), "(\\$iothub/|twin/|res/|methods/|POST/|GET|\\?|\\$rid=|&|%2|1|/)*"],
        ) {
            let _ = IotHubTopic::parse(&topic);
        }
    }
}
