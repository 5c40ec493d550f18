//! A device client: a driver whose machine is one [`Device`], and whose application
//! waits for telemetry acknowledgements and reads events.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{ClientTransport, Dialed, TransportStatus};
use hubwire_core::device::{
    C2dMessage, DeviceConfig, DeviceEvent, DisconnectReason, DispositionError, RequestError,
    SendError, TelemetryId,
};
use hubwire_core::iothub::{Disposition, LockToken, Message, MethodResponse, Twin, TwinPatch};

#[cfg(doc)]
use hubwire_core::device::Device;

use crate::channels::Blocking;
use crate::command::{Command, DeviceDriver};
use crate::sync::{ClientDriver, Scheduler};
use crate::waiters::TwinReply;

/// Why a telemetry message was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The device refused to queue it; nothing was sent.
    #[error(transparent)]
    Refused(#[from] SendError),
    /// The device stopped (an authentication refusal, or `disconnect`) before the
    /// hub acknowledged the message.
    #[error("the device stopped before the hub acknowledged the message: {0}")]
    Stopped(DisconnectReason),
    /// The hub refused the message and will not store it (over AMQP: `rejected`,
    /// `released` or `modified`, spec file §5.4); it is not sent again.
    #[error("the hub rejected the message: {}", rejection(.condition, .description))]
    Rejected {
        /// The AMQP error condition, or the outcome's name when it carries none.
        condition: String,
        /// The hub's description; empty when it gave none.
        description: String,
    },
    /// No acknowledgement within the time given. The message stays queued; its
    /// acknowledgement (or rejection), if it comes, is reported by
    /// [`DeviceClient::recv_event`].
    #[error("no acknowledgement within {0:?}")]
    TimedOut(Duration),
    /// The client was disconnected before.
    #[error("the device client is disconnected")]
    Closed,
}

/// Why a twin request made with [`DeviceClient::get_twin`] or
/// [`DeviceClient::patch_reported`] gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwinCallError {
    /// The device refused to send it (HTTP has no twin; the device stopped; too
    /// large).
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// The hub refused it with this status, or (`None`) the connection was lost
    /// before its answer.
    #[error("the twin request failed{}: {description}", .status.map(|s| format!(" with status {s}")).unwrap_or_default())]
    Failed {
        /// The hub's status, if it answered.
        status: Option<u16>,
        /// The hub's words, if any.
        description: String,
    },
    /// No answer within the time given; it may still come as an event.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The client was disconnected before.
    #[error("the device client is disconnected")]
    Closed,
}

/// An outcome's condition and, when given, its description, in words.
fn rejection(condition: &str, description: &str) -> String {
    if description.is_empty() {
        condition.to_owned()
    } else {
        format!("{condition} ({description})")
    }
}

/// A device connected to its hub by a driver thread. See the module documentation.
///
/// Every method takes `&self`: one thread may send telemetry while another receives
/// C2D messages. Dropping the client disconnects it.
#[derive(Debug)]
pub struct DeviceClient<S: Scheduler> {
    driver: S::Client<Command<Blocking>>,
    inbox: Mutex<Inbox>,
}

/// Events received, and those [`DeviceClient::recv_c2d`] passed over.
#[derive(Debug)]
struct Inbox {
    events: Receiver<DeviceEvent>,
    passed_over: VecDeque<DeviceEvent>,
}

impl<S: Scheduler> DeviceClient<S> {
    /// Starts a device: its driver thread dials the hub at once, and again after
    /// every lost connection, as the machine's backoff says, resolving the host name
    /// anew each time. The address is the connection string's (see
    /// [`dial::target`](crate::dial::target)). The device speaks its transport's
    /// protocol ([`hubwire_transports::Transport::protocol`]), whatever
    /// `config.protocol` says. The backoff's jitter is seeded from `config.seed`
    /// mixed with the operating system's randomness, so devices started together
    /// spread their retries. Returns without waiting for the connection:
    /// [`DeviceEvent::Connected`] reports it.
    ///
    /// Errors: `InvalidInput` when the configuration cannot make a device (a key that
    /// is not base64, a zero limit) or the trusted CAs cannot be loaded (a missing
    /// CA file); the OS's error when the thread cannot start.
    pub fn connect(config: DeviceConfig, transport: ClientTransport) -> io::Result<Self> {
        let name = format!("hubwire-device-{}", config.connection_string.device_id);
        let dialed = Dialed::device(config, &transport)?;
        let (events_tx, events) = mpsc::channel();
        let driver = S::start_client(name, dialed, DeviceDriver::<Blocking, _>::new(events_tx))?;
        Ok(DeviceClient {
            driver,
            inbox: Mutex::new(Inbox { events, passed_over: VecDeque::new() }),
        })
    }

    /// Sends a telemetry message and waits until the hub acknowledges it, across
    /// reconnects if need be. Its acknowledgement is this return, not an event.
    ///
    /// Errors: [`TelemetryError::Refused`] when the device would not queue it,
    /// [`TelemetryError::Rejected`] when the hub refuses it,
    /// [`TelemetryError::Stopped`] when the device stops first,
    /// [`TelemetryError::Closed`] after [`disconnect`](Self::disconnect).
    pub fn send_telemetry(&self, message: Message) -> Result<(), TelemetryError> {
        let ack = self.queue_acknowledged(message)?;
        ack.recv().unwrap_or(Err(TelemetryError::Closed))
    }

    /// [`send_telemetry`](Self::send_telemetry), giving up after `timeout` with
    /// [`TelemetryError::TimedOut`].
    pub fn send_telemetry_timeout(
        &self,
        message: Message,
        timeout: Duration,
    ) -> Result<(), TelemetryError> {
        let ack = self.queue_acknowledged(message)?;
        match ack.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(TelemetryError::TimedOut(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(TelemetryError::Closed),
        }
    }

    fn queue_acknowledged(
        &self,
        message: Message,
    ) -> Result<Receiver<Result<(), TelemetryError>>, TelemetryError> {
        let (ack, acknowledged) = mpsc::channel();
        self.command(Command::Send { message, ack }).ok_or(TelemetryError::Closed)?;
        Ok(acknowledged)
    }

    /// Queues a telemetry message and returns at once with its id;
    /// [`DeviceEvent::TelemetryAcknowledged`] (or
    /// [`DeviceEvent::TelemetryRejected`]) from [`recv_event`](Self::recv_event)
    /// reports the hub's answer.
    ///
    /// Errors: [`TelemetryError::Refused`], [`TelemetryError::Closed`].
    pub fn send_telemetry_nowait(&self, message: Message) -> Result<TelemetryId, TelemetryError> {
        let (reply, answer) = mpsc::channel();
        self.command(Command::SendNowait { message, reply }).ok_or(TelemetryError::Closed)?;
        match answer.recv() {
            Ok(result) => Ok(result?),
            Err(_) => Err(TelemetryError::Closed),
        }
    }

    /// The next event, waiting at most `timeout`; `None` when none came or the client
    /// is disconnected and every event was read. Every [`DeviceEvent`] arrives here
    /// except the acknowledgements and rejections
    /// [`send_telemetry`](Self::send_telemetry) returns.
    pub fn recv_event(&self, timeout: Duration) -> Option<DeviceEvent> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(event) = inbox.passed_over.pop_front() {
            return Some(event);
        }
        inbox.events.recv_timeout(timeout).ok()
    }

    /// The next C2D message, waiting at most `timeout`. Other events that arrive
    /// meanwhile are kept, in order, for [`recv_event`](Self::recv_event).
    pub fn recv_c2d(&self, timeout: Duration) -> Option<C2dMessage> {
        let deadline = Instant::now() + timeout;
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = inbox.passed_over.iter().position(|e| matches!(e, DeviceEvent::C2d(_)));
        if let Some(DeviceEvent::C2d(c2d)) = kept.and_then(|i| inbox.passed_over.remove(i)) {
            return Some(c2d);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match inbox.events.recv_timeout(left).ok()? {
                DeviceEvent::C2d(c2d) => return Some(c2d),
                other => inbox.passed_over.push_back(other),
            }
        }
    }

    /// Completes a C2D message: the hub removes it.
    ///
    /// Errors: as [`Device::complete`]; [`DispositionError::UnknownLockToken`] after
    /// [`disconnect`](Self::disconnect), since the lock went with the session.
    pub fn complete(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Complete)
    }

    /// Rejects a C2D message: the hub dead-letters it. Errors: as
    /// [`complete`](Self::complete); MQTT cannot reject
    /// ([`DispositionError::Unsupported`]).
    pub fn reject(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Reject)
    }

    /// Abandons a C2D message: the hub requeues it. Errors: as
    /// [`complete`](Self::complete); MQTT cannot abandon
    /// ([`DispositionError::Unsupported`]).
    pub fn abandon(&self, lock: &LockToken) -> Result<(), DispositionError> {
        self.settle(lock, Disposition::Abandon)
    }

    fn settle(&self, lock: &LockToken, disposition: Disposition) -> Result<(), DispositionError> {
        let (reply, answer) = mpsc::channel();
        let command = Command::Settle { lock: *lock, disposition, reply };
        self.command(command)
            .and_then(|()| answer.recv().ok())
            .unwrap_or(Err(DispositionError::UnknownLockToken(*lock)))
    }

    /// Asks for the device's twin and waits up to `timeout` for it (spec file §4.5,
    /// §5.6).
    ///
    /// Errors: see [`TwinCallError`].
    pub fn get_twin(&self, timeout: Duration) -> Result<Twin, TwinCallError> {
        self.twin_call(None, timeout)?.twin()
    }

    /// Patches the device's reported properties and waits up to `timeout` for the
    /// hub's answer: the reported section's new version.
    ///
    /// Errors: see [`TwinCallError`].
    pub fn patch_reported(
        &self,
        patch: TwinPatch,
        timeout: Duration,
    ) -> Result<u64, TwinCallError> {
        self.twin_call(Some(patch), timeout)?.version()
    }

    fn twin_call(
        &self,
        patch: Option<TwinPatch>,
        timeout: Duration,
    ) -> Result<TwinReply, TwinCallError> {
        let (reply, answer) = mpsc::channel();
        self.command(Command::Twin { patch, reply }).ok_or(TwinCallError::Closed)?;
        match answer.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => Err(TwinCallError::TimedOut(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(TwinCallError::Closed),
        }
    }

    /// Answers a [`DeviceEvent::MethodRequest`].
    ///
    /// Errors: as [`Device::respond_method`]; [`RequestError::Stopped`] after
    /// [`disconnect`](Self::disconnect).
    pub fn respond_method(&self, response: MethodResponse) -> Result<(), RequestError> {
        let (reply, answer) = mpsc::channel();
        self.command(Command::RespondMethod { response, reply })
            .and_then(|()| answer.recv().ok())
            .unwrap_or(Err(RequestError::Stopped))
    }

    /// Over HTTP, polls for a C2D message now rather than at the next scheduled
    /// poll: for an application told by other means that a message waits. Over
    /// MQTT and AMQP the hub pushes messages, and this does nothing.
    pub fn poll_now(&self) {
        let _ = self.command(Command::PollNow);
    }

    /// Closes the connection cleanly (MQTT DISCONNECT, AMQP close) and stops the
    /// driver; returns once the socket is shut down. Telemetry not yet acknowledged
    /// stays so, and waiting [`send_telemetry`](Self::send_telemetry) calls return
    /// [`TelemetryError::Stopped`]. Calling it again does nothing.
    pub fn disconnect(&self) {
        self.driver.stop();
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

    /// Hands a command to the driver; `None` when the driver has stopped.
    fn command(&self, command: Command<Blocking>) -> Option<()> {
        self.driver.command(command)
    }
}
