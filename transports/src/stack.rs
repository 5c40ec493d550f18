//! The five IoT Hub transports as stacks of layers: `socket ↔ [TLS] ↔ [WebSocket] ↔
//! session` (DESIGN.md, "The sans-IO contract"; spec file §1).
//!
//! A [`Stack`] is what a runtime holds per connection between its socket and the
//! protocol session: network bytes in, the session's plain bytes out, and the
//! reverse. It is sans-IO like its layers: the runtime writes what
//! [`Stack::poll_output`] gives and feeds what it reads to [`Stack::handle_input`].
//!
//! On the hub's port 443 the protocol is not known when the connection opens: the
//! stack reads the first HTTP request head and routes on it ([`Stack::route`]) — a
//! WebSocket upgrade at `/$iothub/websocket` with subprotocol `mqtt` or `AMQPWSB10`
//! picks MQTT or AMQP, anything else is a REST request.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hubwire_core::Protocol;
use hubwire_core::http::{self, HeadError, RequestHead};

use crate::tls::{Tls, TlsError};
use crate::ws::{self, Rejection, Subprotocol, WebSocket, WsConfig, WsError};

/// An IoT Hub transport: a protocol and the layers under it (spec file §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// MQTT 3.1.1 over TLS, port 8883: what devices use.
    Mqtt,
    /// MQTT over WebSocket over TLS, port 443, path `/$iothub/websocket`,
    /// subprotocol `mqtt`: for networks that open nothing but 443.
    MqttWs,
    /// MQTT over plain TCP, port 1883: local development and tests only. IoT Hub
    /// itself does not offer it.
    MqttTcp,
    /// AMQP 1.0 over TLS, port 5671 (spec file §5.1).
    Amqp,
    /// AMQP over WebSocket over TLS, port 443, path `/$iothub/websocket`,
    /// subprotocol `AMQPWSB10` (spec file §5.1).
    AmqpWs,
    /// AMQP over plain TCP, port 5672 (the port IANA assigns AMQP): local
    /// development and tests only. IoT Hub itself does not offer it.
    AmqpTcp,
    /// IoT Hub's REST API over TLS, port 443, sharing the listener with the
    /// WebSocket transports (spec file §6): telemetry by POST, C2D by polling.
    Http,
}

impl Transport {
    /// Every transport, in the order `hubwire demo` shows them.
    pub const ALL: &'static [Transport] = &[
        Transport::Mqtt,
        Transport::MqttWs,
        Transport::MqttTcp,
        Transport::Amqp,
        Transport::AmqpWs,
        Transport::AmqpTcp,
        Transport::Http,
    ];

    /// The name users write (`--transport mqtt-ws`).
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::MqttWs => "mqtt-ws",
            Transport::MqttTcp => "mqtt-tcp",
            Transport::Amqp => "amqp",
            Transport::AmqpWs => "amqp-ws",
            Transport::AmqpTcp => "amqp-tcp",
            Transport::Http => "http",
        }
    }

    /// The protocol the session speaks.
    pub const fn protocol(self) -> Protocol {
        match self {
            Transport::Mqtt | Transport::MqttWs | Transport::MqttTcp => Protocol::Mqtt,
            Transport::Amqp | Transport::AmqpWs | Transport::AmqpTcp => Protocol::Amqp,
            Transport::Http => Protocol::Http,
        }
    }

    /// The port IoT Hub serves this transport on (spec file §1, §5.1).
    pub const fn default_port(self) -> u16 {
        self.listener().default_port()
    }

    /// Whether TLS carries it.
    pub const fn tls(self) -> bool {
        !matches!(self, Transport::MqttTcp | Transport::AmqpTcp)
    }

    /// The WebSocket subprotocol, when WebSocket carries it.
    pub const fn websocket(self) -> Option<Subprotocol> {
        match self {
            Transport::MqttWs => Some(Subprotocol::Mqtt),
            Transport::AmqpWs => Some(Subprotocol::Amqp),
            Transport::Mqtt
            | Transport::MqttTcp
            | Transport::Amqp
            | Transport::AmqpTcp
            | Transport::Http => None,
        }
    }

    /// The hub listener that serves it.
    pub const fn listener(self) -> Listener {
        match self {
            Transport::Mqtt => Listener::Tls(Protocol::Mqtt),
            Transport::MqttWs | Transport::AmqpWs | Transport::Http => Listener::Web,
            Transport::MqttTcp => Listener::Tcp(Protocol::Mqtt),
            Transport::Amqp => Listener::Tls(Protocol::Amqp),
            Transport::AmqpTcp => Listener::Tcp(Protocol::Amqp),
        }
    }

    /// The same protocol over WebSocket on 443: where a device goes when its
    /// protocol's own port is blocked (the reason IoT Hub offers WebSockets).
    pub const fn websocket_fallback(self) -> Option<Transport> {
        match self {
            Transport::Mqtt | Transport::MqttTcp => Some(Transport::MqttWs),
            Transport::Amqp | Transport::AmqpTcp => Some(Transport::AmqpWs),
            // Already on 443.
            Transport::MqttWs | Transport::AmqpWs | Transport::Http => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A transport name that is not one of [`Transport::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown transport {0:?}: expected one of mqtt, mqtt-ws, mqtt-tcp, amqp, amqp-ws, amqp-tcp, http"
)]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTransport(s.to_owned()))
    }
}

/// What a hub listener serves (the server side of [`Transport`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Listener {
    /// One protocol straight over TLS (MQTT on 8883, AMQP on 5671).
    Tls(Protocol),
    /// One protocol over plain TCP (development: MQTT on 1883, AMQP on 5672).
    Tcp(Protocol),
    /// IoT Hub's port 443: TLS, then WebSocket upgrades for MQTT and AMQP and
    /// plain HTTPS requests, told apart by the first request head.
    Web,
}

impl Listener {
    /// The port IoT Hub serves it on (spec file §1, §5.1); for the plain-TCP
    /// listeners, the protocols' own unencrypted ports (MQTT 1883, AMQP 5672).
    pub const fn default_port(self) -> u16 {
        match self {
            Listener::Tls(Protocol::Amqp) => 5671,
            Listener::Tls(_) => 8883,
            Listener::Tcp(Protocol::Amqp) => 5672,
            Listener::Tcp(_) => 1883,
            Listener::Web => 443,
        }
    }
}

/// Why a stack gave up. The stack has queued its wire answer (a TLS alert, a
/// WebSocket close frame, an HTTP error response) in [`Stack::poll_output`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The TLS layer failed.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The WebSocket layer failed.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] WsError),
    /// A request on port 443 was not a request this hub serves.
    #[error("HTTP: {0}")]
    Http(#[from] HeadError),
    /// A WebSocket upgrade was refused with this HTTP answer.
    #[error("WebSocket upgrade refused: {0}")]
    Refused(#[from] Rejection),
    /// A TLS transport or listener was given no TLS configuration.
    #[error("no TLS configuration was given for a TLS transport")]
    NoTlsConfig,
    /// A plain HTTPS request on a port 443 that does not serve HTTP: answered 404.
    #[error("no REST endpoint {method} {path}")]
    NoRestEndpoint {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
}

/// The WebSocket layer's state on a connection.
#[derive(Debug)]
enum Web {
    /// No WebSocket in this stack.
    None,
    /// Port 443 before the first request head: the bytes so far.
    Dispatching(BytesMut),
    /// The WebSocket carrying the session.
    Open(Box<WebSocket>),
    /// The connection was answered and is over.
    Done,
}

/// One connection's layers. See the module documentation.
#[derive(Debug)]
pub struct Stack {
    tls: Option<Box<Tls>>,
    web: Web,
    /// Decrypted bytes on their way to the WebSocket layer or the session.
    middle: BytesMut,
    /// Bytes for the session.
    plain: BytesMut,
    /// Bytes for the socket, in order.
    output: VecDeque<Bytes>,
    /// The protocol, once known.
    route: Option<Protocol>,
    /// Protocols the hub serves on port 443.
    serves: &'static [Protocol],
    ws_config: WsConfig,
    closed: bool,
}

/// The limits on the first request head on port 443: IoT Hub's SDKs send heads of
/// a few hundred bytes.
const HEAD_LIMITS: http::Limits = http::Limits { max_head_size: 16 * 1024, max_headers: 64 };

impl Stack {
    /// A device's stack for `transport` to `host` (a DNS name or IP literal, sent as
    /// SNI and checked against the hub's certificate; with its port when that is not
    /// 443, it is the WebSocket `Host`). `tls` is required when the transport has
    /// TLS; `ws_key` is the random nonce of a WebSocket upgrade (RFC 6455 §4.1).
    ///
    /// Errors: [`StackError::Tls`] when `host` is not a valid server name or no TLS
    /// configuration was given for a TLS transport.
    pub fn client(
        transport: Transport,
        host: &str,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
        ws_key: [u8; 16],
    ) -> Result<Stack, StackError> {
        let tls = match (transport.tls(), tls) {
            (true, Some(config)) => Some(Box::new(Tls::client(config, host)?)),
            (true, None) => return Err(StackError::NoTlsConfig),
            (false, _) => None,
        };
        let ws_config = WsConfig::default();
        let web = match transport.websocket() {
            Some(subprotocol) => {
                let authority =
                    if port == 443 { host.to_owned() } else { format!("{host}:{port}") };
                Web::Open(Box::new(WebSocket::client(
                    &authority,
                    ws::IOTHUB_PATH,
                    subprotocol,
                    ws_key,
                    ws_config,
                )))
            }
            None => Web::None,
        };
        let mut stack = Stack::new(tls, web, Some(transport.protocol()), ws_config);
        stack.pump()?;
        Ok(stack)
    }

    /// A hub's stack for a connection accepted on `listener`; `tls` is required for
    /// the TLS listeners. `serves` lists the protocols port 443 routes to.
    ///
    /// Errors: [`StackError::Tls`] when a TLS listener has no configuration.
    pub fn server(
        listener: Listener,
        tls: Option<Arc<rustls::ServerConfig>>,
        serves: &'static [Protocol],
    ) -> Result<Stack, StackError> {
        let (tls, web, route) = match listener {
            Listener::Tcp(protocol) => (None, Web::None, Some(protocol)),
            Listener::Tls(protocol) => (Some(tls), Web::None, Some(protocol)),
            Listener::Web => (Some(tls), Web::Dispatching(BytesMut::new()), None),
        };
        let tls = match tls {
            Some(Some(config)) => Some(Box::new(Tls::server(config)?)),
            Some(None) => return Err(StackError::NoTlsConfig),
            None => None,
        };
        let mut stack = Stack::new(tls, web, route, WsConfig::default());
        stack.serves = serves;
        Ok(stack)
    }

    fn new(tls: Option<Box<Tls>>, web: Web, route: Option<Protocol>, ws_config: WsConfig) -> Stack {
        Stack {
            tls,
            web,
            middle: BytesMut::new(),
            plain: BytesMut::new(),
            output: VecDeque::new(),
            route,
            serves: &[],
            ws_config,
            closed: false,
        }
    }

    /// Network bytes from the socket. Afterwards: write [`poll_output`](Self::poll_output),
    /// hand [`take_plain`](Self::take_plain) to the session once
    /// [`is_open`](Self::is_open) and [`route`](Self::route) say it exists.
    ///
    /// Errors: a layer's failure; its wire answer is queued and
    /// [`is_closed`](Self::is_closed) is true.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), StackError> {
        let result = self.receive(bytes).and_then(|()| self.pump());
        if result.is_err() {
            self.closed = true;
            // The layers' last words (an alert, a close frame, an HTTP answer).
            let _ = self.pump();
        }
        result
    }

    fn receive(&mut self, bytes: &[u8]) -> Result<(), StackError> {
        if self.closed {
            return Ok(());
        }
        let decrypted;
        let decrypted: &[u8] = match self.tls.as_mut() {
            Some(tls) => {
                tls.handle_input(bytes, &mut self.middle)?;
                decrypted = self.middle.split().freeze();
                &decrypted
            }
            None => bytes,
        };
        if decrypted.is_empty() {
            return Ok(());
        }
        match &mut self.web {
            Web::None => self.plain.extend_from_slice(decrypted),
            Web::Open(ws) => ws.handle_input(decrypted, &mut self.plain)?,
            Web::Dispatching(head) => {
                head.extend_from_slice(decrypted);
                let buffered = head.split().freeze();
                self.dispatch(buffered)?;
            }
            Web::Done => {}
        }
        Ok(())
    }

    /// Routes a connection on port 443 by its first request head.
    fn dispatch(&mut self, buffered: Bytes) -> Result<(), StackError> {
        let parsed = http::parse_request(&buffered, &HEAD_LIMITS).and_then(|p| {
            p.map(|(head, used)| head.check_host().map(|()| (head, used))).transpose()
        });
        let parsed = match parsed {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                self.web = Web::Dispatching(BytesMut::from(&buffered[..]));
                return Ok(());
            }
            Err(e) => {
                let status = e.status();
                self.answer(http::error_response(
                    status,
                    http::reason_phrase(status),
                    &[],
                    &e.to_string(),
                ));
                return Err(e.into());
            }
        };
        let (head, used) = parsed;
        let rest = buffered.slice(used.min(buffered.len())..);
        if is_upgrade(&head) {
            let routes: Vec<(Subprotocol, Protocol)> =
                self.serves.iter().filter_map(|&p| Some((subprotocol_for(p)?, p))).collect();
            let allowed: Vec<Subprotocol> = routes.iter().map(|&(s, _)| s).collect();
            match WebSocket::accept(&head, &allowed, self.ws_config) {
                Ok(mut ws) => {
                    self.route =
                        routes.iter().find(|&&(s, _)| s == ws.subprotocol()).map(|&(_, p)| p);
                    ws.handle_input(&rest, &mut self.plain)?;
                    self.web = Web::Open(Box::new(ws));
                    Ok(())
                }
                Err(rejection) => {
                    self.answer(rejection.response.clone());
                    Err(rejection.into())
                }
            }
        } else if self.serves.contains(&Protocol::Http) {
            // The HTTP session reads the request from its first byte: the head is
            // handed on whole, with whatever followed it.
            self.route = Some(Protocol::Http);
            self.web = Web::None;
            self.plain.extend_from_slice(&buffered);
            Ok(())
        } else {
            let body = "this listener serves no REST endpoint";
            self.answer(http::error_response(404, http::reason_phrase(404), &[], body));
            let path = head.path().to_owned();
            Err(StackError::NoRestEndpoint { method: head.method, path })
        }
    }

    /// Queues an HTTP answer that ends the connection, then TLS close_notify
    /// (RFC 8446 §6.1: a closing side sends it).
    fn answer(&mut self, response: Bytes) {
        self.web = Web::Done;
        self.middle.clear();
        self.push_down(response);
        if let Some(tls) = self.tls.as_mut() {
            tls.close();
            while let Some(out) = tls.poll_output() {
                self.output.push_back(out);
            }
        }
    }

    /// Plain bytes from the session, to be sent. Before the layers are open they are
    /// held and sent once they are.
    ///
    /// Errors: a layer's failure (the stack is closed then).
    pub fn send(&mut self, plain: Bytes) -> Result<(), StackError> {
        if self.closed {
            return Ok(());
        }
        match &mut self.web {
            Web::Open(ws) => ws.send(&plain)?,
            // Plain TCP passes the session's buffer on without a copy.
            Web::None => self.push_down(plain),
            // No session exists to send before routing, nor after the answer.
            Web::Dispatching(_) | Web::Done => {}
        }
        self.pump()
    }

    /// Moves what the upper layers want sent down through TLS to the output.
    fn pump(&mut self) -> Result<(), StackError> {
        if let Web::Open(ws) = &mut self.web {
            while let Some(bytes) = ws.poll_output() {
                match self.tls.as_mut() {
                    Some(tls) => tls.send(&bytes)?,
                    None => self.output.push_back(bytes),
                }
            }
            if ws.is_closed() {
                self.closed = true;
            }
        }
        if let Some(tls) = self.tls.as_mut() {
            while let Some(bytes) = tls.poll_output() {
                self.output.push_back(bytes);
            }
            if tls.is_closed() {
                self.closed = true;
            }
        }
        Ok(())
    }

    /// Sends bytes below the WebSocket layer (an HTTP answer, or a session's bytes
    /// when no WebSocket is in the stack).
    fn push_down(&mut self, bytes: Bytes) {
        match self.tls.as_mut() {
            Some(tls) => {
                if tls.send(&bytes).is_err() {
                    self.closed = true;
                }
                while let Some(out) = tls.poll_output() {
                    self.output.push_back(out);
                }
            }
            None => self.output.push_back(bytes),
        }
    }

    /// Starts an orderly close: a WebSocket close frame, then TLS close_notify; on
    /// port 443 with part of the first request head received, a 408 Request Timeout
    /// first (RFC 9110 §15.5.9), as the runtime closes such a connection when it has
    /// waited too long. Write the output, then close the socket.
    pub fn close(&mut self) {
        if matches!(&self.web, Web::Dispatching(head) if !head.is_empty()) {
            let body = "the request head did not arrive in time";
            self.answer(http::error_response(408, http::reason_phrase(408), &[], body));
        }
        if let Web::Open(ws) = &mut self.web {
            ws.close();
        }
        let _ = self.pump();
        if let Some(tls) = self.tls.as_mut() {
            tls.close();
        }
        let _ = self.pump();
        self.closed = true;
    }

    /// The next bytes to write to the socket, in order. Poll after every call.
    pub fn poll_output(&mut self) -> Option<Bytes> {
        self.output.pop_front()
    }

    /// Plain bytes received for the session since the last call.
    pub fn take_plain(&mut self) -> Bytes {
        self.plain.split().freeze()
    }

    /// Every handshake is done: the session may be told it is connected.
    pub fn is_open(&self) -> bool {
        let tls = self.tls.as_ref().is_none_or(|t| !t.is_handshaking());
        let web = match &self.web {
            Web::None => true,
            Web::Open(ws) => ws.is_open(),
            Web::Dispatching(_) | Web::Done => false,
        };
        tls && web && !self.closed
    }

    /// A layer ended the connection (the peer closed it, or it failed): write the
    /// output, then close the socket.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The protocol the connection carries: known from the start on the protocol's
    /// own ports, after the first request head on port 443.
    pub fn route(&self) -> Option<Protocol> {
        self.route
    }

    /// The TLS version negotiated, if TLS is in the stack and its handshake is done.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.tls.as_ref().and_then(|t| t.protocol_version())
    }
}

/// A request asking for a WebSocket (RFC 6455 §4.1: `Upgrade: websocket`), or one
/// at the WebSocket path: the latter is refused by the WebSocket rules with their
/// status rather than treated as REST.
fn is_upgrade(head: &RequestHead) -> bool {
    head.has_token("upgrade", "websocket") || head.path() == ws::IOTHUB_PATH
}

/// The WebSocket subprotocol that carries `protocol` (spec file §1).
fn subprotocol_for(protocol: Protocol) -> Option<Subprotocol> {
    match protocol {
        Protocol::Mqtt => Some(Subprotocol::Mqtt),
        Protocol::Amqp => Some(Subprotocol::Amqp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{frame, upgrade_request};
    use crate::tls::local_ca::CertificateAuthority;
    use crate::tls::testing::{client_trusting, server_for};

    /// What a hub serves on port 443 in these tests; the REST refusal cases leave out
    /// HTTP.
    const SERVES: &[Protocol] = &[Protocol::Mqtt, Protocol::Amqp];

    /// Everything port 443 can serve.
    const SERVES_ALL: &[Protocol] = &[Protocol::Mqtt, Protocol::Amqp, Protocol::Http];

    /// A session's first bytes: an MQTT-ish CONNECT, or for HTTP a whole request,
    /// which the hub's port 443 routes on.
    fn first_bytes(transport: Transport) -> &'static [u8] {
        match transport {
            Transport::Http => {
                b"GET /devices/d/messages/deviceBound?api-version=1 HTTP/1.1\r\nHost: h\r\n\r\n"
            }
            _ => b"CONNECT",
        }
    }

    /// TLS configurations for both roles: a certificate for 127.0.0.1 from a fresh
    /// CA, and a client trusting that CA alone.
    fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let ca = CertificateAuthority::new().expect("a CA");
        (server_for(&ca, &["127.0.0.1"]), client_trusting(&ca))
    }

    /// Hands everything `from` has for the network to `to`, `chunk` bytes at a time.
    fn shuttle(from: &mut Stack, to: &mut Stack, chunk: usize) -> Result<(), StackError> {
        while let Some(bytes) = from.poll_output() {
            for piece in bytes.chunks(chunk.max(1)) {
                to.handle_input(piece)?;
            }
        }
        Ok(())
    }

    fn pair(transport: Transport, chunk: usize) -> (Stack, Stack) {
        let (server_tls, client_tls) = tls_configs();
        let mut device =
            Stack::client(transport, "127.0.0.1", 443, Some(client_tls), [9; 16]).expect("client");
        let mut hub =
            Stack::server(transport.listener(), Some(server_tls), SERVES_ALL).expect("server");
        // The session's first bytes may be sent before the handshakes finish.
        device.send(Bytes::from_static(first_bytes(transport))).expect("held until open");
        for _ in 0..10 {
            shuttle(&mut device, &mut hub, chunk).expect("device to hub");
            shuttle(&mut hub, &mut device, chunk).expect("hub to device");
        }
        (device, hub)
    }

    #[test]
    fn every_transport_carries_session_bytes_both_ways_whatever_the_chunking() {
        for &transport in Transport::ALL {
            for chunk in [1, 7, 4096] {
                let (mut device, mut hub) = pair(transport, chunk);
                assert!(device.is_open() && hub.is_open(), "{transport}/{chunk}");
                assert_eq!(hub.route(), Some(transport.protocol()), "{transport}");
                assert_eq!(&hub.take_plain()[..], first_bytes(transport), "{transport}/{chunk}");
                hub.send(Bytes::from_static(b"CONNACK")).expect("send");
                shuttle(&mut hub, &mut device, chunk).expect("hub to device");
                assert_eq!(&device.take_plain()[..], b"CONNACK", "{transport}/{chunk}");
                assert_eq!(device.tls_version().is_some(), transport.tls(), "{transport}");
            }
        }
    }

    #[test]
    fn a_close_reaches_the_other_side() {
        for &transport in &[
            Transport::Mqtt,
            Transport::MqttWs,
            Transport::Amqp,
            Transport::AmqpWs,
            Transport::Http,
        ] {
            let (mut device, mut hub) = pair(transport, 4096);
            device.close();
            assert!(device.is_closed());
            shuttle(&mut device, &mut hub, 4096).expect("the close is valid input");
            assert!(hub.is_closed(), "{transport}");
        }
    }

    /// What a hub's port-443 stack makes of `request`, sent over TLS by a client
    /// that speaks no WebSocket itself: the stack's result, its answer as text, and
    /// the stack.
    fn answer_on_443(request: &[u8]) -> (Result<(), StackError>, String, Stack) {
        let (result, answer, hub, _) = exchange_on_443(request, SERVES);
        (result, answer, hub)
    }

    /// [`answer_on_443`] on a hub serving `serves` there, with the client's stack too.
    fn exchange_on_443(
        request: &[u8],
        serves: &'static [Protocol],
    ) -> (Result<(), StackError>, String, Stack, Stack) {
        let (server_tls, client_tls) = tls_configs();
        let mut device =
            Stack::client(Transport::Mqtt, "127.0.0.1", 443, Some(client_tls), [0; 16])
                .expect("a TLS client stack");
        let mut hub = Stack::server(Listener::Web, Some(server_tls), serves).expect("server");
        device.send(Bytes::copy_from_slice(request)).expect("send");
        let mut result = Ok(());
        for _ in 0..10 {
            if result.is_ok() {
                result = shuttle(&mut device, &mut hub, 4096);
            }
            let _ = shuttle(&mut hub, &mut device, 4096);
        }
        let answer = String::from_utf8_lossy(&device.take_plain()).into_owned();
        (result, answer, hub, device)
    }

    #[test]
    fn port_443_routes_a_websocket_upgrade_for_mqtt_and_keeps_frames_sent_with_it() {
        let mut request = upgrade_request("/$iothub/websocket", "mqtt");
        // An MQTT CONNECT's first bytes in a masked binary frame, in the same write.
        request.extend(frame(0x82, b"\x10\x00", Some([1, 2, 3, 4])));
        let (result, answer, mut hub) = answer_on_443(&request);
        assert!(result.is_ok(), "{result:?}");
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert_eq!(hub.route(), Some(Protocol::Mqtt));
        assert_eq!(&hub.take_plain()[..], b"\x10\x00");
    }

    #[test]
    fn port_443_routes_a_websocket_upgrade_for_amqp_and_keeps_frames_sent_with_it() {
        let mut request = upgrade_request("/$iothub/websocket", "AMQPWSB10");
        // The AMQP protocol header (AMQP core §2.2: "AMQP", id 0, 1.0.0) in a masked
        // binary frame, in the same write.
        request.extend(frame(0x82, b"AMQP\x00\x01\x00\x00", Some([1, 2, 3, 4])));
        let (result, answer, mut hub) = answer_on_443(&request);
        assert!(result.is_ok(), "{result:?}");
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert!(answer.contains("Sec-WebSocket-Protocol: AMQPWSB10\r\n"), "{answer}");
        assert_eq!(hub.route(), Some(Protocol::Amqp));
        assert_eq!(&hub.take_plain()[..], b"AMQP\x00\x01\x00\x00");
    }

    /// RFC 6455 §4.1 item 10: the client lists its subprotocols by preference; the
    /// server picks one it serves (§4.2.2), here the first of them.
    #[test]
    fn port_443_routes_an_upgrade_offering_both_to_the_clients_first_choice() {
        for (offered, route, answered) in [
            ("AMQPWSB10, mqtt", Protocol::Amqp, "AMQPWSB10"),
            ("mqtt, AMQPWSB10", Protocol::Mqtt, "mqtt"),
            ("chat, amqpwsb10, mqtt", Protocol::Amqp, "amqpwsb10"),
        ] {
            let (result, answer, hub) =
                answer_on_443(&upgrade_request("/$iothub/websocket", offered));
            assert!(result.is_ok(), "{offered}: {result:?}");
            let echoed = format!("Sec-WebSocket-Protocol: {answered}\r\n");
            assert!(answer.contains(&echoed), "{offered}: {answer}");
            assert_eq!(hub.route(), Some(route), "{offered}");
        }
        // A hub serving MQTT alone takes MQTT even when AMQP is preferred.
        let request = upgrade_request("/$iothub/websocket", "AMQPWSB10, mqtt");
        let (result, _, hub, _) = exchange_on_443(&request, &[Protocol::Mqtt]);
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(hub.route(), Some(Protocol::Mqtt));
    }

    #[test]
    fn port_443_refuses_what_it_does_not_serve_with_an_http_status() {
        let cases: [(&[u8], &[Protocol], &str); 5] = [
            (
                &upgrade_request("/$iothub/websocket", "AMQPWSB10"),
                &[Protocol::Mqtt],
                "HTTP/1.1 400",
            ),
            (&upgrade_request("/$iothub/websocket", "mqtt"), &[Protocol::Amqp], "HTTP/1.1 400"),
            (&upgrade_request("/elsewhere", "mqtt"), SERVES, "HTTP/1.1 404"),
            (
                b"GET /devices/d/messages/deviceBound HTTP/1.1\r\nHost: h\r\n\r\n",
                SERVES,
                "HTTP/1.1 404",
            ),
            (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\r\n\r\n", SERVES, "HTTP/1.1 400"),
        ];
        for (request, serves, status) in cases {
            let (result, answer, hub, device) = exchange_on_443(request, serves);
            assert!(device.is_closed(), "close_notify after the answer: {answer}");
            assert!(result.is_err(), "{answer}");
            assert!(answer.starts_with(status), "{:?}: {answer}", String::from_utf8_lossy(request));
            assert!(hub.is_closed());
            assert_eq!(hub.route(), None);
        }
    }

    /// Spec file §1, §6: port 443 serves IoT Hub's REST API beside the WebSocket
    /// transports; a request that is no upgrade goes to the HTTP session whole,
    /// body and a pipelined second request included.
    #[test]
    fn port_443_routes_a_rest_request_to_http_with_every_byte_after_it() {
        let request: &[u8] = b"POST /devices/d/messages/events?api-version=1 HTTP/1.1\r\n\
            Host: h\r\nContent-Length: 2\r\n\r\nhi\
            GET /devices/d/messages/deviceBound?api-version=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        let (result, answer, mut hub, _) = exchange_on_443(request, SERVES_ALL);
        assert!(result.is_ok() && answer.is_empty(), "{result:?} {answer}");
        assert_eq!(hub.route(), Some(Protocol::Http));
        assert!(hub.is_open());
        assert_eq!(&hub.take_plain()[..], request);
        // An upgrade still goes to its WebSocket.
        let (result, answer, hub, _) =
            exchange_on_443(&upgrade_request("/$iothub/websocket", "mqtt"), SERVES_ALL);
        assert!(result.is_ok() && answer.starts_with("HTTP/1.1 101"), "{answer}");
        assert_eq!(hub.route(), Some(Protocol::Mqtt));
    }

    #[test]
    fn port_443_answers_431_to_a_head_that_never_ends() {
        let mut endless = b"GET /$iothub/websocket HTTP/1.1\r\nX-Filler: ".to_vec();
        endless.resize(64 * 1024, b'a');
        let (result, answer, _) = answer_on_443(&endless);
        assert!(matches!(result, Err(StackError::Http(_))), "{result:?}");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }

    #[test]
    fn port_443_answers_408_and_close_notify_to_a_head_cut_short() {
        let (result, answer, mut hub, mut device) =
            exchange_on_443(b"GET /$iothub/websocket HTTP/1.1\r\nHo", SERVES);
        assert!(result.is_ok() && answer.is_empty(), "{result:?} {answer}");
        hub.close();
        shuttle(&mut hub, &mut device, 4096).expect("an answer and close_notify");
        let answer = String::from_utf8_lossy(&device.take_plain()).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(device.is_closed(), "close_notify arrived");
    }

    #[test]
    fn transport_names_round_trip_and_unknown_ones_are_refused() {
        for &transport in Transport::ALL {
            assert_eq!(transport.name().parse::<Transport>(), Ok(transport));
        }
        assert_eq!("MQTT-WS".parse::<Transport>(), Ok(Transport::MqttWs));
        assert_eq!("AMQP-WS".parse::<Transport>(), Ok(Transport::AmqpWs));
        assert_eq!("HTTP".parse::<Transport>(), Ok(Transport::Http));
        assert!("https".parse::<Transport>().is_err());
        assert_eq!(Transport::Http.websocket_fallback(), None);
        assert_eq!(Transport::Http.listener(), Listener::Web);
        assert_eq!(Transport::Http.default_port(), 443);
        assert!(Transport::Http.tls() && Transport::Http.websocket().is_none());
        assert!("amqps".parse::<Transport>().is_err());
        assert_eq!(Transport::Mqtt.websocket_fallback(), Some(Transport::MqttWs));
        assert_eq!(Transport::MqttWs.websocket_fallback(), None);
        assert_eq!(Transport::Amqp.websocket_fallback(), Some(Transport::AmqpWs));
        assert_eq!(Transport::AmqpTcp.websocket_fallback(), Some(Transport::AmqpWs));
        assert_eq!(Transport::AmqpWs.websocket_fallback(), None);
    }

    /// Spec file §1 and §5.1: AMQP is served on 5671 over TLS and on 443 over
    /// WebSocket with subprotocol `AMQPWSB10`; 5672 is the plain development port.
    #[test]
    fn amqp_transports_have_iothubs_ports_layers_and_listeners() {
        let cases = [
            (Transport::Amqp, 5671, true, None, Listener::Tls(Protocol::Amqp)),
            (Transport::AmqpWs, 443, true, Some(Subprotocol::Amqp), Listener::Web),
            (Transport::AmqpTcp, 5672, false, None, Listener::Tcp(Protocol::Amqp)),
        ];
        for (transport, port, tls, websocket, listener) in cases {
            assert_eq!(transport.protocol(), Protocol::Amqp, "{transport}");
            assert_eq!(transport.default_port(), port, "{transport}");
            assert_eq!(transport.tls(), tls, "{transport}");
            assert_eq!(transport.websocket(), websocket, "{transport}");
            assert_eq!(transport.listener(), listener, "{transport}");
        }
        assert_eq!(Transport::Mqtt.default_port(), 8883);
        assert_eq!(Transport::MqttTcp.default_port(), 1883);
        assert_eq!(Subprotocol::Amqp.token(), "AMQPWSB10");
    }
}
