//! Device and hub sessions joined by the `Pair` harness in simulated time.

mod delegated;
mod device;
mod device_wire;
mod hub;
mod scenarios;
mod twin;
