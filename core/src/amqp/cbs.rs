//! Claims-based security (spec file §5.2): how a device authenticates over AMQP by
//! sending its SAS token to the `$cbs` node, in both roles.
//!
//! - [`PutToken`]: the request (device → hub, on a sender whose target is `$cbs`).
//!   Written in Node's form (TV-17); read in every SDK's (Node's uuid-string ids and
//!   encoded audience, the C SDK's ulong ids, no `to`/`reply-to`, plain audience).
//! - [`PutTokenResponse`]: the answer (hub → device, on a receiver whose source is
//!   `$cbs`), its correlation-id the request's message-id in the same AMQP type.
//! - [`Audience`]: the hub's reading of a put-token's `name`, the identity it grants.
//! - [`CbsTokens`]: the hub's table of the identities one connection has
//!   authorised, with their expiry and IoT Hub's per-connection limit (spec file
//!   §5.10).
//! - The device renews at [`renewal_time`](crate::iothub::renewal_time), the rule its
//!   MQTT side uses, by sending another put-token on the same links (spec file §5.2).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::address;
use super::message::{ApplicationProperties, Body, Message, MessageId, Properties};
use super::performative::definitions::condition;
use super::types::{Symbol, Value};
use crate::iothub::{ErrorCode, Identity, SasToken, percent_decode};
use crate::time::{Duration, Timestamp};
use crate::utf8::Utf8Bytes;

/// The CBS node's address: the target of the device's put-token sender and the
/// source of its response receiver (spec file §5.2).
pub const NODE: &str = "$cbs";
/// The `reply-to` Node writes into a put-token (spec file §5.2).
pub const REPLY_TO: &str = "cbs";
/// The `operation` application property of a put-token.
pub const PUT_TOKEN: &str = "put-token";
/// The `status-code` of a successful put-token: exactly 200, the only value Node
/// accepts (spec file §5.2).
pub const STATUS_OK: i32 = 200;
/// How many identities one AMQP connection may hold tokens for: 1000. .NET's pool
/// stops at 995 devices per connection, its comments putting the hub's own limit at
/// about 1000 (older) or 999 (newer) (spec file §5.2, §8); 1000 admits every client
/// that keeps under either figure, and a put-token beyond it is refused with 403005.
pub const MAX_TOKENS: usize = 1000;

const OPERATION: &str = "operation";
const TYPE: &str = "type";
const NAME: &str = "name";
const STATUS_CODE: &str = "status-code";
const STATUS_DESCRIPTION: &str = "status-description";

/// A put-token's `type` (spec file §5.2): every SDK sends the Service Bus name;
/// AMQP.Net Lite samples and the Java service SDK the IoT Hub one. Both are read
/// case-insensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// `servicebus.windows.net:sastoken` (Node, C).
    ServiceBusSas,
    /// `azure-devices.net:sastoken`.
    AzureDevicesSas,
}

impl TokenType {
    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenType::ServiceBusSas => "servicebus.windows.net:sastoken",
            TokenType::AzureDevicesSas => "azure-devices.net:sastoken",
        }
    }

    /// The type `name` names, in any case; `None` for another.
    pub fn parse(name: &str) -> Option<TokenType> {
        [TokenType::ServiceBusSas, TokenType::AzureDevicesSas]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }
}

/// Why the hub refuses a put-token: the IoT Hub code whose HTTP status class the
/// response's `status-code` carries, and the text for its `status-description`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct CbsError {
    /// 400004 ArgumentInvalid for a malformed request, 403005
    /// IotHubMaxCbsTokenExceeded beyond [`MAX_TOKENS`]; the hub engine adds 401003
    /// IotHubUnauthorized for a token that does not verify.
    pub code: ErrorCode,
    /// What is wrong, for a person.
    pub description: String,
}

impl CbsError {
    fn malformed(description: &str) -> CbsError {
        CbsError { code: ErrorCode::ARGUMENT_INVALID, description: description.to_string() }
    }

    /// The response's `status-code`: the code's HTTP status, e.g. 400 (EDGE's answer
    /// to a malformed request, spec file §5.2).
    pub fn status_code(&self) -> i32 {
        i32::from(self.code.http_status())
    }

    /// The condition for the same refusal where AMQP needs one (a detach, a
    /// rejected delivery), by status class (spec file §5.8): 400
    /// `com.microsoft:argument-error`, 401 `amqp:unauthorized-access`, 403
    /// `amqp:resource-limit-exceeded` (EDGE maps IoT Hub's 403 quotas, the CBS token
    /// limit among them, to it), anything else `amqp:internal-error`.
    pub fn condition(&self) -> Symbol {
        match self.code.http_status() {
            400 => condition::ARGUMENT_ERROR,
            401 => condition::UNAUTHORIZED_ACCESS,
            403 => condition::RESOURCE_LIMIT_EXCEEDED,
            _ => condition::INTERNAL_ERROR,
        }
    }

    /// The response refusing `request`: its message-id as correlation-id, this
    /// error's status and description. `None` when the request has no message-id,
    /// so nothing to correlate a response with: the hub only settles the delivery.
    pub fn response(&self, request: &Message) -> Option<PutTokenResponse> {
        let id = request.properties.as_ref()?.message_id.clone()?;
        Some(PutTokenResponse {
            correlation_id: id,
            status_code: self.status_code(),
            description: self.to_string(),
        })
    }
}

/// A put-token request (spec file §5.2 table, TV-17).
#[derive(Clone, PartialEq, Eq)]
pub struct PutToken {
    /// `properties.message-id`, echoed as the response's correlation-id in the same
    /// type: a uuid string from Node, a ulong counter from the C SDK.
    pub message_id: MessageId,
    /// `name`: what the token grants, as sent: the token's `sr` (URL-encoded) from
    /// Node, `<host>/devices/<id>[/modules/<mid>]` unencoded from C. [`Audience`]
    /// reads it.
    pub audience: String,
    /// The body: the whole token, `SharedAccessSignature sr=…`.
    pub token: String,
    /// `type`.
    pub token_type: TokenType,
}

impl core::fmt::Debug for PutToken {
    /// Hides the token: it is a credential until it expires.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PutToken")
            .field("message_id", &self.message_id)
            .field("audience", &self.audience)
            .field("token", &format_args!(".."))
            .field("token_type", &self.token_type)
            .finish()
    }
}

impl PutToken {
    /// Device side: the put-token carrying `token`, as Node builds it: the audience
    /// is the token's `sr` as it stands, the type Service Bus's (spec file §5.2).
    pub fn for_token(message_id: MessageId, token: &SasToken) -> PutToken {
        PutToken {
            message_id,
            audience: token.resource.clone(),
            token: token.to_string(),
            token_type: TokenType::ServiceBusSas,
        }
    }

    /// The message in Node's form (TV-17): message-id as given, `to` `$cbs`,
    /// `reply-to` `cbs`; application properties `operation`, `type`, `name` as AMQP
    /// strings; the token as an amqp-value string body.
    pub fn to_message(&self) -> Message {
        let mut message = Message::new(Body::Value(Value::String(self.token.as_str().into())));
        message.properties = Some(Properties {
            message_id: Some(self.message_id.clone()),
            to: Some(Utf8Bytes::from_static(NODE)),
            reply_to: Some(Utf8Bytes::from_static(REPLY_TO)),
            ..Properties::default()
        });
        message.application_properties = Some(application_properties([
            (OPERATION, Value::String(Utf8Bytes::from_static(PUT_TOKEN))),
            (TYPE, Value::String(Utf8Bytes::from_static(self.token_type.as_str()))),
            (NAME, Value::String(self.audience.as_str().into())),
        ]));
        message
    }

    /// Hub side: reads a put-token as any SDK sends it (spec file §5.2): `to` and
    /// `reply-to` are not looked at; `operation` must be `put-token`; `type` one of
    /// [`TokenType`]'s, in any case; `name` a non-empty string; the body one
    /// amqp-value string. Application property values must be AMQP strings.
    ///
    /// # Errors
    ///
    /// [`CbsError`] 400004 (status 400) naming the first fault: no message-id, no
    /// application properties, a missing or wrong `operation`, `type` or `name`, a
    /// body that is not an amqp-value string.
    pub fn from_message(message: &Message) -> Result<PutToken, CbsError> {
        let message_id = message
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone())
            .ok_or_else(|| CbsError::malformed("put-token without a message-id"))?;
        let app = message
            .application_properties
            .as_ref()
            .ok_or_else(|| CbsError::malformed("put-token without application-properties"))?;
        let string = |key: &str| match app.get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        if string(OPERATION) != Some(PUT_TOKEN) {
            return Err(CbsError::malformed("operation is not the string put-token"));
        }
        let token_type = string(TYPE).and_then(TokenType::parse).ok_or_else(|| {
            CbsError::malformed(
                "type is not servicebus.windows.net:sastoken or azure-devices.net:sastoken",
            )
        })?;
        let audience = string(NAME)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| CbsError::malformed("name is not a non-empty string"))?;
        let Body::Value(Value::String(token)) = &message.body else {
            return Err(CbsError::malformed("the body is not an amqp-value string"));
        };
        Ok(PutToken {
            message_id,
            audience: audience.into(),
            token: token.as_str().into(),
            token_type,
        })
    }
}

/// What a put-token's `name` grants, as the hub reads it (spec file §5.2, TV-17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience {
    /// The hub's host name, without a port.
    pub host: String,
    /// The device or module.
    pub identity: Identity,
}

impl Audience {
    /// Reads a put-token's `name` as EDGE does (spec file §5.2): URL-decoded, an
    /// optional `amqps://` scheme stripped, `host[:port]` split from the path, and the
    /// path `/devices/{id}` or `/devices/{id}/modules/{mid}` (fixed segments in any
    /// case). The decoded name is tried first (Node's encoded `sr`); when it gives no
    /// valid audience, the name as sent is (the C SDK's plain form, whose ids may hold
    /// a `%`) (spec file §2.1).
    ///
    /// # Errors
    ///
    /// [`CbsError`] 400004 (status 400) when neither reading is a device or module
    /// resource: another path, an empty host, invalid ids. A policy-wide audience
    /// (`<host>/devices`) is one of these: hubwire authorises devices and modules one
    /// by one.
    pub fn parse(name: &str) -> Result<Audience, CbsError> {
        percent_decode(name)
            .and_then(|decoded| Audience::parse_decoded(&decoded))
            .or_else(|| Audience::parse_decoded(name))
            .ok_or_else(|| CbsError::malformed("name is not <host>/devices/<id>[/modules/<id>]"))
    }

    fn parse_decoded(name: &str) -> Option<Audience> {
        let rest = address::strip_scheme(name).unwrap_or(name);
        let (host, path) = address::split_host(rest)?;
        let valid = |id: &str| Identity::is_valid_id(id).then(|| String::from(id));
        match address::identity_prefix(path, valid) {
            Ok(Some((identity, ""))) => Some(Audience { host: host.into(), identity }),
            _ => None,
        }
    }
}

/// The answer to a put-token (spec file §5.2, TV-17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutTokenResponse {
    /// The request's message-id, in its AMQP type (the C SDK reads a ulong, Node
    /// compares a string).
    pub correlation_id: MessageId,
    /// `status-code`: [`STATUS_OK`] or the failure's HTTP status.
    pub status_code: i32,
    /// `status-description`: `OK`, or what went wrong. Empty when the hub sent none.
    pub description: String,
}

/// Why a message is not a put-token response (device side).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a put-token response: {0}")]
pub struct ResponseError(pub &'static str);

impl PutTokenResponse {
    /// Success for the request with `message_id`: 200, `OK` (EDGE's reply, TV-17).
    pub fn ok(message_id: MessageId) -> PutTokenResponse {
        PutTokenResponse {
            correlation_id: message_id,
            status_code: STATUS_OK,
            description: String::from("OK"),
        }
    }

    /// Whether the token was accepted: the status is exactly 200 (spec file §5.2).
    pub fn is_success(&self) -> bool {
        self.status_code == STATUS_OK
    }

    /// The message: `correlation-id` in the request id's type; application
    /// properties `status-code` as an AMQP int (the C SDK reads it with
    /// `amqpvalue_get_int`) and `status-description` as a string; no body.
    pub fn to_message(&self) -> Message {
        let mut message = Message::new(Body::Empty);
        message.properties = Some(Properties {
            correlation_id: Some(self.correlation_id.clone()),
            ..Properties::default()
        });
        message.application_properties = Some(application_properties([
            (STATUS_CODE, Value::Int(self.status_code)),
            (STATUS_DESCRIPTION, Value::String(self.description.as_str().into())),
        ]));
        message
    }

    /// Device side: reads the hub's answer. `status-code` must be an AMQP int (as
    /// the C SDK requires); a missing `status-description` reads as empty.
    ///
    /// # Errors
    ///
    /// [`ResponseError`]: no correlation-id, no `status-code` int, or a
    /// `status-description` that is not a string.
    pub fn from_message(message: &Message) -> Result<PutTokenResponse, ResponseError> {
        let correlation_id = message
            .properties
            .as_ref()
            .and_then(|p| p.correlation_id.clone())
            .ok_or(ResponseError("no correlation-id"))?;
        let app = message.application_properties.as_ref();
        let Some(Value::Int(status_code)) = app.and_then(|a| a.get(STATUS_CODE)) else {
            return Err(ResponseError("status-code is not an int"));
        };
        let description = match app.and_then(|a| a.get(STATUS_DESCRIPTION)) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.as_str().into(),
            Some(_) => return Err(ResponseError("status-description is not a string")),
        };
        Ok(PutTokenResponse { correlation_id, status_code: *status_code, description })
    }
}

/// Application properties from pairs whose values are strings and ints, the simple
/// types (§3.2.5) that [`ApplicationProperties::insert`] always takes.
fn application_properties<const N: usize>(
    pairs: [(&'static str, Value); N],
) -> ApplicationProperties {
    let mut app = ApplicationProperties::new();
    for (key, value) in pairs {
        let inserted = app.insert(Utf8Bytes::from_static(key), value);
        debug_assert!(inserted.is_ok(), "{key} is not a simple value");
    }
    app
}

/// Hub side: the identities one AMQP connection has authorised by put-token, each
/// until its token's expiry (spec file §5.10 emulator guidance), at most
/// `max_tokens` of them (spec file §5.2).
///
/// Time comes in as arguments. An identity is authorised up to and including its
/// expiry instant, as [`SasToken::verify`] accepts a token up to `se + skew`; the
/// hub passes that instant to [`CbsTokens::put`]. A lapsed entry holds its place
/// until [`CbsTokens::expire`] removes and reports it, so that the engine detaches
/// its links: the engine calls `expire` when [`CbsTokens::next_expiry`] comes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CbsTokens {
    tokens: BTreeMap<Identity, Timestamp>,
    max_tokens: usize,
}

impl Default for CbsTokens {
    /// An empty table of [`MAX_TOKENS`] places.
    fn default() -> CbsTokens {
        CbsTokens::new(MAX_TOKENS)
    }
}

impl CbsTokens {
    /// An empty table for at most `max_tokens` identities.
    pub fn new(max_tokens: usize) -> CbsTokens {
        CbsTokens { tokens: BTreeMap::new(), max_tokens }
    }

    /// Records a verified token for `identity`, valid until `expiry` (inclusive). A
    /// renewal, for an identity already held (lapsed or not), replaces its expiry and
    /// takes no new place.
    ///
    /// # Errors
    ///
    /// [`CbsError`] 403005 IotHubMaxCbsTokenExceeded (status 403, condition
    /// `amqp:resource-limit-exceeded`) for a new identity when the table is full.
    pub fn put(&mut self, identity: Identity, expiry: Timestamp) -> Result<(), CbsError> {
        if let Some(slot) = self.tokens.get_mut(&identity) {
            *slot = expiry;
            return Ok(());
        }
        if self.tokens.len() >= self.max_tokens {
            return Err(CbsError {
                code: ErrorCode::IOT_HUB_MAX_CBS_TOKEN_EXCEEDED,
                description: alloc::format!(
                    "this connection holds tokens for {} identities already",
                    self.max_tokens
                ),
            });
        }
        self.tokens.insert(identity, expiry);
        Ok(())
    }

    /// Forgets `identity`'s token (its device moved to another connection), freeing
    /// its place; whether it held one.
    pub fn remove(&mut self, identity: &Identity) -> bool {
        self.tokens.remove(identity).is_some()
    }

    /// Whether `identity` holds a token that has not expired at `now`.
    pub fn is_authorised(&self, identity: &Identity, now: Timestamp) -> bool {
        self.tokens.get(identity).is_some_and(|expiry| now <= *expiry)
    }

    /// Removes the identities whose token expired before `now` and yields them, in
    /// identity order: the engine detaches their links (spec file §5.10; the hub's
    /// condition for that is unconfirmed, `amqp:unauthorized-access` is likely).
    pub fn expire(&mut self, now: Timestamp) -> impl Iterator<Item = Identity> + use<> {
        let mut lapsed = Vec::new();
        self.tokens.retain(|identity, expiry| {
            let keep = now <= *expiry;
            if !keep {
                lapsed.push(identity.clone());
            }
            keep
        });
        lapsed.into_iter()
    }

    /// The first instant at which a held token has expired (1 ms after the earliest
    /// expiry), for the engine's `poll_timeout`; `None` when none is held. Again after
    /// every [`put`](Self::put) and [`expire`](Self::expire).
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.tokens.values().min().map(|expiry| *expiry + Duration::from_millis(1))
    }

    /// How many identities are held, lapsed ones not yet expired included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

#[cfg(test)]
mod tests;
