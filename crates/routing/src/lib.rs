//! Delegated Routing V1 HTTP API (skeleton; being written).
