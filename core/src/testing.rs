//! Test support: the Pair harness and fuzz bodies (enabled by the `testing` feature).
