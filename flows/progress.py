"""Where the CLI hangs its progress callback for a flow run: called once per finished shard as (source, 0, True).

It lives apart from flows/build_flow.py because task functions are pickled by value for Dask workers together
with the globals of their module; a callback holding the terminal's progress bar (locks) cannot be pickled.
"""

from __future__ import annotations

from collections.abc import Callable

hook: Callable[[str, int, bool], None] | None = None
