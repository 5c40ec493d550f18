//! The SASL layer beneath the connection (AMQP 1.0 part 5 §5.3), in either role:
//! the SASL headers (§5.3.2, version negotiation as part 2 §2.2), then
//! `sasl-mechanisms`, `sasl-init` and `sasl-outcome` (§5.3.3), then the AMQP header
//! exchange as without SASL.
//!
//! hubwire's mechanisms need no challenge: ANONYMOUS and MSSBCBS ("authenticate
//! later by CBS", spec file §5.1), PLAIN with a SAS token as password, EXTERNAL
//! (the TLS client certificate). The server does not judge credentials: it hands
//! the `sasl-init` up as [`ConnectionEvent::SaslInit`] and its owner answers with
//! [`Connection::sasl_outcome`].

use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

use super::{Connection, ConnectionError, ConnectionEvent, Role, State};
use crate::amqp::frame::{Frame, FrameKind, FrameLimits};
use crate::amqp::performative::{AmqpError, Open, condition};
use crate::amqp::protocol_header::{ProtocolHeader, ProtocolId};
use crate::amqp::sasl::{
    ANONYMOUS, EXTERNAL, MSSBCBS, PLAIN, PlainResponse, SASL_MAX_FRAME_SIZE, SaslCode, SaslFrame,
};
use crate::amqp::types::{Limits, Symbol};
use crate::time::Timestamp;
use crate::utf8::Utf8Bytes;

/// The SASL frames this side accepts: at most [`SASL_MAX_FRAME_SIZE`] bytes.
pub(super) const FRAME_LIMITS: FrameLimits = FrameLimits { max_frame_size: SASL_MAX_FRAME_SIZE };

/// The most bytes a server holds unread after a `sasl-init` while its owner
/// decides: one SASL frame's bound. A client pipelining its AMQP header, `open`
/// and a few first frames (each at most 512 bytes before the `open`s, part 2
/// §2.4.1) stays well below it.
const MAX_HELD_INPUT: usize = SASL_MAX_FRAME_SIZE as usize;

/// The mechanism a client authenticates with (part 5 §5.3.3.2), and what its
/// `sasl-init` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslClient {
    /// `ANONYMOUS` (RFC 4505): no credentials; IoT Hub then expects CBS (spec file
    /// §5.1). The initial response, RFC 4505's optional trace, is empty.
    Anonymous,
    /// `PLAIN` (RFC 4616): for IoT Hub user `<deviceId>@sas.<hubName>` and a SAS
    /// token as password (spec file §5.1, TV-18). The initial response is
    /// `authzid NUL authcid NUL passwd`.
    Plain(PlainResponse),
    /// `EXTERNAL` (RFC 4422 appendix A): the identity the TLS client certificate
    /// proves; the initial response is empty (no authorization identity asked).
    External,
    /// `MSSBCBS`: the C SDK's "authenticate later by CBS" (spec file §5.1); the
    /// initial response is empty.
    MssbCbs,
}

impl SaslClient {
    /// The mechanism's name as `sasl-init` carries it.
    pub fn mechanism(&self) -> Symbol {
        match self {
            SaslClient::Anonymous => ANONYMOUS,
            SaslClient::Plain(_) => PLAIN,
            SaslClient::External => EXTERNAL,
            SaslClient::MssbCbs => MSSBCBS,
        }
    }

    /// The `sasl-init`'s initial-response (§5.3.3.2).
    fn initial_response(&self) -> Bytes {
        match self {
            SaslClient::Plain(plain) => plain.to_bytes(),
            SaslClient::Anonymous | SaslClient::External | SaslClient::MssbCbs => Bytes::new(),
        }
    }
}

/// What a server's SASL layer offers (part 5 §5.3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslServer {
    /// The mechanisms offered, in decreasing preference (§5.3.3.1), e.g.
    /// `MSSBCBS`, `ANONYMOUS`, `PLAIN` (spec file §5.1's emulator guidance). Empty
    /// means no SASL layer: the server is then [`Connection::server`], since an
    /// empty `sasl-mechanisms` list is invalid (§5.3.3.1).
    pub mechanisms: Vec<Symbol>,
    /// Whether a client must authenticate. When false a client may skip SASL with
    /// the plain AMQP header, as IoT Hub's Node and .NET SDKs do (spec file §5.1);
    /// when true that header is answered with the SASL header and the transport
    /// closes (part 2 §2.2, figure 2.13).
    pub required: bool,
}

/// The SASL layer a connection still runs.
#[derive(Debug)]
pub(super) enum SaslLayer {
    Client(SaslClient),
    Server(SaslServer),
}

/// Where a SASL exchange is (part 5 §5.3.2, figure 5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SaslStep {
    /// Client: waiting for `sasl-mechanisms`.
    Mechanisms,
    /// Client: `sasl-init` sent, waiting for `sasl-outcome`; the AMQP header is not
    /// pipelined behind the `sasl-init` (Qpid Proton's client waits too), as a
    /// failed outcome would make it useless.
    Outcome,
    /// Server: header and `sasl-mechanisms` sent, waiting for `sasl-init`.
    Init,
    /// Server: [`ConnectionEvent::SaslInit`] raised, waiting for
    /// [`Connection::sasl_outcome`]; input is held unread.
    Deciding,
}

impl SaslStep {
    fn waiting_for(self) -> &'static str {
        match self {
            SaslStep::Mechanisms => "while waiting for sasl-mechanisms",
            SaslStep::Outcome => "while waiting for sasl-outcome",
            SaslStep::Init => "while waiting for sasl-init",
            SaslStep::Deciding => "before the SASL outcome",
        }
    }
}

/// The error a connection refused by SASL ends with, for
/// [`ConnectionEvent::Closed`]: `amqp:unauthorized-access` for every failure code
/// (§2.8.15: access denied "due to security settings"), the code in the description.
fn refusal(code: SaslCode) -> AmqpError {
    AmqpError::new(
        condition::UNAUTHORIZED_ACCESS,
        Some(Utf8Bytes::from(alloc::format!(
            "SASL outcome {} (AMQP 1.0 part 5 §5.3.3.6)",
            code.name()
        ))),
    )
}

impl Connection {
    /// A client on a transport that has just opened at `now` that authenticates
    /// with `mechanism` first (part 5 §5.3): queues the SASL header only. Once the
    /// server's `sasl-mechanisms` arrive it sends `sasl-init` (hostname:
    /// `local.hostname`); on outcome `ok` the AMQP header and `local` follow as for
    /// [`Connection::client`]. A server not offering `mechanism` ends the
    /// connection ([`ConnectionError::SaslMechanismNotOffered`]); another is never
    /// tried.
    pub fn client_with_sasl(local: Open, now: Timestamp, mechanism: SaslClient) -> Connection {
        let mut connection = Connection::new(Role::Client, local, now);
        connection.sasl = Some(SaslLayer::Client(mechanism));
        connection.send_header(ProtocolHeader::SASL);
        connection
    }

    /// A server on a transport it accepted at `now` with a SASL layer (part 5
    /// §5.3): a client's SASL header is answered with the SASL header and
    /// `sasl-mechanisms`, its `sasl-init` raised as [`ConnectionEvent::SaslInit`];
    /// a plain AMQP header is accepted unless `sasl.required`. `local` as for
    /// [`Connection::client`].
    pub fn server_with_sasl(local: Open, now: Timestamp, sasl: SaslServer) -> Connection {
        let mut connection = Connection::new(Role::Server, local, now);
        if !sasl.mechanisms.is_empty() {
            connection.sasl = Some(SaslLayer::Server(sasl));
        }
        connection
    }

    /// Server: the owner's verdict on the [`ConnectionEvent::SaslInit`] at `now`
    /// (part 5 §5.3.3.5). Does nothing unless that event awaits its answer.
    ///
    /// - [`SaslCode::Ok`]: sends `sasl-outcome` with `additional_data`, then reads
    ///   the bytes held since the `sasl-init` (the client's AMQP header, perhaps its
    ///   `open`) as if they arrived now.
    /// - Any other code: sends `sasl-outcome` without additional data ("If the
    ///   authentication is unsuccessful, this field is not set", §5.3.3.5), drops
    ///   the held bytes, and closes the transport after it:
    ///   [`ConnectionEvent::Closed`] with `amqp:unauthorized-access`.
    ///
    /// # Errors
    ///
    /// [`ConnectionError`]: the held bytes broke the protocol; the close is queued.
    pub fn sasl_outcome(
        &mut self,
        now: Timestamp,
        code: SaslCode,
        additional_data: Option<Bytes>,
    ) -> Result<(), ConnectionError> {
        if self.state != State::Sasl(SaslStep::Deciding) {
            return Ok(());
        }
        if code != SaslCode::Ok {
            self.write_sasl(now, &SaslFrame::Outcome { code, additional_data: None });
            self.recv.clear();
            self.end(false, Some(refusal(code)));
            return Ok(());
        }
        self.write_sasl(now, &SaslFrame::Outcome { code, additional_data });
        // §5.3.3.5: "the peers MUST exchange protocol headers" next, AMQP's only.
        self.sasl = None;
        self.state = State::AwaitingHeader;
        self.process(now)
    }

    /// The layers a server accepts in the client's header, preferred first
    /// (part 2 §2.2): SASL (alone when required) until its outcome, then AMQP.
    pub(super) fn accepted_layers(&self) -> &'static [ProtocolId] {
        match &self.sasl {
            Some(SaslLayer::Server(s)) if s.required => &[ProtocolId::Sasl],
            Some(SaslLayer::Server(_)) => &[ProtocolId::Sasl, ProtocolId::Amqp],
            _ => &[ProtocolId::Amqp],
        }
    }

    /// The SASL headers are exchanged: a server offers its mechanisms (§5.3.2).
    pub(super) fn start_sasl(&mut self, now: Timestamp) {
        match &self.sasl {
            Some(SaslLayer::Server(server)) => {
                let offer = SaslFrame::Mechanisms(server.mechanisms.clone());
                self.write_sasl(now, &offer);
                self.state = State::Sasl(SaslStep::Init);
            }
            _ => self.state = State::Sasl(SaslStep::Mechanisms),
        }
    }

    /// Server deciding: the bytes stay unread, up to [`MAX_HELD_INPUT`].
    pub(super) fn hold_input(&self) -> Result<(), ConnectionError> {
        if self.recv.len() > MAX_HELD_INPUT {
            return Err(ConnectionError::SaslHeldInputTooLarge {
                len: self.recv.len(),
                max: MAX_HELD_INPUT,
            });
        }
        Ok(())
    }

    /// A frame in the SASL layer. Its channel bytes are ignored (§5.3.1).
    pub(super) fn on_sasl_frame(
        &mut self,
        now: Timestamp,
        step: SaslStep,
        frame: Frame,
    ) -> Result<(), ConnectionError> {
        if frame.kind != FrameKind::Sasl {
            return Err(ConnectionError::AmqpFrameBeforeSaslOutcome);
        }
        let limits = Limits { max_size: SASL_MAX_FRAME_SIZE as usize, ..Limits::default() };
        let received = SaslFrame::decode(&frame.body, &limits)?;
        match (step, received) {
            (SaslStep::Mechanisms, SaslFrame::Mechanisms(offered)) => {
                let Some(SaslLayer::Client(client)) = &self.sasl else {
                    return Err(unexpected("sasl-mechanisms", step));
                };
                let mechanism = client.mechanism();
                if !offered.contains(&mechanism) {
                    return Err(ConnectionError::SaslMechanismNotOffered { mechanism, offered });
                }
                let init = SaslFrame::Init {
                    mechanism,
                    initial_response: Some(client.initial_response()),
                    hostname: self.local.hostname.clone(),
                };
                self.write_sasl(now, &init);
                self.state = State::Sasl(SaslStep::Outcome);
            }
            (SaslStep::Outcome, SaslFrame::Outcome { code, additional_data }) => {
                self.events.push_back(ConnectionEvent::SaslOutcome { code, additional_data });
                if code != SaslCode::Ok {
                    self.recv.clear();
                    self.end(true, Some(refusal(code)));
                    return Ok(());
                }
                self.sasl = None;
                self.send_header(ProtocolHeader::AMQP);
                self.send_open(now);
                self.state = State::AwaitingHeader;
            }
            (SaslStep::Init, SaslFrame::Init { mechanism, initial_response, hostname }) => {
                let offered = match &self.sasl {
                    Some(SaslLayer::Server(server)) => server.mechanisms.as_slice(),
                    _ => &[],
                };
                if !offered.contains(&mechanism) {
                    let offered = offered.to_vec();
                    let refuse = SaslFrame::Outcome { code: SaslCode::Auth, additional_data: None };
                    self.write_sasl(now, &refuse);
                    return Err(ConnectionError::SaslMechanismNotOffered { mechanism, offered });
                }
                self.events.push_back(ConnectionEvent::SaslInit {
                    mechanism,
                    initial_response,
                    hostname,
                });
                self.state = State::Sasl(SaslStep::Deciding);
            }
            (_, other) => return Err(unexpected(other.name(), step)),
        }
        Ok(())
    }

    /// Sends a SASL frame (§5.3.1: TYPE 0x01, channel bytes 0). Ours stay far below
    /// 512 bytes but for a PLAIN `sasl-init` with a long token, which is sent
    /// anyway, as no smaller one exists, and the server decides.
    fn write_sasl(&mut self, now: Timestamp, frame: &SaslFrame) {
        let mut body = BytesMut::new();
        // SASL frames hold no value near 4 GiB: they always encode.
        if frame.encode(&mut body).is_err() {
            return;
        }
        let frame = Frame { kind: FrameKind::Sasl, body: body.freeze() };
        let unlimited = FrameLimits { max_frame_size: u32::MAX };
        if frame.encode(&unlimited, self.outbox.buffer()).is_ok() {
            self.last_sent = now;
        }
    }
}

fn unexpected(frame: &'static str, step: SaslStep) -> ConnectionError {
    ConnectionError::SaslUnexpected { frame, when: step.waiting_for() }
}

#[cfg(test)]
mod tests;
