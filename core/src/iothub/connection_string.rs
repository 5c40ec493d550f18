//! Device connection strings (spec file §2.2).
//!
//! `HostName=myhub.azure-devices.net;DeviceId=device1;SharedAccessKey=...`: the one
//! line of configuration a device SDK is given. The grammar is the Node SDK's
//! (N-core `connection_string.ts`, `dictionary.ts`), the validation its device
//! package's.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use crate::iothub::Identity;

/// A parsed device connection string (spec file §2.2, TV-1, TV-2).
///
/// `Debug` never shows the key or token; `Display` writes the string back, secret
/// included, so that it can be stored and parsed again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionString {
    /// `HostName`: the hub's name, possibly with `:port`.
    pub host_name: String,
    /// `DeviceId`.
    pub device_id: String,
    /// `ModuleId`.
    pub module_id: Option<String>,
    /// How the device proves who it is.
    pub authentication: Authentication,
    /// `SharedAccessKeyName`: the key is a policy key.
    pub shared_access_key_name: Option<String>,
    /// `GatewayHostName`: where to open the socket instead of `HostName`.
    pub gateway_host_name: Option<String>,
}

/// The credential in a connection string.
#[derive(Clone, PartialEq, Eq)]
pub enum Authentication {
    /// `SharedAccessKey`: a base64 symmetric key; tokens are signed with it.
    SharedAccessKey(String),
    /// `SharedAccessSignature`: a ready token, used as it is.
    SharedAccessSignature(String),
    /// `x509=true`: a TLS client certificate.
    X509,
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authentication::SharedAccessKey(_) => f.write_str("SharedAccessKey(..)"),
            Authentication::SharedAccessSignature(_) => f.write_str("SharedAccessSignature(..)"),
            Authentication::X509 => f.write_str("X509"),
        }
    }
}

/// Why a connection string was refused (spec file §2.2, TV-2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionStringError {
    /// A required key (`HostName` or `DeviceId`) is absent.
    #[error("connection string has no {0}")]
    Missing(&'static str),
    /// More than one of `SharedAccessKey`, `SharedAccessSignature` and `x509=true`
    /// is present; the two named are the first two in that order.
    #[error("connection string has both {0} and {1}; exactly one is allowed")]
    ConflictingAuthentication(&'static str, &'static str),
    /// None of `SharedAccessKey`, `SharedAccessSignature` and `x509=true` is present.
    #[error("connection string has no SharedAccessKey, SharedAccessSignature or x509=true")]
    NoAuthentication,
}

impl ConnectionString {
    /// Parses `key=value(;key=value)*` (spec file §2.2).
    ///
    /// Each `;`-separated element splits at its first `=`, so base64 values keep
    /// their padding. Elements without `=` or with an empty key or value are
    /// ignored, as are unknown keys; a repeated key's last value wins; keys are
    /// case-sensitive. `x509` counts only when its value is `true` (any ASCII case);
    /// other values are treated as absent.
    ///
    /// # Errors
    /// [`ConnectionStringError::Missing`] without `HostName` or `DeviceId`;
    /// [`ConnectionStringError::ConflictingAuthentication`] when two credentials
    /// are given; [`ConnectionStringError::NoAuthentication`] when none is.
    pub fn parse(s: &str) -> Result<Self, ConnectionStringError> {
        let mut host_name = None;
        let mut device_id = None;
        let mut module_id = None;
        let mut key = None;
        let mut key_name = None;
        let mut signature = None;
        let mut x509 = false;
        let mut gateway_host_name = None;

        for element in s.split(';') {
            let Some((k, v)) = element.split_once('=') else {
                continue;
            };
            if k.is_empty() || v.is_empty() {
                continue;
            }
            match k {
                "HostName" => host_name = Some(v),
                "DeviceId" => device_id = Some(v),
                "ModuleId" => module_id = Some(v),
                "SharedAccessKey" => key = Some(v),
                "SharedAccessKeyName" => key_name = Some(v),
                "SharedAccessSignature" => signature = Some(v),
                "x509" => x509 = v.eq_ignore_ascii_case("true"),
                "GatewayHostName" => gateway_host_name = Some(v),
                _ => {}
            }
        }

        let host_name = host_name.ok_or(ConnectionStringError::Missing("HostName"))?;
        let device_id = device_id.ok_or(ConnectionStringError::Missing("DeviceId"))?;

        let present = [
            key.map(|k| ("SharedAccessKey", Authentication::SharedAccessKey(k.into()))),
            signature.map(|t| {
                ("SharedAccessSignature", Authentication::SharedAccessSignature(t.into()))
            }),
            x509.then_some(("x509", Authentication::X509)),
        ];
        let mut present = present.into_iter().flatten();
        let authentication = match (present.next(), present.next()) {
            (Some((_, auth)), None) => auth,
            (Some((first, _)), Some((second, _))) => {
                return Err(ConnectionStringError::ConflictingAuthentication(first, second));
            }
            (None, _) => return Err(ConnectionStringError::NoAuthentication),
        };

        Ok(ConnectionString {
            host_name: host_name.into(),
            device_id: device_id.into(),
            module_id: module_id.map(String::from),
            authentication,
            shared_access_key_name: key_name.map(String::from),
            gateway_host_name: gateway_host_name.map(String::from),
        })
    }

    /// The identity the string names.
    pub fn identity(&self) -> Identity {
        Identity { device_id: self.device_id.clone(), module_id: self.module_id.clone() }
    }

    /// The resource a SAS token for this identity grants, before URL-encoding:
    /// `<HostName>/devices/<deviceId>[/modules/<moduleId>]` (spec file §2.3). The
    /// host is `HostName` as written (a `:port` stays), never `GatewayHostName`
    /// (spec file §1, TV-2).
    pub fn resource_uri(&self) -> String {
        let mut uri = String::with_capacity(
            self.host_name.len()
                + "/devices/".len()
                + self.device_id.len()
                + self.module_id.as_ref().map_or(0, |m| "/modules/".len() + m.len()),
        );
        uri.push_str(&self.host_name);
        uri.push_str("/devices/");
        uri.push_str(&self.device_id);
        if let Some(module_id) = &self.module_id {
            uri.push_str("/modules/");
            uri.push_str(module_id);
        }
        uri
    }
}

impl FromStr for ConnectionString {
    type Err = ConnectionStringError;

    /// Same as [`ConnectionString::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionString::parse(s)
    }
}

impl fmt::Display for ConnectionString {
    /// Writes `HostName=..;DeviceId=..[;ModuleId=..]` then the credential
    /// (`;SharedAccessKey=..`, `;SharedAccessSignature=..` or `;x509=true`), then
    /// `;SharedAccessKeyName=..` and `;GatewayHostName=..` when present. The
    /// credential is written in full: this is the stored form of the string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostName={};DeviceId={}", self.host_name, self.device_id)?;
        if let Some(module_id) = &self.module_id {
            write!(f, ";ModuleId={module_id}")?;
        }
        match &self.authentication {
            Authentication::SharedAccessKey(key) => write!(f, ";SharedAccessKey={key}")?,
            Authentication::SharedAccessSignature(token) => {
                write!(f, ";SharedAccessSignature={token}")?;
            }
            Authentication::X509 => f.write_str(";x509=true")?,
        }
        if let Some(key_name) = &self.shared_access_key_name {
            write!(f, ";SharedAccessKeyName={key_name}")?;
        }
        if let Some(gateway) = &self.gateway_host_name {
            write!(f, ";GatewayHostName={gateway}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use proptest::prelude::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn tv1_device_with_shared_access_key() {
        let cs = ConnectionString::parse(
            "HostName=myhub.azure-devices.net;DeviceId=device1;\
             SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap();
        assert_eq!(cs.host_name, "myhub.azure-devices.net");
        assert_eq!(cs.device_id, "device1");
        assert_eq!(cs.module_id, None);
        // Only the first `=` splits: the key keeps its padding.
        assert_eq!(cs.authentication, Authentication::SharedAccessKey(K1.into()));
        assert_eq!(cs.shared_access_key_name, None);
        assert_eq!(cs.gateway_host_name, None);
        assert_eq!(cs.identity(), Identity::device("device1"));
        assert_eq!(cs.resource_uri(), "myhub.azure-devices.net/devices/device1");
    }

    #[test]
    fn tv2_module_via_gateway_keeps_hostname_for_the_resource() {
        let cs: ConnectionString = "HostName=myhub.azure-devices.net;DeviceId=edge1;\
             ModuleId=filter;SharedAccessKey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=;\
             GatewayHostName=gw.local"
            .parse()
            .unwrap();
        assert_eq!(cs.host_name, "myhub.azure-devices.net");
        assert_eq!(cs.device_id, "edge1");
        assert_eq!(cs.module_id.as_deref(), Some("filter"));
        assert_eq!(cs.gateway_host_name.as_deref(), Some("gw.local"));
        assert_eq!(cs.authentication, Authentication::SharedAccessKey(K1.into()));
        assert_eq!(cs.identity().to_string(), "edge1/filter");
        assert_eq!(cs.resource_uri(), "myhub.azure-devices.net/devices/edge1/modules/filter");
    }

    #[test]
    fn tv2_x509_true_is_certificate_authentication() {
        let cs = ConnectionString::parse("HostName=h;DeviceId=d;x509=true").unwrap();
        assert_eq!(cs.authentication, Authentication::X509);
    }

    #[test]
    fn tv2_key_and_x509_conflict() {
        assert_eq!(
            ConnectionString::parse("HostName=h;DeviceId=d;SharedAccessKey=k;x509=true"),
            Err(ConnectionStringError::ConflictingAuthentication("SharedAccessKey", "x509"))
        );
    }

    #[test]
    fn tv2_no_authentication_is_refused() {
        assert_eq!(
            ConnectionString::parse("HostName=h;DeviceId=d"),
            Err(ConnectionStringError::NoAuthentication)
        );
    }

    #[test]
    fn tv2_missing_hostname_is_refused() {
        assert_eq!(
            ConnectionString::parse("DeviceId=d;SharedAccessKey=k"),
            Err(ConnectionStringError::Missing("HostName"))
        );
    }

    #[test]
    fn missing_device_id_is_refused() {
        assert_eq!(
            ConnectionString::parse("HostName=h;SharedAccessKey=k"),
            Err(ConnectionStringError::Missing("DeviceId"))
        );
    }

    #[test]
    fn key_and_signature_conflict() {
        assert_eq!(
            ConnectionString::parse(
                "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=s&se=1;\
                 SharedAccessKey=k"
            ),
            Err(ConnectionStringError::ConflictingAuthentication(
                "SharedAccessKey",
                "SharedAccessSignature"
            ))
        );
    }

    #[test]
    fn signature_and_x509_conflict() {
        assert_eq!(
            ConnectionString::parse("HostName=h;DeviceId=d;SharedAccessSignature=t;x509=true"),
            Err(ConnectionStringError::ConflictingAuthentication("SharedAccessSignature", "x509"))
        );
    }

    #[test]
    fn ready_token_is_kept_verbatim() {
        let token = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=a%2Bb%3D&se=1";
        let cs = ConnectionString::parse(&format!(
            "HostName=h;DeviceId=d;SharedAccessSignature={token}"
        ))
        .unwrap();
        assert_eq!(cs.authentication, Authentication::SharedAccessSignature(token.into()));
    }

    #[test]
    fn x509_other_than_true_counts_as_absent() {
        assert_eq!(
            ConnectionString::parse("HostName=h;DeviceId=d;x509=false"),
            Err(ConnectionStringError::NoAuthentication)
        );
        let cs =
            ConnectionString::parse("HostName=h;DeviceId=d;x509=false;SharedAccessKey=k").unwrap();
        assert_eq!(cs.authentication, Authentication::SharedAccessKey("k".into()));
        assert_eq!(
            ConnectionString::parse("HostName=h;DeviceId=d;x509=TRUE").unwrap().authentication,
            Authentication::X509
        );
    }

    #[test]
    fn elements_without_equals_or_with_empty_parts_are_ignored() {
        let cs = ConnectionString::parse(
            ";;junk;=v;ModuleId=;HostName=h;DeviceId=d;SharedAccessKey=k;Unknown=x;",
        )
        .unwrap();
        assert_eq!(cs.module_id, None);
        assert_eq!(cs.host_name, "h");
        // An empty value does not clear an earlier one.
        let cs = ConnectionString::parse("HostName=h;HostName=;DeviceId=d;x509=true").unwrap();
        assert_eq!(cs.host_name, "h");
    }

    #[test]
    fn duplicate_key_last_wins() {
        let cs = ConnectionString::parse("HostName=a;HostName=b;DeviceId=d;x509=true").unwrap();
        assert_eq!(cs.host_name, "b");
    }

    #[test]
    fn keys_are_case_sensitive() {
        assert_eq!(
            ConnectionString::parse("hostname=h;DeviceId=d;x509=true"),
            Err(ConnectionStringError::Missing("HostName"))
        );
    }

    #[test]
    fn resource_uri_keeps_a_port_in_the_host_name() {
        let cs = ConnectionString::parse("HostName=localhost:8883;DeviceId=d;x509=true").unwrap();
        assert_eq!(cs.resource_uri(), "localhost:8883/devices/d");
    }

    #[test]
    fn display_writes_every_field_back() {
        let s = "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=k=;\
                 SharedAccessKeyName=p;GatewayHostName=g";
        assert_eq!(ConnectionString::parse(s).unwrap().to_string(), s);
        let s = "HostName=h;DeviceId=d;x509=true";
        assert_eq!(ConnectionString::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn debug_hides_the_secret() {
        let cs = ConnectionString::parse(&format!("HostName=h;DeviceId=d;SharedAccessKey={K1}"))
            .unwrap();
        assert!(!format!("{cs:?}").contains(K1));
        let cs =
            ConnectionString::parse("HostName=h;DeviceId=d;SharedAccessSignature=tok3n").unwrap();
        assert!(!format!("{cs:?}").contains("tok3n"));
    }

    /// A value as the grammar can carry it: non-empty, without `;`.
    fn value() -> impl Strategy<Value = String> {
        "[^;]{1,24}"
    }

    fn connection_string() -> impl Strategy<Value = ConnectionString> {
        let authentication = prop_oneof![
            value().prop_map(Authentication::SharedAccessKey),
            value().prop_map(Authentication::SharedAccessSignature),
            Just(Authentication::X509),
        ];
        (
            value(),
            value(),
            proptest::option::of(value()),
            authentication,
            proptest::option::of(value()),
            proptest::option::of(value()),
        )
            .prop_map(
                |(host_name, device_id, module_id, authentication, key_name, gateway)| {
                    ConnectionString {
                        host_name,
                        device_id,
                        module_id,
                        authentication,
                        shared_access_key_name: key_name,
                        gateway_host_name: gateway,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(cs in connection_string()) {
            prop_assert_eq!(ConnectionString::parse(&cs.to_string()), Ok(cs));
        }

        #[test]
        fn parse_never_panics(
            elements in proptest::collection::vec(
                prop_oneof![
                    "(HostName|DeviceId|ModuleId|SharedAccessKey|SharedAccessSignature|x509)=[^;]{0,8}",
                    "\\PC{0,16}",
                ],
                0..8,
            )
        ) {
            let _ = ConnectionString::parse(&elements.join(";"));
        }
    }
}
