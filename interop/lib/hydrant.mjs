// Drive the `hydrant` binary: init a fresh temp repo, start the daemon, read
// its one JSON line, ingest CARs (CLI or HTTP API), stop it with SIGTERM.
import { execFile, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { access, constants, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { INTEROP_DIR } from './fixture.mjs'

const pExecFile = promisify(execFile)

/** $HYDRANT_BIN, or target/release/hydrant at the repo root. */
export function hydrantBin () {
  return process.env.HYDRANT_BIN
    ? resolve(process.env.HYDRANT_BIN)
    : resolve(INTEROP_DIR, '..', 'target', 'release', 'hydrant')
}

export async function hydrantAvailable (bin = hydrantBin()) {
  try {
    await access(bin, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Reason string for t.skip / describe skip when the binary is missing, else false. */
export async function skipUnlessHydrant () {
  const bin = hydrantBin()
  return (await hydrantAvailable(bin)) ? false : `hydrant binary not found at ${bin} (set HYDRANT_BIN)`
}

async function tail (path, n = 4000) {
  try {
    const s = await readFile(path, 'utf8')
    return s.length > n ? '...' + s.slice(-n) : s
  } catch {
    return ''
  }
}

/** A TOML literal for a JS string, number, boolean or array of those. */
function tomlValue (v) {
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  throw new Error(`no TOML literal for ${typeof v}`)
}

/**
 * Set keys of one [section] of a TOML text: drops the section's existing
 * lines for those keys (a multi-line array included) and writes the new
 * values right below the section header. Returns null when there is no such
 * section (e.g. an older binary without it).
 */
export function setTomlKeys (text, section, values) {
  const lines = text.split('\n')
  const start = lines.findIndex(l => l.trim() === `[${section}]`)
  if (start < 0) return null
  let end = lines.findIndex((l, i) => i > start && /^\s*\[/.test(l))
  if (end < 0) end = lines.length
  const body = []
  for (let i = start + 1; i < end; i++) {
    const m = /^\s*([A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(lines[i])
    if (m && Object.hasOwn(values, m[1])) {
      // a multi-line array: skip up to its closing bracket
      if (m[2].startsWith('[') && !m[2].includes(']')) {
        while (i + 1 < end && !lines[i].trim().startsWith(']')) i++
      }
      continue
    }
    body.push(lines[i])
  }
  const set = Object.entries(values).map(([k, v]) => `${k} = ${tomlValue(v)}`)
  return [...lines.slice(0, start + 1), ...set, ...body, ...lines.slice(end)].join('\n')
}

/**
 * [dht] settings written into config.toml before the daemon starts: no public
 * bootstrap peers (unreachable here), heads on loopback and on free ports, and
 * a /ipfs/kad/1.0.0 (WAN) DHT that admits loopback peers (the js-libp2p DHT
 * servers of these tests speak only that protocol, on loopback).
 */
export const SANDBOX_DHT = { bootstrap: [], listen_ip: '127.0.0.1', port_base: 0, wan_public_only: false }

/** `hydrant init` a fresh repo at `repo` (inside `work`), then set config keys and write files. */
async function initRepo ({ bin, work, repo, childEnv, dht, sections, files }) {
  try {
    await pExecFile(bin, ['--repo', repo, 'init'], { env: childEnv })
  } catch (err) {
    await rm(work, { recursive: true, force: true })
    throw new Error(`hydrant init failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}`)
  }
  const configPath = join(repo, 'config.toml')
  let config = null
  try { config = await readFile(configPath, 'utf8') } catch {}
  try {
    let edited = config === null ? null : setTomlKeys(config, 'dht', { ...SANDBOX_DHT, ...dht })
    if (edited === null) edited = config
    for (const [section, values] of Object.entries(sections)) {
      edited = edited === null ? null : setTomlKeys(edited, section, values)
      if (edited === null) throw new Error(`cannot set [${section}]: ${configPath} lacks the section`)
    }
    if (edited !== null && edited !== config) await writeFile(configPath, edited)
    for (const [name, text] of Object.entries(files)) {
      await writeFile(join(repo, name), text, { mode: 0o600 })
    }
  } catch (err) {
    await rm(work, { recursive: true, force: true })
    throw err
  }
}

/**
 * Start `hydrant daemon` on a fresh temp repo. Resolves once its JSON line
 * arrives. Returns { peerId, swarmAddrs, tcpAddr, wsAddr, gatewayUrl, apiUrl,
 * dhtHeads, repo, info, bin, ingest(car), ingestHttp(car), stop(), logTail() }.
 *
 * `dht`: [dht] keys merged over SANDBOX_DHT into <repo>/config.toml (when the
 * binary wrote one with a [dht] section); `config`: other sections' keys,
 * `{ section: { key: value } }` (the section must exist); `files`: files
 * written into the repo before the daemon starts, `{ name: text }` (mode 0600,
 * e.g. an `api.token_file`); `args`: extra daemon arguments; `repo`: an existing
 * repository to run on (a handle's `repo` after `stop({ keep: true })`): no init,
 * no config edits, and stop() leaves it in place; `gatewayListen`: the gateway's
 * `--gateway-listen` (default `127.0.0.1:0`; a fixed port when the URL must be known
 * before the start, e.g. for `gateway.public_url`).
 */
export async function startHydrant ({ bin = hydrantBin(), startTimeoutMs = 30_000, env = {}, dht = {}, config: sections = {}, files = {}, args: extraArgs = [], repo: existingRepo, gatewayListen = '127.0.0.1:0' } = {}) {
  const work = await mkdtemp(join(tmpdir(), 'hydrant-interop-'))
  const repo = existingRepo ?? join(work, 'repo')
  const logPath = join(work, 'daemon.stderr.log')
  const childEnv = { RUST_LOG: process.env.RUST_LOG ?? 'info', ...process.env, ...env }

  if (existingRepo == null) await initRepo({ bin, work, repo, childEnv, dht, sections, files })

  const args = [
    '--repo', repo, 'daemon',
    '--swarm-listen', '/ip4/127.0.0.1/tcp/0',
    '--swarm-listen', '/ip4/127.0.0.1/tcp/0/ws',
    '--gateway-listen', gatewayListen,
    '--api-listen', '127.0.0.1:0',
    ...extraArgs
  ]
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv })
  const log = createWriteStream(logPath)
  child.stderr.pipe(log)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))

  const otherStdout = []
  let info
  try {
    info = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no JSON line on stdout within ${startTimeoutMs} ms`)), startTimeoutMs)
      const rl = createInterface({ input: child.stdout })
      rl.on('line', (line) => {
        const t = line.trim()
        if (!t) return
        try {
          const obj = JSON.parse(t)
          if (obj && typeof obj.peer_id === 'string') {
            clearTimeout(timer)
            resolve(obj)
            return
          }
        } catch {}
        otherStdout.push(line)
      })
      exited.then(({ code, signal }) => {
        clearTimeout(timer)
        reject(new Error(`daemon exited before printing its JSON line (code ${code}, signal ${signal})`))
      })
      child.once('error', (err) => { clearTimeout(timer); reject(err) })
    })
  } catch (err) {
    child.kill('SIGKILL')
    await exited
    const msg = `${err.message}\nargs: ${args.join(' ')}\nother stdout: ${otherStdout.join('\n')}\nstderr tail:\n${await tail(logPath)}`
    await rm(work, { recursive: true, force: true })
    throw new Error(msg)
  }
  // keep draining stdout so the daemon never blocks on a full pipe
  child.stdout.resume()

  const swarmAddrs = info.swarm_addrs ?? []
  const isWsAddr = (a) => /\/ws(\/|$)/.test(a) && !a.includes('/wss')
  const tcpAddr = swarmAddrs.find(a => a.includes('/tcp/') && !isWsAddr(a) && !a.includes('/wss'))
  const wsAddr = swarmAddrs.find(isWsAddr)

  let stopped = false
  const handle = {
    bin,
    repo,
    info,
    /** The daemon's process ID (for /proc/<pid>/status). */
    pid: child.pid,
    peerId: info.peer_id,
    swarmAddrs,
    tcpAddr,
    wsAddr,
    gatewayUrl: String(info.gateway_url ?? '').replace(/\/$/, ''),
    apiUrl: String(info.api_url ?? '').replace(/\/$/, ''),
    dhtHeads: info.dht_heads ?? [],
    logPath,
    logTail: (n) => tail(logPath, n),

    /** `hydrant --repo DIR ingest --json FILE.car` -> parsed JSON. */
    async ingest (carPath, { timeoutMs = 300_000 } = {}) {
      try {
        const { stdout } = await pExecFile(bin, ['--repo', repo, 'ingest', '--json', carPath], {
          env: childEnv, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024
        })
        const line = stdout.trim().split('\n').filter(Boolean).pop()
        return JSON.parse(line)
      } catch (err) {
        throw new Error(`hydrant ingest failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}\ndaemon stderr tail:\n${await tail(logPath)}`)
      }
    },

    /** `PUT {api_url}/api/v1/cars` with the CAR as the body -> parsed JSON. */
    async ingestHttp (carPath) {
      const body = await readFile(carPath)
      const res = await fetch(`${handle.apiUrl}/api/v1/cars`, {
        method: 'PUT',
        headers: { 'content-type': 'application/vnd.ipld.car' },
        body
      })
      const text = await res.text()
      if (!res.ok) throw new Error(`PUT /api/v1/cars -> ${res.status}: ${text}`)
      return JSON.parse(text)
    },

    async stop ({ keep = !!process.env.HYDRANT_KEEP_REPO } = {}) {
      if (stopped) return
      stopped = true
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
        const r = await exited
        clearTimeout(t)
        handle.exit = r
      } else {
        handle.exit = await exited
      }
      await new Promise((resolve) => log.end(resolve))
      if (!keep) await rm(work, { recursive: true, force: true })
    }
  }
  return handle
}

export async function fileSize (p) {
  return (await stat(p)).size
}
