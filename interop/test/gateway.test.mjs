// The same content through Hydrant's trustless gateway: ?format=car and
// ?format=raw responses are verified block by block, and the file is
// reassembled from the returned CAR alone and compared with the original.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CarBlockIterator, CarReader } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { unixfs } from '@helia/unixfs'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import { createHeliaLight } from 'helia'
import { directoryFixture, packWithIpfsCar, seededBytes } from '../lib/fixture.mjs'
import { getBlock } from '../lib/helia.mjs'
import { startHydrant, skipUnlessHydrant } from '../lib/hydrant.mjs'

const skip = await skipUnlessHydrant()
const hex = (b) => createHash('sha256').update(b).digest('hex')
const hashers = { [sha256.code]: sha256, [identity.code]: identity }

async function verifyBlock (cid, bytes) {
  const hasher = hashers[cid.multihash.code]
  assert.ok(hasher, `no hasher for multihash code 0x${cid.multihash.code.toString(16)} (${cid})`)
  const digest = await hasher.digest(bytes)
  assert.deepEqual(Buffer.from(digest.bytes), Buffer.from(cid.multihash.bytes), `hash of block ${cid}`)
}

/** Every block of the file's DAG from the fixture CAR, found by walking from `cid`. */
async function dagCids (fxCar, cid) {
  const reader = await CarReader.fromBytes(await readFile(fxCar))
  const h = createHeliaLight()
  await h.start()
  for await (const b of reader.blocks()) await h.blockstore.put(b.cid, b.bytes)
  const out = []
  const seen = new Set()
  const walk = async (c) => {
    if (seen.has(c.toString())) return
    seen.add(c.toString())
    out.push(c)
    if (c.code === dagPb.code) {
      const node = dagPb.decode(await getBlock(h.blockstore, c))
      for (const l of node.Links) await walk(l.Hash)
    }
  }
  await walk(cid)
  await h.stop()
  return out
}

describe('hydrant trustless gateway', { skip }, () => {
  let fx, hydrant, fileCid
  const withDiag = async (fn) => {
    try { return await fn() } catch (err) {
      if (hydrant) err.message += `\n--- hydrant ${JSON.stringify(hydrant.info)} stderr tail ---\n${await hydrant.logTail(6000)}`
      throw err
    }
  }

  before(async () => {
    fx = await directoryFixture()
    hydrant = await startHydrant()
    const res = await hydrant.ingest(fx.car)
    assert.deepEqual(res.roots, [fx.root])
    // resolve the big file's CID from the fixture CAR, offline
    const reader = await CarReader.fromBytes(await readFile(fx.car))
    const h = createHeliaLight()
    await h.start()
    for await (const b of reader.blocks()) await h.blockstore.put(b.cid, b.bytes)
    fileCid = (await unixfs(h).stat(CID.parse(fx.root), { path: fx.bigFile.rel, offline: true })).cid
    await h.stop()
  }, { timeout: 300_000 })

  after(async () => { await hydrant?.stop() })

  it('?format=car of a multi-block file: every block verifies, file reassembles to the original', { timeout: 120_000 }, () => withDiag(async () => {
    const res = await fetch(`${hydrant.gatewayUrl}/ipfs/${fileCid}?format=car`)
    assert.equal(res.status, 200, `status ${res.status}: ${res.status !== 200 ? await res.text() : ''}`)
    const ct = res.headers.get('content-type') ?? ''
    assert.ok(ct.startsWith('application/vnd.ipld.car'), `content-type: ${ct}`)
    const body = new Uint8Array(await res.arrayBuffer())

    const it = await CarBlockIterator.fromBytes(body)
    assert.equal(it.version, 1, 'CAR version')
    const roots = await it.getRoots()
    assert.deepEqual(roots.map(String), [fileCid.toString()], 'CAR header roots')

    const h = createHeliaLight()
    await h.start()
    let n = 0
    for await (const { cid, bytes } of it) {
      await verifyBlock(cid, bytes)
      await h.blockstore.put(cid, bytes)
      n++
    }
    const chunks = []
    for await (const c of unixfs(h).cat(fileCid, { offline: true })) chunks.push(c)
    await h.stop()
    const got = Buffer.concat(chunks)
    const want = await readFile(join(fx.dir, fx.bigFile.rel))
    assert.equal(got.length, want.length, 'length')
    assert.equal(hex(got), hex(want), 'sha256 of reassembled file')
    const expected = await dagCids(fx.car, fileCid)
    assert.ok(n >= expected.length, `CAR has ${n} blocks, DAG has ${expected.length}`)
  }))

  it('Accept: application/vnd.ipld.car (no ?format) also returns a CAR', { timeout: 60_000 }, () => withDiag(async () => {
    const res = await fetch(`${hydrant.gatewayUrl}/ipfs/${fileCid}`, { headers: { accept: 'application/vnd.ipld.car' } })
    assert.equal(res.status, 200)
    assert.ok((res.headers.get('content-type') ?? '').startsWith('application/vnd.ipld.car'))
    const it = await CarBlockIterator.fromBytes(new Uint8Array(await res.arrayBuffer()))
    for await (const { cid, bytes } of it) await verifyBlock(cid, bytes)
  }))

  it('?format=raw of every block of the file verifies against its CID', { timeout: 120_000 }, () => withDiag(async () => {
    const cids = await dagCids(fx.car, fileCid)
    assert.ok(cids.length >= 3, `${cids.length} blocks`)
    const reader = await CarReader.fromBytes(await readFile(fx.car))
    for (const cid of cids) {
      const res = await fetch(`${hydrant.gatewayUrl}/ipfs/${cid}?format=raw`)
      assert.equal(res.status, 200, `${cid}: status ${res.status}`)
      const ct = res.headers.get('content-type') ?? ''
      assert.ok(ct.startsWith('application/vnd.ipld.raw'), `${cid}: content-type ${ct}`)
      const bytes = new Uint8Array(await res.arrayBuffer())
      await verifyBlock(cid, bytes)
      const want = await reader.get(cid)
      assert.deepEqual(Buffer.from(bytes), Buffer.from(want.bytes), `${cid} bytes equal the CAR's`)
    }
  }))

  it('?format=raw of the directory root and a missing block', { timeout: 60_000 }, () => withDiag(async () => {
    const res = await fetch(`${hydrant.gatewayUrl}/ipfs/${fx.root}?format=raw`)
    assert.equal(res.status, 200)
    await verifyBlock(CID.parse(fx.root), new Uint8Array(await res.arrayBuffer()))
    // a CID that was never ingested: must not be 200
    const absent = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('hydrant interop: not ingested')))
    const r2 = await fetch(`${hydrant.gatewayUrl}/ipfs/${absent}?format=raw`, { signal: AbortSignal.timeout(30_000) })
    await r2.arrayBuffer()
    assert.notEqual(r2.status, 200, `missing block answered ${r2.status}`)
  }))

  it('PUT /api/v1/cars ingests a CAR over HTTP; its blocks are then served', { timeout: 60_000 }, () => withDiag(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hydrant-interop-put-'))
    try {
      const bytes = seededBytes(2.5 * 1024 * 1024, 7)
      await writeFile(join(dir, 'seeded.bin'), bytes)
      const root = await packWithIpfsCar(join(dir, 'seeded.bin'), join(dir, 'seeded.car'), { wrap: false })
      const res = await hydrant.ingestHttp(join(dir, 'seeded.car'))
      assert.deepEqual(res.roots, [root])
      assert.match(res.car_key, /^cars\/[0-9a-f]+\.car$/)
      assert.equal(res.version, 1)
      assert.equal(res.blocks, 4, '3 leaves + 1 root')
      const r = await fetch(`${hydrant.gatewayUrl}/ipfs/${root}?format=car`)
      assert.equal(r.status, 200)
      const h = createHeliaLight()
      await h.start()
      for await (const b of await CarBlockIterator.fromBytes(new Uint8Array(await r.arrayBuffer()))) {
        await verifyBlock(b.cid, b.bytes)
        await h.blockstore.put(b.cid, b.bytes)
      }
      const chunks = []
      for await (const c of unixfs(h).cat(CID.parse(root), { offline: true })) chunks.push(c)
      await h.stop()
      assert.equal(hex(Buffer.concat(chunks)), hex(bytes))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }))
})
