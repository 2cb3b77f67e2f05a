//! What replicas write to each other through PostgreSQL `NOTIFY` (see [`crate::PubSubBus`]): the
//! text payload of a notification and the binary frame of one pub/sub message.
//!
//! A payload is text (PostgreSQL refuses NUL bytes and payloads of 8,000 bytes or more):
//!
//! ```text
//! payload = replica " " kind " " rest
//! replica = 16 lowercase hex digits      the sending replica's random ID
//! kind    = "m"  rest = base64 (RFC 4648, padded) of a frame      the message inline
//!         | "r"  rest = decimal id of a pubsub_messages row        the frame is that row's body
//! ```
//!
//! A frame is `from_len (u16 BE) | from | seqno_len (u16 BE) | seqno | topic_len (u16 BE) |
//! topic (UTF-8) | data` (the data runs to the end).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut as _, Bytes, BytesMut};

/// Most bytes of a `NOTIFY` payload PostgreSQL accepts (its limit is "less than 8000").
pub const MAX_PAYLOAD_BYTES: usize = 7999;

/// Largest frame sent inline: its base64 form plus the 21-byte prefix fits in
/// [`MAX_PAYLOAD_BYTES`]. Larger frames go through the `pubsub_messages` table.
pub const MAX_INLINE_FRAME_BYTES: usize = (MAX_PAYLOAD_BYTES - PREFIX_BYTES) / 4 * 3;

/// `replica` (16) + `" m "` (3) + 2 spare.
const PREFIX_BYTES: usize = 21;

/// One pub/sub message as replicas pass it on: the fields of a GossipSub `Message`
/// (`pubsub.md`, "The Message") that identify and deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The original publisher's peer ID, as bytes (the multihash form).
    pub from: Vec<u8>,
    /// The publisher's sequence number (8 bytes big-endian for libp2p publishers).
    pub seqno: Vec<u8>,
    /// The topic it was published on.
    pub topic: String,
    /// The message's data.
    pub data: Bytes,
}

impl BusMessage {
    /// The frame's size in bytes (what [`encode_frame`](Self::encode_frame) returns).
    pub fn frame_len(&self) -> usize {
        6 + self.from.len() + self.seqno.len() + self.topic.len() + self.data.len()
    }

    /// The binary frame (module docs), or `None` when `from`, `seqno` or `topic` is longer
    /// than 65,535 bytes.
    pub fn encode_frame(&self) -> Option<Bytes> {
        let mut out = BytesMut::with_capacity(self.frame_len());
        for field in [&self.from[..], &self.seqno[..], self.topic.as_bytes()] {
            out.put_u16(u16::try_from(field.len()).ok()?);
            out.put_slice(field);
        }
        out.put_slice(&self.data);
        Some(out.freeze())
    }

    /// Parses a frame.
    ///
    /// # Errors
    /// [`WireError`] when a length runs past the end or the topic is not UTF-8.
    pub fn decode_frame(frame: &Bytes) -> Result<Self, WireError> {
        let mut at = 0;
        let mut field = || -> Result<Bytes, WireError> {
            let len = frame
                .get(at..at + 2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .ok_or(WireError::Truncated)?;
            let value = frame
                .get(at + 2..at + 2 + len)
                .ok_or(WireError::Truncated)?;
            let value = frame.slice_ref(value);
            at += 2 + len;
            Ok(value)
        };
        let from = field()?.to_vec();
        let seqno = field()?.to_vec();
        let topic = String::from_utf8(field()?.to_vec()).map_err(|_| WireError::Topic)?;
        Ok(Self {
            from,
            seqno,
            topic,
            data: frame.slice(at..),
        })
    }
}

/// What a notification carries, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The frame itself.
    Inline(Bytes),
    /// The id of the `pubsub_messages` row holding the frame.
    Row(i64),
}

/// Why a payload or frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not `replica kind rest`, an unknown kind, or a bad replica ID.
    #[error("malformed pub/sub notification")]
    Malformed,
    /// The inline frame is not valid base64.
    #[error("pub/sub notification: bad base64")]
    Base64,
    /// The row id is not a positive decimal number.
    #[error("pub/sub notification: bad row id")]
    RowId,
    /// A frame's length field runs past its end.
    #[error("pub/sub frame truncated")]
    Truncated,
    /// A frame's topic is not UTF-8.
    #[error("pub/sub frame: topic is not UTF-8")]
    Topic,
}

/// The payload of an inline frame (whose size the caller checked against
/// [`MAX_INLINE_FRAME_BYTES`]).
pub fn inline_payload(replica: u64, frame: &[u8]) -> String {
    format!("{} m {}", replica_hex(replica), STANDARD.encode(frame))
}

/// The text before a row id: `"<replica> r "` (the sender's SQL appends the id).
pub fn row_payload_prefix(replica: u64) -> String {
    format!("{} r ", replica_hex(replica))
}

fn replica_hex(replica: u64) -> String {
    format!("{replica:016x}")
}

/// Parses a payload into the sender's replica ID and what it carries.
///
/// # Errors
/// [`WireError::Malformed`], [`WireError::Base64`] or [`WireError::RowId`].
pub fn parse_payload(payload: &str) -> Result<(u64, Payload), WireError> {
    let mut parts = payload.splitn(3, ' ');
    let (Some(replica), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(WireError::Malformed);
    };
    if replica.len() != 16
        || !replica
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(WireError::Malformed);
    }
    let replica = u64::from_str_radix(replica, 16).map_err(|_| WireError::Malformed)?;
    let carried = match kind {
        "m" => Payload::Inline(STANDARD.decode(rest).map_err(|_| WireError::Base64)?.into()),
        "r" => {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WireError::RowId);
            }
            Payload::Row(
                rest.parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or(WireError::RowId)?,
            )
        }
        _ => return Err(WireError::Malformed),
    };
    Ok((replica, carried))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data_len: usize) -> BusMessage {
        BusMessage {
            from: vec![0, 36, 8, 1, 18, 32, 7, 7],
            seqno: 42u64.to_be_bytes().to_vec(),
            topic: "tópico/1".into(),
            data: Bytes::from(vec![0xab; data_len]),
        }
    }

    #[test]
    fn frames_round_trip() {
        for len in [0, 1, 5000] {
            let m = message(len);
            let frame = m.encode_frame().unwrap();
            assert_eq!(frame.len(), m.frame_len());
            assert_eq!(BusMessage::decode_frame(&frame).unwrap(), m);
        }
        let frame = message(3).encode_frame().unwrap();
        for cut in 0..frame.len() - 3 {
            assert!(
                BusMessage::decode_frame(&frame.slice(..cut)).is_err(),
                "{cut}"
            );
        }
        let mut long = message(0);
        long.topic = "t".repeat(70_000);
        assert!(long.encode_frame().is_none());
    }

    #[test]
    fn payloads_round_trip_and_fit() {
        let m = message(MAX_INLINE_FRAME_BYTES - message(0).frame_len());
        let frame = m.encode_frame().unwrap();
        assert_eq!(frame.len(), MAX_INLINE_FRAME_BYTES);
        let payload = inline_payload(u64::MAX, &frame);
        assert!(payload.len() <= MAX_PAYLOAD_BYTES, "{}", payload.len());
        assert_eq!(
            parse_payload(&payload).unwrap(),
            (u64::MAX, Payload::Inline(frame))
        );
        let row = format!("{}17", row_payload_prefix(5));
        assert_eq!(parse_payload(&row).unwrap(), (5, Payload::Row(17)));
    }

    #[test]
    fn bad_payloads_are_refused() {
        for bad in [
            "",
            "0000000000000001",
            "0000000000000001 m",
            "000000000000001 m AAAA",
            "000000000000000G m AAAA",
            "0000000000000001 x AAAA",
            "0000000000000001 m !!",
            "0000000000000001 r ",
            "0000000000000001 r 0",
            "0000000000000001 r -3",
            "0000000000000001 r 99999999999999999999",
        ] {
            assert!(parse_payload(bad).is_err(), "{bad:?}");
        }
    }
}
