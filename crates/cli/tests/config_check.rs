//! `hydrant config check` and `hydrant daemon` refuse a configuration that would serve nothing
//! or expose the admin API, with one message that names the field, the value and the safe
//! range (issue 5). The per-value messages are tested in `hydrant_node::config`; this checks
//! what an operator sees from the binary.

use std::path::Path;
use std::process::{Command, Output};

const HYDRANT: &str = env!("CARGO_BIN_EXE_hydrant");

fn hydrant(args: &[&str], repo: &Path) -> Output {
    Command::new(HYDRANT)
        .args(args)
        .arg("--repo")
        .arg(repo)
        .env_remove("HYDRANT_REPO")
        .output()
        .unwrap()
}

#[test]
fn refused_values_are_explained_once_by_config_check_and_at_daemon_start() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(hydrant(&["init"], &repo).status.success());
    let check = hydrant(&["config", "check"], &repo);
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid"));
    let json = |out: &Output| -> serde_json::Value { serde_json::from_slice(&out.stdout).unwrap() };
    let check = hydrant(&["config", "check", "--json"], &repo);
    assert!(check.status.success());
    assert_eq!(json(&check)["valid"], true);

    for (config, field, range) in [
        (
            "[bitswap]\nwrite_timeout_secs = 0\n",
            "bitswap.write_timeout_secs = 0 is refused",
            "use 1 to 3600 seconds",
        ),
        (
            "[api]\nlisten = \"0.0.0.0:5001\"\n",
            "api.listen = 0.0.0.0:5001 is refused",
            "set api.token_file",
        ),
        (
            "[swarm]\nmax_connections = 0\n",
            "swarm.max_connections = 0 is refused",
            "use at least 1",
        ),
    ] {
        std::fs::write(repo.join("config.toml"), config).unwrap();
        for command in [&["config", "check"][..], &["daemon"][..]] {
            let out = hydrant(command, &repo);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command:?} with {config}: {stderr}"
            );
            assert!(stderr.contains("config.toml"), "names the file: {stderr}");
            assert_eq!(stderr.matches(field).count(), 1, "said once: {stderr}");
            assert!(stderr.contains(range), "gives the safe range: {stderr}");
        }
        let check = hydrant(&["config", "check", "--json"], &repo);
        assert_eq!(check.status.code(), Some(1));
        let report = json(&check);
        assert_eq!(report["valid"], false);
        let refused = format!(
            "{} = {} is refused",
            report["field"].as_str().unwrap(),
            report["value"].as_str().unwrap()
        );
        assert_eq!(refused, field, "{report}");
        assert!(
            report["reason"].as_str().unwrap().contains(range),
            "{report}"
        );
    }
}
