"""Request counters and latency histograms for ``/metrics`` (Prometheus text format).

gunicorn runs several worker processes and a scrape reaches one of them, so counters kept in a
process would show a random fraction of the traffic. With ``PMO_REDIS_URL`` the counters live in
Redis, one hash per machine (``PMO_METRICS_INSTANCE``, default the host name), and every worker of
that machine adds to them and reads them all. Without Redis (the embedded default) each process
counts for itself. If Redis stops answering, requests still succeed: they are counted in the
process and the failure is logged at most once a minute.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import defaultdict
from threading import Lock
from typing import Any, Protocol

log = logging.getLogger(__name__)

BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Snapshot:
    """Counts by (endpoint, method, status); cumulative latency buckets and sums by endpoint."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def add(self, endpoint: str, method: str, status: int, elapsed: float) -> None:
        self.requests[(endpoint, method, status)] += 1
        buckets = self.buckets[endpoint]
        for i, bound in enumerate(BUCKETS):
            if elapsed <= bound:
                buckets[i] += 1
        buckets[-1] += 1
        self.sums[endpoint] += elapsed


class Counters(Protocol):
    shared: bool

    def record(self, endpoint: str, method: str, status: int, elapsed: float) -> None: ...

    def snapshot(self) -> Snapshot: ...


class LocalCounters:
    """Counts of this process only."""

    shared = False

    def __init__(self) -> None:
        self._lock = Lock()
        self._data = Snapshot()

    def record(self, endpoint: str, method: str, status: int, elapsed: float) -> None:
        with self._lock:
            self._data.add(endpoint, method, status, elapsed)

    def snapshot(self) -> Snapshot:
        with self._lock:
            copy = Snapshot()
            copy.requests.update(self._data.requests)
            for endpoint, buckets in self._data.buckets.items():
                copy.buckets[endpoint] = list(buckets)
            copy.sums.update(self._data.sums)
            return copy


class RedisCounters:
    """Counts of every worker of this machine, in three Redis hashes under ``<prefix>metrics:<instance>``."""

    shared = True

    def __init__(self, url: str, prefix: str, instance: str | None = None, client: Any = None) -> None:
        import redis

        self.client = client or redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.key = f"{prefix}metrics:{instance or socket.gethostname()}"
        self.fallback = LocalCounters()  # while Redis is unreachable
        self._last_warning = 0.0

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("metrics: Redis unreachable while %s; counting in this process meanwhile", what)

    def record(self, endpoint: str, method: str, status: int, elapsed: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(f"{self.key}:requests", f"{endpoint}|{method}|{status}", 1)
        for i, bound in enumerate(BUCKETS):
            if elapsed <= bound:
                pipe.hincrby(f"{self.key}:buckets", f"{endpoint}|{i}", 1)
        pipe.hincrby(f"{self.key}:buckets", f"{endpoint}|{len(BUCKETS)}", 1)
        pipe.hincrbyfloat(f"{self.key}:sums", endpoint, elapsed)
        try:
            pipe.execute()
        except Exception:  # noqa: BLE001 - any Redis failure: the request must not suffer
            self._warn("counting")
            self.fallback.record(endpoint, method, status, elapsed)

    def snapshot(self) -> Snapshot:
        data = self.fallback.snapshot()
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in ("requests", "buckets", "sums"):
                pipe.hgetall(f"{self.key}:{name}")
            requests, buckets, sums = pipe.execute()
        except Exception:  # noqa: BLE001
            self._warn("reading")
            return data
        for raw, count in requests.items():
            endpoint, method, status = raw.decode().rsplit("|", 2)
            data.requests[(endpoint, method, int(status))] += int(count)
        for raw, count in buckets.items():
            endpoint, index = raw.decode().rsplit("|", 1)
            if int(index) <= len(BUCKETS):
                data.buckets[endpoint][int(index)] += int(count)
        for raw, total in sums.items():
            data.sums[raw.decode()] += float(total)
        return data


def make_counters(config: Any) -> Counters:
    if config.get("REDIS_URL"):
        return RedisCounters(config["REDIS_URL"], config.get("REDIS_PREFIX") or "pmo:", config.get("METRICS_INSTANCE"))
    return LocalCounters()


def render(data: Snapshot, shared: bool) -> str:
    """The Prometheus text exposition of ``data``."""
    lines = [
        "# HELP pmo_metrics_shared 1 when the counters cover every worker of this machine (Redis), 0 for one process.",
        "# TYPE pmo_metrics_shared gauge",
        f"pmo_metrics_shared {1 if shared else 0}",
        "# HELP pmo_http_requests_total HTTP requests by endpoint, method and status.",
        "# TYPE pmo_http_requests_total counter",
    ]
    for (endpoint, method, status), count in sorted(data.requests.items()):
        lines.append(f'pmo_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}} {count}')
    lines += [
        "# HELP pmo_http_request_duration_seconds Request latency by endpoint.",
        "# TYPE pmo_http_request_duration_seconds histogram",
    ]
    for endpoint, buckets in sorted(data.buckets.items()):
        for bound, count in zip(BUCKETS, buckets):
            lines.append(f'pmo_http_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {count}')
        lines.append(f'pmo_http_request_duration_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {buckets[-1]}')
        lines.append(f'pmo_http_request_duration_seconds_sum{{endpoint="{endpoint}"}} {data.sums[endpoint]:.6f}')
        lines.append(f'pmo_http_request_duration_seconds_count{{endpoint="{endpoint}"}} {buckets[-1]}')
    return "\n".join(lines) + "\n"
