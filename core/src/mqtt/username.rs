//! The CONNECT User Name IoT Hub expects (spec file §4.1.1, TV-9):
//! `{host}/{device}[/{module}]/?api-version=…&DeviceClientType=…[&model-id=…]`.
//!
//! Reading accepts what the SDKs send and what EDGE's parser accepts: the query
//! after `/?`, the older C SDK's query without `?`, and no query at all.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use percent_encoding::utf8_percent_encode;

use crate::iothub::{Identity, UNRESERVED, percent_decode};

/// The `api-version` [`Username::format`] writes: the Node SDK's (spec file §4.1.1).
pub const API_VERSION: &str = "2021-04-12";

/// A parsed IoT Hub MQTT user name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username {
    /// Host name, as the device wrote it (no SDK encodes it).
    pub host_name: String,
    /// Device (and module) identity from the path, as written (no SDK encodes ids
    /// here).
    pub identity: Identity,
    /// `api-version`, if given: optional, as DOC-SAS shows user names without one.
    pub api_version: Option<String>,
    /// `DeviceClientType`, percent-decoded: the SDK's user agent.
    pub client_type: Option<String>,
    /// `model-id`, percent-decoded: the IoT Plug and Play model (DTMI).
    pub model_id: Option<String>,
}

/// Why a user name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameError {
    /// Not `host/device[/module][/[?]query]`: empty host or id, or too many
    /// segments.
    #[error("malformed IoT Hub user name")]
    Malformed,
    /// A device or module id outside the registry's character set (spec file §2.1).
    #[error("invalid device or module id in user name")]
    InvalidId,
    /// A recognised query value with a broken `%` escape or escapes that decode to
    /// invalid UTF-8.
    #[error("invalid percent-encoding in user name")]
    InvalidEncoding,
}

impl Username {
    /// Parses a user name (spec file §4.1.1, TV-9).
    ///
    /// The name is split on `/`. A last segment that starts with `?`, or (the older C
    /// SDK's form) contains `api-version=`, is the query; an empty last segment is a
    /// trailing `/`. What remains is `host/device` or `host/device/module`. The query
    /// is split on `&` and each pair at its first `=` (a bare key has the value
    /// `""`); values are percent-decoded (either hex case, `+` stays `+`).
    /// `api-version`, `DeviceClientType` and `model-id` are read, each from its first
    /// occurrence as EDGE does; other keys are ignored.
    ///
    /// # Errors
    ///
    /// [`UsernameError::Malformed`] for an empty host or id or a path of other than
    /// two or three segments, [`UsernameError::InvalidId`] for an id outside the
    /// registry's character set, [`UsernameError::InvalidEncoding`] for a bad escape
    /// in a value that is read.
    pub fn parse(s: &str) -> Result<Username, UsernameError> {
        // host/device/module/query at most: a fifth segment makes it malformed.
        let segments: Vec<&str> = s.splitn(5, '/').collect();
        let (path, query) = match segments.split_last() {
            Some((last, path)) if path.len() >= 2 => {
                if let Some(query) = last.strip_prefix('?') {
                    (path, Some(query))
                } else if last.contains("api-version=") {
                    (path, Some(*last))
                } else if last.is_empty() {
                    (path, None)
                } else {
                    (segments.as_slice(), None)
                }
            }
            _ => (segments.as_slice(), None),
        };
        let (host_name, device_id, module_id) = match *path {
            [host, device] => (host, device, None),
            [host, device, module] => (host, device, Some(module)),
            _ => return Err(UsernameError::Malformed),
        };
        if host_name.is_empty() || device_id.is_empty() || module_id == Some("") {
            return Err(UsernameError::Malformed);
        }
        if !Identity::is_valid_id(device_id) || !module_id.is_none_or(Identity::is_valid_id) {
            return Err(UsernameError::InvalidId);
        }

        let mut username = Username {
            host_name: host_name.into(),
            identity: Identity {
                device_id: device_id.into(),
                module_id: module_id.map(String::from),
            },
            api_version: None,
            client_type: None,
            model_id: None,
        };
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "api-version" => &mut username.api_version,
                "DeviceClientType" => &mut username.client_type,
                "model-id" => &mut username.model_id,
                _ => continue,
            };
            if slot.is_none() {
                let value = percent_decode(value).ok_or(UsernameError::InvalidEncoding)?;
                *slot = Some(value.into_owned());
            }
        }
        Ok(username)
    }

    /// Formats the user name a device sends:
    /// `{host}/{device}[/{module}]/?api-version=2021-04-12&DeviceClientType={client_type}`,
    /// the client type percent-encoded except RFC 3986 unreserved characters (spec file
    /// §4.1, §4.1.1). The host and ids go in as they are.
    pub fn format(host_name: &str, identity: &Identity, client_type: &str) -> String {
        let mut s = format!("{host_name}/{identity}/?api-version={API_VERSION}&DeviceClientType=");
        s.extend(utf8_percent_encode(client_type, UNRESERVED));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOST: &str = "myhub.azure-devices.net";

    /// The user name with these parts: (host, device, module, api-version, client
    /// type, model id).
    fn expect(
        host_name: &str,
        device_id: &str,
        module_id: Option<&str>,
        api_version: Option<&str>,
        client_type: Option<&str>,
        model_id: Option<&str>,
    ) -> Result<Username, UsernameError> {
        Ok(Username {
            host_name: host_name.into(),
            identity: Identity {
                device_id: device_id.into(),
                module_id: module_id.map(String::from),
            },
            api_version: api_version.map(String::from),
            client_type: client_type.map(String::from),
            model_id: model_id.map(String::from),
        })
    }

    #[test]
    fn tv9_node_user_name() {
        assert_eq!(
            Username::parse(
                "myhub.azure-devices.net/device1/?api-version=2021-04-12\
                 &DeviceClientType=azure-iot-device%2F1.18.3%20(node%20v18.0.0%3B%20Linux%3B%20x64)"
            ),
            expect(
                HOST,
                "device1",
                None,
                Some("2021-04-12"),
                Some("azure-iot-device/1.18.3 (node v18.0.0; Linux; x64)"),
                None
            )
        );
    }

    #[test]
    fn tv9_sdk_c_module_user_name_with_model_id() {
        assert_eq!(
            Username::parse(
                "myhub.azure-devices.net/device1/module1/?api-version=2020-09-30\
                 &DeviceClientType=azsdk-c%2F1.5.0&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
            ),
            expect(
                HOST,
                "device1",
                Some("module1"),
                Some("2020-09-30"),
                Some("azsdk-c/1.5.0"),
                Some("dtmi:com:example:Thermostat;1")
            )
        );
    }

    #[test]
    fn tv9_older_c_sdk_user_name_without_question_mark() {
        // Lower-case hex escapes, as that SDK wrote them.
        assert_eq!(
            Username::parse(
                "myhub.azure-devices.net/device1/api-version=2016-11-14\
                 &DeviceClientType=iothubclient%2f1.1.27%20(Linux%3b%20armv7l)"
            ),
            expect(
                HOST,
                "device1",
                None,
                Some("2016-11-14"),
                Some("iothubclient/1.1.27 (Linux; armv7l)"),
                None
            )
        );
    }

    #[test]
    fn tv9_user_name_without_query() {
        assert_eq!(
            Username::parse("myhub.azure-devices.net/device1"),
            expect(HOST, "device1", None, None, None, None)
        );
    }

    #[test]
    fn node_model_id_unencoded_before_client_type() {
        assert_eq!(
            Username::parse(
                "myhub.azure-devices.net/device1/?api-version=2021-04-12\
                 &model-id=dtmi:com:example:Thermostat;1&DeviceClientType=azure-iot-device%2F1.18.3"
            ),
            expect(
                HOST,
                "device1",
                None,
                Some("2021-04-12"),
                Some("azure-iot-device/1.18.3"),
                Some("dtmi:com:example:Thermostat;1")
            )
        );
    }

    #[test]
    fn trailing_slash_and_module_without_query() {
        assert_eq!(
            Username::parse("myhub.azure-devices.net/device1/"),
            expect(HOST, "device1", None, None, None, None)
        );
        assert_eq!(
            Username::parse("myhub.azure-devices.net/device1/module1"),
            expect(HOST, "device1", Some("module1"), None, None, None)
        );
        assert_eq!(
            Username::parse("myhub.azure-devices.net/device1/module1/?"),
            expect(HOST, "device1", Some("module1"), None, None, None)
        );
    }

    #[test]
    fn duplicate_keys_keep_the_first_and_unknown_keys_are_ignored() {
        assert_eq!(
            Username::parse(
                "h/d/?api-version=2021-04-12&auth-chain=x&api-version=1999-01-01\
                 &DeviceClientType=a&DeviceClientType=%zz&&model-id"
            ),
            expect("h", "d", None, Some("2021-04-12"), Some("a"), Some(""))
        );
    }

    #[test]
    fn plus_in_a_value_is_not_a_space() {
        assert_eq!(
            Username::parse("h/d/?DeviceClientType=a+b").map(|u| u.client_type),
            Ok(Some("a+b".into()))
        );
    }

    #[test]
    fn ids_with_question_marks_stay_in_the_path() {
        // `?` is a legal id character (spec file §2.1).
        assert_eq!(
            Username::parse("h/d?1/m?2/?api-version=x"),
            expect("h", "d?1", Some("m?2"), Some("x"), None, None)
        );
    }

    #[test]
    fn malformed_user_names_are_refused() {
        for s in [
            "",
            "myhub",
            "myhub/",
            "/device1/?api-version=2021-04-12",
            "myhub//?api-version=2021-04-12",
            "myhub/device1//?api-version=2021-04-12",
            "myhub/device1/module1/extra",
            "myhub/device1/module1/extra/?api-version=2021-04-12",
            "myhub/device1/module1/extra/more/?api-version=2021-04-12",
            "//",
            "///",
        ] {
            assert_eq!(Username::parse(s), Err(UsernameError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn invalid_ids_are_refused() {
        for s in
            ["myhub/dev ice/?api-version=2021-04-12", "myhub/device1/mod ule/", "myhub/device°/"]
        {
            assert_eq!(Username::parse(s), Err(UsernameError::InvalidId), "{s:?}");
        }
        let long = ["myhub/", &"x".repeat(129)].concat();
        assert_eq!(Username::parse(&long), Err(UsernameError::InvalidId));
    }

    #[test]
    fn broken_escapes_in_read_values_are_refused() {
        for s in ["h/d/?DeviceClientType=%zz", "h/d/?model-id=%C3", "h/d/?api-version=%"] {
            assert_eq!(Username::parse(s), Err(UsernameError::InvalidEncoding), "{s:?}");
        }
        // Values that are not read are not checked.
        assert!(Username::parse("h/d/?other=%zz").is_ok());
    }

    #[test]
    fn format_writes_the_node_form() {
        let identity = Identity::device("device1");
        assert_eq!(
            Username::format(HOST, &identity, "hubwire/0.1.0 (rust; linux)"),
            "myhub.azure-devices.net/device1/?api-version=2021-04-12\
             &DeviceClientType=hubwire%2F0.1.0%20%28rust%3B%20linux%29"
        );
        let module = Identity { device_id: "device1".into(), module_id: Some("module1".into()) };
        assert_eq!(
            Username::format(HOST, &module, ""),
            "myhub.azure-devices.net/device1/module1/?api-version=2021-04-12&DeviceClientType="
        );
    }

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9\\-.+%_#*?!(),=@$']{1,128}"
    }

    proptest! {
        #[test]
        fn format_then_parse_gives_the_parts_back(
            host_name in "[a-z0-9][a-z0-9.-]{0,62}",
            device_id in id(),
            module_id in proptest::option::of(id()),
            client_type in any::<String>(),
        ) {
            let identity = Identity { device_id, module_id };
            let s = Username::format(&host_name, &identity, &client_type);
            prop_assert_eq!(
                Username::parse(&s),
                Ok(Username {
                    host_name,
                    identity,
                    api_version: Some(API_VERSION.into()),
                    client_type: Some(client_type),
                    model_id: None,
                })
            );
        }

        #[test]
        fn parse_never_panics(
            s in prop_oneof![any::<String>(), "(h|/|\\?|d|api-version=|&|=|%2|%|model-id=)*"],
        ) {
            let _ = Username::parse(&s);
        }
    }
}
