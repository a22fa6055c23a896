"""ROS-free plumbing of a perception node: newest-frame worker, statistics, throttled reports."""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Generic, TypeVar

import numpy as np

T = TypeVar('T')


class LatestFrameWorker(Generic[T]):
    """Processes only the newest submitted item on a background thread.

    A new item replaces one still waiting (that one is counted as dropped), so a slow
    model never works through a queue of stale frames: latency stays at most about one
    inference plus the wait for the one in flight.
    """

    def __init__(self, process: Callable[[T], None], on_error: Callable[[BaseException], None],
                 name: str = 'depth-worker'):
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._running = True
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        """Hand over the newest item; True when it replaced one not yet processed."""
        with self._cond:
            replaced = self._has_item
            if replaced:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._cond.notify()
        return replaced

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._has_item:
                    self._cond.wait()
                if not self._running:
                    return
                item, self._item, self._has_item = self._item, None, False
            try:
                self._process(item)
            except BaseException as exc:  # the worker must outlive any single bad frame
                self._on_error(exc)
            with self._cond:
                self.processed += 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is waiting (for tests and shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._has_item:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        self._thread.join(timeout)


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
