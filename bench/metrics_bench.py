"""What counting a request in Redis costs, beside counting it in the process (the floor).

Counting in Redis (PMO_REDIS_URL), so that /metrics covers every gunicorn worker, keeps the counts
in the process and sends them from a background thread. This measures ``record`` alone, as
``after_request`` calls it, and a whole request through the Flask app, with and without Redis.

    PYTHONPATH=. python bench/metrics_bench.py [--requests 3000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from pmo.ops.metrics import LocalCounters, RedisCounters


def per_call(fn, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1e6  # microseconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"pmo-bench-{secrets.token_hex(4)}:"
    local, shared = LocalCounters(), RedisCounters(args.redis, prefix, "bench")
    try:
        floor = per_call(lambda i: local.record("home.index", "GET", 200, (i % 100) / 1000), args.requests)
        redis_us = per_call(lambda i: shared.record("home.index", "GET", 200, (i % 100) / 1000), args.requests)
        print(f"record():      in-process {floor:8.1f} µs   Redis {redis_us:8.1f} µs   (+{redis_us - floor:.1f} µs)")

        from pmo import create_app

        with tempfile.TemporaryDirectory() as tmp:
            def app(**extra):
                return create_app({"DATABASE_URL": f"sqlite:///{Path(tmp) / 'b.sqlite3'}", "INSTANCE_PATH": tmp,
                                   "SECRET_KEY": "b" * 64, **extra})

            plain = app().test_client()
            with_redis = app(REDIS_URL=args.redis, REDIS_PREFIX=prefix, METRICS_INSTANCE="bench-app").test_client()
            n = max(200, args.requests // 5)
            base = per_call(lambda _: plain.get("/healthz-missing"), n)  # a 404: no database work
            red = per_call(lambda _: with_redis.get("/healthz-missing"), n)
            print(f"GET (404):     in-process {base:8.1f} µs   Redis {red:8.1f} µs   ratio {red / base:.3f}")
            with_redis.application.extensions["pmo_metrics"].flush()  # before the keys are deleted
    finally:
        shared.flush()
        for key in shared.client.scan_iter(f"{prefix}*"):
            shared.client.delete(key)


if __name__ == "__main__":
    main()
