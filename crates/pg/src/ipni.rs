//! [`IpniStore`] on PostgreSQL: the `ipni_head` and `ipni_cars` tables (migration 8), shared by
//! every replica; the writer lease is a session-level advisory lock.

use async_trait::async_trait;
use cid::Cid;
use hydrant_index::{
    IndexError, IpniChanges, IpniHead, IpniStore, IpniWriterLease, MAX_LIST_IPNI_CARS,
};

use crate::PgIndex;
use crate::index::storage;

/// The advisory-lock key of the IPNI writer: FNV-1a of `"hydrant-ipni:" + schema`.
fn writer_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "hydrant-ipni:".bytes().chain(schema.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn to_i64(what: &str, v: u64) -> Result<i64, IndexError> {
    i64::try_from(v).map_err(|_| IndexError::Storage(format!("{what}: {v} exceeds 2^63-1")))
}

#[async_trait]
impl IpniStore for PgIndex {
    async fn ipni_head(&self) -> Result<Option<IpniHead>, IndexError> {
        const WHAT: &str = "ipni_head";
        let client = self.pool().client(WHAT).await.map_err(IndexError::Storage)?;
        let row = client
            .query_opt("SELECT head, ads, updated_at FROM ipni_head", &[])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        row.map(|row| {
            let head: Vec<u8> = row.get(0);
            let (ads, at): (i64, i64) = (row.get(1), row.get(2));
            Ok(IpniHead {
                head: Cid::try_from(head.as_slice()).map_err(|e| IndexError::Corrupt {
                    what: "IPNI head".into(),
                    detail: e.to_string(),
                })?,
                ads: ads.max(0) as u64,
                updated_at: at.max(0) as u64,
            })
        })
        .transpose()
    }

    async fn ipni_cars(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, IndexError> {
        const WHAT: &str = "ipni_cars";
        let limit = limit.min(MAX_LIST_IPNI_CARS) as i64;
        let client = self.pool().client(WHAT).await.map_err(IndexError::Storage)?;
        let rows = match after {
            Some(after) => client
                .query(
                    "SELECT car FROM ipni_cars WHERE car > $1 ORDER BY car LIMIT $2",
                    &[&after, &limit],
                )
                .await,
            None => {
                client
                    .query("SELECT car FROM ipni_cars ORDER BY car LIMIT $1", &[&limit])
                    .await
            }
        }
        .map_err(|e| storage(WHAT, &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn advance_ipni(
        &self,
        expected: Option<&Cid>,
        next: &IpniHead,
        changes: &IpniChanges,
    ) -> Result<bool, IndexError> {
        const WHAT: &str = "advance_ipni";
        let (ads, at) = (to_i64(WHAT, next.ads)?, to_i64(WHAT, next.updated_at)?);
        let mut client = self.pool().client(WHAT).await.map_err(IndexError::Storage)?;
        let tx = client.transaction().await.map_err(|e| storage(WHAT, &e))?;
        let fail = |e: tokio_postgres::Error| storage(WHAT, &e);
        // The compare: the row is locked until the commit, so two writers serialize here and
        // the second finds the head moved.
        let current: Option<Vec<u8>> = tx
            .query_opt("SELECT head FROM ipni_head FOR UPDATE", &[])
            .await
            .map_err(fail)?
            .map(|r| r.get(0));
        if current != expected.map(Cid::to_bytes) {
            return Ok(false);
        }
        let moved = tx
            .execute(
                "INSERT INTO ipni_head (head, ads, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (only_row) DO UPDATE SET head = EXCLUDED.head, ads = EXCLUDED.ads, \
                 updated_at = EXCLUDED.updated_at WHERE ipni_head.head = $4",
                &[&next.head.to_bytes(), &ads, &at, &current.unwrap_or_default()],
            )
            .await
            .map_err(fail)?;
        if moved != 1 {
            // A first head inserted concurrently by another writer.
            return Ok(false);
        }
        if !changes.added.is_empty() {
            let (cars, ads): (Vec<&str>, Vec<Vec<u8>>) = changes
                .added
                .iter()
                .map(|(car, ad)| (car.as_str(), ad.to_bytes()))
                .unzip();
            tx.execute(
                "INSERT INTO ipni_cars (car, ad) SELECT * FROM UNNEST($1::text[], $2::bytea[]) \
                 ON CONFLICT (car) DO UPDATE SET ad = EXCLUDED.ad",
                &[&cars, &ads],
            )
            .await
            .map_err(fail)?;
        }
        if !changes.removed.is_empty() {
            tx.execute(
                "DELETE FROM ipni_cars WHERE car = ANY($1::text[])",
                &[&changes.removed],
            )
            .await
            .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(true)
    }

    async fn catalogue_version(&self) -> Result<u64, IndexError> {
        const WHAT: &str = "catalogue_version";
        let client = self.pool().client(WHAT).await.map_err(IndexError::Storage)?;
        // Both only grow, and each commit or deletion grows one: their sum moves on every
        // change (MAX(commit_seq) would not: deleting the newest CAR lowers it).
        let row = client
            .query_one(
                "SELECT (SELECT last_value FROM car_commit_seq) + (SELECT seq FROM car_deletions)",
                &[],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn try_ipni_writer(&self) -> Result<Option<IpniWriterLease>, IndexError> {
        const WHAT: &str = "try_ipni_writer";
        let client = self.pool().client(WHAT).await.map_err(IndexError::Storage)?;
        let key = writer_key(self.pool().schema());
        let held: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| storage(WHAT, &e))?
            .get(0);
        if !held {
            return Ok(None);
        }
        // Out of the pool: the session (and the lock) ends when the lease is dropped, instead
        // of going back to the pool still holding the lock.
        Ok(Some(Box::new(deadpool_postgres::Object::take(client))))
    }
}
