// Control: the same Bitswap checks with a Helia node as the provider. If these
// pass and the Hydrant ones fail, the harness is fine and the fault is Hydrant's.
import { bitswapSuite } from '../lib/suites.mjs'
import { importCar, isTcp, isWs, listenAddrs, makeHelia } from '../lib/helia.mjs'

bitswapSuite('helia -> helia (control)', async (fx) => {
  const server = await makeHelia({ listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] })
  const { roots } = await importCar(server, fx.car)
  return {
    root: roots[0].toString(),
    tcpAddr: listenAddrs(server, isTcp)[0],
    wsAddr: listenAddrs(server, isWs)[0],
    stop: () => server.stop()
  }
})
