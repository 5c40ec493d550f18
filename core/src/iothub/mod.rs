//! IoT Hub rules shared by every protocol (spec file §2, §3, §7).

pub mod c2d;
pub mod connection_string;
pub mod error;
pub mod identity;
pub mod message;
pub mod sas;

pub use c2d::{Ack, Disposition, LockToken};
pub use connection_string::{Authentication, ConnectionString, ConnectionStringError};
pub use error::ErrorCode;
pub use identity::Identity;
pub use message::{Message, Properties};
pub use sas::{SasError, SasToken};
