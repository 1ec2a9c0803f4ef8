"""Queue disciplines of a worker's (or a model's shared) queue: FIFO, earliest deadline first,
or a policy's per-query priority. Every queue is deque-like (append, popleft, len, iteration,
clear), so the decision core's `form_batch` takes any of them."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator, Sequence

QUEUE_DISCIPLINES = ("fifo", "edf")


class PriorityQueue:
    """Lowest key first, ties by query id; `key(query_id)` is read once, on append."""

    __slots__ = ("_heap", "_key")

    def __init__(self, key: Callable[[int], float]) -> None:
        self._heap: list[tuple[float, int]] = []
        self._key = key

    def append(self, q: int) -> None:
        heapq.heappush(self._heap, (self._key(q), q))

    def popleft(self) -> int:
        return heapq.heappop(self._heap)[1]

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[int]:
        return (q for _, q in sorted(self._heap))

    def clear(self) -> None:
        self._heap.clear()


def queue_factory(
    discipline: str, arrival_s: Sequence[float], priority: Callable[[int], float] | None = None
) -> Callable[[], deque[int] | PriorityQueue]:
    """A constructor of empty queues: `priority(query_id)` if given (lower first), else FIFO
    (arrival at this queue) or EDF (deadline = arrival + SLO, one SLO for all queries, so the
    earliest arrival at the cluster first: escalated queries pass newer ones)."""
    if discipline not in QUEUE_DISCIPLINES:
        raise ValueError(f"queue discipline {discipline!r}: expected one of {QUEUE_DISCIPLINES}")
    if priority is not None:
        return lambda: PriorityQueue(priority)
    if discipline == "edf":
        return lambda: PriorityQueue(arrival_s.__getitem__)
    return deque
