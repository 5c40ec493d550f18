//! The in-memory stream tungstenite reads and writes: how its blocking-style API is
//! driven sans-IO.

use std::io;

use bytes::{Buf as _, BytesMut};

/// Bytes from the network waiting for tungstenite, and bytes it wrote for the
/// network. Reading an empty pipe is `WouldBlock`, never end-of-stream: the end of
/// the connection is the runtime's to report, not a read's.
#[derive(Debug, Default)]
pub(super) struct Pipe {
    /// Network bytes not yet read by tungstenite.
    pub(super) input: BytesMut,
    /// Bytes for the network, in order.
    pub(super) output: BytesMut,
}

impl io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.input.len());
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let (to, _) = buf.split_at_mut(n);
        to.copy_from_slice(&self.input[..n]);
        self.input.advance(n);
        Ok(n)
    }
}

impl io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    #[test]
    fn empty_pipe_would_block_and_reads_resume_after_input() {
        let mut pipe = Pipe::default();
        let mut buf = [0; 4];
        let blocked = pipe.read(&mut buf).map_err(|e| e.kind());
        assert_eq!(blocked, Err(io::ErrorKind::WouldBlock));
        pipe.input.extend_from_slice(b"abcdef");
        assert_eq!(pipe.read(&mut buf).ok(), Some(4));
        assert_eq!(&buf, b"abcd");
        assert_eq!(pipe.read(&mut buf).ok(), Some(2));
        assert_eq!(&buf[..2], b"ef");
        assert!(pipe.read(&mut buf).is_err());
        assert_eq!(pipe.write(b"out").ok(), Some(3));
        assert_eq!(&pipe.output[..], b"out");
    }
}
