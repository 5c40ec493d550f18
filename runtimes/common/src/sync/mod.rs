//! The synchronous API of the runtimes that drive machines off the caller's thread
//! (hubwire-blocking on threads, hubwire-mio on one event loop): [`HubServer`],
//! [`DeviceClient`] and [`MultiplexedClient`], written once over a [`Scheduler`].
//!
//! Each runtime crate names its scheduler and exports these types with it
//! (`hubwire_blocking::DeviceClient` is `DeviceClient<Threads>`), so a program
//! switches runtime by changing one crate. Every method takes `&self`; answers come
//! back over channels, so one thread may send telemetry while another reads
//! events.

use std::fmt::Debug;
use std::io;
use std::net::TcpListener;
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, PoisonError};

use hubwire_core::{Connection, Timestamp};

use crate::listen::Listen;
use crate::{Dialed, HubServerEvent, ServedHub, TransportStatus};

mod device;
mod gateway;
mod hub;
mod multiplexed;

pub use device::{DeviceClient, TelemetryError, TwinCallError};
pub use gateway::{GatewayConfig, GatewayEvent, GatewayServer};
pub use hub::{HubCommand, HubServer};
pub use multiplexed::{AddDeviceError, MultiplexedClient};

/// How a runtime drives the machines of the synchronous API: it starts a hub's
/// driver over bound listeners, and a client's driver over a [`Dialed`] machine.
pub trait Scheduler: Debug + 'static {
    /// A running client's driver, taking commands of type `C`.
    type Client<C: Send + 'static>: ClientDriver<C>;
    /// A running hub's driver.
    type Hub: HubDriver;

    /// Starts driving `dialed` (it dials when its machine asks), handing commands
    /// and events to `client`. `name` names the thread or task, for people.
    ///
    /// Errors: the OS's error when a thread cannot start.
    fn start_client<A: Client>(
        name: String,
        dialed: Dialed<A::Machine>,
        client: A,
    ) -> io::Result<Self::Client<A::Command>>;

    /// Starts serving `hub` on `listeners` (blocking std sockets, as bound), sending
    /// its events to `events` through an [`crate::EventSink`].
    ///
    /// Errors: the OS's error when a thread, a poller or a socket cannot be made.
    fn start_hub(
        hub: ServedHub,
        listeners: Vec<(Listen, TcpListener)>,
        events: SyncSender<HubServerEvent>,
    ) -> io::Result<Self::Hub>;
}

/// The application's side of a client's driver. Dropping it stops the client.
pub trait ClientDriver<C>: Debug + Send + Sync {
    /// Hands a command to the driver; `None` when the driver has stopped.
    fn command(&self, command: C) -> Option<()>;

    /// Stops the machine and the driver: the machine finishes what it owes the hub
    /// (its close written, settlements already asked for sent) within a grace
    /// period of 5 s; returns once the socket is shut. Calling it again does
    /// nothing.
    fn stop(&self);

    /// Bytes written to the sockets, over every connection.
    fn bytes_written(&self) -> u64;

    /// What the transport did last.
    fn transport_status(&self) -> TransportStatus;
}

/// The application's side of a hub's driver.
pub trait HubDriver: Debug + Send + Sync {
    /// Hands a command to the driver; `None` when the driver has stopped.
    fn command(&self, command: HubCommand) -> Option<()>;

    /// Stops accepting, closes every connection as a crashed hub would (no MQTT
    /// goodbye exists for a server) and waits for the driver. Calling it again does
    /// nothing.
    fn shutdown(&mut self);
}

/// The client-specific half of a driver: its machine, its commands and what becomes
/// of the machine's events.
pub trait Client: Send + 'static {
    /// The sans-IO machine driven.
    type Machine: Connection + Send + 'static;
    /// What the application asks of the machine.
    type Command: Send + 'static;

    /// Carries out a command on the machine.
    fn command(&mut self, machine: &mut Self::Machine, now: Timestamp, command: Self::Command);

    /// Tells the machine to close for good (the driver then writes its last words
    /// and stops).
    fn stop(&mut self, machine: &mut Self::Machine, now: Timestamp);

    /// Hands one of the machine's events to the application.
    fn event(&mut self, event: <Self::Machine as Connection>::Event);
}

/// How long a stopping machine may take to finish what it owes the hub (HTTP
/// settlements already asked for, an AMQP close answered) before its socket is shut
/// regardless.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Copies a client's transport status into the copy its application reads. Drivers
/// call it before handing on each event, so an application reading the status on a
/// `Disconnected` event reads why.
pub fn publish_status(status: &TransportStatus, shared: &Mutex<TransportStatus>) {
    let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
    if *shared != *status {
        shared.clone_from(status);
    }
}
