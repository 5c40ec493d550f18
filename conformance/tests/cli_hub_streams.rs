//! `hubwire hub`'s standard streams: stdout keeps flowing whatever happens to
//! stderr, and a closed stdout ends the hub quietly.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use hubwire_conformance::process::{
    Process, TempDir, WAIT, hub_args, hubwire, lines, next_event, registered, spawn_piped, start,
};
use hubwire_core::mqtt::{Connect, Packet};

/// Refusals that overflow both a pipe's buffer (64 KiB, ~600 refusal lines) and the
/// hub's stderr queue.
const REFUSALS: usize = 3200;

/// `hubwire args…` with every stream piped.
fn spawn_hubwire(args: &[&str]) -> (Process, ChildStdin, ChildStdout, ChildStderr) {
    spawn_piped(Command::new(hubwire()).args(args))
}

/// A hub with `dev1` registered and every stream piped; returns it, its stdin, its
/// stdout lines, its stderr (unread), its address and dev1's connection string.
/// The raw-MQTT connections of these tests use the plain-TCP listener.
#[allow(clippy::type_complexity)]
fn hub() -> (Process, ChildStdin, Receiver<String>, ChildStderr, String, [String; 2], TempDir) {
    let data_dir = TempDir::new("hubwire-streams");
    let (hub, stdin, stdout, stderr) = spawn_hub(&data_dir);
    let out = lines(stdout);
    let (listening, cs) = registered(&out);
    let (Some(address), Some(ca)) = (listening["mqttTcp"].as_str(), listening["ca"].as_str())
    else {
        panic!("no mqttTcp or ca in {listening}");
    };
    (hub, stdin, out, stderr, address.to_owned(), [cs, ca.to_owned()], data_dir)
}

/// `hubwire hub` as [`hub_args`] starts it, every stream piped.
fn spawn_hub(data_dir: &TempDir) -> (Process, ChildStdin, ChildStdout, ChildStderr) {
    let args = hub_args(data_dir);
    spawn_hubwire(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Connects to `address` as dev1 with a token that cannot verify, and reads until
/// the hub closes the connection; returns what it sent.
fn refused_connection(address: &str) -> io::Result<Vec<u8>> {
    let connect = Packet::Connect(Connect {
        protocol_name: Connect::PROTOCOL_NAME.into(),
        protocol_level: Connect::PROTOCOL_LEVEL,
        clean_session: true,
        keep_alive: 60,
        client_id: "dev1".into(),
        will: None,
        username: Some(format!("{address}/dev1/?api-version=2021-04-12").into()),
        password: Some(b"SharedAccessSignature sr=x&sig=y&se=1".to_vec().into()),
    });
    let mut bytes = Default::default();
    if let Err(e) = connect.encode(&mut bytes) {
        panic!("cannot encode CONNECT: {e}");
    }
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.write_all(&bytes)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

/// Makes a refused connection and checks the refusal.
fn refuse(address: &str) {
    match refused_connection(address) {
        Ok(answer) => assert_eq!(answer, NOT_AUTHORIZED),
        Err(e) => panic!("no refusal from {address}: {e}"),
    }
}

/// CONNACK: type 2, remaining length 2, no session present, return code 5 (not
/// authorized).
const NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

/// Waits for `process` to exit, for at most [`WAIT`].
fn exit_status(process: &mut Process) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        match process.child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("still running after {WAIT:?}"),
            Err(e) => panic!("{e}"),
        }
    }
}

fn read_all(mut from: impl Read) -> String {
    let mut text = String::new();
    if let Err(e) = from.read_to_string(&mut text) {
        panic!("{e}");
    }
    text
}

#[test]
fn an_unread_stderr_does_not_stop_stdout_and_dropped_lines_are_counted() {
    let (_hub, _stdin, out, stderr, address, [cs, ca], _data_dir) = hub();
    for _ in 0..REFUSALS {
        refuse(&address);
    }
    // Every refusal reached stdout, each line as it happened.
    let deadline = Instant::now() + WAIT;
    let mut refused = 0;
    while refused < REFUSALS {
        match out.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(r#""event":"refused""#) => refused += 1,
            Ok(_) => {}
            Err(_) => panic!("stdout stopped after {refused} of {REFUSALS} refusals"),
        }
    }
    let (_device, _device_stdin, _device_out) = start(&[
        "device",
        "--connection-string",
        &cs,
        "--ca",
        &ca,
        "--count",
        "1",
        "--interval-ms",
        "0",
    ]);
    let telemetry = next_event(&out, "telemetry");
    assert_eq!(telemetry["deviceId"], "dev1");
    assert_eq!(telemetry["body"], "message 1");

    // Once stderr is read, the next refusal that fits in the queue is preceded by
    // the count of those that did not.
    let errors = lines(stderr);
    let deadline = Instant::now() + WAIT;
    let notice = 'found: loop {
        assert!(Instant::now() < deadline, "no dropped-lines notice on stderr");
        refuse(&address);
        while let Ok(line) = errors.recv_timeout(Duration::from_millis(200)) {
            if line.ends_with(" stderr lines dropped)") {
                break 'found line;
            }
        }
    };
    let count = notice.trim_start_matches('(').trim_end_matches(" stderr lines dropped)");
    let count: usize = match count.parse() {
        Ok(n) => n,
        Err(e) => panic!("{notice}: {e}"),
    };
    assert!(count > 0 && count <= REFUSALS + 1, "{notice}");
}

/// Reads stdout up to the `listening` line, like `hubwire hub | head -2`, then
/// closes it; returns the hub's address.
fn address_then_close(stdout: ChildStdout) -> String {
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    while !line.contains(r#""event":"listening""#) {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(n) if n > 0 => {}
            other => panic!("no listening line: {other:?}"),
        }
    }
    let value: serde_json::Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => panic!("{line}: {e}"),
    };
    match value["mqttTcp"].as_str() {
        Some(address) => address.to_owned(),
        None => panic!("no address in {line}"),
    }
}

#[test]
fn a_closed_stdout_ends_the_hub_at_its_next_event_without_a_panic() {
    let data_dir = TempDir::new("hubwire-streams");
    let (mut hub, _stdin, stdout, stderr) = spawn_hub(&data_dir);
    let address = address_then_close(stdout);
    // The hub may exit before it answers: only the refused line matters here.
    let _ = refused_connection(&address);
    let status = exit_status(&mut hub);
    let stderr = read_all(stderr);
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_the_hub_at_its_next_stdin_answer_without_a_panic() {
    let data_dir = TempDir::new("hubwire-streams");
    let (mut hub, mut stdin, stdout, stderr) = spawn_hub(&data_dir);
    address_then_close(stdout);
    if let Err(e) = writeln!(stdin, "not json") {
        panic!("hub stdin: {e}");
    }
    let status = exit_status(&mut hub);
    let stderr = read_all(stderr);
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn long_help_documents_the_stdin_fields_and_the_stdout_lines() {
    let output = Command::new(hubwire()).args(["hub", "--help"]).output();
    let Ok(output) = output else { panic!("cannot run hubwire") };
    let help = String::from_utf8_lossy(&output.stdout);
    let Some((stdin, stdout)) = help.split_once("\nstdout:") else { panic!("{help}") };
    let Some((_, stdin)) = stdin.split_once("\nstdin:") else { panic!("{help}") };
    for field in ["deviceId", "bodyEncoding", "contentEncoding", "ack", "expiryMs", "properties"] {
        assert!(stdin.contains(field), "{field} missing from\n{stdin}");
    }
    for kind in ["listening", "telemetry", "refused", "c2dQueued", "c2dPurged", "error"] {
        let named =
            stdout.contains(&format!("\n  {kind}")) || stdout.contains(&format!(", {kind}"));
        assert!(named, "{kind} missing from\n{stdout}");
    }
    // The short help points to it.
    let output = Command::new(hubwire()).args(["hub", "-h"]).output();
    let Ok(output) = output else { panic!("cannot run hubwire") };
    assert!(!String::from_utf8_lossy(&output.stdout).contains("\nstdin:"));
}
