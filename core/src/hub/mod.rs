//! The hub engine: every device connection of a local IoT Hub in one sans-IO
//! machine (connection ids in, connection ids out).

pub mod c2d;
pub mod d2c;
pub mod registry;

pub use c2d::{
    C2dConfig, C2dError, C2dQueue, Delivery, FeedbackRecord, FeedbackStatus, Outcome, Settled,
};
pub use d2c::{D2cLog, D2cRecord};
pub use registry::{AuthError, DeviceRecord, Registry, RegistryError};
