//! A hub of the runtime under test, with a certificate of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hubwire_transports::Transport;

use crate::ClientTransport;
use crate::listen::Listen;
use crate::sync::{HubServer, Scheduler};
use hubwire_core::hub::{DeviceRecord, HubConfig};
use hubwire_transports::tls::{self, local_ca};

/// Base64 of the 32 bytes 0x00..0x1F (the spec file's K1).
pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `device_id` registered with [`KEY`].
pub fn record(device_id: &str) -> DeviceRecord {
    DeviceRecord {
        device_id: device_id.into(),
        primary_key: KEY.into(),
        secondary_key: String::new(),
        enabled: true,
    }
}

/// A hub serving every transport on ephemeral loopback ports, with a certificate
/// from a local CA of its own, kept in a directory removed when it drops.
#[derive(Debug)]
pub struct TestHub<S: Scheduler> {
    /// The running server, if not stopped.
    pub server: Option<HubServer<S>>,
    /// The hub's CA certificate (PEM).
    pub ca: PathBuf,
    dir: PathBuf,
}

impl<S: Scheduler> TestHub<S> {
    /// Starts a hub for `devices` on ephemeral ports.
    pub fn start(devices: &[&str]) -> TestHub<S> {
        let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut listen: Vec<Listen> = Vec::new();
        // MQTT and AMQP over WebSocket share one listener.
        for transport in Transport::ALL {
            let want = Listen { listener: transport.listener(), address: ephemeral };
            if !listen.contains(&want) {
                listen.push(want);
            }
        }
        Self::start_on(&listen, devices)
    }

    /// Starts a hub for `devices` on `listen`.
    pub fn start_on(listen: &[Listen], devices: &[&str]) -> TestHub<S> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hubwire-runtime-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let (server, ca) = serve::<S>(&dir, listen, devices);
        TestHub { server: Some(server), ca, dir }
    }

    /// Stops the hub as a crash would; [`resume`](Self::resume) starts it again.
    pub fn stop(&mut self) -> Vec<Listen> {
        let listen = self.server().listeners().to_vec();
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        listen
    }

    /// Starts the hub again on `listen` with the same certificate.
    pub fn resume(&mut self, listen: &[Listen], devices: &[&str]) {
        let (server, _) = serve::<S>(&self.dir, listen, devices);
        self.server = Some(server);
    }
    /// The running server.
    pub fn server(&self) -> &HubServer<S> {
        match &self.server {
            Some(server) => server,
            None => panic!("the hub was shut down"),
        }
    }

    /// Where `transport` reaches the hub.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match self.server().local_addr(transport.listener()) {
            Some(addr) => addr,
            None => panic!("no {transport} listener"),
        }
    }

    /// How a device reaches the hub over `transport`, trusting its CA.
    pub fn client(&self, transport: Transport) -> ClientTransport {
        ClientTransport::with_ca(transport, &self.ca)
    }
}

impl<S: Scheduler> Drop for TestHub<S> {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server certificate for 127.0.0.1 from the CA kept in `dir` (made on first
/// use): its TLS configuration and the CA's path.
pub(crate) fn loopback_tls(dir: &Path) -> (Arc<rustls::ServerConfig>, PathBuf) {
    let names = [String::from("127.0.0.1")];
    let certificate = match local_ca::ensure(dir, &names) {
        Ok(c) => c,
        Err(e) => panic!("cannot make a certificate in {}: {e}", dir.display()),
    };
    let tls = tls::load_certificate(&certificate.cert_path, &certificate.key_path)
        .and_then(|(chain, key)| tls::server_config(chain, key));
    match tls {
        Ok(tls) => (tls, certificate.ca_path),
        Err(e) => panic!("cannot load the certificate: {e}"),
    }
}

/// A hub for `devices` on `listen`, with the certificate of the CA kept in `dir`
/// (made on first use); returns it and the CA's path.
fn serve<S: Scheduler>(dir: &Path, listen: &[Listen], devices: &[&str]) -> (HubServer<S>, PathBuf) {
    let (tls, ca) = loopback_tls(dir);
    let config = HubConfig { host_names: vec!["127.0.0.1".into()], ..HubConfig::default() };
    let server =
        match HubServer::<S>::start(config, devices.iter().map(|d| record(d)), listen, Some(tls)) {
            Ok(hub) => hub,
            Err(e) => panic!("hub did not start on {listen:?}: {e}"),
        };
    (server, ca)
}
