//! The hub's method node (spec file §5.7, TV-20): requests to a device's methods
//! receiver, responses from its methods sender handed to the hub engine.

use alloc::format;
use alloc::string::ToString;
use bytes::Bytes;

use super::AmqpConnection;
use crate::amqp::link::LinkId;

use crate::amqp::methods;
use crate::amqp::performative::DeliveryNumber;
use crate::hub::HubState;
use crate::iothub::{ErrorCode, Identity, MethodRequest};
use crate::time::Timestamp;

impl AmqpConnection {
    /// The service invokes a method on `device_id`: sent when the device attached
    /// a methods receiver here, its subscription (spec file §5.7). Returns whether
    /// it was; false answers the service 404103 DeviceNotOnline.
    pub(crate) fn method_request(
        &mut self,
        now: Timestamp,
        device_id: &str,
        request: &MethodRequest,
        hub: &mut HubState,
    ) -> bool {
        let message = methods::request_to_message(request);
        self.send_to_device(now, hub, &Identity::device(device_id), "methods", message)
    }

    /// A method response: accepted whatever it says; one that answers a waiting
    /// invocation ends it.
    pub(super) fn on_method_response(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: &Identity,
        (link, delivery_id, settled): (LinkId, DeliveryNumber, bool),
        payload: &Bytes,
    ) {
        let delivery = (link, delivery_id, settled);
        let Some(message) =
            self.take_message(now, hub, identity, delivery, payload, "method response")
        else {
            return;
        };
        match methods::response_from_message(&message) {
            Ok(response) => {
                let request_id = response.request_id.clone();
                if !hub.method_responded(&identity.device_id, response) {
                    let reason = format!(
                        "a method response for request {request_id}, which no invocation \
                         awaits (answered, timed out, or never made); dropped"
                    );
                    self.refuse(hub, Some(identity.clone()), ErrorCode::INVALID_OPERATION, reason);
                }
            }
            Err(e) => {
                let reason = e.to_string();
                self.refuse(hub, Some(identity.clone()), ErrorCode::ARGUMENT_INVALID, reason);
            }
        }
    }
}
