//! The gateway's answer to denied content (see [`crate::stores::denylists`]): `/ipfs/{cid}` or
//! `/ipfs/{cid}/{path}` that a denylist rule matches is answered 410 Gone, or 451 Unavailable
//! For Legal Reasons when the rule's `status` hint says so, before any block is read, whatever
//! the response format. The lookups behind it refuse denied blocks too (a denied block met
//! inside a DAG is absent).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cid::Cid;

use crate::stores::denylists::Denylists;

/// Middleware of the gateway listener: refuses denied `/ipfs/` paths (see the module docs).
pub(crate) async fn refuse_denied(
    State(lists): State<Arc<Denylists>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(rest) = request.uri().path().strip_prefix("/ipfs/") {
        let (root, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Ok(cid) = root.parse::<Cid>() {
            let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            if let Some(denial) = lists.check(&cid, path.trim_matches('/')) {
                let status = StatusCode::from_u16(denial.status.code()).unwrap_or(StatusCode::GONE);
                return (
                    status,
                    [(header::CACHE_CONTROL, "no-store")],
                    format!(
                        "{} is blocked by denylist {} (line {})\n",
                        request.uri().path(),
                        denial.list,
                        denial.line
                    ),
                )
                    .into_response();
            }
        }
    }
    next.run(request).await
}
