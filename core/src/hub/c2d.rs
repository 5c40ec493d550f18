//! One device's cloud-to-device queue (spec file §7).
//!
//! A message is **Enqueued** until a device receives it, then **Invisible** under a
//! lock until the device settles it: complete removes it, reject dead-letters it,
//! abandon puts it back in its place and counts a delivery. A lock that times out, or
//! whose connection goes away, puts the message back without counting (DOC-C2D, 2026
//! revision). Messages also leave by expiry, by too many abandons, or by a purge.
//! Every way out (and every abandon) is reported through [`C2dQueue::poll_settled`],
//! with the feedback record the sender's `iothub-ack` asked for.
//!
//! The queue only keeps state; time enters as arguments, like everywhere in core.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;

use crate::iothub::{Ack, Disposition, ErrorCode, LockToken, Message};
use crate::time::{Duration, Timestamp};

/// Queue settings; [`Default`] gives IoT Hub's own values (spec file §7, §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct C2dConfig {
    /// Time to live of a message that arrives without an expiry: IoT Hub's
    /// `defaultTtlAsIso8601`, 1 hour by default, configurable from 1 minute to 2 days
    /// (spec file §7).
    pub default_ttl: Duration,
    /// Abandons after which a message is dead-lettered: `maxDeliveryCount`, 10 by
    /// default, 1 to 100 (spec file §7).
    pub max_delivery_count: u32,
    /// Messages a device's queue holds, locked ones included: 50 (spec file §7, §8).
    pub max_queue_depth: usize,
    /// How long a delivery stays locked when the protocol has a lock timeout (AMQP,
    /// HTTP): 1 minute, not configurable on IoT Hub (spec file §7).
    pub lock_timeout: Duration,
    /// Largest message in bytes, counted with [`Message::size`]: 64 KB = 65 536 bytes
    /// (spec file §8, DOC-QUOTA).
    pub max_message_size: usize,
}

impl Default for C2dConfig {
    fn default() -> Self {
        C2dConfig {
            default_ttl: Duration::from_secs(60 * 60),
            max_delivery_count: 10,
            max_queue_depth: 50,
            lock_timeout: Duration::from_secs(60),
            max_message_size: 64 * 1024,
        }
    }
}

/// Why a queue operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum C2dError {
    /// The queue holds [`C2dConfig::max_queue_depth`] messages already (403004).
    #[error("the device's C2D queue is full")]
    QueueFull,
    /// The message is larger than [`C2dConfig::max_message_size`] (413001); sizes in
    /// bytes.
    #[error("C2D message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The message's size as [`Message::size`] counts it.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// No message is locked under this token: it was settled already, its lock
    /// timed out, or the token was never issued (412002).
    #[error("C2D message lock lost")]
    LockLost,
}

impl C2dError {
    /// The IoT Hub error code (spec file §7, §9).
    pub fn code(&self) -> ErrorCode {
        match self {
            C2dError::QueueFull => ErrorCode::DEVICE_MAXIMUM_QUEUE_DEPTH_EXCEEDED,
            C2dError::TooLarge { .. } => ErrorCode::MESSAGE_TOO_LARGE,
            C2dError::LockLost => ErrorCode::DEVICE_MESSAGE_LOCK_LOST,
        }
    }
}

/// A message handed to a device, locked until settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The lock the caller chose; settle with it.
    pub lock: LockToken,
    /// The message's number in its queue, from 1 (AMQP `x-opt-sequence-number`,
    /// HTTP `iothub-sequencenumber`).
    pub sequence_number: u64,
    /// How often the message was abandoned before: 0 on first delivery (AMQP
    /// `iothub-deliverycount`, HTTP `iothub-deliverycount`; spec file §3, TV-15).
    pub delivery_count: u32,
    /// A copy of the message (the body is shared, not copied).
    pub message: Message,
}

/// How a message left the queue, or that it was abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The device completed it.
    Completed,
    /// The device rejected it: dead-lettered.
    Rejected,
    /// The device abandoned it; it is back in the queue, delivered this many times.
    Abandoned {
        /// Abandons so far.
        delivery_count: u32,
    },
    /// It expired while enqueued: dead-lettered.
    Expired,
    /// It was abandoned [`C2dConfig::max_delivery_count`] times: dead-lettered.
    DeliveryCountExceeded,
    /// The service purged the queue.
    Purged,
}

impl Outcome {
    /// The feedback status this outcome reports when the sender's `iothub-ack` asks
    /// for it (spec file §7): `positive` hears of completions, `negative` of
    /// dead-lettering (rejected, expired, delivery count exceeded) and of purges.
    ///
    /// Purge feedback is this hub's decision: the spec file calls a `Purged` record an
    /// inference from the status list, and the .NET service SDK describes `Purged` as
    /// "purged from IoT hub"; a purged message was not completed, so it counts as a
    /// negative outcome. An abandon is not an outcome for feedback.
    pub fn feedback(self, ack: Ack) -> Option<FeedbackStatus> {
        let (status, wanted) = match self {
            Outcome::Completed => (FeedbackStatus::Success, ack.on_success()),
            Outcome::Rejected => (FeedbackStatus::Rejected, ack.on_failure()),
            Outcome::Expired => (FeedbackStatus::Expired, ack.on_failure()),
            Outcome::DeliveryCountExceeded => {
                (FeedbackStatus::DeliveryCountExceeded, ack.on_failure())
            }
            Outcome::Purged => (FeedbackStatus::Purged, ack.on_failure()),
            Outcome::Abandoned { .. } => return None,
        };
        wanted.then_some(status)
    }
}

/// A feedback record's `statusCode` (spec file §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedbackStatus {
    /// The device completed the message.
    Success,
    /// The message expired before the device completed it.
    Expired,
    /// The device abandoned the message too often.
    DeliveryCountExceeded,
    /// The device rejected the message.
    Rejected,
    /// The service purged the device's queue.
    Purged,
}

impl FeedbackStatus {
    /// IoT Hub's name for the status, as the feedback JSON carries it.
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedbackStatus::Success => "Success",
            FeedbackStatus::Expired => "Expired",
            FeedbackStatus::DeliveryCountExceeded => "DeliveryCountExceeded",
            FeedbackStatus::Rejected => "Rejected",
            FeedbackStatus::Purged => "Purged",
        }
    }

    /// The record's `description`. `Success` is the text DOC-C2D's example shows;
    /// the others are this hub's wording.
    pub const fn description(self) -> &'static str {
        match self {
            FeedbackStatus::Success => "Success",
            FeedbackStatus::Expired => "Message expired",
            FeedbackStatus::DeliveryCountExceeded => "Message delivery count exceeded",
            FeedbackStatus::Rejected => "Message rejected",
            FeedbackStatus::Purged => "Message purged",
        }
    }
}

/// One record of the feedback the hub sends to the service on
/// `/messages/servicebound/feedback` (spec file §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackRecord {
    /// `originalMessageId`: the C2D message's id.
    pub original_message_id: Option<String>,
    /// `enqueuedTimeUtc`: when the outcome happened (the .NET service SDK's
    /// `FeedbackRecord` documents it so), not when the message was enqueued.
    pub enqueued_time: Timestamp,
    /// `statusCode`.
    pub status: FeedbackStatus,
    /// `description`: see [`FeedbackStatus::description`].
    pub description: String,
    /// `deviceId`: the device the message was for.
    pub device_id: String,
}

/// A message that left the queue (or was abandoned), for the service side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The device whose queue it was in.
    pub device_id: String,
    /// The message's id.
    pub message_id: Option<String>,
    /// Its number in the queue.
    pub sequence_number: u64,
    /// What happened.
    pub outcome: Outcome,
    /// The feedback record, when the sender's `iothub-ack` asked for one.
    pub feedback: Option<FeedbackRecord>,
}

/// One device's C2D queue: FIFO, at most [`C2dConfig::max_queue_depth`] messages.
#[derive(Clone, Debug)]
pub struct C2dQueue {
    device_id: String,
    config: C2dConfig,
    /// In enqueue order; locked messages keep their place.
    entries: VecDeque<Entry>,
    next_sequence_number: u64,
    settled: VecDeque<Settled>,
}

#[derive(Clone, Debug)]
struct Entry {
    sequence_number: u64,
    delivery_count: u32,
    state: State,
    message: Message,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Enqueued,
    /// Locked under `lock`; `until: None` holds the lock until settled or unlocked.
    Invisible {
        lock: LockToken,
        until: Option<Timestamp>,
    },
}

impl Entry {
    fn holds(&self, lock: &LockToken) -> bool {
        matches!(self.state, State::Invisible { lock: l, .. } if l == *lock)
    }

    fn lock_timed_out(&self, now: Timestamp) -> bool {
        matches!(self.state, State::Invisible { until: Some(t), .. } if t <= now)
    }

    fn is_enqueued(&self) -> bool {
        matches!(self.state, State::Enqueued)
    }

    fn is_expired(&self, now: Timestamp) -> bool {
        self.message.expiry.is_some_and(|e| e <= now)
    }

    /// When this entry next changes by itself: its lock's timeout or, while enqueued,
    /// its expiry.
    fn deadline(&self) -> Option<Timestamp> {
        match self.state {
            State::Invisible { until, .. } => until,
            State::Enqueued => self.message.expiry,
        }
    }
}

impl C2dQueue {
    /// An empty queue for `device_id`.
    pub fn new(device_id: impl Into<String>, config: C2dConfig) -> Self {
        C2dQueue {
            device_id: device_id.into(),
            config,
            entries: VecDeque::new(),
            next_sequence_number: 1,
            settled: VecDeque::new(),
        }
    }

    /// The device this queue belongs to.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The settings it enforces.
    pub fn config(&self) -> &C2dConfig {
        &self.config
    }

    /// Adds a message from the service and returns its sequence number (from 1,
    /// never reused by this queue).
    ///
    /// The hub stamps `enqueued_time = now`, `expiry = now + default_ttl` when the
    /// message has none, and `to = /devices/<id>/messages/devicebound` when it has
    /// none (spec file §7). The size limit applies to the message as the service sent
    /// it, before stamping.
    ///
    /// Errors: [`C2dError::TooLarge`] (413001) above `max_message_size`;
    /// [`C2dError::QueueFull`] (403004) when the queue holds `max_queue_depth`
    /// messages, locked ones included.
    pub fn enqueue(&mut self, now: Timestamp, mut message: Message) -> Result<u64, C2dError> {
        let size = message.size();
        if size > self.config.max_message_size {
            return Err(C2dError::TooLarge {
                size,
                max: self.config.max_message_size,
            });
        }
        if self.entries.len() >= self.config.max_queue_depth {
            return Err(C2dError::QueueFull);
        }
        message.enqueued_time = Some(now);
        if message.expiry.is_none() {
            message.expiry = Some(now + self.config.default_ttl);
        }
        if message.to.is_none() {
            message.to = Some(format!("/devices/{}/messages/devicebound", self.device_id));
        }
        let sequence_number = self.next_sequence_number;
        self.next_sequence_number = sequence_number.saturating_add(1);
        self.entries.push_back(Entry {
            sequence_number,
            delivery_count: 0,
            state: State::Enqueued,
            message,
        });
        Ok(sequence_number)
    }

    /// Locks the first enqueued, unexpired message (FIFO) under `lock` and hands it
    /// out. `lock_until` is when the lock times out: `now + lock_timeout` for AMQP and
    /// HTTP; `None` for MQTT, where the PUBACK is the only settlement and the lock is
    /// held until [`settle`](Self::settle) or [`unlock`](Self::unlock).
    ///
    /// Returns `None` when no message is deliverable, or when `lock` already locks a
    /// message (the caller must choose locks that are unique in this queue).
    /// Expired messages are skipped here and dead-lettered by
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn lock_next(
        &mut self,
        now: Timestamp,
        lock: LockToken,
        lock_until: Option<Timestamp>,
    ) -> Option<Delivery> {
        if self.is_locked(&lock) {
            return None;
        }
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.is_enqueued() && !e.is_expired(now))?;
        entry.state = State::Invisible {
            lock,
            until: lock_until,
        };
        Some(Delivery {
            lock,
            sequence_number: entry.sequence_number,
            delivery_count: entry.delivery_count,
            message: entry.message.clone(),
        })
    }

    /// Settles the message locked under `lock` (spec file §7):
    /// - [`Disposition::Complete`]: removed, outcome [`Outcome::Completed`];
    /// - [`Disposition::Reject`]: dead-lettered, outcome [`Outcome::Rejected`];
    /// - [`Disposition::Abandon`]: its delivery count goes up by one and it returns
    ///   to its place in the queue ([`Outcome::Abandoned`]), or is dead-lettered
    ///   ([`Outcome::DeliveryCountExceeded`]) when the count reaches
    ///   `max_delivery_count`.
    ///
    /// Poll [`poll_settled`](Self::poll_settled) afterwards.
    ///
    /// Errors: [`C2dError::LockLost`] (412002) when no message is locked under
    /// `lock`, or its lock timed out at or before `now` (the message then returns to
    /// the queue uncounted, as [`handle_timeout`](Self::handle_timeout) would do).
    pub fn settle(
        &mut self,
        now: Timestamp,
        lock: &LockToken,
        disposition: Disposition,
    ) -> Result<(), C2dError> {
        let index = self
            .entries
            .iter()
            .position(|e| e.holds(lock))
            .ok_or(C2dError::LockLost)?;
        let entry = self.entries.get_mut(index).ok_or(C2dError::LockLost)?;
        if entry.lock_timed_out(now) {
            entry.state = State::Enqueued;
            return Err(C2dError::LockLost);
        }
        let outcome = match disposition {
            Disposition::Complete => Outcome::Completed,
            Disposition::Reject => Outcome::Rejected,
            Disposition::Abandon => {
                entry.delivery_count = entry.delivery_count.saturating_add(1);
                if entry.delivery_count >= self.config.max_delivery_count {
                    Outcome::DeliveryCountExceeded
                } else {
                    Outcome::Abandoned {
                        delivery_count: entry.delivery_count,
                    }
                }
            }
        };
        if let Outcome::Abandoned { .. } = outcome {
            entry.state = State::Enqueued;
            let settled = report(&self.device_id, now, entry, outcome);
            self.settled.push_back(settled);
        } else if let Some(entry) = self.entries.remove(index) {
            let settled = report(&self.device_id, now, &entry, outcome);
            self.settled.push_back(settled);
        }
        Ok(())
    }

    /// Returns the message locked under `lock` to the queue without counting a
    /// delivery: the connection that held it is gone. Returns whether a message was
    /// locked under `lock`.
    pub fn unlock(&mut self, lock: &LockToken) -> bool {
        match self.entries.iter_mut().find(|e| e.holds(lock)) {
            Some(entry) => {
                entry.state = State::Enqueued;
                true
            }
            None => false,
        }
    }

    /// Applies every deadline at or before `now`: locks that timed out return their
    /// message to the queue without counting a delivery (DOC-C2D, 2026 revision), then
    /// enqueued messages past their expiry are dead-lettered ([`Outcome::Expired`]).
    /// A locked message is not expired while its lock holds: the device has it.
    ///
    /// Poll [`poll_settled`](Self::poll_settled) afterwards.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for entry in self.entries.iter_mut() {
            if entry.lock_timed_out(now) {
                entry.state = State::Enqueued;
            }
        }
        let mut index = 0;
        while let Some(entry) = self.entries.get(index) {
            if entry.is_enqueued() && entry.is_expired(now) {
                if let Some(entry) = self.entries.remove(index) {
                    let settled = report(&self.device_id, now, &entry, Outcome::Expired);
                    self.settled.push_back(settled);
                }
            } else {
                index += 1;
            }
        }
    }

    /// The earliest lock timeout or expiry of an enqueued message: when to call
    /// [`handle_timeout`](Self::handle_timeout) next. Changes after every call that
    /// takes `&mut self`.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.entries.iter().filter_map(Entry::deadline).min()
    }

    /// Removes every message, locked or not, each with outcome [`Outcome::Purged`]
    /// at `now` (the service's "Purge Queue"; spec file §7). Poll
    /// [`poll_settled`](Self::poll_settled) afterwards.
    pub fn purge(&mut self, now: Timestamp) {
        while let Some(entry) = self.entries.pop_front() {
            let settled = report(&self.device_id, now, &entry, Outcome::Purged);
            self.settled.push_back(settled);
        }
    }

    /// The next outcome, oldest first. Call until `None` after
    /// [`settle`](Self::settle), [`handle_timeout`](Self::handle_timeout) and
    /// [`purge`](Self::purge).
    #[must_use]
    pub fn poll_settled(&mut self) -> Option<Settled> {
        self.settled.pop_front()
    }

    /// Messages in the queue, locked ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the queue holds no message.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether [`lock_next`](Self::lock_next) would hand out a message at `now`.
    pub fn has_deliverable(&self, now: Timestamp) -> bool {
        self.entries
            .iter()
            .any(|e| e.is_enqueued() && !e.is_expired(now))
    }

    /// Whether a message is locked under `lock` (a timed-out lock counts until
    /// [`handle_timeout`](Self::handle_timeout) or [`settle`](Self::settle) sees it).
    pub fn is_locked(&self, lock: &LockToken) -> bool {
        self.entries.iter().any(|e| e.holds(lock))
    }
}

/// The report of `entry` leaving (or, when abandoned, returning to) `device_id`'s
/// queue at `now`, with the feedback its `iothub-ack` asks for.
fn report(device_id: &str, now: Timestamp, entry: &Entry, outcome: Outcome) -> Settled {
    let ack = entry.message.ack.unwrap_or_default();
    let feedback = outcome.feedback(ack).map(|status| FeedbackRecord {
        original_message_id: entry.message.message_id.clone(),
        enqueued_time: now,
        status,
        description: status.description().into(),
        device_id: device_id.into(),
    });
    Settled {
        device_id: device_id.into(),
        message_id: entry.message.message_id.clone(),
        sequence_number: entry.sequence_number,
        outcome,
        feedback,
    }
}
