"""The demo's plans are true to life on the demo date: most bodies on track, a tail late in several ways.

Runs the demo's own generator (``_timeline``) over a thousand simulated municipalities with the seeded
catalog, then judges them with the delay rules on the demo date, as the dashboards do.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from types import SimpleNamespace

from pmo.catalog.service import subtasks_on
from pmo.delays import rules
from pmo.plans import demo

DEMO = dt.date(2015, 12, 15)


def _facts(values, view) -> rules.PlanFacts:  # type: ignore[no-untyped-def]
    def day(name: str) -> tuple[dt.date | None, str]:
        value = getattr(values, name)
        return (value.value, value.precision) if value else (None, "day")

    (ps, psp), (pe, pep), (a_s, asp), (ae, aep) = (day(n) for n in ("planned_start", "planned_end",
                                                                    "actual_start", "actual_end"))
    return rules.PlanFacts(ps, pe, a_s, ae, milestone=view.milestone_date,
                           not_applicable=bool(values.not_applicable_reason), subtask=view.code,
                           planned_start_precision=psp, planned_end_precision=pep,
                           actual_start_precision=asp, actual_end_precision=aep)


def _simulate(views, n_bodies: int = 1000):  # type: ignore[no-untyped-def]
    rnd = random.Random(7)
    body = SimpleNamespace(households=10_000, population=25_000)
    statuses: dict[str, Counter[str]] = {}
    on_track_plans = []
    for _ in range(n_bodies):
        profile = demo._profile(rnd)
        vendor = rnd.choices(demo.VENDORS, demo.VENDOR_WEIGHTS)[0]
        month_style, shift = rnd.random() < 0.2, rnd.randrange(-12, 13)
        chains: dict[str, list[rules.PlanFacts]] = {}
        for view in views:
            if not view.applies_municipality:
                continue
            states = demo._timeline(view, body, profile, vendor if view.code in demo.VENDOR_TASKS else None,
                                    month_style, shift, rnd, DEMO, [])
            values = states[-1][1] if states else demo.PlanValues()
            facts = _facts(values, view)
            chains.setdefault(view.item_code, []).append(facts)
            if profile == "on_track" and facts.planned_end is not None and not facts.not_applicable:
                on_track_plans.append(facts)
        worst: rules.Severity | None = None
        for chain in chains.values():
            for signals in rules.signals_for_chain(chain, DEMO):
                for signal in signals:
                    worst = signal.severity if worst is None else max(worst, signal.severity)
        statuses.setdefault(profile, Counter())[worst.code if worst else "on_track"] += 1
    return statuses, on_track_plans


def test_most_demo_bodies_are_on_track_and_the_tail_is_late_in_different_ways(db_session):
    views = subtasks_on(db_session, DEMO)
    statuses, on_track_plans = _simulate(views)
    total = Counter()
    for counts in statuses.values():
        total.update(counts)
    n = sum(total.values())
    assert total["on_track"] / n >= 0.55, total
    assert 0.05 <= total["critical"] / n <= 0.25, total
    # Every late pattern shows up, and shows up as late.
    for profile in ("late_start", "overrun", "past_milestone", "no_plan"):
        late = sum(c for status, c in statuses[profile].items() if status != "on_track")
        assert late >= 0.8 * sum(statuses[profile].values()), (profile, statuses[profile])
    # Bodies on track plan a margin before each milestone and (nearly all) finish on plan.
    for facts in on_track_plans:
        end = rules.effective_end(facts.planned_end, facts.planned_end_precision)
        assert end <= facts.milestone - dt.timedelta(days=7), facts
    assert statuses["on_track"]["on_track"] >= 0.85 * sum(statuses["on_track"].values()), statuses["on_track"]
