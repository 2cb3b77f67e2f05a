// The gateway as an HTTP provider: a Helia node made with @helia/http (no libp2p at all:
// the trustless-gateway block broker and delegated HTTP routing) that knows ONLY Hydrant's
// routing URL fetches a UnixFS file added to Hydrant. Hydrant serves /routing/v1 on its
// gateway listener and, with `gateway.public_url` set, names that gateway in its providers
// answer (`transport-ipfs-gateway-http`), so the broker finds the gateway through routing.
//
// - the providers answer holds the Bitswap record and the HTTP record with the gateway's
//   multiaddr;
// - the file's bytes through Helia equal the file on disk.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { withHTTP } from '@helia/http'
import { unixfs } from '@helia/unixfs'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'
import { stopAll, timeoutSignal } from '../lib/helia.mjs'
import { skipUnlessHydrant, startHydrant } from '../lib/hydrant.mjs'
import { hydrantAdd, sha } from '../lib/unixfs.mjs'

const skip = await skipUnlessHydrant()

/** A TCP port free right now on 127.0.0.1 (the gateway's URL must be known before start). */
async function freePort () {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('the gateway as an HTTP provider', { skip }, () => {
  const ctx = {}
  before(async () => {
    ctx.work = await mkdtemp(join(tmpdir(), 'hydrant-http-provider-'))
    const port = await freePort()
    ctx.url = `http://127.0.0.1:${port}`
    ctx.hydrant = await startHydrant({
      gatewayListen: `127.0.0.1:${port}`,
      config: { gateway: { public_url: ctx.url } }
    })
  }, { timeout: 120_000 })
  after(async () => {
    await stopAll(ctx.helia)
    await ctx.hydrant?.stop()
    if (ctx.work) await rm(ctx.work, { recursive: true, force: true })
  })

  it('a @helia/http node that knows only the routing URL fetches an added file', { timeout: 300_000 }, async () => {
    assert.equal(ctx.hydrant.gatewayUrl, ctx.url)
    // Several blocks (1 MiB chunks), so the fetch walks a DAG over the gateway.
    const bytes = randomBytes(3 * 1024 * 1024 + 17)
    const path = join(ctx.work, 'file.bin')
    await writeFile(path, bytes)
    const lines = await hydrantAdd(ctx.hydrant, [path])
    assert.equal(lines[0].name, 'file.bin')
    const root = CID.parse(lines[0].cid)

    const res = await fetch(`${ctx.url}/routing/v1/providers/${root}`, { headers: { accept: 'application/json' } })
    assert.equal(res.status, 200)
    const { Providers: providers } = await res.json()
    const gateway = providers.find(p => p.Protocols?.includes('transport-ipfs-gateway-http'))
    assert.ok(gateway, `no HTTP provider in ${JSON.stringify(providers)}`)
    assert.equal(gateway.ID, ctx.hydrant.peerId)
    assert.deepEqual(gateway.Addrs, [`/ip4/127.0.0.1/tcp/${new URL(ctx.url).port}/http`])
    assert.ok(providers.some(p => p.Protocols?.includes('transport-bitswap')), 'the Bitswap record too')

    ctx.helia = withHTTP(createHeliaLight(), {
      delegatedRouters: [ctx.url],
      recursiveGateways: [],
      // The gateway is plain HTTP on loopback.
      allowInsecure: true,
      allowLocal: true
    })
    await ctx.helia.start()
    const chunks = []
    for await (const chunk of unixfs(ctx.helia).cat(root, { signal: timeoutSignal(120_000) })) {
      chunks.push(chunk)
    }
    const got = Buffer.concat(chunks)
    assert.equal(got.length, bytes.length)
    assert.equal(sha(got), sha(bytes), 'the same bytes as the file on disk')
  })
})
