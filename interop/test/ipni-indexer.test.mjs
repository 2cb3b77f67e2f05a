// The mock IPNI indexer (lib/ipni-indexer.mjs) proved without Hydrant: against go-libipni's
// signed heads and advertisements (crates/ipni/tests/fixtures, see its SOURCES.md), tampered
// copies of them, and chains served over HTTP by a small JS publisher (lib/ipni-publisher.mjs)
// whose signatures are first shown equal to go-libipni's byte for byte.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import * as dagJson from '@ipld/dag-json'
import { generateKeyPair, privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { INTEROP_DIR } from '../lib/fixture.mjs'
import { NO_ENTRIES, announcePublisher, decodeAnnounce, decodeBlock, mhKey, startIndexer, verifyAdvertisement, verifySignedHead } from '../lib/ipni-indexer.mjs'
import { dagJsonBlock, signAd, signHead, startPublisher } from '../lib/ipni-publisher.mjs'

const FIXTURES = join(INTEROP_DIR, '..', 'crates', 'ipni', 'tests', 'fixtures')
const fixture = (name) => readFileSync(join(FIXTURES, name))
const decode = (bytes) => dagJson.decode(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes)
const nft = JSON.parse(fixture('go-libipni-nftstorage.json'))
const AD_FILES = ['ad-1.json', 'ad-2.json', 'ad-3.json', 'ad-4.json',
  'baguqeeracmkjvbtns3llljh2dtzoaryulc2kk7tfx3geut7mb6ornd37j6oq',
  'baguqeeract2ajcyrt7uhzl7o42oe6qcm4edbn7hb3txlmwsfwywndjpww6wa']
const peerKey = (name) => privateKeyFromProtobuf(Buffer.from(JSON.parse(fixture(name)).privKey, 'base64'))
const flip = (bytes, i = bytes.length - 1) => { const b = Uint8Array.from(bytes); b[i] ^= 1; return b }
const BITSWAP = Uint8Array.of(0x80, 0x12)

describe('mock IPNI indexer, against go-libipni fixtures (no Hydrant)', () => {
  it('verifies go-libipni signed heads, with and without a topic, and refuses tampered ones', async () => {
    const head = decode(nft.head)
    const ok = await verifySignedHead(head)
    assert.equal(ok.head.toString(), nft.cid)
    assert.equal(ok.signer.toString(), nft.publisher)
    const doc = decode(fixture('storetheindex-doc-head.json'))
    assert.equal((await verifySignedHead(doc)).topic, '/indexer/ingest/testnet')

    await assert.rejects(verifySignedHead({ ...head, sig: flip(head.sig) }), /invalid signature/)
    await assert.rejects(verifySignedHead({ ...head, head: CID.parse(decode(nft.ad).Entries.toString()) }), /invalid signature/)
    await assert.rejects(verifySignedHead({ ...doc, topic: '/indexer/ingest/mainnet' }), /invalid signature/)
    await assert.rejects(verifySignedHead({ ...doc, topic: undefined }), /invalid signature/)
    await assert.rejects(verifySignedHead({ ...head, pubkey: doc.pubkey }), /invalid signature/)
  })

  it('verifies advertisement envelopes (RSA, Ed25519, extended providers); the signer is the Provider', async () => {
    for (const name of [...AD_FILES, 'nft']) {
      const ad = name === 'nft' ? decode(nft.ad) : decode(fixture(name))
      const signer = await verifyAdvertisement(ad)
      assert.ok(signer.equals(peerIdFromString(ad.Provider)), `${name}: signer ${signer} is the Provider ${ad.Provider}`)
      // ContextID is not covered by the signature (SOURCES.md).
      if (ad.ExtendedProvider == null) await verifyAdvertisement({ ...ad, ContextID: Uint8Array.of(1, 2, 3) })
    }
  })

  it('refuses advertisements whose signed fields or signature were altered', async () => {
    const ad = decode(nft.ad)
    const other = decode(fixture('ad-1.json'))
    const tampered = {
      IsRm: { ...ad, IsRm: true },
      Metadata: { ...ad, Metadata: Uint8Array.of(0x80, 0x12, 0) },
      Addresses: { ...ad, Addresses: ['/ip4/1.2.3.4/tcp/1/ws'] },
      Entries: { ...ad, Entries: NO_ENTRIES },
      PreviousID: { ...ad, PreviousID: undefined },
      Provider: { ...ad, Provider: other.Provider },
      'signature byte': { ...ad, Signature: flip(ad.Signature) },
      "another ad's signature": { ...ad, Signature: other.Signature }
    }
    for (const [what, bad] of Object.entries(tampered)) {
      await assert.rejects(verifyAdvertisement(bad), `${what} altered must be refused`)
    }
    const ep = decode(fixture('ad-3.json'))
    const [p0, p1] = ep.ExtendedProvider.Providers
    const epBad = { ...ep, ExtendedProvider: { ...ep.ExtendedProvider, Providers: [p0, { ...p1, Addresses: ['/ip4/1.2.3.4/tcp/1'] }] } }
    await assert.rejects(verifyAdvertisement(epBad), /extended provider signature/)
    await assert.rejects(verifyAdvertisement({ ...ep, ContextID: Uint8Array.of(9) }), /extended provider signature/)
    await assert.rejects(verifyAdvertisement({ ...ad, IsRm: 'false' }), /IsRm/)
  })

  it('re-signing the fixtures with their keys reproduces go-libipni signatures byte for byte', async () => {
    for (const [adFile, keyFile] of [['ad-1.json', 'peer-1.json'], ['ad-2.json', 'peer-2.json']]) {
      const ad = decode(fixture(adFile))
      const { Signature, ...unsigned } = ad
      const resigned = await signAd(unsigned, peerKey(keyFile))
      assert.deepEqual(resigned.Signature, Signature, adFile)
    }
  })

  it('checks a block against its CID from its own bytes (padded base64 included)', async () => {
    const bytes = new TextEncoder().encode(nft.ad)
    const cid = CID.parse(nft.cid)
    assert.equal((await decodeBlock(cid, bytes)).Provider, decode(nft.ad).Provider)
    await assert.rejects(decodeBlock(cid, flip(bytes, 20)), /does not hash to its CID/)
    // NoEntries: sha2-256 truncated to 16 bytes.
    assert.equal(NO_ENTRIES.multihash.size, 16)
    const raw = CID.create(1, 0x55, NO_ENTRIES.multihash)
    await assert.rejects(decodeBlock(raw, new Uint8Array()), /codec 0x55/) // hashes right, codec refused
  })

  it("decodes go-libipni's announce message in both encodings and names the publisher", async () => {
    // announce/message/message_test.go's message, as encoding/json and cbor-gen write it.
    const cid = CID.parse('QmPNHBy5h7f19yJDt7ip9TvmMRbqmYsa6aetkrsc1ghjLB')
    const origPeer = '12D3KooWBckWLKiYoUX4k3HTrbrSe4DD5SPNTKgP6vKTva1NaRkJ'
    const addr = multiaddr(`/ip4/127.0.0.1/tcp/2701/http/p2p/${origPeer}`)
    const json = `{"Cid":{"/":"${cid}"},"Addrs":["${Buffer.from(addr.bytes).toString('base64')}"],"ExtraData":"dDAxMDAw","OrigPeer":"${origPeer}"}\n`
    const cidBytes = Uint8Array.of(0, ...cid.bytes)
    const cbor = Uint8Array.of(
      0x84, 0xd8, 0x2a, 0x58, cidBytes.length, ...cidBytes, // [ tag 42 bytes(0x00 ++ cid)
      0x81, 0x58, addr.bytes.length, ...addr.bytes, // [addr]
      0x46, ...Buffer.from('t01000'), // ExtraData
      0x78, origPeer.length, ...Buffer.from(origPeer)) // OrigPeer ]
    for (const [body, type] of [[Buffer.from(json), 'application/json'], [cbor, 'application/octet-stream']]) {
      const m = decodeAnnounce(body, type)
      assert.equal(m.cid.toString(), cid.toString())
      assert.deepEqual(m.addrs.map(String), [addr.toString()])
      assert.equal(Buffer.from(m.extraData).toString(), 't01000')
      assert.equal(m.origPeer, origPeer)
      const pub = announcePublisher(m.addrs)
      assert.equal(pub.peerId.toString(), origPeer)
      assert.deepEqual(pub.urls, ['http://127.0.0.1:2701'])
    }
    assert.throws(() => announcePublisher([multiaddr('/ip4/127.0.0.1/tcp/1/http')]), /no \/p2p/)
    assert.throws(() => decodeAnnounce(cbor.subarray(0, 20), 'application/octet-stream'))
  })
})

describe('mock IPNI indexer, syncing over HTTP (no Hydrant)', () => {
  const closers = []
  after(async () => { for (const c of closers) await c() })
  const indexer = async (opts) => { const i = await startIndexer(opts); closers.push(() => i.close()); return i }
  const publisher = async (key) => { const p = await startPublisher(key); closers.push(() => p.close()); return p }
  const announceAndSync = async (idx, pub, cid, opts) => {
    const n = idx.syncs.length
    assert.equal(await pub.announce(idx.url, cid, opts), 204)
    return idx.waitForSync((s, i) => i >= n && s.announced === cid.toString())
  }

  it('ingests a go-libipni advertisement with extended providers served by its publisher', async () => {
    const key = peerKey('peer-1.json')
    const pub = await publisher(key)
    const ad = decode(fixture('ad-3.json'))
    const cid = await pub.put(ad)
    pub.setHead(await signHead(cid, key, '/indexer/ingest/mainnet'))
    const idx = await indexer()
    const s = await announceAndSync(idx, pub, cid)
    assert.equal(s.error, null)
    assert.equal(s.topic, '/indexer/ingest/mainnet')
    const state = idx.publishers.get(pub.peerId.toString())
    assert.equal(state.latest, cid.toString())
    const ctx = state.contexts.get(Buffer.from(ad.ContextID).toString('base64'))
    assert.equal(ctx.provider, ad.Provider)
    assert.equal(ctx.multihashes.size, 0) // NoEntries
  })

  it('refuses a head signed by another peer, a block that is not its CID, and an altered advertisement', async () => {
    const key = peerKey('peer-1.json')
    const ad = decode(fixture('ad-3.json'))
    const idx = await indexer()

    const wrongSigner = await publisher(key)
    const cid = await wrongSigner.put(ad)
    wrongSigner.setHead(await signHead(cid, peerKey('peer-2.json')))
    assert.match((await announceAndSync(idx, wrongSigner, cid)).error, /head: signed by .* not by the publisher/)

    const badBytes = await publisher(key)
    const cid2 = await badBytes.put(ad)
    badBytes.blocks.set(cid2.toString(), dagJson.encode({ ...ad, IsRm: false, Addresses: [] }))
    badBytes.setHead(await signHead(cid2, key))
    assert.match((await announceAndSync(idx, badBytes, cid2)).error, /does not hash to its CID/)

    const altered = await publisher(key)
    const cid3 = await altered.put({ ...ad, Metadata: Uint8Array.of(0x90, 0x12) }) // ad-3's is Bitswap
    altered.setHead(await signHead(cid3, key))
    assert.match((await announceAndSync(idx, altered, cid3)).error, /signature/)
    assert.equal(idx.publishers.size, 0, 'nothing applied')
  })

  it('walks entry chunks, applies oldest first, drops a removed context, continues the chain', async () => {
    const key = await generateKeyPair('Ed25519')
    const pub = await publisher(key)
    const provider = pub.peerId.toString()
    const mhs = await Promise.all([1, 2, 3, 4].map(async i => (await sha256.digest(Uint8Array.of(i))).bytes))
    const tail = await pub.put({ Entries: [mhs[0]] }) // as index-provider: the first chunk has no Next
    const entriesA = await pub.put({ Entries: [mhs[1], mhs[2]], Next: tail })
    const entriesB = await pub.put({ Entries: [mhs[3]] })
    const base = { Provider: provider, Addresses: ['/ip4/127.0.0.1/tcp/4001'], Metadata: BITSWAP }
    const ctxA = new TextEncoder().encode('car-a')
    const ctxB = new TextEncoder().encode('car-b')
    const ad1 = await pub.put(await signAd({ ...base, Entries: entriesA, ContextID: ctxA, IsRm: false }, key))
    const ad2 = await pub.put(await signAd({ ...base, PreviousID: ad1, Entries: entriesB, ContextID: ctxB, IsRm: false }, key))
    pub.setHead(await signHead(ad2, key))
    const idx = await indexer()

    const first = await announceAndSync(idx, pub, ad2) // CBOR
    assert.equal(first.error, null)
    assert.deepEqual(first.ads.map(a => [a.cid, a.entries, a.chunks]), [[ad1.toString(), 3, 2], [ad2.toString(), 1, 1]])
    assert.deepEqual([...idx.multihashes(provider)].sort(), mhs.map(mhKey).sort())

    const rm = await pub.put(await signAd({ ...base, PreviousID: ad2, Entries: NO_ENTRIES, ContextID: ctxA, IsRm: true }, key))
    pub.setHead(await signHead(rm, key))
    const second = await announceAndSync(idx, pub, rm, { json: true })
    assert.equal(second.error, null)
    assert.deepEqual(second.ads.map(a => a.cid), [rm.toString()], 'only the new advertisement walked')
    assert.deepEqual([...idx.multihashes(provider)], [mhKey(mhs[3])])
    assert.equal(idx.announces.at(-1).contentType, 'application/json')

    // Bounds, each on a fresh indexer: chain length, entry chunks, block and announce bytes;
    // FirstSyncDepth stops early.
    assert.match((await announceAndSync(await indexer({ limits: { chainLength: 2 } }), pub, rm)).error, /more than 2 advertisements/)
    assert.match((await announceAndSync(await indexer({ limits: { entryChunks: 1 } }), pub, rm)).error, /more than 1 chunks/)
    assert.match((await announceAndSync(await indexer({ limits: { blockBytes: 100 } }), pub, rm)).error, /over 100 bytes/)
    const big = await fetch(`${idx.url}/announce`, { method: 'PUT', body: new Uint8Array((1 << 20) + 1) })
    assert.equal(big.status, 413)
    const shallow = await indexer({ firstSyncDepth: 1 })
    assert.deepEqual((await announceAndSync(shallow, pub, rm)).ads.map(a => a.cid), [rm.toString()])
    // An announced CID the publisher does not have.
    const stray = (await dagJsonBlock({ stray: true })).cid
    assert.match((await announceAndSync(idx, pub, stray)).error, /-> 404/)
  })
})
