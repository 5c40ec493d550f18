//! Interop with real MQTT clients: mosquitto_pub and mosquitto_sub (Debian's
//! mosquitto-clients, installed by conformance/install-peers.sh) against
//! `hubwire hub` over TLS, trusting the hub's CA, with IoT Hub user names and SAS
//! tokens.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use hubwire_conformance::process::{Hub, WAIT, next_event, peer, spawn, start_hub};
use hubwire_core::iothub::{Authentication, ConnectionString, SasToken};
use hubwire_core::time::Timestamp;

/// The MQTT user name, password (a SAS token valid for an hour, signed with `key`)
/// and host/port to reach the hub over TLS, from dev1's connection string, and the
/// CA to trust.
struct Credentials {
    username: String,
    password: String,
    host: String,
    port: String,
    ca: String,
}

fn credentials(hub: &Hub, key: Option<&str>) -> Credentials {
    let cs = &hub.connection_string;
    let cs = match ConnectionString::parse(cs) {
        Ok(cs) => cs,
        Err(e) => panic!("hub printed a bad connection string {cs}: {e}"),
    };
    let Authentication::SharedAccessKey(device_key) = &cs.authentication else {
        panic!("no key in the connection string");
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let now = Timestamp::from_millis(now.map_or(0, |d| d.as_millis() as u64));
    let token = SasToken::sign(
        &cs.resource_uri(),
        key.unwrap_or(device_key),
        now + Duration::from_secs(3600),
        None,
    );
    let token = match token {
        Ok(t) => t.to_string(),
        Err(e) => panic!("cannot sign: {e}"),
    };
    let Some((host, port)) = cs.host_name.rsplit_once(':') else {
        panic!("no port in {}", cs.host_name);
    };
    Credentials {
        username: format!("{}/{}/?api-version=2021-04-12", cs.host_name, cs.device_id),
        password: token,
        host: host.to_string(),
        port: port.to_string(),
        ca: hub.ca.clone(),
    }
}

/// Runs mosquitto_pub with QoS 1 and MQTT 3.1.1; returns whether it succeeded and
/// what it printed on stderr.
fn mosquitto_pub(c: &Credentials, topic: &str, payload: &str) -> (bool, String) {
    let output = Command::new(peer("mosquitto_pub"))
        .args(["-h", &c.host, "-p", &c.port, "--cafile", &c.ca])
        .args(["-V", "mqttv311", "-q", "1", "-i", "dev1"])
        .args(["-u", &c.username, "-P", &c.password, "-t", topic, "-m", payload])
        .output();
    match output {
        Ok(o) => (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => panic!("cannot run mosquitto_pub: {e}"),
    }
}

#[test]
fn mosquitto_pub_with_a_sas_token_publishes_qos_1_telemetry_the_hub_stores() {
    let hub = start_hub();
    let (out, c) = (&hub.out, credentials(&hub, None));
    let (ok, stderr) =
        mosquitto_pub(&c, "devices/dev1/messages/events/%24.mid=m1&unit=%C2%B0C", r#"{"t":1}"#);
    assert!(ok, "mosquitto_pub failed: {stderr}");
    let telemetry = next_event(out, "telemetry");
    assert_eq!(telemetry["deviceId"], "dev1");
    assert_eq!(telemetry["messageId"], "m1");
    assert_eq!(telemetry["properties"]["unit"], "°C");
    assert_eq!(telemetry["body"], r#"{"t":1}"#);
}

#[test]
fn mosquitto_pub_with_a_wrong_token_gets_connack_5_and_nothing_is_stored() {
    let hub = start_hub();
    let out = &hub.out;
    let wrong = credentials(&hub, Some("Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s="));
    let (ok, stderr) = mosquitto_pub(&wrong, "devices/dev1/messages/events/", "forged");
    assert!(!ok);
    // mosquitto's words for CONNACK return code 5.
    assert!(stderr.contains("not authorised"), "{stderr}");
    let refused = next_event(out, "refused");
    assert_eq!(refused["code"], 401003);
    // The next message stored is a genuine one sent afterwards: the forged one never was.
    let right = credentials(&hub, None);
    let (ok, stderr) = mosquitto_pub(&right, "devices/dev1/messages/events/", "genuine");
    assert!(ok, "{stderr}");
    assert_eq!(next_event(out, "telemetry")["body"], "genuine");
}

#[test]
fn mosquitto_sub_on_the_device_bound_topic_receives_c2d_with_its_properties() {
    let mut hub = start_hub();
    let c = credentials(&hub, None);
    let (_sub, _sub_stdin, sub_out) = spawn(
        Command::new(peer("mosquitto_sub"))
            .args(["-h", &c.host, "-p", &c.port, "--cafile", &c.ca])
            .args(["-V", "mqttv311", "-q", "1", "-i", "dev1"])
            .args(["-u", &c.username, "-P", &c.password, "-c", "-C", "1", "-F", "%t %p"])
            .args(["-t", "devices/dev1/messages/devicebound/#"]),
    );
    next_event(&hub.out, "connected");
    let c2d =
        r#"{"deviceId":"dev1","body":"reboot","messageId":"c1","properties":{"color":"blue"}}"#;
    if let Err(e) = writeln!(hub.stdin, "{c2d}") {
        panic!("hub stdin: {e}");
    }
    let line = match sub_out.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(_) => panic!("mosquitto_sub received nothing within {WAIT:?}"),
    };
    let Some((topic, payload)) = line.split_once(' ') else { panic!("{line}") };
    assert_eq!(payload, "reboot");
    let prefix = "devices/dev1/messages/devicebound/%24.mid=c1\
                  &%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&%24.exp=";
    assert!(topic.starts_with(prefix), "{topic}");
    assert!(topic.ends_with("&color=blue"), "{topic}");
    // mosquitto_sub acknowledged it with a PUBACK: the hub completed it.
    assert_eq!(next_event(&hub.out, "c2dCompleted")["messageId"], "c1");
}
