"""Python's cyclic garbage collector paused where a stage makes millions of short-lived lists and none in a cycle.

Tokenizing makes a list of ids per encoded text, a tuple per template segment and a dict per record. Python
collects its youngest generation every 700 new containers and each collection visits every element of every
list made since the last, so on the 1M scale build the collector took 28.8 s of the tokenize stage's 103 s (and
25% of it alone on 100k records, bench/RESULTS.md, session 13). Reference counting frees all of those lists; the
collector is only needed for cycles, and the objects a paused block leaves are examined at the first collection
after it, so a cycle made there is still found.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, then as it was (a nested or concurrent pause leaves it to the outer)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
