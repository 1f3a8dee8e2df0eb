"""Request counters and latency histograms for ``/metrics`` (Prometheus text format).

gunicorn runs several worker processes and a scrape reaches one of them, so counters kept in a
process would show a random fraction of the traffic. With ``PMO_REDIS_URL`` the counters live in
Redis, one hash per machine (``PMO_METRICS_INSTANCE``, default the host name), and every worker of
that machine adds to them (every ``PMO_METRICS_FLUSH_SECONDS``, off the request path) and reads
them all. Without Redis (the embedded default) each process counts for itself. If Redis stops
answering, requests do not notice: the counts wait in the process and the failure is logged at
most once a minute.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
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
    """Counts of every worker of this machine, in three Redis hashes under ``<prefix>metrics:<instance>``.

    A request never waits for Redis: it adds to counts pending in the process, and a background
    thread of each worker sends them in one pipeline every ``flush_seconds`` (and at a scrape, and
    at exit). Counts that cannot be sent stay pending and go with the next flush.
    """

    shared = True

    def __init__(self, url: str, prefix: str, instance: str | None = None, flush_seconds: float = 1.0,
                 client: Any = None) -> None:
        import redis

        self.client = client or redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.key = f"{prefix}metrics:{instance or socket.gethostname()}"
        self.flush_seconds = flush_seconds
        self._lock = Lock()
        self._send_lock = Lock()
        self._pending = Snapshot()
        self._flusher_pid: int | None = None  # gunicorn forks workers: one flusher thread per process
        self._last_warning = 0.0

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("metrics: Redis unreachable while %s; the counts wait in this process", what)

    def record(self, endpoint: str, method: str, status: int, elapsed: float) -> None:
        with self._lock:
            self._pending.add(endpoint, method, status, elapsed)
            if self._flusher_pid != os.getpid():
                self._flusher_pid = os.getpid()
                threading.Thread(target=self._flush_forever, name="pmo-metrics-flush", daemon=True).start()
                atexit.register(self.flush)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_seconds)
            self.flush()

    def flush(self) -> bool:
        """Send the pending counts; on failure keep them for the next try. True when nothing is left."""
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending, Snapshot()
            if not batch.requests:
                return True
            pipe = self.client.pipeline(transaction=False)
            for (endpoint, method, status), count in batch.requests.items():
                pipe.hincrby(f"{self.key}:requests", f"{endpoint}|{method}|{status}", count)
            for endpoint, buckets in batch.buckets.items():
                for index, count in enumerate(buckets):
                    if count:
                        pipe.hincrby(f"{self.key}:buckets", f"{endpoint}|{index}", count)
                pipe.hincrbyfloat(f"{self.key}:sums", endpoint, batch.sums[endpoint])
            try:
                pipe.execute()
            except Exception:  # noqa: BLE001 - any Redis failure: keep the counts, never fail a request
                self._warn("sending counts")
                with self._lock:
                    _merge(self._pending, batch)
                return False
            return True

    def snapshot(self) -> Snapshot:
        self.flush()
        data = Snapshot()
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in ("requests", "buckets", "sums"):
                pipe.hgetall(f"{self.key}:{name}")
            requests, buckets, sums = pipe.execute()
        except Exception:  # noqa: BLE001
            self._warn("reading")
            requests, buckets, sums = {}, {}, {}
        with self._lock:  # what could not be sent yet
            _merge(data, self._pending)
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


def _merge(into: Snapshot, other: Snapshot) -> None:
    for key, count in other.requests.items():
        into.requests[key] += count
    for endpoint, buckets in other.buckets.items():
        target = into.buckets[endpoint]
        for i, count in enumerate(buckets):
            target[i] += count
    for endpoint, total in other.sums.items():
        into.sums[endpoint] += total


def make_counters(config: Any) -> Counters:
    if config.get("REDIS_URL"):
        return RedisCounters(config["REDIS_URL"], config.get("REDIS_PREFIX") or "pmo:", config.get("METRICS_INSTANCE"),
                             float(config.get("METRICS_FLUSH_SECONDS") or 1.0))
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
