// A command-line Helia client for the load-balancer failover test: Hydrant
// replicas sharing one peer ID behind a TCP load balancer, one of them killed
// or restarted while this client fetches a big file through the balancer.
//
//   node --import ./polyfill.mjs bin/lb-fetch.mjs make-car <bytes> <seed> <out.car>
//     -> {"root", "sha256", "bytes", "car"}
//   node --import ./polyfill.mjs bin/lb-fetch.mjs fetch <multiaddr/p2p/ID> <root-cid>
//        [--delay-ms N] [--timeout-ms N] [--stall-ms N]
//     -> {"bytes", "sha256", "reconnects", "seconds"}
//
// Run from interop/ (or give polyfill.mjs by absolute path). Exactly one JSON
// line goes to stdout; progress and errors go to stderr; exit 0 on success.
//
// --delay-ms N paces the *network* fetch: blocks are requested one at a time,
// each request N ms after the previous block arrived, so a fetch of B blocks
// lasts at least B * N ms (a 100 MB ipfs-car file has 97 blocks of <= 1 MiB).
// Sleeping in the cat loop instead would not do: the UnixFS exporter walks the
// DAG into an unbounded queue with parallel block reads, so Bitswap would have
// every block long before a slow reader got to it. With 0 (the default) the
// exporter's usual parallel reads are kept.
//
// How the fetch survives a replica going away: @helia/bitswap keeps every
// unanswered want in its WantList until the block arrives (or the cat's signal
// aborts) and, whenever a peer speaking Bitswap connects (libp2p registrar
// topology onConnect, i.e. after identify), sends that peer the full wantlist.
// So all this client has to do is dial the same multiaddr again when the
// connection drops: the load balancer puts the new connection on a live
// replica, which has the same peer ID, and receives every outstanding want.
// A stall watchdog covers what that cannot see (a connection that stays open
// but no longer answers, or a reconnect whose identify never completed): with
// no block for --stall-ms it hangs up, which triggers the same redial.
import { createHash } from 'node:crypto'
import { copyFile, mkdir } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { unixfs } from '@helia/unixfs'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { randomFileFixture } from '../lib/fixture.mjs'
import { makeHelia, timeoutSignal } from '../lib/helia.mjs'

const log = (...a) => process.stderr.write(`lb-fetch: ${a.join(' ')}\n`)
const usage = 'usage: lb-fetch.mjs make-car <bytes> <seed> <out.car>\n' +
  '       lb-fetch.mjs fetch <multiaddr-with-/p2p/> <root-cid> [--delay-ms N] [--timeout-ms N] [--stall-ms N]'

const REDIAL_BACKOFF_MS = 200
const DIAL_TIMEOUT_MS = 5_000

/** `--name N` options after the positional arguments -> { name: N } (numbers only). */
function parseOptions (args, defaults) {
  const out = { ...defaults }
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)$/.exec(args[i])
    const key = m?.[1].replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    const value = Number(args[i + 1])
    if (key == null || !Object.hasOwn(defaults, key) || !Number.isFinite(value) || value < 0) {
      throw new Error(`bad option ${JSON.stringify(args[i])} ${JSON.stringify(args[i + 1])}\n${usage}`)
    }
    out[key] = value
    i++
  }
  return out
}

/** The random-file fixture (cached in .cache/) with its CAR copied to `out`. */
async function makeCar (bytes, seed, out) {
  log(`building ${bytes} pseudo-random bytes (seed ${seed}) and packing with ipfs-car...`)
  const fx = await randomFileFixture(bytes, seed)
  const car = resolve(out)
  await mkdir(dirname(car), { recursive: true })
  await copyFile(fx.car, car)
  log(`root ${fx.root}, CAR ${car}`)
  return { root: fx.root, sha256: fx.sha256, bytes: fx.size, car }
}

async function fetch (addr, rootStr, { delayMs, timeoutMs, stallMs }) {
  const target = multiaddr(addr)
  const peerStr = target.getComponents().findLast(c => c.name === 'p2p')?.value
  if (peerStr == null) throw new Error(`${addr} has no /p2p/<peer id>`)
  const root = CID.parse(rootStr)
  const deadline = timeoutSignal(timeoutMs)
  const t0 = process.hrtime.bigint()
  const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9

  const helia = await makeHelia({ websockets: false })
  const connected = () => helia.libp2p.getConnections().some(c => c.remotePeer.toString() === peerStr)
  let done = false
  let reconnects = 0
  let dialing = null

  // Dial until there is a connection to the peer again (or the deadline).
  // Concurrent callers share one loop; each redial that lands counts once.
  const connect = (why) => {
    dialing ??= (async () => {
      for (let attempt = 1; !done && !deadline.aborted; attempt++) {
        if (connected()) return true
        try {
          const conn = await helia.libp2p.dial(target, { signal: AbortSignal.any([deadline, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
          if (why !== 'dial') reconnects++
          log(`${why}: connected to ${conn.remoteAddr} after ${attempt} attempt(s) at ${elapsed().toFixed(2)} s`)
          return true
        } catch (err) {
          if (attempt === 1 || attempt % 10 === 0) log(`${why}: dial attempt ${attempt} failed: ${err.message}`)
          await sleep(REDIAL_BACKOFF_MS)
        }
      }
      return false
    })().finally(() => { dialing = null })
    return dialing
  }

  // The watcher: every time the last connection to the peer closes, redial.
  helia.libp2p.addEventListener('peer:disconnect', (evt) => {
    if (done || evt.detail.toString() !== peerStr) return
    log(`peer disconnected at ${elapsed().toFixed(2)} s, redialing ${addr}`)
    void connect('reconnect')
  })

  // The stall watchdog: no block for stallMs while connected -> hang up (the
  // disconnect handler redials and Bitswap re-sends the wantlist).
  let lastProgress = Date.now()
  const watchdog = setInterval(() => {
    if (done || dialing != null || Date.now() - lastProgress < stallMs) return
    lastProgress = Date.now()
    if (connected()) {
      log(`no block for ${stallMs} ms, hanging up to force a fresh connection`)
      helia.libp2p.hangUp(target).catch(err => log(`hang-up failed: ${err.message}`))
    } else {
      void connect('stall')
    }
  }, 1_000)

  try {
    if (!(await connect('dial'))) throw new Error(`could not dial ${addr} within ${timeoutMs} ms`)
    // the node's blockstore (local, else Bitswap) behind the pacing delay;
    // lastProgress only counts time spent waiting for a requested block
    const blockstore = {
      async * get (cid, options) {
        if (delayMs > 0) await sleep(delayMs, undefined, { signal: options?.signal })
        lastProgress = Date.now()
        yield * helia.blockstore.get(cid, options)
        lastProgress = Date.now()
      }
    }
    const opts = { signal: deadline, ...(delayMs > 0 ? { blockReadConcurrency: 1 } : {}) }
    const hash = createHash('sha256')
    let bytes = 0
    let nextLog = 10_000_000
    for await (const chunk of unixfs({ blockstore }).cat(root, opts)) {
      hash.update(chunk)
      bytes += chunk.length
      if (bytes >= nextLog) {
        log(`${bytes} bytes at ${elapsed().toFixed(2)} s`)
        nextLog += 10_000_000
      }
    }
    return { bytes, sha256: hash.digest('hex'), reconnects, seconds: Number(elapsed().toFixed(3)) }
  } catch (err) {
    if (deadline.aborted) throw new Error(`timed out after ${timeoutMs} ms (${reconnects} reconnects): ${err.message}`)
    throw err
  } finally {
    done = true
    clearInterval(watchdog)
    await helia.stop().catch(() => {})
  }
}

const [cmd, ...args] = process.argv.slice(2)
try {
  let out
  if (cmd === 'make-car' && args.length === 3) {
    const [bytes, seed] = args.slice(0, 2).map(Number)
    if (!Number.isInteger(bytes) || bytes <= 0 || !Number.isInteger(seed)) throw new Error(usage)
    out = await makeCar(bytes, seed, args[2])
  } else if (cmd === 'fetch' && args.length >= 2) {
    out = await fetch(args[0], args[1], parseOptions(args.slice(2), { delayMs: 0, timeoutMs: 300_000, stallMs: 15_000 }))
  } else {
    throw new Error(usage)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
} catch (err) {
  log(`error: ${err.message}`)
  process.exit(1)
}
