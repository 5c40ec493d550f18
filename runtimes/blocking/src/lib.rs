//! Blocking runtime (std::net and threads).
