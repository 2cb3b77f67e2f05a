//! The process's file-descriptor limit, checked at start-up against what the configured
//! connection limits may hold ([`Config::descriptors_needed`]).
//!
//! Every connection (libp2p or HTTP) is a descriptor. When the process runs out, `accept`
//! fails with `EMFILE` on *every* listener: one client holding a thousand idle connections
//! would make `/healthz` unreachable too. So the limits are set so that their sum stays below
//! the process limit, each listener refuses connections past its own limit explicitly, and the
//! node refuses to start when the sum does not fit, naming the numbers to change.

use crate::NodeError;
use crate::config::Config;

/// The descriptor limit in effect after [`ensure`]: `(soft limit, descriptors needed)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The process's soft `RLIMIT_NOFILE`, after raising it.
    pub limit: u64,
    /// What the configuration may hold at once.
    pub needed: u64,
}

/// Raises the soft descriptor limit to the hard limit (as Go's runtime does; the soft default
/// of 1,024 dates from `select(2)`, which nothing here uses), then checks that the configured
/// limits fit under it.
///
/// # Errors
/// [`NodeError::Descriptors`] when they do not, with every term of the sum and the two ways
/// out (raise the limit, or lower the connection limits).
pub fn ensure(config: &Config) -> Result<Descriptors, NodeError> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        // Not a Unix-like limit we can read: nothing to check against.
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file descriptor limit; not checked");
            return Ok(Descriptors {
                limit: u64::MAX,
                needed: 0,
            });
        }
    };
    check(config, limit)
}

/// [`ensure`] once the limit is known.
fn check(config: &Config, limit: u64) -> Result<Descriptors, NodeError> {
    let terms = config.descriptors_needed();
    let needed = terms.iter().map(|(_, n)| n).sum();
    if needed > limit {
        let sum = terms
            .iter()
            .map(|(what, n)| format!("{n} ({what})"))
            .collect::<Vec<_>>()
            .join(" + ");
        return Err(NodeError::Descriptors(format!(
            "the process may open {limit} file descriptors (ulimit -n; the hard limit), but the \
             connection limits may need {needed} = {sum}. Past the limit every listener fails \
             to accept, health checks included. Raise the limit (LimitNOFILE= in a systemd \
             unit, ulimit -Hn in a shell, --ulimit nofile= for Docker) or lower the connection \
             limits named above"
        )));
    }
    Ok(Descriptors { limit, needed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_needs_its_terms_summed_and_is_refused_under_them() {
        let config = Config::default();
        let needed: u64 = config.descriptors_needed().iter().map(|(_, n)| n).sum();
        // 1024 x (1 main swarm + 4 heads) + 2048 + 256 + 512.
        assert_eq!(needed, 1024 * 5 + 2048 + 256 + 512);
        assert_eq!(
            check(&config, needed).unwrap(),
            Descriptors {
                limit: needed,
                needed
            }
        );
        let refused = check(&config, 1024).unwrap_err().to_string();
        for part in [
            "1024 file descriptors",
            "swarm.max_connections x (1 + dht.heads) = 1024 x 5",
            "2048 (gateway.max_connections)",
            "256 (api.max_connections)",
            "LimitNOFILE=",
        ] {
            assert!(refused.contains(part), "{part:?} missing from: {refused}");
        }
    }

    #[test]
    fn heads_count_only_when_the_dht_runs() {
        let mut config = Config::default();
        config.dht.enabled = false;
        let swarms = &config.descriptors_needed()[0];
        assert_eq!(swarms.1, 1024);
    }
}
