//! The Kubo RPC pin commands: `pin/add`, `pin/ls`, `pin/rm`, over the pins of
//! [`crate::stores::pins`], and `repo/gc` ([`crate::stores::delete::gc`]). Hydrant's pins are Kubo's recursive pins; there are no direct pins,
//! and indirect pins (the blocks under a recursive pin) are not listed.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use cid::Cid;
use hydrant_index::MAX_LIST_PINS;
use serde_json::json;

use super::{KuboError, Params, ipfs_path, ndjson};
use crate::http::state::ApiState;
use crate::stores::pins::{PinError, pin_dag};

/// Most pins `pin/ls` lists in one JSON object (without `stream=true`); past it the answer
/// asks for `stream=true`, which has no limit.
const MAX_PINS_IN_OBJECT: usize = 100_000;

fn index_failed(e: impl std::fmt::Display) -> KuboError {
    KuboError::internal("the pin store failed; see the server's log", e)
}

/// The CID a pin argument names: `CID` or `/ipfs/CID`, or a path below one resolved to the
/// CID it ends at.
async fn pin_target(state: &ApiState, arg: &str) -> Result<Cid, KuboError> {
    let (root, path) = ipfs_path(arg)?;
    if path.is_empty() {
        return Ok(root);
    }
    super::resolve(&state.services, root, path).await
}

/// The `recursive` option: only recursive pins exist in Hydrant.
fn require_recursive(params: &Params) -> Result<(), KuboError> {
    if params.flag("recursive", true)? {
        Ok(())
    } else {
        Err(KuboError::Client(
            "direct pins (recursive=false) are not supported: Hydrant pins whole DAGs".into(),
        ))
    }
}

/// `POST /api/v0/pin/add` (`arg` paths, `name`, `recursive` default true): pins each DAG once
/// it is complete in the store; `{"Pins": [CIDs]}`. A DAG with a block missing is refused
/// (500, the message names the block), as Kubo refuses offline.
pub(crate) async fn add(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    require_recursive(&params)?;
    let name = params.get("name").unwrap_or_default().to_owned();
    let mut pinned = Vec::new();
    for arg in params.all("arg") {
        let cid = pin_target(&state, arg).await?;
        match pin_dag(&state.services, cid, name.clone()).await {
            Ok(_) => pinned.push(cid.to_string()),
            Err(e @ PinError::NameTooLong(_)) => return Err(KuboError::Client(e.to_string())),
            Err(e @ (PinError::Incomplete { .. } | PinError::Walk { .. })) => {
                return Err(KuboError::Failed(e.to_string()));
            }
            Err(e) => return Err(index_failed(e)),
        }
    }
    if pinned.is_empty() {
        return Err(KuboError::Client(
            "argument \"ipfs-path\" is required".into(),
        ));
    }
    Ok(super::json(&json!({ "Pins": pinned })))
}

/// `POST /api/v0/pin/rm` (`arg` paths): unpins each; `{"Pins": [CIDs]}`. A CID that is not
/// pinned fails the call with Kubo's message, before anything is unpinned.
pub(crate) async fn rm(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    require_recursive(&params)?;
    let mut targets = Vec::new();
    for arg in params.all("arg") {
        let cid = pin_target(&state, arg).await?;
        if state
            .services
            .pins
            .pin(&cid)
            .await
            .map_err(index_failed)?
            .is_none()
        {
            return Err(KuboError::Failed(format!(
                "{cid} is not pinned or pinned indirectly"
            )));
        }
        targets.push(cid);
    }
    if targets.is_empty() {
        return Err(KuboError::Client(
            "argument \"ipfs-path\" is required".into(),
        ));
    }
    for cid in &targets {
        state
            .services
            .pins
            .remove_pin(cid)
            .await
            .map_err(index_failed)?;
    }
    let pins: Vec<String> = targets.iter().map(ToString::to_string).collect();
    Ok(super::json(&json!({ "Pins": pins })))
}

/// One pin as `pin/ls` lists it: Kubo's `{"Type": "recursive", "Name"}` (`Name` only with
/// `names`).
fn entry(name: &str, names: bool) -> serde_json::Value {
    if names {
        json!({ "Type": "recursive", "Name": name })
    } else {
        json!({ "Type": "recursive" })
    }
}

/// `POST /api/v0/pin/ls` (`arg` paths, `type`, `names`, `stream`): the pins, or the named ones
/// (500 naming the first that is not pinned). Without `stream`: `{"Keys": {CID: {"Type"}}}`;
/// with `stream=true`: one `{"Cid", "Type"}` line per pin, read from the pin store a page at
/// a time. `type` `direct` and `indirect` list nothing (Hydrant has only recursive pins).
pub(crate) async fn ls(
    State(state): State<ApiState>,
    params: Params,
) -> Result<Response, KuboError> {
    let kind = params.get("type").unwrap_or("all");
    if !matches!(kind, "all" | "recursive" | "direct" | "indirect") {
        return Err(KuboError::Client(format!(
            "invalid type {kind:?}, must be one of {{direct, indirect, recursive, all}}"
        )));
    }
    let names = params.flag("names", false)? || params.get("name").is_some();
    let stream = params.flag("stream", false)?;
    let name_filter = params.get("name").map(str::to_owned);
    let listed = matches!(kind, "all" | "recursive");

    let args: Vec<&str> = params.all("arg").collect();
    if !args.is_empty() {
        let mut found = Vec::new();
        for arg in args {
            let cid = pin_target(&state, arg).await?;
            match state.services.pins.pin(&cid).await.map_err(index_failed)? {
                Some(pin) if listed => found.push(pin),
                _ => return Err(KuboError::Failed(format!("path '{arg}' is not pinned"))),
            }
        }
        return Ok(answer(found, names, stream));
    }
    if !listed {
        return Ok(answer(Vec::new(), names, stream));
    }
    if stream {
        return Ok(streamed(state, names, name_filter));
    }
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .services
            .pins
            .list_pins(after.as_ref(), MAX_LIST_PINS)
            .await
            .map_err(index_failed)?;
        let full = page.len() == MAX_LIST_PINS;
        after = page.last().map(|p| p.cid);
        all.extend(
            page.into_iter()
                .filter(|p| name_filter.as_ref().is_none_or(|n| &p.name == n)),
        );
        if all.len() > MAX_PINS_IN_OBJECT {
            return Err(KuboError::Failed(format!(
                "more than {MAX_PINS_IN_OBJECT} pins: list them with stream=true"
            )));
        }
        if !full {
            break;
        }
    }
    Ok(answer(all, names, false))
}

fn answer(pins: Vec<hydrant_index::Pin>, names: bool, stream: bool) -> Response {
    if stream {
        return ndjson(pins.iter().map(|p| line(p, names)));
    }
    let keys: serde_json::Map<String, serde_json::Value> = pins
        .iter()
        .map(|p| (p.cid.to_string(), entry(&p.name, names)))
        .collect();
    super::json(&json!({ "Keys": keys }))
}

fn line(pin: &hydrant_index::Pin, names: bool) -> serde_json::Value {
    let mut line = entry(&pin.name, names);
    line["Cid"] = json!(pin.cid.to_string());
    line
}

/// Every pin as one line each, read a page at a time while the client reads. A failure of the
/// pin store ends the body with an error (the client sees a cut stream).
fn streamed(state: ApiState, names: bool, name_filter: Option<String>) -> Response {
    let pages = futures::stream::try_unfold(Some(None::<Cid>), move |cursor| {
        let state = state.clone();
        let name_filter = name_filter.clone();
        async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let page = state
                .services
                .pins
                .list_pins(after.as_ref(), MAX_LIST_PINS)
                .await
                .map_err(std::io::Error::other)?;
            let next = (page.len() == MAX_LIST_PINS).then(|| page.last().map(|p| p.cid));
            let mut body = Vec::new();
            for pin in page
                .iter()
                .filter(|p| name_filter.as_ref().is_none_or(|n| &p.name == n))
            {
                body.extend(super::json_line(&line(pin, names)));
            }
            Ok::<_, std::io::Error>(Some((bytes::Bytes::from(body), next)))
        }
    });
    let mut response = ndjson(Vec::<serde_json::Value>::new());
    *response.body_mut() = Body::from_stream(pages);
    response
}

/// `POST /api/v0/repo/gc`: deletes every CAR none of whose roots is pinned, then sweeps the
/// store (as `POST /api/v1/gc`); one `{"Key": {"/": CID}}` line per root of each deleted CAR
/// (Kubo lists every removed block; Hydrant removes whole CARs).
pub(crate) async fn repo_gc(State(state): State<ApiState>) -> Result<Response, KuboError> {
    let sweep = state.services.sweep_config(true);
    let report = crate::stores::delete::gc(&state.services, &sweep)
        .await
        .map_err(crate::http::api::delete_failed)?;
    Ok(ndjson(report.deleted.iter().flat_map(|car| {
        car.roots.iter().map(|root| json!({ "Key": { "/": root } }))
    })))
}
