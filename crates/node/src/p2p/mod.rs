//! The libp2p floor: the main swarm (Bitswap), the DHT heads with the provider store and
//! announcer, and the Delegated Routing V1 answers built on them.

pub(crate) mod dht;
pub(crate) mod pubsub;
pub(crate) mod routing;
#[allow(missing_docs)] // the NetworkBehaviour derive generates an undocumented event enum
pub(crate) mod swarm;
