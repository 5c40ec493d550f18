//! Replays a transcript recorded by `hubwire hub --record`
//! ([`hubwire_runtime::transcript`]) in both roles.
//!
//! Hub role ([`replay_hub`]): a new [`Hub`] with the recorded seed, configuration
//! and registry gets every recorded call at its recorded time, and what it sends
//! each connection must be the recorded bytes, byte for byte, and come no earlier
//! and no later (before the next recorded call that is not a store
//! acknowledgement or a close: the runtime acknowledges a turn's telemetry
//! together, then reads the answers, and closes a connection whose transport ended
//! in the bytes it just gave before reading the answer to them). The recorded closes must happen too, and only they.
//!
//! Device role ([`replay_device`]): the recorded hub→client stream of every
//! connection is read with hubwire's device-side decoders, and whatever they have
//! an encoder for is written again and must give the same bytes.
//!
//! It lives in the conformance crate, beside the tests that use it, because it is
//! a test oracle: it panics on nothing, but it reports differences in words meant
//! for people, which no runtime needs; the format it reads is the runtime's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use hubwire_core::amqp::frame::{self, Frame, FrameKind, FrameLimits};
use hubwire_core::amqp::performative::Performative;
use hubwire_core::amqp::protocol_header::ProtocolHeader;
use hubwire_core::amqp::sasl::SaslFrame;
use hubwire_core::hub::{Hub, HubEvent, StoreTicket};
use hubwire_core::iothub::{ErrorCode, Message};
use hubwire_core::{ConnectionId, Endpoint, Protocol, Transmit, http, mqtt};
use hubwire_runtime::transcript::{Entry, Transcript};

/// What a replay checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Connections replayed.
    pub connections: usize,
    /// Hub→client bytes compared (hub role) or decoded (device role).
    pub bytes: usize,
    /// Units decoded and written again (device role: packets, frames, heads).
    pub units: usize,
}

/// What the replayed hub has said to one connection and the transcript has not
/// matched yet.
#[derive(Debug, Default)]
struct Said {
    bytes: Vec<u8>,
    closed: bool,
    /// Bytes of this connection matched so far: the offset of `bytes` in its stream.
    matched: usize,
}

/// Replays `transcript` against a new hub (see the module documentation).
///
/// Errors: the first difference, in words: the transcript line, the connection,
/// the offset in its hub→client stream, the bytes around it and both sides decoded.
pub fn replay_hub(transcript: &Transcript) -> Result<Checked, String> {
    let header = &transcript.header;
    let mut hub = Hub::new(header.config(), header.seed);
    for device in &header.devices {
        hub.registry_mut().add(device.clone()).map_err(|e| format!("registry: {e}"))?;
    }
    let mut protocols = BTreeMap::new();
    let mut said: BTreeMap<ConnectionId, Said> = BTreeMap::new();
    let mut tickets = BTreeSet::new();
    let mut checked = Checked::default();
    for event in &transcript.events {
        let (now, line) = (event.at, event.line);
        let mut listen = |hub: &mut Hub, said: &mut BTreeMap<ConnectionId, Said>| {
            hear(hub, said, &mut tickets);
        };
        let quiet = |said: &BTreeMap<ConnectionId, Said>| quiet(said, &protocols, line);
        match &event.entry {
            Entry::Accept(c, protocol) => {
                listen(&mut hub, &mut said);
                quiet(&said)?;
                let id = hub.accept(now, *protocol);
                if id != *c {
                    return Err(format!("line {line}: the hub named the connection {id}, not {c}"));
                }
                protocols.insert(*c, *protocol);
                checked.connections += 1;
            }
            Entry::In(c, bytes) => {
                listen(&mut hub, &mut said);
                quiet(&said)?;
                // A protocol violation is answered (closed) by the engine: the
                // transcript holds the answer.
                let _ = hub.handle_input(now, *c, bytes);
            }
            Entry::Close(c) => {
                // Not heard first: the runtime closes a connection whose transport
                // ended in the bytes just given before it reads the engine's answer,
                // which the engine then drops, as it drops it here.
                hub.handle_close(now, *c);
            }
            Entry::Timeout => {
                listen(&mut hub, &mut said);
                quiet(&said)?;
                hub.handle_timeout(now);
            }
            Entry::C2d(device, message) => {
                listen(&mut hub, &mut said);
                quiet(&said)?;
                // Refusals are the hub's answer to the service side, not to a device.
                let _ = hub.send_c2d(now, device, Message::clone(message));
            }
            Entry::Stored(ticket) | Entry::Refused(ticket, _) => {
                listen(&mut hub, &mut said);
                if !tickets.remove(ticket) {
                    return Err(format!(
                        "line {line}: the hub never asked to store telemetry ticket {ticket}"
                    ));
                }
                match event.entry {
                    Entry::Refused(_, code) if code != ErrorCode::SERVER_ERROR.code => {
                        return Err(format!("line {line}: replay refuses with 500001 only"));
                    }
                    Entry::Refused(..) => {
                        hub.telemetry_refused(now, StoreTicket(*ticket), ErrorCode::SERVER_ERROR);
                    }
                    _ => hub.telemetry_stored(now, StoreTicket(*ticket)),
                }
            }
            Entry::Unrecorded(what) => {
                return Err(format!("line {line}: the run did {what}, which replay cannot do"));
            }
            Entry::Out(c, expected) => {
                listen(&mut hub, &mut said);
                let protocol = protocols.get(c).copied();
                let said = said.entry(*c).or_default();
                let prefix = said.bytes.get(..expected.len());
                if prefix != Some(&expected[..]) {
                    let got = said.bytes.get(..expected.len().min(said.bytes.len()));
                    let got = got.unwrap_or_default();
                    return Err(difference(line, *c, protocol, said.matched, expected, got));
                }
                said.bytes.drain(..expected.len());
                said.matched += expected.len();
                checked.bytes += expected.len();
            }
            Entry::Closed(c) => {
                listen(&mut hub, &mut said);
                let said = said.entry(*c).or_default();
                if !said.bytes.is_empty() || !said.closed {
                    return Err(format!(
                        "line {line}: the hub did not close connection {c} after {} bytes, as \
                         recorded (unmatched: {} bytes, closed: {})",
                        said.matched,
                        said.bytes.len(),
                        said.closed
                    ));
                }
                said.closed = false;
            }
        }
    }
    hear(&mut hub, &mut said, &mut tickets);
    let end = transcript.events.last().map_or(0, |e| e.line + 1);
    quiet(&said, &protocols, end)?;
    Ok(checked)
}

/// Takes what the hub has sent and asked since the last call.
fn hear(hub: &mut Hub, said: &mut BTreeMap<ConnectionId, Said>, tickets: &mut BTreeSet<u64>) {
    while let Some((c, transmit)) = hub.poll_transmit() {
        let said = said.entry(c).or_default();
        match transmit {
            Transmit::Send(bytes) => said.bytes.extend_from_slice(&bytes),
            Transmit::Close => said.closed = true,
            Transmit::Connect => {}
        }
    }
    while let Some(event) = hub.poll_event() {
        if let HubEvent::StoreTelemetry { ticket, .. } = event {
            tickets.insert(ticket.0);
        }
    }
}

/// Fails when the hub has said what the transcript has not, before `line`.
fn quiet(
    said: &BTreeMap<ConnectionId, Said>,
    protocols: &BTreeMap<ConnectionId, Protocol>,
    line: usize,
) -> Result<(), String> {
    for (c, said) in said {
        if !said.bytes.is_empty() {
            let protocol = protocols.get(c).copied();
            return Err(format!(
                "before line {line}: the hub sent connection {c} {} bytes more than recorded, at \
                 offset {}: {}",
                said.bytes.len(),
                said.matched,
                describe(protocol, &said.bytes)
            ));
        }
        if said.closed {
            return Err(format!("before line {line}: the hub closed connection {c}, unrecorded"));
        }
    }
    Ok(())
}

/// A difference between recorded and replayed hub→client bytes, in words.
fn difference(
    line: usize,
    c: ConnectionId,
    protocol: Option<Protocol>,
    matched: usize,
    expected: &[u8],
    got: &[u8],
) -> String {
    let at = expected.iter().zip(got).position(|(a, b)| a != b).unwrap_or(got.len());
    let window = |b: &[u8]| {
        let from = at.saturating_sub(16);
        let to = (at + 16).min(b.len());
        b.get(from..to).map(hex).unwrap_or_default()
    };
    let mut words = format!(
        "line {line}: connection {c}: the hub's bytes differ at offset {} of its stream ({at} \
         into this chunk; {} bytes recorded, {} replayed)\n",
        matched + at,
        expected.len(),
        got.len()
    );
    let _ =
        writeln!(words, "  recorded, from offset {}: {}", at.saturating_sub(16), window(expected));
    let _ = writeln!(words, "  replayed, from offset {}: {}", at.saturating_sub(16), window(got));
    let _ = writeln!(words, "  recorded decoded: {}", describe(protocol, expected));
    let _ = write!(words, "  replayed decoded: {}", describe(protocol, got));
    words
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hub→client bytes as their protocol's units, for people; at most 2000 characters.
fn describe(protocol: Option<Protocol>, bytes: &[u8]) -> String {
    let mut words = String::new();
    let mut buf = BytesMut::from(bytes);
    match protocol {
        Some(Protocol::Mqtt) => {
            while let Ok(Some(packet)) = mqtt::codec::decode(&mut buf, &mqtt::Limits::default()) {
                let _ = write!(words, "{packet:?}; ");
            }
        }
        Some(Protocol::Amqp) => {
            while let Ok(Some(unit)) = amqp_unit(&mut buf) {
                let _ = write!(words, "{unit}; ");
            }
        }
        _ => words.push_str(&String::from_utf8_lossy(bytes)),
    }
    if !buf.is_empty() && protocol != Some(Protocol::Http) {
        let _ = write!(words, "then {} bytes that do not decode", buf.len());
    }
    let mut end = words.len().min(2000);
    while !words.is_char_boundary(end) {
        end -= 1;
    }
    words.truncate(end);
    words
}

/// The largest AMQP frame the device role reads: the hub announces no more.
const NO_FRAME_LIMIT: FrameLimits = FrameLimits { max_frame_size: u32::MAX };

/// One AMQP protocol header or frame from the front of `buf`, decoded, written
/// again and compared with its bytes; in words.
///
/// Errors: the unit does not decode, or is written differently, in words.
fn amqp_unit(buf: &mut BytesMut) -> Result<Option<String>, String> {
    if buf.starts_with(b"AMQP") {
        let raw = buf.get(..8).map(<[u8]>::to_vec).unwrap_or_default();
        let header = ProtocolHeader::decode(buf).map_err(|e| e.to_string())?;
        let Some(header) = header else { return Ok(None) };
        let mut again = BytesMut::new();
        header.encode(&mut again);
        same("protocol header", &raw, &again)?;
        return Ok(Some(format!("{header:?}")));
    }
    let before = Bytes::copy_from_slice(buf);
    let Some(frame) = frame::decode(buf, &NO_FRAME_LIMIT).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let raw = before.slice(..before.len() - buf.len());
    let mut again = BytesMut::new();
    frame.encode(&NO_FRAME_LIMIT, &mut again).map_err(|e| e.to_string())?;
    same("frame", &raw, &again)?;
    let limits = hubwire_core::amqp::types::Limits::default();
    let Frame { kind, body } = frame;
    if body.is_empty() {
        return Ok(Some(String::from("heartbeat")));
    }
    let mut again = BytesMut::new();
    let words = match kind {
        FrameKind::Sasl => {
            let sasl = SaslFrame::decode(&body, &limits).map_err(|e| e.to_string())?;
            sasl.encode(&mut again).map_err(|e| e.to_string())?;
            format!("{sasl:?}")
        }
        _ => {
            let (performative, payload) =
                Performative::decode(&body, &limits).map_err(|e| e.to_string())?;
            performative.encode(&mut again).map_err(|e| e.to_string())?;
            again.extend_from_slice(&payload);
            format!("{performative:?} + {} payload bytes", payload.len())
        }
    };
    same("frame body", &body, &again)?;
    Ok(Some(words))
}

/// Fails when bytes written again differ from the bytes read.
fn same(what: &str, read: &[u8], written: &[u8]) -> Result<(), String> {
    if read == written {
        return Ok(());
    }
    let at = read.iter().zip(written).position(|(a, b)| a != b).unwrap_or(read.len());
    Err(format!(
        "a {what} written again differs at byte {at}: read {}, written {}",
        hex(read),
        hex(written)
    ))
}

/// Reads every connection's recorded hub→client stream with the device-side
/// decoders of its protocol (see the module documentation).
///
/// Errors: the first unit that does not decode, does not end where the next
/// begins, or is written again differently, in words.
pub fn replay_device(transcript: &Transcript) -> Result<Checked, String> {
    let mut streams: BTreeMap<ConnectionId, (Protocol, Vec<u8>, Vec<u8>)> = BTreeMap::new();
    for event in &transcript.events {
        match &event.entry {
            Entry::Accept(c, protocol) => {
                streams.insert(*c, (*protocol, Vec::new(), Vec::new()));
            }
            Entry::In(c, bytes) => {
                if let Some((_, requests, _)) = streams.get_mut(c) {
                    requests.extend_from_slice(bytes);
                }
            }
            Entry::Out(c, bytes) => {
                if let Some((_, _, answers)) = streams.get_mut(c) {
                    answers.extend_from_slice(bytes);
                }
            }
            _ => {}
        }
    }
    let mut checked = Checked::default();
    for (c, (protocol, requests, answers)) in &streams {
        let units = match protocol {
            Protocol::Mqtt => mqtt_units(answers),
            Protocol::Amqp => {
                let mut buf = BytesMut::from(&answers[..]);
                let mut units = 0;
                loop {
                    match amqp_unit(&mut buf) {
                        Ok(Some(_)) => units += 1,
                        Ok(None) if buf.is_empty() => break Ok(units),
                        Ok(None) => break Err(format!("{} bytes of a unit left", buf.len())),
                        Err(e) => break Err(e),
                    }
                }
            }
            Protocol::Http => http_units(requests, answers),
            other => Err(format!("no device-side decoders for {other}")),
        };
        let units = units.map_err(|e| format!("connection {c} ({protocol}): {e}"))?;
        checked.connections += 1;
        checked.bytes += answers.len();
        checked.units += units;
    }
    Ok(checked)
}

/// MQTT packets, each decoded and encoded again.
fn mqtt_units(answers: &[u8]) -> Result<usize, String> {
    let mut buf = BytesMut::from(answers);
    let mut units = 0;
    while !buf.is_empty() {
        let before = buf.len();
        let offset = answers.len() - before;
        let packet = match mqtt::codec::decode(&mut buf, &mqtt::Limits::default()) {
            Ok(Some(packet)) => packet,
            Ok(None) => return Err(format!("a packet at offset {offset} is cut short")),
            Err(e) => return Err(format!("the packet at offset {offset}: {e}")),
        };
        let raw = answers.get(offset..answers.len() - buf.len()).unwrap_or_default();
        let mut again = BytesMut::new();
        packet.encode(&mut again).map_err(|e| e.to_string())?;
        same(&format!("packet at offset {offset} ({packet:?})"), raw, &again)?;
        units += 1;
    }
    Ok(units)
}

/// HTTP responses, each head parsed and written again, its body read to its end
/// as the method of the request it answers says.
fn http_units(requests: &[u8], answers: &[u8]) -> Result<usize, String> {
    let mut methods = Vec::new();
    let mut buf = BytesMut::from(requests);
    while let Ok(Some((head, used))) = http::parse_request(&buf, &http::Limits::default()) {
        let _ = buf.split_to(used);
        let mut body = http::BodyDecoder::for_request(&head, &http::BodyLimits::default())
            .map_err(|e| format!("request body: {e}"))?;
        if body.decode(&mut buf).map_err(|e| e.to_string())?.is_none() {
            break;
        }
        methods.push(head.method);
    }
    let mut buf = BytesMut::from(answers);
    let mut units = 0;
    for method in methods {
        if buf.is_empty() {
            break;
        }
        let offset = answers.len() - buf.len();
        let (head, used) = match http::parse_response(&buf, &http::Limits::default()) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Err(format!("the response at offset {offset} is cut short")),
            Err(e) => return Err(format!("the response at offset {offset}: {e}")),
        };
        let raw = buf.split_to(used);
        let mut again = BytesMut::new();
        head.encode(&mut again);
        same(&format!("response head at offset {offset}"), &raw, &again)?;
        let mut body = http::BodyDecoder::for_response(&head, &method, &Default::default())
            .map_err(|e| format!("the response at offset {offset}: {e}"))?;
        if body.decode(&mut buf).map_err(|e| e.to_string())?.is_none() {
            return Err(format!("the body of the response at offset {offset} is cut short"));
        }
        units += 1;
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes after the last response", buf.len()));
    }
    Ok(units)
}
