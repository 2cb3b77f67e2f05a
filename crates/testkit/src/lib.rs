//! Test support only: real servers started privately by integration tests, no mocks, and the
//! workspace's shared test data.
//!
//! - [`TempGarage`]: a single-node [Garage](https://garagehq.deuxfleurs.fr) (the
//!   S3-compatible object store) with one bucket and one access key, on free loopback ports,
//!   data in a temporary directory; it can be stopped and restarted on the same ports and data
//!   (fault tests). The binary comes from `scripts/garage.sh` (see [`GARAGE_HINT`]).
//! - [`Haproxy`]: a TCP load balancer (Debian's `haproxy`) in front of [`Backend`]s, with HTTP
//!   readiness checks (`GET /readyz`), on a free loopback port (see [`HAPROXY_HINT`]).
//! - [`TempPostgres`]: a PostgreSQL cluster (`initdb` + `pg_ctl`) on a Unix socket in a
//!   temporary directory, which can be stopped and restarted (fault tests); or, through
//!   [`postgres_server`], the external server named by `HYDRANT_PG_URL` (see [`POSTGRES_HINT`]),
//!   with [`unique_schema`] to keep tests sharing it apart.
//! - [`fixture`], [`valid_fixture_cars`], [`BAD_FIXTURE_CARS`]: the CAR files under
//!   `testdata/fixtures` (made by other projects), read from the workspace root.
//!
//! The servers run as child processes of the test, log to a file in their temporary directory
//! (its tail is part of every error) and are stopped and cleaned up on drop. Starting them
//! blocks the calling thread. When a server cannot be found the harness fails with a hint on
//! how to install it: tests that need a server fail rather than silently skip.

mod fixtures;
mod garage;
mod haproxy;
mod postgres;

pub use fixtures::{BAD_FIXTURE_CARS, fixture, fixtures_dir, valid_fixture_cars};
pub use garage::{GARAGE_HINT, TempGarage};
pub use haproxy::{Backend, HAPROXY_HINT, Haproxy};
pub use postgres::{POSTGRES_HINT, PostgresServer, TempPostgres, postgres_server, unique_schema};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// `n` distinct free TCP ports on 127.0.0.1 (all bound at once, then released).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("binding a free port on 127.0.0.1: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading a bound port: {e}"))
}

/// The last `lines` lines of the file at `path` (empty when unreadable).
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `n` random bytes from the kernel, hex-encoded.
fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Status code of an HTTP/1.0 `GET path` to `addr`; `None` when it cannot be had within a
/// second or so.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let timeout = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.x NNN"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Polls `ready` every 100 ms until it holds (`Ok`), `child` exits or `timeout` passes (`Err`
/// naming `what`).
fn wait_ready(
    child: &mut Child,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("{what}: the server exited ({status})")),
            Ok(None) => {}
            Err(e) => return Err(format!("{what}: waiting for the server: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not ready after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops `child`: SIGTERM, then SIGKILL if it is still running after `grace` (at once when
/// `grace` is zero); reaps it.
fn terminate(child: &mut Child, grace: Duration) -> Result<(), String> {
    if child.try_wait().ok().flatten().is_some() {
        return Ok(());
    }
    if !grace.is_zero() {
        // std offers SIGKILL only; `kill(1)` sends SIGTERM without unsafe code.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for pid {}: {e}", child.id())),
        }
    }
    child
        .kill()
        .and_then(|()| child.wait().map(drop))
        .map_err(|e| format!("killing pid {}: {e}", child.id()))
}

/// Every regular file under `root`, as (path relative to `root`, size in bytes), sorted by
/// path; a directory that does not exist (yet) holds nothing. For tests that look for stray
/// bytes in an object store's directory.
///
/// # Panics
/// When a directory entry cannot be read.
pub fn files_under(root: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                let name = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                out.push((name, entry.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// Runs `command`; an error carries its status and output.
fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{:?} failed ({}): {}{}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
