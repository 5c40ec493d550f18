//! One non-blocking socket on the event loop: what is queued for it and not yet
//! written, and reading it in bounded turns.
//!
//! Sockets are registered edge-triggered for both readiness kinds once, so the loop
//! never re-registers: a readable socket is read until the kernel says
//! `WouldBlock`, and queued bytes are written until it does, then again on the next
//! writable event.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

/// Bytes queued for a peer and not yet written, above which the loop stops reading
/// from it: a peer that sends without reading our answers (a flood of PINGREQs)
/// waits in its own TCP window instead of our memory.
pub(crate) const MAX_UNWRITTEN: usize = 1024 * 1024;

/// At most this much is read from one socket per turn of the loop, so that one busy
/// peer cannot hold up the others (or the timers).
pub(crate) const READ_TURN: usize = 64 * 1024;

/// How a turn of reading ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Everything the kernel had was read.
    Drained,
    /// The turn's budget ran out with more to read.
    More,
    /// The peer closed the socket or it broke.
    Closed,
}

/// A socket and its unwritten bytes.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    unwritten: VecDeque<Bytes>,
    unwritten_len: usize,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        Conn { stream, unwritten: VecDeque::new(), unwritten_len: 0 }
    }

    /// Queues bytes after those queued before; [`Conn::flush`] writes them.
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.unwritten_len += bytes.len();
            self.unwritten.push_back(bytes);
        }
    }

    /// Writes queued bytes until the kernel takes no more. Returns how many were
    /// written.
    ///
    /// Errors: the socket's write error (the peer is gone).
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while let Some(front) = self.unwritten.front_mut() {
            match self.stream.write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.unwritten_len -= n;
                    front.advance(n);
                    if front.is_empty() {
                        self.unwritten.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Everything queued is written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.unwritten.is_empty()
    }

    /// Too much is queued for the peer to read more from it.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.unwritten_len > MAX_UNWRITTEN
    }

    /// Reads up to [`READ_TURN`] bytes through `buffer`, handing each read to
    /// `received`.
    pub(crate) fn read_turn(&mut self, buffer: &mut [u8], mut received: impl FnMut(&[u8])) -> Turn {
        let mut budget = READ_TURN;
        while budget > 0 {
            match self.stream.read(buffer) {
                Ok(0) => return Turn::Closed,
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    received(buffer.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Turn::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Turn::Closed,
            }
        }
        Turn::More
    }
}
