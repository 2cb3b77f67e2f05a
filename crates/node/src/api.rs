//! The admin and ingest HTTP API (loopback by default).
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /api/v1/id` | the [`DaemonInfo`] of this daemon |
//! | `PUT /api/v1/cars` | ingests the CAR in the request body (streamed); answers an `IngestSummary` |
//! | `GET /api/v1/cars?after=KEY&limit=N` | committed CARs, ordered by key, at most `limit` (<= 1000) |
//!
//! Errors are JSON `{"error": "..."}`: 400 for a bad CAR (the message names the problem and the
//! byte offset), 413 past `api.max_upload_bytes`, 500 for a server-side failure (details only in
//! the log).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use futures::TryStreamExt;
use hydrant_ingest::IngestError;
use serde::Deserialize;

use crate::config::Config;
use crate::daemon::DaemonInfo;
use crate::services::Services;

/// Most CAR records one `GET /api/v1/cars` returns.
pub const MAX_LIST_LIMIT: usize = 1000;

#[derive(Clone)]
struct ApiState {
    services: Services,
    info: Arc<DaemonInfo>,
    max_upload_bytes: u64,
}

/// The API router.
pub fn router(services: Services, info: DaemonInfo, config: &Config) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/id", get(id))
        .route("/api/v1/cars", put(put_car).get(list_cars))
        .layer(DefaultBodyLimit::disable())
        .with_state(ApiState {
            services,
            info: Arc::new(info),
            max_upload_bytes: config.api.max_upload_bytes,
        })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn id(State(state): State<ApiState>) -> Json<DaemonInfo> {
    Json((*state.info).clone())
}

async fn put_car(State(state): State<ApiState>, body: Body) -> Response {
    let limit = state.max_upload_bytes;
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .and_then(move |chunk| {
            let total =
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            std::future::ready(if total > limit {
                Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    "upload too large",
                ))
            } else {
                Ok(chunk)
            })
        });
    let reader = tokio_util::io::StreamReader::new(stream);
    match state.services.ingester.ingest(reader, None).await {
        Ok(summary) => (StatusCode::OK, Json(summary)).into_response(),
        Err(IngestError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::FileTooLarge =>
        {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the CAR is larger than api.max_upload_bytes ({limit} bytes)"),
            )
        }
        Err(e) if e.is_bad_input() => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(IngestError::Read { offset, .. }) => error(
            StatusCode::BAD_REQUEST,
            format!("the upload was interrupted after {offset} bytes"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "ingest failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ingest failed on the server; see its log",
            )
        }
    }
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_cars(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIST_LIMIT);
    match state
        .services
        .index
        .list_cars(q.after.as_deref(), limit)
        .await
    {
        Ok(cars) => Json(cars).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "listing CARs failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "index error; see the server log",
            )
        }
    }
}
