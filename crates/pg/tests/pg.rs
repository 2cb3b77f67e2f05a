//! Both conformance suites, replica visibility, migrations and error reporting against a real
//! PostgreSQL: a private cluster per test (`hydrant_testkit::TempPostgres`), or `HYDRANT_PG_URL`.
//! Without server binaries and without `HYDRANT_PG_URL` these tests fail with the install hint.

use std::time::Duration;

use hydrant_index::conformance::test_multihash;
use hydrant_index::{BlockLocation, BlockLookup, CarCatalog, CarRecord, IndexError, StagedBlock};
use hydrant_pg::{PgError, PgIndex, PgPool, PgProviderStore, PoolConfig, SCHEMA_VERSION};
use hydrant_providers::ProviderStore;
use hydrant_testkit::{PostgresServer, postgres_server, unique_schema};

fn server() -> PostgresServer {
    postgres_server().unwrap_or_else(|e| panic!("no PostgreSQL server for the tests: {e}"))
}

fn config(schema: &str) -> PoolConfig {
    PoolConfig {
        max_size: 4,
        schema: schema.to_owned(),
        wait_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        statement_timeout: Some(Duration::from_secs(30)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_conformance() {
    let server = server();
    let url = server.url();
    let make = || {
        let url = url.clone();
        async move {
            PgIndex::connect(&url, &config(&unique_schema("idx")))
                .await
                .expect("connect")
        }
    };
    hydrant_index::conformance::lookup_suite(make).await;
    hydrant_index::conformance::catalog_suite(make).await;
    hydrant_index::conformance::pin_suite(make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_store_conformance() {
    let server = server();
    let url = server.url();
    hydrant_providers::conformance::run_all(|| {
        let url = url.clone();
        async move {
            PgProviderStore::connect(&url, &config(&unique_schema("prov")))
                .await
                .expect("connect")
        }
    })
    .await;
}

fn record(key: &str, blocks: u64) -> CarRecord {
    CarRecord {
        key: key.to_owned(),
        version: 1,
        roots: vec!["bafkqaaa".to_owned()],
        size: 1000,
        blocks,
        block_bytes: 10 * blocks,
        ingested_at: 1_700_000_000,
    }
}

fn rows(seeds: std::ops::Range<u32>, base: u64) -> Vec<StagedBlock> {
    seeds
        .map(|seed| StagedBlock {
            multihash: test_multihash(seed),
            offset: base + u64::from(seed),
            length: 7,
        })
        .collect()
}

/// Several handles over one database, as several replicas would hold (each with its own pool,
/// started concurrently so their migrations race), see each other's committed CARs, and none
/// sees a CAR staged but not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_committed_cars_and_never_see_staged_ones() {
    let server = server();
    let url = server.url();
    let schema = unique_schema("replicas");
    let cfg = config(&schema);
    let (a, b, c) = tokio::join!(
        PgIndex::connect(&url, &cfg),
        PgIndex::connect(&url, &cfg),
        PgIndex::connect(&url, &cfg),
    );
    let replicas = [a.expect("a"), b.expect("b"), c.expect("c")];
    assert_eq!(
        replicas[0]
            .pool()
            .applied_migrations()
            .await
            .expect("migrations"),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>(),
        "concurrent start-up applied migrations twice or not at all"
    );

    // Replica 0 commits a CAR; replica 1 stages one and leaves it uncommitted.
    replicas[0]
        .stage_blocks("cars/zero.car", &rows(0..100, 1000))
        .await
        .expect("stage");
    replicas[1]
        .stage_blocks("cars/one.car", &rows(50..150, 5000))
        .await
        .expect("stage");
    for replica in &replicas {
        assert!(
            !replica
                .contains(&test_multihash(0))
                .await
                .expect("contains"),
            "a staged CAR is visible before its commit"
        );
    }
    replicas[0]
        .commit_car(&record("cars/zero.car", 100))
        .await
        .expect("commit");

    for (i, replica) in replicas.iter().enumerate() {
        assert_eq!(
            replica
                .locations(&test_multihash(5))
                .await
                .expect("locations"),
            vec![BlockLocation {
                car: "cars/zero.car".to_owned(),
                offset: 1005,
                length: 7
            }],
            "replica {i} does not see the committed CAR"
        );
        assert_eq!(
            replica
                .locations(&test_multihash(120))
                .await
                .expect("locations"),
            vec![],
            "replica {i} sees rows of a staged, uncommitted CAR"
        );
        assert_eq!(
            replica
                .locations(&test_multihash(60))
                .await
                .expect("locations")
                .len(),
            1,
            "replica {i} mixes staged rows into a committed block's locations"
        );
        assert!(replica.car("cars/one.car").await.expect("car").is_none());
        let listed: Vec<_> = replica
            .list_cars(None, 10)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(listed, vec!["cars/zero.car"], "replica {i} listing");
    }

    // Staged rows wait in the staging replica's sorter until its commit: another replica
    // cannot commit them (it would make a CAR without blocks visible), and nothing is lost.
    assert!(matches!(
        replicas[2].commit_car(&record("cars/one.car", 100)).await,
        Err(IndexError::NotStaged(_))
    ));
    assert!(
        replicas[2]
            .car("cars/one.car")
            .await
            .expect("car")
            .is_none()
    );
    replicas[1]
        .commit_car(&record("cars/one.car", 100))
        .await
        .expect("commit from the staging replica");
    for replica in &replicas {
        assert_eq!(
            replica
                .locations(&test_multihash(60))
                .await
                .expect("locations")
                .len(),
            2
        );
        assert_eq!(
            replica
                .locations_many(&[test_multihash(149)])
                .await
                .expect("many")[0],
            vec![BlockLocation {
                car: "cars/one.car".to_owned(),
                offset: 5149,
                length: 7
            }]
        );
    }
    // Abort from one replica removes a staging made by another.
    replicas[0]
        .stage_blocks("cars/two.car", &rows(200..210, 0))
        .await
        .expect("stage");
    replicas[1].abort_car("cars/two.car").await.expect("abort");
    assert!(matches!(
        replicas[2].commit_car(&record("cars/two.car", 10)).await,
        Err(IndexError::NotStaged(_))
    ));
}

/// Reconnecting applies nothing new; the schema is usable by a store and an index sharing one
/// pool; a bad schema name or URL is a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_once_and_pools_are_shared() {
    let server = server();
    let url = server.url();
    let schema = unique_schema("migr");
    let pool = PgPool::connect(&url, &config(&schema))
        .await
        .expect("connect");
    let again = PgPool::connect(&url, &config(&schema))
        .await
        .expect("reconnect");
    assert_eq!(
        again.applied_migrations().await.expect("migrations"),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let index = PgIndex::new(pool.clone());
    let store = PgProviderStore::new(pool);
    index
        .commit_car(&record("cars/empty.car", 0))
        .await
        .expect("commit");
    assert_eq!(store.count().await.expect("count").records, 0);

    assert!(matches!(
        PgPool::connect(&url, &config("bad-name")).await,
        Err(PgError::InvalidSchema(_))
    ));
    assert!(matches!(
        PgPool::connect(
            "host=/nonexistent port=1 connect_timeout=nonsense",
            &config("x")
        )
        .await,
        Err(PgError::InvalidUrl(_))
    ));
}

/// When the server goes away, reads fail with a storage error naming the operation: never an
/// empty answer ("absent"). Needs the private cluster (it stops the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_an_error_not_absence() {
    let mut server = server();
    let url = server.url();
    let Some(cluster) = server.cluster() else {
        eprintln!("HYDRANT_PG_URL is set: not stopping an external server; test skipped");
        return;
    };
    let index = PgIndex::connect(&url, &config("dead_idx"))
        .await
        .expect("connect");
    let store = PgProviderStore::connect(&url, &config("dead_prov"))
        .await
        .expect("connect");
    index
        .stage_blocks("cars/a.car", &rows(0..3, 0))
        .await
        .expect("stage");
    index
        .commit_car(&record("cars/a.car", 3))
        .await
        .expect("commit");
    assert_eq!(
        index
            .locations(&test_multihash(1))
            .await
            .expect("locations")
            .len(),
        1
    );

    cluster.stop().expect("stop the server");
    let err = index.locations(&test_multihash(1)).await;
    match err {
        Err(IndexError::Storage(text)) => assert!(text.starts_with("locations"), "{text}"),
        other => panic!("locations on a dead server: {other:?}"),
    }
    assert!(matches!(
        index.car("cars/a.car").await,
        Err(IndexError::Storage(_))
    ));
    assert!(matches!(
        store.providers(&[1, 2, 3], 0, 10).await,
        Err(hydrant_providers::ProviderError::Storage(_))
    ));
    assert!(PgPool::connect(&url, &config("dead_again")).await.is_err());
}

/// A staging left by a handle that went away (as by a crashed replica) is removed by
/// `recover` on a new handle; the last staged row of a multihash wins at commit, also across
/// `stage_blocks` calls and within one large COPY batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_after_a_lost_writer_and_last_staged_row_wins() {
    let server = server();
    let url = server.url();
    let schema = unique_schema("recover");
    {
        let crashed = PgIndex::connect(&url, &config(&schema))
            .await
            .expect("connect");
        crashed
            .stage_blocks("cars/crashed.car", &rows(0..20_000, 0))
            .await
            .expect("stage");
    }
    let index = PgIndex::connect(&url, &config(&schema))
        .await
        .expect("reconnect");
    assert_eq!(
        index.recover().await.expect("recover"),
        vec!["cars/crashed.car".to_owned()]
    );
    assert!(matches!(
        index.commit_car(&record("cars/crashed.car", 20_000)).await,
        Err(IndexError::NotStaged(_))
    ));

    let key = "cars/dups.car";
    let mut batch = rows(0..20_000, 0);
    batch.extend(rows(0..10, 100_000)); // duplicates within one batch
    index.stage_blocks(key, &batch).await.expect("stage");
    index
        .stage_blocks(key, &rows(5..6, 900_000))
        .await
        .expect("stage again"); // and across calls
    index
        .commit_car(&record(key, 20_000))
        .await
        .expect("commit");
    let offsets = |seed: u32| {
        let index = &index;
        async move {
            index
                .locations(&test_multihash(seed))
                .await
                .expect("locations")
                .into_iter()
                .map(|l| l.offset)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(offsets(3).await, vec![100_003]);
    assert_eq!(offsets(5).await, vec![900_005]);
    assert_eq!(offsets(19_999).await, vec![19_999]);
    // The recovered staging's rows are gone, not only invisible.
    assert_eq!(orphan_rows(&url, &schema).await, 0);
}

/// Rows of `locations` that belong to neither a committed CAR nor an open staging.
async fn orphan_rows(url: &str, schema: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM {schema}.locations l \
                 WHERE NOT EXISTS (SELECT 1 FROM {schema}.cars c WHERE c.id = l.car_id) \
                 AND NOT EXISTS (SELECT 1 FROM {schema}.stagings s WHERE s.id = l.car_id)"
            ),
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_feed_is_ordered_and_stale_stagings_are_recovered() {
    let server = server();
    let index = PgIndex::connect(&server.url(), &config(&unique_schema("feed")))
        .await
        .expect("connect");
    assert_eq!(index.last_commit().await.unwrap(), 0);
    let rows = |seed| {
        vec![StagedBlock {
            multihash: test_multihash(seed),
            offset: 10,
            length: 5,
        }]
    };
    let record = |key: &str| CarRecord {
        key: key.to_owned(),
        version: 1,
        roots: Vec::new(),
        size: 100,
        blocks: 1,
        block_bytes: 5,
        ingested_at: 0,
    };
    for (seed, key) in [(1, "cars/a.car"), (2, "cars/b.car"), (3, "cars/a.car")] {
        index.stage_blocks(key, &rows(seed)).await.unwrap();
        index.commit_car(&record(key)).await.unwrap();
    }
    let feed = index.commits_after(0, 100).await.unwrap();
    let keys: Vec<&str> = feed.iter().map(|(_, k)| k.as_str()).collect();
    // a.car was re-committed: it moved to the end of the feed under a new number.
    assert_eq!(keys, vec!["cars/b.car", "cars/a.car"]);
    assert!(feed[0].0 < feed[1].0);
    assert_eq!(index.last_commit().await.unwrap(), feed[1].0);
    assert!(
        index
            .commits_after(feed[1].0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    index.stage_blocks("cars/live.car", &rows(9)).await.unwrap();
    assert!(
        index
            .recover_stale(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty(),
        "a young staging was removed"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        index
            .recover_stale(Duration::from_millis(10))
            .await
            .unwrap(),
        vec!["cars/live.car"]
    );
    assert!(matches!(
        index.commit_car(&record("cars/live.car")).await,
        Err(IndexError::NotStaged(_))
    ));
}

/// `statement_timeout` cancels a query stuck behind a lock (an error, never "absent"), while
/// `commit_car`, whose time grows with the CAR, waits the lock out under the same setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_cuts_stuck_reads_but_not_commits() {
    let server = server();
    let url = server.url();
    let schema = unique_schema("timeout");
    let cfg = PoolConfig {
        statement_timeout: Some(Duration::from_millis(300)),
        ..config(&schema)
    };
    let index = PgIndex::connect(&url, &cfg).await.expect("connect");
    index
        .stage_blocks("cars/slow.car", &rows(0..10, 0))
        .await
        .expect("stage");

    // Another session holds every table of the schema locked for 1.5 s.
    let (mut locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("locker connects");
    tokio::spawn(connection);
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let release = tokio::spawn(async move {
        let tx = locker.transaction().await.expect("begin");
        tx.batch_execute(&format!(
            "LOCK TABLE {schema}.cars, {schema}.locations, {schema}.stagings \
             IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .expect("lock");
        locked.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tx.commit().await.expect("release");
    });
    is_locked.await.unwrap();

    let started = std::time::Instant::now();
    let err = index
        .locations(&test_multihash(1))
        .await
        .expect_err("a read stuck behind the lock fails");
    assert!(
        matches!(&err, IndexError::Storage(text) if text.contains("statement timeout")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "cut at 300 ms"
    );

    index
        .commit_car(&record("cars/slow.car", 10))
        .await
        .expect("the commit waits for the lock instead of timing out");
    release.await.unwrap();
    assert_eq!(
        index
            .locations(&test_multihash(1))
            .await
            .expect("read")
            .len(),
        1
    );
}

/// The migrations of the older builds the migration tests start from: (version, name, SQL).
const OLD_MIGRATIONS: [(i32, &str, &str); 4] = [
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
];

/// A client whose `search_path` is the new schema `schema`, holding what `PgPool::connect` of
/// a build whose newest migration is `version` created there.
async fn database_at(url: &str, schema: &str, version: i32) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema};
             CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now());"
        ))
        .await
        .expect("schema");
    for (v, name, sql) in OLD_MIGRATIONS.iter().filter(|m| m.0 <= version) {
        client.batch_execute(sql).await.expect(name);
        client
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[v, name],
            )
            .await
            .expect("recorded");
    }
    client
}

/// A database created by the schema before migration 4 (CAR keys as text in every `blocks` row),
/// holding committed CARs (one committed twice, one empty) and an open staging, is migrated on
/// connect: every location, CAR record, CAR multihash listing and feed position reads the same
/// as before; the open staging is gone; the old layout still reads through the `blocks` view,
/// while old-style writes fail; and the migrated index takes new and replacing commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_4_keeps_every_location_of_a_version_3_database() {
    let server = server();
    let url = server.url();
    let schema = unique_schema("migr4");
    let client = database_at(&url, &schema, 3).await;
    // Rows as the previous version's commit_car wrote them: cars/b.car committed twice (the
    // second commit replaced its rows), cars/empty.car without blocks, cars/open.car staged.
    let mut expected: Vec<(u32, &str, u64)> = Vec::new();
    for (key, seeds, base) in [
        ("cars/a.car", 0..300, 1000),
        ("cars/b.car", 0..10, 1),
        ("cars/b.car", 200..500, 7000),
        ("cars/empty.car", 0..0, 0),
    ] {
        client
            .execute("DELETE FROM blocks WHERE car = $1", &[&key])
            .await
            .unwrap();
        for seed in seeds.clone() {
            let offset = i64::try_from(base + u64::from(seed)).unwrap();
            client
                .execute(
                    "INSERT INTO blocks (multihash, car, \"offset\", length) \
                     VALUES ($1, $2, $3, 7)",
                    &[&test_multihash(seed).to_bytes(), &key, &offset],
                )
                .await
                .unwrap();
        }
        expected.retain(|(_, k, _)| *k != key);
        expected.extend(seeds.map(|s| (s, key, base + u64::from(s))));
        let blocks = i64::try_from(expected.iter().filter(|(_, k, _)| *k == key).count()).unwrap();
        client
            .execute(
                "INSERT INTO cars (key, version, roots, size, blocks, block_bytes, ingested_at, \
                     commit_seq) \
                 VALUES ($1, 1, '{bafkqaaa}', 1000, $2, 0, 5, nextval('car_commit_seq')) \
                 ON CONFLICT (key) DO UPDATE SET blocks = EXCLUDED.blocks, \
                     commit_seq = EXCLUDED.commit_seq",
                &[&key, &blocks],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             INSERT INTO stagings (car) VALUES ('cars/open.car');
             INSERT INTO staged_blocks (car, multihash, \"offset\", length)
                 VALUES ('cars/open.car', '\\x1220{}', 1, 1);",
            "ab".repeat(32)
        ))
        .await
        .unwrap();

    let index = PgIndex::connect(&url, &config(&schema))
        .await
        .expect("migrating connect");
    assert_eq!(
        index.pool().applied_migrations().await.unwrap(),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    for seed in 0..520 {
        let mut want: Vec<BlockLocation> = expected
            .iter()
            .filter(|(s, _, _)| *s == seed)
            .map(|&(_, car, offset)| BlockLocation {
                car: car.to_owned(),
                offset,
                length: 7,
            })
            .collect();
        want.sort_by(|a, b| a.car.cmp(&b.car));
        assert_eq!(
            index.locations(&test_multihash(seed)).await.unwrap(),
            want,
            "seed {seed}"
        );
    }
    let listed = index.list_cars(None, 10).await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["cars/a.car", "cars/b.car", "cars/empty.car"]);
    assert_eq!(listed[1].blocks, 300);
    assert_eq!(listed[1].ingested_at, 5);
    let b_multihashes = index
        .car_multihashes("cars/b.car", None, 1000)
        .await
        .unwrap();
    let mut want: Vec<_> = (200..500).map(test_multihash).collect();
    want.sort_by_key(|m| m.to_bytes());
    assert_eq!(b_multihashes, want);
    let feed = index.commits_after(0, 10).await.unwrap();
    let feed_keys: Vec<&str> = feed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(feed_keys, ["cars/a.car", "cars/b.car", "cars/empty.car"]);
    assert!(
        index.recover().await.unwrap().is_empty(),
        "open staging kept"
    );

    // The previous version's reads still work; its writes fail rather than go astray.
    client
        .batch_execute(&format!("SET search_path = {schema}"))
        .await
        .unwrap();
    let old_read = client
        .query(
            "SELECT car, \"offset\" FROM blocks WHERE multihash = $1 ORDER BY car",
            &[&test_multihash(250).to_bytes()],
        )
        .await
        .expect("old read through the view");
    assert_eq!(old_read.len(), 2);
    assert!(
        client
            .execute("DELETE FROM blocks WHERE car = 'cars/a.car'", &[])
            .await
            .is_err()
    );
    assert!(
        client
            .execute(
                "INSERT INTO staged_blocks (car, multihash, \"offset\", length) \
                 VALUES ('x', '\\x00', 0, 0)",
                &[]
            )
            .await
            .is_err()
    );

    // New commits, and a migrated CAR replaced, keep its id and drop its old rows.
    index
        .stage_blocks("cars/a.car", &rows(1000..1010, 0))
        .await
        .unwrap();
    index.commit_car(&record("cars/a.car", 10)).await.unwrap();
    index
        .stage_blocks("cars/new.car", &rows(0..5, 50))
        .await
        .unwrap();
    index.commit_car(&record("cars/new.car", 5)).await.unwrap();
    assert_eq!(
        index.locations(&test_multihash(1)).await.unwrap(),
        vec![BlockLocation {
            car: "cars/new.car".into(),
            offset: 51,
            length: 7
        }],
        "cars/a.car's migrated rows were not replaced"
    );
    assert_eq!(
        index.locations(&test_multihash(1005)).await.unwrap().len(),
        1
    );
    assert_eq!(
        index
            .car_multihashes("cars/a.car", None, 1000)
            .await
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        orphan_rows(&url, &schema).await,
        0,
        "replaced rows left behind"
    );
}

/// A database created by the schema of migration 4, holding committed CARs, is migrated on
/// connect to migration 5: every location reads the same; the primary key is still unique on
/// `(multihash, car_id)` (a batch that repeats a multihash is still upserted) and now carries
/// `offset` and `length`, so that once vacuumed a lookup is an index-only scan that reads no
/// heap page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_5_makes_lookups_index_only_on_a_version_4_database() {
    let server = server();
    let url = server.url();
    let schema = unique_schema("migr5");
    let client = database_at(&url, &schema, 4).await;
    // Two CARs committed by a version-4 replica; seeds 100..200 are in both.
    for (key, seeds, base) in [("cars/a.car", 0..200, 1000), ("cars/b.car", 100..300, 5000)] {
        client
            .execute(
                "INSERT INTO cars (key, version, roots, size, blocks, block_bytes, ingested_at, \
                     commit_seq) \
                 VALUES ($1, 1, '{bafkqaaa}', 1000, 200, 0, 5, nextval('car_commit_seq'))",
                &[&key],
            )
            .await
            .unwrap();
        for seed in seeds {
            let offset = i64::from(base + seed);
            client
                .execute(
                    "INSERT INTO locations (car_id, \"offset\", length, multihash) \
                     SELECT id, $2, 7, $3 FROM cars WHERE key = $1",
                    &[&key, &offset, &test_multihash(seed).to_bytes()],
                )
                .await
                .unwrap();
        }
    }

    let index = PgIndex::connect(&url, &config(&schema))
        .await
        .expect("migrating connect");
    assert_eq!(
        index.pool().applied_migrations().await.unwrap(),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    for seed in 0..300 {
        let mut want = Vec::new();
        if seed < 200 {
            want.push(BlockLocation {
                car: "cars/a.car".into(),
                offset: 1000 + u64::from(seed),
                length: 7,
            });
        }
        if seed >= 100 {
            want.push(BlockLocation {
                car: "cars/b.car".into(),
                offset: 5000 + u64::from(seed),
                length: 7,
            });
        }
        assert_eq!(
            index.locations(&test_multihash(seed)).await.unwrap(),
            want,
            "seed {seed}"
        );
    }
    // The primary key: unique on two columns, carrying two more.
    let shape = client
        .query_one(
            "SELECT i.indisunique, i.indnkeyatts::int, i.indnatts::int \
             FROM pg_index i JOIN pg_constraint c ON c.conindid = i.indexrelid \
             WHERE c.conname = 'locations_pkey' AND c.connamespace = $1::text::regnamespace",
            &[&schema],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            shape.get::<_, bool>(0),
            shape.get::<_, i32>(1),
            shape.get::<_, i32>(2)
        ),
        (true, 2, 4)
    );
    // Still the conflict target of a batch that repeats a multihash: the last row wins.
    let mut repeated = rows(400..410, 0);
    repeated.extend(rows(400..401, 90));
    index.stage_blocks("cars/c.car", &repeated).await.unwrap();
    index.commit_car(&record("cars/c.car", 10)).await.unwrap();
    assert_eq!(
        index.locations(&test_multihash(400)).await.unwrap(),
        vec![BlockLocation {
            car: "cars/c.car".into(),
            offset: 490,
            length: 7
        }]
    );
    // Once vacuumed, the lookup reads the primary key only (a table this small would be read
    // whole, hence the planner settings).
    client
        .batch_execute(&format!("VACUUM ANALYZE {schema}.locations"))
        .await
        .unwrap();
    client
        .batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        .await
        .unwrap();
    let plan = client
        .query(
            &format!(
                "EXPLAIN (ANALYZE, COSTS OFF) SELECT c.key, l.\"offset\", l.length \
                 FROM {schema}.locations l JOIN {schema}.cars c ON c.id = l.car_id \
                 WHERE l.multihash = $1"
            ),
            &[&test_multihash(150).to_bytes()],
        )
        .await
        .unwrap();
    let plan: Vec<String> = plan.iter().map(|r| r.get(0)).collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Only Scan using locations_pkey") && plan.contains("Heap Fetches: 0"),
        "{plan}"
    );
}
