//! The error types of this crate: one per operation.

/// Why bytes could not be decoded as an IPNI DAG-JSON node (advertisement, entry chunk or
/// signed head).
///
/// Produced for any input, never by a panic.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input is larger than the limit for this kind of node.
    #[error("{what} is {size} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// What was being decoded (`"advertisement"`, `"entry chunk"`, `"signed head"`).
        what: &'static str,
        /// Size of the input in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// Not JSON, or not the schema's shape: a missing or unknown field, a wrong kind, a
    /// repeated key, or a malformed `{"/": ...}` link or bytes form.
    #[error("not a DAG-JSON {what}: {source}")]
    Json {
        /// What was being decoded.
        what: &'static str,
        /// The parser's explanation.
        #[source]
        source: serde_json::Error,
    },
    /// A `{"/": "..."}` link whose string is not a CID.
    #[error("field {field}: not a CID: {source}")]
    Cid {
        /// The schema field holding the link.
        field: &'static str,
        /// Why the CID did not parse.
        #[source]
        source: cid::Error,
    },
    /// A `{"/": {"bytes": "..."}}` value whose string is not base64.
    #[error("field {field}: bytes are not base64")]
    Base64 {
        /// The schema field holding the bytes.
        field: &'static str,
    },
    /// An entry of an entry chunk is not a multihash (at most 64 digest bytes).
    #[error("entry {index} of the entry chunk is not a multihash")]
    Multihash {
        /// Position of the entry in the chunk, from 0.
        index: usize,
    },
}

/// Why an advertisement or signed head could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key could not sign (a libp2p-identity signing error, e.g. an RSA failure).
    #[error("signing failed: {0}")]
    Key(#[from] libp2p_identity::SigningError),
    /// [`crate::Advertisement::sign`] was asked to sign an advertisement with extended
    /// providers, which go-libipni refuses too; use
    /// [`crate::Advertisement::sign_with_extended_providers`].
    #[error("the advertisement has extended providers: sign it with sign_with_extended_providers")]
    HasExtendedProviders,
    /// Extended-provider signatures are not defined for removal advertisements (go-libipni:
    /// "rm ads are not supported for extended provider signatures").
    #[error("removal advertisements cannot carry extended-provider signatures")]
    RemovalWithExtendedProviders,
    /// No key was given for an extended provider that is not the advertisement's provider.
    #[error("no key for extended provider {id}")]
    MissingKey {
        /// The extended provider's peer ID, as written in the advertisement.
        id: String,
    },
    /// The extended providers do not include the advertisement's own provider
    /// (ipni.md, "ExtendedProvider").
    #[error("the extended providers do not include the advertisement's provider")]
    ProviderNotExtended,
}

/// Why a signature did not verify.
///
/// Produced for any input, never by a panic.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The signature field is empty.
    #[error("missing signature")]
    NoSignature,
    /// The signed head has no public key.
    #[error("missing public key")]
    NoPublicKey,
    /// The signature bytes are not a libp2p signed envelope protobuf.
    #[error("signature is not a signed envelope: {0}")]
    Envelope(#[from] prost::DecodeError),
    /// The public key is not a libp2p protobuf public key of a supported type.
    #[error("bad public key: {0}")]
    PublicKey(#[from] libp2p_identity::DecodingError),
    /// The envelope's payload type is not the one expected (for example an extended-provider
    /// signature where the advertisement's own is expected).
    #[error("envelope payload type is {found:?}, expected {expected:?}")]
    PayloadType {
        /// The payload type expected, e.g. `/indexer/ingest/adSignature`.
        expected: &'static str,
        /// The payload type found (lossy UTF-8).
        found: String,
    },
    /// The cryptographic signature does not match the signed bytes and public key.
    #[error("invalid signature")]
    BadSignature,
    /// The signature is valid but over other content: the hash in the envelope is not the hash
    /// of this advertisement's signed fields.
    #[error("the signature is over different content")]
    ContentMismatch,
    /// The signer is not who the advertisement says it is.
    #[error("signed by {signer}, expected {expected}")]
    WrongSigner {
        /// The peer ID of the key that signed.
        signer: libp2p_identity::PeerId,
        /// The peer ID the advertisement names (as written).
        expected: String,
    },
    /// A peer ID in the advertisement is not a peer ID (neither base58 nor a CIDv1 with the
    /// libp2p-key codec).
    #[error("not a peer ID: {0:?}")]
    BadPeerId(String),
    /// The extended providers do not include the advertisement's own provider
    /// (ipni.md, "ExtendedProvider").
    #[error("the extended providers do not include the advertisement's provider")]
    ProviderNotExtended,
    /// A removal advertisement carries extended providers, whose signatures are undefined for
    /// removals.
    #[error("removal advertisements cannot carry extended-provider signatures")]
    RemovalWithExtendedProviders,
}
