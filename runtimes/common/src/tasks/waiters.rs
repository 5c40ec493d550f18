//! The callers waiting for the hub's answer to what they sent: telemetry waiting
//! for its acknowledgement, twin requests for their reply. A driver hands each
//! device event here first; what nobody waits for goes to the application.
//!
//! `K` names the device: `()` for a client of one device, the [`DeviceKey`] of a
//! multiplexed connection.
//!
//! [`DeviceKey`]: hubwire_core::amqp::device::DeviceKey

use std::collections::BTreeMap;

use async_channel::Sender;
use hubwire_core::device::{DeviceEvent, TelemetryId, TwinRequestId};
use hubwire_core::iothub::Twin;

use crate::sync::{TelemetryError, TwinCallError};

/// A twin request's answer, as its waiter receives it.
pub(super) type TwinAnswer = Result<TwinReply, TwinCallError>;

/// What a twin request was answered with.
#[derive(Debug)]
pub(super) enum TwinReply {
    Twin(Twin),
    Version(u64),
}

#[derive(Debug)]
pub(super) struct Waiters<K> {
    telemetry: BTreeMap<(K, TelemetryId), Sender<Result<(), TelemetryError>>>,
    twins: BTreeMap<(K, TwinRequestId), Sender<TwinAnswer>>,
}

impl<K: Ord + Copy> Waiters<K> {
    pub(super) fn new() -> Self {
        Waiters { telemetry: BTreeMap::new(), twins: BTreeMap::new() }
    }

    /// `ack` waits for the hub's answer to telemetry `id` of device `key`.
    pub(super) fn telemetry(
        &mut self,
        key: K,
        id: TelemetryId,
        ack: Sender<Result<(), TelemetryError>>,
    ) {
        self.telemetry.insert((key, id), ack);
    }

    /// `reply` waits for the hub's answer to twin request `id` of device `key`.
    pub(super) fn twin(&mut self, key: K, id: TwinRequestId, reply: Sender<TwinAnswer>) {
        self.twins.insert((key, id), reply);
    }

    /// Device `key` is gone: its waiters hear that no answer will come.
    pub(super) fn forget(&mut self, key: K) {
        self.telemetry.retain(|(k, _), _| *k != key);
        self.twins.retain(|(k, _), _| *k != key);
    }

    /// Hands `event` of device `key` to whoever waits for it; false when nobody
    /// does (or the caller gave up, its future dropped), and the event is the
    /// application's.
    pub(super) fn answer(&mut self, key: K, event: &DeviceEvent) -> bool {
        match event {
            DeviceEvent::TelemetryAcknowledged(id) => {
                self.telemetry.remove(&(key, *id)).is_some_and(|w| w.try_send(Ok(())).is_ok())
            }
            DeviceEvent::TelemetryRejected { id, condition, description } => {
                let rejected = TelemetryError::Rejected {
                    condition: condition.clone(),
                    description: description.clone(),
                };
                self.telemetry
                    .remove(&(key, *id))
                    .is_some_and(|w| w.try_send(Err(rejected)).is_ok())
            }
            DeviceEvent::Twin { request, twin } => self
                .twins
                .remove(&(key, *request))
                .is_some_and(|w| w.try_send(Ok(TwinReply::Twin(twin.clone()))).is_ok()),
            DeviceEvent::ReportedPatched { request, version } => self
                .twins
                .remove(&(key, *request))
                .is_some_and(|w| w.try_send(Ok(TwinReply::Version(*version))).is_ok()),
            DeviceEvent::TwinRequestFailed { request, status, description } => {
                let failed =
                    TwinCallError::Failed { status: *status, description: description.clone() };
                self.twins.remove(&(key, *request)).is_some_and(|w| w.try_send(Err(failed)).is_ok())
            }
            DeviceEvent::Disconnected { reason, reconnect_at: None } => {
                // The device has stopped: its telemetry will never be acknowledged.
                // The event is the application's too.
                let stopped: Vec<_> =
                    self.telemetry.keys().filter(|(k, _)| *k == key).copied().collect();
                for id in stopped {
                    if let Some(waiter) = self.telemetry.remove(&id) {
                        let _ = waiter.try_send(Err(TelemetryError::Stopped(reason.clone())));
                    }
                }
                false
            }
            _ => false,
        }
    }
}
