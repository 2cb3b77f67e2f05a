//! What the admin API's handlers share ([`ApiState`]) and its bearer token ([`ApiToken`]): its
//! own module so that the metrics and memory reports read the state without importing the
//! router that serves them.

use std::sync::Arc;

use axum::http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError, MIN_API_TOKEN_LEN};
use crate::http::health::Health;
use crate::p2p::dht::DhtService;
use crate::repo::DaemonInfo;
use crate::stores::services::Services;
use hydrant_bitswap::BitswapHandle;

/// The API's bearer token, read from `api.token_file` at start-up. Neither `Debug` nor any
/// error message shows it.
#[derive(Clone)]
pub struct ApiToken {
    token: Arc<str>,
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// The token of `api.token_file` of `repo` (resolved against the repository directory),
    /// or `None` when no file is configured.
    ///
    /// # Errors
    /// A [`ConfigError`] for `api.token_file` when the file cannot be read or its first line
    /// is not a usable token (see [`ApiToken::parse`]).
    pub fn load(repo: &crate::repo::Repo) -> Result<Option<Self>, ConfigError> {
        let file = &repo.config.api.token_file;
        if file.as_os_str().is_empty() {
            return Ok(None);
        }
        let path = repo.resolve(file);
        let refuse = |reason: String| ConfigError {
            field: "api.token_file",
            value: path.display().to_string(),
            reason,
        };
        crate::repo::warn_if_exposed(&path, "API token");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| refuse(format!("cannot read the token file: {e}")))?;
        Self::parse(&text).map(Some).map_err(refuse)
    }

    /// The token on the first line of `text` (surrounding whitespace removed).
    ///
    /// # Errors
    /// A message (never containing the token) when the line is shorter than
    /// [`MIN_API_TOKEN_LEN`] characters or holds anything but visible ASCII.
    pub fn parse(text: &str) -> Result<Self, String> {
        let token = text.lines().next().unwrap_or_default().trim();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the token (first line) must be visible ASCII characters without \
                 spaces, e.g. the output of `openssl rand -hex 32`"
                    .into(),
            );
        }
        if token.len() < MIN_API_TOKEN_LEN {
            return Err(format!(
                "the token (first line) has {} characters, fewer than {MIN_API_TOKEN_LEN}; \
                 write a longer one, e.g. the output of `openssl rand -hex 32`",
                token.len()
            ));
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
            token: token.into(),
        })
    }

    /// The `Authorization` header value a client sends: `Bearer <token>`, marked sensitive.
    pub fn authorization(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .expect("the token is visible ASCII");
        value.set_sensitive(true);
        value
    }

    /// Whether an `Authorization` header value carries this token (`Bearer`, any case). The
    /// comparison takes the same time wherever the values differ.
    pub fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(presented) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = digest
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// What the API handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) services: Services,
    pub(crate) info: Arc<DaemonInfo>,
    pub(crate) max_upload_bytes: u64,
    pub(crate) request_timeout: std::time::Duration,
    pub(crate) upload_idle_timeout: std::time::Duration,
    pub(crate) announce_roots: bool,
    /// Where uploads that must be spilled before they are ingested wait (the repository).
    pub(crate) spill_dir: std::path::PathBuf,
    /// The DHT, when enabled.
    pub dht: Option<Arc<DhtService>>,
    /// The Bitswap server (for its counters).
    pub bitswap: Arc<BitswapHandle>,
    /// Liveness and readiness.
    pub health: Arc<Health>,
    /// Request metrics of both HTTP listeners (the daemon hands the gateway's layer a clone).
    pub http: Arc<crate::http::HttpStats>,
    /// The bearer token every route but `/healthz` and `/readyz` requires, when configured.
    pub(crate) token: Option<Arc<ApiToken>>,
    /// Pub/sub, when `[pubsub] enabled`.
    pub pubsub: Option<crate::p2p::pubsub::PubSub>,
    /// Pub/sub's fan-out to the other replicas (for its counters), when on PostgreSQL.
    pub(crate) pubsub_bus: Option<Arc<hydrant_pg::PubSubBus>>,
    /// Dials from the main swarm (`swarm/connect`); `None` outside a daemon.
    pub(crate) dialer: Option<hydrant_dht::ChannelDialer>,
}

impl ApiState {
    /// The state of a daemon's API; `spill_dir` is the repository directory.
    pub fn new(
        services: Services,
        info: DaemonInfo,
        config: &Config,
        spill_dir: std::path::PathBuf,
        dht: Option<Arc<DhtService>>,
        bitswap: Arc<BitswapHandle>,
        health: Arc<Health>,
    ) -> Self {
        ApiState {
            services,
            info: Arc::new(info),
            max_upload_bytes: config.api.max_upload_bytes,
            request_timeout: std::time::Duration::from_secs(config.api.request_timeout_secs),
            upload_idle_timeout: std::time::Duration::from_secs(
                config.api.upload_idle_timeout_secs,
            ),
            announce_roots: config.dht.announce_roots,
            spill_dir,
            dht,
            bitswap,
            health,
            http: Arc::default(),
            token: None,
            pubsub: None,
            pubsub_bus: None,
            dialer: None,
        }
    }

    /// Requires `token` on every route but `/healthz` and `/readyz` (`None`: no token).
    pub fn with_token(mut self, token: Option<ApiToken>) -> Self {
        self.token = token.map(Arc::new);
        self
    }

    /// Serves pub/sub through `pubsub` (`None`: the pubsub calls answer Kubo's "not enabled");
    /// `bus` is its fan-out to the other replicas, whose counters `/metrics` reports.
    pub fn with_pubsub(
        mut self,
        pubsub: Option<crate::p2p::pubsub::PubSub>,
        bus: Option<Arc<hydrant_pg::PubSubBus>>,
    ) -> Self {
        self.pubsub = pubsub;
        self.pubsub_bus = bus;
        self
    }

    /// Dials peers for `swarm/connect` through `dialer` (the main swarm's).
    pub(crate) fn with_dialer(mut self, dialer: hydrant_dht::ChannelDialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// The services the API serves from.
    pub fn services(&self) -> &Services {
        &self.services
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_checked_and_never_shown() {
        let token = ApiToken::parse("0123456789abcdef0123\nsecond line ignored\n").unwrap();
        assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
        let good = HeaderValue::from_static("Bearer 0123456789abcdef0123");
        assert!(token.accepts(Some(&good)));
        assert!(token.accepts(Some(&HeaderValue::from_static(
            "bearer 0123456789abcdef0123"
        ))));
        for bad in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "Basic 0123456789abcdef0123",
            "0123456789abcdef0123",
            "Bearer",
        ] {
            assert!(
                !token.accepts(Some(&HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
        assert!(!token.accepts(None));
        assert_eq!(token.authorization(), good);
        assert!(token.authorization().is_sensitive());

        let short = ApiToken::parse("tooshort\n").unwrap_err();
        assert!(short.contains("fewer than 16"), "{short}");
        assert!(
            !short.contains("tooshort"),
            "the message must not show the token"
        );
        let spaced = ApiToken::parse("has a space inside it\n").unwrap_err();
        assert!(spaced.contains("visible ASCII"), "{spaced}");
        assert!(ApiToken::parse("").is_err());
    }

    #[test]
    fn token_file_problems_are_refused_config_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = crate::repo::Repo {
            dir: dir.path().to_owned(),
            config: Config::default(),
            keypair: libp2p::identity::Keypair::generate_ed25519(),
        };
        assert!(
            ApiToken::load(&repo).unwrap().is_none(),
            "no file, no token"
        );

        repo.config.api.token_file = "missing-token".into();
        let err = ApiToken::load(&repo).unwrap_err();
        assert_eq!(err.field, "api.token_file");
        assert!(
            err.to_string()
                .contains("missing-token is refused: cannot read the token file"),
            "{err}"
        );

        std::fs::write(dir.path().join("short"), "s3cret\n").unwrap();
        repo.config.api.token_file = "short".into();
        let err = ApiToken::load(&repo).unwrap_err();
        assert!(
            err.to_string()
                .contains("the token (first line) has 6 characters, fewer than 16"),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");

        let absolute = dir.path().join("good");
        std::fs::write(&absolute, "  0123456789abcdef  \n").unwrap();
        repo.config.api.token_file = absolute;
        let token = ApiToken::load(&repo).unwrap().expect("a token");
        assert!(token.accepts(Some(&HeaderValue::from_static("Bearer 0123456789abcdef"))));
    }
}
