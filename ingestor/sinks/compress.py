"""gzip for request bodies: ISA-L through `isal` when importable, zlib otherwise. Pure functions."""

from __future__ import annotations

import zlib
from types import ModuleType

_isal: ModuleType | None
try:
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - isal has wheels for every platform we ship
    _isal = None

BACKEND = "isal" if _isal is not None else "zlib"
_GZIP_WBITS = 31  # 16 + 15: gzip header and trailer


def gzip_array(body: bytes | bytearray, level: int = 1) -> bytes:
    """gzip of the JSON array `[row1,row2,...]` from `body` = `,row1,row2,...` (see models.Batch), without copying it.

    `level` is ISA-L's 0-3; with the zlib fallback it maps to 1-9 (0->1, 1->2, 2->4, 3->6). Releases the GIL
    while compressing, so it can run in a worker thread beside the event loop.
    """
    if _isal is not None:
        compressor = _isal.compressobj(level, _isal.DEFLATED, _GZIP_WBITS)
    else:
        compressor = zlib.compressobj((1, 2, 4, 6)[level], zlib.DEFLATED, _GZIP_WBITS)
    parts = (b"[", memoryview(body)[1:], b"]")
    return b"".join([*map(compressor.compress, parts), compressor.flush()])


def gunzip(payload: bytes) -> bytes:
    if _isal is not None:
        return bytes(_isal.decompress(payload, _GZIP_WBITS))
    return zlib.decompress(payload, _GZIP_WBITS)
