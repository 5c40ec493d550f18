//! What an application asks of a client's machine, and the client's half of its
//! driver ([`Client`]) that carries it out: for one device ([`DeviceDriver`]) and
//! for many over one AMQP connection ([`MuxDriver`]). Both APIs send these commands,
//! the synchronous one over `std::sync::mpsc` and the async one over
//! `async_channel` ([`Channels`]); they differ only in how their callers wait.

use hubwire_core::Timestamp;
use hubwire_core::amqp::device::{DeviceKey, Multiplexed};
use hubwire_core::device::{
    ConfigError, Device, DeviceConfig, DeviceEvent, DispositionError, RequestError, SendError,
    TelemetryId, TwinRequestId,
};
use hubwire_core::iothub::{Disposition, LockToken, Message, MethodResponse, TwinPatch};

use crate::channels::{Channels, Deliver};
use crate::dialed::Mux;
use crate::sync::{Client, TelemetryError, TwinCallError};
use crate::waiters::{TwinAnswer, Waiters};

/// A command for one device, answered over channels of family `C`.
#[derive(Debug)]
pub(crate) enum Command<C: Channels> {
    /// Queue a message and answer when the hub acknowledges it.
    Send {
        message: Message,
        ack: C::Sender<Result<(), TelemetryError>>,
    },
    /// Queue a message and answer with its id at once.
    SendNowait {
        message: Message,
        reply: C::Sender<Result<TelemetryId, SendError>>,
    },
    Settle {
        lock: LockToken,
        disposition: Disposition,
        reply: C::Sender<Result<(), DispositionError>>,
    },
    PollNow,
    /// A twin get (`patch` `None`) or reported patch; answer when the hub does.
    Twin {
        patch: Option<TwinPatch>,
        reply: C::Sender<TwinAnswer>,
    },
    /// A twin get or reported patch; answer with its id at once, the hub's answer
    /// being an event.
    TwinNowait {
        patch: Option<TwinPatch>,
        reply: C::Sender<Result<TwinRequestId, RequestError>>,
    },
    RespondMethod {
        response: MethodResponse,
        reply: C::Sender<Result<(), RequestError>>,
    },
}

impl<C: Channels> Command<C> {
    /// Carries the command out on device `key` of `machine`; a caller waiting for
    /// the hub's answer joins `waiting`, and any other is answered now.
    fn apply<M: Devices>(
        self,
        machine: &mut M,
        key: M::Key,
        now: Timestamp,
        waiting: &mut Waiters<M::Key, C>,
    ) {
        match self {
            Command::Send { message, ack } => match machine.send_telemetry(now, key, message) {
                Ok(id) => waiting.telemetry(key, id, ack),
                Err(e) => {
                    ack.deliver(Err(TelemetryError::Refused(e)));
                }
            },
            Command::SendNowait { message, reply } => {
                reply.deliver(machine.send_telemetry(now, key, message));
            }
            Command::Settle { lock, disposition, reply } => {
                reply.deliver(machine.settle(now, key, &lock, disposition));
            }
            Command::PollNow => machine.poll_now(now, key),
            Command::Twin { patch, reply } => match machine.twin(now, key, patch) {
                Ok(id) => waiting.twin(key, id, reply),
                Err(e) => {
                    reply.deliver(Err(TwinCallError::Refused(e)));
                }
            },
            Command::TwinNowait { patch, reply } => {
                reply.deliver(machine.twin(now, key, patch));
            }
            Command::RespondMethod { response, reply } => {
                reply.deliver(machine.respond_method(now, key, response));
            }
        }
    }
}

/// The devices of a machine, as commands reach them: a [`Device`] is one (its key
/// `()`), a [`Multiplexed`] connection many, each known by its [`DeviceKey`].
trait Devices {
    /// What names one of the machine's devices.
    type Key: Ord + Copy;

    fn send_telemetry(
        &mut self,
        now: Timestamp,
        key: Self::Key,
        message: Message,
    ) -> Result<TelemetryId, SendError>;

    fn settle(
        &mut self,
        now: Timestamp,
        key: Self::Key,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError>;

    /// Polls for a C2D message now, where the hub does not push them (HTTP).
    fn poll_now(&mut self, now: Timestamp, key: Self::Key);

    /// Asks for the twin (`patch` `None`) or patches its reported properties.
    fn twin(
        &mut self,
        now: Timestamp,
        key: Self::Key,
        patch: Option<TwinPatch>,
    ) -> Result<TwinRequestId, RequestError>;

    fn respond_method(
        &mut self,
        now: Timestamp,
        key: Self::Key,
        response: MethodResponse,
    ) -> Result<(), RequestError>;
}

impl Devices for Device {
    type Key = ();

    fn send_telemetry(
        &mut self,
        now: Timestamp,
        (): (),
        message: Message,
    ) -> Result<TelemetryId, SendError> {
        Device::send_telemetry(self, now, message)
    }

    fn settle(
        &mut self,
        now: Timestamp,
        (): (),
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        Device::settle(self, now, lock, disposition)
    }

    fn poll_now(&mut self, now: Timestamp, (): ()) {
        Device::poll_now(self, now);
    }

    fn twin(
        &mut self,
        now: Timestamp,
        (): (),
        patch: Option<TwinPatch>,
    ) -> Result<TwinRequestId, RequestError> {
        match patch {
            Some(patch) => self.patch_reported(now, patch),
            None => self.get_twin(now),
        }
    }

    fn respond_method(
        &mut self,
        now: Timestamp,
        (): (),
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        Device::respond_method(self, now, response)
    }
}

impl Devices for Multiplexed {
    type Key = DeviceKey;

    fn send_telemetry(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        message: Message,
    ) -> Result<TelemetryId, SendError> {
        Multiplexed::send_telemetry(self, now, key, message)
    }

    fn settle(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), DispositionError> {
        Multiplexed::settle(self, now, key, lock, disposition)
    }

    /// Nothing: AMQP pushes C2D messages, as it does to a [`Device`].
    fn poll_now(&mut self, _: Timestamp, _: DeviceKey) {}

    fn twin(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        patch: Option<TwinPatch>,
    ) -> Result<TwinRequestId, RequestError> {
        match patch {
            Some(patch) => self.patch_reported(now, key, patch),
            None => self.get_twin(now, key),
        }
    }

    fn respond_method(
        &mut self,
        now: Timestamp,
        key: DeviceKey,
        response: MethodResponse,
    ) -> Result<(), RequestError> {
        Multiplexed::respond_method(self, now, key, response)
    }
}

/// A device client's half of its driver: the calls waiting for the hub's answer,
/// and `events`, where the rest of the device's events go.
pub(crate) struct DeviceDriver<C: Channels, E> {
    events: E,
    waiting: Waiters<(), C>,
}

impl<C: Channels, E> DeviceDriver<C, E> {
    /// A driver handing the events nobody waits for to `events`.
    pub(crate) fn new(events: E) -> Self {
        DeviceDriver { events, waiting: Waiters::new() }
    }
}

impl<C: Channels, E: Deliver<DeviceEvent> + Send + 'static> Client for DeviceDriver<C, E> {
    type Machine = Device;
    type Command = Command<C>;

    fn command(&mut self, device: &mut Device, now: Timestamp, command: Command<C>) {
        command.apply(device, (), now, &mut self.waiting);
    }

    fn stop(&mut self, device: &mut Device, now: Timestamp) {
        device.disconnect(now);
    }

    fn event(&mut self, event: DeviceEvent) {
        // An answer whose caller gave up waiting is the application's event.
        if !self.waiting.answer((), &event) {
            self.events.deliver(event);
        }
    }
}

/// A command for a multiplexed connection, answered over channels of family `C`.
#[derive(Debug)]
pub(crate) enum MuxCommand<C: Channels> {
    Add {
        config: DeviceConfig,
        reply: C::Sender<Result<DeviceKey, ConfigError>>,
    },
    Remove {
        key: DeviceKey,
        reply: C::Sender<bool>,
    },
    /// A command for device `key`.
    Device {
        key: DeviceKey,
        command: Command<C>,
    },
}

/// A multiplexed client's half of its driver: the calls waiting for the hub's
/// answer, and the channel of the rest of the devices' events.
pub(crate) struct MuxDriver<C: Channels> {
    events: C::Sender<(DeviceKey, DeviceEvent)>,
    waiting: Waiters<DeviceKey, C>,
}

impl<C: Channels> MuxDriver<C> {
    /// A driver handing the events nobody waits for to `events`.
    pub(crate) fn new(events: C::Sender<(DeviceKey, DeviceEvent)>) -> Self {
        MuxDriver { events, waiting: Waiters::new() }
    }
}

impl<C: Channels> Client for MuxDriver<C> {
    type Machine = Mux;
    type Command = MuxCommand<C>;

    fn command(&mut self, mux: &mut Mux, now: Timestamp, command: MuxCommand<C>) {
        let mux = &mut mux.0;
        match command {
            MuxCommand::Add { config, reply } => {
                reply.deliver(mux.add_device(now, config));
            }
            MuxCommand::Remove { key, reply } => {
                self.waiting.forget(key);
                reply.deliver(mux.remove_device(now, key));
            }
            MuxCommand::Device { key, command } => command.apply(mux, key, now, &mut self.waiting),
        }
    }

    fn stop(&mut self, mux: &mut Mux, now: Timestamp) {
        mux.0.close(now);
    }

    fn event(&mut self, (key, event): (DeviceKey, DeviceEvent)) {
        if !self.waiting.answer(key, &event) {
            self.events.deliver((key, event));
        }
    }
}
