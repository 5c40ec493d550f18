//! A local IoT Hub on threads: one driver thread owns the [`ServedHub`] (the engine,
//! every connection's transport stack, the store); an accept thread per listener,
//! and a reader and a writer thread per connection, move bytes between the sockets
//! and the driver's channel.
//!
//! The driver follows the sans-IO contract (DESIGN.md): after every input or command
//! it drains `poll_output` and `poll_event`, then waits on its one channel until the
//! next input or `poll_timeout`.

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hubwire_core::{Timestamp, Transmit};
use hubwire_runtime::listen::Listen;
use hubwire_runtime::sync::{HubCommand, HubDriver};
use hubwire_runtime::{EventSink, HubServerEvent, PeerId, PeerOutput, ServedHub, clock};
use hubwire_transports::Listener;

use crate::{reader, writer};
use hubwire_runtime::flow::{Chunk, Flow};

/// How long the accept thread pauses after an error that is not about one
/// connection (out of file descriptors), which would otherwise repeat at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Inputs taken together at most before the hub's output is read.
const BATCH: usize = 64;

/// How long a write to a peer may block before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The application's side of a hub's threads (what [`crate::HubServer`] holds).
#[derive(Debug)]
pub struct HubThreads {
    /// Where the accept threads listen, to wake them at shutdown.
    listeners: Vec<SocketAddr>,
    inputs: Sender<Input>,
    stopping: Arc<AtomicBool>,
    acceptors: Vec<JoinHandle<()>>,
    driver: Option<JoinHandle<()>>,
}

/// What the driver waits for.
#[derive(Debug)]
enum Input {
    Accepted(TcpStream, Listener),
    Bytes(PeerId, Chunk),
    Closed(PeerId),
    /// Boxed: commands are rare, and bytes should not pay for their size.
    Command(Box<HubCommand>),
    Shutdown,
}

impl HubThreads {
    /// Starts the driver thread for `hub` and an accept thread per listener.
    ///
    /// Errors: the OS's error when a thread cannot start.
    pub(crate) fn start(
        hub: ServedHub,
        listeners: Vec<(Listen, TcpListener)>,
        events: SyncSender<HubServerEvent>,
    ) -> io::Result<HubThreads> {
        let (inputs_tx, inputs) = mpsc::channel();
        let driver = Driver {
            hub,
            inputs,
            readers: inputs_tx.clone(),
            events: EventSink::new(events),
            sockets: BTreeMap::new(),
        };
        let driver =
            thread::Builder::new().name(String::from("hubwire-hub")).spawn(move || driver.run())?;
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = HubThreads {
            listeners: listeners.iter().map(|(l, _)| l.address).collect(),
            inputs: inputs_tx,
            stopping: Arc::clone(&stopping),
            acceptors: Vec::new(),
            driver: Some(driver),
        };
        for (listen, socket) in listeners {
            let accepted = threads.inputs.clone();
            let stopping = Arc::clone(&stopping);
            // On failure `threads` drops here, stopping the driver and the acceptors
            // started so far.
            threads.acceptors.push(
                thread::Builder::new()
                    .name(format!("hubwire-hub-accept-{}", listen.address.port()))
                    .spawn(move || accept(&socket, listen.listener, &accepted, &stopping))?,
            );
        }
        Ok(threads)
    }
}

impl HubDriver for HubThreads {
    fn command(&self, command: HubCommand) -> Option<()> {
        self.inputs.send(Input::Command(Box::new(command))).ok()
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Release);
        for (acceptor, &address) in self.acceptors.drain(..).zip(&self.listeners) {
            // `accept` blocks; a connection of our own wakes it to see the flag.
            let mut wake = address;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
                let _ = acceptor.join();
            }
        }
        let _ = self.inputs.send(Input::Shutdown);
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

impl Drop for HubThreads {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The accept thread: hands each new connection to the driver until `stopping`.
fn accept(socket: &TcpListener, listener: Listener, driver: &Sender<Input>, stopping: &AtomicBool) {
    for stream in socket.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if driver.send(Input::Accepted(stream, listener)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let one_connection = matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                );
                if !one_connection {
                    thread::sleep(ACCEPT_ERROR_PAUSE);
                }
            }
        }
    }
}

/// One open connection's socket, as the driver holds it.
struct Socket {
    /// To shut it down at once when the hub stops. Its reader and writer share
    /// this one socket (one file descriptor per connection).
    stream: Arc<TcpStream>,
    writer: Sender<Transmit>,
    flow: Arc<Flow>,
}

/// The driver thread's state.
struct Driver {
    hub: ServedHub,
    inputs: Receiver<Input>,
    /// A sender for the reader threads.
    readers: Sender<Input>,
    events: EventSink<SyncSender<HubServerEvent>>,
    sockets: BTreeMap<PeerId, Socket>,
}

impl Driver {
    fn run(mut self) {
        'driving: loop {
            self.drain();
            let mut input = match self.hub.poll_timeout() {
                Some(deadline) => self.inputs.recv_timeout(clock::until(deadline)),
                None => self.inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = clock::now();
            // Inputs already waiting are taken together before the hub's output is
            // read, so the D2C messages among them are stored in one write.
            for taken in 1..=BATCH {
                match input {
                    Ok(Input::Accepted(stream, listener)) => self.accept(now, stream, listener),
                    Ok(Input::Bytes(peer, bytes)) => self.hub.handle_input(now, peer, &bytes),
                    Ok(Input::Closed(peer)) => {
                        if let Some(socket) = self.sockets.remove(&peer) {
                            let _ = socket.stream.shutdown(Shutdown::Both);
                            socket.flow.close();
                        }
                        self.hub.handle_close(now, peer);
                    }
                    Ok(Input::Command(command)) => command.apply(&mut self.hub, now),
                    Ok(Input::Shutdown) => break 'driving,
                    Err(RecvTimeoutError::Timeout) => {}
                    // Unreachable while `readers` lives.
                    Err(RecvTimeoutError::Disconnected) => break 'driving,
                }
                // The last of a batch is not taken off the channel: an input taken
                // and not handled would be lost.
                if taken == BATCH {
                    break;
                }
                match self.inputs.try_recv() {
                    Ok(next) => input = Ok(next),
                    Err(_) => break,
                }
            }
            // Checked after every batch so that busy connections cannot starve the
            // timers.
            self.hub.handle_timeout(now);
        }
        for socket in self.sockets.values() {
            let _ = socket.stream.shutdown(Shutdown::Both);
            socket.flow.close();
        }
    }

    /// Starts a new connection's reader and writer; the hub takes it from there.
    fn accept(&mut self, now: Timestamp, stream: TcpStream, listener: Listener) {
        let stream = Arc::new(stream);
        let Some(id) = self.hub.accept(now, listener, stream.peer_addr().ok()) else {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        };
        let flow = Arc::new(Flow::default());
        match self.start_socket(id, &stream, &flow) {
            Ok(writer) => {
                self.sockets.insert(id, Socket { stream, writer, flow });
            }
            Err(_) => {
                let _ = stream.shutdown(Shutdown::Both);
                self.hub.handle_close(now, id);
            }
        }
    }

    fn start_socket(
        &self,
        id: PeerId,
        stream: &Arc<TcpStream>,
        flow: &Arc<Flow>,
    ) -> io::Result<Sender<Transmit>> {
        stream.set_nodelay(true)?;
        // A peer that takes nothing for this long is gone as far as the hub cares;
        // without a limit its writer would wait on it forever, holding the
        // connection's threads after the engine has closed it.
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        reader::spawn(
            format!("hubwire-hub-{id}-read"),
            Arc::clone(stream),
            Arc::clone(flow),
            self.readers.clone(),
            move |chunk| Input::Bytes(id, chunk),
            Input::Closed(id),
        )?;
        writer::spawn(format!("hubwire-hub-{id}-write"), Arc::clone(stream), Arc::clone(flow))
    }

    /// Hands the hub's output to the writers and its events to the application.
    fn drain(&mut self) {
        while let Some((id, output)) = self.hub.poll_output() {
            match output {
                PeerOutput::Bytes(bytes) => {
                    if let Some(socket) = self.sockets.get(&id) {
                        socket.flow.queued(bytes.len());
                        let _ = socket.writer.send(Transmit::Send(bytes));
                    }
                }
                // The writer closes the socket in stages after the bytes queued
                // before (or gives up on a peer that does not read, after
                // [`WRITE_TIMEOUT`]), reading what the peer still sends itself; the
                // reader, which may be paused until those bytes are written, is
                // released now, and what it still reads and its close are ignored.
                // No read shutdown: reads would end at once, and the writer's
                // lingering with them.
                PeerOutput::Close => {
                    if let Some(socket) = self.sockets.remove(&id) {
                        let _ = socket.writer.send(Transmit::Close);
                        socket.flow.close();
                    }
                }
            }
        }
        while let Some(event) = self.hub.poll_event() {
            self.events.send(event);
        }
    }
}
