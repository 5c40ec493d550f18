//! One connection of the hub, whatever its protocol. The engine speaks to every
//! connection through these calls; each protocol answers by its own rules.
//!
//! An MQTT connection carries one device. An AMQP connection carries any number,
//! each authenticated by its own CBS token (spec file §5.10), so the calls that
//! concern one device — eviction, a C2D queue that has something — name it. An
//! HTTP connection carries requests, each authenticated on its own; it is bound to
//! no device, so it is never evicted and never pushed C2D messages (spec file §9:
//! "Duplicate connection: n/a"; a device polls, §6.4).

use alloc::boxed::Box;

use crate::amqp::hub::AmqpConnection;
use crate::http::hub::HttpConnection;
use crate::hub::{AuthRequest, C2dRequest, HubState, StoreTicket};
use crate::iothub::{ErrorCode, MethodRequest, TwinPatch};
use crate::mqtt::hub::MqttConnection;
use crate::sansio::Transmit;
use crate::time::Timestamp;

/// A protocol violation on a hub connection. The hub has answered it as the
/// protocol says (closed the connection, ended the session, detached the link).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// On an MQTT connection.
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::hub::HubProtocolError),
    /// On an AMQP connection.
    #[error(transparent)]
    Amqp(#[from] crate::amqp::hub::HubProtocolError),
    /// On an HTTP connection.
    #[error(transparent)]
    Http(#[from] crate::http::hub::HubProtocolError),
}

#[derive(Debug)]
pub(crate) enum HubConnection {
    // Boxed both: their sizes differ by hundreds of bytes, and a connection lives
    // long enough that one allocation is nothing.
    Mqtt(Box<MqttConnection>),
    Amqp(Box<AmqpConnection>),
    Http(Box<HttpConnection>),
}

impl HubConnection {
    pub(crate) fn handle_input(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        hub: &mut HubState,
    ) -> Result<(), ProtocolError> {
        match self {
            HubConnection::Mqtt(c) => Ok(c.handle_input(now, bytes, hub)?),
            HubConnection::Amqp(c) => Ok(c.handle_input(now, bytes, hub)?),
            HubConnection::Http(c) => Ok(c.handle_input(now, bytes, hub)?),
        }
    }

    /// The runtime stored the message of `ticket`, which this connection sent. An
    /// HTTP connection may then read the requests that waited behind the answer.
    pub(crate) fn telemetry_stored(
        &mut self,
        now: Timestamp,
        ticket: StoreTicket,
        hub: &mut HubState,
    ) {
        match self {
            HubConnection::Mqtt(c) => c.telemetry_stored(now, ticket),
            HubConnection::Amqp(c) => c.telemetry_stored(now, ticket),
            HubConnection::Http(c) => c.telemetry_stored(now, ticket, hub),
        }
    }

    /// The runtime judged the token of `request`. Returns whether this connection
    /// waited for it.
    pub(crate) fn authenticated(
        &mut self,
        now: Timestamp,
        request: AuthRequest,
        result: Result<(), ErrorCode>,
        hub: &mut HubState,
    ) -> bool {
        match self {
            HubConnection::Mqtt(c) => c.authenticated(now, request, result, hub),
            HubConnection::Http(c) => c.authenticated(now, request, result, hub),
            // It authenticates against the registry (`Authentication::Delegated`).
            HubConnection::Amqp(_) => false,
        }
    }

    /// The runtime fetched what there was for the C2D poll of `request`. Returns
    /// whether this connection waited for it.
    pub(crate) fn c2d_fetched(
        &mut self,
        now: Timestamp,
        request: C2dRequest,
        hub: &mut HubState,
    ) -> bool {
        match self {
            HubConnection::Http(c) => c.c2d_fetched(now, request, hub),
            // Pushed their messages: they never poll (spec file §4.4, §5.5).
            HubConnection::Mqtt(_) | HubConnection::Amqp(_) => false,
        }
    }

    /// The runtime could not keep the message of `ticket`, which this connection
    /// sent.
    pub(crate) fn telemetry_refused(
        &mut self,
        now: Timestamp,
        ticket: StoreTicket,
        code: ErrorCode,
        hub: &mut HubState,
    ) {
        match self {
            HubConnection::Mqtt(c) => c.telemetry_refused(now, ticket, code, hub),
            HubConnection::Amqp(c) => c.telemetry_refused(now, ticket, code, hub),
            HubConnection::Http(c) => c.telemetry_refused(now, ticket, code, hub),
        }
    }

    /// `device_id`'s queue may have a message to deliver.
    pub(crate) fn pump_c2d(&mut self, now: Timestamp, device_id: &str, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.pump_c2d(now, hub),
            HubConnection::Amqp(c) => c.pump_c2d(now, device_id, hub),
            // A device takes its messages with a GET (spec file §6.4).
            HubConnection::Http(_) => {}
        }
    }

    /// The service patched `device_id`'s desired properties: a device subscribed to
    /// desired updates receives `patch` with `version` (spec file §4.5, §5.6).
    pub(crate) fn desired_updated(
        &mut self,
        now: Timestamp,
        device_id: &str,
        patch: &TwinPatch,
        version: u64,
        hub: &mut HubState,
    ) {
        match self {
            HubConnection::Mqtt(c) => c.desired_updated(now, patch, version, hub),
            HubConnection::Amqp(c) => c.desired_updated(now, device_id, patch, version, hub),
            // HTTP has no twin (spec file §6.1).
            HubConnection::Http(_) => {}
        }
    }

    /// The service invokes a direct method on `device_id`. Returns whether it went
    /// out: false when the device has not subscribed to methods.
    pub(crate) fn method_request(
        &mut self,
        now: Timestamp,
        device_id: &str,
        request: &MethodRequest,
        hub: &mut HubState,
    ) -> bool {
        match self {
            HubConnection::Mqtt(c) => c.method_request(now, request, hub),
            HubConnection::Amqp(c) => c.method_request(now, device_id, request, hub),
            // HTTP has no direct methods (spec file §6.1).
            HubConnection::Http(_) => false,
        }
    }

    /// A newer connection authenticated as `device_id`.
    pub(crate) fn evict(&mut self, now: Timestamp, device_id: &str, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.evict(now, hub),
            HubConnection::Amqp(c) => c.evict(now, device_id, hub),
            // Never bound to a device (spec file §9), so never replaced.
            HubConnection::Http(_) => {}
        }
    }

    /// The peer closed or the transport broke.
    pub(crate) fn handle_close(&mut self, now: Timestamp, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.handle_close(now, hub),
            HubConnection::Amqp(c) => c.handle_close(now, hub),
            HubConnection::Http(c) => c.handle_close(now, hub),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match self {
            HubConnection::Mqtt(c) => c.poll_timeout(),
            HubConnection::Amqp(c) => c.poll_timeout(),
            HubConnection::Http(c) => c.poll_timeout(),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.handle_timeout(now, hub),
            HubConnection::Amqp(c) => c.handle_timeout(now, hub),
            HubConnection::Http(c) => c.handle_timeout(now, hub),
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            HubConnection::Mqtt(c) => c.poll_transmit(),
            HubConnection::Amqp(c) => c.poll_transmit(),
            HubConnection::Http(c) => c.poll_transmit(),
        }
    }
}
