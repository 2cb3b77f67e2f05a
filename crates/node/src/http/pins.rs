//! The pin routes of the admin API (issue 16, item 4; see [`crate::stores::pins`]).
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /api/v1/pins?after=CID&limit=N` | pins in CID byte order, at most `limit` (<= 1000): `{"pins": [...], "next": CID or null}` |
//! | `GET /api/v1/pins/{cid}` | one pin `{"cid", "name", "created_at"}`, or 404 |
//! | `POST /api/v1/pins/{cid}?name=NAME` | pins the DAG under `cid` once it is complete in the store: `{"pin": {...}, "new": bool}`; 422 naming the first missing block |
//! | `DELETE /api/v1/pins/{cid}` | unpins: `{"removed": bool}` |

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use cid::Cid;
use hydrant_index::MAX_LIST_PINS;
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::state::ApiState;
use crate::stores::pins::{PinError, PinView, pin_dag};

fn parse_cid(text: &str) -> Result<Cid, ApiError> {
    text.parse()
        .map_err(|e| ApiError::BadRequest(format!("{text:?} is not a CID: {e}")))
}

fn index_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("the pin store failed; see the server's log", e)
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn list(State(state): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    let after = match q.after.as_deref().map(parse_cid).transpose() {
        Ok(after) => after,
        Err(e) => return e.into_response(),
    };
    let limit = q.limit.unwrap_or(MAX_LIST_PINS).min(MAX_LIST_PINS);
    match state.services.pins.list_pins(after.as_ref(), limit).await {
        Ok(pins) => {
            let next = (pins.len() == limit && limit > 0)
                .then(|| pins.last().map(|p| p.cid.to_string()))
                .flatten();
            let pins: Vec<PinView> = pins.iter().map(PinView::from).collect();
            Json(serde_json::json!({ "pins": pins, "next": next })).into_response()
        }
        Err(e) => index_failed(e).into_response(),
    }
}

pub(crate) async fn get_one(State(state): State<ApiState>, Path(cid): Path<String>) -> Response {
    let cid = match parse_cid(&cid) {
        Ok(cid) => cid,
        Err(e) => return e.into_response(),
    };
    match state.services.pins.pin(&cid).await {
        Ok(Some(pin)) => Json(PinView::from(&pin)).into_response(),
        Ok(None) => ApiError::NotFound(format!("{cid} is not pinned")).into_response(),
        Err(e) => index_failed(e).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct AddQuery {
    #[serde(default)]
    name: String,
}

pub(crate) async fn add(
    State(state): State<ApiState>,
    Path(cid): Path<String>,
    Query(q): Query<AddQuery>,
) -> Response {
    let cid = match parse_cid(&cid) {
        Ok(cid) => cid,
        Err(e) => return e.into_response(),
    };
    let new = match pin_dag(&state.services, cid, q.name).await {
        Ok(new) => new,
        Err(e @ PinError::NameTooLong(_)) => {
            return ApiError::BadRequest(e.to_string()).into_response();
        }
        Err(e @ (PinError::Incomplete { .. } | PinError::Walk { .. })) => {
            return ApiError::Unprocessable(e.to_string()).into_response();
        }
        Err(e) => return index_failed(e).into_response(),
    };
    match state.services.pins.pin(&cid).await {
        Ok(Some(pin)) => {
            Json(serde_json::json!({ "pin": PinView::from(&pin), "new": new })).into_response()
        }
        Ok(None) => index_failed(format!("{cid} unpinned right after its pin")).into_response(),
        Err(e) => index_failed(e).into_response(),
    }
}

pub(crate) async fn remove(State(state): State<ApiState>, Path(cid): Path<String>) -> Response {
    let cid = match parse_cid(&cid) {
        Ok(cid) => cid,
        Err(e) => return e.into_response(),
    };
    match state.services.pins.remove_pin(&cid).await {
        Ok(removed) => Json(serde_json::json!({ "removed": removed })).into_response(),
        Err(e) => index_failed(e).into_response(),
    }
}
