// The Bitswap checks, written once and run against any provider: a Helia node
// (the control that proves the harness) or Hydrant.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { directoryFixture } from './fixture.mjs'
import { cat, dial, ls, makeHelia, stopAll } from './helia.mjs'
import { unixfs } from '@helia/unixfs'

const sha256 = (b) => createHash('sha256').update(b).digest('hex')

/** Names directly in a directory that ipfs-car packs (it skips dot files). */
async function diskEntries (dir) {
  const out = []
  for (const name of (await readdir(dir)).sort()) {
    if (name.startsWith('.')) continue
    const st = await lstat(join(dir, name))
    if (st.isDirectory()) out.push({ name, type: 'directory' })
    else if (st.isFile()) out.push({ name, type: 'file' })
  }
  return out
}

/**
 * @param {string} name suite name
 * @param {(fixture) => Promise<{ root: string, tcpAddr: string, wsAddr?: string,
 *   stop: () => Promise<void>, diag?: () => Promise<string> }>} startProvider
 * @param {{ skip?: string|false }} [opts]
 */
export function bitswapSuite (name, startProvider, opts = {}) {
  describe(name, { skip: opts.skip }, () => {
    let fx
    let provider
    const clients = []
    const client = async (o) => {
      const h = await makeHelia(o)
      clients.push(h)
      return h
    }
    // on failure, attach the provider's own diagnostics (e.g. daemon stderr tail)
    const withDiag = async (fn) => {
      try {
        return await fn()
      } catch (err) {
        if (provider?.diag) err.message += `\n--- provider diagnostics ---\n${await provider.diag()}`
        throw err
      }
    }

    before(async () => {
      fx = await directoryFixture()
      provider = await startProvider(fx)
      assert.ok(provider.tcpAddr, 'provider has a TCP multiaddr')
    }, { timeout: 300_000 })

    after(async () => {
      await stopAll(...clients)
      await provider?.stop()
    })

    it('root CID of the packed CAR is the fixture directory', () => {
      assert.equal(provider.root, fx.root)
      assert.ok(fx.totalBytes >= 50 * 1000 * 1000, `fixture is ${fx.totalBytes} bytes`)
    })

    it('fetches a multi-block UnixFS file over TCP, bytes equal the original', { timeout: 180_000 }, () => withDiag(async () => {
      const h = await client({ websockets: false })
      const conn = await dial(h, provider.tcpAddr)
      assert.equal(conn.remoteAddr.toString().includes('/tcp/'), true)
      const root = CID.parse(fx.root)
      const st = await unixfs(h).stat(root, { path: fx.bigFile.rel, signal: AbortSignal.timeout(60_000) })
      assert.equal(st.type, 'file')
      assert.ok(st.unixfs.blockSizes.length >= 2, `${fx.bigFile.rel} has ${st.unixfs.blockSizes.length} child blocks`)
      assert.ok(fx.bigFile.size >= 1024 * 1024)
      const got = await cat(h, st.cid)
      const want = await readFile(join(fx.dir, fx.bigFile.rel))
      assert.equal(got.length, want.length, 'length')
      assert.equal(sha256(got), sha256(want), 'sha256 of fetched bytes')
    }))

    it('lists a directory and fetches each of its files over TCP', { timeout: 180_000 }, () => withDiag(async () => {
      const h = await client({ websockets: false })
      await dial(h, provider.tcpAddr)
      const root = CID.parse(fx.root)

      const top = await ls(h, root)
      assert.deepEqual(top.map(e => e.name), (await diskEntries(fx.dir)).map(e => e.name), 'root listing')

      const entries = await ls(h, root, { path: fx.listDir })
      const onDisk = await diskEntries(join(fx.dir, fx.listDir))
      assert.deepEqual(entries.map(e => e.name), onDisk.map(e => e.name), `listing of ${fx.listDir}`)
      let files = 0
      for (const e of entries) {
        const disk = onDisk.find(d => d.name === e.name)
        if (disk.type === 'directory') {
          const st = await unixfs(h).stat(e.cid, { signal: AbortSignal.timeout(30_000) })
          assert.equal(st.type, 'directory', `${e.name} is a directory`)
          continue
        }
        const got = await cat(h, e.cid)
        const want = await readFile(join(fx.dir, fx.listDir, e.name))
        assert.equal(sha256(got), sha256(want), `${fx.listDir}/${e.name}`)
        files++
      }
      assert.ok(files >= 3, `fetched ${files} files`)
    }))

    it('fetches files over WebSocket', { timeout: 120_000, skip: opts.skipWs }, () => withDiag(async () => {
      assert.ok(provider.wsAddr, 'provider has a /ws multiaddr')
      const h = await client({ tcp: false })
      const conn = await dial(h, provider.wsAddr)
      assert.ok(conn.remoteAddr.toString().includes('/ws'), `connected over ${conn.remoteAddr}`)
      const root = CID.parse(fx.root)
      // one small file and one multi-block file
      const small = fx.files.find(f => f.rel.startsWith(fx.listDir + '/') && f.size > 0)
      for (const f of [small, fx.bigFile]) {
        const got = await cat(h, root, { path: f.rel })
        const want = await readFile(join(fx.dir, f.rel))
        assert.equal(sha256(got), sha256(want), f.rel)
      }
    }))
  })
}
