//! Device clients on one event loop: every [`crate::DeviceClient`] and
//! [`crate::MultiplexedClient`] of the process is a slot of one loop thread, which
//! waits in one `epoll` (mio's [`Poll`]) for all their sockets, their applications'
//! commands and the earliest of their machines' deadlines. A simulator holding ten
//! thousand devices holds ten thousand sockets and one thread.
//!
//! Each slot follows the sans-IO contract (DESIGN.md) through its [`Dialed`]
//! machine: after every input or command it carries out `poll_action` (dial, write,
//! shut) and hands on `poll_event`, then its next deadline joins the loop's timers.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;

use hubwire_core::Timestamp;
use hubwire_core::time::Duration;
use hubwire_runtime::sync::{Client, ClientDriver, STOP_GRACE, publish_status};
use hubwire_runtime::{Action, Dialed, TransportStatus, clock, dial};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::conn::{Conn, Turn};

/// The waker's token. A socket's token is its slot's id shifted left by
/// [`GENERATION_BITS`] with the slot's connection count below, so readiness left
/// over from a socket the slot has replaced is recognised and ignored.
const WAKER: Token = Token(usize::MAX);
const GENERATION_BITS: u32 = 16;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// Readiness events taken from the kernel per wait.
const EVENTS: usize = 1024;

/// Bytes read per `read` call; one buffer serves every socket.
const READ_BUFFER: usize = 16 * 1024;

/// The process's device loop, started by the first client.
static LOOP: OnceLock<io::Result<Shared>> = OnceLock::new();

/// What clients share with the loop thread.
#[derive(Debug)]
struct Shared {
    inputs: Sender<LoopInput>,
    waker: Waker,
    next_slot: AtomicU64,
}

/// What the loop is told.
enum LoopInput {
    /// A new client.
    Add(u64, Box<dyn Slot>),
    /// A client has commands waiting in its own channel.
    Commands(u64),
}

fn shared() -> io::Result<&'static Shared> {
    LOOP.get_or_init(start_loop).as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))
}

fn start_loop() -> io::Result<Shared> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let (inputs, received) = mpsc::channel();
    let state = Loop {
        poll,
        inputs: received,
        slots: HashMap::new(),
        deadlines: BTreeSet::new(),
        deadline_of: HashMap::new(),
        again: BTreeSet::new(),
        buffer: vec![0; READ_BUFFER],
    };
    thread::Builder::new().name(String::from("hubwire-devices")).spawn(move || state.run())?;
    Ok(Shared { inputs, waker, next_slot: AtomicU64::new(0) })
}

/// The application's side of a client on the loop (what [`crate::DeviceClient`] and
/// [`crate::MultiplexedClient`] hold). Dropping it stops the client.
pub struct ClientSlot<C> {
    id: u64,
    commands: Sender<SlotInput<C>>,
    shared: &'static Shared,
    bytes_written: Arc<AtomicU64>,
    status: Arc<Mutex<TransportStatus>>,
}

impl<C> std::fmt::Debug for ClientSlot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSlot").field("id", &self.id).finish_non_exhaustive()
    }
}

/// What a client's application sends its slot.
enum SlotInput<C> {
    Command(C),
    /// Stop the machine and, once it has closed its transport, the slot; then
    /// answer.
    Stop(Sender<()>),
}

impl<C: Send + 'static> ClientSlot<C> {
    /// Adds a slot for `dialed` to the process's device loop, starting the loop if
    /// it is the first.
    ///
    /// Errors: the OS's error when the loop's poller or thread cannot be made.
    pub(crate) fn start<A: Client<Command = C>>(
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> io::Result<ClientSlot<C>> {
        let shared = shared()?;
        let id = shared.next_slot.fetch_add(1, Ordering::Relaxed);
        let (commands, received) = mpsc::channel();
        let bytes_written = Arc::new(AtomicU64::new(0));
        let status = Arc::new(Mutex::new(TransportStatus::default()));
        let slot = Driven {
            id,
            dialed,
            client,
            commands: received,
            socket: None,
            generation: 0,
            bytes_written: Arc::clone(&bytes_written),
            status: Arc::clone(&status),
            stopping: None,
            finished: false,
        };
        let gone = || io::Error::other("the device loop has stopped");
        shared.inputs.send(LoopInput::Add(id, Box::new(slot))).map_err(|_| gone())?;
        shared.waker.wake()?;
        Ok(ClientSlot { id, commands, shared, bytes_written, status })
    }

    fn send(&self, input: SlotInput<C>) -> Option<()> {
        self.commands.send(input).ok()?;
        self.shared.inputs.send(LoopInput::Commands(self.id)).ok()?;
        self.shared.waker.wake().ok()
    }
}

impl<C: Send + 'static> ClientDriver<C> for ClientSlot<C> {
    fn command(&self, command: C) -> Option<()> {
        self.send(SlotInput::Command(command))
    }

    fn stop(&self) {
        let (reply, done) = mpsc::channel();
        if self.send(SlotInput::Stop(reply)).is_some() {
            let _ = done.recv();
        }
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    fn transport_status(&self) -> TransportStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<C> Drop for ClientSlot<C> {
    fn drop(&mut self) {
        let (reply, done) = mpsc::channel();
        if self.commands.send(SlotInput::Stop(reply)).is_ok()
            && self.shared.inputs.send(LoopInput::Commands(self.id)).is_ok()
            && self.shared.waker.wake().is_ok()
        {
            let _ = done.recv();
        }
    }
}

/// A client as the loop drives it, whatever its machine.
trait Slot: Send {
    /// Carries out the commands waiting in the client's channel.
    fn commands(&mut self, now: Timestamp, registry: &Registry);
    /// Readiness on the socket of connection `generation`.
    fn ready(&mut self, now: Timestamp, registry: &Registry, generation: u64, writable: bool);
    /// Reads one turn; true when more is waiting.
    fn read(&mut self, now: Timestamp, registry: &Registry, buffer: &mut [u8]) -> bool;
    /// A deadline passed.
    fn timeout(&mut self, now: Timestamp, registry: &Registry);
    /// The next deadline.
    fn deadline(&self) -> Option<Timestamp>;
    /// The client has stopped: the slot can go.
    fn finished(&self) -> bool;
}

/// A socket of a slot.
struct Socket {
    conn: Conn,
    /// Dialling: the addresses left to try and when this attempt gives up.
    connecting: Option<(Vec<SocketAddr>, Timestamp)>,
    /// Readiness to read not yet consumed.
    unread: bool,
}

/// One client's state on the loop.
struct Driven<A: Client> {
    id: u64,
    dialed: Dialed<A::Machine>,
    client: A,
    commands: Receiver<SlotInput<A::Command>>,
    socket: Option<Socket>,
    /// Counts sockets, for their tokens.
    generation: u64,
    bytes_written: Arc<AtomicU64>,
    status: Arc<Mutex<TransportStatus>>,
    /// After a stop: whom to answer, and the end of the grace period.
    stopping: Option<(Vec<Sender<()>>, Timestamp)>,
    finished: bool,
}

impl<A: Client> Driven<A> {
    fn token(&self) -> Token {
        Token(((self.id << GENERATION_BITS) | (self.generation & GENERATION_MASK)) as usize)
    }

    /// Carries out the machine's actions and hands on its events, then finishes a
    /// stop whose machine has closed its transport.
    fn drain(&mut self, now: Timestamp, registry: &Registry) {
        loop {
            if let Some(action) = self.dialed.poll_action() {
                self.act(now, registry, action);
            } else if let Some(event) = self.dialed.poll_event() {
                publish_status(self.dialed.status(), &self.status);
                self.client.event(event);
            } else {
                break;
            }
        }
        publish_status(self.dialed.status(), &self.status);
        if let Some((_, until)) = &self.stopping {
            if !self.dialed.has_socket() || now >= *until {
                self.close_socket(registry);
                for reply in self.stopping.take().map(|(r, _)| r).unwrap_or_default() {
                    let _ = reply.send(());
                }
                self.finished = true;
            }
        }
    }

    fn act(&mut self, now: Timestamp, registry: &Registry, action: Action) {
        match action {
            Action::Dial { host, port, .. } => {
                self.close_socket(registry);
                match (host.as_str(), port).to_socket_addrs() {
                    Ok(addresses) => self.connect(now, registry, addresses.rev().collect()),
                    Err(e) => self.dialed.dial_failed(now, e.to_string()),
                }
            }
            Action::Write(bytes) => {
                if let Some(socket) = self.socket.as_mut() {
                    socket.conn.queue(bytes);
                    self.flush(now, registry);
                }
            }
            Action::Shutdown => self.close_socket(registry),
        }
    }

    /// Tries the next of `addresses` (kept in reverse order); the machine hears of
    /// a failure once none is left.
    fn connect(&mut self, now: Timestamp, registry: &Registry, mut addresses: Vec<SocketAddr>) {
        let mut last = String::from("the host name resolved to nothing");
        while let Some(address) = addresses.pop() {
            self.generation += 1;
            let token = self.token();
            let attempt = TcpStream::connect(address).and_then(|mut stream| {
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
                Ok(stream)
            });
            match attempt {
                Ok(stream) => {
                    let deadline = now + dial::CONNECT_TIMEOUT;
                    self.socket = Some(Socket {
                        conn: Conn::new(stream),
                        connecting: Some((addresses, deadline)),
                        unread: false,
                    });
                    return;
                }
                Err(e) => last = format!("{address}: {e}"),
            }
        }
        self.dialed.dial_failed(now, last);
    }

    /// A connecting socket became writable: connected, or failed.
    fn connected(&mut self, now: Timestamp, registry: &Registry) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        let failed = match socket.conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => None,
        };
        let peer = match failed {
            Some(e) => Err(e),
            None => socket.conn.stream.peer_addr(),
        };
        match peer {
            Ok(peer) => {
                socket.connecting = None;
                let _ = socket.conn.stream.set_nodelay(true);
                self.dialed.dial_succeeded(now, Some(peer));
            }
            // Not connected yet: a spurious wake-up.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => self.retry_connect(now, registry, e.to_string()),
        }
    }

    /// The current connect attempt failed: the next address, or the machine hears.
    fn retry_connect(&mut self, now: Timestamp, registry: &Registry, error: String) {
        let addresses = match self.socket.as_mut().and_then(|s| s.connecting.take()) {
            Some((addresses, _)) => addresses,
            None => Vec::new(),
        };
        self.close_socket(registry);
        if addresses.is_empty() {
            self.dialed.dial_failed(now, error);
        } else {
            self.connect(now, registry, addresses);
        }
    }

    fn flush(&mut self, now: Timestamp, registry: &Registry) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if socket.connecting.is_some() {
            return;
        }
        match socket.conn.flush() {
            Ok(n) => {
                self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.close_socket(registry);
                self.dialed.handle_close(now);
            }
        }
    }

    /// Closes the socket after one last try at writing what is queued for it.
    fn close_socket(&mut self, registry: &Registry) {
        if let Some(mut socket) = self.socket.take() {
            if let Ok(n) = socket.conn.flush() {
                self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
            }
            let _ = registry.deregister(&mut socket.conn.stream);
            let _ = socket.conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl<A: Client> Slot for Driven<A> {
    fn commands(&mut self, now: Timestamp, registry: &Registry) {
        loop {
            match self.commands.try_recv() {
                Ok(SlotInput::Command(command)) => {
                    self.client.command(self.dialed.machine_mut(), now, command);
                }
                Ok(SlotInput::Stop(reply)) => match &mut self.stopping {
                    Some((replies, _)) => replies.push(reply),
                    None => {
                        self.client.stop(self.dialed.machine_mut(), now);
                        self.stopping = Some((vec![reply], now + STOP_GRACE));
                    }
                },
                Err(TryRecvError::Empty) => break,
                // The application is gone without a stop: stop anyway.
                Err(TryRecvError::Disconnected) => {
                    if self.stopping.is_none() {
                        self.client.stop(self.dialed.machine_mut(), now);
                        self.stopping = Some((Vec::new(), now + STOP_GRACE));
                    }
                    break;
                }
            }
            self.drain(now, registry);
        }
        self.drain(now, registry);
    }

    fn ready(&mut self, now: Timestamp, registry: &Registry, generation: u64, writable: bool) {
        if generation != self.generation & GENERATION_MASK {
            return;
        }
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        socket.unread = true;
        // A refused connect may come as an error without writability.
        if socket.connecting.is_some() {
            self.connected(now, registry);
        } else if writable {
            self.flush(now, registry);
        }
        self.drain(now, registry);
    }

    fn read(&mut self, now: Timestamp, registry: &Registry, buffer: &mut [u8]) -> bool {
        let Some(socket) = self.socket.as_mut().filter(|s| s.unread && s.connecting.is_none())
        else {
            return false;
        };
        let dialed = &mut self.dialed;
        let turn = socket.conn.read_turn(buffer, |bytes| dialed.handle_input(now, bytes));
        let more = match turn {
            Turn::Drained => {
                socket.unread = false;
                false
            }
            Turn::More => true,
            Turn::Closed => {
                self.close_socket(registry);
                self.dialed.handle_close(now);
                false
            }
        };
        self.drain(now, registry);
        more
    }

    fn timeout(&mut self, now: Timestamp, registry: &Registry) {
        let connect_expired = self
            .socket
            .as_ref()
            .and_then(|s| s.connecting.as_ref())
            .is_some_and(|&(_, deadline)| deadline <= now);
        if connect_expired {
            self.retry_connect(now, registry, String::from("connect timed out"));
        }
        self.dialed.handle_timeout(now);
        self.drain(now, registry);
    }

    fn deadline(&self) -> Option<Timestamp> {
        let connect = self.socket.as_ref().and_then(|s| s.connecting.as_ref()).map(|c| c.1);
        let stop = self.stopping.as_ref().map(|&(_, until)| until);
        hubwire_core::time::earliest(
            hubwire_core::time::earliest(self.dialed.poll_timeout(), connect),
            stop,
        )
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

/// The loop thread's state.
struct Loop {
    poll: Poll,
    inputs: Receiver<LoopInput>,
    slots: HashMap<u64, Box<dyn Slot>>,
    /// Every slot's next deadline.
    deadlines: BTreeSet<(Timestamp, u64)>,
    deadline_of: HashMap<u64, Timestamp>,
    /// Slots whose reading turn ended with more to read.
    again: BTreeSet<u64>,
    buffer: Vec<u8>,
}

impl Loop {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = if self.again.is_empty() {
                self.deadlines.first().map(|&(deadline, _)| clock::until(deadline))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
            let now = clock::now();
            let mut touched = BTreeSet::new();
            for event in &events {
                if event.token() == WAKER {
                    self.inputs(now, &mut touched);
                    continue;
                }
                let token = event.token().0 as u64;
                let id = token >> GENERATION_BITS;
                let registry = self.poll.registry();
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.ready(now, registry, token & GENERATION_MASK, event.is_writable());
                    touched.insert(id);
                    self.again.insert(id);
                }
            }
            for id in std::mem::take(&mut self.again) {
                let registry = self.poll.registry();
                if let Some(slot) = self.slots.get_mut(&id) {
                    if slot.read(now, registry, &mut self.buffer) {
                        self.again.insert(id);
                    }
                    touched.insert(id);
                }
            }
            while let Some(&(deadline, id)) = self.deadlines.first() {
                if deadline > now {
                    break;
                }
                self.deadlines.pop_first();
                self.deadline_of.remove(&id);
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.timeout(now, self.poll.registry());
                    touched.insert(id);
                }
            }
            for id in touched {
                self.reschedule(id);
            }
        }
    }

    /// New clients, and clients with commands.
    fn inputs(&mut self, now: Timestamp, touched: &mut BTreeSet<u64>) {
        while let Ok(input) = self.inputs.try_recv() {
            let id = match input {
                LoopInput::Add(id, slot) => {
                    self.slots.insert(id, slot);
                    id
                }
                LoopInput::Commands(id) => id,
            };
            if let Some(slot) = self.slots.get_mut(&id) {
                slot.commands(now, self.poll.registry());
                touched.insert(id);
            }
        }
    }

    /// Files a slot's next deadline, or removes a finished slot.
    fn reschedule(&mut self, id: u64) {
        if let Some(old) = self.deadline_of.remove(&id) {
            self.deadlines.remove(&(old, id));
        }
        let Some(slot) = self.slots.get(&id) else {
            return;
        };
        if slot.finished() {
            self.slots.remove(&id);
            self.again.remove(&id);
            return;
        }
        if let Some(deadline) = slot.deadline() {
            self.deadlines.insert((deadline, id));
            self.deadline_of.insert(id, deadline);
        }
    }
}
