//! A thin async convenience over [`CarDecoder`]: reads a `tokio::io::AsyncRead` in chunks.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Limits;
use crate::decoder::{CarDecoder, Event};
use crate::error::CarError;

/// Size of each read from the underlying reader, bytes.
pub const READ_CHUNK_SIZE: usize = 256 * 1024;

/// Why [`CarReader::next_event`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying reader failed after `offset` bytes had been read.
    #[error("read failed after {offset} bytes: {source}")]
    Io {
        /// Bytes read successfully before the failure.
        offset: u64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid CAR (see [`CarError`], which carries the offset).
    #[error(transparent)]
    Car(#[from] CarError),
}

/// Decodes a CAR from an async reader, [`READ_CHUNK_SIZE`] bytes at a time.
///
/// Memory: one read buffer of [`READ_CHUNK_SIZE`] bytes plus the decoder's buffer (see
/// [`CarDecoder`]).
#[derive(Debug)]
pub struct CarReader<R> {
    inner: R,
    decoder: CarDecoder,
    chunk: Box<[u8]>,
    read: u64,
    done: bool,
}

impl<R: AsyncRead + Unpin> CarReader<R> {
    /// Wraps `inner`, which must be positioned at the first byte of the CAR.
    pub fn new(inner: R, limits: Limits) -> Self {
        CarReader {
            inner,
            decoder: CarDecoder::new(limits),
            chunk: vec![0u8; READ_CHUNK_SIZE].into_boxed_slice(),
            read: 0,
            done: false,
        }
    }

    /// The next header or section; `Ok(None)` once the whole input was read and checked
    /// (the decoder's `finish` has succeeded).
    ///
    /// # Errors
    ///
    /// [`ReadError::Io`] if the reader fails, [`ReadError::Car`] if the bytes are not a valid
    /// CAR, including a file cut short. After an error, do not call again.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped, no input is lost and the next call resumes.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        loop {
            if let Some(event) = self.decoder.next_event()? {
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            let n = self
                .inner
                .read(&mut self.chunk)
                .await
                .map_err(|source| ReadError::Io {
                    offset: self.read,
                    source,
                })?;
            if n == 0 {
                self.decoder.finish()?;
                self.done = true;
                return Ok(None);
            }
            self.read += n as u64;
            self.decoder.push(&self.chunk[..n]);
        }
    }

    /// Bytes read from the underlying reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_section, encode_v1_header};
    use cid::Cid;
    use multihash_codetable::{Code, MultihashDigest};

    #[tokio::test]
    async fn reads_a_car_and_reports_truncation() {
        let data = vec![9u8; READ_CHUNK_SIZE + 10];
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&data));
        let mut file = encode_v1_header(&[cid]);
        encode_section(&cid, &data, &mut file);

        let mut reader = CarReader::new(&file[..], Limits::default());
        assert!(matches!(
            reader.next_event().await,
            Ok(Some(Event::Header(_)))
        ));
        match reader.next_event().await {
            Ok(Some(Event::Section(s))) => assert_eq!(s.data.len(), data.len()),
            other => panic!("expected a section, got {other:?}"),
        }
        assert!(matches!(reader.next_event().await, Ok(None)));
        assert_eq!(reader.bytes_read(), file.len() as u64);

        let mut reader = CarReader::new(&file[..file.len() - 1], Limits::default());
        assert!(matches!(
            reader.next_event().await,
            Ok(Some(Event::Header(_)))
        ));
        assert!(matches!(
            reader.next_event().await,
            Err(ReadError::Car(CarError::Truncated { .. }))
        ));
    }
}
