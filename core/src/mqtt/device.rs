//! The MQTT device session (STUB).
