//! The push-based, sans-I/O CAR decoder (carv1.md "Format Description", carv2.md
//! "Format Description").

use bytes::{Buf, Bytes, BytesMut};
use cid::Cid;

use crate::error::{CarError, Part};
use crate::header::{
    self, CarHeader, Decoded, INDEX_OFFSET_FIELD, PRAGMA_LEN, V2_HEADER_LEN, V2Header,
};
use crate::varint::{self, Varint};
use crate::{Limits, MAX_CID_SIZE, MAX_DIGEST_SIZE};

/// Smallest amount of spare capacity reserved at once when buffering input, bytes.
///
/// Keeps many tiny `push` calls (down to one byte each) from reallocating every time, while
/// sections split off the buffer share its allocation.
const MIN_RESERVE: usize = 64 * 1024;

/// One block section of the data, carv1.md "Data".
///
/// Offsets are absolute in the whole input; for a CARv2 they count from the first byte of the
/// pragma, not from the inner CARv1 payload. The section spans
/// `section_offset .. data_offset + data.len()`.
///
/// `data` is a slice of the decoder's input buffer: holding on to it keeps that buffer's
/// allocation (at most one pushed chunk, or one section) alive. Copy it if you keep it long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The block's CID, as written (CIDv0 stays CIDv0). Not yet verified against `data`:
    /// call [`crate::verify_block`].
    pub cid: Cid,
    /// Absolute offset of the section's length varint, bytes.
    pub section_offset: u64,
    /// Absolute offset of the block data (just after the CID), bytes.
    pub data_offset: u64,
    /// The block data, at most [`Limits::max_block_size`] bytes.
    pub data: Bytes,
}

/// What [`CarDecoder::next_event`] yields: first one header, then the sections in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The (inner, for CARv2) CARv1 header, once.
    Header(CarHeader),
    /// One block section.
    Section(Section),
}

/// Where the decoder is in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At offset 0: a CARv1 header or the CARv2 pragma.
    Header,
    /// After the pragma: the 40-byte CARv2 header.
    V2Header,
    /// Skipping any bytes between the CARv2 header and `data_offset` (skip state).
    DataPadding(V2Header),
    /// The CARv1 header at the start of the CARv2 data payload.
    InnerHeader(V2Header),
    /// Sections, up to the end of input (CARv1) or of the data payload (CARv2).
    Sections(Option<V2Header>),
    /// After a zero-length section: only zero bytes may follow up to the end of the data
    /// (skip state).
    ZeroPadding {
        zero_section_offset: u64,
        v2: Option<V2Header>,
    },
    /// After a CARv2 data payload: padding and index, ignored (skip state).
    Trailer(V2Header),
    /// `finish` succeeded.
    Finished,
}

impl State {
    /// Skip states consume input without buffering it.
    fn is_skip(&self) -> bool {
        matches!(
            self,
            State::DataPadding(_) | State::ZeroPadding { .. } | State::Trailer(_)
        )
    }
}

/// A push-based, sans-I/O decoder for CARv1 and CARv2 files (carv1.md, carv2.md).
///
/// Feed the file's bytes in order with [`push`](Self::push), in chunks of any size, and after
/// each push call [`next_event`](Self::next_event) until it returns `Ok(None)`. At the end of
/// input call [`finish`](Self::finish), which reports a file cut short.
///
/// The first event is always [`Event::Header`]; then come the [`Event::Section`]s in file
/// order. For a CARv2, sections stop at `data_offset + data_size`; the index and any padding
/// are consumed without being decoded.
///
/// Memory: the decoder buffers at most one header ([`Limits::max_header_size`]) or one section
/// (a CID plus [`Limits::max_block_size`]) plus the rest of the last pushed chunk, provided the
/// caller drains `next_event` after each push. Padding, the CARv2 index and zero padding are
/// never buffered. Each input byte is copied once, into the buffer; blocks are handed out as
/// [`Bytes`] slices of it.
///
/// After an error, the decoder is stuck: every later call returns the same error.
#[derive(Debug)]
pub struct CarDecoder {
    limits: Limits,
    /// Input received but not yet consumed; `buf[0]` is at absolute offset `pos`.
    buf: BytesMut,
    /// Bytes consumed so far (emitted or skipped).
    pos: u64,
    state: State,
    /// The first error, returned again by every later call.
    error: Option<CarError>,
}

/// Result of one decoding step.
enum Step {
    Event(Event),
    /// The state changed; step again.
    Continue,
    /// More input is needed.
    NeedMore,
}

impl CarDecoder {
    /// A decoder expecting the first byte of a CAR file, with the given limits.
    pub fn new(limits: Limits) -> Self {
        CarDecoder {
            limits,
            buf: BytesMut::new(),
            pos: 0,
            state: State::Header,
            error: None,
        }
    }

    /// Feeds the next `chunk` of the file, in order. Any size works, including empty.
    ///
    /// Bytes in padding, a CARv2 index or zero padding are checked and dropped here without
    /// being buffered; anything else is appended to the buffer for
    /// [`next_event`](Self::next_event). A problem found here (a non-zero byte after a
    /// zero-length section) is reported by the next call to `next_event` or `finish`.
    /// Input pushed after an error or after `finish` is ignored.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.error.is_some() || self.state == State::Finished {
            return;
        }
        let mut chunk = chunk;
        while self.buf.is_empty() && !chunk.is_empty() && self.state.is_skip() {
            match self.skip(chunk) {
                Ok(n) => chunk = &chunk[n..],
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        if chunk.is_empty() {
            return;
        }
        if self.buf.capacity() - self.buf.len() < chunk.len() {
            // Grow geometrically so that a section arriving in tiny chunks is not re-copied
            // once per chunk.
            let grow = chunk.len().max(self.buf.len()).max(MIN_RESERVE);
            self.buf.reserve(grow);
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next header or section, or `Ok(None)` when more input is needed (or, after the
    /// last section, none will come).
    ///
    /// # Errors
    ///
    /// Any [`CarError`] but [`CarError::Truncated`] and [`CarError::UndrainedInput`] (those
    /// come from [`finish`](Self::finish)), with the absolute offset where it was found.
    /// Once an error is returned, every later call returns it again.
    pub fn next_event(&mut self) -> Result<Option<Event>, CarError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.step();
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    /// Ends the input: checks that the file did not stop in the middle of something.
    ///
    /// A CARv1 may end after its header or after any section (zero sections are accepted:
    /// carv1.md "Zero blocks" leaves it open). A CARv2 must contain its whole data payload;
    /// its index, if `index_offset != 0`, must start before the end of input.
    ///
    /// # Errors
    ///
    /// - [`CarError::Truncated`] when the input ends inside the header, a section or a CARv2
    ///   data payload;
    /// - [`CarError::IndexOutOfRange`] when a CARv2's index offset is at or past the end;
    /// - [`CarError::UndrainedInput`] when `next_event` still had events to return;
    /// - any error found in the remaining buffered bytes, or earlier.
    pub fn finish(&mut self) -> Result<(), CarError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.finish_inner();
        match &result {
            Ok(()) => self.state = State::Finished,
            Err(e) => self.error = Some(e.clone()),
        }
        result
    }

    /// Bytes of input consumed so far: emitted as events or skipped. Buffered bytes that do
    /// not yet form a whole header or section are not counted.
    pub fn bytes_consumed(&self) -> u64 {
        self.pos
    }

    fn finish_inner(&mut self) -> Result<(), CarError> {
        if self.state == State::Finished {
            return Ok(());
        }
        let offset = self.pos;
        if self.step()?.is_some() {
            return Err(CarError::UndrainedInput { offset });
        }
        let end = self.pos + self.buf.len() as u64;
        let truncated = |offset, part| Err(CarError::Truncated { offset, part, end });
        match self.state {
            State::Header | State::InnerHeader(_) => truncated(self.pos, Part::Header),
            State::V2Header => truncated(self.pos, Part::V2Header),
            State::DataPadding(v2) => truncated(v2.data_offset, Part::Payload),
            State::Sections(_) if !self.buf.is_empty() => truncated(self.pos, Part::Section),
            State::Sections(None) | State::ZeroPadding { v2: None, .. } => Ok(()),
            State::Sections(Some(_)) | State::ZeroPadding { v2: Some(_), .. } => {
                truncated(self.pos, Part::Payload)
            }
            State::Trailer(v2) => {
                if v2.has_index() && v2.index_offset >= end {
                    Err(CarError::IndexOutOfRange {
                        offset: INDEX_OFFSET_FIELD,
                        index_offset: v2.index_offset,
                        end,
                    })
                } else {
                    Ok(())
                }
            }
            State::Finished => Ok(()),
        }
    }

    fn step(&mut self) -> Result<Option<Event>, CarError> {
        loop {
            let step = match self.state {
                State::Header => self.read_header(None)?,
                State::InnerHeader(v2) => self.read_header(Some(v2))?,
                State::V2Header => self.read_v2_header()?,
                State::Sections(v2) => self.read_section(v2)?,
                State::DataPadding(_) | State::ZeroPadding { .. } | State::Trailer(_) => {
                    let data = std::mem::take(&mut self.buf);
                    let skipped = self.skip(&data);
                    self.buf = data;
                    self.buf.advance(skipped?);
                    if self.state.is_skip() {
                        // A skip state consumes everything it may; it is still waiting.
                        Step::NeedMore
                    } else {
                        Step::Continue
                    }
                }
                State::Finished => Step::NeedMore,
            };
            match step {
                Step::Event(event) => return Ok(Some(event)),
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
            }
        }
    }

    /// Consumes up to all of `data` (the input at `self.pos`) in a skip state, moving to the
    /// next state when the skipped region ends. Returns how many bytes were consumed.
    fn skip(&mut self, data: &[u8]) -> Result<usize, CarError> {
        let remaining_to = |end: u64, pos: u64| usize::try_from(end - pos).unwrap_or(usize::MAX);
        match self.state {
            State::DataPadding(v2) => {
                let n = data.len().min(remaining_to(v2.data_offset, self.pos));
                self.pos += n as u64;
                if self.pos == v2.data_offset {
                    self.state = State::InnerHeader(v2);
                }
                Ok(n)
            }
            State::ZeroPadding {
                zero_section_offset,
                v2,
            } => {
                let n = match v2 {
                    Some(v2) => data.len().min(remaining_to(v2.data_end(), self.pos)),
                    None => data.len(),
                };
                if let Some(i) = data[..n].iter().position(|&b| b != 0) {
                    return Err(CarError::NonZeroPadding {
                        offset: self.pos + i as u64,
                        zero_section_offset,
                    });
                }
                self.pos += n as u64;
                if let Some(v2) = v2
                    && self.pos == v2.data_end()
                {
                    self.state = State::Trailer(v2);
                }
                Ok(n)
            }
            State::Trailer(_) => {
                self.pos += data.len() as u64;
                Ok(data.len())
            }
            _ => Ok(0),
        }
    }

    /// Drops `n` buffered bytes and returns them.
    fn take(&mut self, n: usize) -> Bytes {
        self.pos += n as u64;
        self.buf.split_to(n).freeze()
    }

    /// Reads the length varint at `self.pos`, not looking past `payload_end` when given.
    /// `Ok(None)` means more input is needed.
    fn read_length(&self, payload_end: Option<u64>) -> Result<Option<(u64, usize)>, CarError> {
        let offset = self.pos;
        let view = match payload_end {
            Some(end) => {
                let left = usize::try_from(end - offset).unwrap_or(usize::MAX);
                &self.buf[..self.buf.len().min(left)]
            }
            None => &self.buf[..],
        };
        match varint::decode(view) {
            Varint::Complete { value, len } => Ok(Some((value, len))),
            Varint::Overflow => Err(CarError::VarintOverflow { offset }),
            Varint::NonMinimal => Err(CarError::NonMinimalVarint { offset }),
            Varint::Incomplete => match payload_end {
                // The varint would run past the end of the payload.
                Some(end) if offset + view.len() as u64 == end => Err(CarError::ExceedsPayload {
                    offset,
                    payload_end: end,
                }),
                _ => Ok(None),
            },
        }
    }

    /// The outer header (`v2 == None`) or the CARv2 inner header.
    fn read_header(&mut self, v2: Option<V2Header>) -> Result<Step, CarError> {
        let offset = self.pos;
        let payload_end = v2.map(|v| v.data_end());
        let Some((len, varint_len)) = self.read_length(payload_end)? else {
            return Ok(Step::NeedMore);
        };
        let limit = self.limits.max_header_size;
        if len > limit as u64 {
            return Err(CarError::HeaderTooLarge { offset, len, limit });
        }
        let total = varint_len + len as usize;
        if let Some(end) = payload_end
            && offset + total as u64 > end
        {
            return Err(CarError::ExceedsPayload {
                offset,
                payload_end: end,
            });
        }
        if self.buf.len() < total {
            return Ok(Step::NeedMore);
        }
        let decoded = header::decode_header(&self.buf[varint_len..total], offset, v2.is_none())?;
        self.buf.advance(total);
        self.pos += total as u64;
        match decoded {
            Decoded::V2Pragma => {
                self.state = State::V2Header;
                Ok(Step::Continue)
            }
            Decoded::V1(roots) => {
                self.state = State::Sections(v2);
                Ok(Step::Event(Event::Header(CarHeader {
                    version: if v2.is_some() { 2 } else { 1 },
                    roots,
                    v2,
                })))
            }
        }
    }

    fn read_v2_header(&mut self) -> Result<Step, CarError> {
        debug_assert_eq!(self.pos, PRAGMA_LEN);
        let Some(bytes) = self.buf.get(..V2_HEADER_LEN) else {
            return Ok(Step::NeedMore);
        };
        let mut fixed = [0u8; V2_HEADER_LEN];
        fixed.copy_from_slice(bytes);
        let v2 = V2Header::parse(&fixed)?;
        self.buf.advance(V2_HEADER_LEN);
        self.pos += V2_HEADER_LEN as u64;
        self.state = State::DataPadding(v2);
        Ok(Step::Continue)
    }

    fn read_section(&mut self, v2: Option<V2Header>) -> Result<Step, CarError> {
        let offset = self.pos;
        if let Some(v2) = v2
            && offset == v2.data_end()
        {
            self.state = State::Trailer(v2);
            return Ok(Step::Continue);
        }
        let payload_end = v2.map(|v| v.data_end());
        let Some((len, varint_len)) = self.read_length(payload_end)? else {
            return Ok(Step::NeedMore);
        };
        if len == 0 {
            self.buf.advance(varint_len);
            self.pos += varint_len as u64;
            self.state = State::ZeroPadding {
                zero_section_offset: offset,
                v2,
            };
            return Ok(Step::Continue);
        }
        let limit = (MAX_CID_SIZE as u64).saturating_add(self.limits.max_block_size as u64);
        if len > limit {
            return Err(CarError::SectionTooLarge { offset, len, limit });
        }
        let total = varint_len + len as usize;
        if let Some(end) = payload_end
            && offset + total as u64 > end
        {
            return Err(CarError::ExceedsPayload {
                offset,
                payload_end: end,
            });
        }
        if self.buf.len() < total {
            return Ok(Step::NeedMore);
        }
        let body = &self.buf[varint_len..total];
        let cid_offset = offset + varint_len as u64;
        let cid_len = match scan_cid_len(body) {
            CidLen::Complete(n) if n <= body.len() => n,
            CidLen::Complete(_) | CidLen::Incomplete => {
                return Err(CarError::SectionShorterThanCid { offset, len });
            }
            CidLen::Invalid(reason) => {
                return Err(CarError::InvalidCid {
                    offset: cid_offset,
                    reason: reason.into(),
                });
            }
        };
        let cid = Cid::try_from(&body[..cid_len]).map_err(|e| CarError::InvalidCid {
            offset: cid_offset,
            reason: e.to_string(),
        })?;
        if cid.encoded_len() != cid_len {
            return Err(CarError::InvalidCid {
                offset: cid_offset,
                reason: "not canonically encoded".into(),
            });
        }
        let size = body.len() - cid_len;
        if size > self.limits.max_block_size {
            return Err(CarError::BlockTooLarge {
                offset,
                cid,
                size: size as u64,
                limit: self.limits.max_block_size,
            });
        }
        self.buf.advance(varint_len + cid_len);
        self.pos += (varint_len + cid_len) as u64;
        let data_offset = self.pos;
        let data = self.take(size);
        Ok(Step::Event(Event::Section(Section {
            cid,
            section_offset: offset,
            data_offset,
            data,
        })))
    }
}

/// Length of the CID at the front of a section, found from its prefix alone.
enum CidLen {
    /// The CID claims this many bytes (possibly more than are there).
    Complete(usize),
    /// The bytes end inside the CID's prefix varints.
    Incomplete,
    /// A prefix varint is overlong or not minimal, or the digest is too long.
    Invalid(&'static str),
}

/// Finds the encoded length of the CID starting `bytes` (carv1.md "CID byte decoding
/// summary"): 34 for a CIDv0 (`0x12 0x20` + 32 bytes), else version, codec, multihash code and
/// digest size varints plus the digest. Validity is left to `Cid::try_from`.
fn scan_cid_len(bytes: &[u8]) -> CidLen {
    match bytes {
        [0x12, 0x20, ..] => return CidLen::Complete(34),
        [0x12] => return CidLen::Incomplete,
        _ => {}
    }
    let mut at = 0;
    let mut last = 0;
    for _ in 0..4 {
        match varint::decode(&bytes[at..]) {
            Varint::Complete { value, len } => {
                at += len;
                last = value;
            }
            Varint::Incomplete => return CidLen::Incomplete,
            Varint::Overflow | Varint::NonMinimal => {
                return CidLen::Invalid("malformed varint in the CID prefix");
            }
        }
    }
    // `last` is the digest size.
    match usize::try_from(last) {
        Ok(size) if size <= MAX_DIGEST_SIZE => CidLen::Complete(at + size),
        _ => CidLen::Invalid("digest longer than 64 bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_BLOCK_SIZE, encode_section, encode_v1_header};
    use multihash_codetable::{Code, MultihashDigest};

    fn raw_cid(data: &[u8]) -> Cid {
        Cid::new_v1(0x55, Code::Sha2_256.digest(data))
    }

    fn decode_all(input: &[u8], chunk: usize) -> Result<Vec<Event>, CarError> {
        let mut dec = CarDecoder::new(Limits::default());
        let mut events = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            dec.push(piece);
            while let Some(ev) = dec.next_event()? {
                events.push(ev);
            }
        }
        dec.finish()?;
        Ok(events)
    }

    fn v1_file(blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = encode_v1_header(&[raw_cid(blocks[0])]);
        for b in blocks {
            encode_section(&raw_cid(b), b, &mut out);
        }
        out
    }

    fn v2_wrap(v1: &[u8], padding: usize, trailer: &[u8], index_offset: Option<u64>) -> Vec<u8> {
        let data_offset = 51 + padding as u64;
        let mut out = header::PRAGMA.to_vec();
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data_offset.to_le_bytes());
        out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
        let index = index_offset.unwrap_or(data_offset + v1.len() as u64);
        out.extend_from_slice(&index.to_le_bytes());
        out.resize(out.len() + padding, 0xee);
        out.extend_from_slice(v1);
        out.extend_from_slice(trailer);
        out
    }

    #[test]
    fn buffer_stays_bounded_with_big_chunks() {
        let blocks: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 100_000]).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
        let file = v1_file(&refs);
        let chunk = 1 << 20;
        let mut dec = CarDecoder::new(Limits::default());
        let mut sections = 0;
        for piece in file.chunks(chunk) {
            dec.push(piece);
            assert!(dec.buf.len() <= chunk + MAX_CID_SIZE + Limits::default().max_block_size);
            while let Some(ev) = dec.next_event().expect("valid") {
                if let Event::Section(s) = ev {
                    assert_eq!(s.data.len(), 100_000);
                    sections += 1;
                }
            }
            // After draining, less than one section remains.
            assert!(dec.buf.len() < 100_100);
        }
        dec.finish().expect("complete");
        assert_eq!(sections, 64);
        assert_eq!(dec.bytes_consumed(), file.len() as u64);
    }

    #[test]
    fn largest_block_in_one_byte_chunks() {
        let block = vec![0x5a; MAX_BLOCK_SIZE];
        let file = v1_file(&[&block]);
        let mut dec = CarDecoder::new(Limits::default());
        let mut got = None;
        for byte in file.chunks(1) {
            dec.push(byte);
            while let Some(ev) = dec.next_event().expect("valid") {
                if let Event::Section(s) = ev {
                    got = Some(s);
                }
            }
            assert!(dec.buf.capacity() <= 2 * (MAX_BLOCK_SIZE + MIN_RESERVE) + MIN_RESERVE);
        }
        dec.finish().expect("complete");
        assert_eq!(got.map(|s| s.data.len()), Some(MAX_BLOCK_SIZE));
    }

    #[test]
    fn skipped_regions_are_not_buffered() {
        let v1 = v1_file(&[b"one", b"two"]);
        let file = v2_wrap(&v1, 10_000, &vec![7u8; 100_000], None);
        let mut dec = CarDecoder::new(Limits::default());
        let mut seen = 0;
        for piece in file.chunks(4096) {
            dec.push(piece);
            while let Some(ev) = dec.next_event().expect("valid") {
                if matches!(ev, Event::Section(_)) {
                    seen += 1;
                }
            }
            assert!(dec.buf.len() <= 4096);
        }
        dec.finish().expect("complete");
        assert_eq!(seen, 2);
        // Once the payload is done, trailer bytes never reach the buffer.
        assert!(dec.buf.is_empty());
        assert_eq!(dec.bytes_consumed(), file.len() as u64);
    }

    #[test]
    fn v2_offsets_are_absolute_and_padding_skipped() {
        let v1 = v1_file(&[b"alpha", b"beta"]);
        let file = v2_wrap(&v1, 13, b"", Some(0));
        let events = decode_all(&file, 7).expect("valid");
        let Event::Header(h) = &events[0] else {
            panic!("header first")
        };
        assert_eq!(h.version, 2);
        assert_eq!(h.v2.map(|v| v.data_offset), Some(64));
        let v1_events = decode_all(&v1, 1000).expect("valid");
        for (a, b) in events[1..].iter().zip(&v1_events[1..]) {
            let (Event::Section(a), Event::Section(b)) = (a, b) else {
                panic!("sections")
            };
            assert_eq!(a.section_offset, b.section_offset + 64);
            assert_eq!(a.data_offset, b.data_offset + 64);
            assert_eq!(a.data, b.data);
        }
    }

    #[test]
    fn v2_section_crossing_payload_end() {
        let v1 = v1_file(&[b"alpha", b"beta"]);
        let mut file = v2_wrap(&v1, 0, b"", Some(0));
        // Shrink data_size by one byte: the last section now runs past the payload end.
        let size = v1.len() as u64 - 1;
        file[35..43].copy_from_slice(&size.to_le_bytes());
        let err = decode_all(&file, 3).expect_err("crosses");
        let last = 51 + (v1.len() - (1 + 36 + 4)) as u64;
        assert_eq!(
            err,
            CarError::ExceedsPayload {
                offset: last,
                payload_end: 51 + size
            }
        );
    }

    #[test]
    fn v2_truncated_payload_and_bad_index_offset() {
        let v1 = v1_file(&[b"alpha"]);
        let file = v2_wrap(&v1, 0, b"", None);
        // The index offset equals the end of input: no index bytes at all.
        let err = decode_all(&file, 5).expect_err("no index");
        assert!(matches!(err, CarError::IndexOutOfRange { offset: 43, .. }));
        let file = v2_wrap(&v1, 0, b"", Some(0));
        let err = decode_all(&file[..file.len() - 1], 5).expect_err("cut");
        assert!(matches!(
            err,
            CarError::Truncated {
                part: Part::Section,
                ..
            }
        ));
        let err = decode_all(&file[..40], 5).expect_err("cut in header");
        assert_eq!(
            err,
            CarError::Truncated {
                offset: 11,
                part: Part::V2Header,
                end: 40
            }
        );
    }

    #[test]
    fn v2_inner_header_must_be_v1() {
        let inner = header::PRAGMA.to_vec();
        let file = v2_wrap(&inner, 0, b"", Some(0));
        let err = decode_all(&file, 64).expect_err("nested");
        assert_eq!(
            err,
            CarError::UnsupportedVersion {
                offset: 51,
                version: 2
            }
        );
        let file = v2_wrap(&[], 0, b"", Some(0));
        let err = decode_all(&file, 64).expect_err("empty payload");
        assert_eq!(
            err,
            CarError::ExceedsPayload {
                offset: 51,
                payload_end: 51
            }
        );
    }

    #[test]
    fn zero_length_section_then_zeros_ends_data() {
        let mut file = v1_file(&[b"one"]);
        let zero_at = file.len() as u64;
        file.extend_from_slice(&[0u8; 100]);
        let events = decode_all(&file, 9).expect("zero padding accepted");
        assert_eq!(events.len(), 2);

        file.push(1);
        let err = decode_all(&file, 9).expect_err("data after zero section");
        assert_eq!(
            err,
            CarError::NonZeroPadding {
                offset: zero_at + 100,
                zero_section_offset: zero_at
            }
        );
        // A block hidden after zero padding is refused, not silently dropped.
        let mut hidden = v1_file(&[b"one"]);
        hidden.push(0);
        encode_section(&raw_cid(b"two"), b"two", &mut hidden);
        assert!(matches!(
            decode_all(&hidden, 1000),
            Err(CarError::NonZeroPadding { .. })
        ));
    }

    #[test]
    fn zero_length_section_inside_v2_payload() {
        let mut v1 = v1_file(&[b"one"]);
        v1.extend_from_slice(&[0u8; 20]);
        let file = v2_wrap(&v1, 0, b"index bytes", None);
        let events = decode_all(&file, 3).expect("valid");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn section_errors() {
        let header = encode_v1_header(&[]);
        let at = header.len() as u64;

        // Length 3 but the CID needs 36 bytes.
        let mut file = header.clone();
        file.extend_from_slice(&[3, 0x01, 0x55, 0x12]);
        assert_eq!(
            decode_all(&file, 1),
            Err(CarError::SectionShorterThanCid { offset: at, len: 3 })
        );

        // A CID with version 3.
        let mut file = header.clone();
        file.extend_from_slice(&[5, 0x03, 0x55, 0x00, 0x01, 0xaa]);
        assert!(matches!(
            decode_all(&file, 1),
            Err(CarError::InvalidCid { offset, .. }) if offset == at + 1
        ));

        // Non-minimal length varint.
        let mut file = header.clone();
        file.extend_from_slice(&[0x85, 0x00]);
        assert_eq!(
            decode_all(&file, 1),
            Err(CarError::NonMinimalVarint { offset: at })
        );

        // Overflowing length varint.
        let mut file = header.clone();
        file.extend_from_slice(&[0xff; 11]);
        assert_eq!(
            decode_all(&file, 2),
            Err(CarError::VarintOverflow { offset: at })
        );

        // A block over a custom limit.
        let mut file = header.clone();
        encode_section(&raw_cid(&[1; 100]), &[1; 100], &mut file);
        let mut dec = CarDecoder::new(Limits {
            max_block_size: 99,
            ..Limits::default()
        });
        dec.push(&file);
        assert!(matches!(dec.next_event(), Ok(Some(Event::Header(_)))));
        assert!(matches!(
            dec.next_event(),
            Err(CarError::BlockTooLarge { offset, size: 100, limit: 99, .. }) if offset == at
        ));
        // The error sticks.
        assert!(matches!(dec.finish(), Err(CarError::BlockTooLarge { .. })));
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            decode_all(&[], 1),
            Err(CarError::Truncated {
                offset: 0,
                part: Part::Header,
                end: 0
            })
        );
        // A version 2 header that is not the pragma: {roots: [], version: 2}.
        let mut bad = vec![0x11, 0xa2, 0x65];
        bad.extend_from_slice(b"roots");
        bad.extend_from_slice(&[0x80, 0x67]);
        bad.extend_from_slice(b"version");
        bad.push(0x02);
        assert!(matches!(
            decode_all(&bad, 1),
            Err(CarError::InvalidPragma { offset: 0 })
        ));
        // Non-canonical CBOR (version 2 in a one-byte argument) is not DAG-CBOR.
        let bad = [
            0x0b, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x18, 0x02,
        ];
        assert!(matches!(
            decode_all(&bad, 1),
            Err(CarError::InvalidHeader { offset: 0, .. })
        ));
        // Not CBOR at all.
        assert!(matches!(
            decode_all(&[0x02, 0xff, 0xff], 1),
            Err(CarError::InvalidHeader { offset: 0, .. })
        ));
        // A header over a custom limit is refused before it is buffered.
        let header = encode_v1_header(&[]);
        let mut dec = CarDecoder::new(Limits {
            max_header_size: 4,
            ..Limits::default()
        });
        dec.push(&header[..1]);
        assert!(matches!(
            dec.next_event(),
            Err(CarError::HeaderTooLarge { offset: 0, .. })
        ));
    }

    #[test]
    fn finish_requires_drained_events() {
        let file = v1_file(&[b"one"]);
        let mut dec = CarDecoder::new(Limits::default());
        dec.push(&file);
        assert_eq!(dec.finish(), Err(CarError::UndrainedInput { offset: 0 }));
    }

    #[test]
    fn header_only_car_is_accepted() {
        let file = encode_v1_header(&[raw_cid(b"x")]);
        let events = decode_all(&file, 1).expect("valid");
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn scan_cid_len_cases() {
        assert!(matches!(scan_cid_len(&[0x12, 0x20]), CidLen::Complete(34)));
        assert!(matches!(scan_cid_len(&[0x12]), CidLen::Incomplete));
        assert!(matches!(
            scan_cid_len(&[0x01, 0x55, 0x12, 0x20]),
            CidLen::Complete(36)
        ));
        assert!(matches!(
            scan_cid_len(&[0x01, 0x55, 0x12]),
            CidLen::Incomplete
        ));
        assert!(matches!(
            scan_cid_len(&[0x01, 0xd5, 0x00]),
            CidLen::Invalid(_)
        ));
    }
}
