//! PostgreSQL backends of Hydrant's storage traits, so several Hydrant replicas can share one
//! block index and one provider store.
//!
//! - [`PgIndex`] implements [`hydrant_index::BlockLookup`] and [`hydrant_index::CarCatalog`];
//! - [`PgProviderStore`] implements [`hydrant_providers::ProviderStore`];
//! - [`PgPool`] is the connection pool they share (one per process is enough), opened by
//!   [`PgPool::connect`] with a [`PoolConfig`]; opening it applies the schema migrations;
//! - [`PubSubBus`] fans pub/sub messages out to the other replicas through `LISTEN`/`NOTIFY`;
//! - [`PgError`]: what can fail while connecting or migrating.
//!
//! Both backends pass their trait's conformance suite (`tests/pg.rs`) against a real server.
//!
//! # Client and pool
//!
//! Queries go through [`tokio_postgres`] (the asynchronous client of the `rust-postgres`
//! project) with a [`deadpool_postgres`] pool: deadpool is small (no background reaper thread,
//! builds in seconds), actively maintained, and is the pool `tokio-postgres`'s own
//! documentation points to; bb8 would do as well but brings nothing more here. Connections are
//! plain (`NoTls`): use a Unix socket or a private network; TLS is not wired yet.
//!
//! Every pooled connection runs with the session's `statement_timeout` set to
//! [`PoolConfig::statement_timeout`], so a stuck query fails instead of holding its connection.
//! The statements whose time grows with a CAR's size (committing, aborting and cleaning up its
//! rows) and the migrations lift it for their own transaction (`SET LOCAL statement_timeout =
//! 0`).
//!
//! # Schema and migrations
//!
//! Every table lives in the schema named by [`PoolConfig::schema`] (created if missing; the
//! connection's `search_path` is set to it). Numbered SQL files (`migrations/NNNN_*.sql`, built
//! into the crate) are applied at start-up by [`PgPool::connect`], all in one transaction that
//! first takes `pg_advisory_xact_lock` on a key derived from the schema name: replicas starting
//! together serialize, the first applies the migrations and the others find them recorded in
//! the `schema_migrations` table (`version INT PRIMARY KEY, name TEXT, applied_at TIMESTAMPTZ`).
//! A database holding a migration newer than this build knows is refused
//! ([`PgError::SchemaTooNew`]) rather than used.
//!
//! Block index tables (migrations 1, 3, 4 and 5):
//! - `cars(key PK, id BIGINT UNIQUE, version, roots TEXT[], size, blocks, block_bytes,
//!   ingested_at, commit_seq UNIQUE)`: committed CAR records; `id` (sequence `car_ids`) is
//!   what location rows carry instead of the key;
//! - `locations(car_id BIGINT, "offset" BIGINT, length INT, multihash BYTEA,
//!   PK (multihash, car_id) INCLUDE ("offset", length))`, index on `(car_id, multihash)`:
//!   committed locations, and staged
//!   ones under their staging's id, which no `cars` row has until the commit, so lookups (which
//!   join `cars` on the id) do not see them;
//! - `stagings(car PK, id BIGINT, opened_at)`: CAR keys staged but neither committed nor
//!   aborted, each with the id its rows carry;
//! - the view `blocks(multihash, car, "offset", length)`: the layout before migration 4, kept so
//!   replicas of the previous version can still read during a rolling upgrade.
//!
//! **Row size (migration 4).** A location row used to carry its CAR key as text (73 bytes,
//! `cars/<blake3 hex>.car`). Measured on PostgreSQL 15 with 10^6 rows over 10 CARs, after
//! `VACUUM`: the old layout took 158 bytes per row on the heap plus 183 and 188 bytes in its
//! two indexes (built by random inserts), 528 in all; the new one takes 84 on the heap and 68
//! in each index (built by the migration's `CREATE INDEX`; random inserts leave B-tree pages
//! about 70 % full, so expect 80 to 90 in steady use), 220 in all. Fixed-width columns come
//! first so the row has no alignment padding. Migrating 10^6 rows took 5 s on this machine
//! (2 cores): about 10 minutes per 10^8 rows, during which replicas of the previous version
//! keep reading (their commits wait, then fail and can be retried).
//!
//! Locations are not partitioned by hash prefix: a lookup is one B-tree descent whatever the
//! table's size (depth 4 at 10^8 to 10^9 rows), and partitions would add planning cost to every
//! lookup without shrinking what a lookup reads. What does grow at 10^8 rows (BENCHMARKS.md,
//! "Scale") is the share of lookups whose index leaf and heap page are not in memory, so since
//! migration 5 the primary key carries `offset` and `length` and a lookup is an index-only scan:
//! it reads the primary key (about 90 bytes a row) and never the heap, once autovacuum has
//! marked the rows' pages all-visible (set to run after every 1 % of new rows).
//!
//! `cars.commit_seq` (migration 3) numbers commits: `commit_car` takes
//! `nextval('car_commit_seq')` while holding a transaction-level advisory lock (keyed on the
//! schema), so numbers become visible in order and [`PgIndex::commits_after`] is a gap-free
//! feed that replicas poll to keep their presence filters current.
//!
//! `stage_blocks` opens the staging (its `stagings` row and id) and hands the rows to the
//! handle's [`RowSorter`](hydrant_index::sorter::RowSorter) (16 MiB in memory, then sorted runs
//! in an unnamed temporary file); no row reaches the database before `commit_car`. The commit
//! first writes the CAR's rows in multihash order, 65,536 at a time, each batch cut in four
//! key ranges written at once on four connections with `COPY ... FROM STDIN (FORMAT binary)`
//! straight into `locations` under the staging's id: one backend inserting into the primary
//! key is CPU-bound on one core, and in key order each B-tree leaf is visited once per CAR
//! rather than once per row (BENCHMARKS.md, "Scale"). Each part's transaction holds the
//! `stagings` row `FOR SHARE`, so an abort or recovery waits for it and rows never outlive
//! their staging. The sorter keeps the last staged row of a multihash, as the trait requires;
//! should a part still break the primary key (a staging a crashed process left open, reused),
//! it is rolled back to a savepoint and written again with `INSERT ... ON CONFLICT DO UPDATE`.
//!
//! `commit_car` then runs one transaction: it deletes the `stagings` row (which also locks out a
//! concurrent abort), deletes the rows of the CAR it replaces, if any, and upserts the `cars`
//! record with the staging's id, which makes the staged rows visible. That transaction's cost
//! does not grow with the CAR (except for a replaced CAR's rows). Readers see all of it or none of it (MVCC
//! snapshot), from every replica. An abort, and a recovery, delete the staging's rows. Text keys
//! use the `"C"` collation so `list_cars` pages in byte order whatever the database's default
//! collation.
//!
//! Pins (migration 6, [`hydrant_index::PinStore`]): `pins(cid BYTEA PK, name TEXT,
//! created_at BIGINT)`, the CID in binary form.
//!
//! IPNI publishing (migration 8, [`hydrant_index::IpniStore`]): `ipni_head(only_row PK, head
//! BYTEA, ads, updated_at)` and `ipni_cars(car TEXT "C" PK, ad BYTEA)`, moved together by
//! `advance_ipni`, a compare-and-swap on `head` under `SELECT ... FOR UPDATE`. The one writer
//! holds a session-level advisory lock (keyed on `"hydrant-ipni:" + schema`) on a connection
//! taken out of the pool, so the lock ends with the lease (or the connection).
//!
//! Pub/sub between replicas (migration 9, [`PubSubBus`]): `pubsub_messages(id BIGSERIAL PK,
//! created_at, body BYTEA)`, index on `created_at`: the frames too large for a `NOTIFY`
//! payload, deleted after [`BusConfig::retention`].
//!
//! Provider records (`migrations/0002_provider_records.sql`):
//! `provider_records(key BYTEA, provider BYTEA, addrs BYTEA, expires_at BIGINT,
//! PK (key, provider))` with a B-tree index on `expires_at`.
//!
//! **Expiry choice: an index on `expires_at`, not partitions.** `gc` deletes at most
//! [`MAX_GC_BATCH`](hydrant_providers::MAX_GC_BATCH) rows per call, chosen through the
//! `expires_at` index (`WHERE expires_at <= now ORDER BY expires_at LIMIT n FOR UPDATE SKIP
//! LOCKED`, so replicas collecting at once do not block each other); its cost is that of the
//! rows it removes, never a scan of live rows. Reads filter `expires_at > now`, so an expired
//! row is never returned even before gc. Range partitions by expiry were rejected for now: a
//! unique constraint on a partitioned table must include the partition key, so the
//! `(key, provider)` upsert — which moves a record's expiry on every republish — could no longer
//! be a single `INSERT ... ON CONFLICT` and would become a delete plus insert across partitions.
//! Dropping whole partitions would be cheaper than deleting rows once the table holds hundreds
//! of millions of records; that is the upgrade path if autovacuum cannot keep up.
//!
//! # Errors
//!
//! A database error is never taken to mean "absent": every failure of a trait method comes back
//! as the trait's `Storage` error whose text names the operation and carries the server's
//! message (`"locations: query: db error: ERROR: ..."`), and an undecodable stored value is
//! `Corrupt`. Connecting and migrating fail with a typed [`PgError`].

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

mod index;
mod ipni;
mod pins;
mod providers;
mod pubsub_bus;
pub mod pubsub_wire;

pub use index::PgIndex;
pub use providers::PgProviderStore;
pub use pubsub_bus::{BusConfig, BusDrop, BusSnapshot, PubSubBus};
pub use pubsub_wire::BusMessage;

/// Settings of a [`PgPool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most connections the pool opens at once (at least 1).
    pub max_size: usize,
    /// Schema holding Hydrant's tables: ASCII letters, digits and `_`, not starting with a
    /// digit, at most 63 bytes. Created if missing. Default `"public"`.
    pub schema: String,
    /// How long a query waits for a free pooled connection before failing.
    pub wait_timeout: Duration,
    /// How long opening one connection may take before failing.
    pub connect_timeout: Duration,
    /// How long one statement may run before the server cancels it (the session's
    /// `statement_timeout`, whole milliseconds); `None` keeps the server's setting.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 16,
            schema: "public".to_owned(),
            wait_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: None,
        }
    }
}

/// Errors of [`PgPool::connect`] (and of the backends' `connect`).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection string does not parse (`postgresql://...` URL or `key=value` pairs).
    #[error("invalid PostgreSQL connection string: {0}")]
    InvalidUrl(String),
    /// [`PoolConfig::schema`] is not a plain identifier.
    #[error("invalid schema name {0:?} (ASCII letters, digits and _, at most 63 bytes)")]
    InvalidSchema(String),
    /// The pool could not be built, or no connection could be opened.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    /// Applying (or reading the state of) migration `version` failed; nothing of it was kept.
    #[error("schema migration {version} ({name}) failed: {detail}")]
    Migration {
        /// Number of the migration (0 for the bookkeeping before any migration).
        version: i32,
        /// Its name (file name without number and extension).
        name: &'static str,
        /// The server's error.
        detail: String,
    },
    /// The database holds migration `found`, newer than the newest this build knows (`known`):
    /// a newer Hydrant has upgraded it.
    #[error("database schema version {found} is newer than this build's {known}")]
    SchemaTooNew {
        /// Newest migration recorded in the database.
        found: i32,
        /// Newest migration of this build.
        known: i32,
    },
}

/// The migrations, in order: (version, name, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "block_index",
        include_str!("../migrations/0001_block_index.sql"),
    ),
    (
        2,
        "provider_records",
        include_str!("../migrations/0002_provider_records.sql"),
    ),
    (
        3,
        "presence_feed",
        include_str!("../migrations/0003_presence_feed.sql"),
    ),
    (
        4,
        "compact_locations",
        include_str!("../migrations/0004_compact_locations.sql"),
    ),
    (
        5,
        "index_only_lookups",
        include_str!("../migrations/0005_index_only_lookups.sql"),
    ),
    (6, "pins", include_str!("../migrations/0006_pins.sql")),
    (
        7,
        "deletions",
        include_str!("../migrations/0007_deletions.sql"),
    ),
    (8, "ipni", include_str!("../migrations/0008_ipni.sql")),
    (9, "pubsub", include_str!("../migrations/0009_pubsub.sql")),
];

/// Lifts `statement_timeout` for the rest of the current transaction: for statements whose
/// time grows with a CAR's size, and migrations.
const NO_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = 0";

/// Newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// A pool of connections to one PostgreSQL database and schema, migrated; cheap to clone (the
/// clones share the pool). [`PgIndex`] and [`PgProviderStore`] can share one.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    schema: String,
    /// The pooled connections' settings, for connections held outside the pool (the pub/sub
    /// bus's listener and sender); boxed, so the handle stays small.
    pg: std::sync::Arc<tokio_postgres::Config>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("schema", &self.schema)
            .field("status", &self.pool.status())
            .finish()
    }
}

impl PgPool {
    /// Opens a pool to the database at `url` (a `postgresql://user@host:port/db` URL or
    /// `host=... port=... user=... dbname=...` pairs; a `host` starting with `/` is a Unix
    /// socket directory), then applies the pending migrations (see the crate docs).
    ///
    /// # Errors
    /// [`PgError::InvalidUrl`], [`PgError::InvalidSchema`], [`PgError::Connect`] when the
    /// server cannot be reached, [`PgError::Migration`] or [`PgError::SchemaTooNew`].
    pub async fn connect(url: &str, config: &PoolConfig) -> Result<Self, PgError> {
        check_schema(&config.schema)?;
        let mut pg =
            tokio_postgres::Config::from_str(url).map_err(|e| PgError::InvalidUrl(describe(&e)))?;
        let mut options = pg.get_options().unwrap_or("").to_owned();
        write!(options, " -c search_path={}", config.schema).expect("write to String");
        if let Some(limit) = config.statement_timeout {
            // In milliseconds (the setting's unit); at least 1, since 0 means no limit.
            let ms = limit.as_millis().max(1);
            write!(options, " -c statement_timeout={ms}").expect("write to String");
        }
        pg.options(options.trim_start());
        if pg.get_application_name().is_none() {
            pg.application_name("hydrant");
        }
        pg.connect_timeout(config.connect_timeout);
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_size.max(1))
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PgError::Connect(describe(&e)))?;
        let this = Self {
            pool,
            schema: config.schema.clone(),
            pg: std::sync::Arc::new(pg),
        };
        this.migrate().await?;
        Ok(this)
    }

    /// The schema this pool works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Versions recorded in `schema_migrations`, ascending.
    ///
    /// # Errors
    /// [`PgError::Connect`] or [`PgError::Migration`] (version 0) when the table cannot be read.
    pub async fn applied_migrations(&self) -> Result<Vec<i32>, PgError> {
        let client = self.client_for_migration().await?;
        let rows = client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(|e| bookkeeping_error(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn client_for_migration(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| PgError::Connect(describe(&e)))
    }

    /// Applies the migrations not yet recorded, in one transaction under an advisory lock.
    async fn migrate(&self) -> Result<(), PgError> {
        let mut client = self.client_for_migration().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| bookkeeping_error(&e))?;
        // A migration's time grows with the data (e.g. building an index).
        tx.batch_execute(NO_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| bookkeeping_error(&e))?;
        // Serializes concurrent start-ups of replicas on this schema; released at commit.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&advisory_key(&self.schema)],
        )
        .await
        .map_err(|e| bookkeeping_error(&e))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );",
            schema = self.schema
        ))
        .await
        .map_err(|e| bookkeeping_error(&e))?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(|e| bookkeeping_error(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if let Some(&found) = applied.iter().max()
            && found > SCHEMA_VERSION
        {
            return Err(PgError::SchemaTooNew {
                found,
                known: SCHEMA_VERSION,
            });
        }
        for &(version, name, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            let failed = |e: tokio_postgres::Error| PgError::Migration {
                version,
                name,
                detail: describe(&e),
            };
            tx.batch_execute(sql).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(failed)?;
            tracing::info!(schema = %self.schema, version, name, "applied schema migration");
        }
        tx.commit().await.map_err(|e| bookkeeping_error(&e))
    }

    /// A connection of its own, outside the pool (same settings), with the task driving it.
    /// `notifications` receives the server's `NOTIFY` messages (`try_send`: when it is full
    /// they are dropped and counted in `behind`); the task ends, and the client is closed,
    /// when the connection is lost.
    pub(crate) async fn dedicated(
        &self,
        notifications: Option<(
            tokio::sync::mpsc::Sender<tokio_postgres::Notification>,
            std::sync::Arc<std::sync::atomic::AtomicU64>,
        )>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        use futures::StreamExt as _;
        let (client, mut connection) = self.pg.connect(NoTls).await?;
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if let Some((tx, behind)) = &notifications
                            && tx.try_send(n).is_err()
                        {
                            behind.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %describe(&e), "dedicated PostgreSQL connection ended");
                        break;
                    }
                }
            }
        });
        Ok(client)
    }

    /// A pooled connection, or the error text naming `what` was being done.
    pub(crate) async fn client(&self, what: &str) -> Result<deadpool_postgres::Object, String> {
        self.pool
            .get()
            .await
            .map_err(|e| format!("{what}: getting a connection: {}", describe(&e)))
    }
}

fn bookkeeping_error(e: &tokio_postgres::Error) -> PgError {
    PgError::Migration {
        version: 0,
        name: "schema_migrations",
        detail: describe(e),
    }
}

fn check_schema(schema: &str) -> Result<(), PgError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && !schema.as_bytes()[0].is_ascii_digit()
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PgError::InvalidSchema(schema.to_owned()))
    }
}

/// The advisory-lock key of a schema's migrations: FNV-1a of `"hydrant-pg:" + schema`.
fn advisory_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "hydrant-pg:".bytes().chain(schema.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// An error and its sources, joined by `": "` (tokio-postgres puts the server's message in the
/// source of its `db error`).
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for good in ["public", "hydrant_1", "_x", "T"] {
            assert!(check_schema(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a;drop", "a b", &"x".repeat(64)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (version, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i32::try_from(i).expect("few") + 1);
        }
        assert_ne!(advisory_key("a"), advisory_key("b"));
    }
}
