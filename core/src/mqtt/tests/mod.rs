//! Device and hub sessions joined by the `Pair` harness in simulated time.

mod device;
mod hub;
mod scenarios;
mod twin;
