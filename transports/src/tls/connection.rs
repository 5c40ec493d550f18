//! One TLS connection, either role, as a byte pump: network bytes in, plain bytes out,
//! and the reverse. No socket, no clock of its own (rustls reads the wall clock only to
//! check certificate validity), no blocking.

use std::io::{BufRead, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConfig, ServerConnection,
};

use super::TlsError;
use super::error::FIRST_BYTES_KEPT;

/// One TLS connection in either role, wrapping a rustls client or server connection.
///
/// Drive it like every hubwire layer: hand it the bytes the socket read
/// ([`handle_input`](Tls::handle_input)), hand it the plain bytes to send
/// ([`send`](Tls::send)), and after each of those calls, and after creating a client,
/// write out everything [`poll_output`](Tls::poll_output) returns.
pub struct Tls {
    conn: Connection,
    /// The first bytes the peer sent, to tell a peer that does not speak TLS at all from
    /// one that breaks it.
    first_bytes: Vec<u8>,
    /// The peer's `close_notify` arrived.
    peer_closed: bool,
    /// A fatal error ended the connection; later input is discarded.
    failed: bool,
    /// This side sent `close_notify`; nothing more may be sent.
    close_sent: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("client", &matches!(self.conn, Connection::Client(_)))
            .field("handshaking", &self.is_handshaking())
            .field("version", &self.protocol_version())
            .field("peer_closed", &self.peer_closed)
            .field("failed", &self.failed)
            .field("close_sent", &self.close_sent)
            .finish()
    }
}

impl Tls {
    /// A client connection to `server_name`, its ClientHello already waiting in
    /// [`poll_output`](Tls::poll_output).
    ///
    /// `server_name` is a DNS name or an IP literal (IPv6 with or without brackets). A DNS
    /// name is sent as SNI and must be one of the certificate's DNS names; an IP address is
    /// not sent as SNI (RFC 6066 §3) and must be one of its IP address SANs.
    ///
    /// Errors: [`TlsError::InvalidServerName`]; [`TlsError::Config`] if rustls refuses the
    /// configuration.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Tls, TlsError> {
        let bare =
            server_name.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(server_name);
        let name = ServerName::try_from(bare)
            .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?
            .to_owned();
        let conn = ClientConnection::new(config, name).map_err(TlsError::Config)?;
        Ok(Tls::new(conn.into()))
    }

    /// A server connection waiting for a ClientHello.
    ///
    /// Errors: [`TlsError::Config`] if rustls refuses the configuration.
    pub fn server(config: Arc<ServerConfig>) -> Result<Tls, TlsError> {
        let conn = ServerConnection::new(config).map_err(TlsError::Config)?;
        Ok(Tls::new(conn.into()))
    }

    fn new(mut conn: Connection) -> Tls {
        // What the application sends is bounded by the application; how fast it leaves is
        // the runtime's business (it drains poll_output). A rustls limit would only make
        // `send` take part of its input.
        conn.set_buffer_limit(None);
        Tls { conn, first_bytes: Vec::new(), peer_closed: false, failed: false, close_sent: false }
    }

    /// Network bytes from the peer, all of them consumed; the plain bytes they complete are
    /// appended to `plain`.
    ///
    /// Bytes after the peer's `close_notify` are discarded (TLS carries nothing after it),
    /// and so is any input after a fatal error.
    ///
    /// Errors are fatal: the alert rustls sends for them waits in
    /// [`poll_output`](Tls::poll_output) and [`is_closed`](Tls::is_closed) becomes true.
    /// Plain bytes decrypted before the error are still appended.
    pub fn handle_input(&mut self, bytes: &[u8], plain: &mut BytesMut) -> Result<(), TlsError> {
        if self.failed {
            return Ok(());
        }
        self.remember_first_bytes(bytes);
        let mut rest = bytes;
        while !rest.is_empty() {
            // Reading from a slice cannot block; `rest` advances by what rustls took.
            match self.conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {
                    // rustls refuses to buffer more of a handshake message than 64 KiB
                    // (plaintext cannot fill up: it is drained after every read).
                    self.failed = true;
                    return Err(TlsError::Oversized);
                }
            }
            let processed = self.conn.process_new_packets();
            self.drain_plaintext(plain);
            match processed {
                Ok(state) => self.peer_closed |= state.peer_has_closed(),
                Err(err) => {
                    self.failed = true;
                    return Err(TlsError::from_connection(err, &self.first_bytes));
                }
            }
        }
        Ok(())
    }

    fn remember_first_bytes(&mut self, bytes: &[u8]) {
        let wanted = FIRST_BYTES_KEPT.saturating_sub(self.first_bytes.len());
        let take = wanted.min(bytes.len());
        self.first_bytes.extend_from_slice(bytes.get(..take).unwrap_or_default());
    }

    fn drain_plaintext(&mut self, plain: &mut BytesMut) {
        let mut reader = self.conn.reader();
        // An error here only says that nothing is buffered (yet, or any more).
        while let Ok(chunk) = reader.fill_buf() {
            if chunk.is_empty() {
                break;
            }
            plain.extend_from_slice(chunk);
            let taken = chunk.len();
            reader.consume(taken);
        }
    }

    /// Plain bytes to send to the peer, encrypted into [`poll_output`](Tls::poll_output).
    /// During the handshake they are held and sent when it completes.
    ///
    /// Errors: [`TlsError::Closed`] after [`close`](Tls::close) or a fatal error.
    pub fn send(&mut self, plain: &[u8]) -> Result<(), TlsError> {
        if self.close_sent || self.failed {
            return Err(TlsError::Closed);
        }
        let mut rest = plain;
        while !rest.is_empty() {
            match self.conn.writer().write(rest) {
                Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
                // With no buffer limit rustls takes everything; anything else means the
                // connection can take no more.
                _ => return Err(TlsError::Closed),
            }
        }
        Ok(())
    }

    /// Ends the connection cleanly: queues `close_notify` (RFC 8446 §6.1) in
    /// [`poll_output`](Tls::poll_output). Nothing can be sent after it.
    ///
    /// A peer's `close_notify` is not answered automatically: TLS 1.3 lets the other
    /// direction go on, so the caller decides when to close its side too.
    pub fn close(&mut self) {
        if !self.close_sent && !self.failed {
            self.conn.send_close_notify();
            self.close_sent = true;
        }
    }

    /// The next network bytes to write to the peer, in order, or `None` when there are none.
    ///
    /// Call again after creating a client, and after every
    /// [`handle_input`](Tls::handle_input) (handshake replies, alerts), [`send`](Tls::send)
    /// and [`close`](Tls::close), until it returns `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// Whether the handshake has not completed yet (also after it failed).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the connection is over for input: the peer's `close_notify` arrived or a
    /// fatal error happened.
    pub fn is_closed(&self) -> bool {
        self.peer_closed || self.failed
    }

    /// Server role: the SNI host name the client sent, once its ClientHello has arrived;
    /// `None` for a client, or a client that sent no SNI (one connecting by IP address).
    pub fn server_name(&self) -> Option<&str> {
        match &self.conn {
            Connection::Server(conn) => conn.server_name(),
            Connection::Client(_) => None,
        }
    }

    /// The negotiated version, `"TLSv1.2"` or `"TLSv1.3"`, once the hellos are exchanged.
    pub fn protocol_version(&self) -> Option<&'static str> {
        match self.conn.protocol_version()? {
            ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
            ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
            _ => None,
        }
    }
}
