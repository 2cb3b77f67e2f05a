//! Both listeners' connection loop ([`serve`]): what one connection, one client address and
//! all clients together may hold, enforced before a request is read.
//!
//! - **Request head timeout** (`header_read_timeout_secs`): hyper closes a connection whose
//!   request head (request line and headers) is not complete in time. Its timer runs whenever
//!   the server waits for a head, from the connection's start or from the end of the previous
//!   response, so it is also the idle timeout of a keep-alive connection, and it closes a
//!   slowloris client that trickles a header byte at a time.
//! - **Connections per client address** (`max_connections_per_ip`, an IPv6 /64 counted as one,
//!   see [`ClientLimit`]): one more is answered 429 and closed.
//! - **Connections in all** (`max_connections`): one more is answered 503 with `Retry-After`
//!   and closed. With the process's descriptor limit checked at start-up
//!   ([`crate::descriptors`]), a listener never runs the process out of descriptors, so a flood
//!   on the gateway leaves the API's `/healthz` answering.
//! - **Writes that stall** (gateway only, `write_timeout_secs`, [`WriteTimeout`]).
//!
//! The refusals are written without waiting (`try_write` on a fresh socket, whose send buffer
//! is empty) and the connection is closed at once: a refused client costs no task and no
//! memory. HTTP/1.1 only: HTTP/2 without TLS (h2c) has no use in front of a browser, and its
//! protocol detection would wait for a client's first bytes with no timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_service::Service;

use super::slow_clients::{ClientAddr, ClientLimit, WriteTimeout};
use super::{HttpStats, Listener};

/// One listener's connection limits (the `[gateway]` or `[api]` fields of the same names).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to receive a request head, and idle time of a keep-alive connection.
    pub header_read_timeout: Duration,
    /// Open connections in all.
    pub max_connections: u32,
    /// Open connections from one client address.
    pub max_connections_per_ip: u32,
    /// Time a write may wait for the client to accept a byte; `None`: no limit.
    pub write_timeout: Option<Duration>,
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and waits for the connections in progress to finish their current request
/// (the caller bounds that wait). Requests carry `ConnectInfo<ClientAddr>`.
pub async fn serve(
    which: Listener,
    mut listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    stats: Arc<HttpStats>,
    shutdown: impl Future<Output = ()>,
) {
    let per_ip = ClientLimit::new(limits.max_connections_per_ip);
    let open = Arc::new(Semaphore::new(limits.max_connections as usize));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // TcpListener's accept (through axum's Listener) retries on errors such as EMFILE.
        let (stream, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let Some(client) = per_ip.try_acquire(addr.ip()) else {
            refuse(stream, which, Refusal::PerAddress, &stats);
            continue;
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            refuse(stream, which, Refusal::Full, &stats);
            continue;
        };
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let connection =
            graceful.watch(http.serve_connection(io, with_client(router.clone(), addr)));
        let stats = stats.clone();
        tokio::spawn(async move {
            let gauge = stats.connections.open(which);
            gauge.inc();
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    stats.connections.header_timeouts(which).inc();
                }
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            gauge.dec();
            drop((client, slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// `router` as one connection's hyper service, each request carrying the client's address.
fn with_client(
    router: axum::Router,
    addr: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(ClientAddr(addr)));
        // A Router is always ready; `call` on a clone is how axum itself serves.
        router.clone().call(req)
    })
}

/// Why a connection was refused before its request was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its address already holds `max_connections_per_ip`.
    PerAddress,
    /// The listener already holds `max_connections`.
    Full,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_ip",
            Refusal::Full => "full",
        }
    }

    /// The whole answer, written before the connection is closed.
    fn response(self, which: Listener) -> String {
        let listener = label(which);
        let (status, body) = match self {
            Refusal::PerAddress => (
                "429 Too Many Requests",
                format!("this address holds {listener}.max_connections_per_ip connections\n"),
            ),
            Refusal::Full => (
                "503 Service Unavailable",
                format!("the listener holds {listener}.max_connections connections\n"),
            ),
        };
        format!(
            "HTTP/1.1 {status}\r\nretry-after: 1\r\nconnection: close\r\n\
             content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }
}

/// Answers a refused connection without waiting, closes it and counts it.
fn refuse(stream: TcpStream, which: Listener, why: Refusal, stats: &HttpStats) {
    // A fresh socket's send buffer is empty: the answer fits whole, or the client is gone.
    let _ = stream.try_write(why.response(which).as_bytes());
    drop(stream);
    stats.connections.refused(which, why);
}

/// Connection metrics of both listeners, by `listener` (`gateway`, `api`).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: Family<Vec<(&'static str, &'static str)>, Gauge>,
    refused: Family<Vec<(&'static str, &'static str)>, Counter>,
    header_timeouts: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl ConnectionStats {
    fn open(&self, which: Listener) -> Gauge {
        self.open
            .get_or_create(&vec![("listener", label(which))])
            .clone()
    }

    fn refused(&self, which: Listener, why: Refusal) {
        self.refused
            .get_or_create(&vec![("listener", label(which)), ("reason", why.label())])
            .inc();
    }

    fn header_timeouts(&self, which: Listener) -> Counter {
        self.header_timeouts
            .get_or_create(&vec![("listener", label(which))])
            .clone()
    }

    /// Registers `http_connections_open`, `http_connections_refused` and
    /// `http_header_read_timeouts` (see the table in [`crate::http::metrics`]).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "http_connections_open",
            "HTTP connections open, by listener",
            self.open.clone(),
        );
        r.register(
            "http_connections_refused",
            "HTTP connections refused before a request was read, by listener and reason \
             (per_ip: max_connections_per_ip, full: max_connections)",
            self.refused.clone(),
        );
        r.register(
            "http_header_read_timeouts",
            "HTTP connections closed by header_read_timeout_secs (idle keep-alive, slow heads), \
             by listener",
            self.header_timeouts.clone(),
        );
    }
}

fn label(which: Listener) -> &'static str {
    match which {
        Listener::Gateway => "gateway",
        Listener::Api => "api",
    }
}
