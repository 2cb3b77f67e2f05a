//! The object store named by `[storage]` (a local directory or an S3-compatible bucket), wrapped
//! in [`MeteredStore`] so that every request Hydrant makes to it is counted by kind and outcome
//! (`hydrant_object_store_requests_total`) and timed by kind
//! (`hydrant_object_store_request_duration_seconds`).

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    RetryConfig,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::NodeError;
use crate::config::{S3Config, StorageConfig};
use crate::repo::Repo;
use crate::stores::meters::{Buckets, FINE_LATENCY_BUCKETS};

/// Kinds of object-store request, as counted by [`MeteredStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GET of a whole object or a range (`get_opts`, `get_range`, `get_ranges` per range).
    Get,
    /// HEAD (metadata only).
    Head,
    /// PUT of a whole object.
    Put,
    /// Start of a multipart upload (its parts are not counted one by one).
    Multipart,
    /// DELETE (one per object).
    Delete,
    /// LIST (one per listing call; a long listing may page several requests).
    List,
    /// Server-side COPY, or a rename (copy then delete on S3).
    Copy,
}

impl Op {
    /// Every kind, in label order.
    pub const ALL: [Op; 7] = [
        Op::Get,
        Op::Head,
        Op::Put,
        Op::Multipart,
        Op::Delete,
        Op::List,
        Op::Copy,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::Multipart => "multipart",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Copy => "copy",
        }
    }
}

/// Request counters of a [`MeteredStore`], per [`Op`]: started and failed; and the time each
/// call took.
#[derive(Debug)]
pub struct StoreStats {
    started: [AtomicU64; 7],
    failed: [AtomicU64; 7],
    latency: Family<Vec<(&'static str, &'static str)>, Histogram, Buckets>,
}

impl Default for StoreStats {
    fn default() -> Self {
        let latency = Family::new_with_constructor(Buckets(FINE_LATENCY_BUCKETS));
        for op in Op::ALL {
            let _ = latency.get_or_create(&vec![("op", op.label())]);
        }
        Self {
            started: Default::default(),
            failed: Default::default(),
            latency,
        }
    }
}

impl StoreStats {
    /// Requests of kind `op` started so far.
    pub fn started(&self, op: Op) -> u64 {
        self.started[op as usize].load(Ordering::Relaxed)
    }

    /// Requests of kind `op` that failed (not-found answers included).
    pub fn failed(&self, op: Op) -> u64 {
        self.failed[op as usize].load(Ordering::Relaxed)
    }

    /// Requests of every kind started so far.
    pub fn total(&self) -> u64 {
        Op::ALL.iter().map(|&op| self.started(op)).sum()
    }

    fn start(&self, op: Op) {
        self.started[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a finished call (a failure too) and the time since `started`.
    fn count<T>(
        &self,
        op: Op,
        started: Instant,
        result: object_store::Result<T>,
    ) -> object_store::Result<T> {
        self.latency
            .get_or_create(&vec![("op", op.label())])
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.failed[op as usize].fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Registers `object_store_request_duration_seconds`.
    pub fn register_latency(&self, r: &mut Registry) {
        r.register(
            "object_store_request_duration_seconds",
            "Seconds per object-store call until it answered (a GET's head; its body streams \
             after), by kind; listings and deletions, which stream, are not timed",
            self.latency.clone(),
        );
    }
}

/// An [`ObjectStore`] that forwards every call to `inner` and counts it in [`StoreStats`].
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    stats: Arc<StoreStats>,
}

impl MeteredStore {
    /// `inner`, counted.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            stats: Arc::default(),
        }
    }

    /// The counters (shared; they keep counting).
    pub fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }
}

impl std::fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.stats.start(Op::Put);
        let started = Instant::now();
        let result = self.inner.put_opts(location, payload, opts).await;
        self.stats.count(Op::Put, started, result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.stats.start(Op::Multipart);
        let started = Instant::now();
        let result = self.inner.put_multipart_opts(location, opts).await;
        self.stats.count(Op::Multipart, started, result)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        self.stats.start(op);
        let started = Instant::now();
        let result = self.inner.get_opts(location, options).await;
        self.stats.count(op, started, result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        for _ in ranges {
            self.stats.start(Op::Get);
        }
        let started = Instant::now();
        let result = self.inner.get_ranges(location, ranges).await;
        self.stats.count(Op::Get, started, result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let stats = self.stats.clone();
        let counted = locations.inspect(move |_| stats.start(Op::Delete)).boxed();
        let stats = self.stats.clone();
        self.inner
            .delete_stream(counted)
            .map(move |r| {
                if r.is_err() {
                    stats.failed[Op::Delete as usize].fetch_add(1, Ordering::Relaxed);
                }
                r
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.stats.start(Op::List);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.stats.start(Op::List);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.stats.start(Op::List);
        let started = Instant::now();
        let result = self.inner.list_with_delimiter(prefix).await;
        self.stats.count(Op::List, started, result)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.stats.start(Op::Copy);
        let started = Instant::now();
        let result = self.inner.copy_opts(from, to, options).await;
        self.stats.count(Op::Copy, started, result)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.stats.start(Op::Copy);
        let started = Instant::now();
        let result = self.inner.rename_opts(from, to, options).await;
        self.stats.count(Op::Copy, started, result)
    }
}

/// Opens the object store of `[storage]`, counted.
///
/// # Errors
/// [`NodeError::Storage`] when the directory cannot be created, the credentials file cannot be
/// read, or the S3 client cannot be built. Nothing is sent to an S3 store here.
pub fn open(repo: &Repo) -> Result<MeteredStore, NodeError> {
    let inner: Arc<dyn ObjectStore> = match &repo.config.storage {
        StorageConfig::Local { path } => {
            let dir = repo.resolve(path);
            let failed = |detail: String| NodeError::Storage {
                what: dir.display().to_string(),
                detail,
            };
            std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
            Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(|e| failed(e.to_string()))?)
        }
        StorageConfig::S3(s3) => Arc::new(s3_store(repo, s3)?),
    };
    Ok(MeteredStore::new(inner))
}

/// `access_key_id` and friends from a credentials file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

fn s3_store(repo: &Repo, s3: &S3Config) -> Result<object_store::aws::AmazonS3, NodeError> {
    let what = format!("s3://{}", s3.bucket);
    let failed = |detail: String| NodeError::Storage {
        what: what.clone(),
        detail,
    };
    let request_timeout = Duration::from_secs(s3.request_timeout_secs);
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_virtual_hosted_style_request(!s3.path_style)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(request_timeout)
                .with_connect_timeout(Duration::from_secs(s3.connect_timeout_secs))
                .with_allow_http(s3.endpoint.starts_with("http://")),
        )
        .with_retry(RetryConfig {
            max_retries: s3.max_retries,
            retry_timeout: request_timeout,
            ..RetryConfig::default()
        });
    if !s3.endpoint.is_empty() {
        builder = builder.with_endpoint(&s3.endpoint);
    }
    if !s3.credentials_file.as_os_str().is_empty() {
        let path = repo.resolve(&s3.credentials_file);
        crate::repo::warn_if_exposed(&path, "S3 credentials");
        let creds = read_credentials(&path).map_err(failed)?;
        builder = builder
            .with_access_key_id(creds.access_key_id)
            .with_secret_access_key(creds.secret_access_key);
        if let Some(token) = creds.session_token {
            builder = builder.with_token(token);
        }
    }
    builder.build().map_err(|e| failed(e.to_string()))
}

fn read_credentials(path: &FsPath) -> Result<CredentialsFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("credentials file {}: {e}", path.display()))?;
    // The parser's message may quote the file's text: report only where it went wrong.
    toml::from_str(&text).map_err(|e| {
        format!(
            "credentials file {}: not a TOML table of access_key_id, secret_access_key \
             [, session_token] (error at byte {:?})",
            path.display(),
            e.span().map(|s| s.start)
        )
    })
}
