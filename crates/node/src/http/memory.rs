//! Where memory goes: the gateway's share of the memory budget (requests past it get 503 with
//! `Retry-After`) and `GET /api/v1/debug/memory`, a report of the memory held per subsystem so
//! that an operator can find growth without a debugger.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hydrant_budget::{BudgetStats, Grant, Holder, MemoryBudget};
use serde::Serialize;

use crate::http::slow_clients::{ClientAddr, ClientLimit, ClientSlot};
use crate::http::state::ApiState;

/// The state of [`shed`]: the budget and the bytes reserved per request.
#[derive(Clone)]
pub struct GatewayShare {
    /// The shared budget.
    pub budget: MemoryBudget,
    /// Bytes reserved per request while it is answered (`limits.gateway_request_bytes`).
    pub request_bytes: u64,
    /// Responses in progress per client address (`gateway.max_requests_per_ip`); applied when
    /// the connection's [`ClientAddr`] is known (the daemon's listener provides it).
    pub per_client: Option<Arc<ClientLimit>>,
}

/// Middleware for the gateway listener: an address with `gateway.max_requests_per_ip`
/// responses in progress is answered `429 Too Many Requests` with `Retry-After`; otherwise
/// reserves [`GatewayShare::request_bytes`] of the budget for the request until its response
/// body is finished or dropped; when the budget is full, answers `503 Service Unavailable` with
/// `Retry-After` at once (both from [`hydrant_gateway::retry_after`]).
pub async fn shed(State(share): State<GatewayShare>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(addr)| addr.0.ip());
    let slot = match (&share.per_client, client) {
        (Some(limit), Some(ip)) => match limit.try_acquire(ip) {
            Some(slot) => Some(slot),
            None => {
                return refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "{} responses to this address in progress (gateway.max_requests_per_ip): \
                         retry later\n",
                        limit.max()
                    ),
                );
            }
        },
        _ => None,
    };
    let Ok(grant) = share
        .budget
        .try_acquire(Holder::Gateway, share.request_bytes)
    else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory budget full: retry later\n".into(),
        );
    };
    next.run(request).await.map(|body| {
        Body::new(HeldBody {
            body,
            _grant: grant,
            _slot: slot,
        })
    })
}

/// A load-shedding answer: `status` with the policy's `Retry-After`
/// ([`hydrant_gateway::retry_after`]) and a one-line text body.
fn refusal(status: StatusCode, text: String) -> Response {
    let retry = hydrant_gateway::retry_after(status)
        .map(|secs| (header::RETRY_AFTER, HeaderValue::from(secs)));
    let headers: axum::http::HeaderMap = retry.into_iter().collect();
    (status, headers, text).into_response()
}

/// A response body that keeps its request's grant (and its client's slot) until it is
/// finished or dropped.
struct HeldBody {
    body: Body,
    _grant: Grant,
    _slot: Option<ClientSlot>,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The process's resident memory, from `/proc/self/status` (Linux), in bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcessMemory {
    /// Resident set size now (`VmRSS`).
    pub rss_bytes: u64,
    /// Highest resident set size since start (`VmHWM`).
    pub peak_rss_bytes: u64,
}

impl ProcessMemory {
    /// Reads `/proc/self/status`; zeros where it is not available.
    pub fn read() -> Self {
        Self::parse(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
    }

    /// Reads `/proc/<pid>/status` of another process (tests and benchmarks watch a daemon
    /// this way); zeros where it is not available.
    pub fn of(pid: u32) -> Self {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default())
    }

    fn parse(status: &str) -> Self {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |k| k * 1024)
        };
        ProcessMemory {
            rss_bytes: kib("VmRSS:"),
            peak_rss_bytes: kib("VmHWM:"),
        }
    }
}

/// `GET /api/v1/debug/memory`: memory held per subsystem, in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// The whole process, as the kernel sees it.
    pub process: ProcessMemory,
    /// The shared memory budget and what each holder has of it now (and at most).
    pub budget: BudgetStats,
    /// Caches and filters, sized by their own settings (outside the budget).
    pub caches: CacheMemory,
    /// Bounded queues: items waiting now.
    pub queues: QueueDepths,
    /// Streams and peers being served now.
    pub peers: PeerCounts,
}

/// Caches in [`MemoryReport`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheMemory {
    /// Blocks in the read cache (`read.cache_bytes` at most).
    pub read_cache_bytes: u64,
    /// Bit vectors of the presence filter (both generations during a rebuild).
    pub presence_filter_bytes: u64,
    /// The embedded index's block cache in use (0 with PostgreSQL); at most
    /// `hydrant_index::FJALL_CACHE_BYTES`.
    pub index_cache_bytes: u64,
    /// The embedded index's memtables, active and sealed (0 with PostgreSQL); each keyspace's
    /// active one is sealed at `hydrant_index::FJALL_MEMTABLE_BYTES`.
    pub index_memtable_bytes: u64,
}

/// Queues in [`MemoryReport`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueueDepths {
    /// Bitswap wants kept and waiting for a lookup (charged to the budget's
    /// `bitswap_wantlists`).
    pub bitswap_wants: u64,
    /// Provider records waiting to be written (0 without the DHT).
    pub provider_records: u64,
}

/// Peers in [`MemoryReport`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PeerCounts {
    /// Peers with Bitswap wants, lookups or answers in progress.
    pub bitswap_peers: u64,
    /// Bitswap inbound streams being read.
    pub bitswap_inbound_streams: u64,
    /// Bitswap outbound streams (peers being answered).
    pub bitswap_outbound_streams: u64,
}

impl MemoryReport {
    /// Collects the report from a running daemon's state.
    pub fn collect(state: &ApiState) -> Self {
        let services = state.services();
        let bitswap = state.bitswap.stats();
        MemoryReport {
            process: ProcessMemory::read(),
            budget: services.budget.stats(),
            caches: {
                let (index_cache_bytes, _, index_memtable_bytes) =
                    services.fjall.as_ref().map_or((0, 0, 0), |f| f.memory());
                CacheMemory {
                    read_cache_bytes: services.blockstore.stats().cache_bytes,
                    presence_filter_bytes: services
                        .filtered
                        .as_ref()
                        .map_or(0, |f| f.filter().stats().bytes),
                    index_cache_bytes,
                    index_memtable_bytes,
                }
            },
            queues: QueueDepths {
                bitswap_wants: bitswap.wants_pending,
                provider_records: state
                    .dht
                    .as_ref()
                    .map_or(0, |d| d.writer.stats().queue_depth as u64),
            },
            peers: PeerCounts {
                bitswap_peers: bitswap.peers,
                bitswap_inbound_streams: bitswap.inbound_streams,
                bitswap_outbound_streams: bitswap.outbound_streams,
            },
        }
    }
}

/// Handler of `GET /api/v1/debug/memory`.
pub async fn report(State(state): State<ApiState>) -> axum::Json<MemoryReport> {
    axum::Json(MemoryReport::collect(&state))
}
