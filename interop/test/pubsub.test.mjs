// Pub/sub interop (issue 19): a js-libp2p node with gossipsub (@libp2p/gossipsub, the js-libp2p
// monorepo's successor of @chainsafe/libp2p-gossipsub, for libp2p 3) exchanges 1,000 messages
// each way with Hydrant, whose side is its Kubo RPC API (pubsub/pub, pubsub/sub); kubo-rpc-client's
// pubsub calls (subscribe, publish, ls, peers) work against Hydrant; a subscriber that stops
// reading is dropped while another keeps receiving everything, counted in /metrics, RSS flat.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { skipUnlessHydrant, startHydrant } from '../lib/hydrant.mjs'
import { kuboClient } from '../lib/kubo.mjs'

const skip = await skipUnlessHydrant()
const SUITE = { skip, timeout: 300_000 }
const enc = new TextEncoder()
const dec = new TextDecoder()

/** A js-libp2p node with gossipsub (strict signing, as Kubo and Hydrant), dialing out only. */
async function gossipNode () {
  return createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gossipsub({ emitSelf: false, allowPublishToZeroTopicPeers: false })
    },
    connectionGater: { denyDialMultiaddr: async () => false }
  })
}

/** Polls `check` every 100 ms until it is truthy (at most `ms`), else fails with `what`. */
async function until (what, check, ms = 30_000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  assert.fail(`timed out waiting for ${what}`)
}

/** Counts of each distinct string received, and the total. */
function tally () {
  const seen = new Map()
  return {
    seen,
    add (s) { seen.set(s, (seen.get(s) ?? 0) + 1) },
    get total () { let n = 0; for (const c of seen.values()) n += c; return n }
  }
}

/** Asserts that `t` holds exactly `want` (strings), each once. */
function assertEachOnce (t, want, who) {
  const missing = want.filter(w => !t.seen.has(w))
  assert.equal(missing.length, 0, `${who}: ${missing.length} missing, e.g. ${missing.slice(0, 3)}`)
  const twice = [...t.seen].filter(([, c]) => c > 1)
  assert.equal(twice.length, 0, `${who}: ${twice.length} seen more than once, e.g. ${twice.slice(0, 3)}`)
  assert.equal(t.seen.size, want.length, `${who}: unexpected messages`)
}

/** One series of Hydrant's /metrics (0 when absent). */
async function metric (hydrant, series) {
  const text = await (await fetch(`${hydrant.apiUrl}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(series + ' '))
  return line == null ? 0 : Number(line.slice(series.length + 1))
}

/** Hydrant's resident set size in bytes (VmRSS of /proc/<pid>/status). */
async function rss (hydrant) {
  const status = await readFile(`/proc/${hydrant.pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024
}

/** Multibase base64url, as Kubo takes topics in `arg`. */
const mb = (s) => 'u' + Buffer.from(s).toString('base64url')

/** Joins `topic` with a js node dialed to Hydrant, once each lists the other on it. */
async function meshWith (hydrant, client, node, topic) {
  node.services.pubsub.subscribe(topic)
  await node.dial(multiaddr(hydrant.tcpAddr), { signal: AbortSignal.timeout(10_000) })
  const js = node.peerId.toString()
  await until('Hydrant to list the js peer on the topic',
    async () => (await client.pubsub.peers(topic)).includes(js))
  await until('the js peer to list Hydrant on the topic',
    () => node.services.pubsub.getSubscribers(topic).some(p => p.toString() === hydrant.peerId))
  // One gossipsub heartbeat (1 s on both sides) grafts the mesh.
  await new Promise(resolve => setTimeout(resolve, 1500))
}

/**
 * Starts Hydrant, its RPC client and a gossipsub node before the enclosing suite's tests and
 * stops them after; returns the object they are set on (`hydrant`, `client`, `node`).
 */
function hydrantAndGossipNode () {
  const ctx = {}
  before(async () => {
    ctx.hydrant = await startHydrant()
    ctx.client = kuboClient(ctx.hydrant)
    ctx.node = await gossipNode()
  }, { timeout: 60_000 })
  after(async () => {
    await ctx.node?.stop()
    await ctx.hydrant?.stop()
  })
  return ctx
}

describe('pub/sub with a js-libp2p gossipsub node', SUITE, () => {
  const ctx = hydrantAndGossipNode()

  it('exchanges 1,000 messages each way, each delivered once', { timeout: 180_000 }, async () => {
    const { hydrant, client, node } = ctx
    const topic = 'hydrant-interop/gossip'
    const onHydrant = tally()
    const controller = new AbortController()
    await client.pubsub.subscribe(topic, (msg) => {
      assert.equal(msg.topic, topic)
      onHydrant.add(dec.decode(msg.data))
    }, { signal: controller.signal })
    const onJs = tally()
    node.services.pubsub.addEventListener('message', (evt) => {
      if (evt.detail.topic !== topic) return
      assert.equal(evt.detail.from.toString(), hydrant.peerId)
      onJs.add(dec.decode(evt.detail.data))
    })
    await meshWith(hydrant, client, node, topic)

    const fromJs = Array.from({ length: 1000 }, (_, i) => `js ${i}`)
    for (const m of fromJs) await node.services.pubsub.publish(topic, enc.encode(m))
    await until('1,000 js messages at the Hydrant RPC subscriber', () => onHydrant.total >= 1000, 60_000)

    const fromHydrant = Array.from({ length: 1000 }, (_, i) => `hydrant ${i}`)
    for (const m of fromHydrant) await client.pubsub.publish(topic, enc.encode(m))
    await until('1,000 Hydrant messages at the js node', () => onJs.total >= 1000, 60_000)
    // Let duplicates, if any, arrive.
    await new Promise(resolve => setTimeout(resolve, 2000))
    controller.abort()

    assertEachOnce(onJs, fromHydrant, 'js node')
    // The RPC subscriber also sees what its own node published (as Kubo's does).
    assertEachOnce(onHydrant, [...fromJs, ...fromHydrant], 'Hydrant RPC subscriber')
  })
})

describe('kubo-rpc-client pubsub against Hydrant', SUITE, () => {
  const ctx = hydrantAndGossipNode()

  it('subscribe, publish, ls and peers answer as Kubo', { timeout: 120_000 }, async () => {
    const { hydrant, client, node } = ctx
    const topic = 'hydrant-interop/kubo-rpc ✓ with spaces'
    const [first, second] = [[], []]
    const controller = new AbortController()
    await client.pubsub.subscribe(topic, msg => first.push(msg), { signal: controller.signal })
    await client.pubsub.subscribe(topic, msg => second.push(msg), { signal: controller.signal })
    assert.deepEqual(await client.pubsub.ls(), [topic])

    const sent = Array.from({ length: 100 }, (_, i) => Uint8Array.from([i, 0, 255, 10, 13]))
    for (const data of sent) await client.pubsub.publish(topic, data)
    await until('100 messages at both subscribers', () => first.length >= 100 && second.length >= 100)
    for (const got of [first, second]) {
      assert.equal(got.length, 100)
      got.forEach((msg, i) => {
        assert.equal(msg.type, 'signed')
        assert.equal(msg.from.toString(), hydrant.peerId)
        assert.equal(msg.topic, topic)
        assert.deepEqual(msg.data, sent[i])
        assert.equal(typeof msg.sequenceNumber, 'bigint')
      })
      assert.equal(new Set(got.map(m => m.sequenceNumber)).size, 100, 'distinct seqnos')
    }

    // A gossipsub peer on the topic is listed by pubsub/peers (with and without a topic).
    await meshWith(hydrant, client, node, topic)
    const js = node.peerId.toString()
    assert.ok((await client.pubsub.peers(topic)).includes(js))
    assert.deepEqual(await client.pubsub.peers('hydrant-interop/nobody'), [])

    controller.abort()
  })
})

describe('a subscriber that stops reading', SUITE, () => {
  let hydrant, client
  before(async () => {
    hydrant = await startHydrant()
    client = kuboClient(hydrant)
  }, { timeout: 60_000 })
  after(async () => { await hydrant?.stop() })

  it('is dropped while another receives everything; counted, RSS flat', { timeout: 240_000 }, async () => {
    const topic = 'hydrant-interop/slow'
    // The slow one: a raw pubsub/sub whose body is never read past the head.
    const url = new URL(`${hydrant.apiUrl}/api/v0/pubsub/sub?arg=${mb(topic)}`)
    const slow = await new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'POST' }, res => { res.pause(); resolve({ req, res }) })
      req.on('error', reject)
      req.end()
    })
    assert.equal(slow.res.statusCode, 200)
    const fast = tally()
    const controller = new AbortController()
    await client.pubsub.subscribe(topic, msg => fast.add(dec.decode(msg.data.subarray(0, 16))), { signal: controller.signal })
    await until('two subscribers', async () => (await metric(hydrant, 'hydrant_pubsub_subscribers')) === 2)
    const droppedBefore = await metric(hydrant, 'hydrant_pubsub_dropped_total{reason="subscriber_slow"}')

    // 1,500 messages of 32 KiB (48 MiB): far more than the socket buffers and the slow
    // subscriber's queue (pubsub.subscriber_queue_len, 256) hold.
    const N = 1500
    const body = new Uint8Array(32 * 1024).fill(0x61)
    const want = []
    let rssAfterFirst = 0
    for (let i = 0; i < N; i++) {
      const tag = `m${String(i).padStart(15, '0')}`
      want.push(tag)
      body.set(enc.encode(tag), 0)
      await client.pubsub.publish(topic, body)
      if (i === 299) rssAfterFirst = await rss(hydrant)
    }
    await until(`${N} messages at the subscriber that reads`, () => fast.total >= N, 60_000)
    const rssAtEnd = await rss(hydrant)
    controller.abort()
    slow.req.destroy()

    assertEachOnce(fast, want, 'the subscriber that reads')
    assert.ok(await metric(hydrant, 'hydrant_pubsub_dropped_total{reason="subscriber_slow"}') >= droppedBefore + 1,
      'the slow subscriber is counted as dropped')
    const growth = rssAtEnd - rssAfterFirst
    console.log(`RSS after 300 messages ${(rssAfterFirst / 2 ** 20).toFixed(1)} MiB, after ${N} ${(rssAtEnd / 2 ** 20).toFixed(1)} MiB`)
    assert.ok(growth < 64 * 2 ** 20, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB`)
  })
})
