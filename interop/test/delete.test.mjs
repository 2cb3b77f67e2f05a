// Deletion (issue 17, item 2) seen by Helia: a DAG Helia fetched over Bitswap, then deleted,
// is refused to a fresh Helia (Hydrant answers DONT_HAVE: its Bitswap `not_found` count grows)
// and 404 at the gateway, while a block the deleted CAR shared with a kept (pinned) CAR is
// still served over both.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { cat, stopAll } from '../lib/helia.mjs'
import { skipUnlessHydrant, startHydrant } from '../lib/hydrant.mjs'
import { collect, kuboClient } from '../lib/kubo.mjs'
import { connectedHelia } from '../lib/unixfs.mjs'

const skip = await skipUnlessHydrant()

/** Hydrant's count of Bitswap block wants answered DONT_HAVE. */
async function notFoundWants (hydrant) {
  const text = await (await fetch(`${hydrant.apiUrl}/metrics`)).text()
  const line = text.split('\n').find(l =>
    l.startsWith('hydrant_bitswap_wants_total{') && l.includes('outcome="not_found"') && l.includes('type="block"'))
  return line == null ? 0 : Number(line.split(' ').pop())
}

describe('deletion seen by Helia', { skip, timeout: 300_000 }, () => {
  let hydrant, client
  const helias = []
  before(async () => {
    hydrant = await startHydrant()
    client = kuboClient(hydrant)
  }, { timeout: 60_000 })
  after(async () => {
    await stopAll(...helias)
    await hydrant?.stop()
  })

  it('a fetched-then-deleted DAG is refused; a block shared with a kept CAR is still served', async () => {
    const shared = randomBytes(300 * 1024)
    const onlyKept = randomBytes(1000)
    // Two adds, two CARs: the first (unpinned) is deleted, the second (pinned) kept; `shared`'s
    // blocks are in both.
    const first = await collect(client.addAll([{ path: 'gone/shared.bin', content: shared }], { pin: false }))
    const kept = await collect(client.addAll([
      { path: 'kept/shared.bin', content: shared },
      { path: 'kept/only.bin', content: onlyKept }
    ]))
    const goneRoot = first.find(e => e.path === 'gone').cid
    const keptRoot = kept.find(e => e.path === 'kept').cid
    const sharedCid = first.find(e => e.path === 'gone/shared.bin').cid

    const fetcher = await connectedHelia(hydrant)
    helias.push(fetcher)
    assert.deepEqual(await cat(fetcher, goneRoot, { path: 'shared.bin' }), shared)

    const cars = await (await fetch(`${hydrant.apiUrl}/api/v1/cars?limit=1000`)).json()
    const car = cars.find(c => c.roots.includes(goneRoot.toString()))
    assert.ok(car, 'the first add is one stored CAR')
    const deleted = await fetch(`${hydrant.apiUrl}/api/v1/cars/${car.key}`, { method: 'DELETE' })
    assert.equal(deleted.status, 200)

    // A fresh Helia (an empty blockstore) cannot get the deleted directory.
    const fresh = await connectedHelia(hydrant)
    helias.push(fresh)
    const dontHaves = await notFoundWants(hydrant)
    await assert.rejects(cat(fresh, goneRoot, { path: 'shared.bin', timeoutMs: 5_000 }))
    assert.ok(await notFoundWants(hydrant) > dontHaves, 'Hydrant answered DONT_HAVE')
    const gateway = (cid) => fetch(`${hydrant.gatewayUrl}/ipfs/${cid}?format=raw`).then(r => r.status)
    assert.equal(await gateway(goneRoot), 404)

    // The shared file is still served: through the kept directory, and by its own CID.
    assert.deepEqual(await cat(fresh, keptRoot, { path: 'shared.bin' }), shared)
    assert.deepEqual(await cat(fresh, sharedCid), shared)
    assert.equal(await gateway(sharedCid), 200)
  })
})
