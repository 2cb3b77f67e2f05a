//! [`DhtConfig`], the settings of the service, and [`REQUEST_CHARGE`], what an inbound
//! request holds of the memory budget.

use std::time::Duration;

use hydrant_budget::MemoryBudget;

use crate::kbucket::TableConfig;
use crate::protocol::{MAX_DECODED_BYTES, MAX_FRAME_SIZE};
use crate::query::QueryConfig;
#[cfg(doc)]
use crate::{DhtStats, ProviderLookup};

/// Settings of the service. `DhtConfig::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Routing-table settings.
    pub table: TableConfig,
    /// Lookup settings (α, k, request timeout, which also bounds probes).
    pub query: QueryConfig,
    /// Most inbound streams served at once per head; more are reset. Default 256.
    pub max_inbound_streams_per_head: usize,
    /// Most inbound streams served at once per peer and head; more are reset. Default 8.
    pub max_inbound_streams_per_peer: usize,
    /// An inbound stream without a request for this long is closed. Default 60 s.
    pub inbound_idle_timeout: Duration,
    /// Deadline of [`ProviderLookup::providers`] per GET_PROVIDERS. Default 2 s.
    pub provider_lookup_deadline: Duration,
    /// Most probes (candidates, liveness) in flight at once. Default 16.
    pub max_concurrent_probes: usize,
    /// How often candidates are taken for probing. Default 1 s.
    pub maintenance_interval: Duration,
    /// How often the liveness checks and bucket refresh run. Default 60 s (each bucket is
    /// refreshed every [`TableConfig::refresh_interval`], each peer checked every
    /// [`TableConfig::liveness_interval`]).
    pub refresh_check_interval: Duration,
    /// Most tries to find a refresh key in a bucket (about 2^(cpl+1) needed; deeper buckets
    /// are covered by the self lookups). Default 2^20.
    pub max_refresh_key_tries: u64,
    /// The memory budget shared with the other serving paths: each inbound request holds
    /// [`REQUEST_CHARGE`] bytes of it until answered; when it is full the stream is reset
    /// (counted in [`DhtStats::inbound_shed`]). Default: unlimited.
    pub budget: MemoryBudget,
}

/// Budget charged per inbound request while it is answered: the request frame and the response
/// frame, each at most [`MAX_FRAME_SIZE`], and what decoding the request allocates, at most
/// [`MAX_DECODED_BYTES`].
pub const REQUEST_CHARGE: u64 = (2 * MAX_FRAME_SIZE + MAX_DECODED_BYTES) as u64;

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            table: TableConfig::default(),
            query: QueryConfig::default(),
            max_inbound_streams_per_head: 256,
            max_inbound_streams_per_peer: 8,
            inbound_idle_timeout: Duration::from_secs(60),
            provider_lookup_deadline: Duration::from_secs(2),
            max_concurrent_probes: 16,
            maintenance_interval: Duration::from_secs(1),
            refresh_check_interval: Duration::from_secs(60),
            max_refresh_key_tries: 1 << 20,
            budget: MemoryBudget::unlimited(),
        }
    }
}
