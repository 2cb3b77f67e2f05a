//! [`ApiError`]: every failure of the admin API, with its status, headers and body decided in
//! one place. Its own module so that the HTTP middleware (the API's 504) and the handlers both
//! use it without importing each other.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hydrant_ingest::IngestError;

/// Every failure of the admin API. Its status, headers and body are decided here and nowhere
/// else: the body is `{"error": "<message>"}` (the HTTP middleware adds `request_id`), server
/// faults are logged here with their detail and answered with a fixed text.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400: the request (a query value, an uploaded CAR) is at fault; the message says how.
    BadRequest(String),
    /// 401 with `WWW-Authenticate: Bearer`: no or a wrong API token.
    Unauthorized,
    /// 404: what the request names does not exist (or that part of the node is off).
    NotFound(String),
    /// 422: a well-formed request the store's content cannot satisfy (pinning a DAG with a
    /// block missing); the message names what is missing.
    Unprocessable(String),
    /// 409: the request conflicts with what must be kept (deleting a CAR whose root is pinned);
    /// the message says what to do.
    Conflict(String),
    /// 413: an upload past `api.max_upload_bytes` (the limit, bytes).
    TooLarge(u64),
    /// 408: an upload that stopped sending (`api.upload_idle_timeout_secs`); the message says
    /// how long it waited.
    UploadStalled(String),
    /// 504 with `Retry-After`: a bounded operation did not finish (what, and the bound).
    Timeout(String),
    /// 500: our own fault; `detail` goes to the log, `public` to the client.
    Internal {
        /// The fixed text sent to the client.
        public: &'static str,
        /// What failed, for the log only.
        detail: String,
    },
}

impl ApiError {
    /// A server fault: `detail` is logged, `public` answered.
    pub(crate) fn internal(public: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Internal {
            public,
            detail: detail.to_string(),
        }
    }

    /// The answer to a failed ingest (upload or in-place indexing): the one mapping of
    /// [`IngestError`] to a status. `max_upload_bytes` names the limit in a 413.
    pub(crate) fn ingest(e: IngestError, max_upload_bytes: u64) -> Self {
        match e {
            IngestError::Read { source, .. }
                if source.kind() == std::io::ErrorKind::FileTooLarge =>
            {
                Self::TooLarge(max_upload_bytes)
            }
            IngestError::Read { source, .. } if source.kind() == std::io::ErrorKind::TimedOut => {
                Self::UploadStalled(source.to_string())
            }
            e if e.is_bad_input() => Self::BadRequest(e.to_string()),
            IngestError::Read { offset, .. } => {
                Self::BadRequest(format!("the upload was interrupted after {offset} bytes"))
            }
            e @ IngestError::NotFound { .. } => Self::NotFound(e.to_string()),
            e => Self::internal("ingest failed on the server; see its log", e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "this API needs `Authorization: Bearer <token>` with the token of api.token_file"
                    .to_owned(),
            ),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            Self::Conflict(m) => (StatusCode::CONFLICT, m),
            Self::UploadStalled(m) => (StatusCode::REQUEST_TIMEOUT, m),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the CAR is larger than api.max_upload_bytes ({limit} bytes)"),
            ),
            Self::Timeout(m) => (StatusCode::GATEWAY_TIMEOUT, m),
            Self::Internal { public, detail } => {
                tracing::error!(error = %detail, "API request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, public.to_owned())
            }
        };
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = hydrant_gateway::retry_after(status) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
