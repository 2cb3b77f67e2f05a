use super::*;

#[test]
fn default_file_parses_to_defaults() {
    let parsed = Config::from_toml(DEFAULT_CONFIG).expect("default config parses");
    assert_eq!(parsed, Config::default());
    parsed.validate().expect("defaults are valid");
}

#[test]
fn the_read_cache_defaults_by_storage_kind_and_an_explicit_value_wins() {
    let local = Config::default();
    assert_eq!(local.read_cache_bytes(), 0, "local storage: the page cache");
    let s3 = Config::from_toml("[storage]\nkind = \"s3\"\nbucket = \"b\"\n").unwrap();
    assert_eq!(s3.read_cache_bytes(), S3_READ_CACHE_BYTES);
    for (toml, bytes) in [
        ("[read]\ncache_bytes = 1048576\n", 1_048_576),
        (
            "[read]\ncache_bytes = 0\n[storage]\nkind = \"s3\"\nbucket = \"b\"\n",
            0,
        ),
    ] {
        assert_eq!(Config::from_toml(toml).unwrap().read_cache_bytes(), bytes);
    }
}

#[test]
fn read_ranges_default_by_storage_kind_and_an_explicit_value_wins() {
    assert_eq!(Config::default().read_max_range_bytes(), 2 * 1024 * 1024);
    let s3 = "[storage]\nkind = \"s3\"\nbucket = \"b\"\n";
    assert_eq!(
        Config::from_toml(s3).unwrap().read_max_range_bytes(),
        8 * 1024 * 1024
    );
    let set = Config::from_toml("[read]\nmax_range_bytes = 4194304\n").unwrap();
    assert_eq!(set.read_max_range_bytes(), 4 * 1024 * 1024);
    assert_eq!(Config::default().read_concurrent_reads(), 2);
    assert_eq!(Config::from_toml(s3).unwrap().read_concurrent_reads(), 8);
    let zero = Config::from_toml("[read]\nconcurrent_reads = 0\n").unwrap();
    assert_eq!(zero.validate().unwrap_err().field, "read.concurrent_reads");
}

#[test]
fn read_verify_defaults_by_storage_kind_and_an_explicit_value_wins() {
    assert!(
        !Config::default().read_verify(),
        "local: verified at ingest"
    );
    let s3 = "[storage]\nkind = \"s3\"\nbucket = \"b\"\n";
    assert!(Config::from_toml(s3).unwrap().read_verify());
    let on = Config::from_toml("[read]\nverify = true\n").unwrap();
    assert!(on.read_verify());
    let off = Config::from_toml(&format!("[read]\nverify = false\n{s3}")).unwrap();
    assert!(!off.read_verify());
}

#[test]
fn passwords_are_redacted_for_display() {
    assert_eq!(
        redact_password("postgresql://hydrant:s3cret@db:5432/hydrant"),
        "postgresql://hydrant:***@db:5432/hydrant"
    );
    assert_eq!(
        redact_password("host=/run/pg user=h password=s3cret dbname=x"),
        "host=/run/pg user=h password=*** dbname=x"
    );
    let c = Config::from_toml("[index]\nkind = \"postgres\"\nurl = \"postgresql://u:pw@h/db\"\n")
        .unwrap();
    let shown = toml::to_string(&c.redacted()).unwrap();
    assert!(!shown.contains("pw@"), "{shown}");
    assert!(!format!("{c:?}").contains("pw@"));
}

#[test]
fn s3_and_postgres_sections_parse_and_are_checked() {
    let c = Config::from_toml(
        "[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:3900\"\n\
         region = \"garage\"\npath_style = true\n\
         [index]\nkind = \"postgres\"\nurl = \"host=/tmp dbname=x\"\n\
         [providers]\nkind = \"postgres\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    let StorageConfig::S3(s3) = &c.storage else {
        panic!("not s3")
    };
    assert_eq!(s3.request_timeout_secs, 30, "defaults fill the rest");
    let typo = Config::from_toml("[storage]\nkind = \"s3\"\nbuckett = \"b\"\n").unwrap_err();
    assert!(typo.to_string().contains("buckett"), "{typo}");
    let err = Config::from_toml("[storage]\nkind = \"s3\"\n")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(err.field, "storage.bucket");
    let err = Config::from_toml("[providers]\nkind = \"postgres\"\n")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(err.field, "providers.kind");
    assert!(err.reason.contains("index.kind"), "{err}");
    let mut c = Config::default();
    c.filter.false_positive_rate = 0.0;
    assert_eq!(
        c.validate().unwrap_err().field,
        "filter.false_positive_rate"
    );
}

#[test]
fn unknown_field_is_refused_with_its_name() {
    let err = Config::from_toml("[swarm]\nlisten_on = []\n").unwrap_err();
    assert!(err.to_string().contains("listen_on"), "{err}");
}

#[test]
fn refused_values_explain_themselves() {
    let mut c = Config::default();
    c.read.max_range_bytes = Some(1024);
    let err = c.validate().unwrap_err();
    assert_eq!(err.field, "read.max_range_bytes");
    assert!(err.to_string().contains("2 MiB"), "{err}");

    let mut c = Config::default();
    c.swarm.listen.clear();
    assert_eq!(c.validate().unwrap_err().field, "swarm.listen");
}

#[test]
fn api_off_loopback_needs_a_token_file() {
    for listen in ["0.0.0.0:5001", "[::]:5001", "192.0.2.7:5001"] {
        let mut c = Config::default();
        c.api.listen = listen.parse().unwrap();
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "api.listen");
        assert!(
            err.to_string().contains(
                "the admin API and /metrics would be open to the network; keep api.listen \
                 on 127.0.0.1/::1 or set api.token_file"
            ),
            "{err}"
        );
        c.api.token_file = "api-token".into();
        c.validate()
            .expect("a token file makes any address acceptable");
    }
    let mut c = Config::default();
    c.api.listen = "[::1]:5001".parse().unwrap();
    c.validate().expect("IPv6 loopback needs no token");
}

/// Every refused `[limits]` and `[bitswap]` value, from the TOML an operator would write,
/// with the field and the explanation the operator sees.
#[test]
fn budget_and_bitswap_values_that_would_serve_nothing_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[limits]\nmemory_budget_bytes = 1048576",
            "limits.memory_budget_bytes",
            "below one message: at least 16777216 bytes",
        ),
        (
            "[limits]\nwantlists_percent = 0",
            "limits.wantlists_percent",
            "use 1 to 90 percent",
        ),
        (
            "[limits]\nwantlists_percent = 95",
            "limits.wantlists_percent",
            "use 1 to 90 percent",
        ),
        (
            "[limits]\ngateway_request_bytes = 1024",
            "limits.gateway_request_bytes",
            "at least one 2 MiB block",
        ),
        (
            "[limits]\nmemory_budget_bytes = 16777216\ngateway_request_bytes = 8388608",
            "limits.gateway_request_bytes",
            "at most half of the budget the wantlists' share leaves",
        ),
        (
            "[limits]\nmemory_budget_bytes = 16777216\nwantlists_percent = 50",
            "limits.wantlists_percent",
            "the part not kept for wantlists must hold one 4 MiB Bitswap message",
        ),
        (
            "[limits]\nbudget_wait_ms = 600000",
            "limits.budget_wait_ms",
            "use 0 to 60000 ms",
        ),
        (
            "[bitswap]\nmax_wantlist_entries = 0",
            "bitswap.max_wantlist_entries",
            "zero would ignore every want",
        ),
        (
            "[bitswap]\nmax_outstanding_bytes_per_peer = 1000",
            "bitswap.max_outstanding_bytes_per_peer",
            "at least one 2 MiB block",
        ),
        (
            "[bitswap]\nmax_inbound_streams = 0",
            "bitswap.max_inbound_streams",
            "zero would accept connections but answer no want",
        ),
        (
            "[bitswap]\nmax_inbound_streams_per_peer = 0",
            "bitswap.max_inbound_streams_per_peer",
            "zero would accept connections but answer no want",
        ),
        (
            "[bitswap]\nmax_inbound_streams = 8\nmax_inbound_streams_per_peer = 9",
            "bitswap.max_inbound_streams_per_peer",
            "must not exceed bitswap.max_inbound_streams",
        ),
        (
            "[bitswap]\nmax_concurrent_lookups = 0",
            "bitswap.max_concurrent_lookups",
            "zero would accept connections but answer no want",
        ),
        (
            "[bitswap]\nwrite_timeout_secs = 0",
            "bitswap.write_timeout_secs",
            "shorter than a round trip",
        ),
        (
            "[bitswap]\ninbound_idle_timeout_secs = 7200",
            "bitswap.inbound_idle_timeout_secs",
            "use 1 to 3600 seconds",
        ),
        (
            "[bitswap]\noutbound_idle_timeout_ms = 10",
            "bitswap.outbound_idle_timeout_ms",
            "use 100 to 60000 ms",
        ),
        (
            "[gateway]\nwrite_timeout_secs = 0",
            "gateway.write_timeout_secs",
            "use 1 to 3600 seconds (default 30): 0 would cut off",
        ),
        (
            "[gateway]\nwrite_timeout_secs = 3601",
            "gateway.write_timeout_secs",
            "use 1 to 3600 seconds",
        ),
        (
            "[gateway]\nmax_requests_per_ip = 0",
            "gateway.max_requests_per_ip",
            "use 1 to 65536 (default 16)",
        ),
        (
            "[gateway]\nmax_requests_per_ip = 65537",
            "gateway.max_requests_per_ip",
            "use 1 to 65536",
        ),
        (
            "[swarm]\nmax_connections = 0",
            "swarm.max_connections",
            "zero connections would accept nothing",
        ),
        (
            "[swarm]\nmax_connections_per_peer = 0",
            "swarm.max_connections_per_peer",
            "use 1 to swarm.max_connections",
        ),
        (
            "[swarm]\nmax_connections = 8\nmax_connections_per_peer = 16",
            "swarm.max_connections_per_peer",
            "use 1 to swarm.max_connections",
        ),
    ];
    for (toml, field, reason) in cases {
        let err = Config::from_toml(toml).unwrap().validate().expect_err(toml);
        assert_eq!(err.field, *field, "{toml}");
        let message = err.to_string();
        assert!(message.contains(reason), "{toml}: {message}");
        assert!(
            message.starts_with(&format!("config: {field} = ")),
            "{message}"
        );
    }
    // The smallest accepted budget serves: Bitswap takes it.
    let c = Config::from_toml("[limits]\nmemory_budget_bytes = 16777216").unwrap();
    c.validate().unwrap();
    let budget = c.limits.budget();
    assert_eq!(budget.limit(), 16 * 1024 * 1024);
    assert_eq!(
        budget.cap(hydrant_budget::Holder::BitswapWantlists),
        16 * 1024 * 1024 / 100 * 25
    );
}

#[test]
fn timeouts_are_refused_outside_one_second_to_an_hour() {
    type Setter = fn(&mut Config, u64);
    let set: [(&str, Setter); 4] = [
        ("api.upload_idle_timeout_secs", |c, v| {
            c.api.upload_idle_timeout_secs = v
        }),
        ("gateway.request_timeout_secs", |c, v| {
            c.gateway.request_timeout_secs = v
        }),
        ("api.request_timeout_secs", |c, v| {
            c.api.request_timeout_secs = v
        }),
        ("index.statement_timeout_secs", |c, v| {
            let IndexConfig::Postgres(pg) = &mut c.index else {
                unreachable!()
            };
            pg.statement_timeout_secs = v;
        }),
    ];
    for (field, apply) in set {
        let mut c =
            Config::from_toml("[index]\nkind = \"postgres\"\nurl = \"host=/tmp\"\n").unwrap();
        c.validate().expect("defaults are valid");
        for bad in [0, MAX_TIMEOUT_SECS + 1] {
            apply(&mut c, bad);
            let err = c.validate().unwrap_err();
            assert_eq!(err.field, field);
            assert!(
                err.to_string().contains(&format!(
                    "{field} = {bad} is refused: use 1 to 3600 seconds"
                )),
                "{err}"
            );
        }
        apply(&mut c, 1);
        c.validate().expect("1 s is accepted");
    }
    let c =
        Config::from_toml("[gateway]\nrequest_timeout_secs = 5\n[api]\nrequest_timeout_secs = 7\n")
            .unwrap();
    assert_eq!(
        (c.gateway.request_timeout_secs, c.api.request_timeout_secs),
        (5, 7)
    );
}

#[test]
fn gateway_public_url_becomes_an_http_provider_multiaddr_or_is_refused() {
    let with = |url: &str| GatewayConfig {
        public_url: Some(url.into()),
        ..GatewayConfig::default()
    };
    for (url, want) in [
        (
            "https://gw.example.net",
            "/dns/gw.example.net/tcp/443/https",
        ),
        (
            "https://GW.example.net/",
            "/dns/gw.example.net/tcp/443/https",
        ),
        ("http://203.0.113.5:8080", "/ip4/203.0.113.5/tcp/8080/http"),
        ("http://[2001:db8::1]:81", "/ip6/2001:db8::1/tcp/81/http"),
    ] {
        let got = with(url).public_multiaddr().unwrap().unwrap();
        assert_eq!(got.to_string(), want, "{url}");
    }
    assert_eq!(GatewayConfig::default().public_multiaddr().unwrap(), None);
    for bad in [
        "gw.example.net",
        "ftp://x",
        "https://x/ipfs",
        "https://u@x",
        "https://x:99999",
        "https://",
    ] {
        let config = Config {
            gateway: with(bad),
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, "gateway.public_url", "{bad}: {err}");
    }
}

#[test]
fn ipni_settings_are_validated() {
    let refused = |toml: &str| {
        Config::from_toml(toml)
            .unwrap()
            .validate()
            .unwrap_err()
            .field
    };
    assert_eq!(
        refused("[ipni]\nindexers = [\"ftp://idx\"]\n"),
        "ipni.indexers"
    );
    assert_eq!(
        refused("[ipni]\npoll_interval_ms = 0\n"),
        "ipni.poll_interval_ms"
    );
    assert_eq!(
        refused("[gateway]\nlisten = \"0.0.0.0:8080\"\n[ipni]\nindexers = [\"http://idx:3001\"]\n"),
        "ipni.announce_address"
    );
    let ok = Config::from_toml("[ipni]\nindexers = [\"http://127.0.0.1:3001\"]\n").unwrap();
    ok.validate().unwrap();
    assert!(ok.ipni.publishes(), "an indexer turns publishing on");
    assert!(!Config::default().ipni.publishes(), "off by default");
}

#[test]
fn fjall_caches_are_read_bounded_and_counted_in_the_descriptor_budget() {
    let c = Config::from_toml(
        "[index]\nkind = \"fjall\"\npath = \"idx\"\ncache_bytes = 268435456\nmax_open_files = 1024\n",
    )
    .unwrap();
    c.validate().expect("valid");
    assert_eq!(
        c.index,
        IndexConfig::Fjall {
            path: "idx".into(),
            cache_bytes: 256 << 20,
            max_open_files: 1024
        }
    );
    let files = c
        .descriptors_needed()
        .into_iter()
        .find(|(term, _)| term == "index.max_open_files")
        .expect("the index's files are a term of the budget");
    assert_eq!(files.1, 1024);
    // Omitted fields take the defaults the embedded index documents.
    let c = Config::from_toml("[index]\nkind = \"fjall\"\npath = \"idx\"\n").unwrap();
    assert_eq!(
        c.index,
        IndexConfig::Fjall {
            path: "idx".into(),
            cache_bytes: hydrant_index::FJALL_CACHE_BYTES,
            max_open_files: hydrant_index::FJALL_MAX_OPEN_FILES
        }
    );
    for (toml, field) in [
        ("cache_bytes = 1000", "index.cache_bytes"),
        ("max_open_files = 8", "index.max_open_files"),
        ("max_open_files = 100000", "index.max_open_files"),
    ] {
        let c = Config::from_toml(&format!(
            "[index]\nkind = \"fjall\"\npath = \"i\"\n{toml}\n"
        ))
        .unwrap();
        assert_eq!(c.validate().unwrap_err().field, field, "{toml}");
    }
}
