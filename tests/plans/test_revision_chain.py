"""Every writer of plan history keeps the revision chain (``superseded_dt``), and replay by the chain
picks exactly the revision the old ``DISTINCT ON`` / window query picked (newest by recorded_dt, then id).

The chain: per plan, exactly one revision is open (superseded_dt NULL) and each other revision is
superseded when the next one in (recorded_dt, id) order was recorded, so the intervals
[recorded_dt, superseded_dt) follow each other without overlap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random

import openpyxl
import sqlalchemy as sa
from sqlalchemy import BigInteger, func, select
from sqlalchemy import cast as sa_cast

from pmo.accounts.models import Role
from pmo.catalog.service import subtasks_on
from pmo.core import clock
from pmo.delays import service as delays
from pmo.orgs.models import Body
from pmo.plans import demo, imports, service
from pmo.plans.bulk import _FEW_PLANS, bulk_insert
from pmo.plans.models import Plan, PlanRevision, link_revisions
from tests.conftest import CITY_A, CITY_B
from tests.delays.factories import add_plan, add_revision, jst, national_plans
from tests.plans.conftest import row
from tests.plans.test_imports import run_import

D = dt.date
NATIONAL = delays.Reach(national=True)


def assert_chain(session) -> int:  # type: ignore[no-untyped-def]
    """Assert the chain over all revisions in the database; return how many plans have history."""
    session.flush()
    rows = session.execute(select(PlanRevision.plan_id, PlanRevision.id, PlanRevision.recorded_dt,
                                  PlanRevision.superseded_dt)).all()
    chains: dict[int, list[tuple[dt.datetime, int, dt.datetime | None]]] = {}
    for plan_id, rev_id, recorded, superseded in rows:
        chains.setdefault(plan_id, []).append((recorded, rev_id, superseded))
    for plan_id, chain in chains.items():
        chain.sort(key=lambda r: (r[0], r[1]))
        assert [r[2] for r in chain].count(None) == 1, (plan_id, chain)
        assert chain[-1][2] is None, (plan_id, chain)
        for (_, rev_id, superseded), (recorded_next, _, _) in itertools.pairwise(chain):
            assert superseded == recorded_next, (plan_id, rev_id, chain)
    return len(chains)


def old_replay(session, reach: delays.Reach, as_of: dt.date) -> list[tuple]:  # type: ignore[no-untyped-def]
    """The replay before the chain: the newest revision per plan by (recorded_dt, id) before the cutoff."""
    r = PlanRevision
    ranked = delays._scoped(select(r.id, func.row_number().over(
        partition_by=r.plan_id, order_by=(r.recorded_dt.desc(), r.id.desc())).label("rn"))
        .where(r.recorded_dt < delays.revision_cutoff(as_of)), reach, r.body_id).subquery()
    c = r.__table__.c
    stmt = select(
        c.plan_id, sa_cast(c.body_id, BigInteger) * delays._KEY_FACTOR + c.subtask_id,
        *delays._packed(session, {n: c[n] for n in delays.DATE_COLUMNS}, {n: c[n] for n in delays.PRECISION_COLUMNS},
                        delays._not_blank(c.not_applicable_reason), c.progress),
        c.vendor, c.not_applicable_reason,
    ).join(ranked, ranked.c.id == r.id).where(ranked.c.rn == 1)
    old = delays._state_columns(session, stmt)
    current = delays._current_states(session, reach, without_history=True)
    return _rows({n: [*old[n].tolist(), *current[n].tolist()] for n in delays.STATE_FIELDS})


def _rows(columns) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted(zip(*[list(columns[n]) for n in delays.STATE_FIELDS]), key=repr)


def new_replay(session, reach: delays.Reach, as_of: dt.date) -> list[tuple]:  # type: ignore[no-untyped-def]
    return _rows({n: v.tolist() for n, v in delays._replayed_states(session, reach, as_of).items()})


def test_ties_backdating_and_the_cutoff_instant_replay_as_before(db_session):
    """ORM writes in any order, with equal recorded_dt (ties go to the larger id) and a revision at
    the cutoff instant itself (midnight JST counts for the next day)."""
    a6 = add_plan(db_session, CITY_A, "A-6", planned_start=D(2015, 4, 1))
    c4 = add_plan(db_session, CITY_A, "C-4", planned_start=D(2015, 4, 1))
    b2 = add_plan(db_session, CITY_B, "B-2", planned_start=D(2015, 4, 1))
    add_plan(db_session, CITY_B, "C-3", planned_start=D(2015, 5, 1))  # no history: as it stands
    noon, midnight = jst(D(2015, 6, 1)), dt.datetime(2015, 6, 2, tzinfo=clock.JST)
    add_revision(db_session, a6, noon, planned_end=D(2015, 7, 1))
    add_revision(db_session, a6, noon, planned_end=D(2015, 7, 2))  # tie: this one wins
    add_revision(db_session, a6, midnight, planned_end=D(2015, 7, 3))  # counts from 2015-06-02
    add_revision(db_session, c4, jst(D(2015, 9, 1)), planned_end=D(2015, 12, 1))
    add_revision(db_session, c4, jst(D(2015, 3, 1)), planned_end=D(2015, 10, 1))  # backdated, inserted later
    add_revision(db_session, c4, jst(D(2015, 3, 1)), planned_end=D(2015, 10, 2))  # backdated tie
    add_revision(db_session, c4, jst(D(2015, 9, 1)), planned_end=D(2015, 12, 2))  # tie with the newest
    for day in (1, 2, 3):
        add_revision(db_session, b2, midnight, planned_end=D(2015, 8, day))  # three at the cutoff instant
    assert assert_chain(db_session) == 3
    a6_rev = db_session.scalars(select(PlanRevision).where(PlanRevision.plan_id == a6)
                                .order_by(PlanRevision.id)).all()
    assert a6_rev[0].superseded_dt == a6_rev[0].recorded_dt  # tied: superseded at once, never in force
    assert a6_rev[2].superseded_dt is None
    for day in (D(2015, 2, 28), D(2015, 3, 1), D(2015, 5, 31), D(2015, 6, 1), D(2015, 6, 2), D(2015, 8, 31),
                D(2015, 9, 1), D(2016, 1, 1)):
        assert new_replay(db_session, NATIONAL, day) == old_replay(db_session, NATIONAL, day), day
    june1 = delays.load_plans(db_session, delays.Reach(body_id=a6_rev[0].body_id), D(2015, 6, 1), replay=True)
    assert june1.set_index("subtask").loc["A-6", "planned_end"] == dt.datetime(2015, 7, 2)
    june2 = delays.load_plans(db_session, NATIONAL, D(2015, 6, 2), replay=True).set_index(["body_code", "subtask"])
    assert june2.loc[(CITY_A, "A-6"), "planned_end"] == dt.datetime(2015, 7, 3)
    assert june2.loc[(CITY_B, "B-2"), "planned_end"] == dt.datetime(2015, 8, 3)


def test_demo_histories_through_bulk_insert_keep_the_chain_and_replay_as_before(db_session, actor):
    """The demo generator's backdated histories (several revisions a plan, written in one bulk
    insert), then sheet saves on top: same picks as the old query on every date tried, in every scope."""
    rnd = random.Random(11)
    views = subtasks_on(db_session, D(2015, 12, 15))
    bodies = [b for b in db_session.scalars(select(Body).order_by(Body.code)) if b.code != CITY_A][:60]
    histories = {}
    for body in bodies:
        profile = demo._profile(rnd)
        for st in views:
            if not st.applies_to(body.kind):
                continue
            states = demo._timeline(st, body, profile, None, rnd.random() < 0.2, rnd.randrange(-12, 13), rnd,
                                    D(2015, 12, 15), [])
            if states:
                at = [demo._at(day, rnd) for day, _ in states]
                if rnd.random() < 0.2:  # same instant twice in a row: ties inside one batch
                    at = [at[0]] * len(at)
                histories[(body.id, st.id)] = list(zip(at, (values for _, values in states)))
    _write_histories(db_session, histories)
    depth = sum(len(h) for h in histories.values()) / len(histories)
    assert depth > 1.5  # real histories, not one revision a plan
    assert assert_chain(db_session) == len(histories)
    body = bodies[0]
    _, staff = actor(Role.BODY_STAFF, body.code)
    sheet = {r.subtask.code: r for r in service.load_sheet(db_session, staff, body.code).rows}
    service.save_sheet(db_session, staff, body.code, [row("A-6", sheet["A-6"].version, planned_start="2015-04",
                                                          planned_end="2015-12-25")])
    assert assert_chain(db_session) == len(histories)
    pref = body.prefecture_code
    reaches = [NATIONAL, delays.Reach(prefecture_code=pref), delays.Reach(body_id=body.id)]
    for day in (D(2014, 6, 1), D(2015, 1, 31), D(2015, 3, 31), D(2015, 7, 15), D(2015, 10, 1), D(2015, 12, 14),
                D(2015, 12, 15)):
        for reach in reaches:
            assert new_replay(db_session, reach, day) == old_replay(db_session, reach, day), (day, reach)


def _write_histories(db_session, histories) -> None:  # type: ignore[no-untyped-def]
    """What ``demo._write`` does for plans and revisions (without its completion values and monthly closes)."""
    plan_rows = []
    for (body_id, subtask_id), states in histories.items():
        record = service.column_values(states[-1][1])
        record.update(body_id=body_id, subtask_id=subtask_id, version=len(states), updated_dt=states[-1][0])
        plan_rows.append(record)
    bulk_insert(db_session, Plan.__table__, plan_rows)
    ids = {(b, s): pid for pid, b, s in db_session.execute(select(Plan.id, Plan.body_id, Plan.subtask_id))}
    revisions = []
    for key, states in histories.items():
        before = None
        for at, values in states:
            revisions.append({"plan_id": ids[key], "body_id": key[0], "subtask_id": key[1], "recorded_dt": at,
                              "user_id": None, "channel": "demo", "batch_id": None, "before": before,
                              "after": values.to_json()})
            before = values.to_json()
    random.Random(3).shuffle(revisions)  # bulk rows need not come in order
    bulk_insert(db_session, PlanRevision.__table__, revisions)


def test_the_sheet_the_api_and_an_import_append_to_the_chain(db_session, actor, client, make_user, tmp_path):
    """ui, api and import revisions of the same plans, in turn: each append closes the one before."""
    import io

    from tests.plans.test_api import bearer

    _, staff = actor(Role.BODY_STAFF, CITY_A)
    service.save_sheet(db_session, staff, CITY_A, [row("A-6", None, planned_start="2015-04", planned_end="2015-12-25"),
                                                   row("C-4", None, planned_start="2015-05-01")])
    assert assert_chain(db_session) == 2
    sheet = {r.subtask.code: r for r in service.load_sheet(db_session, staff, CITY_A).rows}
    service.save_sheet(db_session, staff, CITY_A, [row("A-6", sheet["A-6"].version, planned_start="2015-04",
                                                       planned_end="2015-12-28")])
    db_session.commit()
    headers = bearer(db_session, make_user(Role.BODY_STAFF, CITY_A))
    put = client.put(f"/api/v1/bodies/{CITY_A}/plans", headers=headers, json={"plans": [
        {"subtask": "A-6", "version": 2, "planned_start": "2015-04-01", "planned_end": "2015-12-31"}]})
    assert put.status_code == 200, put.get_json()
    db_session.expire_all()
    data = imports.export_file(db_session, staff, CITY_A, "xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[imports.SHEET_NAME]
    for cells in ws.iter_rows(min_row=2):
        if cells[2].value in ("A-6", "C-4"):  # actual start and end, through the import
            cells[5].value, cells[6].value = dt.datetime(2015, 5, 1), dt.datetime(2015, 12, 10)
    out = io.BytesIO()
    wb.save(out)
    job = run_import(db_session, staff, out.getvalue(), "mine.xlsx", tmp_path)
    assert job.applied["updated"] == 2
    assert assert_chain(db_session) == 2
    channels = db_session.execute(select(PlanRevision.channel, PlanRevision.superseded_dt.is_(None))
                                  .order_by(PlanRevision.id)).all()
    assert [c for c, _ in channels] == ["ui", "ui", "ui", "api", "import", "import"]
    assert [open_ for c, open_ in channels if c != "import"] == [False, False, False, False]


def test_many_plans_in_one_bulk_write_are_linked_too(db_session):
    """More plans than the few relinked by id (a national import): linked by the open-revision scan,
    including a batch whose rows come before, between and after the existing ones."""
    made = national_plans(db_session, limit=120)
    assert made.plans > _FEW_PLANS
    plans = db_session.execute(select(Plan.id, Plan.body_id, Plan.subtask_id)).all()

    def revisions(at: dt.datetime, marker: str) -> list[dict]:
        return [{"plan_id": p, "body_id": b, "subtask_id": s, "recorded_dt": at, "channel": "import",
                 "batch_id": marker, "after": {"comment": marker, "progress": len(marker)}} for p, b, s in plans]

    first = jst(D(2015, 6, 1))  # new plans, two rows each at the same instant: linked in the batch alone
    bulk_insert(db_session, PlanRevision.__table__, [*revisions(first, "first"), *revisions(first, "firstb")])
    assert assert_chain(db_session) == len(plans)
    assert new_replay(db_session, NATIONAL, D(2015, 6, 1)) == old_replay(db_session, NATIONAL, D(2015, 6, 1))
    bulk_insert(db_session, PlanRevision.__table__, revisions(jst(D(2015, 9, 1)), "later"))
    bulk_insert(db_session, PlanRevision.__table__, [*revisions(jst(D(2015, 3, 1)), "backdated"),
                                                     *revisions(jst(D(2015, 9, 1)), "tied")])
    assert assert_chain(db_session) == len(plans)
    for day in (D(2015, 2, 1), D(2015, 3, 1), D(2015, 6, 1), D(2015, 8, 31), D(2015, 9, 1)):
        assert new_replay(db_session, NATIONAL, day) == old_replay(db_session, NATIONAL, day), day
    progress = delays._replayed_states(db_session, NATIONAL, D(2015, 9, 1))["rest"] >> (delays.DAY_BITS + delays._FLAG_BITS)
    assert set((progress - 1).tolist()) == {len("tied")}


def test_link_revisions_repairs_a_plan_written_without_it(db_session):
    """A revision inserted by a plain Core insert is left open; relinking its plan closes the older one."""
    plan_id = add_plan(db_session, CITY_A, "A-6", planned_start=D(2015, 4, 1))
    add_revision(db_session, plan_id, jst(D(2015, 6, 1)), planned_end=D(2015, 7, 1))
    db_session.execute(sa.insert(PlanRevision).values(
        plan_id=plan_id, body_id=db_session.get(Plan, plan_id).body_id, subtask_id=db_session.get(Plan, plan_id).subtask_id,
        recorded_dt=jst(D(2015, 8, 1)), channel="ui", after={}))
    opened = select(func.count()).select_from(PlanRevision).where(PlanRevision.superseded_dt.is_(None))
    assert db_session.scalar(opened) == 2
    link_revisions(db_session.connection())
    assert db_session.scalar(opened) == 1
    assert_chain(db_session)
