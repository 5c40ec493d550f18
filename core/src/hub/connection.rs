//! One connection of the hub, whatever its protocol. The engine speaks to every
//! connection through these calls; each protocol answers by its own rules.
//!
//! An MQTT connection carries one device. An AMQP connection carries any number,
//! each authenticated by its own CBS token (spec file §5.10), so the calls that
//! concern one device — eviction, a C2D queue that has something — name it.

use alloc::boxed::Box;

use crate::amqp::hub::AmqpConnection;
use crate::hub::{HubState, StoreTicket};
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
}

#[derive(Debug)]
pub(crate) enum HubConnection {
    // Boxed both: their sizes differ by hundreds of bytes, and a connection lives
    // long enough that one allocation is nothing.
    Mqtt(Box<MqttConnection>),
    Amqp(Box<AmqpConnection>),
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
        }
    }

    /// The runtime stored the message of `ticket`, which this connection sent.
    pub(crate) fn telemetry_stored(&mut self, now: Timestamp, ticket: StoreTicket) {
        match self {
            HubConnection::Mqtt(c) => c.telemetry_stored(now, ticket),
            HubConnection::Amqp(c) => c.telemetry_stored(now, ticket),
        }
    }

    /// `device_id`'s queue may have a message to deliver.
    pub(crate) fn pump_c2d(&mut self, now: Timestamp, device_id: &str, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.pump_c2d(now, hub),
            HubConnection::Amqp(c) => c.pump_c2d(now, device_id, hub),
        }
    }

    /// A newer connection authenticated as `device_id`.
    pub(crate) fn evict(&mut self, now: Timestamp, device_id: &str, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.evict(now, hub),
            HubConnection::Amqp(c) => c.evict(now, device_id, hub),
        }
    }

    /// The peer closed or the transport broke.
    pub(crate) fn handle_close(&mut self, now: Timestamp, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.handle_close(now, hub),
            HubConnection::Amqp(c) => c.handle_close(now, hub),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match self {
            HubConnection::Mqtt(c) => c.poll_timeout(),
            HubConnection::Amqp(c) => c.poll_timeout(),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp, hub: &mut HubState) {
        match self {
            HubConnection::Mqtt(c) => c.handle_timeout(now, hub),
            HubConnection::Amqp(c) => c.handle_timeout(now, hub),
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            HubConnection::Mqtt(c) => c.poll_transmit(),
            HubConnection::Amqp(c) => c.poll_transmit(),
        }
    }
}
