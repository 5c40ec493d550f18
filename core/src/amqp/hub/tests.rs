//! The hub's side of AMQP, driven by a client built from the same engine.
