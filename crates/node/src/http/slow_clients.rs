//! What one gateway client can hold: a stalled reader loses its connection after
//! `gateway.write_timeout_secs` ([`WriteTimeout`], applied to every connection by
//! [`crate::http::serve`]), and one address has at most `gateway.max_requests_per_ip` responses
//! in progress ([`ClientLimit`], checked by [`crate::http::memory::shed`]; more are answered
//! 429). The same [`ClientLimit`] counts each address's open connections in
//! [`crate::http::serve`].
//!
//! Why at the socket and not in the response body: hyper polls a body only when its write
//! buffer has room, so once a client stops reading (the socket's buffers full, then hyper's)
//! the body is not polled at all and cannot notice. The socket's `poll_write` is what keeps
//! returning `Pending`; when it has made no progress for the timeout, it fails, hyper drops the
//! connection, and with it the response body and its share of the memory budget.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The peer address of an HTTP connection, as a request extension
/// (`ConnectInfo<ClientAddr>`, set by [`crate::http::serve`]) for [`ClientLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A stream whose writes fail with [`io::ErrorKind::TimedOut`] once a write (or flush) has
/// been pending for `timeout` without any byte accepted: the reader at the other end stopped
/// reading. Any progress restarts the clock; reads are untouched (an idle keep-alive
/// connection is not "stalled"). Without a timeout, a plain pass-through.
#[derive(Debug)]
pub struct WriteTimeout<T> {
    io: T,
    timeout: Option<Duration>,
    /// Set when a write first returned `Pending`; cleared when one completes.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteTimeout<T> {
    /// `io`, whose writes may stall for at most `timeout` (`None`: for ever).
    pub fn new(io: T, timeout: Option<Duration>) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    fn progress<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(timeout) = self.timeout else {
                    return Poll::Pending;
                };
                let stall = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client accepted no byte within gateway.write_timeout_secs",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progress(cx, poll)
    }
}

/// Slots per client address (responses in progress, or open connections), at most `max`
/// each: one address (an IPv6 /64, which one host usually holds whole) cannot take more than
/// `max` of the gateway's requests and their share of the memory budget, however slowly it
/// reads. The map holds only addresses with a slot taken.
#[derive(Debug)]
pub struct ClientLimit {
    max: u32,
    in_progress: Mutex<HashMap<IpAddr, u32>>,
}

impl ClientLimit {
    /// At most `max` responses in progress per address (`gateway.max_requests_per_ip`).
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            in_progress: Mutex::default(),
        })
    }

    /// The configured maximum.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// A slot for one response from `ip`, held until the [`ClientSlot`] is dropped; `None`
    /// when `ip` already has `max` responses in progress.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            limit: self.clone(),
            key,
        })
    }

    /// Addresses with a response in progress now.
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One response's place in its address's [`ClientLimit`]; given back on drop.
#[derive(Debug)]
pub struct ClientSlot {
    limit: Arc<ClientLimit>,
    key: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self
            .limit
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The address a limit is counted under: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by its
/// /64 prefix.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn one_address_gets_at_most_max_slots_and_gets_them_back() {
        let limit = ClientLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limit.try_acquire(a).unwrap();
        let _second = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none(), "a third is refused");
        assert!(limit.try_acquire(b).is_some(), "another address is not");
        drop(first);
        assert!(
            limit.try_acquire(a).is_some(),
            "a finished response frees its slot"
        );
        drop(_second);
        assert_eq!(limit.clients(), 0, "no entry is kept for idle addresses");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limit = ClientLimit::new(1);
        let _held = limit
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(
            limit
                .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
                .is_none()
        );
        assert!(
            limit
                .try_acquire("2001:db8:1:3::1".parse().unwrap())
                .is_some()
        );
        let _v4 = limit.try_acquire("192.0.2.7".parse().unwrap()).unwrap();
        assert!(
            limit
                .try_acquire("::ffff:192.0.2.7".parse().unwrap())
                .is_none()
        );
    }

    /// A peer that never reads: the writer's buffers fill, and the write that would wait
    /// forever fails once it has waited for the timeout. A reading peer is never cut off.
    #[tokio::test]
    async fn a_write_that_makes_no_progress_fails_after_the_timeout() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let mut server = WriteTimeout::new(server, Some(Duration::from_millis(300)));
        let chunk = vec![7u8; 16 * 1024];
        let started = tokio::time::Instant::now();
        let error = loop {
            if let Err(e) = server.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{waited:?}"
        );

        // A slow but steady reader keeps the writer going.
        let (server, mut reader) = tokio::io::duplex(1024);
        let mut server = WriteTimeout::new(server, Some(Duration::from_millis(300)));
        let read = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut total = 0;
            while total < 64 * 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += reader.read(&mut buf).await.unwrap();
            }
            total
        });
        for _ in 0..16 {
            server.write_all(&[1u8; 4096]).await.unwrap();
        }
        assert_eq!(read.await.unwrap(), 64 * 1024);
        drop(client.read(&mut [0u8; 1]).await);
    }
}
