"""Approximate-time synchronisation of several input streams (ROS-free).

message_filters' ApproximateTime policy, for a Python-only stack: groups one message per
input whose header stamps lie within ``slop`` of each other. When a message arrives, every
other input's queued message nearest in time is looked up; if all lie within ``slop`` of the
new one, the group is emitted and everything up to it is removed from the queues. Queues are
bounded, so an input that never matches cannot grow memory.

Time going backwards on an input (a bag replayed in a loop, a restarted driver) resets all
queues instead of waiting forever for stamps that will not come again.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class SyncStats:
    matched: int = 0
    unmatched: int = 0      # messages dropped without a partner (too far apart, overflow)
    resets: int = 0         # time went backwards
    last_spread_s: float = 0.0   # smallest stamp spread seen for the newest message, seconds


class ApproximateTimeSync:
    """Match messages of ``n_inputs`` streams by header stamp (nanoseconds)."""

    def __init__(self, n_inputs: int, slop_s: float, queue_size: int = 10,
                 backwards_tolerance_s: float = 0.0):
        if n_inputs < 2:
            raise ValueError('synchronising needs at least two inputs')
        if slop_s < 0 or queue_size < 1:
            raise ValueError(f'need slop >= 0 and queue_size >= 1, got {slop_s}, {queue_size}')
        self.n_inputs = n_inputs
        self.slop_ns = int(round(slop_s * 1e9))
        self.queue_size = queue_size
        self.backwards_ns = int(round(backwards_tolerance_s * 1e9))
        self.stats = SyncStats()
        self._queues = [collections.deque() for _ in range(n_inputs)]
        self._newest = [None] * n_inputs
        self._lock = threading.Lock()

    @property
    def slop_s(self) -> float:
        return self.slop_ns * 1e-9

    @slop_s.setter
    def slop_s(self, value: float) -> None:
        if value < 0:
            raise ValueError(f'slop must be >= 0, got {value}')
        self.slop_ns = int(round(value * 1e9))

    def reset(self) -> None:
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        for queue in self._queues:
            self.stats.unmatched += len(queue)
            queue.clear()
        self._newest = [None] * self.n_inputs

    def add(self, index: int, stamp_ns: int, item: Any) -> tuple | None:
        """Queue ``item`` of input ``index``; returns the matched group (one item per input,
        in input order) when this message completes one, else None."""
        with self._lock:
            newest = self._newest[index]
            if newest is not None and stamp_ns < newest - self.backwards_ns:
                self.stats.resets += 1
                self._reset()
            self._newest[index] = stamp_ns
            queue = self._queues[index]
            queue.append((stamp_ns, item))
            if len(queue) > self.queue_size:
                queue.popleft()
                self.stats.unmatched += 1
            return self._match(index, stamp_ns)

    def _match(self, index: int, stamp_ns: int) -> tuple | None:
        picks = []
        worst = 0
        for other, queue in enumerate(self._queues):
            if other == index:
                picks.append(len(queue) - 1)
                continue
            if not queue:
                return None
            best = min(range(len(queue)), key=lambda i: abs(queue[i][0] - stamp_ns))
            worst = max(worst, abs(queue[best][0] - stamp_ns))
            picks.append(best)
        self.stats.last_spread_s = worst * 1e-9
        if worst > self.slop_ns:
            return None
        group = []
        for queue, pick in zip(self._queues, picks):
            group.append(queue[pick][1])
            self.stats.unmatched += pick          # older messages nobody will pair any more
            for _ in range(pick + 1):
                queue.popleft()
        self.stats.matched += 1
        return tuple(group)
