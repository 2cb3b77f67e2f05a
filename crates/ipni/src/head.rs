//! The signed head served at `GET /ipni/v1/ad/head` (ipni-http-provider.md, "GET
//! /ipni/v1/ad/head"; ipni.md, "HTTP"; go-libipni `dagsync/ipnisync/head`).

use cid::Cid;
use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::Deserialize;

use crate::dagjson::{BytesDe, LinkDe, Writer, some};
use crate::{DecodeError, SignError, VerifyError, dagjson};

/// Largest signed head [`SignedHead::from_dag_json`] accepts, in bytes (64 KiB). Our bound:
/// an RSA-4096 head is about 1.5 KiB.
pub const MAX_SIGNED_HEAD_SIZE: usize = 64 << 10;

/// The latest advertisement's CID, signed by the publisher.
///
/// The signature is a plain libp2p signature (no envelope) over the head CID's bytes followed
/// by the topic's UTF-8 bytes when a topic is present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// The head advertisement (`head`).
    pub head: Cid,
    /// The topic the chain is published on (`topic`); absent means
    /// `/indexer/ingest/mainnet`. Go writes none when the topic is empty.
    pub topic: Option<String>,
    /// The signer's public key, libp2p protobuf encoding (`pubkey`).
    pub pubkey: Vec<u8>,
    /// The signature (`sig`).
    pub sig: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadDe {
    head: LinkDe,
    #[serde(default, deserialize_with = "some")]
    topic: Option<String>,
    pubkey: BytesDe,
    sig: BytesDe,
}

impl SignedHead {
    /// Signs `head` on `topic` with `key` (go-libipni `NewSignedHead`: an empty topic is
    /// left out).
    ///
    /// # Errors
    ///
    /// [`SignError::Key`] if the key fails to sign.
    pub fn new(head: Cid, topic: &str, key: &Keypair) -> Result<Self, SignError> {
        let mut sh = Self {
            head,
            topic: (!topic.is_empty()).then(|| topic.to_owned()),
            pubkey: Vec::new(),
            sig: Vec::new(),
        };
        sh.sign(key)?;
        Ok(sh)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut buf = self.head.to_bytes();
        if let Some(topic) = &self.topic {
            buf.extend_from_slice(topic.as_bytes());
        }
        buf
    }

    /// Sets `pubkey` and `sig` from `key` (go-libipni `SignedHead.Sign`).
    ///
    /// # Errors
    ///
    /// [`SignError::Key`] if the key fails to sign.
    pub fn sign(&mut self, key: &Keypair) -> Result<(), SignError> {
        self.pubkey = key.public().encode_protobuf();
        self.sig = key.sign(&self.signed_bytes())?;
        Ok(())
    }

    /// Verifies the signature with the included key and returns the signer's peer ID (go-libipni
    /// `SignedHead.Validate`); the caller decides whether that peer may publish this chain.
    ///
    /// # Errors
    ///
    /// [`VerifyError::NoSignature`], [`VerifyError::NoPublicKey`], [`VerifyError::PublicKey`]
    /// or [`VerifyError::BadSignature`]; never panics.
    pub fn verify(&self) -> Result<PeerId, VerifyError> {
        if self.sig.is_empty() {
            return Err(VerifyError::NoSignature);
        }
        if self.pubkey.is_empty() {
            return Err(VerifyError::NoPublicKey);
        }
        let key = PublicKey::try_decode_protobuf(&self.pubkey)?;
        if !key.verify(&self.signed_bytes(), &self.sig) {
            return Err(VerifyError::BadSignature);
        }
        Ok(key.to_peer_id())
    }

    /// Encodes as go-libipni's `SignedHead.Encode`: DAG-JSON, keys `head`, `pubkey`, `sig`,
    /// `topic` in that order, `topic` omitted when `None`.
    pub fn to_dag_json(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw("{");
        w.key("head", true);
        w.link(&self.head);
        w.key("pubkey", false);
        w.bytes(&self.pubkey);
        w.key("sig", false);
        w.bytes(&self.sig);
        if let Some(topic) = &self.topic {
            w.key("topic", false);
            w.string(topic);
        }
        w.raw("}");
        w.out.into_bytes()
    }

    /// Decodes a signed head as served (go-libipni `head.Decode`).
    ///
    /// # Errors
    ///
    /// [`DecodeError`]: over [`MAX_SIGNED_HEAD_SIZE`], or not the schema's shape.
    pub fn from_dag_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let de: HeadDe = dagjson::from_slice("signed head", bytes, MAX_SIGNED_HEAD_SIZE)?;
        Ok(Self {
            head: de.head.parse("head")?,
            topic: de.topic,
            pubkey: de.pubkey.parse("pubkey")?,
            sig: de.sig.parse("sig")?,
        })
    }
}
