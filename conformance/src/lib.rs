//! hubwire's conformance suite: tests of the protocols against their standards and
//! of the whole program against real peers (mosquitto, Microsoft's device SDKs).
//!
//! This library holds what those tests share: running `hubwire` and the real peers
//! as processes, with a deadline on every wait, and killing them when a test ends
//! however it ends. Interop tests never skip: a missing peer fails with the command
//! that installs it. And the replay of the SDK sessions recorded in
//! conformance/transcripts ([`replay`]).

pub mod coverage;
pub mod peers;
pub mod process;
pub mod raw;
pub mod replay;
pub mod sdk_interop;
