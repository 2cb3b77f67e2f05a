//! Kademlia DHT (skeleton; being written).
