"""ROS-free plumbing of a perception node: statistics and throttled reports."""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable

import numpy as np


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = now - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class LatencyWindow:
    """The last N latency samples (seconds) with percentiles."""

    def __init__(self, size: int = 200):
        self._samples: collections.deque[float] = collections.deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        """Percentiles in seconds (NaN when empty)."""
        with self._lock:
            if not self._samples:
                return tuple(float('nan') for _ in qs)
            data = np.fromiter(self._samples, dtype=np.float64)
        return tuple(float(v) for v in np.percentile(data, qs))


class ThrottledReporter:
    """Reports each kind of problem at most once per period, with the count in between.

    Used for bad input: a driver that sends garbage at 30 Hz gets one clear line every few
    seconds per kind of problem, and nothing is dropped without being counted.
    """

    def __init__(self, emit: Callable[[str], None], period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self._emit = emit
        self._period = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._pending: collections.Counter[str] = collections.Counter()
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def report(self, kind: str, message: str) -> bool:
        """Count one occurrence; emit it when the kind's period has passed. True if emitted."""
        now = self._clock()
        with self._lock:
            self.counts[kind] += 1
            last = self._last.get(kind)
            if last is not None and now - last < self._period:
                self._pending[kind] += 1
                return False
            suppressed = self._pending.pop(kind, 0)
            self._last[kind] = now
        suffix = f' ({suppressed} more since the last report)' if suppressed else ''
        self._emit(f'{message}{suffix}')
        return True

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())
