// Helia nodes that find providers by routing instead of being told whom to
// dial: one over the Kademlia DHT (kad-dht, bootstrapped from one peer only),
// one over the Delegated Routing V1 HTTP API. Plus diagnostics: a trace of
// what the DHT client sent and got back, and Hydrant's own DHT counters.
import { delegatedHTTPRouter } from '@helia/delegated-routing-client'
import { bootstrap } from '@libp2p/bootstrap'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromCID } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { makeHelia } from './helia.mjs'

/** A peer ID string from a PeerId or a libp2p-key CID (Helia 7 routing yields CIDs). */
export function peerIdString (id) {
  if (id == null) return String(id)
  if (typeof id.toCID !== 'function' && id.multihash != null && id.code === 0x72) return peerIdFromCID(id).toString()
  return id.toString()
}

/**
 * Helia with Bitswap and a kad-dht whose only bootstrap peer is `bootstrapAddr`
 * (`/ip4/../tcp/../p2p/<id>`). No delegated routing, no other bootstrap list,
 * no mDNS. Loopback addresses are kept (passthroughMapper): the default mapper
 * drops private addresses, and everything here is on 127.0.0.1.
 */
export async function makeDhtHelia (bootstrapAddr, { clientMode = true, protocol = '/ipfs/kad/1.0.0' } = {}) {
  return makeHelia({
    websockets: false,
    listen: clientMode ? [] : ['/ip4/127.0.0.1/tcp/0'],
    peerDiscovery: [bootstrap({ list: [bootstrapAddr], timeout: 0 })],
    services: {
      ping: ping(),
      dht: kadDHT({
        protocol,
        clientMode,
        peerInfoMapper: passthroughMapper
      })
    }
  })
}

/** Helia with Bitswap whose only router is the Delegated Routing V1 HTTP API at `url`. */
export async function makeDelegatedHelia (url) {
  return makeHelia({
    websockets: false,
    routers: [delegatedHTTPRouter({
      url,
      // the library defaults, spelled out: plain TCP addresses must pass
      filterProtocols: ['unknown', 'transport-bitswap', 'transport-ipfs-gateway-http'],
      filterAddrs: ['https', 'tcp', 'webrtc', 'webrtc-direct', 'wss', 'tls'],
      cacheTTL: 0
    })]
  })
}

/** Poll `fn` until it returns a truthy value; throws `what` on timeout. */
export async function waitFor (fn, { timeoutMs = 20_000, intervalMs = 100, what = 'condition' } = {}) {
  const until = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

const EVENT_NAMES = ['SEND_QUERY', 'PEER_RESPONSE', 'FINAL_PEER', 'QUERY_ERROR', 'PROVIDER', 'VALUE', 'ADD_PEER', 'DIAL_PEER', 'PATH_ENDED']
const MESSAGE_TYPES = ['PUT_VALUE', 'GET_VALUE', 'ADD_PROVIDER', 'GET_PROVIDERS', 'FIND_NODE', 'PING']

/**
 * Run the DHT client's own findProviders for `cid` and return every query
 * event, reduced to what matters: who was asked what, what came back
 * (providers, closer peers with their addresses), errors.
 */
export async function dhtTrace (helia, cid, { timeoutMs = 20_000 } = {}) {
  const events = []
  const addrs = (p) => (p.multiaddrs ?? []).map(String)
  try {
    for await (const e of helia.libp2p.services.dht.findProviders(cid, { signal: AbortSignal.timeout(timeoutMs) })) {
      const out = { event: EVENT_NAMES[e.type] ?? e.name ?? e.type }
      if (e.from) out.from = e.from.toString()
      if (e.to) out.to = e.to.toString()
      if (e.messageType != null) out.messageType = MESSAGE_TYPES[e.messageType] ?? e.messageType
      if (e.providers) out.providers = e.providers.map(p => ({ id: p.id.toString(), addrs: addrs(p) }))
      if (e.closer) out.closer = e.closer.map(p => ({ id: p.id.toString(), addrs: addrs(p) }))
      if (e.error) out.error = `${e.error.name}: ${e.error.message}`
      if (e.peer) out.peer = { id: e.peer.id?.toString() ?? String(e.peer), addrs: addrs(e.peer) }
      events.push(out)
    }
  } catch (err) {
    events.push({ event: 'THROWN', error: `${err.name}: ${err.message}` })
  }
  return events
}

/** What the Helia node knows about its DHT: routing table peers, connections and their protocols. */
export async function heliaDhtState (helia) {
  const dht = helia.libp2p.services.dht
  const conns = helia.libp2p.getConnections().map(c => `${c.remotePeer} ${c.remoteAddr} ${c.direction} ${c.status}`)
  const peers = []
  for (const p of await helia.libp2p.peerStore.all()) {
    peers.push({ id: p.id.toString(), protocols: p.protocols, addrs: p.addresses.map(a => a.multiaddr.toString()) })
  }
  return { routingTableSize: dht.routingTable.size, mode: dht.getMode?.(), connections: conns, peerStore: peers }
}

/** Hydrant's DHT view from its admin API: heads, routing table, dht metrics. */
export async function hydrantDhtState (hydrant) {
  const get = async (path) => {
    try {
      const r = await fetch(`${hydrant.apiUrl}${path}`, { signal: AbortSignal.timeout(5_000) })
      return `${r.status} ${await r.text()}`
    } catch (err) {
      return `error: ${err.message}`
    }
  }
  const metrics = (await get('/metrics')).split('\n')
    .filter(l => l.startsWith('hydrant_dht') && !/ 0$/.test(l))
    .join('\n')
  return [
    `GET /api/v1/dht/heads: ${await get('/api/v1/dht/heads')}`,
    `GET /api/v1/dht/routing-table: ${await get('/api/v1/dht/routing-table')}`,
    `/metrics (hydrant_dht*, non-zero):\n${metrics}`
  ].join('\n')
}

/**
 * hydrant_dht_inbound_requests_total{dht=..,type=..,outcome=..} of one DHT
 * ('wan': /ipfs/kad/1.0.0, 'lan': /ipfs/lan/kad/1.0.0) as { 'GET_PROVIDERS/ok': n, ... }.
 */
export async function hydrantInboundCounts (hydrant, dht = 'wan') {
  const text = await (await fetch(`${hydrant.apiUrl}/metrics`)).text()
  const out = {}
  for (const m of text.matchAll(/^hydrant_dht_inbound_requests_total\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map(l => [l[1], l[2]]))
    if (labels.dht === dht) out[`${labels.type}/${labels.outcome}`] = Number(m[2])
  }
  return out
}
