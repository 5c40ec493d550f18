//! The reader thread every connection gets: it turns a blocking socket into
//! messages on its driver's channel, so the driver waits on one channel for bytes,
//! closes, commands and timers alike. It reads one chunk at a time, paced by the
//! connection's [`Flow`].

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread;

use hubwire_runtime::flow::{Chunk, Flow};

/// Bytes read in one call, at most.
const READ_BUFFER: usize = 16 * 1024;

/// Spawns a thread that sends `bytes(chunk)` for everything read from `stream`
/// and then `closed` once, when the peer closes, the socket breaks, it is shut down
/// from this side or `flow` is closed. The thread ends then, or as soon as the
/// driver is gone.
pub(crate) fn spawn<M: Send + 'static>(
    name: String,
    stream: Arc<TcpStream>,
    flow: Arc<Flow>,
    tx: Sender<M>,
    bytes: impl Fn(Chunk) -> M + Send + 'static,
    closed: M,
) -> io::Result<()> {
    thread::Builder::new().name(name).spawn(move || {
        let mut buffer = vec![0u8; READ_BUFFER];
        while flow.wait_to_read_blocking() {
            match (&*stream).read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = buffer.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
                    if tx.send(bytes(Chunk::new(chunk, Arc::clone(&flow)))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(closed);
    })?;
    Ok(())
}
