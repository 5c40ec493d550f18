//! A device client as a task: a [`super::driver`] whose machine is one [`Device`];
//! its application awaits telemetry acknowledgements and twin answers, and reads
//! C2D messages and events as streams.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::Stream;
use hubwire_core::device::{
    C2dMessage, DeviceConfig, DeviceEvent, DispositionError, RequestError, TelemetryId,
};
use hubwire_core::iothub::{Disposition, LockToken, Message, MethodResponse, Twin, TwinPatch};

#[cfg(doc)]
use hubwire_core::device::Device;

use super::driver::ClientTask;
use super::{Runtime, oneshot, timeout};
use crate::channels::{Async, Deliver};
use crate::command::{Command, DeviceDriver};
use crate::sync::{TelemetryError, TwinCallError};
use crate::waiters::TwinReply;
use crate::{ClientTransport, Dialed, TransportStatus};

/// A device connected to its hub by a driver task of runtime `R`. Each runtime
/// crate names it for its runtime (`hubwire_smol::DeviceClient`).
///
/// Every method takes `&self`: one task may send telemetry while another reads C2D
/// messages. Dropping the client disconnects it, without waiting.
pub struct DeviceClient<R> {
    driver: ClientTask<Command<Async>>,
    events: Receiver<DeviceEvent>,
    c2d: Receiver<C2dMessage>,
    runtime: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for DeviceClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceClient").field("driver", &self.driver).finish_non_exhaustive()
    }
}

impl<R: Runtime> DeviceClient<R> {
    /// Starts a device: its driver task dials the hub at once, and again after
    /// every lost connection, as the machine's backoff says, resolving the host name
    /// anew each time. The address is the connection string's (see
    /// [`dial::target`](crate::dial::target)). The device speaks its transport's
    /// protocol ([`hubwire_transports::Transport::protocol`]), whatever
    /// `config.protocol` says. The backoff's jitter is seeded from `config.seed`
    /// mixed with the operating system's randomness, so devices started together
    /// spread their retries. Resolves once the driver runs, without waiting for the
    /// connection: [`DeviceEvent::Connected`] reports it.
    ///
    /// Errors: `InvalidInput` when the configuration cannot make a device (a key that
    /// is not base64, a zero limit) or the trusted CAs cannot be loaded (a missing
    /// CA file).
    pub async fn connect(
        config: DeviceConfig,
        transport: ClientTransport,
    ) -> io::Result<DeviceClient<R>> {
        let dialed = Dialed::device(config, &transport)?;
        let (events_tx, events) = async_channel::unbounded();
        let (c2d_tx, c2d) = async_channel::unbounded();
        let client = DeviceDriver::<Async, _>::new(Inboxes { events: events_tx, c2d: c2d_tx });
        let driver = ClientTask::spawn::<R, _>(dialed, client);
        Ok(DeviceClient { driver, events, c2d, runtime: PhantomData })
    }

    /// Sends a telemetry message; resolves when the hub acknowledges it, across
    /// reconnects if need be. Its acknowledgement is this answer, not an event.
    /// Dropping the future leaves the message queued; its acknowledgement then
    /// comes as [`DeviceEvent::TelemetryAcknowledged`].
    ///
    /// Errors: [`TelemetryError::Refused`] when the device would not queue it,
    /// [`TelemetryError::Rejected`] when the hub refuses it,
    /// [`TelemetryError::Stopped`] when the device stops first,
    /// [`TelemetryError::Closed`] after [`disconnect`](Self::disconnect).
    pub async fn send_telemetry(&self, message: Message) -> Result<(), TelemetryError> {
        let (ack, acknowledged) = oneshot();
        self.driver.command(Command::Send { message, ack }).ok_or(TelemetryError::Closed)?;
        acknowledged.recv().await.unwrap_or(Err(TelemetryError::Closed))
    }

    /// [`send_telemetry`](Self::send_telemetry), giving up after `timeout` with
    /// [`TelemetryError::TimedOut`]; the message stays queued.
    pub async fn send_telemetry_timeout(
        &self,
        message: Message,
        timeout: Duration,
    ) -> Result<(), TelemetryError> {
        self::timeout::<R, _>(timeout, self.send_telemetry(message))
            .await
            .unwrap_or(Err(TelemetryError::TimedOut(timeout)))
    }

    /// Queues a telemetry message and resolves at once with its id;
    /// [`DeviceEvent::TelemetryAcknowledged`] (or
    /// [`DeviceEvent::TelemetryRejected`]) among the [`events`](Self::events)
    /// reports the hub's answer.
    ///
    /// Errors: [`TelemetryError::Refused`], [`TelemetryError::Closed`].
    pub async fn send_telemetry_nowait(
        &self,
        message: Message,
    ) -> Result<TelemetryId, TelemetryError> {
        let (reply, answer) = oneshot();
        self.driver
            .command(Command::SendNowait { message, reply })
            .ok_or(TelemetryError::Closed)?;
        match answer.recv().await {
            Ok(result) => Ok(result?),
            Err(_) => Err(TelemetryError::Closed),
        }
    }

    /// The C2D messages, as they arrive; the stream ends once the client is
    /// disconnected and every message was read. Every handle reads the one queue:
    /// a message goes to one reader.
    pub fn c2d(&self) -> C2dStream {
        C2dStream(Box::pin(self.c2d.clone()))
    }

    /// The next C2D message; `None` once the client is disconnected and every
    /// message was read.
    pub async fn next_c2d(&self) -> Option<C2dMessage> {
        self.c2d.recv().await.ok()
    }

    /// The device's events, as they happen: every [`DeviceEvent`] except C2D
    /// messages (see [`c2d`](Self::c2d)) and the acknowledgements, rejections and
    /// twin answers that the calls waiting for them return. The stream ends once
    /// the client is disconnected and every event was read.
    pub fn events(&self) -> EventStream {
        EventStream(Box::pin(self.events.clone()))
    }

    /// The next event of [`events`](Self::events); `None` once the client is
    /// disconnected and every event was read.
    pub async fn next_event(&self) -> Option<DeviceEvent> {
        self.events.recv().await.ok()
    }

    /// Completes a C2D message: the hub removes it.
    ///
    /// Errors: as [`Device::complete`]; [`DispositionError::UnknownLockToken`] after
    /// [`disconnect`](Self::disconnect), since the lock went with the session.
    pub async fn complete(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Complete).await
    }

    /// Rejects a C2D message: the hub dead-letters it. Errors: as
    /// [`complete`](Self::complete); MQTT cannot reject
    /// ([`DispositionError::Unsupported`]).
    pub async fn reject(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Reject).await
    }

    /// Abandons a C2D message: the hub requeues it. Errors: as
    /// [`complete`](Self::complete); MQTT cannot abandon
    /// ([`DispositionError::Unsupported`]).
    pub async fn abandon(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Abandon).await
    }

    async fn settle(
        &self,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        let (reply, answer) = oneshot();
        let unknown = Err(DispositionError::UnknownLockToken(*lock));
        if self.driver.command(Command::Settle { lock: *lock, disposition, reply }).is_none() {
            return unknown;
        }
        answer.recv().await.unwrap_or(unknown)
    }

    /// Asks for the device's twin (spec file §4.5, §5.6); resolves with the hub's
    /// answer. To bound the wait, race it with the runtime's timer.
    ///
    /// Errors: see [`TwinCallError`]; never [`TwinCallError::TimedOut`].
    pub async fn get_twin(&self) -> Result<Twin, TwinCallError> {
        self.twin_call(None).await?.twin()
    }

    /// Patches the device's reported properties; resolves with the hub's answer:
    /// the reported section's new version.
    ///
    /// Errors: see [`TwinCallError`]; never [`TwinCallError::TimedOut`].
    pub async fn patch_reported(&self, patch: TwinPatch) -> Result<u64, TwinCallError> {
        self.twin_call(Some(patch)).await?.version()
    }

    async fn twin_call(&self, patch: Option<TwinPatch>) -> Result<TwinReply, TwinCallError> {
        let (reply, answer) = oneshot();
        self.driver.command(Command::Twin { patch, reply }).ok_or(TwinCallError::Closed)?;
        answer.recv().await.unwrap_or(Err(TwinCallError::Closed))
    }

    /// Answers a [`DeviceEvent::MethodRequest`].
    ///
    /// Errors: as [`Device::respond_method`]; [`RequestError::Stopped`] after
    /// [`disconnect`](Self::disconnect).
    pub async fn respond_method(&self, response: MethodResponse) -> Result<(), RequestError> {
        let (reply, answer) = oneshot();
        if self.driver.command(Command::RespondMethod { response, reply }).is_none() {
            return Err(RequestError::Stopped);
        }
        answer.recv().await.unwrap_or(Err(RequestError::Stopped))
    }

    /// Over HTTP, polls for a C2D message now rather than at the next scheduled
    /// poll: for an application told by other means that a message waits. Over
    /// MQTT and AMQP the hub pushes messages, and this does nothing.
    pub fn poll_now(&self) {
        let _ = self.driver.command(Command::PollNow);
    }

    /// Closes the connection cleanly (MQTT DISCONNECT, AMQP close) and stops the
    /// driver; resolves once the socket is shut down (within 5 s). Telemetry not
    /// yet acknowledged stays so, and waiting
    /// [`send_telemetry`](Self::send_telemetry) calls return
    /// [`TelemetryError::Stopped`]. Calling it again does nothing.
    pub async fn disconnect(&self) {
        self.driver.stop_and_wait().await;
    }

    /// Bytes this device has written to its sockets, over every connection: the
    /// wire cost of its traffic.
    pub fn bytes_written(&self) -> u64 {
        self.driver.bytes_written()
    }

    /// What the transport did last: see [`TransportStatus`].
    pub fn transport_status(&self) -> TransportStatus {
        self.driver.transport_status()
    }
}

/// The C2D messages of a [`DeviceClient`], as a [`Stream`].
#[derive(Debug)]
// Boxed: a receiver's wait is pinned to it.
pub struct C2dStream(Pin<Box<Receiver<C2dMessage>>>);

impl Stream for C2dStream {
    type Item = C2dMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C2dMessage>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// The events of a [`DeviceClient`], as a [`Stream`].
#[derive(Debug)]
// Boxed: a receiver's wait is pinned to it.
pub struct EventStream(Pin<Box<Receiver<DeviceEvent>>>);

impl Stream for EventStream {
    type Item = DeviceEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DeviceEvent>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// Where the driver hands the events nobody waits for: C2D messages to their own
/// channel ([`DeviceClient::c2d`]), the rest to [`DeviceClient::events`].
struct Inboxes {
    events: Sender<DeviceEvent>,
    c2d: Sender<C2dMessage>,
}

impl Deliver<DeviceEvent> for Inboxes {
    fn deliver(&self, event: DeviceEvent) -> bool {
        match event {
            DeviceEvent::C2d(c2d) => self.c2d.deliver(c2d),
            event => self.events.deliver(event),
        }
    }
}
