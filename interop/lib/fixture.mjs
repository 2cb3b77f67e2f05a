// Test fixtures: a real >= 50 MB directory copied from the Debian system, a
// pseudo-random file with a fixed seed, and packing them with ipfs-car.
//
// Everything is built under interop/.cache/ (git-ignored) and reused when its
// manifest is already there; building goes to a temporary directory that is
// renamed into place, so two processes never see a half-built fixture.
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { access, copyFile, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const pExecFile = promisify(execFile)

export const INTEROP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const CACHE_DIR = join(INTEROP_DIR, '.cache')
const IPFS_CAR = join(INTEROP_DIR, 'node_modules', 'ipfs-car', 'bin.js')

const MiB = 1024 * 1024
// bump when the selection rules change, so stale caches are not reused
const FIXTURE_VERSION = 'v1'

async function exists (p) {
  try { await access(p); return true } catch { return false }
}

async function sha256File (p) {
  return createHash('sha256').update(await readFile(p)).digest('hex')
}

/** Regular files below root, depth-first, sorted by name; symlinks and unreadable entries skipped. */
async function * walk (root, { maxDepth = Infinity } = {}, depth = 0) {
  let names
  try { names = (await readdir(root)).sort() } catch { return }
  for (const name of names) {
    if (name.startsWith('.')) continue // ipfs-car skips hidden paths by default
    const p = join(root, name)
    let st
    try { st = await lstat(p) } catch { continue }
    if (st.isSymbolicLink()) continue
    if (st.isDirectory()) {
      if (depth + 1 < maxDepth) yield * walk(p, { maxDepth }, depth + 1)
    } else if (st.isFile()) {
      try { await access(p) } catch { continue }
      yield { path: p, size: st.size }
    }
  }
}

/**
 * Pack a file or directory with the ipfs-car CLI (`ipfs-car pack X --output Y.car`).
 * Returns the root CID string ipfs-car prints.
 */
export async function packWithIpfsCar (input, output, { wrap = true } = {}) {
  const args = [IPFS_CAR, 'pack', input, '--output', output]
  if (!wrap) args.push('--no-wrap')
  const { stdout } = await pExecFile(process.execPath, args, { maxBuffer: 16 * MiB })
  const root = stdout.trim().split('\n').pop().trim()
  if (!root.startsWith('baf')) throw new Error(`ipfs-car printed no root CID: ${JSON.stringify(stdout)}`)
  return root
}

/**
 * The directory fixture:
 *   lib/  top-level regular files of /usr/lib/x86_64-linux-gnu (sorted by name,
 *         1 KiB .. 16 MiB each) until they add up to >= 48 MiB
 *   doc/  the first 400 regular files of /usr/share/doc (sorted depth-first walk)
 * If the machine lacks enough of those, a pseudo-random pad/ file (fixed seed)
 * tops it up, so the total is always >= 52 MiB.
 *
 * Returns { dir, car, root, files: [{ rel, size, sha256 }], totalBytes,
 *           bigFile: { rel, size } (largest file, several 1 MiB chunks),
 *           listDir: rel path of a directory with several files }
 */
export async function directoryFixture () {
  const base = join(CACHE_DIR, `dir-fixture-${FIXTURE_VERSION}`)
  const manifestPath = join(base, 'manifest.json')
  const load = async () => ({
    ...JSON.parse(await readFile(manifestPath, 'utf8')),
    dir: join(base, 'fixture'),
    car: join(base, 'fixture.car')
  })
  if (await exists(manifestPath)) return load()
  await mkdir(CACHE_DIR, { recursive: true })
  const tmp = `${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  const dir = join(tmp, 'fixture')
  await mkdir(dir, { recursive: true })

  const files = []
  let total = 0
  const take = async (src, rel) => {
    const dst = join(dir, rel)
    await mkdir(dirname(dst), { recursive: true })
    try {
      await copyFile(src, dst)
    } catch {
      return
    }
    const size = (await stat(dst)).size
    files.push({ rel, size })
    total += size
  }

  let libBytes = 0
  for await (const f of walk('/usr/lib/x86_64-linux-gnu', { maxDepth: 1 })) {
    if (libBytes >= 48 * MiB) break
    if (f.size < 1024 || f.size > 16 * MiB) continue
    await take(f.path, join('lib', relative('/usr/lib/x86_64-linux-gnu', f.path)))
    libBytes += f.size
  }
  let docCount = 0
  for await (const f of walk('/usr/share/doc')) {
    if (docCount >= 400) break
    await take(f.path, join('doc', relative('/usr/share/doc', f.path)))
    docCount++
  }
  if (total < 52 * MiB) {
    const padSize = 52 * MiB - total + 3 * MiB + 12345
    await mkdir(join(dir, 'pad'), { recursive: true })
    await writeFile(join(dir, 'pad', 'random.bin'), seededBytes(padSize, 42))
    files.push({ rel: 'pad/random.bin', size: padSize })
    total += padSize
  }
  for (const f of files) f.sha256 = await sha256File(join(dir, f.rel))

  // largest file: several 1 MiB UnixFS chunks
  const bigFile = [...files].sort((a, b) => b.size - a.size || (a.rel < b.rel ? -1 : 1))[0]
  // a directory directly holding several (3..40) files, preferring doc/<pkg>
  const byDir = new Map()
  for (const f of files) {
    const d = dirname(f.rel)
    byDir.set(d, (byDir.get(d) ?? 0) + 1)
  }
  const candidates = [...byDir.entries()].filter(([d, n]) => d.startsWith('doc/') && n >= 3 && n <= 40).map(([d]) => d).sort()
  const listDir = candidates[0] ?? [...byDir.keys()].sort()[0]

  const car = join(tmp, 'fixture.car')
  const root = await packWithIpfsCar(dir, car)
  const manifest = {
    dir: join(base, 'fixture'),
    car: join(base, 'fixture.car'),
    root,
    totalBytes: total,
    files,
    bigFile: { rel: bigFile.rel, size: bigFile.size },
    listDir
  }
  await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2))
  try {
    await rename(tmp, base)
  } catch (err) {
    // another process won the race: use theirs
    await rm(tmp, { recursive: true, force: true })
    if (!(await exists(manifestPath))) throw err
  }
  return load()
}

/**
 * Deterministic pseudo-random bytes (xorshift128+ style, fixed seed): the same
 * seed gives the same bytes on every machine.
 */
export function seededBytes (size, seed = 1) {
  const out = Buffer.allocUnsafe(size)
  let s0 = BigInt(seed) * 0x9E3779B97F4A7C15n & 0xFFFFFFFFFFFFFFFFn
  let s1 = (BigInt(seed) + 0x632BE59BD9B4E019n) & 0xFFFFFFFFFFFFFFFFn
  if (s0 === 0n && s1 === 0n) s1 = 1n
  // BigInt is slow: use the generator to seed a fast 32-bit xorshift per 64 KiB block
  const block = 64 * 1024
  for (let off = 0; off < size; off += block) {
    let x = s1
    const y = s0
    s0 = x
    x ^= (x << 23n) & 0xFFFFFFFFFFFFFFFFn
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n)
    let st = Number((s1 + y) & 0xFFFFFFFFn) | 1
    const end = Math.min(off + block, size)
    let i = off
    for (; i + 4 <= end; i += 4) {
      st ^= st << 13; st ^= st >>> 17; st ^= st << 5
      out.writeInt32LE(st | 0, i)
    }
    for (; i < end; i++) {
      st ^= st << 13; st ^= st >>> 17; st ^= st << 5
      out[i] = st & 0xff
    }
  }
  return out
}

/**
 * A pseudo-random file of `size` bytes (fixed seed), packed with ipfs-car
 * --no-wrap so the CAR root is the file itself. Cached under .cache/.
 * Returns { file, car, root, size, sha256 }.
 */
export async function randomFileFixture (size = 100 * 1000 * 1000, seed = 100) {
  const base = join(CACHE_DIR, `random-${size}-${seed}-${FIXTURE_VERSION}`)
  const manifestPath = join(base, 'manifest.json')
  const load = async () => ({
    ...JSON.parse(await readFile(manifestPath, 'utf8')),
    file: join(base, 'random.bin'),
    car: join(base, 'random.car')
  })
  if (await exists(manifestPath)) return load()
  await mkdir(CACHE_DIR, { recursive: true })
  const tmp = `${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  await mkdir(tmp, { recursive: true })
  const bytes = seededBytes(size, seed)
  await writeFile(join(tmp, 'random.bin'), bytes)
  const root = await packWithIpfsCar(join(tmp, 'random.bin'), join(tmp, 'random.car'), { wrap: false })
  const manifest = {
    file: join(base, 'random.bin'),
    car: join(base, 'random.car'),
    root,
    size,
    sha256: createHash('sha256').update(bytes).digest('hex')
  }
  await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2))
  try {
    await rename(tmp, base)
  } catch (err) {
    await rm(tmp, { recursive: true, force: true })
    if (!(await exists(manifestPath))) throw err
  }
  return load()
}
