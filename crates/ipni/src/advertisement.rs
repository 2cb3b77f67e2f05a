//! The advertisement (ipni.md, "Advertisements"; go-libipni `ingest/schema`).

use cid::Cid;
use libp2p_identity::{Keypair, PeerId};
use multihash_codetable::{Code, MultihashDigest};
use serde::Deserialize;

use crate::dagjson::{self, BytesDe, LinkDe, Writer, some};
use crate::envelope;
use crate::{DecodeError, SignError, VerifyError};

/// Domain of advertisement and extended-provider signature envelopes (go-libipni
/// `adSignatureDomain`).
pub const SIGNATURE_DOMAIN: &str = "indexer";

/// Payload type of an advertisement's signature envelope (go-libipni `adSignatureCodec`).
pub const AD_SIGNATURE_CODEC: &str = "/indexer/ingest/adSignature";

/// Payload type of an extended provider's signature envelope (go-libipni `epSignatureCodec`).
pub const EXTENDED_PROVIDER_SIGNATURE_CODEC: &str = "/indexer/ingest/extendedProviderSignature";

/// Largest advertisement [`Advertisement::from_dag_json`] accepts, in bytes (1 MiB). Our
/// bound, not the spec's: a real advertisement is a few KiB (one RSA-2048 signature is about
/// 700 bytes of base64), extended providers add about as much per provider.
pub const MAX_ADVERTISEMENT_SIZE: usize = 1 << 20;

/// Largest context ID go-libipni's `Advertisement.Validate` accepts, in bytes.
pub const MAX_CONTEXT_ID_LEN: usize = 64;

/// Largest metadata go-libipni's `Advertisement.Validate` accepts, in bytes (1 KiB).
pub const MAX_METADATA_LEN: usize = 1024;

/// Length of a current-format signed payload (a sha2-256 multihash: 2 + 32 bytes); envelopes
/// carrying any other length use go-libipni's old format (see [`Advertisement::verify`]).
const SIGNED_DIGEST_LEN: usize = 34;

/// The `Entries` link of an advertisement that carries no multihashes (removals, and updates
/// of metadata or addresses): go-libipni's `schema.NoEntries`, a CIDv1 with the raw codec over
/// the sha2-256 of nothing truncated to 16 bytes (`bafkreehdwdcefgh4dqkjv67uzcmw7oje`).
pub fn no_entries() -> Cid {
    let full = Code::Sha2_256.digest(&[]);
    let digest = &full.digest()[..16];
    let mh = multihash::Multihash::<64>::wrap(0x12, digest).expect("16 bytes fit in 64");
    Cid::new_v1(0x55, mh)
}

/// One advertisement: a link in the provider's chain announcing that the multihashes under
/// `entries` are (or, with `is_rm`, are no longer) retrievable from `provider`
/// (ipni.md, "Advertisements").
///
/// Fields carry what go-libipni's `schema.Advertisement` carries, as written on the wire, so
/// that decoding and re-encoding gives the same bytes and a signature computed over them
/// still verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// The previous advertisement in the chain, `None` for the first (`PreviousID`).
    pub previous: Option<Cid>,
    /// The provider's peer ID as written (`Provider`): base58btc (`12D3Koo…`, `Qm…`) from
    /// [`Advertisement::new`]; decoded advertisements keep what they carried, which may also
    /// be a CIDv1 with the libp2p-key codec (`bafzbei…`). The signature covers this string, so
    /// it is kept verbatim; [`Advertisement::provider_id`] parses it.
    pub provider: String,
    /// Multiaddrs where the content is retrievable, as strings (`Addresses`).
    pub addresses: Vec<String>,
    /// The head of the entry chunk chain, or [`no_entries`] (`Entries`).
    pub entries: Cid,
    /// Opaque key grouping the advertised multihashes, at most [`MAX_CONTEXT_ID_LEN`] bytes by
    /// go-libipni's validation (`ContextID`). Not covered by the signature.
    pub context_id: Vec<u8>,
    /// Transport metadata, at most [`MAX_METADATA_LEN`] bytes (`Metadata`; ipni.md,
    /// "Metadata"; see [`crate::metadata`]).
    pub metadata: Vec<u8>,
    /// True when the multihashes of `context_id` are withdrawn (`IsRm`).
    pub is_rm: bool,
    /// Further providers of the same content (`ExtendedProvider`; ipni.md,
    /// "ExtendedProvider").
    pub extended_provider: Option<ExtendedProvider>,
    /// The marshalled libp2p signed envelope (`Signature`); empty until signed.
    pub signature: Vec<u8>,
}

/// Additional providers of an advertisement's content (ipni.md, "ExtendedProvider").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedProvider {
    /// The providers; must include the advertisement's own provider (`Providers`).
    pub providers: Vec<ExtendedProviderEntry>,
    /// Whether these providers replace, rather than add to, chain-level extended providers
    /// for this context ID (`Override`).
    pub override_: bool,
}

/// One provider in an [`ExtendedProvider`] (go-libipni `schema.Provider`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedProviderEntry {
    /// The provider's peer ID as written (`ID`).
    pub id: String,
    /// Its multiaddrs (`Addresses`).
    pub addresses: Vec<String>,
    /// Its transport metadata (`Metadata`).
    pub metadata: Vec<u8>,
    /// Its signed envelope (payload type [`EXTENDED_PROVIDER_SIGNATURE_CODEC`]).
    pub signature: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdDe {
    #[serde(rename = "PreviousID", default, deserialize_with = "some")]
    previous: Option<LinkDe>,
    #[serde(rename = "Provider")]
    provider: String,
    #[serde(rename = "Addresses")]
    addresses: Vec<String>,
    #[serde(rename = "Signature")]
    signature: BytesDe,
    #[serde(rename = "Entries")]
    entries: LinkDe,
    #[serde(rename = "ContextID")]
    context_id: BytesDe,
    #[serde(rename = "Metadata")]
    metadata: BytesDe,
    #[serde(rename = "IsRm")]
    is_rm: bool,
    #[serde(rename = "ExtendedProvider", default, deserialize_with = "some")]
    extended_provider: Option<EpDe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EpDe {
    #[serde(rename = "Providers")]
    providers: Vec<EpEntryDe>,
    #[serde(rename = "Override")]
    override_: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EpEntryDe {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Addresses")]
    addresses: Vec<String>,
    #[serde(rename = "Metadata")]
    metadata: BytesDe,
    #[serde(rename = "Signature")]
    signature: BytesDe,
}

/// Parses a peer ID written as base58btc or as a CIDv1 with the libp2p-key codec (0x72), the
/// two forms go-libp2p's `peer.Decode` accepts.
pub fn parse_peer_id(s: &str) -> Option<PeerId> {
    if let Ok(id) = s.parse::<PeerId>() {
        return Some(id);
    }
    let cid = Cid::try_from(s).ok()?;
    if cid.version() != cid::Version::V1 || cid.codec() != 0x72 {
        return None;
    }
    PeerId::from_multihash(*cid.hash()).ok()
}

impl Advertisement {
    /// An unsigned advertisement of `entries` by `provider` (written in base58btc, as go's
    /// `peer.ID.String()` does), with no previous advertisement, no extended providers and
    /// `is_rm` false. Set the other fields, then [`Advertisement::sign`].
    pub fn new(
        provider: PeerId,
        addresses: Vec<String>,
        entries: Cid,
        context_id: Vec<u8>,
        metadata: Vec<u8>,
    ) -> Self {
        Self {
            previous: None,
            provider: provider.to_base58(),
            addresses,
            entries,
            context_id,
            metadata,
            is_rm: false,
            extended_provider: None,
            signature: Vec::new(),
        }
    }

    /// The provider's peer ID, parsed from [`Advertisement::provider`]; `None` if it is not a
    /// peer ID.
    pub fn provider_id(&self) -> Option<PeerId> {
        parse_peer_id(&self.provider)
    }

    /// Decodes an advertisement from DAG-JSON, as fetched from `/ipni/v1/ad/{CID}`
    /// (ipni-http-provider.md, "GET /ipni/v1/ad/{CID}").
    ///
    /// Accepts what go-ipld-prime accepts for this schema (any key order, whitespace, padded or
    /// unpadded base64); refuses unknown fields, repeated keys, `null` for optional fields, and
    /// inputs over [`MAX_ADVERTISEMENT_SIZE`]. The caller checks that the bytes hash to the CID
    /// they were fetched under ([`crate::dag_json_cid`]); re-encoding a non-canonical input
    /// gives other bytes and another CID.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] naming what is wrong; never panics.
    pub fn from_dag_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let de: AdDe = dagjson::from_slice("advertisement", bytes, MAX_ADVERTISEMENT_SIZE)?;
        let extended_provider = match de.extended_provider {
            None => None,
            Some(ep) => Some(ExtendedProvider {
                providers: ep
                    .providers
                    .into_iter()
                    .map(|p| {
                        Ok(ExtendedProviderEntry {
                            id: p.id,
                            addresses: p.addresses,
                            metadata: p.metadata.parse("ExtendedProvider.Providers.Metadata")?,
                            signature: p.signature.parse("ExtendedProvider.Providers.Signature")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
                override_: ep.override_,
            }),
        };
        Ok(Self {
            previous: de.previous.map(|l| l.parse("PreviousID")).transpose()?,
            provider: de.provider,
            addresses: de.addresses,
            entries: de.entries.parse("Entries")?,
            context_id: de.context_id.parse("ContextID")?,
            metadata: de.metadata.parse("Metadata")?,
            is_rm: de.is_rm,
            extended_provider,
            signature: de.signature.parse("Signature")?,
        })
    }

    /// Encodes the advertisement as go-libipni does (`dagjson.Encode` of the bindnode
    /// representation): keys in lexical order, absent `PreviousID` and `ExtendedProvider`
    /// omitted, no whitespace, no trailing newline.
    pub fn to_dag_json(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw("{");
        w.key("Addresses", true);
        w.strings(&self.addresses);
        w.key("ContextID", false);
        w.bytes(&self.context_id);
        w.key("Entries", false);
        w.link(&self.entries);
        if let Some(ep) = &self.extended_provider {
            w.key("ExtendedProvider", false);
            w.raw("{");
            w.key("Override", true);
            w.bool(ep.override_);
            w.key("Providers", false);
            w.raw("[");
            for (i, p) in ep.providers.iter().enumerate() {
                if i > 0 {
                    w.raw(",");
                }
                w.raw("{");
                w.key("Addresses", true);
                w.strings(&p.addresses);
                w.key("ID", false);
                w.string(&p.id);
                w.key("Metadata", false);
                w.bytes(&p.metadata);
                w.key("Signature", false);
                w.bytes(&p.signature);
                w.raw("}");
            }
            w.raw("]}");
        }
        w.key("IsRm", false);
        w.bool(self.is_rm);
        w.key("Metadata", false);
        w.bytes(&self.metadata);
        if let Some(previous) = &self.previous {
            w.key("PreviousID", false);
            w.link(previous);
        }
        w.key("Provider", false);
        w.string(&self.provider);
        w.key("Signature", false);
        w.bytes(&self.signature);
        w.raw("}");
        w.out.into_bytes()
    }

    /// The advertisement's CID: CIDv1, DAG-JSON (0x0129), sha2-256 of
    /// [`Advertisement::to_dag_json`].
    pub fn cid(&self) -> Cid {
        dagjson::dag_json_cid(&self.to_dag_json())
    }

    /// The bytes go-libipni's `signaturePayload` concatenates: PreviousID's CID bytes (empty
    /// when absent), Entries' CID bytes, Provider, every address, Metadata, and one byte for
    /// IsRm. ContextID and ExtendedProvider are not included.
    fn signed_fields(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(previous) = &self.previous {
            buf.extend_from_slice(&previous.to_bytes());
        }
        buf.extend_from_slice(&self.entries.to_bytes());
        buf.extend_from_slice(self.provider.as_bytes());
        for addr in &self.addresses {
            buf.extend_from_slice(addr.as_bytes());
        }
        buf.extend_from_slice(&self.metadata);
        buf.push(u8::from(self.is_rm));
        buf
    }

    /// The envelope payload: the sha2-256 multihash of [`Self::signed_fields`].
    fn signed_digest(&self) -> Vec<u8> {
        Code::Sha2_256.digest(&self.signed_fields()).to_bytes()
    }

    /// go-libipni's old (pre-2022) payload, still accepted when verifying: the signed fields
    /// themselves behind a sha2-256 multihash prefix (`multihash.Encode`, no hashing).
    fn old_signed_digest(&self) -> Vec<u8> {
        let fields = self.signed_fields();
        let mut out = vec![0x12];
        let mut len = unsigned_varint::encode::usize_buffer();
        out.extend_from_slice(unsigned_varint::encode::usize(fields.len(), &mut len));
        out.extend_from_slice(&fields);
        out
    }

    /// The payload an extended provider signs (go-libipni `extendedProviderSignaturePayload`):
    /// the sha2-256 multihash of PreviousID bytes, Entries bytes, the advertisement's
    /// Provider, its ContextID, the entry's ID, the entry's addresses, the entry's metadata,
    /// and one byte for Override.
    fn extended_provider_digest(&self, p: &ExtendedProviderEntry, override_: bool) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(previous) = &self.previous {
            buf.extend_from_slice(&previous.to_bytes());
        }
        buf.extend_from_slice(&self.entries.to_bytes());
        buf.extend_from_slice(self.provider.as_bytes());
        buf.extend_from_slice(&self.context_id);
        buf.extend_from_slice(p.id.as_bytes());
        for addr in &p.addresses {
            buf.extend_from_slice(addr.as_bytes());
        }
        buf.extend_from_slice(&p.metadata);
        buf.push(u8::from(override_));
        Code::Sha2_256.digest(&buf).to_bytes()
    }

    /// Signs the advertisement with the provider's key (go-libipni `Advertisement.Sign`): a
    /// libp2p signed envelope, domain [`SIGNATURE_DOMAIN`], payload type
    /// [`AD_SIGNATURE_CODEC`], payload the sha2-256 multihash of PreviousID, Entries,
    /// Provider, Addresses, Metadata and IsRm (ContextID is not signed). Ed25519 and RSA
    /// (PKCS#1 v1.5) signatures are deterministic, so the same key and fields give the same
    /// bytes as go-libipni.
    ///
    /// # Errors
    ///
    /// [`SignError::HasExtendedProviders`] if `extended_provider` is set (as go-libipni);
    /// [`SignError::Key`] if the key fails to sign.
    pub fn sign(&mut self, key: &Keypair) -> Result<(), SignError> {
        if self.extended_provider.is_some() {
            return Err(SignError::HasExtendedProviders);
        }
        self.sign_ad(key)
    }

    fn sign_ad(&mut self, key: &Keypair) -> Result<(), SignError> {
        self.signature = envelope::seal(
            SIGNATURE_DOMAIN,
            AD_SIGNATURE_CODEC,
            &self.signed_digest(),
            key,
        )?;
        Ok(())
    }

    /// Signs the advertisement with `key`, and every extended provider's entry with its own
    /// key (go-libipni `SignWithExtendedProviders`): `key` for the entry whose ID is the
    /// advertisement's provider, `key_for(id)` for the others.
    ///
    /// # Errors
    ///
    /// [`SignError::MissingKey`] when `key_for` has no key for an entry;
    /// [`SignError::RemovalWithExtendedProviders`] for a removal with extended providers;
    /// [`SignError::ProviderNotExtended`] when a non-empty provider list lacks the
    /// advertisement's provider; [`SignError::Key`] if a key fails to sign.
    pub fn sign_with_extended_providers<'k>(
        &mut self,
        key: &Keypair,
        mut key_for: impl FnMut(&str) -> Option<&'k Keypair>,
    ) -> Result<(), SignError> {
        self.sign_ad(key)?;
        let Some(ep) = self.extended_provider.clone() else {
            return Ok(());
        };
        if self.is_rm {
            return Err(SignError::RemovalWithExtendedProviders);
        }
        let mut seen_provider = false;
        let mut signatures = Vec::with_capacity(ep.providers.len());
        for p in &ep.providers {
            let payload = self.extended_provider_digest(p, ep.override_);
            let signer = if p.id == self.provider {
                seen_provider = true;
                key
            } else {
                key_for(&p.id).ok_or_else(|| SignError::MissingKey { id: p.id.clone() })?
            };
            signatures.push(envelope::seal(
                SIGNATURE_DOMAIN,
                EXTENDED_PROVIDER_SIGNATURE_CODEC,
                &payload,
                signer,
            )?);
        }
        if !seen_provider && !ep.providers.is_empty() {
            return Err(SignError::ProviderNotExtended);
        }
        if let Some(ep) = &mut self.extended_provider {
            for (p, sig) in ep.providers.iter_mut().zip(signatures) {
                p.signature = sig;
            }
        }
        Ok(())
    }

    /// Checks the signature as go-libipni's `VerifySignature` does and returns the signer's
    /// peer ID, which may differ from the provider (a publisher signing for it): the envelope
    /// must verify under the key it carries, have payload type [`AD_SIGNATURE_CODEC`] and
    /// carry the digest of this advertisement's signed fields (the old, unhashed payload
    /// format is accepted when the payload is not 34 bytes long, as go-libipni does). With
    /// extended providers, every entry's envelope must verify and carry its digest, its signer
    /// must be the entry's ID (a check go-libipni leaves out), and the advertisement's
    /// provider must be among the entries.
    ///
    /// # Errors
    ///
    /// [`VerifyError`] naming the first failure; never panics.
    pub fn verify_signature(&self) -> Result<PeerId, VerifyError> {
        let (signer, payload) =
            envelope::consume(SIGNATURE_DOMAIN, AD_SIGNATURE_CODEC, &self.signature)?;
        let expected = if payload.len() == SIGNED_DIGEST_LEN {
            self.signed_digest()
        } else {
            self.old_signed_digest()
        };
        if payload != expected {
            return Err(VerifyError::ContentMismatch);
        }
        if let Some(ep) = &self.extended_provider {
            if self.is_rm {
                return Err(VerifyError::RemovalWithExtendedProviders);
            }
            let mut seen_provider = false;
            for p in &ep.providers {
                let (p_signer, p_payload) = envelope::consume(
                    SIGNATURE_DOMAIN,
                    EXTENDED_PROVIDER_SIGNATURE_CODEC,
                    &p.signature,
                )?;
                if p_payload != self.extended_provider_digest(p, ep.override_) {
                    return Err(VerifyError::ContentMismatch);
                }
                let id =
                    parse_peer_id(&p.id).ok_or_else(|| VerifyError::BadPeerId(p.id.clone()))?;
                if p_signer != id {
                    return Err(VerifyError::WrongSigner {
                        signer: p_signer,
                        expected: p.id.clone(),
                    });
                }
                if p.id == self.provider {
                    seen_provider = true;
                }
            }
            if !seen_provider && !ep.providers.is_empty() {
                return Err(VerifyError::ProviderNotExtended);
            }
        }
        Ok(signer)
    }

    /// [`Advertisement::verify_signature`], and the signer must be the provider itself.
    /// Returns the provider's peer ID. Use `verify_signature` instead where a publisher may
    /// sign on a provider's behalf.
    ///
    /// # Errors
    ///
    /// As `verify_signature`; [`VerifyError::BadPeerId`] if `provider` is not a peer ID;
    /// [`VerifyError::WrongSigner`] if another key signed.
    pub fn verify(&self) -> Result<PeerId, VerifyError> {
        let signer = self.verify_signature()?;
        let provider = self
            .provider_id()
            .ok_or_else(|| VerifyError::BadPeerId(self.provider.clone()))?;
        if signer != provider {
            return Err(VerifyError::WrongSigner {
                signer,
                expected: self.provider.clone(),
            });
        }
        Ok(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_entries_is_go_libipni_s() {
        assert_eq!(
            no_entries().to_string(),
            "bafkreehdwdcefgh4dqkjv67uzcmw7oje"
        );
    }
}
