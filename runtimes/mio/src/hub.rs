//! A local IoT Hub on one event loop: one thread owns the [`ServedHub`] (the engine,
//! every connection's transport stack, the store), every listener and every socket,
//! and waits in one `epoll` (mio's [`Poll`]) for all of them, the application's
//! commands and the engine's next deadline.
//!
//! It follows the sans-IO contract (DESIGN.md): after every input or command it
//! drains `poll_output` and `poll_event`, then waits until the next readiness,
//! command or `poll_timeout`. A thread per connection costs two stacks and two
//! threads' scheduling; here a connection costs its socket, its stack's buffers and
//! its session.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::{self, JoinHandle};

use hubwire_core::Timestamp;
use hubwire_core::time::Duration;
use hubwire_runtime::listen::Listen;
use hubwire_runtime::sync::{HubCommand, HubDriver};
use hubwire_runtime::{EventSink, HubServerEvent, LINGER, PeerId, PeerOutput, ServedHub, clock};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn::{Conn, Turn};

/// The waker's token; listeners count down from below it, sockets are their
/// [`PeerId`] (ids start at 0 and would need 2^63 connections to meet them).
const WAKER: Token = Token(usize::MAX);
const FIRST_LISTENER: usize = usize::MAX - 1;

/// How long the loop waits before accepting again after an error that is not about
/// one connection (out of file descriptors), which would otherwise repeat at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// How long a closed connection's last bytes may wait for a peer that does not
/// read before the socket is dropped regardless.
const LAST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// Readiness events taken from the kernel per wait.
const EVENTS: usize = 1024;

/// Bytes read per `read` call; one buffer serves every connection.
const READ_BUFFER: usize = 16 * 1024;

/// The application's side of a hub's event loop (what [`crate::HubServer`] holds).
#[derive(Debug)]
pub struct HubLoop {
    commands: Sender<Input>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// What the application sends the loop.
#[derive(Debug)]
enum Input {
    /// Boxed: the channel's slots are as large as its largest message.
    Command(Box<HubCommand>),
    Shutdown,
}

impl HubLoop {
    /// Starts the loop's thread serving `hub` on `listeners`.
    ///
    /// Errors: the OS's error when the poller, a listener's registration or the
    /// thread cannot be made.
    pub(crate) fn start(
        hub: ServedHub,
        listeners: Vec<(Listen, StdListener)>,
        events: SyncSender<HubServerEvent>,
    ) -> io::Result<HubLoop> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut registered = Vec::new();
        for (i, (listen, socket)) in listeners.into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            let mut socket = TcpListener::from_std(socket);
            poll.registry().register(&mut socket, Token(FIRST_LISTENER - i), Interest::READABLE)?;
            registered.push((listen, socket));
        }
        let (commands, inputs) = mpsc::channel();
        let driver = Driver {
            poll,
            hub,
            listeners: registered,
            inputs,
            events: EventSink::new(events),
            conns: BTreeMap::new(),
            readable: BTreeSet::new(),
            closing: BTreeSet::new(),
            accept_again: None,
            buffer: vec![0; READ_BUFFER],
        };
        let thread =
            thread::Builder::new().name(String::from("hubwire-hub")).spawn(move || driver.run())?;
        Ok(HubLoop { commands, waker, thread: Some(thread) })
    }
}

impl HubDriver for HubLoop {
    fn command(&self, command: HubCommand) -> Option<()> {
        self.commands.send(Input::Command(Box::new(command))).ok()?;
        self.waker.wake().ok()
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            if self.commands.send(Input::Shutdown).is_ok() && self.waker.wake().is_ok() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for HubLoop {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One accepted socket as the loop holds it.
#[derive(Debug)]
struct Peer {
    conn: Conn,
    /// Readiness to read not yet consumed: the socket is readable until a read
    /// says `WouldBlock` (edge-triggered).
    unread: bool,
    stage: Stage,
}

/// How far a peer is in its close ([`PeerOutput::Close`], RFC 9112 §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Served: what it sends goes to the hub.
    Open,
    /// The hub has forgotten it: its last bytes are being written, until this
    /// deadline.
    Flushing(Timestamp),
    /// Its last bytes are written and its write side shut (FIN): what it still
    /// sends is read and dropped until it closes, or this deadline.
    Lingering(Timestamp),
}

impl Stage {
    /// When the socket is dropped regardless.
    fn deadline(self) -> Option<Timestamp> {
        match self {
            Stage::Open => None,
            Stage::Flushing(deadline) | Stage::Lingering(deadline) => Some(deadline),
        }
    }
}

/// The loop thread's state.
struct Driver {
    poll: Poll,
    hub: ServedHub,
    listeners: Vec<(Listen, TcpListener)>,
    inputs: Receiver<Input>,
    events: EventSink<SyncSender<HubServerEvent>>,
    conns: BTreeMap<PeerId, Peer>,
    /// Peers with input to read this turn, and not held back by their backlog.
    readable: BTreeSet<PeerId>,
    /// Closing peers ([`Stage::Flushing`], [`Stage::Lingering`]), by deadline.
    closing: BTreeSet<(Timestamp, PeerId)>,
    /// After an accept error, when to try again.
    accept_again: Option<Timestamp>,
    buffer: Vec<u8>,
}

impl Driver {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            self.drain();
            // Peers left unread by their turn's budget are read at once.
            let timeout = if self.readable.is_empty() {
                self.next_deadline().map(clock::until)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            let now = clock::now();
            for event in &events {
                match event.token() {
                    WAKER => {
                        if self.commands(now).is_err() {
                            return self.close_all();
                        }
                    }
                    Token(t) if t > FIRST_LISTENER - self.listeners.len() => {
                        self.accept(now, FIRST_LISTENER - t);
                    }
                    Token(id) => {
                        let id = id as PeerId;
                        if event.is_writable() {
                            self.flush(now, id);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.mark_readable(id);
                        }
                    }
                }
            }
            self.read(now);
            self.timers(now);
        }
        self.close_all();
    }

    /// Carries out the application's commands; `Err` on shutdown.
    fn commands(&mut self, now: Timestamp) -> Result<(), ()> {
        loop {
            match self.inputs.try_recv() {
                Ok(Input::Command(command)) => (*command).apply(&mut self.hub, now),
                Ok(Input::Shutdown) | Err(TryRecvError::Disconnected) => return Err(()),
                Err(TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        let closing = self.closing.first().map(|&(deadline, _)| deadline);
        let deadline = hubwire_core::time::earliest(self.hub.poll_timeout(), closing);
        hubwire_core::time::earliest(deadline, self.accept_again)
    }

    /// Accepts every connection waiting on listener `index`.
    fn accept(&mut self, now: Timestamp, index: usize) {
        let Some((listen, socket)) = self.listeners.get(index) else {
            return;
        };
        let listener = listen.listener;
        loop {
            match socket.accept() {
                Ok((mut stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    let Some(id) = self.hub.accept(now, listener, Some(address)) else {
                        continue;
                    };
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    let token = Token(id as usize);
                    if self.poll.registry().register(&mut stream, token, interest).is_err() {
                        self.hub.handle_close(now, id);
                        continue;
                    }
                    let peer = Peer { conn: Conn::new(stream), unread: true, stage: Stage::Open };
                    self.conns.insert(id, peer);
                    self.readable.insert(id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                // Out of file descriptors, say: the connections wait in the
                // backlog, and no new readiness will come for them.
                Err(_) => {
                    self.accept_again = Some(now + ACCEPT_ERROR_PAUSE);
                    return;
                }
            }
        }
    }

    fn mark_readable(&mut self, id: PeerId) {
        if let Some(peer) = self.conns.get_mut(&id) {
            peer.unread = true;
            let open = peer.stage == Stage::Open && !peer.conn.is_backlogged();
            if open || matches!(peer.stage, Stage::Lingering(_)) {
                self.readable.insert(id);
            }
        }
    }

    /// Gives every readable peer one turn of reading: an open one's bytes go to
    /// the hub, a lingering one's nowhere.
    fn read(&mut self, now: Timestamp) {
        for id in std::mem::take(&mut self.readable) {
            let Some(peer) = self.conns.get_mut(&id) else {
                continue;
            };
            let open = match peer.stage {
                Stage::Open if !peer.conn.is_backlogged() => true,
                Stage::Lingering(_) => false,
                Stage::Open | Stage::Flushing(_) => continue,
            };
            let hub = &mut self.hub;
            let turn = peer.conn.read_turn(&mut self.buffer, |bytes| {
                if open {
                    hub.handle_input(now, id, bytes);
                }
            });
            match turn {
                Turn::Drained => peer.unread = false,
                Turn::More => {
                    self.readable.insert(id);
                }
                Turn::Closed => {
                    self.drop_peer(id);
                    if open {
                        self.hub.handle_close(now, id);
                    }
                }
            }
        }
    }

    fn timers(&mut self, now: Timestamp) {
        self.hub.handle_timeout(now);
        while let Some(&(deadline, id)) = self.closing.first() {
            if deadline > now {
                break;
            }
            self.closing.pop_first();
            self.drop_peer(id);
        }
        if self.accept_again.is_some_and(|t| t <= now) {
            self.accept_again = None;
            for index in 0..self.listeners.len() {
                self.accept(now, index);
            }
        }
    }

    /// Hands the hub's output to the sockets and its events to the application.
    fn drain(&mut self) {
        let mut touched = BTreeSet::new();
        while let Some((id, output)) = self.hub.poll_output() {
            let Some(peer) = self.conns.get_mut(&id) else {
                continue;
            };
            match output {
                PeerOutput::Bytes(bytes) => peer.conn.queue(bytes),
                PeerOutput::Close => {
                    peer.stage = Stage::Flushing(clock::now() + LAST_BYTES_TIMEOUT);
                }
            }
            touched.insert(id);
        }
        let now = clock::now();
        for id in touched {
            self.flush(now, id);
        }
        while let Some(event) = self.hub.poll_event() {
            self.events.send(event);
        }
    }

    /// Writes what is queued for a peer; a closing peer lingers once written.
    fn flush(&mut self, now: Timestamp, id: PeerId) {
        let Some(peer) = self.conns.get_mut(&id) else {
            return;
        };
        if matches!(peer.stage, Stage::Lingering(_)) {
            return;
        }
        let was_backlogged = peer.conn.is_backlogged();
        if peer.conn.flush().is_err() {
            let open = peer.stage == Stage::Open;
            self.drop_peer(id);
            if open {
                self.hub.handle_close(now, id);
            }
            return;
        }
        match peer.stage {
            Stage::Flushing(_) if peer.conn.is_flushed() => self.linger(now, id),
            Stage::Flushing(deadline) => {
                self.closing.insert((deadline, id));
            }
            Stage::Open => {
                // Its answers drained: what it sent meanwhile is read now.
                if was_backlogged && !peer.conn.is_backlogged() && peer.unread {
                    self.readable.insert(id);
                }
            }
            Stage::Lingering(_) => {}
        }
    }

    /// A closing peer's last bytes are written: its write side is shut (FIN, after
    /// a TLS connection's close_notify among those bytes) and what it still sends
    /// is read and dropped, until it closes or [`LINGER`] passes.
    fn linger(&mut self, now: Timestamp, id: PeerId) {
        let Some(peer) = self.conns.get_mut(&id) else {
            return;
        };
        if peer.conn.stream.shutdown(std::net::Shutdown::Write).is_err() {
            return self.drop_peer(id);
        }
        if let Some(deadline) = peer.stage.deadline() {
            self.closing.remove(&(deadline, id));
        }
        let deadline = now + LINGER;
        peer.stage = Stage::Lingering(deadline);
        self.closing.insert((deadline, id));
        if peer.unread {
            self.readable.insert(id);
        }
    }

    fn drop_peer(&mut self, id: PeerId) {
        if let Some(mut peer) = self.conns.remove(&id) {
            let _ = self.poll.registry().deregister(&mut peer.conn.stream);
            if let Some(deadline) = peer.stage.deadline() {
                self.closing.remove(&(deadline, id));
            }
        }
        self.readable.remove(&id);
    }

    /// Shuts every socket, as a crashed hub would.
    fn close_all(&mut self) {
        for (_, peer) in std::mem::take(&mut self.conns) {
            let _ = peer.conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
