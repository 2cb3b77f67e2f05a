//! [`Haproxy`]: a real TCP load balancer in front of test servers.

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The HAProxy binary (Debian's `haproxy` package).
const HAPROXY_BIN: &str = "/usr/sbin/haproxy";

/// What to do when HAProxy is missing.
pub const HAPROXY_HINT: &str = "HAProxy not found at /usr/sbin/haproxy: install it \
    (Debian/Ubuntu: `apt-get install -y haproxy`; scripts/test.sh does it when run as root)";

/// One server behind the load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Where the TCP traffic goes.
    pub addr: SocketAddr,
    /// Port on 127.0.0.1 of the server's HTTP readiness check (`GET /readyz`, ready when it
    /// answers 200, probed every 500 ms; two failures take the server out of rotation, two
    /// successes bring it back). `None`: never checked, always in rotation.
    pub check_url_port: Option<u16>,
}

/// A private HAProxy (`mode tcp`, round robin) listening on a free 127.0.0.1 port; killed on
/// drop, its directory (configuration, log) deleted.
///
/// Client and server timeouts are 10 minutes (libp2p connections are long-lived), connect 2 s;
/// a connection to a server that refuses it is retried (3 times) on another one.
#[derive(Debug)]
pub struct Haproxy {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Child,
}

impl Haproxy {
    /// Starts HAProxy in front of `backends` and waits until its frontend accepts connections.
    ///
    /// # Errors
    /// A message when the binary is missing ([`HAPROXY_HINT`]), `backends` is empty, or the
    /// process fails to start (with its log).
    pub fn start(backends: &[Backend]) -> Result<Self, String> {
        Self::start_with(Path::new(HAPROXY_BIN), backends)
    }

    fn start_with(bin: &Path, backends: &[Backend]) -> Result<Self, String> {
        if !bin.is_file() {
            return Err(HAPROXY_HINT.to_owned());
        }
        if backends.is_empty() {
            return Err("haproxy: no backends".to_owned());
        }
        let dir = tempfile::Builder::new()
            .prefix("hydrant-haproxy-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let ports = crate::free_ports(2)?;
        let [addr, monitor] = [ports[0], ports[1]].map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, config_text(addr, monitor, backends))
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let log = dir.path().join("haproxy.log");
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cloning a file handle: {e}"))?;
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut haproxy = Self { dir, addr, child };
        // Probing the frontend would open a connection to a backend: probe the monitor.
        let ready = crate::wait_ready(
            &mut haproxy.child,
            "haproxy",
            Duration::from_secs(10),
            || crate::http_status(monitor, "/healthz") == Some(200),
        );
        if let Err(e) = ready {
            return Err(format!("{e}\n{}:\n{}", log.display(), haproxy.log()));
        }
        Ok(haproxy)
    }

    /// The frontend's address: connect here to reach a backend.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last lines of HAProxy's log (server state changes, connections).
    pub fn log(&self) -> String {
        crate::log_tail(&self.log_path(), 50)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.log")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Err(e) = crate::terminate(&mut self.child, Duration::from_secs(2)) {
            eprintln!("hydrant-testkit haproxy: {e}");
        }
    }
}

/// The configuration: one `mode tcp` frontend at `addr`, one backend with `backends`, and a
/// `monitor` frontend answering `GET /healthz` with 200 once HAProxy runs.
fn config_text(addr: SocketAddr, monitor: SocketAddr, backends: &[Backend]) -> String {
    let mut text = format!(
        "\
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode tcp
    log global
    option tcplog
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout check 2s

frontend monitor
    mode http
    bind {monitor}
    monitor-uri /healthz

frontend hydrant
    bind {addr}
    default_backend servers

backend servers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
"
    );
    for (i, backend) in backends.iter().enumerate() {
        let _ = write!(text, "    server s{i} {}", backend.addr);
        if let Some(port) = backend.check_url_port {
            let _ = write!(
                text,
                " check addr 127.0.0.1 port {port} inter 500ms fall 2 rise 2"
            );
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_fails_with_the_install_hint() {
        let err =
            Haproxy::start_with(Path::new("/nonexistent/haproxy"), &[]).expect_err("no binary");
        assert!(err.contains("apt-get install -y haproxy"), "{err}");
    }

    #[test]
    fn servers_with_a_port_are_checked() {
        let text = config_text(
            "127.0.0.1:1000".parse().unwrap(),
            "127.0.0.1:1001".parse().unwrap(),
            &[
                Backend {
                    addr: "127.0.0.1:2000".parse().unwrap(),
                    check_url_port: Some(2001),
                },
                Backend {
                    addr: "127.0.0.1:3000".parse().unwrap(),
                    check_url_port: None,
                },
            ],
        );
        assert!(text.contains(
            "server s0 127.0.0.1:2000 check addr 127.0.0.1 port 2001 inter 500ms fall 2 rise 2\n"
        ));
        assert!(text.contains("server s1 127.0.0.1:3000\n"));
    }
}
