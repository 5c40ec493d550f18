//! Regression transcripts (issue 7): sessions of Microsoft's device SDKs with
//! `hubwire hub`, recorded byte for byte by `hubwire hub --record`
//! (conformance/transcripts/record.sh says how each was made), replayed in both
//! roles.
//!
//! What a pass proves, hub role: a hub made today, given the recorded seed,
//! registry, client bytes, service calls and store acknowledgements at the
//! recorded times, sends every connection exactly the bytes the SDK saw, at the
//! same point of the session, and closes exactly the connections it closed. A
//! change to anything an SDK saw fails here, with the first differing offset.
//! Device role: every hub→client packet (MQTT), protocol header and frame with its
//! SASL frame or performative (AMQP) and response head (HTTP) the SDKs took is
//! read by hubwire's device-side decoders and written again to the same bytes;
//! HTTP bodies are read to their end as framed.
//!
//! What it does not prove: that the answers are right. The transcripts freeze
//! hubwire's own answers, which the SDKs accepted when recorded; they are
//! regression tests, not evidence of conformance. The clients' bytes are replayed,
//! not regenerated: a session where the SDK would now behave differently (because
//! the hub's answer changed) is not followed past the first difference. TLS and
//! WebSocket framing are below what is recorded. AMQP message sections inside
//! transfers and HTTP bodies are compared as bytes, not decoded, in the device role.

use std::path::{Path, PathBuf};

use hubwire_conformance::replay::{Checked, replay_device, replay_hub};
use hubwire_runtime::transcript::{Entry, Transcript};

fn transcripts() -> Vec<(PathBuf, Transcript)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts");
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    paths.retain(|p| p.extension().is_some_and(|e| e == "txt"));
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            match Transcript::parse(&text) {
                Ok(transcript) => (path, transcript),
                Err(e) => panic!("{}: {e}", path.display()),
            }
        })
        .collect()
}

/// The transcript named `name`.
fn transcript(name: &str) -> Transcript {
    match transcripts().into_iter().find(|(p, _)| p.file_stem().is_some_and(|s| s == name)) {
        Some((_, transcript)) => transcript,
        None => panic!("no transcript {name}"),
    }
}

#[test]
fn every_transcript_replays_byte_for_byte_against_the_hub() {
    let all = transcripts();
    assert!(all.len() >= 6, "{} transcripts", all.len());
    for (path, transcript) in all {
        match replay_hub(&transcript) {
            Ok(checked @ Checked { connections, bytes, .. }) => {
                println!("{}: hub role: {checked:?}", path.display());
                assert!(connections > 0 && bytes > 0, "{}: nothing replayed", path.display());
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

#[test]
fn every_hub_answer_decodes_and_encodes_again_in_the_device_role() {
    for (path, transcript) in transcripts() {
        match replay_device(&transcript) {
            Ok(checked) => {
                println!("{}: device role: {checked:?}", path.display());
                assert!(checked.units > 0, "{}: no units", path.display());
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// The transcripts hold what issue 7 asks for: each scenario's telemetry
/// acknowledged, C2D messages queued, and Python's keep-alive.
#[test]
fn the_transcripts_cover_telemetry_c2d_and_keep_alive() {
    for (path, transcript) in transcripts() {
        let has = |f: &dyn Fn(&Entry) -> bool| transcript.events.iter().any(|e| f(&e.entry));
        assert!(has(&|e| matches!(e, Entry::Stored(_))), "{}: no telemetry", path.display());
        assert!(has(&|e| matches!(e, Entry::C2d(..))), "{}: no C2D", path.display());
    }
    let python = transcript("python-mqtt-keep-alive");
    // PINGREQ from the device, PINGRESP from the hub [MQTT-3.12.4-1].
    let ping =
        python.events.iter().any(|e| matches!(&e.entry, Entry::In(_, b) if b[..] == [0xc0, 0]));
    let pong =
        python.events.iter().any(|e| matches!(&e.entry, Entry::Out(_, b) if b[..] == [0xd0, 0]));
    assert!(ping && pong, "no PINGREQ/PINGRESP");
}

/// One byte changed in a recorded hub answer fails the replay, at that byte.
#[test]
fn a_changed_recorded_answer_fails_the_hub_replay_at_its_offset() {
    let mut changed = transcript("node-mqtt");
    // The CONNACK, 20 02 00 00: its return code made 05 (not authorized).
    let Some(connack) = changed
        .events
        .iter_mut()
        .find(|e| matches!(&e.entry, Entry::Out(_, b) if b.first() == Some(&0x20)))
    else {
        panic!("no CONNACK");
    };
    let line = connack.line;
    if let Entry::Out(_, bytes) = &mut connack.entry {
        let mut edited = bytes.to_vec();
        edited[3] = 5;
        *bytes = edited.into();
    }
    let error = replay_hub(&changed).err().unwrap_or_default();
    assert!(error.starts_with(&format!("line {line}: connection #0:")), "{error}");
    assert!(error.contains("differ at offset 3 of its stream"), "{error}");
    assert!(error.contains("ConnAck"), "the context is decoded: {error}");
}

/// A hub that says one packet more, or one less, than recorded fails too.
#[test]
fn an_answer_missing_from_the_transcript_fails_the_hub_replay() {
    let mut shorter = transcript("node-mqtt");
    let Some(at) = shorter.events.iter().position(|e| matches!(&e.entry, Entry::Out(..))) else {
        panic!("no answer");
    };
    shorter.events.remove(at);
    let error = replay_hub(&shorter).err().unwrap_or_default();
    assert!(error.contains("more than recorded"), "{error}");
}
