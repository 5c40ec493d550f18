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
    /// Whether an abandoned message goes back into the queue (IoT Hub's way, the
    /// default) or leaves it, reported [`Outcome::Abandoned`] all the same: a field
    /// gateway's queue hands it back to the hub it came from, which counts its
    /// deliveries and sends it again.
    pub keep_abandoned: bool,
}

impl Default for C2dConfig {
    fn default() -> Self {
        C2dConfig {
            default_ttl: Duration::from_secs(60 * 60),
            max_delivery_count: 10,
            max_queue_depth: 50,
            lock_timeout: Duration::from_secs(60),
            max_message_size: 64 * 1024,
            keep_abandoned: true,
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

/// A message as its queue holds it, locks aside: what a store keeps so a restarted
/// hub can [`restore`](C2dQueue::restore) it. A lock does not survive a restart: the
/// connection that held it is gone, so the message is enqueued again without counting
/// a delivery, as when a lock times out (spec file §7).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QueuedC2d {
    /// Its number in the queue, from 1.
    pub sequence_number: u64,
    /// How often it was abandoned.
    pub delivery_count: u32,
    /// The message as the hub stamped it: its enqueued time and expiry are set
    /// ([`C2dQueue::stamp`]).
    pub message: Message,
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
    /// The hub stamps it as [`stamp`](Self::stamp) says. The size limit applies to
    /// the message as the service sent it, before stamping.
    ///
    /// Errors: [`C2dError::TooLarge`] (413001) above `max_message_size`;
    /// [`C2dError::QueueFull`] (403004) when the queue holds `max_queue_depth`
    /// messages, locked ones included.
    pub fn enqueue(&mut self, now: Timestamp, mut message: Message) -> Result<u64, C2dError> {
        let size = message.size();
        if size > self.config.max_message_size {
            return Err(C2dError::TooLarge { size, max: self.config.max_message_size });
        }
        if self.entries.len() >= self.config.max_queue_depth {
            return Err(C2dError::QueueFull);
        }
        self.stamp(now, &mut message);
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

    /// Puts back a message a store kept, in sequence-number order among the others
    /// and enqueued (not locked), with its delivery count. Sequence numbers this
    /// queue hands out next continue after it. A message with a sequence number the
    /// queue holds already replaces it.
    ///
    /// The message was accepted once, so neither the depth nor the size limit is
    /// applied again: a hub restarted with smaller limits loses nothing. An expired
    /// message is dead-lettered by the next [`handle_timeout`](Self::handle_timeout).
    pub fn restore(&mut self, queued: QueuedC2d) {
        let QueuedC2d { sequence_number, delivery_count, message } = queued;
        self.restore_next_sequence_number(sequence_number.saturating_add(1));
        let entry = Entry { sequence_number, delivery_count, state: State::Enqueued, message };
        let index = self.entries.partition_point(|e| e.sequence_number < sequence_number);
        match self.entries.get_mut(index) {
            Some(held) if held.sequence_number == sequence_number => *held = entry,
            _ => self.entries.insert(index, entry),
        }
    }

    /// Makes the next sequence number at least `next`, so a restarted queue does not
    /// reuse the numbers of messages that left it before the restart.
    pub fn restore_next_sequence_number(&mut self, next: u64) {
        self.next_sequence_number = self.next_sequence_number.max(next);
    }

    /// The message with this sequence number, locked or not: what a store keeps of
    /// it.
    pub fn get(&self, sequence_number: u64) -> Option<QueuedC2d> {
        let entry = self.entries.iter().find(|e| e.sequence_number == sequence_number)?;
        Some(QueuedC2d {
            sequence_number,
            delivery_count: entry.delivery_count,
            message: entry.message.clone(),
        })
    }

    /// What the hub adds to a message it enqueues: `enqueued_time = now`,
    /// `expiry = now + default_ttl` when it has none, and
    /// `to = /devices/<id>/messages/deviceBound` when it has none (spec file §7; the
    /// casing of the SDKs' samples and TV-15).
    pub fn stamp(&self, now: Timestamp, message: &mut Message) {
        message.enqueued_time = Some(now);
        if message.expiry.is_none() {
            message.expiry = Some(now + self.config.default_ttl);
        }
        if message.to.is_none() {
            message.to = Some(format!("/devices/{}/messages/deviceBound", self.device_id));
        }
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
        let entry = self.entries.iter_mut().find(|e| e.is_enqueued() && !e.is_expired(now))?;
        entry.state = State::Invisible { lock, until: lock_until };
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
        let index = self.entries.iter().position(|e| e.holds(lock)).ok_or(C2dError::LockLost)?;
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
                    Outcome::Abandoned { delivery_count: entry.delivery_count }
                }
            }
        };
        if let (Outcome::Abandoned { .. }, true) = (outcome, self.config.keep_abandoned) {
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
        self.entries.iter().any(|e| e.is_enqueued() && !e.is_expired(now))
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::num::NonZeroU16;
    use proptest::prelude::*;

    const T0: Timestamp = Timestamp::from_unix_secs(1_700_000_000);
    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    fn queue() -> C2dQueue {
        C2dQueue::new("device1", C2dConfig::default())
    }

    fn lock(n: u8) -> LockToken {
        LockToken::from_guid([n; 16])
    }

    fn msg(id: &str) -> Message {
        let mut m = Message::new(id.to_string().into_bytes());
        m.message_id = Some(id.into());
        m
    }

    fn msg_with_ack(id: &str, ack: Ack) -> Message {
        let mut m = msg(id);
        m.ack = Some(ack);
        m
    }

    fn drain(q: &mut C2dQueue) -> Vec<Settled> {
        core::iter::from_fn(|| q.poll_settled()).collect()
    }

    fn outcomes(q: &mut C2dQueue) -> Vec<(Option<String>, Outcome)> {
        drain(q).into_iter().map(|s| (s.message_id, s.outcome)).collect()
    }

    /// Locks the next message for an AMQP/HTTP receiver: lock timeout from the config.
    fn receive(q: &mut C2dQueue, now: Timestamp, l: LockToken) -> Option<Delivery> {
        let until = now + q.config().lock_timeout;
        q.lock_next(now, l, Some(until))
    }

    fn received_id(d: Option<Delivery>) -> Option<String> {
        d.and_then(|d| d.message.message_id)
    }

    #[test]
    fn an_abandoned_message_leaves_a_queue_that_does_not_keep_it_and_is_reported() {
        let config = C2dConfig { keep_abandoned: false, ..C2dConfig::default() };
        let mut q = C2dQueue::new("dev1", config);
        let now = Timestamp::from_unix_secs(1_700_000_000);
        let Ok(seq) = q.enqueue(now, Message::new(&b"back to the hub"[..])) else {
            panic!("the queue takes one message")
        };
        let lock = lock(7);
        assert!(q.lock_next(now, lock, None).is_some());
        assert_eq!(q.settle(now, &lock, Disposition::Abandon), Ok(()));
        assert!(q.is_empty(), "gone from this queue");
        let settled = q.poll_settled();
        assert_eq!(
            settled.map(|s| (s.sequence_number, s.outcome)),
            Some((seq, Outcome::Abandoned { delivery_count: 1 }))
        );
    }

    #[test]
    fn defaults_are_iot_hubs_numbers() {
        // Spec file §7 and §8.
        let c = C2dConfig::default();
        assert_eq!(c.default_ttl, Duration::from_secs(3600));
        assert_eq!(c.max_delivery_count, 10);
        assert_eq!(c.max_queue_depth, 50);
        assert_eq!(c.lock_timeout, Duration::from_secs(60));
        assert_eq!(c.max_message_size, 65_536);
    }

    #[test]
    fn enqueue_stamps_enqueued_time_expiry_and_to() {
        let mut q = queue();
        let seq = q.enqueue(T0, msg("m1")).unwrap();
        assert_eq!(seq, 1);
        let d = q.lock_next(T0, lock(1), None).unwrap();
        assert_eq!(d.message.enqueued_time, Some(T0));
        assert_eq!(d.message.expiry, Some(T0 + Duration::from_secs(3600)));
        assert_eq!(d.message.to.as_deref(), Some("/devices/device1/messages/deviceBound"));
        assert_eq!((d.sequence_number, d.delivery_count), (1, 0));
        assert_eq!(&d.message.body[..], b"m1");
    }

    #[test]
    fn enqueue_keeps_the_senders_expiry_and_to_but_not_its_enqueued_time() {
        let mut q = queue();
        let mut m = msg("m1");
        m.expiry = Some(T0 + SECOND);
        m.to = Some("/devices/device1/messages/deviceBound".into());
        m.enqueued_time = Some(Timestamp::EPOCH);
        q.enqueue(T0, m).unwrap();
        let d = q.lock_next(T0, lock(1), None).unwrap();
        assert_eq!(d.message.expiry, Some(T0 + SECOND));
        assert_eq!(d.message.to.as_deref(), Some("/devices/device1/messages/deviceBound"));
        assert_eq!(d.message.enqueued_time, Some(T0));
    }

    #[test]
    fn sequence_numbers_count_from_1_and_are_never_reused() {
        let mut q = queue();
        assert_eq!(q.enqueue(T0, msg("a")), Ok(1));
        assert_eq!(q.enqueue(T0, msg("b")), Ok(2));
        q.purge(T0);
        assert_eq!(q.enqueue(T0, msg("c")), Ok(3));
    }

    #[test]
    fn depth_limit_50_counts_locked_messages_and_is_403004() {
        let mut q = queue();
        for i in 0..50 {
            q.enqueue(T0, msg(&i.to_string())).unwrap();
        }
        // Lock some: they still occupy the queue.
        for n in 0..10 {
            assert!(receive(&mut q, T0, lock(n)).is_some());
        }
        let err = q.enqueue(T0, msg("51st")).unwrap_err();
        assert_eq!(err, C2dError::QueueFull);
        assert_eq!(err.code().code, 403004);
        assert_eq!(q.len(), 50);
        // Completing one makes room for one.
        q.settle(T0, &lock(0), Disposition::Complete).unwrap();
        assert_eq!(q.enqueue(T0, msg("51st")), Ok(51));
        assert_eq!(q.enqueue(T0, msg("52nd")), Err(C2dError::QueueFull));
    }

    fn queued(sequence_number: u64, delivery_count: u32) -> QueuedC2d {
        let mut message = msg(&sequence_number.to_string());
        queue().stamp(T0, &mut message);
        QueuedC2d { sequence_number, delivery_count, message }
    }

    #[test]
    fn restore_puts_messages_back_in_sequence_order_with_their_delivery_counts() {
        let mut q = queue();
        q.restore(queued(5, 0));
        q.restore(queued(2, 3));
        q.restore(queued(9, 1));
        let got: Vec<_> = (1..=3)
            .filter_map(|n| receive(&mut q, T0, lock(n)))
            .map(|d| (d.sequence_number, d.delivery_count, d.message))
            .collect();
        assert_eq!(
            got,
            [
                (2, 3, queued(2, 3).message),
                (5, 0, queued(5, 0).message),
                (9, 1, queued(9, 1).message)
            ]
        );
        // Numbers continue after the highest restored.
        assert_eq!(q.enqueue(T0, msg("new")), Ok(10));
    }

    #[test]
    fn restore_replaces_the_message_of_the_same_sequence_number() {
        let mut q = queue();
        q.restore(queued(1, 0));
        q.restore(queued(1, 4));
        assert_eq!(q.len(), 1);
        assert_eq!(q.get(1), Some(queued(1, 4)));
    }

    #[test]
    fn restored_sequence_numbers_only_go_up() {
        let mut q = queue();
        q.restore_next_sequence_number(7);
        q.restore_next_sequence_number(3);
        assert_eq!(q.enqueue(T0, msg("a")), Ok(7));
        q.restore(queued(2, 0));
        assert_eq!(q.enqueue(T0, msg("b")), Ok(8));
    }

    #[test]
    fn restore_does_not_apply_the_limits_again() {
        let config = C2dConfig { max_queue_depth: 1, max_message_size: 1, ..C2dConfig::default() };
        let mut q = C2dQueue::new("device1", config);
        q.restore(queued(1, 0));
        q.restore(queued(2, 0));
        assert_eq!(q.len(), 2);
        assert_eq!(q.enqueue(T0, msg("c")), Err(C2dError::TooLarge { size: 2, max: 1 }));
    }

    #[test]
    fn a_restored_message_past_its_expiry_is_dead_lettered() {
        let mut q = queue();
        let restored = queued(1, 2);
        let expiry = restored.message.expiry.unwrap();
        q.restore(restored);
        assert_eq!(q.poll_timeout(), Some(expiry));
        q.handle_timeout(expiry);
        assert_eq!(outcomes(&mut q), [(Some("1".into()), Outcome::Expired)]);
    }

    #[test]
    fn get_reads_a_message_locked_or_not() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        q.enqueue(T0, msg("b")).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        q.settle(T0, &lock(1), Disposition::Abandon).unwrap();
        receive(&mut q, T0, lock(2)).unwrap();
        let got = q.get(1).unwrap();
        assert_eq!((got.sequence_number, got.delivery_count), (1, 1));
        assert_eq!(got.message.enqueued_time, Some(T0));
        assert_eq!(q.get(2).map(|g| g.message.message_id), Some(Some("b".into())));
        assert_eq!(q.get(3), None);
    }

    #[test]
    fn message_over_64_kb_is_413001() {
        let mut q = queue();
        // 65 536 bytes counted: body plus message id.
        let mut m = Message::new(vec![0u8; 65_536 - 2]);
        m.message_id = Some("ok".into());
        assert_eq!(m.size(), 65_536);
        assert_eq!(q.enqueue(T0, m.clone()), Ok(1));
        m.properties.set("x", "");
        let err = q.enqueue(T0, m).unwrap_err();
        assert_eq!(err, C2dError::TooLarge { size: 65_537, max: 65_536 });
        assert_eq!(err.code().code, 413001);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn messages_are_delivered_in_fifo_order() {
        let mut q = queue();
        for id in ["a", "b", "c"] {
            q.enqueue(T0, msg(id)).unwrap();
        }
        let got: Vec<_> = (1..=4).map(|n| received_id(receive(&mut q, T0, lock(n)))).collect();
        assert_eq!(got, [Some("a".into()), Some("b".into()), Some("c".into()), None]);
    }

    #[test]
    fn a_lock_in_use_is_not_handed_out_twice() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        q.enqueue(T0, msg("b")).unwrap();
        assert!(receive(&mut q, T0, lock(1)).is_some());
        assert_eq!(receive(&mut q, T0, lock(1)), None);
        assert!(q.has_deliverable(T0));
        assert_eq!(received_id(receive(&mut q, T0, lock(2))), Some("b".into()));
    }

    #[test]
    fn complete_removes_and_reports_completed() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        let d = receive(&mut q, T0, lock(1)).unwrap();
        assert!(q.is_locked(&d.lock));
        q.settle(T0 + SECOND, &d.lock, Disposition::Complete).unwrap();
        assert!(q.is_empty() && !q.is_locked(&d.lock));
        let s = drain(&mut q);
        assert_eq!(
            s,
            [Settled {
                device_id: "device1".into(),
                message_id: Some("a".into()),
                sequence_number: 1,
                outcome: Outcome::Completed,
                feedback: None,
            }]
        );
    }

    #[test]
    fn complete_with_a_stale_lock_is_412002() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        // Never issued.
        let err = q.settle(T0, &lock(9), Disposition::Complete).unwrap_err();
        assert_eq!(err, C2dError::LockLost);
        assert_eq!(err.code().code, 412002);
        // Settled already.
        receive(&mut q, T0, lock(1)).unwrap();
        q.settle(T0, &lock(1), Disposition::Complete).unwrap();
        assert_eq!(q.settle(T0, &lock(1), Disposition::Complete), Err(C2dError::LockLost));
    }

    #[test]
    fn settling_after_the_lock_timed_out_is_lock_lost_and_requeues() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        // The lock ends at T0 + 60 s; handle_timeout has not run yet.
        assert_eq!(q.settle(T0 + MINUTE, &lock(1), Disposition::Complete), Err(C2dError::LockLost));
        assert!(!q.is_locked(&lock(1)));
        assert_eq!(q.len(), 1);
        let d = receive(&mut q, T0 + MINUTE, lock(2)).unwrap();
        assert_eq!(d.delivery_count, 0);
        assert!(drain(&mut q).is_empty());
    }

    #[test]
    fn lock_expiry_requeues_without_counting() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        q.enqueue(T0, msg("b")).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        assert_eq!(q.poll_timeout(), Some(T0 + MINUTE));
        // Just before the lock ends nothing changes.
        q.handle_timeout((T0 + MINUTE).saturating_sub(Duration::from_millis(1)));
        assert!(q.is_locked(&lock(1)));
        q.handle_timeout(T0 + MINUTE);
        assert!(!q.is_locked(&lock(1)));
        assert!(drain(&mut q).is_empty(), "a lock timeout is not an outcome");
        // Back in its original place, uncounted (DOC-C2D, 2026 revision).
        let d = receive(&mut q, T0 + MINUTE, lock(2)).unwrap();
        assert_eq!(d.message.message_id.as_deref(), Some("a"));
        assert_eq!(d.delivery_count, 0);
    }

    #[test]
    fn mqtt_locks_never_time_out() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        let pid = LockToken::from_packet_id(NonZeroU16::MIN);
        q.lock_next(T0, pid, None).unwrap();
        // Only the message's expiry is a deadline while it is held... and it is not
        // one, because a locked message does not expire.
        assert_eq!(q.poll_timeout(), None);
        q.handle_timeout(T0 + Duration::from_secs(86_400));
        assert!(q.is_locked(&pid));
        q.settle(T0 + Duration::from_secs(86_400), &pid, Disposition::Complete).unwrap();
        assert_eq!(outcomes(&mut q), [(Some("a".into()), Outcome::Completed)]);
    }

    #[test]
    fn unlock_requeues_without_counting() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        q.lock_next(T0, lock(1), None).unwrap();
        assert!(!q.has_deliverable(T0));
        assert!(q.unlock(&lock(1)));
        assert!(!q.unlock(&lock(1)));
        assert!(q.has_deliverable(T0));
        assert_eq!(receive(&mut q, T0, lock(2)).unwrap().delivery_count, 0);
        assert!(drain(&mut q).is_empty());
    }

    #[test]
    fn abandon_counts_and_returns_the_message_to_its_place() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        q.enqueue(T0, msg("b")).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        q.settle(T0, &lock(1), Disposition::Abandon).unwrap();
        assert_eq!(
            outcomes(&mut q),
            [(Some("a".into()), Outcome::Abandoned { delivery_count: 1 })]
        );
        let d = receive(&mut q, T0, lock(2)).unwrap();
        assert_eq!(d.message.message_id.as_deref(), Some("a"));
        assert_eq!(d.delivery_count, 1);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn the_10th_abandon_dead_letters() {
        let mut q = queue();
        q.enqueue(T0, msg_with_ack("a", Ack::Negative)).unwrap();
        for n in 1..=9u8 {
            let d = receive(&mut q, T0, lock(n)).unwrap();
            assert_eq!(d.delivery_count, u32::from(n) - 1);
            q.settle(T0, &lock(n), Disposition::Abandon).unwrap();
            let s = drain(&mut q);
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].outcome, Outcome::Abandoned { delivery_count: u32::from(n) });
            assert_eq!(s[0].feedback, None);
        }
        receive(&mut q, T0, lock(10)).unwrap();
        q.settle(T0, &lock(10), Disposition::Abandon).unwrap();
        assert!(q.is_empty());
        let s = drain(&mut q);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].outcome, Outcome::DeliveryCountExceeded);
        assert_eq!(
            s[0].feedback.as_ref().map(|f| f.status),
            Some(FeedbackStatus::DeliveryCountExceeded)
        );
    }

    #[test]
    fn max_delivery_count_is_configurable() {
        let config = C2dConfig { max_delivery_count: 1, ..C2dConfig::default() };
        let mut q = C2dQueue::new("d", config);
        q.enqueue(T0, msg("a")).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        q.settle(T0, &lock(1), Disposition::Abandon).unwrap();
        assert_eq!(outcomes(&mut q), [(Some("a".into()), Outcome::DeliveryCountExceeded)]);
    }

    #[test]
    fn reject_dead_letters() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        q.settle(T0, &lock(1), Disposition::Reject).unwrap();
        assert!(q.is_empty());
        assert_eq!(outcomes(&mut q), [(Some("a".into()), Outcome::Rejected)]);
    }

    #[test]
    fn ttl_expiry_dead_letters_with_feedback_only_when_ack_asks() {
        let mut q = queue();
        q.enqueue(T0, msg_with_ack("none", Ack::None)).unwrap();
        q.enqueue(T0, msg("absent")).unwrap();
        q.enqueue(T0, msg_with_ack("positive", Ack::Positive)).unwrap();
        q.enqueue(T0, msg_with_ack("negative", Ack::Negative)).unwrap();
        q.enqueue(T0, msg_with_ack("full", Ack::Full)).unwrap();
        let expiry = T0 + Duration::from_secs(3600);
        assert_eq!(q.poll_timeout(), Some(expiry));
        assert!(q.has_deliverable(expiry.saturating_sub(SECOND)));
        // Expired messages are not handed out, even before handle_timeout runs.
        assert!(!q.has_deliverable(expiry));
        assert_eq!(receive(&mut q, expiry, lock(1)), None);
        q.handle_timeout(expiry);
        assert!(q.is_empty());
        let s = drain(&mut q);
        assert!(s.iter().all(|s| s.outcome == Outcome::Expired));
        let with_feedback: Vec<_> = s
            .iter()
            .filter_map(|s| s.feedback.as_ref())
            .map(|f| f.original_message_id.as_deref())
            .collect();
        assert_eq!(with_feedback, [Some("negative"), Some("full")]);
        let f = s[3].feedback.as_ref().unwrap();
        assert_eq!(f.status, FeedbackStatus::Expired);
        assert_eq!(f.enqueued_time, expiry);
        assert_eq!(f.device_id, "device1");
        assert_eq!(f.description, "Message expired");
    }

    #[test]
    fn a_locked_message_does_not_expire_until_it_is_back_in_the_queue() {
        let mut q = queue();
        let mut m = msg("a");
        m.expiry = Some(T0 + SECOND);
        q.enqueue(T0, m).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        q.handle_timeout(T0 + SECOND);
        assert!(q.is_locked(&lock(1)));
        // The lock times out at T0 + 60 s; the message is past its expiry by then.
        assert_eq!(q.poll_timeout(), Some(T0 + MINUTE));
        q.handle_timeout(T0 + MINUTE);
        assert_eq!(outcomes(&mut q), [(Some("a".into()), Outcome::Expired)]);
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn poll_timeout_is_the_earliest_deadline() {
        let mut q = queue();
        assert_eq!(q.poll_timeout(), None);
        let mut late = msg("late");
        late.expiry = Some(T0 + Duration::from_secs(600));
        q.enqueue(T0, late).unwrap();
        let mut soon = msg("soon");
        soon.expiry = Some(T0 + Duration::from_secs(30));
        q.enqueue(T0, soon).unwrap();
        assert_eq!(q.poll_timeout(), Some(T0 + Duration::from_secs(30)));
        // Locking "late" replaces its expiry by its lock timeout as its deadline.
        receive(&mut q, T0, lock(1)).unwrap();
        assert_eq!(q.poll_timeout(), Some(T0 + Duration::from_secs(30)));
        q.handle_timeout(T0 + Duration::from_secs(30));
        assert_eq!(outcomes(&mut q), [(Some("soon".into()), Outcome::Expired)]);
        assert_eq!(q.poll_timeout(), Some(T0 + MINUTE));
    }

    #[test]
    fn feedback_per_ack_and_outcome() {
        use FeedbackStatus as F;
        // (ack, outcome, expected feedback): spec file §7; Purged is this hub's
        // decision (negative). Abandons never carry feedback (`the_10th_abandon_...`).
        let table = [
            (Ack::None, Outcome::Completed, None),
            (Ack::Positive, Outcome::Completed, Some(F::Success)),
            (Ack::Negative, Outcome::Completed, None),
            (Ack::Full, Outcome::Completed, Some(F::Success)),
            (Ack::None, Outcome::Rejected, None),
            (Ack::Positive, Outcome::Rejected, None),
            (Ack::Negative, Outcome::Rejected, Some(F::Rejected)),
            (Ack::Full, Outcome::Rejected, Some(F::Rejected)),
            (Ack::None, Outcome::Expired, None),
            (Ack::Positive, Outcome::Expired, None),
            (Ack::Negative, Outcome::Expired, Some(F::Expired)),
            (Ack::Full, Outcome::Expired, Some(F::Expired)),
            (Ack::None, Outcome::DeliveryCountExceeded, None),
            (Ack::Positive, Outcome::DeliveryCountExceeded, None),
            (Ack::Negative, Outcome::DeliveryCountExceeded, Some(F::DeliveryCountExceeded)),
            (Ack::Full, Outcome::DeliveryCountExceeded, Some(F::DeliveryCountExceeded)),
            (Ack::None, Outcome::Purged, None),
            (Ack::Positive, Outcome::Purged, None),
            (Ack::Negative, Outcome::Purged, Some(F::Purged)),
            (Ack::Full, Outcome::Purged, Some(F::Purged)),
        ];
        for (ack, outcome, expected) in table {
            // Drive the queue to the outcome, so the queue's wiring is tested too.
            let config = C2dConfig { max_delivery_count: 1, ..C2dConfig::default() };
            let mut q = C2dQueue::new("d", config);
            let mut m = msg_with_ack("m", ack);
            m.expiry = Some(T0 + SECOND);
            q.enqueue(T0, m).unwrap();
            let settle = |q: &mut C2dQueue, disposition| {
                q.lock_next(T0, lock(1), None).unwrap();
                q.settle(T0, &lock(1), disposition).unwrap();
            };
            match outcome {
                Outcome::Completed => settle(&mut q, Disposition::Complete),
                Outcome::Rejected => settle(&mut q, Disposition::Reject),
                Outcome::DeliveryCountExceeded => settle(&mut q, Disposition::Abandon),
                Outcome::Expired => q.handle_timeout(T0 + SECOND),
                Outcome::Purged => q.purge(T0),
                Outcome::Abandoned { .. } => unreachable!("not in the table"),
            }
            assert_eq!(outcome.feedback(ack), expected, "{ack:?} {outcome:?}");
            let s = drain(&mut q);
            assert_eq!(s.len(), 1, "{ack:?} {outcome:?}");
            assert_eq!(s[0].outcome, outcome);
            assert_eq!(s[0].feedback.as_ref().map(|f| f.status), expected, "{ack:?} {outcome:?}");
        }
    }

    #[test]
    fn message_without_ack_gets_no_feedback() {
        let mut q = queue();
        q.enqueue(T0, msg("a")).unwrap();
        q.lock_next(T0, lock(1), None).unwrap();
        q.settle(T0, &lock(1), Disposition::Reject).unwrap();
        assert_eq!(drain(&mut q)[0].feedback, None);
    }

    #[test]
    fn feedback_record_carries_iot_hub_fields() {
        let mut q = queue();
        q.enqueue(T0, msg_with_ack("m-7", Ack::Positive)).unwrap();
        q.lock_next(T0, lock(1), None).unwrap();
        q.settle(T0 + SECOND, &lock(1), Disposition::Complete).unwrap();
        let f = drain(&mut q).remove(0).feedback.unwrap();
        assert_eq!(
            f,
            FeedbackRecord {
                original_message_id: Some("m-7".into()),
                enqueued_time: T0 + SECOND,
                status: FeedbackStatus::Success,
                description: "Success".into(),
                device_id: "device1".into(),
            }
        );
    }

    #[test]
    fn feedback_status_names_are_iot_hubs() {
        let names: Vec<_> = [
            FeedbackStatus::Success,
            FeedbackStatus::Expired,
            FeedbackStatus::DeliveryCountExceeded,
            FeedbackStatus::Rejected,
            FeedbackStatus::Purged,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(names, ["Success", "Expired", "DeliveryCountExceeded", "Rejected", "Purged"]);
    }

    #[test]
    fn purge_removes_everything_locked_or_not_in_order() {
        let mut q = queue();
        q.enqueue(T0, msg_with_ack("a", Ack::Full)).unwrap();
        q.enqueue(T0, msg("b")).unwrap();
        q.enqueue(T0, msg_with_ack("c", Ack::Positive)).unwrap();
        receive(&mut q, T0, lock(1)).unwrap();
        q.purge(T0 + SECOND);
        assert!(q.is_empty() && !q.is_locked(&lock(1)));
        assert_eq!(q.poll_timeout(), None);
        let s = drain(&mut q);
        assert_eq!(
            s.iter().map(|s| (s.sequence_number, s.outcome)).collect::<Vec<_>>(),
            [(1, Outcome::Purged), (2, Outcome::Purged), (3, Outcome::Purged)]
        );
        assert_eq!(
            s.iter().map(|s| s.feedback.as_ref().map(|f| f.status)).collect::<Vec<_>>(),
            [Some(FeedbackStatus::Purged), None, None]
        );
        // A purged lock is gone.
        assert_eq!(q.settle(T0, &lock(1), Disposition::Complete), Err(C2dError::LockLost));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Enqueue { ttl_s: u8 },
        Lock { lock: u8, mqtt: bool },
        Settle { lock: u8, disposition: u8 },
        Unlock { lock: u8 },
        Advance { s: u8 },
        Purge,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..=120).prop_map(|ttl_s| Op::Enqueue { ttl_s }),
            (0u8..6, any::<bool>()).prop_map(|(lock, mqtt)| Op::Lock { lock, mqtt }),
            (0u8..6, 0u8..3).prop_map(|(lock, disposition)| Op::Settle { lock, disposition }),
            (0u8..6).prop_map(|lock| Op::Unlock { lock }),
            (0u8..=90).prop_map(|s| Op::Advance { s }),
            Just(Op::Purge),
        ]
    }

    proptest! {
        /// Any sequence of calls keeps the limits and reports every message that left
        /// exactly once.
        #[test]
        fn queue_invariants_hold_for_any_call_sequence(ops in proptest::collection::vec(op(), 0..200)) {
            let config = C2dConfig { max_queue_depth: 5, max_delivery_count: 3, ..C2dConfig::default() };
            let mut q = C2dQueue::new("d", config);
            let mut now = T0;
            let mut accepted = 0usize;
            let mut left = Vec::new();
            for op in ops {
                match op {
                    Op::Enqueue { ttl_s } => {
                        let mut m = msg("m");
                        m.expiry = (ttl_s > 0).then(|| now + Duration::from_secs(ttl_s.into()));
                        if q.enqueue(now, m).is_ok() {
                            accepted += 1;
                        }
                    }
                    Op::Lock { lock: l, mqtt } => {
                        let until = (!mqtt).then(|| now + MINUTE);
                        if let Some(d) = q.lock_next(now, lock(l), until) {
                            prop_assert!(d.delivery_count < 3);
                            prop_assert!(d.message.expiry.is_some_and(|e| e > now));
                        }
                    }
                    Op::Settle { lock: l, disposition } => {
                        let d = [Disposition::Complete, Disposition::Reject, Disposition::Abandon];
                        let _ = q.settle(now, &lock(l), d[usize::from(disposition)]);
                    }
                    Op::Unlock { lock: l } => {
                        q.unlock(&lock(l));
                    }
                    Op::Advance { s } => {
                        now = now + Duration::from_secs(s.into());
                        if q.poll_timeout().is_some_and(|t| t <= now) {
                            q.handle_timeout(now);
                        }
                        prop_assert!(q.poll_timeout().is_none_or(|t| t > now));
                    }
                    Op::Purge => q.purge(now),
                }
                prop_assert!(q.len() <= 5);
                while let Some(s) = q.poll_settled() {
                    if !matches!(s.outcome, Outcome::Abandoned { .. }) {
                        left.push(s.sequence_number);
                    }
                }
            }
            prop_assert_eq!(left.len() + q.len(), accepted);
            left.sort_unstable();
            left.dedup();
            prop_assert_eq!(left.len() + q.len(), accepted);
        }
    }
}
