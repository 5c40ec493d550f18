//! Where a device opens its transport, and opening it.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use hubwire_core::iothub::ConnectionString;

/// The port dialled when the connection string names none: 1883, plain MQTT over
/// TCP, the development port (TLS on 8883 comes with the TLS transport).
pub const DEFAULT_PORT: u16 = 1883;

/// How long one TCP connect attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The host and port a device dials: `GatewayHostName` when present, else
/// `HostName` (spec file §2.2), with its `:port` or [`DEFAULT_PORT`]. An IPv6
/// literal is written in brackets, `[::1]:1883`, and returned without them.
pub fn target(cs: &ConnectionString) -> (String, u16) {
    let host = cs.gateway_host_name.as_deref().unwrap_or(&cs.host_name);
    split_port(host)
}

fn split_port(host: &str) -> (String, u16) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((address, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (address.to_owned(), port.unwrap_or(DEFAULT_PORT));
        }
    }
    match host.rsplit_once(':') {
        // A name or IPv4 address has no other colon.
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name.to_owned(), port),
            Err(_) => (host.to_owned(), DEFAULT_PORT),
        },
        _ => (host.to_owned(), DEFAULT_PORT),
    }
}

/// Opens a TCP connection to `host:port`, trying each resolved address for at most
/// [`CONNECT_TIMEOUT`]; Nagle's algorithm is turned off, since every write is a
/// whole batch of packets the peer should see at once.
///
/// Errors: the resolver's error, or the last address's connect error.
pub fn dial(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to nothing");
    for address in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &str) -> ConnectionString {
        match ConnectionString::parse(s) {
            Ok(cs) => cs,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn host_name_port_is_honoured_and_defaults_to_1883() {
        let t = |s| target(&cs(s));
        assert_eq!(
            t("HostName=127.0.0.1:4000;DeviceId=d;SharedAccessKey=k"),
            ("127.0.0.1".to_owned(), 4000)
        );
        assert_eq!(
            t("HostName=hub.local;DeviceId=d;SharedAccessKey=k"),
            ("hub.local".to_owned(), DEFAULT_PORT)
        );
        assert_eq!(t("HostName=[::1]:4001;DeviceId=d;SharedAccessKey=k"), ("::1".to_owned(), 4001));
        assert_eq!(
            t("HostName=[::1];DeviceId=d;SharedAccessKey=k"),
            ("::1".to_owned(), DEFAULT_PORT)
        );
    }

    #[test]
    fn gateway_host_name_is_dialled_instead_of_host_name() {
        let c = cs("HostName=hub.example:1;DeviceId=d;SharedAccessKey=k;GatewayHostName=gw:2");
        assert_eq!(target(&c), ("gw".to_owned(), 2));
    }

    #[test]
    fn a_port_that_is_not_a_number_is_part_of_the_name() {
        assert_eq!(split_port("host:x"), ("host:x".to_owned(), DEFAULT_PORT));
        assert_eq!(split_port("::1"), ("::1".to_owned(), DEFAULT_PORT));
    }
}
