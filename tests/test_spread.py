"""The direct runner's sharing of work between this process and spawned ones (pipeline/io/workers.py)."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from pipeline.io.workers import Spread


def test_a_failed_submit_raises_where_its_result_is_read_and_this_process_takes_the_rest() -> None:
    def submit(index: int) -> Future[int]:
        if index == 9:  # the first item the others take: submitted as Spread starts
            raise OSError("no space left on device")
        return pool.submit(lambda: index * 10)

    with ThreadPoolExecutor(1) as pool:
        spread = Spread(10, submit, 1)
        mine = list(spread.front())
        theirs = spread.submitted()
    assert mine == list(range(9)) and [index for index, _ in theirs] == [9]  # the failed slot took no more
    with pytest.raises(OSError, match="no space left"):
        theirs[0][1].result()


def test_spread_shares_the_items_between_both_ends() -> None:
    def submit(index: int) -> Future[int]:
        return pool.submit(lambda: time.sleep(0.01) or index * 10)

    with ThreadPoolExecutor(2) as pool:
        spread = Spread(50, submit, 2)
        mine = []
        for index in spread.front():
            time.sleep(0.01)  # this process's item takes as long as theirs
            mine.append(index)
        theirs = spread.submitted()
    assert sorted(mine + [index for index, _ in theirs]) == list(range(50)) and mine[:1] == [0] and len(theirs) > 1
    assert [index for index, _ in theirs] == sorted(index for index, _ in theirs) and theirs[-1][0] == 49
    assert all(future.result() == index * 10 for index, future in theirs)
