// Helia fetches, over Bitswap, content that was packed with ipfs-car and
// ingested into a running Hydrant daemon.
import assert from 'node:assert/strict'
import { startHydrant, skipUnlessHydrant } from '../lib/hydrant.mjs'
import { bitswapSuite } from '../lib/suites.mjs'

const skip = await skipUnlessHydrant()

bitswapSuite('helia <- hydrant (bitswap)', async (fx) => {
  const hydrant = await startHydrant()
  try {
    assert.match(hydrant.peerId, /^(12D3Koo|Qm)/, 'peer_id looks like a libp2p peer id')
    for (const a of hydrant.swarmAddrs) {
      assert.ok(a.endsWith(`/p2p/${hydrant.peerId}`), `swarm addr ${a} ends with /p2p/<peer_id>`)
    }
    const res = await hydrant.ingest(fx.car)
    assert.deepEqual(res.roots, [fx.root], 'ingest reports the CAR root')
    assert.match(res.car_key, /^cars\/[0-9a-f]+\.car$/)
    assert.equal(res.version, 1)
    assert.ok(res.blocks > 100, `blocks: ${res.blocks}`)
    return {
      root: res.roots[0],
      tcpAddr: hydrant.tcpAddr,
      wsAddr: hydrant.wsAddr,
      stop: () => hydrant.stop(),
      diag: async () => `hydrant info: ${JSON.stringify(hydrant.info)}\nhydrant stderr tail:\n${await hydrant.logTail(6000)}`
    }
  } catch (err) {
    err.message += `\nhydrant stderr tail:\n${await hydrant.logTail(6000)}`
    await hydrant.stop()
    throw err
  }
}, { skip })
