//! The fuzz target for MQTT's `$iothub/` topics and the twin documents they carry
//! (spec file §4.5, §4.6, TV-13), and its seeds.

use alloc::vec::Vec;

use crate::iothub::{Twin, TwinPatch};
use crate::mqtt::iothub_topic::IotHubTopic;
use crate::mqtt::subscription::Subscription;

/// Reads the input as a topic (lossy UTF-8), as a subscription filter, as a twin
/// patch and as a twin document.
///
/// Properties: a topic that parses writes a topic that parses back to it; a filter
/// that names a subscription is named again by that subscription's own filter; a
/// patch that parses writes JSON (with or without `$version`) that parses back to
/// it; a twin document that reads writes one that reads back to it; nothing panics.
pub fn mqtt_twin(data: &[u8]) {
    let text = alloc::string::String::from_utf8_lossy(data);
    if let Some(topic) = IotHubTopic::parse(&text) {
        let written = topic.to_topic();
        assert_eq!(IotHubTopic::parse(&written), Some(topic), "{written:?} from {text:?}");
    }
    if let Some(subscription) = Subscription::of(&text, "dev1") {
        assert_eq!(Subscription::of(&subscription.filter("dev1"), "dev1"), Some(subscription));
    }
    if let Ok(patch) = TwinPatch::parse(data) {
        assert_eq!(TwinPatch::parse(&patch.to_json()).as_ref(), Ok(&patch));
        assert_eq!(TwinPatch::parse(&patch.to_json_with_version(8)), Ok(patch));
    }
    if let Ok(twin) = Twin::from_json(data) {
        assert_eq!(Twin::from_json(&twin.to_json()), Ok(twin));
    }
}

/// TV-13's topics and bodies, the three `$iothub/` filters, and a twin with tags.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    super::strings(&[
        "$iothub/twin/GET/?$rid=1",
        "$iothub/twin/res/200/?$rid=1",
        r#"{"desired":{"$version":1},"reported":{"$version":1}}"#,
        "$iothub/twin/PATCH/properties/reported/?$rid=2",
        r#"{"batteryLevel":60}"#,
        "$iothub/twin/res/204/?$rid=2&$version=2",
        "$iothub/twin/res/400/?$rid=3",
        "$iothub/twin/PATCH/properties/desired/?$version=8",
        r#"{"telemetrySendFrequency":"5m","route":null,"$version":8}"#,
        "$iothub/methods/POST/reboot/?$rid=ab12",
        "$iothub/methods/res/200/?$rid=ab12",
        "$iothub/methods/res/%32%30%30/?%24rid=a%2Fb",
        "$iothub/twin/res/#",
        "$iothub/twin/PATCH/properties/desired/#",
        "$iothub/methods/POST/#",
        r#"{"tags":{"site":"a"},"desired":{"mode":{"eco":true},"$version":4},"reported":{"fw":"1.2","$version":2}}"#,
    ])
}
