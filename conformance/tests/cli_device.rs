//! `hubwire device` as a person sees it: its help, its words for a hub it cannot
//! reach or has lost, and a closed stdout.

use std::process::Command;

use hubwire_conformance::process::hubwire;

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
