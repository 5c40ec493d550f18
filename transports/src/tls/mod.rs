//! TLS on rustls, both roles (being written).
