//! Keep Alive (MQTT 3.1.1 §3.1.2.10) on both sides of a connection.

use crate::time::{Duration, Timestamp};

/// The longest a hub waits for a silent client: IoT Hub allows 1.5 × the client's
/// Keep Alive but never more than 1767 s, the idle limit of Azure's load balancers
/// (spec file §4.1.2, [MQTT-3.1.2-24]).
pub const MAX_SERVER_TIMEOUT: Duration = Duration::from_secs(1767);

/// How long the hub lets a client with this Keep Alive (seconds) stay silent before
/// closing it [MQTT-3.1.2-24]: one and a half times the value, capped at
/// [`MAX_SERVER_TIMEOUT`].
///
/// A Keep Alive of 0 turns the mechanism off in MQTT; IoT Hub's behaviour for it is
/// unconfirmed (spec file §4.1.2), and a connection no load balancer would keep is
/// not one to promise, so 0 gets the cap.
pub fn server_timeout(keep_alive_secs: u16) -> Duration {
    if keep_alive_secs == 0 {
        return MAX_SERVER_TIMEOUT;
    }
    (Duration::from_secs(u64::from(keep_alive_secs)) * 3 / 2).min(MAX_SERVER_TIMEOUT)
}

/// What the client's keep-alive timer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PingAction {
    /// Nothing was sent for a whole Keep Alive: send PINGREQ [MQTT-3.1.2-23].
    SendPingReq,
    /// The PINGRESP did not come in time: the connection is dead.
    Dead,
}

/// The client side: send PINGREQ when the connection has been quiet for the Keep
/// Alive interval, and give up when its PINGRESP does not arrive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pinger {
    interval: Option<Duration>,
    response_timeout: Duration,
    last_sent: Timestamp,
    pingresp_due: Option<Timestamp>,
}

impl Pinger {
    /// `keep_alive` zero turns pinging off, as it does on the wire.
    pub(crate) fn new(now: Timestamp, keep_alive: Duration, response_timeout: Duration) -> Self {
        Pinger {
            interval: (!keep_alive.is_zero()).then_some(keep_alive),
            response_timeout,
            last_sent: now,
            pingresp_due: None,
        }
    }

    /// A packet was sent: any packet counts for Keep Alive.
    pub(crate) fn on_sent(&mut self, now: Timestamp) {
        self.last_sent = now;
    }

    pub(crate) fn on_pingresp(&mut self) {
        self.pingresp_due = None;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match self.pingresp_due {
            Some(due) => Some(due),
            None => self.interval.map(|i| self.last_sent + i),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp) -> Option<PingAction> {
        if let Some(due) = self.pingresp_due {
            return (now >= due).then_some(PingAction::Dead);
        }
        let interval = self.interval?;
        if now >= self.last_sent + interval {
            self.pingresp_due = Some(now + self.response_timeout);
            return Some(PingAction::SendPingReq);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    #[test]
    fn mqtt_3_1_2_24_server_allows_one_and_a_half_keep_alives_capped() {
        assert_eq!(server_timeout(60), Duration::from_secs(90));
        assert_eq!(server_timeout(1), Duration::from_millis(1500));
        assert_eq!(server_timeout(1177), Duration::from_millis(1_765_500));
        assert_eq!(server_timeout(1178), MAX_SERVER_TIMEOUT);
        assert_eq!(server_timeout(u16::MAX), MAX_SERVER_TIMEOUT);
        assert_eq!(server_timeout(0), MAX_SERVER_TIMEOUT);
    }

    #[test]
    fn mqtt_3_1_2_23_pingreq_after_a_quiet_keep_alive() {
        let mut p = Pinger::new(at(0), Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(p.poll_timeout(), Some(at(60)));
        assert_eq!(p.handle_timeout(at(59)), None);
        assert_eq!(p.handle_timeout(at(60)), Some(PingAction::SendPingReq));
        p.on_sent(at(60));
        assert_eq!(p.poll_timeout(), Some(at(90)), "now waiting for the PINGRESP");
        p.on_pingresp();
        assert_eq!(p.poll_timeout(), Some(at(120)));
    }

    #[test]
    fn pingreq_not_sent_while_publishing() {
        let mut p = Pinger::new(at(0), Duration::from_secs(60), Duration::from_secs(30));
        for s in (10..600).step_by(10) {
            p.on_sent(at(s));
            assert_eq!(p.handle_timeout(at(s)), None);
        }
    }

    #[test]
    fn missing_pingresp_declares_the_connection_dead() {
        let mut p = Pinger::new(at(0), Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(p.handle_timeout(at(60)), Some(PingAction::SendPingReq));
        p.on_sent(at(60));
        assert_eq!(p.handle_timeout(at(89)), None);
        assert_eq!(p.handle_timeout(at(90)), Some(PingAction::Dead));
    }

    #[test]
    fn keep_alive_zero_never_pings() {
        let mut p = Pinger::new(at(0), Duration::ZERO, Duration::from_secs(30));
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.handle_timeout(at(1_000_000)), None);
    }
}
