//! `hubwire token`: what any MQTT client needs to connect as a device, against
//! IoT Hub or `hubwire hub`: where to connect, and the CONNECT client id, user
//! name and password a hubwire device would send (spec file §4.1).

use std::process::ExitCode;
use std::time::Duration;

use hubwire_blocking::{Transport, clock, dial};
use hubwire_core::Timestamp;
use hubwire_core::device::DeviceConfig;
use hubwire_core::iothub::{Authentication, ConnectionString, SasToken};
use hubwire_core::mqtt::username::Username;
use serde::Serialize;

use crate::out;

/// `hubwire token` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The device's connection string; it needs a SharedAccessKey to sign with.
    #[arg(long)]
    connection_string: ConnectionString,
    /// How long the password (a SAS token) is valid, seconds from now.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
    /// Print one JSON object instead of `name: value` lines.
    #[arg(long)]
    json: bool,
}

/// A device's MQTT credentials. The names are those printed, in this order.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    /// The host to connect to: `GatewayHostName` or `HostName`, without the port.
    host: String,
    port: u16,
    /// The CONNECT Client Identifier: `deviceId`, or `deviceId/moduleId`.
    client_id: String,
    /// The CONNECT User Name (spec file §4.1.1).
    username: String,
    /// The CONNECT Password: a SAS token (spec file §2.3).
    password: String,
    /// When the password expires, seconds since the Unix epoch.
    expires_at: u64,
}

impl Credentials {
    /// The credentials of the device `cs` names, the token valid from `now` for
    /// `ttl` and signed as a hubwire device signs it: for `cs.resource_uri()`, with
    /// the key's policy name as `skn` when the string has one.
    ///
    /// Errors, in words: `cs` has no SharedAccessKey, or the key is not base64.
    fn of(cs: &ConnectionString, now: Timestamp, ttl: Duration) -> Result<Credentials, String> {
        let key = match &cs.authentication {
            Authentication::SharedAccessKey(key) => key,
            Authentication::SharedAccessSignature(_) => {
                return Err(String::from(
                    "the connection string has no SharedAccessKey to sign a token with; its \
                     SharedAccessSignature is a token already: use it as the password",
                ));
            }
            Authentication::X509 => {
                return Err(String::from(
                    "the connection string has no SharedAccessKey to sign a token with; an \
                     x509 device authenticates with its TLS client certificate",
                ));
            }
        };
        let token = SasToken::sign(
            &cs.resource_uri(),
            key,
            now + ttl,
            cs.shared_access_key_name.as_deref(),
        )
        .map_err(|e| format!("cannot sign a token: {e}"))?;
        // MQTT over TLS: what IoT Hub serves and other MQTT clients should use.
        let (host, port) = dial::target(cs, Transport::Mqtt);
        let identity = cs.identity();
        // The client type a hubwire device sends, so that the hub sees one kind of client.
        let client_type = DeviceConfig::new(cs.clone()).client_type;
        Ok(Credentials {
            host,
            port,
            client_id: identity.to_string(),
            username: Username::format(&cs.host_name, &identity, &client_type),
            password: token.to_string(),
            expires_at: token.expiry,
        })
    }

    /// `name: value` lines, one per field.
    fn text(&self) -> String {
        let Credentials { host, port, client_id, username, password, expires_at } = self;
        format!(
            "host: {host}\nport: {port}\nclientId: {client_id}\nusername: {username}\n\
             password: {password}\nexpiresAt: {expires_at}"
        )
    }
}

pub(crate) fn run(args: TokenArgs) -> ExitCode {
    let ttl = Duration::from_secs(args.ttl_secs);
    let credentials = match Credentials::of(&args.connection_string, clock::now(), ttl) {
        Ok(credentials) => credentials,
        Err(e) => {
            out::warn(format_args!("hubwire token: {e}"));
            return ExitCode::from(2);
        }
    };
    let text = if args.json {
        serde_json::to_string(&credentials).unwrap_or_default()
    } else {
        credentials.text()
    };
    // A closed stdout leaves nothing else to do.
    let _ = out::print(text);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use hubwire_core::iothub::SasError;
    use hubwire_core::iothub::sas::DEFAULT_CLOCK_SKEW;

    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const OTHER_KEY: &str = "Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s=";

    fn cs(s: &str) -> ConnectionString {
        match ConnectionString::parse(s) {
            Ok(cs) => cs,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn credentials(s: &str, now: Timestamp, ttl: Duration) -> Credentials {
        match Credentials::of(&cs(s), now, ttl) {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn token(c: &Credentials) -> SasToken {
        match SasToken::parse(&c.password) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", c.password),
        }
    }

    #[test]
    fn password_is_a_token_for_the_device_that_verifies_with_its_key_until_it_expires() {
        let now = Timestamp::from_unix_secs(1_700_000_000);
        let c = credentials(
            &format!("HostName=127.0.0.1:4000;DeviceId=dev1;SharedAccessKey={KEY}"),
            now,
            Duration::from_secs(600),
        );
        let token = token(&c);
        assert_eq!(token.audience(), "127.0.0.1:4000/devices/dev1");
        assert_eq!(c.expires_at, 1_700_000_600);
        assert_eq!(token.expiry, c.expires_at);
        assert_eq!(token.verify(&[KEY], now, Duration::ZERO), Ok(()));
        let past = Timestamp::from_unix_secs(1_700_000_601) + DEFAULT_CLOCK_SKEW;
        assert_eq!(token.verify(&[KEY], past, DEFAULT_CLOCK_SKEW), Err(SasError::Expired));
        assert_eq!(
            token.verify(&[OTHER_KEY], now, Duration::ZERO),
            Err(SasError::SignatureMismatch)
        );
    }

    #[test]
    fn client_id_user_name_and_address_are_the_devices() {
        let c = credentials(
            &format!("HostName=hub.example;DeviceId=dev1;ModuleId=m1;SharedAccessKey={KEY}"),
            Timestamp::EPOCH,
            Duration::from_secs(3600),
        );
        assert_eq!((c.host.as_str(), c.port), ("hub.example", 8883));
        assert_eq!(c.client_id, "dev1/m1");
        let Ok(username) = Username::parse(&c.username) else { panic!("{}", c.username) };
        assert_eq!(username.host_name, "hub.example");
        assert_eq!(
            username.identity,
            cs("HostName=h;DeviceId=dev1;ModuleId=m1;x509=true").identity()
        );
        assert_eq!(username.api_version.as_deref(), Some("2021-04-12"));
        assert_eq!(token(&c).audience(), "hub.example/devices/dev1/modules/m1");

        let gateway = credentials(
            &format!("HostName=hub.example;DeviceId=d;SharedAccessKey={KEY};GatewayHostName=gw:2"),
            Timestamp::EPOCH,
            Duration::from_secs(3600),
        );
        assert_eq!((gateway.host.as_str(), gateway.port), ("gw", 2));
        assert!(gateway.username.starts_with("hub.example/d/?"), "{}", gateway.username);
    }

    #[test]
    fn a_policy_key_signs_with_its_name() {
        let c = credentials(
            &format!("HostName=h;DeviceId=d;SharedAccessKeyName=device;SharedAccessKey={KEY}"),
            Timestamp::EPOCH,
            Duration::from_secs(60),
        );
        assert_eq!(token(&c).key_name.as_deref(), Some("device"));
    }

    #[test]
    fn no_shared_access_key_is_refused_in_words() {
        for s in [
            "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=s&se=1",
            "HostName=h;DeviceId=d;x509=true",
        ] {
            let Err(e) = Credentials::of(&cs(s), Timestamp::EPOCH, Duration::from_secs(1)) else {
                panic!("{s} accepted");
            };
            assert!(e.contains("no SharedAccessKey"), "{e}");
        }
        let not_base64 = cs("HostName=h;DeviceId=d;SharedAccessKey=not base64!");
        assert!(Credentials::of(&not_base64, Timestamp::EPOCH, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn text_lines_and_json_carry_the_same_names_in_the_same_order() {
        let c = credentials(
            &format!("HostName=127.0.0.1:4000;DeviceId=dev1;SharedAccessKey={KEY}"),
            Timestamp::EPOCH,
            Duration::from_secs(60),
        );
        let text = c.text();
        let pairs: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(": ")).collect();
        assert_eq!(pairs.len(), text.lines().count(), "{text}");
        let Ok(json) = serde_json::to_value(&c) else { panic!("json") };
        for (name, value) in &pairs {
            let expected = match &json[*name] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(*value, expected, "{name}");
        }
        assert_eq!(Some(pairs.len()), json.as_object().map(serde_json::Map::len));
        let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["host", "port", "clientId", "username", "password", "expiresAt"]);
        // The JSON object's keys come in the same order.
        let Ok(serialized) = serde_json::to_string(&c) else { panic!("json") };
        let at = |name: &str| serialized.find(&format!("\"{name}\":"));
        let positions: Vec<Option<usize>> = names.iter().map(|name| at(name)).collect();
        assert!(positions.is_sorted() && positions[0].is_some(), "{serialized}");
    }
}
