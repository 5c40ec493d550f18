//! The subscriptions IoT Hub serves a device (spec file §4.4–§4.6): C2D messages,
//! twin responses, desired-property notifications and direct methods. Any other
//! filter is refused (spec file §4.8).

use alloc::string::String;

use super::iothub_topic::{DESIRED_FILTER, METHODS_FILTER, TWIN_RESPONSE_FILTER};
use super::topic;

/// One subscription IoT Hub serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subscription {
    /// `devices/{d}/messages/devicebound/#` (spec file §4.4).
    C2d,
    /// `$iothub/twin/res/#` (spec file §4.5).
    TwinResponses,
    /// `$iothub/twin/PATCH/properties/desired/#` (spec file §4.5).
    Desired,
    /// `$iothub/methods/POST/#` (spec file §4.6).
    Methods,
}

impl Subscription {
    /// The filter a device subscribes with.
    pub fn filter(self, device_id: &str) -> String {
        match self {
            Subscription::C2d => topic::c2d_filter(device_id),
            Subscription::TwinResponses => String::from(TWIN_RESPONSE_FILTER),
            Subscription::Desired => String::from(DESIRED_FILTER),
            Subscription::Methods => String::from(METHODS_FILTER),
        }
    }

    /// Which subscription `filter` asks for on `device_id`'s connection: the C2D
    /// filter in any form [`topic::is_c2d_filter`] accepts, the other three
    /// exactly as every SDK writes them. `None` for any other filter.
    pub fn of(filter: &str, device_id: &str) -> Option<Subscription> {
        match filter {
            TWIN_RESPONSE_FILTER => Some(Subscription::TwinResponses),
            DESIRED_FILTER => Some(Subscription::Desired),
            METHODS_FILTER => Some(Subscription::Methods),
            _ => topic::is_c2d_filter(filter, device_id).then_some(Subscription::C2d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_is_recognised_as_written() {
        for s in [
            Subscription::C2d,
            Subscription::TwinResponses,
            Subscription::Desired,
            Subscription::Methods,
        ] {
            assert_eq!(Subscription::of(&s.filter("dev1"), "dev1"), Some(s));
        }
        assert_eq!(
            Subscription::of("devices/+/messages/devicebound/#", "dev1"),
            Some(Subscription::C2d)
        );
    }

    #[test]
    fn spec_4_8_wider_or_other_filters_are_not_served() {
        for filter in [
            "$iothub/#",
            "$iothub/twin/#",
            "$iothub/twin/res/+",
            "$iothub/twin/PATCH/properties/reported/#",
            "$iothub/twin/PATCH/#",
            "$iothub/methods/#",
            "$iothub/methods/res/#",
            "$iothub/methods/POST/reboot/#",
            "$iothub/twin/res",
            "#",
            "devices/dev2/messages/devicebound/#",
        ] {
            assert_eq!(Subscription::of(filter, "dev1"), None, "{filter:?}");
        }
    }
}
