"""Give freed memory back to the operating system between stages.

glibc keeps the memory a stage freed (the tokenizer's per-batch encodings, dedup's candidate pairs) in its
arenas, so the process's resident size stays at the stage's peak while the next stage allocates more on top:
measured on 100k records, tokenizing left 600 MB resident for a 114 MB result, 300 MB after ``malloc_trim``.
Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
