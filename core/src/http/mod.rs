//! HTTP/1.1 heads (being written).
