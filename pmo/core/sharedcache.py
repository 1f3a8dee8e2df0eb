"""A cache of computed results shared by every worker (Redis when configured), with a small in-process tier.

Used for results that are costly to compute and the same for many requests (the national roll-up of
the delay signals): the first request computes, every other request of every worker reuses it.

* Keys name everything the value depends on (for the roll-ups: the scope, the as-of date, the
  thresholds and the data version), so a change of data makes a new key; old entries expire (``ttl``).
* Values are pickled, compressed and signed (HMAC-SHA256 with the portal's secret key): a value whose
  signature does not match is ignored and recomputed, never unpickled.
* Single flight: one thread per process computes a key while the others wait for it; across
  workers, a short Redis lock lets one worker compute while the others poll for its result.
* Without Redis (the embedded default, and tests) the in-process tier alone is used. If Redis fails,
  the cache logs once and carries on in-process: a cache outage never fails a page.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_SIG = hashlib.sha256().digest_size


class SharedCache:
    """Get-or-compute over an in-process LRU and, when ``redis_url`` is given, Redis."""

    def __init__(self, *, secret: bytes, redis_url: str | None = None, prefix: str = "pmo:cache:",
                 local_size: int = 8, ttl: float = 3600, lock_seconds: float = 30, wait_seconds: float = 20,
                 client: Any = None) -> None:
        self.secret = secret
        self.prefix = prefix
        self.local_size = local_size
        self.ttl = ttl
        self.lock_seconds = lock_seconds
        self.wait_seconds = wait_seconds
        self._local: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.redis = client
        if self.redis is None and redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.stats = {"local": 0, "shared": 0, "computed": 0}

    # --- public ------------------------------------------------------------------------------

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        """Return the cached value of ``key``, computing (once across threads and workers) when absent."""
        value = self._local_get(key)
        if value is not None:
            self.stats["local"] += 1
            return value
        with self._lock_for(key):
            value = self._local_get(key)
            if value is not None:
                self.stats["local"] += 1
                return value
            value = self._shared_get(key)
            if value is None:
                value = self._compute_once_across_workers(key, compute)
            else:
                self.stats["shared"] += 1
            self._local_put(key, value)
            return value

    def clear_local(self) -> None:
        """Forget the in-process tier (tests; a worker that wants to re-read Redis)."""
        with self._guard:
            self._local.clear()

    # --- in-process tier -----------------------------------------------------------------------

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            lock = self._key_locks.get(key)
            if lock is None:
                if len(self._key_locks) > 256:
                    self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _local_get(self, key: str) -> Any:
        with self._guard:
            entry = self._local.get(key)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._local[key]
                return None
            self._local.move_to_end(key)
            return entry[1]

    def _local_put(self, key: str, value: Any) -> None:
        with self._guard:
            self._local[key] = (time.monotonic() + self.ttl, value)
            self._local.move_to_end(key)
            while len(self._local) > self.local_size:
                self._local.popitem(last=False)

    # --- shared tier -----------------------------------------------------------------------------

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self.secret, payload, hashlib.sha256).digest()

    def encode(self, value: Any) -> bytes:
        """Return the stored form of ``value``: signature + zlib(pickle)."""
        payload = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)
        return self._sign(payload) + payload

    def decode(self, data: bytes) -> Any:
        """Return the value of a stored form, or None when its signature does not match."""
        signature, payload = data[:_SIG], data[_SIG:]
        if len(signature) != _SIG or not hmac.compare_digest(signature, self._sign(payload)):
            log.warning("shared cache: an entry with a bad signature was ignored")
            return None
        return pickle.loads(zlib.decompress(payload))  # noqa: S301 - signed by this portal

    def _redis_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.redis is None:
            return None
        try:
            return getattr(self.redis, name)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an unreachable cache must not fail the page
            log.warning("shared cache: redis %s failed (%s); computing in-process", name, exc)
            return None

    def _shared_get(self, key: str) -> Any:
        data = self._redis_call("get", self.prefix + key)
        return self.decode(data) if data else None

    def _compute_once_across_workers(self, key: str, compute: Callable[[], T]) -> T:
        lock_key = self.prefix + "lock:" + key
        owner = False
        if self.redis is not None:
            owner = bool(self._redis_call("set", lock_key, b"1", nx=True, ex=max(1, int(self.lock_seconds))))
            if not owner and self._redis_call("exists", lock_key):
                # Another worker computes it: wait for its result rather than computing it again.
                deadline = time.monotonic() + self.wait_seconds
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    value = self._shared_get(key)
                    if value is not None:
                        self.stats["shared"] += 1
                        return value
                    if not self._redis_call("exists", lock_key):
                        break
        try:
            value = compute()
            self.stats["computed"] += 1
            if self.redis is not None:
                self._redis_call("set", self.prefix + key, self.encode(value), ex=max(1, int(self.ttl)))
        finally:
            if owner:
                self._redis_call("delete", lock_key)
        return value
