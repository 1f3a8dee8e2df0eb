"""Demo plans and actuals for every body as of the demo date (2015-12-15), with backdated history.

Deterministic (seeded random). Most bodies are on track; a tail is late in different ways: late
start, overrunning, plans past the milestone, no plan entered, and one vendor (株式会社中央電算)
slipping at every body it serves. Each plan gets the revisions that would have been recorded
(plan entered in spring, actual start, actual end), so any past date replays, and each month-end
from 2015-04 to 2015-11 is closed into a MonthlySnapshot. Bulk inserts keep it to seconds.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pmo.catalog.models import CompletionField
from pmo.catalog.service import subtasks_on
from pmo.core import clock
from pmo.core.dates import PartialDate
from pmo.orgs.models import Body, BodyKind
from pmo.plans import rules
from pmo.plans.bulk import bulk_insert
from pmo.plans.models import CompletionValue, MonthlySnapshot, Plan, PlanRevision, SnapshotRow
from pmo.plans.rules import PlanValues
from pmo.plans.service import column_values
from pmo.seeding import DemoContext

D = dt.date
# The typical schedule bodies planned (start, end), before each body's own jitter.
BASELINE: dict[str, tuple[dt.date, dt.date]] = {
    "A-6": (D(2015, 4, 1), D(2015, 12, 25)),
    "B-2": (D(2014, 10, 1), D(2015, 9, 30)), "B-3": (D(2015, 10, 5), D(2015, 11, 30)),
    "B-4": (D(2015, 11, 2), D(2015, 12, 28)), "B-5": (D(2015, 6, 1), D(2015, 12, 18)),
    "C-3": (D(2015, 1, 5), D(2015, 3, 31)), "C-4": (D(2015, 4, 1), D(2015, 11, 30)), "C-5": (D(2015, 9, 1), D(2015, 12, 22)),
    "D-3": (D(2015, 10, 1), D(2016, 1, 29)), "D-4": (D(2016, 2, 1), D(2016, 7, 29)), "D-5": (D(2016, 4, 1), D(2016, 9, 30)),
    "E-4": (D(2015, 9, 1), D(2015, 12, 11)), "E-5": (D(2015, 10, 1), D(2015, 12, 18)),
    "E-6": (D(2015, 11, 2), D(2015, 12, 22)), "E-7": (D(2015, 11, 2), D(2015, 12, 25)),
    "F-2": (D(2015, 10, 1), D(2016, 1, 29)), "F-3": (D(2016, 2, 1), D(2016, 8, 31)),
    "F-4": (D(2016, 9, 1), D(2016, 10, 14)), "F-5": (D(2016, 10, 3), D(2016, 10, 31)),
    "G-2": (D(2015, 1, 5), D(2015, 3, 31)), "G-3": (D(2015, 4, 1), D(2015, 11, 30)),
    "G-4": (D(2015, 11, 2), D(2015, 12, 11)), "G-5": (D(2015, 12, 1), D(2015, 12, 25)),
    "H-4": (D(2015, 7, 1), D(2015, 9, 30)), "H-5": (D(2015, 9, 1), D(2015, 12, 18)),
    "I-3": (D(2015, 4, 1), D(2015, 9, 30)), "J-2": (D(2015, 6, 1), D(2015, 9, 30)),
    "K-1": (D(2016, 4, 1), D(2016, 8, 31)), "K-2": (D(2016, 9, 1), D(2017, 4, 28)),
}
VENDORS = ["株式会社みらい情報システム", "東日本データサービス株式会社", "株式会社中央電算", "西日本システム開発株式会社",
           "株式会社ひかり総合研究所", "北海道ソフトウェア株式会社", "九州電算センター株式会社"]
SLIPPING_VENDOR = "株式会社中央電算"
VENDOR_TASKS = ("B-2", "B-5", "C-4", "G-3", "F-3")
D3_REASON = "中間サーバー・プラットフォームを利用するため、本調達は不要"
# Body profiles (weights in %): most bodies on track; "minor" bodies finish the odd sub-task a few days
# late (注意); the late tail starts late, overruns, plans past the milestone or has entered no plan.
PROFILES = [("on_track", 72), ("minor", 10), ("late_start", 5), ("overrun", 5), ("past_milestone", 3),
            ("no_plan", 2), ("ahead", 3)]
# Market shares (weights) of the vendors named on plans; the slipping one serves few bodies.
VENDOR_WEIGHTS = [24, 20, 5, 18, 13, 10, 10]
FIRST_MONTH, LAST_MONTH = D(2015, 4, 1), D(2015, 11, 1)


def _profile(rnd: random.Random) -> str:
    roll = rnd.uniform(0, 100)
    for name, weight in PROFILES:
        if roll < weight:
            return name
        roll -= weight
    return "on_track"


def _clip(day: dt.date, limit: dt.date) -> dt.date:
    return min(day, limit)


def _month_start(day: dt.date) -> PartialDate:
    return PartialDate(day.replace(day=1), "month")


def _month_end(day: dt.date) -> PartialDate:
    return PartialDate(day.replace(day=1), "month")


def _at(day: dt.date, rnd: random.Random) -> dt.datetime:
    """A plausible office-hours moment on ``day`` (JST), as UTC."""
    local = dt.datetime.combine(day, dt.time(9 + rnd.randrange(9), rnd.randrange(60)), clock.JST)
    return local.astimezone(dt.UTC)


def _completion(spec: Any, end: dt.date, body: Body, rnd: random.Random) -> str:
    if spec.field_type.value == "date":
        return (end - dt.timedelta(days=rnd.randrange(0, 10))).isoformat()
    if spec.field_type.value == "integer":
        base = body.households or body.population or 10_000
        return str(int(base * (rnd.uniform(0.9, 1.0) if spec.code == "cards_sent" else rnd.uniform(0.01, 0.05))) + 1)
    if spec.field_type.value == "choice":
        return spec.choices[0] if rnd.random() < 0.85 else spec.choices[min(1, len(spec.choices) - 1)]
    if spec.field_type.value == "yes_no":
        return "はい"
    return "実施済み"


def _timeline(st: Any, body: Body, profile: str, vendor: str | None, month_style: bool, shift: int,
              rnd: random.Random, demo: dt.date, specs: list[Any]) -> list[tuple[dt.date, PlanValues]]:
    """The states one plan went through, each with the day it was recorded (all ≤ ``demo``)."""
    code = st.code
    if code == "D-3" and rnd.random() < 0.93:
        entered = _clip(D(2015, 4, 10) + dt.timedelta(days=rnd.randrange(60)), demo)
        return [(entered, PlanValues(not_applicable_reason=D3_REASON))]
    if profile == "no_plan" and (rnd.random() < 0.6 or BASELINE[code][0] > D(2015, 9, 1)):
        return []
    start, end = BASELINE[code]
    start += dt.timedelta(days=shift + rnd.randrange(-5, 6))
    end += dt.timedelta(days=shift + rnd.randrange(-3, 4))
    if end > st.milestone_date - dt.timedelta(days=7) and profile != "past_milestone":
        # Bodies plan to finish with a margin before the milestone, as real schedules do (every
        # baseline ends on or before its milestone; the body's shift and jitter must not push it past).
        end = st.milestone_date - dt.timedelta(days=rnd.randrange(7, 22))
    if end < start + dt.timedelta(days=7):
        start = end - dt.timedelta(days=14)  # a short sub-task late in the schedule starts earlier, keeping the margin
    if profile == "past_milestone" and code in ("C-5", "J-2", "E-6", "G-5", "H-5") and rnd.random() < 0.7:
        end = st.milestone_date + dt.timedelta(days=rnd.randrange(20, 90))
    planned_start = _month_start(start) if month_style else PartialDate(start)
    planned_end = _month_end(end) if month_style else PartialDate(end)
    if month_style and profile != "past_milestone" and planned_end.end() > st.milestone_date - dt.timedelta(days=7):
        # A month-end within a week of the milestone leaves no margin: on-track bodies plan a month earlier.
        end = planned_end.start() - dt.timedelta(days=1)
        planned_end = _month_end(end)
    if planned_end.end() > st.milestone_date >= end:
        planned_end = PartialDate(end)
    entered = D(2015, 3, 2) + dt.timedelta(days=rnd.randrange(0, 70))
    if start < entered:
        entered = max(D(2014, 9, 1), start - dt.timedelta(days=rnd.randrange(5, 40)))
    plan = PlanValues(planned_start=planned_start, planned_end=planned_end, vendor=vendor)
    states = [(_clip(entered, demo), plan)]
    slipping = vendor == SLIPPING_VENDOR
    start_delay = rnd.randrange(-3, 4)
    if profile == "late_start" and start > D(2015, 8, 1):
        start_delay = rnd.randrange(20, 75)
    if profile == "ahead":
        start_delay = -rnd.randrange(5, 20)
    actual_start = planned_start.start() + dt.timedelta(days=start_delay)
    if actual_start > demo:
        return states
    states.append((_clip(actual_start + dt.timedelta(days=rnd.randrange(0, 8)), demo),
                   PlanValues(planned_start=planned_start, planned_end=planned_end, vendor=vendor,
                              actual_start=PartialDate(actual_start), progress=rnd.choice((10, 20, 30)))))
    duration = (planned_end.end() - planned_start.start()).days
    # On track: finished on or a little before the planned end; a "minor" body now and then a few days late.
    overrun = -rnd.randrange(0, 8)
    if profile == "minor" and rnd.random() < 0.25:
        overrun = rnd.randrange(1, 12)
    if profile == "overrun" or (slipping and code in ("C-4", "G-3", "B-5")):
        overrun = rnd.randrange(25, 120)
    if profile == "late_start" and start_delay > 0:
        overrun = start_delay + rnd.randrange(0, 20)
    if profile == "ahead":
        overrun = -rnd.randrange(3, 15)
    actual_end = actual_start + dt.timedelta(days=max(duration + overrun - start_delay, 3))
    if actual_end > demo:
        elapsed = (demo - actual_start).days
        pct = max(10, min(95, int(100 * elapsed / max(duration + overrun, 1)) // 5 * 5))
        if profile == "overrun" or slipping:
            pct = min(pct, rnd.choice((50, 60, 70, 80)))
        states.append((_clip(demo - dt.timedelta(days=rnd.randrange(0, 20)), demo),
                       PlanValues(planned_start=planned_start, planned_end=planned_end, vendor=vendor,
                                  actual_start=PartialDate(actual_start), progress=pct)))
        return _monotone(states)
    completion = tuple(sorted((f.code, _completion(f, actual_end, body, rnd)) for f in specs))
    states.append((_clip(actual_end + dt.timedelta(days=rnd.randrange(0, 10)), demo),
                   PlanValues(planned_start=planned_start, planned_end=planned_end, vendor=vendor,
                              actual_start=PartialDate(actual_start), actual_end=PartialDate(actual_end),
                              progress=100, completion=completion)))
    return _monotone(states)


def _monotone(states: list[tuple[dt.date, PlanValues]]) -> list[tuple[dt.date, PlanValues]]:
    """Keep the logical order of changes: each is recorded on or after the one before."""
    out: list[tuple[dt.date, PlanValues]] = []
    for day, values in states:
        if out and day < out[-1][0]:
            day = out[-1][0]
        out.append((day, values))
    return out


def seed_demo_plans(session: Session, ctx: DemoContext) -> None:
    """Create plans, actuals, backdated revisions and monthly snapshots for every body (once)."""
    if session.scalar(select(PlanRevision.id).where(PlanRevision.channel == "demo").limit(1)) is not None:
        return
    demo = ctx.demo_date
    rnd = random.Random(20151215)
    subtasks = subtasks_on(session, demo)
    fields: dict[int, list[CompletionField]] = {}
    for f in session.scalars(select(CompletionField).order_by(CompletionField.sort_order)):
        fields.setdefault(f.subtask_id, []).append(f)
    field_ids = {(f.subtask_id, f.code): f.id for fs in fields.values() for f in fs}
    bodies = list(session.scalars(select(Body).order_by(Body.code)))
    vendor_of: dict[int, str] = {b.id: rnd.choices(VENDORS, VENDOR_WEIGHTS)[0] for b in bodies}
    histories: dict[tuple[int, int], list[tuple[dt.datetime, PlanValues]]] = {}
    for body in bodies:
        profile = _profile(rnd)
        if body.kind is BodyKind.UNION and profile == "past_milestone":
            profile = "on_track"
        month_style = rnd.random() < 0.2
        shift = rnd.randrange(-12, 13)
        for st in subtasks:
            if not st.applies_to(body.kind):
                continue
            vendor = vendor_of[body.id] if st.code in VENDOR_TASKS else None
            states = _timeline(st, body, profile, vendor, month_style, shift, rnd, demo, fields.get(st.id, []))
            if states:
                histories[(body.id, st.id)] = [(_at(day, rnd), values) for day, values in states]
    _write(session, histories, field_ids, demo)


def _write(session: Session, histories: dict[tuple[int, int], list[tuple[dt.datetime, PlanValues]]],
           field_ids: dict[tuple[int, str], int], demo: dt.date) -> None:
    keys = list(histories)
    plan_rows = []
    for key in keys:
        states = histories[key]
        last_at, last = states[-1]
        row = column_values(last)
        row.update(body_id=key[0], subtask_id=key[1], version=len(states), updated_dt=last_at)
        plan_rows.append(row)
    bulk_insert(session, Plan.__table__, plan_rows)
    ids = {(b, s): pid for pid, b, s in session.execute(select(Plan.id, Plan.body_id, Plan.subtask_id))}
    revisions: list[dict[str, Any]] = []
    values_rows: list[dict[str, Any]] = []
    for key in keys:
        before = None
        for at, values in histories[key]:
            after = values.to_json()
            revisions.append({"plan_id": ids[key], "body_id": key[0], "subtask_id": key[1], "recorded_dt": at,
                              "user_id": None, "channel": "demo", "batch_id": None, "before": before, "after": after})
            before = after
        for code, value in histories[key][-1][1].completion:
            values_rows.append({"plan_id": ids[key], "field_id": field_ids[(key[1], code)], "value": value})
    bulk_insert(session, PlanRevision.__table__, revisions)
    bulk_insert(session, CompletionValue.__table__, values_rows)
    _close_months(session, histories, demo)


def _close_months(session: Session, histories: dict[tuple[int, int], list[tuple[dt.datetime, PlanValues]]],
                  demo: dt.date) -> None:
    """Monthly snapshots 2015-04…2015-11 from the same histories (what close_month would freeze)."""
    month = FIRST_MONTH
    bodies = list(session.execute(select(Body.id, Body.kind).order_by(Body.code)))
    empty = PlanValues()
    while month <= LAST_MONTH:
        as_of = month.replace(day=calendar.monthrange(month.year, month.month)[1])
        cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), clock.JST)
        subtasks = subtasks_on(session, as_of)
        snap = MonthlySnapshot(month=month, as_of=as_of, closed_dt=cutoff.astimezone(dt.UTC)
                               + dt.timedelta(days=3), closed_by_id=None)
        session.add(snap)
        session.flush()
        rows = []
        for body_id, kind in bodies:
            for st in subtasks:
                if not st.applies_to(kind):
                    continue
                values = empty
                for at, state in histories.get((body_id, st.id), ()):
                    if at < cutoff:
                        values = state
                    else:
                        break
                row = column_values(values)
                del row["comment"], row["vendor"]
                reason = row.pop("not_applicable_reason")
                row.update(snapshot_id=snap.id, body_id=body_id, subtask_id=st.id, not_applicable=bool(reason),
                           status=rules.status_of(values, as_of))
                rows.append(row)
        bulk_insert(session, SnapshotRow.__table__, rows)
        snap.row_count = len(rows)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    session.flush()
