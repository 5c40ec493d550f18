//! The driver thread every client runs, whatever its machine: one device
//! ([`crate::DeviceClient`]) or one AMQP connection carrying many
//! ([`crate::MultiplexedClient`]). The thread owns the sans-IO machine, its TCP
//! connection and the transport [`Stack`] on it (TLS, WebSocket); the application
//! talks to it over a channel.
//!
//! The driver follows the sans-IO contract (DESIGN.md): after every input or command
//! it drains `poll_transmit` and `poll_event`, then waits on its one channel until
//! the next input or `poll_timeout`. A reader thread per TCP connection forwards
//! bytes and the close to that channel, tagged with the connection's generation, so
//! anything still arriving from a connection the machine has closed is ignored.
//! Transmits are written by the driver itself: a client has one peer, and a blocked
//! write has nothing else to hold up.
//!
//! The machine hears of a connection (`handle_connected`) only once every handshake
//! of its stack is done, so its first frame is the first thing it sends on an open
//! transport; a failed handshake reaches it as `handle_close`, and its words reach
//! the application through [`TransportStatus`].
//!
//! What differs between clients, their commands and what their events mean to the
//! application, is a [`Client`].

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use hubwire_core::Timestamp;
use hubwire_runtime::sync::{Client, ClientDriver, STOP_GRACE, publish_status};
use hubwire_runtime::{Action, Dialed, TransportStatus, clock, dial};

use crate::reader;
use hubwire_runtime::flow::{Chunk, Flow};

/// What the driver waits for.
#[derive(Debug)]
enum Input<C> {
    /// Bytes from the connection of this generation.
    Bytes { generation: u64, bytes: Chunk },
    /// The connection of this generation closed or broke.
    Closed { generation: u64 },
    /// Boxed: commands are rare, and bytes should not pay for their size.
    Command(Box<C>),
    /// Stop the machine and, once it has closed its transport, the driver; then
    /// answer.
    Stop { reply: Sender<()> },
}

/// The application's side of a client's driver thread (what
/// [`crate::DeviceClient`] and [`crate::MultiplexedClient`] hold). Dropping it stops
/// the driver and waits for it.
pub struct ClientThread<C> {
    commands: Sender<Input<C>>,
    bytes_written: Arc<AtomicU64>,
    status: Arc<Mutex<TransportStatus>>,
    driver: Option<JoinHandle<()>>,
}

impl<C: Send + 'static> ClientThread<C> {
    /// Starts a driver thread named `name` for `dialed`.
    ///
    /// Errors: the OS's error when the thread cannot start.
    pub(crate) fn spawn<A: Client<Command = C>>(
        name: String,
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> io::Result<ClientThread<C>> {
        let (commands, inputs) = mpsc::channel();
        let bytes_written = Arc::new(AtomicU64::new(0));
        let status = Arc::new(Mutex::new(TransportStatus::default()));
        let driver = Driver {
            name,
            dialed,
            client,
            status: Arc::clone(&status),
            inputs,
            readers: commands.clone(),
            socket: None,
            generation: 0,
            bytes_written: Arc::clone(&bytes_written),
        };
        let driver =
            thread::Builder::new().name(driver.name.clone()).spawn(move || driver.run())?;
        Ok(ClientThread { commands, bytes_written, status, driver: Some(driver) })
    }
}

impl<C> std::fmt::Debug for ClientThread<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientThread").field("status", &self.status).finish_non_exhaustive()
    }
}

impl<C: Send> ClientDriver<C> for ClientThread<C> {
    fn command(&self, command: C) -> Option<()> {
        self.commands.send(Input::Command(Box::new(command))).ok()
    }

    fn stop(&self) {
        ClientThread::stop(self);
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    fn transport_status(&self) -> TransportStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<C> ClientThread<C> {
    fn stop(&self) {
        let (reply, done) = mpsc::channel();
        if self.commands.send(Input::Stop { reply }).is_ok() {
            let _ = done.recv();
        }
    }
}

impl<C> Drop for ClientThread<C> {
    fn drop(&mut self) {
        self.stop();
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

/// The driver thread's state.
struct Driver<A: Client> {
    name: String,
    dialed: Dialed<A::Machine>,
    client: A,
    status: Arc<Mutex<TransportStatus>>,
    inputs: Receiver<Input<A::Command>>,
    /// A sender for the reader threads.
    readers: Sender<Input<A::Command>>,
    /// The open connection, if any.
    socket: Option<TcpStream>,
    /// Counts connections (and closes): input tagged with an older generation comes
    /// from a connection the machine has forgotten.
    generation: u64,
    bytes_written: Arc<AtomicU64>,
}

impl<A: Client> Driver<A> {
    fn run(mut self) {
        // After a stop: whom to answer, and the end of the grace period.
        let mut stopping: Option<(Vec<Sender<()>>, Timestamp)> = None;
        loop {
            self.drain();
            if let Some((_, until)) = &stopping {
                // Done once the machine has closed its transport, or out of time.
                if !self.dialed.has_socket() || clock::now() >= *until {
                    self.shut_socket();
                    for reply in stopping.take().map(|(r, _)| r).unwrap_or_default() {
                        let _ = reply.send(());
                    }
                    return;
                }
            }
            let deadline = hubwire_core::time::earliest(
                self.dialed.poll_timeout(),
                stopping.as_ref().map(|&(_, until)| until),
            );
            let input = match deadline {
                Some(deadline) => self.inputs.recv_timeout(clock::until(deadline)),
                None => self.inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let now = clock::now();
            match input {
                Ok(Input::Bytes { generation, bytes }) if generation == self.generation => {
                    self.dialed.handle_input(now, &bytes);
                }
                Ok(Input::Closed { generation }) if generation == self.generation => {
                    self.shut_socket();
                    self.dialed.handle_close(now);
                }
                Ok(Input::Bytes { .. } | Input::Closed { .. }) => {}
                Ok(Input::Command(command)) => {
                    self.client.command(self.dialed.machine_mut(), clock::now(), *command);
                }
                Ok(Input::Stop { reply }) => match &mut stopping {
                    Some((replies, _)) => replies.push(reply),
                    None => {
                        self.client.stop(self.dialed.machine_mut(), clock::now());
                        stopping = Some((vec![reply], clock::now() + STOP_GRACE));
                    }
                },
                Err(RecvTimeoutError::Timeout) => {}
                // Unreachable while `readers` lives; nothing is left to drive.
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Checked after every input, not only on a quiet channel, so a steady
            // stream of input cannot starve the timers.
            self.dialed.handle_timeout(now);
        }
    }

    /// Carries out the socket actions and hands on the events until the machine has
    /// nothing more to say.
    fn drain(&mut self) {
        loop {
            if let Some(action) = self.dialed.poll_action() {
                self.act(action);
            } else if let Some(event) = self.dialed.poll_event() {
                publish_status(self.dialed.status(), &self.status);
                self.client.event(event);
            } else {
                break;
            }
        }
        publish_status(self.dialed.status(), &self.status);
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Dial { host, port, .. } => {
                self.shut_socket();
                match dial::dial(&host, port) {
                    Ok(stream) => {
                        let peer = stream.peer_addr().ok();
                        match self.start_reader(&stream) {
                            Ok(()) => {
                                self.socket = Some(stream);
                                self.dialed.dial_succeeded(clock::now(), peer);
                            }
                            Err(e) => self.dialed.dial_failed(
                                clock::now(),
                                format!("cannot start a reader thread: {e}"),
                            ),
                        }
                    }
                    Err(e) => self.dialed.dial_failed(clock::now(), e.to_string()),
                }
            }
            Action::Write(bytes) => self.write(&bytes),
            Action::Shutdown => self.shut_socket(),
        }
    }

    /// Writes to the socket. A failed write shuts the socket; the reader sees that
    /// and reports the close, which reaches the machine as `handle_close` in order
    /// with any bytes read before it.
    fn write(&mut self, bytes: &[u8]) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        match socket.write_all(bytes) {
            Ok(()) => {
                self.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }

    /// Starts the reader of a new connection.
    fn start_reader(&self, stream: &TcpStream) -> io::Result<()> {
        let generation = self.generation;
        // The reader ends when the socket is shut down; the flow only paces it.
        let spawned = reader::spawn(
            format!("{}-read", self.name),
            Arc::new(stream.try_clone()?),
            Arc::new(Flow::default()),
            self.readers.clone(),
            move |bytes| Input::Bytes { generation, bytes },
            Input::Closed { generation },
        );
        if spawned.is_err() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        spawned
    }

    /// Shuts the current connection down (its bytes already written leave first)
    /// and starts a new generation, so its reader's last messages are ignored.
    fn shut_socket(&mut self) {
        if let Some(socket) = self.socket.take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        self.generation += 1;
    }
}
