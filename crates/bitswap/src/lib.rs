//! hydrant-bitswap
