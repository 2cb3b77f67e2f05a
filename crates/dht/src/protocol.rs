//! Wire format of `/ipfs/kad/1.0.0` (../shared/specs/kad-dht.md, "RPC Messages"): the
//! protobuf `Message` with the spec's field numbers, unsigned-varint length-prefixed frames,
//! and a typed, validated view ([`Request`], [`Response`]).
//!
//! Decoding never panics on outside bytes: every malformed input is a [`DecodeError`] or a
//! [`FrameError`]. What a decoded message may hold is bounded: keys of at most [`MAX_KEY_LEN`]
//! bytes, at most [`MAX_PEERS_PER_MESSAGE`] peers per list and [`MAX_ADDRS_PER_PEER`]
//! addresses per peer are kept (the rest is ignored), and frames of at most
//! [`MAX_FRAME_SIZE`] bytes are read. What decoding allocates is bounded too: a body's peers
//! and addresses are counted before it is decoded ([`MAX_PEERS_ON_WIRE`],
//! [`MAX_ADDRS_ON_WIRE`]), so decoding one frame allocates at most [`MAX_DECODED_BYTES`].

use futures::{AsyncWrite, AsyncWriteExt as _};
pub use hydrant_frame::{FrameError, frame, read_frame};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use prost::Message as _;

/// The protocol ID of the Amino DHT (../shared/specs/kad-dht.md, "Amino DHT").
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

/// The protocol ID of the LAN DHT: [`PROTOCOL`] with go-libp2p-kad-dht's `dual.LanExtension`
/// (`/lan`) inserted after `/ipfs`, which Kubo serves beside the Amino DHT for peers on private
/// networks (go-libp2p-kad-dht `dual/dual.go`). Same messages, other peers (see
/// [`AddressPolicy::Private`](crate::AddressPolicy::Private)).
pub const LAN_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/lan/kad/1.0.0");

/// Largest frame body read, in bytes (64 KiB).
///
/// libp2p-kad reads at most 16 KiB and go-libp2p-kad-dht up to 4 MiB. 16 KiB is too small
/// for a GET_VALUE answer holding an IPNS record at its 10 KiB size limit
/// (../shared/specs/ipns-record.md, "Record Size Limit") plus k = 20 closer peers with a few
/// addresses each, and 4 MiB lets one stream hold 4 MiB of our memory. 64 KiB fits the largest
/// legitimate message with room to spare while keeping the per-stream buffer small. What we
/// *write* is kept within [`MAX_OUTBOUND_FRAME_SIZE`] so libp2p-kad peers accept it.
pub const MAX_FRAME_SIZE: usize = 64 * 1024;

/// Largest frame body we write, in bytes (16 KiB, libp2p-kad's read limit). Responses over it
/// lose their farthest peers until they fit (see [`encode_response`]).
pub const MAX_OUTBOUND_FRAME_SIZE: usize = 16 * 1024;

/// Longest `key`, in bytes (../shared/specs/kad-dht.md, "Content Provider Advertisement":
/// "doesn't exceed 80 bytes in size"); applied to every message type.
pub const MAX_KEY_LEN: usize = 80;

/// Most peers kept from one `closerPeers` or `providerPeers` list (k = 20,
/// ../shared/specs/kad-dht.md, "Bucket Size"); further peers are ignored.
pub const MAX_PEERS_PER_MESSAGE: usize = 20;

/// Most addresses kept per peer of a decoded message; further addresses are ignored.
pub const MAX_ADDRS_PER_PEER: usize = 16;

/// Most peers one list of a received message may hold; a message with more is a protocol
/// error, refused before it is decoded. A Kademlia peer sends at most k (20) closer peers; the
/// rest is room for many providers of one key. Of those, [`MAX_PEERS_PER_MESSAGE`] are kept.
pub const MAX_PEERS_ON_WIRE: usize = 256;

/// Most addresses the peers of a received message may hold together; a message with more is a
/// protocol error, refused before it is decoded.
pub const MAX_ADDRS_ON_WIRE: usize = 1024;

/// Heap bytes one allocation may cost beyond its contents (allocator header and rounding).
const ALLOCATION_OVERHEAD: usize = 64;

/// At most what decoding one frame allocates, in bytes: every `bytes` field copied once (at
/// most [`MAX_FRAME_SIZE`]), one allocation per copied field, and prost's vectors (which grow
/// by doubling, so up to twice their contents) of [`MAX_PEERS_ON_WIRE`] peers per list and
/// [`MAX_ADDRS_ON_WIRE`] addresses, plus the typed peers kept.
pub const MAX_DECODED_BYTES: usize = MAX_FRAME_SIZE
    + 2 * MAX_PEERS_ON_WIRE * (2 * size_of::<proto::Peer>() + ALLOCATION_OVERHEAD)
    + MAX_ADDRS_ON_WIRE * (2 * size_of::<Vec<u8>>() + ALLOCATION_OVERHEAD)
    + 2 * MAX_PEERS_PER_MESSAGE
        * (size_of::<PeerInfo>()
            + MAX_ADDRS_PER_PEER * (size_of::<Multiaddr>() + ALLOCATION_OVERHEAD))
    + 4096;

/// Most addresses written per peer in a response (keeps k peers within
/// [`MAX_OUTBOUND_FRAME_SIZE`] in the common case).
pub const MAX_ADDRS_PER_PEER_OUT: usize = 8;

/// The protobuf schema of ../shared/specs/kad-dht.md, "RPC Messages", as hand-written prost
/// structs. Enums are kept as `int32`, which is the same on the wire.
pub mod proto {
    /// `Record`: a value of the DHT (fields 1, 2 and 5; 3 and 4 were removed by the spec).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        /// `bytes key = 1`.
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        /// `bytes value = 2`.
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
        /// `string timeReceived = 5` (RFC 3339, set by the receiver).
        #[prost(string, tag = "5")]
        pub time_received: String,
    }

    /// `Message.Peer`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Peer {
        /// `bytes id = 1`: the binary peer ID.
        #[prost(bytes = "vec", tag = "1")]
        pub id: Vec<u8>,
        /// `repeated bytes addrs = 2`: binary multiaddrs.
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub addrs: Vec<Vec<u8>>,
        /// `ConnectionType connection = 3`.
        #[prost(int32, tag = "3")]
        pub connection: i32,
    }

    /// `Message`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        /// `MessageType type = 1`.
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// `int32 clusterLevelRaw = 10` (not used).
        #[prost(int32, tag = "10")]
        pub cluster_level_raw: i32,
        /// `bytes key = 2`.
        #[prost(bytes = "vec", tag = "2")]
        pub key: Vec<u8>,
        /// `Record record = 3`.
        #[prost(message, optional, tag = "3")]
        pub record: Option<Record>,
        /// `repeated Peer closerPeers = 8`.
        #[prost(message, repeated, tag = "8")]
        pub closer_peers: Vec<Peer>,
        /// `repeated Peer providerPeers = 9`.
        #[prost(message, repeated, tag = "9")]
        pub provider_peers: Vec<Peer>,
    }
}

/// `Message.MessageType` (../shared/specs/kad-dht.md, "RPC Messages").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `PUT_VALUE = 0`.
    PutValue,
    /// `GET_VALUE = 1`.
    GetValue,
    /// `ADD_PROVIDER = 2`.
    AddProvider,
    /// `GET_PROVIDERS = 3`.
    GetProviders,
    /// `FIND_NODE = 4`.
    FindNode,
    /// `PING = 5` (deprecated by the spec, still answered).
    Ping,
}

impl MessageType {
    /// Every type, in wire-value order (index = wire value).
    pub const ALL: [MessageType; 6] = [
        MessageType::PutValue,
        MessageType::GetValue,
        MessageType::AddProvider,
        MessageType::GetProviders,
        MessageType::FindNode,
        MessageType::Ping,
    ];

    /// The wire value (0..=5).
    pub const fn to_wire(self) -> i32 {
        match self {
            MessageType::PutValue => 0,
            MessageType::GetValue => 1,
            MessageType::AddProvider => 2,
            MessageType::GetProviders => 3,
            MessageType::FindNode => 4,
            MessageType::Ping => 5,
        }
    }

    /// The type of a wire value, `None` for unknown values.
    pub fn from_wire(value: i32) -> Option<MessageType> {
        usize::try_from(value)
            .ok()
            .and_then(|i| MessageType::ALL.get(i).copied())
    }

    /// Index into per-type arrays (same as the wire value).
    pub const fn index(self) -> usize {
        self.to_wire() as usize
    }
}

/// `Message.ConnectionType`: what the sender knows about its connection to a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// `NOT_CONNECTED = 0` (also used for unknown wire values).
    #[default]
    NotConnected,
    /// `CONNECTED = 1`.
    Connected,
    /// `CAN_CONNECT = 2`.
    CanConnect,
    /// `CANNOT_CONNECT = 3`.
    CannotConnect,
}

impl ConnectionType {
    /// The wire value.
    pub const fn to_wire(self) -> i32 {
        match self {
            ConnectionType::NotConnected => 0,
            ConnectionType::Connected => 1,
            ConnectionType::CanConnect => 2,
            ConnectionType::CannotConnect => 3,
        }
    }

    /// The type of a wire value; unknown values read as [`ConnectionType::NotConnected`].
    pub fn from_wire(value: i32) -> ConnectionType {
        match value {
            1 => ConnectionType::Connected,
            2 => ConnectionType::CanConnect,
            3 => ConnectionType::CannotConnect,
            _ => ConnectionType::NotConnected,
        }
    }
}

/// A `Message.Peer` after validation: a parsed peer ID and its parsable addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer ID.
    pub peer: PeerId,
    /// Its addresses (at most [`MAX_ADDRS_PER_PEER`] when decoded).
    pub addrs: Vec<Multiaddr>,
    /// What the sender knows about its connection to the peer.
    pub connection: ConnectionType,
}

impl PeerInfo {
    /// A peer with `addrs` and [`ConnectionType::NotConnected`].
    pub fn new(peer: PeerId, addrs: Vec<Multiaddr>) -> PeerInfo {
        PeerInfo {
            peer,
            addrs,
            connection: ConnectionType::NotConnected,
        }
    }
}

/// A DHT record: `Record.key` and `Record.value` (`timeReceived` is not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record key, e.g. `/ipns/<binary peer ID>`.
    pub key: Vec<u8>,
    /// The record value.
    pub value: Vec<u8>,
}

/// A validated request (../shared/specs/kad-dht.md, "RPC Messages", requirements per type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `FIND_NODE`: the k closest peers to `sha256(key)`.
    FindNode {
        /// The key (a binary peer ID, or any preimage for GetClosestPeers); 1..=80 bytes.
        key: Vec<u8>,
    },
    /// `GET_PROVIDERS`: providers of a multihash and the k closest peers.
    GetProviders {
        /// The multihash of a CID; 1..=80 bytes.
        key: Vec<u8>,
    },
    /// `ADD_PROVIDER`: the sender provides `key`.
    AddProvider {
        /// The multihash of a CID; 1..=80 bytes.
        key: Vec<u8>,
        /// The `providerPeers` (the server keeps only those equal to the sender).
        providers: Vec<PeerInfo>,
    },
    /// `GET_VALUE`: the record under `key` and the k closest peers.
    GetValue {
        /// The record key; 1..=80 bytes.
        key: Vec<u8>,
    },
    /// `PUT_VALUE`: store `record` (whose key equals the message key).
    PutValue {
        /// The record.
        record: Record,
    },
    /// `PING` (deprecated).
    Ping,
}

impl Request {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Request::FindNode { .. } => MessageType::FindNode,
            Request::GetProviders { .. } => MessageType::GetProviders,
            Request::AddProvider { .. } => MessageType::AddProvider,
            Request::GetValue { .. } => MessageType::GetValue,
            Request::PutValue { .. } => MessageType::PutValue,
            Request::Ping => MessageType::Ping,
        }
    }
}

/// A validated response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to `FIND_NODE`.
    FindNode {
        /// Up to k closer peers.
        closer_peers: Vec<PeerInfo>,
    },
    /// Answer to `GET_PROVIDERS`.
    GetProviders {
        /// Up to k closer peers.
        closer_peers: Vec<PeerInfo>,
        /// Known providers (up to [`MAX_PEERS_PER_MESSAGE`]).
        providers: Vec<PeerInfo>,
    },
    /// Answer to `GET_VALUE`.
    GetValue {
        /// The record, when the server has one.
        record: Option<Record>,
        /// Up to k closer peers.
        closer_peers: Vec<PeerInfo>,
    },
    /// Echo of `PUT_VALUE`: the stored record.
    PutValue {
        /// The record as echoed.
        record: Record,
    },
    /// Echo of `ADD_PROVIDER` (the spec's confirmation; go-libp2p-kad-dht and libp2p-kad send
    /// none, so a client must not wait for it).
    AddProvider {
        /// The key.
        key: Vec<u8>,
    },
    /// Answer to `PING`.
    Ping,
}

/// Errors of [`decode_request`] and [`decode_response`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not a protobuf `Message`.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The `type` field holds no known message type.
    #[error("unknown message type {0}")]
    UnknownType(i32),
    /// A response of another type than the request.
    #[error("expected a {expected:?} response, got {got:?}")]
    UnexpectedType {
        /// The request's type.
        expected: MessageType,
        /// The response's type.
        got: MessageType,
    },
    /// The key is empty where the type needs one.
    #[error("missing key")]
    MissingKey,
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes is over the {max}-byte limit")]
    KeyTooLong {
        /// Key length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A PUT_VALUE without a record.
    #[error("missing record")]
    MissingRecord,
    /// A PUT_VALUE whose record key differs from the message key.
    #[error("record key differs from message key")]
    RecordKeyMismatch,
    /// A peer entry whose ID is not a peer ID.
    #[error("invalid peer ID in a peer entry")]
    InvalidPeerId,
    /// More peers in a list, or addresses in all, than [`MAX_PEERS_ON_WIRE`] or
    /// [`MAX_ADDRS_ON_WIRE`]; counted before anything is decoded.
    #[error("{count} {what}, more than the {max} accepted")]
    TooMany {
        /// `"closer peers"`, `"provider peers"` or `"peer addresses"`.
        what: &'static str,
        /// How many the message holds (up to a malformed field).
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// Counts a body's peers and addresses without decoding it, and refuses it past
/// [`MAX_PEERS_ON_WIRE`] per list or [`MAX_ADDRS_ON_WIRE`] in all; see
/// [`hydrant_frame::count_fields`].
fn check_counts(body: &[u8]) -> Result<(), DecodeError> {
    let [closer, providers, closer_addrs, provider_addrs] =
        hydrant_frame::count_fields(body, [&[8], &[9], &[8, 2], &[9, 2]]);
    for (what, count, max) in [
        ("closer peers", closer, MAX_PEERS_ON_WIRE),
        ("provider peers", providers, MAX_PEERS_ON_WIRE),
        (
            "peer addresses",
            closer_addrs + provider_addrs,
            MAX_ADDRS_ON_WIRE,
        ),
    ] {
        if count > max {
            return Err(DecodeError::TooMany { what, count, max });
        }
    }
    Ok(())
}

/// Writes `body` with its unsigned-varint length prefix and flushes.
///
/// # Errors
/// The stream's I/O error.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> std::io::Result<()> {
    writer.write_all(&frame(body)).await?;
    writer.flush().await
}

fn peer_to_proto(info: &PeerInfo, max_addrs: usize) -> proto::Peer {
    proto::Peer {
        id: info.peer.to_bytes(),
        addrs: info
            .addrs
            .iter()
            .take(max_addrs)
            .map(|a| a.to_vec())
            .collect(),
        connection: info.connection.to_wire(),
    }
}

fn peers_to_proto(peers: &[PeerInfo], max_addrs: usize) -> Vec<proto::Peer> {
    peers.iter().map(|p| peer_to_proto(p, max_addrs)).collect()
}

fn record_to_proto(record: &Record) -> proto::Record {
    proto::Record {
        key: record.key.clone(),
        value: record.value.clone(),
        time_received: String::new(),
    }
}

/// The protobuf body of a request (no length prefix). Every address given is written.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut msg = proto::Message {
        r#type: request.message_type().to_wire(),
        ..Default::default()
    };
    match request {
        Request::FindNode { key } | Request::GetProviders { key } | Request::GetValue { key } => {
            msg.key = key.clone();
        }
        Request::AddProvider { key, providers } => {
            msg.key = key.clone();
            msg.provider_peers = peers_to_proto(providers, usize::MAX);
        }
        Request::PutValue { record } => {
            msg.key = record.key.clone();
            msg.record = Some(record_to_proto(record));
        }
        Request::Ping => {}
    }
    msg.encode_to_vec()
}

/// The protobuf body of a response (no length prefix), at most [`MAX_OUTBOUND_FRAME_SIZE`]
/// bytes when possible: each peer carries at most [`MAX_ADDRS_PER_PEER_OUT`] addresses, and
/// while the message is too large the last (farthest) closer peer, then the last provider, is
/// dropped. Only a record alone over the limit yields a larger body.
pub fn encode_response(response: &Response) -> Vec<u8> {
    let mut msg = proto::Message::default();
    match response {
        Response::FindNode { closer_peers } => {
            msg.r#type = MessageType::FindNode.to_wire();
            msg.closer_peers = peers_to_proto(closer_peers, MAX_ADDRS_PER_PEER_OUT);
        }
        Response::GetProviders {
            closer_peers,
            providers,
        } => {
            msg.r#type = MessageType::GetProviders.to_wire();
            msg.closer_peers = peers_to_proto(closer_peers, MAX_ADDRS_PER_PEER_OUT);
            msg.provider_peers = peers_to_proto(providers, MAX_ADDRS_PER_PEER_OUT);
        }
        Response::GetValue {
            record,
            closer_peers,
        } => {
            msg.r#type = MessageType::GetValue.to_wire();
            if let Some(record) = record {
                msg.key = record.key.clone();
                msg.record = Some(record_to_proto(record));
            }
            msg.closer_peers = peers_to_proto(closer_peers, MAX_ADDRS_PER_PEER_OUT);
        }
        Response::PutValue { record } => {
            msg.r#type = MessageType::PutValue.to_wire();
            msg.key = record.key.clone();
            msg.record = Some(record_to_proto(record));
        }
        Response::AddProvider { key } => {
            msg.r#type = MessageType::AddProvider.to_wire();
            msg.key = key.clone();
        }
        Response::Ping => msg.r#type = MessageType::Ping.to_wire(),
    }
    while msg.encoded_len() > MAX_OUTBOUND_FRAME_SIZE {
        if msg.closer_peers.pop().is_none() && msg.provider_peers.pop().is_none() {
            break;
        }
    }
    msg.encode_to_vec()
}

fn check_key(key: &[u8], required: bool) -> Result<(), DecodeError> {
    if key.len() > MAX_KEY_LEN {
        return Err(DecodeError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    if required && key.is_empty() {
        return Err(DecodeError::MissingKey);
    }
    Ok(())
}

fn decode_peers(peers: Vec<proto::Peer>) -> Result<Vec<PeerInfo>, DecodeError> {
    peers
        .into_iter()
        .take(MAX_PEERS_PER_MESSAGE)
        .map(|p| {
            let peer = PeerId::from_bytes(&p.id).map_err(|_| DecodeError::InvalidPeerId)?;
            let addrs = p
                .addrs
                .into_iter()
                .filter_map(|a| Multiaddr::try_from(a).ok())
                .take(MAX_ADDRS_PER_PEER)
                .collect();
            Ok(PeerInfo {
                peer,
                addrs,
                connection: ConnectionType::from_wire(p.connection),
            })
        })
        .collect()
}

fn decode_record(record: proto::Record) -> Record {
    Record {
        key: record.key,
        value: record.value,
    }
}

/// Decodes and validates a request body (../shared/specs/kad-dht.md, "RPC Messages").
///
/// # Errors
/// [`DecodeError::Protobuf`], [`DecodeError::UnknownType`], [`DecodeError::MissingKey`] (every
/// type but PING needs a key), [`DecodeError::KeyTooLong`] (over 80 bytes),
/// [`DecodeError::MissingRecord`] / [`DecodeError::RecordKeyMismatch`] (PUT_VALUE) and
/// [`DecodeError::InvalidPeerId`], [`DecodeError::TooMany`]. Unparsable multiaddrs are
/// skipped, the peer is kept.
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    check_counts(body)?;
    let msg = proto::Message::decode(body)?;
    let kind = MessageType::from_wire(msg.r#type).ok_or(DecodeError::UnknownType(msg.r#type))?;
    check_key(&msg.key, kind != MessageType::Ping)?;
    Ok(match kind {
        MessageType::FindNode => Request::FindNode { key: msg.key },
        MessageType::GetProviders => Request::GetProviders { key: msg.key },
        MessageType::GetValue => Request::GetValue { key: msg.key },
        MessageType::AddProvider => Request::AddProvider {
            providers: decode_peers(msg.provider_peers)?,
            key: msg.key,
        },
        MessageType::PutValue => {
            let record = msg.record.ok_or(DecodeError::MissingRecord)?;
            if record.key != msg.key {
                return Err(DecodeError::RecordKeyMismatch);
            }
            Request::PutValue {
                record: decode_record(record),
            }
        }
        MessageType::Ping => Request::Ping,
    })
}

/// Decodes and validates the response body to a request of type `expected`.
///
/// # Errors
/// As [`decode_request`], plus [`DecodeError::UnexpectedType`]. A GET_VALUE record whose key
/// is not the message key is dropped (the peers are kept).
pub fn decode_response(body: &[u8], expected: MessageType) -> Result<Response, DecodeError> {
    check_counts(body)?;
    let msg = proto::Message::decode(body)?;
    let kind = MessageType::from_wire(msg.r#type).ok_or(DecodeError::UnknownType(msg.r#type))?;
    if kind != expected {
        return Err(DecodeError::UnexpectedType {
            expected,
            got: kind,
        });
    }
    check_key(&msg.key, false)?;
    Ok(match kind {
        MessageType::FindNode => Response::FindNode {
            closer_peers: decode_peers(msg.closer_peers)?,
        },
        MessageType::GetProviders => Response::GetProviders {
            closer_peers: decode_peers(msg.closer_peers)?,
            providers: decode_peers(msg.provider_peers)?,
        },
        MessageType::GetValue => Response::GetValue {
            record: msg.record.map(decode_record),
            closer_peers: decode_peers(msg.closer_peers)?,
        },
        MessageType::PutValue => {
            let record = msg.record.ok_or(DecodeError::MissingRecord)?;
            Response::PutValue {
                record: decode_record(record),
            }
        }
        MessageType::AddProvider => Response::AddProvider { key: msg.key },
        MessageType::Ping => Response::Ping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer_strategy() -> impl Strategy<Value = PeerInfo> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec((any::<[u8; 4]>(), any::<u16>()), 0..4),
            0i32..4,
        )
            .prop_map(|(seed, addrs, conn)| {
                let key = libp2p::identity::Keypair::ed25519_from_bytes(seed).expect("32 bytes");
                PeerInfo {
                    peer: key.public().to_peer_id(),
                    addrs: addrs
                        .into_iter()
                        .map(|(ip, port)| {
                            format!("/ip4/{}.{}.{}.{}/tcp/{port}", ip[0], ip[1], ip[2], ip[3])
                                .parse()
                                .expect("valid multiaddr")
                        })
                        .collect(),
                    connection: ConnectionType::from_wire(conn),
                }
            })
    }

    fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN)
    }

    fn request_strategy() -> impl Strategy<Value = Request> {
        prop_oneof![
            key_strategy().prop_map(|key| Request::FindNode { key }),
            key_strategy().prop_map(|key| Request::GetProviders { key }),
            key_strategy().prop_map(|key| Request::GetValue { key }),
            (
                key_strategy(),
                proptest::collection::vec(peer_strategy(), 0..3)
            )
                .prop_map(|(key, providers)| Request::AddProvider { key, providers }),
            (
                key_strategy(),
                proptest::collection::vec(any::<u8>(), 0..256)
            )
                .prop_map(|(key, value)| Request::PutValue {
                    record: Record { key, value }
                }),
            Just(Request::Ping),
        ]
    }

    fn peers(n: usize) -> impl Strategy<Value = Vec<PeerInfo>> {
        proptest::collection::vec(peer_strategy(), 0..n)
    }

    fn response_strategy() -> impl Strategy<Value = Response> {
        prop_oneof![
            peers(21).prop_map(|closer_peers| Response::FindNode { closer_peers }),
            (peers(21), peers(5)).prop_map(|(closer_peers, providers)| {
                Response::GetProviders {
                    closer_peers,
                    providers,
                }
            }),
            (
                proptest::option::of(
                    (
                        key_strategy(),
                        proptest::collection::vec(any::<u8>(), 0..64)
                    )
                        .prop_map(|(key, value)| Record { key, value })
                ),
                peers(5)
            )
                .prop_map(|(record, closer_peers)| Response::GetValue {
                    record,
                    closer_peers
                }),
            key_strategy().prop_map(|key| Response::AddProvider { key }),
            Just(Response::Ping),
        ]
    }

    fn response_type(r: &Response) -> MessageType {
        match r {
            Response::FindNode { .. } => MessageType::FindNode,
            Response::GetProviders { .. } => MessageType::GetProviders,
            Response::GetValue { .. } => MessageType::GetValue,
            Response::PutValue { .. } => MessageType::PutValue,
            Response::AddProvider { .. } => MessageType::AddProvider,
            Response::Ping => MessageType::Ping,
        }
    }

    /// What decoding keeps of a response: at most k peers per list.
    fn truncated(r: &Response) -> Response {
        let cut = |p: &Vec<PeerInfo>| p.iter().take(MAX_PEERS_PER_MESSAGE).cloned().collect();
        match r {
            Response::FindNode { closer_peers } => Response::FindNode {
                closer_peers: cut(closer_peers),
            },
            Response::GetProviders {
                closer_peers,
                providers,
            } => Response::GetProviders {
                closer_peers: cut(closer_peers),
                providers: cut(providers),
            },
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn request_roundtrip(request in request_strategy()) {
            let body = encode_request(&request);
            prop_assert_eq!(decode_request(&body).unwrap(), request);
        }

        #[test]
        fn response_roundtrip(response in response_strategy()) {
            let body = encode_response(&response);
            prop_assert!(body.len() <= MAX_OUTBOUND_FRAME_SIZE);
            let decoded = decode_response(&body, response_type(&response)).unwrap();
            prop_assert_eq!(decoded, truncated(&response));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            for t in MessageType::ALL {
                let _ = decode_response(&bytes, t);
            }
        }

    }

    #[test]
    fn oversized_key_is_refused() {
        let body = encode_request(&Request::FindNode {
            key: vec![7; MAX_KEY_LEN + 1],
        });
        assert!(matches!(
            decode_request(&body),
            Err(DecodeError::KeyTooLong { len: 81, .. })
        ));
    }

    #[test]
    fn empty_key_is_refused_except_for_ping() {
        let msg = proto::Message {
            r#type: MessageType::GetProviders.to_wire(),
            ..Default::default()
        };
        assert!(matches!(
            decode_request(&msg.encode_to_vec()),
            Err(DecodeError::MissingKey)
        ));
        let ping = proto::Message {
            r#type: MessageType::Ping.to_wire(),
            ..Default::default()
        };
        assert_eq!(
            decode_request(&ping.encode_to_vec()).unwrap(),
            Request::Ping
        );
    }

    #[test]
    fn unknown_type_is_refused() {
        let msg = proto::Message {
            r#type: 9,
            key: vec![1],
            ..Default::default()
        };
        assert!(matches!(
            decode_request(&msg.encode_to_vec()),
            Err(DecodeError::UnknownType(9))
        ));
    }

    #[test]
    fn bad_multiaddrs_are_skipped_but_peer_kept_and_lists_bounded() {
        let peer = PeerId::random();
        let good: Multiaddr = "/ip4/1.2.3.4/tcp/4001".parse().unwrap();
        let mut addrs = vec![vec![0xff, 0xff, 0xff], good.to_vec()];
        addrs.extend(std::iter::repeat_n(good.to_vec(), MAX_ADDRS_PER_PEER + 5));
        let proto_peer = proto::Peer {
            id: peer.to_bytes(),
            addrs,
            connection: 1,
        };
        let msg = proto::Message {
            r#type: MessageType::FindNode.to_wire(),
            closer_peers: vec![proto_peer; MAX_PEERS_PER_MESSAGE + 7],
            ..Default::default()
        };
        let Response::FindNode { closer_peers } =
            decode_response(&msg.encode_to_vec(), MessageType::FindNode).unwrap()
        else {
            panic!("wrong variant");
        };
        assert_eq!(closer_peers.len(), MAX_PEERS_PER_MESSAGE);
        assert_eq!(closer_peers[0].peer, peer);
        assert_eq!(closer_peers[0].addrs.len(), MAX_ADDRS_PER_PEER);
        assert!(closer_peers[0].addrs.iter().all(|a| a == &good));
        assert_eq!(closer_peers[0].connection, ConnectionType::Connected);
    }

    #[test]
    fn invalid_peer_id_is_refused() {
        let msg = proto::Message {
            r#type: MessageType::AddProvider.to_wire(),
            key: vec![1, 2],
            provider_peers: vec![proto::Peer {
                id: vec![1, 2, 3],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            decode_request(&msg.encode_to_vec()),
            Err(DecodeError::InvalidPeerId)
        ));
    }

    #[test]
    fn response_of_other_type_is_refused() {
        let body = encode_response(&Response::Ping);
        assert!(matches!(
            decode_response(&body, MessageType::FindNode),
            Err(DecodeError::UnexpectedType { .. })
        ));
    }

    #[test]
    fn large_response_is_trimmed_to_the_outbound_limit() {
        let addr: Multiaddr = "/dns4/a-rather-long-host-name.example.com/tcp/4001/ws"
            .parse()
            .unwrap();
        let closer_peers: Vec<PeerInfo> = (0..200)
            .map(|_| PeerInfo::new(PeerId::random(), vec![addr.clone(); 8]))
            .collect();
        let body = encode_response(&Response::FindNode {
            closer_peers: closer_peers.clone(),
        });
        assert!(body.len() <= MAX_OUTBOUND_FRAME_SIZE);
        let Response::FindNode { closer_peers: got } =
            decode_response(&body, MessageType::FindNode).unwrap()
        else {
            panic!("wrong variant");
        };
        // The nearest (first) peers are kept.
        assert!(!got.is_empty());
        assert_eq!(got[0].peer, closer_peers[0].peer);
    }
}
