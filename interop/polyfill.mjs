// Preloaded with `node --import ./polyfill.mjs` so that Helia 7 (which targets
// Node >= 22) runs on Node 20. Only fills in what is missing.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}

// Node 20 has no global WebSocket (Node 22 does); @libp2p/websockets dials
// with the global one. Use undici's, the implementation Node 22 ships.
if (typeof globalThis.WebSocket !== 'function') {
  const { WebSocket } = await import('undici')
  globalThis.WebSocket = WebSocket
}
