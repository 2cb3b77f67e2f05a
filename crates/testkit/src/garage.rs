//! [`TempGarage`]: a private single-node Garage (S3-compatible object store).

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The Garage version `scripts/garage.sh` builds.
const VERSION: &str = "2.5.0";

/// What to do when no Garage binary is found.
pub const GARAGE_HINT: &str = "Garage binary not found: run `scripts/garage.sh` (builds garage \
    2.5.0 once into ~/.cache/hydrant, ~11 min, and prints its path; scripts/test.sh does it), \
    or set GARAGE_BIN to a garage 2.x binary";

/// The S3 region of the instance.
const REGION: &str = "garage";
/// The bucket created at start.
const BUCKET: &str = "hydrant";
/// The name of the access key created at start.
const KEY_NAME: &str = "hydrant-test";
/// How long the server may take to start (or restart) and become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A single-node Garage private to the test that started it: free 127.0.0.1 ports (RPC, S3
/// API, admin API), metadata (SQLite) and data in a temporary directory, one bucket
/// ([`bucket`](Self::bucket)) that one access key may read, write and own. Killed and its
/// directory deleted on drop.
#[derive(Debug)]
pub struct TempGarage {
    dir: tempfile::TempDir,
    bin: PathBuf,
    s3_addr: SocketAddr,
    admin_addr: SocketAddr,
    admin_token: String,
    metrics_token: String,
    access_key_id: String,
    secret_access_key: String,
    child: Option<Child>,
}

impl TempGarage {
    /// The Garage binary: `GARAGE_BIN` if set, else `garage-2.5.0/bin/garage` under
    /// `HYDRANT_CACHE` (default `~/.cache/hydrant`), where `scripts/garage.sh` puts it; `None`
    /// when there is none.
    pub fn find_bin() -> Option<PathBuf> {
        let bin = match std::env::var_os("GARAGE_BIN").filter(|v| !v.is_empty()) {
            Some(bin) => PathBuf::from(bin),
            None => {
                let cache = match std::env::var_os("HYDRANT_CACHE").filter(|v| !v.is_empty()) {
                    Some(cache) => PathBuf::from(cache),
                    None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/hydrant"),
                };
                cache.join(format!("garage-{VERSION}/bin/garage"))
            }
        };
        bin.is_file().then_some(bin)
    }

    /// Configures and starts the node, applies its one-node layout, creates the access key and
    /// the bucket (a few seconds; blocks the calling thread).
    ///
    /// # Errors
    /// A message when the binary is missing ([`GARAGE_HINT`]), the server does not become
    /// healthy (with its log) or a `garage` command fails (with its output).
    pub fn start() -> Result<Self, String> {
        Self::start_with(Self::find_bin())
    }

    fn start_with(bin: Option<PathBuf>) -> Result<Self, String> {
        let bin = bin
            .filter(|bin| bin.is_file())
            .ok_or_else(|| GARAGE_HINT.to_owned())?;
        let dir = tempfile::Builder::new()
            .prefix("hydrant-garage-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let ports = crate::free_ports(3)?;
        let [rpc_addr, s3_addr, admin_addr] =
            [ports[0], ports[1], ports[2]].map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        let mut garage = Self {
            bin,
            s3_addr,
            admin_addr,
            admin_token: crate::random_hex(32)?,
            metrics_token: crate::random_hex(32)?,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            child: None,
            dir,
        };
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_secret = "{rpc_secret}"
rpc_bind_addr = "{rpc_addr}"
rpc_public_addr = "{rpc_addr}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "{s3_addr}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "{admin_addr}"
admin_token = "{admin_token}"
metrics_token = "{metrics_token}"
"#,
            meta = garage.dir.path().join("meta").display(),
            data = garage.dir.path().join("data").display(),
            rpc_secret = crate::random_hex(32)?,
            admin_token = garage.admin_token,
            metrics_token = garage.metrics_token,
        );
        let config_path = garage.config_path();
        std::fs::write(&config_path, config)
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;

        garage.spawn()?;
        garage.setup().map_err(|e| garage.with_log(&e))?;
        Ok(garage)
    }

    /// Waits for the freshly started node, applies its layout, creates the key and bucket.
    fn setup(&mut self) -> Result<(), String> {
        // The RPC server answers before the layout exists; `/health` only after.
        let (bin, config) = (self.bin.clone(), self.config_path());
        self.wait(|| cli(&bin, &config, &["status"]).is_ok())?;
        let node_id = self.cli(&["node", "id", "--quiet"])?;
        let node_id = node_id.split('@').next().unwrap_or_default().trim();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", node_id])?;
        self.cli(&["layout", "apply", "--version", "1"])?;
        self.wait_healthy()?;

        let key = self.cli(&["key", "create", KEY_NAME])?;
        self.access_key_id = field(&key, "Key ID:")?;
        self.secret_access_key = field(&key, "Secret key:")?;
        self.cli(&["bucket", "create", BUCKET])?;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_NAME,
        ])?;
        Ok(())
    }

    /// The S3 endpoint (`http://127.0.0.1:<port>`; path-style requests, plain HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3_addr)
    }

    /// The S3 region (`garage`).
    pub fn region(&self) -> &str {
        REGION
    }

    /// The bucket (`hydrant`).
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The access key id (`GK…`) allowed to read, write and own the bucket.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret of [`access_key_id`](Self::access_key_id).
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The admin API endpoint (`http://127.0.0.1:<port>`; `GET /health` needs no token).
    pub fn admin_endpoint(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Bearer token of the admin API.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Bearer token of the admin API's `GET /metrics` (Prometheus).
    pub fn metrics_token(&self) -> &str {
        &self.metrics_token
    }

    /// Whether the server process is running (not stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The last lines of the server's log.
    pub fn log(&self) -> String {
        crate::log_tail(&self.log_path(), 40)
    }

    /// Stops the server (SIGTERM; SIGKILL after 10 s) and waits for it; a no-op when stopped.
    /// The data stays: [`restart`](Self::restart) brings it back.
    ///
    /// Garage stops accepting connections at once but keeps serving the open ones (an S3
    /// client's idle pooled connections too) for up to 10 s before it exits, so this takes
    /// 10 s while a client holds a connection; [`kill`](Self::kill) is immediate.
    ///
    /// # Errors
    /// A message when the process cannot be signalled or reaped.
    pub fn stop(&mut self) -> Result<(), String> {
        match self.child.take() {
            Some(mut child) => crate::terminate(&mut child, Duration::from_secs(10))
                .map_err(|e| format!("stopping garage: {e}")),
            None => Ok(()),
        }
    }

    /// Kills the server (SIGKILL: a crash, no graceful shutdown) and waits for it; a no-op
    /// when stopped. The data stays: [`restart`](Self::restart) brings it back.
    ///
    /// # Errors
    /// A message when the process cannot be killed or reaped.
    pub fn kill(&mut self) -> Result<(), String> {
        match self.child.take() {
            Some(mut child) => crate::terminate(&mut child, Duration::ZERO)
                .map_err(|e| format!("killing garage: {e}")),
            None => Ok(()),
        }
    }

    /// Starts the server again on the same ports and data, and waits until it is healthy;
    /// stops it first if it is running.
    ///
    /// # Errors
    /// A message when it does not become healthy (with its log).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop()?;
        self.spawn()?;
        self.wait_healthy().map_err(|e| self.with_log(&e))
    }

    /// Spawns `garage server`, appending its output to the log.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.log_path();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cloning a file handle: {e}"))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `ready` holds; kills the server when it does not.
    fn wait(&mut self, ready: impl FnMut() -> bool) -> Result<(), String> {
        let result = match self.child.as_mut() {
            Some(child) => crate::wait_ready(child, "garage server", START_TIMEOUT, ready),
            None => Err("garage is not running".to_owned()),
        };
        if result.is_err() {
            let _ = self.kill();
        }
        result
    }

    /// `error` followed by the tail of the server's log.
    fn with_log(&self, error: &str) -> String {
        format!("{error}\n{}:\n{}", self.log_path().display(), self.log())
    }

    /// Waits until the admin API's `GET /health` answers 200 (the layout is applied and every
    /// partition has its quorum).
    fn wait_healthy(&mut self) -> Result<(), String> {
        let admin = self.admin_addr;
        self.wait(move || crate::http_status(admin, "/health") == Some(200))
    }

    /// Runs `garage -c <config> <args>`; its standard output, or an error with its output.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        cli(&self.bin, &self.config_path(), args)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }
}

impl Drop for TempGarage {
    fn drop(&mut self) {
        // The data is deleted next: no point in a graceful (up to 10 s) shutdown.
        if let Err(e) = self.kill() {
            eprintln!("hydrant-testkit garage: {e}");
        }
    }
}

/// Runs `<bin> -c <config> <args>`; its standard output, or an error with its output.
fn cli(bin: &Path, config: &Path, args: &[&str]) -> Result<String, String> {
    let output = crate::run(
        Command::new(bin)
            .arg("-c")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "warn"),
    )?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The value after `label` on its line of `output` (`Key ID: GK…`).
fn field(output: &str, label: &str) -> Result<String, String> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("no {label:?} in the output of garage:\n{output}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_fails_with_the_hint() {
        for bin in [None, Some(PathBuf::from("/nonexistent/garage"))] {
            let err = TempGarage::start_with(bin).expect_err("no binary");
            assert!(err.contains("scripts/garage.sh"), "{err}");
        }
    }

    #[test]
    fn fields_are_found_on_their_line() {
        let out = "==== ACCESS KEY INFORMATION ====\nKey ID:              GK123\n\
                   Secret key:          abc\n";
        assert_eq!(field(out, "Key ID:").unwrap(), "GK123");
        assert_eq!(field(out, "Secret key:").unwrap(), "abc");
        assert!(field(out, "Key name:").is_err());
    }
}
