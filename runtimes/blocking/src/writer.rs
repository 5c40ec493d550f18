//! The writer thread each hub connection gets, so that one slow peer never holds
//! up the hub's driver: the driver hands transmits to a channel and goes on, and the
//! connection's [`Flow`] counts what is still to be written.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread;

use hubwire_core::Transmit;

use hubwire_runtime::flow::Flow;

/// Spawns a thread that writes each [`Transmit::Send`] to `stream` in order and
/// shuts the socket down on [`Transmit::Close`], on a failed write, or when the
/// returned sender is dropped. A failed write thus reaches the driver as the
/// connection's reader seeing the shutdown.
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
                Transmit::Close => break,
                // A server never dials.
                Transmit::Connect => {}
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
        flow.close();
    })?;
    Ok(tx)
}
