//! The driver task every client runs, whatever its machine. The task owns the
//! sans-IO machine with its transport stack and dialling plan ([`Dialed`]) and its
//! TCP connection; the application talks to it over a channel.
//!
//! A reader task per TCP connection forwards bytes and the close to that channel,
//! tagged with the connection's generation, so anything still arriving from a
//! connection the machine has closed is ignored. Writes are made by the driver
//! itself: a client has one peer, and a blocked write has nothing else to hold up.
//!
//! What differs between clients, their commands and what their events mean to the
//! application, is a [`Client`], as in the synchronous API.

use std::fmt;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_channel::{Receiver, Sender};
use hubwire_core::Timestamp;

use super::{Runtime, Waited, oneshot, socket, timeout, wait};
use crate::flow::{Chunk, Flow};
use crate::sync::{Client, ClientDriver, STOP_GRACE, publish_status};
use crate::{Action, Dialed, TransportStatus, clock, dial};

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
    /// answer (when someone waits).
    Stop { reply: Option<Sender<()>> },
}

/// The application's side of a client's driver task: what the clients of
/// [`crate::tasks`] hold, and the [`ClientDriver`] of [`super::OnTasks`]. Dropping
/// it stops the driver without waiting for it.
pub struct ClientTask<C> {
    commands: Sender<Input<C>>,
    bytes_written: Arc<AtomicU64>,
    status: Arc<Mutex<TransportStatus>>,
}

impl<C> fmt::Debug for ClientTask<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTask")
            .field("bytes_written", &self.bytes_written())
            .finish_non_exhaustive()
    }
}

impl<C: Send + 'static> ClientTask<C> {
    /// Spawns a driver task of runtime `R` for `dialed`, handing commands and
    /// events to `client`.
    pub(crate) fn spawn<R: Runtime, A: Client<Command = C>>(
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> ClientTask<C> {
        let (commands, inputs) = async_channel::unbounded();
        let bytes_written = Arc::new(AtomicU64::new(0));
        let status = Arc::new(Mutex::new(TransportStatus::default()));
        let driver = Driver::<R, A> {
            dialed,
            client,
            status: Arc::clone(&status),
            inputs,
            readers: commands.clone(),
            socket: None,
            generation: 0,
            bytes_written: Arc::clone(&bytes_written),
        };
        R::spawn(driver.run());
        ClientTask { commands, bytes_written, status }
    }
}

impl<C> ClientTask<C> {
    /// Hands a command to the driver; `None` when the driver has stopped.
    pub(crate) fn command(&self, command: C) -> Option<()> {
        self.commands.try_send(Input::Command(Box::new(command))).ok()
    }

    /// Stops the machine and the driver: the machine finishes what it owes the hub
    /// (its close written, settlements already asked for sent) within
    /// [`STOP_GRACE`]; resolves once the socket is shut down. Calling it again does
    /// nothing.
    pub(crate) async fn stop_and_wait(&self) {
        let (reply, done) = oneshot();
        if self.commands.try_send(Input::Stop { reply: Some(reply) }).is_ok() {
            let _ = done.recv().await;
        }
    }

    /// Bytes written to the sockets, over every connection.
    pub(crate) fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// What the transport did last.
    pub(crate) fn transport_status(&self) -> TransportStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<C: Send> ClientDriver<C> for ClientTask<C> {
    fn command(&self, command: C) -> Option<()> {
        ClientTask::command(self, command)
    }

    /// Blocks the calling thread until the driver has stopped: call it off the
    /// runtime's executor.
    fn stop(&self) {
        futures_lite::future::block_on(self.stop_and_wait());
    }

    fn bytes_written(&self) -> u64 {
        ClientTask::bytes_written(self)
    }

    fn transport_status(&self) -> TransportStatus {
        ClientTask::transport_status(self)
    }
}

impl<C> Drop for ClientTask<C> {
    fn drop(&mut self) {
        let _ = self.commands.try_send(Input::Stop { reply: None });
    }
}

/// Closes a driver's channel and drops what is still in it, so every caller
/// waiting for an answer to a command it sent hears that none will come.
pub(super) fn close<T>(inputs: &Receiver<T>) {
    inputs.close();
    while inputs.try_recv().is_ok() {}
}

/// The driver task's state.
struct Driver<R: Runtime, A: Client> {
    dialed: Dialed<A::Machine>,
    client: A,
    status: Arc<Mutex<TransportStatus>>,
    inputs: Receiver<Input<A::Command>>,
    /// A sender for the reader tasks.
    readers: Sender<Input<A::Command>>,
    /// The open connection, if any.
    socket: Option<R::Stream>,
    /// Counts connections (and closes): input tagged with an older generation comes
    /// from a connection the machine has forgotten.
    generation: u64,
    bytes_written: Arc<AtomicU64>,
}

impl<R: Runtime, A: Client> Driver<R, A> {
    async fn run(mut self) {
        // After a stop: whom to answer, and the end of the grace period.
        let mut stopping: Option<(Vec<Sender<()>>, Timestamp)> = None;
        loop {
            self.drain().await;
            if let Some((_, until)) = &stopping {
                // Done once the machine has closed its transport, or out of time.
                if !self.dialed.has_socket() || clock::now() >= *until {
                    self.shut_socket();
                    close(&self.inputs);
                    for reply in stopping.take().map(|(r, _)| r).unwrap_or_default() {
                        let _ = reply.try_send(());
                    }
                    return;
                }
            }
            let deadline = hubwire_core::time::earliest(
                self.dialed.poll_timeout(),
                stopping.as_ref().map(|&(_, until)| until),
            );
            let input = wait::<R, _>(&self.inputs, deadline).await;
            let now = clock::now();
            match input {
                Waited::Input(Input::Bytes { generation, bytes })
                    if generation == self.generation =>
                {
                    self.dialed.handle_input(now, &bytes);
                }
                Waited::Input(Input::Closed { generation }) if generation == self.generation => {
                    self.shut_socket();
                    self.dialed.handle_close(now);
                }
                Waited::Input(Input::Bytes { .. } | Input::Closed { .. }) => {}
                Waited::Input(Input::Command(command)) => {
                    self.client.command(self.dialed.machine_mut(), now, *command);
                }
                Waited::Input(Input::Stop { reply }) => {
                    let reply = reply.into_iter();
                    match &mut stopping {
                        Some((replies, _)) => replies.extend(reply),
                        None => {
                            self.client.stop(self.dialed.machine_mut(), now);
                            stopping = Some((reply.collect(), now + STOP_GRACE));
                        }
                    }
                }
                Waited::Timeout => {}
                // Unreachable while `readers` lives; nothing is left to drive.
                Waited::Closed => return,
            }
            // Checked after every input, not only on a quiet channel, so a steady
            // stream of input cannot starve the timers.
            self.dialed.handle_timeout(now);
        }
    }

    /// Carries out the socket actions and hands on the events until the machine has
    /// nothing more to say.
    async fn drain(&mut self) {
        loop {
            if let Some(action) = self.dialed.poll_action() {
                self.act(action).await;
            } else if let Some(event) = self.dialed.poll_event() {
                // An application reading the status on an event reads why.
                publish_status(self.dialed.status(), &self.status);
                self.client.event(event);
            } else {
                break;
            }
        }
        publish_status(self.dialed.status(), &self.status);
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Dial { host, port, .. } => {
                self.shut_socket();
                let connect = timeout::<R, _>(dial::CONNECT_TIMEOUT, R::connect(host, port));
                match connect.await {
                    Some(Ok(stream)) => {
                        let peer = R::peer_addr(&stream);
                        self.start_reader(&stream);
                        self.socket = Some(stream);
                        self.dialed.dial_succeeded(clock::now(), peer);
                    }
                    Some(Err(e)) => self.dialed.dial_failed(clock::now(), e.to_string()),
                    None => self.dialed.dial_failed(
                        clock::now(),
                        format!("no connection within {:?}", dial::CONNECT_TIMEOUT),
                    ),
                }
            }
            Action::Write(bytes) => {
                let Some(socket) = self.socket.as_mut() else {
                    return;
                };
                // A failed write shuts the socket; the reader sees that and reports
                // the close, which reaches the machine as `handle_close` in order
                // with any bytes read before it.
                if socket::write::<R>(socket, &bytes).await {
                    self.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                } else {
                    R::shutdown(socket, Shutdown::Both);
                }
            }
            Action::Shutdown => self.shut_socket(),
        }
    }

    /// Starts the reader of a new connection.
    fn start_reader(&self, stream: &R::Stream) {
        let generation = self.generation;
        // The reader ends when the socket is shut down; the flow only paces it.
        socket::spawn_reader::<R, _>(
            stream.clone(),
            Arc::new(Flow::default()),
            self.readers.clone(),
            move |bytes| Input::Bytes { generation, bytes },
            Input::Closed { generation },
        );
    }

    /// Shuts the current connection down (its bytes already written leave first)
    /// and starts a new generation, so its reader's last messages are ignored.
    fn shut_socket(&mut self) {
        if let Some(socket) = self.socket.take() {
            R::shutdown(&socket, Shutdown::Both);
        }
        self.generation += 1;
    }
}
