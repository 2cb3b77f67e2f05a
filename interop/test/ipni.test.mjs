// Hydrant as an IPNI publisher, checked by the mock indexer (lib/ipni-indexer.mjs, itself proved
// against go-libipni in ipni-indexer.test.mjs): Hydrant announces each change of its advertisement
// chain with `PUT <indexer>/announce`; the indexer syncs from the announced address
// (/ipni/v1/ad/head, /ipni/v1/ad/{cid}), checks every signature and CID, and must then hold exactly
// the multihashes of the CARs Hydrant stores: one advertisement per CAR, a removal advertisement
// per deleted CAR, and one chain across restarts.
//
// Skipped, with the reason, when the binary has no IPNI publishing (no [ipni] config section, or
// /ipni/v1/ad/head answers 404).
import assert from 'node:assert/strict'
import { createReadStream } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CarBlockIterator, CarWriter } from '@ipld/car'
import * as dagJson from '@ipld/dag-json'
import { peerIdFromString } from '@libp2p/peer-id'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { seededBytes } from '../lib/fixture.mjs'
import { skipUnlessHydrant, startHydrant } from '../lib/hydrant.mjs'
import { mhKey, startIndexer, verifySignedHead } from '../lib/ipni-indexer.mjs'
import { waitFor } from '../lib/routing.mjs'

/** Metadata of a Bitswap-only provider: uvarint 0x0900 (ipni.md "Metadata"). */
const BITSWAP = [0x80, 0x12]
/** index-provider's entry chunk size: a CAR with more blocks spans two chunks. */
const CHUNK_ENTRIES = 16_384

const ipniConfig = (indexer) => ({ ipni: { indexers: [indexer] } })

/** Why this binary cannot run these tests (a string), or false. */
async function skipUnlessIpni () {
  const noBinary = await skipUnlessHydrant()
  if (noBinary) return noBinary
  let hydrant
  try {
    // Port 9 (discard): nothing answers; only whether the publisher is there matters.
    hydrant = await startHydrant({ config: ipniConfig('http://127.0.0.1:9') })
  } catch (err) {
    if (/lacks the section/.test(err.message)) return 'this hydrant has no [ipni] config section (IPNI publishing not built in)'
    throw err
  }
  try {
    const res = await fetch(`${hydrant.gatewayUrl}/ipni/v1/ad/head`)
    if (res.status === 404) return 'this hydrant answers 404 to GET /ipni/v1/ad/head (IPNI publishing not built in)'
  } finally {
    await hydrant.stop()
  }
  return false
}

const skip = await skipUnlessIpni()

/**
 * A UnixFS file of `size` seeded bytes in `chunk`-byte raw leaves, written as a CARv1 at `path`.
 * Returns { path, root, multihashes }: the base58btc multihash of every block, read back from the
 * CAR file with @ipld/car.
 */
async function unixfsCar (path, size, seed, chunk) {
  const blocks = []
  const blockstore = { put: async (cid, bytes) => { blocks.push({ cid, bytes }); return cid } }
  let root
  const options = { cidVersion: 1, rawLeaves: true, chunker: fixedSize({ chunkSize: chunk }), layout: balanced({ maxChildrenPerNode: 1024 }) }
  for await (const entry of importer([{ content: seededBytes(size, seed) }], blockstore, options)) root = entry.cid
  const { writer, out } = CarWriter.create([root])
  const written = writeFile(path, out)
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await written
  const multihashes = new Set()
  for await (const { cid } of await CarBlockIterator.fromIterable(createReadStream(path))) multihashes.add(mhKey(cid.multihash.bytes))
  return { path, root: root.toString(), multihashes }
}

/** swarm_addrs without their /p2p/<id>: the form of an advertisement's Addresses (Provider names the peer). */
const withoutP2p = (addrs) => addrs.map(a => a.replace(/\/p2p\/[^/]+$/, '')).sort()
const sameSet = (a, b) => a.size === b.size && [...a].every(x => b.has(x))

describe('Hydrant publishes IPNI advertisements to an indexer', { skip, timeout: 600_000 }, () => {
  let indexer, hydrant, work, cars
  let firstRepo
  /** Hydrant's state in the indexer: { latest, ads, contexts }. */
  const state = () => indexer.publishers.get(hydrant.peerId)
  const failed = () => indexer.syncs.filter(s => s.error != null)
  const adCount = () => state()?.ads.length ?? 0
  /** Wait until the indexer has applied `n` of Hydrant's advertisements, no sync refused. */
  const waitForAds = (n) => waitFor(() => {
    assert.deepEqual(failed(), [], 'every sync of Hydrant verified')
    return adCount() >= n
  }, { timeoutMs: 60_000, what: `${n} advertisements applied` }).catch(async err => {
    err.message += `; announces: ${JSON.stringify(indexer.announces.map(a => [a.cid, a.publisher]))}; syncs: ${JSON.stringify(indexer.syncs)}; daemon log: ${await hydrant.logTail(3000)}`
    throw err
  })
  const isHydrant = (id) => peerIdFromString(id).equals(peerIdFromString(hydrant.peerId))
  const contextOf = (car) => [...state().contexts.values()].find(c => sameSet(c.multihashes, car.multihashes))

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'hydrant-ipni-'))
    cars = {
      small: await unixfsCar(join(work, 'small.car'), 300_000, 1, 65_536),
      gone: await unixfsCar(join(work, 'gone.car'), 200_000, 2, 16_384),
      // more blocks than one entry chunk holds (leaves of 256 bytes)
      big: await unixfsCar(join(work, 'big.car'), (CHUNK_ENTRIES + 600) * 256, 3, 256),
      later: await unixfsCar(join(work, 'later.car'), 100_000, 4, 16_384)
    }
    assert.ok(cars.big.multihashes.size > CHUNK_ENTRIES)
    indexer = await startIndexer()
    hydrant = await startHydrant({ config: ipniConfig(indexer.url) })
  }, { timeout: 180_000 })

  after(async () => {
    await hydrant?.stop()
    await indexer?.close()
    if (firstRepo) await rm(dirname(firstRepo), { recursive: true, force: true })
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('announces each ingested CAR; the indexer holds exactly its blocks, every signature checked', async (t) => {
    const headBefore = await fetch(`${hydrant.gatewayUrl}/ipni/v1/ad/head`)
    assert.ok([200, 204].includes(headBefore.status), `head before any CAR: ${headBefore.status}`)

    await hydrant.ingest(cars.small.path)
    await hydrant.ingest(cars.big.path)
    const res = await fetch(`${hydrant.apiUrl}/api/v1/cars?pin=false`, {
      method: 'PUT', headers: { 'content-type': 'application/vnd.ipld.car' }, body: await readFile(cars.gone.path)
    })
    assert.equal(res.status, 200, await res.clone().text())
    cars.gone.key = (await res.json()).car_key
    const ingested = performance.now()
    await waitForAds(3)
    t.diagnostic(`last CAR ingested -> its advertisement applied: ${Math.round(performance.now() - ingested)} ms; syncs (ms, ads walked): ${JSON.stringify(indexer.syncs.map(s => [s.ms, s.ads.length]))}`)

    // The announcements: from Hydrant's peer ID, naming its gateway as an HTTP publisher.
    const gatewayPort = new URL(hydrant.gatewayUrl).port
    // (CARs committed within one of Hydrant's polls may share one announcement of the newest head.)
    assert.ok(indexer.announces.length >= 1)
    for (const a of indexer.announces) {
      assert.equal(a.publisher, hydrant.peerId)
      assert.ok(a.addrs.includes(`/ip4/127.0.0.1/tcp/${gatewayPort}/http/p2p/${hydrant.peerId}`), `announce addrs ${a.addrs}`)
    }

    // Three advertisements, one per CAR, provider and addresses Hydrant's.
    const { ads, contexts } = state()
    assert.equal(ads.length, 3)
    assert.equal(contexts.size, 3)
    for (const { cid, ad } of ads) {
      assert.ok(isHydrant(ad.Provider), `${cid} Provider ${ad.Provider}`)
      assert.deepEqual([...ad.Addresses].sort(), withoutP2p(hydrant.swarmAddrs), `${cid} Addresses`)
      assert.deepEqual([...ad.Metadata.subarray(0, 2)], BITSWAP, `${cid} Metadata starts with Bitswap`)
      assert.equal(ad.IsRm, false)
    }
    assert.equal(ads[0].ad.PreviousID, undefined, 'the chain starts at the first advertisement')
    for (let i = 1; i < ads.length; i++) assert.equal(ads[i].ad.PreviousID?.toString(), ads[i - 1].cid)

    // Exactly the blocks of each CAR, each CAR its own context.
    for (const [name, car] of Object.entries(cars)) {
      if (name === 'later') continue
      assert.ok(contextOf(car), `a context holds exactly the ${car.multihashes.size} multihashes of ${name}.car`)
    }
    const all = new Set([...cars.small.multihashes, ...cars.big.multihashes, ...cars.gone.multihashes])
    assert.ok(sameSet(indexer.multihashes(hydrant.peerId), all), 'nothing more, nothing less')

    // The big CAR's entries span two chunks; no multihash is listed twice.
    const walked = indexer.syncs.flatMap(s => s.ads)
    const bigAd = walked.find(a => a.unique === cars.big.multihashes.size)
    assert.ok(bigAd.chunks >= 2, `${bigAd.chunks} entry chunks for ${bigAd.entries} multihashes`)
    for (const a of walked) assert.equal(a.entries, a.unique, `${a.cid}: ${a.entries} entries, ${a.unique} distinct`)

    // The head names the last advertisement, signed by Hydrant; blocks are immutable for caches.
    // (The served head may lag behind the announced one for a moment: Hydrant caches it.)
    const fetchHead = async () => verifySignedHead(dagJson.decode(new Uint8Array(await (await fetch(`${hydrant.gatewayUrl}/ipni/v1/ad/head`)).arrayBuffer())))
    const head = await waitFor(async () => { const h = await fetchHead(); return h.head.toString() === ads.at(-1).cid && h }, { timeoutMs: 10_000, what: 'the head naming the last advertisement' })
    assert.equal(head.signer.toString(), hydrant.peerId)
    const block = await fetch(`${hydrant.gatewayUrl}/ipni/v1/ad/${ads[0].cid}`)
    assert.equal(block.headers.get('cache-control'), 'public, max-age=29030400, immutable', 'ipni-http-provider.md GET /ipni/v1/ad/{CID}')
  })

  it('a deleted CAR gets a removal advertisement and its multihashes leave the index', async () => {
    const before = state().ads.at(-1).cid
    const goneCtx = contextOf(cars.gone).contextId
    const res = await fetch(`${hydrant.apiUrl}/api/v1/cars/${cars.gone.key}`, { method: 'DELETE' })
    assert.equal(res.status, 200, await res.text())
    await waitForAds(4)

    const { cid, ad } = state().ads.at(-1)
    assert.equal(ad.IsRm, true, `${cid} is a removal`)
    assert.deepEqual(ad.ContextID, goneCtx, 'same ContextID as the CAR\'s advertisement')
    assert.equal(ad.PreviousID?.toString(), before)
    assert.ok(isHydrant(ad.Provider))
    const left = new Set([...cars.small.multihashes, ...cars.big.multihashes])
    assert.ok(sameSet(indexer.multihashes(hydrant.peerId), left), 'only the kept CARs\' multihashes remain')
    assert.equal(state().ads.length, 4, 'one advertisement for the deletion')
  })

  it('after a restart on the same repository the chain continues, nothing advertised again', async () => {
    const oldHead = state().latest
    const peerId = hydrant.peerId
    firstRepo = hydrant.repo
    await hydrant.stop({ keep: true })
    const syncsBefore = indexer.syncs.length
    hydrant = await startHydrant({ repo: firstRepo })
    assert.equal(hydrant.peerId, peerId, 'same identity')

    await hydrant.ingest(cars.later.path)
    await waitForAds(5)
    const { cid, ad } = state().ads.at(-1)
    assert.equal(ad.PreviousID?.toString(), oldHead, `${cid} follows the head from before the restart`)
    assert.deepEqual([...ad.Addresses].sort(), withoutP2p(hydrant.swarmAddrs), 'the new daemon\'s addresses')
    const since = indexer.syncs.slice(syncsBefore)
    assert.deepEqual(since.flatMap(s => s.ads.map(a => a.cid)), [cid], 'only the new advertisement walked')
    assert.ok(since.every(s => !s.restarted))
    assert.ok(contextOf(cars.later))
    const expected = new Set([...cars.small.multihashes, ...cars.big.multihashes, ...cars.later.multihashes])
    assert.ok(sameSet(indexer.multihashes(hydrant.peerId), expected))
  })
})
