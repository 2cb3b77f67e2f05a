//! Records returned by the providers and peers endpoints.
//!
//! Spec: ../shared/specs/http-routing-v1.md § "Known Schemas" (§ "Peer Schema", § "Legacy
//! Schemas") and § "Common Data Types".

use libp2p::{Multiaddr, PeerId};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::ids::parse_peer_id;

/// The `Schema` value of a [`PeerRecord`].
pub const SCHEMA_PEER: &str = "peer";

/// One record of a `Providers` or `Peers` list, serialized as a JSON object with a
/// `Schema` field.
///
/// Spec: http-routing-v1.md § "Known Schemas". Records of any schema other than `peer`
/// (the legacy `bitswap` and `graphsync-filecoinv1` schemas, or future ones) are kept as
/// [`Record::Unknown`] so that they pass through unchanged.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// `"Schema": "peer"`.
    Peer(PeerRecord),
    /// Any other schema: the whole JSON object, `Schema` included, as received.
    Unknown(UnknownRecord),
}

/// A record of the `peer` schema:
/// `{"Schema":"peer","ID":…,"Addrs":[…],"Protocols":[…], …}`.
///
/// Spec: http-routing-v1.md § "Peer Schema". `Addrs` and `Protocols` are optional there;
/// here a missing list and an empty list are the same (both mean "unknown") and an empty
/// list is not written. Unknown fields (e.g. per-protocol metadata such as
/// `"transport-bitswap": {…}`) are kept in [`PeerRecord::extra`] and written back.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerRecord {
    /// `ID`: written as a base58btc multihash; read as that or as a CIDv1 with the
    /// libp2p-key codec in any multibase.
    pub id: PeerId,
    /// `Addrs`: known multiaddrs; empty when unknown. When read, entries that are not valid
    /// multiaddrs (e.g. protocols this build does not know) are dropped.
    pub addrs: Vec<Multiaddr>,
    /// `Protocols`: transfer protocol names such as `transport-bitswap`; empty when unknown.
    pub protocols: Vec<String>,
    /// Every other field of the object, preserved as received. The four fields above are
    /// never taken from here when writing.
    pub extra: Map<String, Value>,
}

/// A record whose `Schema` is not `peer`: the JSON object as received.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownRecord {
    /// The `Schema` field.
    pub schema: String,
    /// The whole object, including `Schema`.
    pub fields: Map<String, Value>,
}

impl PeerRecord {
    /// A `peer` record with the given ID, addresses and protocols and no extra fields.
    pub fn new(id: PeerId, addrs: Vec<Multiaddr>, protocols: Vec<String>) -> Self {
        PeerRecord {
            id,
            addrs,
            protocols,
            extra: Map::new(),
        }
    }
}

impl Record {
    /// The `Schema` field of this record.
    pub fn schema(&self) -> &str {
        match self {
            Record::Peer(_) => SCHEMA_PEER,
            Record::Unknown(u) => &u.schema,
        }
    }

    /// The record as a JSON object, with the spec's field names.
    pub fn to_json(&self) -> Value {
        match self {
            Record::Unknown(u) => Value::Object(u.fields.clone()),
            Record::Peer(p) => {
                let mut m = Map::new();
                m.insert("Schema".into(), Value::String(SCHEMA_PEER.into()));
                m.insert("ID".into(), Value::String(p.id.to_base58()));
                if !p.addrs.is_empty() {
                    let addrs = p.addrs.iter().map(|a| Value::String(a.to_string()));
                    m.insert("Addrs".into(), Value::Array(addrs.collect()));
                }
                if !p.protocols.is_empty() {
                    let protos = p.protocols.iter().map(|s| Value::String(s.clone()));
                    m.insert("Protocols".into(), Value::Array(protos.collect()));
                }
                for (k, v) in &p.extra {
                    if !matches!(k.as_str(), "Schema" | "ID" | "Addrs" | "Protocols") {
                        m.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(m)
            }
        }
    }

    /// Reads a record from a JSON value.
    ///
    /// Errors: the value is not an object, has no string `Schema`, or is a `peer` record
    /// whose `ID` is missing or not a peer ID, or whose `Addrs`/`Protocols` are not arrays
    /// of strings.
    pub fn from_json(value: Value) -> Result<Record, RecordError> {
        let Value::Object(mut fields) = value else {
            return Err(RecordError("record is not a JSON object".into()));
        };
        let schema = match fields.get("Schema") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(RecordError("record has no string \"Schema\" field".into())),
        };
        if schema != SCHEMA_PEER {
            return Ok(Record::Unknown(UnknownRecord { schema, fields }));
        }
        fields.remove("Schema");
        let id = match fields.remove("ID") {
            Some(Value::String(s)) => {
                parse_peer_id(&s).map_err(|e| RecordError(format!("peer record \"ID\": {e}")))?
            }
            _ => return Err(RecordError("peer record has no string \"ID\" field".into())),
        };
        let addrs = string_list(fields.remove("Addrs"), "Addrs")?
            .into_iter()
            .filter_map(|s| s.parse::<Multiaddr>().ok())
            .collect();
        let protocols = string_list(fields.remove("Protocols"), "Protocols")?;
        Ok(Record::Peer(PeerRecord {
            id,
            addrs,
            protocols,
            extra: fields,
        }))
    }
}

/// Why a JSON value is not a [`Record`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid routing record: {0}")]
pub struct RecordError(pub String);

fn string_list(v: Option<Value>, field: &str) -> Result<Vec<String>, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(RecordError(format!("\"{field}\" has a non-string entry"))),
            })
            .collect(),
        Some(_) => Err(RecordError(format!("\"{field}\" is not an array"))),
    }
}

impl From<PeerRecord> for Record {
    fn from(p: PeerRecord) -> Self {
        Record::Peer(p)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Record::from_json(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn peer() -> PeerId {
        Keypair::ed25519_from_bytes([1; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    #[test]
    fn peer_record_uses_spec_field_names_and_omits_empty_lists() {
        let id = peer();
        let r = Record::from(PeerRecord::new(id, vec![], vec![]));
        let v = r.to_json();
        assert_eq!(
            v,
            serde_json::json!({"Schema": "peer", "ID": id.to_base58()})
        );
        let r = Record::from(PeerRecord::new(
            id,
            vec!["/ip4/1.2.3.4/tcp/4001".parse().unwrap()],
            vec!["transport-bitswap".into()],
        ));
        let v = r.to_json();
        assert_eq!(v["Addrs"], serde_json::json!(["/ip4/1.2.3.4/tcp/4001"]));
        assert_eq!(v["Protocols"], serde_json::json!(["transport-bitswap"]));
    }

    #[test]
    fn extra_fields_roundtrip_and_cannot_override_known_ones() {
        let id = peer();
        let text = format!(
            r#"{{"Schema":"peer","ID":"{id}","Protocols":["transport-bitswap"],
                "transport-bitswap":{{"foo":"bar"}},"protocol-a":"AAEC"}}"#
        );
        let r: Record = serde_json::from_str(&text).unwrap();
        let Record::Peer(p) = &r else {
            panic!("not a peer record")
        };
        assert_eq!(p.extra.len(), 2);
        assert_eq!(
            p.extra["transport-bitswap"],
            serde_json::json!({"foo": "bar"})
        );
        let back: Record = serde_json::from_value(r.to_json()).unwrap();
        assert_eq!(back, r);

        let mut p = p.clone();
        p.extra.insert("ID".into(), Value::String("evil".into()));
        assert_eq!(Record::Peer(p).to_json()["ID"], id.to_base58());
    }

    #[test]
    fn unknown_schema_passes_through_unchanged() {
        let v = serde_json::json!({
            "Schema": "bitswap", "Protocol": "transport-bitswap", "ID": "x", "Addrs": ["junk"]
        });
        let r = Record::from_json(v.clone()).unwrap();
        assert_eq!(r.schema(), "bitswap");
        assert_eq!(r.to_json(), v);
    }

    #[test]
    fn peer_id_read_from_cid_form_and_bad_records_rejected() {
        let id = peer();
        let cid = cid::Cid::new_v1(
            0x72,
            cid::multihash::Multihash::from_bytes(&id.to_bytes()).unwrap(),
        );
        let r =
            Record::from_json(serde_json::json!({"Schema":"peer","ID": cid.to_string()})).unwrap();
        assert!(matches!(r, Record::Peer(p) if p.id == id));
        for bad in [
            serde_json::json!([]),
            serde_json::json!({"ID": id.to_base58()}),
            serde_json::json!({"Schema":"peer"}),
            serde_json::json!({"Schema":"peer","ID":"notapeer"}),
            serde_json::json!({"Schema":"peer","ID": id.to_base58(), "Addrs": "x"}),
            serde_json::json!({"Schema":"peer","ID": id.to_base58(), "Protocols": [1]}),
        ] {
            assert!(Record::from_json(bad.clone()).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any peer record survives a JSON round trip, extra fields included; reading never
        /// panics on arbitrary JSON text.
        #[test]
        fn peer_record_json_roundtrip(
            seed in proptest::prelude::any::<u8>(),
            addrs in proptest::collection::vec(
                proptest::sample::select(&["/ip4/1.2.3.4/tcp/1", "/ip6/::1/udp/2/quic-v1", "/dns4/a.b/tcp/443/tls/ws"][..]),
                0..4,
            ),
            protocols in proptest::collection::vec("[a-z-]{1,20}", 0..4),
            extra in proptest::collection::btree_map("[a-zA-Z-]{1,10}", "\\PC{0,10}", 0..4),
        ) {
            let id = Keypair::ed25519_from_bytes([seed; 32]).unwrap().public().to_peer_id();
            let mut p = PeerRecord::new(
                id,
                addrs.iter().map(|a| a.parse().unwrap()).collect(),
                protocols,
            );
            for (k, v) in extra {
                if !matches!(k.as_str(), "Schema" | "ID" | "Addrs" | "Protocols") {
                    p.extra.insert(k, Value::String(v));
                }
            }
            let r = Record::Peer(p);
            let text = serde_json::to_string(&r).unwrap();
            let back: Record = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back, r);
        }

        #[test]
        fn reading_never_panics(s in "\\PC{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = Record::from_json(v);
            }
        }
    }

    #[test]
    fn unparseable_addrs_are_dropped_when_reading() {
        let id = peer();
        let r = Record::from_json(serde_json::json!({
            "Schema":"peer","ID": id.to_base58(),
            "Addrs": ["/ip4/1.2.3.4/tcp/1", "/nonsense/7"]
        }))
        .unwrap();
        let Record::Peer(p) = r else { panic!() };
        assert_eq!(
            p.addrs,
            vec!["/ip4/1.2.3.4/tcp/1".parse::<Multiaddr>().unwrap()]
        );
    }
}
