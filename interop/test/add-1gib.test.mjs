// `hydrant add` of a 1 GiB file (issue 16; add.test.mjs has the directory tree), in a file of
// its own because the test runner's timeout is per file.
//
// A 1 GiB file: its CID equals the reference; Helia fetches it over Bitswap and the gateway
//   returns it as a CAR whose blocks verify, both hashing to the file's sha256.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { CarBlockIterator } from '@ipld/car'
import { unixfs } from '@helia/unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { timeoutSignal } from '../lib/helia.mjs'
import { skipUnlessHydrant } from '../lib/hydrant.mjs'
import { V1_2025, blackHole, daemonWithHelia, hydrantAdd } from '../lib/unixfs.mjs'

const skip = await skipUnlessHydrant()
const GIB = 1 << 30




describe('hydrant add, 1 GiB', { skip }, () => {
  const ctx = daemonWithHelia()

  it('a 1 GiB file: the reference CID, back over Bitswap and as a verified gateway CAR', { timeout: 1_200_000 }, async () => {
    const file = join(ctx.work, 'big.bin')
    // Random bytes, 64 MiB at a time (never the whole file in memory).
    const whole = createHash('sha256')
    for (let written = 0; written < GIB; written += 64 << 20) {
      const chunk = randomBytes(64 << 20)
      whole.update(chunk)
      await appendFile(file, chunk)
    }
    const want = whole.digest('hex')
    let reference
    for await (const e of importer([{ path: 'big.bin', content: createReadStream(file) }], blackHole, V1_2025)) reference = e.cid.toString()

    const lines = await hydrantAdd(ctx.hydrant, [file])
    const cid = lines[0].cid
    assert.equal(lines[0].name, 'big.bin')
    assert.equal(cid, reference, 'same CID as ipfs-unixfs-importer')

    // Bitswap: hash the bytes as they stream, then drop the blocks Helia kept.
    const hash = createHash('sha256')
    for await (const c of unixfs(ctx.helia).cat(CID.parse(cid), { signal: timeoutSignal(600_000) })) hash.update(c)
    assert.equal(hash.digest('hex'), want, 'Bitswap bytes')

    // Gateway: the CAR in DFS order; raw leaves in order are the file.
    const res = await fetch(`${ctx.hydrant.gatewayUrl}/ipfs/${cid}?format=car&dag-scope=all&dups=n`)
    assert.equal(res.status, 200)
    const leaves = createHash('sha256')
    let blocks = 0
    for await (const { cid: c, bytes: b } of await CarBlockIterator.fromIterable(res.body)) {
      assert.deepEqual(Buffer.from((await sha256.digest(b)).bytes), Buffer.from(c.multihash.bytes), `block ${c}`)
      if (c.code === 0x55) leaves.update(b)
      blocks++
    }
    assert.equal(leaves.digest('hex'), want, 'gateway CAR bytes')
    assert.equal(blocks, 1024 + 1, '1024 leaves of 1 MiB and their root')
  })
})
