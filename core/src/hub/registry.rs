//! The device registry and device authentication (spec file §2.1, §2.3).
//!
//! The hub knows a device by its id and two symmetric keys; a device proves who it is
//! with a SAS token signed by either key. Modules and shared-access policies are not
//! in the registry yet, so tokens for them are refused with a reason of their own.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use percent_encoding::percent_decode_str;
use rand_core::RngCore;

use crate::iothub::{ErrorCode, Identity, SasError, SasToken};
use crate::time::{Duration, Timestamp};

/// Length of a generated device key before base64, in bytes: the length of the keys
/// IoT Hub itself generates.
const GENERATED_KEY_BYTES: usize = 32;

/// One registered device.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeviceRecord {
    /// The device id: case-sensitive, 1 to 128 characters (spec file §2.1).
    pub device_id: String,
    /// Primary symmetric key, base64; empty when the device has none.
    pub primary_key: String,
    /// Secondary symmetric key, base64; empty when the device has none. Either key
    /// signs valid tokens, so keys can be rolled over one at a time.
    pub secondary_key: String,
    /// A disabled device cannot connect.
    pub enabled: bool,
}

impl DeviceRecord {
    /// An enabled device without keys: it cannot authenticate with a SAS token until a
    /// key is set (an empty key never validates a token: HMAC under an empty key is a
    /// signature anyone can compute).
    ///
    /// Errors: [`RegistryError::InvalidId`] when `device_id` breaks the registry's
    /// character set or length (spec file §2.1).
    pub fn new(device_id: impl Into<String>) -> Result<Self, RegistryError> {
        let device_id = device_id.into();
        if !Identity::is_valid_id(&device_id) {
            return Err(RegistryError::InvalidId(device_id));
        }
        Ok(DeviceRecord {
            device_id,
            primary_key: String::new(),
            secondary_key: String::new(),
            enabled: true,
        })
    }

    /// An enabled device with two fresh keys, each base64 of 32 bytes drawn from `rng`
    /// (core never reads the OS's randomness; the caller chooses the source).
    ///
    /// Errors: as [`DeviceRecord::new`].
    pub fn with_generated_keys(
        device_id: impl Into<String>,
        rng: &mut impl RngCore,
    ) -> Result<Self, RegistryError> {
        let mut record = DeviceRecord::new(device_id)?;
        record.primary_key = generate_key(rng);
        record.secondary_key = generate_key(rng);
        Ok(record)
    }

    /// The keys that can validate a token: the non-empty ones.
    fn keys(&self) -> Vec<&str> {
        [self.primary_key.as_str(), self.secondary_key.as_str()]
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect()
    }
}

impl fmt::Debug for DeviceRecord {
    /// Keys are secrets: they never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceRecord")
            .field("device_id", &self.device_id)
            .field("primary_key", &"..")
            .field("secondary_key", &"..")
            .field("enabled", &self.enabled)
            .finish()
    }
}

fn generate_key(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; GENERATED_KEY_BYTES];
    rng.fill_bytes(&mut bytes);
    BASE64.encode(bytes)
}

/// Registry changes that cannot be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A device with this id is registered already (409001 DeviceAlreadyExists).
    #[error("device {0} already exists")]
    AlreadyExists(String),
    /// The id breaks the registry's character set or length (spec file §2.1).
    #[error("{0:?} is not a valid device id")]
    InvalidId(String),
    /// A key of this device is not base64.
    #[error("a key of device {0} is not base64")]
    InvalidKey(String),
}

impl RegistryError {
    /// The IoT Hub error code for this refusal (DOC-ERR).
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::AlreadyExists(_) => ErrorCode::DEVICE_ALREADY_EXISTS,
            RegistryError::InvalidId(_) | RegistryError::InvalidKey(_) => {
                ErrorCode::ARGUMENT_INVALID
            }
        }
    }
}

/// Why a device could not authenticate.
///
/// Devices see little of this (an MQTT refusal is CONNACK 0x05 whatever the reason,
/// spec file §9), so the hub logs [`AuthError::code`] and [`AuthError::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthError {
    /// No device with this id is registered.
    UnknownDevice,
    /// The device is registered but disabled.
    Disabled,
    /// The identity is a module; modules are not in the registry yet.
    ModuleNotSupported,
    /// The token is not of the `SharedAccessSignature sr=..&sig=..&se=..` form
    /// (TV-8).
    MalformedToken,
    /// The token's audience is not `<host>/devices/<deviceId>` for this hub and this
    /// device (spec file §2.3).
    WrongAudience,
    /// The token names a shared access policy (`skn`); policies are not supported yet.
    PolicyNotSupported,
    /// The token's `se`, plus the allowed clock skew, lies in the past (TV-8).
    Expired,
    /// Neither of the device's keys signed the token.
    SignatureMismatch,
}

impl AuthError {
    /// The IoT Hub error code logged for this refusal: 404001 DeviceNotFound for an
    /// unknown device (spec file §9, HTTP column), 401003 IotHubUnauthorized for
    /// everything else. A disabled device gets 401003 too: §9 lists 404 for unknown
    /// and 401 for disabled devices, and DOC-ERR's 401003 covers "authentication
    /// failed for this device".
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::UnknownDevice => ErrorCode::DEVICE_NOT_FOUND,
            _ => ErrorCode::IOT_HUB_UNAUTHORIZED,
        }
    }

    /// A sentence for the hub's log saying what to fix.
    pub const fn reason(&self) -> &'static str {
        match self {
            AuthError::UnknownDevice => "the device is not registered with this hub",
            AuthError::Disabled => "the device is registered but disabled",
            AuthError::ModuleNotSupported => {
                "module identities are not supported by this hub yet; connect as the device"
            }
            AuthError::MalformedToken => {
                "the credential is not a SAS token of the form `SharedAccessSignature sr=..&sig=..&se=..`"
            }
            AuthError::WrongAudience => {
                "the SAS token was issued for another hub host name or another device (check `sr`)"
            }
            AuthError::PolicyNotSupported => {
                "the SAS token was signed with a shared access policy key (`skn`); use the device's own key"
            }
            AuthError::Expired => "the SAS token has expired (check `se` and the device's clock)",
            AuthError::SignatureMismatch => {
                "the SAS token was not signed with the device's primary or secondary key"
            }
        }
    }

    fn from_sas(e: &SasError) -> AuthError {
        match e {
            SasError::Expired => AuthError::Expired,
            // A registry key that is not base64 validates nothing; `Registry::add`
            // refuses such keys, so this is a key edited in place with `get_mut`.
            SasError::SignatureMismatch | SasError::InvalidKey => AuthError::SignatureMismatch,
            _ => AuthError::MalformedToken,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl core::error::Error for AuthError {}

/// Every device the hub knows, by id.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    devices: BTreeMap<String, DeviceRecord>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a device.
    ///
    /// Errors: [`RegistryError::AlreadyExists`] (409001) when the id is taken;
    /// [`RegistryError::InvalidId`] when the record's id is invalid (spec file §2.1);
    /// [`RegistryError::InvalidKey`] when a non-empty key is not base64, so a
    /// mistyped key shows up here and not as every token failing.
    pub fn add(&mut self, record: DeviceRecord) -> Result<(), RegistryError> {
        if !Identity::is_valid_id(&record.device_id) {
            return Err(RegistryError::InvalidId(record.device_id));
        }
        if record.keys().iter().any(|k| BASE64.decode(k).is_err()) {
            return Err(RegistryError::InvalidKey(record.device_id));
        }
        if self.devices.contains_key(&record.device_id) {
            return Err(RegistryError::AlreadyExists(record.device_id));
        }
        self.devices.insert(record.device_id.clone(), record);
        Ok(())
    }

    /// The device with this id (case-sensitive).
    pub fn get(&self, device_id: &str) -> Option<&DeviceRecord> {
        self.devices.get(device_id)
    }

    /// The device with this id, to enable, disable or re-key it. Changing
    /// `device_id` through this reference would leave it filed under its old id;
    /// remove and add it instead.
    pub fn get_mut(&mut self, device_id: &str) -> Option<&mut DeviceRecord> {
        self.devices.get_mut(device_id)
    }

    /// Unregisters a device, returning its record.
    pub fn remove(&mut self, device_id: &str) -> Option<DeviceRecord> {
        self.devices.remove(device_id)
    }

    /// Every device, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &DeviceRecord> {
        self.devices.values()
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is registered.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Checks that `token` (the SAS token string a device presented) proves
    /// `identity`, and returns the device's record.
    ///
    /// `host_names` are the names this hub answers to (a `:port` on them or in the
    /// token is ignored); `skew` is the clock skew allowed past the token's expiry
    /// (spec file §8: EDGE allows 5 minutes).
    ///
    /// The checks, in order (spec file §2.3, server verification):
    /// 1. the identity is a device, not a module ([`AuthError::ModuleNotSupported`]);
    /// 2. the device is registered ([`AuthError::UnknownDevice`]) and enabled
    ///    ([`AuthError::Disabled`]);
    /// 3. the token parses ([`AuthError::MalformedToken`]) and has no `skn`
    ///    ([`AuthError::PolicyNotSupported`]; checked before the audience, because a
    ///    policy token may rightly name a shorter resource such as `<host>/devices`);
    /// 4. its audience, the URL-decoded `sr`, is `<host>/devices/<deviceId>`, with an
    ///    optional `amqps://` or `https://` in front, `<host>` one of `host_names`
    ///    (case-insensitive) and `<deviceId>` the device's id, as written or once more
    ///    percent-decoded ([`AuthError::WrongAudience`]);
    /// 5. the signature matches the primary or the secondary key and the token has
    ///    not expired ([`AuthError::SignatureMismatch`], [`AuthError::Expired`]).
    pub fn authenticate(
        &self,
        identity: &Identity,
        token: &str,
        host_names: &[String],
        now: Timestamp,
        skew: Duration,
    ) -> Result<&DeviceRecord, AuthError> {
        if identity.module_id.is_some() {
            return Err(AuthError::ModuleNotSupported);
        }
        let device = self.devices.get(&identity.device_id).ok_or(AuthError::UnknownDevice)?;
        if !device.enabled {
            return Err(AuthError::Disabled);
        }
        let token = SasToken::parse(token).map_err(|_| AuthError::MalformedToken)?;
        if token.key_name.is_some() {
            return Err(AuthError::PolicyNotSupported);
        }
        if !audience_names_device(&token.audience(), &device.device_id, host_names) {
            return Err(AuthError::WrongAudience);
        }
        let keys = device.keys();
        if keys.is_empty() {
            return Err(AuthError::SignatureMismatch);
        }
        token.verify(&keys, now, skew).map_err(|e| AuthError::from_sas(&e))?;
        Ok(device)
    }
}

/// Whether a token audience (the URL-decoded `sr`) grants access to exactly the
/// device `device_id` on one of `host_names` (spec file §2.3).
///
/// Producers differ (spec file §2.1, §2.3): some percent-encode the device id before
/// encoding the whole resource, so after the one decoding of `sr` the id can still be
/// percent-encoded; the id matches as written or decoded once more. Accepting both
/// never lets one device's token open another device: the signature must still be
/// made with the named device's key.
fn audience_names_device(audience: &str, device_id: &str, host_names: &[String]) -> bool {
    audience_host(audience, device_id).is_some_and(|host| {
        let host = without_port(host);
        host_names.iter().any(|name| without_port(name).eq_ignore_ascii_case(host))
    })
}

/// The host (with its port, if written) of a token audience (the URL-decoded `sr`)
/// that names exactly the device `device_id`, whatever the host: a field gateway
/// does not know its devices' hub names, so it checks the device and passes the
/// host on. `None` when the audience names another device, a module, or no device
/// (spec file §2.3). The id matches as written or percent-decoded once more, as in
/// [`audience_names_device`].
pub(crate) fn audience_host<'a>(audience: &'a str, device_id: &str) -> Option<&'a str> {
    let resource = strip_prefix_ignore_ascii_case(audience, "amqps://")
        .or_else(|| strip_prefix_ignore_ascii_case(audience, "https://"))
        .unwrap_or(audience);
    let (host, path) = resource.split_once('/')?;
    let id = strip_prefix_ignore_ascii_case(path, "devices/")?;
    let id_matches = id == device_id || percent_decode_str(id).eq(device_id.bytes());
    (!host.is_empty() && !id.contains('/') && id_matches).then_some(host)
}

/// `s` without `prefix`, compared ignoring ASCII case.
fn strip_prefix_ignore_ascii_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) { s.get(prefix.len()..) } else { None }
}

/// `host` without a trailing `:port`.
fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// K1: base64 of the bytes 0x00..0x1F (spec file §11).
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// K2 of TV-7.
    const K2: &str = "Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s=";
    const TV3_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
    const TV4_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1%2Fmodules%2Fmodule1&sig=aSJPNyCxfnEudzhZEU6yJNbVb8UQC0RdeXyc7OXVbi8%3D&se=1700000000";
    const TV5_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1&sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000&skn=device";
    const TV6_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdevice1&sig=iIyvul1z7xsjQDMXvGvUxZi%2BlqnXkFn5lOgyNrICYDM%3D&se=1700000000";
    const TV7_TOKEN: &str = "SharedAccessSignature sr=contoso.azure-devices.net%2Fdevices%2FMyDevice01&sig=8kbDyrREn9bM5bMyeo57hT9%2BSZyUnbI7aUPqxPJjlQo%3D&se=1893456000";
    const SKEW: Duration = Duration::from_secs(300);

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn device(id: &str, primary: &str, secondary: &str) -> DeviceRecord {
        let mut d = DeviceRecord::new(id).unwrap();
        d.primary_key = primary.into();
        d.secondary_key = secondary.into();
        d
    }

    fn registry_with(records: Vec<DeviceRecord>) -> Registry {
        let mut r = Registry::new();
        for d in records {
            r.add(d).unwrap();
        }
        r
    }

    /// A second before TV-3's `se`.
    fn before_tv3() -> Timestamp {
        Timestamp::from_unix_secs(1_699_999_999)
    }

    fn myhub() -> Vec<String> {
        hosts(&["myhub.azure-devices.net"])
    }

    #[test]
    fn new_refuses_ids_outside_the_registry_character_set() {
        assert_eq!(DeviceRecord::new("a/b"), Err(RegistryError::InvalidId("a/b".into())));
        assert!(DeviceRecord::new("").is_err());
        let d = DeviceRecord::new("device-1").unwrap();
        assert!(d.enabled && d.primary_key.is_empty() && d.secondary_key.is_empty());
    }

    #[test]
    fn generated_keys_are_base64_of_32_bytes_from_the_given_rng() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let a = DeviceRecord::with_generated_keys("d", &mut rng).unwrap();
        for k in [&a.primary_key, &a.secondary_key] {
            assert_eq!(BASE64.decode(k).unwrap().len(), 32);
        }
        assert_ne!(a.primary_key, a.secondary_key);
        // Same seed, same keys: randomness enters only through the argument.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let b = DeviceRecord::with_generated_keys("d", &mut rng).unwrap();
        assert_eq!(a, b);
        assert!(DeviceRecord::with_generated_keys("no spaces", &mut rng).is_err());
    }

    #[test]
    fn debug_hides_keys() {
        let s = alloc::format!("{:?}", device("d", K1, K2));
        assert!(!s.contains(K1) && !s.contains(K2), "{s}");
    }

    #[test]
    fn add_refuses_duplicates_with_409001() {
        let mut r = registry_with(vec![device("device1", K1, "")]);
        let err = r.add(device("device1", K2, "")).unwrap_err();
        assert_eq!(err, RegistryError::AlreadyExists("device1".into()));
        assert_eq!(err.code().code, 409001);
        // The first record is kept.
        assert_eq!(r.get("device1").unwrap().primary_key, K1);
        // Ids are case-sensitive (spec file §2.1).
        assert!(r.add(device("Device1", K1, "")).is_ok());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn add_refuses_invalid_ids_and_keys() {
        let mut r = Registry::new();
        let mut bad_id = device("d", K1, "");
        bad_id.device_id = "a b".into();
        assert_eq!(r.add(bad_id), Err(RegistryError::InvalidId("a b".into())));
        assert_eq!(
            r.add(device("d", K1, "not base64!")),
            Err(RegistryError::InvalidKey("d".into()))
        );
        assert!(r.is_empty());
    }

    #[test]
    fn get_mut_remove_and_iter_in_id_order() {
        let mut r = registry_with(vec![device("b", K1, ""), device("a", K2, "")]);
        assert_eq!(r.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        r.get_mut("a").unwrap().enabled = false;
        assert!(!r.get("a").unwrap().enabled);
        assert_eq!(r.remove("a").map(|d| d.device_id), Some("a".into()));
        assert_eq!(r.remove("a"), None);
        assert_eq!(r.len(), 1);
        assert!(r.get("a").is_none());
    }

    #[test]
    fn auth_error_codes() {
        assert_eq!(AuthError::UnknownDevice.code().code, 404001);
        for e in [
            AuthError::Disabled,
            AuthError::ModuleNotSupported,
            AuthError::MalformedToken,
            AuthError::WrongAudience,
            AuthError::PolicyNotSupported,
            AuthError::Expired,
            AuthError::SignatureMismatch,
        ] {
            assert_eq!(e.code().code, 401003, "{e:?}");
            assert!(!e.reason().is_empty());
        }
    }

    // --- checks made before the token is parsed ---

    #[test]
    fn module_identities_are_refused() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let id = Identity { device_id: "device1".into(), module_id: Some("module1".into()) };
        let got = r.authenticate(&id, TV4_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::ModuleNotSupported));
    }

    #[test]
    fn unknown_device_is_refused_with_404001() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let got =
            r.authenticate(&Identity::device("device2"), TV3_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::UnknownDevice));
        // Ids are case-sensitive.
        let got =
            r.authenticate(&Identity::device("DEVICE1"), TV3_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::UnknownDevice));
    }

    #[test]
    fn disabled_device_is_refused_even_with_a_good_token() {
        let mut d = device("device1", K1, "");
        d.enabled = false;
        let r = registry_with(vec![d]);
        let got =
            r.authenticate(&Identity::device("device1"), TV3_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::Disabled));
    }

    #[test]
    fn tv8_garbage_password_is_malformed() {
        let r = registry_with(vec![device("device1", K1, "")]);
        for token in ["", "hunter2", "SharedAccessSignature", "\u{0}\u{ffff}%zz"] {
            let got =
                r.authenticate(&Identity::device("device1"), token, &myhub(), before_tv3(), SKEW);
            assert_eq!(got, Err(AuthError::MalformedToken), "{token:?}");
        }
    }

    // --- audience matching (spec file §2.3), independent of the token format ---

    #[test]
    fn audience_is_host_devices_id() {
        let h = myhub();
        assert!(audience_names_device("myhub.azure-devices.net/devices/device1", "device1", &h));
        // Host names compare case-insensitively; ids do not.
        assert!(audience_names_device("MyHub.Azure-Devices.NET/devices/device1", "device1", &h));
        assert!(!audience_names_device("myhub.azure-devices.net/devices/Device1", "device1", &h));
    }

    #[test]
    fn audience_scheme_and_port_are_ignored() {
        let h = myhub();
        for a in [
            "amqps://myhub.azure-devices.net/devices/device1",
            "https://myhub.azure-devices.net/devices/device1",
            "AMQPS://myhub.azure-devices.net/devices/device1",
            "myhub.azure-devices.net:8883/devices/device1",
            "https://myhub.azure-devices.net:443/devices/device1",
        ] {
            assert!(audience_names_device(a, "device1", &h), "{a}");
        }
        // A port on the configured name is ignored too.
        assert!(audience_names_device(
            "myhub.azure-devices.net/devices/device1",
            "device1",
            &hosts(&["myhub.azure-devices.net:8883"])
        ));
        // Other schemes are not stripped.
        assert!(!audience_names_device(
            "mqtts://myhub.azure-devices.net/devices/device1",
            "device1",
            &h
        ));
    }

    #[test]
    fn audience_must_name_this_hub() {
        assert!(!audience_names_device(
            "otherhub.azure-devices.net/devices/device1",
            "device1",
            &myhub()
        ));
        assert!(!audience_names_device("myhub.azure-devices.net/devices/device1", "device1", &[]));
        // Any of several names.
        assert!(audience_names_device(
            "localhost/devices/device1",
            "device1",
            &hosts(&["myhub.azure-devices.net", "localhost"])
        ));
    }

    #[test]
    fn audience_must_name_exactly_this_device() {
        let h = myhub();
        for a in [
            "myhub.azure-devices.net/devices/device2",
            "myhub.azure-devices.net/devices/device10",
            "myhub.azure-devices.net/devices/device1/",
            "myhub.azure-devices.net/devices/device1/modules/module1",
            "myhub.azure-devices.net/devices/",
            "myhub.azure-devices.net/devices",
            "myhub.azure-devices.net",
            "myhub.azure-devices.net/modules/device1",
            "",
            "/devices/device1",
        ] {
            assert!(!audience_names_device(a, "device1", &h), "{a:?}");
        }
    }

    #[test]
    fn audience_device_id_may_be_percent_encoded_once_more() {
        let h = myhub();
        // `dev#1` encoded by a producer that encodes the id, then the resource.
        assert!(audience_names_device("myhub.azure-devices.net/devices/dev%231", "dev#1", &h));
        // An id containing `%` itself, sent encoded only once.
        assert!(audience_names_device("myhub.azure-devices.net/devices/a%41", "a%41", &h));
        // An encoded `/` does not smuggle in a module path.
        assert!(!audience_names_device(
            "myhub.azure-devices.net/devices/device1%2Fmodules%2Fm",
            "device1",
            &h
        ));
        // Invalid escapes and non-ASCII never panic.
        assert!(!audience_names_device("myhub.azure-devices.net/devices/%zz%", "device1", &h));
        assert!(!audience_names_device("é/devices/ü", "device1", &h));
    }

    // --- full verification: these need the real `iothub::sas` ---

    #[test]
    fn tv3_device_token_authenticates() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let got =
            r.authenticate(&Identity::device("device1"), TV3_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got.map(|d| d.device_id.as_str()), Ok("device1"));
    }

    #[test]
    fn tv6_lower_case_escapes_authenticate() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let got =
            r.authenticate(&Identity::device("device1"), TV6_TOKEN, &myhub(), before_tv3(), SKEW);
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn tv7_secondary_key_authenticates() {
        let r = registry_with(vec![device("MyDevice01", K1, K2)]);
        let got = r.authenticate(
            &Identity::device("MyDevice01"),
            TV7_TOKEN,
            &hosts(&["contoso.azure-devices.net"]),
            Timestamp::from_unix_secs(1_893_455_000),
            SKEW,
        );
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn tv4_module_token_is_the_wrong_audience_for_a_device() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let got =
            r.authenticate(&Identity::device("device1"), TV4_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::WrongAudience));
    }

    #[test]
    fn tv3_token_for_another_hub_name_is_the_wrong_audience() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let got = r.authenticate(
            &Identity::device("device1"),
            TV3_TOKEN,
            &hosts(&["otherhub.azure-devices.net"]),
            before_tv3(),
            SKEW,
        );
        assert_eq!(got, Err(AuthError::WrongAudience));
    }

    #[test]
    fn tv5_policy_token_is_refused() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let got =
            r.authenticate(&Identity::device("device1"), TV5_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::PolicyNotSupported));
    }

    #[test]
    fn tv8_token_expires_after_se_plus_skew() {
        let r = registry_with(vec![device("device1", K1, "")]);
        let id = Identity::device("device1");
        let se = Timestamp::from_unix_secs(1_700_000_000);
        // Within the skew allowance: still good.
        let got = r.authenticate(&id, TV3_TOKEN, &myhub(), se + SKEW, SKEW);
        assert!(got.is_ok(), "{got:?}");
        let late = se + SKEW + Duration::from_secs(1);
        let got = r.authenticate(&id, TV3_TOKEN, &myhub(), late, SKEW);
        assert_eq!(got, Err(AuthError::Expired));
    }

    #[test]
    fn token_signed_with_another_key_is_a_signature_mismatch() {
        // TV-3 is signed with K1; the device holds K2 only.
        let r = registry_with(vec![device("device1", K2, "")]);
        let got =
            r.authenticate(&Identity::device("device1"), TV3_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn device_without_keys_never_authenticates() {
        // A token signed with an empty key must not open a keyless device.
        let r = registry_with(vec![device("device1", "", "")]);
        let token = SasToken::sign(
            "myhub.azure-devices.net/devices/device1",
            "",
            Timestamp::from_unix_secs(1_700_000_000),
            None,
        )
        .map(|t| t.to_string())
        .unwrap_or_default();
        let got =
            r.authenticate(&Identity::device("device1"), &token, &myhub(), before_tv3(), SKEW);
        assert!(got.is_err());
        // With a well-formed token the refusal is the signature.
        let got =
            r.authenticate(&Identity::device("device1"), TV3_TOKEN, &myhub(), before_tv3(), SKEW);
        assert_eq!(got, Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn generated_keys_sign_tokens_the_registry_accepts() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let d = DeviceRecord::with_generated_keys("dev#1", &mut rng).unwrap();
        let expiry = Timestamp::from_unix_secs(1_700_003_600);
        let mut r = Registry::new();
        r.add(d.clone()).unwrap();
        for key in [&d.primary_key, &d.secondary_key] {
            let token =
                SasToken::sign("localhost/devices/dev#1", key, expiry, None).unwrap().to_string();
            let got = r.authenticate(
                &Identity::device("dev#1"),
                &token,
                &hosts(&["localhost"]),
                Timestamp::from_unix_secs(1_700_000_000),
                SKEW,
            );
            assert!(got.is_ok(), "{token}: {got:?}");
        }
    }
}
