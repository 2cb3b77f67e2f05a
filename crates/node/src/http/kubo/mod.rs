//! Kubo's RPC API (`/api/v0/...`, issue 16, item 3): the calls existing tools make
//! (`kubo-rpc-client`, `ipfs --api`, pinning scripts), answered as Kubo answers them, on the
//! API listener behind the same token rule as `/api/v1`.
//!
//! The wire rules, as `go-ipfs-cmds` (Kubo's command library) applies them:
//! - **POST only.** Any other method answers 405 `405 - Method Not Allowed` (text), as Kubo.
//! - **Arguments** are query parameters: `arg` (repeated for several), options by their
//!   kebab-case name. Booleans take Go's `strconv.ParseBool` spellings (`true`, `1`, `t`,
//!   `false`, `0`, `f`, ...) or an empty value for true. Options a call does not use are
//!   ignored, as Kubo ignores them.
//! - **Errors** are `{"Message": "...", "Code": 0|1, "Type": "error"}` ([`KuboError`]): 400 with
//!   `Code` 1 when the request is at fault (a missing argument, an unparsable CID), 500 with
//!   `Code` 0 when the command failed (a block not in the store), as Kubo.
//! - **Commands Hydrant does not implement** answer 404 (POST; 405 for other methods, as Kubo
//!   checks the method first) with a Kubo error naming the command,
//!   never a hang (Kubo answers `404 page not found` for an unknown command).
//! - **Outputs**: one JSON value (`application/json`), a stream of JSON values, one per line
//!   (`X-Chunked-Output: 1`), or raw bytes (`X-Stream-Output: 1`, `text/plain`), as Kubo marks
//!   them for its own Go client.
//!
//! | command | module |
//! | --- | --- |
//! | `add`, `block/put`, `dag/import` | [`add`] |
//! | `id`, `version`, `swarm/peers`, `routing/findprovs` | [`node`] |
//! | `pin/add`, `pin/ls`, `pin/rm`, `repo/gc` | [`pins`] |
//! | `cat` (file bytes, `offset`/`length`) | [`read`] |
//! | `ls` (directory entries, Kubo's `Objects`/`Links`) | [`read`] |
//! | `get` (a tar of the file or tree) | [`read`] |
//! | `block/get` (raw block bytes), `block/stat` (`Key`, `Size`) | [`read`] |
//! | `dag/get` (a node as DAG-JSON) | [`dag`] |
//! | `dag/export` (a CARv1 of the DAG) | [`dag`] |
//! | `pubsub/pub`, `pubsub/sub`, `pubsub/ls`, `pubsub/peers`, `swarm/connect` | [`pubsub`] |

use axum::Router;
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use cid::Cid;
use serde::Serialize;

use crate::http::error::ApiError;
use crate::http::state::ApiState;
use crate::stores::services::Services;

mod add;
mod dag;
mod node;
mod pins;
pub(crate) mod pubsub;
mod read;

/// The version Hydrant reports in `version` and `id` (`AgentVersion`).
pub(crate) const AGENT_VERSION: &str = concat!("hydrant/", env!("CARGO_PKG_VERSION"));

/// The `/api/v0` routes, merged into the admin API's router (so the token rule, the request
/// timeout and the metrics apply to them as to `/api/v1`).
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v0/add", command(add::add))
        .route("/api/v0/block/put", command(add::block_put))
        .route("/api/v0/dag/import", command(add::dag_import))
        .route("/api/v0/id", command(node::id))
        .route("/api/v0/version", command(node::version))
        .route("/api/v0/swarm/peers", command(node::swarm_peers))
        .route("/api/v0/routing/findprovs", command(node::findprovs))
        .route("/api/v0/pin/add", command(pins::add))
        .route("/api/v0/pin/ls", command(pins::ls))
        .route("/api/v0/pin/rm", command(pins::rm))
        .route("/api/v0/repo/gc", command(pins::repo_gc))
        .route("/api/v0/cat", command(read::cat))
        .route("/api/v0/ls", command(read::ls))
        .route("/api/v0/get", command(read::get))
        .route("/api/v0/block/get", command(read::block_get))
        .route("/api/v0/block/stat", command(read::block_stat))
        .route("/api/v0/dag/get", command(dag::dag_get))
        .route("/api/v0/dag/export", command(dag::dag_export))
        .route("/api/v0/pubsub/pub", command(pubsub::publish))
        .route("/api/v0/pubsub/sub", command(pubsub::subscribe))
        .route("/api/v0/pubsub/ls", command(pubsub::ls))
        .route("/api/v0/pubsub/peers", command(pubsub::peers))
        .route("/api/v0/swarm/connect", command(pubsub::swarm_connect))
        .route("/api/v0/{*command}", command(command_not_found))
}

/// A POST-only route, 405 for any other method (Kubo's text).
fn command<H, T>(handler: H) -> MethodRouter<ApiState>
where
    H: axum::handler::Handler<T, ApiState>,
    T: 'static,
{
    post(handler).fallback(|| async {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            "405 - Method Not Allowed\n",
        )
    })
}

async fn command_not_found(axum::extract::Path(command): axum::extract::Path<String>) -> Response {
    KuboError::NotFound(format!(
        "command not found: {command:?} is not one of the Kubo RPC commands Hydrant implements"
    ))
    .into_response()
}

/// A failed command, answered as Kubo answers it: `{"Message", "Code", "Type": "error"}`.
#[derive(Debug)]
pub(crate) enum KuboError {
    /// 400, `Code` 1 (`ErrClient`): the request is at fault; the message says how.
    Client(String),
    /// 500, `Code` 0 (`ErrNormal`): the command failed (what is missing, what went wrong).
    Failed(String),
    /// 404: no such command (or that part of the node is off).
    NotFound(String),
    /// 413: an upload past `api.max_upload_bytes` (the limit, bytes).
    TooLarge(u64),
    /// 500: our own fault; `detail` goes to the log, `public` to the client.
    Internal {
        /// The fixed text sent to the client.
        public: &'static str,
        /// What failed, for the log only.
        detail: String,
    },
}

impl KuboError {
    /// A server fault: `detail` is logged, `public` answered.
    pub(crate) fn internal(public: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Internal {
            public,
            detail: detail.to_string(),
        }
    }
}

impl From<ApiError> for KuboError {
    /// The `/api/v1` answer of a shared step (an ingest, a pin) in Kubo's form.
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::BadRequest(m) | ApiError::Unprocessable(m) | ApiError::UploadStalled(m) => {
                Self::Client(m)
            }
            ApiError::Conflict(m) => Self::Failed(m),
            ApiError::NotFound(m) => Self::NotFound(m),
            ApiError::TooLarge(limit) => Self::TooLarge(limit),
            ApiError::Timeout(m) => Self::Failed(m),
            ApiError::Unauthorized => Self::Client("unauthorized".into()),
            ApiError::Internal { public, detail } => Self::Internal { public, detail },
        }
    }
}

/// Kubo's error body.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody<'a> {
    message: &'a str,
    code: u8,
    r#type: &'static str,
}

impl IntoResponse for KuboError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Client(m) => (StatusCode::BAD_REQUEST, 1, m),
            Self::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, 0, m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, 0, m),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                1,
                format!("the upload is larger than api.max_upload_bytes ({limit} bytes)"),
            ),
            Self::Internal { public, detail } => {
                tracing::error!(error = %detail, "Kubo RPC command failed");
                (StatusCode::INTERNAL_SERVER_ERROR, 0, public.to_owned())
            }
        };
        let body = ErrorBody {
            message: &message,
            code,
            r#type: "error",
        };
        let mut response = (status, json_line(&body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// `value` as JSON with Kubo's trailing newline.
pub(crate) fn json_line(value: &impl Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).expect("plain data serializes");
    line.push(b'\n');
    line
}

/// One JSON value (`application/json`), as Kubo answers a non-streaming command.
pub(crate) fn json(value: &impl Serialize) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json_line(value),
    )
        .into_response()
}

/// JSON values, one per line, as Kubo answers a command that emits several
/// (`X-Chunked-Output: 1`, which Kubo's Go client reads as a stream of values).
pub(crate) fn ndjson<T: Serialize>(values: impl IntoIterator<Item = T>) -> Response {
    let mut body = Vec::new();
    for value in values {
        body.extend(json_line(&value));
    }
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-chunked-output"), "1"),
        ],
        body,
    )
        .into_response()
}

/// Raw bytes (a file, a tar, a CAR), as Kubo answers a command whose output is a byte stream
/// (`X-Stream-Output: 1`).
pub(crate) fn byte_stream(content_type: &'static str, body: axum::body::Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::HeaderName::from_static("x-stream-output"), "1"),
        ],
        body,
    )
        .into_response()
}

/// The query parameters of a command, in order (`arg` may repeat).
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = KuboError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, KuboError> {
        let RawQuery(query) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        let pairs = form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Ok(Params(pairs))
    }
}

impl Params {
    /// Every value of `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `arg` positional argument, named `what` in the error when it is missing (Kubo:
    /// `argument "key" is required`).
    pub(crate) fn arg(&self, what: &str) -> Result<&str, KuboError> {
        self.get("arg")
            .ok_or_else(|| KuboError::Client(format!("argument {what:?} is required")))
    }

    /// Boolean option `name`, `default` when absent.
    ///
    /// # Errors
    /// [`KuboError::Client`] naming the option and the value when the value is not a boolean.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, KuboError> {
        Ok(self.optional_flag(name)?.unwrap_or(default))
    }

    /// Boolean option `name`, if given.
    ///
    /// # Errors
    /// As [`Params::flag`].
    pub(crate) fn optional_flag(&self, name: &str) -> Result<Option<bool>, KuboError> {
        self.get(name)
            .map(|value| {
                parse_bool(value).ok_or_else(|| {
                    KuboError::Client(format!(
                        "option {name:?}: {value:?} is not a boolean (true or false)"
                    ))
                })
            })
            .transpose()
    }

    /// Unsigned integer option `name`, if given.
    ///
    /// # Errors
    /// [`KuboError::Client`] naming the option and the value when it is not a number.
    pub(crate) fn number(&self, name: &str) -> Result<Option<u64>, KuboError> {
        self.get(name)
            .map(|value| {
                value.parse().map_err(|_| {
                    KuboError::Client(format!(
                        "option {name:?}: {value:?} is not a non-negative integer"
                    ))
                })
            })
            .transpose()
    }
}

/// Go's `strconv.ParseBool`, with an empty value (an option given without one) as true.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// An IPFS path argument (`CID`, `CID/sub/path`, `/ipfs/CID[/sub/path]`) split into its root
/// CID and the path below it (no leading `/`).
///
/// # Errors
/// [`KuboError::Client`] when the root is not a CID or the namespace is not `/ipfs/` (Hydrant
/// resolves no IPNS names here).
pub(crate) fn ipfs_path(arg: &str) -> Result<(Cid, &str), KuboError> {
    let rest = match arg.strip_prefix('/') {
        Some(namespaced) => namespaced.strip_prefix("ipfs/").ok_or_else(|| {
            KuboError::Client(format!(
                "{arg:?}: only /ipfs/ paths are supported (no IPNS resolution here)"
            ))
        })?,
        None => arg,
    };
    let (root, path) = rest.split_once('/').unwrap_or((rest, ""));
    let cid = root.parse().map_err(|e| {
        KuboError::Client(format!("invalid path {arg:?}: {root:?} is not a CID: {e}"))
    })?;
    Ok((cid, path.trim_matches('/')))
}

/// The block `cid` from the store; a missing block is Kubo's offline answer (500, naming it).
///
/// # Errors
/// [`KuboError::Failed`] when the block is not stored; [`KuboError::Internal`] when the store
/// fails.
pub(crate) async fn block(services: &Services, cid: &Cid) -> Result<bytes::Bytes, KuboError> {
    hydrant_blocks::Blockstore::get(services.blockstore.as_ref(), cid)
        .await
        .map_err(|e| KuboError::internal("the blockstore failed; see the server's log", e))?
        .ok_or_else(|| {
            KuboError::Failed(format!(
                "block was not found locally (offline): ipld: could not find {cid}"
            ))
        })
}

/// The CID that `path` (segments below `root`, UnixFS directories and HAMT shards) names
/// (unixfs.md § "UnixFS Paths").
///
/// # Errors
/// [`KuboError::Failed`] for a missing block or a name not in its directory, as Kubo;
/// [`KuboError::Client`] for a path that cannot be valid.
pub(crate) async fn resolve(services: &Services, root: Cid, path: &str) -> Result<Cid, KuboError> {
    use hydrant_unixfs::exporter::Resolver;
    let failed = |e: hydrant_unixfs::exporter::ExportError| KuboError::Failed(e.to_string());
    let mut resolver = Resolver::new(root, path).map_err(|e| KuboError::Client(e.to_string()))?;
    while let Some(cid) = resolver.next_wanted().map_err(failed)? {
        let data = block(services, &cid).await?;
        resolver.on_block(&cid, &data).map_err(failed)?;
    }
    Ok(resolver.finish().map_err(failed)?.cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_take_go_spellings() {
        for t in ["", "1", "t", "true", "True", "TRUE"] {
            assert_eq!(parse_bool(t), Some(true), "{t:?}");
        }
        for f in ["0", "f", "false", "False", "FALSE"] {
            assert_eq!(parse_bool(f), Some(false), "{f:?}");
        }
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn ipfs_paths_split_into_root_and_rest() {
        let cid = "bafkqaaa";
        assert_eq!(ipfs_path(cid).unwrap().1, "");
        assert_eq!(ipfs_path(&format!("/ipfs/{cid}/a/b/")).unwrap().1, "a/b");
        assert_eq!(ipfs_path(&format!("{cid}/a")).unwrap().1, "a");
        let ipns = ipfs_path("/ipns/example.com").unwrap_err();
        assert!(format!("{ipns:?}").contains("only /ipfs/"), "{ipns:?}");
        let bad = ipfs_path("/ipfs/notacid/x").unwrap_err();
        assert!(format!("{bad:?}").contains("is not a CID"), "{bad:?}");
    }
}
