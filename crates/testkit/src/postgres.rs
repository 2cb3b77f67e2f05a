//! [`TempPostgres`]: a private, throw-away PostgreSQL cluster for tests, and the choice
//! between it and an external server.
//!
//! [`postgres_server`] returns the server named by the `HYDRANT_PG_URL` environment variable when
//! it is set, else starts a [`TempPostgres`]: `initdb` + `pg_ctl start` from the PostgreSQL
//! server binaries (`/usr/lib/postgresql/<version>/bin`, the newest version, or the directory
//! in `HYDRANT_PG_BIN`), data and Unix socket in a temporary directory, `trust` auth, no TCP
//! listener, stopped and deleted on drop. When the process runs as root (PostgreSQL refuses
//! root) the binaries run as the `postgres` system user through `runuser`. Without binaries
//! and without `HYDRANT_PG_URL` it fails with [`POSTGRES_HINT`]: tests that need PostgreSQL
//! fail rather than silently skip.
//!
//! Tests isolate themselves with a fresh schema per store ([`unique_schema`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// What to do when no PostgreSQL server can be found.
pub const POSTGRES_HINT: &str = "PostgreSQL server binaries not found under \
    /usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: `apt-get install -y postgresql`; \
    scripts/test.sh does it when run as root), or set HYDRANT_PG_BIN to the directory holding \
    initdb and pg_ctl, or set HYDRANT_PG_URL to the connection string of a server to use";

/// Port number of the cluster. With no TCP listener it only names the socket file
/// (`<dir>/.s.PGSQL.5432`) inside the cluster's private directory, so clusters never collide.
const PORT: u16 = 5432;

/// A PostgreSQL cluster private to the test that started it; stopped (fast shutdown) and its
/// directory deleted on drop.
#[derive(Debug)]
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    running: bool,
}

impl TempPostgres {
    /// The directory of the server binaries: `HYDRANT_PG_BIN` if set, else the newest
    /// `/usr/lib/postgresql/<version>/bin` holding `initdb`; `None` when there is none.
    pub fn find_bin_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("HYDRANT_PG_BIN") {
            return Some(PathBuf::from(dir));
        }
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    /// Creates and starts a cluster (takes a second or two; blocks the calling thread).
    ///
    /// # Errors
    /// A message when the binaries are missing ([`POSTGRES_HINT`]) or `initdb`/`pg_ctl` fail
    /// (with their output and the tail of the server log).
    pub fn start() -> Result<Self, String> {
        Self::start_from(Self::find_bin_dir())
    }

    /// [`start`](Self::start) with the binaries in `bin` (`None`: there are none).
    fn start_from(bin: Option<PathBuf>) -> Result<Self, String> {
        let bin = bin
            .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
            .ok_or_else(|| POSTGRES_HINT.to_owned())?;
        let dir = tempfile::Builder::new()
            .prefix("hydrant-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let as_postgres = is_root();
        if as_postgres {
            crate::run(Command::new("chown").arg("postgres:").arg(dir.path()))
                .map_err(|e| format!("chown of the cluster directory to postgres: {e}"))?;
        }
        let mut cluster = Self {
            dir,
            bin,
            as_postgres,
            running: false,
        };
        let data = cluster.data_dir();
        crate::run(cluster.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]))
        .map_err(|e| format!("initdb: {e}"))?;
        cluster.restart()?;
        Ok(cluster)
    }

    /// Starts the server again after [`stop`](Self::stop), on the same socket and data (a no-op
    /// when running). Fault tests take the database away and bring it back with this.
    ///
    /// # Errors
    /// A message with `pg_ctl`'s output and the tail of the server log when it does not start.
    pub fn restart(&mut self) -> Result<(), String> {
        if self.running {
            return Ok(());
        }
        let options = format!(
            "-p {PORT} -k {} -c listen_addresses='' -c fsync=off -c max_connections=200",
            self.socket_dir().display()
        );
        let log = self.dir.path().join("server.log");
        let started = crate::run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
        if let Err(e) = started {
            let tail = crate::log_tail(&log, 50);
            return Err(format!("pg_ctl start: {e}\n{}:\n{tail}", log.display()));
        }
        self.running = true;
        Ok(())
    }

    /// Connection string of the cluster's `postgres` database as user `postgres`
    /// (`host=<socket dir> port=5432 user=postgres dbname=postgres`).
    pub fn url(&self) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname=postgres",
            self.socket_dir().display()
        )
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server (fast shutdown: sessions are disconnected) and waits for it; a no-op
    /// when already stopped.
    ///
    /// # Errors
    /// A message when `pg_ctl stop` fails.
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Ok(());
        }
        crate::run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "60", "stop"]),
        )
        .map_err(|e| format!("pg_ctl stop: {e}"))?;
        self.running = false;
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("hydrant-testkit postgres: {e}");
        }
    }
}

/// The server a test uses: external (`HYDRANT_PG_URL`) or a private [`TempPostgres`].
#[derive(Debug)]
pub enum PostgresServer {
    /// The server named by `HYDRANT_PG_URL` (its connection string).
    External(String),
    /// A cluster started for this test.
    Cluster(TempPostgres),
}

impl PostgresServer {
    /// The connection string to pass to `hydrant_pg::PgPool::connect`.
    pub fn url(&self) -> String {
        match self {
            Self::External(url) => url.clone(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    /// The private cluster, if this is one (tests that stop the server need it).
    pub fn cluster(&mut self) -> Option<&mut TempPostgres> {
        match self {
            Self::External(_) => None,
            Self::Cluster(cluster) => Some(cluster),
        }
    }
}

/// `HYDRANT_PG_URL` if set and not empty, else a freshly started [`TempPostgres`].
///
/// # Errors
/// As [`TempPostgres::start`] (with [`POSTGRES_HINT`] when no binaries are found).
pub fn postgres_server() -> Result<PostgresServer, String> {
    match std::env::var("HYDRANT_PG_URL") {
        Ok(url) if !url.is_empty() => Ok(PostgresServer::External(url)),
        _ => TempPostgres::start().map(PostgresServer::Cluster),
    }
}

/// A schema name unique to this process and call (`<prefix>_<pid>_<nanos>_<n>`), so tests
/// sharing an external server do not see each other's tables.
pub fn unique_schema(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_fail_with_the_install_hint() {
        for bin in [None, Some(PathBuf::from("/nonexistent/hydrant-pg-bin"))] {
            let err = TempPostgres::start_from(bin).expect_err("no binaries");
            assert!(err.contains("apt-get install -y postgresql"), "{err}");
        }
    }

    #[test]
    fn unique_schemas_differ() {
        assert_ne!(unique_schema("t"), unique_schema("t"));
    }
}
