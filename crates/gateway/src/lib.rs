//! hydrant-gateway
