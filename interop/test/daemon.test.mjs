// The CLI/daemon contract the other tests rely on: the JSON line, api.json,
// `ingest --json` output, and stopping on SIGTERM.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { directoryFixture } from '../lib/fixture.mjs'
import { startHydrant, skipUnlessHydrant } from '../lib/hydrant.mjs'

const skip = await skipUnlessHydrant()

describe('hydrant daemon contract', { skip }, () => {
  let fx, hydrant
  before(async () => {
    fx = await directoryFixture()
    hydrant = await startHydrant()
  }, { timeout: 300_000 })
  after(async () => { await hydrant?.stop() })

  it('prints one JSON line with peer_id, swarm_addrs (TCP and WS), gateway_url, api_url', () => {
    const info = hydrant.info
    assert.match(info.peer_id, /^12D3Koo/)
    assert.ok(Array.isArray(info.swarm_addrs) && info.swarm_addrs.length >= 2, JSON.stringify(info.swarm_addrs))
    for (const a of info.swarm_addrs) {
      assert.ok(a.startsWith('/ip4/127.0.0.1/tcp/'), a)
      assert.ok(a.endsWith(`/p2p/${info.peer_id}`), a)
    }
    assert.ok(hydrant.tcpAddr, 'a plain TCP address')
    assert.ok(hydrant.wsAddr, 'a /ws address')
    assert.match(info.gateway_url, /^http:\/\/127\.0\.0\.1:\d+\/?$/)
    assert.match(info.api_url, /^http:\/\/127\.0\.0\.1:\d+\/?$/)
  })

  it('writes the same object to <repo>/api.json', async () => {
    const onDisk = JSON.parse(await readFile(join(hydrant.repo, 'api.json'), 'utf8'))
    assert.deepEqual(onDisk, hydrant.info)
  })

  it('`ingest --json` prints car_key, roots, blocks, bytes, version', { timeout: 120_000 }, async () => {
    const res = await hydrant.ingest(fx.car)
    assert.match(res.car_key, /^cars\/[0-9a-f]+\.car$/)
    assert.deepEqual(res.roots, [fx.root])
    assert.equal(res.version, 1)
    assert.ok(Number.isInteger(res.blocks) && res.blocks > 100, `blocks ${res.blocks}`)
    assert.ok(Number.isInteger(res.bytes) && res.bytes >= fx.totalBytes, `bytes ${res.bytes} vs ${fx.totalBytes} of file data`)
    // ingesting the same CAR again is not an error
    const again = await hydrant.ingest(fx.car)
    assert.deepEqual(again.roots, [fx.root])
  })

  it('stops on SIGTERM within 10 s (not killed)', { timeout: 30_000 }, async () => {
    const h = hydrant
    hydrant = null
    const t0 = Date.now()
    await h.stop()
    assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`)
    assert.notEqual(h.exit.signal, 'SIGKILL', `exit: ${JSON.stringify(h.exit)}`)
  })
})
