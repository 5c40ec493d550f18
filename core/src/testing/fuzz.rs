//! Fuzz bodies (TODO in this change).
