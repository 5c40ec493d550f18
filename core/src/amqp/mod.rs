//! AMQP 1.0 (OASIS standard, 2012), the protocol IoT Hub's field gateways use
//! (spec file §5).
//!
//! - [`types`]: the type system and its wire format: every primitive type,
//!   described values and composites (part 1).
//! - [`protocol_header`]: the 8-byte header each layer opens with, and version
//!   negotiation (part 2 §2.2, part 5 §5.1–§5.3).
//! - [`frame`]: frame headers and bodies, the size limits checked before anything is
//!   buffered (part 2 §2.3, §2.4.1, §2.7.1).
//! - [`performative`]: the nine frame bodies and their definitions (part 2 §2.7,
//!   §2.8), the termini (part 3 §3.5).
//! - [`connection`]: the connection in either role: headers, `open`, heartbeats,
//!   `close` (part 2 §2.4, §2.7.1, §2.7.9).
//! - [`session`]: sessions over a connection: begin, end, transfer windows
//!   (part 2 §2.5, §2.7.2, §2.7.4, §2.7.8).
//! - [`link`]: links over sessions: attach, detach, link credit, transfers split
//!   and reassembled, settlement (part 2 §2.6, §2.7.3–§2.7.7, part 3 §3.4).
//! - [`delivery_state`]: received and the outcomes (part 3 §3.4).
//! - [`message`]: the message sections and IoT Hub's message model over them (part
//!   3 §3.2, spec file §3, §5.4, §5.5).
//! - [`cbs`]: claims-based security, put-token and its response in both roles, the
//!   hub's per-connection token table (spec file §5.2, §5.10).
//! - [`address`]: IoT Hub's link addresses and who may attach to them (spec file
//!   §5.3, §5.8).
//! - [`twin`], [`methods`]: the device twin's and direct methods' messages in both
//!   roles (spec file §5.6, §5.7).
//! - [`engine`]: a connection, its sessions and links driven as one machine.
//! - [`device`]: the device's side: one connection carrying any number of devices,
//!   each with its own CBS token (spec file §5.1–§5.5, §5.9, §5.10).
//! - `hub` (crate-private, behind the `hub` feature): the hub's side of an IoT Hub
//!   AMQP connection, driven by [`crate::hub::Hub`].

pub mod address;
pub mod cbs;
pub mod connection;
pub mod delivery_state;
pub mod device;
pub mod engine;
pub(crate) mod field;
pub mod frame;
#[cfg(feature = "hub")]
pub(crate) mod hub;
pub mod link;
pub mod message;
pub mod methods;
pub mod performative;
pub mod protocol_header;
pub mod sasl;
pub mod session;
pub mod twin;
pub mod types;

pub use types::{Composite, Described, Descriptor, Symbol, Value};
