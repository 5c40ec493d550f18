//! `hubwire gateway`: a field gateway. Devices connect to it over MQTT or HTTPS with
//! their own connection strings (`GatewayHostName` naming the gateway, `HostName` their
//! hub); it carries them all to the hub over one AMQP connection, each device's
//! SAS token put on `$cbs` as it came, so the hub judges it
//! ([`hubwire_runtime::sync::GatewayServer`]).
//!
//! stdout: JSON lines, as `hubwire hub` prints them: `listening`, then the
//! downstream devices' `connected`, `disconnected`, `refused` and C2D settlements.
//! stderr: the same for people, and the upstream connection of each device, in
//! words. The gateway serves until killed, or until its stdout is closed.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::hub::{PortSetting, default_data_dir, port};
use crate::json::{self, Line};
use crate::out::{self, Stderr};
use crate::runtime::{OnRuntime, Runtime};
use hubwire_blocking::{ClientTransport, HubServerEvent, Listen, Listener, listener_name};
use hubwire_core::Protocol;
use hubwire_core::amqp::device::MultiplexConfig;
use hubwire_core::device::DeviceEvent;
use hubwire_core::hub::{HubConfig, HubEvent};
use hubwire_runtime::sync::{GatewayConfig, GatewayEvent, GatewayServer, Scheduler};
use hubwire_transports::Transport;
use hubwire_transports::tls::{self, local_ca};

/// `hubwire gateway` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The runtime that drives the gateway: one event loop thread (`mio`, the
    /// default) or threads per connection (`blocking`)
    #[arg(long, value_enum, default_value = "mio")]
    runtime: Runtime,
    /// The hub: HOST or HOST:PORT (the transport's own port when none is given);
    /// sent as AMQP open's hostname too.
    #[arg(long, value_name = "HOST[:PORT]")]
    upstream: String,
    /// How to reach the hub: amqp (TLS, 5671), amqp-ws (WebSocket over TLS, 443)
    /// or amqp-tcp (plain TCP, for a local hub's --amqp-tcp-port).
    #[arg(long, default_value = "amqp", value_name = "TRANSPORT", value_parser = upstream_transport)]
    upstream_transport: Transport,
    /// A CA (PEM) to trust for the hub's certificate besides the platform's: a
    /// local hub's ca.pem.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The address the downstream listeners bind.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    bind: IpAddr,
    /// Port for MQTT over TLS downstream; 0 picks a free one, `off` serves none.
    #[arg(long, default_value = "8883", value_name = "PORT|off", value_parser = port)]
    mqtt_port: PortSetting,
    /// Port for HTTPS devices downstream (IoT Hub's REST API) and MQTT over
    /// WebSocket at /$iothub/websocket: IoT Hub's 443; 0 picks a free one, `off`
    /// serves none. Ports below 1024 need root or CAP_NET_BIND_SERVICE.
    #[arg(long, default_value = "443", value_name = "PORT|off", value_parser = port)]
    https_port: PortSetting,
    /// Also serve MQTT over plain TCP downstream on this port, for development; 0
    /// picks a free one.
    #[arg(long, value_name = "PORT")]
    mqtt_tcp_port: Option<u16>,
    /// Where the gateway keeps its local CA (ca.pem: give it to devices) and its
    /// server certificate, made on first start. Default: $XDG_DATA_HOME/hubwire,
    /// else ~/.local/share/hubwire
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A host name devices dial the gateway by (their GatewayHostName, without
    /// port), put in its certificate besides localhost and the bind address.
    #[arg(long = "host-name", value_name = "NAME")]
    host_names: Vec<String>,
}

fn upstream_transport(s: &str) -> Result<Transport, String> {
    let transport: Transport = s.parse().map_err(|e| format!("{e}"))?;
    if transport.protocol() != Protocol::Amqp {
        return Err(format!(
            "{s} is not AMQP: only AMQP carries many devices on one connection (amqp, amqp-ws, \
             amqp-tcp)"
        ));
    }
    Ok(transport)
}

impl OnRuntime for GatewayArgs {
    fn runtime(&self) -> Runtime {
        self.runtime
    }

    fn run_on<S: Scheduler>(self) -> ExitCode {
        match start::<S>(self) {
            Ok(code) => code,
            Err(e) => {
                out::warn(format_args!("hubwire gateway: {e}"));
                ExitCode::FAILURE
            }
        }
    }
}

/// Starts the gateway and reports its events until stdout closes.
///
/// Errors: what kept the gateway from starting, in words.
fn start<S: Scheduler>(args: GatewayArgs) -> Result<ExitCode, String> {
    let at = |port| SocketAddr::new(args.bind, port);
    let mut listen = Vec::new();
    if let PortSetting(Some(port)) = args.mqtt_port {
        listen.push(Listen { listener: Listener::Tls(Protocol::Mqtt), address: at(port) });
    }
    if let PortSetting(Some(port)) = args.https_port {
        listen.push(Listen { listener: Listener::Web, address: at(port) });
    }
    if let Some(port) = args.mqtt_tcp_port {
        listen.push(Listen { listener: Listener::Tcp(Protocol::Mqtt), address: at(port) });
    }
    if listen.is_empty() {
        return Err(String::from("every downstream listener is off: nothing to serve"));
    }
    let (tls, ca) = certificate(&args)?;
    let mut upstream_transport = ClientTransport::new(args.upstream_transport);
    upstream_transport.trust.ca_files.extend(args.ca.clone());
    let config = GatewayConfig {
        upstream: MultiplexConfig::new(args.upstream.clone()),
        upstream_transport,
        listen,
        tls: Some(tls),
        downstream: HubConfig::default(),
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let gateway = GatewayServer::<S>::start(config).map_err(|e| format!("cannot start: {e}"))?;
    let mut stderr = Stderr::spawn().map_err(|e| format!("cannot start: {e}"))?;
    for error in gateway.bind_errors() {
        stderr.line(format!("hubwire gateway: {error}; serving on the other listeners"));
    }
    for listen in gateway.listeners() {
        stderr.line(format!(
            "hubwire gateway: {} on {}, upstream {} over {}",
            downstream_listener_name(listen.listener),
            listen.address,
            args.upstream,
            args.upstream_transport.name()
        ));
    }
    let address = |listener| gateway.local_addr(listener).map(|a| a.to_string());
    let listening = Line::Listening {
        mqtt: address(Listener::Tls(Protocol::Mqtt)),
        https: address(Listener::Web),
        mqtt_tcp: address(Listener::Tcp(Protocol::Mqtt)),
        amqp: None,
        amqp_tcp: None,
        ca: ca.map(|p| p.display().to_string()),
    };
    if listening.print().is_err() {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(report_events(&gateway, stderr))
}

/// The downstream certificate's TLS configuration and the local CA's path.
///
/// Errors: a certificate that cannot be made or loaded, in words.
fn certificate(args: &GatewayArgs) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), String> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => default_data_dir()?,
    };
    let mut names = vec![String::from("localhost"), String::from("127.0.0.1")];
    if !args.bind.is_unspecified() {
        names.push(args.bind.to_string());
    }
    names.extend(args.host_names.iter().cloned());
    names.sort();
    names.dedup();
    let made = local_ca::ensure(&dir, &names).map_err(|e| e.to_string())?;
    let (chain, key) =
        tls::load_certificate(&made.cert_path, &made.key_path).map_err(|e| e.to_string())?;
    let config = tls::server_config(chain, key).map_err(|e| e.to_string())?;
    Ok((config, Some(made.ca_path)))
}

/// Prints the downstream events as `hubwire hub` does and the upstream ones in
/// words, until stdout is closed (success) or the gateway's drivers die (failure).
fn report_events<S: Scheduler>(gateway: &GatewayServer<S>, mut stderr: Stderr) -> ExitCode {
    loop {
        let Some(event) = gateway.recv_event(std::time::Duration::from_secs(3600)) else {
            continue;
        };
        let printed = match &event {
            GatewayEvent::Downstream(HubServerEvent::Hub(event)) => {
                if let HubEvent::Refused { connection, identity, code, reason } = event {
                    stderr.line(json::refusal_words(*connection, identity.as_ref(), *code, reason));
                }
                Line::hub_event(event).map_or(Ok(()), |line| line.print())
            }
            GatewayEvent::Downstream(HubServerEvent::TransportError { peer, listener, error }) => {
                let who = peer.map_or_else(|| String::from("a peer"), |p| p.to_string());
                stderr.line(format!(
                    "hubwire gateway: {who} on the {} listener: {error}",
                    downstream_listener_name(*listener)
                ));
                Ok(())
            }
            GatewayEvent::Upstream { device_id, event: DeviceEvent::Connected { .. } } => {
                stderr.line(format!("hubwire gateway: {device_id} connected upstream"));
                Ok(())
            }
            GatewayEvent::Upstream {
                device_id,
                event: DeviceEvent::Disconnected { reason, reconnect_at },
            } => {
                let again = if reconnect_at.is_some() { "; reconnecting" } else { "" };
                // The transport's own words (a certificate the gateway does not
                // trust, a refused connection) say what to fix.
                let cause = gateway
                    .upstream_status()
                    .last_error
                    .map_or_else(String::new, |e| format!(" (upstream transport: {e})"));
                stderr.line(format!(
                    "hubwire gateway: {device_id} disconnected upstream: {reason}{cause}{again}"
                ));
                Ok(())
            }
            _ => Ok(()),
        };
        if printed.is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

/// What a gateway listener serves, in words: on port 443 a gateway speaks MQTT
/// over WebSocket and HTTPS, not AMQP (its devices use MQTT or HTTPS).
fn downstream_listener_name(listener: Listener) -> &'static str {
    match listener {
        Listener::Web => "MQTT over WebSocket, HTTPS",
        other => listener_name(other),
    }
}
