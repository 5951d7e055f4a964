"""First-fit-decreasing packing of examples into fixed-size rows, in O(n log n).

Examples are taken longest first (ties by position) and each goes into the first row, in opening order, with
room for it; a max segment tree over the rows' free space finds that row in O(log n). An example is never
split across rows.
"""

from __future__ import annotations

from collections.abc import Sequence


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Rows of example indices; each row's lengths sum to at most ``capacity``."""
    if any(length > capacity or length <= 0 for length in lengths):
        raise ValueError(f"every length must be in 1..{capacity}")
    n = len(lengths)
    if n == 0:
        return []
    size = 1
    while size < n:
        size *= 2
    free = [0] * size + [capacity] * n + [0] * (size - n)  # leaves: one per possible row, all empty
    for node in range(size - 1, 0, -1):
        free[node] = max(free[2 * node], free[2 * node + 1])
    rows: list[list[int]] = []
    for index in sorted(range(n), key=lambda i: (-lengths[i], i)):
        length, node = lengths[index], 1
        while node < size:  # descend to the leftmost leaf with room
            node = 2 * node if free[2 * node] >= length else 2 * node + 1
        row = node - size
        if row == len(rows):
            rows.append([])
        rows[row].append(index)
        free[node] -= length
        node //= 2
        while node:
            free[node] = max(free[2 * node], free[2 * node + 1])
            node //= 2
    return rows
