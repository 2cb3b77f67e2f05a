//! Errors of the service: [`DhtError`] (spawning it, client calls) and [`RequestError`] (one
//! outbound request).

use libp2p::PeerId;

#[cfg(doc)]
use crate::Dht;
use crate::protocol::{DecodeError, FrameError};

/// Errors of [`Dht::spawn`] and of the client calls.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    /// No head given.
    #[error("no heads")]
    NoHeads,
    /// A count or duration of the configuration is zero.
    #[error("invalid configuration: {field} must be non-zero")]
    InvalidConfig {
        /// The field.
        field: &'static str,
    },
    /// Inbound `/ipfs/kad/1.0.0` streams of a head are already taken elsewhere.
    #[error("inbound kad streams of head {0} are already accepted elsewhere")]
    AlreadyRegistered(PeerId),
    /// A key that is empty or longer than 80 bytes.
    #[error("key of {0} bytes is not within 1..=80")]
    InvalidKey(usize),
    /// The routing table is empty: bootstrap first.
    #[error("routing table is empty")]
    NoPeers,
    /// The head is not served by this service.
    #[error("unknown head {0}")]
    UnknownHead(PeerId),
}

/// Errors of one outbound request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The dialer refused.
    #[error("dial: {0}")]
    Dial(String),
    /// The stream could not be opened (connection failed, protocol unsupported).
    #[error("open stream: {0}")]
    Open(String),
    /// Reading the answer failed.
    #[error("read: {0}")]
    Frame(#[from] FrameError),
    /// Writing failed.
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is invalid.
    #[error("invalid answer: {0}")]
    Decode(#[from] DecodeError),
    /// The peer closed the stream without answering.
    #[error("closed without an answer")]
    Closed,
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
}

impl RequestError {
    /// Whether the stream failed or ended before an answer, with the connection usable
    /// (worth one retry; see [`Dht`](crate::Dht), "Retry").
    pub(crate) fn is_stream_failure(&self) -> bool {
        match self {
            RequestError::Open(_)
            | RequestError::Io(_)
            | RequestError::Closed
            | RequestError::Frame(FrameError::Truncated | FrameError::Io(_)) => true,
            RequestError::Dial(_)
            | RequestError::Frame(_)
            | RequestError::Decode(_)
            | RequestError::Timeout => false,
        }
    }

    /// Whether a lookup request that failed so (after its retry, if any) evicts the peer at
    /// once rather than counting toward `max_failures` ([`Dht`](crate::Dht), "Admission"): a timeout,
    /// or a stream that failed or ended unanswered on both tries.
    pub(crate) fn evicts_at_once(&self) -> bool {
        matches!(self, RequestError::Timeout) || self.is_stream_failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stream_failures_are_retried() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(RequestError::Closed.is_stream_failure());
        assert!(RequestError::Io(io()).is_stream_failure());
        assert!(RequestError::Frame(FrameError::Io(io())).is_stream_failure());
        assert!(RequestError::Frame(FrameError::Truncated).is_stream_failure());
        assert!(RequestError::Open("reset".into()).is_stream_failure());
        assert!(!RequestError::Timeout.is_stream_failure());
        assert!(!RequestError::Dial("no addresses".into()).is_stream_failure());
        assert!(!RequestError::Frame(FrameError::InvalidLength).is_stream_failure());
    }

    #[test]
    fn timeouts_and_stream_failures_evict_at_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(RequestError::Timeout.evicts_at_once());
        assert!(RequestError::Closed.evicts_at_once());
        assert!(RequestError::Io(io()).evicts_at_once());
        assert!(RequestError::Frame(FrameError::Truncated).evicts_at_once());
        assert!(RequestError::Open("reset".into()).evicts_at_once());
        assert!(!RequestError::Dial("dialer busy".into()).evicts_at_once());
        assert!(!RequestError::Frame(FrameError::InvalidLength).evicts_at_once());
    }
}
