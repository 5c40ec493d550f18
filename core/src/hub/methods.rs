//! Direct-method invocations the service has made and the device has not answered
//! (spec file §4.6, §5.7): each waits for the device's response until its timeout,
//! and is then answered for the device, as IoT Hub answers its service callers.

use alloc::collections::BTreeMap;
use alloc::string::String;
use bytes::Bytes;

use crate::iothub::ErrorCode;

/// Names one invocation from [`Hub::invoke_method`](super::Hub::invoke_method) to
/// its [`HubEvent::MethodResult`](super::HubEvent::MethodResult).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MethodInvocation(pub u64);

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodOutcome {
    /// The device answered with this status and payload.
    Responded {
        /// The device's status, as it chose it.
        status: i32,
        /// Its payload: JSON, or empty.
        payload: Bytes,
    },
    /// No answer in time: IoT Hub's 504101 GatewayTimeoutError.
    TimedOut,
    /// The device's connection ended before it answered: 404103 DeviceNotOnline.
    Disconnected,
}

impl MethodOutcome {
    /// The status the service caller sees: the device's own, or 504 / 404.
    pub fn status(&self) -> i32 {
        match self {
            MethodOutcome::Responded { status, .. } => *status,
            MethodOutcome::TimedOut => 504,
            MethodOutcome::Disconnected => 404,
        }
    }

    /// IoT Hub's error code when the hub answered for the device.
    pub fn error(&self) -> Option<ErrorCode> {
        match self {
            MethodOutcome::Responded { .. } => None,
            MethodOutcome::TimedOut => Some(ErrorCode::GATEWAY_TIMEOUT),
            MethodOutcome::Disconnected => Some(ErrorCode::DEVICE_NOT_ONLINE),
        }
    }
}

/// One invocation waiting for its device.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) device_id: String,
    pub(crate) request_id: String,
    pub(crate) name: String,
}

/// Every waiting invocation, found by its id or by its device and request id.
#[derive(Debug, Default)]
pub(crate) struct Methods {
    pending: BTreeMap<MethodInvocation, Pending>,
    by_request: BTreeMap<(String, String), MethodInvocation>,
    next: u64,
}

impl Methods {
    /// A fresh invocation id.
    pub(crate) fn next_id(&mut self) -> MethodInvocation {
        self.next += 1;
        MethodInvocation(self.next)
    }

    pub(crate) fn insert(&mut self, id: MethodInvocation, pending: Pending) {
        let key = (pending.device_id.clone(), pending.request_id.clone());
        self.by_request.insert(key, id);
        self.pending.insert(id, pending);
    }

    /// The invocation `device_id`'s answer with `request_id` ends, if it waits.
    pub(crate) fn take_by_request(
        &mut self,
        device_id: &str,
        request_id: &str,
    ) -> Option<(MethodInvocation, Pending)> {
        let key = (String::from(device_id), String::from(request_id));
        let id = self.by_request.remove(&key)?;
        self.pending.remove(&id).map(|p| (id, p))
    }

    pub(crate) fn take(&mut self, id: MethodInvocation) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        self.by_request.remove(&(pending.device_id.clone(), pending.request_id.clone()));
        Some(pending)
    }
}
