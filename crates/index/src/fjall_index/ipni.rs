//! [`IpniStore`] on the embedded index: the `ipni` keyspace. Key `h` = the head (`ads` u64
//! big-endian ++ `updated_at` u64 big-endian ++ the head CID's binary form); key `c` ++ CAR
//! key = the CID of the advertisement that added it. Every advance is one fsynced batch.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use cid::Cid;
use fjall::PersistMode;

use super::{FjallIndex, Inner, storage};
use crate::ipni::{IpniChanges, IpniHead, IpniStore, IpniWriterLease, MAX_LIST_IPNI_CARS};
use crate::IndexError;

const HEAD_KEY: &[u8] = b"h";
const CAR_PREFIX: u8 = b'c';

#[async_trait]
impl IpniStore for FjallIndex {
    async fn ipni_head(&self) -> Result<Option<IpniHead>, IndexError> {
        self.blocking("ipni_head", Inner::read_ipni_head).await
    }

    async fn ipni_cars(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, IndexError> {
        let start = car_key(after.unwrap_or(""));
        let bound = if after.is_some() {
            Bound::Excluded(start)
        } else {
            Bound::Included(start)
        };
        let limit = limit.min(MAX_LIST_IPNI_CARS);
        self.blocking("ipni_cars", move |inner| {
            let mut out = Vec::new();
            for guard in inner.ipni.range::<Vec<u8>, _>((bound, Bound::Unbounded)) {
                if out.len() >= limit {
                    break;
                }
                let key = guard.key().map_err(|e| storage("scanning ipni", e))?;
                let Some((&CAR_PREFIX, car)) = key.split_first() else {
                    break;
                };
                out.push(String::from_utf8(car.to_vec()).map_err(|e| IndexError::Corrupt {
                    what: "ipni CAR key".into(),
                    detail: e.to_string(),
                })?);
            }
            Ok(out)
        })
        .await
    }

    async fn advance_ipni(
        &self,
        expected: Option<&Cid>,
        next: &IpniHead,
        changes: &IpniChanges,
    ) -> Result<bool, IndexError> {
        let (expected, next, changes) = (expected.copied(), next.clone(), changes.clone());
        self.blocking("advance_ipni", move |inner| {
            let _writer = inner
                .ipni_writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if inner.read_ipni_head()?.map(|h| h.head) != expected {
                return Ok(false);
            }
            let mut batch = inner.db.batch().durability(Some(PersistMode::SyncAll));
            let mut head = next.ads.to_be_bytes().to_vec();
            head.extend_from_slice(&next.updated_at.to_be_bytes());
            head.extend_from_slice(&next.head.to_bytes());
            batch.insert(&inner.ipni, HEAD_KEY, head);
            for (car, ad) in &changes.added {
                batch.insert(&inner.ipni, car_key(car), ad.to_bytes());
            }
            for car in &changes.removed {
                batch.remove(&inner.ipni, car_key(car));
            }
            batch
                .commit()
                .map_err(|e| storage("advancing the IPNI head", e))?;
            Ok(true)
        })
        .await
    }

    async fn catalogue_version(&self) -> Result<u64, IndexError> {
        Ok(self.inner.changes.load(Ordering::Acquire))
    }

    async fn try_ipni_writer(&self) -> Result<Option<IpniWriterLease>, IndexError> {
        // One process holds the database (fjall's lock): it is the writer.
        Ok(Some(Box::new(())))
    }
}

fn car_key(car: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + car.len());
    key.push(CAR_PREFIX);
    key.extend_from_slice(car.as_bytes());
    key
}

impl Inner {
    fn read_ipni_head(&self) -> Result<Option<IpniHead>, IndexError> {
        let Some(value) = self
            .ipni
            .get(HEAD_KEY)
            .map_err(|e| storage("reading the IPNI head", e))?
        else {
            return Ok(None);
        };
        let corrupt = |detail: String| IndexError::Corrupt {
            what: "IPNI head".into(),
            detail,
        };
        let (ads, rest) = value
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt(format!("{} bytes", value.len())))?;
        let (at, cid) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt(format!("{} bytes", value.len())))?;
        Ok(Some(IpniHead {
            head: Cid::try_from(cid).map_err(|e| corrupt(e.to_string()))?,
            ads: u64::from_be_bytes(*ads),
            updated_at: u64::from_be_bytes(*at),
        }))
    }
}
