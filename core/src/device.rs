//! One device API over every protocol (STUB until the MQTT session lands).
