//! Packet Identifier allocation (MQTT 3.1.1 §2.3.1).

use super::packet::PacketId;

/// Hands out identifiers in turn, skipping zero [MQTT-2.3.1-1] and any still in use,
/// so an identifier is reused only after its exchange is acknowledged
/// [MQTT-2.3.1-2].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PacketIds {
    last: u16,
}

impl PacketIds {
    /// The next free identifier, or `None` when all 65 535 are in use.
    pub(crate) fn next(&mut self, in_use: impl Fn(PacketId) -> bool) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            self.last = self.last.checked_add(1).unwrap_or(1);
            if let Some(id) = PacketId::new(self.last) {
                if !in_use(id) {
                    return Some(id);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_2_3_1_1_identifiers_are_never_zero_and_skip_those_in_use() {
        let mut ids = PacketIds { last: u16::MAX - 1 };
        assert_eq!(ids.next(|_| false).map(PacketId::get), Some(u16::MAX));
        assert_eq!(ids.next(|_| false).map(PacketId::get), Some(1), "wraps past zero");
        assert_eq!(ids.next(|id| id.get() == 2).map(PacketId::get), Some(3));
        assert_eq!(ids.next(|_| true), None);
    }
}
