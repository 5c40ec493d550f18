//! Where a device opens its transport, and opening it.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use hubwire_core::iothub::ConnectionString;
use hubwire_transports::Transport;

/// How long one TCP connect attempt may take before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The host a device dials and the port its connection string names, if any:
/// `GatewayHostName` when present, else `HostName` (spec file §2.2). An IPv6
/// literal is written in brackets, `[::1]:8883`, and returned without them.
pub fn host(cs: &ConnectionString) -> (String, Option<u16>) {
    let host = cs.gateway_host_name.as_deref().unwrap_or(&cs.host_name);
    split_port(host)
}

/// The host and port a device dials over `transport`: the connection string's
/// port when it names one, as the Node SDK honours it (spec `peers.md`), else the
/// transport's own port (8883, 443, 1883).
pub fn target(cs: &ConnectionString, transport: Transport) -> (String, u16) {
    let (host, port) = host(cs);
    (host, port.unwrap_or(transport.default_port()))
}

/// `host[:port]` split, as in a connection string's `HostName`; an IPv6 literal in
/// brackets is returned without them.
pub fn split_port(host: &str) -> (String, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((address, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (address.to_owned(), port);
        }
    }
    match host.rsplit_once(':') {
        // A name or IPv4 address has no other colon.
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name.to_owned(), Some(port)),
            Err(_) => (host.to_owned(), None),
        },
        _ => (host.to_owned(), None),
    }
}

/// Opens a TCP connection to `host:port`, resolving the name anew on every call
/// (a hub's address changes when it moves between scale units), trying each
/// address for at most [`CONNECT_TIMEOUT`]; Nagle's algorithm is turned off, since every write is a
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
    fn host_name_port_is_honoured_else_the_transport_port() {
        let t = |s, transport| target(&cs(s), transport);
        let with_port = "HostName=127.0.0.1:4000;DeviceId=d;SharedAccessKey=k";
        assert_eq!(t(with_port, Transport::MqttWs), ("127.0.0.1".to_owned(), 4000));
        let plain = "HostName=hub.local;DeviceId=d;SharedAccessKey=k";
        assert_eq!(t(plain, Transport::Mqtt), ("hub.local".to_owned(), 8883));
        assert_eq!(t(plain, Transport::MqttWs), ("hub.local".to_owned(), 443));
        assert_eq!(t(plain, Transport::MqttTcp), ("hub.local".to_owned(), 1883));
        let v6 = "HostName=[::1]:4001;DeviceId=d;SharedAccessKey=k";
        assert_eq!(t(v6, Transport::Mqtt), ("::1".to_owned(), 4001));
        let v6 = "HostName=[::1];DeviceId=d;SharedAccessKey=k";
        assert_eq!(t(v6, Transport::Mqtt), ("::1".to_owned(), 8883));
    }

    #[test]
    fn gateway_host_name_is_dialled_instead_of_host_name() {
        let c = cs("HostName=hub.example:1;DeviceId=d;SharedAccessKey=k;GatewayHostName=gw:2");
        assert_eq!(target(&c, Transport::Mqtt), ("gw".to_owned(), 2));
    }

    #[test]
    fn a_port_that_is_not_a_number_is_part_of_the_name() {
        assert_eq!(split_port("host:x"), ("host:x".to_owned(), None));
        assert_eq!(split_port("::1"), ("::1".to_owned(), None));
    }
}
