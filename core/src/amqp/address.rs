//! IoT Hub's AMQP link addresses (spec file §5.3): the nodes a device attaches to,
//! read from an attach's source or target address on the hub, written by the device.
//!
//! Clients send a path (`/devices/d1/messages/events`, Node and .NET) or an absolute
//! URI (`amqps://myhub.azure-devices.net/devices/d1/messages/devicebound`, C), and
//! spell `devicebound` in either case, so [`NodeAddress::parse`] strips an optional
//! `amqps://host[:port]` prefix, matches path segments case-insensitively and
//! percent-decodes ids. [`NodeAddress::check_attach`] is what the hub decides before
//! it answers an attach, and [`AttachError::condition`] the error it refuses with
//! (spec file §5.8).

use alloc::string::String;
use core::fmt;

use percent_encoding::utf8_percent_encode;

use super::cbs;
use super::performative::Role;
use super::performative::definitions::condition;
use super::types::Symbol;
use crate::iothub::{Identity, UNRESERVED};

/// The scheme of an absolute address (spec file §5.3), matched case-insensitively.
const SCHEME: &str = "amqps://";

/// A node of IoT Hub's AMQP surface (spec file §5.3 table).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeAddress {
    /// `$cbs`: the claims-based-security node, for put-token (spec file §5.2).
    Cbs,
    /// `/devices/{d}[/modules/{m}]/messages/events`. One path, two uses told apart
    /// by the link's direction: a device's sender carries its telemetry (D2C); a
    /// module's receiver gets the messages routed to its inputs (spec file §5.3, Node
    /// `moduleMessagePath`, EDGE `ModuleMessageLinkHandler`).
    Events(Identity),
    /// `/devices/{d}/messages/devicebound`: cloud-to-device messages, for the
    /// device's receiver (spec file §5.5). Devices only: IoT Hub has no C2D queue for
    /// modules, and [`NodeAddress::parse`] refuses a module path here.
    C2d(Identity),
    /// `/devices/{d}[/modules/{m}]/twin`: twin requests on the device's sender,
    /// responses and desired-property notifications on its receiver (spec file §5.6).
    Twin(Identity),
    /// `/devices/{d}[/modules/{m}]/methods/devicebound`: method requests on the
    /// device's receiver, responses on its sender (spec file §5.7).
    Methods(Identity),
}

/// An address read by [`NodeAddress::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAddress {
    /// The host of an absolute address (`amqps://host[:port]/…`), without the port;
    /// `None` for a bare path. The hub may compare it with its own host name.
    pub host: Option<String>,
    /// The node.
    pub node: NodeAddress,
}

/// Why an address names no IoT Hub node (spec file §5.3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not of any form spec file §5.3 lists; the text says which part is wrong.
    #[error("not an IoT Hub address: {0}")]
    Unknown(&'static str),
    /// A device or module id that is not valid, decoded or raw (spec file §2.1).
    #[error("the address holds an invalid device or module id")]
    InvalidId,
    /// `messages/devicebound` under a module: IoT Hub sends C2D messages to devices
    /// only; modules receive on their inputs ([`NodeAddress::Events`]).
    #[error("modules have no cloud-to-device queue")]
    ModuleC2d,
}

impl AddressError {
    /// The condition the hub refuses the attach with: `amqp:not-found` for an
    /// address that names nothing (spec file §9: 404006 AmqpAddressNotFound,
    /// condition likely `amqp:not-found`), `amqp:not-allowed` for an operation IoT
    /// Hub does not offer (spec file §5.8).
    pub fn condition(&self) -> Symbol {
        match self {
            AddressError::Unknown(_) | AddressError::InvalidId => condition::NOT_FOUND,
            AddressError::ModuleC2d => condition::NOT_ALLOWED,
        }
    }
}

/// Why the hub refuses an attach to a node (spec file §5.8, §5.10).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The address names no node.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The connection holds no valid token for the node's identity: no put-token for
    /// it, or it expired (spec file §5.10).
    #[error("no valid token for {0} on this connection")]
    Unauthorized(Identity),
    /// The node does not serve a link of this direction, e.g. a device's sender on
    /// `messages/devicebound`, or a device's (not a module's) receiver on
    /// `messages/events`.
    #[error("{node} takes no link whose device end is a {role:?}")]
    WrongRole {
        /// The node's kind, as [`NodeAddress::kind`] names it.
        node: &'static str,
        /// The device end's role (the attach's `role`, sent by the device).
        role: Role,
    },
}

impl AttachError {
    /// The condition the hub's attach refusal (an attach with a null terminus, then
    /// a detach) carries (spec file §5.8): `amqp:unauthorized-access`,
    /// `amqp:not-allowed`, or as [`AddressError::condition`].
    pub fn condition(&self) -> Symbol {
        match self {
            AttachError::Address(e) => e.condition(),
            AttachError::Unauthorized(_) => condition::UNAUTHORIZED_ACCESS,
            AttachError::WrongRole { .. } => condition::NOT_ALLOWED,
        }
    }
}

impl NodeAddress {
    /// Reads an attach's source or target address (spec file §5.3).
    ///
    /// Accepted: `$cbs`, or `amqps://host[:port]/$cbs`; and
    /// `[amqps://host[:port]]/devices/{d}[/modules/{m}]/{node}` with `{node}` one of
    /// `messages/events`, `messages/devicebound` (devices only), `twin`,
    /// `methods/devicebound`. The scheme and the path's fixed segments match
    /// case-insensitively; each id is percent-decoded when that gives a valid id and
    /// taken as sent otherwise (spec file §2.1). Nothing may follow: no trailing `/`,
    /// query or fragment.
    ///
    /// # Errors
    ///
    /// [`AddressError::Unknown`] for any other form (an empty host, a port that is
    /// not a number, an unknown node), [`AddressError::InvalidId`],
    /// [`AddressError::ModuleC2d`].
    pub fn parse(address: &str) -> Result<ParsedAddress, AddressError> {
        let (host, path) = match strip_scheme(address) {
            Some(rest) => {
                let (host, path) = split_host(rest).ok_or(AddressError::Unknown("bad host"))?;
                (Some(String::from(host)), path)
            }
            None => (None, address),
        };
        let cbs = if host.is_some() { path.strip_prefix('/') } else { Some(path) };
        if cbs == Some(cbs::NODE) {
            return Ok(ParsedAddress { host, node: NodeAddress::Cbs });
        }
        let (identity, rest) = identity_prefix(path, Identity::id_in_segment)?
            .ok_or(AddressError::Unknown("neither $cbs nor a path starting /devices/{id}"))?;
        let mut tail = rest.strip_prefix('/').unwrap_or(rest).split('/');
        let (first, second, more) = (tail.next(), tail.next(), tail.next());
        let is = |segment: Option<&str>, name: &str| {
            segment.is_some_and(|s| s.eq_ignore_ascii_case(name))
        };
        let node = match (more, rest.is_empty()) {
            (None, false) if is(first, "messages") && is(second, "events") => {
                NodeAddress::Events(identity)
            }
            (None, false) if is(first, "messages") && is(second, "devicebound") => {
                if identity.module_id.is_some() {
                    return Err(AddressError::ModuleC2d);
                }
                NodeAddress::C2d(identity)
            }
            (None, false) if is(first, "twin") && second.is_none() => NodeAddress::Twin(identity),
            (None, false) if is(first, "methods") && is(second, "devicebound") => {
                NodeAddress::Methods(identity)
            }
            _ => return Err(AddressError::Unknown("no IoT Hub node after the identity")),
        };
        Ok(ParsedAddress { host, node })
    }

    /// The address the device role attaches to, in Node's form: a path with no host
    /// (`/devices/device1/messages/events`), `devicebound` in lower case (spec file
    /// §5.3, §5.9). An id holding `%`, `?` or `#` is percent-encoded whole, so that it
    /// neither ends the path nor reads back as another id; other ids are written as
    /// they are. [`NodeAddress::parse`] reads the result back to `self`.
    pub fn path(&self) -> String {
        let (identity, node) = match self {
            NodeAddress::Cbs => return String::from(cbs::NODE),
            NodeAddress::Events(id) => (id, "messages/events"),
            NodeAddress::C2d(id) => (id, "messages/devicebound"),
            NodeAddress::Twin(id) => (id, "twin"),
            NodeAddress::Methods(id) => (id, "methods/devicebound"),
        };
        let mut path = String::from("/devices/");
        push_id(&mut path, &identity.device_id);
        if let Some(module) = &identity.module_id {
            path.push_str("/modules/");
            push_id(&mut path, module);
        }
        path.push('/');
        path.push_str(node);
        path
    }

    /// The identity whose node this is; `None` for `$cbs`, which any connection may
    /// use.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            NodeAddress::Cbs => None,
            NodeAddress::Events(id)
            | NodeAddress::C2d(id)
            | NodeAddress::Twin(id)
            | NodeAddress::Methods(id) => Some(id),
        }
    }

    /// The node's kind for messages and logs: `$cbs`, `events`, `c2d`, `twin`,
    /// `methods`.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeAddress::Cbs => cbs::NODE,
            NodeAddress::Events(_) => "events",
            NodeAddress::C2d(_) => "c2d",
            NodeAddress::Twin(_) => "twin",
            NodeAddress::Methods(_) => "methods",
        }
    }

    /// Hub side: whether a device may attach a link to this node. `role` is the
    /// device's end (the attach's `role`); `authorised` says whether the connection
    /// holds a valid token for an identity (e.g. [`cbs::CbsTokens::is_authorised`]
    /// at the current time, or the SASL PLAIN login's identity).
    ///
    /// Directions (spec file §5.3 table): `$cbs`, twin and methods take both; events
    /// take a sender, and a receiver only for a module (its inputs); C2D takes a
    /// receiver.
    ///
    /// # Errors
    ///
    /// [`AttachError::WrongRole`] (checked first: it does not depend on who asks),
    /// [`AttachError::Unauthorized`].
    pub fn check_attach(
        &self,
        role: Role,
        authorised: impl FnOnce(&Identity) -> bool,
    ) -> Result<(), AttachError> {
        let allowed = match (self, role) {
            (NodeAddress::Events(id), Role::Receiver) => id.module_id.is_some(),
            (NodeAddress::C2d(_), Role::Sender) => false,
            _ => true,
        };
        if !allowed {
            return Err(AttachError::WrongRole { node: self.kind(), role });
        }
        match self.identity() {
            Some(id) if !authorised(id) => Err(AttachError::Unauthorized(id.clone())),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for NodeAddress {
    /// As [`NodeAddress::path`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Appends an id to a path: raw, or percent-encoded whole when raw it would end the
/// path (`?`, `#`) or could be misread as an escape (`%`).
fn push_id(path: &mut String, id: &str) {
    if id.contains(['%', '?', '#']) {
        path.extend(utf8_percent_encode(id, UNRESERVED));
    } else {
        path.push_str(id);
    }
}

/// `s` after an `amqps://` scheme in any case; `None` without one.
pub(super) fn strip_scheme(s: &str) -> Option<&str> {
    let scheme = s.get(..SCHEME.len())?;
    scheme.eq_ignore_ascii_case(SCHEME).then(|| &s[SCHEME.len()..])
}

/// `host[:port]` up to the first `/`, and the path from that `/` on (empty when there
/// is none). `None` when the host is empty or the port is not a decimal `u16`.
pub(super) fn split_host(s: &str) -> Option<(&str, &str)> {
    let (authority, path) = s.split_at(s.find('/').unwrap_or(s.len()));
    // `rsplit`, and not after a `]`, so that an IPv6 literal keeps its colons.
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => {
            let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            (digits && port.parse::<u16>().is_ok()).then_some(host)?
        }
        _ => authority,
    };
    (!host.is_empty()).then_some((host, path))
}

/// `/devices/{d}[/modules/{m}]` at the start of `path` (fixed segments in any case),
/// each id read by `id`, and what follows (empty, or from a `/` on). `Ok(None)` when
/// `path` does not start `/devices/`.
///
/// # Errors
///
/// [`AddressError::InvalidId`] when `id` reads no valid id from a segment.
pub(super) fn identity_prefix(
    path: &str,
    id: impl Fn(&str) -> Option<String>,
) -> Result<Option<(Identity, &str)>, AddressError> {
    let Some(rest) = path.strip_prefix('/') else { return Ok(None) };
    let Some((devices, rest)) = rest.split_once('/') else { return Ok(None) };
    if !devices.eq_ignore_ascii_case("devices") {
        return Ok(None);
    }
    let (device, mut rest) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut identity = Identity::device(id(device).ok_or(AddressError::InvalidId)?);
    if let Some((modules, after)) = rest.strip_prefix('/').and_then(|r| r.split_once('/')) {
        if modules.eq_ignore_ascii_case("modules") {
            let (module, after) = after.split_at(after.find('/').unwrap_or(after.len()));
            identity.module_id = Some(id(module).ok_or(AddressError::InvalidId)?);
            rest = after;
        }
    }
    Ok(Some((identity, rest)))
}

#[cfg(test)]
mod tests;
