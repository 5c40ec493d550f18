//! The writer thread each hub connection gets, so that one slow peer never holds
//! up the hub's driver: the driver hands transmits to a channel and goes on, and the
//! connection's [`Flow`] counts what is still to be written.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Instant;

use hubwire_core::Transmit;

use hubwire_runtime::LINGER;
use hubwire_runtime::flow::Flow;

/// Bytes read in one call while lingering.
const DISCARD_BUFFER: usize = 16 * 1024;

/// Spawns a thread that writes each [`Transmit::Send`] to `stream` in order and
/// shuts the socket down on a failed write, or when the returned sender is dropped.
/// A failed write thus reaches the driver as the connection's reader seeing the
/// shutdown. On [`Transmit::Close`] it closes in stages ([`linger`]).
pub(crate) fn spawn(
    name: String,
    stream: Arc<TcpStream>,
    flow: Arc<Flow>,
) -> io::Result<Sender<Transmit>> {
    let (tx, rx) = mpsc::channel::<Transmit>();
    thread::Builder::new().name(name).spawn(move || {
        for transmit in rx {
            match transmit {
                Transmit::Send(bytes) => {
                    if (&*stream).write_all(&bytes).is_err() {
                        break;
                    }
                    flow.written(bytes.len());
                }
                Transmit::Close => {
                    linger(&stream);
                    break;
                }
                // A server never dials.
                Transmit::Connect => {}
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
        flow.close();
    })?;
    Ok(tx)
}

/// The middle stages of a close, once the last bytes are written (RFC 9112 §9.6,
/// [`hubwire_runtime::PeerOutput::Close`]): FIN, then what the peer still sends is
/// read and dropped until it closes, the socket fails, or [`LINGER`] passes. The
/// bytes go nowhere: the hub forgot the peer, and the connection's reader, should
/// it take some, hands them to a driver that ignores them.
fn linger(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut buffer = vec![0u8; DISCARD_BUFFER];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero timeout would mean none.
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*stream).read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Timed out (`WouldBlock` or `TimedOut`), or the socket failed.
            Err(_) => return,
        }
    }
}
