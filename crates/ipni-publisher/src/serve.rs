//! The HTTP publisher (ipni-http-provider.md, "GET /ipni/v1/ad/head", "GET /ipni/v1/ad/{CID}";
//! go-libipni `dagsync/ipnisync` `Publisher.ServeHTTP`). Every replica serves it: the head
//! comes from the index database, the blocks from the shared object store.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cid::Cid;
use hydrant_index::IpniStore;
use hydrant_ipni::{
    DAG_JSON, MAX_ADVERTISEMENT_SIZE, MAX_ENTRY_CHUNK_SIZE, SignedHead, dag_json_cid,
};
use libp2p_identity::Keypair;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::sync::watch;

use crate::chain::block_path;

/// The topic go-libipni's publisher signs its head on (`/indexer/ingest/mainnet`).
pub const DEFAULT_TOPIC: &str = "/indexer/ingest/mainnet";

/// How long a replica reuses the head it read from the database, in seconds: indexers poll
/// the head, and this bounds the database reads to one per second per replica.
pub const HEAD_TTL: Duration = Duration::from_secs(1);

/// Bytes of blocks kept in memory by default (16 MiB: about 15 full entry chunks).
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 20;

/// `Cache-Control` of blocks (the spec's "must include").
const IMMUTABLE: &str = "public, max-age=29030400, immutable";
/// `Cache-Control` of the head: it moves whenever a CAR is committed or deleted.
const NO_CACHE: &str = "no-cache, no-store, must-revalidate";

/// A signed head as served: the head CID and its DAG-JSON.
type Signed = (Cid, Bytes);

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Cid, Bytes> for Weight {
    fn weight(&self, _: &Cid, block: &Bytes) -> u64 {
        block.len() as u64 + 64
    }
}

/// What went wrong reading a block or the head.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The index database failed.
    #[error(transparent)]
    Index(#[from] hydrant_index::IndexError),
    /// The object store failed, or a stored block is larger than any block we write.
    #[error("IPNI block {cid}: {detail}")]
    Store {
        /// The block.
        cid: Cid,
        /// What failed.
        detail: String,
    },
    /// The identity could not sign the head.
    #[error(transparent)]
    Sign(#[from] hydrant_ipni::SignError),
}

/// Reads the chain for the HTTP publisher: the signed head and the blocks, with a bounded
/// cache of blocks (they are immutable). Cheap to clone.
#[derive(Clone)]
pub struct AdSource {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<dyn IpniStore>,
    store: Arc<dyn ObjectStore>,
    keypair: Keypair,
    topic: String,
    blocks: quick_cache::sync::Cache<Cid, Bytes, Weight>,
    /// When the head was last read, and the signed head it had (`None`: no chain yet).
    head: Mutex<Option<(Instant, Option<Signed>)>>,
    /// The heads this process's writer reaches ([`AdSource::follow_local_writer`]).
    local: Option<watch::Receiver<Option<Cid>>>,
}

impl AdSource {
    /// A source over `state` (the head) and `store` (the blocks), signing heads with
    /// `keypair` on `topic`, caching up to `cache_bytes` of blocks.
    pub fn new(
        state: Arc<dyn IpniStore>,
        store: Arc<dyn ObjectStore>,
        keypair: Keypair,
        topic: String,
        cache_bytes: u64,
    ) -> Self {
        let estimated = usize::try_from(cache_bytes / 4096).unwrap_or(1024).max(16);
        Self {
            inner: Arc::new(Inner {
                state,
                store,
                keypair,
                topic,
                blocks: quick_cache::sync::Cache::with_weighter(estimated, cache_bytes, Weight),
                head: Mutex::new(None),
                local: None,
            }),
        }
    }

    /// Serves a head this process's writer reached (`heads`, what [`crate::run_writer`]
    /// sends) at once, without waiting for [`HEAD_TTL`]: the announcers are told of a head
    /// only after it is sent there, so an indexer fetching the head it was just told about
    /// never gets the previous one. Call before the source is cloned.
    #[must_use]
    pub fn follow_local_writer(mut self, heads: watch::Receiver<Option<Cid>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.local = Some(heads);
        }
        self
    }

    /// The signed head as go-libipni encodes it (DAG-JSON), `None` before the first
    /// advertisement. Read from the database at most once per [`HEAD_TTL`].
    ///
    /// # Errors
    /// [`ServeError::Index`] or [`ServeError::Sign`].
    pub async fn signed_head(&self) -> Result<Option<Bytes>, ServeError> {
        let cached = self
            .inner
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let local = self.inner.local.as_ref().and_then(|l| *l.borrow());
        if let Some((at, head)) = &cached
            && at.elapsed() < HEAD_TTL
            && local.is_none_or(|l| head.as_ref().is_some_and(|(cid, _)| *cid == l))
        {
            return Ok(head.as_ref().map(|(_, b)| b.clone()));
        }
        let head = match self.inner.state.ipni_head().await? {
            None => None,
            Some(h) => match cached
                .and_then(|(_, c)| c)
                .filter(|(cid, _)| *cid == h.head)
            {
                Some(same) => Some(same),
                None => {
                    let signed = SignedHead::new(h.head, &self.inner.topic, &self.inner.keypair)?;
                    Some((h.head, Bytes::from(signed.to_dag_json())))
                }
            },
        };
        *self
            .inner
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), head.clone()));
        Ok(head.map(|(_, b)| b))
    }

    /// The DAG-JSON bytes of the advertisement or entry chunk `cid`, `None` when it is not one
    /// of ours (not DAG-JSON, or not stored). Bytes read from the store are checked against
    /// the CID before they are served or cached.
    ///
    /// # Errors
    /// [`ServeError::Store`] when the store fails or holds bytes that do not match.
    pub async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, ServeError> {
        if cid.codec() != DAG_JSON || cid.hash().code() != 0x12 {
            return Ok(None);
        }
        let key = Cid::new_v1(DAG_JSON, *cid.hash());
        if let Some(bytes) = self.inner.blocks.get(&key) {
            return Ok(Some(bytes));
        }
        let failed = |detail: String| ServeError::Store { cid: key, detail };
        let got = match self.inner.store.get(&block_path(&key)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(failed(e.to_string())),
        };
        let limit = MAX_ENTRY_CHUNK_SIZE.max(MAX_ADVERTISEMENT_SIZE) as u64;
        if got.meta.size > limit {
            return Err(failed(format!("{} bytes, over {limit}", got.meta.size)));
        }
        let bytes = got.bytes().await.map_err(|e| failed(e.to_string()))?;
        if dag_json_cid(&bytes) != key {
            return Err(failed("stored bytes do not hash to the CID".into()));
        }
        self.inner.blocks.insert(key, bytes.clone());
        Ok(Some(bytes))
    }
}

/// The routes `GET /ipni/v1/ad/head` and `GET /ipni/v1/ad/{cid}` over `source`, to merge into
/// the gateway's router. Answers: the head (200, or 204 before the first advertisement, as
/// go-libipni); a block (200 with `Cache-Control: public, max-age=29030400, immutable`; 404
/// for a CID that is not ours, 400 for one that does not parse); 500 when the store or the
/// database fails. Bodies are `application/json`.
pub fn router(source: AdSource) -> axum::Router {
    axum::Router::new()
        .route("/ipni/v1/ad/head", get(head))
        .route("/ipni/v1/ad/{cid}", get(block))
        .with_state(source)
}

fn json(bytes: Bytes, cache: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}

fn failure(e: &ServeError) -> Response {
    tracing::warn!(error = %e, "serving the IPNI chain failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "IPNI publisher error\n").into_response()
}

async fn head(State(source): State<AdSource>) -> Response {
    match source.signed_head().await {
        Ok(Some(bytes)) => json(bytes, NO_CACHE),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failure(&e),
    }
}

async fn block(State(source): State<AdSource>, UrlPath(cid): UrlPath<String>) -> Response {
    let Ok(cid) = Cid::try_from(cid.as_str()) else {
        return (StatusCode::BAD_REQUEST, "invalid request: not a cid\n").into_response();
    };
    match source.block(&cid).await {
        Ok(Some(bytes)) => json(bytes, IMMUTABLE),
        Ok(None) => (StatusCode::NOT_FOUND, "cid not found\n").into_response(),
        Err(e) => failure(&e),
    }
}
