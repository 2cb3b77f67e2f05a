//! [`PinStore`] on PostgreSQL: the `pins` table (migration 6), shared by every replica.

use async_trait::async_trait;
use cid::Cid;
use hydrant_index::{IndexError, MAX_LIST_PINS, Pin, PinStore};
use tokio_postgres::Row;

use crate::PgIndex;
use crate::index::storage;

#[async_trait]
impl PinStore for PgIndex {
    async fn add_pin(&self, pin: &Pin) -> Result<bool, IndexError> {
        const WHAT: &str = "add_pin";
        let created_at = i64::try_from(pin.created_at)
            .map_err(|_| IndexError::Storage(format!("{WHAT}: created_at exceeds 2^63-1")))?;
        let client = self
            .pool()
            .client(WHAT)
            .await
            .map_err(IndexError::Storage)?;
        // `xmax = 0` holds for a row this statement inserted, not for one it updated.
        let row = client
            .query_one(
                "INSERT INTO pins (cid, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (cid) DO UPDATE SET name = EXCLUDED.name \
                 RETURNING xmax = 0 AS inserted",
                &[&pin.cid.to_bytes(), &pin.name, &created_at],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(row.get("inserted"))
    }

    async fn remove_pin(&self, cid: &Cid) -> Result<bool, IndexError> {
        const WHAT: &str = "remove_pin";
        let client = self
            .pool()
            .client(WHAT)
            .await
            .map_err(IndexError::Storage)?;
        let removed = client
            .execute("DELETE FROM pins WHERE cid = $1", &[&cid.to_bytes()])
            .await
            .map_err(|e| storage(WHAT, &e))?;
        Ok(removed > 0)
    }

    async fn pin(&self, cid: &Cid) -> Result<Option<Pin>, IndexError> {
        const WHAT: &str = "pin";
        let client = self
            .pool()
            .client(WHAT)
            .await
            .map_err(IndexError::Storage)?;
        client
            .query_opt(
                "SELECT cid, name, created_at FROM pins WHERE cid = $1",
                &[&cid.to_bytes()],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?
            .map(|row| decode(&row))
            .transpose()
    }

    async fn list_pins(&self, after: Option<&Cid>, limit: usize) -> Result<Vec<Pin>, IndexError> {
        const WHAT: &str = "list_pins";
        let limit = i64::try_from(limit.min(MAX_LIST_PINS)).unwrap_or(0);
        let after = after.map(Cid::to_bytes);
        let client = self
            .pool()
            .client(WHAT)
            .await
            .map_err(IndexError::Storage)?;
        // bytea compares bytewise: the order of the binary CIDs.
        client
            .query(
                "SELECT cid, name, created_at FROM pins \
                 WHERE $1::bytea IS NULL OR cid > $1 ORDER BY cid LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(|e| storage(WHAT, &e))?
            .iter()
            .map(decode)
            .collect()
    }
}

fn decode(row: &Row) -> Result<Pin, IndexError> {
    let key: Vec<u8> = row.get("cid");
    let corrupt = |detail: String| IndexError::Corrupt {
        what: format!(
            "pin {}",
            key.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        detail,
    };
    let cid = Cid::try_from(key.as_slice()).map_err(|e| corrupt(format!("CID: {e}")))?;
    let created_at: i64 = row.get("created_at");
    Ok(Pin {
        cid,
        name: row.get("name"),
        created_at: u64::try_from(created_at)
            .map_err(|_| corrupt(format!("created_at {created_at}")))?,
    })
}
