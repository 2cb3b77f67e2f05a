//! hydrant-unixfs
