"""Memory-mapped Arrow files whose pages the process lets go when they crowd its memory.

Why: a page of a memory-mapped file that a task has read counts in the process's resident set (RSS) until the
mapping goes, and a Dask nanny restarts a worker by its RSS. A task that reads a whole stage output once ends
with the whole file in its RSS though it never needs those pages again and the kernel could drop them at any
time: at 3M records the report task peaked at 4,323 MB (4,004 MB of it file pages) and the write task at 4,286
MB (3,929), past a 4 GB worker's limit, with ~700 MB of their own memory.

Contract:
- ``table(path)``: an uncompressed Arrow IPC file read zero-copy from a read-only shared mapping, which this
  module keeps a weak reference to (the mapping lives as long as a buffer of the table does).
- ``release()``: tells the kernel (madvise ``MADV_DONTNEED``) that no live mapping's pages are needed now; they
  leave the RSS at once, the data stays the file's, and a page touched again is read back from the page cache
  (a minor fault). Safe at any moment, from any thread: the files are never written through a mapping.
- ``keep_under(budget)``: a daemon thread that calls ``release`` whenever the process's resident file pages
  pass ``budget`` bytes, checked every ``INTERVAL`` seconds (Linux, where /proc/self/statm tells them; a no-op
  elsewhere). A later call sets a new budget for the same thread.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import weakref
from pathlib import Path

import pyarrow as pa
from pyarrow import ipc

INTERVAL = 0.05  # seconds between checks: a scan reads ~100 MB of pages in that time
STATM = Path("/proc/self/statm")  # size resident shared ...: in pages; shared = resident file pages (+ shmem)

_mappings: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
_lock = threading.Lock()
_budget: int | None = None
_thread: threading.Thread | None = None


def table(path: Path) -> pa.Table:
    """The table of an uncompressed Arrow IPC file, its buffers in a mapping of the file that ``release`` can
    empty."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            raise pa.ArrowInvalid(f"{path}: an empty file is not an Arrow IPC file")
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    with _lock:
        _mappings.add(mapping)
    return ipc.open_file(pa.BufferReader(pa.py_buffer(mapping))).read_all()


def release() -> int:
    """Drop the resident pages of every live mapping from this process; the bytes of the mappings."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return 0
    with _lock:
        mappings = list(_mappings)
    for mapping in mappings:
        mapping.madvise(mmap.MADV_DONTNEED)
    return sum(len(mapping) for mapping in mappings)


def resident_file_bytes() -> int | None:
    """The process's resident file-backed (and shared) memory, or None where /proc does not tell it."""
    try:
        return int(STATM.read_text().split()[2]) * mmap.PAGESIZE
    except (OSError, IndexError, ValueError):
        return None


def keep_under(budget: int) -> None:
    """Release the mappings' pages whenever the process's resident file pages pass ``budget`` bytes."""
    global _budget, _thread
    if resident_file_bytes() is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    with _lock:
        _budget = budget
        if _thread is None:
            _thread = threading.Thread(target=_watch, name="mapped-pages", daemon=True)
            _thread.start()


def _watch() -> None:
    while True:
        resident = resident_file_bytes()
        if _budget is not None and resident is not None and resident > _budget:
            release()
        time.sleep(INTERVAL)
