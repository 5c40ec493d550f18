//! The callers waiting for the hub's answer to what they sent: telemetry waiting
//! for its acknowledgement, twin requests for their reply. A driver hands each
//! device event here first; what nobody waits for goes to the application.
//!
//! `K` names the device: `()` for a client of one device, the [`DeviceKey`] of a
//! multiplexed connection. `C` is the API's family of channels, the callers being
//! threads or tasks.
//!
//! [`DeviceKey`]: hubwire_core::amqp::device::DeviceKey

use std::collections::BTreeMap;

use hubwire_core::device::{DeviceEvent, TelemetryId, TwinRequestId};
use hubwire_core::iothub::Twin;

use crate::channels::{Channels, Deliver};
use crate::sync::{TelemetryError, TwinCallError};

/// A twin request's answer, as its waiter receives it.
pub(crate) type TwinAnswer = Result<TwinReply, TwinCallError>;

/// What a twin request was answered with.
#[derive(Debug)]
pub(crate) enum TwinReply {
    Twin(Twin),
    Version(u64),
}

impl TwinReply {
    /// The twin a get asked for. A version cannot answer a get (the driver pairs
    /// answers with requests by id); were it to, the call ends as if closed.
    pub(crate) fn twin(self) -> Result<Twin, TwinCallError> {
        match self {
            TwinReply::Twin(twin) => Ok(twin),
            TwinReply::Version(_) => Err(TwinCallError::Closed),
        }
    }

    /// The reported section's version a patch was answered with; as
    /// [`twin`](Self::twin), a twin cannot answer a patch.
    pub(crate) fn version(self) -> Result<u64, TwinCallError> {
        match self {
            TwinReply::Version(version) => Ok(version),
            TwinReply::Twin(_) => Err(TwinCallError::Closed),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Waiters<K, C: Channels> {
    telemetry: BTreeMap<(K, TelemetryId), C::Sender<Result<(), TelemetryError>>>,
    twins: BTreeMap<(K, TwinRequestId), C::Sender<TwinAnswer>>,
}

impl<K: Ord + Copy, C: Channels> Waiters<K, C> {
    pub(crate) fn new() -> Self {
        Waiters { telemetry: BTreeMap::new(), twins: BTreeMap::new() }
    }

    /// `ack` waits for the hub's answer to telemetry `id` of device `key`.
    pub(crate) fn telemetry(
        &mut self,
        key: K,
        id: TelemetryId,
        ack: C::Sender<Result<(), TelemetryError>>,
    ) {
        self.telemetry.insert((key, id), ack);
    }

    /// `reply` waits for the hub's answer to twin request `id` of device `key`.
    pub(crate) fn twin(&mut self, key: K, id: TwinRequestId, reply: C::Sender<TwinAnswer>) {
        self.twins.insert((key, id), reply);
    }

    /// Device `key` is gone: its waiters hear that no answer will come.
    pub(crate) fn forget(&mut self, key: K) {
        self.telemetry.retain(|(k, _), _| *k != key);
        self.twins.retain(|(k, _), _| *k != key);
    }

    /// Hands `event` of device `key` to whoever waits for it; false when nobody
    /// does (or the caller gave up, its future dropped), and the event is the
    /// application's.
    pub(crate) fn answer(&mut self, key: K, event: &DeviceEvent) -> bool {
        match event {
            DeviceEvent::TelemetryAcknowledged(id) => {
                self.telemetry.remove(&(key, *id)).is_some_and(|w| w.deliver(Ok(())))
            }
            DeviceEvent::TelemetryRejected { id, condition, description } => {
                let rejected = TelemetryError::Rejected {
                    condition: condition.clone(),
                    description: description.clone(),
                };
                self.telemetry.remove(&(key, *id)).is_some_and(|w| w.deliver(Err(rejected)))
            }
            DeviceEvent::Twin { request, twin } => self
                .twins
                .remove(&(key, *request))
                .is_some_and(|w| w.deliver(Ok(TwinReply::Twin(twin.clone())))),
            DeviceEvent::ReportedPatched { request, version } => self
                .twins
                .remove(&(key, *request))
                .is_some_and(|w| w.deliver(Ok(TwinReply::Version(*version)))),
            DeviceEvent::TwinRequestFailed { request, status, description } => {
                let failed =
                    TwinCallError::Failed { status: *status, description: description.clone() };
                self.twins.remove(&(key, *request)).is_some_and(|w| w.deliver(Err(failed)))
            }
            DeviceEvent::Disconnected { reason, reconnect_at: None } => {
                // The device has stopped: its telemetry will never be acknowledged.
                // The event is the application's too.
                let stopped: Vec<_> =
                    self.telemetry.keys().filter(|(k, _)| *k == key).copied().collect();
                for id in stopped {
                    if let Some(waiter) = self.telemetry.remove(&id) {
                        waiter.deliver(Err(TelemetryError::Stopped(reason.clone())));
                    }
                }
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::Blocking;
    use hubwire_core::device::DisconnectReason;
    use std::sync::mpsc;

    fn ack(id: u64) -> DeviceEvent {
        DeviceEvent::TelemetryAcknowledged(TelemetryId(id))
    }

    #[test]
    fn an_answer_goes_to_its_waiter_of_its_device_only() {
        let mut waiters = Waiters::<_, Blocking>::new();
        let (tx, rx) = mpsc::channel();
        waiters.telemetry(1u64, TelemetryId(7), tx);
        // Device 2's message 7 is not device 1's.
        assert!(!waiters.answer(2, &ack(7)));
        assert!(rx.try_recv().is_err());
        assert!(waiters.answer(1, &ack(7)));
        assert_eq!(rx.try_recv().ok(), Some(Ok(())));
        // Answered once: the same event again is the application's.
        assert!(!waiters.answer(1, &ack(7)));
    }

    #[test]
    fn an_answer_whose_caller_gave_up_is_the_applications() {
        let mut waiters = Waiters::<_, Blocking>::new();
        let (tx, rx) = mpsc::channel();
        waiters.telemetry((), TelemetryId(1), tx);
        drop(rx);
        assert!(!waiters.answer((), &ack(1)));
    }

    #[test]
    fn twin_answers_and_failures_reach_their_waiters() {
        let mut waiters = Waiters::<_, Blocking>::new();
        let (tx, rx) = mpsc::channel();
        waiters.twin((), TwinRequestId(3), tx);
        let patched = DeviceEvent::ReportedPatched { request: TwinRequestId(3), version: 4 };
        assert!(waiters.answer((), &patched));
        assert!(matches!(rx.try_recv(), Ok(Ok(TwinReply::Version(4)))));

        let (tx, rx) = mpsc::channel();
        waiters.twin((), TwinRequestId(4), tx);
        let failed = DeviceEvent::TwinRequestFailed {
            request: TwinRequestId(4),
            status: Some(429),
            description: String::from("throttled"),
        };
        assert!(waiters.answer((), &failed));
        let Ok(Err(TwinCallError::Failed { status, description })) = rx.try_recv() else {
            panic!("the failure reaches the waiter");
        };
        assert_eq!((status, description.as_str()), (Some(429), "throttled"));
    }

    #[test]
    fn a_device_that_stops_fails_its_waiting_telemetry_and_tells_the_application() {
        let mut waiters = Waiters::<_, Blocking>::new();
        let (mine, mine_rx) = mpsc::channel();
        let (other, other_rx) = mpsc::channel();
        waiters.telemetry(1u64, TelemetryId(1), mine);
        waiters.telemetry(2u64, TelemetryId(1), other);
        let stopped = DeviceEvent::Disconnected {
            reason: DisconnectReason::KeepAliveTimeout,
            reconnect_at: None,
        };
        assert!(!waiters.answer(1, &stopped), "the application hears it too");
        assert_eq!(
            mine_rx.try_recv().ok(),
            Some(Err(TelemetryError::Stopped(DisconnectReason::KeepAliveTimeout)))
        );
        assert!(other_rx.try_recv().is_err(), "device 2 runs on");
        // A forgotten device's waiters hear that no answer will come.
        waiters.forget(2);
        assert_eq!(other_rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    }
}
