//! Hydrant's Kademlia DHT (../shared/specs/kad-dht.md), protocol `/ipfs/kad/1.0.0`.

pub mod heads;
pub mod kbucket;
pub mod network;
pub mod protocol;
pub mod query;
