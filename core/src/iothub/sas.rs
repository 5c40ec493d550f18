//! SAS tokens (spec file §2.3).
//!
//! `SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<policy>]`:
//! the bearer credential a device sends as its MQTT password, CBS token or HTTP
//! `Authorization` header (spec file §2.4). The device signs one with its key; the
//! hub parses and verifies it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

use super::UNRESERVED;
use crate::time::{Duration, Timestamp};

/// How far past `se` a token is still accepted: 5 minutes, the clock-skew
/// allowance of Microsoft's own verifier (spec file §2.3 "Server verification",
/// EDGE; the real hub's value is unconfirmed, spec file §10 item 7).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The word every token starts with.
const PREFIX: &str = "SharedAccessSignature";

/// A parsed SAS token (spec file §2.3, TV-3 … TV-8).
///
/// `Debug` hides the signature: a token is a credential until it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    /// `sr` exactly as it appears in the token (URL-encoded). Kept raw because the
    /// signature covers these exact bytes, escape case included (TV-6).
    pub resource: String,
    /// `sig`, URL-decoded (base64 text).
    pub signature: String,
    /// `se`: expiry, seconds since the Unix epoch.
    pub expiry: u64,
    /// `skn`: the policy name, when a policy key signed it (URL-decoded).
    pub key_name: Option<String>,
}

/// Why a token was refused, or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasError {
    /// Not of the `SharedAccessSignature sr=..&sig=..&se=..` form; the text says
    /// which part is wrong (e.g. `missing sig`).
    #[error("malformed SAS token: {0}")]
    Malformed(&'static str),
    /// `se` (plus the allowed clock skew) lies in the past.
    #[error("SAS token expired")]
    Expired,
    /// The signature matches none of the keys.
    #[error("SAS token signature does not match")]
    SignatureMismatch,
    /// A key is not base64, or decodes to zero bytes.
    #[error("shared access key is not base64")]
    InvalidKey,
}

impl SasToken {
    /// Signs `resource_uri` (unencoded, e.g. `myhub.azure-devices.net/devices/device1`)
    /// with the base64 `key`, valid until `expiry` (rounded down to whole seconds).
    ///
    /// `sr` is `resource_uri` escaped with the Node SDK's strict encoding (upper-case
    /// hex); the signature is `base64(HMAC-SHA256(base64-decoded key, sr + "\n" + se))`
    /// (spec file §2.3, TV-3, TV-4). `key_name` becomes `skn` and is not signed (TV-5).
    ///
    /// # Errors
    /// [`SasError::InvalidKey`] if `key` is not standard padded base64 or is empty;
    /// [`SasError::Malformed`] if `resource_uri` or `key_name` is empty, since
    /// [`SasToken::parse`] refuses such a token.
    pub fn sign(
        resource_uri: &str,
        key: &str,
        expiry: Timestamp,
        key_name: Option<&str>,
    ) -> Result<SasToken, SasError> {
        if resource_uri.is_empty() {
            return Err(SasError::Malformed("empty sr"));
        }
        if key_name.is_some_and(str::is_empty) {
            return Err(SasError::Malformed("empty skn"));
        }
        let key = decode_key(key)?;
        let resource = utf8_percent_encode(resource_uri, UNRESERVED).to_string();
        let expiry = expiry.as_unix_secs();
        let mac = string_to_sign_mac(&key, &resource, expiry)?;
        Ok(SasToken {
            signature: BASE64.encode(mac.finalize().into_bytes()),
            resource,
            expiry,
            key_name: key_name.map(String::from),
        })
    }

    /// Parses a token string (spec file §2.3, TV-8).
    ///
    /// The prefix `SharedAccessSignature` (case-sensitive), one ASCII whitespace,
    /// then one part of `&`-separated fields, each split at its first `=`. Field
    /// names are case-insensitive and may come in any order; unknown fields are
    /// ignored. `sr` is kept raw; `sig` and `skn` are percent-decoded (`+` stays
    /// `+`, as a base64 digit); `se` must be plain decimal seconds without a sign
    /// or leading zeros, so that the signed text is the one [`fmt::Display`] writes.
    ///
    /// # Errors
    /// [`SasError::Malformed`] naming the fault: another prefix, not exactly one
    /// part after it, a field without `=`, a repeated field, a missing or empty
    /// `sr`, `sig` or `se`, an empty `skn`, a non-decimal `se`, or `sr`, `sig` or
    /// `skn` that is not UTF-8 once decoded.
    pub fn parse(s: &str) -> Result<SasToken, SasError> {
        let mut parts = s.split(|c: char| c.is_ascii_whitespace());
        if parts.next() != Some(PREFIX) {
            return Err(SasError::Malformed("prefix is not SharedAccessSignature"));
        }
        let (Some(fields), None) = (parts.next(), parts.next()) else {
            return Err(SasError::Malformed(
                "not exactly one space-separated part after the prefix",
            ));
        };

        let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
        for field in fields.split('&') {
            let (name, value) =
                field.split_once('=').ok_or(SasError::Malformed("field without '='"))?;
            let slot = if name.eq_ignore_ascii_case("sr") {
                &mut sr
            } else if name.eq_ignore_ascii_case("sig") {
                &mut sig
            } else if name.eq_ignore_ascii_case("se") {
                &mut se
            } else if name.eq_ignore_ascii_case("skn") {
                &mut skn
            } else {
                continue;
            };
            // Two values for one field leave it unclear which was signed.
            if slot.replace(value).is_some() {
                return Err(SasError::Malformed("repeated field"));
            }
        }

        let resource = sr.filter(|v| !v.is_empty()).ok_or(SasError::Malformed("missing sr"))?;
        if percent_decode_str(resource).decode_utf8().is_err() {
            return Err(SasError::Malformed("sr is not UTF-8 once decoded"));
        }
        let signature = sig.filter(|v| !v.is_empty()).ok_or(SasError::Malformed("missing sig"))?;
        let signature = url_decode(signature, "sig is not UTF-8 once decoded")?;
        let expiry = se.filter(|v| !v.is_empty()).ok_or(SasError::Malformed("missing se"))?;
        let expiry =
            parse_seconds(expiry).ok_or(SasError::Malformed("se is not decimal seconds"))?;
        let key_name = match skn {
            Some("") => return Err(SasError::Malformed("empty skn")),
            Some(v) => Some(url_decode(v, "skn is not UTF-8 once decoded")?),
            None => None,
        };

        Ok(SasToken { resource: resource.into(), signature, expiry, key_name })
    }

    /// The URL-decoded `sr`: what the token grants access to, e.g.
    /// `myhub.azure-devices.net/devices/device1`. Both escape cases decode alike
    /// (TV-6); `+` stays `+` because ids may contain it (spec file §2.1).
    pub fn audience(&self) -> String {
        percent_decode_str(&self.resource).decode_utf8_lossy().into_owned()
    }

    /// The expiry as a timestamp.
    pub fn expiry_time(&self) -> Timestamp {
        Timestamp::from_unix_secs(self.expiry)
    }

    /// Checks the signature against each base64 key (primary, secondary) and the
    /// expiry against `now` with `skew` of tolerance ([`DEFAULT_CLOCK_SKEW`] is the
    /// usual value), as spec file §2.3 "Server verification" says.
    ///
    /// The HMAC is recomputed over the raw `sr` + `"\n"` + `se` and compared in
    /// constant time. The token is expired when `se + skew < now`, compared in
    /// milliseconds, so it is accepted up to and including `se + skew`.
    ///
    /// # Errors
    /// [`SasError::InvalidKey`] if any key is not base64 or is empty (checked first:
    /// it is the verifier's own misconfiguration);
    /// [`SasError::SignatureMismatch`] if no key produced `sig` (also when `sig` is
    /// not base64, or `keys` is empty); [`SasError::Expired`] if the signature is
    /// good but the token has expired. The signature is checked before the expiry
    /// so that a forged token learns nothing about expiry.
    pub fn verify(&self, keys: &[&str], now: Timestamp, skew: Duration) -> Result<(), SasError> {
        let keys = keys.iter().map(|key| decode_key(key)).collect::<Result<Vec<_>, _>>()?;
        let signature = BASE64.decode(&self.signature).map_err(|_| SasError::SignatureMismatch)?;
        let mut matched = false;
        for key in &keys {
            let mac = string_to_sign_mac(key, &self.resource, self.expiry)?;
            matched |= mac.verify_slice(&signature).is_ok();
        }
        if !matched {
            return Err(SasError::SignatureMismatch);
        }
        if self.expiry_time().saturating_add(skew) < now {
            return Err(SasError::Expired);
        }
        Ok(())
    }
}

/// When a device renews a token it issued at `issued`, valid until `expiry`: at
/// 80 % of its lifetime, as the C SDK does (`SAS_REFRESH_MULTIPLIER .8`, spec file
/// §2.3, §5.2). The rule scales with the configured lifetime, where Node's fixed
/// 45 minutes suits only its own one-hour tokens; for one-hour tokens the two
/// differ by three minutes (48 min against 45). Every protocol renews by it: MQTT by
/// reconnecting, AMQP by another put-token.
pub fn renewal_time(issued: Timestamp, expiry: Timestamp) -> Timestamp {
    issued + expiry.saturating_duration_since(issued) * 4 / 5
}

/// Decodes a shared access key; an empty key would let anyone sign.
fn decode_key(key: &str) -> Result<Vec<u8>, SasError> {
    match BASE64.decode(key) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(SasError::InvalidKey),
    }
}

/// HMAC-SHA256 keyed with `key` over the string to sign, `sr + "\n" + se`
/// (spec file §2.3).
fn string_to_sign_mac(key: &[u8], sr: &str, se: u64) -> Result<Hmac<Sha256>, SasError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| SasError::InvalidKey)?;
    mac.update(sr.as_bytes());
    mac.update(b"\n");
    mac.update(se.to_string().as_bytes());
    Ok(mac)
}

fn url_decode(value: &str, not_utf8: &'static str) -> Result<String, SasError> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| SasError::Malformed(not_utf8))
}

/// `se` in its one canonical spelling: ASCII digits, no sign, no leading zero.
fn parse_seconds(se: &str) -> Option<u64> {
    let canonical = se.bytes().all(|b| b.is_ascii_digit()) && (se == "0" || !se.starts_with('0'));
    if canonical { se.parse().ok() } else { None }
}

impl FromStr for SasToken {
    type Err = SasError;

    /// Same as [`SasToken::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SasToken::parse(s)
    }
}

impl fmt::Display for SasToken {
    /// The canonical token, fields in the C SDK's order `sr, sig, se, skn`:
    /// `SharedAccessSignature sr=<sr as held>&sig=<sig escaped>&se=<se>[&skn=<skn escaped>]`
    /// (spec file §2.3, TV-3, TV-5). `sig` and `skn` are escaped with upper-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} sr={}&sig={}&se={}",
            self.resource,
            utf8_percent_encode(&self.signature, UNRESERVED),
            self.expiry
        )?;
        if let Some(key_name) = &self.key_name {
            write!(f, "&skn={}", utf8_percent_encode(key_name, UNRESERVED))?;
        }
        Ok(())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("resource", &self.resource)
            .field("signature", &format_args!(".."))
            .field("expiry", &self.expiry)
            .field("key_name", &self.key_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use proptest::prelude::*;

    /// K1: base64 of the 32 bytes 0x00..=0x1F (spec file §11).
    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// K2 (TV-7).
    const K2: &str = "Vp/2qy7EnX5RXLjBT62+o3PFLf8njJWiM6FEJqEiR6s=";
    const SE: u64 = 1_700_000_000;
    const TV3_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
        &sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000";
    const TV6_TOKEN: &str = "SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdevice1\
        &sig=iIyvul1z7xsjQDMXvGvUxZi%2BlqnXkFn5lOgyNrICYDM%3D&se=1700000000";

    fn at(se: u64) -> Timestamp {
        Timestamp::from_unix_secs(se)
    }

    #[test]
    fn tv3_device_token_signature() {
        let token =
            SasToken::sign("myhub.azure-devices.net/devices/device1", K1, at(SE), None).unwrap();
        assert_eq!(token.resource, "myhub.azure-devices.net%2Fdevices%2Fdevice1");
        assert_eq!(token.signature, "gFSfLGMXDOvf906/iaX3KwzLLNFHgaFZyCbsGjxtd1Y=");
        assert_eq!(token.expiry, SE);
        assert_eq!(token.to_string(), TV3_TOKEN);
        assert_eq!(SasToken::parse(TV3_TOKEN), Ok(token.clone()));
        assert_eq!(token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW), Ok(()));
    }

    #[test]
    fn sign_rounds_the_expiry_down_to_seconds() {
        let token = SasToken::sign(
            "myhub.azure-devices.net/devices/device1",
            K1,
            Timestamp::from_millis(SE * 1000 + 999),
            None,
        )
        .unwrap();
        assert_eq!(token.to_string(), TV3_TOKEN);
    }

    #[test]
    fn tv4_module_token_signature() {
        let token = SasToken::sign(
            "myhub.azure-devices.net/devices/device1/modules/module1",
            K1,
            at(SE),
            None,
        )
        .unwrap();
        assert_eq!(
            token.resource,
            "myhub.azure-devices.net%2Fdevices%2Fdevice1%2Fmodules%2Fmodule1"
        );
        assert_eq!(token.signature, "aSJPNyCxfnEudzhZEU6yJNbVb8UQC0RdeXyc7OXVbi8=");
        assert_eq!(
            token.to_string(),
            "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1%2Fmodules%2Fmodule1\
             &sig=aSJPNyCxfnEudzhZEU6yJNbVb8UQC0RdeXyc7OXVbi8%3D&se=1700000000"
        );
    }

    #[test]
    fn tv5_policy_name_is_not_signed() {
        let tv5 = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice1\
                   &sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&se=1700000000&skn=device";
        let token =
            SasToken::sign("myhub.azure-devices.net/devices/device1", K1, at(SE), Some("device"))
                .unwrap();
        assert_eq!(token.key_name.as_deref(), Some("device"));
        assert_eq!(token.to_string(), tv5);
        let parsed = SasToken::parse(tv5).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.signature, SasToken::parse(TV3_TOKEN).unwrap().signature);
        assert_eq!(parsed.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW), Ok(()));
    }

    #[test]
    fn tv6_lower_case_escapes_verify_over_the_raw_sr() {
        let lower = SasToken::parse(TV6_TOKEN).unwrap();
        let upper = SasToken::parse(TV3_TOKEN).unwrap();
        assert_eq!(lower.resource, "myhub.azure-devices.net%2fdevices%2fdevice1");
        assert_eq!(lower.signature, "iIyvul1z7xsjQDMXvGvUxZi+lqnXkFn5lOgyNrICYDM=");
        assert_eq!(lower.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW), Ok(()));
        assert_eq!(upper.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW), Ok(()));
        assert_eq!(lower.audience(), "myhub.azure-devices.net/devices/device1");
        assert_eq!(lower.audience(), upper.audience());
        // Display keeps the escape case it received.
        assert_eq!(lower.to_string(), TV6_TOKEN);
    }

    #[test]
    fn tv6_signature_of_one_escape_case_fails_for_the_other() {
        let mixed = SasToken {
            resource: "myhub.azure-devices.net%2fdevices%2fdevice1".into(),
            ..SasToken::parse(TV3_TOKEN).unwrap()
        };
        assert_eq!(
            mixed.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
    }

    #[test]
    fn tv7_second_key_signs_and_verifies() {
        let tv7 = "SharedAccessSignature sr=contoso.azure-devices.net%2Fdevices%2FMyDevice01\
                   &sig=8kbDyrREn9bM5bMyeo57hT9%2BSZyUnbI7aUPqxPJjlQo%3D&se=1893456000";
        let token = SasToken::sign(
            "contoso.azure-devices.net/devices/MyDevice01",
            K2,
            at(1_893_456_000),
            None,
        )
        .unwrap();
        assert_eq!(token.signature, "8kbDyrREn9bM5bMyeo57hT9+SZyUnbI7aUPqxPJjlQo=");
        assert_eq!(token.to_string(), tv7);
        let parsed = SasToken::parse(tv7).unwrap();
        let now = at(1_893_456_000);
        // Primary K1 does not match; secondary K2 does.
        assert_eq!(parsed.verify(&[K1, K2], now, DEFAULT_CLOCK_SKEW), Ok(()));
        assert_eq!(parsed.verify(&[K1], now, DEFAULT_CLOCK_SKEW), Err(SasError::SignatureMismatch));
    }

    #[test]
    fn tv8_fields_in_any_order() {
        let reordered = "SharedAccessSignature sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D\
                         &se=1700000000&sr=myhub.azure-devices.net%2Fdevices%2Fdevice1";
        let token = SasToken::parse(reordered).unwrap();
        assert_eq!(token, SasToken::parse(TV3_TOKEN).unwrap());
        assert_eq!(token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW), Ok(()));
        // Display writes the canonical order sr, sig, se.
        assert_eq!(token.to_string(), TV3_TOKEN);
    }

    #[test]
    fn tv8_expired_after_se_plus_skew() {
        let token = SasToken::parse(TV3_TOKEN).unwrap();
        let deadline = at(SE) + DEFAULT_CLOCK_SKEW;
        assert_eq!(token.verify(&[K1], deadline, DEFAULT_CLOCK_SKEW), Ok(()));
        assert_eq!(
            token.verify(
                &[K1],
                Timestamp::from_millis(deadline.as_millis() + 1),
                DEFAULT_CLOCK_SKEW
            ),
            Err(SasError::Expired)
        );
        assert_eq!(token.verify(&[K1], at(SE + 1), Duration::ZERO), Err(SasError::Expired));
    }

    #[test]
    fn tv8_missing_fields_are_malformed() {
        for (token, fault) in [
            ("SharedAccessSignature sig=a%3D&se=1700000000", "missing sr"),
            ("SharedAccessSignature sr=h%2Fd&se=1700000000", "missing sig"),
            ("SharedAccessSignature sr=h%2Fd&sig=a%3D", "missing se"),
            ("SharedAccessSignature sr=&sig=a%3D&se=1", "missing sr"),
            ("SharedAccessSignature sr=h&sig=&se=1", "missing sig"),
            ("SharedAccessSignature sr=h&sig=a&se=", "missing se"),
        ] {
            assert_eq!(SasToken::parse(token), Err(SasError::Malformed(fault)), "{token}");
        }
    }

    #[test]
    fn tv8_other_prefix_is_malformed() {
        for token in [
            "SharedAccessSig sr=h&sig=a&se=1",
            "sharedaccesssignature sr=h&sig=a&se=1",
            "Bearer sr=h&sig=a&se=1",
            "sr=h&sig=a&se=1",
            "",
        ] {
            assert_eq!(
                SasToken::parse(token),
                Err(SasError::Malformed("prefix is not SharedAccessSignature")),
                "{token}"
            );
        }
    }

    #[test]
    fn tv8_not_exactly_one_part_is_malformed() {
        for token in [
            "SharedAccessSignature",
            "SharedAccessSignature sr=h&sig=a&se=1 extra",
            "SharedAccessSignature  sr=h&sig=a&se=1",
            "SharedAccessSignature sr=h&sig=a&se=1 ",
        ] {
            assert_eq!(
                SasToken::parse(token),
                Err(SasError::Malformed("not exactly one space-separated part after the prefix")),
                "{token}"
            );
        }
    }

    #[test]
    fn field_names_are_case_insensitive() {
        let shouting = "SharedAccessSignature SR=myhub.azure-devices.net%2Fdevices%2Fdevice1\
                        &Sig=gFSfLGMXDOvf906%2FiaX3KwzLLNFHgaFZyCbsGjxtd1Y%3D&SE=1700000000&SKN=p";
        let token = SasToken::parse(shouting).unwrap();
        assert_eq!(token.key_name.as_deref(), Some("p"));
        assert_eq!(token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW), Ok(()));
    }

    #[test]
    fn unknown_fields_are_ignored_and_repeats_refused() {
        let token = SasToken::parse("SharedAccessSignature sr=h&x=y&sig=a&se=1").unwrap();
        assert_eq!(token.resource, "h");
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=h&sig=a&se=1&SR=g"),
            Err(SasError::Malformed("repeated field"))
        );
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=h&sig=a&se=1&"),
            Err(SasError::Malformed("field without '='"))
        );
    }

    #[test]
    fn se_must_be_canonical_decimal_seconds() {
        for se in ["+1", "-1", "01", "1e9", "1.5", "18446744073709551616", "%31"] {
            let token = format!("SharedAccessSignature sr=h&sig=a&se={se}");
            assert_eq!(
                SasToken::parse(&token),
                Err(SasError::Malformed("se is not decimal seconds")),
                "{se}"
            );
        }
        let token = SasToken::parse("SharedAccessSignature sr=h&sig=a&se=0").unwrap();
        assert_eq!(token.expiry, 0);
        let token =
            SasToken::parse("SharedAccessSignature sr=h&sig=a&se=18446744073709551615").unwrap();
        assert_eq!(token.expiry, u64::MAX);
        // The largest expiry saturates instead of overflowing: never expired.
        assert_eq!(
            token.verify(&[K1], Timestamp::from_millis(u64::MAX), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
    }

    #[test]
    fn sig_and_skn_are_url_decoded_and_must_be_utf8() {
        let token =
            SasToken::parse("SharedAccessSignature sr=h&sig=a%2bb+c%3d&se=1&skn=my%20policy")
                .unwrap();
        assert_eq!(token.signature, "a+b+c=");
        assert_eq!(token.key_name.as_deref(), Some("my policy"));
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=h&sig=%FF&se=1"),
            Err(SasError::Malformed("sig is not UTF-8 once decoded"))
        );
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=%C3%28&sig=a&se=1"),
            Err(SasError::Malformed("sr is not UTF-8 once decoded"))
        );
        assert_eq!(
            SasToken::parse("SharedAccessSignature sr=h&sig=a&se=1&skn="),
            Err(SasError::Malformed("empty skn"))
        );
    }

    #[test]
    fn audience_keeps_plus_signs() {
        let token =
            SasToken::parse("SharedAccessSignature sr=h%2Fdevices%2Fa+b&sig=a&se=1").unwrap();
        assert_eq!(token.audience(), "h/devices/a+b");
    }

    #[test]
    fn tampered_signature_fails() {
        let mut token = SasToken::parse(TV3_TOKEN).unwrap();
        // Flip the first base64 digit: still valid base64, different bytes.
        token.signature.replace_range(0..1, "h");
        assert_eq!(
            token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
        token.signature = "not base64!".into();
        assert_eq!(
            token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
        // A truncated tag is refused, not compared as a prefix.
        token.signature = BASE64.encode([0u8; 16]);
        assert_eq!(
            token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
    }

    #[test]
    fn tampered_expiry_fails() {
        let mut token = SasToken::parse(TV3_TOKEN).unwrap();
        token.expiry += 3600;
        assert_eq!(
            token.verify(&[K1], at(SE), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
    }

    #[test]
    fn wrong_key_fails() {
        let token = SasToken::parse(TV3_TOKEN).unwrap();
        assert_eq!(
            token.verify(&[K2], at(SE), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
        assert_eq!(token.verify(&[], at(SE), DEFAULT_CLOCK_SKEW), Err(SasError::SignatureMismatch));
    }

    #[test]
    fn forged_and_expired_reports_the_signature() {
        let token = SasToken::parse(TV3_TOKEN).unwrap();
        assert_eq!(
            token.verify(&[K2], at(SE + 3600), DEFAULT_CLOCK_SKEW),
            Err(SasError::SignatureMismatch)
        );
        assert_eq!(token.verify(&[K1], at(SE + 3600), DEFAULT_CLOCK_SKEW), Err(SasError::Expired));
    }

    #[test]
    fn keys_that_are_not_base64_are_invalid() {
        for key in ["not base64!", "", "AAECAw"] {
            assert_eq!(
                SasToken::sign("h/devices/d", key, at(SE), None),
                Err(SasError::InvalidKey),
                "{key}"
            );
            assert_eq!(
                SasToken::parse(TV3_TOKEN).unwrap().verify(&[K1, key], at(SE), DEFAULT_CLOCK_SKEW),
                Err(SasError::InvalidKey),
                "{key}"
            );
        }
    }

    #[test]
    fn sign_refuses_what_parse_would_refuse() {
        assert_eq!(SasToken::sign("", K1, at(SE), None), Err(SasError::Malformed("empty sr")));
        assert_eq!(
            SasToken::sign("h/devices/d", K1, at(SE), Some("")),
            Err(SasError::Malformed("empty skn"))
        );
    }

    #[test]
    fn sign_escapes_like_encode_uri_component_strict() {
        let token = SasToken::sign("h:8883/devices/a+b!'()*~ é", K1, at(SE), None).unwrap();
        assert_eq!(token.resource, "h%3A8883%2Fdevices%2Fa%2Bb%21%27%28%29%2A~%20%C3%A9");
        assert_eq!(token.audience(), "h:8883/devices/a+b!'()*~ é");
    }

    #[test]
    fn debug_hides_the_signature() {
        let token = SasToken::parse(TV3_TOKEN).unwrap();
        let debug = format!("{token:?}");
        assert!(!debug.contains("gFSfLGMX"), "{debug}");
        assert!(debug.contains("1700000000"), "{debug}");
    }

    proptest! {
        #[test]
        fn sign_display_parse_verify_round_trips(
            resource in "\\PC{1,40}",
            key in proptest::collection::vec(any::<u8>(), 1..80),
            expiry_ms in 0u64..=u64::MAX / 2,
            key_name in proptest::option::of("\\PC{1,16}"),
        ) {
            let key = BASE64.encode(&key);
            let expiry = Timestamp::from_millis(expiry_ms);
            let token = SasToken::sign(&resource, &key, expiry, key_name.as_deref()).unwrap();
            let parsed = SasToken::parse(&token.to_string()).unwrap();
            prop_assert_eq!(&parsed, &token);
            prop_assert_eq!(parsed.audience(), resource);
            // `se` is whole seconds: the token lives until `expiry` rounded down.
            let deadline = parsed.expiry_time();
            prop_assert_eq!(parsed.verify(&[&key], deadline, Duration::ZERO), Ok(()));
        }

        #[test]
        fn parse_never_panics(
            fields in proptest::collection::vec(
                prop_oneof![
                    "(sr|SIG|se|skn)=[^& ]{0,12}",
                    "\\PC{0,12}",
                ],
                0..6,
            ),
            prefix in prop_oneof![Just(String::from("SharedAccessSignature ")), "\\PC{0,24}"],
        ) {
            let token = format!("{prefix}{}", fields.join("&"));
            if let Ok(token) = SasToken::parse(&token) {
                let _ = token.audience();
                let _ = token.verify(&[K1], Timestamp::EPOCH, DEFAULT_CLOCK_SKEW);
            }
        }
    }
}
