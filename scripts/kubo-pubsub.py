#!/usr/bin/env python3
"""Runs a real Kubo (v0.22, from the `kubo-python` wheel) as a pub/sub peer of a Hydrant node, for
the pub/sub interop test (crates/cli/tests/pubsub_kubo.rs).

Usage: kubo-pubsub.py HYDRANT_MULTIADDR TOPIC [--count N] [--expect M] [--timeout SECS]
       (run with the interpreter scripts/kubo-python.sh prints)

  HYDRANT_MULTIADDR  Hydrant's swarm address with /p2p/ (e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3...)
  --count N          messages to publish (default 100): data "kubo-0" ... "kubo-{N-1}"
  --expect M         messages from others to wait for before stopping (default N)
  --timeout SECS     the whole run's bound (default 60): past it, what arrived is printed

Starts a Kubo node on a fresh temporary repo (its swarm on a free 127.0.0.1 TCP port, no
bootstrap peers, no DHT, no mDNS; pub/sub on, gossipsub, signing as Kubo's default StrictSign),
subscribes to TOPIC, connects to Hydrant, waits until Hydrant is among TOPIC's peers, publishes
N messages, collects M messages from other peers, waits one more second for duplicates, then
unsubscribes, stops the node and prints one JSON object on stdout:

  {"peer_id": KUBO_PEER_ID, "published": N, "count": RECEIVED,
   "received": [{"from": PEER_ID, "data": "u" + base64url(data)}, ...],
   "own": MESSAGES_OF_ITS_OWN_DELIVERED_BACK, "hydrant_was_topic_peer": BOOL,
   "timed_out": BOOL, "seconds": ELAPSED}

Exits 1 (with the library's log on stderr) when the node cannot start or connect. The library is
loaded as scripts/kubo-repo.py does (see there why); its exported calls used here are CreateRepo,
RunNode, ConnectToPeer, PubSubSubscribe, PubSubPeers, PubSubPublish, PubSubNextMessage (a JSON
message, NULL when none waits), PubSubUnsubscribe, GetNodeID, FreeString and CleanupNode.
"""
import argparse
import base64
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def kubo_repo():
    """scripts/kubo-repo.py as a module: one copy of the cffi loader and of the private config."""
    path = Path(__file__).with_name("kubo-repo.py")
    spec = importlib.util.spec_from_file_location("kubo_repo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_kubo():
    return kubo_repo().load_kubo()


def configure(repo: Path):
    """kubo-repo.py's private node (loopback, no bootstrap, DHT, mDNS, API or gateway), with
    pub/sub on with gossipsub."""
    kubo_repo().make_private(repo)
    path = repo / "config"
    config = json.loads(path.read_text())
    config["Pubsub"]["Enabled"] = True
    config["Pubsub"]["Router"] = "gossipsub"
    path.write_text(json.dumps(config, indent=2))


def mb(data: bytes) -> str:
    return "u" + base64.urlsafe_b64encode(data).decode().rstrip("=")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("hydrant")
    args.add_argument("topic")
    args.add_argument("--count", type=int, default=100)
    args.add_argument("--expect", type=int)
    args.add_argument("--timeout", type=float, default=60.0)
    args = args.parse_args()
    expect = args.count if args.expect is None else args.expect
    hydrant_id = args.hydrant.rsplit("/p2p/", 1)[-1]
    started = time.monotonic()
    deadline = started + args.timeout

    with tempfile.TemporaryDirectory(prefix="kubo-pubsub-") as tmp:
        # The library logs to ./kubo.log.
        os.chdir(tmp)
        ffi, kubo = load_kubo()
        repo = Path(tmp) / "repo"
        repo_c = str(repo).encode()
        topic_c = args.topic.encode()

        def fail(why: str):
            log = Path(tmp, "kubo.log")
            sys.stderr.write(log.read_text() if log.exists() else "")
            kubo.CleanupNode(repo_c)
            sys.exit(why)

        def take(ptr) -> str:
            text = ffi.string(ptr).decode()
            kubo.FreeString(ptr)
            return text

        if kubo.CreateRepo(repo_c) < 0:
            fail("CreateRepo failed")
        configure(repo)
        if kubo.RunNode(repo_c) < 0:
            fail("RunNode failed")
        peer_id = take(kubo.GetNodeID(repo_c))
        sub = kubo.PubSubSubscribe(repo_c, topic_c)
        if sub < 0:
            fail(f"PubSubSubscribe {args.topic} failed")
        if kubo.ConnectToPeer(repo_c, args.hydrant.encode()) != 0:
            fail(f"ConnectToPeer {args.hydrant} failed")

        # Hydrant among the topic's peers: its subscription reached Kubo, so the publishes
        # below go to it (go-libp2p-pubsub floods its own messages to every topic peer).
        topic_peer = False
        while not topic_peer and time.monotonic() < deadline:
            peers = kubo.PubSubPeers(repo_c, topic_c)
            topic_peer = bool(peers) and hydrant_id in json.loads(take(peers) or "[]")
            if not topic_peer:
                time.sleep(0.05)

        received, own = [], 0

        def drain():
            nonlocal own
            while True:
                ptr = kubo.PubSubNextMessage(sub)
                if not ptr:
                    return
                message = json.loads(take(ptr))
                if message["from"] == peer_id:
                    own += 1
                    continue
                data = base64.urlsafe_b64decode(message["data"])
                received.append({"from": message["from"], "data": mb(data)})

        published = 0
        if topic_peer:
            for i in range(args.count):
                data = f"kubo-{i}".encode()
                buf = ffi.new("char[]", data)
                if kubo.PubSubPublish(repo_c, topic_c, buf, len(data)) != 0:
                    fail(f"PubSubPublish {i} failed")
                published += 1
                drain()

        while len(received) < expect and time.monotonic() < deadline:
            drain()
            time.sleep(0.01)
        timed_out = len(received) < expect
        # Late duplicates would arrive within a heartbeat or two.
        grace = min(time.monotonic() + 1.0, deadline)
        while time.monotonic() < grace:
            drain()
            time.sleep(0.05)

        kubo.PubSubUnsubscribe(sub)
        kubo.CleanupNode(repo_c)

    print(json.dumps({
        "peer_id": peer_id,
        "published": published,
        "count": len(received),
        "received": received,
        "own": own,
        "hydrant_was_topic_peer": topic_peer,
        "timed_out": timed_out,
        "seconds": round(time.monotonic() - started, 3),
    }))


if __name__ == "__main__":
    main()
