"""Bulk plan data for delay and report tests: realistic plans for many bodies, and plan revisions.

Inserts with Core ``insert`` (one statement per table), so a national set of ~50,000 rows takes
seconds. Nothing here is demo data: it lives in the tests only.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pmo.catalog.service import subtasks_on
from pmo.core import clock
from pmo.orgs.models import Body, BodyKind
from pmo.plans.models import DatePrecision, Plan, PlanRevision

D = dt.date
REVISION_KEYS = (
    "planned_start", "planned_start_precision", "planned_end", "planned_end_precision",
    "actual_start", "actual_start_precision", "actual_end", "actual_end_precision",
    "progress", "not_applicable_reason", "comment", "vendor",
)


def _applies(view: Any, kind: BodyKind) -> bool:
    return view.applies_to(kind)


def body_ids(session: Session, codes: list[str]) -> dict[str, tuple[int, BodyKind]]:
    rows = session.execute(sa.select(Body.code, Body.id, Body.kind).where(Body.code.in_(codes))).all()
    return {code: (body_id, kind) for code, body_id, kind in rows}


def subtask_ids(session: Session) -> dict[str, int]:
    return {v.code: v.id for v in subtasks_on(session, D(2015, 1, 1))}


def on_time_plan(view: Any) -> dict[str, Any]:
    """A plan ending 30 days before the milestone, started 120 days before that, not yet done."""
    end = view.milestone_date - dt.timedelta(days=30)
    return {"planned_start": end - dt.timedelta(days=120), "planned_end": end}


def add_plan(session: Session, body_code: str, subtask: str, **values: Any) -> int:
    """Insert one plan row and return its id (dates as ``date``, precisions as 'day'/'month')."""
    body_id = session.scalar(sa.select(Body.id).where(Body.code == body_code))
    ids = subtask_ids(session)
    row = _row(body_id, ids[subtask], values)
    result = session.execute(sa.insert(Plan).values(**row))
    session.flush()
    return int(result.inserted_primary_key[0])


def _row(body_id: int, subtask_id: int, values: dict[str, Any]) -> dict[str, Any]:
    row = {"body_id": body_id, "subtask_id": subtask_id, "version": 1}
    for key, value in values.items():
        if key.endswith("_precision"):
            value = DatePrecision(value)
        row[key] = value
    return row


def fill_bodies(session: Session, body_codes: list[str], plan: Any = on_time_plan) -> int:
    """Give every applicable sub-task of each body a plan made by ``plan(view) -> dict``; return the count."""
    views = subtasks_on(session, D(2015, 1, 1))
    found = body_ids(session, body_codes)
    rows = []
    for code in body_codes:
        body_id, kind = found[code]
        for view in views:
            if view.applies_to(kind):
                values = plan(view)
                if values is not None:
                    rows.append(_row(body_id, view.id, values))
    if rows:
        session.execute(sa.insert(Plan), rows)
        session.flush()
    return len(rows)


def add_revision(session: Session, plan_id: int, recorded: dt.datetime, **after: Any) -> None:
    """Record a full-state revision of a plan at ``recorded`` (values as in the plans' history)."""
    plan = session.get(Plan, plan_id)
    assert plan is not None
    state = {key: None for key in REVISION_KEYS}
    for key in REVISION_KEYS:
        if key.endswith("_precision"):
            state[key] = "day"
    for key, value in after.items():
        state[key] = value.isoformat() if isinstance(value, dt.date) else value
    # Stored in UTC, as clock.now() writes it (SQLite keeps the wall time it is given).
    session.add(PlanRevision(plan_id=plan_id, body_id=plan.body_id, subtask_id=plan.subtask_id,
                             recorded_dt=recorded.astimezone(dt.timezone.utc), channel="ui", after=state))
    session.flush()


def jst(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=clock.JST)


@dataclass
class NationalSet:
    bodies: int
    plans: int


def national_plans(session: Session, seed: int = 7, limit: int | None = None,
                   vendors: tuple[str, ...] = ("北斗システム", "みらい情報", "青葉ソリューションズ")) -> NationalSet:
    """Insert a plausible plan for every applicable sub-task of every body (as of late 2015).

    Most bodies plan before each milestone and have done the early sub-tasks; some slip, some plan
    past the milestone, a few leave sub-tasks unplanned, and D-3 is 対象外 for most.
    """
    rng = random.Random(seed)
    views = subtasks_on(session, D(2015, 1, 1))
    stmt = sa.select(Body.id, Body.kind).order_by(Body.code)
    bodies = session.execute(stmt.limit(limit) if limit else stmt).all()
    rows = []
    for body_id, kind in bodies:
        vendor = rng.choice(vendors)
        slow = rng.random() < 0.15
        for view in views:
            if not view.applies_to(kind):
                continue
            roll = rng.random()
            if view.code == "D-3" and roll < 0.8:
                rows.append(_row(body_id, view.id, {"not_applicable_reason": "中間サーバー・プラットフォームを利用するため"}))
                continue
            if roll < 0.02:
                rows.append(_row(body_id, view.id, {}))
                continue
            end = view.milestone_date - dt.timedelta(days=rng.randint(-45 if slow else 15, 120))
            start = end - dt.timedelta(days=rng.randint(60, 240))
            values: dict[str, Any] = {"planned_start": start, "planned_end": end, "vendor": vendor}
            if rng.random() < 0.3:
                values["planned_end"] = end.replace(day=1)
                values["planned_end_precision"] = "month"
            lag = rng.randint(0, 60) if slow else (rng.randint(0, 20) if rng.random() < 0.2 else 0)
            actual_start = start + dt.timedelta(days=lag)
            if actual_start <= D(2015, 12, 15):
                values["actual_start"] = actual_start
                actual_end = end + dt.timedelta(days=lag + rng.randint(-10, 3))
                if actual_end <= D(2015, 12, 15):
                    values["actual_end"] = actual_end
            rows.append(_row(body_id, view.id, values))
    for start in range(0, len(rows), 5000):
        session.execute(sa.insert(Plan), rows[start:start + 5000])
    session.flush()
    return NationalSet(bodies=len(bodies), plans=len(rows))


def close_month(session: Session, month: dt.date, shift_days: int = 0) -> int:
    """Freeze every plan into a monthly snapshot for ``month`` (actuals after the month end dropped).

    ``shift_days`` moves every actual date later, to make an earlier month look worse than now.
    Returns the snapshot id.
    """
    from pmo.delays.rules import derive_status, PlanFacts
    from pmo.plans.models import MonthlySnapshot, SnapshotRow

    next_month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    as_of = next_month - dt.timedelta(days=1)
    snapshot = MonthlySnapshot(month=month.replace(day=1), as_of=as_of, closed_dt=clock.now(), row_count=0)
    session.add(snapshot)
    session.flush()
    columns = [Plan.body_id, Plan.subtask_id, Plan.planned_start, Plan.planned_start_precision, Plan.planned_end,
               Plan.planned_end_precision, Plan.actual_start, Plan.actual_start_precision, Plan.actual_end,
               Plan.actual_end_precision, Plan.progress, Plan.not_applicable_reason]
    rows = []
    shift = dt.timedelta(days=shift_days)
    for (body_id, subtask_id, ps, psp, pe, pep, as_, asp, ae, aep, progress, reason) in session.execute(sa.select(*columns)):
        as_ = as_ + shift if as_ else None
        ae = ae + shift if ae else None
        as_ = as_ if as_ and as_ <= as_of else None
        ae = ae if ae and ae <= as_of else None
        status = derive_status(PlanFacts(ps, pe, as_, ae, not_applicable=bool(reason)), as_of)
        rows.append({
            "snapshot_id": snapshot.id, "body_id": body_id, "subtask_id": subtask_id,
            "planned_start": ps, "planned_start_precision": psp, "planned_end": pe, "planned_end_precision": pep,
            "actual_start": as_, "actual_start_precision": asp, "actual_end": ae, "actual_end_precision": aep,
            "progress": progress, "not_applicable": bool(reason), "status": status.value,
        })
    for start in range(0, len(rows), 5000):
        session.execute(sa.insert(SnapshotRow), rows[start:start + 5000])
    snapshot.row_count = len(rows)
    session.flush()
    return snapshot.id
