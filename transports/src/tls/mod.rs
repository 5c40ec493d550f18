//! TLS 1.2 and 1.3 on rustls, both roles, sans-IO; the configurations each role needs; and
//! the hub's local CA.
//!
//! IoT Hub devices never speak plain TCP: MQTT runs over TLS on 8883, AMQP on 5671, and
//! WebSockets and HTTPS over TLS on 443 (spec file §1). [`Tls`] is the layer between the
//! socket and the WebSocket layer or the protocol session: network bytes in, plain bytes
//! out, and the reverse. [`client_config`] and [`server_config`] build what each role
//! needs; [`local_ca`] makes the certificate a local hub presents.

mod config;
mod connection;
mod error;
pub mod local_ca;

pub use config::{Trust, TrustedRoots, client_config, load_certificate, server_config};
pub use connection::Tls;
pub use error::TlsError;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
