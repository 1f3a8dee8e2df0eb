"""Time the subsidy screens' heavy reads on a national load: every body registers every eligible
system for the 2014 project, a budget is set for both categories (so every base is scaled), and
every body has a submitted application.

Run: PYTHONPATH=. .venv/bin/python bench/subsidy_bench.py [repeats]
Prints the best and median wall time of: one body's bases (with the national budget factor), the
grant of one application, and the national finance report.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from pmo.accounts.models import Role
from pmo.accounts.permissions import Actor
from pmo.cli import upgrade_database
from pmo.core import clock
from pmo.db import create_db_engine, make_session_factory
from pmo.orgs.models import Body, BodyKind
from pmo.paths import data_dir
from pmo.seeding import run_seed
from pmo.subsidy import queries, rules, service
from pmo.subsidy.models import Application, ApplicationKind, ApplicationLine, ApplicationState, Budget, Registration


def timed(label: str, fn, repeats: int) -> None:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    print(f"{label:<48} best {min(times) * 1000:8.1f} ms   median {statistics.median(times) * 1000:8.1f} ms")


def main(repeats: int) -> None:
    root = Path(tempfile.mkdtemp())
    url = f"sqlite:///{root / 'bench.sqlite3'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    session = make_session_factory(engine)()
    run_seed(session, data_dir("seed"))
    bodies = session.scalars(select(Body).where(Body.kind != BodyKind.UNION)).all()
    regs = apps = 0
    for body in bodies:
        kind = service.body_kind(body)
        app = Application(body_id=body.id, fiscal_year=2014, kind=ApplicationKind.APPLICATION, round=1,
                          state=ApplicationState.SUBMITTED, created_dt=clock.now())
        for system in rules.ELIGIBLE_SYSTEMS[kind]:
            session.add(Registration(body_id=body.id, fiscal_year=2014, system=system.value))
            app.lines.append(ApplicationLine(system=system.value, cost=5_000_000, other_income=0))
            regs += 1
        session.add(app)
        apps += 1
    session.add_all([Budget(fiscal_year=2014, category=c.value, amount=1_000_000_000) for c in rules.Category])
    session.commit()
    print(f"{len(bodies)} bodies, {regs} registrations, {apps} submitted applications, budget set (scaled)")
    otaru = session.scalar(select(Body).where(Body.code == "012033"))
    app = session.scalar(select(Application).where(Application.body_id == otaru.id))
    finance = Actor(user_id=0, login_id="bench", role=Role.FINANCE_OFFICER, ministry_id=1)
    def cold() -> None:
        service._FACTOR_CACHE.clear()
        service.body_bases(session, None, otaru, 2014)

    timed("body_bases(小樽市), budget factor not cached", cold, max(1, repeats // 5))
    timed("body_bases(小樽市), budget factor cached", lambda: service.body_bases(session, None, otaru, 2014), repeats)
    timed("application_grant(小樽市)", lambda: service.application_grant(session, app), repeats)
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        cProfile.runctx("queries.finance_report(session, finance, 2014)", globals(), locals(), "/tmp/subsidy.prof")
        pstats.Stats("/tmp/subsidy.prof").sort_stats("tottime").print_stats(15)
    timed("finance_report(national, 1,788 bodies)", lambda: queries.finance_report(session, finance, 2014),
          max(1, repeats // 5))
    session.close()
    engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10)
