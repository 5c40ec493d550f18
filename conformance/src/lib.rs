//! Conformance suite: spec-statement tests and interop with real peers.
