//! hydrant-node
