//! Direct-method invocations the service has made and the device has not answered
//! (spec file §4.6, §5.7): each waits for the device's response until its timeout,
//! and is then answered for the device, as IoT Hub answers its service callers.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
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
    /// The device's connection ended before it answered: 404103 DeviceNotOnline,
    /// at once rather than at the timeout.
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

/// How long a device may take to answer, as IoT Hub bounds `responseTimeoutInSeconds`
/// (DOC-METH): 5 s to 300 s.
pub const MIN_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(5);
/// See [`MIN_TIMEOUT`].
pub const MAX_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(300);

/// Invocations one device may have waiting at once; one more is refused 429: a
/// device that reads nothing must not make the hub hold requests without bound.
pub const MAX_PENDING_PER_DEVICE: usize = 64;

/// The longest method name, bytes. IoT Hub does not publish one; this keeps the
/// request within an MQTT topic with room to spare.
pub const MAX_NAME_LEN: usize = 1024;

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

    /// Ends every invocation waiting for `device_id`: its connection is gone.
    pub(crate) fn take_device(&mut self, device_id: &str) -> Vec<(MethodInvocation, Pending)> {
        let ids: Vec<MethodInvocation> = self.of_device(device_id).collect();
        ids.into_iter().filter_map(|id| Some((id, self.take(id)?))).collect()
    }

    /// How many invocations wait for `device_id`.
    pub(crate) fn waiting_for(&self, device_id: &str) -> usize {
        self.of_device(device_id).count()
    }

    fn of_device<'a>(&'a self, device_id: &'a str) -> impl Iterator<Item = MethodInvocation> + 'a {
        let from = (String::from(device_id), String::new());
        self.by_request
            .range(from..)
            .take_while(move |((d, _), _)| d == device_id)
            .map(|(_, id)| *id)
    }

    pub(crate) fn take(&mut self, id: MethodInvocation) -> Option<Pending> {
        let pending = self.pending.remove(&id)?;
        self.by_request.remove(&(pending.device_id.clone(), pending.request_id.clone()));
        Some(pending)
    }
}
