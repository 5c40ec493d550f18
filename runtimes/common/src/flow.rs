//! Backpressure for one connection: its reader reads again only when the driver is
//! done with the last chunk and the bytes waiting to be written to the peer are few.
//! The blocking runtime's reader threads wait with [`Flow::wait_to_read_blocking`],
//! the async runtimes' reader tasks with [`Flow::wait_to_read`].
//!
//! Without it, a peer that sends faster than the driver works (a flood of PINGREQs)
//! fills the driver's queue and memory, and every other connection waits behind it;
//! a peer that never reads makes its answers pile up. With it the flood stays in
//! the peer's TCP window, and a peer that does not read is not read from.

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use event_listener::{Event, Listener};

/// Bytes queued for the peer and not yet written, above which its reader pauses.
pub const MAX_UNWRITTEN: usize = 1024 * 1024;

/// One connection's backpressure: shared by its reader, its writer and the driver.
#[derive(Debug, Default)]
pub struct Flow {
    state: Mutex<State>,
    changed: Event,
}

#[derive(Debug, Default)]
struct State {
    /// A chunk read from the peer is still with the driver.
    chunk_out: bool,
    /// Bytes handed to the writer and not yet written.
    unwritten: usize,
    /// The connection is over: readers stop waiting.
    closed: bool,
}

impl Flow {
    /// Waits until the reader may read again; false once the connection is closed.
    pub async fn wait_to_read(&self) -> bool {
        loop {
            // Listening before looking, so a change in between is not missed.
            let changed = self.changed.listen();
            {
                let state = self.lock();
                if state.closed {
                    return false;
                }
                if !state.chunk_out && state.unwritten <= MAX_UNWRITTEN {
                    return true;
                }
            }
            changed.await;
        }
    }

    /// Blocks the reader's thread until it may read again; false once the
    /// connection is closed.
    pub fn wait_to_read_blocking(&self) -> bool {
        loop {
            // Listening before looking, so a change in between is not missed.
            let changed = self.changed.listen();
            {
                let state = self.lock();
                if state.closed {
                    return false;
                }
                if !state.chunk_out && state.unwritten <= MAX_UNWRITTEN {
                    return true;
                }
            }
            changed.wait();
        }
    }

    /// Resolves once the connection is closed.
    pub async fn closed(&self) {
        loop {
            let changed = self.changed.listen();
            if self.lock().closed {
                return;
            }
            changed.await;
        }
    }

    /// The driver queued `n` bytes for the writer.
    pub fn queued(&self, n: usize) {
        self.lock().unwritten += n;
    }

    /// The writer wrote `n` bytes.
    pub fn written(&self, n: usize) {
        let mut state = self.lock();
        state.unwritten = state.unwritten.saturating_sub(n);
        drop(state);
        self.changed.notify(usize::MAX);
    }

    /// The connection is over.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify(usize::MAX);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes read from a peer. Dropping the chunk, whatever the driver did with it
/// (handled it, or ignored it because its connection is gone), lets the reader read
/// again, so no reader waits forever on a chunk nobody will report.
#[derive(Debug)]
pub struct Chunk {
    bytes: Vec<u8>,
    flow: Arc<Flow>,
}

impl Chunk {
    /// Marks a chunk as out with the driver.
    pub fn new(bytes: Vec<u8>, flow: Arc<Flow>) -> Self {
        flow.lock().chunk_out = true;
        Chunk { bytes, flow }
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.flow.lock().chunk_out = false;
        self.flow.changed.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_reader_thread_waits_for_the_chunk_and_is_released_by_a_close() {
        let flow = Arc::new(Flow::default());
        assert!(flow.wait_to_read_blocking());
        let chunk = Chunk::new(vec![1], Arc::clone(&flow));
        let reader = {
            let flow = Arc::clone(&flow);
            std::thread::spawn(move || flow.wait_to_read_blocking())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!reader.is_finished(), "a chunk is out");
        drop(chunk);
        assert_eq!(reader.join().ok(), Some(true));
        let _chunk = Chunk::new(vec![2], Arc::clone(&flow));
        let reader = {
            let flow = Arc::clone(&flow);
            std::thread::spawn(move || flow.wait_to_read_blocking())
        };
        flow.close();
        assert_eq!(reader.join().ok(), Some(false));
    }

    #[cfg(feature = "async")]
    use futures_lite::future;

    /// Whether `wait_to_read` would resolve now.
    #[cfg(feature = "async")]
    fn may_read(flow: &Flow) -> Option<bool> {
        future::block_on(future::poll_once(flow.wait_to_read()))
    }

    #[test]
    #[cfg(feature = "async")]
    fn the_reader_waits_for_the_chunk_and_for_the_writer() {
        let flow = Arc::new(Flow::default());
        assert_eq!(may_read(&flow), Some(true));
        let chunk = Chunk::new(vec![1, 2, 3], Arc::clone(&flow));
        flow.queued(MAX_UNWRITTEN + 1);
        assert_eq!(may_read(&flow), None, "a chunk is out and the writer is behind");
        drop(chunk);
        assert_eq!(may_read(&flow), None, "the writer is still behind");
        flow.written(2);
        assert_eq!(may_read(&flow), Some(true));
    }

    #[test]
    #[cfg(feature = "async")]
    fn closing_releases_a_waiting_reader() {
        let flow = Arc::new(Flow::default());
        let _chunk = Chunk::new(vec![1], Arc::clone(&flow));
        let waiting = {
            let flow = Arc::clone(&flow);
            std::thread::spawn(move || future::block_on(flow.wait_to_read()))
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        flow.close();
        assert_eq!(waiting.join().ok(), Some(false));
        assert_eq!(future::block_on(future::poll_once(flow.closed())), Some(()));
    }
}
