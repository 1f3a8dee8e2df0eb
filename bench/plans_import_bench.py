"""Time the national plan import (validation + preview + commit) beside openpyxl's own read of the
same workbook (the floor), and compare peak Python memory (tracemalloc) of both.

Run: PYTHONPATH=. .venv/bin/python bench/plans_import_bench.py [--database-url URL] [--repeat 3]
Default database: a fresh SQLite file in a temporary folder (migrated and seeded first).
The workbook is the national download itself (``imports.export_file``: instructions sheet, input
validation, locked header) with one row per applicable (body, sub-task), about 52,500 rows, every
row with dates. Each round times the floor, then the import into empty plans; the machine is
shared, so the best ratio and the spread are printed.
Targets: import time ≤ 1.5 × the floor; import peak memory < 500 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import openpyxl
import sqlalchemy as sa

from pmo.accounts.models import Role
from pmo.accounts.permissions import Actor
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.db import create_db_engine, make_session_factory
from pmo.paths import data_dir
from pmo.plans import imports
from pmo.plans.models import CompletionValue, ImportJob, Plan, PlanRevision
from pmo.seeding import run_seed

OFFICER = Actor(user_id=0, login_id="bench", role=Role.MINISTRY_OFFICER, ministry_id=0)


def prepare(url: str) -> sa.Engine:
    if url.startswith("postgresql"):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade_database(url)
    engine = create_db_engine(url)
    with make_session_factory(engine)() as session:
        run_seed(session, data_dir("seed"))
        session.commit()
    return engine


def national_workbook(engine: sa.Engine) -> bytes:
    rnd = random.Random(2015)
    with make_session_factory(engine)() as session:
        rows = list(imports.export_rows(session, OFFICER, None))
    for r in rows:
        start = dt.date(2015, 4, 1) + dt.timedelta(days=rnd.randrange(200))
        r[3], r[4] = start, start + dt.timedelta(days=rnd.randrange(10, 120))
        if rnd.random() < 0.5:
            r[5] = start + dt.timedelta(days=rnd.randrange(0, 10))
            r[7] = rnd.randrange(0, 101, 10)
        if rnd.random() < 0.1:
            r[4] = f"{r[4]:%Y-%m}"  # month precision, as text
    original = imports.export_rows
    imports.export_rows = lambda *args, **kwargs: iter(rows)  # the real writer, with these values
    try:
        with make_session_factory(engine)() as session:
            return imports.export_file(session, OFFICER, None, "xlsx")
    finally:
        imports.export_rows = original


def floor_read(data: bytes) -> int:
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    count = sum(1 for _ in workbook.worksheets[0].iter_rows(values_only=True))
    workbook.close()
    return count


def full_import(engine: sa.Engine, data: bytes, storage: Path) -> dict[str, int]:
    with make_session_factory(engine)() as session:
        job = imports.start_job(session, OFFICER, data, "national.xlsx", national=True)
        imports.validate_job(session, OFFICER, job, data, storage)
        assert job.status.value == "previewed", job.errors[:5]
        with imports.apply_heartbeat(job, storage):  # as the screen and the CLI apply (REL-05 lease)
            counts = imports.commit_job(session, OFFICER, job, storage)
            session.commit()
    return counts


def reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for model in (CompletionValue, PlanRevision, Plan, ImportJob):
            conn.execute(sa.delete(model))


CPU: dict[str, float] = {}


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """Wall time of ``fn``; its CPU time (this process only) is left in ``CPU['last']``."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    CPU["last"] = time.process_time() - cpu
    return time.perf_counter() - start, result


def peak(fn, *args) -> int:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    fn(*args)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clock.freeze(dt.datetime(2015, 12, 15, 3, tzinfo=dt.UTC))
    tmp = Path(tempfile.mkdtemp(prefix="plans-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    engine = prepare(url)
    t_write, data = timed(national_workbook, engine)
    rows = floor_read(data) - 1
    print(f"database: {engine.dialect.name}; workbook: {rows:,} rows, {len(data) / 1e6:.1f} MB (written in {t_write:.1f}s)")
    ratios, cpu_ratios = [], []
    for round_ in range(1, args.repeat + 1):
        reset(engine)
        t_floor, _ = timed(floor_read, data)
        c_floor = CPU["last"]
        t_import, counts = timed(full_import, engine, data, tmp)
        c_import = CPU["last"]
        ratios.append(t_import / t_floor)
        cpu_ratios.append(c_import / c_floor)
        print(f"round {round_}: openpyxl read-only iteration (floor) {t_floor:6.2f} s (cpu {c_floor:5.2f}); "
              f"full import (validate+preview+commit) {t_import:6.2f} s (cpu {c_import:5.2f}) "
              f"= {t_import / t_floor:.2f}× floor  {counts}")
    print(f"import / floor, wall: best {min(ratios):.2f}×, worst {max(ratios):.2f}× over {len(ratios)} rounds "
          f"(target ≤ 1.5×)")
    print(f"import / floor, CPU of this process (less sensitive to other load; PostgreSQL's own work is not in it): "
          f"best {min(cpu_ratios):.2f}×, worst {max(cpu_ratios):.2f}×")
    t_again, counts2 = timed(full_import, engine, data, tmp)
    print(f"same file again (all unchanged):       {t_again:6.2f} s  {counts2}")
    reset(engine)
    m_floor = peak(floor_read, data)
    m_import = peak(full_import, engine, data, tmp)
    print(f"peak Python memory: floor {m_floor / 1e6:.1f} MB, import {m_import / 1e6:.1f} MB (target < 500 MB)")
    engine.dispose()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
