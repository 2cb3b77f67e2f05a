// Hydrant's Kubo RPC API (/api/v0) driven by the official JS client, kubo-rpc-client, against one
// daemon: `add` gives the CIDs of ipfs-unixfs-importer with Kubo's defaults (profile
// unixfs-v0-2015) and options; cat/ls/get give the bytes and tree back; block, dag, pin, id,
// version, routing and swarm answer as the client reads them; errors are Kubo errors with Kubo's
// statuses; and a second daemon with api.token_file wants its bearer token.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CarReader, CarWriter } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { skipUnlessHydrant, startHydrant } from '../lib/hydrant.mjs'
import { collect, concat, kuboClient, rawRequest, referenceImport, rejectsWithStatus, untar } from '../lib/kubo.mjs'
import { V0_2015 } from '../lib/unixfs.mjs'

const skip = await skipUnlessHydrant()
const KiB = 1024

/** An abort signal for calls that must answer, not hang (e.g. a CID no one has). */
const answerWithin = (ms = 30_000) => AbortSignal.timeout(ms)

/** The CID of `bytes` as one raw block (what `block/put` answers by default). */
const rawCid = async (bytes) => CID.create(1, raw.code, await sha256.digest(bytes))

/** The reference CID of one file added alone (no name) with the importer options `options`. */
async function referenceFile (bytes, options = {}) {
  const ref = await referenceImport([{ content: bytes }], { ...V0_2015, ...options })
  return [...ref.values()].at(-1)
}

/**
 * The tree `addAll` uploads (with wrapWithDirectory): parents before children, no content for a
 * directory. Awkward names: spaces, non-ASCII, `+`, `%`, `#`; an empty file and an empty directory.
 */
function makeTree () {
  return [
    { path: 'tree' },
    { path: 'tree/hello.txt', content: Buffer.from('hello from kubo-rpc-client\n') },
    { path: 'tree/empty file', content: new Uint8Array(0) },
    { path: 'tree/two chunks.bin', content: randomBytes(300 * KiB) },
    { path: 'tree/sub dir' },
    { path: 'tree/sub dir/ünïcødé ☃ 名前.txt', content: Buffer.from('snow\n') },
    { path: 'tree/sub dir/a+b 100% #1.txt', content: randomBytes(1000) },
    { path: 'tree/sub dir/deeper' },
    { path: 'tree/sub dir/deeper/leaf.bin', content: randomBytes(5 * KiB) },
    { path: 'tree/empty dir' }
  ]
}

/** Memoizes an async function of no arguments (a fixture several tests share). */
function once (fn) {
  let p
  return () => { p ??= fn(); return p }
}

// A hung command fails its suite instead of the whole run.
const SUITE = { skip, timeout: 600_000 }

describe('Kubo RPC API with kubo-rpc-client', SUITE, () => {
  let hydrant, client
  before(async () => {
    hydrant = await startHydrant()
    client = kuboClient(hydrant)
  }, { timeout: 60_000 })
  after(async () => { await hydrant?.stop() })

  // The tree added once (wrapped in a directory): its input, the reference CIDs by path (the
  // wrapping directory at ''), and what `addAll` answered.
  const addedTree = once(async () => {
    const tree = makeTree()
    const reference = await referenceImport(tree, { ...V0_2015, wrapWithDirectory: true })
    const added = await collect(client.addAll(tree, { wrapWithDirectory: true }))
    const root = reference.get('').cid
    return { tree, reference, added, root, dir: reference.get('tree').cid }
  })

  describe('add', () => {
    it('a 600 KiB file: the CID and size of ipfs-unixfs-importer with Kubo\'s defaults (CIDv0)', async () => {
      const bytes = randomBytes(600 * KiB)
      const want = await referenceFile(bytes)
      const got = await client.add(bytes)
      assert.match(want.cid, /^Qm/)
      assert.equal(got.cid.toString(), want.cid)
      assert.equal(got.size, want.size, 'Size: the cumulative DAG size')
      assert.equal(got.path, want.cid, 'Name: the CID, for content without a name')
    })

    it('cidVersion 1: CIDv1 with raw leaves', async () => {
      const bytes = randomBytes(600 * KiB)
      const want = await referenceFile(bytes, { cidVersion: 1, rawLeaves: true })
      const got = await client.add(bytes, { cidVersion: 1 })
      assert.match(want.cid, /^bafy/)
      assert.equal(got.cid.toString(), want.cid)
      assert.equal(got.size, want.size)
    })

    it('chunker size-65536 with rawLeaves: CIDv0 root over raw leaves', async () => {
      const bytes = randomBytes(200 * KiB)
      const want = await referenceFile(bytes, { rawLeaves: true, chunker: fixedSize({ chunkSize: 65_536 }) })
      const got = await client.add(bytes, { chunker: 'size-65536', rawLeaves: true })
      assert.equal(got.cid.toString(), want.cid)
    })

    it('progress: Bytes lines up to the file\'s size, then the result', async () => {
      const bytes = randomBytes(600 * KiB)
      const seen = []
      const got = await client.add(bytes, { progress: (n) => seen.push(n) })
      assert.equal(got.cid.toString(), (await referenceFile(bytes)).cid)
      assert.ok(seen.length > 0, 'some progress reported')
      assert.equal(Math.max(...seen), bytes.length)
    })

    it('addAll of a tree with wrapWithDirectory: every path\'s CID and the root as the reference', async () => {
      const { reference, added, root } = await addedTree()
      const got = new Map(added.map(e => [e.path, e.cid.toString()]))
      const want = new Map([...reference].map(([path, e]) => [path, e.cid]))
      assert.deepEqual(got, want)
      assert.equal(added.at(-1).path, '', 'the wrapping directory comes last, named ""')
      assert.equal(added.at(-1).cid.toString(), root)
      assert.equal(reference.get('tree/empty file').cid, 'QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH')
      assert.equal(reference.get('tree/empty dir').cid, 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn')
    })

    it('onlyHash: the CID, and nothing stored', async () => {
      const bytes = randomBytes(10 * KiB)
      const got = await client.add(bytes, { onlyHash: true })
      assert.equal(got.cid.toString(), (await referenceFile(bytes)).cid)
      await assert.rejects(client.block.stat(got.cid, { signal: answerWithin() }), (e) => e.response != null,
        'an HTTP error answer, not a client timeout')
    })
  })

  describe('cat, ls, get', () => {
    it('cat: the whole file, and offset/length slices', async () => {
      const bytes = randomBytes(600 * KiB)
      const { cid } = await client.add(bytes)
      assert.ok((await concat(client.cat(cid))).equals(bytes), 'whole file')
      for (const [offset, length] of [[0, 10], [100, 1000], [262_144 - 5, 10], [500 * KiB, 200 * KiB]]) {
        const got = await concat(client.cat(cid, { offset, length }))
        assert.ok(got.equals(bytes.subarray(offset, offset + length)), `offset ${offset} length ${length}`)
      }
      assert.ok((await concat(client.cat(cid, { offset: 599 * KiB }))).equals(bytes.subarray(599 * KiB)), 'offset alone')
    })

    it('cat by /ipfs/ path through awkward names', async () => {
      const { tree, root } = await addedTree()
      for (const { path, content } of tree.filter(e => e.content)) {
        const got = await concat(client.cat(`/ipfs/${root}/${path}`))
        assert.ok(got.equals(Buffer.from(content)), path)
      }
    })

    it('ls of a directory: names, sizes, types and CIDs', async () => {
      const { tree, reference, dir } = await addedTree()
      const children = tree.filter(e => e.path.split('/').length === 2)
      const want = children.map(e => ({
        name: e.path.split('/')[1],
        cid: reference.get(e.path).cid,
        type: e.content ? 'file' : 'dir',
        ...(e.content ? { size: e.content.length } : {})
      }))
      const got = (await collect(client.ls(dir))).map(e => ({
        name: e.name,
        cid: e.cid.toString(),
        type: e.type,
        ...(e.type === 'file' ? { size: e.size } : {})
      }))
      const byName = (a, b) => a.name < b.name ? -1 : 1
      assert.deepEqual(got.sort(byName), want.sort(byName))
    })

    it('ls wire form: Objects[0].Links with Type 1 (directory) and 2 (file)', async () => {
      const { dir } = await addedTree()
      const res = await rawRequest(hydrant, `ls?arg=${dir}`)
      assert.equal(res.status, 200, res.text)
      const [object] = JSON.parse(res.text.trim().split('\n')[0]).Objects
      const types = Object.fromEntries(object.Links.map(l => [l.Name, l.Type]))
      assert.deepEqual(types, { 'empty dir': 1, 'empty file': 2, 'hello.txt': 2, 'sub dir': 1, 'two chunks.bin': 2 })
    })

    it('ls of a path below the root, with spaces and non-ASCII names', async () => {
      const { reference, root } = await addedTree()
      const got = await collect(client.ls(`/ipfs/${root}/tree/sub dir`))
      assert.deepEqual(got.map(e => [e.name, e.cid.toString()]).sort(), [
        ['a+b 100% #1.txt', reference.get('tree/sub dir/a+b 100% #1.txt').cid],
        ['deeper', reference.get('tree/sub dir/deeper').cid],
        ['ünïcødé ☃ 名前.txt', reference.get('tree/sub dir/ünïcødé ☃ 名前.txt').cid]
      ].sort())
    })

    it('get: a tar of the tree under the root\'s CID, byte for byte', async () => {
      const { tree, root } = await addedTree()
      const entries = untar(await concat(client.get(root)))
      const got = new Map(entries.map(e => [e.name, e]))
      const want = [{ path: '' }, ...tree].map(e => ({ ...e, name: e.path ? `${root}/${e.path}` : root }))
      assert.deepEqual([...got.keys()].sort(), want.map(e => e.name).sort())
      for (const e of want) {
        const entry = got.get(e.name)
        assert.equal(entry.type, e.content ? 'file' : 'directory', e.name)
        if (e.content) assert.ok(entry.content.equals(Buffer.from(e.content)), `${e.name}: bytes`)
      }
    })

    it('get of a file: one entry named by its CID', async () => {
      const bytes = randomBytes(300 * KiB)
      const { cid } = await client.add(bytes)
      const entries = untar(await concat(client.get(cid)))
      assert.deepEqual(entries.map(e => [e.name, e.type]), [[cid.toString(), 'file']])
      assert.ok(entries[0].content.equals(bytes))
    })
  })

  describe('block', () => {
    it('put (raw by default), get the same bytes, stat its size', async () => {
      const bytes = randomBytes(3000)
      const cid = await client.block.put(bytes)
      assert.equal(cid.toString(), (await rawCid(bytes)).toString())
      assert.ok(Buffer.from(await client.block.get(cid)).equals(bytes))
      const stat = await client.block.stat(cid)
      assert.equal(stat.cid.toString(), cid.toString())
      assert.equal(stat.size, bytes.length)
    })

    it('put with format dag-pb, and with cidCodec dag-pb (CIDv1)', async () => {
      const node = dagPb.encode(dagPb.prepare({ Data: randomBytes(64), Links: [] }))
      const digest = await sha256.digest(node)
      const legacy = await client.block.put(node, { format: 'dag-pb' })
      assert.equal(legacy.code, dagPb.code)
      assert.deepEqual(legacy.multihash.bytes, digest.bytes)
      const v1 = await client.block.put(node, { cidCodec: 'dag-pb' })
      assert.equal(v1.toString(), CID.createV1(dagPb.code, digest).toString())
      assert.ok(Buffer.from(await client.block.get(v1)).equals(node))
      assert.equal((await client.block.stat(v1)).size, node.length)
    })
  })

  describe('dag', () => {
    // A directory-shaped dag-pb node over two raw leaves, in a CAR of our own.
    const car = once(async () => {
      const leaves = [randomBytes(1000), randomBytes(2000)]
      const leafCids = await Promise.all(leaves.map(rawCid))
      const rootBytes = dagPb.encode(dagPb.prepare({
        Data: new Uint8Array([0x08, 0x01]), // UnixFS Data { Type: Directory }
        Links: leafCids.map((cid, i) => ({ Name: `leaf-${i}`, Hash: cid, Tsize: leaves[i].length }))
      }))
      const root = CID.createV1(dagPb.code, await sha256.digest(rootBytes))
      const blocks = [[root, rootBytes], ...leafCids.map((cid, i) => [cid, leaves[i]])]
      const { writer, out } = CarWriter.create([root])
      const bytes = concat(out)
      for (const [cid, block] of blocks) await writer.put({ cid, bytes: block })
      await writer.close()
      return { root, blocks: new Map(blocks.map(([c, b]) => [c.toString(), b])), bytes: await bytes }
    })

    it('import: the CAR\'s root reported (and pinned)', async () => {
      const { root, bytes } = await car()
      const got = await collect(client.dag.import([bytes]))
      assert.deepEqual(got.map(r => r.root.cid.toString()), [root.toString()])
      assert.ok(!got[0].root.pinErrorMsg, `PinErrorMsg: ${got[0].root.pinErrorMsg}`)
    })

    it('export: a CAR rooted there whose blocks verify and are the imported ones', async () => {
      const { root, blocks } = await car()
      const reader = await CarReader.fromBytes(await concat(client.dag.export(root)))
      assert.deepEqual((await reader.getRoots()).map(String), [root.toString()])
      const seen = new Map()
      for await (const { cid, bytes } of reader.blocks()) {
        assert.equal(cid.multihash.code, sha256.code, `${cid}: sha2-256`)
        assert.deepEqual((await sha256.digest(bytes)).bytes, cid.multihash.bytes, `${cid}: hash verifies`)
        seen.set(cid.toString(), Buffer.from(bytes))
      }
      assert.deepEqual([...seen.keys()].sort(), [...blocks.keys()].sort())
      for (const [cid, bytes] of blocks) assert.ok(seen.get(cid).equals(bytes), cid)
    })

    it('get of a dag-pb node: value.Links by name', async () => {
      const { root } = await car()
      const { value } = await client.dag.get(root)
      assert.deepEqual(value.Links.map(l => l.Name), ['leaf-0', 'leaf-1'])
    })
  })

  describe('id, version, pin, routing, swarm', () => {
    it('id: the daemon\'s peer ID and addresses', async () => {
      const id = await client.id()
      assert.equal(id.id.toString(), hydrant.peerId)
      assert.ok(Array.isArray(id.addresses), 'Addresses')
      assert.ok(id.addresses.map(String).includes(hydrant.tcpAddr), `${hydrant.tcpAddr} among ${id.addresses}`)
      assert.match(id.agentVersion, /^hydrant\//)
    })

    it('version: a Version string', async () => {
      const v = await client.version()
      assert.equal(typeof v.version, 'string')
      assert.ok(v.version.length > 0)
    })

    it('add pins by default; pin: false does not; pin add, ls and rm', async () => {
      const listed = async (cid) => (await collect(client.pin.ls())).some(p => p.cid.toString() === cid.toString())

      const byDefault = await client.add(randomBytes(2000))
      assert.ok(await listed(byDefault.cid), 'add pins its root (Kubo: pin=true)')

      const { cid } = await client.add(randomBytes(2000), { pin: false })
      assert.ok(!await listed(cid), 'pin: false leaves it unpinned')
      assert.equal((await client.pin.add(cid)).toString(), cid.toString())
      const [one] = await collect(client.pin.ls({ paths: cid }))
      assert.equal(one.cid.toString(), cid.toString())
      assert.equal(one.type, 'recursive')
      assert.ok(await listed(cid), 'listed after pin add')
      assert.equal((await client.pin.rm(cid)).toString(), cid.toString())
      assert.ok(!await listed(cid), 'not listed after pin rm')
    })

    it('routing findProvs of an added CID: completes; any PROVIDER event names Hydrant', async (t) => {
      const { cid } = await client.add(randomBytes(2000))
      const events = await collect(client.routing.findProvs(cid, { signal: answerWithin(60_000) }))
      const providers = events.filter(e => e.name === 'PROVIDER').flatMap(e => e.providers.map(p => p.id.toString()))
      t.diagnostic(`events: ${events.map(e => e.name).join(', ') || 'none'}; providers: ${providers.join(', ') || 'none'}`)
      if (providers.length > 0) assert.ok(providers.includes(hydrant.peerId), `${hydrant.peerId} among ${providers}`)
    })

    it('swarm peers: an array', async () => {
      const peers = await client.swarm.peers()
      assert.ok(Array.isArray(peers))
    })
  })

  describe('errors', () => {
    it('cat of a CID not in the store: an error naming it', async () => {
      const missing = await rawCid(randomBytes(32))
      await assert.rejects(concat(client.cat(missing, { signal: answerWithin() })), (err) => {
        assert.ok(err.response != null, `an HTTP answer, not a client timeout: ${err}`)
        assert.ok(err.message.includes(missing.toString()), `message names the CID: ${err.message}`)
        return true
      })
    })

    it('an unknown command: 404 with a Kubo error', async () => {
      const res = await rawRequest(hydrant, 'nope')
      assert.equal(res.status, 404, res.text)
      const body = JSON.parse(res.text)
      assert.equal(body.Type, 'error')
      assert.equal(typeof body.Message, 'string')
      assert.equal(typeof body.Code, 'number')
      const err = await rejectsWithStatus(client.files.stat('/'), 404)
      assert.ok(err.message.length > 0, 'the Kubo error\'s Message')
    })

    it('GET instead of POST: 405', async () => {
      for (const command of ['add', 'cat', 'version', 'id']) {
        const res = await rawRequest(hydrant, command, { method: 'GET' })
        assert.equal(res.status, 405, `GET /api/v0/${command}: ${res.text}`)
      }
    })
  })
})

describe('Kubo RPC API with api.token_file', SUITE, () => {
  const token = randomBytes(24).toString('hex')
  let hydrant
  before(async () => {
    hydrant = await startHydrant({
      config: { api: { token_file: 'api-token' } },
      files: { 'api-token': `${token}\n` }
    })
  }, { timeout: 60_000 })
  after(async () => { await hydrant?.stop() })

  it('without the bearer token, or with a wrong one: 401', async () => {
    await rejectsWithStatus(kuboClient(hydrant).id(), 401)
    await rejectsWithStatus(kuboClient(hydrant).add(Buffer.from('no token')), 401)
    await rejectsWithStatus(kuboClient(hydrant, { token: token.replace(/.$/, c => c === '0' ? '1' : '0') }).id(), 401)
    assert.equal((await rawRequest(hydrant, 'nope')).status, 401, 'the token is checked before the command')
  })

  it('with it: add, cat and id work', async () => {
    const client = kuboClient(hydrant, { token })
    const bytes = randomBytes(300 * KiB)
    const { cid } = await client.add(bytes)
    assert.equal(cid.toString(), (await referenceFile(bytes)).cid)
    assert.ok((await concat(client.cat(cid))).equals(bytes))
    assert.equal((await client.id()).id.toString(), hydrant.peerId)
  })
})
