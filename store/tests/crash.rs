//! A hub killed with SIGKILL loses no acknowledged D2C message: a child process
//! appends D2C records to a [`RedbStore`] and prints each sequence number once
//! `append_d2c` returned `Ok` (when the hub would acknowledge the device); the test
//! kills it mid-run, reopens the file and finds every printed record.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use hubwire_core::hub::D2cRecord;
use hubwire_core::iothub::{Identity, Message};
use hubwire_core::time::Timestamp;
use hubwire_store::{RedbStore, Store};

/// Set in the child's environment: the database it appends to.
const CHILD_DB: &str = "HUBWIRE_STORE_CRASH_DB";
const DEVICE: &str = "crash-device";
/// Acknowledgements the parent waits for before each kill.
const ACKS_PER_ROUND: usize = 400;
const ROUNDS: usize = 3;

fn record(sequence_number: u64) -> D2cRecord {
    let mut message = Message::new(format!("telemetry {sequence_number}").into_bytes());
    message.message_id = Some(format!("m-{sequence_number}"));
    D2cRecord {
        identity: Identity::device(DEVICE),
        sequence_number,
        enqueued_time: Timestamp::from_millis(sequence_number),
        message,
    }
}

/// The child: appends batches of 1 to 7 records until killed (or until a bound, so
/// a parent that never kills it does not leave it running), continuing the numbers
/// the store kept. Does nothing when run as an ordinary test.
#[test]
fn d2c_appender_child() {
    let Some(path) = std::env::var_os(CHILD_DB) else { return };
    let mut store = RedbStore::open(&path).expect("child opens the store");
    let snapshot = store.load().expect("child loads");
    let mut next = snapshot.sequences.get(DEVICE).map_or(1, |s| s.d2c_next);
    let stdout = std::io::stdout();
    for round in 0..20_000u64 {
        let batch: Vec<D2cRecord> = (0..1 + round % 7).map(|i| record(next + i)).collect();
        store.append_d2c(&batch).expect("child appends");
        let mut out = stdout.lock();
        for r in &batch {
            writeln!(out, "acked {}", r.sequence_number).expect("child prints");
        }
        out.flush().expect("child flushes");
        next += batch.len() as u64;
    }
}

/// Runs the child on `db` until it acknowledged `ACKS_PER_ROUND` records, kills it
/// with SIGKILL, and returns every sequence number it printed.
fn run_and_kill(db: &Path) -> Vec<u64> {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["d2c_appender_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        if let Some(n) = line.strip_prefix("acked ") {
            acked.push(n.parse::<u64>().expect("a sequence number"));
        }
        if !killed && acked.len() >= ACKS_PER_ROUND {
            // Child::kill is SIGKILL on Unix: no destructor, no flush, no commit.
            child.kill().expect("kill the child");
            killed = true;
        }
        // Lines printed before the kill are still in the pipe: read them all.
    }
    let status = child.wait().expect("child exits");
    assert!(killed, "the child ended before {ACKS_PER_ROUND} acknowledgements: {status}");
    assert!(!status.success(), "the child was killed, not finished");
    acked
}

#[test]
fn acknowledged_d2c_records_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("hub.redb");
    let mut acked = Vec::new();
    for round in 1..=ROUNDS {
        acked.extend(run_and_kill(&db));
        let store = RedbStore::open(&db).expect("reopen after SIGKILL");
        let stored: Vec<u64> =
            store.d2c().expect("read back").iter().map(|r| r.sequence_number).collect();
        // Every acknowledged record is there, with its content.
        for n in &acked {
            assert!(stored.binary_search(n).is_ok(), "round {round}: acknowledged {n} lost");
        }
        // Nothing else but whole batches committed before their lines were printed:
        // the numbers run 1, 2, 3… in arrival order without a gap or a repeat.
        let expected: Vec<u64> = (1..=stored.len() as u64).collect();
        assert_eq!(stored, expected, "round {round}");
        let records = store.d2c().expect("read back");
        for r in &records {
            assert_eq!(r, &record(r.sequence_number));
        }
        drop(store);
    }
    assert!(acked.len() >= ROUNDS * ACKS_PER_ROUND);
    let mut store = RedbStore::open(&db).expect("reopen");
    let stored = store.d2c().expect("read back").len() as u64;
    let next = store.load().expect("load").sequences.get(DEVICE).map(|s| s.d2c_next);
    assert_eq!(next, Some(stored + 1), "the next number continues after the last stored");
}
