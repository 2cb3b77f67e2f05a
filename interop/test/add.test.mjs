// `hydrant add` (issue 16): real files in, the CIDs the reference importer gives them, and the
// same bytes back out through Bitswap (Helia) and the trustless gateway.
//
// - /usr/share/doc (real files and symlinks) added with `hydrant add -r` through a running
//   daemon: its root equals ipfs-unixfs-importer's (profile unixfs-v1-2025) over the same tree;
//   Helia fetches every file over Bitswap and each equals the file on disk.
// - A 1 GiB file: add-1gib.test.mjs.
import assert from 'node:assert/strict'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { unixfs } from '@helia/unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import { timeoutSignal } from '../lib/helia.mjs'
import { skipUnlessHydrant } from '../lib/hydrant.mjs'
import { V1_2025, blackHole, daemonWithHelia, hydrantAdd, sha } from '../lib/unixfs.mjs'

const skip = await skipUnlessHydrant()
const DOC = '/usr/share/doc'


/** Import candidates for the tree at `dir` as `hydrant add -r` sees it (no dot names). */
async function * candidates (dir, path) {
  const st = await lstat(dir)
  if (st.isSymbolicLink()) {
    yield { path, link: await readlink(dir) }
  } else if (st.isFile()) {
    yield { path, content: createReadStream(dir) }
  } else if (st.isDirectory()) {
    yield { path }
    for (const name of (await readdir(dir)).sort()) {
      if (!name.startsWith('.')) yield * candidates(join(dir, name), `${path}/${name}`)
    }
  }
}

async function referenceRoot (dir, name) {
  let root
  for await (const entry of importer(candidates(dir, name), blackHole, V1_2025)) {
    if (entry.path === name) root = entry.cid.toString()
  }
  return root
}

/** Every regular file under `dir` (relative paths), as `hydrant add -r` adds them. */
async function regularFiles (dir, rel = '') {
  const out = []
  for (const name of (await readdir(join(dir, rel))).sort()) {
    if (name.startsWith('.')) continue
    const r = rel ? `${rel}/${name}` : name
    const st = await lstat(join(dir, r))
    if (st.isDirectory()) out.push(...await regularFiles(dir, r))
    else if (st.isFile()) out.push(r)
  }
  return out
}



describe('hydrant add', { skip }, () => {
  const ctx = daemonWithHelia()

  it(`-r ${DOC}: the reference root, and every file back over Bitswap`, { timeout: 900_000 }, async () => {
    const lines = await hydrantAdd(ctx.hydrant, ['-r', DOC])
    const car = lines.at(-1)
    const root = lines.find(l => l.name === 'doc')
    assert.ok(root, 'an entry for the directory itself')
    assert.deepEqual(car.roots, [root.cid], 'the CAR is rooted at the directory')
    assert.deepEqual(car.pinned, [root.cid], 'and pinned')
    assert.equal(root.cid, await referenceRoot(DOC, 'doc'), 'same root CID as ipfs-unixfs-importer')

    // Every regular file by the CID `add` printed for it, and every 20th also by its path
    // under the root (which ties the printed CIDs to the verified root).
    const fs = unixfs(ctx.helia)
    const printed = new Map(lines.filter(l => l.name).map(l => [l.name, l.cid]))
    const files = await regularFiles(DOC)
    assert.ok(files.length > 10, `${files.length} files`)
    for (const [i, rel] of files.entries()) {
      const cid = printed.get(`doc/${rel}`)
      assert.ok(cid, `doc/${rel} printed`)
      const want = sha(await readFile(join(DOC, rel)))
      const fetched = [[CID.parse(cid), undefined]]
      if (i % 20 === 0) fetched.push([CID.parse(root.cid), rel])
      for (const [from, path] of fetched) {
        const chunks = []
        for await (const c of fs.cat(from, { path, signal: timeoutSignal(60_000) })) chunks.push(c)
        assert.equal(sha(Buffer.concat(chunks)), want, `${rel} (${path ? 'by path' : 'by CID'})`)
      }
    }
  })
})
