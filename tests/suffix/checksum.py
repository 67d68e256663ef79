"""Recompute the checksum of a serialized tree (to feed adversarial payloads)."""

import struct

M64 = (1 << 64) - 1


def checksum(p: bytes) -> int:
    n = len(p)
    h = 0x243F6A8885A308D3 ^ n
    i = 0
    while i + 8 <= n:
        (w,) = struct.unpack_from("<Q", p, i)
        h = ((h ^ w) * 0x9E3779B97F4A7C15) & M64
        h ^= h >> 29
        i += 8
    while i < n:
        h = ((h ^ p[i]) * 0x100000001B3) & M64
        i += 1
    return (h ^ (h >> 32)) & M64


def fix_checksum(blob: bytes) -> bytes:
    b = bytearray(blob)
    struct.pack_into("<Q", b, 24, checksum(bytes(b[32:])))
    return bytes(b)
