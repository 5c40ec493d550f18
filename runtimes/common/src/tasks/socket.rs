//! The tasks a socket gets: a reader, which turns the socket into messages on its
//! driver's channel, one chunk at a time as its [`Flow`] allows, so a driver waits
//! on one channel for bytes, closes, commands and timers alike; and, for a hub
//! connection, a writer, so that one slow peer never holds up the hub's driver.

use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;
use bytes::Bytes;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};

use super::Runtime;
use crate::LINGER;
use crate::flow::{Chunk, Flow};

/// Bytes read in one call, at most.
const READ_BUFFER: usize = 16 * 1024;

/// How long a write to a peer may wait before the connection is given up: a peer
/// that takes nothing for this long is gone as far as its driver cares.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Spawns a task that sends `bytes(chunk)` for everything read from `stream` and
/// then `closed` once, when the peer closes, the socket breaks or is shut down, or
/// `flow` is closed. The task ends then, or as soon as the driver is gone.
pub(crate) fn spawn_reader<R: Runtime, M: Send + 'static>(
    stream: R::Stream,
    flow: Arc<Flow>,
    tx: Sender<M>,
    bytes: impl Fn(Chunk) -> M + Send + 'static,
    closed: M,
) {
    R::spawn(async move {
        let mut stream = stream;
        let mut buffer = vec![0u8; READ_BUFFER];
        while flow.wait_to_read().await {
            let read = futures_lite::future::or(stream.read(&mut buffer), async {
                flow.closed().await;
                Ok(0)
            });
            match read.await {
                Ok(0) => break,
                Ok(n) => {
                    let chunk = buffer.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
                    if tx.send(bytes(Chunk::new(chunk, Arc::clone(&flow)))).await.is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(closed).await;
    });
}

/// What a writer task is given.
#[derive(Debug)]
pub(crate) enum Write {
    /// Write these bytes after those given before.
    Bytes(Bytes),
    /// Close the socket in stages after the bytes given before.
    Close,
}

/// Spawns a task that writes each [`Write::Bytes`] to `stream` in order, counting
/// them off `flow`, and shuts the socket down on a failed or timed-out write, or
/// when the returned sender is dropped. A failed write thus reaches the driver as
/// the connection's reader seeing the shutdown. On [`Write::Close`] it closes in
/// stages ([`linger`]).
pub(crate) fn spawn_writer<R: Runtime>(stream: R::Stream, flow: Arc<Flow>) -> Sender<Write> {
    let (tx, rx) = async_channel::unbounded();
    R::spawn(async move {
        let mut stream = stream;
        loop {
            match rx.recv().await {
                Ok(Write::Bytes(bytes)) => {
                    if !write::<R>(&mut stream, &bytes).await {
                        break;
                    }
                    flow.written(bytes.len());
                }
                Ok(Write::Close) => {
                    linger::<R>(&mut stream).await;
                    break;
                }
                Err(_) => break,
            }
        }
        R::shutdown(&stream, Shutdown::Both);
        flow.close();
    });
    tx
}

/// The middle stages of a close, once the last bytes are written (RFC 9112 §9.6,
/// [`crate::PeerOutput::Close`]): FIN, then what the peer still sends is read and
/// dropped until it closes, the socket fails, or [`LINGER`] passes. The bytes go
/// nowhere: the connection's reader has stopped, and the hub forgot the peer.
async fn linger<R: Runtime>(stream: &mut R::Stream) {
    R::shutdown(stream, Shutdown::Write);
    let mut buffer = vec![0u8; READ_BUFFER];
    let discard = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    };
    let _ = super::timeout::<R, _>(LINGER, discard).await;
}

/// Writes `bytes` to `stream` within [`WRITE_TIMEOUT`]; false when it failed.
pub(crate) async fn write<R: Runtime>(stream: &mut R::Stream, bytes: &[u8]) -> bool {
    let written = super::timeout::<R, _>(WRITE_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    });
    matches!(written.await, Some(Ok(())))
}
