//! Length-prefixed frames: an unsigned-varint length followed by that many bytes, the way
//! Bitswap (specs/bitswap-protocol.md, "Protocol Format") and the Kademlia DHT
//! (specs/kad-dht.md, "RPC messages") put each protobuf message on a libp2p stream.
//!
//! Reading is bounded before anything is allocated: the announced length is checked against
//! the caller's maximum, and the body buffer grows only as bytes arrive, so a peer that
//! announces a large frame and sends nothing holds little memory. [`read_frame_len`] and
//! [`read_frame_body`] split [`read_frame`] so a caller can reserve memory for the body in
//! between. [`count_fields`] counts a body's repeated fields before it is decoded.

mod fields;

pub use fields::{MAX_PATH_DEPTH, count_fields};

use futures::{AsyncRead, AsyncReadExt as _};

/// Longest length prefix accepted, in bytes: 9 varint bytes carry 63 bits, more than any
/// frame limit.
pub const MAX_PREFIX_BYTES: usize = 9;

/// Initial capacity of a body buffer, in bytes; it grows as the body arrives.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// Errors of [`read_frame`], [`read_frame_len`] and [`read_frame_body`].
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the maximum; nothing was allocated.
    #[error("message of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Announced body length in bytes.
        len: u64,
        /// The limit in bytes.
        max: usize,
    },
    /// The length prefix is not a varint of at most [`MAX_PREFIX_BYTES`] bytes.
    #[error("malformed length prefix")]
    InvalidLength,
    /// The stream ended inside a length prefix or body.
    #[error("stream ended inside a message")]
    Truncated,
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame body of at most `max_len` bytes. Returns `Ok(None)` when the stream ends
/// cleanly between frames.
///
/// # Errors
/// [`FrameError::TooLarge`] for an announced length over `max_len` (nothing allocated),
/// [`FrameError::InvalidLength`] for a malformed prefix, [`FrameError::Truncated`] when the
/// stream ends mid-frame, [`FrameError::Io`] when the stream fails.
///
/// # Cancel safety
/// Not cancel safe: dropping the future mid-frame loses the bytes read so far.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let Some(len) = read_frame_len(reader, max_len).await? else {
        return Ok(None);
    };
    read_frame_body(reader, len).await.map(Some)
}

/// Reads the length prefix of the next frame (the first half of [`read_frame`]) and checks it
/// against `max_len` bytes. Returns `Ok(None)` when the stream ends cleanly between frames.
///
/// # Errors
/// As [`read_frame`].
///
/// # Cancel safety
/// Not cancel safe: dropping the future mid-prefix loses the bytes read so far.
pub async fn read_frame_len<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: usize,
) -> Result<Option<usize>, FrameError> {
    let mut len: u64 = 0;
    let mut read = 0usize;
    loop {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte).await? == 0 {
            return if read == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * read);
        read += 1;
        if byte[0] & 0x80 == 0 {
            break;
        }
        if read == MAX_PREFIX_BYTES {
            return Err(FrameError::InvalidLength);
        }
    }
    if len > max_len as u64 {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    Ok(Some(len as usize))
}

/// Reads a frame body of `len` bytes announced by [`read_frame_len`].
///
/// # Errors
/// [`FrameError::Truncated`] when the stream ends first, [`FrameError::Io`] when it fails.
///
/// # Cancel safety
/// Not cancel safe: dropping the future loses the bytes read so far.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY_CAPACITY));
    (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(body)
}

/// `body` with its unsigned-varint length prefix: one frame, as [`read_frame`] reads it.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut buf = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(body.len(), &mut buf);
    let mut out = Vec::with_capacity(prefix.len() + body.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use proptest::prelude::*;

    fn read(bytes: Vec<u8>, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
        block_on(read_frame(&mut Cursor::new(bytes), max))
    }

    #[test]
    fn frames_are_read_in_order_up_to_a_clean_end() {
        let mut stream = frame(b"first");
        stream.extend(frame(b""));
        stream.extend(frame(&[7; 300]));
        let mut reader = Cursor::new(stream);
        let mut next = || block_on(read_frame(&mut reader, 300)).unwrap();
        assert_eq!(next().as_deref(), Some(&b"first"[..]));
        assert_eq!(next().as_deref(), Some(&[][..]));
        assert_eq!(next().as_deref(), Some(&[7u8; 300][..]));
        assert_eq!(next(), None);
    }

    #[test]
    fn the_limit_is_checked_before_the_body_is_read() {
        // Announces 100 bytes and sends none: refused, not Truncated.
        let mut prefix = frame(&[0; 100]);
        prefix.truncate(1);
        assert!(matches!(
            read(prefix, 99),
            Err(FrameError::TooLarge { len: 100, max: 99 })
        ));
        assert_eq!(read(frame(&[0; 100]), 100).unwrap().unwrap().len(), 100);
    }

    #[test]
    fn malformed_and_cut_frames_are_refused() {
        assert!(matches!(
            read(vec![5, 1, 2], 100),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(read(vec![0x80], 100), Err(FrameError::Truncated)));
        assert!(matches!(
            read(vec![0xff; 12], usize::MAX),
            Err(FrameError::InvalidLength)
        ));
    }

    proptest! {
        #[test]
        fn frames_roundtrip(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(read(frame(&body), 2000).unwrap(), Some(body));
        }

        #[test]
        fn a_frame_never_exceeds_the_limit(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut reader = Cursor::new(bytes);
            while let Ok(Some(body)) = block_on(read_frame(&mut reader, 32)) {
                prop_assert!(body.len() <= 32);
            }
        }
    }
}
