//! `hubwire token`: the credentials it prints let any MQTT client act as the
//! device.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hubwire_conformance::process::{hubwire, next_event, peer, start_hub};
use hubwire_core::iothub::{Authentication, ConnectionString, SasError, SasToken};
use hubwire_core::time::Timestamp;

/// Runs `hubwire token args…`.
fn token(args: &[&str]) -> Output {
    match Command::new(hubwire()).arg("token").args(args).output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run hubwire: {e}"),
    }
}

/// The `name: value` lines of a successful `hubwire token`.
fn fields(output: &Output) -> BTreeMap<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| match line.split_once(": ") {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => panic!("not `name: value`: {line}"),
        })
        .collect()
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::EPOCH.saturating_add(since_epoch)
}

#[test]
fn mosquitto_pub_with_the_printed_credentials_publishes_telemetry_the_hub_stores() {
    let hub = start_hub();
    let (out, cs) = (&hub.out, &hub.connection_string);
    let c = fields(&token(&["--connection-string", cs]));
    let names: Vec<&str> = c.keys().map(String::as_str).collect();
    assert_eq!(names, ["clientId", "expiresAt", "host", "password", "port", "username"]);
    let output = Command::new(peer("mosquitto_pub"))
        .args([
            "-h", &c["host"], "-p", &c["port"], "--cafile", &hub.ca, "-V", "mqttv311", "-q", "1",
        ])
        .args(["-i", &c["clientId"], "-u", &c["username"], "-P", &c["password"]])
        .args(["-t", "devices/dev1/messages/events/", "-m", "from hubwire token"])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!("cannot run mosquitto_pub: {e}"),
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let connected = next_event(out, "connected");
    assert_eq!(connected["deviceId"], "dev1");
    let telemetry = next_event(out, "telemetry");
    assert_eq!(telemetry["deviceId"], "dev1");
    assert_eq!(telemetry["body"], "from hubwire token");
}

#[test]
fn the_json_password_verifies_with_the_device_key_until_the_ttl_ends() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cs = format!("HostName=myhub.example:8883;DeviceId=dev1;SharedAccessKey={key}");
    let before = now();
    let output = token(&["--connection-string", &cs, "--ttl-secs", "120", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => panic!("{}: {e}", String::from_utf8_lossy(&output.stdout)),
    };
    assert_eq!(json["host"], "myhub.example");
    assert_eq!(json["port"], 8883);
    assert_eq!(json["clientId"], "dev1");
    let Some(username) = json["username"].as_str() else { panic!("{json}") };
    assert!(username.starts_with("myhub.example:8883/dev1/?api-version=2021-04-12"), "{username}");

    let Some(password) = json["password"].as_str() else { panic!("{json}") };
    let token = match SasToken::parse(password) {
        Ok(t) => t,
        Err(e) => panic!("{password}: {e}"),
    };
    let Ok(ConnectionString { authentication: Authentication::SharedAccessKey(key), .. }) =
        ConnectionString::parse(&cs)
    else {
        panic!("{cs}");
    };
    assert_eq!(token.audience(), "myhub.example:8883/devices/dev1");
    assert_eq!(json["expiresAt"], token.expiry);
    assert_eq!(token.verify(&[&key], now(), Duration::ZERO), Ok(()));
    let expiry = token.expiry_time();
    assert!(expiry >= before.saturating_add(Duration::from_secs(119)), "{expiry} vs {before}");
    assert!(expiry <= now().saturating_add(Duration::from_secs(120)), "{expiry}");
    let after = expiry.saturating_add(Duration::from_secs(1));
    assert_eq!(token.verify(&[&key], after, Duration::ZERO), Err(SasError::Expired));
}

#[test]
fn a_connection_string_without_shared_access_key_is_refused_with_status_2() {
    let cs = "HostName=h;DeviceId=dev1;SharedAccessSignature=SharedAccessSignature sr=h&sig=s&se=1";
    let output = token(&["--connection-string", cs]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no SharedAccessKey"), "{stderr}");
    assert!(output.stdout.is_empty());
}
