//! [`PgProviderStore`]: provider records in PostgreSQL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use hydrant_providers::{
    Cursor, MAX_GC_BATCH, MAX_LIST_PAGE, MAX_LIST_SCAN, MAX_PROVIDERS, MAX_PROVIDERS_SCAN,
    MAX_PUT_BATCH, Multiaddr, Page, PeerId, ProviderError, ProviderRecord, ProviderStore,
    RecordCount, check_key, normalized_addrs,
};
use tokio_postgres::Row;

use crate::{PgError, PgPool, PoolConfig, describe};

/// Up to this many rows (by the statistics' estimate), [`ProviderStore::count`] counts exactly;
/// above it returns the estimate (`exact: false`) instead of scanning the table.
pub const EXACT_COUNT_UP_TO: i64 = 100_000;

/// The [`ProviderStore`] in a PostgreSQL database: table `provider_records`, primary key
/// `(key, provider)`, expiry through an index on `expires_at` (see the crate docs for why not
/// partitions). Handles of several replicas over one database share the records.
#[derive(Debug, Clone)]
pub struct PgProviderStore {
    pool: PgPool,
}

impl PgProviderStore {
    /// Opens a pool to `url` with `config` and migrates the schema; see [`PgPool::connect`].
    ///
    /// # Errors
    /// As [`PgPool::connect`].
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, PgError> {
        Ok(Self::new(PgPool::connect(url, config).await?))
    }

    /// A store over an already opened (and migrated) pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool this store uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn storage(what: &str, err: &tokio_postgres::Error) -> ProviderError {
    ProviderError::Storage(format!("{what}: {}", describe(err)))
}

/// Seconds since the Unix epoch as a BIGINT (times past 2^63-1 s saturate).
fn seconds(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn usize_param(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Addrs as stored: each a 2-byte big-endian length and the binary multiaddr (already
/// normalized, so every one is at most `MAX_ADDR_LEN` bytes).
fn encode_addrs(addrs: &[Multiaddr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(addrs.iter().map(|a| a.len() + 2).sum());
    for addr in addrs {
        let len = u16::try_from(addr.len()).expect("normalized addrs are short");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&addr.to_vec());
    }
    out
}

fn decode_addrs(
    mut bytes: &[u8],
    what: &dyn Fn() -> String,
) -> Result<Vec<Multiaddr>, ProviderError> {
    let corrupt = |detail: String| ProviderError::Corrupt {
        what: what(),
        detail,
    };
    let mut addrs = Vec::new();
    while !bytes.is_empty() {
        let Some((len, rest)) = bytes.split_first_chunk::<2>() else {
            return Err(corrupt("truncated addr length".to_owned()));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(corrupt("truncated addr".to_owned()));
        }
        let (addr, rest) = rest.split_at(len);
        addrs.push(
            Multiaddr::try_from(addr.to_vec())
                .map_err(|e| corrupt(format!("bad multiaddr: {e}")))?,
        );
        bytes = rest;
    }
    Ok(addrs)
}

/// A row of `key, provider, addrs, expires_at` (with `key` given when the query did not select
/// it).
fn record(row: &Row, key: Option<&[u8]>) -> Result<ProviderRecord, ProviderError> {
    let key: Vec<u8> = match key {
        Some(key) => key.to_vec(),
        None => row.get("key"),
    };
    let provider_bytes: Vec<u8> = row.get("provider");
    let what = || {
        format!(
            "provider record (key {}, provider {})",
            hex(&key),
            hex(&provider_bytes)
        )
    };
    let provider = PeerId::from_bytes(&provider_bytes).map_err(|e| ProviderError::Corrupt {
        what: what(),
        detail: format!("bad peer ID: {e}"),
    })?;
    let expires_at: i64 = row.get("expires_at");
    let expires_at = u64::try_from(expires_at).map_err(|_| ProviderError::Corrupt {
        what: what(),
        detail: format!("negative expiry {expires_at}"),
    })?;
    let addrs = decode_addrs(row.get("addrs"), &what)?;
    Ok(ProviderRecord {
        key,
        provider,
        addrs,
        expires_at,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Columns of one [`ProviderStore::list`] page: the scanned rows (at most `MAX_LIST_SCAN`
/// after the cursor, in key order) numbered by how many live rows precede them inclusive
/// (`live_upto`), and how many were scanned (`scanned`). The caller keeps rows with
/// `live_upto <= limit`.
fn list_sql(with_cursor: bool) -> String {
    let (cursor, now, limit) = if with_cursor {
        ("WHERE (key, provider) > ($1, $2)", "$3", "$4")
    } else {
        ("", "$1", "$2")
    };
    format!(
        "SELECT key, provider, addrs, expires_at, scanned FROM ( \
           SELECT s.*, \
             count(*) FILTER (WHERE expires_at > {now}) OVER w AS live_upto, \
             count(*) OVER () AS scanned \
           FROM (SELECT key, provider, addrs, expires_at FROM provider_records {cursor} \
                 ORDER BY key, provider LIMIT {MAX_LIST_SCAN}) AS s \
           WINDOW w AS (ORDER BY key, provider ROWS UNBOUNDED PRECEDING) \
         ) AS t WHERE live_upto <= {limit} ORDER BY key, provider"
    )
}

#[async_trait]
impl ProviderStore for PgProviderStore {
    async fn put_batch(&self, records: &[ProviderRecord]) -> Result<(), ProviderError> {
        const WHAT: &str = "put_batch";
        if records.len() > MAX_PUT_BATCH {
            return Err(ProviderError::BatchTooLarge { len: records.len() });
        }
        records.iter().try_for_each(|r| check_key(&r.key))?;
        // Last record of a (key, provider) wins; one statement may not update a row twice. The
        // map also sorts the rows, so concurrent batches lock shared rows in the same order.
        let mut latest: BTreeMap<(&[u8], Vec<u8>), &ProviderRecord> = BTreeMap::new();
        for r in records {
            latest.insert((&r.key, r.provider.to_bytes()), r);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(latest.len());
        let mut providers = Vec::with_capacity(latest.len());
        let mut addrs = Vec::with_capacity(latest.len());
        let mut expiries = Vec::with_capacity(latest.len());
        for ((key, provider), r) in latest {
            keys.push(key.to_vec());
            providers.push(provider);
            addrs.push(encode_addrs(&normalized_addrs(r.addrs.clone())));
            expiries.push(seconds(r.expires_at));
        }
        let client = self
            .pool
            .client(WHAT)
            .await
            .map_err(ProviderError::Storage)?;
        let statement = client
            .prepare_cached(
                "INSERT INTO provider_records (key, provider, addrs, expires_at) \
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::int8[]) \
                 ON CONFLICT (key, provider) DO UPDATE \
                 SET addrs = EXCLUDED.addrs, expires_at = EXCLUDED.expires_at",
            )
            .await
            .map_err(|e| storage(WHAT, &e))?;
        client
            .execute(&statement, &[&keys, &providers, &addrs, &expiries])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(())
    }

    async fn providers(
        &self,
        key: &[u8],
        now: u64,
        limit: usize,
    ) -> Result<Vec<ProviderRecord>, ProviderError> {
        const WHAT: &str = "providers";
        check_key(key)?;
        let limit = limit.min(MAX_PROVIDERS);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self
            .pool
            .client(WHAT)
            .await
            .map_err(ProviderError::Storage)?;
        // The inner LIMIT bounds the rows examined (expired ones included) to
        // MAX_PROVIDERS_SCAN; the outer filter drops the expired.
        let statement = client
            .prepare_cached(&format!(
                "SELECT provider, addrs, expires_at FROM ( \
                   SELECT provider, addrs, expires_at FROM provider_records \
                   WHERE key = $1 ORDER BY provider LIMIT {MAX_PROVIDERS_SCAN} \
                 ) AS s WHERE expires_at > $2 ORDER BY provider LIMIT $3"
            ))
            .await
            .map_err(|e| storage(WHAT, &e))?;
        client
            .query(&statement, &[&key, &seconds(now), &usize_param(limit)])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .iter()
            .map(|row| record(row, Some(key)))
            .collect()
    }

    async fn list(
        &self,
        after: Option<&Cursor>,
        now: u64,
        limit: usize,
    ) -> Result<Page, ProviderError> {
        const WHAT: &str = "list";
        let limit = usize_param(limit.clamp(1, MAX_LIST_PAGE));
        let client = self
            .pool
            .client(WHAT)
            .await
            .map_err(ProviderError::Storage)?;
        let statement = client
            .prepare_cached(&list_sql(after.is_some()))
            .await
            .map_err(|e| storage(WHAT, &e))?;
        let now = seconds(now);
        let rows = match after {
            Some(cursor) => {
                let provider = cursor.provider.to_bytes();
                client
                    .query(&statement, &[&cursor.key, &provider, &now, &limit])
                    .await
            }
            None => client.query(&statement, &[&now, &limit]).await,
        }
        .map_err(|e| storage(WHAT, &e))?;
        let scanned = rows.first().map_or(0, |r| r.get::<_, i64>("scanned"));
        let mut examined = Vec::with_capacity(rows.len());
        for row in &rows {
            examined.push(record(row, None)?);
        }
        // More to list when a live row beyond this page was scanned, or the scan hit its bound.
        let more = usize_param(examined.len()) < scanned || scanned >= usize_param(MAX_LIST_SCAN);
        let next = if more {
            examined.last().map(ProviderRecord::cursor)
        } else {
            None
        };
        let records = examined
            .into_iter()
            .filter(|r| seconds(r.expires_at) > now)
            .collect();
        Ok(Page { records, next })
    }

    async fn gc(&self, now: u64, max: usize) -> Result<usize, ProviderError> {
        const WHAT: &str = "gc";
        let max = max.min(MAX_GC_BATCH);
        if max == 0 {
            return Ok(0);
        }
        let client = self
            .pool
            .client(WHAT)
            .await
            .map_err(ProviderError::Storage)?;
        // Reads only the expired end of the expires_at index. SKIP LOCKED: rows being upserted
        // (maybe refreshed) or collected by another replica right now are left for later.
        let statement = client
            .prepare_cached(
                "WITH doomed AS ( \
                   SELECT key, provider FROM provider_records WHERE expires_at <= $1 \
                   ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED \
                 ) \
                 DELETE FROM provider_records AS p USING doomed AS d \
                 WHERE p.key = d.key AND p.provider = d.provider",
            )
            .await
            .map_err(|e| storage(WHAT, &e))?;
        let removed = client
            .execute(&statement, &[&seconds(now), &usize_param(max)])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }

    async fn count(&self) -> Result<RecordCount, ProviderError> {
        const WHAT: &str = "count";
        let client = self
            .pool
            .client(WHAT)
            .await
            .map_err(ProviderError::Storage)?;
        // The statistics' running estimate of live tuples (no scan); small tables are counted.
        let estimate: Option<i64> = client
            .query_opt(
                "SELECT n_live_tup FROM pg_stat_user_tables \
                 WHERE relid = 'provider_records'::regclass",
                &[],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?
            .map(|row| row.get(0));
        match estimate {
            Some(estimate) if estimate > EXACT_COUNT_UP_TO => Ok(RecordCount {
                records: u64::try_from(estimate).unwrap_or(0),
                exact: false,
            }),
            _ => {
                let exact: i64 = client
                    .query_one("SELECT count(*) FROM provider_records", &[])
                    .await
                    .map_err(|e| storage(WHAT, &e))?
                    .get(0);
                Ok(RecordCount {
                    records: u64::try_from(exact).unwrap_or(0),
                    exact: true,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addrs_round_trip() {
        let addrs: Vec<Multiaddr> = vec![
            "/ip4/10.0.0.1/tcp/4001".parse().expect("addr"),
            "/ip6/::1/udp/4001/quic-v1".parse().expect("addr"),
        ];
        let what = || "test".to_owned();
        assert_eq!(
            decode_addrs(&encode_addrs(&addrs), &what).expect("decode"),
            addrs
        );
        assert!(decode_addrs(&[], &what).expect("empty").is_empty());
        assert!(matches!(
            decode_addrs(&[0, 9, 1], &what),
            Err(ProviderError::Corrupt { .. })
        ));
    }
}
