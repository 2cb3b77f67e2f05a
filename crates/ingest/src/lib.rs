//! hydrant-ingest
