// Reference CIDs for Hydrant's UnixFS importer (crates/unixfs/src/importer), made by
// ipfs-unixfs-importer (the JS importer of Helia and ipfs-car) with the same parameters.
//
//   node bin/unixfs-reference.mjs < cases.json
//
// stdin: a JSON array of cases, each
//   { "profile": "unixfs-v1-2025" | "unixfs-v0-2015",
//     "params": { "cidVersion", "rawLeaves", "chunkSize", "maxLinks", "hamtThreshold",
//                 "hamtEstimation": "links-bytes" | "block-bytes", "hamtFanoutBits" },
//     "tree": NODE }
// where every params field is optional (absent: the profile's value) and NODE is one of
//   { "file": { "size": BYTES, "seed": STRING } }   Kubo's deterministic bytes: the ChaCha20
//                                                   keystream, key sha256(seed), zero nonce
//   { "dir": [[NAME, NODE], ...] }                  a directory (possibly empty)
//   { "symlink": TARGET }
// and any NODE may carry UnixFS 1.5 metadata: "mode": BITS, "mtime": [SECONDS, NANOSECONDS]
// (NANOSECONDS 0: not written).
// stdout: one JSON line per case, in order: { "cid": ROOT, "size": CUMULATIVE_SIZE }.
// Errors go to stderr with exit code 1.
//
// ipfs-unixfs-importer options per IPIP-0499 profile: `profile` sets cidVersion, rawLeaves,
// shardSplitStrategy, the 256 KiB / 1 MiB chunk and 174 / 1024 links; the explicit options
// below (chunker fixedSize, layout balanced, shardSplitThresholdBytes, ...) override them.
import { createHash, createCipheriv } from 'node:crypto'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

// The importer only writes blocks: keep none.
const blackHole = { put: async (cid) => cid }

const PROFILES = {
  'unixfs-v1-2025': { chunkSize: 1_048_576, maxLinks: 1024, hamtThreshold: 262_144 },
  'unixfs-v0-2015': { chunkSize: 262_144, maxLinks: 174, hamtThreshold: 262_144 }
}

function deterministicBytes (size, seed) {
  const key = createHash('sha256').update(seed).digest()
  // node's chacha20 IV: 4-byte little-endian block counter, then the 12-byte nonce.
  const cipher = createCipheriv('chacha20', key, Buffer.alloc(16))
  return new Uint8Array(cipher.update(Buffer.alloc(size)))
}

function metadata (node) {
  const meta = {}
  if (node.mode != null) meta.mode = node.mode
  if (node.mtime != null) {
    meta.mtime = { secs: BigInt(node.mtime[0]) }
    if (node.mtime[1] !== 0) meta.mtime.nsecs = node.mtime[1]
  }
  return meta
}

// Import candidates for NODE at `path`.
function * candidates (node, path) {
  if (node.file != null) {
    yield { path, content: deterministicBytes(node.file.size, node.file.seed), ...metadata(node) }
  } else if (node.symlink != null) {
    yield { path, link: node.symlink, ...metadata(node) }
  } else if (node.dir != null) {
    yield { path, ...metadata(node) }
    for (const [name, child] of node.dir) {
      yield * candidates(child, `${path}/${name}`)
    }
  } else {
    throw new Error(`unknown node ${JSON.stringify(node)}`)
  }
}

async function reference (c) {
  const base = PROFILES[c.profile]
  if (base == null) throw new Error(`unknown profile ${c.profile}`)
  const p = { ...base, ...(c.params ?? {}) }
  const options = {
    profile: c.profile,
    chunker: fixedSize({ chunkSize: p.chunkSize }),
    layout: balanced({ maxChildrenPerNode: p.maxLinks }),
    shardSplitThresholdBytes: p.hamtThreshold,
    wrapWithDirectory: false
  }
  if (p.cidVersion != null) options.cidVersion = p.cidVersion
  if (p.rawLeaves != null) options.rawLeaves = p.rawLeaves
  if (p.hamtEstimation != null) options.shardSplitStrategy = p.hamtEstimation
  if (p.hamtFanoutBits != null) options.shardFanoutBits = p.hamtFanoutBits
  const root = c.tree.dir != null ? 'root' : 'entry'
  let last
  for await (const entry of importer(candidates(c.tree, root), blackHole, options)) {
    if (entry.path === root) last = entry
  }
  if (last == null) throw new Error('the importer yielded no root')
  return { cid: last.cid.toString(), size: Number(last.size) }
}

let input = ''
for await (const chunk of process.stdin) input += chunk
try {
  for (const c of JSON.parse(input)) {
    process.stdout.write(JSON.stringify(await reference(c)) + '\n')
  }
} catch (err) {
  process.stderr.write(`unixfs-reference: ${err.stack ?? err}\n`)
  process.exit(1)
}
