//! The standard streams, written without panicking and without one blocking the
//! other.
//!
//! `println!` panics when stdout is a closed pipe (`hubwire device | head -1`), and
//! `eprintln!` blocks when stderr is a pipe nobody reads, which would also stop
//! stdout written from the same thread. Here a closed stdout is a value the command
//! acts on, and the hub's stderr goes through a bounded queue that drops lines
//! rather than wait.

use std::fmt;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

/// stdout cannot be written (a closed pipe, a full disk): nobody reads what the
/// command reports, so it stops, quietly and successfully, as `head` expects of
/// the program before it in a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StdoutClosed;

/// Writes `line` and a newline to stdout, flushed so that a reader sees each line
/// as it happens.
///
/// Errors: [`StdoutClosed`] when the write or the flush fails.
pub(crate) fn print(line: impl fmt::Display) -> Result<(), StdoutClosed> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|_| StdoutClosed)
}

/// Holds stdout for this thread until dropped: other threads' [`print()`] calls wait,
/// this thread's go through (the lock is reentrant).
pub(crate) fn hold_stdout() -> io::StdoutLock<'static> {
    io::stdout().lock()
}

/// Writes `line` and a newline to stderr, at once. A failure is ignored: stderr is
/// where failures would be reported.
pub(crate) fn warn(line: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Lines [`Stderr`] holds for its thread before it starts dropping them.
const STDERR_QUEUE: usize = 1024;

/// A stderr that never makes its writer wait: lines go through a queue of
/// [`STDERR_QUEUE`] lines to a thread that writes them. When the queue is full
/// (stderr is a pipe nobody reads) a line is dropped and counted; the next line
/// that fits is preceded by `(N stderr lines dropped)`.
#[derive(Debug)]
pub(crate) struct Stderr {
    queue: SyncSender<String>,
    /// Lines dropped since the last one queued.
    dropped: u64,
}

impl Stderr {
    /// Starts the thread that writes the queued lines to stderr.
    ///
    /// Errors: the OS's, when the thread cannot start.
    pub(crate) fn spawn() -> io::Result<Stderr> {
        let (queue, lines) = mpsc::sync_channel(STDERR_QUEUE);
        thread::Builder::new().name(String::from("hubwire-stderr")).spawn(move || write(&lines))?;
        Ok(Stderr::over(queue))
    }

    fn over(queue: SyncSender<String>) -> Stderr {
        Stderr { queue, dropped: 0 }
    }

    /// Queues `line` for stderr, or drops it if the queue is full.
    pub(crate) fn line(&mut self, line: String) {
        if self.dropped > 0 {
            let notice = format!("({} stderr lines dropped)", self.dropped);
            if self.queue.try_send(notice).is_err() {
                self.dropped += 1;
                return;
            }
            self.dropped = 0;
        }
        if self.queue.try_send(line).is_err() {
            self.dropped += 1;
        }
    }
}

/// The stderr thread: writes each line as it comes, until every sender is gone.
fn write(lines: &Receiver<String>) {
    for line in lines {
        warn(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_lines_and_the_next_line_that_fits_says_how_many() {
        let (queue, lines) = mpsc::sync_channel(2);
        let mut stderr = Stderr::over(queue);
        for n in 1..=5 {
            stderr.line(format!("line {n}"));
        }
        assert_eq!(lines.try_iter().collect::<Vec<_>>(), ["line 1", "line 2"]);
        stderr.line(String::from("line 6"));
        assert_eq!(lines.try_iter().collect::<Vec<_>>(), ["(3 stderr lines dropped)", "line 6"]);
        stderr.line(String::from("line 7"));
        assert_eq!(lines.try_iter().collect::<Vec<_>>(), ["line 7"], "the count starts again");
    }

    #[test]
    fn a_line_that_does_not_fit_after_its_notice_is_counted_again() {
        let (queue, lines) = mpsc::sync_channel(1);
        let mut stderr = Stderr::over(queue);
        stderr.line(String::from("kept"));
        stderr.line(String::from("dropped"));
        assert_eq!(lines.try_iter().collect::<Vec<_>>(), ["kept"]);
        // Room for the notice only: the line after it is the next one dropped.
        stderr.line(String::from("also dropped"));
        assert_eq!(lines.try_iter().collect::<Vec<_>>(), ["(1 stderr lines dropped)"]);
        stderr.line(String::from("last"));
        assert_eq!(lines.try_iter().collect::<Vec<_>>(), ["(1 stderr lines dropped)"]);
    }
}
