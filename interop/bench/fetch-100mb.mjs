// Fetch a 100 MB file over Bitswap on loopback TCP, from Helia and from Hydrant.
//
//   node --import ./polyfill.mjs bench/fetch-100mb.mjs      (from interop/)
//   npm run bench                                            (same)
//
// Env: HYDRANT_BIN (default ../target/release/hydrant), BENCH_BYTES (default
// 100000000), BENCH_RUNS (default 1; the median is reported).
// (a) a Helia node imports the ipfs-car CAR into its blockstore and serves it;
//     a second, fresh Helia node dials it over TCP and cats the file.
// (b) the same CAR is ingested into a fresh Hydrant daemon; a fresh Helia node
//     dials Hydrant's TCP address and cats the file.
// Timing covers dial + cat (every byte hashed for the equality check outside
// the timed part). Prints one JSON object on stdout; progress goes to stderr.
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { randomFileFixture } from '../lib/fixture.mjs'
import { dial, importCar, timeoutSignal, isTcp, listenAddrs, makeHelia } from '../lib/helia.mjs'
import { hydrantAvailable, hydrantBin, startHydrant } from '../lib/hydrant.mjs'
import { unixfs } from '@helia/unixfs'

const size = Number(process.env.BENCH_BYTES ?? 100_000_000)
const runs = Number(process.env.BENCH_RUNS ?? 1)
const log = (...a) => process.stderr.write(a.join(' ') + '\n')

async function timedFetch (addr, root, expectSha) {
  const client = await makeHelia({ websockets: false })
  try {
    const hash = createHash('sha256')
    let n = 0
    const t0 = process.hrtime.bigint()
    await dial(client, addr)
    for await (const chunk of unixfs(client).cat(root, { signal: timeoutSignal(600_000) })) {
      hash.update(chunk)
      n += chunk.length
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9
    const sha = hash.digest('hex')
    if (n !== size || sha !== expectSha) throw new Error(`fetched ${n} bytes, sha256 ${sha}; expected ${size}, ${expectSha}`)
    return secs
  } finally {
    await client.stop()
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

log(`preparing ${size} pseudo-random bytes and packing with ipfs-car...`)
const fx = await randomFileFixture(size, 100)
const root = CID.parse(fx.root)
log(`root ${fx.root}`)

async function heliaRun (i) {
  const server = await makeHelia({ listen: ['/ip4/127.0.0.1/tcp/0'], websockets: false })
  try {
    const { roots, blocks } = await importCar(server, fx.car)
    if (roots[0].toString() !== fx.root) throw new Error('CAR root mismatch')
    const addr = listenAddrs(server, isTcp)[0]
    const s = await timedFetch(addr, root, fx.sha256)
    log(`helia run ${i + 1}: ${s.toFixed(3)} s (${blocks} blocks, ${(size / s / 1e6).toFixed(1)} MB/s)`)
    return s
  } finally {
    await server.stop()
  }
}

async function hydrantRun (i) {
  const hydrant = await startHydrant()
  try {
    const t0 = process.hrtime.bigint()
    const res = await hydrant.ingest(fx.car)
    const ingestSecs = Number(process.hrtime.bigint() - t0) / 1e9
    if (res.roots?.[0] !== fx.root) throw new Error(`ingest returned roots ${JSON.stringify(res.roots)}`)
    const s = await timedFetch(hydrant.tcpAddr, root, fx.sha256)
    log(`hydrant run ${i + 1}: ${s.toFixed(3)} s (${(size / s / 1e6).toFixed(1)} MB/s; ingest took ${ingestSecs.toFixed(3)} s)`)
    return s
  } catch (err) {
    err.message += `\nhydrant stderr tail:\n${await hydrant.logTail(4000)}`
    throw err
  } finally {
    await hydrant.stop()
  }
}

// runs alternate (helia, hydrant, helia, ...) so warm-up and machine noise
// fall on both sides alike
const heliaTimes = []
const hydrantTimes = []
let hydrantError = null
if (!(await hydrantAvailable())) {
  hydrantError = `hydrant binary not found at ${hydrantBin()}`
  log(hydrantError)
}
for (let i = 0; i < runs; i++) {
  heliaTimes.push(await heliaRun(i))
  if (hydrantError) continue
  try {
    hydrantTimes.push(await hydrantRun(i))
  } catch (err) {
    hydrantError = err.message
    log(hydrantError)
  }
}

const heliaSeconds = median(heliaTimes)
const hydrantSeconds = hydrantTimes.length === runs ? median(hydrantTimes) : null
const out = {
  bytes: size,
  root: fx.root,
  runs,
  helia_seconds: Number(heliaSeconds.toFixed(3)),
  hydrant_seconds: hydrantSeconds == null ? null : Number(hydrantSeconds.toFixed(3)),
  // > 1 means Hydrant is faster than Helia as a provider
  ratio: hydrantSeconds == null ? null : Number((heliaSeconds / hydrantSeconds).toFixed(3))
}
if (hydrantError) out.hydrant_error = hydrantError.split('\n')[0]
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(hydrantSeconds == null ? 1 : 0)
