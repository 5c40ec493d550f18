//! The IoT Hub message model (spec file §3): system properties, application
//! properties the hub never modifies, and an opaque body.

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::iothub::c2d::Ack;
use crate::time::Timestamp;

/// One D2C or C2D message.
///
/// The same value travels over every protocol; each protocol maps the fields to its
/// own places (MQTT property bag keys `$.mid`…, AMQP properties, HTTP `iothub-*`
/// headers; spec file §3 table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Message {
    /// The opaque payload. Decoders hand out slices of their receive buffer.
    pub body: Bytes,
    /// `message-id`: case-sensitive, at most 128 characters (spec file §3).
    pub message_id: Option<String>,
    /// `correlation-id`.
    pub correlation_id: Option<String>,
    /// `user-id`.
    pub user_id: Option<String>,
    /// `to`: the destination path the hub stamps on C2D messages
    /// (`/devices/{id}/messages/devicebound`).
    pub to: Option<String>,
    /// `content-type`, e.g. `application/json`; needed for body-based routing.
    pub content_type: Option<String>,
    /// `content-encoding`, e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Absolute expiry time. For C2D the hub dead-letters the message after it.
    pub expiry: Option<Timestamp>,
    /// When the hub enqueued the message (hub-stamped).
    pub enqueued_time: Option<Timestamp>,
    /// `iothub-ack`: the feedback a C2D sender asked for.
    pub ack: Option<Ack>,
    /// Application properties: string names to string values, in the order given.
    pub properties: Properties,
}

impl Message {
    /// A message with this body and no properties.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message { body: body.into(), ..Message::default() }
    }

    /// The size IoT Hub counts against its limits, in bytes: body + every system
    /// property value + every application property name and value (spec file §3,
    /// "Message size").
    pub fn size(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.body.len()
            + text(&self.message_id)
            + text(&self.correlation_id)
            + text(&self.user_id)
            + text(&self.to)
            + text(&self.content_type)
            + text(&self.content_encoding)
            + self.properties.size()
    }
}

/// Application properties: an ordered list of name → value pairs.
///
/// A value is `None` when the property was sent as a bare name (MQTT property bags
/// distinguish `key` from `key=`; spec file §4.2). Names are unique: inserting a name
/// again replaces its value in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Properties(Vec<(String, Option<String>)>);

impl Properties {
    /// No properties.
    pub const fn new() -> Self {
        Properties(Vec::new())
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: Option<String>) {
        let name = name.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Sets `name` to the string `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.insert(name, Some(value.into()));
    }

    /// The value of `name`: `None` if absent, `Some(None)` if present without value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_deref())
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Option<String>> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    /// Keeps only the properties `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, Option<&str>) -> bool) {
        self.0.retain(|(n, v)| keep(n, v.as_deref()));
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of all names and values (spec file §3, "Message size").
    pub fn size(&self) -> usize {
        self.0.iter().map(|(n, v)| n.len() + v.as_ref().map_or(0, String::len)).sum()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut p = Properties::new();
        for (n, v) in iter {
            p.set(n, v);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_in_place_and_keeps_order() {
        let mut p = Properties::new();
        p.set("a", "1");
        p.set("b", "2");
        p.insert("a", None);
        assert_eq!(p.iter().collect::<Vec<_>>(), [("a", None), ("b", Some("2"))]);
        assert_eq!(p.get("a"), Some(None));
        assert_eq!(p.get("c"), None);
    }

    #[test]
    fn size_counts_body_system_values_and_property_names_and_values() {
        let mut m = Message::new(&b"12345"[..]);
        m.message_id = Some("mid".into());
        m.properties.set("unit", "C");
        assert_eq!(m.size(), 5 + 3 + 4 + 1);
    }
}
