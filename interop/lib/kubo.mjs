// Helpers of the Kubo RPC API tests (test/kubo-rpc.test.mjs): a kubo-rpc-client for a running
// daemon, raw requests to /api/v0, the reference importer's CIDs of a tree, a tar reader.
import * as dagPb from '@ipld/dag-pb'
import { create } from 'kubo-rpc-client'
import { exporter } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'

/** A kubo-rpc-client for `hydrant`'s API; `token`: sent as `Authorization: Bearer <token>`. */
export function kuboClient (hydrant, { token } = {}) {
  const headers = token == null ? {} : { authorization: `Bearer ${token}` }
  return create({ url: hydrant.apiUrl, headers })
}

/** `method` {apiUrl}/api/v0/{command} without kubo-rpc-client: { status, headers, text }. */
export async function rawRequest (hydrant, command, { method = 'POST', headers = {}, body } = {}) {
  const res = await fetch(`${hydrant.apiUrl}/api/v0/${command}`, { method, headers, body })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

/** Every chunk of `source` as one Buffer. */
export async function concat (source) {
  const chunks = []
  for await (const chunk of source) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Every item of `source` in an array. */
export async function collect (source) {
  const items = []
  for await (const item of source) items.push(item)
  return items
}

/** A blockstore in memory, as ipfs-unixfs-importer writes and ipfs-unixfs-exporter reads one. */
function memoryBlockstore () {
  const blocks = new Map()
  return {
    put: async (cid, bytes) => { blocks.set(cid.toString(), bytes); return cid },
    get: async function * (cid) { yield blocks.get(cid.toString()) }
  }
}

/**
 * ipfs-unixfs-importer over `candidates` (an array of { path, content? }: no content is a
 * directory) with `options`: Map path -> { cid (string), size (number, cumulative DAG bytes) };
 * a wrapping directory is at path ''. The importer yields no entry for an empty directory
 * (Kubo's `add` reports every directory): those are read back from the wrapping directory.
 */
export async function referenceImport (candidates, options) {
  const blockstore = memoryBlockstore()
  const out = new Map()
  for await (const entry of importer(candidates, blockstore, { ...options })) {
    out.set(entry.path ?? '', { cid: entry.cid.toString(), size: Number(entry.size) })
  }
  const root = out.get('')
  for (const { path } of candidates) {
    if (root == null || path == null || out.has(path)) continue
    const entry = await exporter(`${root.cid}/${path}`, blockstore)
    const links = entry.node.Links.reduce((sum, l) => sum + (l.Tsize ?? 0), 0)
    out.set(path, { cid: entry.cid.toString(), size: dagPb.encode(entry.node).length + links })
  }
  return out
}

/**
 * Whether `promise` rejects as kubo-rpc-client rejects an HTTP error answer with `status`
 * (`err.response.status`); returns the error for more checks.
 */
export async function rejectsWithStatus (promise, status) {
  try {
    await promise
  } catch (err) {
    if (err?.response?.status !== status) {
      throw new Error(`expected HTTP ${status}, got ${err?.response?.status ?? 'no response'}: ${err?.message}`, { cause: err })
    }
    return err
  }
  throw new Error(`expected HTTP ${status}, but the call succeeded`)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A NUL-terminated text field of a tar header. */
function field (header, start, length) {
  const bytes = header.subarray(start, start + length)
  const end = bytes.indexOf(0)
  return utf8.decode(end < 0 ? bytes : bytes.subarray(0, end))
}

/** An octal (or GNU base-256) number field of a tar header. */
function number (header, start, length) {
  const bytes = header.subarray(start, start + length)
  if (bytes[0] & 0x80) {
    let n = BigInt(bytes[0] & 0x7f)
    for (const b of bytes.subarray(1)) n = (n << 8n) | BigInt(b)
    return Number(n)
  }
  const text = field(header, start, length).trim()
  return text === '' ? 0 : parseInt(text, 8)
}

/** The records of a PAX extended header: "LEN key=value\n" each, LEN counting the whole record. */
function paxRecords (body) {
  const records = {}
  let at = 0
  while (at < body.length) {
    const space = body.indexOf(0x20, at)
    if (space < 0) break
    const length = parseInt(utf8.decode(body.subarray(at, space)), 10)
    if (!(length > 0)) throw new Error(`tar: bad PAX record at ${at}`)
    const record = utf8.decode(body.subarray(space + 1, at + length - 1))
    const eq = record.indexOf('=')
    records[record.slice(0, eq)] = record.slice(eq + 1)
    at += length
  }
  return records
}

const TYPES = { 0: 'file', '': 'file', 1: 'link', 2: 'symlink', 5: 'directory' }

/**
 * The entries of a tar archive as Go's archive/tar (Kubo's `get`) writes it: ustar headers with
 * their `prefix`, PAX `path`/`linkpath` records, GNU long names ('L'). Checks every header's
 * checksum and that the archive ends with its zero blocks.
 * Returns [{ name (no trailing '/'), type: 'file' | 'directory' | 'symlink' | 'link' | flag,
 * content (files), target (links) }].
 */
export function untar (bytes) {
  const entries = []
  let pax = {}
  let longName = null
  let at = 0
  for (;;) {
    if (at + 512 > bytes.length) throw new Error(`tar: ends at ${at} without its end-of-archive blocks`)
    const header = bytes.subarray(at, at + 512)
    if (header.every(b => b === 0)) break
    let sum = 0
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]
    if (sum !== number(header, 148, 8)) throw new Error(`tar: bad header checksum at ${at}`)
    const size = number(header, 124, 12)
    const flag = header[156] === 0 ? '' : String.fromCharCode(header[156])
    const body = bytes.subarray(at + 512, at + 512 + size)
    if (body.length < size) throw new Error(`tar: entry at ${at} truncated (${body.length} of ${size} bytes)`)
    at += 512 + Math.ceil(size / 512) * 512
    if (flag === 'x') { pax = paxRecords(body); continue }
    if (flag === 'g') continue
    if (flag === 'L') { longName = utf8.decode(body).replace(/\0+$/, ''); continue }
    let name = field(header, 0, 100)
    const prefix = field(header, 257, 6) === 'ustar' ? field(header, 345, 155) : ''
    if (prefix !== '') name = `${prefix}/${name}`
    name = pax.path ?? longName ?? name
    const type = TYPES[flag] ?? flag
    const entry = { name: name.replace(/\/+$/, ''), type }
    if (type === 'file') entry.content = Buffer.from(body)
    if (type === 'symlink' || type === 'link') entry.target = pax.linkpath ?? field(header, 157, 100)
    entries.push(entry)
    pax = {}
    longName = null
  }
  return entries
}
