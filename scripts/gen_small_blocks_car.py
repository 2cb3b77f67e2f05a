"""Writes a CARv1 of N raw blocks of 32 bytes (CIDv1, sha2-256), each block distinct, for the scale
benchmark in BENCHMARKS.md ("Scale"). Usage: python3 scripts/gen_small_blocks_car.py N out.car [START]
(10^7 blocks: 690 MB, about 15 s). Block i is struct.pack('<QQQQ', i, i+1, i+2, i+3); the CAR holds
blocks START .. START+N-1 (START defaults to 0), its root is block START, so CARs written with
disjoint ranges hold disjoint blocks (scripts/bench_scale.sh ingests 10^8 blocks as 100 such CARs)."""
import hashlib, sys, struct
def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7f) | 0x80); n >>= 7
    out.append(n); return bytes(out)
n = int(sys.argv[1]); path = sys.argv[2]
start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
def cid(data): return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
first = struct.pack('<QQQQ', start, start+1, start+2, start+3)
# header: dag-cbor {"roots":[cid], "version":1}
root = cid(first)
hdr = bytes([0xa2, 0x65]) + b'roots' + bytes([0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00]) + root + bytes([0x67]) + b'version' + bytes([0x01])
with open(path, 'wb') as f:
    f.write(varint(len(hdr)) + hdr)
    for i in range(start, start + n):
        data = struct.pack('<QQQQ', i, i+1, i+2, i+3)
        c = cid(data)
        f.write(varint(len(c) + len(data)) + c + data)
