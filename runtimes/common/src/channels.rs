//! The channels a client's driver hands answers and events to: `std::sync::mpsc` for
//! the synchronous API ([`crate::sync`]), `async_channel` for the async one
//! (`tasks`). Naming the family of channels as a type lets the commands, the
//! waiters and the drivers' handling of them ([`crate::command`]) be written once
//! for both APIs.

use std::fmt::Debug;

/// A channel's sending end, as a driver uses it: it never blocks, since the driver
/// owns the machine and must not wait on the application.
pub(crate) trait Deliver<T> {
    /// Hands `value` over without blocking; false when nobody will receive it (the
    /// caller gave up waiting, its receiver dropped), so that the driver can take
    /// another course.
    fn deliver(&self, value: T) -> bool;
}

impl<T> Deliver<T> for std::sync::mpsc::Sender<T> {
    fn deliver(&self, value: T) -> bool {
        self.send(value).is_ok()
    }
}

/// Every channel of the async API the driver delivers to holds what it is given: a
/// reply channel takes its one answer, and the event channels are unbounded.
#[cfg(feature = "async")]
impl<T> Deliver<T> for async_channel::Sender<T> {
    fn deliver(&self, value: T) -> bool {
        self.try_send(value).is_ok()
    }
}

/// A family of channels: what the sending end of a channel of `T` is.
pub(crate) trait Channels: Debug + 'static {
    /// The sending end of a channel of `T`.
    type Sender<T: Send + 'static>: Deliver<T> + Debug + Send;
}

/// `std::sync::mpsc`, whose receivers block their thread: the synchronous API's.
#[derive(Debug)]
pub(crate) enum Blocking {}

impl Channels for Blocking {
    type Sender<T: Send + 'static> = std::sync::mpsc::Sender<T>;
}

/// `async_channel`, whose receivers are awaited: the async API's.
#[cfg(feature = "async")]
#[derive(Debug)]
pub(crate) enum Async {}

#[cfg(feature = "async")]
impl Channels for Async {
    type Sender<T: Send + 'static> = async_channel::Sender<T>;
}
