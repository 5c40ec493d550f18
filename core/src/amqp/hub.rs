//! The hub's side of one AMQP connection (spec file §5): any number of devices,
//! each authenticated by its own CBS token (§5.10).
//!
//! An `AmqpConnection` accepts both protocol headers (the Node and .NET SDKs skip
//! SASL, the C SDK sends `MSSBCBS`, generic clients `PLAIN`; §5.1), answers
//! put-tokens on `$cbs` (§5.2), lets a link attach only to a node its device holds
//! a valid token for (§5.3), stores telemetry before it accepts the delivery,
//! delivers C2D messages with the lock token as delivery tag, settling the queue as
//! the device's outcome says (§5.5), answers twin requests and sends desired
//! notifications (§5.6, `twin`), and carries direct methods (§5.7, `methods`).
//!
//! | What the device does | The hub's answer |
//! |---|---|
//! | put-token that does not parse | status 400, the request accepted (EDGE `CbsNode`) |
//! | put-token with a bad, expired or foreign token; unknown device | its status (401, 404), logged as the registry's code |
//! | put-token for a new identity past `HubConfig::max_cbs_tokens` ([`cbs::MAX_TOKENS`]) | status 403, 403005 IotHubMaxCbsTokenExceeded |
//! | attach to an address that names no node | refused, `amqp:not-found` |
//! | attach for an identity without a valid token | refused, `amqp:unauthorized-access` |
//! | attach in a direction the node does not serve | refused, `amqp:not-allowed` |
//! | attach to a module's twin or methods | refused, `amqp:not-implemented` (the hub keeps device twins only) |
//! | twin request that is not one (no JSON object, unknown operation or resource) | answered with status 400 and a JSON body, when it has a correlation-id (spec file §5.6) |
//! | twin request or method response that does not decode | rejected, `amqp:decode-error` |
//! | method response for no waiting invocation (answered, timed out) | dropped, accepted all the same |
//! | attach to a transaction coordinator (part 4) | refused, `amqp:not-implemented` |
//! | telemetry that is not an IoT Hub message | rejected, `com.microsoft:argument-error` |
//! | telemetry larger than the hub takes | rejected, `amqp:link:message-size-exceeded` |
//! | its token expires | its links detached, `amqp:unauthorized-access`; a SASL PLAIN login's expiry closes the connection (spec file §5.1) |
//! | the same device authenticates on another connection | its links here detached, `amqp:link:stolen` |
//! | more links than 8 per identity the connection may hold (64 at least) | the connection closed, `amqp:resource-limit-exceeded` |
//! | a session past channel-max 15, a handle above handle-max | the connection closed, `amqp:connection:framing-error` (§2.7.1, §2.7.2) |
//!
//! Every refusal is also a [`HubEvent::Refused`], since the SDKs hide the reason.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::address::NodeAddress;
use super::cbs::{self, Audience, CbsTokens, PutToken, PutTokenResponse};
use super::connection::{Connection, ConnectionEvent, SaslServer};
use super::delivery_state::DeliveryState;
use super::engine::{CommandError, Engine, EngineError, EngineEvent};
use super::link::{self, Delivery, LinkEvent, LinkId, LinkSpec};
use super::message::{self, HubStamps, Message};
use super::performative::{
    AmqpError, Attach, DeliveryNumber, MESSAGE_FORMAT_AMQP, MESSAGE_FORMAT_BATCH, Open,
    ReceiverSettleMode, Role, SenderSettleMode, condition,
};
use super::sasl::{self, PlainResponse, SasUser, SaslCode};
use super::session::SessionConfig;
use super::types::{Limits, Symbol};
use crate::hub::{HubConfig, HubEvent, HubState, Origin, StoreTicket};
use crate::iothub::{Disposition, ErrorCode, Identity, LockToken, SasToken};
use crate::sansio::{ConnectionId, Transmit};
use crate::time::Timestamp;
use crate::utf8::Utf8Bytes;

/// A protocol violation on a hub AMQP connection; the engine has answered it at
/// its scope (a close, an end, a detach or a rejected delivery).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct HubProtocolError(#[from] pub EngineError);

/// The largest frame the hub takes, bytes. 64 KiB, as EDGE's SASL layer: a
/// telemetry message of 256 KiB then arrives in five frames.
const MAX_FRAME_SIZE: u32 = 64 * 1024;

/// The hub's idle time-out, ms: 4 min, as EDGE's server default (spec file §5.1;
/// what IoT Hub advertises is unconfirmed). Peers send heartbeats at half of it;
/// a peer silent for twice it is closed (AMQP 1.0 §2.4.5).
const IDLE_TIME_OUT_MS: u32 = 240_000;

/// Room for the AMQP sections around a message's body and properties, bytes: the
/// link's max-message-size is the hub's message limit plus this, so a message the
/// hub would take is never refused by the link layer for its encoding.
const SECTIONS_OVERHEAD: u64 = 16 * 1024;

/// Credit on a device's sender link (telemetry, twin requests, method responses):
/// deliveries a device may have unanswered. Topped up as the hub answers them.
const SENDER_CREDIT: u32 = 64;

/// Messages the hub holds for one of a device's receivers (twin replies, method
/// requests) while it gives no credit; more are dropped and logged. A device whose
/// desired notifications were dropped catches up with a GET (spec file §4.5).
const MAX_OUTGOING: usize = 64;

/// Sessions a client may begin on one connection, less one: IoT Hub's SDKs use
/// one (the C SDK, Node) or two (.NET, unconfirmed, spec file §5.1), and each
/// costs the hub memory a stranger should not command.
const CHANNEL_MAX: u16 = 15;

/// Links one connection may hold, per identity it may authenticate: telemetry,
/// C2D, twin and methods (two each), and room for refused attaches whose detach
/// the client has not answered yet.
const LINKS_PER_IDENTITY: usize = 8;

/// Credit on a `$cbs` request link: put-tokens a client may have unanswered.
const CBS_CREDIT: u32 = 16;

/// The largest put-token request the hub takes, bytes: the `$cbs` request link's
/// max-message-size. A SAS token and its audience are well under 2 KiB; without a
/// bound, a stranger's delivery that never ends (`more` on every frame) would be
/// buffered without limit before any authentication.
const CBS_MAX_MESSAGE_SIZE: u64 = 16 * 1024;

/// What a link of this connection is for.
#[derive(Debug)]
enum HubLink {
    /// The client's sender to `$cbs`: put-token requests.
    CbsRequests,
    /// The client's receiver from `$cbs`: put-token responses.
    CbsResponses {
        /// Whether responses go pre-settled (the client allowed it).
        settled: bool,
    },
    /// A device's sender to its `messages/events`: telemetry.
    Telemetry(Identity),
    /// A device's receiver from its `messages/devicebound`: C2D messages, with the
    /// locks of those not yet settled.
    C2d { identity: Identity, in_flight: BTreeMap<DeliveryNumber, LockToken> },
    /// A device's sender to its twin: twin requests (spec file §5.6).
    TwinRequests(Identity),
    /// A device's receiver from its twin: responses and desired notifications.
    TwinReplies {
        identity: Identity,
        /// Whether they go pre-settled (the device's attach allowed it, spec file
        /// §5.3: the SDKs ask for snd-settle-mode settled).
        settled: bool,
    },
    /// A device's receiver from `methods/devicebound`: method requests (spec file
    /// §5.7).
    MethodRequests { identity: Identity, settled: bool },
    /// A device's sender to `methods/devicebound`: method responses.
    MethodResponses(Identity),
}

impl HubLink {
    fn identity(&self) -> Option<&Identity> {
        match self {
            HubLink::Telemetry(id)
            | HubLink::C2d { identity: id, .. }
            | HubLink::TwinRequests(id)
            | HubLink::TwinReplies { identity: id, .. }
            | HubLink::MethodRequests { identity: id, .. }
            | HubLink::MethodResponses(id) => Some(id),
            HubLink::CbsRequests | HubLink::CbsResponses { .. } => None,
        }
    }
}

/// A telemetry delivery whose messages are being stored.
#[derive(Debug)]
struct PendingDelivery {
    link: LinkId,
    delivery_id: DeliveryNumber,
    /// Stores not yet done: a batch holds several messages.
    remaining: usize,
    /// Whether the device sent it settled: nothing to answer then.
    settled: bool,
}

/// One AMQP connection as the hub sees it.
#[derive(Debug)]
pub(crate) struct AmqpConnection {
    id: ConnectionId,
    engine: Engine,
    /// Until a first identity authenticates: IoT Hub's connect timeout.
    auth_deadline: Option<Timestamp>,
    /// The identity a SASL PLAIN login proved: its token bounds the connection
    /// (spec file §5.1).
    plain: Option<Identity>,
    tokens: CbsTokens,
    /// Identities this connection speaks for in the hub (bound to it).
    bound: BTreeSet<Identity>,
    links: BTreeMap<LinkId, HubLink>,
    /// Put-token responses waiting for a `$cbs` receiver with credit.
    cbs_responses: VecDeque<Message>,
    /// Messages for the hub's sending twin and method links, waiting for credit.
    outgoing: BTreeMap<LinkId, VecDeque<Message>>,
    /// Identities that subscribed to desired-property notifications (a twin PUT,
    /// spec file §5.6) on this connection.
    desired: BTreeSet<Identity>,
    /// Devices whose C2D delivery waits for the session's incoming window: the
    /// link layer hears no session-only flow, so any input may have widened it.
    window_blocked: BTreeSet<String>,
    /// Telemetry deliveries by key, and each store's delivery key.
    pending: BTreeMap<u64, PendingDelivery>,
    stores: BTreeMap<StoreTicket, u64>,
    next_pending: u64,
    /// Links the connection may hold in all (see [`LINKS_PER_IDENTITY`]).
    max_links: usize,
    max_message_size: usize,
    message_limits: Limits,
    closed: bool,
}

impl AmqpConnection {
    pub(crate) fn new(id: ConnectionId, now: Timestamp, config: &HubConfig) -> Self {
        let max_links = config.max_cbs_tokens.saturating_mul(LINKS_PER_IDENTITY).max(64);
        let open = Open {
            max_frame_size: MAX_FRAME_SIZE,
            channel_max: CHANNEL_MAX,
            idle_time_out: Some(IDLE_TIME_OUT_MS),
            hostname: config.host_names.first().map(|h| Utf8Bytes::from(h.as_str())),
            ..Open::new(Utf8Bytes::from_static("hubwire"))
        };
        // §5.1's emulator guidance: MSSBCBS for the C SDK, ANONYMOUS for CBS
        // clients, PLAIN for SAS logins; no SASL at all for Node and .NET.
        let sasl = SaslServer {
            mechanisms: alloc::vec![sasl::MSSBCBS, sasl::ANONYMOUS, sasl::PLAIN],
            required: false,
        };
        let connection = Connection::server_with_sasl(open, now, sasl);
        let max_message_size = config.max_message_size;
        AmqpConnection {
            id,
            // Link credit paces every device; a session window the engine never
            // widens would stop all traffic after 2048 transfers (§2.5.6), so it is
            // unbounded, as the C SDK's (spec file §5.1).
            engine: Engine::new(
                connection,
                SessionConfig {
                    incoming_window: u32::MAX,
                    // A handle above it closes the connection (§2.7.2).
                    handle_max: u32::try_from(max_links - 1).unwrap_or(u32::MAX),
                    ..SessionConfig::default()
                },
            ),
            max_links,
            auth_deadline: Some(now + config.connect_timeout),
            plain: None,
            tokens: CbsTokens::new(config.max_cbs_tokens),
            bound: BTreeSet::new(),
            links: BTreeMap::new(),
            cbs_responses: VecDeque::new(),
            outgoing: BTreeMap::new(),
            desired: BTreeSet::new(),
            window_blocked: BTreeSet::new(),
            pending: BTreeMap::new(),
            stores: BTreeMap::new(),
            next_pending: 0,
            max_message_size,
            message_limits: Limits {
                max_size: max_message_size + SECTIONS_OVERHEAD as usize,
                ..Limits::default()
            },
            closed: false,
        }
    }

    pub(crate) fn handle_input(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        hub: &mut HubState,
    ) -> Result<(), HubProtocolError> {
        let result = self.engine.handle_input(now, bytes);
        if let Err(e) = &result {
            // A violation on a device's link is that device's.
            let identity = match e {
                EngineError::Link(e) => e.link().and_then(|link| self.links.get(&link)),
                EngineError::Connection(_) | EngineError::Session(_) => None,
            };
            let identity = identity.and_then(HubLink::identity).cloned();
            self.refuse(hub, identity, ErrorCode::ARGUMENT_INVALID, format!("{e}"));
        }
        self.process(now, hub);
        for device_id in core::mem::take(&mut self.window_blocked) {
            self.pump_c2d(now, &device_id, hub);
        }
        // Any input may have widened a session window that held them.
        let waiting: Vec<LinkId> =
            self.outgoing.iter().filter(|(_, q)| !q.is_empty()).map(|(l, _)| *l).collect();
        for link in waiting {
            self.pump_outgoing(now, hub, link);
        }
        Ok(result?)
    }

    /// Handles every engine event; handlers may queue more.
    fn process(&mut self, now: Timestamp, hub: &mut HubState) {
        while let Some(event) = self.engine.poll_event() {
            match event {
                EngineEvent::Connection(ConnectionEvent::SaslInit {
                    mechanism,
                    initial_response,
                    ..
                }) => self.on_sasl_init(now, hub, &mechanism, initial_response),
                EngineEvent::Connection(ConnectionEvent::Closed { by_peer, error }) => {
                    let reason = match (&error, by_peer) {
                        (Some(e), true) => format!("the client closed the connection: {e:?}"),
                        (None, true) => String::from("the client closed the connection"),
                        (Some(e), false) => format!("the hub closed the connection: {e:?}"),
                        (None, false) => String::from("the hub closed the connection"),
                    };
                    self.end(now, hub, ErrorCode::DEVICE_CONNECTION_CLOSED_REMOTELY, &reason);
                }
                EngineEvent::Connection(_) => {}
                EngineEvent::Link(event) => self.on_link_event(now, hub, event),
            }
        }
    }

    fn on_sasl_init(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        mechanism: &Symbol,
        initial_response: Option<Bytes>,
    ) {
        let code = if *mechanism == sasl::PLAIN {
            match self.plain_login(now, hub, initial_response.as_deref().unwrap_or_default()) {
                Ok(()) => SaslCode::Ok,
                Err((identity, code, reason)) => {
                    self.refuse(hub, identity, code, reason);
                    SaslCode::Auth
                }
            }
        } else {
            // ANONYMOUS and MSSBCBS: the client authenticates by CBS later.
            SaslCode::Ok
        };
        let result = self.engine.sasl_outcome(now, code, None);
        if let Err(e) = result {
            self.refuse(hub, None, ErrorCode::ARGUMENT_INVALID, format!("{e}"));
        }
    }

    /// SASL PLAIN with user `<device>@sas.<hub>` and a SAS token (spec file §5.1).
    fn plain_login(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        response: &[u8],
    ) -> Result<(), (Option<Identity>, ErrorCode, String)> {
        let refuse = |why: &str| (None, ErrorCode::IOT_HUB_UNAUTHORIZED, String::from(why));
        let plain = PlainResponse::parse(response).map_err(|e| refuse(&format!("{e}")))?;
        let user = SasUser::parse(&plain.authcid)
            .ok_or_else(|| refuse("SASL PLAIN user is not <deviceId>@sas.<hubName>"))?;
        let identity = Identity { device_id: user.device_id, module_id: user.module_id };
        let expiry = self
            .verify(now, hub, &identity, &plain.password)
            .map_err(|(code, reason)| (Some(identity.clone()), code, reason))?;
        self.authorise(now, hub, identity.clone(), expiry)
            .map_err(|e| (Some(identity.clone()), e.code, e.description))?;
        self.plain = Some(identity);
        Ok(())
    }

    /// Checks `token` for `identity`: the instant the hub stops honouring it.
    fn verify(
        &self,
        now: Timestamp,
        hub: &HubState,
        identity: &Identity,
        token: &str,
    ) -> Result<Timestamp, (ErrorCode, String)> {
        hub.authenticate(identity, token, now).map_err(|e| (e.code(), e.reason().to_string()))?;
        // authenticate() parsed it already.
        Ok(SasToken::parse(token).map(|t| t.expiry_time() + hub.config.sas_skew).unwrap_or(now))
    }

    /// Records a verified token; a new identity is bound to this connection.
    fn authorise(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: Identity,
        expiry: Timestamp,
    ) -> Result<(), cbs::CbsError> {
        self.tokens.put(identity.clone(), expiry)?;
        self.auth_deadline = None;
        if self.bound.insert(identity.clone()) {
            hub.bind(&identity.device_id, self.id);
            hub.emit(HubEvent::Connected {
                connection: self.id,
                identity: identity.clone(),
                session_present: false,
            });
            self.pump_c2d(now, &identity.device_id, hub);
        }
        Ok(())
    }

    fn on_link_event(&mut self, now: Timestamp, hub: &mut HubState, event: LinkEvent) {
        match event {
            LinkEvent::AttachRequested { link, remote } => self.on_attach(now, hub, link, &remote),
            LinkEvent::Credit { link, .. } => match self.links.get(&link) {
                Some(HubLink::CbsResponses { .. }) => self.send_cbs_responses(now),
                Some(HubLink::C2d { identity, .. }) => {
                    let device_id = identity.device_id.clone();
                    self.pump_c2d(now, &device_id, hub);
                }
                Some(HubLink::TwinReplies { .. } | HubLink::MethodRequests { .. }) => {
                    self.pump_outgoing(now, hub, link);
                }
                _ => {}
            },
            LinkEvent::Delivery { link, delivery_id, message_format, settled, payload, .. } => {
                match self.links.get(&link) {
                    Some(HubLink::CbsRequests) => {
                        self.on_put_token(now, hub, link, delivery_id, settled, &payload);
                    }
                    Some(HubLink::Telemetry(identity)) => {
                        let identity = identity.clone();
                        let delivery = (link, delivery_id, settled);
                        self.on_telemetry(now, hub, &identity, delivery, message_format, &payload);
                    }
                    Some(HubLink::TwinRequests(identity)) => {
                        let identity = identity.clone();
                        self.on_twin_request(
                            now,
                            hub,
                            &identity,
                            (link, delivery_id, settled),
                            &payload,
                        );
                    }
                    Some(HubLink::MethodResponses(identity)) => {
                        let identity = identity.clone();
                        let delivery = (link, delivery_id, settled);
                        self.on_method_response(now, hub, &identity, delivery, &payload);
                    }
                    // The link layer hands deliveries up only on receiving links.
                    _ => {}
                }
            }
            LinkEvent::Disposition { link, delivery_id, state, settled } => {
                match self.links.get(&link) {
                    Some(HubLink::C2d { .. }) => {
                        self.on_c2d_disposition(now, hub, link, delivery_id, state, settled);
                    }
                    // A twin reply or method request sent unsettled: the device's outcome
                    // ends it; with receiver-settle-mode second the hub settles after it.
                    Some(HubLink::TwinReplies { .. } | HubLink::MethodRequests { .. })
                        if !settled && state.is_some() =>
                    {
                        let _ = self.engine.disposition(now, link, delivery_id, state, true);
                    }
                    _ => {}
                }
            }
            LinkEvent::Detached { link, .. } => self.forget_link(now, hub, link),
            LinkEvent::SessionEnded { session, .. } => {
                let gone: Vec<LinkId> =
                    self.links.keys().filter(|l| l.session == session).copied().collect();
                for link in gone {
                    self.forget_link(now, hub, link);
                }
            }
            LinkEvent::SessionBegun { .. }
            | LinkEvent::Attached { .. }
            | LinkEvent::Aborted { .. }
            | LinkEvent::Drained { .. } => {}
        }
    }

    /// The device attached a link: its address decides what it is (spec file §5.3).
    fn on_attach(&mut self, now: Timestamp, hub: &mut HubState, link: LinkId, remote: &Attach) {
        if self.engine.links().count() > self.max_links {
            // Each link costs memory; a client past any SDK's need is closed
            // whole, as its sessions may hold more (§2.8.15 resource-limit-exceeded).
            let reason = format!("more than {} links on one connection", self.max_links);
            self.refuse(hub, None, ErrorCode::INVALID_OPERATION, reason.clone());
            let error = AmqpError::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                Some(Utf8Bytes::from(reason.as_str())),
            );
            self.engine.close(now, Some(error));
            return;
        }
        if remote.coordinator.is_some() {
            // Part 4 is out of hubwire's scope, and IoT Hub has no transactions.
            let reason = String::from("transactions (AMQP 1.0 part 4) are not implemented");
            return self.refuse_attach(now, hub, link, None, condition::NOT_IMPLEMENTED, reason);
        }
        let address = match remote.role {
            Role::Sender => remote.target.as_ref().and_then(|t| t.terminus.address.as_ref()),
            Role::Receiver => remote.source.as_ref().and_then(|s| s.terminus.address.as_ref()),
        };
        let address = address.map(|a| a.as_str()).unwrap_or_default();
        let node = match NodeAddress::parse(address) {
            Ok(parsed) => parsed.node,
            Err(e) => {
                return self.refuse_attach(now, hub, link, None, e.condition(), e.to_string());
            }
        };
        let tokens = &self.tokens;
        if let Err(e) = node.check_attach(remote.role, |id| tokens.is_authorised(id, now)) {
            let identity = node.identity().cloned();
            return self.refuse_attach(now, hub, link, identity, e.condition(), e.to_string());
        }
        if let NodeAddress::Twin(id) | NodeAddress::Methods(id) = &node
            && id.module_id.is_some()
        {
            let reason = format!("module {} links: this hub keeps device twins only", node.kind());
            let identity = Some(id.clone());
            return self.refuse_attach(
                now,
                hub,
                link,
                identity,
                condition::NOT_IMPLEMENTED,
                reason,
            );
        }
        let mut answer = LinkSpec::answering(remote);
        // A device's receiver that lets the hub send settled (§2.8.2).
        let presettled = remote.snd_settle_mode != SenderSettleMode::Unsettled;
        let (kind, credit) = match (node, remote.role) {
            (NodeAddress::Cbs, Role::Sender) => {
                answer.max_message_size = Some(CBS_MAX_MESSAGE_SIZE);
                (HubLink::CbsRequests, CBS_CREDIT)
            }
            (NodeAddress::Cbs, Role::Receiver) => {
                let settled = remote.snd_settle_mode != SenderSettleMode::Unsettled;
                (HubLink::CbsResponses { settled }, 0)
            }
            (NodeAddress::Events(identity), Role::Sender) => {
                // The C SDK sends nothing to a link without a max-message-size
                // (spec file §5.4).
                answer.max_message_size = Some(self.message_limits.max_size as u64);
                (HubLink::Telemetry(identity), SENDER_CREDIT)
            }
            (NodeAddress::C2d(identity), Role::Receiver) => {
                (HubLink::C2d { identity, in_flight: BTreeMap::new() }, 0)
            }
            (NodeAddress::Twin(identity), Role::Sender) => {
                answer.max_message_size = Some(self.message_limits.max_size as u64);
                (HubLink::TwinRequests(identity), SENDER_CREDIT)
            }
            (NodeAddress::Twin(identity), Role::Receiver) => {
                (HubLink::TwinReplies { identity, settled: presettled }, 0)
            }
            (NodeAddress::Methods(identity), Role::Sender) => {
                answer.max_message_size = Some(self.message_limits.max_size as u64);
                (HubLink::MethodResponses(identity), SENDER_CREDIT)
            }
            (NodeAddress::Methods(identity), Role::Receiver) => {
                (HubLink::MethodRequests { identity, settled: presettled }, 0)
            }
            (node, _) => {
                let identity = node.identity().cloned();
                let reason = format!("{} links are not served by this hub yet", node.kind());
                return self.refuse_attach(
                    now,
                    hub,
                    link,
                    identity,
                    condition::NOT_IMPLEMENTED,
                    reason,
                );
            }
        };
        if credit > 0 {
            // This side receives: it settles first, whatever the device asked (§2.8.3).
            answer.rcv_settle_mode = ReceiverSettleMode::First;
        }
        if credit == 0 && kind.identity().is_some() {
            self.replace_older(now, hub, &kind);
        }
        if self.engine.accept_attach(now, link, answer).is_err() {
            return;
        }
        self.links.insert(link, kind);
        if credit > 0 {
            let _ = self.engine.flow(now, link, credit, false);
        }
    }

    /// One receiver of each kind per device (C2D, twin replies, method requests):
    /// a newer one takes the older one's place.
    fn replace_older(&mut self, now: Timestamp, hub: &mut HubState, newer: &HubLink) {
        let older: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                core::mem::discriminant(*l) == core::mem::discriminant(newer)
                    && l.identity() == newer.identity()
            })
            .map(|(id, _)| *id)
            .collect();
        for link in older {
            let error = AmqpError::new(
                condition::LINK_STOLEN,
                Some(Utf8Bytes::from("a newer link of this device to the node took over")),
            );
            let _ = self.engine.detach(now, link, true, Some(error));
            self.forget_link(now, hub, link);
        }
    }

    fn refuse_attach(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        link: LinkId,
        identity: Option<Identity>,
        condition: Symbol,
        reason: String,
    ) {
        let code = if condition == condition::UNAUTHORIZED_ACCESS {
            ErrorCode::IOT_HUB_UNAUTHORIZED
        } else {
            ErrorCode::INVALID_OPERATION
        };
        let error = AmqpError::new(condition, Some(Utf8Bytes::from(reason.as_str())));
        let _ = self.engine.refuse_attach(now, link, error);
        self.refuse(hub, identity, code, reason);
    }

    /// A put-token request (spec file §5.2): verify, record, answer.
    fn on_put_token(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        link: LinkId,
        delivery_id: DeliveryNumber,
        settled: bool,
        payload: &Bytes,
    ) {
        let request = match Message::decode(payload, &self.message_limits) {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("put-token request: {e}");
                self.reject(now, link, delivery_id, settled, condition::DECODE_ERROR, &reason);
                return self.refuse(hub, None, ErrorCode::ARGUMENT_INVALID, reason);
            }
        };
        // EDGE accepts the request delivery first, whatever the answer (§5.2).
        if !settled {
            let _ = self.engine.disposition(
                now,
                link,
                delivery_id,
                Some(DeliveryState::Accepted),
                true,
            );
        }
        let response = match self.put_token(now, hub, &request) {
            Ok(id) => Some(PutTokenResponse::ok(id)),
            Err((identity, e)) => {
                let response = e.response(&request);
                self.refuse(hub, identity, e.code, e.description);
                response
            }
        };
        let _ = self.engine.flow(now, link, CBS_CREDIT, false);
        if let Some(response) = response {
            self.cbs_responses.push_back(response.to_message());
            self.send_cbs_responses(now);
        }
    }

    /// Returns the request's message-id on success.
    fn put_token(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        request: &Message,
    ) -> Result<message::MessageId, (Option<Identity>, cbs::CbsError)> {
        let put = PutToken::from_message(request).map_err(|e| (None, e))?;
        let audience = Audience::parse(&put.audience).map_err(|e| (None, e))?;
        let identity = audience.identity;
        let expiry = self.verify(now, hub, &identity, &put.token).map_err(|(code, reason)| {
            (Some(identity.clone()), cbs::CbsError { code, description: reason })
        })?;
        self.authorise(now, hub, identity.clone(), expiry).map_err(|e| (Some(identity), e))?;
        Ok(put.message_id)
    }

    fn send_cbs_responses(&mut self, now: Timestamp) {
        while let Some(message) = self.cbs_responses.front() {
            let Some((&link, settled)) = self.links.iter().find_map(|(id, l)| match l {
                HubLink::CbsResponses { settled } => {
                    let credit = self.engine.links().flow_state(*id).map(|f| f.link_credit);
                    (credit.unwrap_or(0) > 0).then_some((id, *settled))
                }
                _ => None,
            }) else {
                return;
            };
            let Some(delivery) = hub_delivery(message, settled, &mut self.next_pending) else {
                // A response the hub built from a request it decoded encodes.
                self.cbs_responses.pop_front();
                continue;
            };
            if self.engine.send(now, link, delivery).is_err() {
                return;
            }
            self.cbs_responses.pop_front();
        }
    }

    /// A telemetry delivery: one message, or a batch (spec file §5.4).
    fn on_telemetry(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: &Identity,
        (link, delivery_id, settled): (LinkId, DeliveryNumber, bool),
        message_format: u32,
        payload: &Bytes,
    ) {
        let messages = match self.read_telemetry(message_format, payload) {
            Ok(messages) => messages,
            Err((condition, code, reason)) => {
                self.reject(now, link, delivery_id, settled, condition, &reason);
                return self.refuse(hub, Some(identity.clone()), code, reason);
            }
        };
        let key = self.next_pending;
        self.next_pending += 1;
        let remaining = messages.len();
        self.pending.insert(key, PendingDelivery { link, delivery_id, remaining, settled });
        for message in messages {
            let ticket = hub.store_telemetry(now, self.id, identity, message, Origin::Device);
            self.stores.insert(ticket, key);
        }
    }

    /// Every message of a delivery, or why the delivery is rejected. A batch is
    /// taken or rejected whole.
    fn read_telemetry(
        &self,
        message_format: u32,
        payload: &Bytes,
    ) -> Result<Vec<crate::iothub::Message>, (Symbol, ErrorCode, String)> {
        let decoded = if message_format == MESSAGE_FORMAT_BATCH {
            message::decode_batch(payload, &self.message_limits)
        } else {
            Message::decode(payload, &self.message_limits).map(|m| alloc::vec![m])
        };
        let decoded = decoded
            .map_err(|e| (condition::DECODE_ERROR, ErrorCode::ARGUMENT_INVALID, format!("{e}")))?;
        let mut messages = Vec::with_capacity(decoded.len());
        for amqp in &decoded {
            let (message, _stamps) = message::to_iothub(amqp).map_err(|e| {
                (condition::ARGUMENT_ERROR, ErrorCode::ARGUMENT_INVALID, format!("{e}"))
            })?;
            if message.size() > self.max_message_size {
                let reason = format!(
                    "message of {} bytes exceeds {} bytes",
                    message.size(),
                    self.max_message_size
                );
                return Err((
                    condition::LINK_MESSAGE_SIZE_EXCEEDED,
                    ErrorCode::MESSAGE_TOO_LARGE,
                    reason,
                ));
            }
            messages.push(message);
        }
        Ok(messages)
    }

    /// A twin request's or method response's message, its delivery accepted; one
    /// that does not decode is rejected with `decode-error` and logged, and `None`
    /// comes back. `what` names it in the log.
    fn take_message(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: &Identity,
        (link, delivery_id, settled): (LinkId, DeliveryNumber, bool),
        payload: &Bytes,
        what: &str,
    ) -> Option<Message> {
        match Message::decode(payload, &self.message_limits) {
            Ok(message) => {
                self.accept(now, link, delivery_id, settled);
                Some(message)
            }
            Err(e) => {
                let reason = format!("{what}: {e}");
                self.reject(now, link, delivery_id, settled, condition::DECODE_ERROR, &reason);
                self.refuse(hub, Some(identity.clone()), ErrorCode::ARGUMENT_INVALID, reason);
                None
            }
        }
    }

    fn reject(
        &mut self,
        now: Timestamp,
        link: LinkId,
        delivery_id: DeliveryNumber,
        settled: bool,
        condition: Symbol,
        reason: &str,
    ) {
        if settled {
            return;
        }
        let error = AmqpError::new(condition, Some(Utf8Bytes::from(reason)));
        let state = DeliveryState::Rejected { error: Some(error) };
        let _ = self.engine.disposition(now, link, delivery_id, Some(state), true);
        if matches!(self.links.get(&link), Some(HubLink::CbsRequests)) {
            let _ = self.engine.flow(now, link, CBS_CREDIT, false);
        } else {
            self.top_up(now, link);
        }
    }

    /// The runtime stored a message: a delivery whose messages are all stored is
    /// accepted.
    pub(crate) fn telemetry_stored(&mut self, now: Timestamp, ticket: StoreTicket) {
        let Some(key) = self.stores.remove(&ticket) else {
            return;
        };
        let Some(pending) = self.pending.get_mut(&key) else {
            return;
        };
        pending.remaining = pending.remaining.saturating_sub(1);
        if pending.remaining > 0 {
            return;
        }
        let Some(PendingDelivery { link, delivery_id, settled, .. }) = self.pending.remove(&key)
        else {
            return;
        };
        if !settled {
            let accepted = Some(DeliveryState::Accepted);
            let _ = self.engine.disposition(now, link, delivery_id, accepted, true);
        }
        self.top_up(now, link);
    }

    /// The message of `ticket` was not kept: its delivery is rejected with
    /// `amqp:internal-error` (a batch, when any of its messages was not kept), and
    /// the rest of a batch is no longer waited for.
    pub(crate) fn telemetry_refused(
        &mut self,
        now: Timestamp,
        ticket: StoreTicket,
        code: ErrorCode,
        hub: &mut HubState,
    ) {
        let Some(key) = self.stores.remove(&ticket) else {
            return;
        };
        self.stores.retain(|_, k| *k != key);
        let Some(PendingDelivery { link, delivery_id, settled, .. }) = self.pending.remove(&key)
        else {
            return;
        };
        let reason = format!("the telemetry could not be kept ({code})");
        self.reject(now, link, delivery_id, settled, condition::INTERNAL_ERROR, &reason);
        self.refuse(hub, None, code, reason);
    }

    /// Gives a telemetry link its credit back once half is used.
    fn top_up(&mut self, now: Timestamp, link: LinkId) {
        let Some(flow) = self.engine.links().flow_state(link) else {
            return;
        };
        let unanswered = self.pending.values().filter(|p| p.link == link).count() as u32;
        if flow.link_credit + unanswered <= SENDER_CREDIT / 2 {
            let credit = SENDER_CREDIT.saturating_sub(unanswered);
            let _ = self.engine.flow(now, link, credit, false);
        }
    }

    /// Sends `device_id`'s queued C2D messages while its C2D link has credit; with
    /// none left to send, answers the device's drain (AMQP 1.0 §2.6.7), so a device
    /// asking for one message with credit 1 and drain gets it or an empty answer,
    /// and no other message is locked for it.
    pub(crate) fn pump_c2d(&mut self, now: Timestamp, device_id: &str, hub: &mut HubState) {
        let Some(link) = self.links.iter().find_map(|(id, l)| match l {
            HubLink::C2d { identity, .. } if identity.device_id == device_id => Some(*id),
            _ => None,
        }) else {
            return;
        };
        loop {
            let credit = self.engine.links().flow_state(link).map_or(0, |f| f.link_credit);
            if credit == 0 {
                return;
            }
            let lock = hub.new_lock();
            let Some(device) = hub.device(device_id) else {
                break;
            };
            if device.connection != Some(self.id) {
                break;
            }
            let Some(delivery) = device.queue.lock_next(now, lock, None) else {
                break;
            };
            let stamps = HubStamps {
                lock_token: Some(delivery.lock),
                sequence_number: Some(delivery.sequence_number),
                delivery_count: Some(u8::try_from(delivery.delivery_count).unwrap_or(u8::MAX)),
                ..HubStamps::default()
            };
            let mut payload = BytesMut::new();
            let encoded = message::from_iothub(&delivery.message, &stamps)
                .ok()
                .and_then(|m| m.encode(&mut payload).ok());
            let tag = message::delivery_tag(&delivery.lock);
            let (Some(()), Some(tag)) = (encoded, tag) else {
                // The service side's checks let no such message in; should one
                // still be queued, it could never reach this device over AMQP, and
                // waiting would block the queue behind it.
                let _ = device.queue.settle(now, &delivery.lock, Disposition::Reject);
                hub.drain_settled(device_id);
                continue;
            };
            let delivery_message = Delivery {
                tag: Bytes::copy_from_slice(&tag),
                message_format: MESSAGE_FORMAT_AMQP,
                settled: false,
                payload: payload.freeze(),
            };
            match self.engine.send(now, link, delivery_message) {
                Ok(delivery_id) => {
                    if let Some(HubLink::C2d { in_flight, .. }) = self.links.get_mut(&link) {
                        in_flight.insert(delivery_id, delivery.lock);
                    }
                }
                Err(CommandError::Link(link::CommandError::MessageTooLarge {
                    size, max, ..
                })) => {
                    // The device's link takes no message this large (the C SDK's
                    // takes 64 KiB, spec file §5.3): it can never arrive, and
                    // waiting would block the queue behind it.
                    if let Some(device) = hub.device(device_id) {
                        let _ = device.queue.settle(now, &delivery.lock, Disposition::Reject);
                    }
                    hub.emit(HubEvent::Refused {
                        connection: self.id,
                        identity: Some(Identity::device(device_id)),
                        code: ErrorCode::MESSAGE_TOO_LARGE,
                        reason: format!(
                            "a C2D message of {size} bytes exceeds the device link's \
                             max-message-size {max}; dead-lettered"
                        ),
                    });
                    hub.drain_settled(device_id);
                }
                Err(_) => {
                    // The session window is closed: the message waits in its queue
                    // until the device's next frame.
                    if let Some(device) = hub.device(device_id) {
                        device.queue.unlock(&delivery.lock);
                    }
                    self.window_blocked.insert(String::from(device_id));
                    return;
                }
            }
        }
        self.answer_drain(now, link);
    }

    /// Gives back a sender link's credit when the device asked for a drain and the
    /// hub has sent all it had: "the sender MUST advance delivery-count until
    /// link-credit is zero, and send its updated flow state" (AMQP 1.0 §2.6.7).
    fn answer_drain(&mut self, now: Timestamp, link: LinkId) {
        let flow = self.engine.links().flow_state(link);
        if flow.is_some_and(|f| f.drain && f.link_credit > 0) {
            let _ = self.engine.drained(now, link);
        }
    }

    /// Queues `message` for `identity`'s receiver of this kind (`twin` replies or
    /// `methods` requests) and sends what its credit allows. Returns false when the
    /// device has no such link, or past [`MAX_OUTGOING`] waiting messages (logged).
    fn send_to_device(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: &Identity,
        node: &'static str,
        message: Message,
    ) -> bool {
        let Some(link) = self.links.iter().find_map(|(id, l)| match l {
            HubLink::TwinReplies { identity: i, .. } if node == "twin" && i == identity => {
                Some(*id)
            }
            HubLink::MethodRequests { identity: i, .. } if node == "methods" && i == identity => {
                Some(*id)
            }
            _ => None,
        }) else {
            return false;
        };
        let queue = self.outgoing.entry(link).or_default();
        if queue.len() >= MAX_OUTGOING {
            let reason = format!(
                "{MAX_OUTGOING} {node} messages wait for the device's credit; one more dropped"
            );
            let code = ErrorCode::DEVICE_MAXIMUM_QUEUE_DEPTH_EXCEEDED;
            self.refuse(hub, Some(identity.clone()), code, reason);
            return false;
        }
        queue.push_back(message);
        self.pump_outgoing(now, hub, link);
        true
    }

    /// Sends `link`'s waiting twin replies or method requests while it has credit:
    /// settled when the device's attach allowed it (spec file §5.3). With none left,
    /// answers the device's drain (AMQP 1.0 §2.6.7).
    fn pump_outgoing(&mut self, now: Timestamp, hub: &mut HubState, link: LinkId) {
        let (settled, identity) = match self.links.get(&link) {
            Some(HubLink::TwinReplies { settled, identity })
            | Some(HubLink::MethodRequests { settled, identity }) => (*settled, identity.clone()),
            _ => return,
        };
        loop {
            if self.engine.links().flow_state(link).map_or(0, |f| f.link_credit) == 0 {
                return;
            }
            let Some(message) = self.outgoing.get_mut(&link).and_then(VecDeque::pop_front) else {
                return self.answer_drain(now, link);
            };
            let Some(delivery) = hub_delivery(&message, settled, &mut self.next_pending) else {
                // The hub built it from values it checked: it encodes.
                continue;
            };
            match self.engine.send(now, link, delivery) {
                Ok(_) => {}
                Err(CommandError::Link(link::CommandError::MessageTooLarge {
                    size, max, ..
                })) => {
                    let reason = format!(
                        "a {size}-byte message exceeds the device link's max-message-size \
                         {max}; dropped"
                    );
                    self.refuse(hub, Some(identity.clone()), ErrorCode::MESSAGE_TOO_LARGE, reason);
                }
                Err(_) => {
                    // The session window is closed: it goes with the device's next frame.
                    if let Some(queue) = self.outgoing.get_mut(&link) {
                        queue.push_front(message);
                    }
                    return;
                }
            }
        }
    }

    /// The device's outcome for a C2D delivery (spec file §5.5): accepted completes,
    /// rejected dead-letters, released and modified abandon.
    fn on_c2d_disposition(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        link: LinkId,
        delivery_id: DeliveryNumber,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(HubLink::C2d { identity, in_flight }) = self.links.get_mut(&link) else {
            return;
        };
        let disposition = match &state {
            Some(DeliveryState::Accepted) => Disposition::Complete,
            Some(DeliveryState::Rejected { .. }) => Disposition::Reject,
            Some(DeliveryState::Released | DeliveryState::Modified { .. }) => Disposition::Abandon,
            // A settlement without an outcome: the message was not processed.
            None if settled => Disposition::Abandon,
            // `received` or no state on an unsettled delivery: progress, not an outcome.
            _ => return,
        };
        let Some(lock) = in_flight.remove(&delivery_id) else {
            return;
        };
        let device_id = identity.device_id.clone();
        if !settled {
            // Receiver-settle-mode second: the hub settles after the device (§2.8.3).
            let _ = self.engine.disposition(now, link, delivery_id, state, true);
        }
        if let Some(device) = hub.device(&device_id) {
            // A lock the queue no longer knows was settled otherwise (a purge, an
            // expiry); the device has nothing to learn from that.
            let _ = device.queue.settle(now, &lock, disposition);
        }
        hub.drain_settled(&device_id);
        self.pump_c2d(now, &device_id, hub);
    }

    /// A link is gone: its C2D deliveries go back to the queue.
    fn forget_link(&mut self, now: Timestamp, hub: &mut HubState, link: LinkId) {
        self.pending.retain(|_, p| p.link != link);
        self.outgoing.remove(&link);
        let Some(HubLink::C2d { identity, in_flight }) = self.links.remove(&link) else {
            return;
        };
        if let Some(device) = hub.device(&identity.device_id) {
            for lock in in_flight.values() {
                device.queue.unlock(lock);
            }
        }
        let _ = now;
    }

    /// Detaches every link of `identity` with `error`, and stops speaking for it.
    fn drop_identity(
        &mut self,
        now: Timestamp,
        hub: &mut HubState,
        identity: &Identity,
        error: AmqpError,
        code: ErrorCode,
        reason: &str,
    ) {
        let links: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.identity() == Some(identity))
            .map(|(id, _)| *id)
            .collect();
        for link in links {
            let _ = self.engine.detach(now, link, true, Some(error.clone()));
            self.forget_link(now, hub, link);
        }
        self.desired.remove(identity);
        if self.bound.remove(identity) {
            hub.unbind(&identity.device_id, self.id);
            hub.emit(HubEvent::Disconnected {
                connection: self.id,
                identity: identity.clone(),
                code,
                reason: String::from(reason),
            });
        }
    }

    /// A newer connection authenticated as `device_id`: its links here go.
    pub(crate) fn evict(&mut self, now: Timestamp, device_id: &str, hub: &mut HubState) {
        let identity = Identity::device(device_id);
        if !self.bound.contains(&identity) {
            return;
        }
        let code = ErrorCode::CONNECTION_FORCEFULLY_CLOSED_ON_NEW_CONNECTION;
        let reason = "another connection authenticated as this device";
        let error = AmqpError::new(condition::LINK_STOLEN, Some(Utf8Bytes::from(reason)));
        hub.emit(HubEvent::Refused {
            connection: self.id,
            identity: Some(identity.clone()),
            code,
            reason: String::from(reason),
        });
        self.tokens.remove(&identity);
        self.drop_identity(now, hub, &identity, error, code, reason);
        if self.plain.as_ref() == Some(&identity) {
            self.engine.close(now, None);
            self.process(now, hub);
        }
    }

    /// The peer closed or the transport broke.
    pub(crate) fn handle_close(&mut self, now: Timestamp, hub: &mut HubState) {
        self.engine.handle_close(now);
        self.process(now, hub);
        self.end(now, hub, ErrorCode::DEVICE_CONNECTION_CLOSED_REMOTELY, "the transport closed");
    }

    /// The connection is over: every device's deliveries go back to their queues.
    fn end(&mut self, now: Timestamp, hub: &mut HubState, code: ErrorCode, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        for link in self.links.keys().copied().collect::<Vec<_>>() {
            self.forget_link(now, hub, link);
        }
        for identity in core::mem::take(&mut self.bound) {
            hub.unbind(&identity.device_id, self.id);
            hub.emit(HubEvent::Disconnected {
                connection: self.id,
                identity,
                code,
                reason: String::from(reason),
            });
        }
        self.pending.clear();
        self.stores.clear();
        self.desired.clear();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        if self.closed {
            return None;
        }
        [self.engine.poll_timeout(), self.tokens.next_expiry(), self.auth_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp, hub: &mut HubState) {
        self.engine.handle_timeout(now);
        self.process(now, hub);
        if self.closed {
            return;
        }
        if self.auth_deadline.is_some_and(|d| now >= d) {
            self.auth_deadline = None;
            let reason = "no identity authenticated within the connect timeout";
            self.refuse(hub, None, ErrorCode::IOT_HUB_UNAUTHORIZED, String::from(reason));
            let error = AmqpError::new(condition::UNAUTHORIZED_ACCESS, Some(reason.into()));
            self.engine.close(now, Some(error));
            self.process(now, hub);
            return;
        }
        let lapsed: Vec<Identity> = self.tokens.expire(now).collect();
        for identity in lapsed {
            let reason = "the SAS token expired";
            let error = AmqpError::new(condition::UNAUTHORIZED_ACCESS, Some(reason.into()));
            self.drop_identity(
                now,
                hub,
                &identity,
                error.clone(),
                ErrorCode::IOT_HUB_UNAUTHORIZED,
                reason,
            );
            if self.plain.as_ref() == Some(&identity) {
                // One token per SASL PLAIN connection: its expiry ends the connection
                // (spec file §5.1).
                self.engine.close(now, Some(error));
                self.process(now, hub);
                return;
            }
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.engine.poll_transmit()
    }

    fn refuse(
        &mut self,
        hub: &mut HubState,
        identity: Option<Identity>,
        code: ErrorCode,
        reason: String,
    ) {
        hub.emit(HubEvent::Refused { connection: self.id, identity, code, reason });
    }
}

mod methods;
/// A message the hub sends on a link of its own (a CBS response, a twin reply, a
/// method request), tagged with `next` (then counted on); `None` when it does not
/// encode.
fn hub_delivery(message: &Message, settled: bool, next: &mut u64) -> Option<Delivery> {
    let mut payload = BytesMut::new();
    message.encode(&mut payload).ok()?;
    let tag = Bytes::copy_from_slice(&next.to_be_bytes());
    *next += 1;
    Some(Delivery { tag, message_format: MESSAGE_FORMAT_AMQP, settled, payload: payload.freeze() })
}

#[cfg(test)]
mod tests;
mod twin;
