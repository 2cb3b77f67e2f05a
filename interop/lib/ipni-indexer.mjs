// A mock IPNI indexer: enough of storetheindex's ingest path to check a publisher against the
// specs (../../shared/specs/ipni.md, ipni-http-provider.md) and go-libipni, and nothing more.
//
//   PUT /announce (or /ingest/announce)  an announce message, JSON when Content-Type is exactly
//                                        `application/json`, otherwise CBOR (storetheindex
//                                        server/ingest putAnnounce); answered 204, synced after.
//
// A sync (one at a time, in announce order): GET <publisher>/ipni/v1/ad/head, its signature
// checked and its signer required to be the announcing peer (go-libipni ipnisync); the chain
// walked from the announced advertisement (as go-libipni dagsync: the head may lag behind it)
// back through PreviousID to the last advertisement already ingested; every block
// checked against its CID; every advertisement's envelope checked as go-libipni's
// `VerifySignature` does, and its signer required to be its Provider; each advertisement's
// EntryChunk chain walked (Entries + Next). Only when all of that passed are the advertisements
// applied, oldest first, to ContextID -> { multihashes, ... }: an IsRm advertisement drops its
// context. A refused sync changes nothing and is recorded with its reason.
import { createServer } from 'node:http'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'

/** Every limit of the mock; `startIndexer({ limits })` overrides some. */
export const LIMITS = Object.freeze({
  /** bytes of an announce body (storetheindex server/ingest maxBodySize) */
  announceBytes: 1 << 20,
  /** bytes of a fetched head */
  headBytes: 64 << 10,
  /** bytes of a fetched block (ipni-http-provider.md "Security": 4 MB suggested) */
  blockBytes: 4 << 20,
  /** advertisements walked in one sync; more is an error (unless firstSyncDepth stops first) */
  chainLength: 1000,
  /** entry chunks of one advertisement (ipni.md "EntryChunk Chain": no more than 400) */
  entryChunks: 400,
  /** bytes of a ContextID (go-libipni ingest/schema MaxContextIDLen) */
  contextIdBytes: 64,
  /** announcements waiting for their sync; more are answered 503 */
  queuedAnnounces: 64,
  /** milliseconds for one HTTP fetch from the publisher */
  fetchTimeoutMs: 10_000
})

/** The `Entries` link of advertisements without multihashes (go-libipni schema.NoEntries). */
export const NO_ENTRIES = CID.parse('bafkreehdwdcefgh4dqkjv67uzcmw7oje')

const DAG_JSON = 0x0129
const DAG_CBOR = 0x71
const SHA2_256 = 0x12
export const DOMAIN = 'indexer'
export const AD_CODEC = '/indexer/ingest/adSignature'
const EP_CODEC = '/indexer/ingest/extendedProviderSignature'
const utf8 = new TextEncoder()

/** A multihash's key in the index: base58btc, as IPNI's `GET /multihash/{mh}`. */
export const mhKey = (bytes) => base58btc.baseEncode(bytes)

const hex = (bytes) => Buffer.from(bytes).toString('hex')
const b64 = (bytes) => Buffer.from(bytes).toString('base64')
const concat = (parts) => Buffer.concat(parts.map(p => typeof p === 'string' ? utf8.encode(p) : p))
const isBytes = (v) => v instanceof Uint8Array

/**
 * Decode an announce message (go-libipni announce/message) as storetheindex does: JSON (Go's
 * encoding/json of `Message`: `Cid` `{"/": cid}`, `Addrs` base64 strings) when `contentType` is
 * `application/json`, else the cbor-gen tuple `[cid, [addr bytes], extraData, origPeer?]`.
 * Returns { cid: CID, addrs: Multiaddr[], extraData: Uint8Array, origPeer: string }.
 * Throws on anything else.
 */
export function decodeAnnounce (body, contentType) {
  let cid, addrs, extraData, origPeer
  if (contentType === 'application/json') {
    const m = JSON.parse(Buffer.from(body).toString('utf8'))
    cid = CID.parse(m?.Cid?.['/'] ?? '')
    if (!Array.isArray(m.Addrs)) throw new Error('announce: Addrs is not a list')
    addrs = m.Addrs.map(a => new Uint8Array(Buffer.from(a, 'base64')))
    extraData = m.ExtraData == null ? new Uint8Array() : new Uint8Array(Buffer.from(m.ExtraData, 'base64'))
    origPeer = m.OrigPeer ?? ''
  } else {
    const m = dagCbor.decode(body)
    if (!Array.isArray(m) || m.length < 3 || m.length > 4) throw new Error('announce: not a 3 or 4 element CBOR array')
    ;[cid, addrs, extraData, origPeer = ''] = m
    if (CID.asCID(cid) == null || !Array.isArray(addrs) || !addrs.every(isBytes) || !isBytes(extraData) || typeof origPeer !== 'string') {
      throw new Error('announce: CBOR fields are not [cid, [bytes], bytes, string?]')
    }
  }
  return { cid, addrs: addrs.map(a => multiaddr(a)), extraData, origPeer }
}

/**
 * The publisher of an announce as storetheindex reads it (peer.AddrInfosFromP2pAddrs): every
 * address must end in /p2p/<id>, one id for all. Returns { peerId, urls } with the HTTP base URLs
 * of the addresses that are HTTP ones.
 */
export function announcePublisher (addrs) {
  if (addrs.length === 0) throw new Error('announce: no addresses (must specify location to fetch on direct announcements)')
  const ids = new Set()
  const urls = []
  for (const a of addrs) {
    const parts = a.getComponents()
    const last = parts.at(-1)
    if (last?.name !== 'p2p') throw new Error(`announce: address ${a} has no /p2p/<publisher>`)
    ids.add(last.value)
    const url = httpUrl(parts.slice(0, -1))
    if (url != null) urls.push(url)
  }
  if (ids.size !== 1) throw new Error(`announce: addresses name ${ids.size} peers, not one`)
  return { peerId: peerIdFromString([...ids][0]), urls }
}

/** `http://host:port[/path]` of /ip4|ip6|dns*\/tcp/N[/tls]/http|https[/http-path/P] components, else null. */
function httpUrl (parts) {
  const [host, tcp, ...rest] = parts
  if (!['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(host?.name) || tcp?.name !== 'tcp') return null
  const names = rest.map(p => p.name)
  let scheme
  if (names[0] === 'http') scheme = 'http'
  else if (names[0] === 'https' || (names[0] === 'tls' && names[1] === 'http')) scheme = 'https'
  else return null
  const path = rest.find(p => p.name === 'http-path')?.value ?? ''
  const h = host.name === 'ip6' ? `[${host.value}]` : host.value
  return `${scheme}://${h}:${tcp.value}${path.replace(/\/$/, '')}`
}

/**
 * Check a SignedHead (`/ipni/v1/ad/head`, decoded DAG-JSON) as go-libipni head.Validate: `sig`
 * over the head CID's bytes followed by the topic's UTF-8 bytes, by `pubkey` (libp2p protobuf).
 * Returns { head: CID, topic: string|undefined, signer: PeerId }. Throws when it does not verify.
 */
export async function verifySignedHead (sh) {
  const head = CID.asCID(sh?.head)
  if (head == null) throw new Error('head: `head` is not a link')
  if (sh.topic != null && typeof sh.topic !== 'string') throw new Error('head: `topic` is not a string')
  if (!isBytes(sh.pubkey) || sh.pubkey.length === 0) throw new Error('head: missing public key')
  if (!isBytes(sh.sig) || sh.sig.length === 0) throw new Error('head: missing signature')
  const key = publicKeyFromProtobuf(sh.pubkey)
  let ok = false
  try { ok = await key.verify(concat([head.bytes, sh.topic ?? '']), sh.sig) } catch {} // e.g. a signature of another key type
  if (!ok) throw new Error('head: invalid signature')
  return { head, topic: sh.topic, signer: peerIdFromPublicKey(key) }
}

/**
 * The bytes an advertisement's envelope carries (go-libipni signaturePayload): the sha2-256
 * multihash of PreviousID, Entries, Provider, Addresses, Metadata and the IsRm byte.
 */
export async function adSignaturePayload (ad, oldFormat = false) {
  const data = concat([
    ad.PreviousID?.bytes ?? new Uint8Array(), // cid.Undef.Bytes() is empty
    ad.Entries.bytes,
    ad.Provider,
    ...ad.Addresses,
    ad.Metadata,
    Uint8Array.of(ad.IsRm ? 1 : 0)
  ])
  // The deprecated form: the data itself wrapped as a sha2-256 multihash (multihash.Encode).
  if (oldFormat) return Digest.create(SHA2_256, data).bytes
  return (await sha256.digest(data)).bytes
}

/** An extended provider's payload (go-libipni extendedProviderSignaturePayload). */
async function epPayload (ad, p) {
  const data = concat([
    ad.PreviousID?.bytes ?? new Uint8Array(),
    ad.Entries.bytes,
    ad.Provider,
    ad.ContextID,
    p.ID,
    ...p.Addresses,
    p.Metadata ?? new Uint8Array(),
    Uint8Array.of(ad.ExtendedProvider.Override ? 1 : 0)
  ])
  return (await sha256.digest(data)).bytes
}

/** Open a libp2p signed envelope of domain `indexer` and the given payload type; throws if invalid. */
async function openEnvelope (bytes, payloadType) {
  const env = await RecordEnvelope.openAndCertify(bytes, DOMAIN)
  if (Buffer.from(env.payloadType).toString('utf8') !== payloadType) {
    throw new Error(`envelope payload type is not ${payloadType}`)
  }
  return env
}

/**
 * Check an advertisement's fields (go-libipni ingest/schema Advertisement) and signatures as
 * go-libipni's `VerifySignature` does: the envelope (domain `indexer`, payload type
 * `/indexer/ingest/adSignature`) must carry the sha2-256 multihash of PreviousID, Entries,
 * Provider, Addresses, Metadata and the IsRm byte; each ExtendedProvider entry's envelope its
 * own payload (and, stricter than go, be signed by that entry's peer). Returns the signer's
 * PeerId (the caller decides whom to allow). Throws when anything does not verify.
 */
export async function verifyAdvertisement (ad) {
  checkAdShape(ad)
  const env = await openEnvelope(ad.Signature, AD_CODEC)
  const oldFormat = env.payload.length !== 34
  if (!Buffer.from(env.payload).equals(await adSignaturePayload(ad, oldFormat))) {
    throw new Error('advertisement: invalid signature (payload does not match the fields)')
  }
  if (ad.ExtendedProvider != null) {
    let seenProvider = false
    for (const p of ad.ExtendedProvider.Providers) {
      const epEnv = await openEnvelope(p.Signature, EP_CODEC)
      if (!Buffer.from(epEnv.payload).equals(await epPayload(ad, p))) {
        throw new Error(`advertisement: invalid extended provider signature of ${p.ID}`)
      }
      if (!peerIdFromPublicKey(epEnv.publicKey).equals(peerIdFromString(p.ID))) {
        throw new Error(`advertisement: extended provider ${p.ID} signed by another peer`)
      }
      if (p.ID === ad.Provider) seenProvider = true
    }
    if (!seenProvider && ad.ExtendedProvider.Providers.length > 0) {
      throw new Error('advertisement: extended providers must contain the provider')
    }
  }
  return peerIdFromPublicKey(env.publicKey)
}

function checkAdShape (ad) {
  const bad = (what) => { throw new Error(`advertisement: ${what}`) }
  if (ad == null || typeof ad !== 'object') bad('not a map')
  if (ad.PreviousID != null && CID.asCID(ad.PreviousID) == null) bad('PreviousID is not a link')
  if (typeof ad.Provider !== 'string') bad('Provider is not a string')
  if (!Array.isArray(ad.Addresses) || !ad.Addresses.every(a => typeof a === 'string')) bad('Addresses is not a list of strings')
  if (!isBytes(ad.Signature)) bad('Signature is not bytes')
  if (CID.asCID(ad.Entries) == null) bad('Entries is not a link')
  if (!isBytes(ad.ContextID)) bad('ContextID is not bytes')
  if (ad.ContextID.length > LIMITS.contextIdBytes) bad(`ContextID longer than ${LIMITS.contextIdBytes} bytes`)
  if (!isBytes(ad.Metadata)) bad('Metadata is not bytes')
  if (typeof ad.IsRm !== 'boolean') bad('IsRm is not a boolean')
  const ep = ad.ExtendedProvider
  if (ep != null && (!Array.isArray(ep.Providers) || typeof ep.Override !== 'boolean' ||
      !ep.Providers.every(p => typeof p.ID === 'string' && Array.isArray(p.Addresses) && isBytes(p.Signature)))) {
    bad('ExtendedProvider is malformed')
  }
}

/** Check `bytes` against `cid` (sha2-256, possibly truncated) and decode them by its codec. */
export async function decodeBlock (cid, bytes) {
  if (cid.multihash.code !== SHA2_256) throw new Error(`${cid}: hash function 0x${cid.multihash.code.toString(16)} not supported`)
  const digest = (await sha256.digest(bytes)).digest.subarray(0, cid.multihash.size)
  if (!Buffer.from(digest).equals(cid.multihash.digest)) throw new Error(`${cid}: the block does not hash to its CID`)
  if (cid.code === DAG_JSON) return dagJson.decode(bytes)
  if (cid.code === DAG_CBOR) return dagCbor.decode(bytes)
  throw new Error(`${cid}: codec 0x${cid.code.toString(16)} not supported`)
}

/** GET `url`, at most `limit` bytes of body; 200 -> bytes, 204 -> null, else throws. */
async function fetchBytes (url, limit, timeoutMs) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (res.status === 204) return null
  if (res.status !== 200) throw new Error(`GET ${url} -> ${res.status}`)
  const chunks = []
  let n = 0
  for await (const chunk of res.body) {
    n += chunk.length
    if (n > limit) throw new Error(`GET ${url}: body over ${limit} bytes`) // leaving the loop cancels the body
    chunks.push(chunk)
  }
  return new Uint8Array(Buffer.concat(chunks))
}

/** Read a request body of at most `limit` bytes; null when over. */
async function readBody (req, limit) {
  const chunks = []
  let n = 0
  for await (const chunk of req) {
    n += chunk.length
    if (n > limit) return null
    chunks.push(chunk)
  }
  return new Uint8Array(Buffer.concat(chunks))
}

/**
 * Start the mock indexer on 127.0.0.1. Options: `port` (0: any), `firstSyncDepth` (as
 * storetheindex's Ingest.FirstSyncDepth: on a publisher's first sync walk at most that many
 * advertisements; 0: to the chain's start), `limits` (over LIMITS).
 *
 * Returns { url, announces, syncs, publishers, waitForSync(pred, {timeoutMs}), multihashes(),
 * close() }:
 * - announces: [{ contentType, cid, addrs: [string], publisher, extraData }] as received;
 * - syncs: [{ publisher, announced, head, topic, ads: [{ cid, isRm, contextId, provider,
 *   entries, unique, chunks }] (oldest first), restarted (walked to a chain start although an
 *   ad was already ingested: a new chain), error, ms (duration) }] once each sync ends;
 * - publishers: Map peer ID string -> { latest (CID string), ads: [{ cid, ad }] applied,
 *   contexts: Map base64 ContextID -> { contextId, provider, addresses, metadata, multihashes:
 *   Set of base58btc multihashes } }.
 */
export async function startIndexer ({ port = 0, firstSyncDepth = 0, limits: overrides = {} } = {}) {
  const limits = { ...LIMITS, ...overrides }
  const announces = []
  const syncs = []
  const publishers = new Map()
  let queued = 0
  let chain = Promise.resolve()

  async function fetchBlock (base, cid) {
    const bytes = await fetchBytes(`${base}/ipni/v1/ad/${cid}`, limits.blockBytes, limits.fetchTimeoutMs)
    if (bytes == null) throw new Error(`GET ${base}/ipni/v1/ad/${cid} -> 204`)
    return decodeBlock(cid, bytes)
  }

  /** Every multihash of one advertisement's EntryChunk chain: { list, chunks }. */
  async function walkEntries (base, entries) {
    const list = []
    let chunks = 0
    for (let cid = entries; cid != null;) {
      if (++chunks > limits.entryChunks) throw new Error(`entries: more than ${limits.entryChunks} chunks`)
      const chunk = await fetchBlock(base, cid)
      if (!Array.isArray(chunk?.Entries) || !chunk.Entries.every(isBytes)) throw new Error(`entries ${cid}: not an EntryChunk`)
      if (chunk.Next != null && CID.asCID(chunk.Next) == null) throw new Error(`entries ${cid}: Next is not a link`)
      for (const mh of chunk.Entries) list.push(Digest.decode(mh).bytes) // throws unless a multihash
      cid = chunk.Next ?? null
    }
    return { list, chunks }
  }

  async function sync (publisher, urls, announced) {
    const started = performance.now()
    const record = { publisher: publisher.toString(), announced: announced.toString(), head: null, topic: undefined, ads: [], restarted: false, error: null, ms: 0 }
    try {
      if (urls.length === 0) throw new Error('announce: no HTTP address to sync from')
      const base = urls[0]
      const state = publishers.get(record.publisher) ?? { latest: null, ads: [], contexts: new Map() }
      const headBytes = await fetchBytes(`${base}/ipni/v1/ad/head`, limits.headBytes, limits.fetchTimeoutMs)
      if (headBytes == null) return record // 204: no advertisement yet
      const { head, topic, signer } = await verifySignedHead(dagJson.decode(headBytes))
      if (!signer.equals(publisher)) throw new Error(`head: signed by ${signer}, not by the publisher ${publisher}`)
      record.head = head.toString()
      record.topic = topic

      // Newest first from the announced advertisement (go-libipni dagsync syncs to the announced
      // CID; the head may lag behind it), back to what this publisher already gave us.
      const walked = []
      const firstSync = state.latest == null
      const applied = (c) => c === state.latest || state.ads.some(a => a.cid === c)
      if (applied(record.announced)) return record
      for (let cid = announced; ;) {
        if (cid.toString() === state.latest) break
        if (firstSync && firstSyncDepth > 0 && walked.length === firstSyncDepth) break
        if (walked.length === limits.chainLength) throw new Error(`chain: more than ${limits.chainLength} advertisements`)
        const ad = await fetchBlock(base, cid)
        const signerId = await verifyAdvertisement(ad)
        if (!signerId.equals(peerIdFromString(ad.Provider))) throw new Error(`advertisement ${cid}: signed by ${signerId}, not by its Provider ${ad.Provider}`)
        walked.push({ cid, ad })
        if (ad.PreviousID == null) { record.restarted = !firstSync; break }
        cid = ad.PreviousID
      }

      // Oldest first: fetch every entry chain before anything is applied.
      const steps = []
      for (const { cid, ad } of walked.reverse()) {
        const { list, chunks } = ad.IsRm || ad.Entries.equals(NO_ENTRIES) ? { list: [], chunks: 0 } : await walkEntries(base, ad.Entries)
        const keys = new Set(list.map(mhKey))
        steps.push({ cid, ad, keys })
        record.ads.push({ cid: cid.toString(), isRm: ad.IsRm, contextId: b64(ad.ContextID), provider: ad.Provider, entries: list.length, unique: keys.size, chunks })
      }
      for (const { cid, ad, keys } of steps) {
        const key = b64(ad.ContextID)
        if (ad.IsRm) {
          state.contexts.delete(key)
        } else {
          const ctx = state.contexts.get(key) ?? { contextId: ad.ContextID, multihashes: new Set() }
          Object.assign(ctx, { provider: ad.Provider, addresses: ad.Addresses, metadata: ad.Metadata })
          for (const k of keys) ctx.multihashes.add(k)
          state.contexts.set(key, ctx)
        }
        state.ads.push({ cid: cid.toString(), ad })
      }
      state.latest = record.announced
      publishers.set(record.publisher, state)
    } catch (err) {
      record.error = err.message
    } finally {
      record.ms = Math.round(performance.now() - started)
      syncs.push(record)
    }
    return record
  }

  async function handle (req, res) {
    const path = new URL(req.url, 'http://x').pathname
    if (path !== '/announce' && path !== '/ingest/announce') return reply(res, 404, 'not found')
    if (req.method !== 'PUT') return reply(res, 405, 'method not allowed')
    const body = await readBody(req, limits.announceBytes)
    if (body == null) return reply(res, 413, `announce over ${limits.announceBytes} bytes`)
    let msg, publisher
    try {
      msg = decodeAnnounce(body, req.headers['content-type'])
      publisher = announcePublisher(msg.addrs)
    } catch (err) {
      return reply(res, 400, err.message)
    }
    announces.push({
      contentType: req.headers['content-type'],
      cid: msg.cid.toString(),
      addrs: msg.addrs.map(String),
      publisher: publisher.peerId.toString(),
      extraData: msg.extraData
    })
    if (queued >= limits.queuedAnnounces) return reply(res, 503, 'too many announcements waiting')
    queued++
    chain = chain.then(() => sync(publisher.peerId, publisher.urls, msg.cid)).finally(() => { queued-- })
    reply(res, 204)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(err => reply(res, 500, err.message))
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })

  return {
    url: `http://127.0.0.1:${server.address().port}`,
    announces,
    syncs,
    publishers,
    /** Resolves with the first sync record (finished, ok or not) for which `pred` is true. */
    async waitForSync (pred, { timeoutMs = 30_000 } = {}) {
      const until = Date.now() + timeoutMs
      for (;;) {
        const found = syncs.find(pred)
        if (found) return found
        if (Date.now() > until) {
          throw new Error(`no matching sync within ${timeoutMs} ms; announces: ${JSON.stringify(announces.map(a => ({ ...a, extraData: hex(a.extraData) })))}; syncs: ${JSON.stringify(syncs)}`)
        }
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    },
    /** The union of every context's multihashes (of one publisher, or all). */
    multihashes (publisher) {
      const out = new Set()
      for (const [id, state] of publishers) {
        if (publisher != null && id !== String(publisher)) continue
        for (const ctx of state.contexts.values()) for (const k of ctx.multihashes) out.add(k)
      }
      return out
    },
    async close () {
      await chain
      server.closeAllConnections?.()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

function reply (res, status, text) {
  if (res.headersSent) return
  res.writeHead(status, { 'content-type': 'text/plain' })
  res.end(text)
}
