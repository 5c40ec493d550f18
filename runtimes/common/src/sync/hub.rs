//! A local IoT Hub served by a runtime's driver: the service side's verbs (send a
//! C2D message, read and patch twins, invoke methods, register devices) as commands
//! to the driver that owns the [`ServedHub`], and its events over a channel.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hubwire_core::Timestamp;
use hubwire_core::hub::{
    AuthRequest, C2dRequest, D2cRecord, DeviceRecord, HubConfig, HubError, MethodInvocation,
    RegistryError, StoreTicket,
};
use hubwire_core::iothub::{ErrorCode, Message, Twin, TwinPatch};
use hubwire_store::{MemoryStore, Store};
use hubwire_transports::Listener;

use crate::listen::{self, BindError, Engine, Listen};
use crate::sync::{HubDriver, Scheduler};
use crate::{EVENT_BACKLOG, HubServerEvent, ServedHub};

/// A running hub. See the module documentation.
///
/// Every method takes `&self`, so one thread may send C2D messages while another
/// reads events. Dropping the server shuts it down.
#[derive(Debug)]
pub struct HubServer<S: Scheduler> {
    listeners: Vec<Listen>,
    bind_errors: Vec<BindError>,
    driver: S::Hub,
    events: Mutex<Receiver<HubServerEvent>>,
}

/// One service-side request for the driver: what to do with the [`ServedHub`],
/// answering its caller, carried out with [`HubCommand::apply`]. Every API (this
/// one, and the async one of `tasks`) makes its requests this way, whatever its
/// reply channel.
pub struct HubCommand(Box<Request>);

/// What a [`HubCommand`] does, given the hub and the time.
type Request = dyn FnOnce(&mut ServedHub, Timestamp) + Send;

impl HubCommand {
    /// A request that does `request` on the driver's thread or task.
    pub fn new(request: impl FnOnce(&mut ServedHub, Timestamp) + Send + 'static) -> HubCommand {
        HubCommand(Box::new(request))
    }

    /// Carries out the request on `hub` and answers its caller.
    pub fn apply(self, hub: &mut ServedHub, now: Timestamp) {
        (self.0)(hub, now);
    }

    /// [`ServedHub::send_c2d`], answered on `reply`.
    pub(crate) fn send_c2d(
        device_id: String,
        message: Message,
        reply: Sender<Result<u64, HubError>>,
    ) -> HubCommand {
        HubCommand::new(move |hub, now| {
            let _ = reply.send(hub.send_c2d(now, &device_id, message));
        })
    }

    /// [`ServedHub::authenticated`].
    pub(crate) fn authenticated(request: AuthRequest, result: Result<(), ErrorCode>) -> HubCommand {
        HubCommand::new(move |hub, now| {
            hub.authenticated(now, request, result);
        })
    }

    /// [`ServedHub::c2d_fetched`].
    pub(crate) fn c2d_fetched(request: C2dRequest) -> HubCommand {
        HubCommand::new(move |hub, now| {
            hub.c2d_fetched(now, request);
        })
    }

    /// [`ServedHub::telemetry_stored`].
    pub(crate) fn telemetry_stored(ticket: StoreTicket) -> HubCommand {
        HubCommand::new(move |hub, now| hub.telemetry_stored(now, ticket))
    }

    /// [`ServedHub::telemetry_refused`].
    pub(crate) fn telemetry_refused(ticket: StoreTicket, code: ErrorCode) -> HubCommand {
        HubCommand::new(move |hub, now| hub.telemetry_refused(now, ticket, code))
    }
}

impl std::fmt::Debug for HubCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubCommand")
    }
}

impl<S: Scheduler> HubServer<S> {
    /// Registers `devices`, binds every listener it can of `listen` and starts
    /// serving, keeping everything in memory. `tls` is the server certificate's
    /// configuration, required when a TLS listener is asked for. A listener that
    /// cannot be bound is reported by [`bind_errors`](Self::bind_errors), and the
    /// hub serves on the others.
    ///
    /// Errors: `InvalidInput` when a device record is refused by the registry (its
    /// [`RegistryError`] inside) or a TLS listener has no `tls`; the OS's error when
    /// no listener can be bound or the driver cannot start.
    pub fn start(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        listen: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Self> {
        Self::start_with_store(config, devices, listen, tls, Box::new(MemoryStore::new()))
    }

    /// As [`start`](Self::start), with the hub restored from `store` and keeping
    /// its registry, twins, D2C log and C2D queues there ([`hubwire_store::RedbStore`]
    /// survives a crash). `devices` replace stored records of the same id.
    ///
    /// Errors: as [`start`](Self::start); `InvalidData` when the store cannot be
    /// read or restored.
    pub fn start_with_store(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        listen: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
        store: Box<dyn Store>,
    ) -> io::Result<Self> {
        Self::start_with_engine(config, devices, listen, tls, store, Engine::default())
    }

    /// As [`start_with_store`](Self::start_with_store), the engine seeded and
    /// recording as `engine` says.
    ///
    /// Errors: as [`start_with_store`](Self::start_with_store); the transcript's
    /// error when its header cannot be written.
    pub fn start_with_engine(
        config: HubConfig,
        devices: impl IntoIterator<Item = DeviceRecord>,
        listen: &[Listen],
        tls: Option<Arc<rustls::ServerConfig>>,
        store: Box<dyn Store>,
        engine: Engine,
    ) -> io::Result<Self> {
        let listen::Started { hub, listeners, bind_errors } =
            listen::start(config, devices, listen, tls, store, engine)?;
        let bound = listeners.iter().map(|(l, _)| *l).collect();
        let (events_tx, events) = mpsc::sync_channel(EVENT_BACKLOG);
        let driver = S::start_hub(hub, listeners, events_tx)?;
        Ok(HubServer { listeners: bound, bind_errors, driver, events: Mutex::new(events) })
    }

    /// The listeners bound, with their real addresses (a port 0 asked for is
    /// the port picked).
    pub fn listeners(&self) -> &[Listen] {
        &self.listeners
    }

    /// The address of the first listener of this kind, if one is bound.
    pub fn local_addr(&self, listener: Listener) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.listener == listener).map(|l| l.address)
    }

    /// The listeners asked for that could not be bound, with how to fix each.
    pub fn bind_errors(&self) -> &[BindError] {
        &self.bind_errors
    }

    /// Queues a C2D message for `device_id` (the service side's "send"); a connected
    /// device receives it at once. Returns its sequence number in the device's queue.
    ///
    /// Errors: as [`hubwire_core::hub::Hub::send_c2d`]: an unknown device (404001),
    /// a full queue (403004), a message too large (413001).
    pub fn send_c2d(&self, device_id: &str, message: Message) -> Result<u64, HubError> {
        let device_id = String::from(device_id);
        self.ask(move |hub, now| hub.send_c2d(now, &device_id, message))
    }

    /// `device_id`'s twin (the service side's "read twin").
    ///
    /// Errors: as [`hubwire_core::hub::Hub::twin`]: an unknown device (404001).
    pub fn twin(&self, device_id: &str) -> Result<Twin, HubError> {
        let device_id = String::from(device_id);
        self.ask(move |hub, _| hub.twin(&device_id))
    }

    /// Patches `device_id`'s desired properties; a connected device subscribed to
    /// them receives the patch at once. With `if_version`, only while the desired
    /// properties are at that version. Returns the desired version.
    ///
    /// Errors: as [`hubwire_core::hub::Hub::update_desired`] and
    /// [`hubwire_core::hub::Hub::update_desired_if`] (412001 for a stale version).
    pub fn update_desired(
        &self,
        device_id: &str,
        patch: TwinPatch,
        if_version: Option<u64>,
    ) -> Result<u64, HubError> {
        let device_id = String::from(device_id);
        self.ask(move |hub, now| hub.update_desired(now, &device_id, &patch, if_version))
    }

    /// Invokes a direct method; [`hubwire_core::hub::HubEvent::MethodResult`] with
    /// the returned id reports its end, within `timeout` (5–300 s).
    ///
    /// Errors: as [`hubwire_core::hub::Hub::invoke_method`]: an unknown device
    /// (404001), a device not connected or not subscribed to methods (404103), a
    /// payload over 128 KiB.
    pub fn invoke_method(
        &self,
        device_id: &str,
        name: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<MethodInvocation, HubError> {
        let (device_id, name) = (String::from(device_id), String::from(name));
        self.ask(move |hub, now| hub.invoke_method(now, &device_id, &name, payload, timeout))
    }

    /// Registers a device while the hub runs.
    ///
    /// Errors: as [`hubwire_core::hub::Registry::add`].
    pub fn add_device(&self, record: DeviceRecord) -> Result<(), RegistryError> {
        self.ask(move |hub, _| hub.add_device(record))
    }

    /// A copy of every stored D2C message, in arrival order.
    pub fn stored(&self) -> Vec<D2cRecord> {
        self.ask(|hub, _| hub.stored())
    }

    /// The next event, waiting at most `timeout`; `None` when none came.
    ///
    /// Events queue in memory until read, one per stored message among them, at
    /// most [`EVENT_BACKLOG`]; beyond that they are dropped and counted
    /// ([`HubServerEvent::Dropped`]). A long-running application reads them (the
    /// `hubwire hub` command prints each).
    pub fn recv_event(&self, timeout: Duration) -> Option<HubServerEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.recv_timeout(timeout).ok()
    }

    /// The next event, waiting as long as it takes; `None` only if the driver has
    /// died (it panicked) and every event was read.
    pub fn next_event(&self) -> Option<HubServerEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.recv().ok()
    }

    /// Stops accepting, closes every connection as a crashed hub would (no MQTT
    /// goodbye exists for a server), and waits for the driver.
    pub fn shutdown(mut self) {
        self.driver.shutdown();
    }

    /// Sends a command and waits for its answer.
    ///
    /// Panics if the driver panicked: the server exists only while its driver runs,
    /// so there is nothing else to answer.
    fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(&mut ServedHub, Timestamp) -> T + Send + 'static,
    ) -> T {
        let (reply, answer) = mpsc::channel();
        let command = HubCommand::new(move |hub, now| {
            let _ = reply.send(request(hub, now));
        });
        let _ = self.driver.command(command);
        match answer.recv() {
            Ok(answer) => answer,
            Err(_) => panic!("the hub driver panicked"),
        }
    }
}

impl<S: Scheduler> Drop for HubServer<S> {
    fn drop(&mut self) {
        self.driver.shutdown();
    }
}
