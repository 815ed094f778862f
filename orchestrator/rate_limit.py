"""Per-client token buckets for the shopper endpoints (search, uploads, masks, try-on).

Each client (an address) has a bucket of `burst` tokens refilled at `per_minute / 60` tokens a second; a request
takes one token or is refused with the seconds until one is back. Buckets live in this process: with N
replicas (or uvicorn workers) behind a Service a client may send up to N times the configured rate.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class ClientRateLimiter:
    def __init__(self, per_minute: int, burst: int, max_clients: int, clock: Callable[[], float] = time.monotonic):
        """per_minute 0 disables the limit; max_clients bounds memory (the least recently seen client is dropped,
        which only ever gives that client a fresh, full bucket)."""
        self.rate_per_s = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, last refill)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def acquire(self, client: str) -> float | None:
        """Takes a token for `client`: None when allowed, else the seconds until the next token."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate_per_s
