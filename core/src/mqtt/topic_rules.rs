//! The MQTT 3.1.1 rules every Topic Name and Topic Filter obeys (§4.7), whatever the
//! application: wildcards, emptiness, the null character.
//!
//! IoT Hub's own topic grammar (telemetry, C2D, twin, methods) lives in
//! [`super::topic`]; the codec applies these rules to every topic it reads or writes.
//! The 65 535-byte limit [MQTT-4.7.3-3] is the UTF-8 string rule and is checked by the
//! codec with the other strings.

use alloc::string::String;
use core::fmt;
use core::ops::Deref;

use crate::utf8::Utf8Bytes;

/// Topic level separator (§4.7.1.1).
const SEPARATOR: char = '/';
/// Multi-level wildcard (§4.7.1.2).
const MULTI_LEVEL: &str = "#";
/// Single-level wildcard (§4.7.1.3).
const SINGLE_LEVEL: &str = "+";

/// Why a string is not a valid Topic Name or Topic Filter. A peer sending one has sent a
/// malformed packet and is disconnected [MQTT-4.8.0-1].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic has no characters [MQTT-4.7.3-1].
    #[error("a topic must be at least one character long [MQTT-4.7.3-1]")]
    Empty,
    /// The topic contains U+0000 [MQTT-4.7.3-2] (the string rule [MQTT-1.5.3-2]
    /// restated for topics).
    #[error("a topic must not contain the null character U+0000 [MQTT-4.7.3-2]")]
    NullCharacter,
    /// A Topic Name (PUBLISH, Will Topic) contains `+` or `#` [MQTT-3.3.2-2],
    /// [MQTT-4.7.1-1].
    #[error("a topic name must not contain wildcards [MQTT-3.3.2-2]")]
    WildcardInName,
    /// A Topic Filter has `#` other than alone in the last level: `a/#/b`, `a#`
    /// [MQTT-4.7.1-2].
    #[error("'#' must be the last level of a topic filter and alone in it [MQTT-4.7.1-2]")]
    MultiLevelWildcardMisplaced,
    /// A Topic Filter has `+` sharing its level with other characters: `a+`, `+b/c`
    /// [MQTT-4.7.1-3].
    #[error("'+' must occupy a whole level of a topic filter [MQTT-4.7.1-3]")]
    SingleLevelWildcardMisplaced,
}

/// Checks a Topic Name, the topic of a PUBLISH or a Will: at least one character
/// [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2], no wildcards [MQTT-3.3.2-2].
///
/// `$`-prefixed names (`$iothub/...`) are valid names; whether a peer may publish to
/// them is the session's decision (§4.7.2).
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    // The three forbidden bytes are ASCII, so they cannot occur inside a multi-byte
    // UTF-8 sequence. Every topic encoded or decoded comes through here, so the
    // search is memchr's, many bytes per instruction.
    match memchr::memchr3(0, b'+', b'#', name.as_bytes()).and_then(|i| name.as_bytes().get(i)) {
        None => Ok(()),
        Some(0) => Err(TopicError::NullCharacter),
        Some(_) => Err(TopicError::WildcardInName),
    }
}

/// A Topic Name (§4.7): the topic of a PUBLISH or a Will, checked once, when made,
/// by [`validate_topic_name`]. Encoding trusts it, so a message resent many times is
/// checked once, and no packet with an invalid name can be written.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(Utf8Bytes);

impl TopicName {
    /// Checks `name` and wraps it.
    ///
    /// Errors: the rule of [`validate_topic_name`] it breaks.
    pub fn new(name: impl Into<Utf8Bytes>) -> Result<Self, TopicError> {
        let name = name.into();
        validate_topic_name(&name)?;
        Ok(TopicName(name))
    }

    /// A name built from escaped parts only: fixed IoT Hub path segments, ids with
    /// their wildcards escaped, a percent-encoded property bag. None of them can
    /// hold U+0000, `+` or `#`, and the fixed segments make it non-empty.
    pub(crate) fn from_escaped(name: String) -> Self {
        debug_assert_eq!(validate_topic_name(&name), Ok(()), "{name}");
        TopicName(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name as shared bytes.
    pub fn as_utf8(&self) -> &Utf8Bytes {
        &self.0
    }
}

impl Deref for TopicName {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq<str> for TopicName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TopicName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl TryFrom<&str> for TopicName {
    type Error = TopicError;

    fn try_from(name: &str) -> Result<Self, TopicError> {
        TopicName::new(name)
    }
}

impl TryFrom<String> for TopicName {
    type Error = TopicError;

    fn try_from(name: String) -> Result<Self, TopicError> {
        TopicName::new(name)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a Topic Filter of a SUBSCRIBE or UNSUBSCRIBE: at least one character
/// [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2], `#` only alone in the last level
/// [MQTT-4.7.1-2], `+` only alone in a level [MQTT-4.7.1-3].
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut saw_wildcard = false;
    for b in filter.bytes() {
        match b {
            0 => return Err(TopicError::NullCharacter),
            b'+' | b'#' => saw_wildcard = true,
            _ => {}
        }
    }
    if !saw_wildcard {
        return Ok(());
    }
    let mut levels = filter.split(SEPARATOR).peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains(MULTI_LEVEL) && (level != MULTI_LEVEL || !last) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains(SINGLE_LEVEL) && level != SINGLE_LEVEL {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iot_hub_topic_names_are_valid() {
        for name in [
            "devices/device1/messages/events/",
            "devices/device1/messages/events/%24.mid=m1",
            "$iothub/twin/GET/?$rid=1",
            "/",
            "°C",
        ] {
            assert_eq!(validate_topic_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn mqtt_3_3_2_2_topic_names_hold_no_wildcards() {
        for name in ["a/+", "#", "a/b#", "+"] {
            assert_eq!(validate_topic_name(name), Err(TopicError::WildcardInName));
        }
    }

    #[test]
    fn mqtt_4_7_3_1_and_4_7_3_2_empty_and_null_are_invalid_everywhere() {
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::NullCharacter));
        assert_eq!(validate_topic_filter("a/\0/#"), Err(TopicError::NullCharacter));
    }

    #[test]
    fn filters_the_standard_calls_valid_are_valid() {
        // §4.7.1.2 and §4.7.1.3 non-normative examples, and IoT Hub's own filters.
        for filter in [
            "sport/tennis/player1/#",
            "sport/#",
            "#",
            "+",
            "+/tennis/#",
            "sport/+/player1",
            "/+",
            "+/+",
            "/finance",
            "devices/device1/messages/devicebound/#",
            "devices/+/messages/devicebound/#",
            "$iothub/twin/res/#",
        ] {
            assert_eq!(validate_topic_filter(filter), Ok(()), "{filter}");
        }
    }

    #[test]
    fn mqtt_4_7_1_2_multi_level_wildcard_is_last_and_alone() {
        for filter in ["sport/tennis#", "sport/tennis/#/ranking", "##", "#/", "a/#+"] {
            assert_eq!(
                validate_topic_filter(filter),
                Err(TopicError::MultiLevelWildcardMisplaced),
                "{filter}"
            );
        }
    }

    #[test]
    fn mqtt_4_7_1_3_single_level_wildcard_fills_its_level() {
        for filter in ["sport+", "sport/+tennis", "++", "a/+b/#"] {
            assert_eq!(
                validate_topic_filter(filter),
                Err(TopicError::SingleLevelWildcardMisplaced),
                "{filter}"
            );
        }
    }
}
