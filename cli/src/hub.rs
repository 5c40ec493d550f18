//! `hubwire hub`: a local IoT Hub whose standard streams are the service side.
//!
//! stdout: JSON lines only (see [`crate::json`]). stderr: the same for people, and
//! every refusal in words; it never holds up stdout (see [`Stderr`]). stdin: one
//! C2D message per JSON line. The end of stdin does not stop the hub; it serves
//! until killed, or until stdout is closed.

use std::io::{self, BufRead};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::thread;

use hubwire_blocking::{HubServer, HubServerEvent, clock};
use hubwire_core::hub::{HubConfig, HubEvent};
use hubwire_core::iothub::ErrorCode;

use crate::json::{self, C2dRequest, Line};
use crate::out::{self, Stderr, StdoutClosed};
use crate::registry;

/// `hubwire hub` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    /// Address for MQTT over plain TCP; port 0 picks a free one (printed in the
    /// `listening` line).
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: SocketAddr,
    /// A host name devices use for this hub (no port). The first goes into the
    /// printed connection strings; all are accepted in SAS token audiences.
    /// Default: the listen address (and `localhost`).
    #[arg(long = "host-name", value_name = "NAME")]
    host_names: Vec<String>,
    /// Register a device with this id and generated keys.
    #[arg(long = "device", value_name = "ID")]
    devices: Vec<String>,
    /// Register the devices of this JSON file: an array of
    /// {"deviceId","primaryKey","secondaryKey","enabled"}, keys generated when absent.
    /// Without --device or --registry the hub registers `device1`.
    #[arg(long, value_name = "FILE")]
    registry: Option<PathBuf>,
}

pub(crate) fn run(args: HubArgs) -> ExitCode {
    let mut ids = args.devices;
    if ids.is_empty() && args.registry.is_none() {
        ids.push(String::from("device1"));
    }
    let records = match registry::load(args.registry.as_deref(), &ids) {
        Ok(records) => records,
        Err(e) => {
            out::warn(format_args!("hubwire hub: {e}"));
            return ExitCode::from(2);
        }
    };
    let host = args.host_names.first().cloned().unwrap_or_else(|| host_of(args.mqtt.ip()));
    let host_names = if args.host_names.is_empty() {
        vec![host.clone(), String::from("localhost")]
    } else {
        args.host_names
    };
    let config = HubConfig { host_names, ..HubConfig::default() };
    let server = match HubServer::start(config, records.iter().cloned(), args.mqtt) {
        Ok(server) => server,
        Err(e) => {
            out::warn(format_args!("hubwire hub: cannot start on {}: {e}", args.mqtt));
            return ExitCode::FAILURE;
        }
    };
    let mut stderr = match Stderr::spawn() {
        Ok(stderr) => stderr,
        Err(e) => {
            out::warn(format_args!("hubwire hub: cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let address = server.local_addr();
    for record in &records {
        let cs = registry::connection_string(format!("{host}:{}", address.port()), record);
        stderr.line(format!("device {}: {cs}", record.device_id));
        let line = Line::Device { device_id: &record.device_id, connection_string: cs.to_string() };
        if line.print().is_err() {
            return ExitCode::SUCCESS;
        }
    }
    stderr.line(format!("hubwire hub: MQTT (plain TCP) on {address}"));
    if (Line::Listening { mqtt: address.to_string() }).print().is_err() {
        return ExitCode::SUCCESS;
    }
    match serve(Arc::new(server), stderr) {
        Ok(code) => code,
        Err(e) => {
            out::warn(format_args!("hubwire hub: cannot start: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Reports events and takes C2D messages from stdin, each on a thread of its own,
/// until stdout is closed (success: nobody reads the hub any more) or the hub's
/// driver dies (failure). The end of stdin ends only its own thread.
///
/// Errors: the OS's, when a thread cannot start.
fn serve(server: Arc<HubServer>, stderr: Stderr) -> io::Result<ExitCode> {
    let (done, end) = mpsc::channel();
    let (reporter, reported) = (Arc::clone(&server), done.clone());
    thread::Builder::new().name(String::from("hubwire-events")).spawn(move || {
        let _ = reported.send(report_events(&reporter, stderr));
    })?;
    // Not joined: it blocks reading stdin, and returning from `main` ends it.
    thread::Builder::new().name(String::from("hubwire-stdin")).spawn(move || {
        if enqueue_from_stdin(&server).is_err() {
            let _ = done.send(ExitCode::SUCCESS);
        }
    })?;
    Ok(end.recv().unwrap_or(ExitCode::FAILURE))
}

/// The host to put in connection strings for a listen address: the IP itself
/// (IPv6 in brackets), or `localhost` for the unspecified address.
fn host_of(ip: IpAddr) -> String {
    match ip {
        ip if ip.is_unspecified() => String::from("localhost"),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Prints every hub event as it comes; refusals also on stderr. Returns success
/// when stdout is closed, failure when the hub's driver has died (its panic
/// message, on stderr, says why).
fn report_events(server: &HubServer, mut stderr: Stderr) -> ExitCode {
    while let Some(event) = server.next_event() {
        let printed = match &event {
            HubServerEvent::Stored(record) => Line::telemetry(record).print(),
            HubServerEvent::Hub(event) => {
                if let HubEvent::Refused { connection, identity, code, reason } = event {
                    stderr.line(json::refusal_words(*connection, identity.as_ref(), *code, reason));
                }
                Line::hub_event(event).map_or(Ok(()), |line| line.print())
            }
            _ => Ok(()),
        };
        if printed.is_err() {
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::FAILURE
}

/// Enqueues a C2D message for each stdin line, answering each on stdout, until
/// stdin ends.
///
/// Errors: [`StdoutClosed`] when an answer cannot be written.
fn enqueue_from_stdin(server: &HubServer) -> Result<(), StdoutClosed> {
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let number = index + 1;
        let line = match line {
            Ok(line) => line,
            // The line was consumed; the next one may be fine.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Line::error(number, ErrorCode::ARGUMENT_INVALID, e.to_string()).print()?;
                continue;
            }
            Err(_) => return Ok(()),
        };
        if line.trim().is_empty() {
            continue;
        }
        let request = match C2dRequest::parse(&line) {
            Ok(request) => request,
            Err((code, message)) => {
                Line::error(number, code, message).print()?;
                continue;
            }
        };
        let device_id = request.device_id.clone();
        let message = match request.into_message(clock::now()) {
            Ok(message) => message,
            Err((code, message)) => {
                Line::error(number, code, message).print()?;
                continue;
            }
        };
        match server.send_c2d(&device_id, message) {
            Ok(sequence_number) => {
                Line::C2dQueued { device_id: &device_id, sequence_number }.print()?;
            }
            Err(e) => json::hub_error(number, &e).print()?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_host_is_the_listen_ip_or_localhost() {
        assert_eq!(host_of(IpAddr::from([127, 0, 0, 1])), "127.0.0.1");
        assert_eq!(host_of(IpAddr::from([0, 0, 0, 0])), "localhost");
        assert_eq!(host_of(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])), "[::1]");
    }
}
