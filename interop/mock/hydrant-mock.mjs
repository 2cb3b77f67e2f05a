// A stand-in for the `hydrant` binary, built from Helia, that follows the CLI
// contract (init / daemon / ingest --json) closely enough to self-test the
// interop harness before the real binary exists:
//   HYDRANT_BIN=interop/mock/hydrant-mock scripts/interop.sh
// It is NOT Hydrant: passing against it proves only the tests themselves.
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CarReader, CarWriter } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { getBlock, makeHelia, isTcp, isWs, listenAddrs } from '../lib/helia.mjs'

const argv = process.argv.slice(2)
let repo
const rest = []
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--repo') repo = argv[++i]
  else rest.push(argv[i])
}
const cmd = rest.shift()
if (!repo) fail('--repo DIR is required')

function fail (msg) {
  process.stderr.write(`hydrant-mock: ${msg}\n`)
  process.exit(1)
}

if (cmd === 'init') {
  await mkdir(join(repo, 'cars'), { recursive: true })
  await writeFile(join(repo, 'config.json'), '{}\n')
} else if (cmd === 'ingest') {
  const car = rest.filter(a => a !== '--json').pop()
  const api = JSON.parse(await readFile(join(repo, 'api.json'), 'utf8'))
  const res = await fetch(`${api.api_url}/api/v1/cars`, { method: 'PUT', body: await readFile(car) })
  const text = await res.text()
  if (!res.ok) fail(`ingest: ${res.status} ${text}`)
  process.stdout.write(text.trim() + '\n')
} else if (cmd === 'daemon') {
  await daemon()
} else {
  fail(`unknown command ${cmd}`)
}

async function daemon () {
  const helia = await makeHelia({ listen: ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] })
  const bs = helia.blockstore

  const listen = (handler) => new Promise((resolve) => {
    const srv = createServer((req, res) => handler(req, res).catch((err) => {
      res.statusCode = 500
      res.end(String(err))
    }))
    srv.listen(0, '127.0.0.1', () => resolve(srv))
  })

  const api = await listen(async (req, res) => {
    if (req.method !== 'PUT' || req.url !== '/api/v1/cars') { res.statusCode = 404; return res.end() }
    const chunks = []
    for await (const c of req) chunks.push(c)
    const body = Buffer.concat(chunks)
    const reader = await CarReader.fromBytes(body)
    let blocks = 0
    let bytes = 0
    for await (const b of reader.blocks()) {
      await bs.put(b.cid, b.bytes)
      blocks++
      bytes += b.bytes.length
    }
    const hex = createHash('sha256').update(body).digest('hex')
    await writeFile(join(repo, 'cars', `${hex}.car`), body)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ car_key: `cars/${hex}.car`, roots: (await reader.getRoots()).map(String), blocks, bytes, version: reader.version }))
  })

  const gateway = await listen(async (req, res) => {
    const url = new URL(req.url, 'http://x')
    const m = url.pathname.match(/^\/ipfs\/([^/]+)$/)
    if (!m) { res.statusCode = 404; return res.end() }
    const cid = CID.parse(m[1])
    const accept = req.headers.accept ?? ''
    const format = url.searchParams.get('format') ?? (accept.includes('application/vnd.ipld.car') ? 'car' : accept.includes('application/vnd.ipld.raw') ? 'raw' : null)
    if (!(await bs.has(cid))) { res.statusCode = 404; return res.end('not found') }
    if (format === 'raw') {
      res.setHeader('content-type', 'application/vnd.ipld.raw')
      return res.end(await getBlock(bs, cid))
    }
    if (format === 'car') {
      res.setHeader('content-type', 'application/vnd.ipld.car; version=1; order=dfs; dups=n')
      const { writer, out } = CarWriter.create([cid])
      const pump = (async () => { for await (const c of out) res.write(c) })()
      const seen = new Set()
      const walk = async (c) => {
        if (seen.has(c.toString())) return
        seen.add(c.toString())
        const bytes = await getBlock(bs, c)
        await writer.put({ cid: c, bytes })
        if (c.code === dagPb.code) for (const l of dagPb.decode(bytes).Links) await walk(l.Hash)
      }
      await walk(cid)
      await writer.close()
      await pump
      return res.end()
    }
    res.statusCode = 400
    res.end('mock gateway: only format=raw|car')
  })

  const peerId = helia.libp2p.peerId.toString()
  const info = {
    peer_id: peerId,
    swarm_addrs: [...listenAddrs(helia, isTcp), ...listenAddrs(helia, isWs)],
    gateway_url: `http://127.0.0.1:${gateway.address().port}`,
    api_url: `http://127.0.0.1:${api.address().port}`
  }
  await writeFile(join(repo, 'api.json'), JSON.stringify(info) + '\n')
  process.stdout.write(JSON.stringify(info) + '\n')
  process.stderr.write('hydrant-mock: listening\n')
  process.once('SIGTERM', async () => {
    api.close(); gateway.close()
    await helia.stop()
    process.exit(0)
  })
}
