//! Many devices over one AMQP connection (spec file §5.10): a driver whose machine
//! is a [`Multiplexed`] connection. Each device
//! brings its own credential (its own CBS put-token, spec file §5.2) and links; the
//! socket, TLS and heartbeats are shared.
//!
//! IoT Hub holds about 1000 CBS tokens per connection and refuses the next identity
//! with status 403 (403005); the .NET SDK stops at 995 devices per connection (spec
//! file §5.2, §5.10). This client leaves the count to the application: a device
//! refused for it reports [`DeviceEvent::Disconnected`] with
//! [`DisconnectReason::TokenRefused`], and its neighbours carry on.

use std::io;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

#[cfg(doc)]
use hubwire_core::amqp::device::Multiplexed;
use hubwire_core::amqp::device::{DeviceKey, MultiplexConfig};
use hubwire_core::device::{
    ConfigError, DeviceConfig, DeviceEvent, DispositionError, RequestError, TelemetryId,
    TwinRequestId,
};
use hubwire_core::iothub::{Disposition, LockToken, Message, MethodResponse, TwinPatch};

use crate::channels::Blocking;
use crate::command::{Command, MuxCommand, MuxDriver};
use crate::sync::{ClientDriver, Scheduler, TelemetryError};
use crate::{ClientTransport, Dialed, TransportStatus};

/// Why a device was not added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddDeviceError {
    /// Its configuration cannot make a device (a key that is not base64, a zero
    /// limit).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client was closed before.
    #[error("the multiplexed client is closed")]
    Closed,
}

/// An AMQP connection to a hub carrying many devices, driven by a thread. See the
/// module documentation.
///
/// Every method takes `&self`. Dropping the client closes the connection.
#[derive(Debug)]
pub struct MultiplexedClient<S: Scheduler> {
    driver: S::Client<MuxCommand<Blocking>>,
    events: Mutex<Receiver<(DeviceKey, DeviceEvent)>>,
}

impl<S: Scheduler> MultiplexedClient<S> {
    /// Starts a connection to `config.host_name` (a host, or `host:port` to dial
    /// another port than the transport's, written as in a connection string's
    /// `HostName`). It dials once the first device is added, and again after every
    /// lost connection, as `config.backoff` says; the backoff's jitter is seeded
    /// from `config.seed` mixed with the operating system's randomness.
    ///
    /// Errors: `InvalidInput` when `transport` is not AMQP (`amqp`, `amqp-ws`,
    /// `amqp-tcp`: only AMQP multiplexes devices, spec file §5.10) or the trusted
    /// CAs cannot be loaded; the OS's error when the thread cannot start.
    pub fn connect(config: MultiplexConfig, transport: ClientTransport) -> io::Result<Self> {
        let name = format!("hubwire-amqp-{}", config.host_name);
        let dialed = Dialed::multiplexed(config, &transport)?;
        let (events_tx, events) = mpsc::channel();
        let driver = S::start_client(name, dialed, MuxDriver::<Blocking>::new(events_tx))?;
        Ok(MultiplexedClient { driver, events: Mutex::new(events) })
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
    pub fn add_device(&self, config: DeviceConfig) -> Result<DeviceKey, AddDeviceError> {
        let (reply, answer) = mpsc::channel();
        self.driver
            .command(MuxCommand::Add { config, reply })
            .and_then(|()| answer.recv().ok())
            .ok_or(AddDeviceError::Closed)?
            .map_err(AddDeviceError::from)
    }

    /// Removes a device: its links detach, the connection stays; its telemetry not
    /// yet acknowledged is dropped. Returns whether it was there.
    pub fn remove_device(&self, key: DeviceKey) -> bool {
        let (reply, answer) = mpsc::channel();
        self.driver
            .command(MuxCommand::Remove { key, reply })
            .and_then(|()| answer.recv().ok())
            .unwrap_or(false)
    }

    /// Queues a telemetry message of device `key` and returns at once with its id;
    /// [`DeviceEvent::TelemetryAcknowledged`] (or `TelemetryRejected`) with the key
    /// reports the hub's answer.
    ///
    /// Errors: [`TelemetryError::Refused`] as [`Multiplexed::send_telemetry`],
    /// [`TelemetryError::Closed`] after [`close`](Self::close).
    pub fn send_telemetry(
        &self,
        key: DeviceKey,
        message: Message,
    ) -> Result<TelemetryId, TelemetryError> {
        let (reply, answer) = mpsc::channel();
        self.device(key, Command::SendNowait { message, reply })
            .and_then(|()| answer.recv().ok())
            .map_or(Err(TelemetryError::Closed), |sent| Ok(sent?))
    }

    /// Settles device `key`'s C2D message: complete, reject or abandon (spec file
    /// §5.5).
    ///
    /// Errors: as [`Multiplexed::settle`];
    /// [`DispositionError::UnknownLockToken`] after [`close`](Self::close).
    pub fn settle(
        &self,
        key: DeviceKey,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        let (reply, answer) = mpsc::channel();
        self.device(key, Command::Settle { lock: *lock, disposition, reply })
            .and_then(|()| answer.recv().ok())
            .unwrap_or(Err(DispositionError::UnknownLockToken(*lock)))
    }

    /// Asks for device `key`'s twin; [`DeviceEvent::Twin`] with the returned id and
    /// the key answers (spec file §5.6).
    ///
    /// Errors: as [`Multiplexed::get_twin`]; [`RequestError::Stopped`] after
    /// [`close`](Self::close).
    pub fn get_twin(&self, key: DeviceKey) -> Result<TwinRequestId, RequestError> {
        self.twin(key, None)
    }

    /// Patches device `key`'s reported properties; [`DeviceEvent::ReportedPatched`]
    /// with the returned id and the key answers.
    ///
    /// Errors: as [`Multiplexed::patch_reported`]; [`RequestError::Stopped`] after
    /// [`close`](Self::close).
    pub fn patch_reported(
        &self,
        key: DeviceKey,
        patch: TwinPatch,
    ) -> Result<TwinRequestId, RequestError> {
        self.twin(key, Some(patch))
    }

    fn twin(
        &self,
        key: DeviceKey,
        patch: Option<TwinPatch>,
    ) -> Result<TwinRequestId, RequestError> {
        let (reply, answer) = mpsc::channel();
        self.device(key, Command::TwinNowait { patch, reply })
            .and_then(|()| answer.recv().ok())
            .unwrap_or(Err(RequestError::Stopped))
    }

    /// Answers device `key`'s [`DeviceEvent::MethodRequest`] (spec file §5.7).
    ///
    /// Errors: as [`Multiplexed::respond_method`]; [`RequestError::Stopped`] after
    /// [`close`](Self::close).
    pub fn respond_method(
        &self,
        key: DeviceKey,
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        let (reply, answer) = mpsc::channel();
        self.device(key, Command::RespondMethod { response, reply })
            .and_then(|()| answer.recv().ok())
            .unwrap_or(Err(RequestError::Stopped))
    }

    /// Hands device `key`'s command to the driver; `None` when the driver has
    /// stopped.
    fn device(&self, key: DeviceKey, command: Command<Blocking>) -> Option<()> {
        self.driver.command(MuxCommand::Device { key, command })
    }

    /// The next event and the device it concerns, waiting at most `timeout`; `None`
    /// when none came, or the client is closed and every event was read.
    pub fn recv_event(&self, timeout: Duration) -> Option<(DeviceKey, DeviceEvent)> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.recv_timeout(timeout).ok()
    }

    /// Closes the connection cleanly (AMQP `close`) and stops the driver; returns
    /// once the socket is shut down. Every device still running reports
    /// [`DeviceEvent::Disconnected`]. Calling it again does nothing.
    pub fn close(&self) {
        self.driver.stop();
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
