// A minimal IPNI publisher in JS, only to test the mock indexer (lib/ipni-indexer.mjs) without
// Hydrant: it signs heads and advertisements in go-libipni's formats (the tests check it
// reproduces go-libipni's fixture signatures byte for byte), serves them on
// /ipni/v1/ad/{head,cid} from memory, and sends announcements as go-libipni's httpsender.
import { createServer } from 'node:http'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { AD_CODEC, DOMAIN, adSignaturePayload } from './ipni-indexer.mjs'

const DAG_JSON = 0x0129

/** The DAG-JSON bytes of `value` and their CIDv1 (sha2-256): { cid, bytes }. */
export async function dagJsonBlock (value) {
  const bytes = dagJson.encode(value)
  return { cid: CID.create(1, DAG_JSON, await sha256.digest(bytes)), bytes }
}

/** A SignedHead (DAG-JSON object) for `head`, signed as go-libipni head.Sign. */
export async function signHead (head, privateKey, topic) {
  const msg = topic == null ? head.bytes : Buffer.concat([head.bytes, Buffer.from(topic)])
  const sh = { head, pubkey: publicKeyToProtobuf(privateKey.publicKey), sig: await privateKey.sign(msg) }
  if (topic != null) sh.topic = topic
  return sh
}

/** `ad` (without Signature) signed as go-libipni Advertisement.Sign: a copy with Signature. */
export async function signAd (ad, privateKey) {
  const payload = await adSignaturePayload(ad)
  const record = {
    domain: DOMAIN,
    codec: new TextEncoder().encode(AD_CODEC),
    marshal: () => payload,
    equals: () => false
  }
  const env = await RecordEnvelope.seal(record, privateKey)
  return { ...ad, Signature: env.marshal() }
}

/**
 * Serve blocks and a head on 127.0.0.1: { url, addr (`/ip4/../tcp/N/http`), peerId, blocks (Map
 * CID string -> bytes), setHead(signedHead or null), put(value) -> CID, announce(indexerUrl, cid,
 * { json }) -> status, close() }.
 */
export async function startPublisher (privateKey) {
  const blocks = new Map()
  let head = null
  const server = createServer((req, res) => {
    const name = req.url.startsWith('/ipni/v1/ad/') ? req.url.slice('/ipni/v1/ad/'.length) : null
    const body = name === 'head' ? head : blocks.get(name)
    if (name === 'head' && body == null) { res.writeHead(204); res.end(); return }
    if (body == null) { res.writeHead(404); res.end(); return }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(body)
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = server.address().port
  const peerId = peerIdFromPublicKey(privateKey.publicKey)
  const addr = `/ip4/127.0.0.1/tcp/${port}/http`
  return {
    url: `http://127.0.0.1:${port}`,
    addr,
    peerId,
    blocks,
    setHead: (sh) => { head = sh == null ? null : dagJson.encode(sh) },
    async put (value) {
      const { cid, bytes } = await dagJsonBlock(value)
      blocks.set(cid.toString(), bytes)
      return cid
    },
    /** PUT <indexer>/announce as httpsender Send (CBOR) or SendJson, the addr with /p2p/<id>. */
    async announce (indexerUrl, cid, { json = false, addrs = [`${addr}/p2p/${peerId}`] } = {}) {
      const bytes = addrs.map(a => multiaddr(a).bytes)
      const body = json
        ? JSON.stringify({ Cid: { '/': cid.toString() }, Addrs: bytes.map(b => Buffer.from(b).toString('base64')), ExtraData: null, OrigPeer: '' })
        : dagCbor.encode([cid, bytes, new Uint8Array()])
      const res = await fetch(`${indexerUrl}/announce`, {
        method: 'PUT',
        headers: { 'content-type': json ? 'application/json' : 'application/octet-stream' },
        body
      })
      return res.status
    },
    close: () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })
  }
}
