"""Sign-in rate limiting: too many failures for one username or one client locks it out.

Failures are counted in a sliding window per key (``user:<name>`` and
``ip:<address>``); reaching the limit locks the key for ``lockout_s``. A
success clears the username's count. The clock is injected.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from ehrchain.web.errors import RateLimited


class LoginLimiter:
    def __init__(
        self,
        max_failures: int,
        window_s: int,
        lockout_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window_s
        self._lockout = lockout_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        """Raise RateLimited if any key is locked out now."""
        now = self._clock()
        with self._lock:
            for key in keys:
                until = self._locked.get(key)
                if until is not None and now < until:
                    raise RateLimited(int(until - now) + 1)
                if until is not None:
                    del self._locked[key]

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while times and now - times[0] > self._window:
                    times.popleft()
                if len(times) >= self._max:
                    self._locked[key] = now + self._lockout
                    times.clear()
            if len(self._failures) > 10_000:
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
