//! [`Config::validate`]: every value that parses but would make the node useless or unsafe is
//! refused with the field, the value and the accepted range.

use super::{Config, ConfigError, IndexConfig, LimitsConfig, MAX_TIMEOUT_SECS, StorageConfig};

/// Most connections one HTTP listener may be configured to hold.
const MAX_LISTENER_CONNECTIONS: u32 = 1 << 20;
impl Config {
    /// Checks values that parse but would make the node useless or unsafe.
    ///
    /// # Errors
    /// The first refused value, with an explanation and the safe range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: &str| ConfigError {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if self.swarm.listen.is_empty() {
            return Err(refuse(
                "swarm.listen",
                &"[]",
                "no listen address: peers could not reach Bitswap; give at least one multiaddr",
            ));
        }
        if self.swarm.max_connections == 0 {
            return Err(refuse(
                "swarm.max_connections",
                &0,
                "zero connections would accept nothing; use at least 1 (default 1024)",
            ));
        }
        if !(1..=self.swarm.max_connections).contains(&self.swarm.max_connections_per_peer) {
            return Err(refuse(
                "swarm.max_connections_per_peer",
                &self.swarm.max_connections_per_peer,
                "use 1 to swarm.max_connections (default 4): zero accepts nothing",
            ));
        }
        if !self.api.listen.ip().is_loopback() && self.api.token_file.as_os_str().is_empty() {
            return Err(refuse(
                "api.listen",
                &self.api.listen,
                "the admin API and /metrics would be open to the network; keep api.listen on \
                 127.0.0.1/::1 or set api.token_file",
            ));
        }
        let d = &self.denylist;
        if d.reload_secs == 0 {
            return Err(refuse(
                "denylist.reload_secs",
                &0,
                "use at least 1 (default 10): 0 would never notice a changed list",
            ));
        }
        if !d.urls.is_empty() && d.fetch_secs < 60 {
            return Err(refuse(
                "denylist.fetch_secs",
                &d.fetch_secs,
                "use at least 60 (default 3600): list hosts should not be polled harder",
            ));
        }
        if let Some(url) = d
            .urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(refuse(
                "denylist.urls",
                url,
                "each URL must start with http:// or https://",
            ));
        }
        for (field, secs) in [
            (
                "gateway.request_timeout_secs",
                self.gateway.request_timeout_secs,
            ),
            ("api.request_timeout_secs", self.api.request_timeout_secs),
            (
                "api.upload_idle_timeout_secs",
                self.api.upload_idle_timeout_secs,
            ),
            (
                "gateway.header_read_timeout_secs",
                self.gateway.header_read_timeout_secs,
            ),
            (
                "api.header_read_timeout_secs",
                self.api.header_read_timeout_secs,
            ),
        ] {
            if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
                return Err(refuse(
                    field,
                    &secs,
                    "use 1 to 3600 seconds: 0 would end every request at once, and a longer \
                     wait holds a connection and its memory for a client that gave up",
                ));
            }
        }
        self.validate_gateway()?;
        validate_connections(
            ("gateway.max_connections", self.gateway.max_connections),
            (
                "gateway.max_connections_per_ip",
                self.gateway.max_connections_per_ip,
            ),
        )?;
        validate_connections(
            ("api.max_connections", self.api.max_connections),
            (
                "api.max_connections_per_ip",
                self.api.max_connections_per_ip,
            ),
        )?;
        if self.read_max_range_bytes() < hydrant_car::MAX_BLOCK_SIZE as u64 {
            return Err(refuse(
                "read.max_range_bytes",
                &self.read_max_range_bytes(),
                "must be at least the largest block, 2097152 bytes (2 MiB)",
            ));
        }
        if self.read_concurrent_reads() == 0 {
            return Err(refuse(
                "read.concurrent_reads",
                &0,
                "zero would never read a block; use at least 1 (unset: 2 for local, 8 for s3)",
            ));
        }
        self.validate_stores()?;
        if self.bitswap.max_wantlist_entries == 0 {
            return Err(refuse(
                "bitswap.max_wantlist_entries",
                &0,
                "zero would ignore every want; use at least 1 (default 8192)",
            ));
        }
        if self.bitswap.max_outstanding_bytes_per_peer < hydrant_car::MAX_BLOCK_SIZE {
            return Err(refuse(
                "bitswap.max_outstanding_bytes_per_peer",
                &self.bitswap.max_outstanding_bytes_per_peer,
                "must hold at least one 2 MiB block (2097152 bytes)",
            ));
        }
        self.validate_limits()?;
        self.validate_dht()
    }

    fn validate_gateway(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        if !(1..=MAX_TIMEOUT_SECS).contains(&g.write_timeout_secs) {
            return Err(ConfigError {
                field: "gateway.write_timeout_secs",
                value: g.write_timeout_secs.to_string(),
                reason: "use 1 to 3600 seconds (default 30): 0 would cut off every response that \
                         fills the socket, and a longer wait lets a client that stopped reading \
                         hold its memory"
                    .into(),
            });
        }
        if !(1..=65_536).contains(&g.max_requests_per_ip) {
            return Err(ConfigError {
                field: "gateway.max_requests_per_ip",
                value: g.max_requests_per_ip.to_string(),
                reason: "use 1 to 65536 (default 16): 0 would answer every request 429".into(),
            });
        }
        if let Err(reason) = g.public_multiaddr() {
            return Err(ConfigError {
                field: "gateway.public_url",
                value: g.public_url.clone().unwrap_or_default(),
                reason: format!(
                    "{reason} (e.g. https://gw.example.net or http://203.0.113.5:8080)"
                ),
            });
        }
        self.pubsub.validate()?;
        self.validate_ipni()
    }

    fn validate_ipni(&self) -> Result<(), ConfigError> {
        let i = &self.ipni;
        let refuse = |field, value: String, reason: String| ConfigError {
            field,
            value,
            reason,
        };
        for indexer in &i.indexers {
            if let Err(reason) = hydrant_ipni_publisher::announce::announce_url(indexer) {
                return Err(refuse(
                    "ipni.indexers",
                    indexer.clone(),
                    format!("{reason} (e.g. http://indexer.example:3001)"),
                ));
            }
        }
        if !(100..=600_000).contains(&i.poll_interval_ms) {
            return Err(refuse(
                "ipni.poll_interval_ms",
                i.poll_interval_ms.to_string(),
                "use 100 to 600000 (default 1000)".into(),
            ));
        }
        if i.cache_bytes > 1 << 30 {
            return Err(refuse(
                "ipni.cache_bytes",
                i.cache_bytes.to_string(),
                "use at most 1 GiB (default 16 MiB): it is held in memory".into(),
            ));
        }
        if self.gateway.listen.ip().is_unspecified()
            && i.announce_address.is_none()
            && self.gateway.public_url.is_none()
            && !i.indexers.is_empty()
        {
            return Err(refuse(
                "ipni.announce_address",
                String::new(),
                format!(
                    "the gateway listens on {} (every address): set gateway.public_url or \
                     ipni.announce_address so indexers know where to fetch the chain",
                    self.gateway.listen
                ),
            ));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: &str| ConfigError {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let b = &self.bitswap;
        for (field, value) in [
            ("bitswap.max_inbound_streams", b.max_inbound_streams),
            (
                "bitswap.max_inbound_streams_per_peer",
                b.max_inbound_streams_per_peer,
            ),
            ("bitswap.max_concurrent_lookups", b.max_concurrent_lookups),
        ] {
            if value == 0 {
                return Err(refuse(
                    field,
                    &0,
                    "zero would accept connections but answer no want; use at least 1",
                ));
            }
        }
        if b.max_inbound_streams_per_peer > b.max_inbound_streams {
            return Err(refuse(
                "bitswap.max_inbound_streams_per_peer",
                &b.max_inbound_streams_per_peer,
                "must not exceed bitswap.max_inbound_streams",
            ));
        }
        for (field, value) in [
            (
                "bitswap.inbound_idle_timeout_secs",
                b.inbound_idle_timeout_secs,
            ),
            ("bitswap.write_timeout_secs", b.write_timeout_secs),
        ] {
            if !(1..=3600).contains(&value) {
                return Err(refuse(
                    field,
                    &value,
                    "use 1 to 3600 seconds: shorter than a round trip drops every peer, longer \
                     lets a stalled peer hold its memory",
                ));
            }
        }
        if !(100..=60_000).contains(&b.outbound_idle_timeout_ms) {
            return Err(refuse(
                "bitswap.outbound_idle_timeout_ms",
                &b.outbound_idle_timeout_ms,
                "use 100 to 60000 ms (default 3000; below Helia's 5 s receive timeout)",
            ));
        }
        let l = &self.limits;
        if l.memory_budget_bytes < LimitsConfig::MIN_MEMORY_BUDGET {
            return Err(refuse(
                "limits.memory_budget_bytes",
                &l.memory_budget_bytes,
                "below one message: at least 16777216 bytes (16 MiB) are needed to read one \
                 4 MiB Bitswap message and send one 2 MiB block; default 536870912 (512 MiB)",
            ));
        }
        if !(1..=90).contains(&l.wantlists_percent) {
            return Err(refuse(
                "limits.wantlists_percent",
                &l.wantlists_percent,
                "use 1 to 90 percent (default 25): wantlists need some room, and blocks the rest",
            ));
        }
        let rest = l.memory_budget_bytes - l.wantlists_share();
        if rest < LimitsConfig::MIN_UNRESERVED {
            return Err(refuse(
                "limits.wantlists_percent",
                &l.wantlists_percent,
                "leaves too little of limits.memory_budget_bytes for the rest: the part not kept \
                 for wantlists must hold one 4 MiB Bitswap message being read and one 2 MiB \
                 block being sent, at least 12582912 bytes (12 MiB); lower the percentage or \
                 raise the budget",
            ));
        }
        if l.gateway_request_bytes < hydrant_car::MAX_BLOCK_SIZE as u64
            || l.gateway_request_bytes > rest / 2
        {
            return Err(refuse(
                "limits.gateway_request_bytes",
                &l.gateway_request_bytes,
                "use at least one 2 MiB block (2097152) and at most half of the budget the \
                 wantlists' share leaves (default 4194304)",
            ));
        }
        if l.budget_wait_ms > 60_000 {
            return Err(refuse(
                "limits.budget_wait_ms",
                &l.budget_wait_ms,
                "use 0 to 60000 ms (default 1000)",
            ));
        }
        Ok(())
    }

    fn validate_stores(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: &str| ConfigError {
            field,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        if let StorageConfig::S3(s3) = &self.storage {
            if s3.bucket.is_empty() {
                return Err(refuse(
                    "storage.bucket",
                    &"\"\"",
                    "an S3 store needs a bucket name",
                ));
            }
            if !s3.endpoint.is_empty()
                && !s3.endpoint.starts_with("http://")
                && !s3.endpoint.starts_with("https://")
            {
                return Err(refuse(
                    "storage.endpoint",
                    &s3.endpoint,
                    "must be an http:// or https:// URL, or empty for AWS S3",
                ));
            }
            if s3.request_timeout_secs == 0 || s3.connect_timeout_secs == 0 {
                return Err(refuse(
                    "storage.request_timeout_secs",
                    &s3.request_timeout_secs,
                    "request_timeout_secs and connect_timeout_secs must be at least 1",
                ));
            }
        }
        if let IndexConfig::Fjall {
            cache_bytes,
            max_open_files,
            ..
        } = self.index
        {
            if cache_bytes < 1024 * 1024 {
                return Err(refuse(
                    "index.cache_bytes",
                    &cache_bytes,
                    "use at least 1 MiB (1048576; default 32 MiB): a smaller cache holds \
                     almost no index block, and every lookup reads them again",
                ));
            }
            if !(16..=65_536).contains(&max_open_files) {
                return Err(refuse(
                    "index.max_open_files",
                    &max_open_files,
                    "use 16 to 65536 (default 128)",
                ));
            }
        }
        if let IndexConfig::Postgres(pg) = &self.index {
            if pg.url.is_empty() {
                return Err(refuse(
                    "index.url",
                    &"\"\"",
                    "a PostgreSQL index needs a connection URL",
                ));
            }
            if pg.pool_size == 0 {
                return Err(refuse(
                    "index.pool_size",
                    &0,
                    "a pool of zero connections could answer nothing; use at least 1 (default 16)",
                ));
            }
            if pg.connect_timeout_secs == 0 || pg.wait_timeout_secs == 0 {
                return Err(refuse(
                    "index.connect_timeout_secs",
                    &pg.connect_timeout_secs,
                    "connect_timeout_secs and wait_timeout_secs must be at least 1",
                ));
            }
            if !(1..=MAX_TIMEOUT_SECS).contains(&pg.statement_timeout_secs) {
                return Err(refuse(
                    "index.statement_timeout_secs",
                    &pg.statement_timeout_secs,
                    "use 1 to 3600 seconds (default 30): 0 would let a stuck query hold its \
                     pooled connection forever",
                ));
            }
        }
        let f = &self.filter;
        if f.enabled {
            if !(f.false_positive_rate > 0.0 && f.false_positive_rate <= 0.5) {
                return Err(refuse(
                    "filter.false_positive_rate",
                    &f.false_positive_rate,
                    "must be in (0, 0.5] (default 0.001)",
                ));
            }
            if f.expected_blocks == 0 {
                return Err(refuse(
                    "filter.expected_blocks",
                    &0,
                    "use at least 1 (default 100000); the filter grows as needed",
                ));
            }
            if f.poll_interval_ms < 100 {
                return Err(refuse(
                    "filter.poll_interval_ms",
                    &f.poll_interval_ms,
                    "use at least 100 ms (default 1000)",
                ));
            }
            if f.snapshot_interval_secs > 86_400 {
                return Err(refuse(
                    "filter.snapshot_interval_secs",
                    &f.snapshot_interval_secs,
                    "use 0 (only at a clean stop) to 86400 seconds (default 600)",
                ));
            }
        }
        if self.shutdown.drain_timeout_secs == 0 || self.shutdown.drain_timeout_secs > 3600 {
            return Err(refuse(
                "shutdown.drain_timeout_secs",
                &self.shutdown.drain_timeout_secs,
                "use 1 to 3600 seconds (default 10)",
            ));
        }
        Ok(())
    }

    fn validate_dht(&self) -> Result<(), ConfigError> {
        let refuse = |field, value: &dyn std::fmt::Display, reason: String| ConfigError {
            field,
            value: value.to_string(),
            reason,
        };
        let d = &self.dht;
        if !d.enabled {
            return Ok(());
        }
        let max = hydrant_dht::MAX_FLEET_SIZE;
        if d.heads == 0 || d.heads > max {
            return Err(refuse(
                "dht.heads",
                &d.heads,
                format!("use 1 to {max} heads (or dht.enabled = false to run no DHT)"),
            ));
        }
        if d.fleet() > max || d.first_head.saturating_add(d.heads) > d.fleet() {
            return Err(refuse(
                "dht.fleet_size",
                &d.fleet_size,
                format!(
                    "heads {}..{} must lie within the fleet (at most {max} heads)",
                    d.first_head,
                    u64::from(d.first_head) + u64::from(d.heads)
                ),
            ));
        }
        if let Err(e) = d.seed_bytes() {
            return Err(refuse(
                "dht.seed",
                &format!("{:?}", d.seed),
                format!("must be empty or 64 hex characters (32 bytes): {e}"),
            ));
        }
        if d.port_base != 0 && u32::from(d.port_base) + d.heads > 65_536 {
            return Err(refuse(
                "dht.port_base",
                &d.port_base,
                format!(
                    "ports {}..{} do not fit below 65536",
                    d.port_base,
                    u32::from(d.port_base) + d.heads
                ),
            ));
        }
        if d.reprovide_interval_secs == 0 || d.reprovide_interval_secs >= 48 * 3600 {
            return Err(refuse(
                "dht.reprovide_interval_secs",
                &d.reprovide_interval_secs,
                "must be between 1 and 172799: provider records expire after 48 h (default 79200, 22 h)".into(),
            ));
        }
        for addr in &d.bootstrap {
            if !matches!(
                addr.iter().last(),
                Some(libp2p::multiaddr::Protocol::P2p(_))
            ) {
                return Err(refuse(
                    "dht.bootstrap",
                    addr,
                    "every bootstrap address must end in /p2p/<peer ID>".into(),
                ));
            }
        }
        let p = &self.providers;
        if !["fjall", "memory", "postgres"].contains(&p.kind.as_str()) {
            return Err(refuse(
                "providers.kind",
                &p.kind,
                "must be \"fjall\", \"memory\" or \"postgres\"".into(),
            ));
        }
        if p.kind == "postgres" && !matches!(self.index, IndexConfig::Postgres(_)) {
            return Err(refuse(
                "providers.kind",
                &p.kind,
                "\"postgres\" keeps provider records in the index's database: set \
                 index.kind = \"postgres\" too"
                    .into(),
            ));
        }
        if p.queue_capacity == 0 || p.batch_size == 0 || p.batch_interval_ms == 0 {
            return Err(refuse(
                "providers.queue_capacity",
                &p.queue_capacity,
                "queue_capacity, batch_size and batch_interval_ms must all be at least 1".into(),
            ));
        }
        if p.batch_size > hydrant_providers::MAX_PUT_BATCH {
            return Err(refuse(
                "providers.batch_size",
                &p.batch_size,
                format!("at most {}", hydrant_providers::MAX_PUT_BATCH),
            ));
        }
        if p.kind == "memory" && p.max_records == 0 {
            return Err(refuse(
                "providers.max_records",
                &0,
                "the memory store needs room for at least 1 record".into(),
            ));
        }
        if p.gc_interval_secs == 0 {
            return Err(refuse(
                "providers.gc_interval_secs",
                &0,
                "use at least 1 second (default 600)".into(),
            ));
        }
        Ok(())
    }
}

/// Checks one listener's `max_connections` and `max_connections_per_ip` (their field names).
fn validate_connections(
    (max_field, max): (&'static str, u32),
    (per_ip_field, per_ip): (&'static str, u32),
) -> Result<(), ConfigError> {
    if !(1..=MAX_LISTENER_CONNECTIONS).contains(&max) {
        return Err(ConfigError {
            field: max_field,
            value: max.to_string(),
            reason: "use 1 to 1048576: 0 would refuse every connection".into(),
        });
    }
    if !(1..=max).contains(&per_ip) {
        return Err(ConfigError {
            field: per_ip_field,
            value: per_ip.to_string(),
            reason: format!("use 1 to {max_field} ({max}): 0 would refuse every connection"),
        });
    }
    Ok(())
}
