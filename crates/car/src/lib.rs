//! hydrant-car
