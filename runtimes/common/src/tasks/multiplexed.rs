//! Many devices over one AMQP connection as a task (spec file §5.10): a
//! [`super::driver`] whose machine is a [`Multiplexed`] connection. Each device
//! brings its own credential (its own CBS put-token, spec file §5.2) and links; the
//! socket, TLS and heartbeats are shared.
//!
//! IoT Hub holds about 1000 CBS tokens per connection and refuses the next identity
//! with status 403 (403005); the .NET SDK stops at 995 devices per connection (spec
//! file §5.2, §5.10). This client leaves the count to the application: a device
//! refused for it reports [`DeviceEvent::Disconnected`] with
//! [`hubwire_core::device::DisconnectReason::TokenRefused`], and its neighbours
//! carry on.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_channel::Receiver;
use futures_lite::Stream;
#[cfg(doc)]
use hubwire_core::amqp::device::Multiplexed;
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig};
use hubwire_core::device::{
    DeviceConfig, DeviceEvent, DispositionError, RequestError, TelemetryId,
};
use hubwire_core::iothub::{Disposition, LockToken, Message, MethodResponse, Twin, TwinPatch};

use super::driver::ClientTask;
use super::{Runtime, oneshot};
use crate::channels::Async;
use crate::command::{Command, MuxCommand, MuxDriver};
use crate::sync::{AddDeviceError, TelemetryError, TwinCallError};
use crate::waiters::TwinReply;
use crate::{ClientTransport, Dialed, TransportStatus};

/// An AMQP connection to a hub carrying many devices, driven by a task of runtime
/// `R`. Each runtime crate names it for its runtime
/// (`hubwire_smol::MultiplexedClient`).
///
/// Every method takes `&self`. Dropping the client closes the connection, without
/// waiting.
pub struct MultiplexedClient<R> {
    driver: ClientTask<MuxCommand<Async>>,
    events: Receiver<(DeviceKey, DeviceEvent)>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for MultiplexedClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiplexedClient").field("driver", &self.driver).finish_non_exhaustive()
    }
}

impl<R: Runtime> MultiplexedClient<R> {
    /// Starts a connection to `config.host_name` (a host, or `host:port` to dial
    /// another port than the transport's, written as in a connection string's
    /// `HostName`). It dials once the first device is added, and again after every
    /// lost connection, as `config.backoff` says; the backoff's jitter is seeded
    /// from `config.seed` mixed with the operating system's randomness.
    ///
    /// Errors: `InvalidInput` when `transport` is not AMQP (`amqp`, `amqp-ws`,
    /// `amqp-tcp`: only AMQP multiplexes devices, spec file §5.10) or the trusted
    /// CAs cannot be loaded.
    pub async fn connect(
        config: MultiplexConfig,
        transport: ClientTransport,
    ) -> io::Result<MultiplexedClient<R>> {
        let dialed = Dialed::multiplexed(config, &transport)?;
        let (events_tx, events) = async_channel::unbounded();
        let driver = ClientTask::spawn::<R, _>(dialed, MuxDriver::<Async>::new(events_tx));
        Ok(MultiplexedClient { driver, events, runtime: PhantomData })
    }

    /// Adds a device: it puts its token on the open connection at once, else once
    /// the connection opens (the first device makes it dial).
    /// [`DeviceEvent::Connected`] with its key reports it ready; a refused token
    /// [`DeviceEvent::Disconnected`] with no reconnect. The connection string's
    /// host and the protocol, keep-alive, backoff and seed of `config` are the
    /// connection's business and not used.
    ///
    /// Errors: [`AddDeviceError::Config`] as [`Multiplexed::add_device`],
    /// [`AddDeviceError::Closed`] after [`close`](Self::close).
    pub async fn add_device(&self, config: DeviceConfig) -> Result<DeviceKey, AddDeviceError> {
        let (reply, answer) = oneshot();
        self.driver.command(MuxCommand::Add { config, reply }).ok_or(AddDeviceError::Closed)?;
        answer.recv().await.map_err(|_| AddDeviceError::Closed)?.map_err(AddDeviceError::from)
    }

    /// Removes a device: its links detach, the connection stays; its telemetry not
    /// yet acknowledged is dropped (waiting calls return [`TelemetryError::Closed`]).
    /// Resolves with whether it was there.
    pub async fn remove_device(&self, key: DeviceKey) -> bool {
        let (reply, answer) = oneshot();
        if self.driver.command(MuxCommand::Remove { key, reply }).is_none() {
            return false;
        }
        answer.recv().await.unwrap_or(false)
    }

    /// Sends a telemetry message of device `key`; resolves when the hub
    /// acknowledges it, across reconnects if need be. Dropping the future leaves the
    /// message queued; its acknowledgement then comes as an event.
    ///
    /// Errors: [`TelemetryError::Refused`] as [`Multiplexed::send_telemetry`],
    /// [`TelemetryError::Rejected`] when the hub refuses it,
    /// [`TelemetryError::Stopped`] when the device stops first,
    /// [`TelemetryError::Closed`] after [`close`](Self::close) or
    /// [`remove_device`](Self::remove_device).
    pub async fn send_telemetry(
        &self,
        key: DeviceKey,
        message: Message,
    ) -> Result<(), TelemetryError> {
        let (ack, acknowledged) = oneshot();
        self.device(key, Command::Send { message, ack }).ok_or(TelemetryError::Closed)?;
        acknowledged.recv().await.unwrap_or(Err(TelemetryError::Closed))
    }

    /// Queues a telemetry message of device `key` and resolves at once with its id;
    /// [`DeviceEvent::TelemetryAcknowledged`] (or `TelemetryRejected`) with the key
    /// reports the hub's answer.
    ///
    /// Errors: [`TelemetryError::Refused`], [`TelemetryError::Closed`].
    pub async fn send_telemetry_nowait(
        &self,
        key: DeviceKey,
        message: Message,
    ) -> Result<TelemetryId, TelemetryError> {
        let (reply, answer) = oneshot();
        self.device(key, Command::SendNowait { message, reply }).ok_or(TelemetryError::Closed)?;
        answer.recv().await.map_or(Err(TelemetryError::Closed), |sent| Ok(sent?))
    }

    /// Settles device `key`'s C2D message: complete, reject or abandon (spec file
    /// §5.5).
    ///
    /// Errors: as [`Multiplexed::settle`];
    /// [`DispositionError::UnknownLockToken`] after [`close`](Self::close).
    pub async fn settle(
        &self,
        key: DeviceKey,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        let (reply, answer) = oneshot();
        let unknown = Err(DispositionError::UnknownLockToken(*lock));
        if self.device(key, Command::Settle { lock: *lock, disposition, reply }).is_none() {
            return unknown;
        }
        answer.recv().await.unwrap_or(unknown)
    }

    /// Device `key`'s twin (spec file §5.6), as the hub answers.
    ///
    /// Errors: see [`TwinCallError`]; never [`TwinCallError::TimedOut`].
    pub async fn get_twin(&self, key: DeviceKey) -> Result<Twin, TwinCallError> {
        self.twin(key, None).await?.twin()
    }

    /// Patches device `key`'s reported properties; resolves with the reported
    /// section's new version.
    ///
    /// Errors: see [`TwinCallError`]; never [`TwinCallError::TimedOut`].
    pub async fn patch_reported(
        &self,
        key: DeviceKey,
        patch: TwinPatch,
    ) -> Result<u64, TwinCallError> {
        self.twin(key, Some(patch)).await?.version()
    }

    async fn twin(
        &self,
        key: DeviceKey,
        patch: Option<TwinPatch>,
    ) -> Result<TwinReply, TwinCallError> {
        let (reply, answer) = oneshot();
        self.device(key, Command::Twin { patch, reply }).ok_or(TwinCallError::Closed)?;
        answer.recv().await.unwrap_or(Err(TwinCallError::Closed))
    }

    /// Answers device `key`'s [`DeviceEvent::MethodRequest`] (spec file §5.7).
    ///
    /// Errors: as [`Multiplexed::respond_method`]; [`RequestError::Stopped`] after
    /// [`close`](Self::close).
    pub async fn respond_method(
        &self,
        key: DeviceKey,
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        let (reply, answer) = oneshot();
        if self.device(key, Command::RespondMethod { response, reply }).is_none() {
            return Err(RequestError::Stopped);
        }
        answer.recv().await.unwrap_or(Err(RequestError::Stopped))
    }

    /// Hands device `key`'s command to the driver; `None` when the driver has
    /// stopped.
    fn device(&self, key: DeviceKey, command: Command<Async>) -> Option<()> {
        self.driver.command(MuxCommand::Device { key, command })
    }

    /// The devices' events with the device each concerns, C2D messages among them,
    /// as they happen; the acknowledgements, rejections and twin answers that the
    /// calls waiting for them return are not. The stream ends once the client is
    /// closed and every event was read.
    pub fn events(&self) -> MuxEventStream {
        MuxEventStream(Box::pin(self.events.clone()))
    }

    /// The next event of [`events`](Self::events); `None` once the client is closed
    /// and every event was read.
    pub async fn next_event(&self) -> Option<(DeviceKey, DeviceEvent)> {
        self.events.recv().await.ok()
    }

    /// Closes the connection cleanly (AMQP `close`) and stops the driver; resolves
    /// once the socket is shut down (within 5 s). Every device still running
    /// reports [`DeviceEvent::Disconnected`]. Calling it again does nothing.
    pub async fn close(&self) {
        self.driver.stop_and_wait().await;
    }

    /// Bytes written to the sockets, over every connection.
    pub fn bytes_written(&self) -> u64 {
        self.driver.bytes_written()
    }

    /// What the transport did last: see [`TransportStatus`].
    pub fn transport_status(&self) -> TransportStatus {
        self.driver.transport_status()
    }
}

/// The events of a [`MultiplexedClient`], with the device each concerns, as a
/// [`Stream`].
#[derive(Debug)]
// Boxed: a receiver's wait is pinned to it.
pub struct MuxEventStream(Pin<Box<Receiver<(DeviceKey, DeviceEvent)>>>);

impl Stream for MuxEventStream {
    type Item = (DeviceKey, DeviceEvent);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}
