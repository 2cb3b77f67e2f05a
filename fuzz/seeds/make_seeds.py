#!/usr/bin/env python3
"""Regenerates fuzz/seeds/* from testdata/fixtures (run from anywhere; stdlib only).

car_decoder:     1 chunking byte + a small CAR fixture (or a cut-down one).
unixfs_dag:      CID selector byte + path length byte + one block + path.
bitswap_message: hand-encoded protobuf messages, prefixes and frames.
gateway_request: "query\\naccept\\npath\\nentity-bytes\\ndag-scope".
"""
import pathlib

FUZZ = pathlib.Path(__file__).resolve().parent.parent
FIX = FUZZ.parent / "testdata" / "fixtures"
SEEDS = FUZZ / "seeds"


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(b, i):
    v = s = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return v, i


def sections(b):
    """CARv1 (header_end, [(start, end, cid_bytes, codec, block)])."""
    hl, i = read_varint(b, 0)
    i += hl
    header_end, out = i, []
    while i < len(b):
        start = i
        length, j = read_varint(b, i)
        if length == 0:
            break
        if b[j] == 0x12 and b[j + 1] == 0x20:
            cid_end, codec = j + 34, 0x70
        else:
            _, k = read_varint(b, j)
            codec, k = read_varint(b, k)
            _, k = read_varint(b, k)
            dl, k = read_varint(b, k)
            cid_end = k + dl
        out.append((start, j + length, b[j:cid_end], codec, b[cid_end : j + length]))
        i = j + length
    return header_end, out


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def car_seeds():
    picks = [
        ("ipld/carv1-basic.car", 0x0F),
        ("ipld/carv2-basic.car", 0x03),
        ("go-car/sample-unixfs-v2.car", 0x00),
        ("go-car/sample-rw-bs-v2.car", 0x27),
        ("go-car/cmd-simple-unixfs.car", 0x0A),
        ("go-car/cmd-badsectionlength.car", 0x01),
        ("go-car/cmd-badheaderlength.car", 0x02),
        ("go-car/sample-corrupt-pragma.car", 0x05),
        ("go-car/sample-rootless-v42.car", 0x06),
        ("gateway-conformance/path_gateway_dag-dag-cbor-traversal.car", 0x44),
        ("gateway-conformance/path_gateway_dag-dag-json-traversal.car", 0x18),
        ("gateway-conformance/path_gateway_unixfs-symlink.car", 0x09),
    ]
    for rel, seed in picks:
        write("car_decoder", pathlib.Path(rel).stem, bytes([seed]) + (FIX / rel).read_bytes())
    # Cut-down sample-v1-with-zero-len-section2.car: header, 2 sections, the zero-length
    # section, 64 zero bytes (the original is 32 KB).
    b = (FIX / "go-car/sample-v1-with-zero-len-section2.car").read_bytes()
    _, secs = sections(b)
    small = b[: secs[1][1]] + b"\x00" * 65
    write("car_decoder", "zero-len-section-small", bytes([0x0C]) + small)
    write("car_decoder", "zero-len-section-nonzero", bytes([0x04]) + small[:-3] + b"\x01\x00\x00")


def unixfs_seeds():
    codec_sel = {0x70: 0, 0x71: 1, 0x0129: 2, 0x55: 3}
    files = [
        "gateway-conformance/path_gateway_unixfs-dir-with-files.car",
        "gateway-conformance/path_gateway_unixfs-symlink.car",
        "gateway-conformance/path_gateway_dag-dag-cbor-traversal.car",
        "gateway-conformance/path_gateway_dag-dag-json-traversal.car",
        "gateway-conformance/trustless_gateway_car-dir-with-dag-cbor-with-links.car",
        "gateway-conformance/trustless_gateway_car-single-layer-hamt-with-multi-block-files.car",
        "go-car/sample-unixfs-v2.car",
    ]
    seen, n = set(), 0
    for rel in files:
        b = (FIX / rel).read_bytes()
        if b[:11] == bytes.fromhex("0aa16776657273696f6e02"):  # CARv2 pragma
            data_offset = int.from_bytes(b[11 + 16 : 11 + 24], "little")
            data_size = int.from_bytes(b[11 + 24 : 11 + 32], "little")
            b = b[data_offset : data_offset + data_size]
        _, secs = sections(b)
        per_codec = {}
        for _, _, cid, codec, block in secs:
            if codec not in codec_sel or len(block) > 16384 or block in seen:
                continue
            if per_codec.get(codec, 0) >= 3:
                continue
            per_codec[codec] = per_codec.get(codec, 0) + 1
            seen.add(block)
            v0 = 4 if cid[:2] == b"\x12\x20" else 0
            path = [b"", b"a", b"foo/bar", b"0/Links", b"1"][n % 5]
            write("unixfs_dag", f"block-{n:02}", bytes([codec_sel[codec] | v0, len(path)]) + block + path)
            n += 1


def pb_field(tag, wire, payload):
    key = varint(tag << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + varint(payload)


def bitswap_seeds():
    cid_v1 = bytes.fromhex("01551220") + bytes(range(32))
    cid_v0 = bytes.fromhex("1220") + bytes(range(32, 64))
    entry1 = pb_field(1, 2, cid_v1) + pb_field(2, 0, 7) + pb_field(4, 0, 1) + pb_field(5, 0, 1)
    entry2 = pb_field(1, 2, cid_v0) + pb_field(3, 0, 1)
    wantlist = pb_field(1, 2, entry1) + pb_field(1, 2, entry2) + pb_field(2, 0, 1)
    payload = pb_field(1, 2, bytes.fromhex("01551220")) + pb_field(2, 2, b"hello")
    payload_v0 = pb_field(1, 2, bytes.fromhex("00701220")) + pb_field(2, 2, b"\x0a\x00")
    presence = pb_field(1, 2, cid_v1) + pb_field(2, 0, 1)
    msgs = {
        "wantlist": pb_field(1, 2, wantlist),
        "blocks-1.0": pb_field(2, 2, b"block data"),
        "payload-1.1": pb_field(3, 2, payload) + pb_field(3, 2, payload_v0),
        "presences-1.2": pb_field(4, 2, presence) + pb_field(5, 0, 1234),
        "everything": pb_field(1, 2, wantlist) + pb_field(2, 2, b"x") + pb_field(3, 2, payload)
        + pb_field(4, 2, presence) + pb_field(5, 0, 99),
    }
    for name, m in msgs.items():
        write("bitswap_message", name, m)
    frames = b"".join(varint(len(m)) + m for m in msgs.values())
    write("bitswap_message", "frames", frames)
    # Byte 0 = split point: prefix then block data (sha2-256, blake3, identity).
    write("bitswap_message", "split-sha256", b"\x04" + bytes.fromhex("01551220") + b"data")
    write("bitswap_message", "split-blake3", b"\x05" + bytes.fromhex("01711e20") + b"\xa0")
    write("bitswap_message", "split-identity", b"\x04" + bytes.fromhex("01550003") + b"abc")
    write("bitswap_message", "prefix-v0", bytes.fromhex("00701220"))


def gateway_seeds():
    cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
    reqs = {
        "car-query": f"format=car&dag-scope=entity&car-dups=y\n\n{cid}/a/b%20c\n0:*\nentity",
        "raw-accept": f"\napplication/vnd.ipld.raw\n{cid}\n-1024:*\nblock",
        "car-accept": "\napplication/vnd.ipld.car; version=1; order=dfs; dups=n;q=0.9, */*;q=0.1\n"
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n/x\n499:-1000\nall",
        "entity-bytes": f"format=car&entity-bytes=10:20&filename=a.car\n\n{cid}/../x\n-5:-1\nall",
        "bad": "format=tar\ntext/html, application/*\n/ipfs/x\n1:0\nnone",
    }
    for name, r in reqs.items():
        write("gateway_request", name, r.encode())


if __name__ == "__main__":
    car_seeds()
    unixfs_seeds()
    bitswap_seeds()
    gateway_seeds()
    for d in sorted(SEEDS.iterdir()):
        if d.is_dir():
            files = list(d.iterdir())
            print(f"{d.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
