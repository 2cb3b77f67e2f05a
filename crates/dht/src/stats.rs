//! [`DhtStats`]: the service's counters, read by the node's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(doc)]
use crate::{MessageType, ProviderLookup, QueryConfig, RoutingTable};

/// Counters for metrics. Per-type arrays are indexed by [`MessageType::index`].
#[derive(Debug, Default)]
pub struct DhtStats {
    /// Peers in the routing table.
    pub routing_table_size: AtomicU64,
    /// Inbound requests answered with what was asked (providers / value found, or FIND_NODE,
    /// ADD_PROVIDER, PUT_VALUE, PING done).
    pub inbound_ok: [AtomicU64; 6],
    /// Inbound GET_PROVIDERS / GET_VALUE answered with closer peers only, nothing found.
    pub inbound_not_found: [AtomicU64; 6],
    /// Inbound GET_PROVIDERS whose [`ProviderLookup`] failed or missed its deadline (answered
    /// with closer peers only).
    pub inbound_error: [AtomicU64; 6],
    /// Inbound requests refused (stream closed without answer): ADD_PROVIDER not from the
    /// provider or with a key that is no multihash, PUT_VALUE refused by the store.
    pub inbound_refused: [AtomicU64; 6],
    /// Inbound messages that did not decode or were too large.
    pub inbound_invalid: AtomicU64,
    /// Inbound requests not answered (stream reset) because the memory budget was full.
    pub inbound_shed: AtomicU64,
    /// Inbound streams reset because of the stream limits.
    pub streams_refused: AtomicU64,
    /// ADD_PROVIDER records the sink dropped.
    pub providers_dropped: AtomicU64,
    /// Probes sent (candidates and liveness).
    pub probes: AtomicU64,
    /// Probes that failed.
    pub probe_failures: AtomicU64,
    /// Peers added to the table.
    pub admissions: AtomicU64,
    /// Verified peers not added (diversity, full bucket, no addresses).
    pub rejections: AtomicU64,
    /// Peers removed from the table.
    pub evictions: AtomicU64,
    /// Outbound requests sent.
    pub outbound_requests: AtomicU64,
    /// Outbound requests failed.
    pub outbound_failures: AtomicU64,
    /// Lookup requests that stalled (unanswered within the stall timeout; their peer became
    /// a suspect, see [`RoutingTable::mark_suspect`]).
    pub stalled_requests: AtomicU64,
    /// Peers named in lookup answers that were not asked because they are suspects.
    pub suspects_skipped: AtomicU64,
    /// The current stall timeout of lookup requests in milliseconds (a gauge; 0 until the
    /// first answer, when [`QueryConfig::stall_timeout`] is used).
    pub stall_timeout_ms: AtomicU64,
}

/// Adds one to `counter`.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
