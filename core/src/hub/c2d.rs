//! C2D queues (STUB).

use alloc::collections::VecDeque;
use alloc::string::String;

use crate::iothub::{ErrorCode, LockToken, Message};
use crate::time::{Duration, Timestamp};

/// Queue settings (spec file §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct C2dConfig {
    /// TTL of a message without its own expiry.
    pub default_ttl: Duration,
    /// Abandons before dead-lettering.
    pub max_delivery_count: u32,
    /// Messages per device.
    pub max_queue_depth: usize,
    /// How long a delivery stays locked.
    pub lock_timeout: Duration,
    /// Largest message, bytes.
    pub max_message_size: usize,
}

/// Why a queue operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum C2dError {
    /// 403004.
    #[error("queue full")]
    QueueFull,
}

impl C2dError {
    /// The IoT Hub code.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::DEVICE_MAXIMUM_QUEUE_DEPTH_EXCEEDED
    }
}

/// A locked message handed to a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Lock.
    pub lock: LockToken,
    /// Message.
    pub message: Message,
}

/// Feedback statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackStatus {
    /// Completed.
    Success,
}

/// A feedback record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedbackRecord {
    /// Original message id.
    pub original_message_id: Option<String>,
    /// Status.
    pub status: FeedbackStatus,
}

/// How a message left the queue (or was given back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// Message id.
    pub message_id: Option<String>,
}

/// One device's queue.
#[derive(Clone, Debug)]
pub struct C2dQueue {
    entries: VecDeque<Message>,
}

impl C2dQueue {
    /// Adds a message.
    pub fn enqueue(&mut self, _now: Timestamp, message: Message) -> Result<u64, C2dError> {
        self.entries.push_back(message);
        Ok(0)
    }
}
