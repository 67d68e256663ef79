"""The LMDB data file read with plain file I/O, before LMDB maps it.

LMDB maps ``data.mdb`` and trusts it: a file cut short makes the first touch of a page
beyond its end a SIGBUS that kills the process, and a zeroed or overwritten header is an
``lmdb.InvalidError`` from deep inside ``lmdb.open``. ``check`` reads the two meta pages
itself and refuses such a file with one sentence that says what to do.

Meta page layout (LMDB 0.9, ``mdb.c``; LMDB 1.0 only has a longer page header): a page
header (16 bytes; 24 in 1.0), then ``MDB_meta``: ``mm_magic`` u32 = 0xBEEFC0DE,
``mm_version`` u32 (1; 3 in 1.0), ``mm_address`` (8), ``mm_mapsize`` (8), ``mm_dbs[2]``
(two 48-byte ``MDB_db``; the page size is the first one's ``md_pad``), ``mm_last_pg``
(8) and ``mm_txnid`` (8). Meta 0 is at offset 0, meta 1 one page further; LMDB uses the
one with the larger txnid, and every page up to its ``mm_last_pg`` that holds data lies
within the file. Pages past the end of the file can only be free ones (LMDB does not
write a page that was allocated and freed in the same transaction); when the file is
shorter than ``(mm_last_pg + 1) * page size``, py-lmdb's offline verifier (``lmdb.verify``,
py-lmdb >= 3.0; it reads, never maps) decides whether a live page is missing. Without it
a short file is refused.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreFileDamagedError

DATA_FILE = "data.mdb"
MAGIC = 0xBEEFC0DE
_VERSIONS = {16: 1, 24: 3}  # page-header size -> data version (LMDB 0.9, LMDB 1.0)
_ORDER = "<" if struct.pack("=H", 1) == b"\x01\x00" else ">"


@dataclass(frozen=True)
class Header:
    """What the committed meta page says about the file."""

    page_size: int
    last_page: int
    txnid: int

    @property
    def needed_bytes(self) -> int:
        return (self.last_page + 1) * self.page_size


def _fix(path: Path) -> str:
    return f"restore data.mdb from a backup, or delete {path} and index your outputs again"


def _meta(raw: bytes, hdr: int) -> tuple[int, int, int, int, int]:
    """(magic, version, page size, last page, txnid) of one meta page's bytes."""
    m = hdr
    magic, version = struct.unpack_from(_ORDER + "II", raw, m)
    (psize,) = struct.unpack_from(_ORDER + "I", raw, m + 24)
    last, txnid = struct.unpack_from(_ORDER + "QQ", raw, m + 120)
    return magic, version, psize, last, txnid


def read_header(data: Path) -> Header | None:
    """The committed meta page of ``data`` (None if the file is empty); raises
    ``StoreFileDamagedError`` when the file is not a readable LMDB data file."""
    path = data.parent
    with open(data, "rb") as f:
        head = f.read(4096)
        if not head:
            return None
        hdr = next(
            (h for h in _VERSIONS if len(head) >= h + 136 and struct.unpack_from(_ORDER + "I", head, h)[0] == MAGIC),
            None,
        )
        if hdr is None:
            raise StoreFileDamagedError(
                f"the store's data file {data} is not an LMDB file (zeroed, overwritten or cut short "
                f"inside its header); {_fix(path)}"
            )
        metas = [_meta(head, hdr)]
        psize = metas[0][2]
        if psize < 256 or psize > 0x10000 or psize & (psize - 1):
            raise StoreFileDamagedError(
                f"the store's data file {data} has a damaged header (page size {psize}); {_fix(path)}"
            )
        f.seek(psize)
        second = f.read(hdr + 136)
    if len(second) < hdr + 136:
        raise StoreFileDamagedError(
            f"the store's data file {data} is truncated inside its header ({os.path.getsize(data):,} "
            f"bytes); {_fix(path)}"
        )
    metas.append(_meta(second, hdr))
    for magic, version, page, _, _ in metas:
        if magic != MAGIC or version != _VERSIONS[hdr] or page != psize:
            raise StoreFileDamagedError(
                f"the store's data file {data} is not an LMDB file (a damaged meta page); {_fix(path)}"
            )
    _, _, _, last, txnid = max(metas, key=lambda m: m[4])
    return Header(psize, last, txnid)


def check(path: Path) -> None:
    """Refuse (``StoreFileDamagedError``) a data file LMDB must not map: empty, not LMDB, or
    shorter than the pages its header says hold data. A store without one passes."""
    data = path / DATA_FILE
    try:
        size = data.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        raise StoreFileDamagedError(
            f"the store's data file {data} is empty (0 bytes): what it held is gone; restore data.mdb "
            f"from a backup, or delete {path} to start a new store"
        )
    for _ in range(3):  # a writer may be committing a meta page right now: look again
        header = read_header(data)
        if header is None or size >= header.needed_bytes:
            return
        time.sleep(0.02)
        size = data.stat().st_size
    assert header is not None
    if not _short_tail_is_free(path):
        raise StoreFileDamagedError(
            f"the store's data file {data} is truncated ({size:,} bytes; its LMDB header says its pages "
            f"reach {header.needed_bytes:,}); {_fix(path)}"
        )


def _short_tail_is_free(path: Path) -> bool:
    """True when every live page lies within the file (only free pages are missing)."""
    try:
        from lmdb import verify as offline
    except ImportError:  # py-lmdb < 3.0: no offline verifier, so refuse the short file
        return False
    try:
        problems = offline.verify(str(path))
    except Exception:  # noqa: BLE001 - it cannot even start: not a file LMDB should map
        return False
    return not any("beyond EOF" in p or "truncated" in p for p in problems)
