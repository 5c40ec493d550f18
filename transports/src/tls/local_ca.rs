//! The hub's own certificate authority: IoT Hub devices only speak TLS (spec file §1), so a
//! local hub needs a certificate its devices can be told to trust.
//!
//! On first start [`ensure`] makes a CA (`ca.pem`, `ca-key.pem`) and a server certificate
//! signed by it (`hub.pem`, `hub-key.pem`) in the hub's data directory; devices trust
//! `ca.pem` (`hubwire device --ca`, the Node SDK's `setOptions({ ca })`, the Python SDK's
//! `server_verification_cert`). Later starts keep the CA, so a device set up once keeps
//! working, and re-issue only the server certificate when it must change.
//!
//! [`CertificateAuthority`] is also how tests make the certificates a hub must refuse to
//! be trusted with: expired, not yet valid, for other names, from a CA nobody trusts.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::config::provider;
use super::error::date;
use super::{TlsError, load_certificate};

/// The CA certificate devices are told to trust.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key (mode 0600 on unix).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The hub's certificate chain: its server certificate, then the CA's.
pub const HUB_CERT_FILE: &str = "hub.pem";
/// The hub's private key (mode 0600 on unix).
pub const HUB_KEY_FILE: &str = "hub-key.pem";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a new CA is valid: devices trust it for years without being set up again.
const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// How long a new server certificate is valid.
const HUB_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A server certificate expiring sooner than this is re-issued at start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Certificates start a day early, so that a device whose clock lags the hub's still
/// accepts a certificate made a moment ago.
const BACKDATE: Duration = DAY;

/// Where [`ensure`] left the hub's certificate files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubCertificate {
    /// The CA certificate devices must trust (`ca.pem`).
    pub ca_path: PathBuf,
    /// The hub's certificate chain (`hub.pem`: server certificate, then the CA).
    pub cert_path: PathBuf,
    /// The hub's private key (`hub-key.pem`).
    pub key_path: PathBuf,
    /// Whether the CA or the server certificate was made in this call.
    pub created: bool,
}

/// Why the hub's certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file or directory could not be created, written or renamed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// rcgen could not make a key or a certificate.
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// An existing certificate or key file could not be used.
    #[error(transparent)]
    Load(#[from] TlsError),
    /// One of the CA's two files exists without the other. The CA is never replaced
    /// silently: devices may trust it.
    #[error(
        "{} exists but {} is missing: restore it, or delete {} to make a new CA (devices must \
         then be given the new {CA_CERT_FILE})",
        .present.display(), .missing.display(), .present.display()
    )]
    IncompleteCa {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// No names to put in a server certificate.
    #[error("a server certificate needs at least one host name or IP address")]
    NoNames,
    /// A name is neither a DNS name nor an IP address.
    #[error("{0:?} is neither a DNS name nor an IP address")]
    InvalidName(String),
    /// The CA signed a certificate that does not verify against it: it was not made by
    /// hubwire, or it has expired.
    #[error(
        "{} cannot sign a certificate that verifies against it ({reason}): delete it and its key \
         to make a new CA (devices must then be given the new {CA_CERT_FILE}), or give the hub \
         its own certificate and key",
        .ca.display()
    )]
    UnusableCa {
        /// The CA certificate file.
        ca: PathBuf,
        /// What the verification said.
        reason: String,
    },
}

/// Makes sure `dir` holds a CA and a server certificate it signed for every one of `names`,
/// and says where they are.
///
/// On first use this creates `dir` if needed, a CA ([`CA_CERT_FILE`], [`CA_KEY_FILE`],
/// valid 10 years) and a server certificate ([`HUB_CERT_FILE`]: server certificate then
/// CA; [`HUB_KEY_FILE`]; valid 1 year) for `names`: IP literals become IP address SANs,
/// the others DNS SANs (RFC 5280 §4.2.1.6). Keys are ECDSA P-256; key files are mode 0600
/// on unix.
///
/// Later calls reuse both. The server certificate is re-issued from the same CA when it is
/// missing or unreadable, does not match its key, was not signed by this CA, is not valid
/// now or 30 days from now, or lacks one of `names`: a hub given a new loopback address
/// (127.0.0.N) gets it in its certificate and devices trusting `ca.pem` keep working.
///
/// Errors: [`CaError::NoNames`], [`CaError::InvalidName`] (checked first); file errors;
/// [`CaError::IncompleteCa`] when only one of the CA's files exists;
/// [`CaError::UnusableCa`] when the CA's certificates do not verify.
pub fn ensure(dir: &Path, names: &[String]) -> Result<HubCertificate, CaError> {
    let server_names = parse_names(names)?;
    fs::create_dir_all(dir).map_err(|source| CaError::Io { path: dir.to_owned(), source })?;
    let ca_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let cert_path = dir.join(HUB_CERT_FILE);
    let key_path = dir.join(HUB_KEY_FILE);
    let mut created = false;

    let ca = match (ca_path.exists(), ca_key_path.exists()) {
        (true, true) => CertificateAuthority::load(&ca_path, &ca_key_path)?,
        (false, false) => {
            let ca = CertificateAuthority::new()?;
            ca.save(&ca_path, &ca_key_path)?;
            created = true;
            ca
        }
        (true, false) => {
            return Err(CaError::IncompleteCa { present: ca_path, missing: ca_key_path });
        }
        (false, true) => {
            return Err(CaError::IncompleteCa { present: ca_key_path, missing: ca_path });
        }
    };

    let now = SystemTime::now();
    let current_serves = load_certificate(&cert_path, &key_path)
        .is_ok_and(|(chain, _)| ca.verifies(&chain, &server_names, now).is_ok());
    if !current_serves {
        let (chain, key) = ca.issue(names, backdated(now), now + HUB_VALIDITY)?;
        ca.verifies(&chain, &server_names, now)
            .map_err(|reason| CaError::UnusableCa { ca: ca_path.clone(), reason })?;
        // The key first: a crash between the two writes leaves a pair that does not
        // match, which the next start re-issues.
        write_file(&key_path, &pem_key(&key), Secrecy::Private)?;
        write_file(&cert_path, &pem_certificates(&chain), Secrecy::Public)?;
        created = true;
    }

    Ok(HubCertificate { ca_path, cert_path, key_path, created })
}

/// A certificate authority: a self-signed CA certificate and the key it signs with.
#[derive(Debug)]
pub struct CertificateAuthority {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// A new CA with a fresh ECDSA P-256 key, valid from a day ago for 10 years.
    ///
    /// Errors: [`CaError::Generate`].
    pub fn new() -> Result<CertificateAuthority, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(&key);
        let now = SystemTime::now();
        params.not_before = backdated(now).into();
        params.not_after = (now + CA_VALIDITY).into();
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority { cert: cert.der().clone(), issuer: Issuer::new(params, key) })
    }

    /// The CA saved by [`save`](CertificateAuthority::save): its certificate (PEM) and key
    /// (PEM).
    ///
    /// Errors: [`CaError::Load`] naming the file that cannot be read, parsed, or does not
    /// match the other.
    pub fn load(cert_pem: &Path, key_pem: &Path) -> Result<CertificateAuthority, CaError> {
        let (chain, key) = load_certificate(cert_pem, key_pem)?;
        let key = KeyPair::try_from(&key).map_err(|e| TlsError::KeyFile {
            path: key_pem.to_owned(),
            reason: format!("not a key rcgen can sign with: {e}"),
        })?;
        let cert = chain.into_iter().next().ok_or_else(|| TlsError::CertificateFile {
            path: cert_pem.to_owned(),
            reason: "holds no certificate".to_owned(),
        })?;
        // The issuer's name is derived from its key (see `ca_params`), so the stored key
        // is all it takes to sign as the stored certificate's subject.
        Ok(CertificateAuthority { cert, issuer: Issuer::new(ca_params(&key), key) })
    }

    /// Writes the CA certificate to `cert_pem` and its key to `key_pem` (mode 0600 on unix),
    /// each replaced in one rename.
    ///
    /// Errors: [`CaError::Io`] naming the file.
    pub fn save(&self, cert_pem: &Path, key_pem: &Path) -> Result<(), CaError> {
        let key = PrivateKeyDer::Pkcs8(self.issuer.key().serialize_der().into());
        write_file(key_pem, &pem_key(&key), Secrecy::Private)?;
        write_file(cert_pem, &self.cert_pem(), Secrecy::Public)
    }

    /// A server certificate for `names` (IP literals become IP address SANs, the others DNS
    /// SANs), valid from `not_before` to `not_after`, with a fresh ECDSA P-256 key. Any
    /// times are accepted, so tests can make expired and not-yet-valid certificates.
    ///
    /// Returns the chain a server presents (the new certificate, then this CA's) and the
    /// new key.
    ///
    /// Errors: [`CaError::NoNames`], [`CaError::InvalidName`], [`CaError::Generate`].
    pub fn issue(
        &self,
        names: &[String],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CaError> {
        parse_names(names)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, names.first().map_or("", String::as_str));
        params.distinguished_name = subject;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = vec![cert.der().clone(), self.cert.clone()];
        Ok((chain, key.into()))
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate (PEM), what a device is given to trust.
    pub fn cert_pem(&self) -> String {
        pem_certificates(std::slice::from_ref(&self.cert))
    }

    /// Whether `chain` verifies, as a client trusting only this CA would check it, for
    /// every one of `names`, both at `now` and [`RENEW_BEFORE`] later. The error says
    /// which check failed.
    fn verifies(
        &self,
        chain: &[CertificateDer<'static>],
        names: &[ServerName<'static>],
        now: SystemTime,
    ) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("an empty chain")?;
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| e.to_string())?;
        for at in [now, now + RENEW_BEFORE] {
            let time =
                UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap_or_default());
            for name in names {
                verifier
                    .verify_server_cert(leaf, intermediates, name, &[], time)
                    .map_err(|e| format!("for {} at {}: {e}", name.to_str(), date(time)))?;
            }
        }
        Ok(())
    }
}

/// The CA's parameters, all derived from its key: the subject names the key
/// ("hubwire local CA 1a2b3c4d5e6f7a8b"), which tells CAs of different hubs apart in a
/// trust store and lets [`CertificateAuthority::load`] rebuild the issuer from the key.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String =
        params.key_identifier(key).iter().take(8).map(|b| format!("{b:02x}")).collect();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "hubwire");
    subject.push(DnType::CommonName, format!("hubwire local CA {id}"));
    params.distinguished_name = subject;
    // Path length 0: it signs server certificates, never other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn parse_names(names: &[String]) -> Result<Vec<ServerName<'static>>, CaError> {
    if names.is_empty() {
        return Err(CaError::NoNames);
    }
    names
        .iter()
        .map(|name| {
            ServerName::try_from(name.as_str())
                .map(|n| n.to_owned())
                .map_err(|_| CaError::InvalidName(name.clone()))
        })
        .collect()
}

fn backdated(now: SystemTime) -> SystemTime {
    now.checked_sub(BACKDATE).unwrap_or(now)
}

/// RFC 7468: base64 of the DER in lines of 64 characters between labelled lines.
fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `chain` as PEM `CERTIFICATE` blocks, as `hub.pem` holds it.
pub fn pem_certificates(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|cert| pem("CERTIFICATE", cert)).collect()
}

/// `key` as one PEM block, as `hub-key.pem` holds it.
pub fn pem_key(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem(label, key.secret_der())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Secrecy {
    Public,
    Private,
}

/// Writes `contents` to a temporary file beside `path` and renames it over `path`, so a
/// reader never sees half a file. A private file is mode 0600 on unix from its creation.
fn write_file(path: &Path, contents: &str, secrecy: Secrecy) -> Result<(), CaError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let io_error = |source| CaError::Io { path: path.to_owned(), source };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secrecy == Secrecy::Private {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // A temporary file left by a crash keeps its old mode unless told.
        if tmp.exists() {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io_error)?;
        }
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    let mut file = options.open(&tmp).map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testing::{Pair, TempDir, names};
    use crate::tls::{Trust, client_config, server_config};
    use rustls::pki_types::pem::PemObject;

    fn read(path: &Path) -> Vec<u8> {
        fs::read(path).expect("read")
    }

    /// A client trusting only `ca.pem` connects to a server presenting `hub.pem` for every
    /// one of `names`.
    fn assert_serves(hub: &HubCertificate, names: &[&str]) {
        let (chain, key) = load_certificate(&hub.cert_path, &hub.key_path).expect("load");
        let server = server_config(chain, key).expect("server config");
        let client =
            client_config(&Trust { platform_roots: false, ca_files: vec![hub.ca_path.clone()] })
                .expect("client config");
        for name in names {
            let mut pair = Pair::new(client.clone(), name, server.clone());
            pair.run();
            assert!(pair.connected(), "{name}: {:?} {:?}", pair.client_error, pair.server_error);
        }
    }

    #[test]
    fn first_call_creates_a_ca_and_a_certificate_every_name_verifies() {
        let dir = TempDir::new("create");
        let all = ["localhost", "127.0.0.1", "::1", "hub.example"];
        let hub = ensure(&dir.path().join("certs"), &names(&all)).expect("ensure");
        assert!(hub.created);
        assert_eq!(hub.ca_path, dir.path().join("certs").join(CA_CERT_FILE));
        assert!(dir.path().join("certs").join(CA_KEY_FILE).exists());
        assert_serves(&hub, &all);
        // hub.pem is the chain: server certificate, then the CA.
        let (chain, _) = load_certificate(&hub.cert_path, &hub.key_path).expect("load");
        let (ca, _) = load_certificate(&hub.ca_path, &dir.path().join("certs").join(CA_KEY_FILE))
            .expect("load CA");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca[0]);
    }

    #[test]
    fn second_call_reuses_both() {
        let dir = TempDir::new("reuse");
        let hub_names = names(&["localhost", "127.0.0.1"]);
        let first = ensure(dir.path(), &hub_names).expect("ensure");
        let ca = read(&first.ca_path);
        let cert = read(&first.cert_path);
        let key = read(&first.key_path);
        let second = ensure(dir.path(), &hub_names).expect("ensure");
        assert!(!second.created);
        assert_eq!(second, HubCertificate { created: false, ..first });
        assert_eq!(read(&second.ca_path), ca);
        assert_eq!(read(&second.cert_path), cert);
        assert_eq!(read(&second.key_path), key);
    }

    #[test]
    fn a_new_name_reissues_the_certificate_from_the_same_ca() {
        let dir = TempDir::new("new-name");
        let first = ensure(dir.path(), &names(&["localhost", "127.0.0.1"])).expect("ensure");
        let ca = read(&first.ca_path);
        let cert = read(&first.cert_path);
        let more = ["localhost", "127.0.0.1", "127.0.0.2"];
        let second = ensure(dir.path(), &names(&more)).expect("ensure");
        assert!(second.created);
        assert_eq!(read(&second.ca_path), ca, "the CA devices trust stays");
        assert_ne!(read(&second.cert_path), cert);
        assert_serves(&second, &more);
        // A subset of the names needs nothing new.
        let third = ensure(dir.path(), &names(&["127.0.0.2"])).expect("ensure");
        assert!(!third.created);
    }

    #[test]
    fn a_certificate_expiring_within_30_days_is_reissued() {
        let dir = TempDir::new("renew");
        let hub_names = names(&["localhost"]);
        let first = ensure(dir.path(), &hub_names).expect("ensure");
        let ca = CertificateAuthority::load(&first.ca_path, &dir.path().join(CA_KEY_FILE))
            .expect("load CA");
        let now = SystemTime::now();
        let (chain, key) = ca.issue(&hub_names, now - DAY, now + 10 * DAY).expect("issue");
        write_file(&first.key_path, &pem_key(&key), Secrecy::Private).expect("write");
        write_file(&first.cert_path, &pem_certificates(&chain), Secrecy::Public).expect("write");
        let short_lived = read(&first.cert_path);

        let second = ensure(dir.path(), &hub_names).expect("ensure");
        assert!(second.created);
        assert_ne!(read(&second.cert_path), short_lived);
        assert_serves(&second, &["localhost"]);
    }

    #[test]
    fn a_missing_corrupt_or_foreign_certificate_is_reissued() {
        let dir = TempDir::new("repair");
        let hub_names = names(&["localhost"]);
        let first = ensure(dir.path(), &hub_names).expect("ensure");
        let ca = read(&first.ca_path);

        fs::remove_file(&first.cert_path).expect("remove");
        assert!(ensure(dir.path(), &hub_names).expect("ensure").created);

        fs::write(&first.key_path, "not a key").expect("write");
        assert!(ensure(dir.path(), &hub_names).expect("ensure").created);

        // A certificate from another CA, with its own matching key.
        let other = CertificateAuthority::new().expect("CA");
        let now = SystemTime::now();
        let (chain, key) = other.issue(&hub_names, now - DAY, now + 300 * DAY).expect("issue");
        write_file(&first.key_path, &pem_key(&key), Secrecy::Private).expect("write");
        write_file(&first.cert_path, &pem_certificates(&chain), Secrecy::Public).expect("write");
        let again = ensure(dir.path(), &hub_names).expect("ensure");
        assert!(again.created);
        assert_eq!(read(&again.ca_path), ca);
        assert_serves(&again, &["localhost"]);
    }

    #[test]
    fn a_ca_missing_its_key_is_never_replaced() {
        let dir = TempDir::new("half-ca");
        let first = ensure(dir.path(), &names(&["localhost"])).expect("ensure");
        fs::remove_file(dir.path().join(CA_KEY_FILE)).expect("remove");
        let err = ensure(dir.path(), &names(&["localhost"])).expect_err("refused");
        assert!(matches!(err, CaError::IncompleteCa { .. }), "{err:?}");
        assert!(err.to_string().contains(CA_KEY_FILE), "{err}");
        assert!(first.ca_path.exists());
    }

    #[test]
    fn a_ca_not_made_by_hubwire_is_reported() {
        // A CA whose subject is not the one hubwire derives from its key: rcgen's default.
        let dir = TempDir::new("foreign-ca");
        fs::create_dir_all(dir.path()).expect("dir");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).expect("self-signed");
        let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        write_file(&dir.path().join(CA_KEY_FILE), &pem_key(&key_der), Secrecy::Private)
            .expect("write");
        write_file(
            &dir.path().join(CA_CERT_FILE),
            &pem_certificates(&[cert.der().clone()]),
            Secrecy::Public,
        )
        .expect("write");
        let err = ensure(dir.path(), &names(&["localhost"])).expect_err("refused");
        assert!(matches!(err, CaError::UnusableCa { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(CA_CERT_FILE) && message.contains("for localhost at "),
            "{message}"
        );
    }

    #[test]
    fn names_are_checked_before_anything_is_written() {
        let dir = TempDir::new("names");
        let err = ensure(dir.path(), &[]).expect_err("no names");
        assert!(matches!(err, CaError::NoNames), "{err:?}");
        let err = ensure(dir.path(), &names(&["localhost", "not a name"])).expect_err("bad");
        assert!(matches!(&err, CaError::InvalidName(n) if n == "not a name"), "{err:?}");
        assert!(!dir.path().exists());
    }

    #[test]
    fn the_ca_round_trips_through_its_files() {
        let dir = TempDir::new("ca-files");
        fs::create_dir_all(dir.path()).expect("dir");
        let ca = CertificateAuthority::new().expect("CA");
        let (cert, key) = (dir.path().join("a.pem"), dir.path().join("a-key.pem"));
        ca.save(&cert, &key).expect("save");
        let loaded = CertificateAuthority::load(&cert, &key).expect("load");
        assert_eq!(loaded.cert_der(), ca.cert_der());
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        // What the loaded CA signs verifies against the saved certificate.
        let now = SystemTime::now();
        let (chain, _) =
            loaded.issue(&names(&["localhost"]), now - DAY, now + 60 * DAY).expect("issue");
        let localhost = parse_names(&names(&["localhost"])).expect("name");
        ca.verifies(&chain, &localhost, now).expect("verifies");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("modes");
        let hub = ensure(dir.path(), &names(&["localhost"])).expect("ensure");
        let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&hub.key_path), 0o600);
        assert_eq!(mode(&hub.cert_path) & 0o600, 0o600);
        // A stale temporary key file with a wider mode does not widen the key's.
        let tmp = dir.path().join(format!("{HUB_KEY_FILE}.tmp"));
        fs::write(&tmp, "stale").expect("write");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::remove_file(&hub.cert_path).expect("remove");
        let again = ensure(dir.path(), &names(&["localhost"])).expect("ensure");
        assert_eq!(mode(&again.key_path), 0o600);
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let text = pem("CERTIFICATE", &[0xab; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        // 100 bytes are 136 base64 characters: 64 + 64 + 8.
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
        let back = CertificateDer::from_pem_slice(text.as_bytes()).expect("parses");
        assert_eq!(back.as_ref(), &[0xab; 100][..]);
    }
}
