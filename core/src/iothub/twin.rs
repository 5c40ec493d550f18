//! The device twin (spec file §4.5, §5.6): desired properties the service sets and
//! reported properties the device sets, each a JSON object with a `$version` that
//! goes up by one with every change.
//!
//! A patch is a JSON object merged into a section: a member set to `null` is
//! removed, an object merges into an object member, anything else replaces. Both
//! roles read and write the same documents here; the protocols only carry them.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde_json::{Map, Value};

/// The largest desired or reported section IoT Hub keeps, bytes of JSON (spec file
/// §4.5, §8).
pub const MAX_SECTION_SIZE: usize = 32 * 1024;

/// How deep objects may nest in a section, counting the section itself: IoT Hub
/// allows 10 levels in desired and reported properties (DOC-QUOTA, twin limits).
pub const MAX_DEPTH: usize = 10;

/// The member that carries a section's version.
const VERSION: &str = "$version";

/// Why a twin document or patch was refused, with the status the hub answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwinError {
    /// Not JSON, or JSON that is not an object (spec file §4.5: 400 for a malformed
    /// patch).
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    /// A member name IoT Hub refuses (empty, over [`MAX_NAME_LEN`] bytes, or with a
    /// control character, `.`, `$` — reserved for metadata such as `$version` — or a
    /// space), or a value nested deeper than [`MAX_DEPTH`].
    #[error("invalid member: {0}")]
    InvalidMember(String),
    /// The section would pass [`MAX_SECTION_SIZE`] bytes.
    #[error("the twin section would take {size} bytes; at most {max} are kept")]
    TooLarge {
        /// Its JSON size after the patch, bytes.
        size: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// A twin document without its `desired` and `reported` sections, or a section
    /// without an integer `$version`.
    #[error("not a twin document: {0}")]
    NotATwin(String),
}

impl TwinError {
    /// IoT Hub's code for the refusal: 413001 MessageTooLarge past the size
    /// limit, else 400004 ArgumentInvalid.
    pub fn code(&self) -> crate::iothub::ErrorCode {
        match self {
            TwinError::TooLarge { .. } => crate::iothub::ErrorCode::MESSAGE_TOO_LARGE,
            _ => crate::iothub::ErrorCode::ARGUMENT_INVALID,
        }
    }

    /// The status a twin request refused so is answered with: 400 for a bad
    /// document, 413 for one too large (spec file §4.5 lists 400 for malformed
    /// JSON; 413 is IoT Hub's status for a request entity too large).
    pub fn status(&self) -> u16 {
        match self {
            TwinError::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// A JSON object that patches a twin section (spec file §4.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwinPatch(Map<String, Value>);

impl TwinPatch {
    /// Reads a patch: a JSON object whose members are not named with `$` and nest
    /// at most [`MAX_DEPTH`] deep. A `$version` member (which desired-property
    /// notifications carry) is dropped.
    ///
    /// Errors: [`TwinError::NotAnObject`], [`TwinError::InvalidMember`].
    pub fn parse(json: &[u8]) -> Result<TwinPatch, TwinError> {
        let mut map = object(json)?;
        map.remove(VERSION);
        check_members(&map, 1)?;
        Ok(TwinPatch(map))
    }

    /// A patch from members already built.
    ///
    /// Errors: as [`parse`](Self::parse), except that `$version` is refused too.
    pub fn from_map(map: Map<String, Value>) -> Result<TwinPatch, TwinError> {
        check_members(&map, 1)?;
        Ok(TwinPatch(map))
    }

    /// The members.
    pub fn members(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The patch as JSON, as a device sends it.
    pub fn to_json(&self) -> Vec<u8> {
        to_vec(&Value::Object(self.0.clone()))
    }

    /// The patch with `"$version": version` added: the body of a desired-property
    /// notification (spec file §4.5, TV-13).
    pub fn to_json_with_version(&self, version: u64) -> Vec<u8> {
        let mut map = self.0.clone();
        map.insert(String::from(VERSION), Value::from(version));
        to_vec(&Value::Object(map))
    }
}

/// One section of a twin: its properties and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinSection {
    /// The properties, `$version` not among them.
    pub properties: Map<String, Value>,
    /// Starts at 1 and goes up by one with every patch (TV-13).
    pub version: u64,
}

impl Default for TwinSection {
    fn default() -> Self {
        TwinSection { properties: Map::new(), version: 1 }
    }
}

impl TwinSection {
    /// Merges `patch` in and raises the version; returns the new version.
    ///
    /// Errors: [`TwinError::TooLarge`] when the section would pass
    /// [`MAX_SECTION_SIZE`]; the section is left as it was.
    pub fn apply(&mut self, patch: &TwinPatch) -> Result<u64, TwinError> {
        let mut merged = self.properties.clone();
        merge(&mut merged, &patch.0);
        let size = to_vec(&Value::Object(merged.clone())).len();
        if size > MAX_SECTION_SIZE {
            return Err(TwinError::TooLarge { size, max: MAX_SECTION_SIZE });
        }
        self.properties = merged;
        self.version += 1;
        Ok(self.version)
    }

    fn to_value(&self) -> Value {
        let mut map = self.properties.clone();
        map.insert(String::from(VERSION), Value::from(self.version));
        Value::Object(map)
    }

    fn from_value(name: &str, value: Option<Value>) -> Result<TwinSection, TwinError> {
        let Some(Value::Object(mut properties)) = value else {
            return Err(TwinError::NotATwin(alloc::format!("no {name} object")));
        };
        let version = match properties.remove(VERSION) {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let version =
            version.ok_or_else(|| TwinError::NotATwin(alloc::format!("{name} has no $version")))?;
        Ok(TwinSection { properties, version })
    }
}

/// A device's twin as a device receives it (spec file §4.5 GET, §5.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Twin {
    /// What the service asks of the device.
    pub desired: TwinSection,
    /// What the device reports.
    pub reported: TwinSection,
}

impl Twin {
    /// `{"desired":{…,"$version":n},"reported":{…,"$version":m}}` (TV-13).
    pub fn to_json(&self) -> Vec<u8> {
        let mut map = Map::new();
        map.insert(String::from("desired"), self.desired.to_value());
        map.insert(String::from("reported"), self.reported.to_value());
        to_vec(&Value::Object(map))
    }

    /// Reads a twin document; members besides `desired` and `reported` (a full
    /// twin's tags and metadata) are ignored.
    ///
    /// Errors: [`TwinError::NotAnObject`], [`TwinError::NotATwin`].
    pub fn from_json(json: &[u8]) -> Result<Twin, TwinError> {
        let mut map = object(json)?;
        Ok(Twin {
            desired: TwinSection::from_value("desired", map.remove("desired"))?,
            reported: TwinSection::from_value("reported", map.remove("reported"))?,
        })
    }
}

impl fmt::Display for Twin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_json()))
    }
}

/// Merges `patch` into `target` (spec file §4.5: null deletes a member).
fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (name, value) in patch {
        match value {
            Value::Null => {
                target.remove(name);
            }
            Value::Object(inner) => {
                if let Some(Value::Object(existing)) = target.get_mut(name) {
                    merge(existing, inner);
                } else {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    target.insert(name.clone(), Value::Object(fresh));
                }
            }
            other => {
                target.insert(name.clone(), other.clone());
            }
        }
    }
}

fn object(json: &[u8]) -> Result<Map<String, Value>, TwinError> {
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(TwinError::NotAnObject(String::from(kind(&other)))),
        Err(e) => Err(TwinError::NotAnObject(alloc::format!("{e}"))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The longest member name IoT Hub keeps, bytes (DOC-QUOTA, twin limits).
pub const MAX_NAME_LEN: usize = 1024;

/// IoT Hub's rule for member names (device twin documentation): 1 to 1024 bytes,
/// no control character, `.`, `$` or space. `$` marks IoT Hub's own metadata.
fn check_name(name: &str) -> Result<(), TwinError> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.chars().any(|c| c.is_control() || matches!(c, '.' | '$' | ' '));
    if bad {
        let shown: String = name.chars().take(40).collect();
        return Err(TwinError::InvalidMember(alloc::format!(
            "{shown:?}: names hold 1 to 1024 bytes and no control character, '.', '$' or space"
        )));
    }
    Ok(())
}

fn check_members(map: &Map<String, Value>, depth: usize) -> Result<(), TwinError> {
    for (name, value) in map {
        check_name(name)?;
        check_value(value, depth)?;
    }
    Ok(())
}

/// Objects nest within [`MAX_DEPTH`], arrays counting as a level too, so that a
/// deep value cannot hide inside one.
fn check_value(value: &Value, depth: usize) -> Result<(), TwinError> {
    let nested = |depth: usize| {
        if depth > MAX_DEPTH {
            Err(TwinError::InvalidMember(alloc::format!("nested deeper than {MAX_DEPTH}")))
        } else {
            Ok(depth)
        }
    };
    match value {
        Value::Object(inner) => check_members(inner, nested(depth + 1)?),
        Value::Array(items) => {
            let depth = nested(depth + 1)?;
            items.iter().try_for_each(|item| check_value(item, depth))
        }
        _ => Ok(()),
    }
}

fn to_vec(value: &Value) -> Vec<u8> {
    // Writing a Value into a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tv13_an_empty_twin_has_both_sections_at_version_1() {
        assert_eq!(
            Twin::default().to_json(),
            br#"{"desired":{"$version":1},"reported":{"$version":1}}"#
        );
    }

    #[test]
    fn tv13_a_reported_patch_raises_the_version_to_2() {
        let mut twin = Twin::default();
        let patch = TwinPatch::parse(br#"{"batteryLevel":60}"#).unwrap();
        assert_eq!(twin.reported.apply(&patch), Ok(2));
        assert_eq!(twin.reported.properties["batteryLevel"], 60);
    }

    #[test]
    fn tv13_desired_notification_carries_its_version_and_nulls() {
        let patch = TwinPatch::parse(br#"{"telemetrySendFrequency":"5m","route":null}"#).unwrap();
        let body = patch.to_json_with_version(8);
        let back: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(back["$version"], 8);
        assert_eq!(back["route"], Value::Null);
        // A notification read as a patch drops its version.
        assert_eq!(TwinPatch::parse(&body).unwrap(), patch);
    }

    #[test]
    fn spec_4_5_null_deletes_and_objects_merge() {
        let mut section = TwinSection::default();
        let first = TwinPatch::parse(br#"{"a":{"x":1,"y":2},"b":true,"c":"keep"}"#).unwrap();
        section.apply(&first).unwrap();
        let second = TwinPatch::parse(br#"{"a":{"y":null,"z":3},"b":null}"#).unwrap();
        assert_eq!(section.apply(&second), Ok(3));
        let expected: Value = serde_json::from_str(r#"{"a":{"x":1,"z":3},"c":"keep"}"#).unwrap();
        assert_eq!(Value::Object(section.properties.clone()), expected);
    }

    #[test]
    fn patches_that_are_not_objects_or_name_metadata_are_refused() {
        for bad in [&b"[1]"[..], b"5", b"\"s\"", b"null", b"{", b"", b" "] {
            assert!(matches!(TwinPatch::parse(bad), Err(TwinError::NotAnObject(_))), "{bad:?}");
        }
        let long = alloc::format!(r#"{{"{}":1}}"#, "k".repeat(MAX_NAME_LEN + 1));
        for bad in [
            &br#"{"$x":1}"#[..],
            br#"{"":1}"#,
            br#"{"a":{"$ref":1}}"#,
            br#"{"a.b":1}"#,
            br#"{"a b":1}"#,
            br#"{"k\u0000":1}"#,
            br#"{"a":[{"$x":1}]}"#,
            long.as_bytes(),
        ] {
            assert!(matches!(TwinPatch::parse(bad), Err(TwinError::InvalidMember(_))), "{bad:?}");
        }
        let deep = alloc::format!("{}1{}", r#"{"a":"#.repeat(11), "}".repeat(11));
        assert!(matches!(TwinPatch::parse(deep.as_bytes()), Err(TwinError::InvalidMember(_))));
        let ok = alloc::format!("{}1{}", r#"{"a":"#.repeat(10), "}".repeat(10));
        assert!(TwinPatch::parse(ok.as_bytes()).is_ok());
        // Arrays count as a level: a deep value cannot hide inside one.
        let deep = alloc::format!("{{\"a\":{}1{}}}", "[".repeat(10), "]".repeat(10));
        assert!(matches!(TwinPatch::parse(deep.as_bytes()), Err(TwinError::InvalidMember(_))));
        let ok = alloc::format!(r#"{{"{}":[1,{{"b":"x y.z$"}}]}}"#, "k".repeat(MAX_NAME_LEN));
        assert!(TwinPatch::parse(ok.as_bytes()).is_ok(), "values may hold anything");
        assert_eq!(TwinError::NotAnObject(String::new()).status(), 400);
    }

    #[test]
    fn a_section_past_32_kib_is_refused_and_left_as_it_was() {
        let mut section = TwinSection::default();
        let big = alloc::format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_SECTION_SIZE));
        let refused = section.apply(&TwinPatch::parse(big.as_bytes()).unwrap());
        assert!(matches!(refused, Err(TwinError::TooLarge { .. })), "{refused:?}");
        assert_eq!(refused.unwrap_err().status(), 413);
        assert_eq!(section, TwinSection::default());
    }

    #[test]
    fn a_twin_document_reads_back_and_needs_both_versions() {
        let mut twin = Twin::default();
        twin.desired.apply(&TwinPatch::parse(br#"{"mode":"eco"}"#).unwrap()).unwrap();
        assert_eq!(Twin::from_json(&twin.to_json()), Ok(twin));
        let with_tags = br#"{"tags":{},"desired":{"$version":4},"reported":{"$version":2}}"#;
        assert_eq!(Twin::from_json(with_tags).unwrap().desired.version, 4);
        for bad in
            [&br#"{"desired":{"$version":1}}"#[..], br#"{"desired":{},"reported":{"$version":1}}"#]
        {
            assert!(matches!(Twin::from_json(bad), Err(TwinError::NotATwin(_))));
        }
    }

    fn json_value(depth: u32) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z ]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(depth, 16, 4, |inner| {
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        #[test]
        fn patches_round_trip_through_json(
            members in proptest::collection::btree_map("[a-z]{1,4}", json_value(3), 0..5)
        ) {
            let patch = TwinPatch::from_map(members.into_iter().collect()).unwrap();
            prop_assert_eq!(TwinPatch::parse(&patch.to_json()).unwrap(), patch.clone());
            prop_assert_eq!(TwinPatch::parse(&patch.to_json_with_version(7)).unwrap(), patch);
        }

        #[test]
        fn a_patched_twin_round_trips_and_reapplying_a_patch_changes_nothing_but_the_version(
            members in proptest::collection::btree_map("[a-z]{1,4}", json_value(3), 0..5)
        ) {
            let patch = TwinPatch::from_map(members.into_iter().collect()).unwrap();
            let mut twin = Twin::default();
            twin.reported.apply(&patch).unwrap();
            let once = twin.reported.properties.clone();
            twin.reported.apply(&patch).unwrap();
            prop_assert_eq!(&twin.reported.properties, &once);
            prop_assert_eq!(twin.reported.version, 3);
            prop_assert_eq!(Twin::from_json(&twin.to_json()).unwrap(), twin);
        }
    }
}
