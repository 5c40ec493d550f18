//! Transcripts: a line-per-event record of what a [`ServedHub`](crate::ServedHub)'s
//! engine heard and said, written while a hub serves real peers and read back to
//! replay the engine byte for byte (conformance/tests/transcripts.rs).
//!
//! The engine is deterministic given its seed, its registry and the times of its
//! calls, so a transcript holds exactly those, and every call the runtime made on
//! it, in order. It records the engine, not the sockets: the bytes are each
//! connection's protocol bytes below TLS and WebSocket, so MQTT over WebSocket reads
//! as MQTT.
//!
//! The format, UTF-8 text, one item per line; `#` lines are comments:
//!
//! ```text
//! hubwire-transcript 1
//! seed 1234                     the seed of Hub::new
//! start-ms 1764483246123        the time of the header, ms since the Unix epoch
//! host-name 127.0.0.31          HubConfig::host_names, one line each, in order
//! max-cbs-tokens 1000           HubConfig::max_cbs_tokens
//! device {"device_id":…}        one registered DeviceRecord (JSON) per line
//! events
//! 12 accept 0 MQTT              ms since start-ms, then the call or the output:
//! 12 in 0 101e0004…             bytes from connection 0's client (hex)
//! 12 out 0 20020000             bytes the engine sent it (hex)
//! 15 stored 0                   telemetry ticket 0 acknowledged as stored
//! 15 refused 0 500001           … or refused with this IoT Hub error code
//! 20 c2d dev1 {"body":[…],…}    the service side queued a C2D message (JSON)
//! 30 timeout                    the engine's timers were run
//! 40 close 0                    the client closed (or broke) its connection
//! 40 closed 0                   the engine closed it
//! 50 unrecorded update-desired  a service call the format does not carry: the
//!                               transcript cannot be replayed past it
//! ```
//!
//! Connections are the engine's [`ConnectionId`]s. One transcript covers a whole
//! run, every connection interleaved, because the engine's state (C2D queues, the
//! rng behind lock tokens, tickets) crosses connections.

use std::fmt;
use std::io::Write;

use bytes::Bytes;
use hubwire_core::hub::{DeviceRecord, HubConfig};
use hubwire_core::iothub::Message;
use hubwire_core::{ConnectionId, Protocol, Timestamp};

/// The first line of every transcript, naming the format's version.
const MAGIC: &str = "hubwire-transcript 1";

/// The line between the header and the events.
const EVENTS: &str = "events";

/// What a transcript starts with: everything [`Hub::new`](hubwire_core::hub::Hub::new)
/// and its registry need to be the engine that was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The engine's seed.
    pub seed: u64,
    /// When recording began; every event's time counts from it.
    pub start: Timestamp,
    /// [`HubConfig::host_names`].
    pub host_names: Vec<String>,
    /// [`HubConfig::max_cbs_tokens`].
    pub max_cbs_tokens: usize,
    /// The registry when recording began.
    pub devices: Vec<DeviceRecord>,
}

impl Header {
    /// The configuration the recorded hub ran with: its recorded values, the
    /// defaults for the rest (which `hubwire hub` does not change).
    pub fn config(&self) -> HubConfig {
        HubConfig {
            host_names: self.host_names.clone(),
            max_cbs_tokens: self.max_cbs_tokens,
            ..HubConfig::default()
        }
    }
}

/// One call on the engine, or one thing it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// [`Hub::accept`](hubwire_core::hub::Hub): a connection whose protocol is known.
    Accept(ConnectionId, Protocol),
    /// Protocol bytes the client sent.
    In(ConnectionId, Bytes),
    /// Protocol bytes the engine sent (one [`hubwire_core::Transmit::Send`]).
    Out(ConnectionId, Bytes),
    /// The client closed its connection, or it broke.
    Close(ConnectionId),
    /// The engine closed the connection ([`hubwire_core::Transmit::Close`]).
    Closed(ConnectionId),
    /// The engine's timers ran.
    Timeout,
    /// The service side queued a C2D message for a device.
    C2d(String, Box<Message>),
    /// A telemetry ticket was acknowledged as stored.
    Stored(u64),
    /// A telemetry ticket was refused with this IoT Hub error code.
    Refused(u64, u32),
    /// A call this format does not carry, by name.
    Unrecorded(String),
}

/// Writes a transcript as the hub runs: the [`Header`] when made, then each
/// [`Entry`] as it happens. Write errors stop the recording and are reported once.
pub struct Recorder {
    to: Box<dyn Write + Send>,
    start: Timestamp,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder").field("start", &self.start).finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts a transcript on `to` with `header`. Give a line-buffered writer
    /// (`LineWriter`): whatever is written survives the hub being killed.
    ///
    /// Errors: `to`'s.
    pub fn new(mut to: Box<dyn Write + Send>, header: &Header) -> std::io::Result<Recorder> {
        writeln!(to, "{MAGIC}")?;
        writeln!(to, "seed {}", header.seed)?;
        writeln!(to, "start-ms {}", header.start.as_millis())?;
        for name in &header.host_names {
            writeln!(to, "host-name {name}")?;
        }
        writeln!(to, "max-cbs-tokens {}", header.max_cbs_tokens)?;
        for device in &header.devices {
            writeln!(
                to,
                "device {}",
                serde_json::to_string(device).map_err(std::io::Error::other)?
            )?;
        }
        writeln!(to, "{EVENTS}")?;
        Ok(Recorder { to, start: header.start })
    }

    /// Writes `entry`, which happened at `now`.
    ///
    /// Errors: the writer's.
    pub fn write(&mut self, now: Timestamp, entry: &Entry) -> std::io::Result<()> {
        let at = now.saturating_duration_since(self.start).as_millis();
        writeln!(self.to, "{at} {entry}")
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Accept(c, protocol) => write!(f, "accept {} {protocol}", c.0),
            Entry::In(c, bytes) => write!(f, "in {} {}", c.0, Hex(bytes)),
            Entry::Out(c, bytes) => write!(f, "out {} {}", c.0, Hex(bytes)),
            Entry::Close(c) => write!(f, "close {}", c.0),
            Entry::Closed(c) => write!(f, "closed {}", c.0),
            Entry::Timeout => f.write_str("timeout"),
            Entry::C2d(device, message) => {
                let json = serde_json::to_string(message).map_err(|_| fmt::Error)?;
                write!(f, "c2d {device} {json}")
            }
            Entry::Stored(ticket) => write!(f, "stored {ticket}"),
            Entry::Refused(ticket, code) => write!(f, "refused {ticket} {code}"),
            Entry::Unrecorded(what) => write!(f, "unrecorded {what}"),
        }
    }
}

/// Bytes as lower-case hex, two digits a byte.
struct Hex<'b>(&'b [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A transcript read back: its header and its events, each with its time and the
/// line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The engine as it started.
    pub header: Header,
    /// Every event in order.
    pub events: Vec<Event>,
}

/// One [`Entry`] of a transcript, where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub entry: Entry,
    /// Its line in the file, from 1.
    pub line: usize,
}

/// Why a transcript could not be read: the line, from 1, and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transcript line {line}: {problem}")]
pub struct ParseError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl Transcript {
    /// Reads a transcript written by [`Recorder`], `#` comment lines and blank
    /// lines skipped.
    ///
    /// Errors: the first line that is not what the format says.
    pub fn parse(text: &str) -> Result<Transcript, ParseError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let fail = |line: usize, problem: &str| ParseError { line, problem: problem.to_owned() };
        match lines.next() {
            Some((_, MAGIC)) => {}
            Some((line, _)) => return Err(fail(line, "not a hubwire-transcript 1")),
            None => return Err(fail(0, "empty")),
        }
        let mut header = Header {
            seed: 0,
            start: Timestamp::EPOCH,
            host_names: Vec::new(),
            max_cbs_tokens: HubConfig::default().max_cbs_tokens,
            devices: Vec::new(),
        };
        let mut start_ms = None;
        let mut ended = false;
        for (line, text) in lines.by_ref() {
            if text == EVENTS {
                ended = true;
                break;
            }
            let (key, value) = text.split_once(' ').ok_or_else(|| fail(line, "no value"))?;
            let number = |v: &str| v.parse::<u64>().map_err(|_| fail(line, "not a number"));
            match key {
                "seed" => header.seed = number(value)?,
                "start-ms" => start_ms = Some(number(value)?),
                "host-name" => header.host_names.push(value.to_owned()),
                "max-cbs-tokens" => {
                    header.max_cbs_tokens =
                        value.parse().map_err(|_| fail(line, "not a number"))?;
                }
                "device" => header.devices.push(
                    serde_json::from_str(value)
                        .map_err(|e| fail(line, &format!("device record: {e}")))?,
                ),
                _ => return Err(fail(line, "unknown header item")),
            }
        }
        if !ended {
            return Err(fail(0, "no `events` line"));
        }
        let start = Timestamp::from_millis(start_ms.ok_or_else(|| fail(0, "no start-ms"))?);
        header.start = start;
        let events = lines
            .map(|(line, text)| {
                let (at, entry) = text.split_once(' ').ok_or_else(|| fail(line, "no event"))?;
                let at = at.parse::<u64>().map_err(|_| fail(line, "the time is not a number"))?;
                let entry = parse_entry(entry).map_err(|problem| fail(line, &problem))?;
                Ok(Event { at: Timestamp::from_millis(start.as_millis() + at), entry, line })
            })
            .collect::<Result<_, ParseError>>()?;
        Ok(Transcript { header, events })
    }
}

/// Reads one [`Entry`], as [`Entry`]'s `Display` writes it.
fn parse_entry(text: &str) -> Result<Entry, String> {
    let mut words = text.splitn(3, ' ');
    let verb = words.next().unwrap_or_default();
    let (first, rest) = (words.next(), words.next());
    let connection = || -> Result<ConnectionId, String> {
        let id = first.ok_or("no connection")?;
        id.parse().map(ConnectionId).map_err(|_| format!("connection {id:?} is not a number"))
    };
    let number = || -> Result<u64, String> {
        let n = first.ok_or("no number")?;
        n.parse().map_err(|_| format!("{n:?} is not a number"))
    };
    // No bytes leave no word: the line ends after the connection.
    let bytes = || unhex(rest.unwrap_or_default());
    Ok(match verb {
        "accept" => {
            let protocol = match rest {
                Some("MQTT") => Protocol::Mqtt,
                Some("AMQP") => Protocol::Amqp,
                Some("HTTP") => Protocol::Http,
                other => return Err(format!("unknown protocol {other:?}")),
            };
            Entry::Accept(connection()?, protocol)
        }
        "in" => Entry::In(connection()?, bytes()?),
        "out" => Entry::Out(connection()?, bytes()?),
        "close" => Entry::Close(connection()?),
        "closed" => Entry::Closed(connection()?),
        "timeout" => Entry::Timeout,
        "c2d" => {
            let device = first.ok_or("no device")?.to_owned();
            let json = rest.ok_or("no message")?;
            Entry::C2d(
                device,
                Box::new(serde_json::from_str(json).map_err(|e| format!("message: {e}"))?),
            )
        }
        "stored" => Entry::Stored(number()?),
        "refused" => {
            let code = rest.ok_or("no code")?;
            Entry::Refused(number()?, code.parse().map_err(|_| format!("code {code:?}"))?)
        }
        "unrecorded" => Entry::Unrecorded(first.unwrap_or_default().to_owned()),
        other => return Err(format!("unknown event {other:?}")),
    })
}

/// Hex digits back to bytes.
fn unhex(hex: &str) -> Result<Bytes, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!("{:?} is not a lower-case hex digit", char::from(c))),
    };
    if hex.len() % 2 != 0 {
        return Err(String::from("an odd number of hex digits"));
    }
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| match pair {
            &[high, low] => Ok(digit(high)? << 4 | digit(low)?),
            _ => Err(String::from("an odd number of hex digits")),
        })
        .collect::<Result<Vec<u8>, String>>()
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read after the recorder has it.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn what_a_recorder_writes_reads_back_the_same() {
        let header = Header {
            seed: 42,
            start: Timestamp::from_millis(1_700_000_000_123),
            host_names: vec![String::from("127.0.0.31"), String::from("localhost")],
            max_cbs_tokens: 7,
            devices: vec![DeviceRecord {
                device_id: String::from("dev1"),
                primary_key: String::from("AAEC"),
                secondary_key: String::new(),
                enabled: true,
            }],
        };
        let c = ConnectionId(3);
        let mut message = Message::new(&b"switch on"[..]);
        message.message_id = Some(String::from("m 1"));
        let entries = [
            Entry::Accept(c, Protocol::Amqp),
            // Bytes that are not UTF-8, and none.
            Entry::In(c, Bytes::from_static(&[0x00, 0xff, 0x10])),
            Entry::Out(c, Bytes::new()),
            Entry::C2d(String::from("dev1"), Box::new(message)),
            Entry::Stored(9),
            Entry::Refused(9, 500_001),
            Entry::Timeout,
            Entry::Close(c),
            Entry::Closed(c),
            Entry::Unrecorded(String::from("invoke-method")),
        ];
        let shared = Shared::default();
        let mut recorder = match Recorder::new(Box::new(shared.clone()), &header) {
            Ok(recorder) => recorder,
            Err(e) => panic!("{e}"),
        };
        for (i, entry) in entries.iter().enumerate() {
            let now = Timestamp::from_millis(header.start.as_millis() + 10 * i as u64);
            if let Err(e) = recorder.write(now, entry) {
                panic!("{e}");
            }
        }
        let text = match shared.0.lock() {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => panic!("{e}"),
        };
        let commented = format!("# made by a test\n\n{text}");
        let read = match Transcript::parse(&commented) {
            Ok(read) => read,
            Err(e) => panic!("{e}\n{text}"),
        };
        assert_eq!(read.header, header);
        let read_entries: Vec<Entry> = read.events.iter().map(|e| e.entry.clone()).collect();
        assert_eq!(read_entries, entries);
        assert_eq!(read.events[1].at, Timestamp::from_millis(1_700_000_000_133));
        // Two comment lines, nine header lines, then the events.
        assert_eq!(read.events[0].line, 11);
    }

    fn entry() -> impl proptest::strategy::Strategy<Value = Entry> {
        use proptest::prelude::*;
        let connection = (0u64..4).prop_map(ConnectionId);
        let bytes = proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
        prop_oneof![
            (
                connection.clone(),
                prop_oneof![Just(Protocol::Mqtt), Just(Protocol::Amqp), Just(Protocol::Http)]
            )
                .prop_map(|(c, p)| Entry::Accept(c, p)),
            (connection.clone(), bytes.clone()).prop_map(|(c, b)| Entry::In(c, b)),
            (connection.clone(), bytes).prop_map(|(c, b)| Entry::Out(c, b)),
            connection.clone().prop_map(Entry::Close),
            connection.prop_map(Entry::Closed),
            Just(Entry::Timeout),
            ("[a-z0-9-]{1,12}", proptest::collection::vec(any::<u8>(), 0..32))
                .prop_map(|(d, body)| { Entry::C2d(d, Box::new(Message::new(body))) }),
            any::<u64>().prop_map(Entry::Stored),
            (any::<u64>(), any::<u32>()).prop_map(|(t, c)| Entry::Refused(t, c)),
            "[a-z-]{1,16}".prop_map(Entry::Unrecorded),
        ]
    }

    proptest::proptest! {
        /// Whatever a recorder writes reads back as the same entries at the same
        /// times.
        #[test]
        fn recorded_entries_read_back_as_written(
            entries in proptest::collection::vec(entry(), 0..16),
        ) {
            let header = Header {
                seed: 1,
                start: Timestamp::from_millis(1_000),
                host_names: vec![String::from("localhost")],
                max_cbs_tokens: 1,
                devices: Vec::new(),
            };
            let shared = Shared::default();
            let mut recorder = match Recorder::new(Box::new(shared.clone()), &header) {
                Ok(recorder) => recorder,
                Err(e) => panic!("{e}"),
            };
            for (i, entry) in entries.iter().enumerate() {
                let now = Timestamp::from_millis(1_000 + i as u64);
                proptest::prop_assert!(recorder.write(now, entry).is_ok());
            }
            let text = match shared.0.lock() {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => panic!("{e}"),
            };
            let read = Transcript::parse(&text);
            proptest::prop_assert!(read.is_ok(), "{read:?}\n{text}");
            let read: Vec<Entry> =
                read.map(|t| t.events.into_iter().map(|e| e.entry).collect()).unwrap_or_default();
            proptest::prop_assert_eq!(read, entries);
        }

        /// Any text is read or refused with a line number, never a panic.
        #[test]
        fn any_text_is_read_or_refused(text in "(hubwire-transcript 1\nstart-ms 0\nevents\n)?[ -~\n]{0,200}") {
            let _ = Transcript::parse(&text);
        }
    }

    #[test]
    fn upper_case_or_odd_hex_is_refused_with_its_line() {
        let text = "hubwire-transcript 1\nstart-ms 0\nevents\n0 in 0 0A\n";
        let error = Transcript::parse(text).err();
        assert_eq!(error.map(|e| e.line), Some(4));
        let odd = "hubwire-transcript 1\nstart-ms 0\nevents\n0 out 0 abc\n";
        assert!(Transcript::parse(odd).is_err());
    }
}
