//! The hub's side of one MQTT connection (STUB).
