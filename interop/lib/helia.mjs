// A minimal Helia node: Bitswap over TCP (+ WebSocket), noise, yamux and
// identify. By default no DHT, no delegated/HTTP routing, no bootstrap, no mDNS,
// no HTTP gateway broker: the only way it gets blocks is Bitswap from peers it
// has been told to dial (lib/routing.mjs adds a DHT or a delegated router).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { CarReader } from '@ipld/car'
import { readFile } from 'node:fs/promises'
import { setMaxListeners } from 'node:events'

/**
 * @param {object} [opts]
 * @param {string[]} [opts.listen] multiaddrs to listen on (default: none, a pure client)
 * @param {boolean} [opts.tcp] enable the TCP transport (default true)
 * @param {boolean} [opts.websockets] enable the WebSocket transport (default true)
 * @param {object} [opts.services] extra libp2p services (e.g. a kad-dht); none by default
 * @param {Array} [opts.peerDiscovery] libp2p peer discovery modules; none by default
 * @param {Array} [opts.routers] Helia routers (e.g. delegated HTTP); none by default
 * @param {object} [opts.connectionMonitor] js-libp2p's connection monitor settings, e.g.
 *   `{ abortConnectionOnPingFailure: false }` for long transfers on a loaded machine (a ping
 *   past its adaptive timeout otherwise aborts the connection, and without routing the node
 *   cannot find the provider again)
 */
export async function makeHelia (opts = {}) {
  const listen = opts.listen ?? []
  const transports = []
  if (opts.tcp !== false) transports.push(tcp())
  if (opts.websockets !== false) transports.push(webSockets())

  const helia = withBitswap(withLibp2pLight(createHeliaLight({ routers: opts.routers ?? [] }), {
    addresses: { listen },
    transports,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: opts.peerDiscovery ?? [],
    ...(opts.connectionMonitor ? { connectionMonitor: opts.connectionMonitor } : {}),
    services: { identify: identify(), ...(opts.services ?? {}) },
    // loopback addresses are what we test with: never refuse them
    connectionGater: {
      denyDialMultiaddr: async () => false
    }
  }))
  await helia.start()
  return helia
}

/** An AbortSignal that many concurrent block fetches may listen on without warnings. */
export function timeoutSignal (ms) {
  const signal = AbortSignal.timeout(ms)
  setMaxListeners(Infinity, signal)
  return signal
}

/** Dial a multiaddr string (must include /p2p/<peer id>) and return the connection. */
export async function dial (helia, addr, { timeoutMs = 15_000 } = {}) {
  return helia.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) })
}

/** Cat a UnixFS file into one Buffer. */
export async function cat (helia, cid, { timeoutMs = 120_000, path } = {}) {
  const fs = unixfs(helia)
  const chunks = []
  for await (const chunk of fs.cat(cid, { signal: timeoutSignal(timeoutMs), path })) {
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** List a UnixFS directory: [{ name, cid }] sorted by name. */
export async function ls (helia, cid, { timeoutMs = 60_000, path } = {}) {
  const fs = unixfs(helia)
  const out = []
  for await (const entry of fs.ls(cid, { signal: AbortSignal.timeout(timeoutMs), path })) {
    out.push({ name: entry.name, cid: entry.cid })
  }
  out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  return out
}

/** Resolve a path below a root CID to the CID of the entry it names. */
export async function resolvePath (helia, root, path, { timeoutMs = 60_000 } = {}) {
  const fs = unixfs(helia)
  const st = await fs.stat(root, { path, signal: AbortSignal.timeout(timeoutMs) })
  return st.cid
}

/** Put every block of a CAR file into the node's blockstore; returns the roots. */
export async function importCar (helia, carPath) {
  const reader = await CarReader.fromBytes(await readFile(carPath))
  let n = 0
  for await (const { cid, bytes } of reader.blocks()) {
    await helia.blockstore.put(cid, bytes)
    n++
  }
  return { roots: await reader.getRoots(), blocks: n }
}

/** The node's listen addresses that match a predicate (e.g. TCP vs WS), as strings. */
export function listenAddrs (helia, pred = () => true) {
  return helia.libp2p.getMultiaddrs().map(a => a.toString()).filter(pred)
}

export const isTcp = (a) => a.includes('/tcp/') && !a.includes('/ws') && !a.includes('/wss')
export const isWs = (a) => a.includes('/ws') && !a.includes('/wss')

export async function stopAll (...nodes) {
  await Promise.allSettled(nodes.filter(Boolean).map(n => n.stop()))
}

/**
 * One whole block from a blockstore. interface-blockstore 7 (Helia 7) returns
 * a (async) generator of chunks from get(); older ones a Uint8Array.
 */
export async function getBlock (blockstore, cid, options) {
  const r = await blockstore.get(cid, options)
  if (r instanceof Uint8Array) return r
  const chunks = []
  for await (const c of r) chunks.push(c)
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}
