// Reference results for Hydrant's UnixFS exporter (crates/unixfs/src/exporter), made by
// ipfs-unixfs-exporter (the JS exporter of Helia and ipfs-car, installed with ipfs-car) from
// the same blocks.
//
//   node bin/unixfs-export-reference.mjs < input.json
//
// stdin: { "blocks": [[CID, HEX_BYTES], ...], "ops": [OP, ...] } where OP is one of
//   { "cat": "CID[/path]", "offset": N?, "length": N? }  file bytes (optionally a range)
//   { "ls": "CID[/path]" }                                 directory entries, each exported
//                                                          again for its type and size
//   { "tree": "CID[/path]" }                               every path under it (recursive)
// stdout: one JSON line per op, in order:
//   cat:  { "cid": TARGET, "size": FILE_SIZE, "bytes": HEX }
//   ls:   { "cid": TARGET, "entries": [{ "name", "cid", "tsize", "type", "size" }, ...] }
//         (type: the exporter's entry type, or the UnixFS type for dag-pb nodes)
//   tree: { "paths": [[RELATIVE_PATH, TYPE], ...] }
// Errors go to stderr with exit code 1.
import { exporter, recursive } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'

const input = JSON.parse(await new Promise((resolve, reject) => {
  let s = ''
  process.stdin.setEncoding('utf8')
  process.stdin.on('data', (d) => { s += d })
  process.stdin.on('end', () => resolve(s))
  process.stdin.on('error', reject)
}))

const blocks = new Map(input.blocks.map(([cid, hex]) => [CID.parse(cid).toString(), Buffer.from(hex, 'hex')]))
const blockstore = {
  get (cid) {
    const b = blocks.get(cid.toString())
    if (b == null) throw new Error(`block ${cid} not in the input`)
    return (async function * () { yield new Uint8Array(b) })()
  },
  has: async (cid) => blocks.has(cid.toString())
}

function typeOf (entry) {
  if (entry.type === 'file' || entry.type === 'directory') return entry.unixfs.type
  return entry.type
}

async function run (op) {
  if (op.cat != null) {
    const e = await exporter(op.cat, blockstore)
    const opts = {}
    if (op.offset != null) opts.offset = op.offset
    if (op.length != null) opts.length = op.length
    const parts = []
    for await (const chunk of e.content(opts)) parts.push(Buffer.from(chunk))
    return { cid: e.cid.toString(), size: Number(e.size), bytes: Buffer.concat(parts).toString('hex') }
  }
  if (op.ls != null) {
    const e = await exporter(op.ls, blockstore)
    const entries = []
    for await (const child of e.entries()) {
      const c = await exporter(child.cid, blockstore)
      entries.push({
        name: child.name,
        cid: child.cid.toString(),
        tsize: Number(child.size),
        type: typeOf(c),
        size: c.type === 'directory' ? null : Number(c.size)
      })
    }
    return { cid: e.cid.toString(), entries }
  }
  if (op.tree != null) {
    const paths = []
    let base = null
    for await (const e of recursive(op.tree, blockstore)) {
      if (base == null) base = e.path
      const rel = e.path === base ? '' : e.path.slice(base.length + 1)
      const full = await exporter(e.cid, blockstore)
      paths.push([rel, typeOf(full)])
    }
    return { paths }
  }
  throw new Error(`unknown op ${JSON.stringify(op)}`)
}

for (const op of input.ops) {
  process.stdout.write(JSON.stringify(await run(op)) + '\n')
}
