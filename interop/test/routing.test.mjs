// Helia finds Hydrant by routing, without being given Hydrant's address:
// over the Kademlia DHT (Hydrant's heads answer GET_PROVIDERS for every block
// in its index, on /ipfs/kad/1.0.0 and on Kubo's LAN DHT /ipfs/lan/kad/1.0.0) and over the Delegated Routing V1 HTTP API on the gateway
// listener; then fetches over Bitswap from the peer it found.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CarReader } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { unixfs } from '@helia/unixfs'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { directoryFixture, packWithIpfsCar, seededBytes } from '../lib/fixture.mjs'
import { cat, getBlock, stopAll, timeoutSignal } from '../lib/helia.mjs'
import { startHydrant, skipUnlessHydrant } from '../lib/hydrant.mjs'
import {
  dhtTrace, heliaDhtState, hydrantDhtState, hydrantInboundCounts,
  makeDelegatedHelia, makeDhtHelia, peerIdString, waitFor
} from '../lib/routing.mjs'

const skip = await skipUnlessHydrant()
const sha256 = (b) => createHash('sha256').update(b).digest('hex')
/** A multiaddr string without its trailing /p2p/<id>. */
const transportPart = (a) => String(a).replace(/\/p2p\/[^/]+$/, '')

describe('routing: Helia finds Hydrant by DHT and delegated routing', { skip }, () => {
  let fx, hydrant
  let fileCid // the largest file: several blocks, not a CAR root (never announced)
  let leafCid // a raw leaf of that file
  let smallFiles // [{ rel, cid }] small files of fx.listDir
  const clients = []
  const client = async (make) => {
    const h = await make()
    clients.push(h)
    return h
  }

  // on failure: Hydrant's DHT state and log, and (for a DHT client) what its
  // routing table holds and a fresh trace of its own GET_PROVIDERS query
  const withDiag = async (fn, getHelia = () => null, traceCid = () => fileCid) => {
    try {
      return await fn()
    } catch (err) {
      let msg = `\n--- hydrant ${JSON.stringify(hydrant?.info)} ---\n`
      try { msg += await hydrantDhtState(hydrant) } catch (e) { msg += `(state: ${e.message})` }
      const h = getHelia()
      if (h?.libp2p?.services?.dht) {
        try {
          msg += `\n--- helia dht state ---\n${JSON.stringify(await heliaDhtState(h), null, 1)}`
          msg += `\n--- helia kad-dht findProviders(${traceCid()}) trace ---\n${JSON.stringify(await dhtTrace(h, traceCid()), null, 1)}`
        } catch (e) { msg += `(helia diag: ${e.message})` }
      }
      msg += `\n--- hydrant stderr tail ---\n${await hydrant?.logTail(6000)}`
      err.message += msg
      throw err
    }
  }

  before(async () => {
    fx = await directoryFixture()
    // Denylists reload every second: the announcement test adds one.
    hydrant = await startHydrant({ config: { denylist: { reload_secs: 1 } } })
    const res = await hydrant.ingest(fx.car)
    assert.deepEqual(res.roots, [fx.root])
    // CIDs below the root, resolved offline from the fixture CAR
    const reader = await CarReader.fromBytes(await readFile(fx.car))
    const h = createHeliaLight()
    await h.start()
    for await (const b of reader.blocks()) await h.blockstore.put(b.cid, b.bytes)
    const fs = unixfs(h)
    const root = CID.parse(fx.root)
    fileCid = (await fs.stat(root, { path: fx.bigFile.rel, offline: true })).cid
    const node = dagPb.decode(await getBlock(h.blockstore, fileCid))
    assert.ok(node.Links.length >= 2, `${fx.bigFile.rel} has ${node.Links.length} links`)
    leafCid = node.Links[0].Hash
    smallFiles = []
    for await (const e of fs.ls(root, { path: fx.listDir, offline: true })) {
      if (e.type !== 'directory' && smallFiles.length < 3) smallFiles.push({ rel: `${fx.listDir}/${e.name}`, cid: e.cid })
    }
    await h.stop()
    assert.ok(smallFiles.length >= 1, `files in ${fx.listDir}`)
  }, { timeout: 300_000 })

  after(async () => {
    await stopAll(...clients)
    await hydrant?.stop()
  })

  it('the JSON line lists DHT heads: loopback TCP multiaddrs ending in /p2p/<head peer id>', () => {
    assert.ok(Array.isArray(hydrant.info.dht_heads), `dht_heads: ${JSON.stringify(hydrant.info.dht_heads)}`)
    assert.ok(hydrant.dhtHeads.length >= 1, 'at least one head')
    const ids = new Set()
    for (const a of hydrant.dhtHeads) {
      const ma = multiaddr(a)
      const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
      assert.ok(id, `${a} ends in /p2p/<id>`)
      peerIdFromString(id) // parses
      assert.notEqual(id, hydrant.peerId, 'a head is not the Bitswap peer')
      assert.ok(a.startsWith('/ip4/127.0.0.1/tcp/'), a)
      ids.add(id)
    }
    assert.equal(ids.size, hydrant.dhtHeads.length, 'head peer ids are distinct')
  })

  it('kad-dht client bootstrapped from one head finds Hydrant as provider and fetches a multi-block file over Bitswap', { timeout: 180_000 }, async () => {
    let h
    await withDiag(async () => {
      const head = hydrant.dhtHeads[0]
      assert.ok(head, 'a DHT head')
      h = await client(() => makeDhtHelia(head))
      const dht = h.libp2p.services.dht
      await waitFor(() => dht.routingTable.size > 0, { timeoutMs: 30_000, what: `head ${head} in the kad-dht routing table (identify must list /ipfs/kad/1.0.0)` })

      // Helia was never told about Hydrant's Bitswap peer
      const main = peerIdFromString(hydrant.peerId)
      assert.equal(h.libp2p.getConnections(main).length, 0, 'not connected to Hydrant before routing')
      assert.equal(await h.libp2p.peerStore.has(main), false, 'Hydrant not in the peer store before routing')

      const before = await hydrantInboundCounts(hydrant)
      const seen = []
      let found
      for await (const p of h.routing.findProviders(fileCid, { signal: timeoutSignal(60_000) })) {
        seen.push({ id: peerIdString(p.id), router: p.router, addrs: p.multiaddrs.map(String) })
        if (peerIdString(p.id) === hydrant.peerId) { found = p; break }
      }
      assert.ok(found, `Hydrant ${hydrant.peerId} among providers of ${fileCid}: ${JSON.stringify(seen)}`)
      assert.equal(found.router, 'libp2p-router', 'found by the libp2p (kad-dht) router')
      const addrs = found.multiaddrs.map(transportPart)
      assert.ok(addrs.includes(transportPart(hydrant.tcpAddr)), `provider addrs ${JSON.stringify(addrs)} include ${hydrant.tcpAddr}`)
      const afterCounts = await hydrantInboundCounts(hydrant)
      assert.ok((afterCounts['GET_PROVIDERS/ok'] ?? 0) > (before['GET_PROVIDERS/ok'] ?? 0),
        `hydrant counted a GET_PROVIDERS ok: ${JSON.stringify(before)} -> ${JSON.stringify(afterCounts)}`)

      const got = await cat(h, fileCid, { timeoutMs: 120_000 })
      const want = await readFile(join(fx.dir, fx.bigFile.rel))
      assert.equal(got.length, want.length, 'length')
      assert.equal(sha256(got), sha256(want), 'sha256 of fetched bytes')
      assert.ok(h.libp2p.getConnections(main).length > 0, 'the blocks came over a connection to Hydrant\'s main peer')
    }, () => h)
  })

  it('LAN DHT: a kad-dht client on /ipfs/lan/kad/1.0.0 bootstrapped from one head finds Hydrant as provider of an ingested root and fetches it over Bitswap', { timeout: 180_000 }, async () => {
    let h
    let root
    const dir = await mkdtemp(join(tmpdir(), 'hydrant-interop-lan-'))
    try {
      await withDiag(async () => {
        // a single-file CAR: its root is the file
        const bytes = seededBytes(1.25 * 1024 * 1024, 31)
        await writeFile(join(dir, 'lan.bin'), bytes)
        root = await packWithIpfsCar(join(dir, 'lan.bin'), join(dir, 'lan.car'), { wrap: false })
        assert.deepEqual((await hydrant.ingest(join(dir, 'lan.car'))).roots, [root])

        const head = hydrant.dhtHeads[0]
        h = await client(() => makeDhtHelia(head, { protocol: '/ipfs/lan/kad/1.0.0' }))
        const dht = h.libp2p.services.dht
        await waitFor(() => dht.routingTable.size > 0, { timeoutMs: 30_000, what: `head ${head} in the LAN kad-dht routing table (identify must list /ipfs/lan/kad/1.0.0)` })
        const main = peerIdFromString(hydrant.peerId)
        assert.equal(await h.libp2p.peerStore.has(main), false, 'Hydrant not in the peer store before routing')

        const before = await hydrantInboundCounts(hydrant, 'lan')
        const seen = []
        let found
        for await (const p of h.routing.findProviders(CID.parse(root), { signal: timeoutSignal(60_000) })) {
          seen.push({ id: peerIdString(p.id), router: p.router, addrs: p.multiaddrs.map(String) })
          if (peerIdString(p.id) === hydrant.peerId) { found = p; break }
        }
        assert.ok(found, `Hydrant ${hydrant.peerId} among providers of ${root}: ${JSON.stringify(seen)}`)
        assert.equal(found.router, 'libp2p-router', 'found by the libp2p (kad-dht) router')
        const addrs = found.multiaddrs.map(transportPart)
        assert.ok(addrs.includes(transportPart(hydrant.tcpAddr)), `provider addrs ${JSON.stringify(addrs)} include ${hydrant.tcpAddr}`)
        const afterCounts = await hydrantInboundCounts(hydrant, 'lan')
        assert.ok((afterCounts['GET_PROVIDERS/ok'] ?? 0) > (before['GET_PROVIDERS/ok'] ?? 0),
          `hydrant counted a LAN GET_PROVIDERS ok: ${JSON.stringify(before)} -> ${JSON.stringify(afterCounts)}`)

        const got = await cat(h, CID.parse(root), { timeoutMs: 120_000 })
        assert.equal(got.length, bytes.length, 'length')
        assert.equal(sha256(got), sha256(bytes), 'sha256 of fetched bytes')
        assert.ok(h.libp2p.getConnections(main).length > 0, 'the blocks came over a connection to Hydrant\'s main peer')
      }, () => h, () => root ? CID.parse(root) : fileCid)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('every head answers: a kad-dht client bootstrapped from head i finds Hydrant for a small file and a raw leaf', { timeout: 180_000 }, async () => {
    assert.ok(hydrant.dhtHeads.length >= 1, `dht_heads: ${JSON.stringify(hydrant.info.dht_heads)}`)
    for (const [i, head] of hydrant.dhtHeads.entries()) {
      let h
      const target = smallFiles[i % smallFiles.length]
      await withDiag(async () => {
        h = await client(() => makeDhtHelia(head))
        await waitFor(() => h.libp2p.services.dht.routingTable.size > 0, { timeoutMs: 30_000, what: `head ${i} ${head} in the routing table` })
        for (const cid of [target.cid, leafCid]) {
          const seen = []
          let found = false
          for await (const p of h.routing.findProviders(cid, { signal: timeoutSignal(30_000) })) {
            seen.push(peerIdString(p.id))
            if (peerIdString(p.id) === hydrant.peerId) { found = true; break }
          }
          assert.ok(found, `head ${i}: Hydrant among providers of ${cid}: ${JSON.stringify(seen)}`)
        }
        const got = await cat(h, target.cid, { timeoutMs: 60_000 })
        assert.equal(sha256(got), sha256(await readFile(join(fx.dir, target.rel))), target.rel)
      }, () => h, () => target.cid)
      await h.stop()
    }
  })

  it('Helia with the delegated routing v1 HTTP client (gateway_url) as its only router finds Hydrant and fetches over Bitswap', { timeout: 180_000 }, () => withDiag(async () => {
    const h = await client(() => makeDelegatedHelia(hydrant.gatewayUrl))
    const main = peerIdFromString(hydrant.peerId)
    assert.equal(await h.libp2p.peerStore.has(main), false, 'Hydrant not in the peer store before routing')

    const seen = []
    let found
    for await (const p of h.routing.findProviders(fileCid, { signal: timeoutSignal(30_000) })) {
      seen.push({ id: peerIdString(p.id), router: p.router, addrs: p.multiaddrs.map(String), protocols: p.protocols })
      if (peerIdString(p.id) === hydrant.peerId) { found = p; break }
    }
    assert.ok(found, `Hydrant ${hydrant.peerId} among providers of ${fileCid}: ${JSON.stringify(seen)}`)
    assert.equal(found.router, 'delegated-http-router')
    assert.deepEqual(found.protocols, ['transport-bitswap'])
    const addrs = found.multiaddrs.map(transportPart)
    assert.ok(addrs.includes(transportPart(hydrant.tcpAddr)), `provider addrs ${JSON.stringify(addrs)} include ${hydrant.tcpAddr}`)

    const got = await cat(h, fileCid, { timeoutMs: 120_000 })
    const want = await readFile(join(fx.dir, fx.bigFile.rel))
    assert.equal(got.length, want.length, 'length')
    assert.equal(sha256(got), sha256(want), 'sha256 of fetched bytes')
    assert.ok(h.libp2p.getConnections(main).length > 0, 'the blocks came over a connection to Hydrant\'s main peer')
  }))

  it('GET /routing/v1/providers/{cid}: JSON and NDJSON name Hydrant\'s peer with its addresses', { timeout: 60_000 }, () => withDiag(async () => {
    const check = (rec, where) => {
      assert.equal(rec.Schema, 'peer', `${where}: Schema`)
      assert.equal(rec.ID, hydrant.peerId, `${where}: ID`)
      assert.ok(Array.isArray(rec.Addrs) && rec.Addrs.length > 0, `${where}: Addrs ${JSON.stringify(rec.Addrs)}`)
      for (const a of rec.Addrs) multiaddr(a) // every address parses
      const addrs = rec.Addrs.map(transportPart)
      for (const a of hydrant.swarmAddrs) assert.ok(addrs.includes(transportPart(a)), `${where}: Addrs ${JSON.stringify(rec.Addrs)} include ${a}`)
      assert.deepEqual(rec.Protocols, ['transport-bitswap'], `${where}: Protocols`)
    }
    for (const cid of [fileCid, leafCid, CID.parse(fx.root), CID.parse(fx.root).toV1()]) {
      const url = `${hydrant.gatewayUrl}/routing/v1/providers/${cid}`
      const rj = await fetch(url, { headers: { accept: 'application/json' } })
      const tj = await rj.text()
      assert.equal(rj.status, 200, `${url} json: ${rj.status} ${tj}`)
      assert.match(rj.headers.get('content-type') ?? '', /^application\/json/)
      const body = JSON.parse(tj)
      assert.ok(Array.isArray(body.Providers) && body.Providers.length === 1, `json Providers: ${tj}`)
      check(body.Providers[0], `${cid} json`)

      const rn = await fetch(url, { headers: { accept: 'application/x-ndjson' } })
      const tn = await rn.text()
      assert.equal(rn.status, 200, `${url} ndjson: ${rn.status} ${tn}`)
      assert.match(rn.headers.get('content-type') ?? '', /^application\/x-ndjson/)
      const lines = tn.split('\n').filter(l => l.trim())
      assert.equal(lines.length, 1, `ndjson lines: ${tn}`)
      check(JSON.parse(lines[0]), `${cid} ndjson`)
    }
  }))

  it('a new CAR\'s root is announced (ADD_PROVIDER from the main peer) to a Helia DHT server Hydrant admitted, a denied one is not; a Helia that only knows that server finds Hydrant', { timeout: 120_000 }, async () => {
    let server, seeker
    let root
    const dir = await mkdtemp(join(tmpdir(), 'hydrant-interop-announce-'))
    try {
      await withDiag(async () => {
        // a DHT server (listens, answers /ipfs/kad/1.0.0) that bootstraps from one head
        server = await client(() => makeDhtHelia(hydrant.dhtHeads[0], { clientMode: false }))
        await waitFor(() => server.libp2p.services.dht.routingTable.size > 0, { timeoutMs: 30_000, what: 'head in the server\'s routing table' })
        const serverId = server.libp2p.peerId.toString()
        const rt = await waitFor(async () => {
          const peers = await (await fetch(`${hydrant.apiUrl}/api/v1/dht/routing-table`)).json()
          return peers.some(p => p.peer_id === serverId) && peers
        }, { timeoutMs: 30_000, what: `Hydrant to admit the Helia DHT server ${serverId} into its routing table` })
        const entry = rt.find(p => p.peer_id === serverId)
        assert.ok(entry.addrs.map(transportPart).includes(transportPart(server.libp2p.getMultiaddrs()[0])),
          `routing table entry ${JSON.stringify(entry)} has the server's listen address`)

        // A CAR whose root a denylist names: ingested first, never announced.
        await writeFile(join(dir, 'denied.bin'), seededBytes(1000, 24))
        const denied = await packWithIpfsCar(join(dir, 'denied.bin'), join(dir, 'denied.car'), { wrap: false })
        await mkdir(join(hydrant.repo, 'denylists'), { recursive: true })
        await writeFile(join(hydrant.repo, 'denylists', 'interop.deny'), `/ipfs/${denied}\n`)
        await waitFor(async () => (await fetch(`${hydrant.gatewayUrl}/ipfs/${denied}?format=raw`)).status === 410,
          { timeoutMs: 15_000, what: 'the denylist to be loaded' })
        await hydrant.ingest(join(dir, 'denied.car'))

        const bytes = seededBytes(1.5 * 1024 * 1024, 23)
        await writeFile(join(dir, 'announced.bin'), bytes)
        root = await packWithIpfsCar(join(dir, 'announced.bin'), join(dir, 'announced.car'), { wrap: false })
        const res = await hydrant.ingest(join(dir, 'announced.car'))
        assert.deepEqual(res.roots, [root])

        const rootCid = CID.parse(root)
        const stored = await waitFor(async () => {
          const ids = (await server.libp2p.services.dht.providers.getProviders(rootCid)).map(String)
          return ids.length > 0 && ids
        }, { timeoutMs: 30_000, what: `a provider record for ${root} at the Helia DHT server` })
        assert.deepEqual(stored, [hydrant.peerId], 'the record names Hydrant\'s main peer (js kad-dht drops records not sent by the provider itself)')
        await new Promise(resolve => setTimeout(resolve, 1000))
        assert.deepEqual(await server.libp2p.services.dht.providers.getProviders(CID.parse(denied)), [],
          'the denied root was ingested before the announced one, and never announced')

        seeker = await client(() => makeDhtHelia(server.libp2p.getMultiaddrs()[0].toString()))
        await waitFor(() => seeker.libp2p.services.dht.routingTable.size > 0, { timeoutMs: 30_000, what: 'the Helia server in the seeker\'s routing table' })
        let found
        for await (const p of seeker.routing.findProviders(rootCid, { signal: timeoutSignal(30_000) })) {
          if (peerIdString(p.id) === hydrant.peerId) { found = p; break }
        }
        assert.ok(found, `Hydrant found through the Helia server for ${root}`)
        const got = await cat(seeker, rootCid, { timeoutMs: 60_000 })
        assert.equal(sha256(got), sha256(bytes), 'sha256 of fetched bytes')
      }, () => seeker ?? server, () => root ? CID.parse(root) : fileCid)
    } finally {
      await stopAll(server, seeker)
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a CID Hydrant does not have: no providers (HTTP 200 with none, or 404) and none over the DHT', { timeout: 60_000 }, async () => {
    let h
    const absent = CID.createV1(0x55, await sha256Hasher.digest(new TextEncoder().encode('hydrant interop routing: not ingested')))
    await withDiag(async () => {
      for (const accept of ['application/json', 'application/x-ndjson']) {
        const r = await fetch(`${hydrant.gatewayUrl}/routing/v1/providers/${absent}`, { headers: { accept } })
        const t = await r.text()
        assert.ok(r.status === 200 || r.status === 404, `${accept}: status ${r.status} ${t}`)
        if (r.status === 200 && accept === 'application/json') assert.deepEqual(JSON.parse(t).Providers ?? [], [], t)
        if (r.status === 200 && accept !== 'application/json') assert.equal(t.trim(), '', t)
      }
      h = await client(() => makeDhtHelia(hydrant.dhtHeads[0]))
      await waitFor(() => h.libp2p.services.dht.routingTable.size > 0, { timeoutMs: 30_000, what: 'head in the routing table' })
      const seen = []
      for await (const p of h.routing.findProviders(absent, { signal: timeoutSignal(20_000) })) seen.push(peerIdString(p.id))
      assert.deepEqual(seen, [], 'no providers for an absent CID')
    }, () => h, () => absent)
  })
})
