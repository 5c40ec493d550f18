//! The hub's twin node (spec file §5.6, TV-19): requests on a device's twin sender
//! answered on its twin receiver, and desired-property notifications for the
//! devices that subscribed with a PUT.

use alloc::string::{String, ToString};
use bytes::Bytes;

use super::AmqpConnection;
use crate::amqp::delivery_state::DeliveryState;
use crate::amqp::link::LinkId;
use crate::amqp::message::MessageId;
use crate::amqp::performative::DeliveryNumber;
use crate::amqp::twin::{TwinOperation, TwinReply, TwinRequest, TwinResponse};
use crate::hub::HubState;
use crate::iothub::{ErrorCode, Identity, TwinPatch};
use crate::time::Timestamp;

/// A twin request answered.
const OK: i32 = 200;
/// A reported-properties patch taken (TV-19).
const PATCHED: i32 = 204;

impl AmqpConnection {
    /// A twin request (spec file §5.6): the delivery is accepted (the SDKs send
    /// them settled), and the answer goes to the device's twin receiver.
    pub(super) fn on_twin_request(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: &Identity,
        (link, delivery_id, settled): (LinkId, DeliveryNumber, bool),
        payload: &Bytes,
    ) {
        let delivery = (link, delivery_id, settled);
        let Some(request) =
            self.take_message(now, hub, identity, delivery, payload, "twin request")
        else {
            return;
        };
        let response = match TwinRequest::from_message(&request) {
            Ok(request) => self.serve_twin(hub, identity, request),
            Err(e) => {
                let reason = e.to_string();
                self.refuse(
                    hub,
                    Some(identity.clone()),
                    ErrorCode::ARGUMENT_INVALID,
                    reason.clone(),
                );
                // Without a correlation-id no answer can be matched: none is sent.
                let Some(id) = e.correlation_id else { return };
                error(id, 400, ErrorCode::ARGUMENT_INVALID, &reason)
            }
        };
        let message = TwinReply::Response(response).to_message();
        if !self.send_to_device(now, hub, identity, "twin", message) {
            let reason = String::from("a twin response for a device without a twin receiver");
            self.refuse(hub, Some(identity.clone()), ErrorCode::INVALID_OPERATION, reason);
        }
    }

    fn serve_twin(
        &mut self,
        hub: &mut HubState,
        identity: &Identity,
        request: TwinRequest,
    ) -> TwinResponse {
        let id = request.correlation_id;
        let ok =
            |id, status, version, body| TwinResponse { correlation_id: id, status, version, body };
        let device_id = identity.device_id.as_str();
        match request.operation {
            TwinOperation::Get => match hub.twin(device_id) {
                Some(twin) => ok(id, OK, None, Bytes::from(twin.to_json())),
                None => error(id, 404, ErrorCode::DEVICE_NOT_FOUND, "no such device"),
            },
            TwinOperation::PatchReported(body) => {
                match TwinPatch::parse(&body).and_then(|p| hub.patch_reported(device_id, p)) {
                    Ok(version) => ok(
                        id,
                        PATCHED,
                        Some(i64::try_from(version).unwrap_or(i64::MAX)),
                        Bytes::new(),
                    ),
                    Err(e) => {
                        let code = e.code();
                        let reason = e.to_string();
                        hub.emit(crate::hub::HubEvent::Refused {
                            connection: self.id,
                            identity: Some(identity.clone()),
                            code,
                            reason: reason.clone(),
                        });
                        error(id, i32::from(e.status()), code, &reason)
                    }
                }
            }
            TwinOperation::SubscribeDesired => {
                self.desired.insert(identity.clone());
                ok(id, OK, None, Bytes::new())
            }
            TwinOperation::UnsubscribeDesired => {
                self.desired.remove(identity);
                ok(id, OK, None, Bytes::new())
            }
        }
    }

    /// The service patched `device_id`'s desired properties: a device that
    /// subscribed here gets the patch with its `$version`, without correlation-id
    /// (spec file §5.6, TV-19).
    pub(crate) fn desired_updated(
        &mut self,
        now: Timestamp,
        device_id: &str,
        patch: &TwinPatch,
        version: u64,
        hub: &mut HubState,
    ) {
        let identity = Identity::device(device_id);
        if !self.desired.contains(&identity) {
            return;
        }
        let body = Bytes::from(patch.to_json_with_version(version));
        let message = TwinReply::Desired(body).to_message();
        self.send_to_device(now, hub, &identity, "twin", message);
    }

    /// Accepts a delivery the device sent unsettled, and gives the link its credit
    /// back.
    pub(super) fn accept(
        &mut self,
        now: Timestamp,
        link: LinkId,
        delivery_id: DeliveryNumber,
        settled: bool,
    ) {
        if !settled {
            let accepted = Some(DeliveryState::Accepted);
            let _ = self.engine.disposition(now, link, delivery_id, accepted, true);
        }
        self.top_up(now, link);
    }
}

/// An error answer: `status`, and a JSON body naming IoT Hub's code and the reason
/// (Node parses the body for its message, spec file §5.6).
fn error(id: MessageId, status: i32, code: ErrorCode, reason: &str) -> TwinResponse {
    let body = serde_json::json!({ "errorCode": code.code, "message": reason });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    TwinResponse { correlation_id: id, status, version: None, body: Bytes::from(body) }
}
