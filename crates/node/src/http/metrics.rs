//! `GET /metrics` (Prometheus text format, on the API listener).
//!
//! The services keep plain atomic counters; a scrape copies them into a fresh
//! `prometheus-client` registry and encodes it, so nothing is registered globally and a stopped
//! service simply disappears from the output.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `hydrant_bitswap_*` (messages, wants, blocks, bytes, HAVE/DONT_HAVE, errors) | counter | |
//! | `hydrant_bitswap_peers` | gauge | |
//! | `hydrant_bitswap_wants_total` | counter | `type` (block, have), `outcome` (found, not_found, shed, error) |
//! | `hydrant_bitswap_{streams_shed,peers_dropped}_total`, `hydrant_bitswap_wants_pending` | counter, gauge | |
//! | `hydrant_streams` | gauge | `protocol` (bitswap), `direction` (inbound, outbound) |
//! | `hydrant_connected_peers` | gauge | `swarm` (main, dht_heads) |
//! | `hydrant_budget_{limit,in_use}_bytes` | gauge | the shared memory budget (`[limits]`) |
//! | `hydrant_budget_holder_bytes`, `hydrant_budget_refused_total` | gauge, counter | `holder` (bitswap_messages, bitswap_wantlists, bitswap_responses, gateway, dht, pubsub) |
//! | `hydrant_dht_inbound_shed_total` | counter | `dht` (wan, lan): DHT requests reset for a full budget |
//! | `hydrant_dht_routing_table_peers` | gauge | `dht` (wan: `/ipfs/kad/1.0.0`, lan: `/ipfs/lan/kad/1.0.0`) |
//! | `hydrant_dht_inbound_requests_total` | counter | `dht`, `type` (FIND_NODE, ...), `outcome` (ok, not_found, error, refused) |
//! | `hydrant_dht_{inbound_invalid,streams_refused,outbound_requests,outbound_failures}_total` | counter | `dht` |
//! | `hydrant_dht_{probes,probe_failures,admissions,rejections,evictions}_total` | counter | `dht` |
//! | `hydrant_dht_{stalled_requests,suspects_skipped}_total`, `hydrant_dht_stall_timeout_milliseconds` | counter, gauge | `dht`: lookup requests that stalled, suspects not asked, the current stall timeout |
//! | `hydrant_dht_provider_queue_depth`, `..._capacity` | gauge | |
//! | `hydrant_dht_provider_records_{accepted,dropped,written}_total`, `..._write_errors_total` | counter | |
//! | `hydrant_dht_announce_{announced,failed,dropped}_total` | counter | |
//! | `hydrant_object_store_requests_total` | counter | `op` (get, head, put, multipart, delete, list, copy), `outcome` (started, failed) |
//! | `hydrant_read_{ranges,blocks,bytes}_total` | counter | ranged reads of stored CARs |
//! | `hydrant_read_cache_{hits,misses}_total`, `hydrant_read_cache_{bytes,blocks}` | counter, gauge | |
//! | `hydrant_presence_filter_checks_total` | counter | `result` (absent, maybe) |
//! | `hydrant_presence_filter_{built,capacity,inserted,bytes}`, `..._rebuilds_total` | gauge, counter | |
//! | `hydrant_index_lookups_total` | counter | multihashes looked up in the index past the filter |
//! | `hydrant_index_lookup_duration_seconds` | histogram | `kind` (single, batch): lookup calls past the filter |
//! | `hydrant_object_store_request_duration_seconds` | histogram | `op` (as above; list only `list_with_delimiter`, delete not timed) |
//! | `hydrant_gateway_requests_total` | counter | `type` (block, car, deserialized: files, listings and dag-json/cbor blocks, tar, other: routing and the rest), `outcome` (found, not_found, shed, bad_request, error) |
//! | `hydrant_gateway_request_duration_seconds` | histogram | `type`: time until the response head |
//! | `hydrant_gateway_response_body_bytes_total` | counter | bytes of gateway response bodies (GET) |
//! | `hydrant_api_requests_total` | counter | `route` (matched template, or `unmatched`), `outcome` (as the gateway's) |
//! | `hydrant_api_request_duration_seconds` | histogram | `route`: time until the response head |
//! | `hydrant_http_connections_open` | gauge | `listener` (gateway, api) |
//! | `hydrant_http_connections_refused_total` | counter | `listener`, `reason` (per_ip, full): refused before a request was read |
//! | `hydrant_http_header_read_timeouts_total` | counter | `listener`: connections closed by `header_read_timeout_secs` |
//! | `hydrant_ingest_cars_total` | counter | `result` (ingested, already_present): ingests through the API |
//! | `hydrant_ingest_{blocks,bytes}_total` | counter | blocks and CAR bytes of newly ingested CARs |
//! | `hydrant_ingest_failures_total` | counter | `reason` (invalid, too_large, interrupted, not_found, error) |
//! | `hydrant_ingest_in_progress`, `hydrant_ingest_in_progress_bytes` | gauge | ingests running, CAR bytes they verified so far |
//! | `hydrant_denylist_refusals_total` | counter | `list` (the `.deny` file name): blocks and paths refused |
//! | `hydrant_denylist_rules` | gauge | `list`: rules of each list in force |
//! | `hydrant_ipni_{advertisements,entries,entry_chunks,written_bytes}_total` | counter | what the IPNI writer published |
//! | `hydrant_ipni_announce_{attempts,failures}_total` | counter | HTTP announcements to `ipni.indexers` |
//! | `hydrant_ipni_head_age_seconds` | gauge | since the writer last moved the head (absent on other replicas) |
//! | `hydrant_pubsub_{published,received,delivered,duplicates}_total` | counter | messages published here, received from gossipsub, queued for local subscribers, not delivered again (seen) |
//! | `hydrant_pubsub_dropped_total` | counter | `reason` (peer_queue_full, subscriber_slow: subscribers dropped, outbox_full, too_large, memory_budget, publish_queue_full, invalid: refused by gossipsub's validation, a bad signature first of all) |
//! | `hydrant_pubsub_slow_peers_disconnected_total` | counter | peers disconnected for not reading |
//! | `hydrant_pubsub_{subscribers,topics,peers}` | gauge | local subscribers, topics subscribed, gossipsub peers |
//! | `hydrant_pubsub_topic_peers` | gauge | `topic`: gossipsub peers on each topic we subscribe to (at most `pubsub.max_topics`) |
//! | `hydrant_pubsub_seen_cache_{entries,bytes}`, `..._evicted_early_total` | gauge, counter | the local hub's seen-message cache; IDs forgotten early because it was full |
//! | `hydrant_pubsub_bus_{forwarded,forwarded_large,received,reconnects}_total` | counter | replica fan-out (PostgreSQL index only): messages sent to the other replicas (large: through the table), received from them, connections re-established |
//! | `hydrant_pubsub_bus_dropped_total` | counter | `reason` (queue_full, too_large, unavailable, send_failed, malformed, row_missing, listener_behind) |
//! | `hydrant_pubsub_bus_{listening,queued_bytes}` | gauge | 1 while the listener is connected; frame bytes waiting to be sent |
//! | `hydrant_gossipsub_*` | | gossipsub's own metrics: mesh and peers per topic, scores, `invalid_messages_per_topic` (bad signatures among them), queue sizes |
//!
//! `outcome` of the HTTP listeners: `found` for 1xx to 3xx, `not_found` for 404 and 410, `shed`
//! for 429 and 503, `bad_request` for other 4xx, `error` for other 5xx (504 timeouts included).
//! Labels never carry a CID, a peer or a request path: only fixed values, route templates and
//! the names of the operator's denylist files.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::http::state::ApiState;
use crate::p2p::dht::DhtService;
use crate::stores::storage::Op;

/// The DHT message types in `DhtStats` array order (kad-dht.md, "RPC Messages").
const MESSAGE_TYPES: [&str; 6] = [
    "PUT_VALUE",
    "GET_VALUE",
    "ADD_PROVIDER",
    "GET_PROVIDERS",
    "FIND_NODE",
    "PING",
];

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// A counter family with one member per DHT (`dht="wan"|"lan"`), valued by `value`.
fn per_side(
    dht: &DhtService,
    value: impl Fn(&hydrant_dht::DhtStats) -> u64,
) -> Family<Vec<(&'static str, &'static str)>, Counter> {
    let family = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for (side, handle) in dht.sides() {
        family
            .get_or_create(&vec![("dht", side.label())])
            .inc_by(value(handle.stats().as_ref()));
    }
    family
}

/// One counter of [`hydrant_dht::DhtStats`].
type StatField = fn(&hydrant_dht::DhtStats) -> &AtomicU64;

/// The counters each of the two DHT services keeps, labelled `dht` (`wan`, `lan`).
fn dht_service_metrics(r: &mut Registry, dht: &DhtService) {
    let tables = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    let requests = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for (side, handle) in dht.sides() {
        let s = handle.stats();
        tables
            .get_or_create(&vec![("dht", side.label())])
            .set(i64::try_from(load(&s.routing_table_size)).unwrap_or(i64::MAX));
        for (i, t) in MESSAGE_TYPES.iter().enumerate() {
            for (outcome, v) in [
                ("ok", &s.inbound_ok[i]),
                ("not_found", &s.inbound_not_found[i]),
                ("error", &s.inbound_error[i]),
                ("refused", &s.inbound_refused[i]),
            ] {
                requests
                    .get_or_create(&vec![
                        ("dht", side.label()),
                        ("type", *t),
                        ("outcome", outcome),
                    ])
                    .inc_by(load(v));
            }
        }
    }
    r.register(
        "dht_routing_table_peers",
        "Peers in each DHT's routing table (all answered a FIND_NODE), shared by its heads",
        tables,
    );
    r.register(
        "dht_inbound_requests",
        "Inbound DHT requests by DHT, type and outcome",
        requests,
    );
    let counters: [(&str, &str, StatField); 11] = [
        (
            "dht_inbound_invalid",
            "Inbound DHT messages that did not decode",
            |s| &s.inbound_invalid,
        ),
        (
            "dht_streams_refused",
            "Inbound DHT streams reset by the limits",
            |s| &s.streams_refused,
        ),
        (
            "dht_probes",
            "FIND_NODE probes sent before admission or for liveness",
            |s| &s.probes,
        ),
        (
            "dht_probe_failures",
            "Probes that failed (the peer stays out or is evicted)",
            |s| &s.probe_failures,
        ),
        (
            "dht_admissions",
            "Peers admitted to the routing table",
            |s| &s.admissions,
        ),
        (
            "dht_rejections",
            "Responsive peers not admitted (address policy, diversity, full bucket)",
            |s| &s.rejections,
        ),
        (
            "dht_evictions",
            "Peers evicted from the routing table",
            |s| &s.evictions,
        ),
        ("dht_outbound_requests", "Outbound DHT requests", |s| {
            &s.outbound_requests
        }),
        (
            "dht_outbound_failures",
            "Outbound DHT requests that failed",
            |s| &s.outbound_failures,
        ),
        (
            "dht_stalled_requests",
            "Lookup requests unanswered within the stall timeout (peer made a suspect)",
            |s| &s.stalled_requests,
        ),
        (
            "dht_suspects_skipped",
            "Peers named in lookup answers not asked because they are suspects",
            |s| &s.suspects_skipped,
        ),
    ];
    for (name, help, field) in counters {
        r.register(name, help, per_side(dht, |s| load(field(s))));
    }
    let stall = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    for (side, handle) in dht.sides() {
        stall
            .get_or_create(&vec![("dht", side.label())])
            .set(i64::try_from(load(&handle.stats().stall_timeout_ms)).unwrap_or(i64::MAX));
    }
    r.register(
        "dht_stall_timeout_milliseconds",
        "Current stall timeout of DHT lookup requests (0 before the first answer)",
        stall,
    );
}

/// Renders every metric of the node as Prometheus text.
pub fn render(state: &ApiState) -> String {
    let mut r = Registry::with_prefix("hydrant");

    let b = state.bitswap.stats();
    for (name, help, v) in [
        (
            "bitswap_messages_received",
            "Bitswap messages received",
            b.messages_received,
        ),
        (
            "bitswap_want_blocks_received",
            "WANT_BLOCK entries received",
            b.want_blocks_received,
        ),
        (
            "bitswap_want_haves_received",
            "WANT_HAVE entries received",
            b.want_haves_received,
        ),
        (
            "bitswap_cancels_received",
            "CANCEL entries received",
            b.cancels_received,
        ),
        (
            "bitswap_messages_sent",
            "Bitswap messages sent",
            b.messages_sent,
        ),
        ("bitswap_blocks_sent", "Blocks sent", b.blocks_sent),
        (
            "bitswap_block_bytes_sent",
            "Bytes of block data sent",
            b.block_bytes_sent,
        ),
        ("bitswap_haves_sent", "HAVE presences sent", b.haves_sent),
        (
            "bitswap_dont_haves_sent",
            "DONT_HAVE presences sent",
            b.dont_haves_sent,
        ),
        (
            "bitswap_store_errors",
            "Wants that failed on a storage error",
            b.store_errors,
        ),
        (
            "bitswap_protocol_errors",
            "Invalid messages received",
            b.protocol_errors,
        ),
        (
            "bitswap_wants_dropped",
            "Wants dropped by the per-peer bounds",
            b.wants_dropped,
        ),
        (
            "bitswap_streams_refused",
            "Inbound streams reset by the stream limits",
            b.streams_refused,
        ),
    ] {
        counter(&mut r, name, help, v);
    }
    gauge(
        &mut r,
        "bitswap_peers",
        "Peers with an active wantlist",
        b.peers,
    );
    let connected = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    let main_peers = crate::lock(&state.services().main_peers).len();
    connected
        .get_or_create(&vec![("swarm", "main")])
        .set(i64::try_from(main_peers).unwrap_or(i64::MAX));
    if let Some(dht) = &state.dht {
        let heads: usize = dht
            .members
            .iter()
            .filter(|m| m.index.is_some())
            .map(|m| crate::lock(&m.connected).len())
            .sum();
        connected
            .get_or_create(&vec![("swarm", "dht_heads")])
            .set(i64::try_from(heads).unwrap_or(i64::MAX));
    }
    r.register(
        "connected_peers",
        "Peers with at least one connection, per swarm (main: Bitswap and identify; dht_heads: \
         the DHT heads together)",
        connected,
    );

    if let Some(dht) = &state.dht {
        dht_service_metrics(&mut r, dht);
        let w = dht.writer.stats();
        gauge(
            &mut r,
            "dht_provider_queue_depth",
            "Provider records waiting to be written",
            w.queue_depth as u64,
        );
        gauge(
            &mut r,
            "dht_provider_queue_capacity",
            "Capacity of the provider-record queue",
            w.queue_capacity as u64,
        );
        for (name, help, v) in [
            (
                "dht_provider_records_accepted",
                "ADD_PROVIDER records queued",
                w.accepted,
            ),
            (
                "dht_provider_records_dropped",
                "ADD_PROVIDER records dropped: queue full",
                w.dropped,
            ),
            (
                "dht_provider_records_written",
                "Provider records written to the store",
                w.written,
            ),
            (
                "dht_provider_write_errors",
                "Failed provider-store batch writes",
                w.write_errors,
            ),
            (
                "dht_provider_records_expired",
                "Expired provider records removed",
                dht.gc.stats().removed,
            ),
        ] {
            counter(&mut r, name, help, v);
        }
        let a = &dht.announce_stats;
        for (name, help, v) in [
            (
                "dht_announce_announced",
                "Keys announced (ADD_PROVIDER accepted by at least one peer)",
                &a.announced,
            ),
            (
                "dht_announce_failed",
                "Keys whose announcement reached no peer",
                &a.failed,
            ),
            (
                "dht_announce_dropped",
                "Keys dropped: announce queue full",
                &a.dropped,
            ),
        ] {
            counter(&mut r, name, help, load(v));
        }
    }

    storage_metrics(&mut r, state);
    http_and_ingest_metrics(&mut r, state);
    budget_metrics(&mut r, state);
    if let Some(pubsub) = &state.pubsub {
        pubsub_metrics(&mut r, pubsub);
    }
    if let Some(bus) = &state.pubsub_bus {
        pubsub_bus_metrics(&mut r, bus);
    }
    let mut out = String::new();
    encode(&mut out, &r).expect("writing to a String cannot fail");
    if let Some(pubsub) = &state.pubsub {
        // Gossipsub keeps its own registry; its text goes before our `# EOF`.
        let ours = out.strip_suffix("# EOF\n").unwrap_or(&out).to_owned();
        out = format!("{ours}{}# EOF\n", pubsub.gossip_metrics_text());
    }
    out
}

/// Pub/sub's counters, its hub and its peers (`crate::p2p::pubsub`).
fn pubsub_metrics(r: &mut Registry, pubsub: &crate::p2p::pubsub::PubSub) {
    use crate::p2p::pubsub::DropReason;
    let s = pubsub.stats();
    for (name, help, v) in [
        (
            "pubsub_published",
            "Messages published by this node",
            &s.published,
        ),
        (
            "pubsub_received",
            "Messages received from gossipsub peers",
            &s.received,
        ),
        (
            "pubsub_delivered",
            "Message copies queued for local subscribers",
            &s.delivered,
        ),
        (
            "pubsub_duplicates",
            "Messages not delivered again: seen within pubsub.seen_ttl_secs",
            &s.duplicates,
        ),
        (
            "pubsub_slow_peers_disconnected",
            "Gossipsub peers disconnected for not reading their messages",
            &s.slow_peers_disconnected,
        ),
    ] {
        counter(r, name, help, load(v));
    }
    let dropped = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for why in DropReason::ALL {
        dropped
            .get_or_create(&vec![("reason", why.label())])
            .inc_by(s.dropped(why));
    }
    dropped
        .get_or_create(&vec![("reason", "invalid")])
        .inc_by(pubsub.invalid_messages());
    r.register(
        "pubsub_dropped",
        "Messages dropped, by reason (subscriber_slow counts subscribers dropped; invalid: bad \
         signature, from, seqno)",
        dropped,
    );
    let (entries, bytes, evicted) = pubsub.seen_cache();
    counter(
        r,
        "pubsub_seen_cache_evicted_early",
        "Message IDs forgotten before pubsub.seen_ttl_secs: the seen cache was full",
        evicted,
    );
    let topics = pubsub.topics();
    for (name, help, v) in [
        (
            "pubsub_subscribers",
            "Local subscribers (RPC streams)",
            pubsub.subscribers(),
        ),
        (
            "pubsub_topics",
            "Topics with local subscribers",
            topics.len(),
        ),
        (
            "pubsub_peers",
            "Gossipsub peers connected",
            pubsub.peers(None).len(),
        ),
        (
            "pubsub_seen_cache_entries",
            "Message IDs in the hub's seen cache",
            entries,
        ),
        (
            "pubsub_seen_cache_bytes",
            "Approximate bytes of the hub's seen cache",
            bytes,
        ),
    ] {
        gauge(r, name, help, v as u64);
    }
    let per_topic = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for topic in topics {
        let n = pubsub.peers(Some(&topic)).len();
        per_topic
            .get_or_create(&vec![("topic", topic)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register(
        "pubsub_topic_peers",
        "Gossipsub peers subscribed to each topic we subscribe to",
        per_topic,
    );
}

/// The replica fan-out's counters (`hydrant_pg::PubSubBus`).
fn pubsub_bus_metrics(r: &mut Registry, bus: &hydrant_pg::PubSubBus) {
    let s = bus.snapshot();
    for (name, help, v) in [
        (
            "pubsub_bus_forwarded",
            "Pub/sub messages sent to the other replicas",
            s.forwarded,
        ),
        (
            "pubsub_bus_forwarded_large",
            "Of those, sent through the pubsub_messages table (over one NOTIFY payload)",
            s.forwarded_large,
        ),
        (
            "pubsub_bus_received",
            "Pub/sub messages received from the other replicas",
            s.received,
        ),
        (
            "pubsub_bus_reconnects",
            "PostgreSQL connections of the fan-out re-established after being lost",
            s.reconnects,
        ),
    ] {
        counter(r, name, help, v);
    }
    let dropped = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for (reason, n) in s.dropped {
        dropped.get_or_create(&vec![("reason", reason)]).inc_by(n);
    }
    r.register(
        "pubsub_bus_dropped",
        "Pub/sub messages not passed between replicas, by reason",
        dropped,
    );
    gauge(
        r,
        "pubsub_bus_listening",
        "1 while the fan-out's listener is connected",
        u64::from(s.listening),
    );
    gauge(
        r,
        "pubsub_bus_queued_bytes",
        "Frame bytes waiting to be sent to the other replicas",
        s.queued_bytes,
    );
}

/// The memory budget, Bitswap wants by outcome, Bitswap streams and shedding.
fn budget_metrics(r: &mut Registry, state: &ApiState) {
    let budget = state.services().budget.stats();
    gauge(r, "budget_limit_bytes", "The memory budget", budget.limit);
    gauge(
        r,
        "budget_in_use_bytes",
        "Bytes of the memory budget held now",
        budget.in_use,
    );
    let in_use = Family::<Vec<(&str, &str)>, Gauge>::default();
    let refused = Family::<Vec<(&str, &str)>, Counter>::default();
    for h in &budget.holders {
        in_use
            .get_or_create(&vec![("holder", h.name)])
            .set(i64::try_from(h.in_use).unwrap_or(i64::MAX));
        refused
            .get_or_create(&vec![("holder", h.name)])
            .inc_by(h.refused);
    }
    r.register(
        "budget_holder_bytes",
        "Bytes of the memory budget held, by holder",
        in_use,
    );
    r.register(
        "budget_refused",
        "Requests for memory refused because the budget was full (work shed), by holder",
        refused,
    );

    let b = state.bitswap.stats();
    let wants = Family::<Vec<(&str, &str)>, Counter>::default();
    for (kind, o) in [
        ("block", b.want_block_outcomes),
        ("have", b.want_have_outcomes),
    ] {
        for (outcome, v) in [
            ("found", o.found),
            ("not_found", o.not_found),
            ("shed", o.shed),
            ("error", o.error),
        ] {
            wants
                .get_or_create(&vec![("type", kind), ("outcome", outcome)])
                .inc_by(v);
        }
    }
    r.register(
        "bitswap_wants",
        "Bitswap wants by type (block, have) and outcome (found, not_found, shed, error)",
        wants,
    );
    for (name, help, v) in [
        (
            "bitswap_streams_shed",
            "Bitswap inbound streams reset because the memory budget was full",
            b.streams_shed,
        ),
        (
            "bitswap_peers_dropped",
            "Bitswap peers dropped because writing to them failed or timed out",
            b.peers_dropped,
        ),
    ] {
        counter(r, name, help, v);
    }
    let streams = Family::<Vec<(&str, &str)>, Gauge>::default();
    for (direction, v) in [
        ("inbound", b.inbound_streams),
        ("outbound", b.outbound_streams),
    ] {
        streams
            .get_or_create(&vec![("protocol", "bitswap"), ("direction", direction)])
            .set(i64::try_from(v).unwrap_or(i64::MAX));
    }
    r.register("streams", "Open streams by protocol and direction", streams);
    gauge(
        r,
        "bitswap_wants_pending",
        "Bitswap wants kept over all peers, waiting for a lookup",
        b.wants_pending,
    );
    if let Some(dht) = &state.dht {
        let shed = per_side(dht, |s| load(&s.inbound_shed));
        r.register(
            "dht_inbound_shed",
            "DHT requests unanswered (stream reset) because the memory budget was full",
            shed,
        );
    }
}

/// Both HTTP listeners, index lookup latency, and ingests.
fn http_and_ingest_metrics(r: &mut Registry, state: &ApiState) {
    let services = state.services();
    state.http.register(r);
    services.index_stats.register(r);
    services.ingest_stats.register(r);
    ipni_metrics(r, state);
}

/// The IPNI publisher and announcers (zero on replicas that are not the writer).
fn ipni_metrics(r: &mut Registry, state: &ApiState) {
    let stats = &state.services().ipni_stats;
    for (name, help, v) in [
        (
            "ipni_advertisements",
            "IPNI advertisements published (additions and removals)",
            &stats.advertisements,
        ),
        (
            "ipni_entries",
            "Multihashes published in IPNI entry chunks",
            &stats.entries,
        ),
        (
            "ipni_entry_chunks",
            "IPNI entry chunks written",
            &stats.entry_chunks,
        ),
        (
            "ipni_written_bytes",
            "Bytes of IPNI blocks written to the object store",
            &stats.bytes_written,
        ),
        (
            "ipni_announce_attempts",
            "IPNI announce requests sent to indexers",
            &stats.announce_attempts,
        ),
        (
            "ipni_announce_failures",
            "IPNI announce requests that failed",
            &stats.announce_failures,
        ),
    ] {
        counter(r, name, help, load(v));
    }
    let at = load(&stats.head_updated_at);
    if at > 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        gauge(
            r,
            "ipni_head_age_seconds",
            "Seconds since this writer last moved the IPNI head",
            now.saturating_sub(at),
        );
    }
}

/// Object store, read path, read cache and presence filter.
fn storage_metrics(r: &mut Registry, state: &ApiState) {
    let services = state.services();
    let requests = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for op in Op::ALL {
        let stats = &services.store_stats;
        for (outcome, v) in [("started", stats.started(op)), ("failed", stats.failed(op))] {
            requests
                .get_or_create(&vec![("op", op.label()), ("outcome", outcome)])
                .inc_by(v);
        }
    }
    r.register(
        "object_store_requests",
        "Requests made to the object store, by kind",
        requests,
    );
    services.store_stats.register_latency(r);
    let read = services.blockstore.stats();
    for (name, help, v) in [
        ("read_ranges", "Ranged reads of stored CARs", read.ranges),
        (
            "read_blocks",
            "Blocks sliced out of ranged reads",
            read.blocks,
        ),
        ("read_bytes", "Bytes received by ranged reads", read.bytes),
        (
            "read_cache_hits",
            "Blocks answered from the read cache",
            read.cache_hits,
        ),
        (
            "read_cache_misses",
            "Blocks not in the read cache",
            read.cache_misses,
        ),
    ] {
        counter(r, name, help, v);
    }
    gauge(
        r,
        "read_cache_bytes",
        "Bytes held by the read cache",
        read.cache_bytes,
    );
    gauge(
        r,
        "read_cache_blocks",
        "Blocks held by the read cache",
        read.cache_blocks,
    );
    if let Some(filtered) = &services.filtered {
        let f = filtered.filter().stats();
        let checks = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        checks
            .get_or_create(&vec![("result", "absent")])
            .inc_by(f.absent);
        checks
            .get_or_create(&vec![("result", "maybe")])
            .inc_by(f.maybe);
        r.register(
            "presence_filter_checks",
            "Presence filter checks: absent answers cost no index query",
            checks,
        );
        gauge(
            r,
            "presence_filter_built",
            "1 once the filter is built",
            u64::from(f.built),
        );
        gauge(
            r,
            "presence_filter_capacity",
            "Blocks the filter is sized for",
            f.capacity,
        );
        gauge(
            r,
            "presence_filter_inserted",
            "Insertions into the filter",
            f.inserted,
        );
        gauge(
            r,
            "presence_filter_bytes",
            "Bytes of Bloom filter held",
            f.bytes,
        );
        counter(r, "presence_filter_rebuilds", "Filter rebuilds", f.rebuilds);
        counter(
            r,
            "index_lookups",
            "Multihashes looked up in the index past the filter",
            filtered.lookups(),
        );
    }
    let lists = &services.denylists;
    let refusals = Family::<Vec<(&'static str, String)>, Counter>::default();
    for (list, n) in lists.refusals() {
        refusals
            .get_or_create(&vec![("list", list.to_string())])
            .inc_by(n);
    }
    r.register(
        "denylist_refusals",
        "Blocks and paths refused by a denylist (lookups, gateway requests, announcements)",
        refusals,
    );
    let rules = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (list, n) in lists.summary() {
        rules
            .get_or_create(&vec![("list", list)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register("denylist_rules", "Rules of each denylist in force", rules);
}
