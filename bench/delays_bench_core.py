"""Time pmo.delays.rules.compute_signals on a synthetic national frame (1,788 bodies × 29 sub-tasks).

Run: PYTHONPATH=. python bench/delays_bench_core.py [repeats]
Prints the best and median wall time of compute_signals (and of the helpers) over the repeats.
The SQL-scan floor (loading the same frame from the database) is to be added next to it.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time

import numpy as np
import pandas as pd

from pmo.delays.rules import body_status, completion_rates, compute_signals

N_BODIES = 1_788
AS_OF = dt.date(2015, 12, 1)

# (subtask, milestone) as seeded from DOMAIN.md §4.
CATALOG: list[tuple[str, str]] = [
    ("A-6", "2016-01-01"),
    ("B-2", "2015-10-05"), ("B-3", "2015-11-30"), ("B-4", "2016-01-01"), ("B-5", "2016-01-01"),
    ("C-3", "2016-01-01"), ("C-4", "2016-01-01"), ("C-5", "2016-01-01"),
    ("D-3", "2016-11-01"), ("D-4", "2016-11-01"), ("D-5", "2016-11-01"),
    ("E-4", "2016-01-01"), ("E-5", "2016-01-01"), ("E-6", "2016-01-01"), ("E-7", "2016-01-01"),
    ("F-2", "2016-11-01"), ("F-3", "2016-11-01"), ("F-4", "2016-11-01"), ("F-5", "2016-11-01"),
    ("G-2", "2016-01-01"), ("G-3", "2016-01-01"), ("G-4", "2016-01-01"), ("G-5", "2016-01-01"),
    ("H-4", "2016-01-01"), ("H-5", "2016-01-01"),
    ("I-3", "2016-01-01"),
    ("J-2", "2016-01-01"),
    ("K-1", "2016-09-01"), ("K-2", "2017-04-30"),
]  # fmt: skip


def synthetic_plans(n_bodies: int = N_BODIES, seed: int = 0) -> pd.DataFrame:
    """Build a random but plausible plans frame, one row per (body, sub-task)."""
    rng = np.random.default_rng(seed)
    n_sub = len(CATALOG)
    n = n_bodies * n_sub
    subtasks = np.array([s for s, _ in CATALOG] * n_bodies, dtype=object)
    milestone = np.array([np.datetime64(m, "D") for _, m in CATALOG] * n_bodies)
    codes = np.array([f"{i:06d}" for i in range(10_000, 10_000 + n_bodies)], dtype=object)
    body_code = np.repeat(codes, n_sub)
    item = np.array([s.split("-")[0] for s in subtasks], dtype=object)
    seq = np.array([int(s.split("-")[1]) for s in subtasks])

    planned_end = milestone - rng.integers(-40, 120, n).astype("timedelta64[D]")
    planned_start = planned_end - rng.integers(20, 240, n).astype("timedelta64[D]")
    actual_start = planned_start + rng.integers(-10, 60, n).astype("timedelta64[D]")
    actual_end = planned_end + rng.integers(-20, 80, n).astype("timedelta64[D]")
    nat = np.datetime64("NaT", "D")
    planned_end = np.where(rng.random(n) < 0.05, nat, planned_end)
    actual_start = np.where(rng.random(n) < 0.3, nat, actual_start)
    actual_end = np.where(rng.random(n) < 0.5, nat, actual_end)
    precision = np.where(rng.random(n) < 0.4, "month", "day").astype(object)

    return pd.DataFrame(
        {
            "body_code": body_code,
            "subtask": subtasks,
            "item": item,
            "seq": seq,
            "milestone": milestone.astype("datetime64[s]"),
            "planned_start": planned_start.astype("datetime64[s]"),
            "planned_end": planned_end.astype("datetime64[s]"),
            "actual_start": actual_start.astype("datetime64[s]"),
            "actual_end": actual_end.astype("datetime64[s]"),
            "planned_start_precision": precision,
            "planned_end_precision": precision,
            "not_applicable": rng.random(n) < 0.05,
        }
    )


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs) * 1000, statistics.median(runs) * 1000


def main(repeats: int = 20) -> None:
    plans = synthetic_plans()
    signals = compute_signals(plans, AS_OF)
    print(f"rows={len(plans):,} signals={len(signals):,} as_of={AS_OF}")
    print(signals["signal"].value_counts().to_string())
    for name, fn in [
        ("compute_signals", lambda: compute_signals(plans, AS_OF)),
        ("body_status", lambda: body_status(signals, plans["body_code"].unique())),
        ("completion_rates", lambda: completion_rates(plans, AS_OF)),
    ]:
        best, median = _time(fn, repeats)
        print(f"{name:<17} best {best:7.1f} ms   median {median:7.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
