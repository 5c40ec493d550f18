//! `hubwire device` as a person sees it: its help, its words for a hub it cannot
//! reach or has lost, and a closed stdout.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use hubwire_conformance::process::{Process, WAIT, hubwire, start_hub};

#[test]
fn help_shows_the_body_placeholder_in_one_line() {
    let output = Command::new(hubwire()).args(["device", "--help"]).output();
    let Ok(output) = output else { panic!("cannot run hubwire") };
    let help = String::from_utf8_lossy(&output.stdout);
    let mut lines = help.lines().skip_while(|l| !l.contains("--body <BODY>"));
    let (Some(_), Some(doc)) = (lines.next(), lines.next()) else { panic!("no --body in {help}") };
    assert!(doc.contains("becomes the message number"), "{doc:?} in\n{help}");
    assert!(doc.contains(r#"[default: "message {n}"]"#), "{doc:?}");
}

#[test]
fn a_closed_stdout_stops_the_device_quietly() {
    let (_hub, _hub_stdin, _hub_out, _address, cs) = start_hub();
    let child = Command::new(hubwire())
        .args(["device", "--connection-string", &cs, "--count", "5", "--interval-ms", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut device = match child {
        Ok(child) => Process { child },
        Err(e) => panic!("cannot run hubwire: {e}"),
    };
    let (Some(stdout), Some(mut stderr)) = (device.child.stdout.take(), device.child.stderr.take())
    else {
        panic!("no pipes");
    };
    // `hubwire device … | head -1`.
    let mut first = String::new();
    if let Err(e) = BufReader::new(stdout).read_line(&mut first) {
        panic!("{e}");
    }
    assert!(first.starts_with("connected"), "{first}");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match device.child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("the device kept running with its stdout closed"),
            Err(e) => panic!("{e}"),
        }
    };
    let mut errors = String::new();
    if let Err(e) = stderr.read_to_string(&mut errors) {
        panic!("{e}");
    }
    assert!(status.success(), "{status:?}: {errors}");
    assert!(errors.is_empty(), "{errors}");
}
