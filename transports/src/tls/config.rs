//! What each role is configured with: the roots a client trusts, the certificate a server
//! presents. These are the only TLS functions that read files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::TlsError;

/// The TLS versions hubwire offers in both roles: 1.3, and 1.2 for the peers that speak
/// nothing newer (the Python device SDK pins TLS 1.2; spec file §1 "TLS").
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider every configuration uses, named explicitly so that a second
/// provider compiled into the program can never make rustls guess.
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a client trusts: the platform's roots and/or extra CA files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Trust the operating system's root certificates (as `rustls-native-certs` finds them:
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`, the system bundle, the platform store).
    pub platform_roots: bool,
    /// PEM files of further CA certificates to trust, such as the local hub's `ca.pem`.
    pub ca_files: Vec<PathBuf>,
}

/// The roots a [`Trust`] loaded, with counts a program can report.
#[derive(Debug)]
pub struct TrustedRoots {
    /// Every root loaded.
    pub store: RootCertStore,
    /// Platform roots loaded.
    pub platform: usize,
    /// Platform roots (or the files holding them) that could not be read or parsed and were
    /// skipped.
    pub platform_skipped: usize,
    /// Roots loaded from [`Trust::ca_files`].
    pub from_files: usize,
}

impl TrustedRoots {
    /// Loads what `trust` names.
    ///
    /// Errors: a CA file that cannot be read, holds no PEM certificate, or holds one that
    /// does not parse ([`TlsError::CaFile`], naming the file); no root at all
    /// ([`TlsError::NoTrustedRoots`]). Platform roots that fail one by one are skipped and
    /// counted in [`TrustedRoots::platform_skipped`].
    pub fn load(trust: &Trust) -> Result<TrustedRoots, TlsError> {
        let mut roots = TrustedRoots {
            store: RootCertStore::empty(),
            platform: 0,
            platform_skipped: 0,
            from_files: 0,
        };
        if trust.platform_roots {
            let found = rustls_native_certs::load_native_certs();
            let (added, ignored) = roots.store.add_parsable_certificates(found.certs);
            roots.platform = added;
            roots.platform_skipped = ignored + found.errors.len();
        }
        for path in &trust.ca_files {
            let ca_file = |reason: String| TlsError::CaFile { path: path.clone(), reason };
            for (i, cert) in read_certificates(path).map_err(ca_file)?.into_iter().enumerate() {
                roots
                    .store
                    .add(cert)
                    .map_err(|e| ca_file(format!("certificate {} is not usable: {e}", i + 1)))?;
                roots.from_files += 1;
            }
        }
        if roots.store.is_empty() {
            return Err(TlsError::NoTrustedRoots);
        }
        Ok(roots)
    }

    /// A client configuration trusting these roots: TLS 1.2 and 1.3, no client certificate.
    pub fn into_client_config(self) -> Result<Arc<ClientConfig>, TlsError> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Config)?
            .with_root_certificates(self.store)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// The client configuration for `trust`: TLS 1.2 and 1.3, verifying the server's
/// certificate against the trusted roots. Errors as [`TrustedRoots::load`].
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsError> {
    TrustedRoots::load(trust)?.into_client_config()
}

/// The server configuration presenting `chain` (the server's certificate first, then its
/// issuers) with its private `key`: TLS 1.2 and 1.3, no client certificate.
///
/// The one certificate answers every SNI and a hello without one, as IoT Hub answers an
/// unknown or absent SNI with its default certificate (spec file §1, "use SNI if present,
/// never require it").
///
/// Errors: [`TlsError::Config`] when rustls refuses the key or it does not match the
/// certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    Ok(Arc::new(config))
}

/// Reads a certificate chain (PEM, the server's certificate first) and its private key
/// (PEM: PKCS#8, SEC1 or PKCS#1).
///
/// Errors name the file: [`TlsError::CertificateFile`] (unreadable, no certificate, not
/// PEM), [`TlsError::KeyFile`] (unreadable, no key, a key rustls cannot use),
/// [`TlsError::KeyMismatch`] (the key is not the first certificate's).
pub fn load_certificate(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = read_certificates(cert_pem)
        .map_err(|reason| TlsError::CertificateFile { path: cert_pem.to_owned(), reason })?;
    let key_file = |reason: String| TlsError::KeyFile { path: key_pem.to_owned(), reason };
    let text = std::fs::read(key_pem).map_err(|e| key_file(format!("cannot read it: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        key_file(match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no PEM private key (-----BEGIN PRIVATE KEY-----)".to_owned()
            }
            e => format!("not valid PEM: {e}"),
        })
    })?;
    match CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()) {
        Ok(_) => Ok((chain, key)),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(TlsError::KeyMismatch { cert: cert_pem.to_owned(), key: key_pem.to_owned() })
        }
        Err(rustls::Error::InvalidCertificate(e)) => Err(TlsError::CertificateFile {
            path: cert_pem.to_owned(),
            reason: format!("the first certificate does not parse: {e}"),
        }),
        Err(e) => Err(key_file(format!("not a usable private key: {e}"))),
    }
}

/// The certificates in a PEM file, in order; the error says what is wrong (the caller
/// names the file).
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(certs)
}
