//! The devices a `hubwire hub` or `hubwire demo` serves: from `--device` ids and a
//! registry file, keys generated from the operating system's randomness where none
//! are given.

use std::path::Path;

use hubwire_core::hub::{DeviceRecord, RegistryError};
use hubwire_core::iothub::{Authentication, ConnectionString};
use rand_core::OsRng;
use serde::Deserialize;

/// One entry of a registry file: a JSON array of these.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    device_id: String,
    primary_key: Option<String>,
    secondary_key: Option<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A device with two fresh keys.
///
/// Errors: the id breaks the registry's rules (spec file §2.1).
pub(crate) fn generated(device_id: &str) -> Result<DeviceRecord, RegistryError> {
    DeviceRecord::with_generated_keys(device_id, &mut OsRng)
}

/// The devices of the registry file at `path` (if any) followed by `ids`, keys
/// generated where absent, unless `known` (the devices a durable hub kept) has the
/// device: then it keeps its keys, and its connection string stays valid.
///
/// Errors, in words: the file cannot be read or is not a JSON array of entries, or
/// an id is invalid.
pub(crate) fn load(
    path: Option<&Path>,
    ids: &[String],
    known: &[DeviceRecord],
) -> Result<Vec<DeviceRecord>, String> {
    let existing = |id: &str| -> Result<DeviceRecord, String> {
        match known.iter().find(|r| r.device_id == id) {
            Some(record) => Ok(record.clone()),
            None => generated(id).map_err(|e| e.to_string()),
        }
    };
    let mut records = Vec::new();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let entries: Vec<Entry> = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: {e} (expected a JSON array of \
                 {{\"deviceId\",\"primaryKey\",\"secondaryKey\",\"enabled\"}})",
                path.display()
            )
        })?;
        for entry in entries {
            let mut record = existing(&entry.device_id)?;
            if let Some(key) = entry.primary_key {
                record.primary_key = key;
            }
            if let Some(key) = entry.secondary_key {
                record.secondary_key = key;
            }
            record.enabled = entry.enabled;
            records.push(record);
        }
    }
    for id in ids {
        records.push(existing(id)?);
    }
    Ok(records)
}

/// The connection string a device uses to reach this hub with its primary key.
pub(crate) fn connection_string(host_name: String, record: &DeviceRecord) -> ConnectionString {
    ConnectionString {
        host_name,
        device_id: record.device_id.clone(),
        module_id: None,
        authentication: Authentication::SharedAccessKey(record.primary_key.clone()),
        shared_access_key_name: None,
        gateway_host_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("hubwire-{}-{name}.json", std::process::id()));
        if let Err(e) = std::fs::write(&path, text) {
            panic!("{e}");
        }
        path
    }

    #[test]
    fn file_keys_are_kept_and_missing_ones_generated() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let path = write(
            "keys",
            &format!(
                r#"[{{"deviceId":"a","primaryKey":"{key}"}},{{"deviceId":"b","enabled":false}}]"#
            ),
        );
        let records = load(Some(&path), &["c".to_owned()], &[]);
        let _ = std::fs::remove_file(&path);
        let Ok(records) = records else { panic!("{records:?}") };
        let ids: Vec<&str> = records.iter().map(|r| r.device_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(records[0].primary_key, key);
        assert_eq!(records[0].secondary_key.len(), 44, "generated: base64 of 32 bytes");
        assert!(!records[1].enabled);
        assert_ne!(records[1].primary_key, records[2].primary_key);
    }

    #[test]
    fn a_file_that_is_not_a_registry_is_refused_in_words() {
        let path = write("bad", r#"{"deviceId":"a"}"#);
        let result = load(Some(&path), &[], &[]);
        let _ = std::fs::remove_file(&path);
        let Err(e) = result else { panic!("accepted") };
        assert!(e.contains("expected a JSON array"), "{e}");
        assert!(load(None, &["no/slash".to_owned()], &[]).is_err());
    }

    #[test]
    fn a_device_the_store_kept_keeps_its_keys_unless_the_file_gives_others() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let Ok(kept) = generated("a") else { panic!("a is a valid id") };
        let path = write(
            "known",
            &format!(r#"[{{"deviceId":"a"}},{{"deviceId":"b","primaryKey":"{key}"}}]"#),
        );
        let Ok(mut b) = generated("b") else { panic!("b is a valid id") };
        b.primary_key = String::from("kept-b");
        let records = load(Some(&path), &["a".to_owned()], &[kept.clone(), b]);
        let _ = std::fs::remove_file(&path);
        let Ok(records) = records else { panic!("{records:?}") };
        assert_eq!(records[0], kept, "the file names a without keys: the kept ones");
        assert_eq!(records[1].primary_key, key, "the file's key wins");
        assert_eq!(records[2], kept, "--device a: the kept keys");
    }
}
