//! WebSocket, both roles (being written).
