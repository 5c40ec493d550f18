//! Where a hub listens: the listeners asked for, binding them, and what to say when
//! one cannot be bound.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use hubwire_core::Protocol;
use hubwire_core::hub::{DeviceRecord, Hub, HubConfig};
use hubwire_store::Store;
use hubwire_transports::Listener;

use crate::transcript::{Header, Recorder};
use crate::{ServedHub, clock};

/// How a hub's engine starts, beyond its configuration.
#[derive(Default)]
pub struct Engine {
    /// The seed of [`Hub::new`]; without one, a different seed every run.
    pub seed: Option<u64>,
    /// Where to write a transcript of the run ([`crate::transcript`]), from the
    /// registry as it stands once `devices` are registered.
    pub transcript: Option<Box<dyn std::io::Write + Send>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("seed", &self.seed)
            .field("transcript", &self.transcript.is_some())
            .finish()
    }
}

/// A hub ready to serve: its engine with the devices registered, and the listeners
/// bound.
#[derive(Debug)]
pub struct Started {
    /// The engine and its stacks.
    pub hub: ServedHub,
    /// The listeners bound (blocking sockets, as std makes them), with their real
    /// addresses.
    pub listeners: Vec<(Listen, TcpListener)>,
    /// The listeners asked for that could not be bound.
    pub bind_errors: Vec<BindError>,
}

/// Restores a new hub from `store`, registers `devices` (replacing a stored record
/// of the same id) and binds every listener it can of `listen`. `tls` is the server
/// certificate's configuration, required when a TLS listener is asked for. A
/// listener that cannot be bound is reported in [`Started::bind_errors`], and the
/// hub serves on the others. `engine` gives the engine's seed and whether it records.
///
/// Errors: `InvalidInput` when a device record is refused by the registry (its
/// [`hubwire_core::hub::RegistryError`] in words) or a TLS listener has no `tls`;
/// `InvalidData` when the store cannot be read or restored; the OS's error when no
/// listener can be bound; the transcript's error when its header cannot be written.
pub fn start(
    config: HubConfig,
    devices: impl IntoIterator<Item = DeviceRecord>,
    listen: &[Listen],
    tls: Option<Arc<rustls::ServerConfig>>,
    mut store: Box<dyn Store>,
    engine: Engine,
) -> io::Result<Started> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    if tls.is_none() && listen.iter().any(|l| !matches!(l.listener, Listener::Tcp(_))) {
        return Err(invalid(String::from("a TLS listener needs a server certificate")));
    }
    // Lock tokens need no secrecy over MQTT (they are packet ids there); the seed
    // only keeps two runs from repeating each other.
    let seed = engine.seed.unwrap_or_else(|| RandomState::new().hash_one(clock::now()));
    let mut hub = Hub::new(config, seed);
    let unreadable = |e: hubwire_store::StoreError| {
        io::Error::new(io::ErrorKind::InvalidData, format!("the hub's store: {e}"))
    };
    let snapshot = store.load().map_err(unreadable)?;
    hubwire_store::restore(&mut hub, clock::now(), snapshot).map_err(unreadable)?;
    let devices: Vec<DeviceRecord> = devices.into_iter().collect();
    for record in &devices {
        hub.registry_mut().remove(&record.device_id);
        hub.registry_mut().add(record.clone()).map_err(|e| invalid(e.to_string()))?;
    }
    store.put_devices(&devices).map_err(unreadable)?;
    let recorder = match engine.transcript {
        Some(to) => {
            let header = Header {
                seed,
                start: clock::now(),
                host_names: hub.config().host_names.clone(),
                max_cbs_tokens: hub.config().max_cbs_tokens,
                devices: hub.registry().iter().cloned().collect(),
            };
            Some(Recorder::new(to, &header)?)
        }
        None => None,
    };
    let mut listeners = Vec::new();
    let mut bind_errors = Vec::new();
    for &want in listen {
        // A port 0 asked for comes back as the port picked.
        match TcpListener::bind(want.address).and_then(|l| Ok((l.local_addr()?, l))) {
            Ok((address, socket)) => listeners.push((Listen { address, ..want }, socket)),
            Err(error) => bind_errors.push(BindError { listen: want, error }),
        }
    }
    if listeners.is_empty() {
        let words: Vec<String> = bind_errors.iter().map(BindError::to_string).collect();
        let kind = bind_errors.first().map_or(io::ErrorKind::InvalidInput, |e| e.error.kind());
        return Err(io::Error::new(kind, format!("no listener: {}", words.join("; "))));
    }
    let mut served = ServedHub::new(hub, store, tls);
    if let Some(recorder) = recorder {
        served.record(recorder);
    }
    Ok(Started { hub: served, listeners, bind_errors })
}

/// One listener a hub serves: what it speaks and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// What it serves.
    pub listener: Listener,
    /// Where to bind it; port 0 picks a free port.
    pub address: SocketAddr,
}

/// A listener that could not be bound. The hub serves on the others.
#[derive(Debug)]
pub struct BindError {
    /// The listener asked for.
    pub listen: Listen,
    /// The OS's error.
    pub error: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Listen { listener, address } = self.listen;
        write!(f, "cannot listen on {address} ({}): {}", listener_name(listener), self.error)?;
        if self.error.kind() == io::ErrorKind::PermissionDenied && address.port() < 1024 {
            write!(
                f,
                "; ports below 1024 need root or CAP_NET_BIND_SERVICE \
                 (sudo setcap cap_net_bind_service=+ep $(which hubwire)), or choose a port \
                 of 1024 or more"
            )?;
        } else if self.error.kind() == io::ErrorKind::AddrInUse {
            write!(
                f,
                "; another program (or another hub) holds it: choose another port or address"
            )?;
        }
        Ok(())
    }
}

/// What a listener serves, in words.
pub fn listener_name(listener: Listener) -> &'static str {
    match listener {
        Listener::Tls(Protocol::Mqtt) => "MQTT over TLS",
        Listener::Tls(Protocol::Amqp) => "AMQP over TLS",
        Listener::Tcp(Protocol::Mqtt) => "MQTT over plain TCP",
        Listener::Tcp(Protocol::Amqp) => "AMQP over plain TCP",
        Listener::Web => "MQTT and AMQP over WebSocket, HTTPS",
        _ => "other",
    }
}
