"""Byte layouts of keys and values: big-endian keys, int32 token arrays, msgpack metadata.

Keys are big-endian so LMDB cursors walk them in numeric order. Token ids are stored as
little-endian int32 arrays (4 bytes a token); a sequence's content hash is a 16-byte
BLAKE2b of exactly those bytes, so equal token lists always hash equal.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Iterable
from typing import Any

import msgpack

from .errors import StoreCorruptError

_U64 = struct.Struct(">Q")
KEY_BYTES = _U64.size  # a sequence id or a log position: big-endian u64
_LOG = struct.Struct(">cQ")
HASH_SIZE = 16
MAX_TOKEN_ID = 2**31 - 1

LOG_ADD = b"a"
LOG_REMOVE = b"r"


def u64_key(n: int) -> bytes:
    """Big-endian 8-byte key for an unsigned integer (seq ids, log positions, chunks)."""
    return _U64.pack(n)


def key_u64(key: bytes) -> int:
    return _U64.unpack(key)[0]


def to_token_array(tokens: Iterable[int]) -> array:
    """Token ids as an int32 array; ValueError if any id is not a non-negative int32."""
    if isinstance(tokens, array) and tokens.typecode == "i":
        arr = tokens
    else:
        try:
            arr = array("i", tokens)
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"token ids must be integers in [0, {MAX_TOKEN_ID}]: {exc}") from None
    if arr and min(arr) < 0:
        raise ValueError("token ids must be non-negative")
    return arr


def token_bytes(arr: array) -> bytes:
    """Little-endian int32 bytes of a token array."""
    if sys.byteorder == "little":
        return arr.tobytes()
    swapped = array("i", arr)
    swapped.byteswap()
    return swapped.tobytes()


def tokens_from_bytes(data: bytes) -> array:
    arr = array("i")
    arr.frombytes(data)
    if sys.byteorder != "little":
        arr.byteswap()
    return arr


def encode_tokens(tokens: Iterable[int]) -> bytes:
    """Token ids as the store keeps them (little-endian int32); ValueError on a bad id."""
    return token_bytes(to_token_array(tokens))


def decode_tokens(data: bytes) -> list[int]:
    """``encode_tokens``' inverse; ValueError when ``data`` is no whole number of ids or
    holds an id the store refuses."""
    if len(data) % 4:
        raise ValueError(f"{len(data)} bytes are not a whole number of int32 token ids")
    ids = tokens_from_bytes(data)
    if any(t < 0 for t in ids):
        raise ValueError("a token id is negative")
    return ids.tolist()


def content_hash(tok_bytes: bytes) -> bytes:
    """16-byte BLAKE2b of a sequence's int32 token bytes: the dedup key."""
    return hashlib.blake2b(tok_bytes, digest_size=HASH_SIZE).digest()


def encode_sequence(tok_bytes: bytes, digest: bytes, source: dict[str, Any]) -> bytes:
    """Value of the ``sequences`` database: msgpack [token bytes, hash, source metadata]."""
    return msgpack.packb([tok_bytes, digest, source], use_bin_type=True)


def decode_sequence(value: bytes) -> tuple[bytes, bytes, dict[str, Any]]:
    try:
        tok_bytes, digest, source = msgpack.unpackb(value, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StoreCorruptError(f"a stored sequence cannot be decoded: {exc}") from None
    if not isinstance(tok_bytes, bytes) or not isinstance(digest, bytes) or not isinstance(source, dict):
        raise StoreCorruptError("a stored sequence cannot be decoded: its fields have the wrong types")
    return tok_bytes, digest, source


def record_problem(tok_bytes: bytes, digest: bytes) -> str | None:
    """Why a decoded record cannot stand (None when it can): its bytes are not whole
    token ids, do not match its content hash, or hold negative ids (no tokenizer makes them)."""
    if not tok_bytes or len(tok_bytes) % 4:
        return "it holds no whole token ids"
    if content_hash(tok_bytes) != digest:
        return "its tokens do not match its content hash"
    if min(tokens_from_bytes(tok_bytes)) < 0:
        return "it holds negative token ids"
    return None


def encode_log(op: bytes, seq_id: int) -> bytes:
    """Value of the ``log`` database: one op byte (a=add, r=remove) + big-endian seq id."""
    return _LOG.pack(op, seq_id)


def decode_log(value: bytes) -> tuple[bytes, int]:
    try:
        op, seq_id = _LOG.unpack(value)
    except struct.error:
        raise StoreCorruptError("a log record has the wrong size") from None
    if op not in (LOG_ADD, LOG_REMOVE):
        raise StoreCorruptError(f"a log record has an unknown operation {op!r}")
    return op, seq_id


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)
