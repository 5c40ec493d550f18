//! Raw connections to a hub for tests that write the protocol bytes themselves:
//! over plain TCP, or over TLS through hubwire's own sans-IO TLS layer. Every wait
//! has a deadline ([`WAIT`]), so a hub that stops answering fails the test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hubwire_transports::tls::{self, Tls, Trust};

use crate::process::WAIT;

/// How long one read waits before the caller looks at its deadline again.
const READ_TURN: Duration = Duration::from_millis(200);

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// What the peer sends on `stream` until it closes the connection, which it must
/// within [`WAIT`].
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let _ = stream.set_read_timeout(Some(READ_TURN));
    let deadline = Instant::now() + WAIT;
    let mut all = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buffer[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(_) => return all,
        }
    }
    panic!("the hub did not close the connection within {WAIT:?}; it sent {all:02x?}");
}

/// A TLS connection to a hub's TLS listener (server name 127.0.0.1), handshake
/// done; each write its own TCP segment.
#[derive(Debug)]
pub struct TlsClient {
    stream: TcpStream,
    tls: Tls,
    /// Plain bytes received and not yet taken.
    plain: BytesMut,
    closed: bool,
    /// The read error that ended the connection, when it broke instead of closing
    /// (`ConnectionReset`: the hub's kernel sent a TCP RST).
    broken: Option<std::io::ErrorKind>,
}

impl TlsClient {
    /// Connects to `address` trusting the CA file `ca`, and completes the handshake
    /// within [`WAIT`].
    pub fn connect(address: &str, ca: &str) -> TlsClient {
        let trust = Trust { platform_roots: false, ca_files: vec![ca.into()] };
        let config = match tls::client_config(&trust) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let stream = match TcpStream::connect(address) {
            Ok(s) => s,
            Err(e) => panic!("cannot connect to {address}: {e}"),
        };
        if let Err(e) = stream.set_nodelay(true) {
            panic!("{e}");
        }
        let tls = match Tls::client(config, "127.0.0.1") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let mut client =
            TlsClient { stream, tls, plain: BytesMut::new(), closed: false, broken: None };
        client.flush();
        let deadline = Instant::now() + WAIT;
        while client.tls.is_handshaking() {
            assert!(Instant::now() < deadline && !client.closed, "no TLS handshake with {address}");
            client.read_some();
        }
        client
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.tls.poll_output() {
            if self.stream.write_all(&bytes).is_err() {
                self.closed = true;
            }
        }
    }

    /// Sends `bytes` as TLS records.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.tls.send(bytes) {
            panic!("{e}");
        }
        self.flush();
    }

    /// Sends `bytes` as TLS records, and says how the socket refused them (a peer
    /// that reset the connection: `ConnectionReset` or `BrokenPipe`).
    ///
    /// Errors: the socket's write error; `WouldBlock` or `TimedOut` when the hub
    /// took nothing for [`WAIT`].
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Err(e) = self.tls.send(bytes) {
            panic!("{e}");
        }
        self.stream.set_write_timeout(Some(WAIT))?;
        while let Some(records) = self.tls.poll_output() {
            self.stream.write_all(&records)?;
        }
        Ok(())
    }

    /// Reads one chunk, or nothing within 200 ms.
    pub fn read_some(&mut self) {
        let _ = self.stream.set_read_timeout(Some(READ_TURN));
        let mut buffer = [0u8; 16 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => self.closed = true,
            Ok(n) => {
                if let Err(e) = self.tls.handle_input(&buffer[..n], &mut self.plain) {
                    panic!("TLS from the hub: {e}");
                }
                self.flush();
                self.closed |= self.tls.is_closed();
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                self.closed = true;
                self.broken = Some(e.kind());
            }
        }
    }

    /// Whether the hub closed the connection (or it broke).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The read error that ended the connection, if it broke rather than closed
    /// (a TCP RST reads as `ConnectionReset`).
    pub fn broken(&self) -> Option<std::io::ErrorKind> {
        self.broken
    }

    /// Plain bytes received and not yet taken.
    pub fn received(&self) -> &[u8] {
        &self.plain
    }

    /// Everything the hub sends until it closes the connection, within [`WAIT`].
    pub fn read_to_close(&mut self) -> Vec<u8> {
        self.wait_closed();
        self.plain.split().to_vec()
    }

    /// Reads until the hub closes the connection, within [`WAIT`].
    pub fn wait_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.closed {
            assert!(
                Instant::now() < deadline,
                "the hub kept the connection open; got {:?}",
                String::from_utf8_lossy(&self.plain)
            );
            self.read_some();
        }
    }

    /// Plain bytes until `done` accepts them, within [`WAIT`].
    pub fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while !done(&self.plain) {
            assert!(
                Instant::now() < deadline && !self.closed,
                "got {:?}",
                String::from_utf8_lossy(&self.plain)
            );
            self.read_some();
        }
        self.plain.split().to_vec()
    }

    /// The head of the hub's next HTTP answer (up to the blank line), within
    /// [`WAIT`].
    pub fn response_head(&mut self) -> String {
        let head = self.read_until(|plain| plain.windows(4).any(|w| w == b"\r\n\r\n"));
        let end = head.windows(4).position(|w| w == b"\r\n\r\n").map_or(head.len(), |i| i + 4);
        // Bytes after the head belong to the body: put them back.
        let mut rest = BytesMut::from(&head[end..]);
        rest.extend_from_slice(&self.plain);
        self.plain = rest;
        String::from_utf8_lossy(&head[..end]).into_owned()
    }
}
