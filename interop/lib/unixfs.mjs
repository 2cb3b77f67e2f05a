// Shared by the `hydrant add` and Kubo RPC `add` interop tests: the reference importer's options
// for the profiles unixfs-v1-2025 and unixfs-v0-2015 (as bin/unixfs-reference.mjs),
// `hydrant add --json`, a Helia client that survives long transfers, and sha256.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { promisify } from 'node:util'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { dial, makeHelia, stopAll } from './helia.mjs'
import { hydrantBin, startHydrant } from './hydrant.mjs'

const pExecFile = promisify(execFile)

/** ipfs-unixfs-importer options of the profile unixfs-v1-2025 (IPIP-0499). */
export const V1_2025 = {
  profile: 'unixfs-v1-2025',
  cidVersion: 1,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: 1_048_576 }),
  layout: balanced({ maxChildrenPerNode: 1024 }),
  shardSplitThresholdBytes: 262_144,
  wrapWithDirectory: false
}

/**
 * ipfs-unixfs-importer options of the profile unixfs-v0-2015: Kubo's `ipfs add` defaults (CIDv0,
 * dag-pb leaves, 256 KiB chunks, 174 links). Spread it (`{ ...V0_2015, cidVersion: 1 }`): the
 * importer writes its profile's defaults into the object it is given.
 */
export const V0_2015 = {
  profile: 'unixfs-v0-2015',
  cidVersion: 0,
  rawLeaves: false,
  chunker: fixedSize({ chunkSize: 262_144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  shardSplitThresholdBytes: 262_144,
  wrapWithDirectory: false
}

/** A blockstore for the importer that keeps nothing (only the CIDs are wanted). */
export const blackHole = { put: async (cid) => cid }

/** `hydrant --repo <repo> add --json ...args`: the parsed lines. */
export async function hydrantAdd (hydrant, args) {
  const { stdout } = await pExecFile(hydrantBin(), ['--repo', hydrant.repo, 'add', '--json', ...args], {
    maxBuffer: 256 << 20,
    timeout: 600_000
  })
  return stdout.trim().split('\n').map(l => JSON.parse(l))
}

/**
 * A Helia client connected to `hydrant`. Long transfers on a loaded machine: a ping past
 * js-libp2p's adaptive timeout must not abort the connection (without routing, Helia could not
 * find Hydrant again).
 */
export async function connectedHelia (hydrant) {
  const helia = await makeHelia({ connectionMonitor: { abortConnectionOnPingFailure: false } })
  await dial(helia, hydrant.tcpAddr)
  return helia
}

export const sha = (b) => createHash('sha256').update(b).digest('hex')

/**
 * Registers, in the calling `describe`, a `before` that starts a daemon, a connected Helia
 * client and a temporary directory, and an `after` that stops and removes them. Returns the
 * object whose `hydrant`, `helia` and `work` the tests read once `before` has run.
 */
export function daemonWithHelia () {
  const ctx = {}
  before(async () => {
    ctx.work = await mkdtemp(join(tmpdir(), 'hydrant-add-'))
    ctx.hydrant = await startHydrant()
    ctx.helia = await connectedHelia(ctx.hydrant)
  }, { timeout: 120_000 })
  after(async () => {
    await stopAll(ctx.helia)
    await ctx.hydrant?.stop()
    if (ctx.work) await rm(ctx.work, { recursive: true, force: true })
  })
  return ctx
}
