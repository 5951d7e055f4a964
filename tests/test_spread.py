"""The direct runner's sharing of work between this process and spawned ones (pipeline/io/workers.py)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from pipeline.io.workers import Spread


def test_spread_claims_each_item_once_and_a_failed_submit_raises_where_its_result_is_read() -> None:
    def submit(index: int) -> Future[int]:
        if index == 9:  # the first item the others take: submitted as Spread starts
            raise OSError("no space left on device")
        return pool.submit(lambda: index * 10)

    with ThreadPoolExecutor(1) as pool:
        spread = Spread(10, submit, 1)
        mine = list(spread.front())
        theirs = spread.submitted()
    assert sorted(mine + [index for index, _ in theirs]) == list(range(10)) and mine[:1] == [0]
    assert [index for index, _ in theirs] == sorted(index for index, _ in theirs) and theirs[-1][0] == 9
    with pytest.raises(OSError, match="no space left"):
        theirs[-1][1].result()
    assert all(future.result() == index * 10 for index, future in theirs[:-1])
