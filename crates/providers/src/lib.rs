//! Provider-record store (skeleton; being written).
