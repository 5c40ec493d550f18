//! Test harness: a client and a server [`Tls`] joined in memory, certificates from a
//! [`CertificateAuthority`], and scratch directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::local_ca::CertificateAuthority;
use super::{Tls, TlsError, TrustedRoots, server_config};

pub(crate) const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Names as `ensure` and `issue` take them.
pub(crate) fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A server configuration presenting a certificate from `ca` for `names`, valid from
/// `not_before` to `not_after`.
pub(crate) fn server_with(
    ca: &CertificateAuthority,
    names: &[&str],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Arc<ServerConfig> {
    let (chain, key) = ca.issue(&self::names(names), not_before, not_after).expect("issue");
    server_config(chain, key).expect("server config")
}

/// A server configuration presenting a certificate from `ca` for `names`, valid now.
pub(crate) fn server_for(ca: &CertificateAuthority, names: &[&str]) -> Arc<ServerConfig> {
    let now = SystemTime::now();
    server_with(ca, names, now - Duration::from_secs(60), now + YEAR)
}

/// The roots of a client that trusts only `ca`.
pub(crate) fn roots_of(ca: &CertificateAuthority) -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.add(ca.cert_der().clone()).expect("CA parses");
    store
}

/// hubwire's client configuration trusting only `ca`.
pub(crate) fn client_trusting(ca: &CertificateAuthority) -> Arc<ClientConfig> {
    TrustedRoots { store: roots_of(ca), platform: 0, platform_skipped: 0, from_files: 1 }
        .into_client_config()
        .expect("client config")
}

/// A client and a server joined in memory. Each side's output is handed to the other,
/// cut into pieces of the sizes in `chunks` (in turn; empty: whole), until neither has
/// anything left to send.
pub(crate) struct Pair {
    pub(crate) client: Tls,
    pub(crate) server: Tls,
    /// Plain bytes the client received.
    pub(crate) client_plain: BytesMut,
    /// Plain bytes the server received.
    pub(crate) server_plain: BytesMut,
    /// The first error the client reported.
    pub(crate) client_error: Option<TlsError>,
    /// The first error the server reported.
    pub(crate) server_error: Option<TlsError>,
    pub(crate) chunks: Vec<usize>,
    next_chunk: usize,
}

impl Pair {
    pub(crate) fn new(
        client: Arc<ClientConfig>,
        server_name: &str,
        server: Arc<ServerConfig>,
    ) -> Pair {
        Pair {
            client: Tls::client(client, server_name).expect("client"),
            server: Tls::server(server).expect("server"),
            client_plain: BytesMut::new(),
            server_plain: BytesMut::new(),
            client_error: None,
            server_error: None,
            chunks: Vec::new(),
            next_chunk: 0,
        }
    }

    /// Hands bytes across until both sides are quiet.
    pub(crate) fn run(&mut self) {
        loop {
            let mut moved = false;
            if let Some(bytes) = self.client.poll_output() {
                moved = true;
                let pieces = self.cut(bytes);
                for piece in pieces {
                    deliver(
                        &mut self.server,
                        &piece,
                        &mut self.server_plain,
                        &mut self.server_error,
                    );
                }
            }
            if let Some(bytes) = self.server.poll_output() {
                moved = true;
                let pieces = self.cut(bytes);
                for piece in pieces {
                    deliver(
                        &mut self.client,
                        &piece,
                        &mut self.client_plain,
                        &mut self.client_error,
                    );
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn cut(&mut self, mut bytes: Bytes) -> Vec<Bytes> {
        let mut pieces = Vec::new();
        while !bytes.is_empty() {
            let size = match self.chunks.get(self.next_chunk % self.chunks.len().max(1)) {
                Some(&size) => size.clamp(1, bytes.len()),
                None => bytes.len(),
            };
            self.next_chunk += 1;
            pieces.push(bytes.split_to(size));
        }
        pieces
    }

    /// Both sides finished the handshake without an error.
    pub(crate) fn connected(&self) -> bool {
        !self.client.is_handshaking()
            && !self.server.is_handshaking()
            && self.client_error.is_none()
            && self.server_error.is_none()
    }
}

fn deliver(tls: &mut Tls, bytes: &[u8], plain: &mut BytesMut, error: &mut Option<TlsError>) {
    if let Err(e) = tls.handle_input(bytes, plain) {
        error.get_or_insert(e);
    }
}

/// A scratch directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(test: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubwire-tls-{test}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
