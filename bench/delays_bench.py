"""Time the national delay computation end to end (load from the database + judge) beside the floor.

Builds a database with every real body (1,788 prefectures and municipalities, plus the 47 unions) and
a plan for each applicable sub-task (≈ 52,500 rows, ≥ 1,788 × 29), then times:

* floor    — ONE plain SQL scan of the same rows: ``SELECT <plan columns> FROM plans`` fetched to Python
             through the DB-API cursor;
* load     — ``pmo.delays.service.load_plans`` (bodies × catalog terms in force, joined with the plans);
* signals  — load + ``rules.compute_signals``;
* national — ``service.delay_state`` for a ministry officer: load + signals + statuses + completion
             rates + forecasts + per-body roll-up (what the national dashboard uses);
* replay   — the same for a past date when every plan has one revision (the history is replayed).

Run:  PYTHONPATH=. /work/venv/bin/python bench/delays_bench.py [repeats]
      PMO_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/pmo_delays_bench … (also PostgreSQL;
      the database is emptied first)
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.permissions import Actor
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.db import create_db_engine, make_session_factory
from pmo.delays import rules, service
from pmo.paths import data_dir
from pmo.plans.bulk import bulk_insert
from pmo.plans.models import Plan, PlanRevision
from pmo.seeding import run_seed

AS_OF = dt.date(2015, 12, 1)
OFFICER = Actor(user_id=0, login_id="bench", role=Role.MINISTRY_OFFICER, ministry_id=0)
SCAN = (
    "SELECT id, body_id, subtask_id, planned_start, planned_start_precision, planned_end, planned_end_precision, "
    "actual_start, actual_start_precision, actual_end, actual_end_precision, not_applicable_reason, vendor, "
    "progress FROM plans"
)


def build(url: str) -> sa.Engine:
    """Create the schema, seed bodies and catalog, insert the national plans; return the engine."""
    from tests.conftest import reset_database
    from tests.delays.factories import national_plans

    reset_database(url)
    upgrade_database(url)
    engine = create_db_engine(url)
    with make_session_factory(engine)() as session:
        run_seed(session, data_dir("seed"))
        made = national_plans(session)
        session.commit()
    print(f"  bodies={made.bodies:,} plans={made.plans:,}")
    return engine


def add_history(engine: sa.Engine) -> None:
    """Give every plan one revision (as a national import would), dated 2015-06-01."""
    with make_session_factory(engine)() as session:
        cols = [*service.DATE_COLUMNS, *service.PRECISION_COLUMNS, "not_applicable_reason", "vendor", "progress"]
        rows = session.execute(sa.select(Plan.id, Plan.body_id, Plan.subtask_id,
                                         *[getattr(Plan, c) for c in cols])).all()
        recorded = dt.datetime(2015, 6, 1, tzinfo=dt.timezone.utc)
        batch = []
        for row in rows:
            after = {}
            for name, value in zip(cols, row[3:]):
                after[name] = value.isoformat() if isinstance(value, dt.date) else getattr(value, "value", value)
            batch.append({"plan_id": row[0], "body_id": row[1], "subtask_id": row[2],
                          "recorded_dt": recorded, "channel": "import", "after": after})
        for start in range(0, len(batch), 5000):
            bulk_insert(session, PlanRevision.__table__, batch[start:start + 5000])  # keeps the revision chain
        session.commit()


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return min(runs) * 1000, statistics.median(runs) * 1000


def run(url: str, repeats: int) -> None:
    label = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"{label}: building …")
    engine = build(url)
    clock.freeze(dt.datetime(2016, 3, 1, tzinfo=dt.timezone.utc))  # AS_OF is in the past: replay path
    factory = make_session_factory(engine)
    national = service.Reach(national=True)

    def floor() -> None:
        with engine.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(SCAN)
            cursor.fetchall()
            cursor.close()

    def load(replay: bool) -> None:
        with factory() as session:
            service.load_plans(session, national, AS_OF, replay=replay)

    def signals(replay: bool) -> None:
        with factory() as session:
            plans = service.load_plans(session, national, AS_OF, replay=replay)
            rules.compute_signals(plans, AS_OF, rules.DEFAULT_THRESHOLDS)

    def whole(_: bool) -> None:
        with factory() as session:
            service.delay_state(session, OFFICER, AS_OF)

    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM plans")).scalar_one()
    results = {"floor (1 SQL scan)": timed(floor, repeats)}
    for name, fn in (("load", load), ("load + signals", signals)):
        results[f"{name} (current rows)"] = timed(lambda: fn(False), repeats)
    add_history(engine)
    for name, fn in (("load", load), ("load + signals", signals), ("national state", whole)):
        results[f"{name} (replayed history)"] = timed(lambda: fn(True), repeats)
    floor_best = results["floor (1 SQL scan)"][0]
    print(f"{label}: {n:,} plan rows, as_of {AS_OF}, best/median of {repeats}")
    for name, (best, median) in results.items():
        print(f"  {name:<34} best {best:8.1f} ms  median {median:8.1f} ms  = {best / floor_best:4.1f}× floor")
    clock.freeze(None)
    engine.dispose()


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", repeats)
    if os.environ.get("PMO_BENCH_DATABASE_URL"):
        run(os.environ["PMO_BENCH_DATABASE_URL"], repeats)


if __name__ == "__main__":
    main()
